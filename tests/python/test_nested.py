"""The `nested` field type (issue 8 item 5) and the `nested` / `reverse_nested` aggregations
(issue 9 item 2) through the real `elasticsearch` 9.x and `opensearch-py` 3.x clients against
the real binary: each nested object matches on its own, score modes, inner hits with `_nested`,
aggregations that count objects and then documents again, deletes and updates that take the
objects with them, counts that never count objects, and all of it across kill -9."""

import pytest
from elasticsearch import BadRequestError, Elasticsearch
from opensearchpy import OpenSearch
from opensearchpy.exceptions import RequestError

from conftest import CLIENT_TIMEOUT_S, unique

MAPPING = {"properties": {
    "title": {"type": "keyword"},
    "comments": {"type": "nested", "properties": {
        "author": {"type": "keyword"},
        "stars": {"type": "long"},
        "text": {"type": "text"},
        "votes": {"type": "nested", "properties": {"by": {"type": "keyword"}}},
    }},
}}

POSTS = {
    "1": {"title": "one", "comments": [
        {"author": "alice", "stars": 5, "text": "great post", "votes": [{"by": "x"}, {"by": "y"}]},
        {"author": "bob", "stars": 1, "text": "bad post"},
    ]},
    "2": {"title": "two", "comments": {"author": "alice", "stars": 1, "text": "meh", "votes": {"by": "y"}}},
    "3": {"title": "three"},
}


def load(client, index=None):
    index = index or unique("nested")
    client.indices.create(index=index, mappings=MAPPING)
    for id, document in POSTS.items():
        client.index(index=index, id=id, document=document)
    client.indices.refresh(index=index)
    return index


def ids(response):
    return sorted(hit["_id"] for hit in response["hits"]["hits"])


def both_of(author, stars):
    return {"nested": {"path": "comments", "query": {"bool": {"must": [
        {"term": {"comments.author": author}}, {"term": {"comments.stars": stars}}]}}}}


def test_mapping_round_trips_and_an_object_must_match_every_clause(es):
    index = load(es)
    mapping = es.indices.get_mapping(index=index)[index]["mappings"]
    assert mapping["properties"]["comments"]["type"] == "nested"
    assert mapping["properties"]["comments"]["properties"]["votes"]["type"] == "nested"
    assert ids(es.search(index=index, query=both_of("alice", 5))) == ["1"]
    # bob has 1 star and alice 5 in post 1: no single comment holds both.
    assert ids(es.search(index=index, query=both_of("bob", 5))) == []
    # Outside a nested query the comments' fields are not the post's, in the DSL and in q=.
    assert ids(es.search(index=index, query={"term": {"comments.author": "alice"}})) == []
    assert ids(es.search(index=index, q="comments.author:alice")) == []
    assert ids(es.search(index=index, q="comments.author:bob AND comments.stars:5")) == []
    # Nested inside nested: a comment by alice that x voted for.
    voted = {"nested": {"path": "comments", "query": {"bool": {"must": [
        {"term": {"comments.author": "alice"}},
        {"nested": {"path": "comments.votes", "query": {"term": {"comments.votes.by": "x"}}}}]}}}}
    assert ids(es.search(index=index, query=voted)) == ["1"]
    # Dynamic fields inside nested objects are mapped under them and queried the same way.
    es.index(index=index, id="4", document={"comments": [{"author": "dan", "mood": "happy"}]}, refresh=True)
    happy = {"nested": {"path": "comments", "query": {"match": {"comments.mood": "happy"}}}}
    assert ids(es.search(index=index, query=happy)) == ["4"]


def test_counts_hits_and_gets_see_documents_only(es):
    index = load(es)
    assert es.count(index=index)["count"] == 3
    assert es.search(index=index, query={"match_all": {}})["hits"]["total"]["value"] == 3
    assert es.count(index=index, query=both_of("alice", 1))["count"] == 1
    got = es.get(index=index, id="1")
    assert got["_source"] == POSTS["1"] and got["_version"] == 1
    hits = es.search(index=index, query={"match_all": {}}, sort=["title"])["hits"]["hits"]
    assert [hit["_source"] for hit in hits] == [POSTS["1"], POSTS["3"], POSTS["2"]]


@pytest.mark.parametrize("mode,expected", [("avg", 3.0), ("sum", 6.0), ("max", 5.0), ("min", 1.0), ("none", 0.0)])
def test_score_modes(es, mode, expected):
    index = load(es)
    by_stars = {"bool": {"should": [
        {"constant_score": {"filter": {"term": {"comments.stars": 5}}, "boost": 5}},
        {"constant_score": {"filter": {"term": {"comments.stars": 1}}, "boost": 1}}]}}
    response = es.search(index=index, query={"nested": {"path": "comments", "score_mode": mode, "query": by_stars}})
    scores = {hit["_id"]: hit["_score"] for hit in response["hits"]["hits"]}
    assert scores["1"] == pytest.approx(expected)


def test_inner_hits_show_matching_objects_where_they_sit(es):
    index = load(es)
    response = es.search(index=index, query={"nested": {
        "path": "comments", "query": {"term": {"comments.author": "bob"}}, "inner_hits": {}}})
    hit = response["hits"]["hits"][0]
    assert hit["_id"] == "1" and hit["_source"] == POSTS["1"]
    inner = hit["inner_hits"]["comments"]["hits"]
    assert inner["total"] == {"value": 1, "relation": "eq"}
    assert inner["hits"] == [{
        "_index": index, "_id": "1", "_nested": {"field": "comments", "offset": 1},
        "_score": inner["max_score"], "_source": POSTS["1"]["comments"][1]}]
    # Named, paged, sorted by score, with source filtering; objects of objects name both levels.
    response = es.search(index=index, query={"nested": {
        "path": "comments.votes", "query": {"match_all": {}},
        "inner_hits": {"name": "v", "from": 1, "size": 1, "sort": ["_score"], "_source": False}}})
    first = next(h for h in response["hits"]["hits"] if h["_id"] == "1")
    votes = first["inner_hits"]["v"]["hits"]
    assert votes["total"]["value"] == 2
    assert [h["_nested"] for h in votes["hits"]] == [
        {"field": "comments", "offset": 0, "_nested": {"field": "votes", "offset": 1}}]
    assert "_source" not in votes["hits"][0]
    response = es.search(index=index, query={"nested": {
        "path": "comments", "query": {"match": {"comments.text": "post"}},
        "inner_hits": {"_source": ["comments.author"]}}})
    first = next(h for h in response["hits"]["hits"] if h["_id"] == "1")
    assert [h["_source"] for h in first["inner_hits"]["comments"]["hits"]["hits"]] == [{"author": "alice"}, {"author": "bob"}]


def test_nested_and_reverse_nested_aggregations(es):
    index = load(es)
    response = es.search(index=index, size=0, aggs={"comments": {
        "nested": {"path": "comments"},
        "aggs": {
            "authors": {"terms": {"field": "comments.author"}, "aggs": {
                "posts": {"reverse_nested": {}, "aggs": {"titles": {"terms": {"field": "title"}}}}}},
            "stars": {"sum": {"field": "comments.stars"}},
            "votes": {"nested": {"path": "comments.votes"}, "aggs": {
                "by": {"terms": {"field": "comments.votes.by"}},
                "comment": {"reverse_nested": {"path": "comments"}, "aggs": {
                    "authors": {"terms": {"field": "comments.author"}}}}}},
        }}})
    comments = response["aggregations"]["comments"]
    assert comments["doc_count"] == 3
    assert comments["stars"]["value"] == 7
    authors = {b["key"]: b for b in comments["authors"]["buckets"]}
    assert authors["alice"]["doc_count"] == 2 and authors["bob"]["doc_count"] == 1
    assert authors["alice"]["posts"]["doc_count"] == 2
    assert [b["key"] for b in authors["alice"]["posts"]["titles"]["buckets"]] == ["one", "two"]
    assert authors["bob"]["posts"]["doc_count"] == 1
    votes = comments["votes"]
    assert votes["doc_count"] == 3
    assert [(b["key"], b["doc_count"]) for b in votes["by"]["buckets"]] == [("y", 2), ("x", 1)]
    assert votes["comment"]["doc_count"] == 2
    assert [(b["key"], b["doc_count"]) for b in votes["comment"]["authors"]["buckets"]] == [("alice", 2)]
    # An unmapped path aggregates nothing; reverse_nested outside nested is refused.
    response = es.search(index=index, size=0, aggs={"none": {"nested": {"path": "nope"}}})
    assert response["aggregations"]["none"]["doc_count"] == 0
    with pytest.raises(BadRequestError) as raised:
        es.search(index=index, size=0, aggs={"r": {"reverse_nested": {}}})
    assert "can only be used inside a [nested] aggregation" in raised.value.body["error"]["reason"]


def test_top_hits_inside_nested_show_the_objects(es):
    """`top_hits` under `nested` lists nested objects as Elasticsearch does: the object as
    `_source` (filtered by full or relative paths), where it sits as `_nested`, and the `_id`
    of its document; objects of objects name both levels."""
    index = load(es)
    response = es.search(index=index, size=0, aggs={"comments": {
        "nested": {"path": "comments"},
        "aggs": {
            "best": {"top_hits": {"size": 2, "sort": [{"comments.stars": "desc"}, {"comments.author": "desc"}]}},
            "authors": {"top_hits": {"size": 1, "sort": [{"comments.author": "asc"}],
                                     "_source": {"includes": ["comments.author"]}}},
            "votes": {"nested": {"path": "comments.votes"}, "aggs": {
                "last": {"top_hits": {"size": 1, "sort": [{"comments.votes.by": "desc"}]}}}},
        }}})
    comments = response["aggregations"]["comments"]
    best = comments["best"]["hits"]
    assert best["total"] == {"value": 3, "relation": "eq"}
    assert [{k: h[k] for k in ("_id", "_nested", "_source", "sort")} for h in best["hits"]] == [
        {"_id": "1", "_nested": {"field": "comments", "offset": 0},
         "_source": POSTS["1"]["comments"][0], "sort": [5, "alice"]},
        {"_id": "1", "_nested": {"field": "comments", "offset": 1},
         "_source": POSTS["1"]["comments"][1], "sort": [1, "bob"]},
    ]
    assert best["hits"][0]["_index"] == index
    authors = comments["authors"]["hits"]["hits"]
    assert [h["_source"] for h in authors] == [{"author": "alice"}]
    last = comments["votes"]["last"]["hits"]["hits"]
    assert len(last) == 1
    assert last[0]["_source"] == {"by": "y"}
    assert last[0]["_nested"]["field"] == "comments"
    assert last[0]["_nested"]["_nested"]["field"] == "votes"
    # Back at the documents, top_hits shows documents again.
    response = es.search(index=index, size=0, aggs={"comments": {
        "nested": {"path": "comments"},
        "aggs": {"posts": {"reverse_nested": {}, "aggs": {
            "top": {"top_hits": {"size": 1, "sort": [{"title": "asc"}]}}}}}}})
    top = response["aggregations"]["comments"]["posts"]["top"]["hits"]["hits"]
    assert [(h["_id"], h["_source"]) for h in top] == [("1", POSTS["1"])]
    assert "_nested" not in top[0]


def test_updates_and_deletes_take_the_objects_with_them(es):
    index = load(es)
    alice = {"nested": {"path": "comments", "query": {"term": {"comments.author": "alice"}}}}
    es.index(index=index, id="1", document={"title": "one", "comments": [{"author": "carol"}]}, refresh=True)
    assert ids(es.search(index=index, query=alice)) == ["2"]
    es.update(index=index, id="2", doc={"comments": [{"author": "dave"}]}, refresh=True)
    assert ids(es.search(index=index, query=alice)) == []
    es.delete(index=index, id="1", refresh=True)
    carol = {"nested": {"path": "comments", "query": {"term": {"comments.author": "carol"}}}}
    assert ids(es.search(index=index, query=carol)) == []
    response = es.search(index=index, size=0, aggs={"c": {"nested": {"path": "comments"}}})
    assert response["aggregations"]["c"]["doc_count"] == 1
    es.delete_by_query(index=index, query={"nested": {"path": "comments", "query": {"term": {"comments.author": "dave"}}}}, refresh=True)
    assert es.count(index=index)["count"] == 1
    response = es.search(index=index, size=0, aggs={"c": {"nested": {"path": "comments"}}})
    assert response["aggregations"]["c"]["doc_count"] == 0


def test_bad_requests_name_what_is_wrong(es):
    index = load(es)
    cases = [
        ({"nested": {"path": "nope", "query": {"match_all": {}}}}, "query_shard_exception",
         "[nested] failed to find nested object under path [nope]"),
        ({"nested": {"path": "title", "query": {"match_all": {}}}}, "query_shard_exception",
         "[nested] nested object under path [title] is not of nested type"),
        ({"nested": {"path": "comments", "score_mode": "median", "query": {"match_all": {}}}},
         "illegal_argument_exception", "No score mode for child query [median] found"),
    ]
    for query, kind, reason in cases:
        with pytest.raises(BadRequestError) as raised:
            es.search(index=index, query=query)
        error = raised.value.body["error"]
        assert kind in (error["type"], error.get("caused_by", {}).get("type")), error
        assert reason in str(raised.value.body), raised.value.body
    ignored = {"nested": {"path": "nope", "ignore_unmapped": True, "query": {"match_all": {}}}}
    assert ids(es.search(index=index, query=ignored)) == []
    # The limits: objects per document (a setting) and nested fields per mapping.
    limited = unique("nested")
    es.indices.create(index=limited, settings={"index.mapping.nested_objects.limit": 2}, mappings=MAPPING)
    with pytest.raises(BadRequestError) as raised:
        es.index(index=limited, id="1", document={"comments": [{"author": "a"}, {"author": "b"}, {"author": "c"}]})
    assert raised.value.body["error"]["type"] == "illegal_argument_exception"
    assert raised.value.body["error"]["reason"] == (
        "The number of nested documents has exceeded the allowed limit of [2]. This limit can be set by "
        "changing the [index.mapping.nested_objects.limit] index level setting.")
    with pytest.raises(BadRequestError) as raised:
        es.indices.create(index=unique("nested"), mappings={"properties": {
            f"n{i}": {"type": "nested"} for i in range(51)}})
    assert raised.value.body["error"]["reason"] == "Limit of nested fields [50] has been exceeded"
    with pytest.raises(BadRequestError) as raised:
        es.search(index=index, query={"match_all": {}}, sort=[{"comments.stars": {"order": "asc", "nested": {"path": "comments"}}}])
    assert "[nested]" in raised.value.body["error"]["reason"]


def test_opensearch_client(opensearch):
    index = unique("nested")
    opensearch.indices.create(index=index, body={"mappings": MAPPING})
    for id, document in POSTS.items():
        opensearch.index(index=index, id=id, body=document)
    opensearch.indices.refresh(index=index)
    response = opensearch.search(index=index, body={"query": both_of("alice", 5)})
    assert ids(response) == ["1"]
    assert ids(opensearch.search(index=index, body={"query": both_of("bob", 5)})) == []
    response = opensearch.search(index=index, body={
        "query": {"nested": {"path": "comments", "score_mode": "max",
                             "query": {"term": {"comments.author": "alice"}}, "inner_hits": {"size": 1}}},
        "aggs": {"c": {"nested": {"path": "comments"}, "aggs": {"back": {"reverse_nested": {}}}}}})
    assert ids(response) == ["1", "2"]
    for hit in response["hits"]["hits"]:
        assert len(hit["inner_hits"]["comments"]["hits"]["hits"]) == 1
    # Every comment of the two matching posts, then the two posts again.
    assert response["aggregations"]["c"]["doc_count"] == 3
    assert response["aggregations"]["c"]["back"]["doc_count"] == 2
    assert opensearch.count(index=index)["count"] == 3
    with pytest.raises(RequestError):
        opensearch.search(index=index, body={"query": {"nested": {"path": "nope", "query": {"match_all": {}}}}})


def test_kill_9_and_restart_keep_objects_documents_and_deletes(sluice_factory, tmp_path):
    server = sluice_factory(tmp_path / "crash")
    client = Elasticsearch(server.es_url, request_timeout=CLIENT_TIMEOUT_S)
    index = unique("nested")
    client.indices.create(index=index, mappings=MAPPING, settings={"refresh_interval": "-1"})
    for id, document in POSTS.items():
        client.index(index=index, id=id, document=document)
    client.indices.refresh(index=index)
    # Acknowledged after the last refresh: only the translog holds these.
    client.index(index=index, id="1", document={"title": "one", "comments": [{"author": "carol", "stars": 4}]})
    client.delete(index=index, id="2")
    client.index(index=index, id="5", document={"comments": [{"author": "alice", "stars": 5}]})
    client.close()
    server.kill()

    server = sluice_factory(tmp_path / "crash")
    client = Elasticsearch(server.es_url, request_timeout=CLIENT_TIMEOUT_S)
    client.indices.refresh(index=index)
    assert client.count(index=index)["count"] == 3
    assert ids(client.search(index=index, query=both_of("alice", 5))) == ["5"]
    assert ids(client.search(index=index, query=both_of("carol", 4))) == ["1"]
    assert ids(client.search(index=index, query=both_of("bob", 1))) == []
    response = client.search(index=index, size=0, aggs={"c": {"nested": {"path": "comments"}, "aggs": {
        "back": {"reverse_nested": {}}}}})
    assert response["aggregations"]["c"]["doc_count"] == 2
    assert response["aggregations"]["c"]["back"]["doc_count"] == 2
    assert client.get(index=index, id="1")["_source"]["comments"] == [{"author": "carol", "stars": 4}]
    client.close()
