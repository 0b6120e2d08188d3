"""The `opensearch-py` 3.x client, used unchanged but for the URL, against the document store:
the same foundation as the Elasticsearch client test, through OpenSearch's API surface
(`body=` arguments, `RequestError`/`ConflictError`/`NotFoundError` with `status_code`, `error`
and `info`)."""


import pytest
from opensearchpy import (
    ConflictError,
    NotFoundError,
    OpenSearch,
    RequestError,
    TransportError,
    helpers,
)

from conftest import unique


@pytest.fixture
def client(shared_sluice):
    opensearch = OpenSearch(hosts=[shared_sluice.es_url], timeout=30)
    yield opensearch
    opensearch.close()


def assert_error(raised, error_class, status, error_type):
    """opensearch-py's exceptions carry the status, the error type and the whole body."""
    assert type(raised.value) is error_class
    assert raised.value.status_code == status
    assert raised.value.error == error_type
    body = raised.value.info
    assert body["status"] == status
    assert body["error"]["type"] == error_type
    assert body["error"]["root_cause"][0]["type"] == error_type
    assert body["error"]["reason"]


def test_info(client):
    info = client.info()
    assert info["version"]["number"].startswith("8.")


def test_index_lifecycle(client):
    name = unique("os-books")
    created = client.indices.create(
        index=name,
        body={
            "settings": {"index": {"number_of_shards": 1, "number_of_replicas": 0}},
            "mappings": {"properties": {"title": {"type": "text"}, "year": {"type": "short"}}},
        },
    )
    assert created == {"acknowledged": True, "shards_acknowledged": True, "index": name}
    assert client.indices.exists(index=name) is True
    got = client.indices.get(index=name)
    assert got[name]["mappings"]["properties"]["year"] == {"type": "short"}
    with pytest.raises(RequestError) as already:
        client.indices.create(index=name)
    assert_error(already, RequestError, 400, "resource_already_exists_exception")
    assert client.indices.delete(index=name) == {"acknowledged": True}
    assert client.indices.exists(index=name) is False
    with pytest.raises(NotFoundError) as missing:
        client.indices.delete(index=name)
    assert_error(missing, NotFoundError, 404, "index_not_found_exception")


def test_documents(client):
    name = unique("os-docs")
    put = client.index(index=name, id="a", body={"x": 1})
    assert put["result"] == "created" and put["_version"] == 1
    auto = client.index(index=name, body={"x": 2})
    assert auto["result"] == "created" and auto["_id"]
    assert client.get(index=name, id="a")["_source"] == {"x": 1}
    assert client.get_source(index=name, id="a") == {"x": 1}
    assert client.exists(index=name, id="a") is True
    assert client.exists(index=name, id="b") is False
    with pytest.raises(NotFoundError) as missing:
        client.get(index=name, id="b")
    assert missing.value.status_code == 404
    assert missing.value.info == {"_index": name, "_id": "b", "found": False}
    updated = client.update(index=name, id="a", body={"doc": {"y": 2}})
    assert updated["result"] == "updated" and updated["_version"] == 2
    noop = client.update(index=name, id="a", body={"doc": {"y": 2}})
    assert noop["result"] == "noop"
    upsert = client.update(index=name, id="u", body={"doc": {"y": 1}, "upsert": {"y": 0}})
    assert upsert["result"] == "created"
    assert client.get_source(index=name, id="u") == {"y": 0}
    as_upsert = client.update(index=name, id="v", body={"doc": {"y": 9}, "doc_as_upsert": True})
    assert as_upsert["result"] == "created"
    assert client.get_source(index=name, id="v") == {"y": 9}
    with pytest.raises(NotFoundError) as missing_doc:
        client.update(index=name, id="nothing", body={"doc": {"y": 1}})
    assert_error(missing_doc, NotFoundError, 404, "document_missing_exception")
    assert client.delete(index=name, id="a")["result"] == "deleted"
    assert client.exists(index=name, id="a") is False
    docs = client.mget(index=name, body={"ids": ["u", "a", "v"]})["docs"]
    assert [d["found"] for d in docs] == [True, False, True]


def test_bulk_helpers_with_per_item_errors(client):
    name = unique("os-bulk")
    client.indices.create(index=name, body={"mappings": {"properties": {"n": {"type": "integer"}}}})
    actions = [{"_index": name, "_id": str(i), "_source": {"n": i}} for i in range(30)]
    actions.insert(10, {"_index": name, "_id": "bad", "_source": {"n": {"not": "an integer"}}})
    actions.append({"_op_type": "create", "_index": name, "_id": "3", "_source": {"n": 3}})
    success, errors = helpers.bulk(client, actions, raise_on_error=False, refresh=True)
    assert success == 30
    assert sorted(next(iter(e.values()))["status"] for e in errors) == [400, 409]
    assert client.count(index=name)["count"] == 30
    results = list(
        helpers.streaming_bulk(
            client,
            ({"_index": name, "_id": f"s{i}", "_source": {"n": "x" if i == 5 else i}} for i in range(40)),
            chunk_size=8,
            raise_on_error=False,
        )
    )
    assert [info["index"]["_id"] for ok, info in results if not ok] == ["s5"]
    client.indices.refresh(index=name)
    assert client.count(index=name)["count"] == 69


def test_versions(client):
    name = unique("os-versions")
    client.index(index=name, id="1", body={"v": 4}, params={"version": 4, "version_type": "external"})
    with pytest.raises(ConflictError) as stale:
        client.index(index=name, id="1", body={"v": 2}, params={"version": 2, "version_type": "external"})
    assert_error(stale, ConflictError, 409, "version_conflict_engine_exception")
    assert (
        stale.value.info["error"]["reason"]
        == "[1]: version conflict, current version [4] is higher or equal to the one provided [2]"
    )
    gte = client.index(index=name, id="1", body={"v": 4}, params={"version": 4, "version_type": "external_gte"})
    assert gte["_version"] == 4
    current = client.get(index=name, id="1")
    with pytest.raises(ConflictError):
        client.index(
            index=name,
            id="1",
            body={"v": 0},
            params={"if_seq_no": current["_seq_no"] + 1, "if_primary_term": current["_primary_term"]},
        )
    ok = client.index(
        index=name,
        id="1",
        body={"v": 5},
        params={"if_seq_no": current["_seq_no"], "if_primary_term": current["_primary_term"]},
    )
    assert ok["_version"] == 5
    client.delete(index=name, id="1", params={"version": 10, "version_type": "external"})
    with pytest.raises(ConflictError):
        client.index(index=name, id="1", body={"v": 9}, params={"version": 9, "version_type": "external"})
    assert client.exists(index=name, id="1") is False


def test_search_count_cat_health(client):
    name = unique("os-search")
    for i in range(12):
        client.index(index=name, id=str(i), body={"kind": "a" if i < 4 else "b", "i": i})
    client.indices.refresh(index=name)
    assert client.search(index=name, body={"query": {"match_all": {}}})["hits"]["total"]["value"] == 12
    assert client.count(index=name, body={"query": {"term": {"kind.keyword": "a"}}})["count"] == 4
    ids = client.search(index=name, body={"query": {"ids": {"values": ["1", "11"]}}})
    assert sorted(h["_id"] for h in ids["hits"]["hits"]) == ["1", "11"]
    page = client.search(index=name, body={"query": {"match_all": {}}, "from": 10, "size": 5})
    assert len(page["hits"]["hits"]) == 2
    rows = client.cat.indices(index=name, format="json")
    assert rows[0]["index"] == name and rows[0]["docs.count"] == "12"
    assert name in client.cat.indices()
    assert client.cluster.health()["status"] in ("green", "yellow")


def test_mappings(client):
    name = unique("os-mapping")
    client.index(index=name, id="1", body={"s": "text here", "n": 1, "f": 0.5, "b": False, "d": "2020-01-01"})
    properties = client.indices.get_mapping(index=name)[name]["mappings"]["properties"]
    assert properties["s"]["fields"]["keyword"] == {"type": "keyword", "ignore_above": 256}
    assert [properties[k]["type"] for k in "nfbd"] == ["long", "float", "boolean", "date"]
    assert client.indices.put_mapping(index=name, body={"properties": {"k": {"type": "keyword"}}}) == {
        "acknowledged": True
    }
    assert client.indices.get_mapping(index=name)[name]["mappings"]["properties"]["k"] == {"type": "keyword"}
    with pytest.raises(RequestError) as refused:
        client.index(index=name, id="2", body={"n": "twelve"})
    assert_error(refused, RequestError, 400, "document_parsing_exception")
    assert client.exists(index=name, id="2") is False
    strict = unique("os-strict")
    client.indices.create(index=strict, body={"mappings": {"dynamic": "strict", "properties": {"a": {"type": "long"}}}})
    with pytest.raises(RequestError) as strict_refused:
        client.index(index=strict, id="1", body={"a": 1, "b": 2})
    assert_error(strict_refused, RequestError, 400, "strict_dynamic_mapping_exception")


def test_errors(client):
    with pytest.raises(RequestError) as bad_name:
        client.indices.create(index="Capitals")
    assert_error(bad_name, RequestError, 400, "invalid_index_name_exception")
    ghost = unique("os-ghost")
    with pytest.raises(NotFoundError) as missing:
        client.search(index=ghost, body={"query": {"match_all": {}}})
    assert_error(missing, NotFoundError, 404, "index_not_found_exception")
    name = unique("os-malformed")
    client.indices.create(index=name)
    with pytest.raises(RequestError) as malformed:
        client.transport.perform_request(
            "POST", f"/{name}/_search", body='{"query": {"match_all": {}', headers={"content-type": "application/json"}
        )
    assert malformed.value.status_code == 400
    assert malformed.value.info["error"]["reason"]
    assert isinstance(malformed.value, TransportError)


def test_stale_external_write_after_delete_is_refused_after_restart(sluice_factory, tmp_path):
    data_dir = tmp_path / "os-restart-data"
    server = sluice_factory(data_dir)
    client = OpenSearch(hosts=[server.es_url], timeout=30)
    client.index(index="tomb", id="1", body={"v": 5}, params={"version": 5, "version_type": "external"})
    client.delete(index="tomb", id="1", params={"version": 7, "version_type": "external"})
    client.close()
    assert server.stop() == 0

    server = sluice_factory(data_dir)
    client = OpenSearch(hosts=[server.es_url], timeout=30)
    with pytest.raises(ConflictError) as stale:
        client.index(index="tomb", id="1", body={"v": 6}, params={"version": 6, "version_type": "external"})
    assert (
        stale.value.info["error"]["reason"]
        == "[1]: version conflict, current version [7] is higher or equal to the one provided [6]"
    )
    assert client.exists(index="tomb", id="1") is False
    assert client.index(index="tomb", id="1", body={"v": 8}, params={"version": 8, "version_type": "external"})["result"] == "created"
    client.close()


@pytest.mark.parametrize("bad_name", ["UPPER", "_under", "a b", "a/b", "+plus", "x" * 300])
def test_invalid_index_names(client, bad_name):
    with pytest.raises(RequestError) as refused:
        client.indices.create(index=bad_name)
    assert_error(refused, RequestError, 400, "invalid_index_name_exception")


def test_unknown_index_is_404_everywhere(client):
    ghost = unique("os-nowhere")
    for call in (
        lambda: client.get(index=ghost, id="1"),
        lambda: client.count(index=ghost),
        lambda: client.indices.get_mapping(index=ghost),
        lambda: client.delete(index=ghost, id="1"),
        lambda: client.indices.refresh(index=ghost),
    ):
        with pytest.raises(NotFoundError) as missing:
            call()
        assert_error(missing, NotFoundError, 404, "index_not_found_exception")
    assert client.indices.exists(index=ghost) is False
