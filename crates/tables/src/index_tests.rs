//! Secondary index tests: entries kept in step with every kind of write (put, update, delete,
//! transactions, TTL), sparse indexes, queries and scans of an index in its order with paging,
//! local indexes answering whole items, indexes created on a full table and deleted, and all of
//! it across reopen, checked against a model computed from the table's items.

use std::sync::Arc;

use sluice_log::SystemClock;

use crate::*;

fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.to_owned())
}

fn n(text: &str) -> AttributeValue {
    AttributeValue::N(Number::parse(text).unwrap())
}

fn key(name: &str, scalar_type: ScalarType) -> KeyAttribute {
    KeyAttribute {
        name: name.to_owned(),
        scalar_type,
    }
}

fn projection(kind: ProjectionType, include: &[&str]) -> Projection {
    Projection {
        kind,
        non_key_attributes: include.iter().map(|name| (*name).to_owned()).collect(),
    }
}

/// Orders(customer S, at N) with a global index by status then total, and a local index by
/// customer then total that keeps keys only.
fn orders() -> CreateTable {
    CreateTable {
        name: "Orders".into(),
        key_schema: KeySchema {
            partition: key("customer", ScalarType::S),
            sort: Some(key("at", ScalarType::N)),
        },
        attribute_definitions: vec![
            key("customer", ScalarType::S),
            key("at", ScalarType::N),
            key("status", ScalarType::S),
            key("total", ScalarType::N),
        ],
        billing_mode: "PAY_PER_REQUEST".into(),
        provisioned_throughput: None,
        stream_view_type: Some(StreamViewType::NewAndOldImages),
        indexes: vec![
            IndexRequest {
                name: "by_status".into(),
                global: true,
                key_schema: KeySchema {
                    partition: key("status", ScalarType::S),
                    sort: Some(key("total", ScalarType::N)),
                },
                projection: projection(ProjectionType::Include, &["note"]),
                provisioned_throughput: None,
            },
            IndexRequest {
                name: "by_total".into(),
                global: false,
                key_schema: KeySchema {
                    partition: key("customer", ScalarType::S),
                    sort: Some(key("total", ScalarType::N)),
                },
                projection: projection(ProjectionType::KeysOnly, &[]),
                provisioned_throughput: None,
            },
        ],
        tags: Default::default(),
    }
}

fn order(customer: &str, at: &str, status: Option<&str>, total: &str) -> Item {
    let mut item = Item::new();
    item.insert("customer".into(), s(customer));
    item.insert("at".into(), n(at));
    item.insert("total".into(), n(total));
    item.insert("note".into(), s(&format!("order {customer}/{at}")));
    item.insert("secret".into(), s("not projected"));
    if let Some(status) = status {
        item.insert("status".into(), s(status));
    }
    item
}

fn order_key(customer: &str, at: &str) -> Item {
    [
        ("customer".to_owned(), s(customer)),
        ("at".to_owned(), n(at)),
    ]
    .into_iter()
    .collect()
}

fn query(index: &str, partition: AttributeValue, limit: Option<usize>) -> QueryRequest {
    QueryRequest {
        partition,
        key_condition: None,
        filter: None,
        forward: true,
        exclusive_start_key: None,
        limit,
        index: Some(index.to_owned()),
        fetch_items: false,
    }
}

/// Every page of a query, followed through `LastEvaluatedKey`.
fn all_pages(tables: &Tables, mut request: QueryRequest) -> Vec<Item> {
    let mut items = Vec::new();
    loop {
        let page = tables.query("Orders", &request).unwrap();
        items.extend(page.items);
        match page.last_evaluated_key {
            Some(key) => request.exclusive_start_key = Some(key),
            None => return items,
        }
    }
}

fn ats(items: &[Item]) -> Vec<String> {
    items
        .iter()
        .map(|item| match (&item["customer"], &item["at"]) {
            (AttributeValue::S(customer), AttributeValue::N(at)) => format!("{customer}/{at}"),
            _ => panic!("not an order: {item:?}"),
        })
        .collect()
}

#[test]
fn index_entries_follow_puts_updates_deletes_and_transactions_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let tables = Tables::open(dir.path(), Arc::new(SystemClock)).unwrap();
    tables.create_table(orders()).unwrap();
    for (customer, at, status, total) in [
        ("ana", "1", Some("OPEN"), "30"),
        ("ana", "2", Some("OPEN"), "10"),
        ("bo", "1", Some("OPEN"), "20"),
        ("bo", "2", Some("SHIPPED"), "5"),
        ("cy", "1", None, "7"),
    ] {
        tables
            .write(Write::put("Orders", order(customer, at, status, total)))
            .unwrap();
    }
    // The global index: OPEN orders by total, across customers; the order without a status is
    // in no entry of it.
    let open = all_pages(&tables, query("by_status", s("OPEN"), Some(1)));
    assert_eq!(ats(&open), ["ana/2", "bo/1", "ana/1"]);
    assert!(open.iter().all(|item| item.contains_key("note")));
    assert!(open.iter().all(|item| !item.contains_key("secret")));
    let description = tables.describe_table("Orders").unwrap();
    assert_eq!(description.index_counts[0].0, 4);
    assert_eq!(description.index_counts[1].0, 5);

    // An update that changes the index key moves the entry; a delete removes it.
    let actions = crate::expression::Parser::new(
        "SET #s = :s",
        &[("#s".to_owned(), "status".to_owned())]
            .into_iter()
            .collect(),
        &[(":s".to_owned(), s("SHIPPED"))].into_iter().collect(),
    )
    .unwrap()
    .update()
    .unwrap();
    tables
        .write(Write {
            table: "Orders".into(),
            key: order_key("ana", "1"),
            change: Change::Update(actions),
            check: None,
        })
        .unwrap();
    tables
        .write(Write::delete("Orders", order_key("bo", "1")))
        .unwrap();
    tables
        .transact_write(vec![Write::put(
            "Orders",
            order("cy", "1", Some("OPEN"), "8"),
        )])
        .unwrap();
    drop(tables);

    let tables = Tables::open(dir.path(), Arc::new(SystemClock)).unwrap();
    let open = all_pages(&tables, query("by_status", s("OPEN"), None));
    assert_eq!(ats(&open), ["cy/1", "ana/2"]);
    let shipped = all_pages(&tables, query("by_status", s("SHIPPED"), Some(1)));
    assert_eq!(ats(&shipped), ["bo/2", "ana/1"]);
    assert_eq!(
        tables.describe_table("Orders").unwrap().index_counts[0].0,
        4
    );

    // The local index: one customer's orders by total, keys only unless all attributes are
    // asked for, which reads them from the table.
    let mut by_total = query("by_total", s("ana"), None);
    by_total.forward = false;
    let keys_only = all_pages(&tables, by_total.clone());
    assert_eq!(ats(&keys_only), ["ana/1", "ana/2"]);
    assert!(keys_only.iter().all(|item| item.len() == 3));
    by_total.fetch_items = true;
    let whole = all_pages(&tables, by_total);
    assert_eq!(whole[0]["secret"], s("not projected"));
    assert_eq!(whole[0]["status"], s("SHIPPED"));

    // A scan of the index reads every entry once, in index order, also by segments.
    let scan = tables
        .scan(
            "Orders",
            &ScanRequest {
                index: Some("by_status".into()),
                ..ScanRequest::default()
            },
        )
        .unwrap();
    assert_eq!(scan.items.len(), 4);
    let mut segmented = 0;
    for segment in 0..3 {
        segmented += tables
            .scan(
                "Orders",
                &ScanRequest {
                    index: Some("by_status".into()),
                    segment: Some((segment, 3)),
                    ..ScanRequest::default()
                },
            )
            .unwrap()
            .items
            .len();
    }
    assert_eq!(segmented, 4);
}

#[test]
fn writes_with_badly_typed_or_empty_index_keys_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let tables = Tables::open(dir.path(), Arc::new(SystemClock)).unwrap();
    tables.create_table(orders()).unwrap();
    let mut wrong = order("ana", "1", None, "3");
    wrong.insert("status".into(), n("1"));
    let refused = tables.write(Write::put("Orders", wrong)).unwrap_err();
    assert_eq!(
        refused.to_string(),
        "One or more parameter values were invalid: Type mismatch for Index Key status Expected: S Actual: N IndexName: by_status"
    );
    let empty = order("ana", "1", Some(""), "3");
    let refused = tables.write(Write::put("Orders", empty)).unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("IndexName: by_status, IndexKey: status"),
        "{refused}"
    );
    assert!(
        tables
            .get_item("Orders", &order_key("ana", "1"))
            .unwrap()
            .is_none()
    );
    assert_eq!(
        tables.describe_table("Orders").unwrap().index_counts[0],
        (0, 0)
    );
    // An index that does not exist is named in the refusal.
    let unknown = tables
        .query("Orders", &query("by_colour", s("x"), None))
        .unwrap_err();
    assert_eq!(
        unknown.to_string(),
        "The table does not have the specified index: by_colour"
    );
}

#[test]
fn a_global_index_created_on_a_full_table_is_filled_and_a_deleted_one_is_emptied() {
    let dir = tempfile::tempdir().unwrap();
    let tables = Tables::open(dir.path(), Arc::new(SystemClock)).unwrap();
    let mut plain = orders();
    plain.indexes.clear();
    plain.attribute_definitions.truncate(2);
    tables.create_table(plain).unwrap();
    for at in 0..50 {
        let status = if at % 2 == 0 { Some("OPEN") } else { None };
        tables
            .write(Write::put(
                "Orders",
                order("ana", &at.to_string(), status, &(100 - at).to_string()),
            ))
            .unwrap();
    }
    let mut odd = order("bo", "1", None, "1");
    odd.insert("status".into(), n("9"));
    tables.write(Write::put("Orders", odd)).unwrap();
    let mut index = orders().indexes.remove(0);
    index.projection = projection(ProjectionType::All, &[]);
    let description = tables
        .update_indexes(
            "Orders",
            vec![IndexUpdate::Create {
                index: index.clone(),
                attribute_definitions: vec![
                    key("status", ScalarType::S),
                    key("total", ScalarType::N),
                ],
            }],
        )
        .unwrap();
    // Filled from the items that have a string status; the numeric one is left out.
    assert_eq!(
        description.index_counts,
        vec![(25, description.index_counts[0].1)]
    );
    assert_eq!(description.definition.attribute_definitions.len(), 4);
    let open = all_pages(&tables, query("by_status", s("OPEN"), Some(7)));
    assert_eq!(open.len(), 25);
    assert_eq!(open[0]["total"], n("52"));
    assert_eq!(open[0]["secret"], s("not projected"));
    // Writes after the creation keep it in step; it survives reopen.
    tables
        .write(Write::put("Orders", order("cy", "1", Some("OPEN"), "0")))
        .unwrap();
    drop(tables);
    let tables = Tables::open(dir.path(), Arc::new(SystemClock)).unwrap();
    assert_eq!(
        all_pages(&tables, query("by_status", s("OPEN"), None)).len(),
        26
    );
    // Creating it twice, or two at once, is refused.
    let again = tables
        .update_indexes(
            "Orders",
            vec![IndexUpdate::Create {
                index: index.clone(),
                attribute_definitions: Vec::new(),
            }],
        )
        .unwrap_err();
    assert!(again.to_string().contains("already exists"), "{again}");
    let two = tables
        .update_indexes(
            "Orders",
            vec![
                IndexUpdate::Delete("by_status".into()),
                IndexUpdate::Delete("other".into()),
            ],
        )
        .unwrap_err();
    assert!(matches!(two, TablesError::LimitExceeded(_)));

    let description = tables
        .update_indexes("Orders", vec![IndexUpdate::Delete("by_status".into())])
        .unwrap();
    assert!(description.definition.indexes.is_empty());
    assert_eq!(description.definition.attribute_definitions.len(), 2);
    assert!(
        tables
            .query("Orders", &query("by_status", s("OPEN"), None))
            .is_err()
    );
    drop(tables);
    let tables = Tables::open(dir.path(), Arc::new(SystemClock)).unwrap();
    assert!(tables.definition("Orders").unwrap().indexes.is_empty());
}

#[test]
fn a_format_1_database_is_upgraded_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let tables = Tables::open(dir.path(), Arc::new(SystemClock)).unwrap();
    let mut plain = orders();
    plain.indexes.clear();
    plain.attribute_definitions.truncate(2);
    tables.create_table(plain).unwrap();
    tables
        .write(Write::put("Orders", order("ana", "1", None, "3")))
        .unwrap();
    drop(tables);
    {
        let database = redb::Database::create(dir.path().join("tables.redb")).unwrap();
        let write = database.begin_write().unwrap();
        {
            let mut meta = write
                .open_table(redb::TableDefinition::<&str, u64>::new("meta"))
                .unwrap();
            meta.insert("format_version", 1).unwrap();
        }
        write
            .delete_table(redb::TableDefinition::<(u64, &[u8]), &[u8]>::new(
                "index_entries",
            ))
            .unwrap();
        write.commit().unwrap();
    }
    let tables = Tables::open(dir.path(), Arc::new(SystemClock)).unwrap();
    assert!(
        tables
            .get_item("Orders", &order_key("ana", "1"))
            .unwrap()
            .is_some()
    );
    drop(tables);
    let database = redb::Database::create(dir.path().join("tables.redb")).unwrap();
    let read = redb::ReadableDatabase::begin_read(&database).unwrap();
    let meta = read
        .open_table(redb::TableDefinition::<&str, u64>::new("meta"))
        .unwrap();
    assert_eq!(
        meta.get("format_version").unwrap().unwrap().value(),
        FORMAT_VERSION
    );
}

/// Everything a crash must keep of Orders: its items, both indexes' entries, the counts, and
/// the stream's records.
fn observed(tables: &Tables) -> String {
    let scan = |index: Option<&str>| {
        let request = ScanRequest {
            index: index.map(str::to_owned),
            ..ScanRequest::default()
        };
        tables.scan("Orders", &request).unwrap().items
    };
    let description = tables.describe_table("Orders").unwrap();
    let stream = description.definition.stream.as_ref().unwrap().stream_id;
    let records = tables.read_stream(stream, 1, STREAM_READ_MAX).unwrap();
    format!(
        "{:?}\n{:?}\n{:?}\n{} {} {:?}\n{:?}",
        scan(None),
        scan(Some("by_status")),
        scan(Some("by_total")),
        description.item_count,
        description.size_bytes,
        description.index_counts,
        records
    )
}

/// A kill -9 after some writes were acknowledged leaves redb at its last durable commit and the
/// write-ahead log as fsynced (perhaps with a torn record being written): the state is rebuilt
/// here from exactly those two files, and opening it must give back every acknowledged write —
/// items, index entries, counts, stream records — and nothing of the torn one.
#[test]
fn acknowledged_writes_are_applied_again_from_the_log_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let tables = Tables::open(dir.path(), Arc::new(SystemClock)).unwrap();
    tables.create_table(orders()).unwrap();
    tables
        .write(Write::put("Orders", order("ana", "1", Some("OPEN"), "30")))
        .unwrap();
    drop(tables);
    // A clean close checkpoints: the database alone holds everything so far.
    let durable = std::fs::read(dir.path().join("tables.redb")).unwrap();

    let tables = Tables::open(dir.path(), Arc::new(SystemClock)).unwrap();
    tables
        .write_batch(vec![
            Write::put("Orders", order("bo", "1", Some("OPEN"), "20")),
            Write::put("Orders", order("cy", "1", None, "7")),
        ])
        .unwrap();
    let actions = crate::expression::Parser::new(
        "SET #s = :s",
        &[("#s".to_owned(), "status".to_owned())]
            .into_iter()
            .collect(),
        &[(":s".to_owned(), s("SHIPPED"))].into_iter().collect(),
    )
    .unwrap()
    .update()
    .unwrap();
    tables
        .write(Write {
            table: "Orders".into(),
            key: order_key("ana", "1"),
            change: Change::Update(actions),
            check: None,
        })
        .unwrap();
    tables
        .write(Write::delete("Orders", order_key("bo", "1")))
        .unwrap();
    let before_last = observed(&tables);
    let log_before_last = std::fs::read(dir.path().join("tables.wal")).unwrap();
    tables
        .transact_write(vec![
            Write::put("Orders", order("cy", "1", Some("OPEN"), "8")),
            Write::put("Orders", order("dee", "2", Some("OPEN"), "9")),
        ])
        .unwrap();
    let acknowledged = observed(&tables);
    let log = std::fs::read(dir.path().join("tables.wal")).unwrap();
    drop(tables);

    // The last record begins where the log first differs from before it (it was written over
    // the preallocated zeros); torn, only its first bytes reached the disk.
    let last_record = (log.iter().zip(&log_before_last))
        .position(|(now, before)| now != before)
        .unwrap();
    let mut torn = log_before_last.clone();
    torn[last_record..last_record + 20].copy_from_slice(&log[last_record..last_record + 20]);

    for (wal, expected) in [(&log, &acknowledged), (&torn, &before_last)] {
        let crashed = tempfile::tempdir().unwrap();
        std::fs::write(crashed.path().join("tables.redb"), &durable).unwrap();
        std::fs::write(crashed.path().join("tables.wal"), wal).unwrap();
        let tables = Tables::open(crashed.path(), Arc::new(SystemClock)).unwrap();
        assert_eq!(&observed(&tables), expected);
        // Writing on continues the stream's numbering and survives another reopen.
        let description = tables.describe_table("Orders").unwrap();
        let stream = description.definition.stream.unwrap().stream_id;
        let records = tables.read_stream(stream, 1, STREAM_READ_MAX).unwrap();
        let outcome = tables
            .write(Write::put("Orders", order("eve", "3", Some("OPEN"), "1")))
            .unwrap();
        assert_eq!(outcome.sequence, Some(records.len() as u64 + 1));
        let after = observed(&tables);
        drop(tables);
        let tables = Tables::open(crashed.path(), Arc::new(SystemClock)).unwrap();
        assert_eq!(observed(&tables), after);
    }
}
