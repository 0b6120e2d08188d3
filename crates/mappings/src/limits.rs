//! Named limits and defaults of event-source mappings, with what happens at each.

use std::time::Duration;

/// Records in one invocation when the mapping names no `BatchSize`, as Lambda's default for
/// Kinesis and DynamoDB streams.
pub const BATCH_SIZE_DEFAULT: u32 = 100;

/// Largest `BatchSize`, as Lambda's for stream sources; a larger one is refused at create.
/// It also bounds what a worker holds in memory: it reads at most one batch ahead.
pub const BATCH_SIZE_MAX: u32 = 10_000;

/// Longest `MaximumBatchingWindowInSeconds`, as Lambda's: a worker waits at most this long for
/// a batch to fill before it invokes with what it has.
pub const BATCHING_WINDOW_S_MAX: u32 = 300;

/// Largest `ParallelizationFactor`, as Lambda's.
pub const PARALLELIZATION_FACTOR_MAX: u32 = 10;

/// Largest finite `MaximumRetryAttempts`, as Lambda's (`-1` retries until the record expires).
pub const RETRY_ATTEMPTS_MAX: i32 = 10_000;

/// Bounds of a finite `MaximumRecordAgeInSeconds`, as Lambda's (`-1` never expires a record).
pub const RECORD_AGE_S_MIN: i32 = 60;
/// See [`RECORD_AGE_S_MIN`].
pub const RECORD_AGE_S_MAX: i32 = 604_800;

/// Filters of one mapping, as Lambda's default quota; more are refused at create.
pub const FILTERS_MAX: usize = 5;

/// Longest filter pattern, in bytes, as Lambda's; a longer one is refused at create.
pub const FILTER_PATTERN_BYTES_MAX: usize = 4_096;

/// Deepest nesting of objects in a filter pattern; a deeper one is refused at create.
pub const FILTER_PATTERN_DEPTH_MAX: usize = 32;

/// Most mappings one node keeps; one more is refused (`ResourceLimitExceeded` at the API).
pub const MAPPINGS_MAX: usize = 1_000;

/// How long an idle worker sleeps before it looks for new records again. The sources have no
/// wake-up signal, so this is the latency of a record that arrives on an idle stream.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Pause before retrying a failed batch; it doubles on every further failure up to
/// [`RETRY_BACKOFF_MAX`].
pub const RETRY_BACKOFF_INITIAL: Duration = Duration::from_millis(100);

/// Longest pause between two attempts at one batch.
pub const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Bytes one read of a Kinesis-like shard returns at most (records beyond wait for the next).
pub const READ_BYTES_MAX: usize = 6 * 1024 * 1024;
