//! Journal streams end to end inside a node: records in QLDB's order and shapes in a log
//! stream, aggregation, resumption across reopen, end times, cancellation, a missing
//! destination, and deleting a ledger with streams.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ion_rs::Element;
use sluice_log::{IteratorStart, StreamConfig};
use sluice_node::Node;
use sluice_node::journal_streams::{JournalStreamError, JournalStreamRequest, JournalStreamStatus};
use time::OffsetDateTime;

/// Generous bound for a worker to catch up; a healthy run takes milliseconds.
const CATCH_UP_BOUND: Duration = Duration::from_secs(30);

fn request(ledger: &str, destination: &str, aggregation_enabled: bool) -> JournalStreamRequest {
    JournalStreamRequest {
        ledger_name: ledger.to_owned(),
        stream_name: "s".to_owned(),
        role_arn: "arn:aws:iam::000000000000:role/r".to_owned(),
        destination_arn: format!("arn:aws:kinesis:us-east-1:000000000000:stream/{destination}"),
        destination_stream: destination.to_owned(),
        aggregation_enabled,
        inclusive_start_time: OffsetDateTime::UNIX_EPOCH,
        exclusive_end_time: None,
        tags: BTreeMap::new(),
    }
}

fn arn(stream_id: &str) -> String {
    format!("arn:aws:qldb:us-east-1:000000000000:stream/l/{stream_id}")
}

/// Every user record of a one-shard stream, de-aggregated, as (partition key, Ion value).
fn records(node: &Node, stream: &str) -> Vec<(String, Element)> {
    let shard = node.log().stream(stream).unwrap().shard(0).unwrap().clone();
    let mut position = shard.position_for(IteratorStart::TrimHorizon).unwrap();
    let mut out = Vec::new();
    loop {
        let batch = shard.read(position, 1000, 10 << 20).unwrap();
        if batch.records.is_empty() {
            return out;
        }
        for record in batch.records {
            if record.data.starts_with(&sluice_node::kpl::KPL_MAGIC) {
                out.extend(deaggregate(&record.data));
            } else {
                out.push((
                    record.partition_key,
                    Element::read_one(&record.data).unwrap(),
                ));
            }
        }
        position = batch.next_position;
    }
}

fn varint(bytes: &mut &[u8]) -> u64 {
    let mut value = 0u64;
    let mut shift = 0;
    loop {
        let byte = bytes[0];
        *bytes = &bytes[1..];
        value |= u64::from(byte & 0x7F) << shift;
        if byte & 0x80 == 0 {
            return value;
        }
        shift += 7;
    }
}

/// (field number, bytes or varint) of a protobuf message.
fn fields(mut bytes: &[u8]) -> Vec<(u64, Vec<u8>, u64)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let tag = varint(&mut bytes);
        if tag & 7 == 0 {
            out.push((tag >> 3, Vec::new(), varint(&mut bytes)));
        } else {
            let length = varint(&mut bytes) as usize;
            out.push((tag >> 3, bytes[..length].to_vec(), 0));
            bytes = &bytes[length..];
        }
    }
    out
}

fn deaggregate(data: &[u8]) -> Vec<(String, Element)> {
    let message = &data[4..data.len() - 16];
    let top = fields(message);
    let keys: Vec<String> = top
        .iter()
        .filter(|field| field.0 == 1)
        .map(|field| String::from_utf8(field.1.clone()).unwrap())
        .collect();
    top.iter()
        .filter(|field| field.0 == 3)
        .map(|field| {
            let inner = fields(&field.1);
            let key = keys[inner[0].2 as usize].clone();
            (key, Element::read_one(&inner[1].1).unwrap())
        })
        .collect()
}

fn text<'a>(record: &'a Element, path: &[&str]) -> Option<&'a str> {
    let mut value = record;
    for name in path {
        value = value.as_struct()?.get(*name)?;
    }
    value.as_text()
}

fn kinds(records: &[(String, Element)]) -> Vec<String> {
    records
        .iter()
        .map(|(_, record)| {
            let kind = text(record, &["recordType"]).unwrap();
            match text(record, &["payload", "controlRecordType"]) {
                Some(control) => format!("{kind}:{control}"),
                None => kind.to_owned(),
            }
        })
        .collect()
}

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

fn setup(node: &Node, destination: &str) {
    node.log()
        .create_stream(destination, StreamConfig::new(1))
        .unwrap();
    let ledger = node.ledgers().create_ledger("l", false).unwrap();
    ledger.execute("CREATE TABLE T", &[]).unwrap();
}

fn insert(node: &Node, value: i64) {
    let ledger = node.ledgers().ledger("l").unwrap();
    ledger
        .execute(&format!("INSERT INTO T VALUE {{'v': {value}}}"), &[])
        .unwrap();
}

#[test]
fn a_stream_replays_the_journal_then_follows_it_and_resumes_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(dir.path()).unwrap();
    setup(&node, "dest");
    insert(&node, 1);
    let streams = node.journal_streams();
    let stream_id = streams.create(request("l", "dest", false), arn).unwrap();
    // From the past: CREATE TABLE's block (summary only) and the insert's (summary + details).
    wait_for("the replay", || records(&node, "dest").len() == 4);
    insert(&node, 2);
    wait_for("the new block", || records(&node, "dest").len() == 6);
    let seen = records(&node, "dest");
    assert_eq!(
        kinds(&seen),
        [
            "CONTROL:CREATED",
            "BLOCK_SUMMARY",
            "BLOCK_SUMMARY",
            "REVISION_DETAILS",
            "BLOCK_SUMMARY",
            "REVISION_DETAILS"
        ]
    );
    for (key, record) in &seen {
        assert_eq!(
            text(record, &["qldbStreamArn"]),
            Some(arn(&stream_id).as_str())
        );
        if text(record, &["recordType"]) == Some("REVISION_DETAILS") {
            let id = text(record, &["payload", "revision", "metadata", "id"]).unwrap();
            assert_eq!(key, id);
        }
    }
    assert_eq!(key_of(&seen[0]), stream_id);
    let description = streams.describe("l", &stream_id).unwrap();
    assert_eq!(description.status, JournalStreamStatus::Active);
    drop(node);

    // Blocks committed while the node is down are streamed after it opens again, and nothing
    // already appended is appended again after a clean stop.
    let node = Node::open(dir.path()).unwrap();
    insert(&node, 3);
    wait_for("the block after reopen", || {
        records(&node, "dest").len() == 8
    });
    let seen = records(&node, "dest");
    assert_eq!(kinds(&seen)[6..], ["BLOCK_SUMMARY", "REVISION_DETAILS"]);

    // Cancel: CANCELLED at the end, status CANCELED, and a second cancel is refused.
    node.journal_streams().cancel("l", &stream_id).unwrap();
    let seen = records(&node, "dest");
    assert_eq!(kinds(&seen).last().unwrap(), "CONTROL:CANCELLED");
    assert_eq!(
        node.journal_streams()
            .describe("l", &stream_id)
            .unwrap()
            .status,
        JournalStreamStatus::Canceled
    );
    assert!(matches!(
        node.journal_streams().cancel("l", &stream_id),
        Err(JournalStreamError::PreconditionNotMet(_))
    ));
    insert(&node, 4);
    drop(node);
    let node = Node::open(dir.path()).unwrap();
    assert_eq!(
        records(&node, "dest").len(),
        9,
        "a canceled stream stays stopped"
    );
}

fn key_of(record: &(String, Element)) -> String {
    record.0.clone()
}

#[test]
fn an_aggregated_stream_with_an_end_time_completes() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(dir.path()).unwrap();
    setup(&node, "dest");
    for value in 0..3 {
        insert(&node, value);
    }
    let mut request = request("l", "dest", true);
    let ledger = node.ledgers().ledger("l").unwrap();
    // An end time inside the millisecond of the last commit still takes that commit: blocks
    // carry whole milliseconds, and the end is not rounded down to theirs.
    request.exclusive_end_time = Some(ledger.now());
    let stream_id = node.journal_streams().create(request, arn).unwrap();
    wait_for("completion", || {
        node.journal_streams()
            .describe("l", &stream_id)
            .unwrap()
            .status
            == JournalStreamStatus::Completed
    });
    insert(&node, 9);
    let seen = records(&node, "dest");
    assert_eq!(kinds(&seen).first().unwrap(), "CONTROL:CREATED");
    assert_eq!(kinds(&seen).last().unwrap(), "CONTROL:COMPLETED");
    assert_eq!(
        kinds(&seen)
            .iter()
            .filter(|kind| *kind == "REVISION_DETAILS")
            .count(),
        3
    );
    // Aggregated: fewer log records than user records.
    let shard = node.log().stream("dest").unwrap().shard(0).unwrap().clone();
    let position = shard.position_for(IteratorStart::TrimHorizon).unwrap();
    let raw = shard.read(position, 1000, 10 << 20).unwrap().records;
    assert!(raw.len() < seen.len());
    assert!(
        raw.iter()
            .all(|record| record.data.starts_with(&sluice_node::kpl::KPL_MAGIC))
    );
}

#[test]
fn a_missing_destination_impairs_the_stream_until_it_exists() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(dir.path()).unwrap();
    setup(&node, "dest");
    let streams = node.journal_streams();
    assert!(matches!(
        streams.create(request("l", "nowhere", false), arn),
        Err(JournalStreamError::InvalidParameter(_))
    ));
    assert!(matches!(
        streams.create(request("nope", "dest", false), arn),
        Err(JournalStreamError::Ledger(
            sluice_ledger::LedgerError::NotFound(_)
        ))
    ));
    let stream_id = streams.create(request("l", "dest", false), arn).unwrap();
    wait_for("CREATED", || records(&node, "dest").len() == 2);
    node.log().delete_stream("dest").unwrap();
    insert(&node, 1);
    wait_for("impairment", || {
        streams.describe("l", &stream_id).unwrap().status == JournalStreamStatus::Impaired
    });
    assert_eq!(
        streams
            .describe("l", &stream_id)
            .unwrap()
            .error_cause
            .as_deref(),
        Some("KINESIS_STREAM_NOT_FOUND")
    );
    node.log()
        .create_stream("dest", StreamConfig::new(1))
        .unwrap();
    wait_for("recovery", || {
        streams.describe("l", &stream_id).unwrap().status == JournalStreamStatus::Active
    });
    // The block committed while the destination was missing is there, after it came back.
    assert_eq!(
        kinds(&records(&node, "dest")),
        ["BLOCK_SUMMARY", "REVISION_DETAILS"]
    );

    // A ledger with an active stream is not deleted; once the stream is canceled it is.
    assert!(matches!(
        streams.delete_ledger("l"),
        Err(JournalStreamError::InUse(_))
    ));
    streams.cancel("l", &stream_id).unwrap();
    streams.delete_ledger("l").unwrap();
    assert!(matches!(
        streams.describe("l", &stream_id),
        Err(JournalStreamError::NotFound(_))
    ));
}

#[test]
fn stream_names_are_unique_among_active_streams_and_bounded_per_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(dir.path()).unwrap();
    setup(&node, "dest");
    let streams = node.journal_streams();
    let first = streams.create(request("l", "dest", false), arn).unwrap();
    assert!(matches!(
        streams.create(request("l", "dest", false), arn),
        Err(JournalStreamError::InvalidParameter(_))
    ));
    for index in 1..sluice_node::journal_streams::ACTIVE_STREAMS_PER_LEDGER_MAX {
        let mut request = request("l", "dest", false);
        request.stream_name = format!("s{index}");
        streams.create(request, arn).unwrap();
    }
    let mut one_more = request("l", "dest", false);
    one_more.stream_name = "extra".to_owned();
    assert!(matches!(
        streams.create(one_more.clone(), arn),
        Err(JournalStreamError::LimitExceeded(_))
    ));
    streams.cancel("l", &first).unwrap();
    streams.create(one_more, arn).unwrap();
    let listed = streams.list("l").unwrap();
    assert_eq!(listed.len(), 6);
    // In creation order (streams created in the same millisecond by id).
    assert!(
        listed
            .iter()
            .any(|stream| stream.definition.stream_id == first)
    );
    assert!(listed.windows(2).all(|pair| {
        let (a, b) = (&pair[0].definition, &pair[1].definition);
        (a.creation_time_ms, &a.stream_id) <= (b.creation_time_ms, &b.stream_id)
    }));
    let mut future = request("l", "dest", false);
    future.stream_name = "future".to_owned();
    future.inclusive_start_time = OffsetDateTime::now_utc() + time::Duration::hours(1);
    assert!(matches!(
        streams.create(future, arn),
        Err(JournalStreamError::InvalidParameter(_))
    ));
}

#[test]
fn a_catalog_written_in_format_1_is_read_and_its_stream_resumes_from_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(dir.path()).unwrap();
    setup(&node, "dest");
    insert(&node, 1);
    insert(&node, 2);
    drop(node);
    // Written by hand as the format says: the stream already sent CREATED and blocks 0 and 1
    // (CREATE TABLE and the first insert), so it resumes at block 2.
    let directory = dir.path().join("journal-streams");
    std::fs::write(
        directory.join("catalog.json"),
        r#"{"format_version": 1, "journal_streams": [{
            "ledger_name": "l", "stream_id": "AAAAAAAAAAAAAAAAAAAAAA", "stream_name": "s",
            "arn": "arn:aws:qldb:us-east-1:000000000000:stream/l/AAAAAAAAAAAAAAAAAAAAAA",
            "role_arn": "arn:aws:iam::000000000000:role/r",
            "destination_arn": "arn:aws:kinesis:us-east-1:000000000000:stream/dest",
            "destination_stream": "dest", "aggregation_enabled": false,
            "creation_time_ms": 0, "inclusive_start_time_ms": 0, "exclusive_end_time_ms": null,
            "tags": {}, "status": "ACTIVE", "error_cause": null}]}"#,
    )
    .unwrap();
    std::fs::write(
        directory.join("AAAAAAAAAAAAAAAAAAAAAA.position"),
        r#"{"format_version": 1, "created_sent": true, "next_sequence_no": 2}"#,
    )
    .unwrap();
    std::fs::write(directory.join("orphan.position"), "{}").unwrap();
    let node = Node::open(dir.path()).unwrap();
    wait_for("the resumed block", || records(&node, "dest").len() == 2);
    let seen = records(&node, "dest");
    assert_eq!(kinds(&seen), ["BLOCK_SUMMARY", "REVISION_DETAILS"]);
    let data = seen[1]
        .1
        .as_struct()
        .and_then(|record| {
            record
                .get("payload")?
                .as_struct()?
                .get("revision")?
                .as_struct()
        })
        .and_then(|revision| revision.get("data"))
        .cloned();
    assert_eq!(
        data,
        Some(Element::read_one("{v: 2}").unwrap()),
        "the second insert's block"
    );
    assert!(
        !directory.join("orphan.position").exists(),
        "a position no stream names is removed at open"
    );
    drop(node);

    // A catalog of a later format is refused rather than misread.
    std::fs::write(
        directory.join("catalog.json"),
        r#"{"format_version": 2, "journal_streams": []}"#,
    )
    .unwrap();
    assert!(Node::open(dir.path()).is_err());
}
