"""Targets of searches, aliases, index templates, `_msearch`, `_field_caps`, `_mapping/field` and
`_resolve/index` through the official `elasticsearch` 9.x and `opensearch-py` 3.x clients (and
raw HTTP where a client would hide the shape): what Kibana's data views and Grafana's data
source send, and a delivery stream's rotated index taking its template's mapping."""

import json
import time
import urllib.error
import urllib.request

import boto3
import pytest
from botocore.config import Config
from elasticsearch import BadRequestError, Elasticsearch, NotFoundError
from opensearchpy import OpenSearch
from opensearchpy import NotFoundError as OsNotFoundError
from opensearchpy import RequestError as OsRequestError

from conftest import unique


def raw(sluice, method, path, body=None, content_type="application/json"):
    """A request as a dashboard sends it: `(status, parsed body)`."""
    if body is None:
        data = None
    elif isinstance(body, (bytes, str)):
        data = body.encode() if isinstance(body, str) else body
    else:
        data = json.dumps(body).encode()
    request = urllib.request.Request(
        sluice.es_url + path, data=data, method=method, headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request) as response:
            text = response.read()
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as error:
        text = error.read()
        return error.code, json.loads(text) if text else None


def fill(es, index, documents, **create):
    es.indices.create(index=index, **create)
    for n, document in enumerate(documents):
        es.index(index=index, id=str(n), document=document)
    es.indices.refresh(index=index)


def hit_ids(response):
    return sorted((h["_index"], h["_id"]) for h in response["hits"]["hits"])


# --- targets ---------------------------------------------------------------------------------


def test_search_and_count_over_lists_patterns_exclusions_and_all(es):
    p = unique("tgt")
    for suffix, n in [("a", 1), ("b", 2), ("old", 3)]:
        fill(es, f"{p}-{suffix}", [{"n": i} for i in range(n)])
    assert es.count(index=f"{p}-a")["count"] == 1
    assert es.count(index=f"{p}-a,{p}-b")["count"] == 3
    assert es.count(index=f"{p}-*")["count"] == 6
    assert es.count(index=f"{p}-*,-{p}-old")["count"] == 3
    assert es.search(index=f"{p}-*,-*-old", size=10)["hits"]["total"]["value"] == 3
    response = es.search(index=f"{p}-a,{p}-b", size=10)
    assert response["_shards"]["total"] == 2
    assert {h["_index"] for h in response["hits"]["hits"]} == {f"{p}-a", f"{p}-b"}
    # `_all` and no index at all reach every index.
    assert es.count(index="_all")["count"] >= 6
    assert es.count()["count"] == es.count(index="_all")["count"]


def test_missing_indices_and_empty_patterns_follow_the_options(es):
    p = unique("opts")
    fill(es, p, [{"x": 1}])
    with pytest.raises(NotFoundError) as missing:
        es.search(index=f"{p},{p}-nope")
    assert missing.value.body["error"]["type"] == "index_not_found_exception"
    assert missing.value.body["error"]["index"] == f"{p}-nope"
    assert es.count(index=f"{p},{p}-nope", ignore_unavailable=True)["count"] == 1
    empty = es.search(index=f"{p}-none-*")
    assert empty["hits"]["total"]["value"] == 0 and empty["_shards"]["total"] == 0
    with pytest.raises(NotFoundError):
        es.search(index=f"{p}-none-*", allow_no_indices=False)
    assert es.count(index=f"{p}*", expand_wildcards="none")["count"] == 0
    with pytest.raises(BadRequestError) as bad:
        es.count(index=p, expand_wildcards="sideways")
    assert "WildcardStates.SIDEWAYS" in bad.value.body["error"]["reason"]


def test_hidden_indices_need_expand_wildcards_hidden(es):
    p = unique("hid")
    fill(es, f"{p}-visible", [{"x": 1}])
    fill(es, f"{p}-secret", [{"x": 1}], settings={"index.hidden": True})
    assert es.count(index=f"{p}-*")["count"] == 1
    assert es.count(index=f"{p}-*", expand_wildcards="open,hidden")["count"] == 2
    assert es.count(index=f"{p}-secret")["count"] == 1


# --- aliases ---------------------------------------------------------------------------------


def test_aliases_with_filters_and_a_write_index(es):
    p = unique("al")
    fill(es, f"{p}-1", [{"team": "red"}, {"team": "blue"}])
    fill(es, f"{p}-2", [{"team": "red"}])
    assert es.indices.update_aliases(actions=[
        {"add": {"index": f"{p}-1", "alias": f"{p}-all"}},
        {"add": {"index": f"{p}-2", "alias": f"{p}-all", "is_write_index": True}},
        {"add": {"indices": [f"{p}-1", f"{p}-2"], "alias": f"{p}-red",
                 "filter": {"term": {"team.keyword": "red"}}}},
    ]).body == {"acknowledged": True, "errors": False}
    assert es.count(index=f"{p}-all")["count"] == 3
    assert es.count(index=f"{p}-red")["count"] == 2
    red = es.search(index=f"{p}-red")
    assert {h["_source"]["team"] for h in red["hits"]["hits"]} == {"red"}
    # Named directly as well, an index is searched whole.
    assert es.count(index=f"{p}-red,{p}-1")["count"] == 3

    # Writes through the alias go to its write index, and answer with that index's name.
    written = es.index(index=f"{p}-all", id="w", document={"team": "green"}, refresh=True)
    assert written["_index"] == f"{p}-2"
    assert es.create(index=f"{p}-all", id="c", document={"team": "green"})["_index"] == f"{p}-2"
    assert es.update(index=f"{p}-all", id="w", doc={"n": 1})["_index"] == f"{p}-2"
    bulk = es.bulk(operations=[
        {"index": {"_index": f"{p}-all", "_id": "b"}}, {"team": "green"},
        {"delete": {"_index": f"{p}-all", "_id": "c"}},
    ], refresh=True)
    assert not bulk["errors"]
    assert [list(i.values())[0]["_index"] for i in bulk["items"]] == [f"{p}-2", f"{p}-2"]
    assert es.delete(index=f"{p}-all", id="b")["_index"] == f"{p}-2"
    assert es.get(index=f"{p}-2", id="w")["_source"]["n"] == 1
    assert es.indices.get(index=f"{p}-*").body.keys() == {f"{p}-1", f"{p}-2"}, "no index of the alias's name"

    # An alias of one index reads single documents; of two, it cannot.
    es.indices.put_alias(index=f"{p}-1", name=f"{p}-one")
    assert es.get(index=f"{p}-one", id="1")["_source"] == {"team": "blue"}
    with pytest.raises(BadRequestError) as several:
        es.get(index=f"{p}-all", id="w")
    assert "more than one index associated with it" in several.value.body["error"]["reason"]


def test_writes_without_a_write_index_and_require_alias(es):
    p = unique("nowrite")
    fill(es, f"{p}-1", [])
    fill(es, f"{p}-2", [])
    es.indices.update_aliases(actions=[{"add": {"indices": [f"{p}-1", f"{p}-2"], "alias": p}}])
    with pytest.raises(BadRequestError) as refused:
        es.index(index=p, document={"x": 1})
    assert refused.value.body["error"]["type"] == "illegal_argument_exception"
    assert refused.value.body["error"]["reason"] == (
        f"no write index is defined for alias [{p}]. The write index may be explicitly disabled "
        "using is_write_index=false or the alias points to multiple indices without one being "
        "designated as a write index"
    )
    bulk = es.bulk(operations=[{"index": {"_index": p}}, {"x": 1}])
    assert bulk["errors"] and bulk["items"][0]["index"]["status"] == 400
    with pytest.raises(NotFoundError) as not_alias:
        es.index(index=f"{p}-1", document={"x": 1}, require_alias=True)
    assert "is not an alias" in not_alias.value.body["error"]["reason"]
    assert not es.indices.exists(index=f"{p}-typo")
    with pytest.raises(NotFoundError):
        es.index(index=f"{p}-typo", document={"x": 1}, require_alias=True)
    assert not es.indices.exists(index=f"{p}-typo")


def test_alias_apis_and_their_errors(es):
    p = unique("alapi")
    fill(es, f"{p}-1", [])
    fill(es, f"{p}-2", [])
    es.indices.put_alias(index=f"{p}-1", name=f"{p}-x", filter={"term": {"k": "v"}}, routing="1")
    es.indices.put_alias(index=f"{p}-*", name=f"{p}-y")
    assert es.indices.exists_alias(name=f"{p}-x")
    assert not es.indices.exists_alias(name=f"{p}-nope")
    assert es.indices.get_alias(name=f"{p}-x").body == {
        f"{p}-1": {"aliases": {f"{p}-x": {"filter": {"term": {"k": "v"}},
                                          "index_routing": "1", "search_routing": "1"}}}
    }
    by_index = es.indices.get_alias(index=f"{p}-2").body
    assert by_index == {f"{p}-2": {"aliases": {f"{p}-y": {}}}}
    assert set(es.indices.get_alias(index=f"{p}-*", name=f"{p}-*").body) == {f"{p}-1", f"{p}-2"}
    everything = es.indices.get_alias().body
    assert set(everything[f"{p}-1"]["aliases"]) == {f"{p}-x", f"{p}-y"}
    assert es.indices.get(index=f"{p}-1")[f"{p}-1"]["aliases"][f"{p}-y"] == {}

    with pytest.raises(NotFoundError) as missing:
        es.indices.get_alias(name=f"{p}-x,{p}-missing")
    assert missing.value.body["error"] == f"alias [{p}-missing] missing"
    assert f"{p}-1" in missing.value.body

    # An alias may not have an index's name, nor an index an alias's.
    with pytest.raises(BadRequestError) as clash:
        es.indices.put_alias(index=f"{p}-1", name=f"{p}-2")
    assert clash.value.body["error"]["type"] == "invalid_alias_name_exception"
    assert clash.value.body["error"]["reason"] == (
        f"Invalid alias name [{p}-2]: an index or data stream exists with the same name as the alias"
    )
    with pytest.raises(BadRequestError) as taken:
        es.indices.create(index=f"{p}-x")
    assert taken.value.body["error"]["type"] == "invalid_index_name_exception"
    with pytest.raises(BadRequestError):
        es.indices.put_alias(index=f"{p}-1", name=f"{p}-*")
    with pytest.raises(NotFoundError) as no_index:
        es.indices.put_alias(index=f"{p}-none", name=f"{p}-z")
    assert no_index.value.body["error"]["type"] == "index_not_found_exception"
    with pytest.raises(BadRequestError) as bad_filter:
        es.indices.put_alias(index=f"{p}-1", name=f"{p}-z", filter={"no_such_query": {}})
    assert bad_filter.value.body["error"]["reason"].startswith(f"failed to parse filter for alias [{p}-z]")
    with pytest.raises(Exception) as two_writers:
        es.indices.update_aliases(actions=[
            {"add": {"index": f"{p}-1", "alias": f"{p}-w", "is_write_index": True}},
            {"add": {"index": f"{p}-2", "alias": f"{p}-w", "is_write_index": True}},
        ])
    assert two_writers.value.body["error"]["type"] == "illegal_state_exception"
    assert not es.indices.exists_alias(name=f"{p}-w"), "nothing of a refused request applies"

    # Removing: alone a missing alias is a 404; beside others, a partial result.
    with pytest.raises(NotFoundError) as gone:
        es.indices.delete_alias(index=f"{p}-1", name=f"{p}-missing")
    assert gone.value.body["error"]["type"] == "aliases_not_found_exception"
    partial = es.indices.update_aliases(actions=[
        {"remove": {"index": f"{p}-1", "alias": f"{p}-x"}},
        {"remove": {"index": f"{p}-1", "alias": f"{p}-missing"}},
    ]).body
    assert partial["errors"] is True
    assert partial["action_results"][0] == {
        "action": {"type": "remove", "indices": [f"{p}-1"], "aliases": [f"{p}-x"]}, "status": 200}
    assert partial["action_results"][1]["status"] == 404
    assert partial["action_results"][1]["error"]["type"] == "aliases_not_found_exception"
    with pytest.raises(NotFoundError):
        es.indices.update_aliases(actions=[
            {"remove": {"index": f"{p}-1", "alias": f"{p}-y"}},
            {"remove": {"index": f"{p}-1", "alias": f"{p}-missing", "must_exist": True}},
        ])
    assert es.indices.exists_alias(name=f"{p}-y", index=f"{p}-1")
    es.indices.delete_alias(index="_all", name=f"{p}-y")
    assert not es.indices.exists_alias(name=f"{p}-y")


def test_swapping_an_index_for_an_alias_in_one_request(es):
    p = unique("swap")
    fill(es, p, [{"v": 1}])
    fill(es, f"{p}-v2", [{"v": 2}])
    es.indices.update_aliases(actions=[
        {"add": {"index": f"{p}-v2", "alias": p}},
        {"remove_index": {"index": p}},
    ])
    assert es.search(index=p)["hits"]["hits"][0]["_source"] == {"v": 2}
    assert es.indices.get(index=p).body.keys() == {f"{p}-v2"}


def test_aliases_and_templates_survive_a_restart(sluice_factory, tmp_path):
    data = tmp_path / "restart-data"
    server = sluice_factory(data)
    client = Elasticsearch(server.es_url)
    client.indices.create(index="kept", aliases={"kept-alias": {"is_write_index": True}})
    client.indices.put_index_template(name="kept-t", index_patterns=["kept-*"], priority=1,
                                      template={"mappings": {"properties": {"k": {"type": "keyword"}}}})
    server.stop()
    server = sluice_factory(data)
    client = Elasticsearch(server.es_url)
    assert client.indices.get_alias(name="kept-alias").body == {
        "kept": {"aliases": {"kept-alias": {"is_write_index": True}}}}
    client.index(index="kept-1", document={"k": "v"})
    assert client.indices.get_mapping(index="kept-1")["kept-1"]["mappings"]["properties"]["k"] == {"type": "keyword"}


# --- templates -------------------------------------------------------------------------------


def test_composable_templates_shape_explicit_and_auto_created_indices(es):
    p = unique("tpl")
    es.indices.put_index_template(
        name=f"{p}-logs",
        index_patterns=[f"{p}-logs-*"],
        priority=10,
        version=3,
        meta={"owner": "pipeline"},
        template={
            "settings": {"number_of_replicas": 0},
            "mappings": {"properties": {"level": {"type": "keyword"}, "took_ms": {"type": "long"}}},
            "aliases": {f"{p}-logs": {}},
        },
    )
    got = es.indices.get_index_template(name=f"{p}-logs")["index_templates"]
    assert got == [{"name": f"{p}-logs", "index_template": {
        "index_patterns": [f"{p}-logs-*"],
        "template": {
            "settings": {"index": {"number_of_replicas": "0"}},
            "mappings": {"properties": {"level": {"type": "keyword"}, "took_ms": {"type": "long"}}},
            "aliases": {f"{p}-logs": {}},
        },
        "composed_of": [],
        "priority": 10,
        "version": 3,
        "_meta": {"owner": "pipeline"},
    }}]
    assert es.indices.exists_index_template(name=f"{p}-logs")

    # Auto-created by a write: the template's mapping, settings and alias.
    es.index(index=f"{p}-logs-2026-12-01", document={"level": "info", "took_ms": "12"}, refresh=True)
    mapping = es.indices.get_mapping(index=f"{p}-logs-2026-12-01")
    assert mapping[f"{p}-logs-2026-12-01"]["mappings"]["properties"]["level"] == {"type": "keyword"}
    settings = es.indices.get_settings(index=f"{p}-logs-2026-12-01")
    assert settings[f"{p}-logs-2026-12-01"]["settings"]["index"]["number_of_replicas"] == "0"
    assert es.count(index=f"{p}-logs")["count"] == 1
    # Created explicitly: the request's mapping goes over the template's.
    es.indices.create(index=f"{p}-logs-x", mappings={"properties": {"level": {"type": "text"}}})
    properties = es.indices.get_mapping(index=f"{p}-logs-x")[f"{p}-logs-x"]["mappings"]["properties"]
    assert properties == {"level": {"type": "text"}, "took_ms": {"type": "long"}}

    # The highest priority wins; equal priorities may not overlap.
    es.indices.put_index_template(name=f"{p}-special", index_patterns=[f"{p}-logs-special*"], priority=20,
                                  template={"mappings": {"properties": {"level": {"type": "integer"}}}})
    es.index(index=f"{p}-logs-special", document={"level": 3})
    special = es.indices.get_mapping(index=f"{p}-logs-special")[f"{p}-logs-special"]["mappings"]
    assert special["properties"]["level"] == {"type": "integer"}
    with pytest.raises(BadRequestError) as clash:
        es.indices.put_index_template(name=f"{p}-clash", index_patterns=[f"{p}-*"], priority=10)
    assert "that have the same priority [10]" in clash.value.body["error"]["reason"]
    with pytest.raises(BadRequestError) as exists:
        es.indices.put_index_template(name=f"{p}-logs", index_patterns=["x*"], priority=99, create=True)
    assert "already exists" in exists.value.body["error"]["reason"]

    with pytest.raises(BadRequestError) as component:
        es.indices.put_index_template(name=f"{p}-c", index_patterns=["c*"], composed_of=["base"])
    assert component.value.body["error"]["reason"] == (
        f"index template [{p}-c] specifies component templates [base] that do not exist")
    with pytest.raises(BadRequestError) as bad_mapping:
        es.indices.put_index_template(name=f"{p}-bad", index_patterns=["bad*"],
                                      template={"mappings": {"properties": {"a": {"type": "nope"}}}})
    assert bad_mapping.value.body["error"]["type"] == "mapper_parsing_exception"
    with pytest.raises(BadRequestError) as no_patterns:
        es.indices.put_index_template(name=f"{p}-none", template={})
    assert no_patterns.value.body["error"]["type"] == "action_request_validation_exception"

    es.indices.delete_index_template(name=f"{p}-special")
    with pytest.raises(NotFoundError) as deleted:
        es.indices.get_index_template(name=f"{p}-special")
    assert deleted.value.body["error"]["type"] == "resource_not_found_exception"
    with pytest.raises(NotFoundError) as missing:
        es.indices.delete_index_template(name=f"{p}-special")
    assert missing.value.body["error"]["type"] == "index_template_missing_exception"
    es.indices.delete_index_template(name=f"{p}-logs")


def test_legacy_templates_apply_in_order_when_no_composable_one_matches(es):
    p = unique("legacy")
    es.indices.put_template(name=f"{p}-base", index_patterns=[f"{p}-*"], order=0,
                            settings={"number_of_replicas": 0},
                            mappings={"properties": {"a": {"type": "keyword"}, "b": {"type": "keyword"}}})
    es.indices.put_template(name=f"{p}-over", index_patterns=[f"{p}-x*"], order=1,
                            mappings={"properties": {"b": {"type": "long"}}},
                            aliases={f"{p}-alias": {}})
    got = es.indices.get_template(name=f"{p}-over")
    assert got[f"{p}-over"]["order"] == 1
    assert got[f"{p}-over"]["index_patterns"] == [f"{p}-x*"]
    assert got[f"{p}-over"]["aliases"] == {f"{p}-alias": {}}
    assert es.indices.exists_template(name=f"{p}-base")
    es.index(index=f"{p}-x1", document={"a": "1", "b": 2}, refresh=True)
    properties = es.indices.get_mapping(index=f"{p}-x1")[f"{p}-x1"]["mappings"]["properties"]
    assert properties == {"a": {"type": "keyword"}, "b": {"type": "long"}}
    assert es.count(index=f"{p}-alias")["count"] == 1
    # A composable template that matches takes over alone.
    es.indices.put_index_template(name=f"{p}-new", index_patterns=[f"{p}-x2*"], priority=500,
                                  template={"mappings": {"properties": {"c": {"type": "keyword"}}}})
    es.index(index=f"{p}-x2", document={"a": "1"})
    properties = es.indices.get_mapping(index=f"{p}-x2")[f"{p}-x2"]["mappings"]["properties"]
    assert properties["c"] == {"type": "keyword"} and properties["a"]["type"] == "text"
    es.indices.delete_template(name=f"{p}-*")
    with pytest.raises(NotFoundError):
        es.indices.get_template(name=f"{p}-base")
    es.indices.delete_index_template(name=f"{p}-new")


def test_a_delivery_streams_rotated_index_takes_its_templates_mapping(sluice):
    client = Elasticsearch(sluice.es_url)
    client.indices.put_index_template(
        name="example",
        index_patterns=["example-*"],
        template={"mappings": {"properties": {"ticker": {"type": "keyword"}, "price": {"type": "double"}}},
                  "aliases": {"example": {}}},
    )
    firehose = boto3.client("firehose", endpoint_url=sluice.aws_url, region_name="us-east-1",
                            aws_access_key_id="test", aws_secret_access_key="test",
                            config=Config(retries={"max_attempts": 1}))
    firehose.create_delivery_stream(
        DeliveryStreamName="ticks",
        DeliveryStreamType="DirectPut",
        ElasticsearchDestinationConfiguration={
            "RoleARN": "arn:aws:iam::000000000000:role/firehose",
            "IndexName": "example",
            "IndexRotationPeriod": "OneHour",
            "BufferingHints": {"IntervalInSeconds": 1, "SizeInMBs": 1},
            "S3Configuration": {"RoleARN": "arn:aws:iam::000000000000:role/firehose",
                                "BucketARN": "arn:aws:s3:::backup"},
        },
    )
    records = [{"Data": json.dumps({"ticker": "AMZN", "price": "12"}).encode()},
               {"Data": json.dumps({"ticker": "NFLX", "price": 7.5}).encode()}]
    firehose.put_record_batch(DeliveryStreamName="ticks", Records=records)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        client.indices.refresh(index="example-*")
        if client.count(index="example-*")["count"] == 2:
            break
        time.sleep(0.2)
    assert client.count(index="example")["count"] == 2
    (name,) = client.indices.get(index="example-*").body.keys()
    assert len(name) == len("example-2026-12-01-13")
    properties = client.indices.get_mapping(index=name)[name]["mappings"]["properties"]
    assert properties == {"ticker": {"type": "keyword"}, "price": {"type": "double"}}
    # The template's `price: double` made "12" the number 12 and `ticker` an exact keyword.
    hits = client.search(index="example", query={"term": {"ticker": "AMZN"}})["hits"]["hits"]
    assert [h["_source"]["price"] for h in hits] == ["12"]
    assert client.count(index="example", query={"term": {"price": 12}})["count"] == 1


# --- _msearch --------------------------------------------------------------------------------


def test_msearch_answers_each_search_with_its_own_status(es):
    p = unique("ms")
    fill(es, f"{p}-a", [{"k": "x"}, {"k": "y"}])
    fill(es, f"{p}-b", [{"k": "x"}])
    response = es.msearch(index=f"{p}-a", searches=[
        {}, {"query": {"term": {"k.keyword": "x"}}},
        {"index": f"{p}-b"}, {"size": 0},
        {"index": f"{p}-missing"}, {"query": {"match_all": {}}},
        {"index": f"{p}-missing,{p}-b", "ignore_unavailable": True}, {},
        {"index": [f"{p}-a", f"{p}-b"]}, {"query": {"ids": {"values": ["0"]}}},
    ])
    responses = response["responses"]
    assert [r["status"] for r in responses] == [200, 200, 404, 200, 200]
    assert responses[0]["hits"]["total"]["value"] == 1
    assert responses[1]["hits"]["total"]["value"] == 1 and responses[1]["hits"]["hits"] == []
    assert responses[2]["error"]["type"] == "index_not_found_exception"
    assert responses[2]["error"]["root_cause"][0]["type"] == "index_not_found_exception"
    assert responses[3]["hits"]["total"]["value"] == 1
    assert len(responses[4]["hits"]["hits"]) == 2
    # A malformed search fails the whole request, as Elasticsearch parses every body first.
    with pytest.raises(BadRequestError):
        es.msearch(searches=[{}, {"query": {"no_such_query": {}}}])


def test_grafana_shaped_msearch(shared_sluice, es):
    """Grafana's Elasticsearch data source: NDJSON with `search_type`, `ignore_unavailable` and
    the index list of its time range (some days missing), `max_concurrent_shard_requests`."""
    p = unique("grafana")
    fill(es, f"{p}-2026.12.01", [{"v": 1}])
    fill(es, f"{p}-2026.12.02", [{"v": 2}])
    header = {"search_type": "query_then_fetch", "ignore_unavailable": True,
              "index": f"{p}-2026.11.30,{p}-2026.12.01,{p}-2026.12.02"}
    body = {"size": 500, "query": {"match_all": {}}}
    ndjson = "".join(json.dumps(line) + "\n" for line in [header, body, header, {"size": 0}])
    status, answer = raw(shared_sluice, "POST", "/_msearch?max_concurrent_shard_requests=5",
                         ndjson, "application/x-ndjson")
    assert status == 200
    assert [r["status"] for r in answer["responses"]] == [200, 200]
    assert answer["responses"][0]["hits"]["total"] == {"value": 2, "relation": "eq"}
    assert answer["responses"][1]["hits"]["hits"] == []
    status, answer = raw(shared_sluice, "POST", "/_msearch", '{"bogus_key": 1}\n{}\n',
                         "application/x-ndjson")
    assert status == 400 and "bogus_key" in answer["error"]["reason"]


# --- _field_caps, _mapping/field, _resolve/index ------------------------------------------


def test_field_caps_as_kibana_asks(shared_sluice, es):
    p = unique("caps")
    es.indices.create(index=f"{p}-a", mappings={"properties": {
        "@timestamp": {"type": "date"}, "message": {"type": "text"},
        "host": {"properties": {"name": {"type": "keyword"}}}, "bytes": {"type": "long"}}})
    es.indices.create(index=f"{p}-b", mappings={"properties": {
        "@timestamp": {"type": "date"}, "bytes": {"type": "keyword", "index": False, "doc_values": False}}})
    es.index(index=f"{p}-a", document={"message": "hello"}, refresh=True)
    # Kibana's data view: every field, unmapped ones too, of the indices a pattern names.
    status, caps = raw(shared_sluice, "POST",
                       f"/{p}-*/_field_caps?fields=*&include_unmapped=true&allow_no_indices=false"
                       "&ignore_unavailable=true&expand_wildcards=open",
                       {"runtime_mappings": {}})
    assert status == 200
    assert caps["indices"] == [f"{p}-a", f"{p}-b"]
    fields = caps["fields"]
    assert fields["@timestamp"] == {"date": {"type": "date", "metadata_field": False,
                                             "searchable": True, "aggregatable": True}}
    assert fields["message"]["text"]["aggregatable"] is False
    assert fields["message"]["unmapped"]["indices"] == [f"{p}-b"]
    assert fields["host"] == {"object": {"type": "object", "metadata_field": False, "searchable": False,
                                         "aggregatable": False, "indices": [f"{p}-a"]},
                              "unmapped": {"type": "unmapped", "metadata_field": False, "searchable": False,
                                           "aggregatable": False, "indices": [f"{p}-b"]}}
    assert fields["bytes"]["long"]["indices"] == [f"{p}-a"]
    assert fields["bytes"]["keyword"] == {"type": "keyword", "metadata_field": False, "searchable": False,
                                          "aggregatable": False, "indices": [f"{p}-b"]}
    assert fields["_id"]["_id"]["metadata_field"] is True

    # Through the client: filters and types.
    narrow = es.field_caps(index=f"{p}-a", fields="*", filters="-metadata,-parent", types="keyword,date")
    assert set(narrow["fields"]) == {"@timestamp", "host.name"}
    # An index filter leaves out the indices where it matches nothing.
    filtered = es.field_caps(index=f"{p}-*", fields="message", index_filter={"term": {"message": "hello"}})
    assert filtered["indices"] == [f"{p}-a"]
    with pytest.raises(BadRequestError) as no_fields:
        es.field_caps(index=f"{p}-a")
    assert "specified fields can't be null or empty" in no_fields.value.body["error"]["reason"]
    with pytest.raises(NotFoundError):
        es.field_caps(index=f"{p}-nope-*", fields="*", allow_no_indices=False)


def test_field_mappings_of_a_pattern(es):
    p = unique("fm")
    es.indices.create(index=f"{p}-1", mappings={"properties": {
        "title": {"type": "text", "fields": {"raw": {"type": "keyword"}}},
        "user": {"properties": {"id": {"type": "long"}}}}})
    es.indices.create(index=f"{p}-2")
    got = es.indices.get_field_mapping(index=f"{p}-*", fields="title*,user.id").body
    assert got == {
        f"{p}-1": {"mappings": {
            "title": {"full_name": "title", "mapping": {"title": {"type": "text"}}},
            "title.raw": {"full_name": "title.raw", "mapping": {"raw": {"type": "keyword"}}},
            "user.id": {"full_name": "user.id", "mapping": {"id": {"type": "long"}}},
        }},
        f"{p}-2": {"mappings": {}},
    }


def test_resolve_index_names_indices_and_aliases(es):
    p = unique("res")
    es.indices.create(index=f"{p}-1", aliases={f"{p}-b": {}, f"{p}-a": {}})
    es.indices.create(index=f"{p}-2", aliases={f"{p}-a": {}})
    es.indices.create(index=f"{p}-h", settings={"index.hidden": True})
    resolved = es.indices.resolve_index(name=f"{p}-*").body
    assert resolved == {
        "indices": [
            {"name": f"{p}-1", "aliases": [f"{p}-a", f"{p}-b"], "attributes": ["open"]},
            {"name": f"{p}-2", "aliases": [f"{p}-a"], "attributes": ["open"]},
        ],
        "aliases": [
            {"name": f"{p}-a", "indices": [f"{p}-1", f"{p}-2"]},
            {"name": f"{p}-b", "indices": [f"{p}-1"]},
        ],
        "data_streams": [],
    }
    everything = es.indices.resolve_index(name=f"{p}-*,-{p}-b", expand_wildcards="all").body
    assert [i["name"] for i in everything["indices"]] == [f"{p}-1", f"{p}-2", f"{p}-h"]
    assert everything["indices"][2]["attributes"] == ["hidden", "open"]
    assert [a["name"] for a in everything["aliases"]] == [f"{p}-a"]
    with pytest.raises(NotFoundError):
        es.indices.resolve_index(name=f"{p}-nope")
    assert es.indices.resolve_index(name=f"{p}-nope*").body == {"indices": [], "aliases": [], "data_streams": []}


# --- opensearch-py -------------------------------------------------------------------------


def test_opensearch_client_aliases_templates_and_msearch(opensearch):
    p = unique("os")
    opensearch.indices.put_index_template(name=p, body={
        "index_patterns": [f"{p}-*"], "priority": 3,
        "template": {"mappings": {"properties": {"tag": {"type": "keyword"}}}, "aliases": {p: {}}}})
    opensearch.index(index=f"{p}-1", body={"tag": "a"}, id="1", refresh=True)
    assert opensearch.indices.get_mapping(index=f"{p}-1")[f"{p}-1"]["mappings"]["properties"] == {
        "tag": {"type": "keyword"}}
    assert opensearch.indices.exists_alias(name=p)
    opensearch.indices.update_aliases(body={"actions": [
        {"add": {"index": f"{p}-1", "alias": f"{p}-tagged", "filter": {"term": {"tag": "b"}}}}]})
    assert opensearch.count(index=f"{p}-tagged")["count"] == 0
    assert opensearch.count(index=p)["count"] == 1
    answer = opensearch.msearch(body=[{"index": p}, {"query": {"match_all": {}}},
                                     {"index": f"{p}-none"}, {}])
    assert [r["status"] for r in answer["responses"]] == [200, 404]
    with pytest.raises(OsNotFoundError):
        opensearch.indices.get_alias(name=f"{p}-missing")
    with pytest.raises(OsRequestError):
        opensearch.indices.put_alias(index=f"{p}-1", name=f"{p}-1")
    caps = opensearch.field_caps(index=p, fields="tag")
    assert caps["fields"]["tag"]["keyword"]["aggregatable"] is True
    opensearch.indices.delete_index_template(name=p)
