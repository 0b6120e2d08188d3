//! Sorting by field values against a model: documents with integers, doubles, keywords, dates
//! and booleans (some missing, some multi-valued) in several segments, sorted by the index and
//! by a plain sort written out here; `search_after` pages through the same order.

use std::cmp::Ordering;
use std::sync::Arc;

use serde_json::{Value, json};
use sluice_search::{
    FieldSort, Index, IndexSettings, Mappings, Query, SearchPage, SortKey, SortMissing, SortMode,
    SortOrder, SortValue, WriteRequest,
};

struct TestIndex {
    _dir: tempfile::TempDir,
    index: Index,
    documents: Vec<(String, Value)>,
}

/// A small deterministic generator, so a failure reproduces.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound
    }
}

fn random_document(random: &mut Lcg, n: usize) -> Value {
    let mut document = json!({"uid": format!("u{n:04}")});
    if random.next(5) > 0 {
        document["count"] = if random.next(4) == 0 {
            json!([random.next(20) as i64 - 10, random.next(20) as i64 - 10])
        } else {
            json!(random.next(20) as i64 - 10)
        };
    }
    if random.next(5) > 0 {
        document["price"] = json!(random.next(1000) as f64 / 8.0 - 20.0);
    }
    if random.next(5) > 0 {
        let tags = ["apple", "kiwi", "pear", "fig", "Banana"];
        document["tag"] = if random.next(4) == 0 {
            json!([tags[random.next(5) as usize], tags[random.next(5) as usize]])
        } else {
            json!(tags[random.next(5) as usize])
        };
    }
    if random.next(5) > 0 {
        document["at"] = json!(format!("2026-12-{:02}T10:00:00Z", random.next(28) + 1));
    }
    if random.next(5) > 0 {
        document["flag"] = json!(random.next(2) == 0);
    }
    document
}

fn model_index(segments: usize, per_segment: usize) -> TestIndex {
    let dir = tempfile::tempdir().unwrap();
    let mapping = json!({"properties": {
        "uid": {"type": "keyword"},
        "count": {"type": "long"},
        "price": {"type": "double"},
        "tag": {"type": "keyword"},
        "at": {"type": "date"},
        "flag": {"type": "boolean"},
        "body": {"type": "text"}
    }});
    let index = Index::create(
        &dir.path().join("index"),
        "model",
        IndexSettings::default(),
        Mappings::from_json(&mapping).unwrap(),
    )
    .unwrap();
    let mut random = Lcg(7);
    let mut documents = Vec::new();
    for segment in 0..segments {
        let mut requests = Vec::new();
        for i in 0..per_segment {
            let n = segment * per_segment + i;
            let document = random_document(&mut random, n);
            documents.push((format!("{n}"), document.clone()));
            requests.push(WriteRequest::Index {
                id: Some(format!("{n}")),
                source: Arc::from(document.to_string().as_bytes()),
                document,
                condition: Default::default(),
            });
        }
        for outcome in index.write(requests) {
            outcome.unwrap();
        }
        index.refresh().unwrap();
    }
    TestIndex {
        _dir: dir,
        index,
        documents,
    }
}

/// [`field`] with `change` applied (a `missing`, a `mode`).
fn with(name: &str, order: SortOrder, change: &dyn Fn(&mut FieldSort)) -> FieldSort {
    let mut sort = field(name, order);
    change(&mut sort);
    sort
}

fn field(name: &str, order: SortOrder) -> FieldSort {
    FieldSort {
        field: name.into(),
        order,
        missing: SortMissing::Last,
        unmapped_type: None,
        mode: None,
        format: None,
    }
}

fn millis(text: &str) -> i64 {
    sluice_search::date::parse_date_str(text, "strict_date_optional_time").unwrap()
}

/// The sort value the model gives one document for one key.
fn model_value(document: &Value, sort: &FieldSort) -> SortValue {
    let desc = sort.order == SortOrder::Desc;
    let mode = sort
        .mode
        .unwrap_or(if desc { SortMode::Max } else { SortMode::Min });
    let values: Vec<&Value> = match document.get(&sort.field) {
        None => Vec::new(),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(value) => vec![value],
    };
    let pick = |mut numbers: Vec<f64>| -> Option<f64> {
        numbers.sort_by(f64::total_cmp);
        match mode {
            SortMode::Min => numbers.first().copied(),
            SortMode::Max => numbers.last().copied(),
            SortMode::Sum if !numbers.is_empty() => Some(numbers.iter().sum()),
            SortMode::Avg if !numbers.is_empty() => {
                Some(numbers.iter().sum::<f64>() / numbers.len() as f64)
            }
            _ => None,
        }
    };
    let largest = matches!(
        (&sort.missing, desc),
        (SortMissing::Last, false) | (SortMissing::First, true)
    );
    match sort.field.as_str() {
        "tag" | "uid" => {
            let mut texts: Vec<&str> = values.iter().filter_map(|v| v.as_str()).collect();
            texts.sort();
            let text = if mode == SortMode::Max {
                texts.last()
            } else {
                texts.first()
            };
            match (text, &sort.missing) {
                (Some(text), _) => SortValue::Text(text.to_string()),
                (None, SortMissing::Value(Value::String(s))) => SortValue::Text(s.clone()),
                (None, _) => SortValue::Null,
            }
        }
        "price" => match pick(values.iter().filter_map(|v| v.as_f64()).collect()) {
            Some(v) => SortValue::Double(v),
            None if let SortMissing::Value(value) = &sort.missing => {
                SortValue::Double(value.as_f64().unwrap())
            }
            None if largest => SortValue::Double(f64::INFINITY),
            None => SortValue::Double(f64::NEG_INFINITY),
        },
        _ => {
            let numbers = values
                .iter()
                .map(|v| match v {
                    Value::Bool(b) => f64::from(u8::from(*b)),
                    Value::String(s) => millis(s) as f64,
                    other => other.as_f64().unwrap(),
                })
                .collect();
            match pick(numbers) {
                Some(v) => SortValue::Long(v.round() as i64),
                None => match &sort.missing {
                    SortMissing::Value(value) => SortValue::Long(value.as_i64().unwrap()),
                    _ if largest => SortValue::Long(i64::MAX),
                    _ => SortValue::Long(i64::MIN),
                },
            }
        }
    }
}

fn model_compare(keys: &[FieldSort], a: &[SortValue], b: &[SortValue]) -> Ordering {
    let keys: Vec<SortKey> = keys.iter().cloned().map(SortKey::Field).collect();
    sluice_search::sort::compare_sort_values(&keys, a, b)
}

impl TestIndex {
    fn page(
        &self,
        keys: &[SortKey],
        size: usize,
        after: Option<&[Value]>,
    ) -> sluice_search::SearchHits {
        self.index
            .search_page(&SearchPage {
                sort: keys,
                search_after: after,
                ..SearchPage::new(&Query::match_all(), size)
            })
            .unwrap()
    }

    fn check_against_model(&self, sorts: &[FieldSort]) {
        let keys: Vec<SortKey> = sorts.iter().cloned().map(SortKey::Field).collect();
        let found = self.page(&keys, self.documents.len(), None);
        assert_eq!(found.total, self.documents.len() as u64);
        assert!(!found.scored);
        let mut expected: Vec<Vec<SortValue>> = self
            .documents
            .iter()
            .map(|(_, document)| sorts.iter().map(|s| model_value(document, s)).collect())
            .collect();
        expected.sort_by(|a, b| model_compare(sorts, a, b));
        let got: Vec<Vec<SortValue>> = found.hits.iter().map(|hit| hit.sort.clone()).collect();
        assert_eq!(got, expected, "sort {sorts:?}");
        // Each hit's values are its own document's.
        for hit in &found.hits {
            let (_, document) = self.documents.iter().find(|(id, _)| *id == hit.id).unwrap();
            let own: Vec<SortValue> = sorts.iter().map(|s| model_value(document, s)).collect();
            assert_eq!(hit.sort, own, "hit {}", hit.id);
        }
    }
}

#[test]
fn sorts_agree_with_the_model_across_segments() {
    let index = model_index(4, 40);
    use SortOrder::{Asc, Desc};
    let cases: Vec<Vec<FieldSort>> = vec![
        vec![field("count", Asc), field("uid", Asc)],
        vec![field("count", Desc), field("uid", Desc)],
        vec![field("price", Asc), field("uid", Asc)],
        vec![field("price", Desc), field("uid", Asc)],
        vec![field("tag", Asc), field("uid", Asc)],
        vec![field("tag", Desc), field("uid", Asc)],
        vec![field("at", Desc), field("uid", Asc)],
        vec![field("flag", Asc), field("count", Desc), field("uid", Asc)],
        vec![
            with("tag", Asc, &|s| s.missing = SortMissing::First),
            field("uid", Asc),
        ],
        vec![
            with("tag", Desc, &|s| s.missing = SortMissing::First),
            field("uid", Asc),
        ],
        vec![
            with("tag", Asc, &|s| {
                s.missing = SortMissing::Value(json!("grape"))
            }),
            field("uid", Asc),
        ],
        vec![
            with("count", Asc, &|s| s.missing = SortMissing::Value(json!(3))),
            field("uid", Asc),
        ],
        vec![
            with("count", Desc, &|s| s.missing = SortMissing::First),
            field("uid", Asc),
        ],
        vec![
            with("count", Asc, &|s| s.mode = Some(SortMode::Max)),
            field("uid", Asc),
        ],
        vec![
            with("count", Asc, &|s| s.mode = Some(SortMode::Sum)),
            field("uid", Asc),
        ],
        vec![
            with("tag", Asc, &|s| s.mode = Some(SortMode::Max)),
            field("uid", Desc),
        ],
    ];
    for case in cases {
        index.check_against_model(&case);
    }
}

/// Sorts of one or two single-valued keys read a block of documents at a time and keep only the
/// best few: the top `k` and `search_after` pages must still be the model's, whatever `k`.
#[test]
fn the_best_few_of_single_valued_keys_agree_with_the_model() {
    let index = model_index(4, 60);
    use SortOrder::{Asc, Desc};
    let cases: Vec<Vec<FieldSort>> = vec![
        vec![field("price", Desc), field("uid", Asc)],
        vec![field("at", Asc), field("uid", Desc)],
        vec![
            with("at", Desc, &|s| s.missing = SortMissing::First),
            field("uid", Asc),
        ],
        vec![
            with("price", Asc, &|s| {
                s.missing = SortMissing::Value(json!(3.5))
            }),
            field("uid", Asc),
        ],
        vec![field("uid", Desc)],
    ];
    for sorts in cases {
        let keys: Vec<SortKey> = sorts.iter().cloned().map(SortKey::Field).collect();
        let mut expected: Vec<Vec<SortValue>> = index
            .documents
            .iter()
            .map(|(_, document)| sorts.iter().map(|s| model_value(document, s)).collect())
            .collect();
        expected.sort_by(|a, b| model_compare(&sorts, a, b));
        for k in [1, 5, 17, 100] {
            let found = index.page(&keys, k, None);
            assert_eq!(found.total, index.documents.len() as u64);
            let got: Vec<Vec<SortValue>> = found.hits.iter().map(|hit| hit.sort.clone()).collect();
            assert_eq!(got, expected[..k], "top {k} of {sorts:?}");
        }
        let mut paged = Vec::new();
        let mut after: Option<Vec<Value>> = None;
        loop {
            let page = index.page(&keys, 9, after.as_deref());
            let Some(last) = page.hits.last() else {
                break;
            };
            after = Some(last.sort.iter().map(SortValue::to_json).collect());
            paged.extend(page.hits.into_iter().map(|hit| hit.sort));
        }
        assert_eq!(paged, expected, "search_after through {sorts:?}");
    }
}

#[test]
fn search_after_pages_through_the_whole_order() {
    let index = model_index(3, 50);
    let keys = vec![
        SortKey::Field(field("tag", SortOrder::Desc)),
        SortKey::Field(field("price", SortOrder::Asc)),
        SortKey::Field(field("uid", SortOrder::Asc)),
    ];
    let all: Vec<String> = index
        .page(&keys, 1000, None)
        .hits
        .into_iter()
        .map(|hit| hit.id)
        .collect();
    assert_eq!(all.len(), 150);
    let mut paged = Vec::new();
    let mut after: Option<Vec<Value>> = None;
    loop {
        let page = index.page(&keys, 7, after.as_deref());
        assert_eq!(page.total, 150, "the total ignores search_after");
        let Some(last) = page.hits.last() else {
            break;
        };
        after = Some(last.sort.iter().map(SortValue::to_json).collect());
        paged.extend(page.hits.into_iter().map(|hit| hit.id));
    }
    assert_eq!(paged, all);
    // `_doc` pages too, in index order.
    let by_doc = [SortKey::Doc(SortOrder::Asc)];
    let first = index.page(&by_doc, 100, None);
    let second = index.page(&by_doc, 100, Some(&[first.hits[99].sort[0].to_json()]));
    assert_eq!(first.hits.len() + second.hits.len(), 150);
    assert!(
        second
            .hits
            .iter()
            .all(|hit| !first.hits.iter().any(|h| h.id == hit.id))
    );
}

#[test]
fn doc_order_puts_older_segments_first() {
    // Two refreshes make two segments, whose ids tantivy draws at random: `_doc` ranks them by
    // their first sequence number instead, so documents of a later refresh never come before
    // those of an earlier one (a page of `_doc` stays put while more is indexed).
    for _ in 0..4 {
        let index = model_index(2, 20);
        let ids: Vec<usize> = index
            .page(&[SortKey::Doc(SortOrder::Asc)], 100, None)
            .hits
            .into_iter()
            .map(|hit| hit.id.parse().unwrap())
            .collect();
        assert_eq!(ids.len(), 40);
        assert!(ids[..20].iter().all(|id| *id < 20), "{ids:?}");
        let backwards: Vec<usize> = index
            .page(&[SortKey::Doc(SortOrder::Desc)], 100, None)
            .hits
            .into_iter()
            .map(|hit| hit.id.parse().unwrap())
            .collect();
        assert_eq!(backwards, ids.into_iter().rev().collect::<Vec<_>>());
    }
}

#[test]
fn sorts_refuse_what_elasticsearch_refuses() {
    let index = model_index(1, 5);
    let error = |keys: Vec<SortKey>, after: Option<&[Value]>| {
        index
            .index
            .search_page(&SearchPage {
                sort: &keys,
                search_after: after,
                ..SearchPage::new(&Query::match_all(), 10)
            })
            .unwrap_err()
            .to_string()
    };
    assert!(
        error(vec![SortKey::Field(field("body", SortOrder::Asc))], None).starts_with(
            "Fielddata is disabled on [body] in [model]. Text fields are not optimised"
        )
    );
    assert_eq!(
        error(vec![SortKey::Field(field("nope", SortOrder::Asc))], None),
        "No mapping found for [nope] in order to sort on"
    );
    assert_eq!(
        error(
            vec![SortKey::Field(field("count", SortOrder::Asc))],
            Some(&[json!(1), json!(2)])
        ),
        "search_after has 2 value(s) but sort has 1."
    );
    let mut sum_of_tags = field("tag", SortOrder::Asc);
    sum_of_tags.mode = Some(SortMode::Sum);
    assert!(error(vec![SortKey::Field(sum_of_tags)], None).contains("[sum] sort mode"));
    // An unmapped field with `unmapped_type` sorts every document as missing.
    let mut unmapped = field("nope", SortOrder::Desc);
    unmapped.unmapped_type = Some("boolean".into());
    let found = index.page(&[SortKey::Field(unmapped)], 10, None);
    assert_eq!(found.hits.len(), 5);
    assert!(
        found
            .hits
            .iter()
            .all(|hit| hit.sort == [SortValue::Long(i64::MIN)])
    );
}

#[test]
fn sorting_by_score_keeps_scores_and_formats_dates() {
    let index = model_index(2, 10);
    let keys = [
        SortKey::Score(SortOrder::Desc),
        SortKey::Doc(SortOrder::Asc),
    ];
    let found = index.page(&keys, 5, None);
    assert!(found.scored);
    assert_eq!(found.max_score, Some(1.0));
    assert_eq!(found.hits[0].sort[0], SortValue::Float(1.0));
    let mut at = field("at", SortOrder::Asc);
    at.format = Some("yyyy-MM-dd".into());
    let found = index.page(&[SortKey::Field(at)], 1, None);
    let SortValue::Text(day) = &found.hits[0].sort[0] else {
        panic!("{:?}", found.hits[0].sort)
    };
    assert!(day.starts_with("2026-12-"), "{day}");
}

#[test]
fn bounds_min_score_terminate_after_deadline_and_explain() {
    let index = model_index(2, 400);
    let page = |f: &dyn Fn(&mut SearchPage)| {
        let query = Query::match_all();
        let mut page = SearchPage::new(&query, 10);
        f(&mut page);
        index.index.search_page(&page).unwrap()
    };
    // Every match_all score is 1: a higher min_score keeps none, a lower one all.
    let found = page(&|p| p.min_score = Some(1.5));
    assert_eq!((found.total, found.hits.len()), (0, 0));
    assert_eq!(page(&|p| p.min_score = Some(0.5)).total, 800);
    let found = page(&|p| p.terminate_after = Some(25));
    assert!(found.terminated_early);
    assert_eq!(found.total, 25);
    assert_eq!(found.hits.len(), 10);
    assert!(!page(&|p| p.terminate_after = Some(1000)).terminated_early);
    // A deadline already passed stops at the first look at the clock: partial results.
    let found = page(&|p| p.deadline = Some(std::time::Instant::now()));
    assert!(found.timed_out);
    assert!(found.total < 800, "{}", found.total);
    let found = page(&|p| {
        p.deadline = Some(std::time::Instant::now() + std::time::Duration::from_secs(3600))
    });
    assert!(!found.timed_out);
    assert_eq!(found.total, 800);
    // An explanation's value is the hit's score.
    let found = page(&|p| p.explain = true);
    let explanation = found.hits[0].explanation.clone().unwrap();
    assert_eq!(explanation["value"], json!(found.hits[0].score));
    assert!(explanation["description"].is_string());
    assert!(explanation["details"].is_array());
}
