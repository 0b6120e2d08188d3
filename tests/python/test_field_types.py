"""Field types beyond the basic scalars (issue 8 item 5) through the real `elasticsearch` 9.x
client against the real binary: `scaled_float` (values seen rounded to the `scaling_factor` by
queries, sorts, aggregations and `fields`), `wildcard` (a keyword for pattern queries), `ip` (addresses,
CIDR blocks and ranges), `flattened` (an object's leaves as keywords), and the 400 naming any type Sluice does not have."""

import pytest
from elasticsearch import BadRequestError

from conftest import unique


def load(client, mappings, documents):
    index = unique("types")
    client.indices.create(index=index, mappings=mappings)
    for i, document in enumerate(documents):
        client.index(index=index, id=str(i + 1), document=document)
    client.indices.refresh(index=index)
    return index


def ids(response):
    return sorted(hit["_id"] for hit in response["hits"]["hits"])


PRICES = {"properties": {"price": {"type": "scaled_float", "scaling_factor": 100}}}


@pytest.fixture
def prices(es):
    return load(es, PRICES, [{"price": 1.234}, {"price": "2.5"}, {"price": 3}, {"price": 1.2349}])


def test_scaled_float_mapping_round_trips_and_needs_its_factor(es, prices):
    mapping = es.indices.get_mapping(index=prices)[prices]["mappings"]
    assert mapping == PRICES
    with pytest.raises(BadRequestError) as error:
        es.indices.create(index=unique("types"),
                          mappings={"properties": {"p": {"type": "scaled_float"}}})
    assert error.value.body["error"]["type"] == "mapper_parsing_exception"
    assert "scaling_factor" in error.value.body["error"]["reason"]


def test_scaled_float_queries_see_rounded_values(es, prices):
    assert ids(es.search(index=prices, query={"term": {"price": 1.23}})) == ["1", "4"]
    assert ids(es.search(index=prices, query={"term": {"price": "1.2301"}})) == ["1", "4"]
    assert ids(es.search(index=prices, query={"range": {"price": {"gt": 1.231}}})) == ["2", "3"]
    assert ids(es.search(index=prices, query={"range": {"price": {"lte": 1.231}}})) == ["1", "4"]
    assert ids(es.search(index=prices, q="price:[2 TO 3}")) == ["2"]


def test_scaled_float_sorts_aggregations_and_fields_see_rounded_values(es, prices):
    response = es.search(index=prices, sort=[{"price": "desc"}, "_doc"],
                         fields=["price"], docvalue_fields=["price"], size=10,
                         aggs={"avg": {"avg": {"field": "price"}},
                               "max": {"max": {"field": "price"}},
                               "keys": {"terms": {"field": "price"}}})
    hits = response["hits"]["hits"]
    assert [hit["sort"][0] for hit in hits] == [3.0, 2.5, 1.23, 1.23]
    assert [hit["fields"]["price"] for hit in hits] == [[3.0], [2.5], [1.23], [1.23]]
    assert sorted(hit["_source"]["price"] for hit in hits[2:]) == [1.234, 1.2349]
    aggs = response["aggregations"]
    assert aggs["avg"]["value"] == pytest.approx((1.23 * 2 + 2.5 + 3) / 4)
    assert aggs["max"]["value"] == 3.0
    assert [(b["key"], b["doc_count"]) for b in aggs["keys"]["buckets"]] == [
        (1.23, 2), (2.5, 1), (3.0, 1)]


def test_wildcard_fields_answer_pattern_queries_sorts_and_terms(es):
    index = load(es, {"properties": {"path": {"type": "wildcard"}}},
                 [{"path": "/var/log/syslog"}, {"path": "/etc/hosts"}, {"path": "/var/log/auth.log"}])
    assert ids(es.search(index=index, query={"wildcard": {"path": {"value": "*log/*"}}})) == ["1", "3"]
    assert ids(es.search(index=index, query={"regexp": {"path": "/etc/h.*"}})) == ["2"]
    assert ids(es.search(index=index, query={"term": {"path": "/etc/hosts"}})) == ["2"]
    assert ids(es.search(index=index, q="path:\\/var*")) == ["1", "3"]
    response = es.search(index=index, sort=[{"path": "asc"}],
                         aggs={"paths": {"terms": {"field": "path"}}})
    assert [hit["sort"] for hit in response["hits"]["hits"]] == [
        ["/etc/hosts"], ["/var/log/auth.log"], ["/var/log/syslog"]]
    assert [b["key"] for b in response["aggregations"]["paths"]["buckets"]] == [
        "/etc/hosts", "/var/log/auth.log", "/var/log/syslog"]
    mapping = es.indices.get_mapping(index=index)[index]["mappings"]
    assert mapping == {"properties": {"path": {"type": "wildcard"}}}


def test_ip_fields_match_addresses_blocks_and_ranges(es):
    index = load(es, {"properties": {"addr": {"type": "ip"}}},
                 [{"addr": "192.168.1.10"}, {"addr": "10.0.0.1"}, {"addr": "2001:db8::1"},
                  {"addr": "::ffff:192.168.7.7"}])
    assert ids(es.search(index=index, query={"term": {"addr": "192.168.0.0/16"}})) == ["1", "4"]
    assert ids(es.search(index=index, query={"term": {"addr": "2001:db8::1"}})) == ["3"]
    assert ids(es.search(index=index, query={"range": {"addr": {"gte": "10.0.0.0",
                                                                  "lt": "192.168.7.7"}}})) == ["1", "2"]
    response = es.search(index=index, query={"term": {"addr": "192.168.7.7"}}, fields=["addr"])
    assert response["hits"]["hits"][0]["fields"] == {"addr": ["192.168.7.7"]}
    with pytest.raises(BadRequestError) as error:
        es.search(index=index, query={"term": {"addr": "10.0.0.0/40"}})
    assert "10.0.0.0/40" in error.value.body["error"]["reason"]
    # Sorts and aggregations on ip fields: see test_ip_collapse.py.


def test_flattened_fields_answer_by_key_and_as_a_whole(es):
    index = load(es, {"properties": {"labels": {"type": "flattened"}}},
                 [{"labels": {"team": "search", "env": {"name": "prod"}}},
                  {"labels": {"team": ["ingest", "search"]}},
                  {"labels": {"owner": "prod"}}])
    assert ids(es.search(index=index, query={"term": {"labels.team": "search"}})) == ["1", "2"]
    assert ids(es.search(index=index, query={"term": {"labels.env.name": "prod"}})) == ["1"]
    assert ids(es.search(index=index, query={"term": {"labels": "prod"}})) == ["1", "3"]
    response = es.search(index=index, size=0,
                         aggs={"teams": {"terms": {"field": "labels.team"}}})
    assert [(b["key"], b["doc_count"]) for b in response["aggregations"]["teams"]["buckets"]] == [
        ("search", 2), ("ingest", 1)]
    mapping = es.indices.get_mapping(index=index)[index]["mappings"]
    assert mapping == {"properties": {"labels": {"type": "flattened"}}}


@pytest.mark.parametrize("field_type", ["geo_shape"])
def test_types_sluice_does_not_have_are_named_in_a_400(es, field_type):
    with pytest.raises(BadRequestError) as error:
        es.indices.create(index=unique("types"),
                          mappings={"properties": {"f": {"type": field_type}}})
    assert f"[{field_type}]" in error.value.body["error"]["reason"]
