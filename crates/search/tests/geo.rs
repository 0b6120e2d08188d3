//! `geo_point` fields against real indices: the input forms documents may use, the documents
//! geo queries match (checked against a straightforward haversine over the same points), the
//! order of `_geo_distance` sorts, and the geo aggregations' buckets and metrics.

mod common;
use common::{TestIndex, index_with, write};

use serde_json::{Value, json};
use sluice_search::aggs::{
    self, AggKind, AggValue, Aggregation, AggregationLimits, BucketKey, GeoCells, GeoGrid,
    GeoOrigin, RangeAgg, RangeSpec, ValueSource,
};
use sluice_search::geo::{DistanceType, DistanceUnit, GeoBox, GeoPoint, haversine_meters};
use sluice_search::geo_query::GeoShape;
use sluice_search::query::Geo;
use sluice_search::{
    GeoDistanceSort, Query, SearchError, SearchPage, SortKey, SortOrder, SortValue,
};

/// Cities of Elasticsearch's geo aggregation examples, and a few more.
const CITIES: [(&str, f64, f64); 7] = [
    ("nemo", 52.374081, 4.912350),
    ("amsterdam_centre", 52.369219, 4.901618),
    ("rijks", 52.371667, 4.914722),
    ("louvre", 48.861111, 2.336389),
    ("orsay", 48.860000, 2.327000),
    ("antwerp", 51.222900, 4.405200),
    ("new_york", 40.7128, -74.0060),
];

fn cities() -> TestIndex {
    let documents: Vec<(&str, Value)> = CITIES
        .iter()
        .map(|(id, lat, lon)| {
            (
                *id,
                json!({"location": {"lat": lat, "lon": lon}, "name": id}),
            )
        })
        .collect();
    index_with(
        json!({"properties": {"location": {"type": "geo_point"}, "name": {"type": "keyword"}}}),
        &documents,
    )
}

impl TestIndex {
    fn aggregate(&self, kind: AggKind) -> AggValue {
        let agg = Aggregation {
            name: "geo".into(),
            kind,
            subs: Vec::new(),
        };
        let targets = [(self.index.clone(), Query::match_all())];
        aggs::aggregate(&targets, &[agg], AggregationLimits::default())
            .unwrap()
            .remove(0)
            .value
    }
}

fn geo(field: &str, shape: GeoShape) -> Query {
    Query::Geo(Box::new(Geo {
        field: field.into(),
        shape,
        kind: "geo_distance",
        ignore_unmapped: false,
        boost: 1.0,
    }))
}

fn within(center: GeoPoint, meters: f64) -> GeoShape {
    GeoShape::Distance {
        center,
        meters,
        distance_type: DistanceType::Arc,
    }
}

#[test]
fn every_input_form_indexes_the_same_point() {
    let forms = [
        json!({"lat": 41.12, "lon": -71.34}),
        json!("41.12,-71.34"),
        json!("drm3btev3e86"),
        json!([-71.34, 41.12]),
        json!("POINT (-71.34 41.12)"),
        json!({"type": "Point", "coordinates": [-71.34, 41.12]}),
    ];
    let documents: Vec<(String, Value)> = forms
        .iter()
        .enumerate()
        .map(|(i, form)| (format!("d{i}"), json!({"p": form})))
        .collect();
    let borrowed: Vec<(&str, Value)> = documents
        .iter()
        .map(|(id, doc)| (id.as_str(), doc.clone()))
        .collect();
    let index = index_with(
        json!({"properties": {"p": {"type": "geo_point"}}}),
        &borrowed,
    );
    let near = index.ids(&geo("p", within(GeoPoint::new(41.12, -71.34), 10.0)));
    assert_eq!(near.len(), forms.len(), "{near:?}");
    let far = index.ids(&geo("p", within(GeoPoint::new(0.0, 0.0), 1000.0)));
    assert!(far.is_empty());
}

#[test]
fn bad_points_are_refused_unless_ignore_malformed() {
    let index = index_with(
        json!({"properties": {"p": {"type": "geo_point"}, "q": {"type": "geo_point", "ignore_malformed": true}}}),
        &[],
    );
    let refusal = write(&index.index, &[("1", json!({"p": {"lat": 100, "lon": 0}}))]).unwrap_err();
    match refusal {
        SearchError::DocumentParsing { reason, cause } => {
            assert!(
                reason.starts_with("failed to parse field [p] of type [geo_point]"),
                "{reason}"
            );
            assert_eq!(
                cause.as_deref(),
                Some("illegal latitude value [100.0] for p")
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(write(&index.index, &[("2", json!({"p": "not a point"}))]).is_err());
    assert!(write(&index.index, &[("3", json!({"p": [1.0]}))]).is_err());
    write(
        &index.index,
        &[
            ("4", json!({"q": {"lat": 100, "lon": 0}})),
            ("5", json!({"q": "nonsense"})),
        ],
    )
    .unwrap();
    // A string that looks like a point is a text field under dynamic mapping, as in
    // Elasticsearch: only an explicit mapping makes a geo_point.
    write(&index.index, &[("6", json!({"dynamic": "41.12,-71.34"}))]).unwrap();
    let mapping = index.index.mappings().to_json();
    assert_eq!(mapping["properties"]["dynamic"]["type"], "text");
}

#[test]
fn multi_valued_points_match_by_any_point() {
    let index = index_with(
        json!({"properties": {"p": {"type": "geo_point"}}}),
        &[
            ("both", json!({"p": [[4.9, 52.37], "48.86,2.33"]})),
            ("paris", json!({"p": {"lat": 48.86, "lon": 2.33}})),
        ],
    );
    let amsterdam = index.ids(&geo("p", within(GeoPoint::new(52.37, 4.9), 5_000.0)));
    assert_eq!(amsterdam, ["both"]);
    let paris = index.ids(&geo("p", within(GeoPoint::new(48.86, 2.33), 5_000.0)));
    assert_eq!(paris, ["both", "paris"]);
}

#[test]
fn distance_queries_match_the_haversine_reference() {
    let index = cities();
    let center = GeoPoint::new(52.0, 4.5);
    for meters in [
        1_000.0,
        50_000.0,
        90_000.0,
        150_000.0,
        500_000.0,
        6_000_000.0,
    ] {
        let mut expected: Vec<String> = CITIES
            .iter()
            .filter(|(_, lat, lon)| {
                haversine_meters(center, GeoPoint::new(*lat, *lon).quantized()) <= meters
            })
            .map(|(id, _, _)| id.to_string())
            .collect();
        expected.sort();
        assert_eq!(
            index.ids(&geo("location", within(center, meters))),
            expected,
            "{meters}"
        );
    }
}

#[test]
fn bounding_boxes_match_points_inside_and_may_cross_the_antimeridian() {
    let index = cities();
    let netherlands = GeoShape::BoundingBox(GeoBox {
        top: 53.0,
        bottom: 52.0,
        left: 4.0,
        right: 5.0,
    });
    assert_eq!(
        index.ids(&geo("location", netherlands)),
        ["amsterdam_centre", "nemo", "rijks"]
    );
    let crossing = GeoShape::BoundingBox(GeoBox {
        top: 60.0,
        bottom: 30.0,
        left: 170.0,
        right: -70.0,
    });
    assert_eq!(index.ids(&geo("location", crossing)), ["new_york"]);
}

#[test]
fn unmapped_and_wrong_fields() {
    let index = cities();
    let unmapped = Query::Geo(Box::new(Geo {
        field: "nowhere".into(),
        shape: within(GeoPoint::new(0.0, 0.0), 1.0),
        kind: "geo_distance",
        ignore_unmapped: false,
        boost: 1.0,
    }));
    let error = index.index.search(&unmapped, 0, 10).unwrap_err();
    assert_eq!(error.to_string(), "failed to find geo field [nowhere]");
    let Query::Geo(mut ignoring) = unmapped else {
        unreachable!()
    };
    ignoring.ignore_unmapped = true;
    assert!(index.ids(&Query::Geo(ignoring)).is_empty());
    let wrong = geo("name", within(GeoPoint::new(0.0, 0.0), 1.0));
    assert_eq!(
        index.index.search(&wrong, 0, 10).unwrap_err().to_string(),
        "Field [name] is of unsupported type [keyword] for [geo_distance] query"
    );
    let term = Query::Term {
        field: "location".into(),
        value: json!("1,2"),
        case_insensitive: false,
        boost: 1.0,
    };
    assert!(
        index
            .index
            .search(&term, 0, 10)
            .unwrap_err()
            .to_string()
            .contains("Geometry fields do not support exact searching")
    );
}

#[test]
fn geo_distance_sort_orders_by_distance_in_the_unit() {
    let index = cities();
    let origin = GeoPoint::new(52.376, 4.894);
    let keys = [SortKey::GeoDistance(GeoDistanceSort {
        field: "location".into(),
        points: vec![origin],
        order: SortOrder::Asc,
        unit: DistanceUnit::parse("km").unwrap(),
        mode: None,
        distance_type: DistanceType::Arc,
        ignore_unmapped: false,
    })];
    let query = Query::match_all();
    let page = SearchPage {
        sort: &keys,
        ..SearchPage::new(&query, 10)
    };
    let hits = index.index.search_page(&page).unwrap().hits;
    let mut expected: Vec<(String, f64)> = CITIES
        .iter()
        .map(|(id, lat, lon)| {
            (
                id.to_string(),
                haversine_meters(origin, GeoPoint::new(*lat, *lon).quantized()) / 1000.0,
            )
        })
        .collect();
    expected.sort_by(|a, b| a.1.total_cmp(&b.1));
    let got: Vec<(String, f64)> = hits
        .iter()
        .map(|hit| match hit.sort.as_slice() {
            [SortValue::Double(km)] => (hit.id.clone(), *km),
            other => panic!("unexpected sort values {other:?}"),
        })
        .collect();
    assert_eq!(
        got.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(),
        expected
            .iter()
            .map(|(id, _)| id.clone())
            .collect::<Vec<_>>()
    );
    for ((_, got), (_, want)) in got.iter().zip(&expected) {
        assert!((got - want).abs() < 1e-9, "{got} vs {want}");
    }
    // Descending, documents without a point are infinitely far and come first.
    write(&index.index, &[("nowhere", json!({"name": "nowhere"}))]).unwrap();
    index.index.refresh().unwrap();
    let desc = [SortKey::GeoDistance(GeoDistanceSort {
        order: SortOrder::Desc,
        ..match &keys[0] {
            SortKey::GeoDistance(sort) => sort.clone(),
            _ => unreachable!(),
        }
    })];
    let page = SearchPage {
        sort: &desc,
        ..SearchPage::new(&query, 10)
    };
    let hits = index.index.search_page(&page).unwrap().hits;
    assert_eq!(hits.first().map(|h| h.id.as_str()), Some("nowhere"));
    assert_eq!(
        hits.first().map(|h| h.sort.clone()),
        Some(vec![SortValue::Double(f64::INFINITY)])
    );
    assert_eq!(hits.get(1).map(|h| h.id.as_str()), Some("new_york"));
}

fn bucket_keys(value: &AggValue) -> Vec<(String, u64)> {
    let AggValue::Buckets(buckets) = value else {
        panic!("not buckets: {value:?}");
    };
    buckets
        .buckets
        .iter()
        .map(|bucket| match &bucket.key {
            BucketKey::Str(key) => (key.clone(), bucket.doc_count),
            other => panic!("unexpected key {other:?}"),
        })
        .collect()
}

#[test]
fn geohash_grid_counts_cells_as_elasticsearchs_example() {
    let index = cities();
    let grid = |precision, size, bounds| {
        AggKind::GeoGrid(GeoGrid {
            field: "location".into(),
            cells: GeoCells::Geohash { precision },
            size,
            shard_size: size + 10,
            bounds,
        })
    };
    assert_eq!(
        bucket_keys(&index.aggregate(grid(3, 100, None))),
        [
            ("u17".into(), 3),
            ("u09".into(), 2),
            ("dr5".into(), 1),
            ("u15".into(), 1)
        ]
    );
    assert_eq!(
        bucket_keys(&index.aggregate(grid(3, 2, None))),
        [("u17".into(), 3), ("u09".into(), 2)]
    );
    let europe = GeoBox {
        top: 60.0,
        bottom: 50.0,
        left: 0.0,
        right: 10.0,
    };
    assert_eq!(
        bucket_keys(&index.aggregate(grid(1, 100, Some(europe)))),
        [("u".into(), 4)]
    );
}

#[test]
fn geotile_grid_keys_are_zoom_x_y() {
    let index = cities();
    let tiles = index.aggregate(AggKind::GeoGrid(GeoGrid {
        field: "location".into(),
        cells: GeoCells::Geotile { zoom: 8 },
        size: 100,
        shard_size: 110,
        bounds: None,
    }));
    let keys = bucket_keys(&tiles);
    assert_eq!(keys.first(), Some(&("8/131/84".to_string(), 3)));
    assert!(keys.contains(&("8/129/88".to_string(), 2)), "{keys:?}");
    assert_eq!(keys.iter().map(|(_, n)| n).sum::<u64>(), 7);
}

#[test]
fn geo_bounds_and_centroid() {
    let index = cities();
    let AggValue::GeoBounds(Some(bounds)) = index.aggregate(AggKind::GeoBounds {
        field: "location".into(),
        wrap_longitude: true,
    }) else {
        panic!("no bounds");
    };
    let quantized: Vec<GeoPoint> = CITIES
        .iter()
        .map(|(_, lat, lon)| GeoPoint::new(*lat, *lon).quantized())
        .collect();
    let max_lat = quantized.iter().map(|p| p.lat).fold(f64::MIN, f64::max);
    let min_lon = quantized.iter().map(|p| p.lon).fold(f64::MAX, f64::min);
    assert_eq!(bounds.top, max_lat);
    assert_eq!(bounds.left, min_lon);
    let AggValue::GeoCentroid {
        location: Some(centroid),
        count,
    } = index.aggregate(AggKind::GeoCentroid {
        field: "location".into(),
    })
    else {
        panic!("no centroid");
    };
    assert_eq!(count, 7);
    let mean_lat = quantized.iter().map(|p| p.lat).sum::<f64>() / 7.0;
    assert!((centroid.lat - mean_lat).abs() < 1e-9);
    let empty = index_with(
        json!({"properties": {"location": {"type": "geo_point"}}}),
        &[],
    );
    assert_eq!(
        empty.aggregate(AggKind::GeoBounds {
            field: "location".into(),
            wrap_longitude: true
        }),
        AggValue::GeoBounds(None)
    );
    assert_eq!(
        empty.aggregate(AggKind::GeoCentroid {
            field: "location".into()
        }),
        AggValue::GeoCentroid {
            location: None,
            count: 0
        }
    );
}

#[test]
fn geo_distance_aggregation_ranges_by_distance() {
    let index = cities();
    let value = index.aggregate(AggKind::Range(RangeAgg {
        source: ValueSource {
            field: "location".into(),
            missing: None,
            format: None,
        },
        ranges: vec![
            RangeSpec {
                key: None,
                from: None,
                to: Some(100.0),
            },
            RangeSpec {
                key: None,
                from: Some(100.0),
                to: Some(300.0),
            },
            RangeSpec {
                key: None,
                from: Some(300.0),
                to: None,
            },
        ],
        keyed: false,
        date_zone: None,
        geo: Some(GeoOrigin {
            origin: GeoPoint::new(52.3760, 4.894),
            unit: DistanceUnit::parse("km").unwrap(),
            distance_type: DistanceType::Arc,
        }),
    }));
    assert_eq!(
        bucket_keys(&value),
        [
            ("*-100.0".into(), 3),
            ("100.0-300.0".into(), 1),
            ("300.0-*".into(), 3)
        ]
    );
}

#[test]
fn metric_aggregations_refuse_geo_points() {
    let index = cities();
    let agg = Aggregation {
        name: "a".into(),
        kind: AggKind::Avg(ValueSource {
            field: "location".into(),
            missing: None,
            format: None,
        }),
        subs: Vec::new(),
    };
    let targets = [(index.index.clone(), Query::match_all())];
    let error = aggs::aggregate(&targets, &[agg], AggregationLimits::default()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "Field [location] of type [geo_point] is not supported for aggregation [avg]"
    );
}
