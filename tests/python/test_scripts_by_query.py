"""Scripts (the Painless subset), `_update` with `script`/`upsert`/`scripted_upsert`, bulk
`update` scripts, `_delete_by_query`, `_update_by_query`, `_reindex` and tasks, through the
official `elasticsearch` 9.x and `opensearch-py` 3.x clients against the real binary."""

import pytest
from elasticsearch import BadRequestError, ConflictError, NotFoundError
from opensearchpy import RequestError as OsRequestError

from conftest import unique


def fill(es, index, documents, settings=None):
    es.indices.create(index=index, settings=settings or {})
    for doc_id, document in documents.items():
        es.index(index=index, id=doc_id, document=document)
    es.indices.refresh(index=index)


def test_update_scripts_change_noop_and_delete(es):
    index = unique("scripts")
    fill(es, index, {"1": {"counter": 1, "tags": ["a"], "old": True}})
    answer = es.update(
        index=index,
        id="1",
        script={
            "source": "ctx._source.counter += params.n; if (!ctx._source.tags.contains(params.tag)) { ctx._source.tags.add(params.tag) } ctx._source.remove('old')",
            "lang": "painless",
            "params": {"n": 4, "tag": "b"},
        },
    )
    assert answer["result"] == "updated"
    assert es.get(index=index, id="1")["_source"] == {"counter": 5, "tags": ["a", "b"]}
    noop = es.update(index=index, id="1", script="if (ctx._source.counter > 3) { ctx.op = 'noop' }")
    assert noop["result"] == "noop"
    deleted = es.update(index=index, id="1", script={"source": "ctx.op = 'delete'"})
    assert deleted["result"] == "deleted"
    with pytest.raises(NotFoundError):
        es.get(index=index, id="1")


def test_upserts_with_scripts(es):
    index = unique("upserts")
    es.indices.create(index=index)
    plain = es.update(index=index, id="u", script="ctx._source.n += 1", upsert={"n": 0})
    assert plain["result"] == "created"
    assert es.get(index=index, id="u")["_source"] == {"n": 0}
    es.update(index=index, id="u", script="ctx._source.n += 1", upsert={"n": 0})
    assert es.get(index=index, id="u")["_source"] == {"n": 1}
    scripted = es.update(
        index=index,
        id="s",
        script={"source": "ctx._source.n = params.start * 2", "params": {"start": 21}},
        upsert={},
        scripted_upsert=True,
    )
    assert scripted["result"] == "created"
    assert es.get(index=index, id="s")["_source"] == {"n": 42}
    with pytest.raises(NotFoundError):
        es.update(index=index, id="missing", script="ctx._source.n = 1")


def test_script_errors_are_400_script_exceptions(es):
    index = unique("script-errors")
    fill(es, index, {"1": {"n": 1}})
    with pytest.raises(BadRequestError) as compile_error:
        es.update(index=index, id="1", script="for (def x : params.l) { ctx._source.n = x }")
    error = compile_error.value.body["error"]
    assert error["type"] == "script_exception"
    assert error["reason"] == "compile error"
    assert error["lang"] == "painless"
    assert error["script_stack"][1].endswith("^---- HERE")
    assert "loops ([for])" in error["caused_by"]["reason"]
    with pytest.raises(BadRequestError) as runtime_error:
        es.update(index=index, id="1", script="ctx._source.missing.x = 1")
    error = runtime_error.value.body["error"]
    assert error["type"] == "illegal_argument_exception"
    assert error["reason"] == "failed to execute script"
    assert error["caused_by"]["type"] == "script_exception"
    assert error["caused_by"]["reason"] == "runtime error"
    assert error["caused_by"]["caused_by"]["type"] == "null_pointer_exception"
    assert error["root_cause"][0]["type"] == "script_exception"
    with pytest.raises(BadRequestError):
        es.update(index=index, id="1", script={"source": "1", "lang": "expression"})


def test_bulk_update_scripts_apply_in_order(es):
    index = unique("bulk-scripts")
    fill(es, index, {"1": {"n": 1}})
    answer = es.bulk(
        operations=[
            {"update": {"_index": index, "_id": "1"}},
            {"script": {"source": "ctx._source.n *= 10"}},
            {"update": {"_index": index, "_id": "1"}},
            {"script": {"source": "ctx._source.n += params.k", "params": {"k": 2}}},
            {"update": {"_index": index, "_id": "1"}},
            {"script": "ctx.op = 'none'"},
        ]
    )
    assert [item["update"]["result"] for item in answer["items"]] == ["updated", "updated", "noop"]
    assert es.get(index=index, id="1")["_source"] == {"n": 12}


def test_update_by_query_with_query_and_script(es):
    index = unique("ubq")
    fill(es, index, {str(i): {"n": i, "kind": "even" if i % 2 == 0 else "odd"} for i in range(10)})
    answer = es.update_by_query(
        index=index,
        query={"term": {"kind.keyword": "even"}},
        script={"source": "ctx._source.n += 100; if (ctx._source.n == 100) { ctx.op = 'noop' }"},
        refresh=True,
        conflicts="proceed",
    )
    assert answer["total"] == 5
    assert answer["updated"] == 4
    assert answer["noops"] == 1
    assert answer["version_conflicts"] == 0
    assert answer["batches"] == 1
    assert answer["failures"] == []
    big = es.count(index=index, query={"range": {"n": {"gte": 100}}})["count"]
    assert big == 4


def test_delete_by_query_over_a_pattern_with_max_docs(es, opensearch):
    prefix = unique("dbq")
    for part in ("a", "b"):
        fill(es, f"{prefix}-{part}", {str(i): {"n": i} for i in range(5)})
    answer = es.delete_by_query(
        index=f"{prefix}-*", query={"range": {"n": {"lt": 3}}}, refresh=True
    )
    assert answer["deleted"] == 6
    assert answer["total"] == 6
    assert es.count(index=f"{prefix}-*")["count"] == 4
    limited = opensearch.delete_by_query(
        index=f"{prefix}-*", body={"query": {"match_all": {}}, "max_docs": 3}, refresh=True
    )
    assert limited["deleted"] == 3
    assert es.count(index=f"{prefix}-*")["count"] == 1
    with pytest.raises(OsRequestError):
        opensearch.delete_by_query(index=f"{prefix}-*", body={"query": {"nope": {}}})


def test_a_write_after_the_snapshot_is_a_version_conflict(es):
    index = unique("conflicts")
    # Refreshes only on request: the searcher keeps the version by-query operations read.
    fill(es, index, {"1": {"n": 1}, "2": {"n": 2}}, settings={"index": {"refresh_interval": "-1"}})
    es.index(index=index, id="1", document={"n": 10})
    proceed = es.delete_by_query(index=index, query={"match_all": {}}, conflicts="proceed")
    assert proceed["version_conflicts"] == 1
    assert proceed["deleted"] == 1
    assert es.get(index=index, id="1")["_source"] == {"n": 10}
    es.indices.refresh(index=index)
    es.index(index=index, id="1", document={"n": 20})
    with pytest.raises(ConflictError) as conflict:
        es.update_by_query(index=index, query={"match_all": {}})
    body = conflict.value.body
    assert body["version_conflicts"] == 1
    assert body["failures"][0]["cause"]["type"] == "version_conflict_engine_exception"
    assert body["failures"][0]["id"] == "1"


def test_tasks_of_operations_that_do_not_wait(es):
    index = unique("tasks")
    fill(es, index, {str(i): {"n": i} for i in range(20)})
    started = es.update_by_query(
        index=index, script="ctx._source.seen = true", wait_for_completion=False, refresh=True
    )
    task_id = started["task"]
    assert task_id.startswith("sluice:")
    done = es.tasks.get(task_id=task_id, wait_for_completion=True, timeout="30s")
    assert done["completed"] is True
    assert done["task"]["action"] == "indices:data/write/update/byquery"
    assert done["response"]["updated"] == 20
    assert done["task"]["status"]["updated"] == 20
    assert es.count(index=index, query={"term": {"seen": True}})["count"] == 20
    cancelled = es.tasks.cancel(task_id=task_id)
    assert task_id in cancelled["nodes"]["sluice"]["tasks"]
    with pytest.raises(NotFoundError):
        es.tasks.get(task_id="sluice:999999")


def test_reindex_with_query_source_filter_and_version_types(es):
    source = unique("reindex-src")
    dest = unique("reindex-dst")
    fill(es, source, {str(i): {"n": i, "secret": "x", "keep": {"a": i}} for i in range(6)})
    answer = es.reindex(
        source={"index": source, "query": {"range": {"n": {"gte": 2}}}, "_source": ["n", "keep.a"]},
        dest={"index": dest},
        script={"source": "ctx._source.copied = true"},
        refresh=True,
    )
    assert answer["created"] == 4
    assert answer["total"] == 4
    assert es.get(index=dest, id="3")["_source"] == {"n": 3, "keep": {"a": 3}, "copied": True}
    again = es.reindex(
        source={"index": source},
        dest={"index": dest, "op_type": "create"},
        conflicts="proceed",
        refresh=True,
    )
    assert again["created"] == 2
    assert again["version_conflicts"] == 4
    external = unique("reindex-ext")
    es.index(index=source, id="0", document={"n": 0, "v": 2})
    es.indices.refresh(index=source)
    first = es.reindex(source={"index": source}, dest={"index": external, "version_type": "external"})
    assert first["created"] == 6
    assert es.get(index=external, id="0")["_version"] == 2
    stale = es.reindex(
        source={"index": source},
        dest={"index": external, "version_type": "external"},
        conflicts="proceed",
    )
    assert stale["version_conflicts"] == 6
    limited = es.reindex(source={"index": source}, dest={"index": unique("reindex-max")}, max_docs=2)
    assert limited["created"] == 2
