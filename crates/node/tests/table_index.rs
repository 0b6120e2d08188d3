//! The built-in indexing of tables into search, inside a node: `_id` from the key, the stream
//! record's sequence number as the version, REMOVE as a delete, real types, duplicated delivery
//! after a lost position, resumption after reopen, and the refusal of tables without new images.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_node::{Node, NodeOptions, TableIndexConfig};
use sluice_tables::{
    AttributeValue, CreateTable, Item, KeyAttribute, KeySchema, Number, ScalarType, StreamViewType,
    Write,
};

/// Generous bound for the indexer to catch up; a healthy run takes milliseconds.
const CATCH_UP_BOUND: Duration = Duration::from_secs(30);

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < CATCH_UP_BOUND,
            "waited too long for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn n(text: &str) -> AttributeValue {
    AttributeValue::N(Number::parse(text).unwrap())
}

fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.to_owned())
}

fn item(pairs: &[(&str, AttributeValue)]) -> Item {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.clone()))
        .collect()
}

fn key(name: &str, scalar_type: ScalarType) -> KeyAttribute {
    KeyAttribute {
        name: name.into(),
        scalar_type,
    }
}

fn create(node: &Node, view: Option<StreamViewType>) {
    node.tables()
        .create_table(CreateTable {
            name: "Transactions".into(),
            key_schema: KeySchema {
                partition: key("userId", ScalarType::N),
                sort: Some(key("transactionId", ScalarType::S)),
            },
            attribute_definitions: vec![
                key("userId", ScalarType::N),
                key("transactionId", ScalarType::S),
            ],
            billing_mode: "PAY_PER_REQUEST".into(),
            provisioned_throughput: None,
            stream_view_type: view,
            indexes: Vec::new(),
        })
        .unwrap();
}

fn options() -> NodeOptions {
    let table_index: TableIndexConfig =
        serde_json::from_value(json!({"tables": {"Transactions": {"index": "transactions"}}}))
            .unwrap();
    NodeOptions {
        table_index,
        ..NodeOptions::default()
    }
}

fn put(node: &Node, pairs: &[(&str, AttributeValue)]) {
    node.tables()
        .write(Write::put("Transactions", item(pairs)))
        .unwrap();
}

/// The document `id` of `transactions` with its version, or `None`.
fn get(node: &Node, id: &str) -> Option<(u64, Value)> {
    let index = node.indices().get("transactions").ok()?;
    let stored = index.get(id).unwrap()?;
    Some((
        stored.version,
        serde_json::from_slice(&stored.source.unwrap()).unwrap(),
    ))
}

fn lag(node: &Node) -> u64 {
    node.table_indexer()
        .snapshot()
        .lag_records
        .get("Transactions")
        .copied()
        .unwrap_or(u64::MAX)
}

#[test]
fn changes_reach_the_index_with_their_sequence_numbers_across_redelivery_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let node = Node::open_with(dir.path(), options()).unwrap();
        create(&node, Some(StreamViewType::NewAndOldImages));
        // Sequence 1: an insert with every type.
        put(
            &node,
            &[
                ("userId", n("3")),
                ("transactionId", s("51")),
                ("amount", n("12.50")),
                ("big", n("12345678901234567890123456789012345678")),
                ("tags", AttributeValue::Ss(["a".into(), "b".into()].into())),
                ("raw", AttributeValue::B(b"hi".to_vec())),
                (
                    "nested",
                    AttributeValue::M(item(&[("ok", AttributeValue::Bool(true))])),
                ),
            ],
        );
        // Sequence 2: another item, whose partition key holds the separator.
        put(&node, &[("userId", n("4")), ("transactionId", s("x|y"))]);
        // Sequence 3: the first item replaced; sequence 4: the second removed.
        put(
            &node,
            &[
                ("userId", n("3")),
                ("transactionId", s("51")),
                ("amount", n("7")),
            ],
        );
        node.tables()
            .write(Write::delete(
                "Transactions",
                item(&[("userId", n("4")), ("transactionId", s("x|y"))]),
            ))
            .unwrap();
        wait_for("every change indexed", || lag(&node) == 0);
        let (version, source) = get(&node, "3|51").unwrap();
        assert_eq!(version, 3);
        assert_eq!(
            source,
            json!({"userId": 3, "transactionId": "51", "amount": 7})
        );
        assert_eq!(get(&node, "4|x|y"), None);
        node.shutdown();
    }
    // A lost position (a crash before it was saved) delivers every record again: the external
    // versions keep the documents as they were, and the removed one stays removed.
    std::fs::remove_file(dir.path().join("table-index/Transactions.position")).unwrap();
    {
        let node = Node::open_with(dir.path(), options()).unwrap();
        wait_for("the redelivery", || lag(&node) == 0);
        let snapshot = node.table_indexer().snapshot();
        assert_eq!(snapshot.indexed_records, 4);
        assert_eq!(snapshot.failed_records, 0);
        assert_eq!(get(&node, "3|51").unwrap().0, 3);
        assert_eq!(get(&node, "4|x|y"), None);
        node.shutdown();
    }
    {
        let node = Node::open(dir.path()).unwrap();
        // Indexing off (no configuration): the write stays in the stream only.
        put(
            &node,
            &[
                ("userId", n("5")),
                ("transactionId", s("1")),
                ("big", n("12345678901234567890123456789012345678")),
                ("tags", AttributeValue::Ss(["a".into(), "b".into()].into())),
                ("raw", AttributeValue::B(b"hi".to_vec())),
                (
                    "nested",
                    AttributeValue::M(item(&[("ok", AttributeValue::Bool(true))])),
                ),
            ],
        );
        assert!(node.table_indexer().snapshot().lag_records.is_empty());
        node.shutdown();
    }
    let node = Node::open_with(dir.path(), options()).unwrap();
    wait_for("the write made while stopped", || {
        get(&node, "5|1").is_some()
    });
    let (version, _) = get(&node, "5|1").unwrap();
    assert_eq!(version, 5);
    let index = node.indices().get("transactions").unwrap();
    let stored = index.get("5|1").unwrap().unwrap();
    assert_eq!(
        String::from_utf8(stored.source.unwrap().to_vec()).unwrap(),
        r#"{"big":12345678901234567890123456789012345678,"nested":{"ok":true},"raw":"aGk=","tags":["a","b"],"transactionId":"1","userId":5}"#
    );
}

#[test]
fn a_table_without_new_images_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let node = Node::open(dir.path()).unwrap();
        create(&node, Some(StreamViewType::KeysOnly));
        node.shutdown();
    }
    let Err(error) = Node::open_with(dir.path(), options()) else {
        panic!("a table with a KEYS_ONLY stream was accepted");
    };
    assert!(
        error
            .to_string()
            .contains("NEW_IMAGE or NEW_AND_OLD_IMAGES"),
        "{error}"
    );
    // A table created later without a stream is skipped and reported.
    let other = tempfile::tempdir().unwrap();
    let node = Node::open_with(other.path(), options()).unwrap();
    create(&node, None);
    wait_for("the refusal", || {
        node.table_indexer()
            .snapshot()
            .refused_tables
            .contains("Transactions")
    });
}
