"""Sorts and aggregations on `ip` fields, the `ip_range` aggregation, `collapse` with
`inner_hits`, and `bucket_script`/`bucket_selector` with script `params` (issue 8 items 4, 5
and 7, issue 9 item 2) through the real `elasticsearch` 9.x and `opensearch-py` 3.x clients
against the real binary: answers in Elasticsearch's shapes, and its 400s."""

import pytest
from elasticsearch import BadRequestError
from opensearchpy.exceptions import RequestError

from conftest import unique

ADDRESSES = ["192.168.1.10", "9.0.0.1", "10.0.0.1", "2001:db8::1", "::ffff:10.0.0.2", "::1"]


@pytest.fixture(params=["es", "opensearch"])
def client(request):
    return request.getfixturevalue(request.param)


def refused(client):
    """The exception a 400 raises in this client."""
    return BadRequestError if client.__class__.__module__.startswith("elasticsearch") else RequestError


def error_body(raised):
    value = raised.value
    return value.body if hasattr(value, "body") else value.info


@pytest.fixture
def hosts(client):
    index = unique("hosts")
    client.indices.create(index=index, body={"mappings": {"properties": {
        "addr": {"type": "ip"}, "user": {"type": "keyword"}, "price": {"type": "double"},
        "n": {"type": "long"}, "message": {"type": "text"}, "tags": {"type": "keyword"}}}})
    for i, addr in enumerate(ADDRESSES):
        client.index(index=index, id=str(i + 1), body={
            "addr": addr, "user": ["ann", "bob", "ann", "cid", "bob", "ann"][i],
            "price": [10.0, 20.0, 30.0, 5.0, 15.0, 25.0][i], "n": i + 1,
            "message": "hello", "tags": ["x", "y"] if i == 0 else "x"})
    client.index(index=index, id="7", body={"user": "dan", "price": 1.0, "n": 7})
    client.indices.refresh(index=index)
    return index


def test_sort_on_ip_orders_addresses_as_elasticsearch(client, hosts):
    found = client.search(index=hosts, body={"sort": [{"addr": "asc"}], "size": 10})
    assert [hit["sort"][0] for hit in found["hits"]["hits"]] == [
        "::1", "9.0.0.1", "10.0.0.1", "10.0.0.2", "192.168.1.10", "2001:db8::1", None]
    page = client.search(index=hosts, body={"sort": [{"addr": "desc"}], "size": 2,
                                             "search_after": ["10.0.0.2"]})
    assert [hit["sort"][0] for hit in page["hits"]["hits"]] == ["10.0.0.1", "9.0.0.1"]


def test_aggregations_on_ip_print_addresses(client, hosts):
    found = client.search(index=hosts, body={"size": 0, "aggs": {
        "by_addr": {"terms": {"field": "addr", "order": {"_key": "asc"}, "size": 10}},
        "distinct": {"cardinality": {"field": "addr"}},
        "count": {"value_count": {"field": "addr"}},
        "without": {"missing": {"field": "addr"}},
        "pages": {"composite": {"sources": [{"a": {"terms": {"field": "addr"}}}], "size": 4}},
        "top": {"top_hits": {"size": 1, "sort": [{"addr": "desc"}], "_source": ["addr"]}},
    }})
    aggs = found["aggregations"]
    assert [(b["key"], b["doc_count"]) for b in aggs["by_addr"]["buckets"]] == [
        ("::1", 1), ("9.0.0.1", 1), ("10.0.0.1", 1), ("10.0.0.2", 1), ("192.168.1.10", 1),
        ("2001:db8::1", 1)]
    assert all("key_as_string" not in b for b in aggs["by_addr"]["buckets"])
    assert aggs["distinct"]["value"] == 6
    assert aggs["count"]["value"] == 6
    assert aggs["without"]["doc_count"] == 1
    assert [b["key"] for b in aggs["pages"]["buckets"]] == [
        {"a": "::1"}, {"a": "9.0.0.1"}, {"a": "10.0.0.1"}, {"a": "10.0.0.2"}]
    assert aggs["pages"]["after_key"] == {"a": "10.0.0.2"}
    rest = client.search(index=hosts, body={"size": 0, "aggs": {"pages": {"composite": {
        "sources": [{"a": {"terms": {"field": "addr"}}}], "after": {"a": "10.0.0.2"}}}}})
    assert [b["key"]["a"] for b in rest["aggregations"]["pages"]["buckets"]] == [
        "192.168.1.10", "2001:db8::1"]
    assert aggs["top"]["hits"]["hits"][0]["_source"] == {"addr": "2001:db8::1"}
    with pytest.raises(refused(client)) as error:
        client.search(index=hosts, body={"size": 0, "aggs": {"a": {"avg": {"field": "addr"}}}})
    assert "of type [ip] is not supported for aggregation [avg]" in str(error_body(error))


def test_ip_range_buckets_as_elasticsearch_prints_them(client, hosts):
    found = client.search(index=hosts, body={"size": 0, "aggs": {"ranges": {"ip_range": {
        "field": "addr",
        "ranges": [{"to": "10.0.0.2"}, {"from": "10.0.0.2"}, {"mask": "10.0.0.0/25"},
                   {"key": "v6", "mask": "2001:db8::/32"}]},
        "aggs": {"spend": {"sum": {"field": "price"}}}}}})
    buckets = found["aggregations"]["ranges"]["buckets"]
    assert [(b["key"], b.get("from"), b.get("to"), b["doc_count"]) for b in buckets] == [
        ("*-10.0.0.2", None, "10.0.0.2", 3),
        ("10.0.0.0/25", "10.0.0.0", "10.0.0.128", 2),
        ("10.0.0.2-*", "10.0.0.2", None, 3),
        ("v6", "2001:db8::", "2001:db9::", 1),
    ]
    assert buckets[1]["spend"]["value"] == 45.0
    keyed = client.search(index=hosts, body={"size": 0, "aggs": {"ranges": {"ip_range": {
        "field": "addr", "keyed": True, "ranges": [{"key": "private", "mask": "192.168.0.0/16"}]}}}})
    assert keyed["aggregations"]["ranges"]["buckets"] == {
        "private": {"from": "192.168.0.0", "to": "192.169.0.0", "doc_count": 1}}
    with pytest.raises(refused(client)) as error:
        client.search(index=hosts, body={"size": 0, "aggs": {"r": {"ip_range": {
            "field": "addr", "ranges": [{"mask": "10.0.0.0/40"}]}}}})
    assert "Expected [ip/prefix] but was [10.0.0.0/40]" in str(error_body(error))


def test_collapse_keeps_the_best_hit_per_value(client, hosts):
    found = client.search(index=hosts, body={
        "query": {"match_all": {}}, "sort": [{"price": "desc"}],
        "collapse": {"field": "user", "max_concurrent_group_searches": 4, "inner_hits": [
            {"name": "cheapest", "size": 2, "sort": [{"price": "asc"}]},
            {"name": "first", "size": 1, "sort": [{"n": "asc"}], "_source": ["n"]}]}})
    hits = found["hits"]["hits"]
    # Every matching document counts, as Elasticsearch's total does.
    assert found["hits"]["total"] == {"value": 7, "relation": "eq"}
    assert [(hit["_id"], hit["fields"]["user"]) for hit in hits] == [
        ("3", ["ann"]), ("2", ["bob"]), ("4", ["cid"]), ("7", ["dan"])]
    ann = hits[0]["inner_hits"]
    assert ann["cheapest"]["hits"]["total"] == {"value": 3, "relation": "eq"}
    assert [h["_id"] for h in ann["cheapest"]["hits"]["hits"]] == ["1", "6"]
    assert [h["sort"] for h in ann["cheapest"]["hits"]["hits"]] == [[10.0], [25.0]]
    assert ann["first"]["hits"]["hits"][0]["_source"] == {"n": 1}
    paged = client.search(index=hosts, body={"sort": [{"price": "desc"}], "from": 1, "size": 2,
                                              "collapse": {"field": "user"}})
    assert [hit["_id"] for hit in paged["hits"]["hits"]] == ["2", "4"]
    after = client.search(index=hosts, body={"sort": [{"user": "asc"}], "size": 2,
                                              "search_after": ["bob"], "collapse": {"field": "user"}})
    assert [hit["fields"]["user"] for hit in after["hits"]["hits"]] == [["cid"], ["dan"]]
    by_number = client.search(index=hosts, body={"query": {"range": {"n": {"lte": 2}}},
                                                  "collapse": {"field": "n"}})
    assert sorted(hit["fields"]["n"][0] for hit in by_number["hits"]["hits"]) == [1, 2]


@pytest.mark.parametrize("body,reason", [
    ({"collapse": {"field": "message"}},
     "collapse is not supported for the field [message] of the type [text]"),
    ({"collapse": {"field": "tags"}}, "the collapse field must be single valued"),
    ({"collapse": {"field": "user"}, "sort": [{"price": "asc"}], "search_after": [1]},
     "collapse field and sort field must be the same when use `collapse` in conjunction with `search_after`"),
    ({"collapse": {"field": "user"}, "rescore": {"window_size": 10, "query": {}}},
     "cannot use `collapse` in conjunction with `rescore`"),
])
def test_collapse_refusals(client, hosts, body, reason):
    with pytest.raises(refused(client)) as error:
        client.search(index=hosts, body=body)
    assert reason in str(error_body(error))


def test_collapse_in_a_scroll_is_refused(client, hosts):
    with pytest.raises(refused(client)) as error:
        client.search(index=hosts, scroll="1m", body={"collapse": {"field": "user"}})
    assert "cannot use `collapse` in a scroll context" in str(error_body(error))


def test_bucket_script_and_selector_with_params_and_buckets_path_maps(client, hosts):
    # The shape Kibana's TSVB "math" sends: named paths and the script's own params.
    found = client.search(index=hosts, body={"size": 0, "aggs": {"users": {
        "terms": {"field": "user", "order": {"_key": "asc"}},
        "aggs": {
            "spend": {"sum": {"field": "price"}},
            "top": {"max": {"field": "price"}},
            "per_doc": {"bucket_script": {
                "buckets_path": {"total": "spend", "docs": "_count"},
                "script": {"source": "params.total / params.docs * params.factor",
                           "lang": "painless", "params": {"factor": 2}}}},
            "share": {"bucket_script": {
                "buckets_path": {"top": "top", "total": "spend"},
                "script": "params.top / params.total"}},
            "big": {"bucket_selector": {
                "buckets_path": {"total": "spend"},
                "script": {"source": "params.total > params.threshold",
                           "params": {"threshold": 20}}}},
        }}}})
    buckets = found["aggregations"]["users"]["buckets"]
    assert [b["key"] for b in buckets] == ["ann", "bob"]
    assert buckets[0]["per_doc"]["value"] == pytest.approx(65.0 / 3 * 2)
    assert buckets[1]["per_doc"]["value"] == pytest.approx(35.0)
    assert buckets[0]["share"]["value"] == pytest.approx(30.0 / 65.0)
    with pytest.raises(refused(client)) as error:
        client.search(index=hosts, body={"size": 0, "aggs": {"users": {
            "terms": {"field": "user"},
            "aggs": {"x": {"bucket_script": {"buckets_path": {"c": "_count"},
                                             "script": "params.c * params.missing"}}}}}})
    assert "params.missing" in str(error_body(error))


def test_script_sort_orders_by_the_scripts_number(client, hosts):
    found = client.search(index=hosts, body={
        "query": {"range": {"n": {"lte": 4}}},
        "sort": [{"_script": {"type": "number", "order": "desc", "script": {
            "source": "doc['price'].value * params.factor - doc['n'].value",
            "params": {"factor": 2}}}}]})
    assert [(hit["_id"], hit["sort"]) for hit in found["hits"]["hits"]] == [
        ("3", [57.0]), ("2", [38.0]), ("1", [19.0]), ("4", [6.0])]
    page = client.search(index=hosts, body={
        "query": {"range": {"n": {"lte": 4}}}, "size": 1, "search_after": [38.0],
        "sort": [{"_script": {"type": "number", "order": "desc",
                              "script": "doc['price'].value * 2 - doc['n'].value"}}]})
    assert [hit["_id"] for hit in page["hits"]["hits"]] == ["1"]
    with pytest.raises(refused(client)) as error:
        client.search(index=hosts, body={"sort": [{"_script": {
            "type": "number", "script": "while (true) {}"}}]})
    assert error_body(error)["error"]["type"] == "script_exception"
    with pytest.raises(refused(client)) as error:
        client.search(index=hosts, body={"sort": [{"_script": {
            "type": "number", "script": "doc['addr'].value"}}]})
    # A string where a number is due fails the script at run time.
    assert "script_exception" in str(error_body(error))
