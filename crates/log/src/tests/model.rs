//! The model-based property test: random single and batch appends, checkpoints, reads from
//! every iterator type, clock moves, retention, and crashes (drop without close, optionally
//! damaging the end of a last segment with a torn write, garbage, a bad last checksum or zeros),
//! each applied to the log and to a plain `Vec` model that is compared with the log after
//! every step. The invariant: every acknowledged record is read back, exactly once, in order,
//! until retention removes it; only bytes fabricated past the acknowledged end may vanish.

use std::{collections::BTreeMap, fs::OpenOptions, io::Write};

use proptest::{prelude::*, sample::Index};

use super::{TestLog, last_segment_path, read_to_end};
use crate::{
    AppendRecord, Clock, IteratorStart, SequenceNumber, ShardPosition, StreamConfig,
    format::{FRAME_HEADER_BYTES, decode_frame_header, encode_frame},
};

const STREAM_NAME: &str = "model";
const SHARD_COUNT: u32 = 2;
const RETENTION_PERIOD_MS: u64 = 60;
/// Small segments so that rolling, sealed-segment reads and retention happen within a few steps.
const SEGMENT_BYTES_MAX: u64 = 600;
const CONSUMERS: [&str; 2] = ["indexer", "backup"];

#[derive(Debug, Clone)]
enum StartChoice {
    TrimHorizon,
    Latest,
    AtSequenceNumber(Index),
    AfterSequenceNumber(Index),
    /// The arrival time of a chosen record, minus a small amount.
    AtTimestamp(Index, u64),
}

#[derive(Debug, Clone)]
enum Damage {
    None,
    /// Frames past the acknowledged end, cut after `keep` of their bytes.
    TornFrames {
        frame_count: usize,
        keep: Index,
    },
    /// A frame header whose length runs past the end of the file, then these bytes.
    Garbage(Vec<u8>),
    /// A whole last frame with one byte flipped.
    BadChecksumLastFrame,
    /// Zeros, as a file system that extended the file but did not write the data leaves.
    ZeroFill(usize),
}

#[derive(Debug, Clone)]
enum Operation {
    Append {
        key_index: u8,
        data_bytes: usize,
    },
    AppendBatch {
        records: Vec<(u8, usize)>,
    },
    Checkpoint {
        consumer_index: usize,
        shard_index: u32,
        pick: Index,
    },
    Read {
        shard_index: u32,
        start: StartChoice,
        records_max: usize,
    },
    AdvanceClock {
        delta_ms: u64,
    },
    Retention,
    Crash {
        shard_index: u32,
        damage: Damage,
    },
}

fn start_choice() -> impl Strategy<Value = StartChoice> {
    prop_oneof![
        Just(StartChoice::TrimHorizon),
        Just(StartChoice::Latest),
        any::<Index>().prop_map(StartChoice::AtSequenceNumber),
        any::<Index>().prop_map(StartChoice::AfterSequenceNumber),
        (any::<Index>(), 0..3u64)
            .prop_map(|(index, minus_ms)| StartChoice::AtTimestamp(index, minus_ms)),
    ]
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        Just(Damage::None),
        (1..4usize, any::<Index>())
            .prop_map(|(frame_count, keep)| Damage::TornFrames { frame_count, keep }),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(Damage::Garbage),
        Just(Damage::BadChecksumLastFrame),
        (1..120usize).prop_map(Damage::ZeroFill),
    ]
}

fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        6 => (0..16u8, 0..120usize).prop_map(|(key_index, data_bytes)| Operation::Append { key_index, data_bytes }),
        3 => prop::collection::vec((0..16u8, 0..80usize), 1..12).prop_map(|records| Operation::AppendBatch { records }),
        2 => (0..CONSUMERS.len(), 0..SHARD_COUNT, any::<Index>())
            .prop_map(|(consumer_index, shard_index, pick)| Operation::Checkpoint { consumer_index, shard_index, pick }),
        3 => (0..SHARD_COUNT, start_choice(), 1..8usize)
            .prop_map(|(shard_index, start, records_max)| Operation::Read { shard_index, start, records_max }),
        2 => (0..30u64).prop_map(|delta_ms| Operation::AdvanceClock { delta_ms }),
        1 => Just(Operation::Retention),
        2 => (0..SHARD_COUNT, damage()).prop_map(|(shard_index, damage)| Operation::Crash { shard_index, damage }),
    ]
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ModelRecord {
    sequence_number: SequenceNumber,
    arrival_time_ms: u64,
    partition_key: String,
    data: Vec<u8>,
}

#[derive(Debug, Default)]
struct ModelShard {
    /// Acknowledged records not yet removed by retention, in order.
    records: Vec<ModelRecord>,
    next_offset: u64,
}

struct Model {
    shards: Vec<ModelShard>,
    checkpoints: BTreeMap<(usize, u32), SequenceNumber>,
    records_made: u64,
}

impl Model {
    fn data(&mut self, data_bytes: usize) -> Vec<u8> {
        self.records_made += 1;
        let mut data = format!("#{}:", self.records_made).into_bytes();
        data.resize(data_bytes.max(data.len()), b'.');
        data
    }

    fn shard(&mut self, shard_index: u32) -> &mut ModelShard {
        &mut self.shards[shard_index as usize]
    }
}

fn key(key_index: u8) -> String {
    format!("key-{key_index}")
}

fn run(operations: Vec<Operation>, encrypted: bool) {
    let mut test_log = if encrypted {
        TestLog::encrypted(SEGMENT_BYTES_MAX)
    } else {
        TestLog::new(SEGMENT_BYTES_MAX)
    };
    let config = StreamConfig {
        retention_period_ms: RETENTION_PERIOD_MS,
        ..StreamConfig::new(SHARD_COUNT)
    };
    test_log.log().create_stream(STREAM_NAME, config).unwrap();
    let mut model = Model {
        shards: (0..SHARD_COUNT).map(|_| ModelShard::default()).collect(),
        checkpoints: BTreeMap::new(),
        records_made: 0,
    };
    for operation in operations {
        apply(&mut test_log, &mut model, operation);
        check(&test_log, &model);
    }
}

fn apply(test_log: &mut TestLog, model: &mut Model, operation: Operation) {
    let now_ms = test_log.clock.now_ms();
    let stream = test_log.log().stream(STREAM_NAME).unwrap();
    match operation {
        Operation::Append {
            key_index,
            data_bytes,
        } => {
            let record = AppendRecord::new(key(key_index), model.data(data_bytes));
            let appended = stream.append(&record).unwrap();
            assert_eq!(
                appended.shard_index,
                stream.shard_index_for(&record.partition_key, None)
            );
            assert_eq!(appended.arrival_time_ms, now_ms);
            let shard = model.shard(appended.shard_index);
            assert_eq!(appended.sequence_number.record_offset(), shard.next_offset);
            shard.next_offset += 1;
            shard.records.push(ModelRecord {
                sequence_number: appended.sequence_number,
                arrival_time_ms: now_ms,
                partition_key: record.partition_key,
                data: record.data,
            });
        }
        Operation::AppendBatch { records } => {
            let records: Vec<AppendRecord> = records
                .into_iter()
                .map(|(key_index, data_bytes)| {
                    AppendRecord::new(key(key_index), model.data(data_bytes))
                })
                .collect();
            let results = stream.append_batch(&records).unwrap();
            for (record, result) in records.into_iter().zip(results) {
                let appended = result.unwrap();
                assert_eq!(
                    appended.shard_index,
                    stream.shard_index_for(&record.partition_key, None)
                );
                let shard = model.shard(appended.shard_index);
                assert_eq!(appended.sequence_number.record_offset(), shard.next_offset);
                shard.next_offset += 1;
                shard.records.push(ModelRecord {
                    sequence_number: appended.sequence_number,
                    arrival_time_ms: appended.arrival_time_ms,
                    partition_key: record.partition_key,
                    data: record.data,
                });
            }
        }
        Operation::Checkpoint {
            consumer_index,
            shard_index,
            pick,
        } => {
            let records = &model.shard(shard_index).records;
            if records.is_empty() {
                return;
            }
            let sequence_number = records[pick.index(records.len())].sequence_number;
            stream
                .write_checkpoint(CONSUMERS[consumer_index], shard_index, sequence_number)
                .unwrap();
            model
                .checkpoints
                .insert((consumer_index, shard_index), sequence_number);
        }
        Operation::Read {
            shard_index,
            start,
            records_max,
        } => {
            let shard = stream.shard(shard_index).unwrap();
            let model_shard = model.shard(shard_index);
            let records = &model_shard.records;
            let (start, expected_offset) = match start {
                StartChoice::TrimHorizon => (
                    IteratorStart::TrimHorizon,
                    records.first().map_or(model_shard.next_offset, |record| {
                        record.sequence_number.record_offset()
                    }),
                ),
                StartChoice::AtSequenceNumber(pick) if !records.is_empty() => {
                    let sequence_number = records[pick.index(records.len())].sequence_number;
                    (
                        IteratorStart::AtSequenceNumber(sequence_number),
                        sequence_number.record_offset(),
                    )
                }
                StartChoice::AfterSequenceNumber(pick) if !records.is_empty() => {
                    let sequence_number = records[pick.index(records.len())].sequence_number;
                    (
                        IteratorStart::AfterSequenceNumber(sequence_number),
                        sequence_number.record_offset() + 1,
                    )
                }
                StartChoice::AtTimestamp(pick, minus_ms) if !records.is_empty() => {
                    let timestamp_ms = records[pick.index(records.len())]
                        .arrival_time_ms
                        .saturating_sub(minus_ms);
                    let expected = records
                        .iter()
                        .find(|record| record.arrival_time_ms >= timestamp_ms)
                        .map_or(model_shard.next_offset, |record| {
                            record.sequence_number.record_offset()
                        });
                    (IteratorStart::AtTimestamp(timestamp_ms), expected)
                }
                _ => (IteratorStart::Latest, model_shard.next_offset),
            };
            let position = shard.position_for(start).unwrap();
            assert_eq!(position.next_record_offset, expected_offset, "{start:?}");
            let batch = shard.read(position, records_max, 1 << 20).unwrap();
            let expected: Vec<&ModelRecord> = records
                .iter()
                .filter(|record| record.sequence_number.record_offset() >= expected_offset)
                .take(records_max)
                .collect();
            assert_eq!(batch.records.len(), expected.len());
            for (read, expected) in batch.records.iter().zip(&expected) {
                assert_same(read, expected);
            }
            let expected_next = expected.last().map_or(expected_offset, |record| {
                record.sequence_number.record_offset() + 1
            });
            assert_eq!(batch.next_position.next_record_offset, expected_next);
            if expected_next == model_shard.next_offset {
                assert_eq!(batch.millis_behind_latest, 0);
            }
        }
        Operation::AdvanceClock { delta_ms } => test_log.clock.advance_ms(delta_ms),
        Operation::Retention => {
            stream.enforce_retention(now_ms).unwrap();
            let cutoff_ms = now_ms.saturating_sub(RETENTION_PERIOD_MS);
            for shard_index in 0..SHARD_COUNT {
                let trim_offset = stream
                    .shard(shard_index)
                    .unwrap()
                    .describe()
                    .trim_horizon_sequence_number
                    .record_offset();
                let model_shard = model.shard(shard_index);
                for removed in model_shard
                    .records
                    .iter()
                    .filter(|record| record.sequence_number.record_offset() < trim_offset)
                {
                    assert!(
                        removed.arrival_time_ms < cutoff_ms,
                        "retention removed a record within its period: {removed:?}"
                    );
                }
                model_shard
                    .records
                    .retain(|record| record.sequence_number.record_offset() >= trim_offset);
            }
        }
        Operation::Crash {
            shard_index,
            damage,
        } => {
            drop(stream);
            test_log.log = None;
            let path = last_segment_path(&test_log.path(), STREAM_NAME, shard_index);
            // Torn frames are written as the shard would have: sealed in an encrypted segment.
            let key = test_log.segment_key(&path);
            let key = key.as_ref();
            let mut tail = Vec::new();
            match damage {
                Damage::None => {}
                Damage::TornFrames { frame_count, keep } => {
                    let model_shard = model.shard(shard_index);
                    let mut frame_ends = Vec::new();
                    for frame in 0..frame_count {
                        let offset = model_shard.next_offset + frame as u64;
                        let data = format!("unacknowledged {offset}").into_bytes();
                        encode_frame(&mut tail, offset, now_ms, "torn", None, &data, key).unwrap();
                        frame_ends.push((tail.len(), offset, data));
                    }
                    let kept_bytes = keep.index(tail.len() + 1);
                    tail.truncate(kept_bytes);
                    // Frames that happen to be whole after the cut are valid records: recovery keeps them.
                    for (frame_end, offset, data) in frame_ends {
                        if frame_end <= kept_bytes {
                            model_shard.records.push(ModelRecord {
                                sequence_number: SequenceNumber::from_shard_offset(
                                    shard_index,
                                    offset,
                                ),
                                arrival_time_ms: now_ms,
                                partition_key: "torn".to_owned(),
                                data,
                            });
                            model_shard.next_offset += 1;
                        }
                    }
                }
                Damage::Garbage(bytes) => {
                    let claimed_length = bytes.len() as u32 + 1;
                    tail.extend_from_slice(&claimed_length.to_le_bytes());
                    tail.extend_from_slice(&0xdead_beef_u32.to_le_bytes());
                    tail.extend_from_slice(&bytes);
                }
                Damage::BadChecksumLastFrame => {
                    let offset = model.shard(shard_index).next_offset;
                    encode_frame(&mut tail, offset, now_ms, "torn", None, b"flipped", key).unwrap();
                    let (length, _) = decode_frame_header(tail[..8].try_into().unwrap());
                    assert_eq!(tail.len() as u64, FRAME_HEADER_BYTES + u64::from(length));
                    *tail.last_mut().unwrap() ^= 0x20;
                }
                Damage::ZeroFill(zero_bytes) => tail.resize(zero_bytes, 0),
            }
            if !tail.is_empty() {
                let mut file = OpenOptions::new().append(true).open(&path).unwrap();
                file.write_all(&tail).unwrap();
            }
            test_log.reopen().unwrap();
        }
    }
}

fn assert_same(read: &crate::Record, expected: &ModelRecord) {
    assert_eq!(read.sequence_number, expected.sequence_number);
    assert_eq!(read.arrival_time_ms, expected.arrival_time_ms);
    assert_eq!(read.partition_key, expected.partition_key);
    assert_eq!(read.data, expected.data);
    assert_eq!(read.explicit_hash_key, None);
}

fn check(test_log: &TestLog, model: &Model) {
    let stream = test_log.log().stream(STREAM_NAME).unwrap();
    for (shard_index, model_shard) in (0u32..).zip(&model.shards) {
        let shard = stream.shard(shard_index).unwrap();
        let description = shard.describe();
        assert_eq!(
            description.next_sequence_number.record_offset(),
            model_shard.next_offset
        );
        let trim = shard.position_for(IteratorStart::TrimHorizon).unwrap();
        let records = read_to_end(shard, trim, 5);
        assert_eq!(
            records.len(),
            model_shard.records.len(),
            "shard {shard_index}"
        );
        for (read, expected) in records.iter().zip(&model_shard.records) {
            assert_same(read, expected);
        }
        // Reading from before the horizon starts at the horizon.
        let from_zero = shard
            .read(
                ShardPosition {
                    shard_index,
                    next_record_offset: 0,
                },
                1,
                1 << 20,
            )
            .unwrap();
        assert_eq!(
            from_zero
                .records
                .first()
                .map(|record| record.sequence_number),
            model_shard
                .records
                .first()
                .map(|record| record.sequence_number)
        );
    }
    for (&(consumer_index, shard_index), sequence_number) in &model.checkpoints {
        assert_eq!(
            stream
                .read_checkpoint(CONSUMERS[consumer_index], shard_index)
                .unwrap(),
            Some(*sequence_number)
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, max_shrink_iters: 200, ..ProptestConfig::default() })]

    #[test]
    fn the_log_matches_a_vec_model_across_crashes(operations in prop::collection::vec(operation(), 1..60)) {
        run(operations, false);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, max_shrink_iters: 200, ..ProptestConfig::default() })]

    /// The same model with every segment encrypted: torn tails of sealed frames are cut, and
    /// every acknowledged record reads back.
    #[test]
    fn the_encrypted_log_matches_a_vec_model_across_crashes(operations in prop::collection::vec(operation(), 1..60)) {
        run(operations, true);
    }
}
