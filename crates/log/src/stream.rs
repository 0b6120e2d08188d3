//! One named stream: its configuration, its shards and their hash key ranges, routing of records
//! to shards, batch appends spread over shards, retention and per-consumer checkpoints.

use std::{
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use crate::{
    error::{LogError, Result},
    files::{create_directory_durably, read_file_bounded, replace_file_atomically},
    format::{CHECKPOINT_BYTES, CheckpointFile, FORMAT_VERSION, HeaderError},
    hash_key::{
        HashKeyRange, partition_key_hash, shard_index_for_hash_key, split_hash_key_space_evenly,
    },
    limits::{
        BATCH_BYTES_MAX, BATCH_RECORDS_MAX, NAME_BYTES_MAX, PARTITION_KEY_CHARS_MAX,
        RECORD_BYTES_MAX, RETENTION_PERIOD_MS_DEFAULT, RETENTION_PERIOD_MS_MAX,
        SHARDS_PER_STREAM_MAX,
    },
    lock,
    sequence::SequenceNumber,
    shard::{
        AppendRecord, AppendedRecord, Environment, RetentionOutcome, RetentionPolicy, Shard,
        shard_directory_name,
    },
};

/// Name of the folder, inside a stream's folder, that holds its consumers' checkpoints.
const CHECKPOINTS_DIRECTORY_NAME: &str = "checkpoints";

/// How a stream is shaped and how long it keeps records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamConfig {
    pub shard_count: u32,
    pub retention_period_ms: u64,
    /// Largest total size of one shard's segments; `None` for no size limit.
    pub retention_bytes_per_shard_max: Option<u64>,
}

impl StreamConfig {
    /// `shard_count` shards, 24 h retention, no size limit.
    pub fn new(shard_count: u32) -> Self {
        StreamConfig {
            shard_count,
            retention_period_ms: RETENTION_PERIOD_MS_DEFAULT,
            retention_bytes_per_shard_max: None,
        }
    }

    pub fn retention_policy(&self) -> RetentionPolicy {
        RetentionPolicy {
            retention_period_ms: self.retention_period_ms,
            retention_bytes_per_shard_max: self.retention_bytes_per_shard_max,
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if !(1..=SHARDS_PER_STREAM_MAX).contains(&self.shard_count) {
            return Err(LogError::InvalidArgument(format!(
                "shard_count must be between 1 and {SHARDS_PER_STREAM_MAX}, not {}",
                self.shard_count
            )));
        }
        if !(1..=RETENTION_PERIOD_MS_MAX).contains(&self.retention_period_ms) {
            return Err(LogError::InvalidArgument(format!(
                "retention_period_ms must be between 1 and {RETENTION_PERIOD_MS_MAX}, not {}",
                self.retention_period_ms
            )));
        }
        if self.retention_bytes_per_shard_max == Some(0) {
            return Err(LogError::InvalidArgument(
                "retention_bytes_per_shard_max must be positive".to_owned(),
            ));
        }
        Ok(())
    }
}

/// Checks a stream or consumer name: 1 to 128 bytes of `[a-zA-Z0-9_.-]`, as Kinesis stream
/// names, and never `.` or `..` since names become folder names.
pub fn validate_name(name: &str) -> Result<()> {
    let invalid = |reason| LogError::InvalidName {
        name: name.chars().take(NAME_BYTES_MAX + 8).collect(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("empty"));
    }
    if name.len() > NAME_BYTES_MAX {
        return Err(invalid("longer than 128 bytes"));
    }
    if !name
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-'))
    {
        return Err(invalid(
            "only letters, digits, '_', '.' and '-' are allowed",
        ));
    }
    if name == "." || name == ".." {
        return Err(invalid("'.' and '..' are reserved"));
    }
    Ok(())
}

/// Checks one record against the record limits. Returns its size (key plus data) in bytes.
pub fn validate_record(record: &AppendRecord) -> Result<usize> {
    if record.partition_key.is_empty() {
        return Err(LogError::InvalidArgument(
            "partition key is empty".to_owned(),
        ));
    }
    let key_chars = record.partition_key.chars().count();
    if key_chars > PARTITION_KEY_CHARS_MAX {
        return Err(LogError::LimitExceeded {
            what: "partition key characters",
            value: key_chars as u64,
            limit: PARTITION_KEY_CHARS_MAX as u64,
        });
    }
    let record_bytes = record.partition_key.len() + record.data.len();
    if record_bytes > RECORD_BYTES_MAX {
        return Err(LogError::LimitExceeded {
            what: "record bytes (partition key plus data)",
            value: record_bytes as u64,
            limit: RECORD_BYTES_MAX as u64,
        });
    }
    Ok(record_bytes)
}

/// Checks a batch against the batch limits and every record against the record limits.
pub fn validate_batch(records: &[AppendRecord]) -> Result<()> {
    if records.is_empty() {
        return Err(LogError::InvalidArgument(
            "batch holds no record".to_owned(),
        ));
    }
    if records.len() > BATCH_RECORDS_MAX {
        return Err(LogError::LimitExceeded {
            what: "records in a batch",
            value: records.len() as u64,
            limit: BATCH_RECORDS_MAX as u64,
        });
    }
    let mut batch_bytes = 0usize;
    for record in records {
        batch_bytes += validate_record(record)?;
    }
    if batch_bytes > BATCH_BYTES_MAX {
        return Err(LogError::LimitExceeded {
            what: "bytes in a batch",
            value: batch_bytes as u64,
            limit: BATCH_BYTES_MAX as u64,
        });
    }
    Ok(())
}

/// A stream as listed by the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSummary {
    pub name: String,
    pub config: StreamConfig,
    pub created_time_ms: u64,
}

/// A named stream of shards. Shared as `Arc<Stream>`; every method takes `&self`.
#[derive(Debug)]
pub struct Stream {
    name: String,
    /// Shard count is fixed at creation; retention can change (`Log::set_retention`).
    config: Mutex<StreamConfig>,
    created_time_ms: u64,
    directory: PathBuf,
    environment: Arc<Environment>,
    hash_key_ranges: Vec<HashKeyRange>,
    shards: Vec<Arc<Shard>>,
    deleted: AtomicBool,
    /// Serialises checkpoint writes: two writers of one checkpoint would share its temporary file.
    checkpoint_lock: Mutex<()>,
}

impl Stream {
    /// Creates the folders and first segments of a new stream, durably. The caller records it
    /// in the catalog afterwards; a folder without a catalog entry is removed on open.
    pub(crate) fn create(
        name: &str,
        config: StreamConfig,
        created_time_ms: u64,
        directory: PathBuf,
        environment: Arc<Environment>,
    ) -> Result<Stream> {
        create_directory_durably(&directory, environment.disk.as_ref())?;
        Stream::build(
            name,
            config,
            created_time_ms,
            directory,
            environment,
            Shard::create,
        )
    }

    /// Opens an existing stream, recovering each shard.
    pub(crate) fn open(
        name: &str,
        config: StreamConfig,
        created_time_ms: u64,
        directory: PathBuf,
        environment: Arc<Environment>,
    ) -> Result<Stream> {
        Stream::build(
            name,
            config,
            created_time_ms,
            directory,
            environment,
            Shard::open,
        )
    }

    fn build(
        name: &str,
        config: StreamConfig,
        created_time_ms: u64,
        directory: PathBuf,
        environment: Arc<Environment>,
        make_shard: fn(&str, u32, HashKeyRange, PathBuf, Arc<Environment>) -> Result<Shard>,
    ) -> Result<Stream> {
        let hash_key_ranges = split_hash_key_space_evenly(config.shard_count);
        let mut shards = Vec::with_capacity(hash_key_ranges.len());
        for (shard_index, range) in (0u32..).zip(&hash_key_ranges) {
            let shard_directory = directory.join(shard_directory_name(shard_index));
            shards.push(Arc::new(make_shard(
                name,
                shard_index,
                *range,
                shard_directory,
                Arc::clone(&environment),
            )?));
        }
        Ok(Stream {
            name: name.to_owned(),
            config: Mutex::new(config),
            created_time_ms,
            directory,
            environment,
            hash_key_ranges,
            shards,
            deleted: AtomicBool::new(false),
            checkpoint_lock: Mutex::new(()),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn config(&self) -> StreamConfig {
        *lock(&self.config)
    }

    pub(crate) fn set_retention_policy(&self, policy: RetentionPolicy) {
        let mut config = lock(&self.config);
        config.retention_period_ms = policy.retention_period_ms;
        config.retention_bytes_per_shard_max = policy.retention_bytes_per_shard_max;
    }

    pub fn created_time_ms(&self) -> u64 {
        self.created_time_ms
    }

    pub fn summary(&self) -> StreamSummary {
        StreamSummary {
            name: self.name.clone(),
            config: self.config(),
            created_time_ms: self.created_time_ms,
        }
    }

    pub fn shards(&self) -> &[Arc<Shard>] {
        &self.shards
    }

    pub fn shard(&self, shard_index: u32) -> Result<&Arc<Shard>> {
        usize::try_from(shard_index)
            .ok()
            .and_then(|position| self.shards.get(position))
            .ok_or_else(|| LogError::ShardNotFound {
                stream: self.name.clone(),
                shard_index,
            })
    }

    /// The shard a record goes to: by its explicit hash key if any, else by the MD5 of its
    /// partition key.
    pub fn shard_index_for(&self, partition_key: &str, explicit_hash_key: Option<u128>) -> u32 {
        let hash_key = explicit_hash_key.unwrap_or_else(|| partition_key_hash(partition_key));
        // The ranges cover the whole key space, so the lookup cannot miss; 0 keeps it total.
        shard_index_for_hash_key(&self.hash_key_ranges, hash_key).unwrap_or(0)
    }

    fn check_not_deleted(&self) -> Result<()> {
        if self.deleted.load(Ordering::Acquire) {
            Err(LogError::StreamDeleted(self.name.clone()))
        } else {
            Ok(())
        }
    }

    /// Appends one record to its shard; returns once it is durable.
    pub fn append(&self, record: &AppendRecord) -> Result<AppendedRecord> {
        self.check_not_deleted()?;
        validate_record(record)?;
        let shard_index = self.shard_index_for(&record.partition_key, record.explicit_hash_key);
        self.shard(shard_index)?.append(record)
    }

    /// Appends a batch (PutRecords): each shard touched gets one write, all shards are written
    /// before any waits for its fsync, and each record gets its own result, in input order.
    /// The outer error is for a batch refused whole (limits, deleted stream).
    pub fn append_batch(&self, records: &[AppendRecord]) -> Result<Vec<Result<AppendedRecord>>> {
        self.check_not_deleted()?;
        validate_batch(records)?;
        let mut positions_by_shard: Vec<Vec<usize>> = vec![Vec::new(); self.shards.len()];
        for (position, record) in records.iter().enumerate() {
            let shard_index = self.shard_index_for(&record.partition_key, record.explicit_hash_key);
            if let Some(positions) = usize::try_from(shard_index)
                .ok()
                .and_then(|index| positions_by_shard.get_mut(index))
            {
                positions.push(position);
            }
        }
        let mut tickets = Vec::new();
        for (shard, positions) in self.shards.iter().zip(&positions_by_shard) {
            if positions.is_empty() {
                continue;
            }
            let shard_records: Vec<&AppendRecord> = positions
                .iter()
                .filter_map(|&position| records.get(position))
                .collect();
            tickets.push((shard, positions, shard.write_batch(&shard_records)));
        }
        let mut results: Vec<Option<Result<AppendedRecord>>> = vec![None; records.len()];
        for (shard, positions, ticket) in tickets {
            let shard_result = ticket.and_then(|ticket| {
                shard.wait_durable(ticket)?;
                Ok(shard.appended_records(ticket))
            });
            match shard_result {
                Ok(appended) => {
                    for (&position, appended) in positions.iter().zip(appended) {
                        if let Some(slot) = results.get_mut(position) {
                            *slot = Some(Ok(appended));
                        }
                    }
                }
                Err(error) => {
                    for &position in positions {
                        if let Some(slot) = results.get_mut(position) {
                            *slot = Some(Err(error.clone()));
                        }
                    }
                }
            }
        }
        Ok(results
            .into_iter()
            .map(|result| {
                result.unwrap_or_else(|| {
                    Err(LogError::InvalidArgument(
                        "record was not routed to a shard".to_owned(),
                    ))
                })
            })
            .collect())
    }

    /// Applies the stream's retention to every shard at time `now_ms`.
    pub fn enforce_retention(&self, now_ms: u64) -> Result<RetentionOutcome> {
        let mut outcome = RetentionOutcome::default();
        let policy = self.config().retention_policy();
        for shard in &self.shards {
            outcome.add(shard.enforce_retention(now_ms, policy)?);
        }
        Ok(outcome)
    }

    fn checkpoint_location(&self, consumer: &str, shard_index: u32) -> Result<(PathBuf, String)> {
        validate_name(consumer)?;
        self.shard(shard_index)?;
        let directory = self
            .directory
            .join(CHECKPOINTS_DIRECTORY_NAME)
            .join(consumer);
        Ok((
            directory,
            format!("{}.ckpt", shard_directory_name(shard_index)),
        ))
    }

    /// Durably records that `consumer` has processed shard `shard_index` up to and including
    /// `sequence_number`. Atomic: a crash leaves the old or the new checkpoint.
    pub fn write_checkpoint(
        &self,
        consumer: &str,
        shard_index: u32,
        sequence_number: SequenceNumber,
    ) -> Result<()> {
        self.check_not_deleted()?;
        let (directory, file_name) = self.checkpoint_location(consumer, shard_index)?;
        if sequence_number.shard_index() != shard_index || sequence_number.as_u128() >> 96 != 0 {
            return Err(LogError::SequenceNumberNotInShard {
                stream: self.name.clone(),
                shard_index,
                sequence_number: sequence_number.to_string(),
                reason: "it belongs to another shard",
            });
        }
        let bytes = CheckpointFile {
            shard_index,
            sequence_number: sequence_number.as_u128(),
            written_time_ms: self.environment.clock.now_ms(),
        }
        .encode();
        let _guard = lock(&self.checkpoint_lock);
        create_directory_durably(&directory, self.environment.disk.as_ref())?;
        replace_file_atomically(
            &directory,
            &file_name,
            &bytes,
            self.environment.disk.as_ref(),
        )
    }

    /// The last checkpoint of `consumer` on shard `shard_index`, if it ever wrote one.
    pub fn read_checkpoint(
        &self,
        consumer: &str,
        shard_index: u32,
    ) -> Result<Option<SequenceNumber>> {
        self.check_not_deleted()?;
        let (directory, file_name) = self.checkpoint_location(consumer, shard_index)?;
        let path = directory.join(file_name);
        let Some(bytes) = read_file_bounded(&path, CHECKPOINT_BYTES as u64)? else {
            return Ok(None);
        };
        let checkpoint = CheckpointFile::decode(&bytes).map_err(|error| match error {
            HeaderError::Shape(reason) => LogError::corruption(&path, 0, reason),
            HeaderError::Version(found) => LogError::UnsupportedFormatVersion {
                path: path.clone(),
                found,
                supported: FORMAT_VERSION,
            },
        })?;
        if checkpoint.shard_index != shard_index {
            return Err(LogError::corruption(
                &path,
                0,
                "checkpoint names another shard",
            ));
        }
        Ok(Some(SequenceNumber::from_u128(checkpoint.sequence_number)))
    }

    /// Refuses all later writes and reads of checkpoints; shards refuse appends.
    pub(crate) fn mark_deleted(&self) {
        self.deleted.store(true, Ordering::Release);
        for shard in &self.shards {
            shard.close();
        }
    }

    pub(crate) fn directory(&self) -> &PathBuf {
        &self.directory
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(validate_name("orders-2024_v1.x").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name(".").is_err());
        assert!(validate_name("..").is_err());
        assert!(validate_name("a/b").is_err());
        assert!(validate_name("é").is_err());
        assert!(validate_name(&"a".repeat(128)).is_ok());
        assert!(validate_name(&"a".repeat(129)).is_err());
    }

    #[test]
    fn records_and_batches_are_bounded() {
        assert!(validate_record(&AppendRecord::new("k", vec![0; RECORD_BYTES_MAX - 1])).is_ok());
        assert!(matches!(
            validate_record(&AppendRecord::new("k", vec![0; RECORD_BYTES_MAX])),
            Err(LogError::LimitExceeded { .. })
        ));
        assert!(validate_record(&AppendRecord::new("", b"x".to_vec())).is_err());
        assert!(validate_record(&AppendRecord::new("é".repeat(256), b"x".to_vec())).is_ok());
        assert!(validate_record(&AppendRecord::new("é".repeat(257), b"x".to_vec())).is_err());
        assert!(validate_batch(&[]).is_err());
        let many = vec![AppendRecord::new("k", b"x".to_vec()); BATCH_RECORDS_MAX + 1];
        assert!(matches!(
            validate_batch(&many),
            Err(LogError::LimitExceeded { .. })
        ));
        let big = vec![AppendRecord::new("k", vec![0; 1024 * 1024 - 1]); 6];
        assert!(matches!(
            validate_batch(&big),
            Err(LogError::LimitExceeded { .. })
        ));
    }
}
