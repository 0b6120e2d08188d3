//! Journal streams: QLDB's StreamJournalToKinesis, run inside the node. Each stream follows one
//! ledger's committed blocks ([`sluice_ledger::Ledger::committed_blocks`]) from its
//! `InclusiveStartTime`, shapes them into QLDB's records (`sluice_ledger::stream`), writes them
//! in Ion binary, optionally KPL-aggregated ([`crate::kpl`]), into a stream of the node's log,
//! and ends at its `ExclusiveEndTime` or when cancelled.
//!
//! On disk, under `<data dir>/journal-streams/`:
//! - `catalog.json`: `{"format_version":1,"journal_streams":[…]}`, every stream's definition and
//!   durable status, replaced atomically (temporary file, fsync, rename, fsync of the
//!   directory) on every create, cancel, completion and ledger deletion;
//! - `<stream id>.position`: `{"format_version":1,"created_sent":…,"next_sequence_no":…}`, the
//!   stream's position, replaced atomically after the records it covers were appended and
//!   fsynced by the log. A crash between the append and the position's replacement appends
//!   those records again on restart: delivery is at least once, as QLDB promises, and nothing
//!   is skipped. The position is written before the catalog names the stream, so a catalog
//!   entry always has one; a position no entry names (a crash during create, or a deleted
//!   ledger) is removed at open.
//!
//! One worker thread per `ACTIVE` stream, stopped by [`JournalStreams::shutdown`] (a batch in
//! flight is abandoned before its position moves, so it is appended again on the next start).
//! A destination stream that does not exist makes the stream `IMPAIRED` with the cause
//! `KINESIS_STREAM_NOT_FOUND`; it retries and becomes `ACTIVE` again when the stream exists.

use crate::position_file;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_ledger::{LedgerError, Ledgers, model, stream};
use sluice_log::{AppendRecord, Log, LogError};
use time::OffsetDateTime;

use crate::kinesis_client::{KinesisCallError, KinesisClient, KinesisEndpoints, retry_pause};
use crate::kpl::Aggregator;

/// The folder of the data directory that holds the catalog and the positions.
pub const JOURNAL_STREAMS_DIRECTORY: &str = "journal-streams";
const CATALOG_FILE_NAME: &str = "catalog.json";
const CATALOG_FORMAT_VERSION: u32 = 1;
const POSITION_FORMAT_VERSION: u32 = 1;

/// Largest catalog file read at open; a larger one is refused as corrupt.
const CATALOG_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// Streams in `ACTIVE` (or `IMPAIRED`) status per ledger, QLDB's default quota; one more is
/// refused with `LimitExceeded`.
pub const ACTIVE_STREAMS_PER_LEDGER_MAX: usize = 5;
/// Streams the catalog keeps, finished ones included. When it is full, the oldest finished
/// stream is forgotten to make room (QLDB forgets them after 7 days); when every stream is
/// active, creating one more is refused with `LimitExceeded`.
pub const JOURNAL_STREAMS_MAX: usize = 1_000;
/// Blocks a worker reads from the ledger at once; their records are appended and the position
/// moved before the next read, so this bounds a worker's memory and the records a crash can
/// append twice.
pub const BLOCKS_PER_READ: usize = 32;
/// How often an idle worker looks for newly committed blocks (and at its end time).
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Pause before an `IMPAIRED` stream (or one whose append failed) tries again.
pub const RETRY_INTERVAL: Duration = Duration::from_millis(1_000);
/// How long after its end time a stream waits for blocks committed just before it to become
/// visible before it writes `COMPLETED` (a block is stamped before its commit finishes).
pub const END_GRACE: Duration = Duration::from_millis(1_000);
/// Attempts of one `PutRecords` batch to a remote stream before the step is retried whole.
pub const PUT_ATTEMPTS_MAX: u32 = 6;
/// Largest aggregated record, partition key included: the log's (Kinesis's) record limit.
pub const AGGREGATED_RECORD_BYTES_MAX: usize = sluice_log::limits::RECORD_BYTES_MAX;

/// Every failure of a journal-stream operation; the API maps each kind to QLDB's error.
#[derive(Debug, thiserror::Error)]
pub enum JournalStreamError {
    /// A parameter is missing or out of its domain, or the destination does not exist.
    #[error("{0}")]
    InvalidParameter(String),
    /// No such ledger or journal stream.
    #[error("{0}")]
    NotFound(String),
    /// The stream is not in a status that allows the operation (cancelling a finished one).
    #[error("{0}")]
    PreconditionNotMet(String),
    /// The ledger has active journal streams.
    #[error("{0}")]
    InUse(String),
    /// A quota is reached.
    #[error("{0}")]
    LimitExceeded(String),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The catalog or a position could not be read or written.
    #[error("journal streams: {0}")]
    Storage(String),
}

type Result<T, E = JournalStreamError> = std::result::Result<T, E>;

fn storage(what: &str, path: &Path, error: impl std::fmt::Display) -> JournalStreamError {
    JournalStreamError::Storage(format!("{what} {}: {error}", path.display()))
}

/// A stream's status as QLDB names it. `Impaired` is never stored: it is what a running
/// `Active` stream reports while its destination is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JournalStreamStatus {
    Active,
    Completed,
    Canceled,
    Failed,
    Impaired,
}

impl JournalStreamStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JournalStreamStatus::Active => "ACTIVE",
            JournalStreamStatus::Completed => "COMPLETED",
            JournalStreamStatus::Canceled => "CANCELED",
            JournalStreamStatus::Failed => "FAILED",
            JournalStreamStatus::Impaired => "IMPAIRED",
        }
    }

    fn is_running(self) -> bool {
        matches!(
            self,
            JournalStreamStatus::Active | JournalStreamStatus::Impaired
        )
    }
}

/// Why a stream is `IMPAIRED` or `FAILED`, as QLDB's `ErrorCause` says it.
pub const ERROR_CAUSE_KINESIS_STREAM_NOT_FOUND: &str = "KINESIS_STREAM_NOT_FOUND";

/// What StreamJournalToKinesis asks for.
#[derive(Debug, Clone)]
pub struct JournalStreamRequest {
    pub ledger_name: String,
    pub stream_name: String,
    pub role_arn: String,
    /// The destination's ARN as the client gave it, and the log stream it names.
    pub destination_arn: String,
    pub destination_stream: String,
    pub aggregation_enabled: bool,
    pub inclusive_start_time: OffsetDateTime,
    pub exclusive_end_time: Option<OffsetDateTime>,
    pub tags: BTreeMap<String, String>,
}

/// A journal stream as the catalog keeps it. Times are epoch milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalStreamDefinition {
    pub ledger_name: String,
    pub stream_id: String,
    pub stream_name: String,
    /// The `qldbStreamArn` of every record.
    pub arn: String,
    pub role_arn: String,
    pub destination_arn: String,
    pub destination_stream: String,
    pub aggregation_enabled: bool,
    pub creation_time_ms: i64,
    pub inclusive_start_time_ms: i64,
    pub exclusive_end_time_ms: Option<i64>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// `ACTIVE`, `COMPLETED`, `CANCELED` or `FAILED`.
    pub status: JournalStreamStatus,
    #[serde(default)]
    pub error_cause: Option<String>,
}

/// A stream with its status as of now (`IMPAIRED` included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalStreamDescription {
    pub definition: JournalStreamDefinition,
    pub status: JournalStreamStatus,
    pub error_cause: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct CatalogFile {
    format_version: u32,
    journal_streams: Vec<JournalStreamDefinition>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Position {
    format_version: u32,
    /// Whether the `CREATED` control record was appended.
    created_sent: bool,
    /// The first block not yet appended.
    next_sequence_no: u64,
}

impl Position {
    fn start() -> Position {
        Position {
            format_version: POSITION_FORMAT_VERSION,
            created_sent: false,
            next_sequence_no: 0,
        }
    }
}

fn epoch_ms(instant: OffsetDateTime) -> i64 {
    i64::try_from(instant.unix_timestamp_nanos().div_euclid(1_000_000)).unwrap_or(i64::MAX)
}

/// An exclusive end time in whole milliseconds, rounded up: blocks carry whole milliseconds, and
/// a block of millisecond `t` is before the end `e` exactly when `t < ceil(e)` (rounding down
/// would drop the blocks of the end's own millisecond that were committed before it).
fn epoch_ms_ceil(instant: OffsetDateTime) -> i64 {
    let nanos = instant.unix_timestamp_nanos();
    i64::try_from(nanos.div_euclid(1_000_000) + i128::from(nanos.rem_euclid(1_000_000) != 0))
        .unwrap_or(i64::MAX)
}

/// What a running stream shares with its worker.
#[derive(Debug, Default)]
struct Health {
    /// `Some(cause)` while the destination is missing.
    impaired: Option<String>,
}

struct Worker {
    /// Dropping it tells the worker to stop.
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    health: Arc<Mutex<Health>>,
}

impl Worker {
    fn stop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("journal stream worker panicked");
        }
    }
}

struct Shared {
    directory: PathBuf,
    ledgers: Arc<Ledgers>,
    log: Arc<Log>,
    /// The catalog by stream id, behind the lock that serialises its rewrites.
    catalog: Mutex<BTreeMap<String, JournalStreamDefinition>>,
    /// Which destination ARNs name streams outside this node.
    kinesis_endpoints: KinesisEndpoints,
}

/// Where a stream's records go: a stream of this node's log, or one behind a Kinesis API
/// elsewhere (the `--config` file's `kinesis_endpoints`), written with `PutRecords`.
enum Destination {
    Local(Arc<sluice_log::Stream>),
    Remote {
        client: Box<KinesisClient>,
        stream: String,
    },
}

impl Destination {
    /// Writes one batch (within `PutRecords`' limits); returns once every record is durable
    /// (the log) or acknowledged (Kinesis). Records a remote stream refuses one by one
    /// (throttled) are sent again after a pause, up to [`PUT_ATTEMPTS_MAX`] times.
    fn write(&self, batch: &[AppendRecord]) -> Result<(), StepError> {
        match self {
            Destination::Local(stream) => {
                for result in stream.append_batch(batch).map_err(from_log)? {
                    result.map_err(from_log)?;
                }
                Ok(())
            }
            Destination::Remote { client, stream } => {
                let mut unwritten: Vec<&AppendRecord> = batch.iter().collect();
                for attempt in 0..PUT_ATTEMPTS_MAX {
                    if attempt > 0 {
                        std::thread::sleep(retry_pause(attempt - 1));
                    }
                    let entries: Vec<(&str, &[u8])> = unwritten
                        .iter()
                        .map(|record| (record.partition_key.as_str(), record.data.as_slice()))
                        .collect();
                    let outcomes = client.put_records(stream, &entries).map_err(from_kinesis)?;
                    unwritten = unwritten
                        .into_iter()
                        .zip(outcomes)
                        .filter_map(|(record, refused)| refused.map(|_| record))
                        .collect();
                    if unwritten.is_empty() {
                        return Ok(());
                    }
                }
                Err(StepError::Transient(format!(
                    "{} records still refused by {stream} after {PUT_ATTEMPTS_MAX} attempts",
                    unwritten.len()
                )))
            }
        }
    }
}

/// The catalog of journal streams and their workers.
pub struct JournalStreams {
    shared: Arc<Shared>,
    workers: Mutex<BTreeMap<String, Worker>>,
    /// Set by shutdown: no worker starts after it.
    stopped: Mutex<bool>,
}

impl std::fmt::Debug for JournalStreams {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("JournalStreams")
            .field("directory", &self.shared.directory)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl JournalStreams {
    /// Opens (or creates) `<data_dir>/journal-streams`, removes positions no stream names, and
    /// starts a worker for every `ACTIVE` stream.
    pub fn open(
        data_dir: &Path,
        ledgers: Arc<Ledgers>,
        log: Arc<Log>,
        kinesis_endpoints: KinesisEndpoints,
    ) -> Result<JournalStreams> {
        let directory = data_dir.join(JOURNAL_STREAMS_DIRECTORY);
        fs::create_dir_all(&directory).map_err(|error| storage("creating", &directory, error))?;
        let catalog = read_catalog(&directory)?;
        let entries =
            fs::read_dir(&directory).map_err(|error| storage("listing", &directory, error))?;
        for entry in entries {
            let entry = entry.map_err(|error| storage("listing", &directory, error))?;
            let file_name = entry.file_name().to_string_lossy().into_owned();
            let orphan = file_name
                .strip_suffix(position_file::POSITION_SUFFIX)
                .is_some_and(|stream_id| !catalog.contains_key(stream_id));
            if orphan || file_name.ends_with(".tmp") {
                fs::remove_file(entry.path())
                    .map_err(|error| storage("removing", &entry.path(), error))?;
            }
        }
        let streams = JournalStreams {
            shared: Arc::new(Shared {
                directory,
                ledgers,
                log,
                catalog: Mutex::new(catalog),
                kinesis_endpoints,
            }),
            workers: Mutex::new(BTreeMap::new()),
            stopped: Mutex::new(false),
        };
        let active: Vec<String> = lock(&streams.shared.catalog)
            .values()
            .filter(|definition| definition.status == JournalStreamStatus::Active)
            .map(|definition| definition.stream_id.clone())
            .collect();
        for stream_id in active {
            streams.start_worker(&stream_id)?;
        }
        Ok(streams)
    }

    /// Creates a journal stream and starts its worker; returns its id.
    pub fn create(
        &self,
        request: JournalStreamRequest,
        arn_of: impl Fn(&str) -> String,
    ) -> Result<String> {
        let ledger = self.shared.ledgers.ledger(&request.ledger_name)?;
        let now = ledger.now();
        if request.inclusive_start_time > now {
            return Err(JournalStreamError::InvalidParameter(
                "InclusiveStartTime cannot be in the future".to_owned(),
            ));
        }
        if let Some(end) = request.exclusive_end_time
            && end <= request.inclusive_start_time
        {
            return Err(JournalStreamError::InvalidParameter(
                "ExclusiveEndTime must be after InclusiveStartTime".to_owned(),
            ));
        }
        sluice_ledger::ledger::validate_ledger_name(&request.stream_name).map_err(|_| {
            JournalStreamError::InvalidParameter(format!(
                "invalid stream name {:?}: 1 to 32 letters, digits or hyphens",
                request.stream_name
            ))
        })?;
        let remote = self
            .shared
            .kinesis_endpoints
            .resolve(&request.destination_arn)
            .is_some();
        match self.shared.log.stream(&request.destination_stream) {
            // A remote stream's existence is learnt at the first write (IMPAIRED if missing).
            _ if remote => {}
            Ok(_) => {}
            Err(LogError::StreamNotFound(_) | LogError::StreamDeleted(_)) => {
                return Err(JournalStreamError::InvalidParameter(format!(
                    "the Kinesis stream {} does not exist",
                    request.destination_arn
                )));
            }
            Err(error) => return Err(JournalStreamError::Storage(error.to_string())),
        }
        let mut catalog = lock(&self.shared.catalog);
        let running = catalog
            .values()
            .filter(|definition| {
                definition.ledger_name == request.ledger_name && definition.status.is_running()
            })
            .collect::<Vec<_>>();
        if running
            .iter()
            .any(|definition| definition.stream_name == request.stream_name)
        {
            return Err(JournalStreamError::InvalidParameter(format!(
                "ledger {} already has an active journal stream named {}",
                request.ledger_name, request.stream_name
            )));
        }
        if running.len() >= ACTIVE_STREAMS_PER_LEDGER_MAX {
            return Err(JournalStreamError::LimitExceeded(format!(
                "ledger {} has {ACTIVE_STREAMS_PER_LEDGER_MAX} active journal streams, the most it may have",
                request.ledger_name
            )));
        }
        let mut next_catalog = catalog.clone();
        if next_catalog.len() >= JOURNAL_STREAMS_MAX {
            let oldest_finished = next_catalog
                .values()
                .filter(|definition| !definition.status.is_running())
                .min_by_key(|definition| definition.creation_time_ms)
                .map(|definition| definition.stream_id.clone());
            match oldest_finished {
                Some(stream_id) => {
                    next_catalog.remove(&stream_id);
                }
                None => {
                    return Err(JournalStreamError::LimitExceeded(format!(
                        "{JOURNAL_STREAMS_MAX} journal streams are active, the most Sluice keeps"
                    )));
                }
            }
        }
        let stream_id = model::new_id();
        let definition = JournalStreamDefinition {
            ledger_name: request.ledger_name.clone(),
            stream_id: stream_id.clone(),
            stream_name: request.stream_name,
            arn: arn_of(&stream_id),
            role_arn: request.role_arn,
            destination_arn: request.destination_arn,
            destination_stream: request.destination_stream,
            aggregation_enabled: request.aggregation_enabled,
            creation_time_ms: epoch_ms(now),
            inclusive_start_time_ms: epoch_ms(request.inclusive_start_time),
            exclusive_end_time_ms: request.exclusive_end_time.map(epoch_ms_ceil),
            tags: request.tags,
            status: JournalStreamStatus::Active,
            error_cause: None,
        };
        // The journal before the start time is never read: bisection finds where it begins.
        let position = Position {
            next_sequence_no: ledger
                .first_committed_block_at_or_after(request.inclusive_start_time)?,
            ..Position::start()
        };
        write_position(&self.shared.directory, &stream_id, &position)?;
        next_catalog.insert(stream_id.clone(), definition);
        write_catalog(&self.shared.directory, &next_catalog)?;
        for forgotten in catalog.keys().filter(|id| !next_catalog.contains_key(*id)) {
            remove_position(&self.shared.directory, forgotten);
        }
        *catalog = next_catalog;
        drop(catalog);
        self.start_worker(&stream_id)?;
        tracing::info!(ledger = %request.ledger_name, stream_id, "journal stream created");
        Ok(stream_id)
    }

    fn start_worker(&self, stream_id: &str) -> Result<()> {
        if *lock(&self.stopped) {
            return Ok(());
        }
        let (stop, stopped) = mpsc::channel();
        let health = Arc::new(Mutex::new(Health::default()));
        let thread = {
            let shared = self.shared.clone();
            let health = health.clone();
            let stream_id = stream_id.to_owned();
            std::thread::Builder::new()
                .name(format!("sluice-jstream-{stream_id}"))
                .spawn(move || run_worker(&shared, &stream_id, &health, &stopped))
                .map_err(|error| {
                    JournalStreamError::Storage(format!("starting a worker: {error}"))
                })?
        };
        lock(&self.workers).insert(
            stream_id.to_owned(),
            Worker {
                stop: Some(stop),
                thread: Some(thread),
                health,
            },
        );
        Ok(())
    }

    /// One stream of a ledger, with its current status.
    pub fn describe(&self, ledger_name: &str, stream_id: &str) -> Result<JournalStreamDescription> {
        let definition = lock(&self.shared.catalog)
            .get(stream_id)
            .filter(|definition| definition.ledger_name == ledger_name)
            .cloned()
            .ok_or_else(|| {
                JournalStreamError::NotFound(format!(
                    "no journal stream {stream_id} for ledger {ledger_name}"
                ))
            })?;
        Ok(self.with_health(definition))
    }

    fn with_health(&self, definition: JournalStreamDefinition) -> JournalStreamDescription {
        let impaired = if definition.status == JournalStreamStatus::Active {
            lock(&self.workers)
                .get(&definition.stream_id)
                .and_then(|worker| lock(&worker.health).impaired.clone())
        } else {
            None
        };
        match impaired {
            Some(cause) => JournalStreamDescription {
                definition,
                status: JournalStreamStatus::Impaired,
                error_cause: Some(cause),
            },
            None => JournalStreamDescription {
                status: definition.status,
                error_cause: definition.error_cause.clone(),
                definition,
            },
        }
    }

    /// Every stream of a ledger, oldest first. The ledger must exist.
    pub fn list(&self, ledger_name: &str) -> Result<Vec<JournalStreamDescription>> {
        self.shared.ledgers.ledger(ledger_name)?;
        let mut definitions: Vec<JournalStreamDefinition> = lock(&self.shared.catalog)
            .values()
            .filter(|definition| definition.ledger_name == ledger_name)
            .cloned()
            .collect();
        definitions.sort_by(|a, b| {
            (a.creation_time_ms, &a.stream_id).cmp(&(b.creation_time_ms, &b.stream_id))
        });
        Ok(definitions
            .into_iter()
            .map(|definition| self.with_health(definition))
            .collect())
    }

    /// Cancels an `ACTIVE` (or `IMPAIRED`) stream: its worker stops, `CANCELLED` is appended
    /// (when the destination exists) and the stream is `CANCELED` for good.
    pub fn cancel(&self, ledger_name: &str, stream_id: &str) -> Result<()> {
        let definition = self.describe(ledger_name, stream_id)?.definition;
        if !definition.status.is_running() {
            return Err(JournalStreamError::PreconditionNotMet(format!(
                "journal stream {stream_id} is {}, only an ACTIVE stream can be canceled",
                definition.status.as_str()
            )));
        }
        let worker = lock(&self.workers).remove(stream_id);
        if let Some(mut worker) = worker {
            worker.stop();
        }
        let record = stream::control_record(&definition.arn, "CANCELLED");
        let appended = model::encode_binary(&record)
            .map_err(|error| error.to_string())
            .and_then(|data| {
                let key = stream::partition_key(&record, stream_id);
                destination(&self.shared, &definition)
                    .and_then(|destination| destination.write(&[AppendRecord::new(key, data)]))
                    .map_err(|error| format!("{error:?}"))
            });
        if let Err(error) = appended {
            tracing::warn!(stream_id, %error, "the CANCELLED record of a journal stream could not be appended");
        }
        set_status(&self.shared, stream_id, JournalStreamStatus::Canceled, None)
    }

    /// Deletes a ledger as QLDB does: refused while it has active journal streams (cancel them
    /// first); its finished streams are forgotten with it.
    pub fn delete_ledger(&self, ledger_name: &str) -> Result<()> {
        let mut catalog = lock(&self.shared.catalog);
        let active = catalog
            .values()
            .filter(|definition| {
                definition.ledger_name == ledger_name && definition.status.is_running()
            })
            .count();
        if active > 0 {
            return Err(JournalStreamError::InUse(format!(
                "ledger {ledger_name} has {active} active journal stream(s); cancel them before deleting it"
            )));
        }
        self.shared.ledgers.delete_ledger(ledger_name)?;
        let mut next_catalog = catalog.clone();
        next_catalog.retain(|_, definition| definition.ledger_name != ledger_name);
        if next_catalog.len() != catalog.len() {
            write_catalog(&self.shared.directory, &next_catalog)?;
            for forgotten in catalog.keys().filter(|id| !next_catalog.contains_key(*id)) {
                remove_position(&self.shared.directory, forgotten);
            }
            *catalog = next_catalog;
        }
        Ok(())
    }

    /// Stops every worker; a batch in flight is appended again on the next start.
    pub fn shutdown(&self) {
        *lock(&self.stopped) = true;
        let workers = std::mem::take(&mut *lock(&self.workers));
        for (_, mut worker) in workers {
            worker.stop();
        }
    }
}

impl Drop for JournalStreams {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// What one step of a worker did.
enum Step {
    /// Records were appended (or blocks skipped): look again at once.
    Progress,
    /// Nothing new: wait for the next poll.
    Idle,
    /// The stream reached its end, or failed for good.
    Finished,
}

/// Why a step could not go on.
#[derive(Debug)]
enum StepError {
    /// The destination stream is missing: `IMPAIRED`, retried.
    DestinationMissing,
    /// Something that may pass (a failed fsync of the log, a ledger being reopened): retried.
    Transient(String),
    /// Something retrying cannot fix (a record beyond the log's size limit): `FAILED`.
    Permanent(String),
}

fn run_worker(shared: &Shared, stream_id: &str, health: &Mutex<Health>, stop: &Receiver<()>) {
    let Some(definition) = lock(&shared.catalog).get(stream_id).cloned() else {
        return;
    };
    let mut position = match read_position(&shared.directory, stream_id) {
        Ok(position) => position,
        Err(error) => {
            tracing::error!(stream_id, %error, "a journal stream's position cannot be read; it starts over");
            Position::start()
        }
    };
    // A remote destination's client is made once; a local stream is looked up at each step
    // (it may be deleted and created again).
    let remote = match shared
        .kinesis_endpoints
        .resolve(&definition.destination_arn)
    {
        Some(_) => match destination(shared, &definition) {
            Ok(remote) => Some(remote),
            Err(_) => {
                tracing::error!(
                    stream_id,
                    "a journal stream's Kinesis endpoint is not usable"
                );
                return;
            }
        },
        None => None,
    };
    // The last transient failure, logged once until the stream makes progress again.
    let mut failing: Option<String> = None;
    let wait =
        |duration: Duration| matches!(stop.recv_timeout(duration), Err(RecvTimeoutError::Timeout));
    loop {
        let outcome = step(shared, &definition, remote.as_ref(), &mut position);
        let pause = match outcome {
            Ok(Step::Progress) => {
                lock(health).impaired = None;
                failing = None;
                Duration::ZERO
            }
            Ok(Step::Idle) => {
                lock(health).impaired = None;
                failing = None;
                POLL_INTERVAL
            }
            Ok(Step::Finished) => return,
            Err(StepError::DestinationMissing) => {
                let mut health = lock(health);
                if health.impaired.is_none() {
                    tracing::warn!(stream_id, destination = %definition.destination_stream, "journal stream impaired: its Kinesis stream does not exist");
                }
                health.impaired = Some(ERROR_CAUSE_KINESIS_STREAM_NOT_FOUND.to_owned());
                RETRY_INTERVAL
            }
            Err(StepError::Transient(reason)) => {
                if failing.as_deref() != Some(reason.as_str()) {
                    tracing::warn!(stream_id, reason, "journal stream step failed; retrying");
                    failing = Some(reason);
                }
                RETRY_INTERVAL
            }
            Err(StepError::Permanent(reason)) => {
                tracing::error!(stream_id, reason, "journal stream failed");
                if let Err(error) = set_status(shared, stream_id, JournalStreamStatus::Failed, None)
                {
                    tracing::error!(stream_id, %error, "recording a failed journal stream failed");
                }
                return;
            }
        };
        // A stop request is seen between steps even when there is more to do.
        if !wait(pause) {
            return;
        }
    }
}

fn from_log(error: LogError) -> StepError {
    match error {
        LogError::StreamNotFound(_) | LogError::StreamDeleted(_) => StepError::DestinationMissing,
        LogError::LimitExceeded { .. } | LogError::InvalidArgument(_) => {
            StepError::Permanent(error.to_string())
        }
        other => StepError::Transient(other.to_string()),
    }
}

fn from_ledger(error: LedgerError) -> StepError {
    match error {
        // The ledger's files are gone (deleting a ledger with active streams is refused, so
        // only a hand can do this): nothing will bring its blocks back.
        LedgerError::NotFound(_) => StepError::Permanent(error.to_string()),
        other => StepError::Transient(other.to_string()),
    }
}

/// One read of blocks, their records appended, the position moved.
fn step(
    shared: &Shared,
    definition: &JournalStreamDefinition,
    remote: Option<&Destination>,
    position: &mut Position,
) -> Result<Step, StepError> {
    let destination = match remote {
        Some(remote) => remote,
        None => &destination(shared, definition)?,
    };
    let ledger = shared
        .ledgers
        .ledger(&definition.ledger_name)
        .map_err(from_ledger)?;
    let mut records = Vec::new();
    if !position.created_sent {
        records.push(stream::control_record(&definition.arn, "CREATED"));
    }
    let blocks = ledger
        .committed_blocks(position.next_sequence_no, BLOCKS_PER_READ)
        .map_err(from_ledger)?;
    let mut next = *position;
    next.created_sent = true;
    let mut completed = false;
    for block in &blocks {
        let block_ms = epoch_ms(block.timestamp);
        if definition
            .exclusive_end_time_ms
            .is_some_and(|end| block_ms >= end)
        {
            completed = true;
            break;
        }
        if block_ms >= definition.inclusive_start_time_ms {
            records
                .extend(stream::block_records(&definition.arn, &block.block).map_err(from_ledger)?);
        }
        next.next_sequence_no = block.sequence_no + 1;
    }
    if !completed
        && blocks.is_empty()
        && let Some(end) = definition.exclusive_end_time_ms
    {
        let grace_ms = i64::try_from(END_GRACE.as_millis()).unwrap_or(i64::MAX);
        completed = epoch_ms(ledger.now()) >= end.saturating_add(grace_ms);
    }
    if completed {
        records.push(stream::control_record(&definition.arn, "COMPLETED"));
    }
    if records.is_empty() && next == *position {
        return Ok(Step::Idle);
    }
    append(destination, definition, &records)?;
    if next != *position {
        write_position(&shared.directory, &definition.stream_id, &next)
            .map_err(|error| StepError::Transient(error.to_string()))?;
        *position = next;
    }
    if completed {
        set_status(
            shared,
            &definition.stream_id,
            JournalStreamStatus::Completed,
            None,
        )
        .map_err(|error| StepError::Transient(error.to_string()))?;
        tracing::info!(stream_id = %definition.stream_id, "journal stream completed");
        return Ok(Step::Finished);
    }
    Ok(Step::Progress)
}

/// Appends records in order, in batches within the log's limits, aggregated when the stream
/// says so; returns once every one is durable.
fn append(
    destination: &Destination,
    definition: &JournalStreamDefinition,
    records: &[ion_rs::Element],
) -> Result<(), StepError> {
    let mut keyed = Vec::with_capacity(records.len());
    for record in records {
        let data = model::encode_binary(record)
            .map_err(|error| StepError::Permanent(error.to_string()))?;
        keyed.push(AppendRecord::new(
            stream::partition_key(record, &definition.stream_id),
            data,
        ));
    }
    let log_records = if definition.aggregation_enabled {
        aggregate(keyed)
    } else {
        keyed
    };
    let mut batch: Vec<AppendRecord> = Vec::new();
    let mut batch_bytes = 0usize;
    for record in log_records {
        let record_bytes = record.partition_key.len() + record.data.len();
        if !batch.is_empty()
            && (batch.len() >= sluice_log::limits::BATCH_RECORDS_MAX
                || batch_bytes + record_bytes > sluice_log::limits::BATCH_BYTES_MAX)
        {
            destination.write(&batch)?;
            batch.clear();
            batch_bytes = 0;
        }
        batch_bytes += record_bytes;
        batch.push(record);
    }
    if !batch.is_empty() {
        destination.write(&batch)?;
    }
    Ok(())
}

/// The destination of `definition`: a new client for a remote stream, the log's stream else.
fn destination(
    shared: &Shared,
    definition: &JournalStreamDefinition,
) -> Result<Destination, StepError> {
    match shared
        .kinesis_endpoints
        .resolve(&definition.destination_arn)
    {
        Some(endpoint) => Ok(Destination::Remote {
            client: Box::new(
                KinesisClient::new(&endpoint.url(), Some(&endpoint.region))
                    .map_err(StepError::Permanent)?,
            ),
            stream: definition.destination_stream.clone(),
        }),
        None => shared
            .log
            .stream(&definition.destination_stream)
            .map(Destination::Local)
            .map_err(from_log),
    }
}

fn from_kinesis(error: KinesisCallError) -> StepError {
    match error {
        KinesisCallError::NotFound(_) => StepError::DestinationMissing,
        other => StepError::Transient(other.to_string()),
    }
}

/// Packs user records, in order, into as few aggregated records as fit the size limit. A
/// record too big to share one goes alone, still aggregated (the log refuses it if it is over
/// the record limit, which fails the stream).
fn aggregate(records: Vec<AppendRecord>) -> Vec<AppendRecord> {
    let mut out = Vec::new();
    let mut aggregator = Aggregator::new();
    for record in records {
        if !aggregator.is_empty()
            && aggregator.size_with(&record.partition_key, &record.data)
                > AGGREGATED_RECORD_BYTES_MAX
            && let Some((key, data)) = aggregator.finish()
        {
            out.push(AppendRecord::new(key, data));
        }
        aggregator.add(&record.partition_key, &record.data);
    }
    if let Some((key, data)) = aggregator.finish() {
        out.push(AppendRecord::new(key, data));
    }
    out
}

fn set_status(
    shared: &Shared,
    stream_id: &str,
    status: JournalStreamStatus,
    error_cause: Option<String>,
) -> Result<()> {
    let mut catalog = lock(&shared.catalog);
    let mut next_catalog = catalog.clone();
    let Some(definition) = next_catalog.get_mut(stream_id) else {
        return Ok(());
    };
    definition.status = status;
    definition.error_cause = error_cause;
    write_catalog(&shared.directory, &next_catalog)?;
    *catalog = next_catalog;
    Ok(())
}

fn read_bounded(path: &Path, bytes_max: u64) -> Result<Option<Vec<u8>>> {
    position_file::read_bounded(path, bytes_max).map_err(JournalStreamError::Storage)
}

fn read_catalog(directory: &Path) -> Result<BTreeMap<String, JournalStreamDefinition>> {
    let path = directory.join(CATALOG_FILE_NAME);
    let Some(bytes) = read_bounded(&path, CATALOG_BYTES_MAX)? else {
        return Ok(BTreeMap::new());
    };
    let file: CatalogFile =
        serde_json::from_slice(&bytes).map_err(|error| storage("parsing", &path, error))?;
    if file.format_version != CATALOG_FORMAT_VERSION {
        return Err(storage(
            "reading",
            &path,
            format!(
                "format version {} (this build reads {CATALOG_FORMAT_VERSION})",
                file.format_version
            ),
        ));
    }
    Ok(file
        .journal_streams
        .into_iter()
        .map(|definition| (definition.stream_id.clone(), definition))
        .collect())
}

/// Replaces `directory/file_name` with `bytes` atomically and durably.
fn replace_file(directory: &Path, file_name: &str, bytes: &[u8]) -> Result<()> {
    position_file::replace(directory, file_name, bytes).map_err(JournalStreamError::Storage)
}

fn write_catalog(
    directory: &Path,
    catalog: &BTreeMap<String, JournalStreamDefinition>,
) -> Result<()> {
    let file = CatalogFile {
        format_version: CATALOG_FORMAT_VERSION,
        journal_streams: catalog.values().cloned().collect(),
    };
    let bytes = serde_json::to_vec_pretty(&file)
        .map_err(|error| JournalStreamError::Storage(format!("encoding the catalog: {error}")))?;
    replace_file(directory, CATALOG_FILE_NAME, &bytes)
}

fn read_position(directory: &Path, stream_id: &str) -> Result<Position> {
    Ok(
        position_file::read(directory, stream_id, POSITION_FORMAT_VERSION)
            .map_err(JournalStreamError::Storage)?
            .unwrap_or_else(Position::start),
    )
}

fn write_position(directory: &Path, stream_id: &str, position: &Position) -> Result<()> {
    position_file::write(directory, stream_id, position).map_err(JournalStreamError::Storage)
}

fn remove_position(directory: &Path, stream_id: &str) {
    if let Err(error) = position_file::remove(directory, stream_id) {
        tracing::warn!(%error, "removing a journal stream's position failed");
    }
}
