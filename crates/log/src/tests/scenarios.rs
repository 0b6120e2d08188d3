//! Scenario tests: iterator types, retention by age and size, checkpoints, poisoning after a
//! failed fsync, torn tails and mid-segment corruption, group commit under concurrent appenders,
//! and the catalog across reopen.

use std::{
    collections::HashMap,
    fs::{self, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
    sync::{Arc, atomic::Ordering},
};

use super::{START_TIME_MS, TestLog, last_segment_path, read_to_end};
use crate::{
    AppendRecord, IteratorStart, LogError, SequenceNumber, StreamConfig, format::encode_frame,
    partition_key_hash,
};

fn record(key: &str, data: &str) -> AppendRecord {
    AppendRecord::new(key, data.as_bytes().to_vec())
}

#[test]
fn iterator_types_resolve_to_the_right_records() {
    // Small segments so that timestamps and sequence numbers cross segment boundaries.
    let test_log = TestLog::new(300);
    let stream = test_log
        .log()
        .create_stream("events", StreamConfig::new(1))
        .unwrap();
    let shard = stream.shard(0).unwrap().clone();
    let mut appended = Vec::new();
    for (time_offset_ms, data) in [
        (0, "a"),
        (0, "b"),
        (1000, "c"),
        (2000, "d"),
        (2000, "e"),
        (5000, "f"),
    ] {
        test_log.clock.set_ms(START_TIME_MS + time_offset_ms);
        appended.push(
            stream
                .append(&record("k", &format!("{data}{}", "-".repeat(60))))
                .unwrap(),
        );
    }
    assert!(
        shard.describe().segment_count > 1,
        "the test needs several segments"
    );
    let offset_of = |start| shard.position_for(start).unwrap().next_record_offset;
    assert_eq!(offset_of(IteratorStart::TrimHorizon), 0);
    assert_eq!(offset_of(IteratorStart::Latest), 6);
    assert_eq!(
        offset_of(IteratorStart::AtSequenceNumber(appended[2].sequence_number)),
        2
    );
    assert_eq!(
        offset_of(IteratorStart::AfterSequenceNumber(
            appended[2].sequence_number
        )),
        3
    );
    assert_eq!(
        offset_of(IteratorStart::AfterSequenceNumber(
            appended[5].sequence_number
        )),
        6
    );
    assert_eq!(offset_of(IteratorStart::AtTimestamp(0)), 0);
    assert_eq!(offset_of(IteratorStart::AtTimestamp(START_TIME_MS)), 0);
    assert_eq!(offset_of(IteratorStart::AtTimestamp(START_TIME_MS + 1)), 2);
    assert_eq!(
        offset_of(IteratorStart::AtTimestamp(START_TIME_MS + 1500)),
        3
    );
    assert_eq!(
        offset_of(IteratorStart::AtTimestamp(START_TIME_MS + 2000)),
        3
    );
    assert_eq!(
        offset_of(IteratorStart::AtTimestamp(START_TIME_MS + 5000)),
        5
    );
    assert_eq!(
        offset_of(IteratorStart::AtTimestamp(START_TIME_MS + 5001)),
        6
    );

    // Sequence numbers of another shard or of records not yet written are refused.
    let other_shard = SequenceNumber::from_shard_offset(1, 0);
    assert!(matches!(
        shard.position_for(IteratorStart::AtSequenceNumber(other_shard)),
        Err(LogError::SequenceNumberNotInShard { .. })
    ));
    let future = SequenceNumber::from_shard_offset(0, 6);
    assert!(
        shard
            .position_for(IteratorStart::AtSequenceNumber(future))
            .is_err()
    );
    assert!(
        shard
            .position_for(IteratorStart::AfterSequenceNumber(future))
            .is_err()
    );

    // Reading in small pages reports how far behind the tip the reader is.
    test_log.clock.set_ms(START_TIME_MS + 10_000);
    let start = shard
        .position_for(IteratorStart::AtSequenceNumber(appended[1].sequence_number))
        .unwrap();
    let batch = shard.read(start, 2, 1024).unwrap();
    let data: Vec<&[u8]> = batch
        .records
        .iter()
        .map(|record| &record.data[..1])
        .collect();
    assert_eq!(data, [b"b", b"c"]);
    assert_eq!(batch.millis_behind_latest, 9_000);
    let rest = shard.read(batch.next_position, 100, 1024 * 1024).unwrap();
    assert_eq!(rest.records.len(), 3);
    assert_eq!(rest.millis_behind_latest, 0);
    // A byte cap still returns one record, then stops.
    let capped = shard.read(start, 100, 1).unwrap();
    assert_eq!(capped.records.len(), 1);

    // LATEST sees only what is appended afterwards.
    let latest = shard.position_for(IteratorStart::Latest).unwrap();
    assert!(shard.read(latest, 10, 1024).unwrap().records.is_empty());
    stream.append(&record("k", "g")).unwrap();
    let after = shard.read(latest, 10, 1024).unwrap();
    assert_eq!(after.records.len(), 1);
    assert_eq!(after.records[0].data, b"g");
    assert_eq!(
        after.records[0].sequence_number,
        SequenceNumber::from_shard_offset(0, 6)
    );

    // The same after a reopen, where sealed segments are indexed lazily.
    let mut test_log = test_log;
    test_log.reopen().unwrap();
    let shard = test_log
        .log()
        .stream("events")
        .unwrap()
        .shard(0)
        .unwrap()
        .clone();
    assert_eq!(
        shard
            .position_for(IteratorStart::AtTimestamp(START_TIME_MS + 1500))
            .unwrap()
            .next_record_offset,
        3
    );
    let all = read_to_end(
        &shard,
        shard.position_for(IteratorStart::TrimHorizon).unwrap(),
        3,
    );
    assert_eq!(all.len(), 7);
}

#[test]
fn records_route_by_md5_of_partition_key_or_explicit_hash_key() {
    let test_log = TestLog::new(1 << 20);
    let stream = test_log
        .log()
        .create_stream("routed", StreamConfig::new(4))
        .unwrap();
    // md5("a") starts with 0x0c: shard 0 of 4; md5("") starts with 0xd4 but "" is not a valid key,
    // so use explicit hash keys for the other quarters.
    assert_eq!(stream.shard_index_for("a", None), 0);
    assert_eq!(stream.append(&record("a", "x")).unwrap().shard_index, 0);
    let mut explicit = record("a", "y");
    explicit.explicit_hash_key = Some(u128::MAX);
    assert_eq!(stream.append(&explicit).unwrap().shard_index, 3);
    let expected = (partition_key_hash("orders-17") >> 126) as u32;
    assert_eq!(stream.shard_index_for("orders-17", None), expected);
    let read = stream
        .shard(3)
        .unwrap()
        .read(
            crate::ShardPosition {
                shard_index: 3,
                next_record_offset: 0,
            },
            10,
            1024,
        )
        .unwrap();
    assert_eq!(read.records[0].explicit_hash_key, Some(u128::MAX));
    assert_eq!(read.records[0].sequence_number.shard_index(), 3);
}

#[test]
fn retention_by_age_deletes_whole_expired_segments_only() {
    let mut test_log = TestLog::new(256);
    let config = StreamConfig {
        retention_period_ms: 10_000,
        ..StreamConfig::new(1)
    };
    let stream = test_log.log().create_stream("aging", config).unwrap();
    for index in 0..40u64 {
        test_log.clock.set_ms(START_TIME_MS + index * 1000);
        stream
            .append(&record(
                "k",
                &format!("record-{index:03}-{}", "x".repeat(40)),
            ))
            .unwrap();
    }
    let shard = stream.shard(0).unwrap().clone();
    let before = shard.describe();
    assert!(before.segment_count > 5);
    // Nothing is old enough yet at the time of the first record plus the retention period.
    assert_eq!(
        shard
            .enforce_retention(START_TIME_MS + 10_000, config.retention_policy())
            .unwrap()
            .segments_deleted,
        0
    );
    let now_ms = START_TIME_MS + 39_000;
    test_log.clock.set_ms(now_ms);
    let outcome = test_log.log().enforce_retention().unwrap();
    assert!(outcome.segments_deleted > 0);
    let after = shard.describe();
    assert_eq!(
        after.segment_count as u64,
        before.segment_count as u64 - outcome.segments_deleted
    );
    assert_eq!(after.next_sequence_number, before.next_sequence_number);
    let remaining = read_to_end(
        &shard,
        shard.position_for(IteratorStart::TrimHorizon).unwrap(),
        7,
    );
    let first_kept = remaining[0].sequence_number.record_offset();
    assert_eq!(
        after.trim_horizon_sequence_number.record_offset(),
        first_kept
    );
    // Every record still within the retention period is kept; records are contiguous up to the tip.
    assert!(remaining[0].arrival_time_ms <= now_ms - 10_000);
    assert_eq!(remaining.len() as u64, 40 - first_kept);
    // A position before the trim horizon reads from the horizon.
    let from_zero = shard
        .read(
            crate::ShardPosition {
                shard_index: 0,
                next_record_offset: 0,
            },
            1,
            1024,
        )
        .unwrap();
    assert_eq!(
        from_zero.records[0].sequence_number.record_offset(),
        first_kept
    );
    // Far in the future everything but the active segment goes, and the log reopens and appends on.
    test_log.clock.set_ms(now_ms + 1_000_000);
    test_log.log().enforce_retention().unwrap();
    assert_eq!(shard.describe().segment_count, 1);
    drop((stream, shard));
    test_log.reopen().unwrap();
    let stream = test_log.log().stream("aging").unwrap();
    let appended = stream.append(&record("k", "after")).unwrap();
    assert_eq!(appended.sequence_number.record_offset(), 40);
}

#[test]
fn retention_by_size_keeps_the_newest_segments_under_the_limit() {
    let test_log = TestLog::new(512);
    let config = StreamConfig {
        retention_bytes_per_shard_max: Some(2048),
        ..StreamConfig::new(1)
    };
    let stream = test_log.log().create_stream("sized", config).unwrap();
    for index in 0..100 {
        stream
            .append(&record("k", &format!("{index:04}{}", "y".repeat(60))))
            .unwrap();
    }
    let shard = stream.shard(0).unwrap().clone();
    assert!(shard.describe().size_bytes > 2048);
    let outcome = stream
        .enforce_retention(test_log.clock.now_ms_for_tests())
        .unwrap();
    assert!(outcome.segments_deleted > 0);
    let after = shard.describe();
    assert!(after.size_bytes <= 2048, "{after:?}");
    let remaining = read_to_end(
        &shard,
        shard.position_for(IteratorStart::TrimHorizon).unwrap(),
        50,
    );
    assert_eq!(
        remaining.last().unwrap().sequence_number.record_offset(),
        99
    );
    assert_eq!(
        remaining.len() as u64,
        100 - after.trim_horizon_sequence_number.record_offset()
    );
}

impl crate::ManualClock {
    fn now_ms_for_tests(&self) -> u64 {
        crate::Clock::now_ms(self)
    }
}

#[test]
fn checkpoints_survive_reopen_and_a_failed_write_leaves_the_old_one() {
    let mut test_log = TestLog::new(1 << 20);
    let stream = test_log
        .log()
        .create_stream("checked", StreamConfig::new(2))
        .unwrap();
    assert_eq!(stream.read_checkpoint("indexer", 1).unwrap(), None);
    let first = SequenceNumber::from_shard_offset(1, 5);
    stream.write_checkpoint("indexer", 1, first).unwrap();
    assert_eq!(stream.read_checkpoint("indexer", 1).unwrap(), Some(first));
    // A crash between writing the temporary file and renaming it leaves the old checkpoint.
    let directory = test_log.path().join("streams/checked/checkpoints/indexer");
    fs::write(directory.join("shard-000001.ckpt.tmp"), b"half written").unwrap();
    // An fsync failure while writing the temporary file leaves the old checkpoint too.
    test_log.disk.fail_file_syncs.store(true, Ordering::SeqCst);
    assert!(
        stream
            .write_checkpoint("indexer", 1, SequenceNumber::from_shard_offset(1, 9))
            .is_err()
    );
    test_log.disk.fail_file_syncs.store(false, Ordering::SeqCst);
    assert_eq!(stream.read_checkpoint("indexer", 1).unwrap(), Some(first));
    drop(stream);
    test_log.reopen().unwrap();
    let stream = test_log.log().stream("checked").unwrap();
    assert_eq!(stream.read_checkpoint("indexer", 1).unwrap(), Some(first));
    let second = SequenceNumber::from_shard_offset(1, 10);
    stream.write_checkpoint("indexer", 1, second).unwrap();
    assert_eq!(stream.read_checkpoint("indexer", 1).unwrap(), Some(second));
    assert_eq!(stream.read_checkpoint("other", 1).unwrap(), None);
    // Checks: wrong shard, bad consumer name, missing shard.
    assert!(stream.write_checkpoint("indexer", 0, second).is_err());
    assert!(matches!(
        stream.write_checkpoint("../x", 1, second),
        Err(LogError::InvalidName { .. })
    ));
    assert!(matches!(
        stream.read_checkpoint("indexer", 2),
        Err(LogError::ShardNotFound { .. })
    ));
    // A damaged checkpoint is reported, not read as some other number.
    let path = directory.join("shard-000001.ckpt");
    let mut bytes = fs::read(&path).unwrap();
    bytes[25] ^= 0xff;
    fs::write(&path, bytes).unwrap();
    assert!(matches!(
        stream.read_checkpoint("indexer", 1),
        Err(LogError::Corruption { .. })
    ));
}

#[test]
fn a_failed_fsync_poisons_the_shard_until_reopen() {
    let mut test_log = TestLog::new(1 << 20);
    let stream = test_log
        .log()
        .create_stream("fragile", StreamConfig::new(1))
        .unwrap();
    let acknowledged = stream.append(&record("k", "before")).unwrap();
    test_log.disk.fail_file_syncs.store(true, Ordering::SeqCst);
    assert!(matches!(
        stream.append(&record("k", "during")),
        Err(LogError::Io { .. })
    ));
    test_log.disk.fail_file_syncs.store(false, Ordering::SeqCst);
    let shard = stream.shard(0).unwrap().clone();
    assert!(shard.is_poisoned());
    assert!(matches!(
        stream.append(&record("k", "after")),
        Err(LogError::ShardPoisoned { .. })
    ));
    let batch = stream
        .append_batch(&[record("k", "b1"), record("k", "b2")])
        .unwrap();
    assert!(
        batch
            .iter()
            .all(|result| matches!(result, Err(LogError::ShardPoisoned { .. })))
    );
    // Reads still serve what was acknowledged.
    let records = read_to_end(
        &shard,
        shard.position_for(IteratorStart::TrimHorizon).unwrap(),
        10,
    );
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].sequence_number, acknowledged.sequence_number);
    drop((stream, shard));
    test_log.reopen().unwrap();
    let stream = test_log.log().stream("fragile").unwrap();
    let after_reopen = stream.append(&record("k", "after reopen")).unwrap();
    let shard = stream.shard(0).unwrap();
    assert!(!shard.is_poisoned());
    let records = read_to_end(
        shard,
        shard.position_for(IteratorStart::TrimHorizon).unwrap(),
        10,
    );
    // The unacknowledged record may or may not have reached the disk; the acknowledged ones did.
    assert_eq!(records.first().unwrap().data, b"before");
    assert_eq!(
        records.last().unwrap().sequence_number,
        after_reopen.sequence_number
    );
    assert!(records.len() == 2 || records.len() == 3);
}

#[test]
fn a_torn_tail_is_truncated_and_appends_continue() {
    let mut test_log = TestLog::new(1 << 20);
    let stream = test_log
        .log()
        .create_stream("torn", StreamConfig::new(1))
        .unwrap();
    for index in 0..3 {
        stream.append(&record("k", &format!("r{index}"))).unwrap();
    }
    drop(stream);
    test_log.log = None;
    let path = last_segment_path(&test_log.path(), "torn", 0);
    let valid_length = fs::metadata(&path).unwrap().len();
    let mut frame = Vec::new();
    encode_frame(
        &mut frame,
        3,
        START_TIME_MS,
        "k",
        None,
        b"never acknowledged",
        None,
    )
    .unwrap();
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(&frame[..frame.len() - 5]).unwrap();
    drop(file);
    test_log.reopen().unwrap();
    assert_eq!(fs::metadata(&path).unwrap().len(), valid_length);
    let stream = test_log.log().stream("torn").unwrap();
    assert_eq!(
        stream
            .append(&record("k", "r3"))
            .unwrap()
            .sequence_number
            .record_offset(),
        3
    );
    let shard = stream.shard(0).unwrap();
    let records = read_to_end(
        shard,
        shard.position_for(IteratorStart::TrimHorizon).unwrap(),
        10,
    );
    let data: Vec<Vec<u8>> = records.into_iter().map(|record| record.data).collect();
    assert_eq!(
        data,
        [
            b"r0".to_vec(),
            b"r1".to_vec(),
            b"r2".to_vec(),
            b"r3".to_vec()
        ]
    );
}

#[test]
fn corruption_in_the_middle_of_a_segment_is_an_error() {
    let mut test_log = TestLog::new(1 << 20);
    let stream = test_log
        .log()
        .create_stream("rotten", StreamConfig::new(1))
        .unwrap();
    for index in 0..3 {
        stream
            .append(&record("k", &format!("record {index}")))
            .unwrap();
    }
    drop(stream);
    test_log.log = None;
    let path = last_segment_path(&test_log.path(), "rotten", 0);
    let mut bytes = fs::read(&path).unwrap();
    // Flip a data byte of the first frame (header 36 bytes, frame header 8, body fixed part 19).
    bytes[36 + 8 + 19 + 2] ^= 0x01;
    fs::write(&path, &bytes).unwrap();
    match test_log.reopen() {
        Err(LogError::Corruption {
            reason,
            position_bytes,
            ..
        }) => {
            assert_eq!(position_bytes, 36);
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    // The file was left as it was: nothing was truncated.
    assert_eq!(fs::read(&path).unwrap(), bytes);
}

#[test]
fn corruption_in_a_sealed_segment_is_reported_by_reads() {
    let mut test_log = TestLog::new(256);
    let stream = test_log
        .log()
        .create_stream("sealed", StreamConfig::new(1))
        .unwrap();
    for index in 0..20 {
        stream
            .append(&record(
                "k",
                &format!("record {index:02} {}", "z".repeat(40)),
            ))
            .unwrap();
    }
    drop(stream);
    test_log.log = None;
    let first_segment = test_log
        .path()
        .join("streams/sealed/shard-000000/00000000000000000000.seg");
    let mut bytes = fs::read(&first_segment).unwrap();
    bytes[36 + 8 + 19 + 3] ^= 0x40;
    fs::write(&first_segment, &bytes).unwrap();
    test_log.reopen().unwrap();
    let shard = test_log
        .log()
        .stream("sealed")
        .unwrap()
        .shard(0)
        .unwrap()
        .clone();
    let start = shard.position_for(IteratorStart::TrimHorizon).unwrap();
    assert!(matches!(
        shard.read(start, 10, 1024),
        Err(LogError::Corruption { .. })
    ));
    // Records of later segments are still readable.
    let latest_offset = shard.describe().next_sequence_number.record_offset();
    let tail = shard
        .read(
            crate::ShardPosition {
                shard_index: 0,
                next_record_offset: latest_offset - 1,
            },
            10,
            1024,
        )
        .unwrap();
    assert_eq!(tail.records.len(), 1);
}

#[test]
fn a_batch_is_one_write_and_one_fsync() {
    let test_log = TestLog::new(64 << 20);
    let stream = test_log
        .log()
        .create_stream("batched", StreamConfig::new(1))
        .unwrap();
    let records: Vec<AppendRecord> = (0..500)
        .map(|index| record(&format!("key-{index}"), "payload"))
        .collect();
    let syncs_before = test_log.disk.file_syncs.load(Ordering::SeqCst);
    let results = stream.append_batch(&records).unwrap();
    assert_eq!(
        test_log.disk.file_syncs.load(Ordering::SeqCst) - syncs_before,
        1
    );
    let offsets: Vec<u64> = results
        .iter()
        .map(|result| result.as_ref().unwrap().sequence_number.record_offset())
        .collect();
    assert_eq!(offsets, (0..500).collect::<Vec<u64>>());
}

#[test]
fn a_batch_over_several_shards_answers_per_record_in_order() {
    let test_log = TestLog::new(1 << 20);
    let stream = test_log
        .log()
        .create_stream("spread", StreamConfig::new(3))
        .unwrap();
    let records: Vec<AppendRecord> = (0..60)
        .map(|index| record(&format!("key-{index}"), &index.to_string()))
        .collect();
    let results = stream.append_batch(&records).unwrap();
    for (record, result) in records.iter().zip(&results) {
        let appended = result.as_ref().unwrap();
        assert_eq!(
            appended.shard_index,
            stream.shard_index_for(&record.partition_key, None)
        );
        let shard = stream.shard(appended.shard_index).unwrap();
        let position = shard
            .position_for(IteratorStart::AtSequenceNumber(appended.sequence_number))
            .unwrap();
        assert_eq!(
            shard.read(position, 1, 1024).unwrap().records[0].data,
            record.data
        );
    }
}

#[test]
fn concurrent_appenders_share_fsyncs_and_every_record_is_read_once_in_order() {
    let test_log = TestLog::new(4096);
    test_log.disk.sync_delay_ms.store(2, Ordering::SeqCst);
    let stream = test_log
        .log()
        .create_stream("busy", StreamConfig::new(2))
        .unwrap();
    let thread_count = 8;
    let appends_per_thread = 40;
    let syncs_before = test_log.disk.file_syncs.load(Ordering::SeqCst);
    std::thread::scope(|scope| {
        for thread_index in 0..thread_count {
            let stream = Arc::clone(&stream);
            scope.spawn(move || {
                for append_index in 0..appends_per_thread {
                    let key = format!("thread-{thread_index}-key-{}", append_index % 3);
                    let data = format!("{thread_index}:{append_index}");
                    stream.append(&record(&key, &data)).unwrap();
                }
            });
        }
        // A reader runs alongside the appenders and only ever sees whole, ordered records.
        let stream = Arc::clone(&stream);
        scope.spawn(move || {
            let shard = stream.shard(0).unwrap();
            let mut position = shard.position_for(IteratorStart::TrimHorizon).unwrap();
            for _ in 0..50 {
                let batch = shard.read(position, 100, 1 << 20).unwrap();
                for pair in batch.records.windows(2) {
                    assert!(pair[0].sequence_number < pair[1].sequence_number);
                }
                position = batch.next_position;
            }
        });
    });
    let total_appends = thread_count * appends_per_thread;
    let syncs = test_log.disk.file_syncs.load(Ordering::SeqCst) - syncs_before;
    assert!(
        syncs < total_appends,
        "{syncs} fsyncs for {total_appends} appends: no group commit"
    );
    let mut seen: HashMap<String, usize> = HashMap::new();
    for shard in stream.shards() {
        let records = read_to_end(
            shard,
            shard.position_for(IteratorStart::TrimHorizon).unwrap(),
            33,
        );
        let mut last_index_by_thread: HashMap<String, usize> = HashMap::new();
        for (offset, record) in records.iter().enumerate() {
            assert_eq!(record.sequence_number.record_offset(), offset as u64);
            let text = String::from_utf8(record.data.clone()).unwrap();
            let (thread, index) = text.split_once(':').unwrap();
            let index: usize = index.parse().unwrap();
            if let Some(&last) = last_index_by_thread.get(thread) {
                assert!(
                    index > last,
                    "thread {thread} records out of order in a shard"
                );
            }
            last_index_by_thread.insert(thread.to_owned(), index);
            *seen.entry(text).or_default() += 1;
        }
    }
    assert_eq!(seen.len(), total_appends as usize);
    assert!(seen.values().all(|&count| count == 1));
}

#[test]
fn the_catalog_survives_reopen_and_leftover_folders_are_removed() {
    let mut test_log = TestLog::new(1 << 20);
    let log = test_log.log();
    log.create_stream("first", StreamConfig::new(2)).unwrap();
    let config = StreamConfig {
        retention_period_ms: 3_600_000,
        retention_bytes_per_shard_max: Some(1 << 30),
        shard_count: 5,
    };
    log.create_stream("second", config).unwrap();
    log.create_stream("third", StreamConfig::new(1)).unwrap();
    assert!(matches!(
        log.create_stream("second", config),
        Err(LogError::StreamAlreadyExists(_))
    ));
    assert!(log.create_stream("bad/name", config).is_err());
    assert!(log.create_stream("zero", StreamConfig::new(0)).is_err());
    let third = log.stream("third").unwrap();
    log.delete_stream("third").unwrap();
    assert!(matches!(
        third.append(&record("k", "x")),
        Err(LogError::StreamDeleted(_))
    ));
    assert!(matches!(
        log.delete_stream("third"),
        Err(LogError::StreamNotFound(_))
    ));
    drop(third);
    // A folder left by a create that crashed before its catalog entry was written.
    fs::create_dir_all(test_log.path().join("streams/orphan/shard-000000")).unwrap();
    test_log.reopen().unwrap();
    let names: Vec<(String, u32)> = test_log
        .log()
        .list_streams()
        .into_iter()
        .map(|summary| (summary.name, summary.config.shard_count))
        .collect();
    assert_eq!(names, [("first".to_owned(), 2), ("second".to_owned(), 5)]);
    assert_eq!(test_log.log().stream("second").unwrap().config(), config);
    // Retention changes are persisted in the catalog.
    let longer = crate::RetentionPolicy {
        retention_period_ms: 7 * 24 * 3_600_000,
        retention_bytes_per_shard_max: None,
    };
    test_log.log().set_retention("second", longer).unwrap();
    assert!(
        test_log
            .log()
            .set_retention(
                "second",
                crate::RetentionPolicy {
                    retention_period_ms: 0,
                    retention_bytes_per_shard_max: None
                }
            )
            .is_err()
    );
    assert!(test_log.log().set_retention("missing", longer).is_err());
    test_log.reopen().unwrap();
    let second = test_log.log().stream("second").unwrap();
    assert_eq!(second.config().retention_policy(), longer);
    assert_eq!(second.config().shard_count, 5);
    assert!(!test_log.path().join("streams/orphan").exists());
    assert!(!test_log.path().join("streams/third").exists());
    // A second open of the same directory is refused while the first holds it.
    assert!(matches!(
        crate::Log::open(test_log.path(), test_log.options()),
        Err(LogError::DirectoryLocked { .. })
    ));
    // A re-created stream starts empty.
    let again = test_log
        .log()
        .create_stream("third", StreamConfig::new(1))
        .unwrap();
    assert_eq!(
        again
            .append(&record("k", "x"))
            .unwrap()
            .sequence_number
            .record_offset(),
        0
    );
}

fn segment_files(log_directory: &Path, stream: &str, shard_index: u32) -> Vec<PathBuf> {
    let directory = last_segment_path(log_directory, stream, shard_index)
        .parent()
        .unwrap()
        .to_owned();
    let mut paths: Vec<PathBuf> = fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "seg"))
        .collect();
    paths.sort();
    paths
}

fn all_data(test_log: &TestLog, stream: &str) -> Vec<Vec<u8>> {
    let stream = test_log.log().stream(stream).unwrap();
    let shard = stream.shard(0).unwrap();
    let start = shard.position_for(IteratorStart::TrimHorizon).unwrap();
    read_to_end(shard, start, 1000)
        .into_iter()
        .map(|record| record.data)
        .collect()
}

#[test]
fn encrypted_segments_hold_no_plaintext_and_need_their_key() {
    let mut test_log = TestLog::encrypted(1 << 20);
    let stream = test_log
        .log()
        .create_stream("sealed", StreamConfig::new(1))
        .unwrap();
    for index in 0..3 {
        stream
            .append(&record("secret-key", &format!("SECRET-{index}")))
            .unwrap();
    }
    drop(stream);
    test_log.log = None;
    let path = last_segment_path(&test_log.path(), "sealed", 0);
    let bytes = fs::read(&path).unwrap();
    assert!(!bytes.windows(6).any(|w| w == b"SECRET" || w == b"secret"));
    assert_eq!(
        u32::from_le_bytes(bytes[8..12].try_into().unwrap()),
        crate::format::ENCRYPTED_SEGMENT_VERSION
    );
    // A torn sealed frame at the end is cut like any other.
    let key = test_log.segment_key(&path).unwrap();
    let mut frame = Vec::new();
    encode_frame(&mut frame, 3, START_TIME_MS, "k", None, b"torn", Some(&key)).unwrap();
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(&frame[..frame.len() - 3]).unwrap();
    drop(file);
    test_log.reopen().unwrap();
    assert_eq!(fs::metadata(&path).unwrap().len(), bytes.len() as u64);
    assert_eq!(
        all_data(&test_log, "sealed"),
        [
            b"SECRET-0".to_vec(),
            b"SECRET-1".to_vec(),
            b"SECRET-2".to_vec()
        ]
    );
    // Without the keyring the log does not open; with another keyring neither.
    test_log.log = None;
    let keyring = test_log.keyring.take();
    assert!(matches!(
        test_log.reopen(),
        Err(LogError::Encryption { .. })
    ));
    test_log.keyring = Some(Arc::new(super::test_keyring(
        &test_log.path().join("other-keys"),
    )));
    assert!(test_log.reopen().is_err());
    test_log.keyring = keyring;
    test_log.reopen().unwrap();
    // A changed byte inside a sealed frame, its CRC made right again, is corruption: only the
    // seal can tell, and it does.
    test_log.log = None;
    let mut damaged = fs::read(&path).unwrap();
    let start = crate::format::ENCRYPTED_SEGMENT_HEADER_BYTES as usize;
    let (length, _) =
        crate::format::decode_frame_header(damaged[start..start + 8].try_into().unwrap());
    let body = start + 8..start + 8 + length as usize;
    damaged[body.end - 1] ^= 1;
    let crc = crc32fast::hash(&damaged[body.clone()]);
    damaged[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    fs::write(&path, &damaged).unwrap();
    assert!(test_log.reopen().is_err());
}

#[test]
fn a_key_given_later_encrypts_from_then_on_and_rotation_applies_to_new_segments() {
    let mut test_log = TestLog::new(4096);
    let stream = test_log
        .log()
        .create_stream("mixed", StreamConfig::new(1))
        .unwrap();
    stream.append(&record("k", "plain-0")).unwrap();
    drop(stream);
    test_log.log = None;
    test_log.keyring = Some(Arc::new(super::test_keyring(&test_log.path().join("keys"))));
    test_log.reopen().unwrap();
    // The plain segment with a record was closed and an encrypted one started.
    let files = segment_files(&test_log.path(), "mixed", 0);
    assert_eq!(files.len(), 2);
    assert!(test_log.segment_key(&files[0]).is_none());
    assert_eq!(test_log.segment_key(&files[1]).unwrap().key_id(), 1);
    let stream = test_log.log().stream("mixed").unwrap();
    stream.append(&record("k", "sealed-1")).unwrap();
    // Rotation: segments created after it use the new data key.
    let keyring = test_log.keyring.clone().unwrap();
    assert_eq!(keyring.rotate(None).unwrap(), 2);
    for index in 2..60 {
        stream
            .append(&record("k", &format!("sealed-{index}-{}", "x".repeat(100))))
            .unwrap();
    }
    drop(stream);
    let files = segment_files(&test_log.path(), "mixed", 0);
    assert!(files.len() > 3);
    assert_eq!(
        test_log
            .segment_key(files.last().unwrap())
            .unwrap()
            .key_id(),
        2
    );
    test_log.reopen().unwrap();
    let data = all_data(&test_log, "mixed");
    assert_eq!(data.len(), 60);
    assert_eq!(data[0], b"plain-0");
    assert_eq!(data[1], b"sealed-1");
    // An empty plain segment is replaced in place rather than followed.
    let mut fresh = TestLog::new(4096);
    fresh
        .log()
        .create_stream("empty", StreamConfig::new(1))
        .unwrap();
    fresh.log = None;
    fresh.keyring = Some(Arc::new(super::test_keyring(&fresh.path().join("keys"))));
    fresh.reopen().unwrap();
    let files = segment_files(&fresh.path(), "empty", 0);
    assert_eq!(files.len(), 1);
    assert!(fresh.segment_key(&files[0]).is_some());
    fresh
        .log()
        .stream("empty")
        .unwrap()
        .append(&record("k", "first"))
        .unwrap();
    fresh.reopen().unwrap();
    assert_eq!(all_data(&fresh, "empty"), [b"first".to_vec()]);
}
