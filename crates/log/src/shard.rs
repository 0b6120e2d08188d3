//! One shard: the append path with group-commit fsync and poisoning, recovery of the last
//! segment on open, segment rolling, durable-only reads from every iterator type, and retention.
//!
//! Concurrency: appenders encode and write their frames under the writer mutex, then wait for
//! durability outside it. Whoever finds no fsync running becomes the leader, fsyncs the active
//! file once for every write made so far, and wakes the others (group commit). Readers never take
//! the writer mutex: they read the segment list and stop at the durable end, an atomic counter
//! that only moves after an fsync, so they see acknowledged records only.

use std::{
    fs::{self, File, OpenOptions},
    io,
    ops::ControlFlow,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::{
        Arc, Condvar, Mutex, RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use sluice_seal::FileKey;

use crate::{
    clock::Clock,
    disk::Disk,
    error::{LogError, Result},
    files::create_directory_durably,
    format::{
        SEGMENT_PURPOSE, SegmentEncryption, SegmentHeader, StoredRecord, encode_frame, frame_bytes,
        frames_are_valid,
    },
    hash_key::HashKeyRange,
    limits::{READ_BYTES_MAX, READ_RECORDS_MAX},
    lock, read_lock,
    segment::{
        IndexEntry, Segment, SegmentCursor, TEMPORARY_SUFFIX, create_segment_file,
        maybe_push_index_entry, parse_segment_file_name, read_segment_header, scan_segment,
    },
    sequence::SequenceNumber,
    stream::validate_batch,
    write_lock,
};

/// Attempts of one read when retention keeps deleting the segment it is reading: each attempt
/// restarts from the new trim horizon, so more than one retry means a pathological retention loop.
const READ_ATTEMPTS_MAX: usize = 3;

/// What every shard shares: time, disk, the segment size limit and the keyring.
#[derive(Debug)]
pub(crate) struct Environment {
    pub clock: Arc<dyn Clock>,
    pub disk: Arc<dyn Disk>,
    pub segment_bytes_max: u64,
    pub keyring: Option<Arc<sluice_seal::Keyring>>,
}

impl Environment {
    /// The header of a new segment, encrypted under a fresh file key when there is a keyring.
    fn new_segment(
        &self,
        directory: &Path,
        shard_index: u32,
        first_offset: u64,
        created_time_ms: u64,
    ) -> Result<(SegmentHeader, Option<Arc<FileKey>>)> {
        let key = match &self.keyring {
            None => None,
            Some(keyring) => Some(Arc::new(keyring.new_file_key(SEGMENT_PURPOSE).map_err(
                |error| LogError::Encryption {
                    path: directory.to_owned(),
                    reason: error.to_string(),
                },
            )?)),
        };
        let header = SegmentHeader {
            shard_index,
            first_offset,
            created_time_ms,
            encryption: key.as_deref().map(SegmentEncryption::of),
        };
        Ok((header, key))
    }

    /// The file key of an existing segment with `header`, when it is encrypted.
    fn segment_key(&self, path: &Path, header: &SegmentHeader) -> Result<Option<Arc<FileKey>>> {
        let Some(encryption) = header.encryption else {
            return Ok(None);
        };
        let error = |reason: String| LogError::Encryption {
            path: path.to_owned(),
            reason,
        };
        let keyring = self.keyring.as_ref().ok_or_else(|| {
            error("it is encrypted, and the log was opened without the encryption key".to_owned())
        })?;
        keyring
            .file_key(encryption.key_id, encryption.salt, SEGMENT_PURPOSE)
            .map(|key| Some(Arc::new(key)))
            .map_err(|e| error(e.to_string()))
    }
}

/// A record to append. Validated against [`crate::limits`] by the stream before it reaches a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendRecord {
    pub partition_key: String,
    /// Overrides the MD5 of the partition key for choosing the shard, as Kinesis `ExplicitHashKey`.
    pub explicit_hash_key: Option<u128>,
    pub data: Vec<u8>,
}

impl AppendRecord {
    pub fn new(partition_key: impl Into<String>, data: impl Into<Vec<u8>>) -> Self {
        AppendRecord {
            partition_key: partition_key.into(),
            explicit_hash_key: None,
            data: data.into(),
        }
    }
}

/// An acknowledged (fsynced) record: where it went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendedRecord {
    pub shard_index: u32,
    pub sequence_number: SequenceNumber,
    pub arrival_time_ms: u64,
}

/// A record read back from a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub sequence_number: SequenceNumber,
    /// Milliseconds since the epoch when the log accepted the record; never decreases within a shard.
    pub arrival_time_ms: u64,
    pub partition_key: String,
    pub explicit_hash_key: Option<u128>,
    pub data: Vec<u8>,
}

/// Where an iterator starts, as the Kinesis `ShardIteratorType`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IteratorStart {
    /// The oldest record still retained.
    TrimHorizon,
    /// Just after the newest acknowledged record: only records appended later are read.
    Latest,
    /// The record with this sequence number (the trim horizon if it has expired).
    AtSequenceNumber(SequenceNumber),
    /// The record after this sequence number (the trim horizon if it has expired).
    AfterSequenceNumber(SequenceNumber),
    /// The first record that arrived at or after this time (ms since the epoch).
    AtTimestamp(u64),
}

/// A read position in one shard: the next record to read. It is a plain value (shard index and
/// next sequence number) so the API layer can encode it in an opaque shard iterator string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShardPosition {
    pub shard_index: u32,
    pub next_record_offset: u64,
}

impl ShardPosition {
    /// The sequence number the next record read from here will have (or a later one if that
    /// record has expired).
    pub fn next_sequence_number(self) -> SequenceNumber {
        SequenceNumber::from_shard_offset(self.shard_index, self.next_record_offset)
    }

    pub fn from_next_sequence_number(sequence_number: SequenceNumber) -> Self {
        ShardPosition {
            shard_index: sequence_number.shard_index(),
            next_record_offset: sequence_number.record_offset(),
        }
    }
}

/// The answer to one read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadBatch {
    pub records: Vec<Record>,
    /// Where to continue; equal to the input position when nothing new was durable.
    pub next_position: ShardPosition,
    /// 0 when this read reached the newest acknowledged record; otherwise how long ago the last
    /// record returned arrived, as Kinesis `MillisBehindLatest`.
    pub millis_behind_latest: u64,
}

/// The retention settings of a stream, applied to each of its shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub retention_period_ms: u64,
    /// Largest total size of a shard's segments; `None` for no size limit.
    pub retention_bytes_per_shard_max: Option<u64>,
}

/// What a retention pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    pub segments_deleted: u64,
    pub bytes_deleted: u64,
}

impl RetentionOutcome {
    pub(crate) fn add(&mut self, other: RetentionOutcome) {
        self.segments_deleted += other.segments_deleted;
        self.bytes_deleted += other.bytes_deleted;
    }
}

/// What a shard looks like from outside, for DescribeStream / ListShards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardDescription {
    pub shard_index: u32,
    pub hash_key_range: HashKeyRange,
    /// Sequence number of the oldest retained record (or of the next one, when empty).
    pub trim_horizon_sequence_number: SequenceNumber,
    /// Sequence number the next acknowledged record will have.
    pub next_sequence_number: SequenceNumber,
    pub segment_count: usize,
    pub size_bytes: u64,
}

/// State only the writer mutex guards.
#[derive(Debug)]
struct WriterState {
    file: Arc<File>,
    segment: Arc<Segment>,
    write_position_bytes: u64,
    next_offset: u64,
    last_arrival_time_ms: u64,
    /// Set when the stream is deleted: no write may touch the directory again.
    closed: bool,
}

/// State of the group commit, guarded by its own mutex and announced through `sync_done`.
#[derive(Debug)]
struct SyncState {
    /// All records below this offset have been written to `written_file` or to an earlier,
    /// already fsynced, segment.
    written_next_offset: u64,
    written_file: Arc<File>,
    /// All records below this offset are durable.
    synced_next_offset: u64,
    sync_in_progress: bool,
    poisoned: bool,
}

/// A write made but not yet known durable.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriteTicket {
    first_offset: u64,
    end_offset: u64,
    arrival_time_ms: u64,
}

/// One shard of a stream. Cheap to share: every method takes `&self`.
#[derive(Debug)]
pub struct Shard {
    stream_name: String,
    shard_index: u32,
    hash_key_range: HashKeyRange,
    directory: PathBuf,
    environment: Arc<Environment>,
    writer: Mutex<WriterState>,
    sync: Mutex<SyncState>,
    sync_done: Condvar,
    segments: RwLock<Vec<Arc<Segment>>>,
    durable_next_offset: AtomicU64,
    poisoned: AtomicBool,
    /// Set when the stream is deleted, for readers (writers see `WriterState::closed`).
    deleted: AtomicBool,
}

pub(crate) fn shard_directory_name(shard_index: u32) -> String {
    format!("shard-{shard_index:06}")
}

impl Shard {
    /// Creates the directory and first segment of a new, empty shard, durably.
    pub(crate) fn create(
        stream_name: &str,
        shard_index: u32,
        hash_key_range: HashKeyRange,
        directory: PathBuf,
        environment: Arc<Environment>,
    ) -> Result<Shard> {
        create_directory_durably(&directory, environment.disk.as_ref())?;
        let (header, key) =
            environment.new_segment(&directory, shard_index, 0, environment.clock.now_ms())?;
        let (segment, file) =
            create_segment_file(&directory, header, key, environment.disk.as_ref())?;
        *lock(&segment.index) = Some(Vec::new());
        let segment = Arc::new(segment);
        Ok(Shard::assemble(
            stream_name,
            shard_index,
            hash_key_range,
            directory,
            environment,
            (vec![Arc::clone(&segment)], segment),
            file,
            0,
            header.created_time_ms,
        ))
    }

    /// Opens an existing shard: lists its segments, checks their headers, recovers the last one
    /// (truncating a torn tail, refusing corruption) and fsyncs it so that everything readers
    /// may now see is durable.
    pub(crate) fn open(
        stream_name: &str,
        shard_index: u32,
        hash_key_range: HashKeyRange,
        directory: PathBuf,
        environment: Arc<Environment>,
    ) -> Result<Shard> {
        let segment_paths = list_segment_files(&directory)?;
        let mut segments = Vec::with_capacity(segment_paths.len());
        for (first_offset, path) in &segment_paths {
            let io_context = || format!("open segment {}", path.display());
            let file = File::open(path).map_err(|error| LogError::io(io_context(), error))?;
            let header = read_segment_header(path, &file)?;
            if header.first_offset != *first_offset || header.shard_index != shard_index {
                return Err(LogError::corruption(
                    path,
                    0,
                    format!(
                        "header names shard {} offset {} but the file belongs to shard {shard_index} offset {first_offset}",
                        header.shard_index, header.first_offset
                    ),
                ));
            }
            let size_bytes = file
                .metadata()
                .map_err(|error| LogError::io(io_context(), error))?
                .len();
            let key = environment.segment_key(path, &header)?;
            segments.push(Arc::new(Segment::new(
                path.clone(),
                header,
                size_bytes,
                key,
            )));
        }
        let Some(last) = segments.last().cloned() else {
            return Err(LogError::corruption(
                &directory,
                0,
                "shard directory holds no segment",
            ));
        };
        let scan = scan_segment(&last.path, last.key.as_deref())?;
        let io_context = || format!("recover segment {}", last.path.display());
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&last.path)
            .map_err(|error| LogError::io(io_context(), error))?;
        if let Some(torn_tail) = &scan.torn_tail {
            tracing::warn!(
                path = %last.path.display(),
                position_bytes = torn_tail.position_bytes,
                dropped_bytes = scan.file_length_bytes - scan.valid_end_bytes,
                reason = torn_tail.reason,
                "truncating torn tail of segment"
            );
            file.set_len(scan.valid_end_bytes)
                .map_err(|error| LogError::io(io_context(), error))?;
        }
        // Frames accepted here may sit only in the page cache after a process crash: make them
        // durable before any reader can see them.
        environment
            .disk
            .sync_file(&file)
            .map_err(|error| LogError::io(io_context(), error))?;
        last.size_bytes
            .store(scan.valid_end_bytes, Ordering::Release);
        *lock(&last.index) = Some(scan.index);
        let last_arrival_time_ms = scan
            .last_arrival_time_ms
            .unwrap_or(0)
            .max(last.created_time_ms);
        let shard = Shard::assemble(
            stream_name,
            shard_index,
            hash_key_range,
            directory,
            environment,
            (segments, last),
            file,
            scan.next_offset,
            last_arrival_time_ms,
        );
        shard.encrypt_from_here()?;
        Ok(shard)
    }

    /// With a keyring, makes the active segment an encrypted one, so that every record
    /// appended from now on is sealed: a plain segment with records is closed and a new one
    /// started; one without any is replaced (the new file is renamed over it).
    fn encrypt_from_here(&self) -> Result<()> {
        if self.environment.keyring.is_none() {
            return Ok(());
        }
        let mut writer = lock(&self.writer);
        if writer.segment.key.is_some() {
            return Ok(());
        }
        let created_time_ms = self
            .environment
            .clock
            .now_ms()
            .max(writer.last_arrival_time_ms);
        if writer.write_position_bytes > writer.segment.data_start_bytes {
            return self.roll_segment(&mut writer, created_time_ms);
        }
        let (header, key) = self.environment.new_segment(
            &self.directory,
            self.shard_index,
            writer.next_offset,
            writer.segment.created_time_ms,
        )?;
        let (segment, file) =
            create_segment_file(&self.directory, header, key, self.environment.disk.as_ref())?;
        *lock(&segment.index) = Some(Vec::new());
        let segment = Arc::new(segment);
        if let Some(last) = write_lock(&self.segments).last_mut() {
            *last = Arc::clone(&segment);
        }
        let file = Arc::new(file);
        writer.write_position_bytes = segment.data_start_bytes;
        writer.file = Arc::clone(&file);
        writer.segment = segment;
        lock(&self.sync).written_file = file;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        stream_name: &str,
        shard_index: u32,
        hash_key_range: HashKeyRange,
        directory: PathBuf,
        environment: Arc<Environment>,
        (segments, active_segment): (Vec<Arc<Segment>>, Arc<Segment>),
        active_file: File,
        next_offset: u64,
        last_arrival_time_ms: u64,
    ) -> Shard {
        let active_file = Arc::new(active_file);
        let write_position_bytes = active_segment.size_bytes();
        Shard {
            stream_name: stream_name.to_owned(),
            shard_index,
            hash_key_range,
            directory,
            environment,
            writer: Mutex::new(WriterState {
                file: Arc::clone(&active_file),
                segment: active_segment,
                write_position_bytes,
                next_offset,
                last_arrival_time_ms,
                closed: false,
            }),
            sync: Mutex::new(SyncState {
                written_next_offset: next_offset,
                written_file: active_file,
                synced_next_offset: next_offset,
                sync_in_progress: false,
                poisoned: false,
            }),
            sync_done: Condvar::new(),
            segments: RwLock::new(segments),
            durable_next_offset: AtomicU64::new(next_offset),
            poisoned: AtomicBool::new(false),
            deleted: AtomicBool::new(false),
        }
    }

    pub fn shard_index(&self) -> u32 {
        self.shard_index
    }

    pub fn hash_key_range(&self) -> HashKeyRange {
        self.hash_key_range
    }

    /// Whether a failed write or fsync made this shard refuse writes until reopen.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    pub fn describe(&self) -> ShardDescription {
        let segments = read_lock(&self.segments);
        let durable_next_offset = self.durable_next_offset.load(Ordering::Acquire);
        let trim_horizon_offset = segments
            .first()
            .map_or(durable_next_offset, |segment| segment.first_offset);
        ShardDescription {
            shard_index: self.shard_index,
            hash_key_range: self.hash_key_range,
            trim_horizon_sequence_number: self.sequence_number(trim_horizon_offset),
            next_sequence_number: self.sequence_number(durable_next_offset),
            segment_count: segments.len(),
            size_bytes: segments.iter().map(|segment| segment.size_bytes()).sum(),
        }
    }

    /// Appends one record and returns once it is durable.
    pub fn append(&self, record: &AppendRecord) -> Result<AppendedRecord> {
        let appended = self.append_batch(std::slice::from_ref(record))?;
        appended
            .into_iter()
            .next()
            .ok_or_else(|| LogError::InvalidArgument("append produced no record".to_owned()))
    }

    /// Appends records with one write and (at most) one fsync, shared with concurrent appenders,
    /// and returns once all are durable. All succeed or all fail.
    pub fn append_batch(&self, records: &[AppendRecord]) -> Result<Vec<AppendedRecord>> {
        validate_batch(records)?;
        let records: Vec<&AppendRecord> = records.iter().collect();
        let ticket = self.write_batch(&records)?;
        self.wait_durable(ticket)?;
        Ok(self.appended_records(ticket))
    }

    pub(crate) fn appended_records(&self, ticket: WriteTicket) -> Vec<AppendedRecord> {
        (ticket.first_offset..ticket.end_offset)
            .map(|offset| AppendedRecord {
                shard_index: self.shard_index,
                sequence_number: self.sequence_number(offset),
                arrival_time_ms: ticket.arrival_time_ms,
            })
            .collect()
    }

    fn sequence_number(&self, offset: u64) -> SequenceNumber {
        SequenceNumber::from_shard_offset(self.shard_index, offset)
    }

    fn poisoned_error(&self) -> LogError {
        LogError::ShardPoisoned {
            stream: self.stream_name.clone(),
            shard_index: self.shard_index,
        }
    }

    /// Marks the shard poisoned and wakes every waiter so none waits for an fsync that will not come.
    fn poison(&self) {
        self.poisoned.store(true, Ordering::Release);
        let mut sync = lock(&self.sync);
        sync.poisoned = true;
        drop(sync);
        self.sync_done.notify_all();
    }

    /// Raises the durable end after a successful fsync and wakes the waiters.
    fn mark_synced(&self, synced_next_offset: u64) {
        let mut sync = lock(&self.sync);
        if synced_next_offset > sync.synced_next_offset {
            sync.synced_next_offset = synced_next_offset;
            self.durable_next_offset
                .store(synced_next_offset, Ordering::Release);
        }
        drop(sync);
        self.sync_done.notify_all();
    }

    /// Encodes and writes the records under the writer mutex; does not fsync. The caller has
    /// checked the records against the limits (`validate_batch`).
    pub(crate) fn write_batch(&self, records: &[&AppendRecord]) -> Result<WriteTicket> {
        let mut writer = lock(&self.writer);
        if writer.closed {
            return Err(LogError::StreamDeleted(self.stream_name.clone()));
        }
        if self.is_poisoned() {
            return Err(self.poisoned_error());
        }
        let arrival_time_ms = self
            .environment
            .clock
            .now_ms()
            .max(writer.last_arrival_time_ms);
        let first_offset = writer.next_offset;
        let estimated_bytes: usize = records
            .iter()
            .map(|record| 64 + record.partition_key.len() + record.data.len())
            .sum();
        let mut buffer = Vec::with_capacity(estimated_bytes);
        let mut frame_starts_bytes = Vec::with_capacity(records.len());
        let mut offset = first_offset;
        // A batch never spans two segments: roll first, so that the batch is sealed under the
        // key of the segment it goes into.
        let batch_bytes: u64 = records
            .iter()
            .map(|record| {
                frame_bytes(
                    record.partition_key.len(),
                    record.explicit_hash_key.is_some(),
                    record.data.len(),
                    writer.segment.key.is_some(),
                )
            })
            .sum();
        let segment_has_records = writer.write_position_bytes > writer.segment.data_start_bytes;
        if segment_has_records
            && writer.write_position_bytes + batch_bytes > self.environment.segment_bytes_max
        {
            self.roll_segment(&mut writer, arrival_time_ms)?;
        }
        let key = writer.segment.key.clone();
        for record in records {
            frame_starts_bytes.push(buffer.len() as u64);
            encode_frame(
                &mut buffer,
                offset,
                arrival_time_ms,
                &record.partition_key,
                record.explicit_hash_key,
                &record.data,
                key.as_deref(),
            )
            .map_err(|error| LogError::Encryption {
                path: writer.segment.path.clone(),
                reason: error.to_string(),
            })?;
            offset += 1;
        }
        let end_offset = offset;
        debug_assert!(frames_are_valid(
            &buffer,
            first_offset,
            records.len(),
            key.as_deref()
        ));
        debug_assert_eq!(batch_bytes, buffer.len() as u64);
        let batch_bytes = buffer.len() as u64;
        let position_bytes = writer.write_position_bytes;
        if let Err(error) = writer.file.write_all_at(&buffer, position_bytes) {
            self.poison();
            return Err(LogError::io(
                format!("append to segment {}", writer.segment.path.display()),
                error,
            ));
        }
        {
            let mut index = lock(&writer.segment.index);
            let entries = index.get_or_insert_with(Vec::new);
            for (offset, frame_start_bytes) in (first_offset..).zip(&frame_starts_bytes) {
                maybe_push_index_entry(
                    entries,
                    IndexEntry {
                        offset,
                        position_bytes: position_bytes + frame_start_bytes,
                        arrival_time_ms,
                    },
                );
            }
        }
        writer.write_position_bytes += batch_bytes;
        writer
            .segment
            .size_bytes
            .store(writer.write_position_bytes, Ordering::Release);
        writer.next_offset = end_offset;
        writer.last_arrival_time_ms = arrival_time_ms;
        let mut sync = lock(&self.sync);
        sync.written_next_offset = end_offset;
        sync.written_file = Arc::clone(&writer.file);
        Ok(WriteTicket {
            first_offset,
            end_offset,
            arrival_time_ms,
        })
    }

    /// Seals the active segment (fsync) and starts a new one whose header carries the arrival
    /// time of the batch about to be written.
    fn roll_segment(&self, writer: &mut WriterState, created_time_ms: u64) -> Result<()> {
        if let Err(error) = self.environment.disk.sync_file(&writer.file) {
            self.poison();
            return Err(LogError::io(
                format!("fsync segment {}", writer.segment.path.display()),
                error,
            ));
        }
        self.mark_synced(writer.next_offset);
        let created = self
            .environment
            .new_segment(
                &self.directory,
                self.shard_index,
                writer.next_offset,
                created_time_ms,
            )
            .and_then(|(header, key)| {
                create_segment_file(&self.directory, header, key, self.environment.disk.as_ref())
            });
        let (segment, file) = match created {
            Ok(created) => created,
            Err(error) => {
                self.poison();
                return Err(error);
            }
        };
        *lock(&segment.index) = Some(Vec::new());
        tracing::debug!(path = %segment.path.display(), "rolled to a new segment");
        let segment = Arc::new(segment);
        write_lock(&self.segments).push(Arc::clone(&segment));
        writer.file = Arc::new(file);
        writer.segment = segment;
        writer.write_position_bytes = writer.segment.data_start_bytes;
        Ok(())
    }

    /// Returns once every record of the ticket is durable. One waiter at a time fsyncs, for all
    /// writes made before it started; the others wait on the condition variable.
    pub(crate) fn wait_durable(&self, ticket: WriteTicket) -> Result<()> {
        let mut sync = lock(&self.sync);
        loop {
            if sync.synced_next_offset >= ticket.end_offset {
                return Ok(());
            }
            if sync.poisoned {
                return Err(self.poisoned_error());
            }
            if sync.sync_in_progress {
                sync = self
                    .sync_done
                    .wait(sync)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                continue;
            }
            sync.sync_in_progress = true;
            let file = Arc::clone(&sync.written_file);
            let target_next_offset = sync.written_next_offset;
            drop(sync);
            let result = self.environment.disk.sync_file(&file);
            sync = lock(&self.sync);
            sync.sync_in_progress = false;
            match result {
                Ok(()) => {
                    if target_next_offset > sync.synced_next_offset {
                        sync.synced_next_offset = target_next_offset;
                        self.durable_next_offset
                            .store(target_next_offset, Ordering::Release);
                    }
                    self.sync_done.notify_all();
                }
                Err(error) => {
                    sync.poisoned = true;
                    self.poisoned.store(true, Ordering::Release);
                    self.sync_done.notify_all();
                    return Err(LogError::io(
                        format!(
                            "fsync shard {} of stream {}",
                            self.shard_index, self.stream_name
                        ),
                        error,
                    ));
                }
            }
        }
    }

    /// Refuses every later write; used when the stream is deleted.
    pub(crate) fn close(&self) {
        self.deleted.store(true, Ordering::Release);
        lock(&self.writer).closed = true;
    }

    fn segments_snapshot(&self) -> Vec<Arc<Segment>> {
        read_lock(&self.segments).clone()
    }

    fn check_sequence_number(&self, sequence_number: SequenceNumber) -> Result<u64> {
        if !sequence_number.reserved_bits_are_zero()
            || sequence_number.shard_index() != self.shard_index
        {
            return Err(self.not_in_shard(sequence_number, "it belongs to another shard"));
        }
        Ok(sequence_number.record_offset())
    }

    fn not_in_shard(&self, sequence_number: SequenceNumber, reason: &'static str) -> LogError {
        LogError::SequenceNumberNotInShard {
            stream: self.stream_name.clone(),
            shard_index: self.shard_index,
            sequence_number: sequence_number.to_string(),
            reason,
        }
    }

    fn position(&self, next_record_offset: u64) -> ShardPosition {
        ShardPosition {
            shard_index: self.shard_index,
            next_record_offset,
        }
    }

    /// Resolves an iterator start to a position. Positions at or before the trim horizon read
    /// from the oldest retained record.
    pub fn position_for(&self, start: IteratorStart) -> Result<ShardPosition> {
        let durable_next_offset = self.durable_next_offset.load(Ordering::Acquire);
        let segments = self.segments_snapshot();
        let trim_horizon_offset = segments
            .first()
            .map_or(durable_next_offset, |segment| segment.first_offset);
        let next_record_offset = match start {
            IteratorStart::TrimHorizon => trim_horizon_offset,
            IteratorStart::Latest => durable_next_offset,
            IteratorStart::AtSequenceNumber(sequence_number) => {
                let offset = self.check_sequence_number(sequence_number)?;
                if offset >= durable_next_offset {
                    return Err(self.not_in_shard(sequence_number, "no such record yet"));
                }
                offset.max(trim_horizon_offset)
            }
            IteratorStart::AfterSequenceNumber(sequence_number) => {
                let offset = self.check_sequence_number(sequence_number)?;
                if offset >= durable_next_offset {
                    return Err(self.not_in_shard(sequence_number, "no such record yet"));
                }
                (offset + 1).max(trim_horizon_offset)
            }
            IteratorStart::AtTimestamp(timestamp_ms) => {
                self.offset_at_timestamp(&segments, durable_next_offset, timestamp_ms)?
            }
        };
        Ok(self.position(next_record_offset))
    }

    fn offset_at_timestamp(
        &self,
        segments: &[Arc<Segment>],
        durable_next_offset: u64,
        timestamp_ms: u64,
    ) -> Result<u64> {
        // Records of segment k arrived no earlier than its created time and no later than the
        // next segment's, so the answer is in or after the last segment created strictly before
        // the timestamp.
        let segment_position = segments
            .partition_point(|segment| segment.created_time_ms < timestamp_ms)
            .saturating_sub(1);
        let Some(segment) = segments.get(segment_position) else {
            return Ok(durable_next_offset);
        };
        if let Some(next) = segments.get(segment_position + 1) {
            segment.ensure_sealed_index(next.first_offset)?;
        }
        let start_offset = segment.start_offset_for_timestamp(timestamp_ms);
        let mut found = durable_next_offset;
        let visited =
            self.visit_records(segments, durable_next_offset, start_offset, |record| {
                if record.arrival_time_ms >= timestamp_ms {
                    found = record.offset;
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })?;
        if visited.is_none() {
            // Retention removed a segment under us: everything left is newer, start at the horizon.
            return Ok(read_lock(&self.segments)
                .first()
                .map_or(durable_next_offset, |segment| segment.first_offset));
        }
        Ok(found)
    }

    /// Calls `visit` with each durable record from `start_offset` on, until it breaks or the
    /// durable end. `Ok(None)` when a segment vanished (retention) while it was being read.
    fn visit_records(
        &self,
        segments: &[Arc<Segment>],
        durable_next_offset: u64,
        start_offset: u64,
        mut visit: impl FnMut(StoredRecord) -> ControlFlow<()>,
    ) -> Result<Option<()>> {
        let first_segment_position = segments
            .partition_point(|segment| segment.first_offset <= start_offset)
            .saturating_sub(1);
        for (segment_position, segment) in segments.iter().enumerate().skip(first_segment_position)
        {
            let next_segment_first_offset = segments
                .get(segment_position + 1)
                .map(|next| next.first_offset);
            let segment_end_offset = next_segment_first_offset
                .unwrap_or(u64::MAX)
                .min(durable_next_offset);
            if start_offset >= segment_end_offset {
                continue;
            }
            if let Some(end_offset) = next_segment_first_offset {
                segment.ensure_sealed_index(end_offset)?;
            }
            let entry = segment.start_for_offset(start_offset.max(segment.first_offset));
            let Some(mut cursor) = SegmentCursor::open(segment, entry.position_bytes)? else {
                return Ok(None);
            };
            for offset in entry.offset..segment_end_offset {
                let record = cursor.next_record(offset)?;
                if offset < start_offset {
                    continue;
                }
                if visit(record).is_break() {
                    return Ok(Some(()));
                }
            }
        }
        Ok(Some(()))
    }

    /// Reads up to `records_max` records and about `bytes_max` bytes (keys plus data; at least
    /// one record when one is available) from `position`.
    pub fn read(
        &self,
        position: ShardPosition,
        records_max: usize,
        bytes_max: usize,
    ) -> Result<ReadBatch> {
        if position.shard_index != self.shard_index {
            return Err(LogError::InvalidArgument(format!(
                "position of shard {} used on shard {}",
                position.shard_index, self.shard_index
            )));
        }
        if !(1..=READ_RECORDS_MAX).contains(&records_max) {
            return Err(LogError::InvalidArgument(format!(
                "records_max must be between 1 and {READ_RECORDS_MAX}, not {records_max}"
            )));
        }
        if !(1..=READ_BYTES_MAX).contains(&bytes_max) {
            return Err(LogError::InvalidArgument(format!(
                "bytes_max must be between 1 and {READ_BYTES_MAX}, not {bytes_max}"
            )));
        }
        // Another attempt is needed only when retention deleted a segment during this one; the
        // next attempt starts from the new trim horizon.
        for _ in 0..READ_ATTEMPTS_MAX {
            if self.deleted.load(Ordering::Acquire) {
                return Err(LogError::StreamDeleted(self.stream_name.clone()));
            }
            if let Some(batch) = self.read_once(position, records_max, bytes_max)? {
                return Ok(batch);
            }
        }
        Err(LogError::io(
            format!(
                "read shard {} of stream {}",
                self.shard_index, self.stream_name
            ),
            io::Error::other("segments kept vanishing under concurrent retention"),
        ))
    }

    fn read_once(
        &self,
        position: ShardPosition,
        records_max: usize,
        bytes_max: usize,
    ) -> Result<Option<ReadBatch>> {
        let durable_next_offset = self.durable_next_offset.load(Ordering::Acquire);
        let segments = self.segments_snapshot();
        let trim_horizon_offset = segments
            .first()
            .map_or(durable_next_offset, |segment| segment.first_offset);
        let start_offset = position
            .next_record_offset
            .max(trim_horizon_offset)
            .min(durable_next_offset);
        let mut records = Vec::new();
        let mut bytes_total = 0usize;
        let mut next_offset = start_offset;
        let visited =
            self.visit_records(&segments, durable_next_offset, start_offset, |stored| {
                let record_bytes = stored.partition_key.len() + stored.data.len();
                if !records.is_empty() && bytes_total + record_bytes > bytes_max {
                    return ControlFlow::Break(());
                }
                bytes_total += record_bytes;
                next_offset = stored.offset + 1;
                records.push(Record {
                    sequence_number: self.sequence_number(stored.offset),
                    arrival_time_ms: stored.arrival_time_ms,
                    partition_key: stored.partition_key,
                    explicit_hash_key: stored.explicit_hash_key,
                    data: stored.data,
                });
                if records.len() >= records_max {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })?;
        if visited.is_none() {
            return Ok(None);
        }
        let millis_behind_latest = if next_offset >= durable_next_offset {
            0
        } else {
            let now_ms = self.environment.clock.now_ms();
            records
                .last()
                .map_or(0, |record| now_ms.saturating_sub(record.arrival_time_ms))
        };
        Ok(Some(ReadBatch {
            records,
            next_position: self.position(next_offset),
            millis_behind_latest,
        }))
    }

    /// Deletes whole sealed segments, oldest first, while they are expired or the shard is over
    /// its size limit. The active segment is never deleted. Each deletion is made durable
    /// (directory fsync) before the next, so a crash never leaves a gap in the middle.
    pub fn enforce_retention(
        &self,
        now_ms: u64,
        policy: RetentionPolicy,
    ) -> Result<RetentionOutcome> {
        let mut outcome = RetentionOutcome::default();
        let expiry_cutoff_ms = now_ms.saturating_sub(policy.retention_period_ms);
        loop {
            let victim = {
                let segments = read_lock(&self.segments);
                let (Some(oldest), Some(next)) = (segments.first(), segments.get(1)) else {
                    break;
                };
                let total_bytes: u64 = segments.iter().map(|segment| segment.size_bytes()).sum();
                // Every record of `oldest` arrived at or before `next` was created.
                let expired = next.created_time_ms < expiry_cutoff_ms;
                let oversize = policy
                    .retention_bytes_per_shard_max
                    .is_some_and(|bytes_max| total_bytes > bytes_max);
                if !expired && !oversize {
                    break;
                }
                Arc::clone(oldest)
            };
            {
                let mut segments = write_lock(&self.segments);
                match segments.first() {
                    Some(first) if Arc::ptr_eq(first, &victim) => {
                        segments.remove(0);
                    }
                    _ => continue,
                }
            }
            match fs::remove_file(&victim.path) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => {
                    return Err(LogError::io(
                        format!("delete expired segment {}", victim.path.display()),
                        error,
                    ));
                }
            }
            self.environment
                .disk
                .sync_directory(&self.directory)
                .map_err(|error| {
                    LogError::io(
                        format!("fsync directory {}", self.directory.display()),
                        error,
                    )
                })?;
            tracing::info!(
                path = %victim.path.display(),
                size_bytes = victim.size_bytes(),
                "retention deleted segment"
            );
            outcome.segments_deleted += 1;
            outcome.bytes_deleted += victim.size_bytes();
        }
        Ok(outcome)
    }
}

/// The segment files of a shard directory in offset order; deletes leftover temporary files.
fn list_segment_files(directory: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let io_context = || format!("list shard directory {}", directory.display());
    let mut segments = Vec::new();
    for entry in fs::read_dir(directory).map_err(|error| LogError::io(io_context(), error))? {
        let entry = entry.map_err(|error| LogError::io(io_context(), error))?;
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        if file_name.ends_with(TEMPORARY_SUFFIX) {
            fs::remove_file(entry.path()).map_err(|error| {
                LogError::io(format!("delete leftover {}", entry.path().display()), error)
            })?;
            continue;
        }
        if let Some(first_offset) = parse_segment_file_name(file_name) {
            segments.push((first_offset, entry.path()));
        }
    }
    segments.sort_by_key(|(first_offset, _)| *first_offset);
    Ok(segments)
}
