//! The composite aggregation paged to the end against a straightforward grouping.
//!
//! The property: for random documents (multi-valued keywords, missing values, doubles) spread
//! over two indices of two segments each, a composite of random sources, directions and
//! missing buckets, paged with `after` in pages of a random size, lists exactly the distinct
//! keys of the cartesian products of the documents' values, each once, in the composite's
//! order, with their document counts. Pages over more keys than a segment holds at once (where
//! the collector prunes and skips keys past the page) and `geotile_grid` sources are checked
//! the same way.

mod common;

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{Value, json};
use sluice_search::aggs::{
    self, AggKind, AggValue, Aggregation, AggregationLimits, BucketKey, BucketsKind, Composite,
    CompositeSource, CompositeSourceKind, Direction, ValueSource,
};
use sluice_search::{Index, Mappings, Query, SearchError};

const KEYS: [&str; 6] = ["aa", "ab", "b", "ba", "c", "d"];
const DOUBLES: [f64; 5] = [-1.5, -0.5, 0.0, 0.5, 2.5];

#[derive(Debug, Clone)]
struct Doc {
    keys: Vec<usize>,
    /// A keyword of at most one value (read a batch at a time as a first source).
    key: Option<usize>,
    value: Option<i64>,
    double: Option<f64>,
    point: Option<(f64, f64)>,
    /// A keyword of many distinct values: a first source that walks many terms per page.
    name: Option<u32>,
}

impl Doc {
    fn json(&self) -> Value {
        let mut document = json!({
            "k": self.keys.iter().map(|&k| KEYS[k]).collect::<Vec<_>>(),
        });
        if let Some(k) = self.key {
            document["s"] = json!(KEYS[k]);
        }
        if let Some(v) = self.value {
            document["v"] = json!(v);
        }
        if let Some(d) = self.double {
            document["d"] = json!(d);
        }
        if let Some((lat, lon)) = self.point {
            document["p"] = json!({"lat": lat, "lon": lon});
        }
        if let Some(name) = self.name {
            document["n"] = json!(format!("n{name:05}"));
        }
        document
    }
}

fn mappings() -> Mappings {
    Mappings::from_json(&json!({"properties": {
        "k": {"type": "keyword"},
        "s": {"type": "keyword"},
        "v": {"type": "long"},
        "d": {"type": "double"},
        "p": {"type": "geo_point"},
        "n": {"type": "keyword"}
    }}))
    .unwrap()
}

/// Two indices, each written in two refreshed batches (two segments).
fn indices(dir: &std::path::Path, docs: &[Doc]) -> Vec<Arc<Index>> {
    let documents: Vec<_> = docs.iter().map(|d| d.json()).collect();
    common::split_indices(dir, mappings, &documents)
}

/// One part of a key as the reference orders it: `None` is the missing bucket.
type RefPart = Option<RefValue>;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum RefValue {
    Number(i64),
    Text(String),
}

#[derive(Debug, Clone, Copy)]
enum Field {
    Keys,
    Key,
    Value,
    /// `d` in a histogram of interval 1.
    Double,
    /// `p` in tiles of zoom 3.
    Tile,
    Name,
}

const TILE_ZOOM: u32 = 3;

impl Field {
    fn source(self, direction: Direction, missing_bucket: bool) -> CompositeSource {
        let (name, kind) = match self {
            Field::Keys => ("k", CompositeSourceKind::Terms),
            Field::Key => ("s", CompositeSourceKind::Terms),
            Field::Value => ("v", CompositeSourceKind::Terms),
            Field::Name => ("n", CompositeSourceKind::Terms),
            Field::Double => ("d", CompositeSourceKind::Histogram { interval: 1.0 }),
            Field::Tile => (
                "p",
                CompositeSourceKind::Geotile {
                    zoom: TILE_ZOOM,
                    bounds: None,
                },
            ),
        };
        CompositeSource {
            name: name.into(),
            source: ValueSource::field(name),
            kind,
            direction,
            missing_bucket,
        }
    }

    /// The document's distinct values of this source.
    fn values(self, doc: &Doc) -> Vec<RefValue> {
        let mut values: Vec<RefValue> = match self {
            Field::Keys => doc
                .keys
                .iter()
                .map(|&k| RefValue::Text(KEYS[k].into()))
                .collect(),
            Field::Key => doc
                .key
                .map(|k| RefValue::Text(KEYS[k].into()))
                .into_iter()
                .collect(),
            Field::Value => doc.value.map(RefValue::Number).into_iter().collect(),
            Field::Name => doc
                .name
                .map(|name| RefValue::Text(format!("n{name:05}")))
                .into_iter()
                .collect(),
            Field::Double => doc
                .double
                .map(|d| RefValue::Number(d.floor() as i64))
                .into_iter()
                .collect(),
            Field::Tile => doc
                .point
                .map(|(lat, lon)| {
                    let (_, x, y) = sluice_search::geo::geotile(
                        sluice_search::geo::GeoPoint::new(lat, lon),
                        TILE_ZOOM,
                    );
                    // Tiles order by x, then y.
                    RefValue::Number(i64::from(x) * 1_000_000 + i64::from(y))
                })
                .into_iter()
                .collect(),
        };
        values.sort();
        values.dedup();
        values
    }

    /// A part of a composite key as the aggregation prints it, in the reference's terms.
    fn read(self, value: &Value) -> RefPart {
        if value.is_null() {
            return None;
        }
        Some(match self {
            Field::Keys | Field::Key | Field::Name => {
                RefValue::Text(value.as_str().unwrap().to_string())
            }
            Field::Value => RefValue::Number(value.as_i64().unwrap()),
            Field::Double => RefValue::Number(value.as_f64().unwrap() as i64),
            Field::Tile => {
                let text = value.as_str().unwrap();
                let parts: Vec<i64> = text.split('/').map(|p| p.parse().unwrap()).collect();
                assert_eq!(parts[0], i64::from(TILE_ZOOM), "tile {text}");
                RefValue::Number(parts[1] * 1_000_000 + parts[2])
            }
        })
    }
}

fn compare(a: &[RefPart], b: &[RefPart], directions: &[Direction]) -> Ordering {
    for ((x, y), direction) in a.iter().zip(b).zip(directions) {
        let ordering = match direction {
            Direction::Asc => x.cmp(y),
            Direction::Desc => y.cmp(x),
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    Ordering::Equal
}

/// Every key of the cartesian products of the documents' values, counted once per document,
/// sorted in the composite's order.
fn reference(
    docs: &[Doc],
    fields: &[Field],
    directions: &[Direction],
    missing: &[bool],
) -> Vec<(Vec<RefPart>, u64)> {
    let mut counts: BTreeMap<Vec<RefPart>, u64> = BTreeMap::new();
    for doc in docs {
        let mut combinations: Vec<Vec<RefPart>> = vec![Vec::new()];
        for (field, &missing_bucket) in fields.iter().zip(missing) {
            let values = field.values(doc);
            let parts: Vec<RefPart> = if values.is_empty() {
                if missing_bucket {
                    vec![None]
                } else {
                    Vec::new()
                }
            } else {
                values.into_iter().map(Some).collect()
            };
            combinations = combinations
                .into_iter()
                .flat_map(|prefix| {
                    parts.iter().map(move |part| {
                        let mut key = prefix.clone();
                        key.push(part.clone());
                        key
                    })
                })
                .collect();
        }
        for key in combinations {
            *counts.entry(key).or_default() += 1;
        }
    }
    let mut keys: Vec<(Vec<RefPart>, u64)> = counts.into_iter().collect();
    keys.sort_by(|a, b| compare(&a.0, &b.0, directions));
    keys
}

/// One page: each bucket's key values and count, and the `after_key`.
type Page = (Vec<(Vec<Value>, u64)>, Option<Vec<Value>>);

fn run(indices: &[Arc<Index>], composite: Composite) -> Result<Page, SearchError> {
    run_over(indices, composite, &Query::match_all())
}

/// The documents whose `v` is one of `values` (all documents for `None`).
fn filter(values: Option<&[i64]>) -> Query {
    match values {
        None => Query::match_all(),
        Some(values) => Query::Terms {
            field: "v".into(),
            values: values.iter().map(|v| json!(v)).collect(),
            boost: 1.0,
        },
    }
}

fn kept(docs: &[Doc], values: Option<&[i64]>) -> Vec<Doc> {
    docs.iter()
        .filter(|doc| values.is_none_or(|values| doc.value.is_some_and(|v| values.contains(&v))))
        .cloned()
        .collect()
}

fn run_over(
    indices: &[Arc<Index>],
    composite: Composite,
    query: &Query,
) -> Result<Page, SearchError> {
    let targets: Vec<(Arc<Index>, Query)> =
        indices.iter().map(|i| (i.clone(), query.clone())).collect();
    let agg = Aggregation {
        name: "c".into(),
        kind: AggKind::Composite(composite),
        subs: Vec::new(),
    };
    let results = aggs::aggregate(&targets, &[agg], AggregationLimits::default())?;
    let AggValue::Buckets(page) = &results[0].value else {
        panic!("composite answers buckets");
    };
    let buckets = page
        .buckets
        .iter()
        .map(|bucket| {
            let BucketKey::Composite(parts) = &bucket.key else {
                panic!("composite key {:?}", bucket.key);
            };
            (
                parts.iter().map(|(_, v)| v.clone()).collect(),
                bucket.doc_count,
            )
        })
        .collect();
    let after = match &page.kind {
        BucketsKind::Composite { after_key } => after_key
            .as_ref()
            .map(|key| key.iter().map(|(_, v)| v.clone()).collect()),
        other => panic!("composite kind {other:?}"),
    };
    Ok((buckets, after))
}

/// Pages the composite to the end; each page's `after_key` is its last key.
fn paged(
    indices: &[Arc<Index>],
    fields: &[Field],
    directions: &[Direction],
    missing: &[bool],
    size: usize,
    most_pages: usize,
    values: Option<&[i64]>,
) -> Vec<(Vec<RefPart>, u64)> {
    let sources: Vec<CompositeSource> = fields
        .iter()
        .zip(directions)
        .zip(missing)
        .map(|((field, &direction), &missing_bucket)| field.source(direction, missing_bucket))
        .collect();
    let mut after: Option<Vec<Value>> = None;
    let mut listed = Vec::new();
    for _ in 0..most_pages {
        let (buckets, after_key) = run_over(
            indices,
            Composite {
                sources: sources.clone(),
                size,
                after: after.as_ref().map(|key| {
                    key.iter()
                        .map(|v| (!v.is_null()).then(|| v.clone()))
                        .collect()
                }),
            },
            &filter(values),
        )
        .unwrap();
        if buckets.is_empty() {
            assert_eq!(after_key, None);
            return listed;
        }
        assert!(buckets.len() <= size);
        assert_eq!(after_key.as_ref(), buckets.last().map(|(key, _)| key));
        for (key, count) in buckets {
            let parts = key
                .iter()
                .zip(fields)
                .map(|(value, field)| field.read(value))
                .collect();
            listed.push((parts, count));
        }
        after = after_key;
    }
    panic!("paging did not end within {most_pages} pages");
}

fn docs() -> impl Strategy<Value = Vec<Doc>> {
    prop::collection::vec(
        (
            prop::collection::vec(0..KEYS.len(), 0..3),
            prop::option::of(0..KEYS.len()),
            prop::option::of(-4i64..4),
            prop::option::of(prop::sample::select(DOUBLES.to_vec())),
            prop::option::of((-80.0f64..80.0, -179.0f64..179.0)),
            prop::option::of(0u32..200),
        ),
        1..60,
    )
    .prop_map(|raw| {
        raw.into_iter()
            .map(|(keys, key, value, double, point, name)| Doc {
                keys,
                key,
                value,
                double,
                point,
                name,
            })
            .collect()
    })
}

fn direction() -> impl Strategy<Value = Direction> {
    prop::sample::select(vec![Direction::Asc, Direction::Desc])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn paged_composite_lists_every_key_once_in_order(
        docs in docs(),
        order in Just(vec![
            Field::Keys, Field::Key, Field::Value, Field::Double, Field::Tile, Field::Name,
        ]).prop_shuffle(),
        count in 1usize..4,
        directions in prop::collection::vec(direction(), 6),
        missing in prop::collection::vec(any::<bool>(), 6),
        size in 1usize..6,
        values in prop::option::of(prop::sample::subsequence((-4i64..4).collect::<Vec<_>>(), 1..8)),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let indices = indices(dir.path(), &docs);
        let fields = &order[..count];
        let directions = &directions[..count];
        let missing = &missing[..count];
        let values = values.as_deref();
        let want = reference(&kept(&docs, values), fields, directions, missing);
        let got = paged(&indices, fields, directions, missing, size, want.len() + 2, values);
        prop_assert_eq!(got, want);
    }
}

/// More distinct keys per segment than the collector holds before pruning to a page (it then
/// skips keys past the page): two sources, one multi-valued, descending and ascending; and a
/// leading keyword walked by its terms, over every document or a filter's, with few documents
/// per term (where the walk gives way to a scan) or many, and a single-valued keyword after it
/// (counted by ordinal).
#[test]
fn pages_over_many_keys_per_segment() {
    let dir = tempfile::tempdir().unwrap();
    let docs: Vec<Doc> = (0..6000i64)
        .map(|i| Doc {
            keys: vec![(i % 6) as usize, ((i * 5) % 6) as usize],
            key: (i % 11 != 0).then_some((i % 5) as usize),
            value: (i % 7 != 0).then_some((i * 7919) % 1601 - 800),
            double: None,
            point: None,
            name: (i % 13 != 0).then_some(((i * 37) % 6000) as u32),
        })
        .collect();
    let indices = indices(dir.path(), &docs);
    let some: Vec<i64> = (-800..800).filter(|v| v % 3 != 0).collect();
    // A single-valued first source (read a batch at a time) of integers, then of keywords.
    for (fields, directions, missing, values) in [
        (
            [Field::Value, Field::Keys],
            [Direction::Desc, Direction::Asc],
            [true, false],
            None,
        ),
        (
            [Field::Key, Field::Value],
            [Direction::Asc, Direction::Desc],
            [true, true],
            None,
        ),
        (
            [Field::Key, Field::Value],
            [Direction::Asc, Direction::Desc],
            [false, true],
            Some(some.as_slice()),
        ),
        (
            [Field::Keys, Field::Name],
            [Direction::Asc, Direction::Asc],
            [false, false],
            Some(some.as_slice()),
        ),
        // A walk whose second source is a single-valued keyword counts each term's documents
        // by that keyword's ordinals: descending, with its missing bucket.
        (
            [Field::Keys, Field::Name],
            [Direction::Asc, Direction::Desc],
            [false, true],
            None,
        ),
        (
            [Field::Name, Field::Key],
            [Direction::Asc, Direction::Asc],
            [false, true],
            None,
        ),
        (
            [Field::Name, Field::Key],
            [Direction::Asc, Direction::Asc],
            [false, true],
            Some(some.as_slice()),
        ),
    ] {
        let want = reference(&kept(&docs, values), &fields, &directions, &missing);
        assert!(want.len() > 2000, "{} keys", want.len());
        let got = paged(
            &indices,
            &fields,
            &directions,
            &missing,
            150,
            want.len() + 2,
            values,
        );
        assert_eq!(got.len(), want.len());
        assert_eq!(got, want);
    }
}

/// A `geotile_grid` source keys `zoom/x/y`, orders by tile (not by the key's text), pages after
/// a tile, and refuses an `after` that is not a tile.
#[test]
fn geotile_sources_order_by_tile_and_page_after_one() {
    let dir = tempfile::tempdir().unwrap();
    // At zoom 4 (16 × 16 tiles): "4/14/6" sorts before "4/4/6" as text, after it as a tile.
    let points = [
        (52.37, 4.91),  // 4/8/5
        (52.5, 13.4),   // 4/8/5
        (40.7, -74.0),  // 4/4/6
        (-33.9, 151.2), // 4/14/9
        (35.7, 139.7),  // 4/14/6
        (-22.9, -43.2), // 4/6/9
        (64.1, -21.9),  // 4/7/4
    ];
    let docs: Vec<Doc> = points
        .iter()
        .enumerate()
        .map(|(i, &point)| Doc {
            keys: vec![i % 2],
            key: None,
            value: None,
            double: None,
            point: Some(point),
            name: None,
        })
        .chain([Doc {
            keys: vec![0],
            key: None,
            value: None,
            double: None,
            point: None,
            name: None,
        }])
        .collect();
    let indices = indices(dir.path(), &docs);
    let source = |direction| CompositeSource {
        name: "tile".into(),
        source: ValueSource::field("p"),
        kind: CompositeSourceKind::Geotile {
            zoom: 4,
            bounds: None,
        },
        direction,
        missing_bucket: false,
    };
    let (buckets, after) = run(
        &indices,
        Composite {
            sources: vec![source(Direction::Asc)],
            size: 10,
            after: None,
        },
    )
    .unwrap();
    let keys: Vec<(&str, u64)> = buckets
        .iter()
        .map(|(key, count)| (key[0].as_str().unwrap(), *count))
        .collect();
    assert_eq!(
        keys,
        [
            ("4/4/6", 1),
            ("4/6/9", 1),
            ("4/7/4", 1),
            ("4/8/5", 2),
            ("4/14/6", 1),
            ("4/14/9", 1)
        ]
    );
    assert_eq!(after, Some(vec![json!("4/14/9")]));
    let (page, _) = run(
        &indices,
        Composite {
            sources: vec![source(Direction::Desc)],
            size: 2,
            after: Some(vec![Some(json!("4/8/5"))]),
        },
    )
    .unwrap();
    let keys: Vec<&str> = page
        .iter()
        .map(|(key, _)| key[0].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["4/7/4", "4/6/9"]);
    let refused = run(
        &indices,
        Composite {
            sources: vec![source(Direction::Asc)],
            size: 2,
            after: Some(vec![Some(json!("4/16/1"))]),
        },
    );
    assert!(
        matches!(&refused, Err(SearchError::IllegalArgument { reason }) if reason.contains("Invalid geotile_grid hash string of 4/16/1")),
        "{refused:?}"
    );
}
