//! Kinesis sources: a stream of a Kinesis API outside this node (Amazon Kinesis, kinesalite,
//! another Sluice) read into a one-shard stream of this node's log, its *copy*, from which a
//! delivery stream or an event-source mapping reads exactly as from a local stream. Each
//! consumer has its own source, which starts where the consumer asked (Firehose: at its
//! creation; a mapping: its `StartingPosition`), and is deleted with it.
//!
//! Reading follows the stream's shard lineage: a shard is read only after its parents (and a
//! merged shard's adjacent parent) are read to their end, so the records of one partition key
//! stay in order across a split or a merge; shards of the same generation are read in turn.
//! KPL-aggregated records are split into their user records, each with its own partition key.
//! A throttled call (`ProvisionedThroughputExceededException`, a 5xx, a lost connection) is
//! retried after an exponential pause with jitter; an expired iterator is made again from the
//! saved position.
//!
//! **Exactly once into the copy.** Under `<data dir>/kinesis-sources/`, `catalog.json` lists
//! the sources, and `<id>.position` holds, per shard, the last record copied (or how many user
//! records of an aggregated one). Each `GetRecords` answer is copied in three durable steps:
//! 1. the position is saved with a *pending* note: the shard, the copy's end offset before the
//!    append, and each Kinesis record's sequence number and count of user records;
//! 2. the user records are appended to the copy (acknowledged by the log only once fsynced);
//! 3. the position is saved with the shard moved past the answer and no pending note.
//!
//! A crash before step 3 leaves the note: at the next start, the copy's end offset says how
//! many of the noted user records reached it, and the shard's position is moved past exactly
//! those, so nothing is copied twice or skipped.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sluice_log::{AppendRecord, IteratorStart, Log, LogError, StreamConfig};

use crate::kinesis_client::{
    IteratorAt, KinesisCallError, KinesisClient, KinesisEndpoint, RemoteRecord, ShardInfo,
    StreamArn, rand_u32, retry_pause,
};
use crate::{kpl, position_file};

/// The folder of the data directory that holds the catalog and the positions.
pub const KINESIS_SOURCES_DIRECTORY: &str = "kinesis-sources";
/// The prefix of the copies' names in the log; the Kinesis API neither lists, reads nor
/// writes them.
pub const COPY_STREAM_PREFIX: &str = "kinesis-source.";
const CATALOG_FILE_NAME: &str = "catalog.json";
const CATALOG_FORMAT_VERSION: u32 = 1;
const POSITION_FORMAT_VERSION: u32 = 1;
/// Largest catalog or position file read; a larger one is refused as damaged.
const FILE_BYTES_MAX: u64 = 16 * 1024 * 1024;
/// Sources a node keeps (one per consumer of an external stream).
pub const KINESIS_SOURCES_MAX: usize = 1_000;
/// Records one `GetRecords` takes (Kinesis allows up to 10,000): this bounds a worker's memory,
/// the pending note and the records one crash leaves to settle.
pub const RECORDS_PER_READ: usize = 500;
/// Pause after a pass over the readable shards that found no record. Kinesis allows five
/// `GetRecords` per second per shard.
pub const IDLE_POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How often the shard list is read again to find the children of a split or a merge (and
/// at once when a shard is read to its end).
pub const LIST_SHARDS_INTERVAL: Duration = Duration::from_secs(10);

/// Every failure of a Kinesis source operation.
#[derive(Debug, thiserror::Error)]
pub enum KinesisSourceError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Storage(String),
    #[error(transparent)]
    Log(#[from] LogError),
}

type Result<T, E = KinesisSourceError> = std::result::Result<T, E>;

/// Where a source starts in shards it has no position for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE", deny_unknown_fields)]
pub enum SourceStart {
    TrimHorizon,
    /// Milliseconds since the epoch (records that arrived at or after it).
    AtTimestamp {
        timestamp_ms: u64,
    },
}

/// One source, as the catalog keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KinesisSourceDefinition {
    /// Also the name of its position file and of its copy (with [`COPY_STREAM_PREFIX`]).
    pub id: String,
    /// Who reads the copy: `firehose/<delivery stream>` or `lambda/<mapping uuid>`.
    pub owner: String,
    pub stream_arn: String,
    pub endpoint: String,
    pub region: String,
    pub start: SourceStart,
    pub created_ms: u64,
}

impl KinesisSourceDefinition {
    /// The name of the copy in the log.
    pub fn copy_stream(&self) -> String {
        format!("{COPY_STREAM_PREFIX}{}", self.id)
    }

    fn stream_name(&self) -> &str {
        StreamArn::parse(&self.stream_arn).map_or("", |arn| arn.name)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Catalog {
    format_version: u32,
    sources: Vec<KinesisSourceDefinition>,
}

/// How far one shard was copied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardState {
    /// The last Kinesis record copied whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// An aggregated record of which only the first `done` user records were copied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inside: Option<(String, u32)>,
    /// Read to its end (closed by a split or a merge).
    #[serde(default)]
    pub finished: bool,
}

/// Step 1's note: what an append about to happen holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pending {
    pub shard_id: String,
    /// The copy's end offset before the append.
    pub copy_start: u64,
    /// Each Kinesis record of the answer: its sequence number and the user records it gave.
    pub records: Vec<(String, u32)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Position {
    pub format_version: u32,
    pub shards: BTreeMap<String, ShardState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
}

impl Position {
    fn new() -> Self {
        Position {
            format_version: POSITION_FORMAT_VERSION,
            shards: BTreeMap::new(),
            pending: None,
        }
    }

    /// Moves the pending note's shard past the user records of it that reached the copy,
    /// whose end offset is now `copy_end`, and drops the note.
    pub fn settle(&mut self, copy_end: u64) -> Result<()> {
        let Some(pending) = self.pending.take() else {
            return Ok(());
        };
        let mut reached = copy_end.checked_sub(pending.copy_start).ok_or_else(|| {
            KinesisSourceError::Storage(format!(
                "the copy ends at offset {copy_end}, before the pending append's start {}",
                pending.copy_start
            ))
        })?;
        let state = self.shards.entry(pending.shard_id).or_default();
        for (sequence, user_records) in pending.records {
            if reached == 0 {
                break;
            }
            // The user records of one Kinesis record, minus those a restart inside it skipped.
            let skipped = match &state.inside {
                Some((inside, done)) if *inside == sequence => *done,
                _ => 0,
            };
            let remaining = u64::from(user_records.saturating_sub(skipped));
            if reached >= remaining {
                reached -= remaining;
                state.after = Some(sequence);
                state.inside = None;
            } else {
                state.inside = Some((sequence, skipped + reached as u32));
                reached = 0;
            }
        }
        if reached > 0 {
            return Err(KinesisSourceError::Storage(format!(
                "the copy holds {reached} records more than the pending append"
            )));
        }
        Ok(())
    }
}

/// The shards to read now, in the listing's order: not read to their end, and every parent
/// read to its end or gone from the listing (past the stream's retention).
pub fn readable_shards<'a>(
    shards: &'a [ShardInfo],
    states: &BTreeMap<String, ShardState>,
) -> Vec<&'a ShardInfo> {
    let listed: std::collections::HashSet<&str> =
        shards.iter().map(|shard| shard.shard_id.as_str()).collect();
    let done = |parent: &Option<String>| match parent {
        None => true,
        Some(parent) => {
            !listed.contains(parent.as_str()) || states.get(parent).is_some_and(|s| s.finished)
        }
    };
    shards
        .iter()
        .filter(|shard| !states.get(&shard.shard_id).is_some_and(|s| s.finished))
        .filter(|shard| done(&shard.parent_shard_id) && done(&shard.adjacent_parent_shard_id))
        .collect()
}

fn storage(error: impl std::fmt::Display) -> KinesisSourceError {
    KinesisSourceError::Storage(error.to_string())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Worker {
    stop: mpsc::Sender<()>,
    handle: Option<JoinHandle<()>>,
}

impl Worker {
    fn stop(&mut self) {
        let _ = self.stop.send(());
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// Every Kinesis source of the node.
pub struct KinesisSources {
    directory: PathBuf,
    log: Arc<Log>,
    catalog: Mutex<BTreeMap<String, KinesisSourceDefinition>>,
    workers: Mutex<BTreeMap<String, Worker>>,
}

impl std::fmt::Debug for KinesisSources {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("KinesisSources")
            .field("directory", &self.directory)
            .finish_non_exhaustive()
    }
}

impl KinesisSources {
    /// Opens the catalog; no worker runs until [`KinesisSources::start_all`].
    pub fn open(data_dir: &Path, log: Arc<Log>) -> Result<Self> {
        let directory = data_dir.join(KINESIS_SOURCES_DIRECTORY);
        fs::create_dir_all(&directory).map_err(storage)?;
        let catalog =
            match position_file::read_bounded(&directory.join(CATALOG_FILE_NAME), FILE_BYTES_MAX)
                .map_err(storage)?
            {
                None => BTreeMap::new(),
                Some(bytes) => {
                    let catalog: Catalog = serde_json::from_slice(&bytes).map_err(storage)?;
                    if catalog.format_version != CATALOG_FORMAT_VERSION {
                        return Err(storage(format!(
                            "{KINESIS_SOURCES_DIRECTORY}/{CATALOG_FILE_NAME} has format version {}",
                            catalog.format_version
                        )));
                    }
                    catalog
                        .sources
                        .into_iter()
                        .map(|source| (source.id.clone(), source))
                        .collect()
                }
            };
        Ok(KinesisSources {
            directory,
            log,
            catalog: Mutex::new(catalog),
            workers: Mutex::new(BTreeMap::new()),
        })
    }

    fn write_catalog(&self, catalog: &BTreeMap<String, KinesisSourceDefinition>) -> Result<()> {
        let bytes = serde_json::to_vec(&Catalog {
            format_version: CATALOG_FORMAT_VERSION,
            sources: catalog.values().cloned().collect(),
        })
        .map_err(storage)?;
        position_file::replace(&self.directory, CATALOG_FILE_NAME, &bytes).map_err(storage)
    }

    /// Every source, by id.
    pub fn list(&self) -> Vec<KinesisSourceDefinition> {
        lock(&self.catalog).values().cloned().collect()
    }

    /// The source `owner` reads, if any.
    pub fn of_owner(&self, owner: &str) -> Option<KinesisSourceDefinition> {
        lock(&self.catalog)
            .values()
            .find(|source| source.owner == owner)
            .cloned()
    }

    /// Makes the source of `owner` for `stream_arn` at `endpoint` and its empty copy; it does
    /// not run before [`KinesisSources::start`], so its consumer can be made in between.
    pub fn create(
        &self,
        owner: &str,
        stream_arn: &str,
        endpoint: &KinesisEndpoint,
        start: SourceStart,
        now_ms: u64,
    ) -> Result<KinesisSourceDefinition> {
        if StreamArn::parse(stream_arn).is_none() {
            return Err(KinesisSourceError::Invalid(format!(
                "{stream_arn} is not a Kinesis stream ARN"
            )));
        }
        let mut catalog = lock(&self.catalog);
        if catalog.len() >= KINESIS_SOURCES_MAX {
            return Err(KinesisSourceError::Invalid(format!(
                "a node reads at most {KINESIS_SOURCES_MAX} external Kinesis streams"
            )));
        }
        let id = format!("{:016x}{:08x}", now_ms, rand_u32());
        let definition = KinesisSourceDefinition {
            id: id.clone(),
            owner: owner.to_owned(),
            stream_arn: stream_arn.to_owned(),
            endpoint: endpoint.url(),
            region: endpoint.region.clone(),
            start,
            created_ms: now_ms,
        };
        let copy = definition.copy_stream();
        match self.log.delete_stream(&copy) {
            Ok(()) | Err(LogError::StreamNotFound(_)) => {}
            Err(error) => return Err(error.into()),
        }
        self.log.create_stream(&copy, StreamConfig::new(1))?;
        position_file::write(&self.directory, &id, &Position::new()).map_err(storage)?;
        let mut next = catalog.clone();
        next.insert(id, definition.clone());
        self.write_catalog(&next)?;
        *catalog = next;
        Ok(definition)
    }

    /// Makes the source of `owner` for `stream_arn`, then its consumer with `make_consumer`
    /// (given the copy's stream name), then starts the source: the consumer exists before any
    /// record is copied. When the consumer cannot be made, the source is deleted again.
    #[allow(clippy::too_many_arguments)]
    pub fn create_with_consumer<T, E>(
        &self,
        owner: &str,
        stream_arn: &str,
        endpoint: &KinesisEndpoint,
        start: SourceStart,
        now_ms: u64,
        make_consumer: impl FnOnce(String) -> std::result::Result<T, E>,
        error: impl Fn(String) -> E,
    ) -> std::result::Result<T, E> {
        let source = self
            .create(owner, stream_arn, endpoint, start, now_ms)
            .map_err(|failure| error(failure.to_string()))?;
        match make_consumer(source.copy_stream()) {
            Ok(consumer) => {
                self.start(&source.id)
                    .map_err(|failure| error(failure.to_string()))?;
                Ok(consumer)
            }
            Err(failure) => {
                if let Err(cleanup) = self.delete(&source.id) {
                    tracing::warn!(%cleanup, owner, "removing the Kinesis source of a consumer not made failed");
                }
                Err(failure)
            }
        }
    }

    /// Deletes the source of `owner`, if it has one; a failure is logged (the source goes at
    /// the next start, whose owner is gone).
    pub fn delete_of_owner(&self, owner: &str) {
        if let Some(source) = self.of_owner(owner)
            && let Err(error) = self.delete(&source.id)
        {
            tracing::warn!(%error, owner, "removing the Kinesis source of a deleted consumer failed; it goes at the next start");
        }
    }

    /// Starts the worker of source `id`.
    pub fn start(&self, id: &str) -> Result<()> {
        let definition = lock(&self.catalog)
            .get(id)
            .cloned()
            .ok_or_else(|| KinesisSourceError::NotFound(format!("no Kinesis source {id}")))?;
        let mut workers = lock(&self.workers);
        if workers.contains_key(id) {
            return Ok(());
        }
        let (stop, stopped) = mpsc::channel();
        let log = self.log.clone();
        let directory = self.directory.clone();
        let handle = std::thread::Builder::new()
            .name(format!("sluice-kinesis-source-{id}"))
            .spawn(move || run_worker(&definition, &log, &directory, &stopped))
            .map_err(storage)?;
        workers.insert(
            id.to_owned(),
            Worker {
                stop,
                handle: Some(handle),
            },
        );
        Ok(())
    }

    /// Starts the sources whose owner `exists`; deletes the others (a consumer deleted, or a
    /// crash between a source's creation and its consumer's).
    pub fn start_all(&self, exists: impl Fn(&str) -> bool) -> Result<()> {
        for definition in self.list() {
            if exists(&definition.owner) {
                self.start(&definition.id)?;
            } else {
                tracing::info!(owner = %definition.owner, "deleting the Kinesis source of a consumer that is gone");
                self.delete(&definition.id)?;
            }
        }
        Ok(())
    }

    /// Stops and deletes source `id`, its position and its copy.
    pub fn delete(&self, id: &str) -> Result<()> {
        if let Some(mut worker) = lock(&self.workers).remove(id) {
            worker.stop();
        }
        let mut catalog = lock(&self.catalog);
        let Some(definition) = catalog.get(id).cloned() else {
            return Ok(());
        };
        let mut next = catalog.clone();
        next.remove(id);
        self.write_catalog(&next)?;
        *catalog = next;
        position_file::remove(&self.directory, id).map_err(storage)?;
        match self.log.delete_stream(&definition.copy_stream()) {
            Ok(()) | Err(LogError::StreamNotFound(_)) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Stops every worker; an append in flight is settled at the next start.
    pub fn shutdown(&self) {
        let workers = std::mem::take(&mut *lock(&self.workers));
        for (_, mut worker) in workers {
            worker.stop();
        }
    }
}

impl Drop for KinesisSources {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// What a worker keeps between passes.
struct WorkerState<'a> {
    definition: &'a KinesisSourceDefinition,
    client: KinesisClient,
    copy: Arc<sluice_log::Stream>,
    directory: &'a Path,
    position: Position,
    shards: Vec<ShardInfo>,
    listed_at: Option<Instant>,
    iterators: BTreeMap<String, String>,
}

fn run_worker(
    definition: &KinesisSourceDefinition,
    log: &Arc<Log>,
    directory: &Path,
    stop: &Receiver<()>,
) {
    let mut attempt = 0u32;
    let mut state: Option<WorkerState<'_>> = None;
    loop {
        let pause = match pass(&mut state, definition, log, directory) {
            Ok(copied) => {
                attempt = 0;
                if copied {
                    Duration::ZERO
                } else {
                    IDLE_POLL_INTERVAL
                }
            }
            Err(error) => {
                let pause = retry_pause(attempt);
                attempt = attempt.saturating_add(1);
                tracing::warn!(source = %definition.stream_arn, owner = %definition.owner, %error, "reading a Kinesis source failed; retrying");
                if matches!(error, PassError::Fatal(_)) {
                    state = None;
                }
                pause
            }
        };
        match stop.recv_timeout(pause) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum PassError {
    /// A call failed: try again later with what the worker holds.
    #[error(transparent)]
    Call(#[from] KinesisCallError),
    /// The copy or the position could not be written: start over from the files.
    #[error("{0}")]
    Fatal(String),
}

impl From<KinesisSourceError> for PassError {
    fn from(error: KinesisSourceError) -> Self {
        PassError::Fatal(error.to_string())
    }
}

impl From<LogError> for PassError {
    fn from(error: LogError) -> Self {
        PassError::Fatal(error.to_string())
    }
}

fn copy_end(copy: &sluice_log::Stream) -> Result<u64, PassError> {
    Ok(copy
        .shard(0)?
        .position_for(IteratorStart::Latest)?
        .next_record_offset)
}

fn save(directory: &Path, id: &str, position: &Position) -> Result<(), PassError> {
    position_file::write(directory, id, position).map_err(PassError::Fatal)
}

/// One pass over the readable shards; whether any record was copied.
fn pass<'a>(
    state: &mut Option<WorkerState<'a>>,
    definition: &'a KinesisSourceDefinition,
    log: &Arc<Log>,
    directory: &'a Path,
) -> Result<bool, PassError> {
    if state.is_none() {
        let copy = log.stream(&definition.copy_stream())?;
        let mut position: Position = match position_file::read_bounded(
            &position_file::path(directory, &definition.id),
            FILE_BYTES_MAX,
        )
        .map_err(PassError::Fatal)?
        {
            None => Position::new(),
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|error| {
                PassError::Fatal(format!("position of {}: {error}", definition.id))
            })?,
        };
        if position.pending.is_some() {
            position.settle(copy_end(&copy)?)?;
            save(directory, &definition.id, &position)?;
        }
        let client = KinesisClient::new(&definition.endpoint, Some(&definition.region))
            .map_err(PassError::Fatal)?;
        *state = Some(WorkerState {
            definition,
            client,
            copy,
            directory,
            position,
            shards: Vec::new(),
            listed_at: None,
            iterators: BTreeMap::new(),
        });
    }
    let Some(worker) = state.as_mut() else {
        return Ok(false);
    };
    if worker
        .listed_at
        .is_none_or(|at| at.elapsed() >= LIST_SHARDS_INTERVAL)
    {
        worker.shards = worker.client.list_shards(definition.stream_name())?;
        worker.listed_at = Some(Instant::now());
        // Forget the shards the stream no longer lists (past its retention).
        let listed: std::collections::HashSet<&str> = worker
            .shards
            .iter()
            .map(|shard| shard.shard_id.as_str())
            .collect();
        worker
            .position
            .shards
            .retain(|shard_id, _| listed.contains(shard_id.as_str()));
    }
    let readable: Vec<String> = readable_shards(&worker.shards, &worker.position.shards)
        .into_iter()
        .map(|shard| shard.shard_id.clone())
        .collect();
    let mut copied = false;
    for shard_id in readable {
        copied |= read_shard(worker, &shard_id)?;
    }
    Ok(copied)
}

/// Reads one answer of `shard_id` and copies it; whether it held records.
fn read_shard(worker: &mut WorkerState<'_>, shard_id: &str) -> Result<bool, PassError> {
    let stream = worker.definition.stream_name().to_owned();
    let shard_state = worker
        .position
        .shards
        .get(shard_id)
        .cloned()
        .unwrap_or_default();
    let iterator = match worker.iterators.get(shard_id) {
        Some(iterator) => iterator.clone(),
        None => {
            let at = match (&shard_state.inside, &shard_state.after) {
                (Some((sequence, _)), _) => IteratorAt::AtSequence(sequence.clone()),
                (None, Some(sequence)) => IteratorAt::AfterSequence(sequence.clone()),
                (None, None) => match worker.definition.start {
                    SourceStart::TrimHorizon => IteratorAt::TrimHorizon,
                    SourceStart::AtTimestamp { timestamp_ms } => {
                        IteratorAt::Timestamp(timestamp_ms)
                    }
                },
            };
            worker.client.shard_iterator(&stream, shard_id, &at)?
        }
    };
    let read = match worker.client.get_records(&iterator, RECORDS_PER_READ) {
        Ok(read) => read,
        Err(KinesisCallError::ExpiredIterator(_)) => {
            worker.iterators.remove(shard_id);
            return Ok(true);
        }
        Err(error) => return Err(error.into()),
    };
    let had_records = !read.records.is_empty();
    if had_records {
        copy_records(worker, shard_id, &shard_state, &read.records)?;
    }
    match read.next_iterator {
        Some(next) => {
            worker.iterators.insert(shard_id.to_owned(), next);
        }
        None => {
            worker.iterators.remove(shard_id);
            worker
                .position
                .shards
                .entry(shard_id.to_owned())
                .or_default()
                .finished = true;
            save(worker.directory, &worker.definition.id, &worker.position)?;
            // Its children may be readable now.
            worker.listed_at = None;
        }
    }
    Ok(had_records)
}

/// The three durable steps of one answer (see the module's documentation).
fn copy_records(
    worker: &mut WorkerState<'_>,
    shard_id: &str,
    shard_state: &ShardState,
    records: &[RemoteRecord],
) -> Result<(), PassError> {
    let mut user_records = Vec::new();
    let mut noted = Vec::with_capacity(records.len());
    for record in records {
        let parts: Vec<(String, &[u8])> = match kpl::deaggregate_keyed(&record.data) {
            Some(parts) => parts
                .into_iter()
                .map(|(key, data)| (String::from_utf8_lossy(key).into_owned(), data))
                .collect(),
            None => vec![(record.partition_key.clone(), record.data.as_slice())],
        };
        let skip = match &shard_state.inside {
            Some((sequence, done)) if *sequence == record.sequence_number => *done as usize,
            _ => 0,
        };
        noted.push((record.sequence_number.clone(), parts.len() as u32));
        for (key, data) in parts.into_iter().skip(skip) {
            user_records.push(AppendRecord::new(key, data));
        }
    }
    worker.position.pending = Some(Pending {
        shard_id: shard_id.to_owned(),
        copy_start: copy_end(&worker.copy)?,
        records: noted,
    });
    save(worker.directory, &worker.definition.id, &worker.position)?;
    for chunk in chunks(&user_records) {
        for result in worker.copy.append_batch(chunk)? {
            result?;
        }
    }
    let end = copy_end(&worker.copy)?;
    worker.position.settle(end)?;
    save(worker.directory, &worker.definition.id, &worker.position)?;
    Ok(())
}

/// `records` in batches the log takes in one append.
fn chunks(records: &[AppendRecord]) -> Vec<&[AppendRecord]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (index, record) in records.iter().enumerate() {
        let size = record.data.len() + record.partition_key.len();
        if index > start
            && (index - start >= sluice_log::limits::BATCH_RECORDS_MAX
                || bytes + size > sluice_log::limits::BATCH_BYTES_MAX)
        {
            out.push(&records[start..index]);
            start = index;
            bytes = 0;
        }
        bytes += size;
    }
    if start < records.len() {
        out.push(&records[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, parent: Option<&str>, adjacent: Option<&str>) -> ShardInfo {
        ShardInfo {
            shard_id: id.to_owned(),
            parent_shard_id: parent.map(str::to_owned),
            adjacent_parent_shard_id: adjacent.map(str::to_owned),
        }
    }

    fn finished() -> ShardState {
        ShardState {
            finished: true,
            ..ShardState::default()
        }
    }

    #[test]
    fn children_are_read_only_after_every_listed_parent_is_read_to_its_end() {
        // 0 split into 1 and 2; 1 and 2 merged into 3; 4 is the child of a shard gone from
        // the listing.
        let shards = vec![
            shard("0", None, None),
            shard("1", Some("0"), None),
            shard("2", Some("0"), None),
            shard("3", Some("1"), Some("2")),
            shard("4", Some("expired"), None),
        ];
        let ids = |states: &BTreeMap<String, ShardState>| -> Vec<String> {
            readable_shards(&shards, states)
                .iter()
                .map(|shard| shard.shard_id.clone())
                .collect()
        };
        let mut states = BTreeMap::new();
        assert_eq!(ids(&states), ["0", "4"]);
        states.insert("0".to_owned(), finished());
        assert_eq!(ids(&states), ["1", "2", "4"]);
        states.insert("1".to_owned(), finished());
        assert_eq!(ids(&states), ["2", "4"]);
        states.insert("2".to_owned(), finished());
        assert_eq!(ids(&states), ["3", "4"]);
    }

    #[test]
    fn settling_a_pending_append_moves_past_exactly_the_records_the_copy_holds() {
        let pending = |copy_start| Pending {
            shard_id: "s".to_owned(),
            copy_start,
            // a plain record, an aggregate of three, a plain record
            records: vec![("10".into(), 1), ("11".into(), 3), ("12".into(), 1)],
        };
        let settled = |copy_end: u64, inside: Option<(String, u32)>| {
            let mut position = Position::new();
            position.shards.insert(
                "s".to_owned(),
                ShardState {
                    inside,
                    ..ShardState::default()
                },
            );
            position.pending = Some(pending(100));
            position.settle(copy_end).map(|()| {
                assert!(position.pending.is_none());
                position.shards["s"].clone()
            })
        };
        assert_eq!(settled(100, None).unwrap(), ShardState::default());
        assert_eq!(settled(101, None).unwrap().after.as_deref(), Some("10"));
        let cut = settled(103, None).unwrap();
        assert_eq!(
            (cut.after.as_deref(), cut.inside),
            (Some("10"), Some(("11".to_owned(), 2)))
        );
        assert_eq!(settled(104, None).unwrap().after.as_deref(), Some("11"));
        let all = settled(105, None).unwrap();
        assert_eq!((all.after.as_deref(), all.inside), (Some("12"), None));
        assert!(settled(106, None).is_err());
        assert!(settled(99, None).is_err());
        // A read after a restart inside the aggregate, whose first two user records were
        // copied before: it starts at the aggregate and appends only its third.
        let mut position = Position::new();
        position.shards.insert(
            "s".to_owned(),
            ShardState {
                after: Some("10".to_owned()),
                inside: Some(("11".to_owned(), 2)),
                finished: false,
            },
        );
        position.pending = Some(Pending {
            shard_id: "s".to_owned(),
            copy_start: 7,
            records: vec![("11".into(), 3), ("12".into(), 1)],
        });
        let mut first = position.clone();
        first.settle(8).unwrap();
        assert_eq!(
            (
                first.shards["s"].after.as_deref(),
                &first.shards["s"].inside
            ),
            (Some("11"), &None)
        );
        position.settle(9).unwrap();
        assert_eq!(position.shards["s"].after.as_deref(), Some("12"));
    }
}
