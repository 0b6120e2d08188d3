"""Search results (issue 8 item 4) through the real `elasticsearch` 9.x and `opensearch-py` 3.x
clients against the real binary: `sort` on keyword, numeric, date and boolean fields with its
options, `_score` and `_doc`, across the indices of a pattern; sort values and `max_score` as
Elasticsearch shows them; `search_after`; the request bodies Kibana's Discover and Grafana send;
and the 400s Elasticsearch gives (a `text` field without fielddata, an unmapped field, a window
beyond `index.max_result_window`)."""

from datetime import datetime, timezone

import pytest
from elasticsearch import BadRequestError
from opensearchpy import RequestError

from conftest import unique


EVENTS = [
    {"@timestamp": "2026-12-01T10:00:03Z", "host": "b", "bytes": 300, "ratio": 0.5, "ok": True,
     "message": "hello world"},
    {"@timestamp": "2026-12-01T10:00:01Z", "host": "a", "bytes": 100, "ratio": 1.5, "ok": False,
     "message": "bye world"},
    {"@timestamp": "2026-12-01T10:00:02Z", "host": "c", "bytes": [50, 500], "ok": True,
     "message": "hello again"},
    {"@timestamp": "2026-12-01T10:00:04Z", "bytes": 200, "ratio": -2.0,
     "message": "bye bye"},
]

MAPPING = {
    "properties": {
        "@timestamp": {"type": "date"},
        "host": {"type": "keyword"},
        "bytes": {"type": "long"},
        "ratio": {"type": "double"},
        "ok": {"type": "boolean"},
        "message": {"type": "text"},
    }
}


def load(client, index, documents, mappings=MAPPING, **create):
    client.indices.create(index=index, mappings=mappings, **create)
    for i, document in enumerate(documents):
        client.index(index=index, id=str(i + 1), document=document)
    client.indices.refresh(index=index)


@pytest.fixture
def events(es):
    index = unique("events")
    load(es, index, EVENTS)
    return index


def ids(response):
    return [hit["_id"] for hit in response["hits"]["hits"]]


def sorts(response):
    return [hit["sort"] for hit in response["hits"]["hits"]]


def test_sort_by_each_field_type(es, events):
    found = es.search(index=events, sort=[{"@timestamp": "desc"}])
    assert ids(found) == ["4", "1", "3", "2"]
    # Dates show as epoch milliseconds; no scores when not sorting by score.
    assert sorts(found)[0] == [
        int(datetime(2026, 12, 1, 10, 0, 4, tzinfo=timezone.utc).timestamp() * 1000)
    ]
    assert found["hits"]["max_score"] is None
    assert all(hit["_score"] is None for hit in found["hits"]["hits"])
    found = es.search(index=events, sort=["host"])
    assert ids(found) == ["2", "1", "3", "4"]
    assert sorts(found) == [["a"], ["b"], ["c"], [None]]
    # A multi-valued long sorts by its smallest value ascending, its largest descending.
    found = es.search(index=events, sort=[{"bytes": "asc"}])
    assert ids(found) == ["3", "2", "4", "1"]
    assert sorts(found) == [[50], [100], [200], [300]]
    found = es.search(index=events, sort=[{"bytes": {"order": "desc"}}])
    assert ids(found) == ["3", "1", "4", "2"]
    found = es.search(index=events, sort=[{"bytes": {"order": "asc", "mode": "avg"}}])
    assert sorts(found) == [[100], [200], [275], [300]]
    # Doubles, with the missing document last as the largest double.
    found = es.search(index=events, sort=[{"ratio": "asc"}])
    assert ids(found) == ["4", "1", "2", "3"]
    assert sorts(found) == [[-2.0], [0.5], [1.5], ["Infinity"]]
    # Booleans sort as 0 and 1, missing last; then a second key breaks the ties.
    found = es.search(index=events, sort=[{"ok": "desc"}, {"host": "asc"}])
    assert ids(found) == ["1", "3", "2", "4"]
    assert sorts(found) == [[1, "b"], [1, "c"], [0, "a"], [-(2**63), None]]


def test_missing_format_and_scores(es, events):
    found = es.search(index=events, sort=[{"host": {"order": "asc", "missing": "_first"}}])
    assert ids(found) == ["4", "2", "1", "3"]
    found = es.search(index=events, sort=[{"host": {"order": "asc", "missing": "bb"}}])
    assert sorts(found) == [["a"], ["b"], ["bb"], ["c"]]
    found = es.search(index=events, sort=[{"ratio": {"order": "desc", "missing": 1}}])
    assert sorts(found) == [[1.5], [1.0], [0.5], [-2.0]]
    found = es.search(
        index=events, sort=[{"@timestamp": {"order": "asc", "format": "strict_date_optional_time"}}]
    )
    assert sorts(found)[0] == ["2026-12-01T10:00:01.000Z"]
    # `_score` as a key shows scores; `track_scores` computes them for a field sort.
    found = es.search(index=events, query={"match": {"message": "bye"}}, sort=["_score", "_doc"])
    assert ids(found) == ["4", "2"]
    assert found["hits"]["max_score"] == found["hits"]["hits"][0]["_score"]
    assert sorts(found)[0][0] == found["hits"]["hits"][0]["_score"]
    found = es.search(
        index=events, query={"match": {"message": "bye"}}, sort=["host"], track_scores=True
    )
    assert ids(found) == ["2", "4"]
    assert found["hits"]["max_score"] > 0
    assert all(hit["_score"] > 0 for hit in found["hits"]["hits"])
    # The URL's `sort=field:order`.
    found = es.search(index=events, sort="bytes:desc")
    assert ids(found)[0] == "3"


def test_sort_across_a_pattern(es):
    prefix = unique("logs")
    load(es, f"{prefix}-1", EVENTS[:2])
    load(es, f"{prefix}-2", EVENTS[2:])
    found = es.search(index=f"{prefix}-*", sort=[{"@timestamp": "asc"}], size=3)
    assert [(h["_index"], h["_id"]) for h in found["hits"]["hits"]] == [
        (f"{prefix}-1", "2"),
        (f"{prefix}-2", "1"),
        (f"{prefix}-1", "1"),
    ]
    assert found["hits"]["total"] == {"value": 4, "relation": "eq"}
    found = es.search(index=f"{prefix}-*", sort=["host"], from_=1, size=2)
    assert [h["sort"] for h in found["hits"]["hits"]] == [["b"], ["c"]]


def test_an_index_that_does_not_map_the_field(es, events):
    other = unique("nomap")
    load(es, other, [{"x": 1}], mappings={"properties": {"x": {"type": "long"}}})
    # `unmapped_type` (Kibana's `boolean`) sorts that index's documents as missing.
    found = es.search(
        index=f"{events},{other}",
        sort=[{"@timestamp": {"order": "desc", "unmapped_type": "boolean"}}],
    )
    assert ids(found) == ["4", "1", "3", "2", "1"]
    assert found["hits"]["hits"][-1]["_index"] == other
    # Without it that index fails alone, as a shard failure.
    found = es.search(index=f"{events},{other}", sort=["host"])
    assert found["_shards"]["failed"] == 1
    assert found["_shards"]["failures"][0]["reason"]["type"] == "query_shard_exception"
    assert len(ids(found)) == 4
    with pytest.raises(BadRequestError) as error:
        es.search(index=other, sort=["host"])
    assert error.value.body["error"]["type"] == "query_shard_exception"
    assert error.value.body["error"]["reason"] == "No mapping found for [host] in order to sort on"


def test_sort_refusals(es, events):
    with pytest.raises(BadRequestError) as error:
        es.search(index=events, sort=["message"])
    body = error.value.body
    assert body["status"] == 400
    assert body["error"]["type"] == "illegal_argument_exception"
    assert body["error"]["reason"].startswith(
        f"Fielddata is disabled on [message] in [{events}]. Text fields are not optimised for "
        "operations that require per-document field data like aggregations and sorting"
    )
    with pytest.raises(BadRequestError) as error:
        es.search(index=events, sort=[{"_script": {"type": "string", "mode": "avg", "script": "'a'"}}])
    assert error.value.body["error"]["reason"] == "script sort of type [string] doesn't support mode [avg]"
    with pytest.raises(BadRequestError) as error:
        es.search(index=events, sort=[{"host": {"ordre": "asc"}}])
    assert error.value.body["error"]["reason"] == "[field_sort] unknown field [ordre]"


def test_string_script_sorts_page_with_search_after_across_indices(es, events):
    other = unique("events")
    load(es, other, [{"host": "bb", "bytes": 1}])
    script = {"source": "doc['host'].size() == 0 ? params.none : 'h-' + doc['host'].value",
              "params": {"none": "-"}}
    sort = [{"_script": {"type": "string", "order": "desc", "script": script}}]
    found = es.search(index=f"{events},{other}", sort=sort)
    assert [(hit["_index"] == other, hit["_id"]) for hit in found["hits"]["hits"]] == [
        (False, "3"), (True, "1"), (False, "1"), (False, "2"), (False, "4")]
    assert sorts(found) == [["h-c"], ["h-bb"], ["h-b"], ["h-a"], ["-"]]
    page = es.search(index=f"{events},{other}", sort=sort, size=2, search_after=["h-b"])
    assert ids(page) == ["2", "4"]
    # Ascending, with a second key breaking ties.
    found = es.search(index=events, sort=[
        {"_script": {"type": "string", "script": "doc['ok'].size() == 0 ? '' : '' + doc['ok'].value"}},
        {"@timestamp": "desc"}])
    assert sorts(found)[0] == ["", 1796119204000]
    assert ids(found) == ["4", "2", "1", "3"]
    with pytest.raises(BadRequestError) as error:
        es.search(index=events, sort=[{"_script": {"type": "string", "script": "doc['bytes'].value"}}])
    assert "Cannot cast java.lang.Long to java.lang.String" in str(error.value.body)


def test_max_result_window(es):
    index = unique("window")
    load(es, index, EVENTS, settings={"index": {"max_result_window": 3}})
    assert len(ids(es.search(index=index, size=3, sort=["bytes"]))) == 3
    with pytest.raises(BadRequestError) as error:
        es.search(index=index, from_=2, size=2, sort=["bytes"])
    assert error.value.body["error"]["reason"].startswith(
        "Result window is too large, from + size must be less than or equal to: [3] but was [4]."
    )
    with pytest.raises(BadRequestError):
        es.search(index=index, size=10001)


def test_search_after_pages(es):
    index = unique("paging")
    documents = [{"n": i % 7, "k": f"k{i:03}"} for i in range(40)]
    load(es, index, documents, mappings={"properties": {"n": {"type": "long"}, "k": {"type": "keyword"}}})
    sort = [{"n": "desc"}, {"k": "asc"}]
    everything = ids(es.search(index=index, sort=sort, size=100))
    paged, after = [], None
    while True:
        body = {"sort": sort, "size": 6}
        if after is not None:
            body["search_after"] = after
        found = es.search(index=index, **body)
        assert found["hits"]["total"]["value"] == 40
        hits = found["hits"]["hits"]
        if not hits:
            break
        paged += [hit["_id"] for hit in hits]
        after = hits[-1]["sort"]
    assert paged == everything
    with pytest.raises(BadRequestError) as error:
        es.search(index=index, sort=sort, search_after=[1], size=1)
    assert error.value.body["error"]["reason"] == "search_after has 1 value(s) but sort has 2."
    with pytest.raises(BadRequestError) as error:
        es.search(index=index, sort=sort, search_after=[1, "k"], from_=3)
    assert "`from` parameter must be set to 0 when `search_after` is used" in (
        error.value.body["error"]["reason"]
    )


def test_opensearch_sorts(opensearch):
    index = unique("os-sort")
    opensearch.indices.create(index=index, body={"mappings": MAPPING})
    for i, document in enumerate(EVENTS):
        opensearch.index(index=index, id=str(i + 1), body=document)
    opensearch.indices.refresh(index=index)
    found = opensearch.search(index=index, body={"sort": [{"bytes": "desc"}], "size": 2})
    assert ids(found) == ["3", "1"]
    assert sorts(found) == [[500], [300]]
    found = opensearch.search(index=index, body={"sort": [{"bytes": "desc"}], "search_after": [300]})
    assert ids(found) == ["4", "2"]
    with pytest.raises(RequestError):
        opensearch.search(index=index, body={"sort": ["message"]})


def test_kibana_and_grafana_sorts(es, events):
    # Discover: sort on the time field with `unmapped_type: boolean`, `track_total_hits`.
    found = es.search(
        index=events,
        size=500,
        sort=[{"@timestamp": {"order": "desc", "unmapped_type": "boolean"}}],
        track_total_hits=True,
        query={"bool": {"filter": [{"range": {"@timestamp": {
            "gte": "2026-12-01T00:00:00.000Z", "lte": "2026-12-02T00:00:00.000Z",
            "format": "strict_date_optional_time"}}}]}},
    )
    assert ids(found) == ["4", "1", "3", "2"]
    assert found["hits"]["total"] == {"value": 4, "relation": "eq"}
    # Grafana's logs query: sort on the time field, then `_doc`.
    found = es.search(
        index=events,
        size=2,
        sort=[{"@timestamp": {"order": "desc", "unmapped_type": "boolean"}}, {"_doc": {"order": "desc"}}],
    )
    assert ids(found) == ["4", "1"]
    assert len(sorts(found)[0]) == 2


def test_point_in_time_pages_one_view(es):
    index = unique("pit")
    load(es, index, [{"n": i} for i in range(25)], mappings={"properties": {"n": {"type": "long"}}})
    pit = es.open_point_in_time(index=index, keep_alive="1m")["id"]
    # Writes after the point in time are not seen by it.
    es.index(index=index, id="late", document={"n": 100}, refresh=True)
    seen, after = [], None
    while True:
        body = {"size": 10, "sort": [{"n": "desc"}], "pit": {"id": pit, "keep_alive": "1m"}}
        if after:
            body["search_after"] = after
        found = es.search(**body)
        assert found["pit_id"] == pit
        hits = found["hits"]["hits"]
        if not hits:
            break
        # The implicit `_shard_doc` tiebreaker shows in the sort values.
        assert all(len(hit["sort"]) == 2 for hit in hits)
        seen += [hit["_source"]["n"] for hit in hits]
        after = hits[-1]["sort"]
    assert seen == list(range(24, -1, -1))
    # `_shard_doc` alone pages too.
    found = es.search(size=5, sort=[{"_shard_doc": "asc"}], pit={"id": pit})
    assert len(found["hits"]["hits"]) == 5
    with pytest.raises(BadRequestError) as error:
        es.search(index=index, sort=["_shard_doc"])
    assert "cannot be used without [point in time]" in error.value.body["error"]["reason"]
    assert es.close_point_in_time(id=pit)["num_freed"] == 1
    with pytest.raises(Exception) as error:
        es.search(size=1, pit={"id": pit})
    assert error.value.meta.status == 404
    assert error.value.body["error"]["type"] == "search_context_missing_exception"


def test_scroll_and_helpers_scan(es):
    from elasticsearch import helpers

    index = unique("scroll")
    load(es, index, [{"n": i} for i in range(57)], mappings={"properties": {"n": {"type": "long"}}})
    found = es.search(index=index, scroll="1m", size=20, sort=["n"])
    scroll_id = found["_scroll_id"]
    seen = [hit["_source"]["n"] for hit in found["hits"]["hits"]]
    assert found["hits"]["hits"][0]["sort"] == [0]
    while True:
        page = es.scroll(scroll_id=scroll_id, scroll="1m")
        assert page["hits"]["total"]["value"] == 57
        if not page["hits"]["hits"]:
            break
        seen += [hit["_source"]["n"] for hit in page["hits"]["hits"]]
    assert seen == list(range(57))
    assert es.clear_scroll(scroll_id=scroll_id)["num_freed"] == 1
    # `helpers.scan` (scroll with `sort: _doc`, then clear_scroll) reads every document once.
    scanned = sorted(hit["_source"]["n"] for hit in helpers.scan(es, index=index, size=10))
    assert scanned == list(range(57))
    # By score (no sort): every document once, no sort values shown.
    found = es.search(index=index, scroll="1m", size=50)
    assert "sort" not in found["hits"]["hits"][0]
    rest = es.scroll(scroll_id=found["_scroll_id"], scroll="1m")
    assert len(found["hits"]["hits"]) + len(rest["hits"]["hits"]) == 57
    assert es.clear_scroll(scroll_id="_all")["num_freed"] >= 1
    with pytest.raises(Exception) as error:
        es.scroll(scroll_id=found["_scroll_id"], scroll="1m")
    assert error.value.meta.status == 404
    with pytest.raises(BadRequestError):
        es.search(index=index, scroll="1m", from_=5)


def test_opensearch_scroll(opensearch):
    from opensearchpy import helpers

    index = unique("os-scroll")
    opensearch.indices.create(index=index)
    helpers.bulk(opensearch, ({"_index": index, "_id": str(i), "n": i} for i in range(33)), refresh=True)
    assert sorted(hit["_source"]["n"] for hit in helpers.scan(opensearch, index=index, size=7)) == list(range(33))


def test_min_score_terminate_after_timeout_and_explain(es, events):
    query = {"match": {"message": "bye world"}}
    everything = es.search(index=events, query=query)
    scores = [hit["_score"] for hit in everything["hits"]["hits"]]
    assert len(scores) == 3
    cut = sorted(scores)[1]
    found = es.search(index=events, query=query, min_score=cut)
    assert found["hits"]["total"]["value"] == 2
    assert all(hit["_score"] >= cut for hit in found["hits"]["hits"])
    found = es.search(index=events, terminate_after=2)
    assert found["terminated_early"] is True
    assert found["hits"]["total"]["value"] == 2
    found = es.search(index=events, timeout="30s")
    assert found["timed_out"] is False
    assert found["hits"]["total"]["value"] == 4
    found = es.search(index=events, query=query, explain=True, size=1)
    hit = found["hits"]["hits"][0]
    assert hit["_shard"] == f"[{events}][0]"
    explanation = hit["_explanation"]
    assert explanation["value"] == pytest.approx(hit["_score"], rel=1e-6)
    assert isinstance(explanation["description"], str) and explanation["details"]
    with pytest.raises(BadRequestError):
        es.search(index=events, timeout="soon")


def test_fields_and_docvalue_fields_as_kibana_and_grafana_ask(es, events):
    # Discover: every field, unmapped ones included, and the time field as a date_time.
    found = es.search(
        index=events,
        sort=[{"@timestamp": {"order": "desc", "unmapped_type": "boolean"}}],
        fields=[{"field": "*", "include_unmapped": True}],
        docvalue_fields=[{"field": "@timestamp", "format": "date_time"}],
        track_total_hits=True,
        size=1,
    )
    fields = found["hits"]["hits"][0]["fields"]
    assert fields["@timestamp"] == ["2026-12-01T10:00:04.000Z"]
    assert fields["bytes"] == [200]
    assert fields["ratio"] == [-2.0]
    assert fields["message"] == ["bye bye"]
    assert "host" not in fields
    # Grafana: docvalue_fields with epoch_millis, multi-valued sorted, booleans.
    found = es.search(
        index=events,
        sort=[{"@timestamp": {"order": "asc"}}],
        docvalue_fields=[{"field": "@timestamp", "format": "epoch_millis"}, "bytes", "ok", "host"],
        size=3,
    )
    hits = found["hits"]["hits"]
    assert [h["fields"]["host"] for h in hits] == [["a"], ["c"], ["b"]]
    assert hits[1]["fields"]["bytes"] == [50, 500]
    assert hits[0]["fields"]["ok"] == [False]
    assert hits[0]["fields"]["@timestamp"] == [
        str(int(datetime(2026, 12, 1, 10, 0, 1, tzinfo=timezone.utc).timestamp() * 1000))
    ]
    with pytest.raises(BadRequestError) as error:
        es.search(index=events, docvalue_fields=["message"])
    assert error.value.body["error"]["reason"].startswith("Fielddata is disabled on [message]")
    # Numbers in a DecimalFormat pattern, as Elasticsearch prints them; a keyword has no format.
    found = es.search(index=events, sort=[{"@timestamp": {"order": "asc"}}], size=2,
                      docvalue_fields=[{"field": "bytes", "format": "#,##0.00"}, {"field": "ratio", "format": "0.0"}])
    assert found["hits"]["hits"][1]["fields"]["bytes"] == ["50.00", "500.00"]
    assert found["hits"]["hits"][0]["fields"] == {"bytes": ["100.00"], "ratio": ["1.5"]}
    with pytest.raises(BadRequestError) as error:
        es.search(index=events, docvalue_fields=[{"field": "host", "format": "0.0"}])
    assert "doesn't support formats" in error.value.body["error"]["reason"]
    # Unmapped source fields show only with include_unmapped.
    index = unique("unmapped")
    load(es, index, [{"a": 1, "extra": {"x": "y"}}],
         mappings={"dynamic": False, "properties": {"a": {"type": "long"}}})
    fields = es.search(index=index, fields=["*"])["hits"]["hits"][0]["fields"]
    assert fields == {"a": [1]}
    fields = es.search(index=index, fields=[{"field": "*", "include_unmapped": True}])["hits"]["hits"][0]["fields"]
    assert fields == {"a": [1], "extra.x": ["y"]}


def test_post_filter_applies_after_aggregations(es, events):
    found = es.search(
        index=events,
        aggs={"hosts": {"terms": {"field": "host"}}},
        post_filter={"term": {"host": "a"}},
    )
    assert ids(found) == ["2"]
    assert found["hits"]["total"]["value"] == 1
    assert len(found["aggregations"]["hosts"]["buckets"]) == 3
    # What Sluice does not do yet is refused by name, never ignored.
    for option in ({"suggest": {}},):
        with pytest.raises(BadRequestError) as error:
            es.search(index=events, **option)
        assert f"[{next(iter(option))}] is not supported by Sluice yet" in error.value.body["error"]["reason"]


def test_source_filtering_and_total_hits(es, events):
    found = es.search(index=events, source={"includes": ["h*", "by*"], "excludes": ["bytes"]}, sort=["host"])
    assert found["hits"]["hits"][0]["_source"] == {"host": "a"}
    found = es.search(index=events, source_includes="ratio", size=1, sort=["host"])
    assert found["hits"]["hits"][0]["_source"] == {"ratio": 1.5}
    found = es.search(index=events, source=False, size=1)
    assert "_source" not in found["hits"]["hits"][0]
    found = es.search(index=events, stored_fields="_none_", size=1)
    assert "_source" not in found["hits"]["hits"][0]
    assert es.search(index=events, track_total_hits=2)["hits"]["total"] == {"value": 2, "relation": "gte"}
    assert "total" not in es.search(index=events, track_total_hits=False)["hits"]
    found = es.search(index=events, version=True, seq_no_primary_term=True, size=1)
    hit = found["hits"]["hits"][0]
    assert hit["_version"] == 1 and "_seq_no" in hit and hit["_primary_term"] == 1


def test_highlight_as_kibana_asks(es, events):
    found = es.search(
        index=events,
        query={"bool": {"filter": [{"query_string": {"query": "message:bye", "analyze_wildcard": True}}]}},
        highlight={
            "pre_tags": ["@kibana-highlighted-field@"],
            "post_tags": ["@/kibana-highlighted-field@"],
            "fields": {"*": {}},
            "fragment_size": 2147483647,
        },
        sort=[{"@timestamp": "asc"}],
    )
    assert [hit["highlight"] for hit in found["hits"]["hits"]] == [
        {"message": ["@kibana-highlighted-field@bye@/kibana-highlighted-field@ world"]},
        {"message": [
            "@kibana-highlighted-field@bye@/kibana-highlighted-field@ "
            "@kibana-highlighted-field@bye@/kibana-highlighted-field@"
        ]},
    ]
    # Defaults: <em> tags; fragments of `fragment_size`; `number_of_fragments`.
    found = es.search(index=events, query={"match": {"message": "hello"}},
                      highlight={"fields": {"message": {"number_of_fragments": 0}}},
                      sort=[{"@timestamp": "desc"}])
    assert found["hits"]["hits"][0]["highlight"] == {"message": ["<em>hello</em> world"]}
    with pytest.raises(BadRequestError) as error:
        es.search(index=events, highlight={"fields": {"message": {}}, "boundary_scanner": "word"})
    assert "[highlight] option [boundary_scanner] is not supported" in error.value.body["error"]["reason"]
