//! Store tests: writes, conditions, counts and streams against a model, across reopen, under
//! concurrent writers, and retention under a manual clock.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use sluice_log::{ManualClock, SystemClock};

use crate::*;

fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.to_owned())
}

fn n(text: &str) -> AttributeValue {
    AttributeValue::N(Number::parse(text).unwrap())
}

fn item(pairs: &[(&str, AttributeValue)]) -> Item {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.clone()))
        .collect()
}

fn create(name: &str, view: Option<StreamViewType>) -> CreateTable {
    CreateTable {
        name: name.to_owned(),
        key_schema: KeySchema {
            partition: KeyAttribute {
                name: "userId".into(),
                scalar_type: ScalarType::N,
            },
            sort: Some(KeyAttribute {
                name: "transactionId".into(),
                scalar_type: ScalarType::N,
            }),
        },
        attribute_definitions: vec![
            KeyAttribute {
                name: "userId".into(),
                scalar_type: ScalarType::N,
            },
            KeyAttribute {
                name: "transactionId".into(),
                scalar_type: ScalarType::N,
            },
        ],
        billing_mode: "PAY_PER_REQUEST".into(),
        provisioned_throughput: None,
        stream_view_type: view,
        indexes: Vec::new(),
        tags: Default::default(),
    }
}

fn open(dir: &std::path::Path) -> Tables {
    Tables::open(dir, Arc::new(SystemClock)).unwrap()
}

#[test]
fn put_get_delete_and_stream_records() {
    let dir = tempfile::tempdir().unwrap();
    let tables = open(dir.path());
    let table = tables
        .create_table(create(
            "transactions",
            Some(StreamViewType::NewAndOldImages),
        ))
        .unwrap();
    let stream_id = table.definition.stream.unwrap().stream_id;
    let first = item(&[
        ("userId", n("3")),
        ("transactionId", n("51")),
        ("amount", n("12.50")),
    ]);
    let key = item(&[("userId", n("3")), ("transactionId", n("51"))]);
    let outcome = tables
        .write(Write::put("transactions", first.clone()))
        .unwrap();
    assert_eq!((outcome.old, outcome.sequence), (None, Some(1)));
    // The same item again changes nothing: no record, as in DynamoDB.
    assert_eq!(
        tables
            .write(Write::put("transactions", first.clone()))
            .unwrap()
            .sequence,
        None
    );
    let second = item(&[
        ("userId", n("3")),
        ("transactionId", n("51")),
        ("amount", n("13")),
    ]);
    tables
        .write(Write::put("transactions", second.clone()))
        .unwrap();
    assert_eq!(
        tables.get_item("transactions", &key).unwrap(),
        Some(second.clone())
    );
    tables
        .write(Write::delete("transactions", key.clone()))
        .unwrap();
    // Deleting nothing writes no record.
    assert_eq!(
        tables
            .write(Write::delete("transactions", key.clone()))
            .unwrap()
            .sequence,
        None
    );
    assert_eq!(tables.get_item("transactions", &key).unwrap(), None);

    let records = tables.read_stream(stream_id, 1, 100).unwrap();
    let events: Vec<_> = records
        .iter()
        .map(|record| (record.sequence, record.event_name))
        .collect();
    assert_eq!(
        events,
        [
            (1, EventName::Insert),
            (2, EventName::Modify),
            (3, EventName::Remove)
        ]
    );
    assert_eq!(records[1].old_image.as_ref(), Some(&first));
    assert_eq!(records[1].new_image.as_ref(), Some(&second));
    assert_eq!(records[2].keys, key);
    assert_eq!(records[2].new_image, None);
    assert_eq!(tables.stream_bounds(stream_id).unwrap(), Some((1, 3)));
    assert_eq!(tables.read_stream(stream_id, 3, 100).unwrap().len(), 1);
}

#[test]
fn view_types_keep_only_their_images() {
    let dir = tempfile::tempdir().unwrap();
    let tables = open(dir.path());
    for (name, view, new, old) in [
        ("keys", StreamViewType::KeysOnly, false, false),
        ("news", StreamViewType::NewImage, true, false),
        ("olds", StreamViewType::OldImage, false, true),
    ] {
        let id = tables
            .create_table(create(name, Some(view)))
            .unwrap()
            .definition
            .stream
            .unwrap()
            .stream_id;
        let row = |amount| {
            item(&[
                ("userId", n("1")),
                ("transactionId", n("2")),
                ("a", n(amount)),
            ])
        };
        tables.write(Write::put(name, row("1"))).unwrap();
        tables.write(Write::put(name, row("2"))).unwrap();
        let records = tables.read_stream(id, 0, 10).unwrap();
        assert_eq!(records[1].new_image.is_some(), new, "{name}");
        assert_eq!(records[1].old_image.is_some(), old, "{name}");
    }
}

#[test]
fn validation_texts_are_dynamodbs() {
    let dir = tempfile::tempdir().unwrap();
    let tables = open(dir.path());
    tables.create_table(create("t_1", None)).unwrap();
    let message = |result: Result<WriteOutcome>| result.unwrap_err().to_string();
    assert_eq!(
        message(tables.write(Write::put("t_1", item(&[("userId", n("1"))])))),
        "One or more parameter values were invalid: Missing the key transactionId in the item"
    );
    assert_eq!(
        message(tables.write(Write::put(
            "t_1",
            item(&[("userId", s("1")), ("transactionId", n("1"))])
        ))),
        "One or more parameter values were invalid: Type mismatch for key userId expected: N actual: S"
    );
    assert_eq!(
        message(tables.write(Write::delete("t_1", item(&[("userId", n("1"))])))),
        "The provided key element does not match the schema"
    );
    let big = item(&[
        ("userId", n("1")),
        ("transactionId", n("1")),
        ("blob", s(&"x".repeat(ITEM_BYTES_MAX))),
    ]);
    assert_eq!(
        message(tables.write(Write::put("t_1", big))),
        "Item size has exceeded the maximum allowed size"
    );
    assert!(matches!(
        tables.write(Write::put("missing", Item::new())),
        Err(TablesError::NotFound(_))
    ));
    assert!(matches!(
        tables.create_table(create("t_1", None)),
        Err(TablesError::InUse(_))
    ));
    assert!(matches!(
        tables.create_table(create("a!", None)),
        Err(TablesError::Validation(_))
    ));
}

#[test]
fn conditions_run_inside_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let tables = open(dir.path());
    tables.create_table(create("t_1", None)).unwrap();
    let row = item(&[("userId", n("1")), ("transactionId", n("1"))]);
    let absent: fn() -> Check = || {
        Box::new(|current: Option<&Item>| match current {
            None => Ok(()),
            Some(item) => Err(TablesError::ConditionFailed {
                item: Some(Box::new(item.clone())),
            }),
        })
    };
    tables
        .write(Write::put("t_1", row.clone()).with_check(absent()))
        .unwrap();
    let refused = tables
        .write(Write::put("t_1", row.clone()).with_check(absent()))
        .unwrap_err();
    assert!(matches!(refused, TablesError::ConditionFailed { item: Some(found) } if *found == row));
    assert_eq!(tables.describe_table("t_1").unwrap().item_count, 1);
}

#[test]
fn concurrent_writers_share_commits_and_every_write_gets_one_record() {
    let dir = tempfile::tempdir().unwrap();
    let tables = Arc::new(open(dir.path()));
    let stream_id = tables
        .create_table(create("t_1", Some(StreamViewType::NewImage)))
        .unwrap()
        .definition
        .stream
        .unwrap()
        .stream_id;
    let writers: Vec<_> = (0..16)
        .map(|writer| {
            let tables = tables.clone();
            std::thread::spawn(move || {
                for index in 0..25 {
                    let row = item(&[
                        ("userId", n(&writer.to_string())),
                        ("transactionId", n(&index.to_string())),
                    ]);
                    tables.write(Write::put("t_1", row)).unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    drop(tables);
    let tables = open(dir.path());
    assert_eq!(tables.describe_table("t_1").unwrap().item_count, 400);
    let records = tables.read_stream(stream_id, 1, 1000).unwrap();
    assert_eq!(records.len(), 400);
    assert!(
        records
            .iter()
            .enumerate()
            .all(|(index, record)| record.sequence == index as u64 + 1)
    );
    let mut keys: Vec<_> = records.iter().map(|record| record.keys.clone()).collect();
    keys.sort_by_key(|key| format!("{key:?}"));
    keys.dedup();
    assert_eq!(keys.len(), 400);
}

#[test]
fn retention_removes_day_old_records_and_deleted_tables_keep_theirs_until_then() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let tables = Tables::open(dir.path(), clock.clone()).unwrap();
    let stream_id = tables
        .create_table(create("t_1", Some(StreamViewType::KeysOnly)))
        .unwrap()
        .definition
        .stream
        .unwrap()
        .stream_id;
    let row = |id: &str| item(&[("userId", n("1")), ("transactionId", n(id))]);
    tables.write(Write::put("t_1", row("1"))).unwrap();
    clock.advance_ms(STREAM_RETENTION_MS / 2);
    tables.write(Write::put("t_1", row("2"))).unwrap();
    clock.advance_ms(STREAM_RETENTION_MS / 2 + 1);
    assert_eq!(tables.trim_streams().unwrap(), 1);
    assert_eq!(tables.stream_bounds(stream_id).unwrap(), Some((2, 2)));
    tables.delete_table("t_1").unwrap();
    assert!(tables.stream(stream_id).unwrap().disabled_ms.is_some());
    assert_eq!(tables.read_stream(stream_id, 0, 10).unwrap().len(), 1);
    clock.advance_ms(STREAM_RETENTION_MS + 1);
    assert_eq!(tables.trim_streams().unwrap(), 1);
    assert!(tables.streams().unwrap().is_empty());
}

#[test]
fn list_tables_pages_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    let tables = open(dir.path());
    for name in ["ccc", "aaa", "bbb"] {
        tables.create_table(create(name, None)).unwrap();
    }
    assert_eq!(
        tables.list_tables(None, 2),
        (vec!["aaa".into(), "bbb".into()], Some("bbb".into()))
    );
    assert_eq!(
        tables.list_tables(Some("bbb"), 2),
        (vec!["ccc".into()], None)
    );
}

#[derive(Debug, Clone)]
enum Op {
    Put(u8, u8, i32),
    Delete(u8, u8),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0_u8..3, 0_u8..4, -5_i32..5).prop_map(|(p, s, v)| Op::Put(p, s, v)),
        3 => (0_u8..3, 0_u8..4).prop_map(|(p, s)| Op::Delete(p, s)),
        1 => Just(Op::Reopen),
    ]
}

/// A stream record as the model tests expect it: its event and its images.
type ModelRecord = (EventName, Option<Item>, Option<Item>);

/// The key of the model tests' item at (p, s).
fn model_key(p: u8, s: u8) -> Item {
    item(&[
        ("userId", n(&p.to_string())),
        ("transactionId", n(&s.to_string())),
    ])
}

/// The model tests' item at (p, s) with the attribute `v`.
fn model_item(p: u8, s: u8, v: i32) -> Item {
    let mut row = model_key(p, s);
    row.insert("v".into(), n(&v.to_string()));
    row
}

/// What the model tests expect: the items by (p, s), and the stream records their changes make.
#[derive(Default)]
struct Model {
    items: BTreeMap<(u8, u8), Item>,
    records: Vec<ModelRecord>,
}

impl Model {
    /// Stores `new` at (p, s) (`None` removes), expecting a record if that changes the item;
    /// answers the item it replaced.
    fn change(&mut self, p: u8, s: u8, new: Option<Item>) -> Option<Item> {
        let old = match &new {
            Some(row) => self.items.insert((p, s), row.clone()),
            None => self.items.remove(&(p, s)),
        };
        if old != new {
            let event = match (&old, &new) {
                (None, _) => EventName::Insert,
                (Some(_), Some(_)) => EventName::Modify,
                (Some(_), None) => EventName::Remove,
            };
            self.records.push((event, new, old.clone()));
        }
        old
    }
}

/// Every key of `partitions` × `sorts` reads as the model has it, and the table's counts agree.
fn check_against_model(
    tables: &Tables,
    table: &str,
    model: &BTreeMap<(u8, u8), Item>,
    partitions: u8,
    sorts: u8,
) -> Result<(), TestCaseError> {
    for p in 0..partitions {
        for s in 0..sorts {
            prop_assert_eq!(
                tables.get_item(table, &model_key(p, s)).unwrap(),
                model.get(&(p, s)).cloned()
            );
        }
    }
    let description = tables.describe_table(table).unwrap();
    prop_assert_eq!(description.item_count, model.len() as u64);
    prop_assert_eq!(
        description.size_bytes,
        model
            .values()
            .map(|row| item_size_bytes(row) as u64)
            .sum::<u64>()
    );
    Ok(())
}

/// The stream holds exactly the expected records, numbered from 1 without a gap.
fn check_stream(
    tables: &Tables,
    stream_id: u64,
    expected: Vec<ModelRecord>,
) -> Result<(), TestCaseError> {
    let records = tables.read_stream(stream_id, 1, 1000).unwrap();
    let actual: Vec<ModelRecord> = records
        .iter()
        .map(|record| {
            (
                record.event_name,
                record.new_image.clone(),
                record.old_image.clone(),
            )
        })
        .collect();
    prop_assert_eq!(actual, expected);
    prop_assert!(
        records
            .iter()
            .enumerate()
            .all(|(index, record)| record.sequence == index as u64 + 1)
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// The store against a BTreeMap, reopened in between: items, counts and the stream (one
    /// record per real change, consecutive, with the right images) always agree.
    #[test]
    fn store_matches_a_model(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let mut tables = open(dir.path());
        let stream_id = tables
            .create_table(create("model", Some(StreamViewType::NewAndOldImages)))
            .unwrap().definition.stream.unwrap().stream_id;
        let mut model = Model::default();
        for op in ops {
            match op {
                Op::Put(p, s, v) => {
                    let old = model.change(p, s, Some(model_item(p, s, v)));
                    let outcome = tables.write(Write::put("model", model_item(p, s, v))).unwrap();
                    prop_assert_eq!(outcome.old, old);
                }
                Op::Delete(p, s) => {
                    let old = model.change(p, s, None);
                    let outcome = tables.write(Write::delete("model", model_key(p, s))).unwrap();
                    prop_assert_eq!(outcome.old, old);
                }
                Op::Reopen => {
                    drop(tables);
                    tables = open(dir.path());
                }
            }
            check_against_model(&tables, "model", &model.items, 3, 4)?;
        }
        check_stream(&tables, stream_id, model.records)?;
    }
}

#[derive(Debug, Clone)]
enum LaggingOp {
    Put(u8, u8, i32),
    Delete(u8, u8),
    /// `ADD v :delta`: reads the item it updates.
    Add(u8, u8, i32),
    /// Two puts of one key in one group: the second reads the first's staged row.
    PutTwice(u8, u8, i32, i32),
    /// Holds the applier back, or lets it go on: writes meanwhile are computed over records
    /// that are on disk and not yet in redb.
    Hold(bool),
    Reopen,
}

fn lagging_op() -> impl Strategy<Value = LaggingOp> {
    prop_oneof![
        5 => (0_u8..2, 0_u8..3, -3_i32..3).prop_map(|(p, s, v)| LaggingOp::Put(p, s, v)),
        2 => (0_u8..2, 0_u8..3).prop_map(|(p, s)| LaggingOp::Delete(p, s)),
        3 => (0_u8..2, 0_u8..3, -2_i32..3).prop_map(|(p, s, d)| LaggingOp::Add(p, s, d)),
        1 => (0_u8..2, 0_u8..3, -3_i32..3, -3_i32..3)
            .prop_map(|(p, s, v, w)| LaggingOp::PutTwice(p, s, v, w)),
        3 => any::<bool>().prop_map(LaggingOp::Hold),
        1 => Just(LaggingOp::Reopen),
    ]
}

/// The model test's table with a global index on `v`, so that a write also moves index
/// entries and the index's counts.
fn create_indexed(name: &str) -> CreateTable {
    let mut request = create(name, Some(StreamViewType::NewAndOldImages));
    let v = KeyAttribute {
        name: "v".into(),
        scalar_type: ScalarType::N,
    };
    request.attribute_definitions.push(v.clone());
    request.indexes.push(IndexRequest {
        name: "by_v".into(),
        global: true,
        key_schema: KeySchema {
            partition: v,
            sort: None,
        },
        projection: Projection {
            kind: ProjectionType::KeysOnly,
            non_key_attributes: Vec::new(),
        },
        provisioned_throughput: None,
    });
    request
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Writes computed while redb lags behind the log (the applier held back, so each group
    /// reads the rows of earlier groups from memory): every write's outcome, the items, the
    /// counts, the index and the stream agree with a model once visible, and after reopen.
    #[test]
    fn writes_over_records_not_yet_in_redb_match_a_model(ops in proptest::collection::vec(lagging_op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let mut tables = open(dir.path());
        let stream_id = tables
            .create_table(create_indexed("lagging"))
            .unwrap().definition.stream.unwrap().stream_id;
        let mut model = Model::default();
        let mut held = false;
        for op in ops {
            match op {
                LaggingOp::Put(p, s, v) => {
                    let old = model.change(p, s, Some(model_item(p, s, v)));
                    let outcome = tables.write(Write::put("lagging", model_item(p, s, v))).unwrap();
                    prop_assert_eq!(outcome.old, old);
                }
                LaggingOp::Delete(p, s) => {
                    let old = model.change(p, s, None);
                    let outcome = tables.write(Write::delete("lagging", model_key(p, s))).unwrap();
                    prop_assert_eq!(outcome.old, old);
                }
                LaggingOp::Add(p, s, delta) => {
                    let before = model.items.get(&(p, s)).and_then(|row| match row.get("v") {
                        Some(AttributeValue::N(number)) => number.to_string().parse::<i32>().ok(),
                        _ => None,
                    });
                    let new = model_item(p, s, before.unwrap_or(0) + delta);
                    let old = model.change(p, s, Some(new.clone()));
                    let add = crate::expression::UpdateAction::Add(
                        vec![crate::expression::PathElement::Name("v".into())],
                        n(&delta.to_string()),
                    );
                    let outcome = tables.write(Write {
                        table: "lagging".into(),
                        key: model_key(p, s),
                        change: Change::Update(vec![add]),
                        check: None,
                    }).unwrap();
                    prop_assert_eq!(outcome.old, old);
                    prop_assert_eq!(outcome.new, Some(new));
                }
                LaggingOp::PutTwice(p, s, v, w) => {
                    let first_old = model.change(p, s, Some(model_item(p, s, v)));
                    let second_old = model.change(p, s, Some(model_item(p, s, w)));
                    let outcomes = tables.write_batch(vec![
                        Write::put("lagging", model_item(p, s, v)),
                        Write::put("lagging", model_item(p, s, w)),
                    ]).unwrap();
                    let olds: Vec<Option<Item>> = outcomes.into_iter().map(|outcome| outcome.unwrap().old).collect();
                    prop_assert_eq!(olds, vec![first_old, second_old]);
                }
                LaggingOp::Hold(hold) => {
                    tables.applier().hold(hold);
                    held = hold;
                }
                LaggingOp::Reopen => {
                    drop(tables);
                    tables = open(dir.path());
                    held = false;
                }
            }
            if held {
                continue;
            }
            check_against_model(&tables, "lagging", &model.items, 2, 3)?;
            // Every item has `v`, so every item has one index entry.
            let description = tables.describe_table("lagging").unwrap();
            prop_assert_eq!(description.index_counts[0].0, model.items.len() as u64);
            let entries = tables.scan("lagging", &ScanRequest {
                index: Some("by_v".into()),
                ..ScanRequest::default()
            }).unwrap();
            prop_assert_eq!(entries.items.len(), model.items.len());
        }
        tables.applier().hold(false);
        drop(tables);
        let tables = open(dir.path());
        check_against_model(&tables, "lagging", &model.items, 2, 3)?;
        check_stream(&tables, stream_id, model.records)?;
    }
}

#[test]
fn scans_page_by_limit_and_segments_cover_the_table_once() {
    let dir = tempfile::tempdir().unwrap();
    let tables = open(dir.path());
    tables.create_table(create("t_1", None)).unwrap();
    let mut expected = Vec::new();
    for p in 0..5 {
        for s in 0..4 {
            let row = item(&[
                ("userId", n(&p.to_string())),
                ("transactionId", n(&s.to_string())),
            ]);
            tables.write(Write::put("t_1", row.clone())).unwrap();
            expected.push(row);
        }
    }
    // Pages of 3 follow each other to the end, each item once, sort keys in order per partition.
    let mut seen = Vec::new();
    let mut request = ScanRequest {
        limit: Some(3),
        ..ScanRequest::default()
    };
    loop {
        let page = tables.scan("t_1", &request).unwrap();
        assert!(page.items.len() <= 3);
        seen.extend(page.items);
        match page.last_evaluated_key {
            Some(key) => request.exclusive_start_key = Some(key),
            None => break,
        }
    }
    assert_eq!(seen.len(), expected.len());
    let mut sorted = seen.clone();
    sorted.sort_by_key(|row| format!("{row:?}"));
    expected.sort_by_key(|row| format!("{row:?}"));
    assert_eq!(sorted, expected);
    // Four segments partition the table: every item in exactly one, partitions whole.
    let mut by_segment = Vec::new();
    for segment in 0..4 {
        let page = tables
            .scan(
                "t_1",
                &ScanRequest {
                    segment: Some((segment, 4)),
                    ..ScanRequest::default()
                },
            )
            .unwrap();
        assert_eq!(page.last_evaluated_key, None);
        by_segment.extend(page.items);
    }
    by_segment.sort_by_key(|row| format!("{row:?}"));
    assert_eq!(by_segment, expected);
}

#[test]
fn queries_read_one_partition_in_sort_order_both_ways_and_page() {
    use crate::expression::{Comparator, Condition, Operand, PathElement};
    let dir = tempfile::tempdir().unwrap();
    let tables = open(dir.path());
    tables.create_table(create("t_1", None)).unwrap();
    for p in 0..3 {
        for s in [-5, 0, 3, 10, 12] {
            let row = item(&[
                ("userId", n(&p.to_string())),
                ("transactionId", n(&s.to_string())),
            ]);
            tables.write(Write::put("t_1", row)).unwrap();
        }
    }
    let sort_keys = |page: &ScanPage| -> Vec<String> {
        page.items
            .iter()
            .map(|row| format!("{:?}", row["transactionId"]))
            .collect()
    };
    let at_least_zero = Condition::Compare(
        Operand::Path(vec![PathElement::Name("transactionId".into())]),
        Comparator::Ge,
        Operand::Value(n("0")),
    );
    let mut request = QueryRequest {
        partition: n("1"),
        key_condition: Some(at_least_zero),
        filter: None,
        forward: true,
        exclusive_start_key: None,
        limit: None,
        index: None,
        fetch_items: false,
    };
    let all = tables.query("t_1", &request).unwrap();
    assert_eq!(all.items.len(), 4);
    assert!(all.items.iter().all(|row| row["userId"] == n("1")));
    let forward = sort_keys(&all);
    request.forward = false;
    let mut backward = sort_keys(&tables.query("t_1", &request).unwrap());
    backward.reverse();
    assert_eq!(forward, backward);
    // Pages of one, backwards, from each page's last key.
    request.limit = Some(1);
    let mut paged = Vec::new();
    loop {
        let page = tables.query("t_1", &request).unwrap();
        paged.extend(sort_keys(&page));
        match page.last_evaluated_key {
            Some(key) => request.exclusive_start_key = Some(key),
            None => break,
        }
    }
    paged.reverse();
    assert_eq!(paged, forward);
}

#[test]
fn batches_share_a_commit_and_a_bad_member_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let tables = open(dir.path());
    let stream_id = tables
        .create_table(create("t_1", Some(StreamViewType::KeysOnly)))
        .unwrap()
        .definition
        .stream
        .unwrap()
        .stream_id;
    let row = |s: &str| item(&[("userId", n("1")), ("transactionId", n(s))]);
    let outcomes = tables
        .write_batch(
            (0..25)
                .map(|index| Write::put("t_1", row(&index.to_string())))
                .collect(),
        )
        .unwrap();
    assert!(outcomes.iter().all(Result::is_ok));
    assert_eq!(tables.describe_table("t_1").unwrap().item_count, 25);
    assert_eq!(tables.read_stream(stream_id, 0, 100).unwrap().len(), 25);
    let bad = vec![
        Write::delete("t_1", row("0")),
        Write::put("t_1", item(&[("userId", n("1"))])),
    ];
    assert!(tables.write_batch(bad).is_err());
    assert_eq!(tables.describe_table("t_1").unwrap().item_count, 25);
}

#[test]
fn transactions_apply_all_or_nothing_with_a_reason_per_member() {
    let dir = tempfile::tempdir().unwrap();
    let tables = open(dir.path());
    let stream_id = tables
        .create_table(create("t_1", Some(StreamViewType::KeysOnly)))
        .unwrap()
        .definition
        .stream
        .unwrap()
        .stream_id;
    let row = |s: &str| item(&[("userId", n("1")), ("transactionId", n(s))]);
    let absent: fn() -> Check = || {
        Box::new(|current: Option<&Item>| match current {
            None => Ok(()),
            Some(item) => Err(TablesError::ConditionFailed {
                item: Some(Box::new(item.clone())),
            }),
        })
    };
    tables.write(Write::put("t_1", row("1"))).unwrap();
    // The second member's condition fails: nothing of the first is stored.
    let refused = tables
        .transact_write(vec![
            Write::put("t_1", row("2")),
            Write::put("t_1", row("1")).with_check(absent()),
        ])
        .unwrap_err();
    let TablesError::TransactionCanceled { reasons } = refused else {
        panic!("{refused:?}")
    };
    assert_eq!(
        reasons
            .iter()
            .map(|reason| reason.code.as_str())
            .collect::<Vec<_>>(),
        ["None", "ConditionalCheckFailed"]
    );
    assert_eq!(reasons[1].item, Some(row("1")));
    assert_eq!(tables.get_item("t_1", &row("2")).unwrap(), None);
    assert_eq!(tables.read_stream(stream_id, 0, 10).unwrap().len(), 1);
    let check_only = Write {
        table: "t_1".into(),
        key: row("1"),
        change: Change::ConditionCheck,
        check: Some(Box::new(|current: Option<&Item>| {
            if current.is_some() {
                Ok(())
            } else {
                Err(TablesError::ConditionFailed { item: None })
            }
        })),
    };
    let outcomes = tables
        .transact_write(vec![
            Write::put("t_1", row("2")),
            Write::delete("t_1", row("3")),
            check_only,
        ])
        .unwrap();
    assert_eq!(outcomes.len(), 3);
    assert_eq!(tables.describe_table("t_1").unwrap().item_count, 2);
    assert_eq!(tables.read_stream(stream_id, 0, 10).unwrap().len(), 2);
    assert!(matches!(
        tables.transact_write(vec![
            Write::put("t_1", row("5")),
            Write::delete("t_1", row("5"))
        ]),
        Err(TablesError::Validation(_))
    ));
}

#[test]
fn time_to_live_is_refused_as_dynamodb_refuses_it_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let tables = open(dir.path());
        tables.create_table(create("ttl_1", None)).unwrap();
        assert_eq!(tables.definition("ttl_1").unwrap().ttl_attribute, None);
        let message = |result: Result<()>| match result {
            Err(TablesError::Validation(message)) => message,
            other => panic!("expected a validation error, got {other:?}"),
        };
        assert_eq!(
            message(tables.update_time_to_live("ttl_1", "expires", false)),
            "TimeToLive is already disabled"
        );
        assert!(message(tables.update_time_to_live("ttl_1", "", true)).contains("length"));
        tables
            .update_time_to_live("ttl_1", "expires", true)
            .unwrap();
        assert_eq!(
            message(tables.update_time_to_live("ttl_1", "expires", true)),
            "TimeToLive is already enabled"
        );
        assert_eq!(
            message(tables.update_time_to_live("ttl_1", "other", false)),
            "TimeToLive is active on a different AttributeName: current AttributeName is expires"
        );
        assert!(matches!(
            tables.update_time_to_live("missing", "expires", true),
            Err(TablesError::NotFound(_))
        ));
    }
    let tables = open(dir.path());
    assert_eq!(
        tables.definition("ttl_1").unwrap().ttl_attribute.as_deref(),
        Some("expires")
    );
    tables
        .update_time_to_live("ttl_1", "expires", false)
        .unwrap();
    assert_eq!(tables.definition("ttl_1").unwrap().ttl_attribute, None);
}

#[test]
fn expiry_removes_only_expired_items_with_one_service_record_each_across_reopen() {
    const NOW_S: u64 = 2_000_000_000;
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW_S * 1000));
    let row = |id: &str, expires: Option<AttributeValue>| {
        let mut row = item(&[("userId", n("1")), ("transactionId", n(id))]);
        if let Some(expires) = expires {
            row.insert("expires".to_owned(), expires);
        }
        row
    };
    let past = |seconds: u64| n(&(NOW_S - seconds).to_string());
    // More expired items than one expiry group, so several groups commit.
    let expired_count = TTL_EXPIRE_GROUP_MAX + 3;
    let stream_id = {
        let tables = Tables::open(dir.path(), clock.clone()).unwrap();
        let stream_id = tables
            .create_table(create("ttl_2", Some(StreamViewType::NewAndOldImages)))
            .unwrap()
            .definition
            .stream
            .unwrap()
            .stream_id;
        let mut writes: Vec<Write> = (0..expired_count)
            .map(|index| Write::put("ttl_2", row(&format!("{index}"), Some(past(1)))))
            .collect();
        writes.extend([
            Write::put("ttl_2", row("9001", Some(n(&(NOW_S + 60).to_string())))),
            Write::put("ttl_2", row("9002", None)),
            Write::put("ttl_2", row("9003", Some(s("1000")))),
            Write::put("ttl_2", row("9004", Some(past(TTL_PAST_SECONDS_MAX + 1)))),
            Write::put("ttl_2", row("9005", Some(past(TTL_PAST_SECONDS_MAX)))),
            Write::put("ttl_2", row("9006", Some(n(&format!("{NOW_S}.5"))))),
        ]);
        for outcome in tables.write_batch(writes).unwrap() {
            outcome.unwrap();
        }
        // Not enabled: nothing expires.
        assert_eq!(tables.expire_items().unwrap(), 0);
        tables
            .update_time_to_live("ttl_2", "expires", true)
            .unwrap();
        stream_id
    };
    let tables = Tables::open(dir.path(), clock.clone()).unwrap();
    let writes_before = tables.stream_next_sequence(stream_id).unwrap();
    assert_eq!(
        tables.expire_items().unwrap(),
        expired_count as u64 + 1,
        "the items one second in the past and exactly five years back expire"
    );
    assert_eq!(tables.expire_items().unwrap(), 0, "expiry is done once");
    let left: Vec<String> = tables
        .scan("ttl_2", &ScanRequest::default())
        .unwrap()
        .items
        .iter()
        .map(|row| match row.get("transactionId") {
            Some(AttributeValue::N(id)) => id.to_string(),
            other => panic!("no key in {other:?}"),
        })
        .collect();
    assert_eq!(left, ["9001", "9002", "9003", "9004", "9006"]);
    let records = tables
        .read_stream(stream_id, writes_before, STREAM_READ_MAX)
        .unwrap();
    assert_eq!(records.len(), expired_count + 1);
    for record in &records {
        assert_eq!(record.event_name, EventName::Remove);
        assert!(record.by_service);
        assert!(record.old_image.is_some());
    }
    assert!(
        tables
            .read_stream(stream_id, 1, 1)
            .unwrap()
            .iter()
            .all(|record| !record.by_service),
        "client writes are not the service's"
    );
    drop(tables);
    let tables = Tables::open(dir.path(), clock.clone()).unwrap();
    assert_eq!(
        tables.describe_table("ttl_2").unwrap().item_count,
        left.len() as u64
    );
    assert_eq!(
        tables
            .read_stream(stream_id, writes_before, STREAM_READ_MAX)
            .unwrap(),
        records
    );
    // Time moves on: the item due a minute later goes next, and one rewritten with a later
    // time stays.
    tables
        .write(Write::put(
            "ttl_2",
            row("9006", Some(n(&(NOW_S + 3600).to_string()))),
        ))
        .unwrap();
    clock.advance_ms(61_000);
    assert_eq!(tables.expire_items().unwrap(), 1);
    assert!(
        tables
            .get_item("ttl_2", &row("9001", None))
            .unwrap()
            .is_none()
    );
    assert!(
        tables
            .get_item("ttl_2", &row("9006", None))
            .unwrap()
            .is_some()
    );
}

/// A sort key condition of a Query, as the test writes it and models it.
#[derive(Debug, Clone)]
enum KeyCondition {
    Compare(&'static str, String),
    Between(String, String),
    BeginsWith(String),
}

impl KeyCondition {
    fn text(&self) -> (String, BTreeMap<String, AttributeValue>) {
        match self {
            KeyCondition::Compare(op, value) => (
                format!("s {op} :v"),
                BTreeMap::from([(":v".to_owned(), s(value))]),
            ),
            KeyCondition::Between(low, high) => (
                "s BETWEEN :low AND :high".to_owned(),
                BTreeMap::from([(":low".to_owned(), s(low)), (":high".to_owned(), s(high))]),
            ),
            KeyCondition::BeginsWith(prefix) => (
                "begins_with(s, :v)".to_owned(),
                BTreeMap::from([(":v".to_owned(), s(prefix))]),
            ),
        }
    }

    /// DynamoDB's documented meaning, over UTF-8 byte order.
    fn holds(&self, key: &str) -> bool {
        match self {
            KeyCondition::Compare(op, value) => match *op {
                "=" => key == value,
                "<" => key < value.as_str(),
                "<=" => key <= value.as_str(),
                ">" => key > value.as_str(),
                _ => key >= value.as_str(),
            },
            KeyCondition::Between(low, high) => low.as_str() <= key && key <= high.as_str(),
            KeyCondition::BeginsWith(prefix) => key.starts_with(prefix.as_str()),
        }
    }
}

fn key_condition() -> impl Strategy<Value = KeyCondition> {
    let value = "[ab]{1,3}";
    prop_oneof![
        (prop::sample::select(vec!["=", "<", "<=", ">", ">="]), value)
            .prop_map(|(op, value)| KeyCondition::Compare(op, value)),
        (value, value).prop_map(|(a, b)| if a <= b {
            KeyCondition::Between(a, b)
        } else {
            KeyCondition::Between(b, a)
        }),
        value.prop_map(KeyCondition::BeginsWith),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Query's key conditions, order and paging against a model: the partition's sort keys
    /// that meet the condition, in byte order or its reverse, whatever the page size.
    #[test]
    fn key_conditions_agree_with_a_model(
        keys in prop::collection::btree_set("[ab]{1,3}", 0..12),
        neighbours in prop::collection::btree_set("[ab]{1,3}", 0..4),
        condition in key_condition(),
        forward in any::<bool>(),
        limit in prop::option::of(1_usize..4),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let tables = open(dir.path());
        let key = |name: &str| KeyAttribute { name: name.into(), scalar_type: ScalarType::S };
        tables.create_table(CreateTable {
            name: "keyed".into(),
            key_schema: KeySchema { partition: key("p"), sort: Some(key("s")) },
            attribute_definitions: vec![key("p"), key("s")],
            billing_mode: "PAY_PER_REQUEST".into(),
            provisioned_throughput: None,
            stream_view_type: None,
            indexes: Vec::new(),
            tags: Default::default(),
        }).unwrap();
        let writes = keys.iter().map(|k| ("x", k)).chain(neighbours.iter().map(|k| ("y", k)))
            .map(|(p, k)| Write::put("keyed", item(&[("p", s(p)), ("s", s(k))])))
            .collect();
        for outcome in tables.write_batch(writes).unwrap() {
            outcome.unwrap();
        }
        let (text, values) = condition.text();
        let names = BTreeMap::new();
        let parsed = crate::expression::Parser::new(&text, &names, &values)
            .unwrap()
            .condition()
            .unwrap();
        let mut request = QueryRequest {
            partition: s("x"),
            key_condition: Some(parsed),
            filter: None,
            forward,
            exclusive_start_key: None,
            limit,
            index: None,
            fetch_items: false,
        };
        let mut found = Vec::new();
        loop {
            let page = tables.query("keyed", &request).unwrap();
            found.extend(page.items.iter().map(|row| match &row["s"] {
                AttributeValue::S(key) => key.clone(),
                other => panic!("{other:?}"),
            }));
            match page.last_evaluated_key {
                Some(last) => request.exclusive_start_key = Some(last),
                None => break,
            }
        }
        let mut expected: Vec<String> = keys.iter().filter(|k| condition.holds(k)).cloned().collect();
        if !forward {
            expected.reverse();
        }
        prop_assert_eq!(found, expected, "{}", text);
    }
}

/// Past `WAL_CHECKPOINT_BYTES` of log, a commit checkpoints redb and the log starts again at
/// its front: the file stays near that size however much is written, and everything written
/// before and after the checkpoints is there after a reopen.
/// Puts item `number` of about 300 KiB into table "big", whose stream keeps new images: about
/// 600 KiB of log per put.
fn put_big(tables: &Tables, number: u64) {
    let put = item(&[
        ("userId", n("1")),
        ("transactionId", n(&number.to_string())),
        ("padding", s(&"x".repeat(300 * 1024))),
    ]);
    tables.write(Write::put("big", put)).unwrap();
}

fn log_file_bytes(dir: &std::path::Path) -> Vec<u64> {
    ["tables.wal", "tables.wal2"]
        .iter()
        .map(|name| std::fs::metadata(dir.join(name)).unwrap().len())
        .collect()
}

#[test]
fn the_write_ahead_log_is_checkpointed_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let tables = open(dir.path());
    tables
        .create_table(create("big", Some(StreamViewType::NewImage)))
        .unwrap();
    let count = 120_u64;
    for number in 0..count {
        put_big(&tables, number);
    }
    // About 70 MiB of log went through two files of 16 MiB, each reused once redb held its
    // records durably.
    for bytes in log_file_bytes(dir.path()) {
        assert!(bytes < 2 * 16 * 1024 * 1024, "{bytes}");
    }
    drop(tables);
    let tables = open(dir.path());
    let description = tables.describe_table("big").unwrap();
    assert_eq!(description.item_count, count);
    let stream = description.definition.stream.unwrap().stream_id;
    assert_eq!(tables.stream_bounds(stream).unwrap(), Some((1, count)));
}

/// A checkpoint holds up no write: with redb held back entirely, writes go on past the first
/// file into the second, and a crash then applies the records of both. Once the checkpoint is
/// durable the first file is reused from its front, and a crash then applies its new records
/// and none of the second file's, which redb holds.
#[test]
fn a_checkpoint_holds_up_no_write_and_a_crash_during_one_recovers_from_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let tables = open(dir.path());
    let stream = tables
        .create_table(create("big", Some(StreamViewType::NewImage)))
        .unwrap()
        .definition
        .stream
        .unwrap()
        .stream_id;
    tables.applier().hold(true);
    // About 48 MiB of log: the first file fills, the second takes the rest and grows past its
    // size, as the first is not free.
    for number in 0..80 {
        put_big(&tables, number);
    }
    assert_eq!(tables.applier().unapplied(), 80);
    let bytes = log_file_bytes(dir.path());
    assert!(bytes[1] > 16 * 1024 * 1024, "{bytes:?}");
    let crashed = tempfile::tempdir().unwrap();
    crash_image(dir.path(), crashed.path());
    let recovered = open(crashed.path());
    assert_eq!(recovered.describe_table("big").unwrap().item_count, 80);
    assert_eq!(recovered.stream_bounds(stream).unwrap(), Some((1, 80)));
    drop(recovered);

    // The held records are applied, the checkpoint's commit durable; the next write moves the
    // log back to the first file's front.
    tables.applier().hold(false);
    assert_eq!(tables.describe_table("big").unwrap().item_count, 80);
    tables.applier().hold(true);
    for number in 80..100 {
        put_big(&tables, number);
    }
    assert_eq!(tables.applier().unapplied(), 20);
    let crashed = tempfile::tempdir().unwrap();
    crash_image(dir.path(), crashed.path());
    let recovered = open(crashed.path());
    assert_eq!(recovered.describe_table("big").unwrap().item_count, 100);
    assert_eq!(recovered.stream_bounds(stream).unwrap(), Some((1, 100)));
    drop(recovered);
    tables.applier().hold(false);
    assert_eq!(tables.describe_table("big").unwrap().item_count, 100);
    // The first file was written again from its front: it is no longer than its first round.
    let bytes = log_file_bytes(dir.path());
    assert!(bytes[0] < 16 * 1024 * 1024 + 2 * 700 * 1024, "{bytes:?}");
}

/// When the log's other file is still needed (its checkpoint has not finished) and the active
/// one reaches its maximum, the writer waits for the checkpoint instead of growing the log
/// further; the writes it has answered meanwhile survive a crash, and once the checkpoint is
/// done it goes on.
#[test]
fn a_writer_waits_for_a_checkpoint_when_both_log_files_are_needed() {
    let dir = tempfile::tempdir().unwrap();
    let tables = Arc::new(open(dir.path()));
    let stream = tables
        .create_table(create("big", Some(StreamViewType::NewImage)))
        .unwrap()
        .definition
        .stream
        .unwrap()
        .stream_id;
    tables.applier().hold(true);
    // About 156 MiB of log: the first file's 16 MiB, then the second up to its maximum.
    let count = 260;
    let writer = std::thread::spawn({
        let tables = tables.clone();
        move || {
            for number in 0..count {
                put_big(&tables, number);
            }
        }
    });
    let maximum = crate::wal::WAL_BYTES_MAX;
    for _ in 0..60_000 {
        if log_file_bytes(dir.path())[1] >= maximum || writer.is_finished() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    // The write that took the second file to its maximum waits: the file stops there.
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        !writer.is_finished(),
        "the writer went on past the log's maximum"
    );
    let bytes = log_file_bytes(dir.path());
    assert!(bytes[1] < maximum + 700 * 1024, "{bytes:?}");
    // Every logged write survives a crash now: those answered, and the one waiting, which is
    // on disk though not answered yet.
    let logged = tables.applier().unapplied();
    let crashed = tempfile::tempdir().unwrap();
    crash_image(dir.path(), crashed.path());
    let recovered = open(crashed.path());
    assert_eq!(recovered.describe_table("big").unwrap().item_count, logged);
    assert_eq!(recovered.stream_bounds(stream).unwrap(), Some((1, logged)));
    drop(recovered);

    tables.applier().hold(false);
    writer.join().unwrap();
    let description = tables.describe_table("big").unwrap();
    assert_eq!(description.item_count, count);
    assert_eq!(tables.stream_bounds(stream).unwrap(), Some((1, count)));
}

/// Waits (without a deadline that could flake, but never forever) until the queue is as asked.
fn wait_for_queue(tables: &Tables, wanted: (usize, bool)) {
    for _ in 0..60_000 {
        if tables.queue_state() == wanted {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    panic!(
        "the write queue never became {wanted:?}: {:?}",
        tables.queue_state()
    );
}

#[test]
fn a_full_write_queue_refuses_the_writes_that_do_not_fit_and_they_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut tables = open(dir.path());
    tables
        .create_table(create("queued", Some(StreamViewType::NewImage)))
        .unwrap();
    // Each write holds about 1,000 bytes: two fit under 2,500, three do not.
    tables.set_queued_bytes_max(2_500);
    let tables = Arc::new(tables);
    let padding = "x".repeat(1_000);
    let put = |number: u64| {
        Write::put(
            "queued",
            item(&[
                ("userId", n("1")),
                ("transactionId", n(&number.to_string())),
                ("padding", s(&padding)),
            ]),
        )
    };
    let key = |number: u64| {
        item(&[
            ("userId", n("1")),
            ("transactionId", n(&number.to_string())),
        ])
    };

    let held = tables.hold_writes();
    let leader = std::thread::spawn({
        let tables = tables.clone();
        let write = put(0);
        move || tables.write(write)
    });
    // The leader has taken its group and waits for the database; the queue is empty.
    wait_for_queue(&tables, (0, true));
    let batch = std::thread::spawn({
        let tables = tables.clone();
        let writes = vec![put(1), put(2), put(3)];
        move || tables.write_batch(writes)
    });
    wait_for_queue(&tables, (2, true));
    // A single write finds the queue full and is refused at once.
    assert!(matches!(tables.write(put(4)), Err(TablesError::Throttled)));
    drop(held);

    leader.join().unwrap().unwrap();
    let outcomes = batch.join().unwrap().unwrap();
    assert_eq!(outcomes.len(), 3);
    assert!(outcomes[0].is_ok() && outcomes[1].is_ok(), "{outcomes:?}");
    assert!(
        matches!(outcomes[2], Err(TablesError::Throttled)),
        "{outcomes:?}"
    );
    for number in 0..=2 {
        assert!(tables.get_item("queued", &key(number)).unwrap().is_some());
    }
    for number in 3..=4 {
        assert_eq!(tables.get_item("queued", &key(number)).unwrap(), None);
    }
    let description = tables.describe_table("queued").unwrap();
    assert_eq!(description.item_count, 3);
    let stream = description.definition.stream.unwrap().stream_id;
    assert_eq!(tables.stream_bounds(stream).unwrap(), Some((1, 3)));
    // Once the queue has drained, the refused writes go through when asked again.
    tables
        .write_batch(vec![put(3), put(4)])
        .unwrap()
        .into_iter()
        .for_each(|outcome| {
            outcome.unwrap();
        });
    assert_eq!(tables.describe_table("queued").unwrap().item_count, 5);
}

/// A receiver of one submitted call's outcomes, and the `Deliver` that feeds it.
fn delivery() -> (
    Deliver,
    std::sync::mpsc::Receiver<Vec<crate::Result<WriteOutcome>>>,
) {
    let (sender, receiver) = std::sync::mpsc::channel();
    let deliver: Deliver = Box::new(move |outcomes| sender.send(outcomes).unwrap());
    (deliver, receiver)
}

#[test]
fn a_submitted_write_holds_no_thread_and_the_leader_hands_over_after_its_own_group() {
    let dir = tempfile::tempdir().unwrap();
    let tables = open(dir.path());
    tables
        .create_table(create("submitted", Some(StreamViewType::NewImage)))
        .unwrap();
    let tables = Arc::new(tables);
    let put = |number: u64| {
        Write::put(
            "submitted",
            item(&[
                ("userId", n("1")),
                ("transactionId", n(&number.to_string())),
            ]),
        )
    };

    // Nobody leads: the first call is told to lead, and commits only when it does.
    let held = tables.hold_writes();
    let (deliver, first) = delivery();
    assert_eq!(
        tables.submit(vec![put(0)], deliver).unwrap(),
        Submitted::Lead
    );
    assert_eq!(tables.queue_state(), (1, true));
    let leader = std::thread::spawn({
        let tables = tables.clone();
        move || tables.lead(1)
    });
    wait_for_queue(&tables, (0, true));
    // Calls that arrive while the leader works queue without a thread of their own.
    let (deliver, second) = delivery();
    assert_eq!(
        tables.submit(vec![put(1), put(2)], deliver).unwrap(),
        Submitted::Queued
    );
    assert_eq!(tables.queue_state(), (2, true));
    drop(held);

    // One group: the leader's own write is answered, the later call still waits, and the
    // leader is told that it still leads.
    assert!(leader.join().unwrap(), "writes still wait");
    let outcomes = first.recv().unwrap();
    assert_eq!(outcomes.len(), 1);
    assert!(outcomes[0].is_ok(), "{outcomes:?}");
    assert!(second.try_recv().is_err(), "not committed yet");
    assert_eq!(tables.queue_state(), (2, true));

    // Whoever takes the turn over commits the rest and gives the lead up.
    assert!(!tables.lead(usize::MAX));
    let outcomes = second.recv().unwrap();
    assert_eq!(outcomes.len(), 2);
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    assert_eq!(tables.queue_state(), (0, false));
    let stream = tables
        .describe_table("submitted")
        .unwrap()
        .definition
        .stream
        .unwrap()
        .stream_id;
    assert_eq!(tables.stream_bounds(stream).unwrap(), Some((1, 3)));

    // A malformed write queues nothing and says so at once.
    let (deliver, never) = delivery();
    let missing = Write::put("no-such-table", item(&[("userId", n("1"))]));
    assert!(tables.submit(vec![missing], deliver).is_err());
    assert!(never.recv().is_err(), "its Deliver was dropped uncalled");
    assert_eq!(tables.queue_state(), (0, false));
}

/// Copies the files of a tables directory as they are on disk: what a crash would leave.
fn crash_image(from: &std::path::Path, to: &std::path::Path) {
    for name in ["tables.redb", "tables.wal", "tables.wal2"] {
        std::fs::copy(from.join(name), to.join(name)).unwrap();
    }
}

#[test]
fn a_write_is_answered_before_its_redb_commit_and_readers_and_crashes_still_see_it() {
    let dir = tempfile::tempdir().unwrap();
    let tables = Arc::new(open(dir.path()));
    let stream = tables
        .create_table(create("transactions", Some(StreamViewType::NewImage)))
        .unwrap()
        .definition
        .stream
        .unwrap()
        .stream_id;
    let key = item(&[("userId", n("3")), ("transactionId", n("51"))]);
    let mut written = key.clone();
    written.insert("amount".to_owned(), n("12.50"));

    tables.applier().hold(true);
    // Answered while its redb commit is held back: the log record is what makes it durable.
    tables
        .write(Write::put("transactions", written.clone()))
        .unwrap();
    assert_eq!(tables.applier().unapplied(), 1);

    // A crash now leaves the database without the write and the log with it.
    let crashed = tempfile::tempdir().unwrap();
    crash_image(dir.path(), crashed.path());

    // A reader that begins after the answer waits for the commit rather than miss the write.
    let reader = std::thread::spawn({
        let tables = tables.clone();
        let key = key.clone();
        move || tables.get_item("transactions", &key).unwrap()
    });
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(
        !reader.is_finished(),
        "a read ran before the write it must see was visible"
    );
    tables.applier().hold(false);
    assert_eq!(reader.join().unwrap(), Some(written.clone()));
    assert_eq!(tables.applier().unapplied(), 0);

    // Closing commits a held-back transaction too.
    tables.applier().hold(true);
    let mut second = item(&[("userId", n("3")), ("transactionId", n("52"))]);
    second.insert("amount".to_owned(), n("1"));
    tables
        .write(Write::put("transactions", second.clone()))
        .unwrap();
    drop(Arc::into_inner(tables).unwrap());
    let reopened = open(dir.path());
    assert_eq!(
        reopened.describe_table("transactions").unwrap().item_count,
        2
    );
    assert_eq!(reopened.stream_bounds(stream).unwrap(), Some((1, 2)));

    // The crash image recovers the answered write, with its stream record, from the log.
    let recovered = open(crashed.path());
    assert_eq!(
        recovered.get_item("transactions", &key).unwrap(),
        Some(written)
    );
    assert_eq!(recovered.stream_bounds(stream).unwrap(), Some((1, 1)));
}

/// A durable commit (here a catalog change) starts the log again at its front; a crash after
/// later writes applies exactly the records written since, once.
#[test]
fn a_crash_after_a_durable_commit_applies_the_log_records_written_since() {
    let dir = tempfile::tempdir().unwrap();
    let tables = open(dir.path());
    let stream = tables
        .create_table(create("before", Some(StreamViewType::NewImage)))
        .unwrap()
        .definition
        .stream
        .unwrap()
        .stream_id;
    let put = |number: u64| {
        Write::put(
            "before",
            item(&[
                ("userId", n("1")),
                ("transactionId", n(&number.to_string())),
            ]),
        )
    };
    for number in 1..=3 {
        tables.write(put(number)).unwrap();
    }
    // A durable commit: redb now holds log records 1 to 3, and the log starts again.
    tables.create_table(create("after", None)).unwrap();
    // Record 4 is answered and held back from redb: only the log has it when the crash comes.
    tables.applier().hold(true);
    tables.write(put(4)).unwrap();
    assert_eq!(tables.applier().unapplied(), 1);
    let crashed = tempfile::tempdir().unwrap();
    crash_image(dir.path(), crashed.path());
    tables.applier().hold(false);
    let recovered = open(crashed.path());
    assert_eq!(recovered.describe_table("before").unwrap().item_count, 4);
    assert_eq!(recovered.stream_bounds(stream).unwrap(), Some((1, 4)));
    assert!(recovered.describe_table("after").is_ok());
    // Opened again after that recovery's durable commit, nothing is applied twice.
    drop(recovered);
    let reopened = open(crashed.path());
    assert_eq!(reopened.describe_table("before").unwrap().item_count, 4);
    assert_eq!(reopened.stream_bounds(stream).unwrap(), Some((1, 4)));
}

#[test]
fn a_failed_redb_commit_after_the_answer_fails_reads_and_the_log_keeps_the_write() {
    let dir = tempfile::tempdir().unwrap();
    let tables = open(dir.path());
    tables
        .create_table(create("transactions", Some(StreamViewType::NewImage)))
        .unwrap();
    let key = item(&[("userId", n("3")), ("transactionId", n("51"))]);
    let mut written = key.clone();
    written.insert("amount".to_owned(), n("12.50"));
    tables.applier().hold(true);
    tables.applier().fail_next();
    tables
        .write(Write::put("transactions", written.clone()))
        .unwrap();
    tables.applier().hold(false);
    // The read would miss an answered write: it fails instead, and so do writes.
    assert!(matches!(
        tables.get_item("transactions", &key),
        Err(TablesError::Storage(_))
    ));
    assert!(matches!(
        tables.write(Write::put("transactions", written.clone())),
        Err(TablesError::Storage(_))
    ));
    drop(tables);
    // Reopening applies the log: the answered write is there.
    let reopened = open(dir.path());
    assert_eq!(
        reopened.get_item("transactions", &key).unwrap(),
        Some(written)
    );
}
