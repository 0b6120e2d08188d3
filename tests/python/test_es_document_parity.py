"""Elasticsearch 8 parity of the document APIs, against the real binary.

The first part covers the differences the robustness issue lists (each test failed before its
fix); the second ports the edge cases of Elasticsearch's own REST API YAML tests
(rest-api-spec/src/yamlRestTest/.../test/{index,create,get,get_source,exists,delete,update,bulk,
mget,indices.create,indices.get_mapping,indices.put_mapping,cat.indices,cluster.health,count,
search}) that apply to what Sluice supports, written anew as pytest tests. Each test uses indices
of its own on one shared server."""

import http.client
import json
import re
import urllib.parse

import pytest
from elasticsearch import BadRequestError, ConflictError, Elasticsearch, NotFoundError, helpers

from conftest import unique


@pytest.fixture
def server(shared_sluice):
    return shared_sluice


def call(server, method, path, body=None, content_type="application/json"):
    """Raw HTTP, for wire shapes a client would hide: returns (status, parsed JSON or text)."""
    url = urllib.parse.urlsplit(server.es_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        connection.request(
            method,
            path,
            body=body.encode() if isinstance(body, str) else body,
            headers={"Content-Type": content_type},
        )
        response = connection.getresponse()
        raw = response.read()
        if response.getheader("content-type", "").startswith("application/json") and raw:
            return response.status, json.loads(raw)
        return response.status, raw.decode()
    finally:
        connection.close()


def bulk(server, lines, query=""):
    body = "".join(json.dumps(line) + "\n" for line in lines)
    return call(server, "POST", f"/_bulk{query}", body, "application/x-ndjson")


def error_of(body):
    return body["error"]["type"], body["error"]["reason"]


# ---------------------------------------------------------------------------------------------
# The differences listed in the issue.
# ---------------------------------------------------------------------------------------------


def test_rest_total_hits_as_int_gives_an_integer_total(es):
    name = unique("asint")
    for i in range(3):
        es.index(index=name, id=str(i), document={"i": i})
    es.indices.refresh(index=name)
    assert es.search(index=name, rest_total_hits_as_int=True)["hits"]["total"] == 3
    # Untracked totals are -1; a bounded tracking cannot be shown as an exact integer.
    untracked = es.search(index=name, rest_total_hits_as_int=True, track_total_hits=False)
    assert untracked["hits"]["total"] == -1
    with pytest.raises(BadRequestError) as bounded:
        es.search(index=name, rest_total_hits_as_int=True, track_total_hits=100)
    assert error_of(bounded.value.body) == (
        "illegal_argument_exception",
        "[rest_total_hits_as_int] cannot be used if the tracking of total hits is not accurate, got 100",
    )
    # Without the flag the total stays an object.
    assert es.search(index=name)["hits"]["total"] == {"value": 3, "relation": "eq"}


def test_update_with_if_seq_no_of_a_missing_document_is_404(es):
    name = unique("ifseq")
    es.indices.create(index=name)
    with pytest.raises(NotFoundError) as missing:
        es.update(index=name, id="1", doc={"foo": "baz"}, if_seq_no=1, if_primary_term=1)
    assert missing.value.body["error"]["type"] == "document_missing_exception"
    assert missing.value.body["error"]["reason"] == "[1]: document missing"
    # update/35_if_seq_no: a wrong sequence number on a live document is still a conflict.
    es.index(index=name, id="1", document={"foo": "baz"})
    with pytest.raises(ConflictError):
        es.update(index=name, id="1", doc={"foo": "baz"}, if_seq_no=234, if_primary_term=1)
    es.update(index=name, id="1", doc={"foo": "bar"}, if_seq_no=0, if_primary_term=1)
    assert es.get(index=name, id="1")["_source"] == {"foo": "bar"}
    result = es.bulk(
        operations=[
            {"update": {"_index": name, "_id": "1", "if_seq_no": 100, "if_primary_term": 200}},
            {"doc": {"foo": "baz"}},
        ]
    )
    assert result["errors"] is True and result["items"][0]["update"]["status"] == 409
    # Upserts cannot be conditioned on a sequence number.
    with pytest.raises(BadRequestError) as upsert:
        es.update(index=name, id="2", doc={"a": 1}, upsert={"a": 0}, if_seq_no=0, if_primary_term=1)
    assert error_of(upsert.value.body) == (
        "action_request_validation_exception",
        "Validation Failed: 1: upsert requests don't support `if_seq_no` and `if_primary_term`;",
    )


def test_bulk_update_with_source_returns_get(server, es):
    # bulk/40_source: `_source` on the action line, in the body, or as URL parameters.
    name = unique("bulksource")
    for i, (foo, bar) in enumerate([("bar", "foo"), ("qux", "pux"), ("corge", "forge")], start=1):
        es.index(index=name, id=f"d{i}", document={"foo": foo, "bar": bar}, refresh=True)
    status, body = bulk(
        server,
        [
            {"update": {"_index": name, "_id": "d1", "_source": True}},
            {"doc": {"foo": "baz"}},
            {"update": {"_index": name, "_id": "d2"}},
            {"_source": True, "doc": {"foo": "quux"}},
            {"update": {"_index": name, "_id": "d3"}},
            {"doc": {"foo": "plain"}},
        ],
        "?refresh=true",
    )
    assert status == 200 and body["errors"] is False
    first, second, third = (item["update"] for item in body["items"])
    assert first["get"] == {"_seq_no": first["_seq_no"], "_primary_term": 1, "found": True, "_source": {"foo": "baz", "bar": "foo"}}
    assert second["get"]["_source"] == {"foo": "quux", "bar": "pux"}
    assert "get" not in third
    assert list(first) == ["_index", "_id", "_version", "result", "_shards", "_seq_no", "_primary_term", "get", "status"]
    status, body = bulk(
        server,
        [
            {"update": {"_index": name, "_id": "d1", "_source": {"includes": "bar"}}},
            {"doc": {"foo": "baz"}},
            {"update": {"_index": name, "_id": "d2"}},
            {"_source": {"includes": "foo"}, "doc": {"foo": "quux"}},
        ],
    )
    assert body["items"][0]["update"]["get"]["_source"] == {"bar": "foo"}
    assert body["items"][1]["update"]["get"]["_source"] == {"foo": "quux"}
    status, body = bulk(server, [{"update": {"_index": name, "_id": "d3"}}, {"doc": {"foo": "garply"}}], "?_source_includes=foo")
    assert body["items"][0]["update"]["get"]["_source"] == {"foo": "garply"}
    status, body = bulk(server, [{"update": {"_index": name, "_id": "d3"}}, {"doc": {"foo": "waldo"}}], "?_source=true")
    assert body["items"][0]["update"]["get"]["_source"] == {"foo": "waldo", "bar": "forge"}
    # The `get` of a noop shows the document as it is.
    noop = es.update(index=name, id="d3", doc={"foo": "waldo"}, source=True)
    assert noop["result"] == "noop" and noop["get"]["_source"] == {"foo": "waldo", "bar": "forge"}


def test_get_with_realtime_false_reads_the_last_refresh(server, es):
    # get/60_realtime_refresh, get_source/60_realtime_refresh, exists/60_realtime_refresh,
    # mget/60_realtime_refresh.
    name = unique("realtime")
    es.indices.create(index=name, settings={"index": {"refresh_interval": -1, "number_of_replicas": 0}})
    es.index(index=name, id="1", document={"foo": "bar"})
    with pytest.raises(NotFoundError):
        es.get(index=name, id="1", realtime=False)
    assert es.get(index=name, id="1", realtime=True)["found"] is True
    assert call(server, "GET", f"/{name}/_source/1?realtime=false")[0] == 404
    assert call(server, "HEAD", f"/{name}/_doc/1?realtime=false")[0] == 404
    assert es.exists(index=name, id="1")
    docs = es.mget(index=name, ids=["1"], realtime=False)["docs"]
    assert docs[0]["found"] is False
    # `refresh=true` makes the write visible first.
    assert es.get(index=name, id="1", realtime=False, refresh=True)["_source"] == {"foo": "bar"}
    assert es.get_source(index=name, id="1", realtime=False).body == {"foo": "bar"}
    assert es.exists(index=name, id="1", realtime=False)
    es.index(index=name, id="1", document={"foo": "newer"})
    assert es.get(index=name, id="1", realtime=False)["_source"] == {"foo": "bar"}
    assert es.mget(index=name, ids=["1"], realtime=False, refresh=True)["docs"][0]["_source"] == {"foo": "newer"}


def test_source_disabled_is_not_stored(server, es):
    # get_source/85_source_missing and the `_source.enabled: false` mapping.
    name = unique("nosource")
    es.indices.create(index=name, mappings={"_source": {"enabled": False}, "properties": {"k": {"type": "keyword"}}})
    es.index(index=name, id="1", document={"k": "a"}, refresh=True)
    got = es.get(index=name, id="1")
    assert got["found"] is True and "_source" not in got
    with pytest.raises(NotFoundError) as missing:
        es.get_source(index=name, id="1")
    assert error_of(missing.value.body) == ("resource_not_found_exception", f"Source not found [{name}]/[1]")
    assert call(server, "HEAD", f"/{name}/_source/1")[0] == 404
    hits = es.search(index=name, query={"term": {"k": "a"}})["hits"]["hits"]
    assert len(hits) == 1 and "_source" not in hits[0]
    assert "_source" not in es.mget(index=name, ids=["1"])["docs"][0]
    with pytest.raises(BadRequestError) as update:
        es.update(index=name, id="1", doc={"k": "b"})
    assert update.value.body["error"]["type"] == "document_source_missing_exception"
    assert update.value.body["error"]["reason"] == "[1]: document source missing"
    item = es.bulk(operations=[{"update": {"_index": name, "_id": "1"}}, {"doc": {"k": "b"}}])["items"][0]["update"]
    assert item["status"] == 400 and item["error"]["type"] == "document_source_missing_exception"
    assert es.indices.get_mapping(index=name)[name]["mappings"]["_source"] == {"enabled": False}
    with pytest.raises(BadRequestError) as turn_on:
        es.indices.put_mapping(index=name, source={"enabled": True})
    assert turn_on.value.body["error"]["type"] == "illegal_argument_exception"
    assert "Cannot update parameter [enabled] from [false] to [true]" in turn_on.value.body["error"]["reason"]


def test_cat_indices_aliases_and_health_filter(es):
    # cat.indices/10_basic "Test cat indices using health status" and column aliases.
    green, yellow = unique("catgreen"), unique("catyellow")
    es.indices.create(index=green, settings={"number_of_shards": 1, "number_of_replicas": 0})
    es.indices.create(index=yellow, settings={"number_of_shards": 1, "number_of_replicas": 1})
    es.index(index=green, id="1", document={"a": 1}, refresh=True)
    both = f"{green},{yellow}"
    assert es.cat.indices(index=both, health="green", h="index").body == f"{green}\n"
    assert es.cat.indices(index=both, health="yellow", h="index").body == f"{yellow}\n"
    with pytest.raises(BadRequestError) as invalid:
        es.cat.indices(index=both, health="invalid-health-value")
    assert invalid.value.body["error"]["reason"] == "unknown cluster health status [invalid-health-value]"
    rows = es.cat.indices(index=green, h="i,dc,ss", format="json").body
    assert list(rows[0]) == ["i", "dc", "ss"]
    assert rows[0]["i"] == green and rows[0]["dc"] == "1" and re.fullmatch(r"\d+(\.\d+)?(b|kb)", rows[0]["ss"])
    text = es.cat.indices(index=green, h="i,cd,cds,creation.date,creation.date.string").body
    assert re.fullmatch(
        rf"{green} +(\d+) +(\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z) +(\d+) +(\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z)\n",
        text,
    ), text
    # Numbers and sizes are right-aligned; the header shows the names asked for.
    verbose = es.cat.indices(index=both, h="index,docs.count,health", v=True, s="index").body
    header, first, second = verbose.rstrip("\n").split("\n")
    assert header.split() == ["index", "docs.count", "health"]
    assert first.split() == [green, "1", "green"] and second.split() == [yellow, "0", "yellow"]
    width = len(header.split("docs.count")[0]) + len("docs.count")
    assert first[:width].endswith(" 1") and second[:width].endswith(" 0")


def test_cat_indices_sorts_and_expands_wildcards(es):
    # cat.indices/10_basic "Test cat indices sort" and "using wildcards".
    prefix = unique("catsort")
    for suffix in ("foo", "bar", "baz"):
        es.indices.create(index=f"{prefix}-{suffix}", settings={"number_of_shards": 1, "number_of_replicas": 0})
    names = lambda body: body.split()  # noqa: E731
    assert names(es.cat.indices(index=f"{prefix}-*", h="i", s="i").body) == [f"{prefix}-{s}" for s in ("bar", "baz", "foo")]
    assert names(es.cat.indices(index=f"{prefix}-*", h="i", s="index:desc").body) == [f"{prefix}-{s}" for s in ("foo", "baz", "bar")]
    assert names(es.cat.indices(index=f"{prefix}-ba*", h="i", s="i").body) == [f"{prefix}-bar", f"{prefix}-baz"]
    rows = es.cat.indices(index=f"{prefix}-foo", h="docs.*", format="json").body
    assert list(rows[0]) == ["docs.count", "docs.deleted"]
    with pytest.raises(Exception) as unknown:
        es.cat.indices(index=f"{prefix}-*", s="bogus")
    assert "Unable to sort by unknown sort key `bogus`" in str(unknown.value)


def test_cluster_health_levels(es):
    # cluster.health/10_basic "cluster health levels" and 30_indices_options.
    name = unique("levels")
    es.indices.create(index=name, settings={"number_of_shards": 2, "number_of_replicas": 0})
    indices = es.cluster.health(index=name, level="indices")
    assert indices["indices"][name] == {
        "status": "green",
        "number_of_shards": 2,
        "number_of_replicas": 0,
        "active_primary_shards": 2,
        "active_shards": 2,
        "relocating_shards": 0,
        "initializing_shards": 0,
        "unassigned_shards": 0,
        "unassigned_primary_shards": 0,
    }
    shards = es.cluster.health(index=name, level="shards")["indices"][name]["shards"]
    assert sorted(shards) == ["0", "1"] and shards["0"]["primary_active"] is True
    assert "indices" not in es.cluster.health(index=name)
    assert "indices" not in es.cluster.health(index=name, level="cluster")
    with pytest.raises(BadRequestError):
        es.cluster.health(level="bogus")


def test_keyword_over_32766_bytes_is_refused(es):
    name = unique("immense")
    es.indices.create(index=name, mappings={"properties": {"k": {"type": "keyword"}}})
    with pytest.raises(BadRequestError) as refused:
        es.index(index=name, id="1", document={"k": "x" * 32767})
    error = refused.value.body["error"]
    assert error["type"] == "document_parsing_exception"
    assert "Document contains at least one immense term in field=\"k\" (whose UTF8 encoding is longer than the max length 32766)" in error["reason"]
    assert error["caused_by"]["type"] == "illegal_argument_exception"
    assert not es.exists(index=name, id="1")
    assert es.index(index=name, id="2", document={"k": "x" * 32766})["result"] == "created"


def test_empty_id_in_bulk_is_an_illegal_argument(server, es):
    # bulk/10_basic "Empty _id" and "Empty _id with op_type create".
    name = unique("emptyid")
    status, body = bulk(
        server,
        [
            {"index": {"_index": name, "_id": ""}}, {"f": 1},
            {"index": {"_index": name, "_id": "id"}}, {"f": 2},
            {"index": {"_index": name}}, {"f": 3},
            {"create": {"_index": name}}, {"f": 4},
            {"index": {"_index": name, "op_type": "create"}}, {"f": 5},
        ],
        "?refresh=true",
    )
    assert status == 200 and body["errors"] is True
    first = body["items"][0]["index"]
    assert first["status"] == 400
    assert first["error"] == {"type": "illegal_argument_exception", "reason": "if _id is specified it must not be empty"}
    assert list(first) == ["_index", "_id", "status", "error"]
    assert body["items"][1]["index"]["result"] == "created"
    assert body["items"][2]["index"]["result"] == "created"
    assert body["items"][3]["create"]["result"] == "created"
    # An `index` action with `op_type: create` is reported as a `create`.
    assert body["items"][4]["create"]["result"] == "created"
    assert es.count(index=name)["count"] == 4
    # Deletes and updates without an id are a validation failure, as before.
    status, body = bulk(server, [{"delete": {"_index": name, "_id": ""}}])
    assert body["items"][0]["delete"]["error"]["type"] == "action_request_validation_exception"


def test_empty_field_names(server, es):
    # indices.create/10_basic and indices.put_mapping/10_basic "Create index with invalid mappings".
    name = unique("emptyfield")
    with pytest.raises(BadRequestError) as create:
        es.indices.create(index=name, mappings={"properties": {"": {"type": "keyword"}}})
    error = create.value.body["error"]
    assert (error["type"], error["reason"]) == ("mapper_parsing_exception", "Failed to parse mapping: field name cannot be an empty string")
    assert error["caused_by"] == {"type": "illegal_argument_exception", "reason": "field name cannot be an empty string"}
    es.indices.create(index=name)
    status, body = call(server, "PUT", f"/{name}/_mapping", {"properties": {"": {"type": "keyword"}}})
    assert status == 400 and "illegal_argument_exception" in json.dumps(body)
    # In a document, Elasticsearch 8 says "failed to parse" and nests the rule.
    with pytest.raises(BadRequestError) as document:
        es.index(index=name, id="1", document={"": 1})
    error = document.value.body["error"]
    assert (error["type"], error["reason"]) == ("document_parsing_exception", "failed to parse: field name cannot be an empty string")
    assert error["caused_by"]["type"] == "illegal_argument_exception"
    for bad, reason in [
        ({"a..b": 1}, "object field cannot contain only whitespace: ['a..b']"),
        ({"...": 1}, "field name cannot contain only dots"),
    ]:
        with pytest.raises(BadRequestError) as dotted:
            es.index(index=name, id="1", document=bad)
        assert dotted.value.body["error"]["reason"] == f"failed to parse: {reason}"


def test_mget_with_no_documents_is_a_validation_failure(server, es):
    # mget/13_missing_metadata and mget/15_ids.
    name = unique("mgetnone")
    es.index(index=name, id="1", document={"foo": "bar"})
    for path, body in [("/_mget", {"docs": []}), ("/_mget", {}), (f"/{name}/_mget", {"ids": []}), (f"/{name}/_mget", {})]:
        status, answer = call(server, "POST", path, body)
        assert status == 400, (path, body, answer)
        assert error_of(answer) == ("action_request_validation_exception", "Validation Failed: 1: no documents to get;")
    status, answer = call(server, "POST", "/_mget", {"docs": [{"_index": name}]})
    assert answer["error"]["type"] == "action_request_validation_exception" and "id is missing" in answer["error"]["reason"]
    status, answer = call(server, "POST", "/_mget", {"docs": [{"_id": "1"}]})
    assert answer["error"]["type"] == "action_request_validation_exception" and "index is missing" in answer["error"]["reason"]


def test_type_wrappers_in_mappings_are_refused(server, es):
    # indices.put_mapping/10_basic "Put mappings with explicit _doc type".
    name = unique("typed")
    es.indices.create(index=name)
    status, body = call(server, "PUT", f"/{name}/_mapping", {"_doc": {"properties": {"field": {"type": "keyword"}}}})
    assert status == 400
    assert error_of(body) == ("illegal_argument_exception", "Types cannot be provided in put mapping requests")
    with pytest.raises(BadRequestError) as create:
        es.indices.create(index=unique("typed"), mappings={"_doc": {"properties": {"field": {"type": "keyword"}}}})
    assert error_of(create.value.body) == (
        "illegal_argument_exception",
        "The mapping definition cannot be nested under a type [_doc] unless include_type_name is set to true.",
    )


# ---------------------------------------------------------------------------------------------
# Edge cases ported from Elasticsearch's REST API YAML tests.
# ---------------------------------------------------------------------------------------------


def test_index_versions_and_op_types(es):
    # index/12_result, 20_optype, 30_cas, 35_external_version, 36_external_gte_version.
    name = unique("index")
    assert es.index(index=name, id="1", document={"foo": "bar"}, op_type="create")["result"] == "created"
    with pytest.raises(ConflictError):
        es.index(index=name, id="1", document={"foo": "bar"}, op_type="create")
    again = es.index(index=name, id="1", document={"foo": "bar"}, op_type="index")
    assert (again["result"], again["_version"]) == ("updated", 2)
    with pytest.raises(ConflictError):
        es.index(index=name, id="1", document={"foo": "bar2"}, if_seq_no=10000, if_primary_term=1)
    with pytest.raises(ConflictError):
        es.index(index=name, id="1", document={"foo": "bar2"}, if_seq_no=again["_seq_no"], if_primary_term=1000)
    assert es.index(index=name, id="1", document={"foo": "bar2"}, if_seq_no=again["_seq_no"], if_primary_term=1)["_version"] == 3
    external = unique("external")
    assert es.index(index=external, id="1", document={"foo": "bar"}, version_type="external", version=0)["_version"] == 0
    assert es.index(index=external, id="1", document={"foo": "bar"}, version_type="external", version=5)["_version"] == 5
    for stale in (5, 0):
        with pytest.raises(ConflictError):
            es.index(index=external, id="1", document={"foo": "bar"}, version_type="external", version=stale)
    gte = unique("gte")
    es.index(index=gte, id="1", document={"foo": "bar"}, version_type="external_gte", version=5)
    assert es.index(index=gte, id="1", document={"foo": "bar2"}, version_type="external_gte", version=5)["_version"] == 5
    with pytest.raises(ConflictError):
        es.index(index=gte, id="1", document={"foo": "bar"}, version_type="external_gte", version=0)


def test_index_id_limits_and_unicode_names(es):
    # index/10_with_id: a 513-byte id is refused; index names may be Unicode.
    name = unique("test-weird-index-中文")
    assert es.index(index=name, id="1", document={"foo": "bar"})["_index"] == name
    assert es.get(index=name, id="1")["_source"] == {"foo": "bar"}
    with pytest.raises(BadRequestError):
        es.index(index=name, id="a" * 513, document={"foo": "bar"})


def test_create_rules(server, es):
    # create/10_with_id, 15_without_id, 35_external_version.
    name = unique("create")
    assert es.create(index=name, id="1", document={"foo": "bar"})["_version"] == 1
    with pytest.raises(ConflictError):
        es.create(index=name, id="1", document={"foo": "bar"})
    for version in (0, 5):
        status, body = call(server, "PUT", f"/{name}/_create/{version + 2}?version_type=external&version={version}", {"foo": "bar"})
        assert status == 400
        assert error_of(body) == (
            "action_request_validation_exception",
            "Validation Failed: 1: create operations only support internal versioning. use index instead;",
        )
    assert call(server, "POST", f"/{name}/_create", {"foo": "bar"})[0] in (400, 405)


def test_delete_rules(server, es):
    # delete/20_cas, 25_external_version, 60_missing, 50_refresh.
    name = unique("delete")
    es.index(index=name, id="1", document={"foo": "bar"})
    with pytest.raises(ConflictError):
        es.delete(index=name, id="1", if_seq_no=2, if_primary_term=1)
    assert es.delete(index=name, id="1", if_seq_no=0, if_primary_term=1)["_seq_no"] == 1
    external = unique("delext")
    es.index(index=external, id="1", document={"foo": "bar"}, version_type="external", version=5)
    with pytest.raises(ConflictError):
        es.delete(index=external, id="1", version_type="external", version=4)
    assert es.delete(index=external, id="1", version_type="external", version=6)["_version"] == 6
    with pytest.raises(NotFoundError):
        es.delete(index=unique("nothere"), id="1")
    # `refresh=""` means refresh now; `wait_for` does not force one.
    es.index(index=name, id="2", document={"foo": "bar"}, refresh=True)
    status, body = call(server, "DELETE", f"/{name}/_doc/2?refresh=")
    assert status == 200 and body["forced_refresh"] is True
    assert es.search(index=name, query={"term": {"_id": "2"}}, rest_total_hits_as_int=True)["hits"]["total"] == 0
    es.index(index=name, id="3", document={"foo": "bar"}, refresh=True)
    waited = es.delete(index=name, id="3", refresh="wait_for")
    assert "forced_refresh" not in waited


def test_get_versions_and_source_filtering(server, es):
    # get/70_source_filtering, 90_versions, 20_stored_fields; get_source/70_source_filtering.
    name = unique("getfilter")
    es.index(index=name, id="1", document={"include": {"field1": "v1", "field2": "v2"}, "count": 1})
    es.index(index=name, id="1", document={"include": {"field1": "v1", "field2": "v2"}, "count": 1})
    assert "_source" not in es.get(index=name, id="1", source=False)
    assert es.get(index=name, id="1", source="include.field1")["_source"] == {"include": {"field1": "v1"}}
    both = es.get(index=name, id="1", source_includes="include.field1,include.field2")["_source"]
    assert both == {"include": {"field1": "v1", "field2": "v2"}}
    assert es.get(index=name, id="1", source_includes="include", source_excludes="*.field2")["_source"] == {"include": {"field1": "v1"}}
    assert es.get_source(index=name, id="1", source_includes="include", source_excludes="*.field2").body == {"include": {"field1": "v1"}}
    # `stored_fields` without `_source` turns the source off; naming `_source` keeps it.
    assert "_source" not in es.get(index=name, id="1", stored_fields="count")
    assert es.get(index=name, id="1", stored_fields="count,_source")["_source"]["count"] == 1
    assert es.get(index=name, id="1", stored_fields="count", source=True)["_source"]["count"] == 1
    # A read's version check is an equality for every version type.
    assert es.get(index=name, id="1", version=2)["_id"] == "1"
    for version_type in ("external", "external_gte"):
        assert es.get(index=name, id="1", version=2, version_type=version_type)["_id"] == "1"
        for wrong in (1, 10):
            with pytest.raises(ConflictError):
                es.get(index=name, id="1", version=wrong, version_type=version_type)
    with pytest.raises(ConflictError):
        es.get(index=name, id="1", version=1)
    status, body = call(server, "GET", f"/{name}/_doc/1?version=2&version_type=bogus")
    assert status == 400 and body["error"]["reason"] == "No version type match [bogus]"
    # get_source cannot be asked for no source.
    status, body = call(server, "GET", f"/{name}/_source/1?_source=false")
    assert status == 400
    assert error_of(body) == ("action_request_validation_exception", "Validation Failed: 1: fetching source can not be disabled;")
    # Missing documents and indices.
    with pytest.raises(NotFoundError) as missing:
        es.get_source(index=name, id="404")
    assert missing.value.body["error"]["reason"] == f"Document not found [{name}]/[404]"
    assert call(server, "HEAD", f"/{unique('nothere')}/_doc/1")[0] == 404
    assert not es.exists(index=name, id="404")


def test_update_edge_cases(server, es):
    # update/10_doc, 12_result, 16_noop, 20_doc_upsert, 22_doc_as_upsert, 60_refresh,
    # 80_source_filtering, 90_error.
    name = unique("update")
    es.index(index=name, id="1", document={"foo": "bar", "count": 1, "nested": {"one": 1, "two": 2}})
    partial = es.update(index=name, id="1", doc={"foo": "baz", "nested": {"one": 3}})
    assert partial["_version"] == 2
    assert es.get(index=name, id="1")["_source"] == {"foo": "baz", "count": 1, "nested": {"one": 3, "two": 2}}
    upserted = unique("upsert")
    es.update(index=upserted, id="1", doc={"foo": "bar", "count": 1}, upsert={"foo": "baz"})
    assert es.get(index=upserted, id="1")["_source"] == {"foo": "baz"}
    es.update(index=upserted, id="1", doc={"foo": "bar", "count": 1}, upsert={"foo": "baz"})
    assert es.get(index=upserted, id="1")["_source"] == {"foo": "bar", "count": 1}
    results = unique("results")
    steps = [
        ({"doc": {"foo": "bar"}, "doc_as_upsert": True}, 1, "created"),
        ({"doc": {"foo": "bar"}, "doc_as_upsert": True}, 1, "noop"),
        ({"doc": {"foo": "bar"}, "doc_as_upsert": True, "detect_noop": False}, 2, "updated"),
        ({"doc": {"foo": "baz"}, "doc_as_upsert": True, "detect_noop": True}, 3, "updated"),
    ]
    for body, version, result in steps:
        answer = es.update(index=results, id="1", **body)
        assert (answer["_version"], answer["result"]) == (version, result)
    noop = es.update(index=results, id="1", doc={"foo": "baz"})
    assert noop["_shards"] == {"total": 0, "successful": 0, "failed": 0}
    # `_source` as a URL parameter on an upsert.
    filtered = unique("updfilter")
    answer = es.update(index=filtered, id="1", doc={"foo": "baz"}, upsert={"foo": "bar"}, source=["foo", "bar"])
    assert answer["get"]["_source"] == {"foo": "bar"}
    # Unknown body fields get Elasticsearch's suggestion.
    status, body = call(server, "POST", f"/{name}/_update/1", {"dac": {"foo": "baz"}, "upsert": {"foo": "bar"}})
    assert status == 400
    assert error_of(body) == ("x_content_parse_exception", "[UpdateRequest] unknown field [dac] did you mean [doc]?")
    # refresh="" forces a refresh; wait_for does not.
    status, body = call(server, "POST", f"/{name}/_update/1?refresh=", {"doc": {"cat": "dog"}})
    assert body["forced_refresh"] is True
    waited = es.update(index=name, id="1", doc={"test": "asdf"}, refresh="wait_for")
    assert "forced_refresh" not in waited
    with pytest.raises(NotFoundError):
        es.update(index=name, id="404", doc={"a": 1})


def test_bulk_framing_errors(server):
    # bulk/10_basic "empty action", and the other malformed action lines.
    name = unique("bulkframe")
    cases = [
        ('{"index":{"_index":"%s","_id":"1"}}\n{"f1":"v1"}\n{}\n' % name, "Malformed action/metadata line [3], expected FIELD_NAME but found [END_OBJECT]"),
        ("[1]\n", "Malformed action/metadata line [1], expected START_OBJECT but found [START_ARRAY]"),
        ('{"index":5}\n{}\n', "Malformed action/metadata line [1], expected START_OBJECT or END_OBJECT but found [VALUE_NUMBER]"),
        ('{"index":{},"delete":{}}\n', "Malformed action/metadata line [1], expected END_OBJECT but found [FIELD_NAME]"),
        ('{"explode":{}}\n', "Malformed action/metadata line [1], expected field [create], [delete], [index] or [update] but found [explode]"),
    ]
    for body, reason in cases:
        status, answer = call(server, "POST", "/_bulk", body, "application/x-ndjson")
        assert status == 400, (body, answer)
        assert error_of(answer) == ("illegal_argument_exception", reason)


def test_bulk_counts_and_noops(server, es):
    # bulk/10_basic "Array of objects", 12_noop, 80_cas.
    name = unique("bulkbasic")
    status, body = bulk(
        server,
        [
            {"index": {"_index": name, "_id": "test_id"}}, {"f1": "v1", "f2": 42},
            {"index": {"_index": name, "_id": "test_id2"}}, {"f1": "v2", "f2": 47},
        ],
        "?refresh=true",
    )
    assert es.count(index=name)["count"] == 2
    status, body = bulk(server, [{"update": {"_index": name, "_id": "test_id"}}, {"doc": {"f1": "v1"}}])
    assert body["items"][0]["update"]["result"] == "noop"
    seq_no = es.get(index=name, id="test_id")["_seq_no"]
    status, body = bulk(server, [{"index": {"_index": name, "_id": "test_id", "if_seq_no": 10000, "if_primary_term": 1}}, {"foo": "bar2"}])
    assert body["items"][0]["index"]["status"] == 409
    assert body["items"][0]["index"]["error"]["type"] == "version_conflict_engine_exception"
    status, body = bulk(server, [{"index": {"_index": name, "_id": "test_id", "if_seq_no": seq_no, "if_primary_term": 1}}, {"foo": "bar2"}])
    assert body["errors"] is False and body["items"][0]["index"]["status"] == 200


def test_mget_shapes(server, es):
    # mget/12_non_existent_index, 15_ids, 70_source_filtering.
    name = unique("mget")
    for i in ("1", "2"):
        es.index(index=name, id=i, document={"include": {"field1": "v1", "field2": "v2"}, "count": 1})
    docs = es.mget(docs=[{"_index": unique("nothere"), "_id": "1"}, {"_index": name, "_id": "1"}])["docs"]
    assert not docs[0].get("found") and docs[1]["found"] is True
    by_ids = es.mget(index=name, ids=["1", "3"])["docs"]
    assert (by_ids[0]["found"], by_ids[1]["found"], by_ids[1]["_id"]) == (True, False, "3")
    sources = es.mget(
        docs=[
            {"_index": name, "_id": "1", "_source": False},
            {"_index": name, "_id": "2", "_source": True},
        ]
    )["docs"]
    assert "_source" not in sources[0] and sources[1]["_source"]["count"] == 1
    included = es.mget(
        docs=[
            {"_index": name, "_id": "1", "_source": "include.field1"},
            {"_index": name, "_id": "2", "_source": {"include": ["include.field1"]}},
            {"_index": name, "_id": "1", "_source": {"include": ["include"], "exclude": ["*.field2"]}},
        ]
    )["docs"]
    assert [d["_source"] for d in included] == [{"include": {"field1": "v1"}}] * 3
    assert all("_source" not in d for d in es.mget(index=name, ids=["1", "2"], source=False)["docs"])
    params = es.mget(index=name, ids=["1", "2"], source_includes="include.field1,count")["docs"]
    assert [d["_source"] for d in params] == [{"include": {"field1": "v1"}, "count": 1}] * 2
    status, body = call(server, "POST", "/_mget", {"docs": [{"_index": name, "_id": "1", "bogus": 1}]})
    assert status == 400 and body["error"]["reason"] == "Unknown key for a VALUE_NUMBER in [bogus]."


def test_get_mapping_index_options(server, es):
    # indices.get_mapping/10_basic and 30_missing_index.
    first, second = unique("gm"), unique("gm")
    es.indices.create(index=first, mappings={})
    es.indices.create(index=second, mappings={"properties": {"field": {"type": "keyword"}}})
    assert es.indices.get_mapping(index=first)[first]["mappings"] == {}
    assert set(es.indices.get_mapping(index=f"{first},{second}")) == {first, second}
    missing = unique("gm-missing")
    with pytest.raises(NotFoundError):
        es.indices.get_mapping(index=missing)
    status, body = call(server, "GET", f"/{missing}/_mapping?ignore_unavailable=true")
    assert (status, body) == (200, {})
    status, body = call(server, "GET", f"/{missing}/_mapping?ignore_unavailable=true&allow_no_indices=false")
    assert status == 404
    # indices.put_mapping/10_basic: dotted names are objects, multi-fields merge in.
    es.indices.put_mapping(index=first, properties={"text1": {"type": "text", "analyzer": "whitespace"}, "subfield.text3": {"type": "text"}})
    es.indices.put_mapping(index=first, properties={"text1": {"type": "text", "analyzer": "whitespace", "fields": {"text_raw": {"type": "keyword"}}}})
    properties = es.indices.get_mapping(index=first)[first]["mappings"]["properties"]
    assert properties["subfield"]["properties"]["text3"]["type"] == "text"
    assert properties["text1"]["fields"]["text_raw"]["type"] == "keyword"


def test_mapping_definition_errors_are_wrapped(es):
    name = unique("badtype")
    with pytest.raises(BadRequestError) as refused:
        es.indices.create(index=name, mappings={"properties": {"a": {"type": "strin"}}})
    error = refused.value.body["error"]
    assert (error["type"], error["reason"]) == ("mapper_parsing_exception", "Failed to parse mapping: No handler for type [strin] declared on field [a]")
    assert error["root_cause"][0]["reason"] == "No handler for type [strin] declared on field [a]"
    assert error["caused_by"]["type"] == "mapper_parsing_exception"


def test_search_parameters(server, es):
    # search/20_default_values, 30_limits, 220_total_hits_object, 260_parameter_validation,
    # 300_sequence_numbers, 80_indices_options, 10_source_filtering.
    name = unique("searchparams")
    es.index(index=name, id="1", document={"foo": "foo"})
    es.index(index=name, id="1", document={"foo": "bar", "include": {"field1": "v1", "field2": "v2"}}, refresh=True)
    for params, reason in [
        ("from=-2", "[from] parameter cannot be negative but was [-2]"),
        ("size=-5", "[size] parameter cannot be negative, found [-5]"),
        ("track_total_hits=-2", "[track_total_hits] parameter must be positive or equals to -1, got -2"),
        ("terminate_after=-1", "terminateAfter must be > 0"),
        ("size=abc", "Failed to parse int parameter [size] with value [abc]"),
    ]:
        status, body = call(server, "POST", f"/{name}/_search?{params}")
        assert status == 400 and error_of(body) == ("illegal_argument_exception", reason), params
    status, body = call(server, "POST", f"/{name}/_search?from=10000")
    assert status == 400 and "Result window is too large, from + size must be less than or equal to: [10000] but was [10010]" in body["error"]["reason"]
    # In the URL, size=-1 and from=-1 mean "not set"; in the body they are refused.
    status, body = call(server, "POST", f"/{name}/_search?size=-1&from=-1")
    assert status == 200 and len(body["hits"]["hits"]) == 1
    status, body = call(server, "POST", f"/{name}/_search", {"size": -1})
    assert status == 400 and body["error"]["reason"] == "[size] parameter cannot be negative, found [-1]"
    status, body = call(server, "POST", f"/{name}/_search", {"match": {"foo": "bar"}})
    assert status == 400
    # track_total_hits bounds the count; -1 turns it off.
    limited = es.search(index=name, track_total_hits=0)["hits"]["total"]
    assert limited == {"value": 0, "relation": "gte"}
    assert "total" not in es.search(index=name, track_total_hits=-1)["hits"]
    # Sequence numbers and versions from the body or the URL.
    for hits in (
        es.search(index=name, seq_no_primary_term=True, version=True)["hits"]["hits"],
        call(server, "POST", f"/{name}/_search?seq_no_primary_term=true&version=true")[1]["hits"]["hits"],
    ):
        assert (hits[0]["_seq_no"], hits[0]["_primary_term"], hits[0]["_version"]) == (1, 1, 2)
    assert "_seq_no" not in es.search(index=name)["hits"]["hits"][0]
    # URL `_source` parameters win over the body's; `stored_fields` hides the implicit source.
    status, body = call(server, "POST", f"/{name}/_search?_source_includes=include.field1", {"_source": "include.field2"})
    assert body["hits"]["hits"][0]["_source"] == {"include": {"field1": "v1"}}
    assert "_source" not in es.search(index=name, stored_fields=["include.field2"])["hits"]["hits"][0]
    assert es.search(index=name, stored_fields=["include.field2", "_source"])["hits"]["hits"][0]["_source"]["foo"] == "bar"
    # Missing and unmatched indices.
    missing = unique("nothere")
    with pytest.raises(NotFoundError):
        es.search(index=missing)
    assert es.search(index=missing, ignore_unavailable=True, rest_total_hits_as_int=True)["hits"]["total"] == 0
    assert es.search(index=f"{missing}*", rest_total_hits_as_int=True)["hits"]["total"] == 0
    with pytest.raises(NotFoundError):
        es.search(index=f"{missing}*", allow_no_indices=False)


def test_count_edge_cases(server, es):
    # count/10_basic.
    name = unique("count")
    es.index(index=name, id="1", document={"foo": "bar"}, refresh=True)
    assert es.count(index=name)["count"] == 1
    assert call(server, "POST", f"/{name}/_count", {})[1]["count"] == 1
    status, body = call(server, "POST", f"/{name}/_count", {"match": {"foo": "bar"}})
    assert status == 400 and body["error"]["reason"] == "request does not support [match]"
    status, body = call(server, "POST", f"/{name}/_count?terminate_after=-1")
    assert status == 400 and body["error"]["reason"] == "terminateAfter must be > 0"
    status, body = call(server, "POST", f"/{name}/_count?q=foo:bar")
    assert status == 200 and body["count"] == 1


def test_cluster_health_waits_that_cannot_be_met_time_out(server, es):
    # cluster.health/10_basic and 20_request_timeout: on one node nothing changes while waiting.
    name = unique("health")
    es.indices.create(index=name, settings={"number_of_replicas": 0})
    assert es.cluster.health(index=name, wait_for_status="green", wait_for_no_relocating_shards=True)["timed_out"] is False
    assert es.cluster.health(index=name, wait_for_active_shards="all")["timed_out"] is False
    assert es.cluster.health(index=name, wait_for_active_shards="1")["timed_out"] is False
    for query in ("wait_for_nodes=10&timeout=1ms", "wait_for_active_shards=5&timeout=1ms"):
        status, body = call(server, "GET", f"/_cluster/health/{name}?{query}")
        assert status == 408 and body["timed_out"] is True, query
    status, body = call(server, "GET", "/_cluster/health?wait_for_nodes=%3E%3D1")
    assert status == 200 and body["timed_out"] is False
    # A missing index is red, and the wait for it times out.
    status, body = call(server, "GET", f"/_cluster/health/{unique('nothere')}?timeout=1ms")
    assert status == 408 and body["status"] == "red" and body["timed_out"] is True


def test_filter_path(server, es):
    # search/70_response_filtering.
    name = unique("filterpath")
    helpers.bulk(
        es,
        [
            {"_index": name, "_id": "1", "_source": {"name": "First document", "properties": {"size": 123, "meta": {"foo": "bar"}}}},
            {"_index": name, "_id": "2", "_source": {"name": "Second document", "properties": {"size": 465, "meta": {"foo": "bar", "baz": "qux"}}}},
        ],
        refresh=True,
    )
    assert set(es.search(index=name, filter_path="took").body) == {"took"}
    assert es.search(index=name, filter_path="_shards.*").body == {"_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0}}
    found = es.search(index=name, filter_path=["hits.**._i*", "**.total"], rest_total_hits_as_int=True).body
    assert found["hits"]["total"] == 2 and found["_shards"]["total"] == 1 and "took" not in found
    assert sorted(hit["_id"] for hit in found["hits"]["hits"]) == ["1", "2"]
    assert all(set(hit) == {"_index", "_id"} for hit in found["hits"]["hits"])
    sources = es.search(index=name, filter_path=["-**._source.properties", "**._source"]).body
    # Equal scores come back in no fixed order: compare sorted.
    by_name = lambda hits: sorted((hit["_source"] for hit in hits), key=json.dumps)  # noqa: E731
    assert by_name(sources["hits"]["hits"]) == [{"name": "First document"}, {"name": "Second document"}]
    sizes = es.search(index=name, filter_path=["**.properties", "-hits.hits._source.properties.meta"]).body
    assert by_name(sizes["hits"]["hits"]) == [{"properties": {"size": 123}}, {"properties": {"size": 465}}]
    meta = es.search(index=name, filter_path="**._source,-**.meta.foo").body["hits"]["hits"]
    assert sorted(json.dumps(hit["_source"]["properties"]["meta"]) for hit in meta) == ['{"baz": "qux"}', "{}"]
    status, body = call(server, "POST", f"/{name}/_count?filter_path=-*", {"query": {"match_all": {}}})
    assert (status, body) == (200, {})
    # Errors are never filtered.
    status, body = call(server, "GET", f"/{unique('nothere')}/_doc/1?filter_path=took")
    assert status == 404 and body["error"]["type"] == "index_not_found_exception"
    assert es.get(index=name, id="1", filter_path="_source.name").body == {"_source": {"name": "First document"}}


def test_require_alias_refuses_writes_to_names_that_are_not_aliases(server, es):
    # bulk/10_basic "When setting require_alias flag", index/70_require_alias,
    # update/95_require_alias. Sluice has no aliases, so nothing is created.
    name = unique("noalias")
    status, body = bulk(
        server,
        [
            {"index": {"_index": name, "require_alias": True}}, {"f": 1},
            {"index": {"_index": f"{name}-created"}}, {"f": 2},
        ],
        "?refresh=true",
    )
    refused = body["items"][0]["index"]
    assert refused["status"] == 404 and refused["error"]["type"] == "index_not_found_exception"
    assert refused["error"]["reason"] == f"no such index [{name}] and [require_alias] request flag is [true] and [{name}] is not an alias"
    assert body["items"][1]["index"]["result"] == "created"
    status, body = bulk(
        server,
        [{"index": {"_index": name}}, {"f": 1}, {"index": {"_index": f"{name}-created", "require_alias": False}}, {"f": 2}],
        "?require_alias=true",
    )
    assert body["items"][0]["index"]["status"] == 404 and body["items"][1]["index"]["status"] == 201
    with pytest.raises(NotFoundError):
        es.index(index=name, id="1", document={"f": 1}, require_alias=True)
    with pytest.raises(NotFoundError):
        es.update(index=name, id="1", doc={"f": 1}, doc_as_upsert=True, require_alias=True)
    assert not es.indices.exists(index=name)


def test_soft_deletes_cannot_be_disabled(es):
    # indices.create/10_basic "Create index without soft deletes".
    with pytest.raises(BadRequestError) as refused:
        es.indices.create(index=unique("softdeletes"), settings={"soft_deletes.enabled": False})
    assert refused.value.body["error"]["type"] == "illegal_argument_exception"


def test_unknown_pipelines_are_refused(server, es):
    # bulk/90_pipeline: Sluice has no ingest pipelines, so every named one is unknown.
    name = unique("pipeline")
    status, body = bulk(
        server,
        [
            {"index": {"_index": name, "_id": "1"}}, {"f1": "v1"},
            {"index": {"_index": name, "_id": "2", "pipeline": "mypipeline"}}, {"f1": "v2"},
            {"index": {"_index": name, "_id": "3", "pipeline": "_none"}}, {"f1": "v3"},
        ],
        "?refresh=true",
    )
    assert body["errors"] is True
    assert body["items"][0]["index"]["result"] == "created"
    assert body["items"][1]["index"]["status"] == 400
    assert body["items"][1]["index"]["error"] == {"type": "illegal_argument_exception", "reason": "pipeline with id [mypipeline] does not exist"}
    assert body["items"][2]["index"]["result"] == "created"
    assert es.count(index=name)["count"] == 2
    with pytest.raises(BadRequestError) as single:
        es.index(index=name, id="4", document={"f": 1}, pipeline="mypipeline")
    assert single.value.body["error"]["reason"] == "pipeline with id [mypipeline] does not exist"
    status, body = bulk(server, [{"index": {"_index": name, "_id": "5"}}, {"f": 1}], "?pipeline=other")
    assert body["items"][0]["index"]["error"]["reason"] == "pipeline with id [other] does not exist"


def test_ignore_malformed_keeps_the_document(es):
    # get/110_ignore_malformed, with a number field (Sluice has no `ip` type).
    name = unique("malformed")
    es.indices.create(index=name, mappings={"properties": {"n": {"type": "long", "ignore_malformed": True}}})
    es.index(index=name, id="1", document={"n": 7}, refresh=True)
    es.index(index=name, id="2", document={"n": "garbage"}, refresh=True)
    es.index(index=name, id="3", document={"n": [10, 11, "hot garbage", 7]}, refresh=True)
    with pytest.raises(BadRequestError) as refused:
        es.index(index=name, id="4", document={"n": {"object": "wow"}})
    assert "failed to parse field [n] of type [long] in document with id '4'. Preview of field's value: '{object=wow}'" in refused.value.body["error"]["reason"]
    assert es.get(index=name, id="2")["_source"] == {"n": "garbage"}
    assert es.get(index=name, id="3")["_source"] == {"n": [10, 11, "hot garbage", 7]}
    assert sorted(hit["_id"] for hit in es.search(index=name, query={"term": {"n": 7}})["hits"]["hits"]) == ["1", "3"]
