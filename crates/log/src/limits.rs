//! Every limit of the log as a named constant, with what happens at the limit. A request over a
//! limit is refused with `LogError::LimitExceeded` (the API layer answers 400/ValidationException);
//! nothing is truncated or dropped silently.

/// Largest record: partition key bytes plus data bytes, 1 MiB as in Kinesis.
pub const RECORD_BYTES_MAX: usize = 1024 * 1024;

/// Longest partition key in characters, as in Kinesis (256 Unicode scalar values).
pub const PARTITION_KEY_CHARS_MAX: usize = 256;

/// Longest partition key in bytes: 256 characters of at most 4 UTF-8 bytes each.
pub const PARTITION_KEY_BYTES_MAX: usize = PARTITION_KEY_CHARS_MAX * 4;

/// Most records in one batch append (Kinesis PutRecords and Firehose PutRecordBatch allow 500).
pub const BATCH_RECORDS_MAX: usize = 500;

/// Most bytes (keys plus data) in one batch append, 5 MiB as Kinesis PutRecords.
pub const BATCH_BYTES_MAX: usize = 5 * 1024 * 1024;

/// Default size at which a shard starts a new segment file. A batch never splits across
/// segments, so a segment may exceed this by at most one batch.
pub const SEGMENT_BYTES_MAX_DEFAULT: u64 = 64 * 1024 * 1024;

/// Smallest segment size the options accept (tests use small segments to exercise rolling).
pub const SEGMENT_BYTES_MIN: u64 = 256;

/// Largest segment size the options accept; bounds the recovery scan of the last segment.
pub const SEGMENT_BYTES_MAX_LIMIT: u64 = 1024 * 1024 * 1024;

/// Distance between entries of a segment's in-memory sparse index: a read seeks to the nearest
/// entry and scans at most this many bytes forward (plus one frame).
pub const INDEX_INTERVAL_BYTES: u64 = 64 * 1024;

/// Most shards in one stream.
pub const SHARDS_PER_STREAM_MAX: u32 = 1024;

/// Most streams in one log.
pub const STREAMS_MAX: usize = 4096;

/// Longest stream or consumer name in bytes (Kinesis allows 128 characters of `[a-zA-Z0-9_.-]`).
pub const NAME_BYTES_MAX: usize = 128;

/// Default retention of a stream: 24 hours, as Kinesis.
pub const RETENTION_PERIOD_MS_DEFAULT: u64 = 24 * 60 * 60 * 1000;

/// Longest retention of a stream: 365 days, as Kinesis.
pub const RETENTION_PERIOD_MS_MAX: u64 = 365 * 24 * 60 * 60 * 1000;

/// Most records one read returns (Kinesis GetRecords returns at most 10,000).
pub const READ_RECORDS_MAX: usize = 10_000;

/// Most bytes (keys plus data) one read returns, 10 MiB as Kinesis GetRecords. A read always
/// returns at least one record when one is available, even a record larger than the caller's cap.
pub const READ_BYTES_MAX: usize = 10 * 1024 * 1024;

/// Largest catalog file accepted on open: a guard against reading a wrong file into memory.
pub const CATALOG_FILE_BYTES_MAX: u64 = 16 * 1024 * 1024;
