"""Aggregations through the official `elasticsearch` and `opensearch-py` clients against the real
binary: the dashboards' charts of SCENARIOS.md, the request shapes Kibana and Grafana send for
time series, counters, bar charts and tables, every metric and bucket aggregation with its
Elasticsearch response shape, calendar time zones across daylight-saving changes, pipelines,
and the 400/429 answers for what is not supported or too big."""

import math
import statistics
from datetime import datetime, timezone

import pytest
from elasticsearch import BadRequestError, Elasticsearch, helpers
from opensearchpy import OpenSearch, RequestError

from conftest import unique


def ms(text):
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def index_docs(es, index, docs):
    helpers.bulk(es, ({"_index": index, "_source": d} for d in docs), refresh="true")


TICKS = [
    # (second offset, ticker, price)
    (0, "AAPL", 10.0), (0, "AAPL", 12.0), (0, "AMZN", 100.0),
    (1, "AAPL", 11.0), (1, "AMZN", 104.0), (1, "AMZN", 96.0),
    (3, "MSFT", 50.0), (3, "AAPL", 13.0),
]
BASE = ms("2026-03-01T12:00:00Z")


@pytest.fixture
def stockdata(es):
    """Two rotated indices behind `stockdata*`, as the delivery stream of scenario 3 writes."""
    prefix = unique("stockdata")
    for part in range(2):
        docs = [
            {"ticker_symbol": t, "sector": "TECH", "change": 0.5, "price": p,
             "timestamp": datetime.fromtimestamp((BASE + s * 1000) / 1000, timezone.utc).isoformat().replace("+00:00", "Z")}
            for i, (s, t, p) in enumerate(TICKS) if i % 2 == part
        ]
        index_docs(es, f"{prefix}-{part}", docs)
    return prefix


def test_avg_price_per_second_split_by_ticker(es, stockdata):
    """Scenario 3's chart, as Kibana's Lens sends it: a date histogram with min_doc_count 0,
    extended bounds in epoch millis, terms on ticker_symbol.keyword ordered by the metric."""
    body = {
        "size": 0,
        "query": {"match_all": {}},
        "aggs": {"0": {
            "date_histogram": {"field": "timestamp", "fixed_interval": "1s", "time_zone": "UTC",
                               "min_doc_count": 0, "format": "epoch_millis",
                               "extended_bounds": {"min": BASE, "max": BASE + 4000}},
            "aggs": {"1": {
                "terms": {"field": "ticker_symbol.keyword", "order": {"2": "desc"}, "size": 3, "shard_size": 25},
                "aggs": {"2": {"avg": {"field": "price"}}},
            }},
        }},
    }
    response = es.search(index=f"{stockdata}*", body=body)
    assert response["hits"]["total"]["value"] == len(TICKS)
    assert response["hits"]["hits"] == []
    buckets = response["aggregations"]["0"]["buckets"]
    assert [b["key"] for b in buckets] == [BASE + i * 1000 for i in range(5)]
    assert [b["key_as_string"] for b in buckets] == [str(BASE + i * 1000) for i in range(5)]
    assert [b["doc_count"] for b in buckets] == [3, 3, 0, 2, 0]
    first = buckets[0]["1"]
    assert first["doc_count_error_upper_bound"] == 0 and first["sum_other_doc_count"] == 0
    assert [(b["key"], b["doc_count"], b["2"]["value"]) for b in first["buckets"]] == [("AMZN", 1, 100.0), ("AAPL", 2, 11.0)]
    assert [(b["key"], b["2"]["value"]) for b in buckets[1]["1"]["buckets"]] == [("AMZN", 100.0), ("AAPL", 11.0)]
    assert buckets[2]["1"]["buckets"] == []


@pytest.fixture
def licences(es):
    index = unique("licence")
    docs = [
        {"name": "Ann", "licenceId": "A1", "postcode": "AB1", "penaltyPoints": 3},
        {"name": "Bob", "licenceId": "B2", "postcode": "AB1", "penaltyPoints": 6},
        {"name": "Cid", "licenceId": "C3", "postcode": "ZZ9", "penaltyPoints": 0},
        {"name": "Dee", "licenceId": "D4", "postcode": "CD2", "penaltyPoints": 9},
        {"name": "Eve", "licenceId": "E5", "postcode": "CD2", "penaltyPoints": 2},
    ]
    index_docs(es, index, docs)
    return index


def test_average_points_by_postcode_and_max_points(es, licences):
    """Scenario 1's charts."""
    response = es.search(index=licences, size=0, aggs={
        "by_postcode": {"terms": {"field": "postcode.keyword", "order": {"_key": "asc"}},
                        "aggs": {"avg_points": {"avg": {"field": "penaltyPoints"}}}},
        "max_points": {"max": {"field": "penaltyPoints"}},
    })
    aggs = response["aggregations"]
    assert [(b["key"], b["doc_count"], b["avg_points"]["value"]) for b in aggs["by_postcode"]["buckets"]] == [
        ("AB1", 2, 4.5), ("CD2", 2, 5.5), ("ZZ9", 1, 0.0)]
    assert aggs["max_points"] == {"value": 9.0}


def test_hello_and_bye_counters_over_rotated_indices(es):
    """Scenario 2's three counters over `example-*`: total, `message:bye`, `message:hello`."""
    prefix = unique("example")
    index_docs(es, f"{prefix}-2026-03-01-10", [{"message": f"hello world {i}"} for i in range(3)])
    index_docs(es, f"{prefix}-2026-03-01-11", [{"message": f"bye world! {i}"} for i in range(2)] + [{"message": "hello world 9"}])
    response = es.search(index=f"{prefix}-*", size=0, aggs={
        "counters": {"filters": {"filters": {
            "bye": {"term": {"message": "bye"}},
            "hello": {"term": {"message": "hello"}},
        }}},
        "bye": {"filter": {"term": {"message": "bye"}}},
    })
    assert response["hits"]["total"] == {"value": 6, "relation": "eq"}
    assert response["aggregations"]["counters"]["buckets"] == {"bye": {"doc_count": 2}, "hello": {"doc_count": 4}}
    assert response["aggregations"]["bye"] == {"doc_count": 2}


def test_grafana_time_series_shape(es, stockdata):
    """Grafana's Elasticsearch data source: `fixed_interval`, `min_doc_count: 0`, extended
    bounds and `format: epoch_millis`, a count and an average per bucket."""
    response = es.search(index=f"{stockdata}*", body={
        "size": 0,
        "aggs": {"2": {
            "date_histogram": {"field": "timestamp", "min_doc_count": 0, "extended_bounds": {"min": BASE - 2000, "max": BASE + 2000},
                               "format": "epoch_millis", "fixed_interval": "2s"},
            "aggs": {"1": {"avg": {"field": "price"}}},
        }},
    })
    buckets = response["aggregations"]["2"]["buckets"]
    assert [(b["key"], b["doc_count"]) for b in buckets] == [(BASE - 2000, 0), (BASE, 6), (BASE + 2000, 2)]
    assert buckets[0]["1"] == {"value": None}
    assert buckets[2]["1"]["value"] == pytest.approx(31.5)


def test_calendar_days_and_hours_across_daylight_saving(es):
    """A day bucket in Europe/London on 2026-03-29 is 23 hours; the hour repeated when clocks
    fall back on 2026-10-25 is two buckets with distinct keys."""
    index = unique("dst")
    instants = ["2026-03-28T12:00:00Z", "2026-03-29T00:30:00Z", "2026-03-29T22:30:00Z", "2026-03-29T23:30:00Z",
                "2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z"]
    index_docs(es, index, [{"at": t} for t in instants])
    response = es.search(index=index, size=0, aggs={
        "days": {"date_histogram": {"field": "at", "calendar_interval": "day", "time_zone": "Europe/London"}},
        "hours": {"date_histogram": {"field": "at", "calendar_interval": "1h", "time_zone": "Europe/London",
                                      "hard_bounds": {"min": "2026-10-24T23:00:00Z", "max": "2026-10-25T02:00:00Z"}}},
    })
    days = response["aggregations"]["days"]["buckets"]
    by_key = {b["key_as_string"]: b["doc_count"] for b in days}
    assert by_key["2026-03-29T00:00:00.000Z"] == 2
    assert by_key["2026-03-30T00:00:00.000+01:00"] == 1
    day = next(b for b in days if b["key_as_string"] == "2026-03-29T00:00:00.000Z")
    following = next(b for b in days if b["key_as_string"] == "2026-03-30T00:00:00.000+01:00")
    assert following["key"] - day["key"] == 23 * 3600 * 1000
    hours = [(b["key_as_string"], b["doc_count"]) for b in response["aggregations"]["hours"]["buckets"]]
    assert hours == [("2026-10-25T01:00:00.000+01:00", 1), ("2026-10-25T01:00:00.000Z", 1)]


@pytest.fixture
def metrics_index(es):
    index = unique("metrics")
    es.indices.create(index=index, mappings={"properties": {
        "v": {"type": "long"}, "w": {"type": "double"}, "tag": {"type": "keyword"}, "at": {"type": "date"},
        "text": {"type": "text", "fields": {"keyword": {"type": "keyword"}}}}})
    docs = [{"v": v, "w": 1 + (v % 3), "tag": f"t{v % 4}", "at": f"2026-01-0{1 + v % 5}T00:00:00Z", "text": "some words"}
            for v in range(1, 21)]
    docs.append({"tag": "none"})
    index_docs(es, index, docs)
    return index


def test_metrics(es, metrics_index):
    values = list(range(1, 21))
    response = es.search(index=metrics_index, size=0, aggs={
        "avg": {"avg": {"field": "v"}},
        "avg_missing": {"avg": {"field": "v", "missing": 100}},
        "sum": {"sum": {"field": "v"}},
        "min": {"min": {"field": "v"}},
        "max_date": {"max": {"field": "at"}},
        "count": {"value_count": {"field": "v"}},
        "stats": {"stats": {"field": "v"}},
        "ext": {"extended_stats": {"field": "v", "sigma": 3}},
        "distinct": {"cardinality": {"field": "tag"}},
        "pct": {"percentiles": {"field": "v", "percents": [50, 99]}},
        "pct_list": {"percentiles": {"field": "v", "percents": [50], "keyed": False}},
        "ranks": {"percentile_ranks": {"field": "v", "values": [10]}},
        "mad": {"median_absolute_deviation": {"field": "v"}},
        "wavg": {"weighted_avg": {"value": {"field": "v"}, "weight": {"field": "w"}}},
        "top": {"top_hits": {"size": 2, "sort": [{"v": {"order": "desc"}}], "_source": {"includes": ["v"]}}},
        "top_metric": {"top_metrics": {"metrics": {"field": "w"}, "sort": {"v": "asc"}}},
    })
    a = response["aggregations"]
    assert a["avg"] == {"value": 10.5}
    assert a["avg_missing"]["value"] == pytest.approx((210 + 100) / 21)
    assert a["sum"] == {"value": 210.0}
    assert a["min"] == {"value": 1.0}
    assert a["max_date"] == {"value": float(ms("2026-01-05T00:00:00Z")), "value_as_string": "2026-01-05T00:00:00.000Z"}
    assert a["count"] == {"value": 20}
    assert a["stats"] == {"count": 20, "min": 1.0, "max": 20.0, "avg": 10.5, "sum": 210.0}
    assert a["ext"]["variance"] == pytest.approx(statistics.pvariance(values))
    assert a["ext"]["std_deviation_sampling"] == pytest.approx(statistics.stdev(values))
    assert a["ext"]["std_deviation_bounds"]["upper"] == pytest.approx(10.5 + 3 * statistics.pstdev(values))
    assert a["distinct"] == {"value": 5}
    assert a["pct"]["values"]["50.0"] == pytest.approx(10.5)
    assert set(a["pct"]["values"]) == {"50.0", "99.0"}
    assert a["pct_list"]["values"] == [{"key": 50.0, "value": pytest.approx(10.5)}]
    assert a["ranks"]["values"]["10.0"] == pytest.approx(50.0, abs=5)
    assert a["mad"]["value"] == pytest.approx(5.0, abs=0.6)
    weights = [1 + v % 3 for v in values]
    assert a["wavg"]["value"] == pytest.approx(sum(v * w for v, w in zip(values, weights)) / sum(weights))
    top = a["top"]["hits"]
    assert top["total"] == {"value": 21, "relation": "eq"}
    assert [h["_source"] for h in top["hits"]] == [{"v": 20}, {"v": 19}]
    assert [h["sort"] for h in top["hits"]] == [[20], [19]]
    assert a["top_metric"] == {"top": [{"sort": [1.0], "metrics": {"w": 2.0}}]}


def test_metrics_over_nothing_print_as_elasticsearch(es, metrics_index):
    response = es.search(index=metrics_index, size=0, query={"term": {"tag": "absent"}}, aggs={
        "avg": {"avg": {"field": "v"}},
        "sum": {"sum": {"field": "v"}},
        "min": {"min": {"field": "v"}},
        "count": {"value_count": {"field": "v"}},
        "stats": {"stats": {"field": "v"}},
        "pct": {"percentiles": {"field": "v", "percents": [50]}},
        "distinct": {"cardinality": {"field": "v"}},
        "unmapped": {"avg": {"field": "no_such_field"}},
        "unmapped_terms": {"terms": {"field": "no_such_field"}},
    })
    a = response["aggregations"]
    assert a["avg"] == {"value": None}
    assert a["sum"] == {"value": 0.0}
    assert a["min"] == {"value": None}
    assert a["count"] == {"value": 0}
    assert a["stats"] == {"count": 0, "min": None, "max": None, "avg": None, "sum": 0.0}
    assert a["pct"] == {"values": {"50.0": None}}
    assert a["distinct"] == {"value": 0}
    assert a["unmapped"] == {"value": None}
    assert a["unmapped_terms"] == {"doc_count_error_upper_bound": 0, "sum_other_doc_count": 0, "buckets": []}


def test_bucket_aggregations(es, metrics_index):
    response = es.search(index=metrics_index, size=0, aggs={
        "hist": {"histogram": {"field": "v", "interval": 5, "extended_bounds": {"min": 0, "max": 30}, "min_doc_count": 0}},
        "ranges": {"range": {"field": "v", "ranges": [{"to": 5}, {"from": 5, "to": 10}, {"key": "high", "from": 10}]}},
        "keyed_ranges": {"range": {"field": "v", "keyed": True, "ranges": [{"to": 5}]}},
        "dates": {"date_range": {"field": "at", "format": "yyyy-MM-dd", "ranges": [{"to": "2026-01-03"}, {"from": "2026-01-03||+1d"}]}},
        "others": {"filters": {"other_bucket_key": "rest", "filters": {"t1": {"term": {"tag": "t1"}}}}},
        "anonymous": {"filters": {"filters": [{"term": {"tag": "t1"}}, {"term": {"tag": "t2"}}]}},
        "no_v": {"missing": {"field": "v"}},
        "all": {"global": {}, "aggs": {"n": {"value_count": {"field": "v"}}}},
        "tags": {"terms": {"field": "tag", "size": 2, "include": "t.*", "order": [{"max_v": "desc"}]},
                 "aggs": {"max_v": {"max": {"field": "v"}}}, "meta": {"chart": "pie"}},
    })
    a = response["aggregations"]
    assert [(b["key"], b["doc_count"]) for b in a["hist"]["buckets"]] == [
        (0.0, 4), (5.0, 5), (10.0, 5), (15.0, 5), (20.0, 1), (25.0, 0), (30.0, 0)]
    assert a["ranges"]["buckets"] == [
        {"key": "*-5.0", "to": 5.0, "doc_count": 4},
        {"key": "5.0-10.0", "from": 5.0, "to": 10.0, "doc_count": 5},
        {"key": "high", "from": 10.0, "doc_count": 11},
    ]
    assert a["keyed_ranges"]["buckets"] == {"*-5.0": {"to": 5.0, "doc_count": 4}}
    assert a["dates"]["buckets"][0]["key"] == "*-2026-01-03"
    assert a["dates"]["buckets"][0]["to_as_string"] == "2026-01-03"
    assert a["dates"]["buckets"][0]["doc_count"] == 8
    assert a["dates"]["buckets"][1]["key"] == "2026-01-04-*"
    assert a["dates"]["buckets"][1]["doc_count"] == 8
    assert a["others"]["buckets"] == {"t1": {"doc_count": 5}, "rest": {"doc_count": 16}}
    assert a["anonymous"]["buckets"] == [{"doc_count": 5}, {"doc_count": 5}]
    assert a["no_v"] == {"doc_count": 1}
    assert a["all"] == {"doc_count": 21, "n": {"value": 20}}
    tags = a["tags"]
    assert tags["meta"] == {"chart": "pie"}
    assert [(b["key"], b["max_v"]["value"]) for b in tags["buckets"]] == [("t0", 20.0), ("t3", 19.0)]
    assert tags["sum_other_doc_count"] == 10


def test_multi_terms(es, opensearch, metrics_index, stockdata):
    response = es.search(index=metrics_index, size=0, aggs={
        "pairs": {"multi_terms": {"terms": [{"field": "tag"}, {"field": "at", "format": "yyyy-MM-dd"}], "size": 3},
                  "aggs": {"max_v": {"max": {"field": "v"}}}},
        "by_max": {"multi_terms": {"terms": [{"field": "tag"}, {"field": "w"}], "size": 2, "order": {"max_v": "desc"}},
                   "aggs": {"max_v": {"max": {"field": "v"}}}},
        "with_missing": {"multi_terms": {"terms": [{"field": "tag"}, {"field": "v", "missing": 0}], "size": 1,
                                         "order": {"_key": "asc"}}},
    })
    a = response["aggregations"]
    # Every (tag, day) pair holds one document; ties break by key, the document without `at` is in none.
    assert a["pairs"]["buckets"] == [
        {"key": ["t0", "2026-01-01"], "key_as_string": "t0|2026-01-01", "doc_count": 1, "max_v": {"value": 20.0}},
        {"key": ["t0", "2026-01-02"], "key_as_string": "t0|2026-01-02", "doc_count": 1, "max_v": {"value": 16.0}},
        {"key": ["t0", "2026-01-03"], "key_as_string": "t0|2026-01-03", "doc_count": 1, "max_v": {"value": 12.0}},
    ]
    assert a["pairs"]["sum_other_doc_count"] == 17
    assert a["pairs"]["doc_count_error_upper_bound"] == 0
    assert [(b["key"], b["key_as_string"]) for b in a["by_max"]["buckets"]] == [(["t0", 3.0], "t0|3.0"), (["t3", 2.0], "t3|2.0")]
    assert a["with_missing"]["buckets"] == [{"key": ["none", 0], "key_as_string": "none|0", "doc_count": 1}]

    # Across the rotated indices of a pattern, through both clients.
    body = {"size": 0, "aggs": {"pairs": {"multi_terms": {
        "terms": [{"field": "ticker_symbol.keyword"}, {"field": "sector.keyword"}], "show_term_doc_count_error": True}}}}
    for client in (es, opensearch):
        buckets = client.search(index=f"{stockdata}*", body=body)["aggregations"]["pairs"]["buckets"]
        assert [(b["key_as_string"], b["doc_count"], b["doc_count_error_upper_bound"]) for b in buckets] == [
            ("AAPL|TECH", 4, 0), ("AMZN|TECH", 3, 0), ("MSFT|TECH", 1, 0)]

    with pytest.raises(BadRequestError) as raised:
        es.search(index=metrics_index, size=0, aggs={"x": {"multi_terms": {"terms": [{"field": "tag"}]}}})
    assert "at least 2 fields" in raised.value.body["error"]["reason"]


def test_rare_terms(es, opensearch, metrics_index, stockdata):
    response = es.search(index=metrics_index, size=0, typed_keys=True, aggs={
        "rarest": {"rare_terms": {"field": "tag"}},
        "up_to_five": {"rare_terms": {"field": "tag", "max_doc_count": 5, "exclude": ["t2"]},
                       "aggs": {"max_v": {"max": {"field": "v"}}}},
        "values": {"rare_terms": {"field": "v", "include": [3, 7]}},
    })
    a = response["aggregations"]
    assert a["srareterms#rarest"] == {"buckets": [{"key": "none", "doc_count": 1}]}
    # Least frequent first, then by key.
    assert [(b["key"], b["doc_count"], b["max#max_v"]["value"]) for b in a["srareterms#up_to_five"]["buckets"]] == [
        ("none", 1, None), ("t0", 5, 20.0), ("t1", 5, 17.0), ("t3", 5, 19.0)]
    assert a["lrareterms#values"]["buckets"] == [{"key": 3, "doc_count": 1}, {"key": 7, "doc_count": 1}]

    # Exact across indices: AAPL is rare in one index (1) but not overall (4); AMZN has 2 + 1.
    body = {"size": 0, "aggs": {"rare": {"rare_terms": {"field": "ticker_symbol.keyword", "max_doc_count": 2},
                                         "aggs": {"avg_price": {"avg": {"field": "price"}}}}}}
    for client in (es, opensearch):
        rare = client.search(index=f"{stockdata}*", body=body)["aggregations"]["rare"]
        assert rare == {"buckets": [{"key": "MSFT", "doc_count": 1, "avg_price": {"value": 50.0}}]}

    for bad, reason in [
        ({"field": "tag", "max_doc_count": 0}, "[max_doc_count] must be greater than 0"),
        ({"field": "tag", "max_doc_count": 101}, "[max_doc_count] must be smaller than 100"),
        ({"field": "tag", "size": 3}, "[rare_terms] unknown field [size]"),
    ]:
        with pytest.raises(BadRequestError) as raised:
            es.search(index=metrics_index, size=0, aggs={"x": {"rare_terms": bad}})
        assert reason in raised.value.body["error"]["reason"]


def test_samplers(es, metrics_index, stockdata):
    response = es.search(index=metrics_index, size=0, typed_keys=True, aggs={
        "sample": {"sampler": {"shard_size": 5}, "aggs": {
            "sum": {"sum": {"field": "v", "missing": 0}},
            "docs": {"top_hits": {"size": 10, "_source": ["v"]}}}},
        "one_per_tag": {"diversified_sampler": {"field": "tag", "shard_size": 10},
                        "aggs": {"tags": {"terms": {"field": "tag"}}}},
        "two_per_tag": {"diversified_sampler": {"field": "tag", "shard_size": 10, "max_docs_per_value": 2}},
    })
    a = response["aggregations"]
    # Equal scores under match_all: any five documents, the same five for every sub-aggregation.
    sample = a["sampler#sample"]
    assert sample["doc_count"] == 5
    hits = sample["top_hits#docs"]["hits"]
    assert hits["total"]["value"] == 5 and len(hits["hits"]) == 5
    assert sample["sum#sum"]["value"] == sum(h["_source"].get("v", 0) for h in hits["hits"])
    one = a["sampler#one_per_tag"]
    assert one["doc_count"] == 5
    assert sorted((b["key"], b["doc_count"]) for b in one["sterms#tags"]["buckets"]) == [
        ("none", 1), ("t0", 1), ("t1", 1), ("t2", 1), ("t3", 1)]
    assert a["sampler#two_per_tag"] == {"doc_count": 9}

    # Each index samples its own shard_size, as each shard does.
    sampled = es.search(index=f"{stockdata}*", size=0, aggs={"s": {"sampler": {"shard_size": 1}}})
    assert sampled["aggregations"]["s"] == {"doc_count": 2}

    with pytest.raises(BadRequestError) as raised:
        es.search(index=metrics_index, size=0, aggs={"t": {"terms": {"field": "tag"}, "aggs": {"s": {"sampler": {}}}}})
    assert "must be a top level aggregation" in raised.value.body["error"]["reason"]


def test_auto_date_histogram(es, opensearch):
    hourly = unique("hourly")
    start = ms("2026-03-27T00:00:00Z")
    # 72 hours, over two rotated indices.
    for part in range(2):
        index_docs(es, f"{hourly}-{part}", [
            {"at": start + h * 3_600_000, "n": h} for h in range(72) if h % 2 == part])
    body = {"size": 0, "aggs": {"t": {"auto_date_histogram": {"field": "at", "buckets": 10},
                                      "aggs": {"n": {"sum": {"field": "n"}}}}}}
    for client in (es, opensearch):
        t = client.search(index=f"{hourly}-*", body=body)["aggregations"]["t"]
        # Hours fit the target only merged by 12: six buckets of twelve hours.
        assert t["interval"] == "12h"
        assert [(b["key_as_string"], b["doc_count"]) for b in t["buckets"]] == [
            (f"2026-03-{d:02d}T{h:02d}:00:00.000Z", 12) for d in (27, 28, 29) for h in (0, 12)]
        assert t["buckets"][0]["n"]["value"] == sum(range(12))

    sparse = unique("sparse")
    index_docs(es, sparse, [{"at": d} for d in ("2026-01-01T10:00:00Z", "2026-03-15T00:00:00Z", "2026-07-01T00:00:00Z")])
    t = es.search(index=sparse, size=0, aggs={"t": {"auto_date_histogram": {"field": "at", "format": "yyyy-MM"}}})["aggregations"]["t"]
    assert t["interval"] == "1M"
    assert [(b["key_as_string"], b["doc_count"]) for b in t["buckets"]] == [
        ("2026-01", 1), ("2026-02", 0), ("2026-03", 1), ("2026-04", 0), ("2026-05", 0), ("2026-06", 0), ("2026-07", 1)]

    # Days in a time zone, the shortest one included, down to a minimum interval.
    london = es.search(index=f"{hourly}-*", size=0, aggs={"t": {"auto_date_histogram": {
        "field": "at", "buckets": 5, "time_zone": "Europe/London", "minimum_interval": "day"}}})["aggregations"]["t"]
    assert london["interval"] == "1d"
    assert [(b["key_as_string"], b["doc_count"]) for b in london["buckets"]] == [
        ("2026-03-27T00:00:00.000Z", 24), ("2026-03-28T00:00:00.000Z", 24),
        ("2026-03-29T00:00:00.000Z", 23), ("2026-03-30T00:00:00.000+01:00", 1)]

    with pytest.raises(BadRequestError) as raised:
        es.search(index=sparse, size=0, aggs={"t": {"auto_date_histogram": {"field": "at", "minimum_interval": "week"}}})
    assert "minimum_interval" in raised.value.body["error"]["reason"]


def jlh(subset_freq, subset_size, superset_freq, superset_size):
    sub, sup = subset_freq / subset_size, superset_freq / superset_size
    return (sub - sup) * (sub / sup) if sub > sup else 0.0


def test_significant_terms(es, opensearch, metrics_index, stockdata):
    response = es.search(index=metrics_index, size=0, typed_keys=True, query={"term": {"tag": "t1"}}, aggs={
        "tags": {"significant_terms": {"field": "tag"}},
        "values": {"significant_terms": {"field": "v", "min_doc_count": 1, "size": 3}},
        "values_min3": {"significant_terms": {"field": "v"}},
        "against_two": {"significant_terms": {"field": "tag", "background_filter": {"terms": {"tag": ["t1", "t2"]}}}},
        "percentage": {"significant_terms": {"field": "tag", "percentage": {}}},
        "chi": {"significant_terms": {"field": "tag", "chi_square": {}}},
        "mi": {"significant_terms": {"field": "tag", "mutual_information": {"include_negatives": True}}},
        "gnd": {"significant_terms": {"field": "tag", "gnd": {"background_is_superset": True}}},
    })
    a = response["aggregations"]
    assert a["sigsterms#tags"] == {"doc_count": 5, "bg_count": 21, "buckets": [
        {"key": "t1", "doc_count": 5, "score": pytest.approx(jlh(5, 5, 5, 21)), "bg_count": 5}]}
    # Ties by key; each value is in one of the subset's five documents and one of the index's 21.
    values = a["siglterms#values"]
    assert [(b["key"], b["doc_count"], b["bg_count"]) for b in values["buckets"]] == [(1, 1, 1), (5, 1, 1), (9, 1, 1)]
    assert values["buckets"][0]["score"] == pytest.approx(jlh(1, 5, 1, 21))
    assert a["sigsterms#values_min3"]["buckets"] == []
    against = a["sigsterms#against_two"]
    assert (against["doc_count"], against["bg_count"]) == (5, 10)
    assert against["buckets"][0]["score"] == pytest.approx(jlh(5, 5, 5, 10))
    assert a["sigsterms#percentage"]["buckets"][0]["score"] == pytest.approx(1.0)
    # The term holds exactly the subset's five documents of 21: chi square is N, mutual
    # information the entropy of 5 in 21 in bits, and the distance inverted to 1.
    assert a["sigsterms#chi"]["buckets"][0]["score"] == pytest.approx(21.0)
    p = 5 / 21
    assert a["sigsterms#mi"]["buckets"][0]["score"] == pytest.approx(-(p * math.log2(p) + (1 - p) * math.log2(1 - p)))
    assert a["sigsterms#gnd"]["buckets"][0]["score"] == pytest.approx(1.0)

    # Across indices the background counts of every index add up.
    body = {"size": 0, "query": {"term": {"ticker_symbol.keyword": "AAPL"}},
            "aggs": {"sig": {"significant_terms": {"field": "ticker_symbol.keyword", "min_doc_count": 1}}}}
    for client in (es, opensearch):
        sig = client.search(index=f"{stockdata}*", body=body)["aggregations"]["sig"]
        assert sig == {"doc_count": 4, "bg_count": 8, "buckets": [
            {"key": "AAPL", "doc_count": 4, "score": pytest.approx(jlh(4, 4, 4, 8)), "bg_count": 4}]}

    with pytest.raises(BadRequestError) as raised:
        es.search(index=metrics_index, size=0, aggs={"x": {"significant_terms": {
            "field": "tag", "jlh": {}, "chi_square": {}}}})
    assert raised.value.body["error"]["reason"] == "Only one significance heuristic can be specified"


def test_composite_pages_until_exhausted(es, metrics_index):
    seen = []
    after = None
    pages = 0
    while True:
        composite = {"size": 3, "sources": [{"tag": {"terms": {"field": "tag"}}},
                                            {"day": {"date_histogram": {"field": "at", "calendar_interval": "1d"}}}]}
        if after:
            composite["after"] = after
        response = es.search(index=metrics_index, size=0, aggs={"c": {"composite": composite}})
        agg = response["aggregations"]["c"]
        pages += 1
        if not agg["buckets"]:
            assert "after_key" not in agg
            break
        seen.extend((b["key"]["tag"], b["key"]["day"], b["doc_count"]) for b in agg["buckets"])
        after = agg["after_key"]
        assert after == agg["buckets"][-1]["key"]
    assert len(seen) == len(set((t, d) for t, d, _ in seen))
    assert sum(c for _, _, c in seen) == 20
    assert seen == sorted(seen)
    assert len(seen) == 20
    assert pages == math.ceil(len(seen) / 3) + 1


def test_composite_sources_missing_buckets_and_after(es, metrics_index):
    sources = [{"w": {"histogram": {"field": "w", "interval": 2, "order": "desc", "missing_bucket": True}}},
               {"v": {"terms": {"field": "v", "missing_bucket": True}}}]
    c = es.search(index=metrics_index, size=0, aggs={"c": {"composite": {"size": 100, "sources": sources}}})["aggregations"]["c"]
    keys = [(b["key"]["w"], b["key"]["v"]) for b in c["buckets"]]
    # Histogram keys descending (the missing bucket last), then values ascending.
    want = ([(2.0, v) for v in range(1, 21) if v % 3 != 0] + [(0.0, v) for v in range(1, 21) if v % 3 == 0]
            + [(None, None)])
    assert keys == want
    page = es.search(index=metrics_index, size=0, aggs={"c": {"composite": {
        "size": 2, "sources": sources, "after": {"w": 2.0, "v": 20}}}})["aggregations"]["c"]
    assert [(b["key"]["w"], b["key"]["v"]) for b in page["buckets"]] == [(0.0, 3), (0.0, 6)]
    # After a term no document holds: the page starts at the next term there is.
    tags = es.search(index=metrics_index, size=0, aggs={"c": {"composite": {
        "sources": [{"tag": {"terms": {"field": "tag"}}}], "after": {"tag": "t0a"}}}})["aggregations"]["c"]
    assert [b["key"]["tag"] for b in tags["buckets"]] == ["t1", "t2", "t3"]


def test_pipelines(es, metrics_index):
    response = es.search(index=metrics_index, size=0, aggs={
        "per_day": {"date_histogram": {"field": "at", "calendar_interval": "day"}, "aggs": {
            "total": {"sum": {"field": "v"}},
            "running": {"cumulative_sum": {"buckets_path": "total"}},
            "change": {"derivative": {"buckets_path": "total"}},
            "ratio": {"bucket_script": {"buckets_path": {"t": "total", "n": "_count"}, "script": "params.t / params.n"}},
            "big": {"bucket_selector": {"buckets_path": {"t": "total"}, "script": "params.t > 40"}},
        }},
        "best_day": {"max_bucket": {"buckets_path": "per_day>total"}},
        "avg_day": {"avg_bucket": {"buckets_path": "per_day>total"}},
    })
    a = response["aggregations"]
    totals = {}
    for v in range(1, 21):
        totals.setdefault(1 + v % 5, 0)
        totals[1 + v % 5] += v
    days = a["per_day"]["buckets"]
    assert all(b["total"]["value"] > 40 for b in days)
    assert [b["total"]["value"] for b in days] == [float(t) for _, t in sorted(totals.items()) if t > 40]
    assert "change" not in days[0] and "change" in days[1]
    assert days[0]["ratio"]["value"] == days[0]["total"]["value"] / days[0]["doc_count"]
    assert a["best_day"]["value"] == float(max(totals.values()))
    assert a["best_day"]["keys"] == ["2026-01-01T00:00:00.000Z"]
    kept = [t for t in totals.values() if t > 40]
    assert a["avg_day"]["value"] == pytest.approx(sum(kept) / len(kept))


def test_typed_keys_name_result_types(es, metrics_index):
    """`typed_keys`, which typed clients such as Elasticsearch's Java client always send."""
    response = es.search(index=metrics_index, size=0, typed_keys=True, aggs={
        "tags": {"terms": {"field": "tag"}, "aggs": {"p": {"percentiles": {"field": "v"}}}},
        "values": {"terms": {"field": "v", "size": 1}},
        "avg": {"avg": {"field": "v"}},
        "best": {"max_bucket": {"buckets_path": "tags>_count"}},
    })
    a = response["aggregations"]
    assert set(a) == {"sterms#tags", "lterms#values", "avg#avg", "bucket_metric_value#best"}
    assert "tdigest_percentiles#p" in a["sterms#tags"]["buckets"][0]


def test_refusals_name_what_is_wrong(es, metrics_index):
    with pytest.raises(BadRequestError) as raised:
        es.search(index=metrics_index, size=0, aggs={"x": {"terms": {"field": "text"}}})
    error = raised.value.body["error"]
    assert error["type"] == "illegal_argument_exception"
    assert "Text fields are not optimised" in error["reason"]
    assert "[text.keyword]" in error["reason"]

    with pytest.raises(BadRequestError) as raised:
        es.search(index=metrics_index, size=0, aggs={"x": {"terms": {"field": "tag", "sizee": 3}}})
    assert raised.value.body["error"]["reason"] == "[terms] unknown field [sizee]"

    with pytest.raises(BadRequestError) as raised:
        es.search(index=metrics_index, size=0, aggs={"x": {"adjacency_matrix": {"filters": {}}}})
    assert "adjacency_matrix" in raised.value.body["error"]["reason"]

    with pytest.raises(BadRequestError) as raised:
        es.search(index=metrics_index, size=0, aggs={"x": {"top_metrics": {
            "metrics": {"field": "v"}, "sort": {"v": "asc"}, "size": 2**63 - 1}}})
    assert raised.value.body["error"]["reason"].startswith("[top_metrics.size] must not be more than [10]")

    with pytest.raises(BadRequestError) as raised:
        es.search(index=metrics_index, size=0, aggs={
            "t": {"terms": {"field": "tag"}}, "p": {"percentiles_bucket": {"buckets_path": "t>_count", "percents": [101]}}})
    assert "0.0-100.0" in raised.value.body["error"]["reason"]

    with pytest.raises(BadRequestError) as raised:
        es.search(index=metrics_index, size=0, aggs={"x": {"date_histogram": {
            "field": "at", "fixed_interval": "1s", "min_doc_count": 0,
            "extended_bounds": {"min": "2026-01-01", "max": "2026-01-03"}}}})
    error = raised.value.body["error"]
    assert error["type"] == "too_many_buckets_exception"
    assert error["reason"].startswith("Trying to create too many buckets. Must be less than or equal to: [65536]")
    assert raised.value.meta.status == 400


def test_opensearch_client(opensearch, licences):
    response = opensearch.search(index=licences, body={
        "size": 0,
        "aggs": {
            "by_postcode": {"terms": {"field": "postcode.keyword", "order": {"avg_points": "desc"}},
                            "aggs": {"avg_points": {"avg": {"field": "penaltyPoints"}}}},
            "points": {"histogram": {"field": "penaltyPoints", "interval": 5}},
        },
    })
    aggs = response["aggregations"]
    assert [b["key"] for b in aggs["by_postcode"]["buckets"]] == ["CD2", "AB1", "ZZ9"]
    assert [(b["key"], b["doc_count"]) for b in aggs["points"]["buckets"]] == [(0.0, 3), (5.0, 2)]
    # OpenSearch Dashboards and older Grafana still send the pre-7.2 `interval`.
    per_year = opensearch.search(index=licences, body={
        "size": 0, "aggs": {"t": {"date_histogram": {"field": "issued", "interval": "1y", "min_doc_count": 1}}}})
    assert per_year["aggregations"]["t"]["buckets"] == []
    with pytest.raises(RequestError) as raised:
        opensearch.search(index=licences, body={"aggs": {"x": {"bogus": {}}}})
    assert raised.value.status_code == 400
    assert raised.value.error == "parsing_exception"


def test_alias_filters_and_msearch_scope_aggregations(es, licences):
    """An alias filter scopes aggregations as it scopes hits; `_msearch` bodies aggregate too."""
    alias = unique("licence-ab1")
    es.indices.update_aliases(actions=[{"add": {"index": licences, "alias": alias, "filter": {"term": {"postcode.keyword": "AB1"}}}}])
    response = es.search(index=alias, size=0, aggs={"points": {"sum": {"field": "penaltyPoints"}}})
    assert response["aggregations"]["points"] == {"value": 9.0}
    answers = es.msearch(searches=[
        {"index": licences}, {"size": 0, "aggs": {"max": {"max": {"field": "penaltyPoints"}}}},
        {"index": alias}, {"size": 0, "aggs": {"n": {"value_count": {"field": "penaltyPoints"}}}},
    ])["responses"]
    assert answers[0]["aggregations"] == {"max": {"value": 9.0}}
    assert answers[1]["aggregations"] == {"n": {"value": 2}}
