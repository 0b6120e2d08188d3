"""The official `elasticsearch` 9.x Python client, used unchanged but for the URL, against the
document store: indices, single-document APIs, bulk helpers, versioning, search and count, cat,
health, mappings (explicit, dynamic, strict) and the errors and exception classes it raises."""

import threading

import pytest
from elasticsearch import (
    ApiError,
    BadRequestError,
    ConflictError,
    Elasticsearch,
    NotFoundError,
    helpers,
)

from conftest import unique


def assert_error_shape(body, error_type, status):
    """Elasticsearch's error body: `{"error": {"root_cause": [...], "type", "reason"}, "status"}`."""
    assert body["status"] == status
    error = body["error"]
    assert error["type"] == error_type
    assert isinstance(error["reason"], str) and error["reason"]
    assert isinstance(error["root_cause"], list) and error["root_cause"]
    assert error["root_cause"][0]["type"] == error_type


def test_info_identifies_as_elasticsearch(es):
    info = es.info()
    assert info["version"]["number"].startswith("8.")
    assert info["tagline"] == "You Know, for Search"


def test_create_get_exists_delete_index(es):
    name = unique("books")
    created = es.indices.create(
        index=name,
        settings={"number_of_shards": 1, "number_of_replicas": 0},
        mappings={"properties": {"title": {"type": "text"}, "year": {"type": "integer"}}},
    )
    assert created.body == {"acknowledged": True, "shards_acknowledged": True, "index": name}
    assert es.indices.exists(index=name)
    got = es.indices.get(index=name)
    assert got[name]["mappings"]["properties"]["year"] == {"type": "integer"}
    assert got[name]["settings"]["index"]["number_of_replicas"] == "0"
    with pytest.raises(BadRequestError) as already:
        es.indices.create(index=name)
    assert_error_shape(already.value.body, "resource_already_exists_exception", 400)
    assert es.indices.delete(index=name).body == {"acknowledged": True}
    assert not es.indices.exists(index=name)
    with pytest.raises(NotFoundError) as missing:
        es.indices.delete(index=name)
    assert_error_shape(missing.value.body, "index_not_found_exception", 404)


def test_index_with_and_without_id_and_realtime_get(es):
    name = unique("docs")
    put = es.index(index=name, id="1", document={"title": "one"})
    assert put.meta.status == 201
    assert put["result"] == "created" and put["_version"] == 1 and put["_id"] == "1"
    assert put["_seq_no"] == 0 and put["_primary_term"] == 1
    again = es.index(index=name, id="1", document={"title": "uno"})
    assert again.meta.status == 200
    assert again["result"] == "updated" and again["_version"] == 2 and again["_seq_no"] == 1
    auto = es.index(index=name, document={"title": "two"})
    assert auto["result"] == "created" and len(auto["_id"]) >= 10
    # Real-time get: visible before any refresh.
    got = es.get(index=name, id="1")
    assert got["found"] and got["_source"] == {"title": "uno"} and got["_version"] == 2
    assert es.get(index=name, id=auto["_id"])["_source"] == {"title": "two"}
    assert es.get_source(index=name, id="1").body == {"title": "uno"}
    assert es.exists(index=name, id="1")
    assert not es.exists(index=name, id="nope")
    assert es.exists_source(index=name, id="1")
    with pytest.raises(NotFoundError) as missing:
        es.get(index=name, id="nope")
    assert missing.value.body == {"_index": name, "_id": "nope", "found": False}
    filtered = es.get(index=name, id="1", source_includes=["title"])
    assert filtered["_source"] == {"title": "uno"}
    assert "_source" not in es.get(index=name, id="1", source=False)


def test_create_op_type_conflicts_on_existing_id(es):
    name = unique("create")
    assert es.create(index=name, id="1", document={"a": 1})["result"] == "created"
    with pytest.raises(ConflictError) as conflict:
        es.create(index=name, id="1", document={"a": 2})
    assert_error_shape(conflict.value.body, "version_conflict_engine_exception", 409)
    assert (
        conflict.value.body["error"]["reason"]
        == "[1]: version conflict, document already exists (current version [1])"
    )
    assert es.get(index=name, id="1")["_source"] == {"a": 1}


def test_update_partial_upsert_doc_as_upsert_and_noop(es):
    name = unique("upd")
    es.index(index=name, id="1", document={"a": 1, "b": {"c": 1}})
    partial = es.update(index=name, id="1", doc={"b": {"d": 2}, "e": 3})
    assert partial["result"] == "updated" and partial["_version"] == 2
    assert es.get_source(index=name, id="1").body == {"a": 1, "b": {"c": 1, "d": 2}, "e": 3}
    noop = es.update(index=name, id="1", doc={"a": 1})
    assert noop["result"] == "noop" and noop["_version"] == 2
    forced = es.update(index=name, id="1", doc={"a": 1}, detect_noop=False)
    assert forced["result"] == "updated" and forced["_version"] == 3
    with pytest.raises(NotFoundError) as missing:
        es.update(index=name, id="2", doc={"a": 1})
    assert_error_shape(missing.value.body, "document_missing_exception", 404)
    upsert = es.update(index=name, id="2", doc={"a": 1}, upsert={"a": 0, "fresh": True})
    assert upsert["result"] == "created" and upsert.meta.status == 201
    assert es.get_source(index=name, id="2").body == {"a": 0, "fresh": True}
    upsert_again = es.update(index=name, id="2", doc={"a": 5}, upsert={"a": 0})
    assert upsert_again["result"] == "updated"
    assert es.get_source(index=name, id="2").body == {"a": 5, "fresh": True}
    as_upsert = es.update(index=name, id="3", doc={"z": 1}, doc_as_upsert=True)
    assert as_upsert["result"] == "created"
    assert es.get_source(index=name, id="3").body == {"z": 1}


def test_delete_document(es):
    name = unique("del")
    es.index(index=name, id="1", document={"a": 1})
    deleted = es.delete(index=name, id="1")
    assert deleted["result"] == "deleted" and deleted["_version"] == 2
    assert not es.exists(index=name, id="1")
    with pytest.raises(NotFoundError) as missing:
        es.delete(index=name, id="1")
    assert missing.value.body["result"] == "not_found"
    recreated = es.index(index=name, id="1", document={"a": 2})
    assert recreated["result"] == "created" and recreated["_version"] == 4


def test_mget_by_ids_and_docs(es):
    name = unique("mget")
    other = unique("mget-other")
    es.index(index=name, id="1", document={"a": 1})
    es.index(index=name, id="2", document={"a": 2})
    es.index(index=other, id="1", document={"b": 1})
    by_ids = es.mget(index=name, ids=["1", "2", "3"])
    assert [d["found"] for d in by_ids["docs"]] == [True, True, False]
    assert by_ids["docs"][1]["_source"] == {"a": 2}
    by_docs = es.mget(docs=[{"_index": name, "_id": "1"}, {"_index": other, "_id": "1"}])
    assert [d["_source"] for d in by_docs["docs"]] == [{"a": 1}, {"b": 1}]


def test_bulk_helpers_with_per_item_errors(es):
    name = unique("bulk")
    es.indices.create(index=name, mappings={"properties": {"n": {"type": "long"}}})
    actions = [{"_index": name, "_id": str(i), "_source": {"n": i}} for i in range(50)]
    success, errors = helpers.bulk(es, actions, refresh=True)
    assert success == 50 and errors == []
    assert es.count(index=name)["count"] == 50
    mixed = [
        {"_index": name, "_id": "ok-1", "_source": {"n": 1}},
        {"_index": name, "_id": "bad", "_source": {"n": "not a number"}},
        {"_op_type": "create", "_index": name, "_id": "0", "_source": {"n": 0}},
        {"_op_type": "update", "_index": name, "_id": "1", "doc": {"extra": True}},
        {"_op_type": "update", "_index": name, "_id": "missing", "doc": {"extra": True}},
        {"_op_type": "delete", "_index": name, "_id": "2"},
        {"_index": name, "_id": "ok-2", "_source": {"n": 2}},
    ]
    success, errors = helpers.bulk(es, mixed, raise_on_error=False, refresh="wait_for")
    assert success == 4
    failed = {next(iter(e.values()))["_id"]: next(iter(e.values())) for e in errors}
    assert set(failed) == {"bad", "0", "missing"}
    assert failed["bad"]["status"] == 400
    assert failed["bad"]["error"]["type"] == "document_parsing_exception"
    assert failed["0"]["status"] == 409
    assert failed["0"]["error"]["type"] == "version_conflict_engine_exception"
    assert failed["missing"]["status"] == 404
    assert failed["missing"]["error"]["type"] == "document_missing_exception"
    assert es.get_source(index=name, id="1").body == {"n": 1, "extra": True}
    assert not es.exists(index=name, id="2") and not es.exists(index=name, id="bad")
    assert es.count(index=name)["count"] == 51
    with pytest.raises(helpers.BulkIndexError) as raised:
        helpers.bulk(es, [{"_index": name, "_id": "bad", "_source": {"n": "x"}}])
    assert len(raised.value.errors) == 1


def test_streaming_bulk_reports_every_item(es):
    name = unique("stream")
    es.indices.create(index=name, mappings={"properties": {"n": {"type": "long"}}})

    def actions():
        for i in range(120):
            yield {"_index": name, "_id": str(i), "_source": {"n": "NaN!" if i % 40 == 7 else i}}

    results = list(
        helpers.streaming_bulk(es, actions(), chunk_size=25, raise_on_error=False, max_retries=0)
    )
    assert len(results) == 120
    failures = [info["index"]["_id"] for ok, info in results if not ok]
    assert failures == ["7", "47", "87"]
    es.indices.refresh(index=name)
    assert es.count(index=name)["count"] == 117


def test_external_versions(es):
    name = unique("ext")
    first = es.index(index=name, id="1", document={"v": 4}, version=4, version_type="external")
    assert first["_version"] == 4 and first["result"] == "created"
    with pytest.raises(ConflictError) as stale:
        es.index(index=name, id="1", document={"v": 2}, version=2, version_type="external")
    assert_error_shape(stale.value.body, "version_conflict_engine_exception", 409)
    assert (
        stale.value.body["error"]["reason"]
        == "[1]: version conflict, current version [4] is higher or equal to the one provided [2]"
    )
    with pytest.raises(ConflictError):
        es.index(index=name, id="1", document={"v": 4}, version=4, version_type="external")
    same = es.index(index=name, id="1", document={"v": 4.1}, version=4, version_type="external_gte")
    assert same["_version"] == 4 and same["result"] == "updated"
    with pytest.raises(ConflictError) as lower:
        es.index(index=name, id="1", document={"v": 3}, version=3, version_type="external_gte")
    assert (
        lower.value.body["error"]["reason"]
        == "[1]: version conflict, current version [4] is higher than the one provided [3]"
    )
    newer = es.index(index=name, id="1", document={"v": 9}, version=9, version_type="external")
    assert newer["_version"] == 9
    assert es.get(index=name, id="1")["_source"] == {"v": 9}


def test_if_seq_no_and_if_primary_term(es):
    name = unique("occ")
    first = es.index(index=name, id="1", document={"n": 1})
    second = es.index(
        index=name,
        id="1",
        document={"n": 2},
        if_seq_no=first["_seq_no"],
        if_primary_term=first["_primary_term"],
    )
    assert second["_version"] == 2
    with pytest.raises(ConflictError) as stale:
        es.index(
            index=name,
            id="1",
            document={"n": 3},
            if_seq_no=first["_seq_no"],
            if_primary_term=first["_primary_term"],
        )
    assert_error_shape(stale.value.body, "version_conflict_engine_exception", 409)
    assert stale.value.body["error"]["reason"] == (
        f"[1]: version conflict, required seqNo [{first['_seq_no']}], primary term [1]. "
        f"current document has seqNo [{second['_seq_no']}] and primary term [1]"
    )
    with pytest.raises(ConflictError):
        es.delete(index=name, id="1", if_seq_no=first["_seq_no"], if_primary_term=1)
    assert es.get_source(index=name, id="1").body == {"n": 2}


def test_stale_external_write_after_delete_is_refused(es):
    name = unique("tomb")
    es.index(index=name, id="1", document={"v": 5}, version=5, version_type="external")
    deleted = es.delete(index=name, id="1", version=7, version_type="external")
    assert deleted["result"] == "deleted" and deleted["_version"] == 7
    with pytest.raises(ConflictError) as stale:
        es.index(index=name, id="1", document={"v": 6}, version=6, version_type="external")
    assert (
        stale.value.body["error"]["reason"]
        == "[1]: version conflict, current version [7] is higher or equal to the one provided [6]"
    )
    assert not es.exists(index=name, id="1")
    revived = es.index(index=name, id="1", document={"v": 8}, version=8, version_type="external")
    assert revived["result"] == "created"


def test_stale_external_write_after_delete_is_refused_after_restart(sluice_factory, tmp_path):
    data_dir = tmp_path / "restart-data"
    server = sluice_factory(data_dir)
    es = Elasticsearch(server.es_url, request_timeout=30)
    es.index(index="tomb", id="1", document={"v": 5}, version=5, version_type="external")
    es.index(index="tomb", id="2", document={"v": 1}, version=3, version_type="external")
    es.delete(index="tomb", id="1", version=7, version_type="external")
    es.close()
    assert server.stop() == 0

    server = sluice_factory(data_dir)
    es = Elasticsearch(server.es_url, request_timeout=30)
    with pytest.raises(ConflictError) as stale:
        es.index(index="tomb", id="1", document={"v": 6}, version=6, version_type="external")
    assert (
        stale.value.body["error"]["reason"]
        == "[1]: version conflict, current version [7] is higher or equal to the one provided [6]"
    )
    assert not es.exists(index="tomb", id="1")
    assert es.get(index="tomb", id="2")["_version"] == 3
    with pytest.raises(ConflictError):
        es.index(index="tomb", id="2", document={"v": 0}, version=2, version_type="external")
    es.close()


def test_search_and_count(es):
    name = unique("search")
    es.indices.create(index=name, mappings={"properties": {"tag": {"type": "keyword"}, "n": {"type": "long"}}})
    for i in range(25):
        es.index(index=name, id=str(i), document={"tag": "even" if i % 2 == 0 else "odd", "n": i})
    es.indices.refresh(index=name)
    everything = es.search(index=name, query={"match_all": {}})
    assert everything["hits"]["total"] == {"value": 25, "relation": "eq"}
    assert len(everything["hits"]["hits"]) == 10
    assert es.count(index=name)["count"] == 25
    even = es.search(index=name, query={"term": {"tag": "even"}}, size=100)
    assert sorted(int(h["_id"]) for h in even["hits"]["hits"]) == list(range(0, 25, 2))
    assert es.count(index=name, query={"term": {"tag": "odd"}})["count"] == 12
    ids = es.search(index=name, query={"ids": {"values": ["3", "4", "404"]}})
    assert sorted(h["_id"] for h in ids["hits"]["hits"]) == ["3", "4"]
    pages = [
        [h["_id"] for h in es.search(index=name, query={"match_all": {}}, from_=start, size=10)["hits"]["hits"]]
        for start in range(0, 30, 10)
    ]
    assert [len(page) for page in pages] == [10, 10, 5]
    assert sorted(int(i) for page in pages for i in page) == list(range(25))


def test_refresh_parameter_makes_writes_searchable(es):
    name = unique("refresh")
    es.index(index=name, id="1", document={"a": 1}, refresh=True)
    assert es.count(index=name)["count"] == 1
    es.index(index=name, id="2", document={"a": 2}, refresh="wait_for")
    assert es.count(index=name)["count"] == 2
    es.delete(index=name, id="1", refresh=True)
    assert es.count(index=name)["count"] == 1
    es.update(index=name, id="2", doc={"b": 1}, refresh=True)
    assert es.search(index=name, query={"term": {"b": 1}})["hits"]["total"]["value"] == 1


def test_cat_indices_and_cluster_health(es):
    name = unique("cat")
    es.indices.create(index=name, settings={"number_of_replicas": 0})
    helpers.bulk(es, ({"_index": name, "_id": str(i), "_source": {"i": i}} for i in range(7)), refresh=True)
    rows = es.cat.indices(index=name, format="json")
    assert len(rows) == 1
    assert rows[0]["index"] == name and rows[0]["docs.count"] == "7"
    assert rows[0]["health"] == "green" and rows[0]["status"] == "open"
    text = es.cat.indices(index=name, v=True)
    header, line = text.body.strip().split("\n")
    columns = header.split()
    values = line.split()
    assert columns[:7] == ["health", "status", "index", "uuid", "pri", "rep", "docs.count"]
    assert values[columns.index("index")] == name
    assert values[columns.index("docs.count")] == "7"
    health = es.cluster.health()
    assert health["status"] in ("green", "yellow")
    assert health["number_of_nodes"] == 1 and health["timed_out"] is False
    assert es.cluster.health(index=name)["status"] == "green"


def test_put_and_get_mapping(es):
    name = unique("mapping")
    es.indices.create(index=name, mappings={"properties": {"title": {"type": "text"}}})
    put = es.indices.put_mapping(index=name, properties={"tags": {"type": "keyword"}})
    assert put.body == {"acknowledged": True}
    mapping = es.indices.get_mapping(index=name)
    assert mapping[name]["mappings"]["properties"] == {
        "title": {"type": "text"},
        "tags": {"type": "keyword"},
    }
    with pytest.raises(BadRequestError) as changed:
        es.indices.put_mapping(index=name, properties={"title": {"type": "long"}})
    assert changed.value.body["error"]["type"] == "illegal_argument_exception"


def test_dynamic_mapping_results(es):
    name = unique("dynamic")
    es.index(
        index=name,
        id="1",
        document={
            "title": "hello world",
            "count": 3,
            "ratio": 1.5,
            "flag": True,
            "when": "2024-05-01T10:00:00Z",
            "owner": {"name": "ann", "age": 40},
        },
    )
    properties = es.indices.get_mapping(index=name)[name]["mappings"]["properties"]
    assert properties["title"] == {
        "type": "text",
        "fields": {"keyword": {"type": "keyword", "ignore_above": 256}},
    }
    assert properties["count"] == {"type": "long"}
    assert properties["ratio"] == {"type": "float"}
    assert properties["flag"] == {"type": "boolean"}
    assert properties["when"] == {"type": "date"}
    assert properties["owner"]["properties"]["age"] == {"type": "long"}
    assert properties["owner"]["properties"]["name"]["type"] == "text"
    es.indices.refresh(index=name)
    assert es.count(index=name, query={"term": {"title.keyword": "hello world"}})["count"] == 1
    assert es.count(index=name, query={"term": {"owner.age": 40}})["count"] == 1


def test_value_that_does_not_fit_its_type_is_refused_and_not_written(es):
    name = unique("types")
    es.indices.create(index=name, mappings={"properties": {"n": {"type": "long"}}})
    with pytest.raises(BadRequestError) as refused:
        es.index(index=name, id="1", document={"n": "abc"})
    assert_error_shape(refused.value.body, "document_parsing_exception", 400)
    assert not es.exists(index=name, id="1")
    es.indices.refresh(index=name)
    assert es.count(index=name)["count"] == 0


def test_strict_dynamic_mapping_refuses_new_fields(es):
    name = unique("strict")
    es.indices.create(index=name, mappings={"dynamic": "strict", "properties": {"a": {"type": "keyword"}}})
    es.index(index=name, id="1", document={"a": "x"})
    with pytest.raises(BadRequestError) as refused:
        es.index(index=name, id="2", document={"a": "y", "b": 1})
    assert_error_shape(refused.value.body, "strict_dynamic_mapping_exception", 400)
    assert "mapping set to strict, dynamic introduction of [b] within [_doc] is not allowed" in (
        refused.value.body["error"]["reason"]
    )
    assert not es.exists(index=name, id="2")


@pytest.mark.parametrize("bad_name", ["UPPER", "_leading", "with space", "a*b", "-dash", "..", "x" * 256])
def test_invalid_index_names(es, bad_name):
    with pytest.raises(BadRequestError) as refused:
        es.indices.create(index=bad_name)
    assert_error_shape(refused.value.body, "invalid_index_name_exception", 400)
    with pytest.raises(BadRequestError) as refused_doc:
        es.index(index=bad_name, id="1", document={"a": 1})
    assert_error_shape(refused_doc.value.body, "invalid_index_name_exception", 400)


def test_unknown_index_is_404(es):
    name = unique("ghost")
    for call in (
        lambda: es.get(index=name, id="1"),
        lambda: es.search(index=name),
        lambda: es.count(index=name),
        lambda: es.indices.get_mapping(index=name),
        lambda: es.delete(index=name, id="1"),
    ):
        with pytest.raises(NotFoundError) as missing:
            call()
        assert_error_shape(missing.value.body, "index_not_found_exception", 404)
        assert missing.value.body["error"]["reason"] == f"no such index [{name}]"
        assert missing.value.body["error"]["index"] == name


def test_malformed_json_is_400_with_error_shape(es):
    name = unique("malformed")
    es.indices.create(index=name)
    headers = {"content-type": "application/json"}
    for method, path, body in (
        ("PUT", f"/{name}/_doc/1", b'{"a": '),
        ("POST", f"/{name}/_search", b'{"query": {"match_all": {}'),
        ("POST", f"/{name}/_update/1", b"{doc: 1}"),
        ("PUT", f"/{unique('malformed-create')}", b'{"settings": '),
    ):
        with pytest.raises(BadRequestError) as refused:
            es.perform_request(method, path, headers=headers, body=body)
        assert refused.value.meta.status == 400
        body_json = refused.value.body
        assert body_json["status"] == 400
        assert body_json["error"]["root_cause"][0]["type"] == body_json["error"]["type"]
        assert body_json["error"]["reason"]
    es.indices.refresh(index=name)
    assert es.count(index=name)["count"] == 0


def test_api_error_carries_status_and_type(es):
    name = unique("apierror")
    with pytest.raises(ApiError) as raised:
        es.get(index=name, id="1")
    assert raised.value.meta.status == 404
    assert raised.value.message == "index_not_found_exception"


def test_concurrent_writers_get_distinct_versions_and_one_cas_winner(shared_sluice, es):
    name = unique("concurrent")
    results = []
    lock = threading.Lock()

    def writer(n):
        client = Elasticsearch(shared_sluice.es_url, request_timeout=30)
        for i in range(20):
            response = client.index(index=name, id="same", document={"writer": n, "i": i})
            with lock:
                results.append((response["_version"], response["_seq_no"]))
        client.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(v for v, _ in results) == list(range(1, 101))
    assert len({s for _, s in results}) == 100
    current = es.get(index=name, id="same")
    assert current["_version"] == 100
    winners = []

    def compare_and_set(n):
        client = Elasticsearch(shared_sluice.es_url, request_timeout=30)
        try:
            client.index(
                index=name,
                id="same",
                document={"winner": n},
                if_seq_no=current["_seq_no"],
                if_primary_term=current["_primary_term"],
            )
            with lock:
                winners.append(n)
        except ConflictError:
            pass
        client.close()

    threads = [threading.Thread(target=compare_and_set, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1
    assert es.get_source(index=name, id="same").body == {"winner": winners[0]}


def test_state_after_restart(sluice_factory, tmp_path):
    """Versions and sequence numbers continue after a restart, a deleted and re-created index does
    not bring back its old documents, and unrefreshed writes are searchable after recovery."""
    data_dir = tmp_path / "state-data"
    server = sluice_factory(data_dir)
    es = Elasticsearch(server.es_url, request_timeout=30)
    es.index(index="old", id="1", document={"generation": 1})
    es.indices.delete(index="old")
    es.indices.create(index="old")
    es.index(index="old", id="2", document={"generation": 2})
    es.index(index="docs", id="1", document={"n": 1})
    last = es.index(index="docs", id="1", document={"n": 2})
    es.index(index="docs", id="deleted", document={"n": 0})
    es.delete(index="docs", id="deleted")
    auto_ids = {es.index(index="docs", document={"auto": True})["_id"] for _ in range(5)}
    es.close()
    assert server.stop() == 0

    server = sluice_factory(data_dir)
    es = Elasticsearch(server.es_url, request_timeout=30)
    assert not es.exists(index="old", id="1")
    assert es.get_source(index="old", id="2").body == {"generation": 2}
    # Recovery makes the documents searchable without an explicit refresh.
    assert es.count(index="docs")["count"] == 6
    again = es.index(index="docs", id="1", document={"n": 3})
    assert again["_version"] == 3 and again["_seq_no"] > last["_seq_no"]
    assert es.index(index="docs", id="deleted", document={"n": 1})["_version"] == 3
    assert not auto_ids & {es.index(index="docs", document={"auto": True})["_id"] for _ in range(5)}
    es.close()
