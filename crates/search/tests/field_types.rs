//! Field types beyond the basic scalars (`scaled_float`, …) against real indices: what their
//! mappings accept, and which documents their queries match.

use std::sync::Arc;

mod common;
use common::{TestIndex, index_with, term};

use serde_json::{Value, json};
use sluice_search::query::{Query, Range, RangeBound};
use sluice_search::{Index, IndexSettings, Mappings, ScriptSortType, WriteRequest};

fn range(field: &str, lower: RangeBound, upper: RangeBound) -> Query {
    Query::Range(Box::new(Range {
        field: field.into(),
        lower,
        upper,
        format: None,
        time_zone: None,
        boost: 1.0,
    }))
}

#[test]
fn scaled_float_mappings_need_a_positive_factor() {
    let error = |mapping: Value| Mappings::from_json(&mapping).unwrap_err().to_string();
    assert!(
        error(json!({"properties": {"p": {"type": "scaled_float"}}}))
            .contains("Field [scaling_factor] is required")
    );
    for bad in [json!(0), json!(-10), json!("ten")] {
        assert!(
            error(json!({"properties": {"p": {"type": "scaled_float", "scaling_factor": bad}}}))
                .contains("[scaling_factor] must be a positive number"),
            "{bad}"
        );
    }
    let mapping = json!({"properties": {"p": {"type": "scaled_float", "scaling_factor": 100}}});
    assert_eq!(Mappings::from_json(&mapping).unwrap().to_json(), mapping);
}

#[test]
fn scaled_floats_are_seen_rounded_to_their_factor() {
    let index = index_with(
        json!({"properties": {"price": {"type": "scaled_float", "scaling_factor": 100}}}),
        &[
            ("a", json!({"price": 1.234})),
            ("b", json!({"price": "2.005"})),
            ("c", json!({"price": 3})),
            ("d", json!({"price": -0.125})),
        ],
    );
    // 1.234 is kept as 1.23; a term on any value that rounds the same finds it.
    assert_eq!(index.ids(&term("price", json!(1.23))), ["a"]);
    assert_eq!(index.ids(&term("price", json!(1.2341))), ["a"]);
    assert_eq!(index.ids(&term("price", json!(1.234))), ["a"]);
    assert!(index.ids(&term("price", json!(1.24))).is_empty());
    assert_eq!(index.ids(&term("price", json!("3.00"))), ["c"]);
    // Java's Math.round rounds halves up: -12.5 becomes -12, so -0.125 is kept as -0.12.
    assert_eq!(index.ids(&term("price", json!(-0.12))), ["d"]);

    use RangeBound::{Excluded, Included, Unbounded};
    // Bounds compare with the rounded values: 1.23 is not above 1.231, but is at most 1.231.
    assert_eq!(
        index.ids(&range("price", Excluded(json!(1.231)), Unbounded)),
        ["b", "c"]
    );
    assert_eq!(
        index.ids(&range("price", Unbounded, Included(json!(1.231)))),
        ["a", "d"]
    );
    assert_eq!(
        index.ids(&range("price", Included(json!(1.23)), Excluded(json!(3)))),
        ["a", "b"]
    );
    assert_eq!(
        index.ids(&range("price", Included(json!(-1)), Included(json!(-0.12)))),
        ["d"]
    );
}

#[test]
fn wildcard_fields_match_as_keywords_with_constant_scores() {
    let index = index_with(
        json!({"properties": {"path": {"type": "wildcard", "ignore_above": 20}}}),
        &[
            ("1", json!({"path": "/var/log/syslog"})),
            ("2", json!({"path": ["/var/log/auth.log", "/etc/hosts"]})),
            ("3", json!({"path": "/home/someone/a-very-long-path"})),
        ],
    );
    let wildcard = |pattern: &str| Query::Wildcard {
        field: "path".into(),
        pattern: pattern.into(),
        case_insensitive: false,
        boost: 1.0,
    };
    assert_eq!(index.ids(&wildcard("/var/log/*")), ["1", "2"]);
    assert_eq!(index.ids(&wildcard("*hosts")), ["2"]);
    // Longer than ignore_above: kept in _source, not indexed.
    assert!(index.ids(&wildcard("/home/*")).is_empty());
    let regexp = Query::Regexp {
        field: "path".into(),
        pattern: "/var/log/[a-z]+".into(),
        case_insensitive: false,
        boost: 1.0,
    };
    assert_eq!(index.ids(&regexp), ["1"]);
    let prefix = Query::Prefix {
        field: "path".into(),
        value: "/ETC".into(),
        case_insensitive: true,
        boost: 1.0,
    };
    assert_eq!(index.ids(&prefix), ["2"]);
    let hits = index
        .index
        .search(&term("path", json!("/etc/hosts")), 0, 10)
        .unwrap()
        .hits;
    assert_eq!(hits.len(), 1);
    // Elasticsearch scores wildcard-field terms as a constant, not by idf.
    assert_eq!(hits[0].score, 1.0);
    use RangeBound::{Included, Unbounded};
    assert_eq!(
        index.ids(&range("path", Included(json!("/var")), Unbounded)),
        ["1", "2"]
    );
}

#[test]
fn ip_fields_match_addresses_cidr_blocks_and_ranges() {
    let index = index_with(
        json!({"properties": {"addr": {"type": "ip"}}}),
        &[
            ("1", json!({"addr": "192.168.1.10"})),
            ("2", json!({"addr": "192.168.200.1"})),
            ("3", json!({"addr": "10.0.0.1"})),
            ("4", json!({"addr": "2001:db8::1"})),
            ("5", json!({"addr": "::ffff:10.0.0.2"})),
        ],
    );
    assert_eq!(index.ids(&term("addr", json!("192.168.1.10"))), ["1"]);
    // An IPv4-mapped IPv6 address is the same address as its IPv4 form.
    assert_eq!(index.ids(&term("addr", json!("10.0.0.2"))), ["5"]);
    assert_eq!(
        index.ids(&term("addr", json!("192.168.0.0/16"))),
        ["1", "2"]
    );
    assert_eq!(index.ids(&term("addr", json!("10.0.0.0/8"))), ["3", "5"]);
    assert_eq!(index.ids(&term("addr", json!("2001:db8::/32"))), ["4"]);
    use RangeBound::{Excluded, Included, Unbounded};
    assert_eq!(
        index.ids(&range(
            "addr",
            Included(json!("10.0.0.1")),
            Excluded(json!("192.168.200.1"))
        )),
        ["1", "3", "5"]
    );
    assert_eq!(
        index.ids(&range("addr", Excluded(json!("192.168.200.1")), Unbounded)),
        ["4"]
    );
    let error = |query: &Query| index.index.search(query, 0, 10).unwrap_err().to_string();
    assert!(error(&term("addr", json!("10.0.0.0/33"))).contains("10.0.0.0/33"));
    assert!(error(&term("addr", json!("not-an-ip"))).contains("not-an-ip"));
    assert!(error(&range("addr", Included(json!("x")), Unbounded)).contains("'x'"));
}

#[test]
fn ip_values_that_are_not_addresses_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::create(
        &dir.path().join("index"),
        "test",
        IndexSettings::default(),
        Mappings::from_json(&json!({"properties": {"addr": {"type": "ip"}}})).unwrap(),
    )
    .unwrap();
    let document = json!({"addr": "300.1.1.1"});
    let outcome = index.write(vec![WriteRequest::Index {
        id: Some("1".into()),
        source: Arc::from(document.to_string().as_bytes()),
        document,
        condition: Default::default(),
    }]);
    assert!(outcome.into_iter().next().unwrap().is_err());
}

#[test]
fn flattened_fields_index_leaves_under_the_field_and_their_keys() {
    let index = index_with(
        json!({"properties": {"labels": {"type": "flattened"}}}),
        &[
            (
                "1",
                json!({"labels": {"team": "search", "env": {"name": "prod"}, "n": 3}}),
            ),
            (
                "2",
                json!({"labels": {"team": ["ingest", "search"], "env": {"name": "dev"}}}),
            ),
            ("3", json!({"labels": {"owner": "prod"}})),
        ],
    );
    assert_eq!(index.ids(&term("labels.team", json!("search"))), ["1", "2"]);
    assert_eq!(index.ids(&term("labels.env.name", json!("prod"))), ["1"]);
    assert_eq!(index.ids(&term("labels", json!("prod"))), ["1", "3"]);
    // Numbers are keywords too.
    assert_eq!(index.ids(&term("labels.n", json!("3"))), ["1"]);
    assert!(index.ids(&term("labels.missing", json!("prod"))).is_empty());
    let prefix = Query::Prefix {
        field: "labels.team".into(),
        value: "ing".into(),
        case_insensitive: false,
        boost: 1.0,
    };
    assert_eq!(index.ids(&prefix), ["2"]);
    use RangeBound::{Included, Unbounded};
    assert_eq!(
        index.ids(&range("labels.env.name", Included(json!("e")), Unbounded)),
        ["1"]
    );
}

/// The ip index of the sort and aggregation tests: IPv4, IPv6, an IPv4-mapped IPv6 address, a
/// document without an address and one with two.
fn ip_index() -> TestIndex {
    index_with(
        json!({"properties": {"addr": {"type": "ip"}}}),
        &[
            ("v4-high", json!({"addr": "192.168.1.10"})),
            ("v4-low", json!({"addr": "9.0.0.1"})),
            ("v4-mid", json!({"addr": "10.0.0.1"})),
            ("v6", json!({"addr": "2001:db8::1"})),
            ("mapped", json!({"addr": "::ffff:10.0.0.2"})),
            ("loopback6", json!({"addr": "::1"})),
            ("none", json!({"other": 1})),
            ("two", json!({"addr": ["10.0.0.200", "2001:db8::ff"]})),
        ],
    )
}

fn sorted_by_addr(
    index: &TestIndex,
    order: sluice_search::SortOrder,
    after: Option<&[Value]>,
) -> Vec<(String, Value)> {
    let keys = [sluice_search::SortKey::Field(sluice_search::FieldSort {
        field: "addr".into(),
        order,
        missing: sluice_search::SortMissing::Last,
        unmapped_type: None,
        mode: None,
        format: None,
    })];
    let query = Query::match_all();
    let page = sluice_search::SearchPage {
        sort: &keys,
        search_after: after,
        ..sluice_search::SearchPage::new(&query, 20)
    };
    index
        .index
        .search_page(&page)
        .unwrap()
        .hits
        .into_iter()
        .map(|hit| (hit.id, hit.sort[0].to_json()))
        .collect()
}

#[test]
fn ip_fields_sort_in_address_order_and_show_addresses() {
    use sluice_search::SortOrder::{Asc, Desc};
    let index = ip_index();
    let ascending = sorted_by_addr(&index, Asc, None);
    let expected = [
        ("loopback6", json!("::1")),
        ("v4-low", json!("9.0.0.1")),
        ("v4-mid", json!("10.0.0.1")),
        ("mapped", json!("10.0.0.2")),
        ("two", json!("10.0.0.200")),
        ("v4-high", json!("192.168.1.10")),
        ("v6", json!("2001:db8::1")),
        ("none", Value::Null),
    ];
    let expected: Vec<(String, Value)> = expected
        .iter()
        .map(|(id, value)| (id.to_string(), value.clone()))
        .collect();
    assert_eq!(ascending, expected);
    // Descending takes each document's largest address; missing documents stay last.
    let descending = sorted_by_addr(&index, Desc, None);
    assert_eq!(descending[0], ("two".to_string(), json!("2001:db8::ff")));
    assert_eq!(descending[1], ("v6".to_string(), json!("2001:db8::1")));
    assert_eq!(descending.last().unwrap().0, "none");
    // `search_after` takes an address.
    let after = sorted_by_addr(&index, Asc, Some(&[json!("10.0.0.2")]));
    assert_eq!(after.first().unwrap().0, "two");
    assert_eq!(after.len(), 4);
}

fn ip_agg(name: &str, kind: sluice_search::aggs::AggKind) -> sluice_search::aggs::Aggregation {
    sluice_search::aggs::Aggregation {
        name: name.into(),
        kind,
        subs: Vec::new(),
    }
}

#[test]
fn ip_fields_aggregate_with_keys_printed_as_addresses() {
    use sluice_search::aggs::{
        self, AggKind, AggValue, AggregationLimits, BucketKey, BucketOrder, Direction, IpRangeAgg,
        IpRangeSpec, Terms, ValueSource,
    };
    let index = ip_index();
    let targets = [(index.index.clone(), Query::match_all())];
    let terms = |missing: Option<Value>| {
        ip_agg(
            "by_addr",
            AggKind::Terms(Terms {
                source: ValueSource {
                    missing,
                    ..ValueSource::field("addr")
                },
                size: 20,
                shard_size: None,
                min_doc_count: 1,
                shard_min_doc_count: 0,
                order: vec![BucketOrder::Key(Direction::Asc)],
                include: None,
                exclude: None,
                show_term_doc_count_error: false,
            }),
        )
    };
    let ranges = vec![
        IpRangeSpec::from_mask(None, "10.0.0.0/25").unwrap(),
        IpRangeSpec::from_addresses(Some("low".into()), None, Some("10.0.0.2")).unwrap(),
        IpRangeSpec::from_addresses(None, Some("10.0.0.2"), None).unwrap(),
    ];
    let results = aggs::aggregate(
        &targets,
        &[
            terms(Some(json!("0.0.0.0"))),
            ip_agg(
                "distinct",
                AggKind::Cardinality {
                    source: ValueSource::field("addr"),
                    precision_threshold: 100,
                },
            ),
            ip_agg("count", AggKind::ValueCount(ValueSource::field("addr"))),
            ip_agg(
                "ranges",
                AggKind::IpRange(IpRangeAgg::new(ValueSource::field("addr"), ranges, false)),
            ),
        ],
        AggregationLimits::default(),
    )
    .unwrap();
    let AggValue::Buckets(buckets) = &results[0].value else {
        panic!("{results:?}")
    };
    let keys: Vec<(BucketKey, u64)> = buckets
        .buckets
        .iter()
        .map(|b| (b.key.clone(), b.doc_count))
        .collect();
    let key = |text: &str, count| (BucketKey::Str(text.into()), count);
    assert_eq!(
        keys,
        [
            key("::1", 1),
            key("0.0.0.0", 1),
            key("9.0.0.1", 1),
            key("10.0.0.1", 1),
            key("10.0.0.2", 1),
            key("10.0.0.200", 1),
            key("192.168.1.10", 1),
            key("2001:db8::1", 1),
            key("2001:db8::ff", 1),
        ]
    );
    assert!(buckets.buckets.iter().all(|b| b.key_as_string.is_none()));
    assert_eq!(results[1].value, AggValue::Count(8));
    assert_eq!(results[2].value, AggValue::Count(8));
    let AggValue::Buckets(ranges) = &results[3].value else {
        panic!("{results:?}")
    };
    let shown: Vec<(BucketKey, Option<String>, Option<String>, u64)> = ranges
        .buckets
        .iter()
        .map(|b| {
            let range = b.range.clone().unwrap();
            (
                b.key.clone(),
                range.from_as_string,
                range.to_as_string,
                b.doc_count,
            )
        })
        .collect();
    // Sorted by `from` (unbounded first) as Elasticsearch sorts them.
    assert_eq!(
        shown,
        [
            (
                BucketKey::Str("low".into()),
                None,
                Some("10.0.0.2".into()),
                3
            ),
            (
                BucketKey::Str("10.0.0.0/25".into()),
                Some("10.0.0.0".into()),
                Some("10.0.0.128".into()),
                2
            ),
            (
                BucketKey::Str("10.0.0.2-*".into()),
                Some("10.0.0.2".into()),
                None,
                4
            ),
        ]
    );
    // A `missing` that is no address is refused with Elasticsearch's words.
    let error = aggs::aggregate(
        &targets,
        &[terms(Some(json!("nope")))],
        AggregationLimits::default(),
    )
    .unwrap_err();
    assert!(
        error.to_string().contains("is not an IP string literal"),
        "{error}"
    );
}

/// An index whose documents arrive in several refreshes (so several segments).
fn index_in_batches(mapping: Value, batches: &[Vec<(String, Value)>]) -> TestIndex {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::create(
        &dir.path().join("index"),
        "test",
        IndexSettings::default(),
        Mappings::from_json(&mapping).unwrap(),
    )
    .unwrap();
    for batch in batches {
        let requests = batch
            .iter()
            .map(|(id, document)| WriteRequest::Index {
                id: Some(id.clone()),
                source: Arc::from(document.to_string().as_bytes()),
                document: document.clone(),
                condition: Default::default(),
            })
            .collect();
        for outcome in index.write(requests) {
            outcome.unwrap();
        }
        index.refresh().unwrap();
    }
    TestIndex {
        _dir: dir,
        index: Arc::new(index),
    }
}

#[test]
fn collapse_keeps_the_best_document_of_the_best_groups_as_a_model_does() {
    use sluice_search::{FieldSort, SortKey, SortMissing, SortOrder};
    // 60 documents in three segments: user u0..u12 (some without), price pseudo-random.
    let mut batches = vec![Vec::new(), Vec::new(), Vec::new()];
    let mut model: Vec<(String, Option<String>, i64)> = Vec::new();
    for n in 0..60i64 {
        let price = (n * 37) % 101;
        let user = (n % 7 != 3).then(|| format!("u{}", (n * 5) % 13));
        let mut document = json!({"price": price});
        if let Some(user) = &user {
            document["user"] = json!(user);
        }
        batches[(n % 3) as usize].push((format!("d{n}"), document));
        model.push((format!("d{n}"), user, price));
    }
    let index = index_in_batches(
        json!({"properties": {"user": {"type": "keyword"}, "price": {"type": "long"}}}),
        &batches,
    );
    let keys = [SortKey::Field(FieldSort {
        field: "price".into(),
        order: SortOrder::Desc,
        missing: SortMissing::Last,
        unmapped_type: None,
        mode: None,
        format: None,
    })];
    // The model: each group's most expensive document, groups by that price.
    let mut best: std::collections::BTreeMap<Option<String>, (i64, String)> = Default::default();
    for (id, user, price) in &model {
        let entry = best.entry(user.clone()).or_insert((*price, id.clone()));
        if *price > entry.0 {
            *entry = (*price, id.clone());
        }
    }
    let mut expected: Vec<(i64, String, Value)> = best
        .into_iter()
        .map(|(user, (price, id))| (price, id, user.map_or(Value::Null, Value::from)))
        .collect();
    expected.sort_by_key(|entry| std::cmp::Reverse(entry.0));
    for (from, size) in [(0, 3), (2, 5), (0, 20)] {
        let query = Query::match_all();
        let page = sluice_search::SearchPage {
            from,
            sort: &keys,
            collapse: Some("user"),
            ..sluice_search::SearchPage::new(&query, size)
        };
        let found = index.index.search_page(&page).unwrap();
        assert_eq!(found.total, 60);
        let shown: Vec<(String, Value)> = found
            .hits
            .into_iter()
            .map(|hit| (hit.id, hit.collapse.unwrap()))
            .collect();
        let wanted: Vec<(String, Value)> = expected
            .iter()
            .skip(from)
            .take(size)
            .map(|(_, id, user)| (id.clone(), user.clone()))
            .collect();
        assert_eq!(shown, wanted, "from {from} size {size}");
    }
    // A multi-valued document among the matches is refused with Elasticsearch's reason.
    let multi = index_with(
        json!({"properties": {"tags": {"type": "keyword"}}}),
        &[
            ("1", json!({"tags": "a"})),
            ("2", json!({"tags": ["a", "b"]})),
        ],
    );
    let query = Query::match_all();
    let page = sluice_search::SearchPage {
        collapse: Some("tags"),
        ..sluice_search::SearchPage::new(&query, 10)
    };
    let error = multi.index.search_page(&page).unwrap_err().to_string();
    assert!(
        error.contains("the collapse field must be single valued"),
        "{error}"
    );
}

#[test]
fn script_sorts_order_by_the_scripts_number() {
    use sluice_search::{ScriptSort, SortKey, SortOrder};
    let index = index_with(
        json!({"properties": {"price": {"type": "double"}, "qty": {"type": "long"}}}),
        &[
            ("a", json!({"price": 2.5, "qty": 4})),
            ("b", json!({"price": 11.0, "qty": 1})),
            ("c", json!({"price": 1.0, "qty": 30})),
        ],
    );
    let script =
        sluice_script::Script::compile("doc['price'].value * doc['qty'].value * params.factor")
            .unwrap();
    let keys = [SortKey::Script(ScriptSort {
        script: Arc::new(script),
        params: sluice_script::Value::from_json(&json!({"factor": 2})),
        order: SortOrder::Desc,
        kind: ScriptSortType::Number,
    })];
    let query = Query::match_all();
    let page = sluice_search::SearchPage {
        sort: &keys,
        ..sluice_search::SearchPage::new(&query, 10)
    };
    let found = index.index.search_page(&page).unwrap();
    let shown: Vec<(String, Value)> = found
        .hits
        .into_iter()
        .map(|hit| (hit.id, hit.sort[0].to_json()))
        .collect();
    assert_eq!(
        shown,
        [
            ("c".to_string(), json!(60.0)),
            ("b".to_string(), json!(22.0)),
            ("a".to_string(), json!(20.0)),
        ]
    );
    // A document without the field fails the script as Painless does.
    let failing = sluice_script::Script::compile("doc['missing_here'].value").unwrap();
    let keys = [SortKey::Script(ScriptSort {
        script: Arc::new(failing),
        params: sluice_script::Value::from_json(&json!({})),
        order: SortOrder::Asc,
        kind: ScriptSortType::Number,
    })];
    let page = sluice_search::SearchPage {
        sort: &keys,
        ..sluice_search::SearchPage::new(&query, 10)
    };
    let error = index.index.search_page(&page).unwrap_err().to_string();
    assert!(
        error.contains("No field found for [missing_here]"),
        "{error}"
    );
}

#[test]
fn string_script_sorts_order_by_the_scripts_string_across_segments() {
    use sluice_search::{FieldSort, ScriptSort, SortKey, SortMissing, SortOrder};
    let index = index_with(
        json!({"properties": {"name": {"type": "keyword"}, "n": {"type": "long"}}}),
        &[
            ("a", json!({"name": "pear", "n": 2})),
            ("b", json!({"name": "apple", "n": 1})),
            ("c", json!({"name": "fig", "n": 3})),
        ],
    );
    // A second segment, so segments merge by value.
    common::write(
        &index.index,
        &[
            ("d", json!({"name": "apple", "n": 5})),
            ("e", json!({"name": "app", "n": 4})),
        ],
    )
    .unwrap();
    index.index.refresh().unwrap();
    let script = |source: &str, order| {
        SortKey::Script(ScriptSort {
            script: Arc::new(sluice_script::Script::compile(source).unwrap()),
            params: sluice_script::Value::from_json(&json!({"suffix": "!"})),
            order,
            kind: ScriptSortType::String,
        })
    };
    let by_n_desc = SortKey::Field(FieldSort {
        field: "n".into(),
        order: SortOrder::Desc,
        missing: SortMissing::Last,
        unmapped_type: None,
        mode: None,
        format: None,
    });
    let query = Query::match_all();
    let sorted = |keys: &[SortKey], after: Option<&[Value]>| {
        let page = sluice_search::SearchPage {
            sort: keys,
            search_after: after,
            ..sluice_search::SearchPage::new(&query, 10)
        };
        index.index.search_page(&page).map(|found| {
            found
                .hits
                .into_iter()
                .map(|hit| {
                    let values: Vec<Value> = hit.sort.iter().map(|v| v.to_json()).collect();
                    (hit.id, values)
                })
                .collect::<Vec<_>>()
        })
    };
    let asc = [
        script("doc['name'].value + params.suffix", SortOrder::Asc),
        by_n_desc.clone(),
    ];
    assert_eq!(
        sorted(&asc, None).unwrap(),
        [
            ("e".to_string(), vec![json!("app!"), json!(4)]),
            ("d".to_string(), vec![json!("apple!"), json!(5)]),
            ("b".to_string(), vec![json!("apple!"), json!(1)]),
            ("c".to_string(), vec![json!("fig!"), json!(3)]),
            ("a".to_string(), vec![json!("pear!"), json!(2)]),
        ]
    );
    // `search_after` the first apple: the other apple (lower `n`) and what follows.
    let after = [json!("apple!"), json!(5)];
    let ids: Vec<String> = sorted(&asc, Some(&after))
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, ["b", "c", "a"]);
    // Descending: a string before its prefixes, ties still by `n` descending.
    let desc = [
        script("doc['name'].value", SortOrder::Desc),
        by_n_desc.clone(),
    ];
    let ids: Vec<String> = sorted(&desc, None)
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, ["a", "c", "d", "b", "e"]);
    let after = [json!("apple"), json!(1)];
    let ids: Vec<String> = sorted(&desc, Some(&after))
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, ["e"]);
    // A number where a string is due fails the cast, as Painless's `StringSortScript` does.
    let error = sorted(&[script("doc['n'].value", SortOrder::Asc)], None)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("Cannot cast java.lang.Long to java.lang.String"),
        "{error}"
    );
}
