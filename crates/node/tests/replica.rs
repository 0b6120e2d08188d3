//! Ledger replicas: a workload of inserts, updates and deletes across three tables replayed
//! into a target ledger, with blocks delivered duplicated and shuffled and the node reopened in
//! the middle; afterwards every table's data equal the source's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ion_rs::Element;
use sluice_ledger::Ledger;
use sluice_log::{AppendRecord, StreamConfig};
use sluice_node::kpl::Aggregator;
use sluice_node::replica::{self, Applied, ReplicaBlock};
use sluice_node::replica_assembler::{BlockAssembler, SETTLING_WINDOW_DEFAULT};
use sluice_node::{Node, NodeOptions, ReplicaConfig};

const TABLES: [&str; 3] = ["Vehicle", "Person", "Registration"];

fn run(ledger: &Arc<Ledger>, statements: &[(&str, Vec<Element>)]) {
    let mut transaction = ledger.begin().unwrap();
    for (statement, parameters) in statements {
        transaction.execute(statement, parameters).unwrap();
    }
    transaction.commit().unwrap();
}

fn parse(text: &str) -> Element {
    Element::read_one(text.as_bytes()).unwrap()
}

/// Every document's data of `table`, in Ion text, sorted: what "equal data" compares.
fn table_data(ledger: &Arc<Ledger>, table: &str) -> Vec<String> {
    let mut transaction = ledger.begin().unwrap();
    let mut rows: Vec<String> = transaction
        .execute(&format!("SELECT * FROM {table}"), &[])
        .unwrap()
        .iter()
        .map(|row| sluice_ledger::model::encode_text(row).unwrap())
        .collect();
    transaction.abort();
    rows.sort();
    rows
}

/// A deterministic shuffle (a linear congruential generator), so a failure repeats.
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for index in (1..items.len()).rev() {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let other = (seed >> 33) as usize % (index + 1);
        items.swap(index, other);
    }
}

/// The first workload: tables, inserts (with parameters), an update and a delete by id.
fn first_half(source: &Arc<Ledger>) {
    for table in TABLES {
        run(source, &[(&format!("CREATE TABLE {table}"), vec![])]);
    }
    run(source, &[("CREATE INDEX ON Vehicle (VIN)", vec![])]);
    for n in 0..20 {
        run(
            source,
            &[
                (
                    "INSERT INTO Vehicle ?",
                    vec![parse(&format!(
                        "{{VIN: \"V{n}\", Make: \"Tesla\", Year: {}, Price: 1{n}.50d0}}",
                        2000 + n
                    ))],
                ),
                (
                    "INSERT INTO Person ?",
                    vec![parse(&format!(
                        "{{PersonId: \"P{n}\", Name: \"name {n}\", Born: 2000-01-0{}T, Tags: [a, \"b\"]}}",
                        n % 9 + 1
                    ))],
                ),
            ],
        );
    }
    run(
        source,
        &[(
            "INSERT INTO Registration << {'VIN': 'V1', 'Owner': 'P1'}, {'VIN': 'V2', 'Owner': 'P2'} >>",
            vec![],
        )],
    );
    run(
        source,
        &[(
            "UPDATE Vehicle AS v SET v.Price = 99 WHERE v.VIN = ?",
            vec![Element::string("V3")],
        )],
    );
    // A statement that names a source document id: the replica must not need it.
    let mut transaction = source.begin().unwrap();
    let rows = transaction
        .execute("SELECT id FROM Person BY id WHERE PersonId = 'P4'", &[])
        .unwrap();
    let id = rows[0].as_struct().unwrap().get("id").unwrap().clone();
    transaction
        .execute("DELETE FROM Person BY pid WHERE pid = ?", &[id])
        .unwrap();
    transaction.commit().unwrap();
}

/// The second workload: updates that remove fields, deletes, an insert updated in the same
/// transaction, and a document deleted then inserted again with the same data.
fn second_half(source: &Arc<Ledger>) {
    run(
        source,
        &[(
            "UPDATE Person AS p REMOVE p.Tags WHERE p.PersonId IN ('P5', 'P6')",
            vec![],
        )],
    );
    run(
        source,
        &[("DELETE FROM Vehicle AS v WHERE v.Year < 2005", vec![])],
    );
    run(
        source,
        &[
            (
                "INSERT INTO Registration {'VIN': 'V9', 'Owner': 'P9'}",
                vec![],
            ),
            (
                "UPDATE Registration AS r SET r.Owner = 'P10' WHERE r.VIN = 'V9'",
                vec![],
            ),
        ],
    );
    run(
        source,
        &[("DELETE FROM Registration AS r WHERE r.VIN = 'V1'", vec![])],
    );
    run(
        source,
        &[(
            "INSERT INTO Registration {'VIN': 'V1', 'Owner': 'P1'}",
            vec![],
        )],
    );
    run(
        source,
        &[(
            "UPDATE Vehicle AS v SET v.Extra = {'a': [1, 2.5e0, null]} WHERE v.VIN = 'V10'",
            vec![],
        )],
    );
}

/// Delivers `blocks` (shuffled, each twice) until every one is applied; returns how many
/// deliveries were applied, skipped as duplicates, and told to wait.
fn deliver(target: &Arc<Ledger>, blocks: &[ReplicaBlock], seed: u64) -> (usize, usize, usize) {
    let mut pending: Vec<ReplicaBlock> = blocks.iter().chain(blocks).cloned().collect();
    let (mut applied, mut duplicates, mut waited) = (0, 0, 0);
    let mut round = 0;
    while !pending.is_empty() {
        round += 1;
        assert!(round <= blocks.len() + 1, "delivery did not converge");
        shuffle(&mut pending, seed + round as u64);
        let mut again = Vec::new();
        for block in pending {
            match replica::apply_block(target, "Source", &block).unwrap() {
                Applied::Applied => applied += 1,
                Applied::AlreadyApplied => duplicates += 1,
                Applied::Waiting { next_sequence_no } => {
                    assert!(next_sequence_no < block.sequence_no);
                    waited += 1;
                    again.push(block);
                }
            }
        }
        pending = again;
    }
    (applied, duplicates, waited)
}

fn blocks_from(source: &Arc<Ledger>, first: u64) -> Vec<ReplicaBlock> {
    source
        .committed_blocks(first, usize::MAX)
        .unwrap()
        .iter()
        .map(|block| ReplicaBlock::from_block(&block.block).unwrap())
        .collect()
}

#[test]
fn a_replica_holds_the_sources_data_after_shuffled_duplicated_blocks_and_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let first_blocks;
    {
        let node = Node::open(dir.path()).unwrap();
        let source = node.ledgers().create_ledger("Source", false).unwrap();
        let target = node.ledgers().create_ledger("Target", false).unwrap();
        first_half(&source);
        first_blocks = blocks_from(&source, 0);
        let (applied, duplicates, _) = deliver(&target, &first_blocks, 7);
        assert_eq!(applied, first_blocks.len());
        assert_eq!(duplicates, first_blocks.len());
        second_half(&source);
        node.shutdown();
    }
    // Reopened: the position survived with the data, so the first half's blocks delivered
    // again are all recognised as applied.
    let node = Node::open(dir.path()).unwrap();
    let source = node.ledgers().ledger("Source").unwrap();
    let target = node.ledgers().ledger("Target").unwrap();
    let next = replica::position(&target, "Source").unwrap().unwrap().1;
    assert_eq!(next, first_blocks.len() as u64);
    let all_blocks = blocks_from(&source, 0);
    let (applied, _, _) = deliver(&target, &all_blocks, 11);
    assert_eq!(applied, all_blocks.len() - first_blocks.len());
    for table in TABLES {
        let source_rows = table_data(&source, table);
        assert!(!source_rows.is_empty(), "{table} is empty in the source");
        assert_eq!(source_rows, table_data(&target, table), "{table} differs");
    }
    // Deleted documents left no id mapping behind.
    let mappings = table_data(&target, replica::REPLICA_IDS_TABLE).len();
    let documents: usize = TABLES
        .iter()
        .map(|table| table_data(&source, table).len())
        .sum();
    assert_eq!(mappings, documents);
    node.shutdown();
}

#[test]
fn a_block_of_another_strand_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(dir.path()).unwrap();
    let source = node.ledgers().create_ledger("Source", false).unwrap();
    let target = node.ledgers().create_ledger("Target", false).unwrap();
    run(&source, &[("CREATE TABLE T", vec![])]);
    let mut blocks = blocks_from(&source, 0);
    assert_eq!(
        replica::apply_block(&target, "Source", &blocks[0]).unwrap(),
        Applied::Applied
    );
    blocks[0].strand_id = "another".to_owned();
    blocks[0].sequence_no = 1;
    let error = replica::apply_block(&target, "Source", &blocks[0]).unwrap_err();
    assert!(error.to_string().contains("strand"), "{error}");
    node.shutdown();
}

fn in_process(source: &str, target: &str) -> ReplicaConfig {
    ReplicaConfig {
        source: source.to_owned(),
        target: target.to_owned(),
        stream: None,
        endpoint: None,
        settling_window_ms: None,
    }
}

fn replica_options() -> NodeOptions {
    NodeOptions {
        ledger_replicas: vec![in_process("Source", "Copy")],
        ..NodeOptions::default()
    }
}

/// Generous bound for the worker to catch up; a healthy run takes milliseconds.
const CATCH_UP_BOUND: Duration = Duration::from_secs(30);

fn wait_for_no_lag(node: &Node) {
    let started = Instant::now();
    loop {
        let snapshot = node.replicas().snapshot();
        let lag = snapshot
            .lag_blocks
            .get(&("Source".to_owned(), "Copy".to_owned()))
            .copied();
        if lag == Some(0) {
            return;
        }
        assert!(
            started.elapsed() < CATCH_UP_BOUND,
            "the replica did not catch up: {snapshot:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_configured_replica_follows_its_source_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let node = Node::open_with(dir.path(), replica_options()).unwrap();
        let source = node.ledgers().create_ledger("Source", false).unwrap();
        first_half(&source);
        wait_for_no_lag(&node);
        assert!(node.replicas().snapshot().applied_blocks > 0);
        second_half(&source);
        node.shutdown();
    }
    let node = Node::open_with(dir.path(), replica_options()).unwrap();
    wait_for_no_lag(&node);
    let source = node.ledgers().ledger("Source").unwrap();
    let copy = node.ledgers().ledger("Copy").unwrap();
    for table in TABLES {
        assert_eq!(
            table_data(&source, table),
            table_data(&copy, table),
            "{table} differs"
        );
    }
    node.shutdown();
}

#[test]
fn a_replica_of_itself_or_of_an_endpoint_without_a_stream_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    for (source, target, endpoint) in [
        ("A", "A", None),
        ("A", "B", Some("http://127.0.0.1:1".to_owned())),
    ] {
        let options = NodeOptions {
            ledger_replicas: vec![ReplicaConfig {
                endpoint,
                ..in_process(source, target)
            }],
            ..NodeOptions::default()
        };
        let Err(error) = Node::open_with(dir.path(), options) else {
            panic!("{source} -> {target} was accepted");
        };
        assert!(error.to_string().contains("ledger_replicas"), "{error}");
    }
}

/// The journal stream's records of every block, duplicated and shuffled, assembled back into
/// blocks and applied in order: the replica equals the source.
#[test]
fn shuffled_duplicated_stream_records_assemble_into_an_equal_replica() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(dir.path()).unwrap();
    let source = node.ledgers().create_ledger("Source", false).unwrap();
    let target = node.ledgers().create_ledger("Target", false).unwrap();
    first_half(&source);
    second_half(&source);
    let mut records = source.stream_records("arn:stream", 0, None).unwrap();
    records.extend(records.clone());
    shuffle(&mut records, 3);
    let mut assembler = BlockAssembler::new(0, SETTLING_WINDOW_DEFAULT);
    let now = Instant::now();
    let mut applied = 0;
    // Fed in slices, as a consumer reads pages of records, applying whatever is whole.
    for page in records.chunks(7) {
        for record in page {
            assembler.add(record).unwrap();
        }
        while let Some(block) = assembler.next_block(now).unwrap() {
            assert_eq!(
                replica::apply_block(&target, "Source", &block).unwrap(),
                Applied::Applied
            );
            applied += 1;
        }
    }
    assert_eq!(applied, source.committed_block_count().unwrap());
    for table in TABLES {
        assert_eq!(
            table_data(&source, table),
            table_data(&target, table),
            "{table} differs"
        );
    }
    node.shutdown();
}

/// The sequence number of the block a stream record belongs to.
fn block_of(record: &Element) -> i64 {
    let payload = record.as_struct().unwrap().get("payload").unwrap();
    let payload = payload.as_struct().unwrap();
    let address = match payload.get("revision") {
        Some(revision) => revision.as_struct().unwrap().get("blockAddress").unwrap(),
        None => payload.get("blockAddress").unwrap(),
    };
    address
        .as_struct()
        .unwrap()
        .get("sequenceNo")
        .unwrap()
        .as_i64()
        .unwrap()
}

#[test]
fn a_missing_block_waits_then_is_reported_never_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(dir.path()).unwrap();
    let source = node.ledgers().create_ledger("Source", false).unwrap();
    run(&source, &[("CREATE TABLE T", vec![])]);
    run(&source, &[("INSERT INTO T {'a': 1}", vec![])]);
    run(&source, &[("INSERT INTO T {'a': 2}", vec![])]);
    let records = source.stream_records("arn:stream", 0, None).unwrap();
    let window = Duration::from_secs(120);
    let mut assembler = BlockAssembler::new(0, window);
    let started = Instant::now();
    // Block 0 whole, block 1 lost, block 2 whole.
    for record in &records {
        if block_of(record) != 1 {
            assembler.add(record).unwrap();
        }
    }
    assert_eq!(
        assembler.next_block(started).unwrap().unwrap().sequence_no,
        0
    );
    assert!(assembler.next_block(started).unwrap().is_none());
    assert!(assembler.next_block(started + window).unwrap().is_none());
    let error = assembler
        .next_block(started + window + Duration::from_secs(1))
        .unwrap_err();
    assert!(
        error.to_string().contains("block 1 is still missing"),
        "{error}"
    );
    // The lost block arrives: both are released, in order.
    for record in &records {
        assembler.add(record).unwrap();
    }
    let later = started + window * 2;
    assert_eq!(assembler.next_block(later).unwrap().unwrap().sequence_no, 1);
    assert_eq!(assembler.next_block(later).unwrap().unwrap().sequence_no, 2);
    assert!(assembler.next_block(later).unwrap().is_none());
    node.shutdown();
}

/// The journal stream's records of `source` from block `first`, each duplicated, shuffled, and
/// appended to the log stream `stream` (half of them KPL-aggregated, plus a record that is not
/// a journal record at all), as an at-least-once producer might deliver them.
fn deliver_to_stream(node: &Node, source: &Arc<Ledger>, stream: &str, first: u64, seed: u64) {
    let mut records = source.stream_records("arn:stream", first, None).unwrap();
    records.extend(records.clone());
    shuffle(&mut records, seed);
    let destination = node.log().stream(stream).unwrap();
    let encoded: Vec<Vec<u8>> = records
        .iter()
        .map(|record| sluice_ledger::model::encode_binary(record).unwrap())
        .collect();
    let mut aggregator = Aggregator::new();
    for (index, data) in encoded.iter().enumerate() {
        let key = format!("key-{index}");
        if index % 2 == 0 {
            aggregator.add(&key, data);
            if aggregator.len() == 5 {
                let (key, data) = aggregator.finish().unwrap();
                destination.append(&AppendRecord::new(key, data)).unwrap();
            }
        } else {
            destination
                .append(&AppendRecord::new(key, data.clone()))
                .unwrap();
        }
    }
    if let Some((key, data)) = aggregator.finish() {
        destination.append(&AppendRecord::new(key, data)).unwrap();
    }
    destination
        .append(&AppendRecord::new("noise", b"not ion".to_vec()))
        .unwrap();
}

fn stream_options() -> NodeOptions {
    NodeOptions {
        ledger_replicas: vec![ReplicaConfig {
            stream: Some("journal".to_owned()),
            ..in_process("Source", "Copy")
        }],
        ..NodeOptions::default()
    }
}

fn assert_tables_equal(node: &Node) {
    let source = node.ledgers().ledger("Source").unwrap();
    let copy = node.ledgers().ledger("Copy").unwrap();
    for table in TABLES {
        let source_rows = table_data(&source, table);
        assert!(!source_rows.is_empty(), "{table} is empty in the source");
        assert_eq!(source_rows, table_data(&copy, table), "{table} differs");
    }
}

/// A replica fed by a stream of the node's own log, whose records arrive duplicated, shuffled,
/// partly aggregated and across two shards, follows its source across a reopen.
#[test]
fn a_stream_fed_replica_follows_shuffled_duplicated_records_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first_count;
    {
        let node = Node::open_with(dir.path(), stream_options()).unwrap();
        node.log()
            .create_stream("journal", StreamConfig::new(2))
            .unwrap();
        let source = node.ledgers().create_ledger("Source", false).unwrap();
        first_half(&source);
        deliver_to_stream(&node, &source, "journal", 0, 5);
        wait_for_no_lag(&node);
        first_count = source.committed_block_count().unwrap();
        second_half(&source);
        node.shutdown();
    }
    // Reopened: the stream is read again from its start; the first half is skipped as applied.
    let node = Node::open_with(dir.path(), stream_options()).unwrap();
    let source = node.ledgers().ledger("Source").unwrap();
    let copy = node.ledgers().ledger("Copy").unwrap();
    assert_eq!(
        replica::position(&copy, "Source").unwrap().unwrap().1,
        first_count
    );
    deliver_to_stream(&node, &source, "journal", first_count, 9);
    wait_for_no_lag(&node);
    assert_tables_equal(&node);
    assert_eq!(
        node.replicas().snapshot().applied_blocks,
        source.committed_block_count().unwrap() - first_count
    );
    node.shutdown();
}

/// A replica declared at run time is kept in the data directory and resumes after a reopen;
/// declaring it again changes nothing, another source for its target is refused.
#[test]
fn a_declared_replica_is_kept_and_resumes_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let declared = ReplicaConfig {
        stream: Some("journal".to_owned()),
        settling_window_ms: Some(5_000),
        ..in_process("Source", "Copy")
    };
    {
        let node = Node::open(dir.path()).unwrap();
        node.log()
            .create_stream("journal", StreamConfig::new(1))
            .unwrap();
        let source = node.ledgers().create_ledger("Source", false).unwrap();
        first_half(&source);
        node.replicas().declare(declared.clone()).unwrap();
        node.replicas().declare(declared.clone()).unwrap();
        let error = node
            .replicas()
            .declare(in_process("Other", "Copy"))
            .unwrap_err();
        assert!(
            error.to_string().contains("already the replica of Source"),
            "{error}"
        );
        deliver_to_stream(&node, &source, "journal", 0, 1);
        wait_for_no_lag(&node);
        node.shutdown();
    }
    let node = Node::open(dir.path()).unwrap();
    let description = node.replicas().describe("Copy").unwrap();
    assert_eq!(description.config, declared);
    assert!(!description.configured);
    let source = node.ledgers().ledger("Source").unwrap();
    let first_count = source.committed_block_count().unwrap();
    second_half(&source);
    deliver_to_stream(&node, &source, "journal", first_count, 2);
    wait_for_no_lag(&node);
    assert_tables_equal(&node);
    node.shutdown();
}
