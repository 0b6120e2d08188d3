//! Snapshot tests of the Query DSL reader: every accepted clause shape, rendered as Sluice's
//! query tree, and every refused one with its error type and reason, through `check`.
//! Regenerate with `UPDATE_EXPECT=1 cargo test -p sluice-api query_dsl` and review the diff.
//!
//! `expected` must be a raw string `r#"..."#`, the first one after the `check(` call.

use std::collections::HashMap;
use std::panic::Location;

use sluice_snapshot::compare;

use serde_json::json;

use super::parse_query;

/// Reads `input` as a Query DSL clause and compares the tree (or error) with `expected`.
#[track_caller]
fn check(input: serde_json::Value, expected: &str) {
    let actual = match parse_query(&input) {
        Ok(query) => query.to_string(),
        Err(error) => format!("{} {}: {}", error.status.as_u16(), error.kind, error.reason),
    };
    compare(&actual, expected, Location::caller());
}

#[test]
fn full_text_queries() {
    check(
        json!({"match": {"postcode": "SW1A 1AA"}}),
        r#"
    (match postcode "SW1A 1AA")
    "#,
    );
    check(
        json!({"match": {"title": {"query": "quick fox", "operator": "and", "boost": 2}}}),
        r#"
    (match title "quick fox" and ^2)
    "#,
    );
    check(
        json!({"match": {"title": {"query": "a b c", "minimum_should_match": "75%", "fuzziness": "AUTO", "prefix_length": 1, "lenient": true, "zero_terms_query": "all", "analyzer": "english", "_name": "t"}}}),
        r#"
    (named "t" (match title "a b c" msm=Percent(75) fuzziness=Auto { low: 3, high: 6 } prefix_length=1 lenient zero_terms=all analyzer=english))
    "#,
    );
    check(
        json!({"match": {"n": 42}}),
        r#"
    (match n "42")
    "#,
    );
    check(
        json!({"match_phrase": {"title": {"query": "quick fox", "slop": 2}}}),
        r#"
    (match_phrase slop=2 title "quick fox")
    "#,
    );
    check(
        json!({"match_phrase_prefix": {"title": "quick br"}}),
        r#"
    (match_phrase_prefix slop=0 max_expansions=50 title "quick br")
    "#,
    );
    check(
        json!({"match_bool_prefix": {"title": {"query": "quick br", "operator": "and"}}}),
        r#"
    (match_bool_prefix title "quick br" and)
    "#,
    );
    check(
        json!({"multi_match": {"query": "fox", "fields": ["title^3", "body", "user.*"]}}),
        r#"
    (fields [title^3 body user.*] tie=0 (match _ "fox"))
    "#,
    );
    check(
        json!({"multi_match": {"query": "fox", "fields": "title", "type": "most_fields"}}),
        r#"
    (fields [title] tie=1 (match _ "fox"))
    "#,
    );
    check(
        json!({"multi_match": {"query": "quick fox", "fields": ["a", "b"], "type": "cross_fields", "operator": "and"}}),
        r#"
    (cross_fields [a b] tie=0 (match _ "quick fox" and))
    "#,
    );
    check(
        json!({"multi_match": {"query": "quick fox", "type": "phrase", "slop": 1, "tie_breaker": 0.3}}),
        r#"
    (fields [] tie=0.3 (match_phrase slop=1 _ "quick fox"))
    "#,
    );
    check(
        json!({"multi_match": {"query": "quick fo", "type": "phrase_prefix"}}),
        r#"
    (fields [] tie=0 (match_phrase_prefix slop=0 max_expansions=50 _ "quick fo"))
    "#,
    );
    check(
        json!({"multi_match": {"query": "quick fo", "type": "bool_prefix"}}),
        r#"
    (fields [] tie=1 (match_bool_prefix _ "quick fo"))
    "#,
    );
}

#[test]
fn term_level_queries() {
    check(
        json!({"term": {"user.keyword": "kimchy"}}),
        r#"
    (term user.keyword "kimchy")
    "#,
    );
    check(
        json!({"term": {"user": {"value": "Kimchy", "case_insensitive": true, "boost": 1.5}}}),
        r#"
    (term user "Kimchy" case_insensitive ^1.5)
    "#,
    );
    check(
        json!({"terms": {"tags": ["a", "b"], "boost": 2}}),
        r#"
    (terms tags "a" "b" ^2)
    "#,
    );
    check(
        json!({"ids": {"values": ["1", 2]}}),
        r#"
    (ids 1 2)
    "#,
    );
    check(
        json!({"range": {"age": {"gte": 10, "lt": 20}}}),
        r#"
    (range age gte=10 lt=20)
    "#,
    );
    check(
        json!({"range": {"at": {"gt": "now-1d/d", "lte": "2026-12-01||+1M", "format": "yyyy-MM-dd", "time_zone": "+01:00"}}}),
        r#"
    (range at gt="now-1d/d" lte="2026-12-01||+1M" format="yyyy-MM-dd" time_zone="+01:00")
    "#,
    );
    check(
        json!({"range": {"age": {"from": 1, "to": 5, "include_upper": false}}}),
        r#"
    (range age gte=1 lt=5)
    "#,
    );
    check(
        json!({"exists": {"field": "title"}}),
        r#"
    (exists title)
    "#,
    );
    check(
        json!({"prefix": {"user": "ki"}}),
        r#"
    (prefix user "ki")
    "#,
    );
    check(
        json!({"prefix": {"user": {"value": "KI", "case_insensitive": true, "rewrite": "constant_score"}}}),
        r#"
    (prefix user "KI" case_insensitive)
    "#,
    );
    check(
        json!({"wildcard": {"host": {"value": "web-*"}}}),
        r#"
    (wildcard host "web-*")
    "#,
    );
    check(
        json!({"wildcard": {"host": {"wildcard": "web-?1"}}}),
        r#"
    (wildcard host "web-?1")
    "#,
    );
    check(
        json!({"regexp": {"host": {"value": "web-[0-9]+", "flags": "ALL", "max_determinized_states": 10000}}}),
        r#"
    (regexp host "web-[0-9]+")
    "#,
    );
    check(
        json!({"fuzzy": {"user": "kimchi"}}),
        r#"
    (fuzzy user "kimchi" Auto { low: 3, high: 6 } prefix_length=0 max_expansions=50)
    "#,
    );
    check(
        json!({"fuzzy": {"user": {"value": "kimchi", "fuzziness": 1, "prefix_length": 2, "transpositions": false}}}),
        r#"
    (fuzzy user "kimchi" Edits(1) prefix_length=2 max_expansions=50 no_transpositions)
    "#,
    );
}

#[test]
fn compound_queries() {
    check(
        json!({"bool": {
            "must": [{"match": {"postcode": "SW1A"}}, {"match": {"name": "ann"}}],
            "filter": {"range": {"points": {"gte": 3}}},
            "must_not": [{"term": {"banned": true}}],
            "should": [],
            "minimum_should_match": 1,
            "boost": 1.2,
            "_name": "licences"
        }}),
        r#"
    (named "licences" (bool (must (match postcode "SW1A") (match name "ann")) (must_not (term banned true)) (filter (range points gte=3 *)) msm=Count(1) ^1.2))
    "#,
    );
    check(
        json!({"bool": {}}),
        r#"
    (bool)
    "#,
    );
    check(
        json!({"constant_score": {"filter": {"term": {"a": 1}}, "boost": 2}}),
        r#"
    (constant_score (term a 1) ^2)
    "#,
    );
    check(
        json!({"boosting": {"positive": {"match": {"a": "x"}}, "negative": {"match": {"a": "y"}}, "negative_boost": 0.2}}),
        r#"
    (boosting (match a "x") (match a "y") negative_boost=0.2)
    "#,
    );
    check(
        json!({"dis_max": {"queries": [{"match": {"a": "x"}}, {"match": {"b": "x"}}], "tie_breaker": 0.7}}),
        r#"
    (dis_max tie=0.7 (match a "x") (match b "x"))
    "#,
    );
    check(
        json!({"function_score": {
            "query": {"match": {"title": "fox"}},
            "functions": [
                {"filter": {"term": {"tag": "new"}}, "weight": 2},
                {"field_value_factor": {"field": "likes", "factor": 1.2, "modifier": "log1p", "missing": 1}},
                {"gauss": {"at": {"origin": "now", "scale": "10d", "offset": "1d", "decay": 0.5}}}
            ],
            "score_mode": "sum",
            "boost_mode": "replace",
            "max_boost": 10,
            "min_score": 0.1
        }}),
        r#"
    (function_score (match title "fox") score_mode=Sum boost_mode=Replace (function Weight weight=2 filter=(term tag "new")) (function FieldValueFactor { field: "likes", factor: 1.2, modifier: Log1p, missing: Some(1.0) }) (function Decay { shape: Gauss, field: "at", origin: Some(String("now")), scale: String("10d"), offset: Some(String("1d")), decay: 0.5 }) max_boost=10 min_score=0.1)
    "#,
    );
    check(
        json!({"function_score": {"exp": {"price": {"origin": 10, "scale": 5}}}}),
        r#"
    (function_score (match_all) score_mode=Multiply boost_mode=Multiply (function Decay { shape: Exp, field: "price", origin: Some(Number(10)), scale: Number(5), offset: None, decay: 0.5 }))
    "#,
    );
    check(
        json!({"query_string": {"query": "message:bye AND NOT status:500", "default_operator": "AND"}}),
        r#"
    (bool (must (match message "bye" and)) (must_not (match status "500" and)))
    "#,
    );
    check(
        json!({"query_string": {"query": "fox", "fields": ["title^2", "body"], "analyze_wildcard": true}}),
        r#"
    (fields [title^2 body] tie=0 (match _ "fox"))
    "#,
    );
    check(
        json!({"query_string": {"query": "fox", "default_field": "message", "_name": "qs", "boost": 2}}),
        r#"
    (named "qs" (bool (must (match message "fox")) ^2))
    "#,
    );
    check(
        json!({"simple_query_string": {"query": "fox -dog", "fields": ["body"], "default_operator": "and"}}),
        r#"
    (bool (must (match body "fox" and lenient) (bool (must (match_all)) (must_not (match body "dog" and lenient)))))
    "#,
    );
    check(
        json!({"match_all": {"boost": 1.5, "_name": "all"}}),
        r#"
    (named "all" (match_all ^1.5))
    "#,
    );
    check(
        json!({"match_none": {}}),
        r#"
    (match_none)
    "#,
    );
}

#[test]
fn nested_queries() {
    check(
        json!({"nested": {"path": "a", "query": {"bool": {"must": [{"term": {"a.x": 1}}, {"term": {"a.y": 2}}]}}}}),
        r#"
        (nested a (bool (must (term a.x 1) (term a.y 2))) score_mode=Avg)
        "#,
    );
    check(
        json!({"nested": {"path": "a", "score_mode": "max", "ignore_unmapped": true, "boost": 2, "_name": "n",
            "query": {"nested": {"path": "a.b", "score_mode": "none", "query": {"match_all": {}}}},
            "inner_hits": {"name": "objects", "from": 1, "size": 2, "_source": {"includes": ["a.x"]}, "sort": ["_score"]}}}),
        r#"
    (named "n" (nested a (nested a.b (match_all) score_mode=None) score_mode=Max ignore_unmapped (inner_hits "objects" from=1 size=2 include="a.x") ^2))
    "#,
    );
}

#[test]
fn refused_shapes_name_what_is_wrong() {
    check(
        json!({"bogus": {}}),
        r#"
    400 parsing_exception: unknown query [bogus]
    "#,
    );
    check(
        json!({"nested": {"path": "a", "score_mode": "median", "query": {"match_all": {}}}}),
        r#"
    400 illegal_argument_exception: No score mode for child query [median] found
    "#,
    );
    check(
        json!({"nested": {"path": "a", "query": {"match_all": {}}, "inner_hits": {"size": 101}}}),
        r#"
    400 illegal_argument_exception: Inner result window is too large, the inner hit definition's [a]'s from + size must be less than or equal to: [100] but was [101]. This limit can be set by changing the [index.max_inner_result_window] index level setting.
    "#,
    );
    check(
        json!({"nested": {"path": "a", "query": {"match_all": {}}, "inner_hits": {"sort": [{"a.n": "asc"}]}}}),
        r#"
    400 illegal_argument_exception: [inner_hits] sort [{"a.n":"asc"}] is not supported by Sluice; inner hits sort by [_score] descending only
    "#,
    );
    check(
        json!({"nested": {"path": "a", "query": {"match_all": {}}, "inner_hits": {"highlight": {}}}}),
        r#"
    400 parsing_exception: [inner_hits] query does not support [highlight]
    "#,
    );
    check(
        json!({"nested": {"query": {"match_all": {}}}}),
        r#"
    400 parsing_exception: [nested] requires [path]
    "#,
    );
    check(
        json!({"match": {"a": "x", "b": "y"}}),
        r#"
    400 parsing_exception: [match] query doesn't support multiple fields, found [a] and [b]
    "#,
    );
    check(
        json!({"match": {"a": {"query": "x", "operater": "and"}}}),
        r#"
    400 parsing_exception: [match] query does not support [operater]
    "#,
    );
    check(
        json!({"match": {"a": {"operator": "and"}}}),
        r#"
    400 parsing_exception: [match] requires [query]
    "#,
    );
    check(
        json!({"match": {"a": {"query": "x", "operator": "xor"}}}),
        r#"
    400 illegal_argument_exception: No enum constant org.elasticsearch.index.query.Operator.XOR
    "#,
    );
    check(
        json!({"match": {"a": {"query": "x", "fuzziness": "lots"}}}),
        r#"
    400 illegal_argument_exception: invalid fuzziness value: [lots]
    "#,
    );
    check(
        json!({"match": {"a": {"query": "x", "minimum_should_match": "x%"}}}),
        r#"
    400 illegal_argument_exception: invalid [minimum_should_match] value [x%]
    "#,
    );
    check(
        json!({"match": {"a": {"query": "x", "analyzer": "klingon"}}}),
        r#"
    400 illegal_argument_exception: analyzer [klingon] has not been configured in mappings
    "#,
    );
    check(
        json!({"match": {"a": {"query": {"nested": 1}}}}),
        r#"
    400 parsing_exception: [match] unknown token [START_OBJECT] after [query]
    "#,
    );
    check(
        json!({"match": {"a": {"query": "x", "boost": -1}}}),
        r#"
    400 illegal_argument_exception: negative [boost] are not allowed in [-1]
    "#,
    );
    check(
        json!({"match_phrase": {"a": {"query": "x", "operator": "and"}}}),
        r#"
    400 parsing_exception: [match_phrase] query does not support [operator]
    "#,
    );
    check(
        json!({"term": {"a": ["x"]}}),
        r#"
    400 parsing_exception: [term] query does not support array of values
    "#,
    );
    check(
        json!({"term": {"a": {"value": "x", "fuzziness": 1}}}),
        r#"
    400 parsing_exception: [term] query does not support [fuzziness]
    "#,
    );
    check(
        json!({"terms": {"a": {"index": "i", "id": "1", "path": "p"}}}),
        r#"
    400 parsing_exception: [terms] query does not support terms lookup (index/id/path) in Sluice
    "#,
    );
    check(
        json!({"range": {"a": {"gte": 1, "relation": "within"}}}),
        r#"
    400 parsing_exception: [range] query option [relation] value [within] is only meaningful on range fields, which Sluice does not support
    "#,
    );
    check(
        json!({"bool": {"must": "x"}}),
        r#"
    400 parsing_exception: [bool] failed to parse field [must]
    "#,
    );
    check(
        json!({"bool": {"shuld": []}}),
        r#"
    400 parsing_exception: [bool] query does not support [shuld]
    "#,
    );
    check(
        json!({"multi_match": {"query": "x", "type": "best"}}),
        r#"
    400 parsing_exception: failed to parse [multi_match] query type [best]. unknown type.
    "#,
    );
    check(
        json!({"multi_match": {"query": "x", "slop": 2}}),
        r#"
    400 parsing_exception: [multi_match] query type [best_fields] does not support [slop]
    "#,
    );
    check(
        json!({"regexp": {"a": {"value": "x", "flags": "INTERSECTION"}}}),
        r#"
    400 parsing_exception: [regexp] flags [INTERSECTION] are not supported by Sluice; only ALL
    "#,
    );
    check(
        json!({"function_score": {"random_score": {}}}),
        r#"
    400 parsing_exception: [function_score] option [random_score] is not supported by Sluice
    "#,
    );
    check(
        json!({"function_score": {"functions": [{"weight": 1, "gauss": {"a": {"scale": 1}}, "exp": {"a": {"scale": 1}}}]}}),
        r#"
    400 parsing_exception: failed to parse [function_score] query. a function may only hold one score function
    "#,
    );
    check(
        json!({"query_string": {"query": "a AND"}}),
        r#"
    400 query_shard_exception: Failed to parse query [a AND]
    "#,
    );
    check(
        json!({"query_string": {"query": "a", "fields": ["x"], "default_field": "y"}}),
        r#"
    400 illegal_argument_exception: [query_string] cannot use [fields] parameter in conjunction with [default_field]
    "#,
    );
    check(
        json!({"simple_query_string": {"query": "a", "phrase_slop": 1}}),
        r#"
    400 parsing_exception: [simple_query_string] unsupported field [phrase_slop]
    "#,
    );
    check(
        json!({"match": {}}),
        r#"
    400 parsing_exception: [match] query malformed, no field
    "#,
    );
    check(
        json!({}),
        r#"
    400 parsing_exception: query malformed, empty clause found
    "#,
    );
    check(
        json!({"match_all": {}, "match_none": {}}),
        r#"
    400 parsing_exception: [match_all] malformed query, expected [END_OBJECT] but found [FIELD_NAME]
    "#,
    );
    check(
        json!("match_all"),
        r#"
    400 parsing_exception: query malformed, must start with start_object
    "#,
    );
}

#[test]
fn nesting_is_bounded() {
    let mut deep = json!({"match_all": {}});
    for _ in 0..100 {
        deep = json!({"bool": {"must": [deep]}});
    }
    check(
        deep,
        r#"
    400 parsing_exception: The nested depth of the query exceeds the maximum nested depth for queries set in [indices.query.max_nested_depth] (30)
    "#,
    );
}

/// Reads URL parameters (`q`, `df`, `default_operator`, …) as `_search` does.
#[track_caller]
fn check_url(params: &[(&str, &str)], expected: &str) {
    let params: HashMap<&str, &str> = params.iter().copied().collect();
    let actual = match super::url_query(|name| params.get(name).map(|v| v.to_string())) {
        Ok(Some(query)) => query.to_string(),
        Ok(None) => "none".to_string(),
        Err(error) => format!("{} {}: {}", error.status.as_u16(), error.kind, error.reason),
    };
    compare(&actual, expected, Location::caller());
}

#[test]
fn url_query_strings() {
    check_url(
        &[("df", "name")],
        r#"
    none
    "#,
    );
    check_url(
        &[("q", "name:ada AND points:>=3")],
        r#"
        (bool (must (match name "ada") (range points gte="3" *)))
        "#,
    );
    check_url(
        &[
            ("q", "ada lovelace"),
            ("df", "name"),
            ("default_operator", "AND"),
        ],
        r#"
        (bool (must (match name "ada" and) (match name "lovelace" and)))
        "#,
    );
    check_url(
        &[("q", "wor*"), ("analyze_wildcard", "true"), ("lenient", "")],
        r#"
        (fields [] tie=0 lenient (prefix _ "wor"))
        "#,
    );
    check_url(
        &[("q", "name:(ada")],
        r#"
        400 query_shard_exception: Failed to parse query [name:(ada]
        "#,
    );
    check_url(
        &[("q", "ada"), ("default_operator", "XOR")],
        r#"
        400 illegal_argument_exception: No enum constant org.elasticsearch.index.query.Operator.XOR
        "#,
    );
    check_url(
        &[("q", "ada"), ("lenient", "maybe")],
        r#"
        400 illegal_argument_exception: Failed to parse value [maybe] as only [true] or [false] are allowed.
        "#,
    );
}

#[test]
fn a_range_bound_must_be_a_value() {
    for bound in [json!({"a": 1}), json!([1, 2])] {
        let error = parse_query(&json!({"range": {"age": {"gte": bound}}})).unwrap_err();
        assert_eq!(error.kind, "parsing_exception");
        assert!(
            error
                .reason
                .contains("[range] query does not support [gte]"),
            "{}",
            error.reason
        );
    }
    assert!(parse_query(&json!({"range": {"age": {"gte": null, "lt": "now"}}})).is_ok());
}
