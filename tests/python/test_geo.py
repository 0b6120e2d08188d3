"""`geo_point` (issue 8 item 5, and the geo aggregations of Kibana's maps) through the real
`elasticsearch` 9.x and `opensearch-py` 3.x clients against the real binary: every input
form of a point, refusals in Elasticsearch's shapes, `geo_distance` and `geo_bounding_box`
queries, the `_geo_distance` sort, `geohash_grid`, `geotile_grid`, `geo_bounds`,
`geo_centroid` and `geo_distance` aggregations with keys as Elasticsearch prints them, and
`fields`/`docvalue_fields` of a point."""

import math

import pytest
from elasticsearch import BadRequestError
from opensearchpy.exceptions import RequestError

from conftest import unique

MAPPINGS = {"properties": {"location": {"type": "geo_point"}, "name": {"type": "keyword"}}}

# The museums of Elasticsearch's geo aggregation examples, plus New York.
CITIES = [
    ("nemo", "POINT (4.912350 52.374081)"),
    ("centre", "POINT (4.901618 52.369219)"),
    ("rijks", "POINT (4.914722 52.371667)"),
    ("louvre", "POINT (2.336389 48.861111)"),
    ("orsay", "POINT (2.327000 48.860000)"),
    ("antwerp", "POINT (4.405200 51.222900)"),
    ("new_york", {"lat": 40.7128, "lon": -74.0060}),
]

EARTH_RADIUS_M = 6371008.7714


def haversine_m(lat1, lon1, lat2, lon2):
    x1, x2 = math.radians(lat1), math.radians(lat2)
    h = (1 - math.cos(x1 - x2)) + math.cos(x1) * math.cos(x2) * (1 - math.cos(math.radians(lon1 - lon2)))
    return EARTH_RADIUS_M * 2 * math.asin(min(1.0, math.sqrt(h * 0.5)))


@pytest.fixture
def cities(es):
    index = unique("geo")
    es.indices.create(index=index, mappings=MAPPINGS)
    for name, location in CITIES:
        es.index(index=index, id=name, document={"location": location, "name": name})
    es.indices.refresh(index=index)
    return index


def ids(response):
    return sorted(hit["_id"] for hit in response["hits"]["hits"])


def test_every_input_form_is_one_point(es):
    index = unique("geo")
    es.indices.create(index=index, mappings={"properties": {"p": {"type": "geo_point"}}})
    forms = [{"lat": 41.12, "lon": -71.34}, {"lat": "41.12", "lon": "-71.34"}, "41.12,-71.34",
             "drm3btev3e86", [-71.34, 41.12], "POINT (-71.34 41.12)",
             {"type": "Point", "coordinates": [-71.34, 41.12]}]
    for i, form in enumerate(forms):
        es.index(index=index, id=str(i), document={"p": form})
    es.index(index=index, id="many", document={"p": [[-71.34, 41.12], "10,10"]})
    es.indices.refresh(index=index)
    near = es.search(index=index, size=20, query={"geo_distance": {
        "distance": "10m", "p": {"lat": 41.12, "lon": -71.34}}})
    assert ids(near) == sorted([str(i) for i in range(len(forms))] + ["many"])
    far = es.search(index=index, query={"geo_distance": {"distance": "1km", "p": "10,10"}})
    assert ids(far) == ["many"]
    assert es.indices.get_mapping(index=index)[index]["mappings"] == {
        "properties": {"p": {"type": "geo_point"}}}


def test_bad_points_answer_400_unless_ignore_malformed(es):
    index = unique("geo")
    es.indices.create(index=index, mappings={"properties": {
        "p": {"type": "geo_point"}, "q": {"type": "geo_point", "ignore_malformed": True}}})
    with pytest.raises(BadRequestError) as error:
        es.index(index=index, id="1", document={"p": {"lat": 100, "lon": 0}})
    body = error.value.body["error"]
    assert body["type"] == "document_parsing_exception"
    assert body["reason"].startswith("failed to parse field [p] of type [geo_point]")
    assert "illegal latitude value [100.0]" in body["caused_by"]["reason"]
    with pytest.raises(BadRequestError):
        es.index(index=index, id="2", document={"p": "somewhere nice"})
    es.index(index=index, id="3", document={"q": {"lat": 0, "lon": 500}}, refresh=True)
    assert es.count(index=index)["count"] == 1
    with pytest.raises(BadRequestError) as error:
        es.indices.create(index=unique("geo"), mappings={"properties": {
            "p": {"type": "geo_point", "analyzer": "standard"}}})
    assert error.value.body["error"]["type"] == "mapper_parsing_exception"


def test_dynamic_mapping_never_makes_a_geo_point(es):
    index = unique("geo")
    es.index(index=index, id="1", document={"where": "41.12,-71.34",
                                             "obj": {"lat": 41.12, "lon": -71.34}}, refresh=True)
    properties = es.indices.get_mapping(index=index)[index]["mappings"]["properties"]
    assert properties["where"]["type"] == "text"
    assert properties["obj"] == {"properties": {"lat": {"type": "float"}, "lon": {"type": "float"}}}


def test_templates_map_geo_points_of_new_indices(es):
    prefix = unique("geotpl")
    es.indices.put_index_template(name=prefix, index_patterns=[f"{prefix}-*"],
                                  template={"mappings": MAPPINGS})
    index = f"{prefix}-1"
    es.index(index=index, id="1", document={"location": "52.37,4.89"}, refresh=True)
    response = es.search(index=f"{prefix}-*", query={"geo_distance": {
        "distance": "1km", "location": [4.89, 52.37]}})
    assert ids(response) == ["1"]


def test_geo_distance_query_units_and_options(es, cities):
    amsterdam = {"lat": 52.3760, "lon": 4.894}
    for distance, expected in [("2km", ["centre", "nemo", "rijks"]),
                               ("200km", ["antwerp", "centre", "nemo", "rijks"]),
                               ("300mi", ["antwerp", "centre", "louvre", "nemo", "orsay", "rijks"]),
                               (2000, ["centre", "nemo", "rijks"]),
                               ("2187.2yd", ["centre", "nemo", "rijks"]),
                               ("1.1nmi", ["centre", "nemo", "rijks"])]:
        response = es.search(index=cities, query={"geo_distance": {
            "distance": distance, "location": amsterdam}})
        assert ids(response) == expected, distance
    plane = es.search(index=cities, query={"geo_distance": {
        "distance": "200km", "distance_type": "plane", "location": amsterdam}})
    assert ids(plane) == ["antwerp", "centre", "nemo", "rijks"]
    # Within bool filters and named, as any clause.
    named = es.search(index=cities, query={"bool": {"filter": [{"geo_distance": {
        "distance": "2km", "location": "52.376,4.894", "_name": "near"}}]}})
    assert {hit["matched_queries"][0] for hit in named["hits"]["hits"]} == {"near"}
    # Out-of-range centers: refused, wrapped or taken as they are.
    with pytest.raises(BadRequestError) as error:
        es.search(index=cities, query={"geo_distance": {
            "distance": "1km", "location": {"lat": 91, "lon": 0}}})
    assert "illegal latitude value [91.0]" in error.value.body["error"]["reason"]
    coerced = es.search(index=cities, query={"geo_distance": {
        "distance": "2km", "validation_method": "COERCE", "location": {"lat": 52.376, "lon": 364.894}}})
    assert ids(coerced) == ["centre", "nemo", "rijks"]
    with pytest.raises(BadRequestError) as error:
        es.search(index=cities, query={"geo_distance": {"distance": "12 parsecs", "location": amsterdam}})
    assert error.value.status_code == 400


def test_unmapped_and_unsupported_geo_queries(es, cities):
    with pytest.raises(BadRequestError) as error:
        es.search(index=cities, query={"geo_distance": {"distance": "1km", "nowhere": "0,0"}})
    assert "failed to find geo field [nowhere]" in str(error.value.body)
    ignored = es.search(index=cities, query={"geo_distance": {
        "distance": "1km", "nowhere": "0,0", "ignore_unmapped": True}})
    assert ids(ignored) == []
    with pytest.raises(BadRequestError) as error:
        es.search(index=cities, query={"geo_polygon": {"location": {"points": [[0, 0], [1, 1], [1, 0]]}}})
    assert "geo_polygon" in error.value.body["error"]["reason"]
    with pytest.raises(BadRequestError) as error:
        es.search(index=cities, query={"term": {"location": "1,2"}})
    assert "Geometry fields do not support exact searching" in str(error.value.body)


def test_geo_bounding_box_in_every_form(es, cities):
    expected = ["centre", "nemo", "rijks"]
    forms = [
        {"top_left": {"lat": 53, "lon": 4}, "bottom_right": {"lat": 52, "lon": 5}},
        {"top_left": [4, 53], "bottom_right": [5, 52]},
        {"top_left": "53,4", "bottom_right": "52,5"},
        {"top_left": "POINT (4 53)", "bottom_right": "POINT (5 52)"},
        {"top": 53, "left": 4, "bottom": 52, "right": 5},
        {"top_right": {"lat": 53, "lon": 5}, "bottom_left": {"lat": 52, "lon": 4}},
        {"wkt": "BBOX (4, 5, 53, 52)"},
        {"top_left": "u17", "bottom_right": "u17"},
    ]
    for form in forms:
        response = es.search(index=cities, query={"geo_bounding_box": {"location": form}})
        assert ids(response) == expected, form
    crossing = es.search(index=cities, query={"geo_bounding_box": {"location": {
        "top": 60, "bottom": 30, "left": 170, "right": -70}}})
    assert ids(crossing) == ["new_york"]
    with pytest.raises(BadRequestError):
        es.search(index=cities, query={"geo_bounding_box": {"location": {"top": 1, "left": 2}}})


def test_geo_distance_sort_shows_distances(es, cities):
    response = es.search(index=cities, size=10, sort=[{"_geo_distance": {
        "location": {"lat": 52.376, "lon": 4.894}, "order": "asc", "unit": "km",
        "mode": "min", "distance_type": "arc", "ignore_unmapped": True}}])
    hits = response["hits"]["hits"]
    order = [hit["_id"] for hit in hits]
    assert order[:3] == ["centre", "nemo", "rijks"]
    assert order[-1] == "new_york"
    for hit in hits:
        lon, lat = [float(v) for v in hit["_source"]["location"][7:-1].split()] \
            if isinstance(hit["_source"]["location"], str) \
            else (hit["_source"]["location"]["lon"], hit["_source"]["location"]["lat"])
        expected_km = haversine_m(52.376, 4.894, lat, lon) / 1000
        assert abs(hit["sort"][0] - expected_km) < 1e-3, hit
    descending = es.search(index=cities, size=10, sort=[
        {"_geo_distance": {"location": [[4.894, 52.376], [2.33, 48.86]], "order": "desc"}}])
    assert descending["hits"]["hits"][0]["_id"] == "new_york"
    with pytest.raises(BadRequestError):
        es.search(index=cities, sort=[{"_geo_distance": {"location": "0,0", "unit": "parsecs"}}])
    with pytest.raises(BadRequestError):
        es.search(index=cities, sort=[{"location": "asc"}])


def test_geohash_grid_as_elasticsearchs_example(es, cities):
    response = es.search(index=cities, size=0, aggs={"grid": {"geohash_grid": {
        "field": "location", "precision": 3}}})
    buckets = response["aggregations"]["grid"]["buckets"]
    assert buckets == [{"key": "u17", "doc_count": 3}, {"key": "u09", "doc_count": 2},
                       {"key": "dr5", "doc_count": 1}, {"key": "u15", "doc_count": 1}]
    small = es.search(index=cities, size=0, aggs={"grid": {"geohash_grid": {
        "field": "location", "precision": "1000km", "size": 1}}})
    assert len(small["aggregations"]["grid"]["buckets"]) == 1
    bounded = es.search(index=cities, size=0, aggs={"grid": {"geohash_grid": {
        "field": "location", "precision": 1,
        "bounds": {"top_left": "60,0", "bottom_right": "50,10"}},
        "aggs": {"names": {"terms": {"field": "name"}}}}})
    cell = bounded["aggregations"]["grid"]["buckets"]
    assert [(b["key"], b["doc_count"]) for b in cell] == [("u", 4)]
    assert len(cell[0]["names"]["buckets"]) == 4
    with pytest.raises(BadRequestError) as error:
        es.search(index=cities, size=0, aggs={"grid": {"geohash_grid": {"field": "location", "precision": 13}}})
    assert "Invalid geohash aggregation precision of 13" in error.value.body["error"]["reason"]


def test_geotile_grid_with_kibana_maps_shape(es, cities):
    # What Kibana Maps sends for a clustered document layer.
    response = es.search(index=cities, size=0, aggs={"gridSplit": {
        "geotile_grid": {"bounds": {"top_left": [-180, 85], "bottom_right": [180, -85]},
                         "field": "location", "precision": 8, "size": 65535, "shard_size": 65535},
        "aggs": {"gridCentroid": {"geo_centroid": {"field": "location"}},
                 "sum_of_points": {"value_count": {"field": "name"}}}}})
    buckets = response["aggregations"]["gridSplit"]["buckets"]
    assert buckets[0]["key"] == "8/131/84" and buckets[0]["doc_count"] == 3
    assert {b["key"] for b in buckets} >= {"8/129/88", "8/75/96"}
    centroid = buckets[0]["gridCentroid"]
    assert centroid["count"] == 3
    assert abs(centroid["location"]["lat"] - 52.3716) < 1e-3
    with pytest.raises(BadRequestError):
        es.search(index=cities, size=0, aggs={"g": {"geotile_grid": {"field": "location", "precision": 30}}})


def test_composite_geotile_source_pages_by_tile(es, cities):
    """A `geotile_grid` source of `composite`, as Kibana's maps page a grid: keys `zoom/x/y`
    ordered by tile (x, then y; not as text, which would put 8/75/96 last), paged with `after`."""
    sources = [{"tile": {"geotile_grid": {"field": "location", "precision": 8}}},
               {"name": {"terms": {"field": "name"}}}]
    listed, after, pages = [], None, 0
    while True:
        composite = {"size": 2, "sources": sources}
        if after:
            composite["after"] = after
        agg = es.search(index=cities, size=0, aggs={"c": {"composite": composite}})["aggregations"]["c"]
        pages += 1
        if not agg["buckets"]:
            break
        listed.extend((b["key"]["tile"], b["key"]["name"], b["doc_count"]) for b in agg["buckets"])
        after = agg["after_key"]
    assert listed == [
        ("8/75/96", "new_york", 1), ("8/129/88", "louvre", 1), ("8/129/88", "orsay", 1),
        ("8/131/84", "centre", 1), ("8/131/84", "nemo", 1), ("8/131/84", "rijks", 1),
        ("8/131/85", "antwerp", 1)]
    assert pages == 5
    # Inside bounds (Amsterdam only), descending: one tile of three documents.
    agg = es.search(index=cities, size=0, aggs={"c": {"composite": {"sources": [{"tile": {"geotile_grid": {
        "field": "location", "precision": 8, "order": "desc",
        "bounds": {"top_left": [0, 53], "bottom_right": [6, 52]}}}}]}}})["aggregations"]["c"]
    assert [(b["key"]["tile"], b["doc_count"]) for b in agg["buckets"]] == [("8/131/84", 3)]
    with pytest.raises(BadRequestError) as error:
        es.search(index=cities, size=0, aggs={"c": {"composite": {
            "sources": sources, "after": {"tile": "8/75", "name": "x"}}}})
    assert "Invalid geotile_grid hash string of 8/75" in error.value.body["error"]["reason"]
    with pytest.raises(BadRequestError) as error:
        es.search(index=cities, size=0, aggs={"c": {"composite": {"sources": [
            {"tile": {"geotile_grid": {"field": "location", "precision": 30}}}]}}})
    assert "Invalid geotile_grid precision of 30" in error.value.body["error"]["reason"]


def test_geo_bounds_centroid_and_distance_aggregations(es, cities):
    response = es.search(index=cities, size=0, aggs={
        "box": {"geo_bounds": {"field": "location", "wrap_longitude": True}},
        "middle": {"geo_centroid": {"field": "location"}},
        "rings": {"geo_distance": {"field": "location", "origin": "52.3760, 4.894", "unit": "km",
                                   "ranges": [{"to": 100}, {"from": 100, "to": 300}, {"from": 300}]}},
        "keyed": {"geo_distance": {"field": "location", "origin": [4.894, 52.376], "keyed": True,
                                   "ranges": [{"to": 100000, "key": "near"}, {"from": 100000}]}},
    })
    aggs = response["aggregations"]
    bounds = aggs["box"]["bounds"]
    assert abs(bounds["top_left"]["lat"] - 52.374081) < 1e-6
    assert abs(bounds["top_left"]["lon"] - -74.006) < 1e-6
    assert abs(bounds["bottom_right"]["lat"] - 40.7128) < 1e-6
    assert abs(bounds["bottom_right"]["lon"] - 4.914722) < 1e-6
    assert aggs["middle"]["count"] == 7
    assert set(aggs["middle"]["location"]) == {"lat", "lon"}
    rings = aggs["rings"]["buckets"]
    assert [(b["key"], b["doc_count"]) for b in rings] == [
        ("*-100.0", 3), ("100.0-300.0", 1), ("300.0-*", 3)]
    assert rings[1]["from"] == 100.0 and rings[1]["to"] == 300.0
    assert aggs["keyed"]["buckets"]["near"]["doc_count"] == 3
    assert aggs["keyed"]["buckets"]["100000.0-*"]["doc_count"] == 4
    empty = es.search(index=cities, size=0, query={"term": {"name": "nobody"}}, aggs={
        "box": {"geo_bounds": {"field": "location"}},
        "middle": {"geo_centroid": {"field": "location"}}})
    assert empty["aggregations"]["box"] == {}
    assert empty["aggregations"]["middle"] == {"count": 0}
    with pytest.raises(BadRequestError) as error:
        es.search(index=cities, size=0, aggs={"a": {"avg": {"field": "location"}}})
    assert "of type [geo_point] is not supported for aggregation [avg]" in error.value.body["error"]["reason"]


def test_fields_and_docvalue_fields_of_points(es, cities):
    query = {"ids": {"values": ["new_york"]}}
    fields = es.search(index=cities, query=query, fields=["location"])
    assert fields["hits"]["hits"][0]["fields"]["location"] == [
        {"type": "Point", "coordinates": [-74.006, 40.7128]}]
    doc_values = es.search(index=cities, query=query, docvalue_fields=["location"])
    [stored] = doc_values["hits"]["hits"][0]["fields"]["location"]
    assert set(stored) == {"lat", "lon"}
    assert abs(stored["lat"] - 40.7128) < 1e-6 and abs(stored["lon"] - -74.006) < 1e-6


def test_opensearch_client_geo_queries_sorts_and_grids(opensearch):
    index = unique("geo")
    opensearch.indices.create(index=index, body={"mappings": MAPPINGS})
    for name, location in CITIES:
        opensearch.index(index=index, id=name, body={"location": location, "name": name})
    opensearch.indices.refresh(index=index)
    near = opensearch.search(index=index, body={"query": {"geo_distance": {
        "distance": "2km", "location": {"lat": 52.376, "lon": 4.894}}}})
    assert ids(near) == ["centre", "nemo", "rijks"]
    box = opensearch.search(index=index, body={"query": {"geo_bounding_box": {"location": {
        "top_left": {"lat": 49, "lon": 2}, "bottom_right": {"lat": 48, "lon": 3}}}}})
    assert ids(box) == ["louvre", "orsay"]
    sorted_hits = opensearch.search(index=index, body={"size": 2, "sort": [
        {"_geo_distance": {"location": "48.86,2.33", "order": "asc", "unit": "m"}}]})
    assert [hit["_id"] for hit in sorted_hits["hits"]["hits"]] == ["orsay", "louvre"]
    grid = opensearch.search(index=index, body={"size": 0, "aggs": {
        "g": {"geohash_grid": {"field": "location", "precision": 2}}}})
    assert grid["aggregations"]["g"]["buckets"][0] == {"key": "u1", "doc_count": 4}
    with pytest.raises(RequestError):
        opensearch.index(index=index, id="bad", body={"location": {"lat": 0, "lon": 200}})
