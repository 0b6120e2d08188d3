//! Every limit of delivery streams, as a named constant. Firehose's own quotas where it has one.

/// Records in one PutRecordBatch call (Firehose: 500).
pub const PUT_BATCH_RECORDS_MAX: usize = 500;
/// Bytes of data in one PutRecordBatch call (Firehose: 4 MiB).
pub const PUT_BATCH_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Bytes of one record's data (Firehose: 1,000 KiB).
pub const RECORD_BYTES_MAX: usize = 1000 * 1024;
/// Records a DirectPut stream may hold not yet delivered. Past it, puts are refused with
/// `Throttled` (ServiceUnavailableException: "Slow down.") until delivery catches up; nothing is
/// dropped, the backlog itself is durable in the log.
pub const BACKLOG_RECORDS_MAX: u64 = 1_000_000;
/// Records one buffer holds before it is flushed whatever its size hint; bounds the memory of a
/// buffer of many tiny records.
pub const BUFFER_RECORDS_MAX: usize = 10_000;
/// BufferingHints.SizeInMBs range (Elasticsearch destination: 1–100).
pub const BUFFER_SIZE_MB_MIN: u64 = 1;
pub const BUFFER_SIZE_MB_MAX: u64 = 100;
pub const BUFFER_SIZE_MB_DEFAULT: u64 = 5;
/// BufferingHints.IntervalInSeconds range (0–900).
pub const BUFFER_INTERVAL_S_MAX: u64 = 900;
pub const BUFFER_INTERVAL_S_DEFAULT: u64 = 300;
/// RetryOptions.DurationInSeconds range (0–7200) and Firehose's default.
pub const RETRY_DURATION_S_MAX: u64 = 7200;
pub const RETRY_DURATION_S_DEFAULT: u64 = 300;
/// First pause between two delivery attempts of failed documents; doubles up to the max.
pub const RETRY_BACKOFF_MS_FIRST: u64 = 200;
pub const RETRY_BACKOFF_MS_MAX: u64 = 5_000;
/// Lambda processor parameters, as Firehose bounds them.
pub const PROCESSOR_RETRIES_MAX: u32 = 300;
pub const PROCESSOR_RETRIES_DEFAULT: u32 = 3;
pub const PROCESSOR_BUFFER_BYTES_DEFAULT: u64 = 1024 * 1024;
pub const PROCESSOR_BUFFER_BYTES_MAX: u64 = 3 * 1024 * 1024;
/// Delivery streams per node (Firehose's default quota per region is 50; ours is local).
pub const DELIVERY_STREAMS_MAX: usize = 500;
/// Delivery stream names: 1–64 of `[a-zA-Z0-9_.-]`, as Firehose.
pub const NAME_CHARS_MAX: usize = 64;
/// Size of the catalog file read on open.
pub const CATALOG_BYTES_MAX: u64 = 16 * 1024 * 1024;
/// How often an idle worker looks for new records (real time; the buffering decision itself
/// reads the injected clock).
pub const PUMP_TICK_MS: u64 = 50;
/// Distinct (function, error code) pairs of failed Lambda invocations one stream counts in its
/// metrics; further pairs are counted together under `other`. Real streams have one processor
/// and Firehose has a handful of codes, so this is never reached in practice.
pub const PROCESSING_FAILURE_SERIES_MAX: usize = 64;
/// Longest error message kept for a failing processor (shown by DescribeDeliveryStream), in
/// bytes; a longer one is cut and ends with `…`. The function host already bounds the stderr
/// tail it puts in its messages; this bounds any transformer.
pub const PROCESSING_FAILURE_MESSAGE_BYTES_MAX: usize = 16 * 1024;
/// Pause after a failed flush (an unreachable S3, a full disk) before the batch is tried
/// again; it doubles with each failure in a row up to the max, and a delivered batch resets it.
/// The batch stays in the source meanwhile (acknowledged records are never dropped); a
/// DirectPut stream's producers are throttled once its backlog reaches [`BACKLOG_RECORDS_MAX`].
pub const ERROR_BACKOFF_MS_FIRST: u64 = 1_000;
pub const ERROR_BACKOFF_MS_MAX: u64 = 30_000;
