//! Backward compatibility: a data directory written by format version 1 (checked in under
//! `crates/log/fixtures/v1`) must open and read the same in every later build.

use std::{fs, path::Path, sync::Arc};

use crate::{
    AppendRecord, IteratorStart, Log, LogOptions, ManualClock, SequenceNumber, StreamConfig,
};

use super::read_to_end;

const FIXTURE_TIME_MS: u64 = 1_700_000_000_000;
const FIXTURE_STREAM: &str = "fixture-v1";

/// The records the fixture holds, in append order: the same function wrote them.
fn fixture_records() -> Vec<AppendRecord> {
    (0..24u32)
        .map(|index| {
            let mut record = AppendRecord::new(
                format!("partition-{}", index % 5),
                format!("record {index} of the version 1 fixture").into_bytes(),
            );
            if index % 7 == 3 {
                record.explicit_hash_key = Some(u128::from(index) << 120);
            }
            record
        })
        .collect()
}

fn fixture_options() -> LogOptions {
    LogOptions {
        clock: Arc::new(ManualClock::new(FIXTURE_TIME_MS)),
        segment_bytes_max: 512,
        ..LogOptions::default()
    }
}

/// Writes the fixture; run once, with `SLUICE_LOG_WRITE_FIXTURE=<dir>`, when the format version
/// changes, and the result is checked in next to the older ones.
fn write_fixture(directory: &Path) {
    let log = Log::open(directory, fixture_options()).unwrap();
    let stream = log
        .create_stream(FIXTURE_STREAM, StreamConfig::new(2))
        .unwrap();
    for chunk in fixture_records().chunks(5) {
        stream.append_batch(chunk).unwrap();
    }
    stream
        .write_checkpoint("reader", 1, SequenceNumber::from_shard_offset(1, 2))
        .unwrap();
}

fn copy_directory(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_directory(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn version_1_fixture_opens_and_reads_back() {
    if let Some(directory) = std::env::var_os("SLUICE_LOG_WRITE_FIXTURE") {
        write_fixture(Path::new(&directory));
    }
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/v1");
    let copy = tempfile::tempdir().unwrap();
    copy_directory(&fixture, copy.path());
    let log = Log::open(copy.path(), fixture_options()).unwrap();
    let stream = log.stream(FIXTURE_STREAM).unwrap();
    assert_eq!(stream.config(), StreamConfig::new(2));
    assert_eq!(stream.created_time_ms(), FIXTURE_TIME_MS);
    let mut expected_by_shard: Vec<Vec<AppendRecord>> = vec![Vec::new(), Vec::new()];
    for record in fixture_records() {
        let shard_index = stream.shard_index_for(&record.partition_key, record.explicit_hash_key);
        expected_by_shard[shard_index as usize].push(record);
    }
    for (shard, expected) in stream.shards().iter().zip(&expected_by_shard) {
        assert!(
            shard.describe().segment_count > 1,
            "the fixture should span segments"
        );
        let start = shard.position_for(IteratorStart::TrimHorizon).unwrap();
        let records = read_to_end(shard, start, 4);
        assert_eq!(records.len(), expected.len());
        for ((offset, read), expected) in (0u64..).zip(&records).zip(expected) {
            assert_eq!(
                read.sequence_number,
                SequenceNumber::from_shard_offset(shard.shard_index(), offset)
            );
            assert_eq!(read.arrival_time_ms, FIXTURE_TIME_MS);
            assert_eq!(read.partition_key, expected.partition_key);
            assert_eq!(read.explicit_hash_key, expected.explicit_hash_key);
            assert_eq!(read.data, expected.data);
        }
    }
    assert_eq!(
        stream.read_checkpoint("reader", 1).unwrap(),
        Some(SequenceNumber::from_shard_offset(1, 2))
    );
}
