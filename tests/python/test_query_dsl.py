"""The Query DSL, analysis and scores through the real `elasticsearch` 9.x and `opensearch-py`
3.x clients against the real binary: every query clause of issue 8 item 2 with its options,
`_analyze`, `matched_queries`, BM25 scores as Elasticsearch computes them, errors in
Elasticsearch's shape, and the searches of the scenarios (a `match` on a postcode, a `bool` with
two `match` clauses and a `range` filter, `message:bye` over `example-*`)."""

import json
import math
import urllib.error
import urllib.request

import pytest
from elasticsearch import BadRequestError, Elasticsearch
from opensearchpy import OpenSearch, RequestError

from conftest import unique


LICENCES = [
    {"name": "Ann Smith", "licenceId": "L1", "postcode": "SW1A 1AA", "penaltyPoints": 0},
    {"name": "Bob Jones", "licenceId": "L2", "postcode": "SW1A 2BB", "penaltyPoints": 3},
    {"name": "Cat Smith", "licenceId": "L3", "postcode": "EC1A 1BB", "penaltyPoints": 6},
    {"name": "Dan Brown", "licenceId": "L4", "postcode": "SW1A 1AA", "penaltyPoints": 9},
]


def load(client, index, documents, **create):
    if create:
        client.indices.create(index=index, **create)
    for i, document in enumerate(documents):
        client.index(index=index, id=str(i + 1), document=document)
    client.indices.refresh(index=index)


def ids(response):
    return sorted(hit["_id"] for hit in response["hits"]["hits"])


def search(es, index, query, **kwargs):
    return es.search(index=index, query=query, **kwargs)


@pytest.fixture
def licences(es):
    index = unique("licence")
    load(es, index, LICENCES)
    return index


def test_scenario_licence_searches(es, licences):
    # "a match on postcode"
    found = search(es, licences, {"match": {"postcode": "SW1A 1AA"}})
    assert ids(found) == ["1", "2", "4"]
    assert sorted(h["_id"] for h in found["hits"]["hits"][:2]) == ["1", "4"]
    # "a bool with two match clauses and a range filter (points >= 3)"
    found = search(
        es,
        licences,
        {
            "bool": {
                "must": [{"match": {"postcode": "SW1A"}}, {"match": {"name": "smith"}}],
                "filter": [{"range": {"penaltyPoints": {"gte": 3}}}],
            }
        },
    )
    assert ids(found) == []
    found = search(
        es,
        licences,
        {
            "bool": {
                "must": [{"match": {"postcode": "SW1A"}}, {"match": {"name": "jones brown"}}],
                "filter": [{"range": {"penaltyPoints": {"gte": 3}}}],
            }
        },
    )
    assert ids(found) == ["2", "4"]


def test_match_options(es):
    index = unique("match")
    load(es, index, [{"t": "red green blue"}, {"t": "red green"}, {"t": "red"}, {"t": "the"}, {"n": 5}])
    assert ids(search(es, index, {"match": {"t": {"query": "red green", "operator": "and"}}})) == ["1", "2"]
    assert ids(search(es, index, {"match": {"t": {"query": "red green blue", "minimum_should_match": "2"}}})) == ["1", "2"]
    assert ids(search(es, index, {"match": {"t": {"query": "gren", "fuzziness": "AUTO"}}})) == ["1", "2"]
    assert ids(search(es, index, {"match": {"t": {"query": "gren", "fuzziness": 0}}})) == []
    assert ids(search(es, index, {"match": {"n": {"query": "five", "lenient": True}}})) == []
    with pytest.raises(BadRequestError):
        search(es, index, {"match": {"n": "five"}})
    # Only stop words under `english`: zero_terms_query decides.
    english = unique("english")
    load(es, english, [{"t": "the cats"}], mappings={"properties": {"t": {"type": "text", "analyzer": "english"}}})
    assert ids(search(es, english, {"match": {"t": "cat"}})) == ["1"]
    assert ids(search(es, english, {"match": {"t": {"query": "the", "zero_terms_query": "all"}}})) == ["1"]
    assert ids(search(es, english, {"match": {"t": {"query": "the"}}})) == []


def test_phrases_and_prefixes(es):
    index = unique("phrase")
    load(es, index, [{"t": "quick brown fox"}, {"t": "brown quick fox"}, {"t": "quick fox"}])
    assert ids(search(es, index, {"match_phrase": {"t": "quick brown"}})) == ["1"]
    assert ids(search(es, index, {"match_phrase": {"t": {"query": "quick fox", "slop": 1}}})) == ["1", "2", "3"]
    assert ids(search(es, index, {"match_phrase": {"t": {"query": "fox quick", "slop": 2}}})) == ["2", "3"]
    assert ids(search(es, index, {"match_phrase_prefix": {"t": "quick bro"}})) == ["1"]
    # With slop the prefix's terms stand in sloppy phrases, as Lucene's MultiPhraseQuery.
    assert ids(search(es, index, {"match_phrase_prefix": {"t": {"query": "quick fo", "slop": 1}}})) == ["1", "2", "3"]
    assert ids(search(es, index, {"match_phrase_prefix": {"t": {"query": "fox qui", "slop": 2}}})) == ["2", "3"]
    assert ids(search(es, index, {"match_bool_prefix": {"t": "fox bro"}})) == ["1", "2", "3"]
    assert ids(search(es, index, {"match_bool_prefix": {"t": {"query": "fox bro", "operator": "and"}}})) == ["1", "2"]


def test_multi_match(es):
    index = unique("multi")
    load(
        es,
        index,
        [
            {"title": "quick fox", "body": "lazy dog", "user": {"first": "ada"}},
            {"title": "lazy cat", "body": "quick brown fox", "user": {"first": "grace"}},
        ],
    )
    best = search(es, index, {"multi_match": {"query": "quick fox", "fields": ["title^3", "body"]}})
    assert [h["_id"] for h in best["hits"]["hits"]] == ["1", "2"]
    assert ids(search(es, index, {"multi_match": {"query": "grace", "fields": ["user.*"]}})) == ["2"]
    for kind in ["best_fields", "most_fields", "cross_fields", "phrase", "phrase_prefix", "bool_prefix"]:
        found = search(es, index, {"multi_match": {"query": "quick", "fields": ["title", "body"], "type": kind, "tie_breaker": 0.3}})
        assert ids(found) == ["1", "2"], kind
    assert ids(search(es, index, {"multi_match": {"query": "lazy dog", "fields": ["title", "body"], "type": "cross_fields", "operator": "and"}})) == ["1"]


def test_term_level_queries(es):
    index = unique("terms")
    load(
        es,
        index,
        [
            {"user": "Kimchy", "host": "web-01", "age": 30, "at": "2026-11-01T10:00:00Z", "price": 1.5, "ok": True},
            {"user": "ann", "host": "web-02", "age": 40, "at": "2026-11-20T10:00:00Z", "price": 2.25, "ok": False},
            {"user": "bob", "host": "db-01", "age": 50, "at": "2025-01-01T00:00:00Z"},
        ],
    )
    assert ids(search(es, index, {"term": {"user.keyword": "Kimchy"}})) == ["1"]
    assert ids(search(es, index, {"term": {"user.keyword": {"value": "kimchy", "case_insensitive": True}}})) == ["1"]
    assert ids(search(es, index, {"term": {"age": "40"}})) == ["2"]
    assert ids(search(es, index, {"terms": {"host.keyword": ["web-01", "db-01"]}})) == ["1", "3"]
    assert ids(search(es, index, {"ids": {"values": ["1", "3"]}})) == ["1", "3"]
    assert ids(search(es, index, {"range": {"age": {"gt": 30, "lte": 50}}})) == ["2", "3"]
    assert ids(search(es, index, {"range": {"price": {"gte": "2"}}})) == ["2"]
    assert ids(search(es, index, {"range": {"host.keyword": {"gte": "web"}}})) == ["1", "2"]
    assert ids(search(es, index, {"range": {"at": {"gte": "2026-11-01||/M", "lt": "2026-12-01"}}})) == ["1", "2"]
    assert ids(search(es, index, {"range": {"at": {"gte": "now-1y/d"}}})) == ["1", "2"]
    assert ids(search(es, index, {"range": {"at": {"gte": "01/11/2026", "format": "dd/MM/yyyy", "time_zone": "+01:00"}}})) == ["1", "2"]
    # A named time zone, as Kibana sends it: midnight in Honolulu is 10:00 UTC.
    honolulu = {"gte": "2026-11-01T00:00:00", "lt": "2026-11-01T01:00:00", "time_zone": "Pacific/Honolulu"}
    assert ids(search(es, index, {"range": {"at": honolulu}})) == ["1"]
    in_honolulu = {"query": 'at:["2026-11-01T00:00:00" TO "2026-11-01T01:00:00"}', "time_zone": "Pacific/Honolulu"}
    assert ids(search(es, index, {"query_string": in_honolulu})) == ["1"]
    assert ids(search(es, index, {"exists": {"field": "price"}})) == ["1", "2"]
    assert ids(search(es, index, {"prefix": {"host.keyword": "web"}})) == ["1", "2"]
    assert ids(search(es, index, {"prefix": {"host.keyword": {"value": "WEB", "case_insensitive": True}}})) == ["1", "2"]
    assert ids(search(es, index, {"wildcard": {"host.keyword": {"value": "*-01"}}})) == ["1", "3"]
    assert ids(search(es, index, {"regexp": {"host.keyword": {"value": "web-0[2-9]"}}})) == ["2"]
    assert ids(search(es, index, {"fuzzy": {"user.keyword": {"value": "bib"}}})) == ["3"]
    assert ids(search(es, index, {"term": {"unmapped": "x"}})) == []


def test_compound_queries(es):
    index = unique("compound")
    load(es, index, [{"t": "apple banana", "n": 1}, {"t": "apple", "n": 5}, {"t": "banana", "n": 10}])
    assert ids(search(es, index, {"bool": {"must_not": [{"match": {"t": "apple"}}]}})) == ["3"]
    assert ids(search(es, index, {"bool": {"should": [{"match": {"t": "apple"}}, {"match": {"t": "banana"}}], "minimum_should_match": 2}})) == ["1"]
    nested = {"bool": {"must": [{"bool": {"should": [{"bool": {"filter": {"term": {"n": 5}}}}]}}]}}
    assert ids(search(es, index, nested)) == ["2"]
    scores = search(es, index, {"constant_score": {"filter": {"match": {"t": "apple"}}, "boost": 2.5}})
    assert {h["_score"] for h in scores["hits"]["hits"]} == {2.5}
    found = search(es, index, {"boosting": {"positive": {"match_all": {}}, "negative": {"match": {"t": "banana"}}, "negative_boost": 0.5}})
    assert found["hits"]["hits"][0]["_id"] == "2"
    found = search(es, index, {"dis_max": {"queries": [{"match": {"t": "apple"}}, {"match": {"t": "banana"}}], "tie_breaker": 0.7}})
    assert ids(found) == ["1", "2", "3"]
    found = search(
        es,
        index,
        {
            "function_score": {
                "query": {"match_all": {}},
                "functions": [
                    {"field_value_factor": {"field": "n", "factor": 2}},
                    {"filter": {"match": {"t": "apple"}}, "weight": 10},
                ],
                "score_mode": "sum",
                "boost_mode": "replace",
            }
        },
    )
    assert {h["_id"]: h["_score"] for h in found["hits"]["hits"]} == {"1": 12.0, "2": 20.0, "3": 20.0}
    found = search(es, index, {"function_score": {"gauss": {"n": {"origin": 0, "scale": 5}}, "boost_mode": "replace"}})
    assert [h["_id"] for h in found["hits"]["hits"]] == ["1", "2", "3"]
    assert math.isclose(found["hits"]["hits"][1]["_score"], 0.5, rel_tol=1e-5)


def test_query_string_and_simple_query_string(es):
    index = unique("qs")
    load(
        es,
        index,
        [
            {"message": "hello world", "status": 200, "user": {"name": "ada"}},
            {"message": "bye world", "status": 500, "user": {"name": "grace"}},
            {"message": "bye now", "status": 404},
        ],
    )
    assert ids(search(es, index, {"query_string": {"query": "message:bye"}})) == ["2", "3"]
    assert ids(search(es, index, {"query_string": {"query": "message:bye AND NOT status:500"}})) == ["3"]
    assert ids(search(es, index, {"query_string": {"query": "bye -now", "default_field": "message", "default_operator": "AND"}})) == ["2"]
    assert ids(search(es, index, {"query_string": {"query": "status:[400 TO *]"}})) == ["2", "3"]
    assert ids(search(es, index, {"query_string": {"query": "status:>=404 AND status:<500"}})) == ["3"]
    assert ids(search(es, index, {"query_string": {"query": "user.*:grace"}})) == ["2"]
    assert ids(search(es, index, {"query_string": {"query": "_exists_:user"}})) == ["1", "2"]
    assert ids(search(es, index, {"query_string": {"query": "message.keyword:hello\\ world"}})) == ["1"]
    assert ids(search(es, index, {"query_string": {"query": "\"bye world\""}})) == ["2"]
    assert ids(search(es, index, {"query_string": {"query": "wor*", "fields": ["message"], "analyze_wildcard": True}})) == ["1", "2"]
    assert ids(search(es, index, {"query_string": {"query": "(hello OR now) AND world"}})) == ["1"]
    assert ids(search(es, index, {"simple_query_string": {"query": "bye + -world", "fields": ["message"]}})) == ["3"]
    assert ids(search(es, index, {"simple_query_string": {"query": "\"hello world\" | now", "fields": ["message"]}})) == ["1", "3"]
    with pytest.raises(BadRequestError) as raised:
        search(es, index, {"query_string": {"query": "message:(bye"}})
    assert raised.value.status_code == 400
    assert raised.value.body["error"]["type"] == "query_shard_exception"


def test_quote_field_suffix_searches_quoted_text_in_the_exact_sub_field(es):
    """Elasticsearch's example: `body` is analyzed loosely, `body.exact` keeps the text as
    written; quoted text goes to `body.exact`, the rest to `body`, and a field without the
    sub-field is searched as itself."""
    index = unique("quote-suffix")
    load(
        es,
        index,
        [{"body": "Ski resort", "title": "Ski"}, {"body": "ski lessons", "title": "ski"}],
        mappings={"properties": {
            "body": {"type": "text", "fields": {"exact": {"type": "text", "analyzer": "whitespace"}}},
            "title": {"type": "text"},
        }},
    )
    loose = {"query": "\"Ski\"", "fields": ["body"]}
    assert ids(search(es, index, {"query_string": loose})) == ["1", "2"]
    exact = {**loose, "quote_field_suffix": ".exact"}
    assert ids(search(es, index, {"query_string": exact})) == ["1"]
    assert ids(search(es, index, {"simple_query_string": exact})) == ["1"]
    # Unquoted terms keep the field; a field without `.exact` is searched as itself.
    assert ids(search(es, index, {"query_string": {**exact, "query": "Ski"}})) == ["1", "2"]
    assert ids(search(es, index, {"query_string": {"query": "title:\"Ski\"", "quote_field_suffix": ".exact"}})) == ["1", "2"]
    assert ids(search(es, index, {"query_string": {"query": "body:\"Ski\"", "quote_field_suffix": ".exact"}})) == ["1"]


def test_range_on_text_compares_the_indexed_terms(es):
    """As in Elasticsearch: the bounds, as written, against the terms the text field indexed
    (lowercased by the standard analyzer), any of a document's terms matching."""
    index = unique("text-range")
    load(es, index, [{"fruit": "Apple"}, {"fruit": "Melon"}, {"fruit": "Zucchini"}, {"fruit": "kiwi melon"}])
    assert ids(search(es, index, {"range": {"fruit": {"gte": "m", "lt": "z"}}})) == ["2", "4"]
    assert ids(search(es, index, {"range": {"fruit": {"gt": "melon"}}})) == ["3"]
    assert ids(search(es, index, {"range": {"fruit": {"lte": "kiwi"}}})) == ["1", "4"]
    # Bounds are not analyzed: upper-case letters sort before every lower-case term.
    assert ids(search(es, index, {"range": {"fruit": {"lt": "Z"}}})) == []
    assert search(es, index, {"range": {"fruit": {"gte": "a"}}})["hits"]["total"]["value"] == 4


def test_scenario_message_bye_over_a_pattern(es):
    suffix = unique("s")
    for hour, message in [("13", "hello world 1"), ("14", "bye world! 42")]:
        es.index(index=f"example-{suffix}-2026-12-01-{hour}", id="1", document={"message": message}, refresh=True)
    found = es.search(index=f"example-{suffix}-*", query={"query_string": {"query": "message:bye"}})
    assert [h["_index"] for h in found["hits"]["hits"]] == [f"example-{suffix}-2026-12-01-14"]
    assert es.count(index=f"example-{suffix}-*", query={"query_string": {"query": "message:hello"}})["count"] == 1


def test_named_queries_show_in_hits(es):
    index = unique("named")
    load(es, index, [{"a": "x", "b": "y"}, {"a": "x"}])
    found = search(
        es,
        index,
        {"bool": {"should": [{"match": {"a": {"query": "x", "_name": "on_a"}}}, {"term": {"b.keyword": {"value": "y", "_name": "on_b"}}}]}},
    )
    matched = {h["_id"]: sorted(h["matched_queries"]) for h in found["hits"]["hits"]}
    assert matched == {"1": ["on_a", "on_b"], "2": ["on_a"]}


def test_scores_are_elasticsearch_bm25(es):
    index = unique("bm25")
    load(es, index, [{"title": "fox"}, {"title": "quick brown fox jumps"}, {"other": "fox"}])
    found = search(es, index, {"match": {"title": "fox"}})
    scores = {h["_id"]: h["_score"] for h in found["hits"]["hits"]}
    # docCount 2 (the third document has no title), df 2, avgdl 2.5.
    idf = math.log(1 + (2 - 2 + 0.5) / (2 + 0.5))
    expected = {
        "1": 2.2 * idf * 1 / (1 + 1.2 * (1 - 0.75 + 0.75 * 1 / 2.5)),
        "2": 2.2 * idf * 1 / (1 + 1.2 * (1 - 0.75 + 0.75 * 4 / 2.5)),
    }
    assert scores.keys() == expected.keys()
    for doc, score in expected.items():
        assert math.isclose(scores[doc], score, rel_tol=1e-4), (doc, scores[doc], score)


def test_analyzers_in_mappings_and_analyze(es):
    index = unique("analyze")
    es.indices.create(
        index=index,
        mappings={"properties": {"body": {"type": "text", "analyzer": "english"}, "code": {"type": "text", "analyzer": "whitespace"}}},
    )
    tokens = es.indices.analyze(analyzer="standard", text="The QUICK Brown-Foxes!")["tokens"]
    assert [t["token"] for t in tokens] == ["the", "quick", "brown", "foxes"]
    assert tokens[1] == {"token": "quick", "start_offset": 4, "end_offset": 9, "type": "<ALPHANUM>", "position": 1}
    tokens = es.indices.analyze(index=index, field="body", text="The runners' shoes")["tokens"]
    assert [(t["token"], t["position"]) for t in tokens] == [("runner", 1), ("shoe", 2)]
    tokens = es.indices.analyze(index=index, field="code", text="A-1 b")["tokens"]
    assert [t["token"] for t in tokens] == ["A-1", "b"]
    for analyzer, expected in [("simple", ["it", "s", "fast"]), ("whitespace", ["It's", "2", "FAST"]), ("keyword", ["It's 2 FAST"]), ("stop", ["s", "fast"])]:
        tokens = es.indices.analyze(analyzer=analyzer, text="It's 2 FAST")["tokens"]
        assert [t["token"] for t in tokens] == expected, analyzer
    with pytest.raises(BadRequestError) as raised:
        es.indices.analyze(analyzer="klingon", text="x")
    assert raised.value.body["error"]["type"] == "illegal_argument_exception"
    with pytest.raises(BadRequestError) as raised:
        es.indices.create(index=unique("bad"), mappings={"properties": {"t": {"type": "text", "analyzer": "klingon"}}})
    assert raised.value.body["error"]["type"] == "mapper_parsing_exception"


def test_refused_queries_name_what_is_wrong(es, licences, shared_sluice):
    cases = [
        ({"match": {"postcode": {"query": "x", "operater": "and"}}}, "parsing_exception", "[match] query does not support [operater]"),
        ({"bogus": {}}, "parsing_exception", "unknown query [bogus]"),
        ({"has_child": {"type": "a", "query": {"match_all": {}}}}, "parsing_exception", "[has_child] query is not supported by Sluice yet"),
    ]
    for query, kind, reason in cases:
        with pytest.raises(BadRequestError) as raised:
            search(es, licences, query)
        assert raised.value.status_code == 400
        assert raised.value.body["error"]["type"] == kind
        assert reason in raised.value.body["error"]["reason"]
    # A bool nested 10,000 deep (written as text: Python's json cannot encode it) is refused.
    depth = 10_000
    body = '{"query":' + '{"bool":{"must":[' * depth + '{"match_all":{}}' + "]}}" * depth + "}"
    request = urllib.request.Request(
        f"{shared_sluice.es_url}/{licences}/_search",
        data=body.encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=30)
    assert raised.value.code == 400
    assert json.loads(raised.value.read())["status"] == 400


def test_opensearch_client_queries(opensearch):
    index = unique("os-licence")
    for i, document in enumerate(LICENCES):
        opensearch.index(index=index, id=str(i + 1), body=document)
    opensearch.indices.refresh(index=index)
    found = opensearch.search(index=index, body={"query": {"match": {"postcode": {"query": "EC1A", "_name": "pc"}}}})
    assert [h["_id"] for h in found["hits"]["hits"]] == ["3"]
    assert found["hits"]["hits"][0]["matched_queries"] == ["pc"]
    found = opensearch.search(index=index, body={"query": {"query_string": {"query": "name:smith AND penaltyPoints:>=3"}}})
    assert [h["_id"] for h in found["hits"]["hits"]] == ["3"]
    analyzed = opensearch.indices.analyze(body={"analyzer": "english", "text": "running"})
    assert [t["token"] for t in analyzed["tokens"]] == ["run"]
    with pytest.raises(RequestError) as raised:
        opensearch.search(index=index, body={"query": {"match": {"name": {"query": "x", "slop": 1}}}})
    assert raised.value.status_code == 400
    assert raised.value.error == "parsing_exception"


def test_q_in_the_url_is_lucene_syntax(es, licences):
    # Kibana's and curl users' `q=`: Lucene syntax, `df`, `default_operator`, over patterns too.
    found = es.search(index=licences, q="name:smith AND penaltyPoints:>=3")
    assert ids(found) == ["3"]
    assert ids(es.search(index=licences, q="smith", df="name")) == ["1", "3"]
    assert ids(es.search(index=licences, q="ann smith", df="name", default_operator="AND")) == ["1"]
    assert es.count(index=licences, q="postcode:SW1A")["count"] == 3
    # `q` wins over the body's query, as in Elasticsearch.
    found = es.search(index=licences, q="name:dan", query={"match": {"name": "ann"}})
    assert ids(found) == ["4"]
    with pytest.raises(BadRequestError) as raised:
        es.search(index=licences, q="name:(smith")
    assert raised.value.body["error"]["type"] == "query_shard_exception"
    assert "Cannot parse 'name:(smith'" in raised.value.body["error"]["caused_by"]["reason"]


def test_alias_filters_select_without_changing_scores(es, licences):
    alias = unique("smiths")
    es.indices.put_alias(index=licences, name=alias, filter={"match": {"name": "smith"}})
    query = {"match": {"postcode": "SW1A 1AA"}}
    direct = {h["_id"]: h["_score"] for h in search(es, licences, query)["hits"]["hits"]}
    through = {h["_id"]: h["_score"] for h in search(es, alias, query)["hits"]["hits"]}
    assert direct.keys() == {"1", "2", "4"} and through.keys() == {"1"}
    for doc, score in through.items():
        assert math.isclose(score, direct[doc], rel_tol=1e-6)
    assert [h["_score"] for h in search(es, alias, {"match_all": {}})["hits"]["hits"]] == [1.0, 1.0]


def test_fuzzy_scores_are_lucenes(es):
    index = unique("fuzzy")
    load(es, index, [{"t": "quick brown"}, {"t": "quack"}, {"t": "slow"}])
    found = search(es, index, {"match": {"t": {"query": "quikc", "fuzziness": "AUTO"}}})
    assert ids(found) == ["1"]
    # One expansion ("quick", df 1 of 3 documents, length 2 of average 4/3) times its
    # similarity, 1 - 1/5.
    idf = math.log(1 + (3 - 1 + 0.5) / (1 + 0.5))
    expected = 0.8 * 2.2 * idf / (1 + 1.2 * (1 - 0.75 + 0.75 * 2 / (4 / 3)))
    assert math.isclose(found["hits"]["hits"][0]["_score"], expected, rel_tol=1e-4)
    assert ids(search(es, index, {"fuzzy": {"t": {"value": "quick", "max_expansions": 1}}})) == ["1"]
    assert ids(search(es, index, {"fuzzy": {"t": {"value": "quick"}}})) == ["1", "2"]


def test_wildcards_and_prefixes_read_only_their_own_field(es):
    # A pattern's literal prefix bounds the dictionary range read; values of other fields that
    # share the prefix, and values just past it, must not match.
    index = unique("literal-prefix")
    load(es, index, [
        {"a": "pre-1", "b": "pre-2", "t": "prefix words"},
        {"a": "pre", "b": "pre-3", "t": "present"},
        {"a": "prf-1", "b": "x", "t": "pressed"},
        {"a": "pre*x", "b": "pre?", "t": "other"},
    ])
    assert ids(search(es, index, {"wildcard": {"a.keyword": {"value": "pre-*"}}})) == ["1"]
    assert ids(search(es, index, {"wildcard": {"a.keyword": {"value": "pre*"}}})) == ["1", "2", "4"]
    assert ids(search(es, index, {"wildcard": {"a.keyword": {"value": "pre\\**"}}})) == ["4"]
    assert ids(search(es, index, {"wildcard": {"b.keyword": {"value": "pre-?"}}})) == ["1", "2"]
    assert ids(search(es, index, {"prefix": {"b.keyword": "pre"}})) == ["1", "2", "4"]
    assert ids(search(es, index, {"prefix": {"t": "pre"}})) == ["1", "2", "3"]
    assert ids(search(es, index, {"query_string": {"query": "a.keyword:pr*1"}})) == ["1", "3"]
