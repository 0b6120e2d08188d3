//! Ledger replicas: a source ledger's committed blocks replayed, in block order, into a target
//! ledger so that every table's documents hold the same data (ids, hashes and timestamps
//! differ, as in QLDB).
//!
//! What is replayed: a journal block keeps its statements' texts and digests but not their
//! parameters (as QLDB's `BLOCK_SUMMARY` does), and statements that name document ids (`BY id`,
//! `WHERE id = ...`, `metadata`) would name the source's ids. So a block is replayed as its
//! *revisions*: each statement's text is recorded in the target transaction (its digest covers
//! the text alone), and each revision is written under the statement that wrote it in the
//! source: a version-0 revision inserts a new document, a later one replaces the mapped
//! document's data, a data-less one deletes it. Tables are created in the target when their
//! first document arrives. Not replayed: indexes, dropped and undropped tables (their documents
//! stay in the target until deleted), and revisions of the replica's own bookkeeping tables
//! when the source is itself a replica.
//!
//! Exactly once across crashes: the position (the next source block to apply) and the map from
//! source document ids to target ids are documents of two bookkeeping tables in the target
//! ([`REPLICA_POSITIONS_TABLE`], [`REPLICA_IDS_TABLE`]), written in the same target transaction
//! as the block's revisions. A block is committed with its position or not at all, so a crash
//! at any point leaves either the block applied and the position past it, or neither; a block
//! seen again is recognised as applied and skipped, and a block past the position waits.
//!
//! Where blocks come from: a replica without `stream` reads its source in-process
//! ([`Ledger::committed_blocks`]). A replica with `stream` reads the source's journal stream
//! records (QLDB's `BLOCK_SUMMARY` and `REVISION_DETAILS`, Ion, KPL-aggregated or not) from a
//! Kinesis-compatible stream, of this node's log or of another Sluice at `endpoint`
//! ([`crate::replica_source`]); [`BlockAssembler`] makes whole blocks of them in order, waiting
//! up to the settling window for a missing one. The stream's own read position is not kept: a
//! replica that starts (or loses its place) reads the stream from its trim horizon and skips
//! the blocks its target already holds.
//!
//! Replicas come from the `--config` file's `ledger_replicas` and from [`Replicas::declare`]
//! (`sluice ledger replicate`), which keeps them in `<data dir>/replicas/catalog.json`
//! (`{"format_version":1,"replicas":[…]}`, replaced atomically) so they resume after a restart.

use crate::replica_assembler::{BlockAssembler, SETTLING_WINDOW_DEFAULT};
use crate::replica_source::RecordSource;
use crate::worker::{self, Stop, Worker, lock, run_passes};
use crate::{kpl, position_file};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ion_rs::{Element, Struct};
use serde::{Deserialize, Serialize};
use sluice_ledger::{Ledger, LedgerError, Ledgers, ion_read, model, transaction::CATALOG_TABLE_ID};
use sluice_log::Log;

/// The worker thread's name, also its name in logs.
const WORKER_NAME: &str = "sluice-ledger-replica";
/// Stack of the worker thread: ion-rs reads, clones and writes values by recursion, and a
/// stream record nests its document [`STREAM_RECORD_DEPTH_MAX`] levels deep (about 5 KiB a
/// level in a debug build).
const WORKER_STACK_BYTES: usize = 16 * 1024 * 1024;
/// Deepest stream record read: a document's own limit plus the record's envelope (record,
/// payload, revision, data). A deeper record is skipped, as any record that is not Ion.
pub const STREAM_RECORD_DEPTH_MAX: usize = ion_read::ION_DEPTH_MAX + 4;
/// The folder of the data directory holding the declared replicas.
pub const REPLICAS_DIRECTORY: &str = "replicas";
const CATALOG_FILE_NAME: &str = "catalog.json";
const CATALOG_FORMAT_VERSION: u32 = 1;
/// Largest catalog file read at open; a larger one is refused as corrupt.
const CATALOG_BYTES_MAX: u64 = 16 * 1024 * 1024;
/// Replicas one node runs (configured and declared); declaring one more is refused.
pub const REPLICAS_MAX: usize = 256;
/// The target table holding one position per replicated source: `{source, strand_id,
/// next_sequence_no}`.
pub const REPLICA_POSITIONS_TABLE: &str = "sluice_replica_positions";
/// The target table mapping source document ids to target ids: `{source, source_id,
/// target_id}`, indexed on `source_id`.
pub const REPLICA_IDS_TABLE: &str = "sluice_replica_ids";
/// OCC attempts for one block's target transaction; a replica is the target's only writer in
/// the normal case, so a conflict means someone else writes the target, and after this many
/// the block fails and is retried by the caller.
pub const APPLY_ATTEMPTS_MAX: usize = 5;

/// Source blocks a worker reads at once; each is applied in its own target transaction, so
/// this only bounds the worker's memory between two reads.
pub const BLOCKS_PER_READ: usize = 32;

/// One entry of `ledger_replicas` in the `--config` file, or a replica declared with
/// [`Replicas::declare`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaConfig {
    /// The source ledger's name.
    pub source: String,
    /// The target ledger's name; created when missing.
    pub target: String,
    /// The Kinesis stream that a journal stream of the source writes into (it must start at
    /// the source's creation, so that it carries every block). Without it the source is a
    /// ledger of this node, read in-process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// The AWS port of another Sluice (`http://host:port`) whose Kinesis API serves `stream`;
    /// without it `stream` is a stream of this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// How long a block that arrived past a missing one waits for it before the gap is
    /// reported and the stream read again; [`SETTLING_WINDOW_DEFAULT`] (two minutes) when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settling_window_ms: Option<u64>,
}

impl ReplicaConfig {
    /// The settling window of a stream-fed replica.
    pub fn settling_window(&self) -> Duration {
        self.settling_window_ms
            .map_or(SETTLING_WINDOW_DEFAULT, Duration::from_millis)
    }

    /// Whether its source is read in-process rather than from a stream.
    pub fn is_in_process(&self) -> bool {
        self.stream.is_none()
    }

    /// A replica that can run: names valid, not its own source, an endpoint only with a stream.
    pub fn validate(&self) -> Result<()> {
        sluice_ledger::ledger::validate_ledger_name(&self.source)?;
        sluice_ledger::ledger::validate_ledger_name(&self.target)?;
        if self.source == self.target && self.endpoint.is_none() {
            return Err(ReplicaError::Config(format!(
                "ledger {} cannot be its own replica",
                self.source
            )));
        }
        if let Some(stream) = &self.stream {
            sluice_log::validate_name(stream).map_err(|error| {
                ReplicaError::Config(format!("the replica of {}: {error}", self.source))
            })?;
        }
        match &self.endpoint {
            Some(_) if self.stream.is_none() => Err(ReplicaError::Config(format!(
                "the replica of {} names an endpoint but no stream: a remote ledger is read \
                 through a journal stream",
                self.source
            ))),
            Some(endpoint)
                if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) =>
            {
                Err(ReplicaError::Config(format!(
                    "the replica of {}: endpoint {endpoint:?} must start with http:// or https://",
                    self.source
                )))
            }
            _ => Ok(()),
        }
    }
}

/// Every failure of a replica.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// A block or record does not have the shape of a journal block.
    #[error("replica: {0}")]
    Malformed(String),
    /// The source's strand is not the one the target was replicating (the source ledger was
    /// deleted and created again): the target is refused rather than mixed.
    #[error("replica: the target replicates strand {expected} of {source_name}, not {found}")]
    OtherStrand {
        source_name: String,
        expected: String,
        found: String,
    },
    /// A block's records did not all arrive within the settling window while later blocks
    /// waited; nothing after it is applied.
    #[error("replica: block {sequence_no} is still missing after {waited:?}")]
    MissingBlock { sequence_no: u64, waited: Duration },
    /// `ledger_replicas` in the configuration, or a declared replica, is not usable.
    #[error("ledger_replicas: {0}")]
    Config(String),
    /// The target already replicates another source.
    #[error("{0}")]
    InUse(String),
    /// The stream holding the journal stream's records could not be read.
    #[error("replica: reading the journal stream: {0}")]
    Source(String),
    /// The catalog of declared replicas could not be read or written.
    #[error("replicas: {0}")]
    Storage(String),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

type Result<T, E = ReplicaError> = std::result::Result<T, E>;

/// One source block as a replica applies it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaBlock {
    /// The source strand the block belongs to.
    pub strand_id: String,
    /// Its sequence number on that strand.
    pub sequence_no: u64,
    /// Its statements' texts, in order.
    pub statements: Vec<String>,
    /// Its user revisions, in the block's order.
    pub writes: Vec<ReplicaWrite>,
}

/// One user revision of a source block.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaWrite {
    pub table_name: String,
    /// The document id in the source.
    pub source_id: String,
    /// The revision's version in the source: 0 is an insert.
    pub version: u64,
    /// The data; `None` for a delete.
    pub data: Option<Element>,
    /// The index of the (first) statement that wrote it, into [`ReplicaBlock::statements`].
    pub statement_index: usize,
}

/// What [`apply_block`] did with a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The block was committed to the target with the position past it.
    Applied,
    /// The block was applied before (a duplicate, or a replay after a crash).
    AlreadyApplied,
    /// The block is past the position: the blocks before it must come first.
    Waiting { next_sequence_no: u64 },
}

fn malformed(what: &str) -> ReplicaError {
    ReplicaError::Malformed(what.to_owned())
}

impl ReplicaBlock {
    /// The replica's view of a whole journal block (as `Ledger::committed_blocks` returns it).
    pub fn from_block(block: &Element) -> Result<Self> {
        let fields = block
            .as_struct()
            .ok_or_else(|| malformed("block is not a struct"))?;
        let address = fields
            .get("blockAddress")
            .and_then(Element::as_struct)
            .ok_or_else(|| malformed("block without blockAddress"))?;
        let strand_id = address
            .get("strandId")
            .and_then(Element::as_text)
            .ok_or_else(|| malformed("block without strandId"))?
            .to_owned();
        let sequence_no = address
            .get("sequenceNo")
            .and_then(Element::as_i64)
            .and_then(|sequence_no| u64::try_from(sequence_no).ok())
            .ok_or_else(|| malformed("block without sequenceNo"))?;
        let info = fields.get("transactionInfo").and_then(Element::as_struct);
        let statements = info
            .and_then(|info| info.get("statements"))
            .and_then(Element::as_sequence)
            .map(|statements| {
                statements
                    .elements()
                    .map(|statement| {
                        statement
                            .as_struct()
                            .and_then(|statement| statement.get("statement"))
                            .and_then(Element::as_text)
                            .map(str::to_owned)
                            .ok_or_else(|| malformed("statement without text"))
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?
            .unwrap_or_default();
        let documents = info
            .and_then(|info| info.get("documents"))
            .and_then(Element::as_struct);
        let mut writes = Vec::new();
        if let Some(revisions) = fields.get("revisions").and_then(Element::as_sequence) {
            for revision in revisions.elements() {
                let revision = revision
                    .as_struct()
                    .ok_or_else(|| malformed("revision is not a struct"))?;
                // Hash-only revisions (redacted or catalog summaries) carry no metadata.
                let Some(metadata) = revision.get("metadata").and_then(Element::as_struct) else {
                    continue;
                };
                let source_id = metadata
                    .get("id")
                    .and_then(Element::as_text)
                    .ok_or_else(|| malformed("revision without id"))?;
                let version = metadata
                    .get("version")
                    .and_then(Element::as_i64)
                    .and_then(|version| u64::try_from(version).ok())
                    .ok_or_else(|| malformed("revision without version"))?;
                let document = documents
                    .and_then(|documents| documents.get(source_id))
                    .and_then(Element::as_struct)
                    .ok_or_else(|| malformed("revision without its table in transactionInfo"))?;
                let table_id = model::field_text(document, "tableId")?;
                let table_name = model::field_text(document, "tableName")?;
                if table_id == CATALOG_TABLE_ID || is_bookkeeping_table(table_name) {
                    continue;
                }
                let statement_index = document
                    .get("statements")
                    .and_then(Element::as_sequence)
                    .and_then(|indexes| indexes.elements().next())
                    .and_then(Element::as_i64)
                    .and_then(|index| usize::try_from(index).ok())
                    .filter(|index| *index < statements.len())
                    .ok_or_else(|| malformed("revision without a statement"))?;
                writes.push(ReplicaWrite {
                    table_name: table_name.to_owned(),
                    source_id: source_id.to_owned(),
                    version,
                    data: revision.get("data").cloned(),
                    statement_index,
                });
            }
        }
        Ok(ReplicaBlock {
            strand_id,
            sequence_no,
            statements,
            writes,
        })
    }
}

pub(crate) fn is_bookkeeping_table(name: &str) -> bool {
    name == REPLICA_POSITIONS_TABLE || name == REPLICA_IDS_TABLE
}

fn has_table(transaction: &sluice_ledger::transaction::Transaction, name: &str) -> bool {
    transaction
        .tables()
        .iter()
        .any(|table| table.status == model::TableStatus::Active && table.name == name)
}

/// The target's position for `source_name`: the strand it replicates and the next source
/// block it applies (`None` before the first block).
pub fn position(target: &Arc<Ledger>, source_name: &str) -> Result<Option<(String, u64)>> {
    let mut transaction = target.begin()?;
    read_position(&mut transaction, source_name)
}

fn read_position(
    transaction: &mut sluice_ledger::transaction::Transaction,
    source_name: &str,
) -> Result<Option<(String, u64)>> {
    if !has_table(transaction, REPLICA_POSITIONS_TABLE) {
        return Ok(None);
    }
    let rows = transaction.execute(
        &format!(
            "SELECT p.strand_id, p.next_sequence_no FROM {REPLICA_POSITIONS_TABLE} AS p \
             WHERE p.source = ?"
        ),
        &[Element::string(source_name)],
    )?;
    let Some(row) = rows.first().and_then(Element::as_struct) else {
        return Ok(None);
    };
    let strand_id = row
        .get("strand_id")
        .and_then(Element::as_text)
        .ok_or_else(|| malformed("position without strand_id"))?;
    let next_sequence_no = row
        .get("next_sequence_no")
        .and_then(Element::as_i64)
        .and_then(|next| u64::try_from(next).ok())
        .ok_or_else(|| malformed("position without next_sequence_no"))?;
    Ok(Some((strand_id.to_owned(), next_sequence_no)))
}

fn target_id(
    transaction: &mut sluice_ledger::transaction::Transaction,
    source_name: &str,
    source_id: &str,
) -> Result<Option<String>> {
    let rows = transaction.execute(
        &format!(
            "SELECT m.target_id FROM {REPLICA_IDS_TABLE} AS m \
             WHERE m.source_id = ? AND m.source = ?"
        ),
        &[Element::string(source_id), Element::string(source_name)],
    )?;
    Ok(rows
        .first()
        .and_then(Element::as_struct)
        .and_then(|row| row.get("target_id"))
        .and_then(Element::as_text)
        .map(str::to_owned))
}

/// Applies one source block to `target` in one transaction with the position past it, unless
/// it was applied before or comes before its predecessors (then nothing is committed).
pub fn apply_block(
    target: &Arc<Ledger>,
    source_name: &str,
    block: &ReplicaBlock,
) -> Result<Applied> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut transaction = target.begin()?;
        let outcome = apply_in(&mut transaction, source_name, block)?;
        if outcome != Applied::Applied {
            transaction.abort();
            return Ok(outcome);
        }
        match transaction.commit() {
            Ok(_) => return Ok(Applied::Applied),
            Err(LedgerError::OccConflict(_)) if attempt < APPLY_ATTEMPTS_MAX => continue,
            Err(error) => return Err(error.into()),
        }
    }
}

fn apply_in(
    transaction: &mut sluice_ledger::transaction::Transaction,
    source_name: &str,
    block: &ReplicaBlock,
) -> Result<Applied> {
    let position = read_position(transaction, source_name)?;
    let next_sequence_no = match &position {
        Some((strand_id, next)) => {
            if *strand_id != block.strand_id {
                return Err(ReplicaError::OtherStrand {
                    source_name: source_name.to_owned(),
                    expected: strand_id.clone(),
                    found: block.strand_id.clone(),
                });
            }
            *next
        }
        None => 0,
    };
    if block.sequence_no < next_sequence_no {
        return Ok(Applied::AlreadyApplied);
    }
    if block.sequence_no > next_sequence_no {
        return Ok(Applied::Waiting { next_sequence_no });
    }
    if !has_table(transaction, REPLICA_POSITIONS_TABLE) {
        transaction.execute(&format!("CREATE TABLE {REPLICA_POSITIONS_TABLE}"), &[])?;
    }
    if !has_table(transaction, REPLICA_IDS_TABLE) {
        transaction.execute(&format!("CREATE TABLE {REPLICA_IDS_TABLE}"), &[])?;
        transaction.execute(
            &format!("CREATE INDEX ON {REPLICA_IDS_TABLE} (source_id)"),
            &[],
        )?;
    }
    let mut statement_indexes = BTreeMap::new();
    for (source_index, text) in block.statements.iter().enumerate() {
        statement_indexes.insert(source_index, transaction.replicate_statement(text)?);
    }
    for write in &block.writes {
        let statement_index = statement_indexes
            .get(&write.statement_index)
            .copied()
            .ok_or_else(|| malformed("revision without a statement"))?;
        let mapped = if write.version == 0 {
            None
        } else {
            Some(
                target_id(transaction, source_name, &write.source_id)?.ok_or_else(|| {
                    ReplicaError::Malformed(format!(
                        "document {} of {} has no replica",
                        write.source_id, write.table_name
                    ))
                })?,
            )
        };
        let inserted = transaction.replicate_write(
            &write.table_name,
            mapped.as_deref(),
            write.data.clone(),
            statement_index,
        )?;
        if let Some(target_id) = inserted {
            transaction.execute(
                &format!("INSERT INTO {REPLICA_IDS_TABLE} ?"),
                &[Element::from(
                    Struct::builder()
                        .with_field("source", Element::string(source_name))
                        .with_field("source_id", Element::string(write.source_id.as_str()))
                        .with_field("target_id", Element::string(target_id))
                        .build(),
                )],
            )?;
        } else if write.data.is_none() {
            transaction.execute(
                &format!(
                    "DELETE FROM {REPLICA_IDS_TABLE} AS m WHERE m.source_id = ? AND m.source = ?"
                ),
                &[
                    Element::string(write.source_id.as_str()),
                    Element::string(source_name),
                ],
            )?;
        }
    }
    let next = i64::try_from(block.sequence_no + 1)
        .map_err(|_| malformed("sequence number out of range"))?;
    if position.is_some() {
        transaction.execute(
            &format!(
                "UPDATE {REPLICA_POSITIONS_TABLE} AS p SET p.next_sequence_no = ? \
                 WHERE p.source = ?"
            ),
            &[Element::int(next), Element::string(source_name)],
        )?;
    } else {
        transaction.execute(
            &format!("INSERT INTO {REPLICA_POSITIONS_TABLE} ?"),
            &[Element::from(
                Struct::builder()
                    .with_field("source", Element::string(source_name))
                    .with_field("strand_id", Element::string(block.strand_id.as_str()))
                    .with_field("next_sequence_no", Element::int(next))
                    .build(),
            )],
        )?;
    }
    Ok(Applied::Applied)
}

/// What the replicas report for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicasSnapshot {
    /// Per `(source, target)`: source blocks committed but not yet applied to the target. For
    /// a source on another node, the blocks its journal stream has shown so far.
    pub lag_blocks: BTreeMap<(String, String), u64>,
    /// Blocks applied since start.
    pub applied_blocks: u64,
}

/// A replica as `DescribeReplica` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaDescription {
    pub config: ReplicaConfig,
    /// Whether it came from `--config` (else it was declared).
    pub configured: bool,
    /// The next source block the target applies, as last seen (0 before the first pass).
    pub next_sequence_no: u64,
    /// As in [`ReplicasSnapshot::lag_blocks`]; `None` until it is known.
    pub lag_blocks: Option<u64>,
}

/// How far one replica is, as its worker last saw it.
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    /// The next source block the target applies.
    next_sequence_no: u64,
    /// For a stream-fed replica, one past the highest block its stream named.
    seen_next_sequence_no: u64,
}

#[derive(Serialize, Deserialize)]
struct CatalogFile {
    format_version: u32,
    replicas: Vec<ReplicaConfig>,
}

struct Shared {
    ledgers: Arc<Ledgers>,
    log: Arc<Log>,
    /// `<data dir>/replicas`.
    directory: PathBuf,
    /// From the `--config` file.
    configured: Vec<ReplicaConfig>,
    /// Declared at run time, as the catalog holds them.
    declared: Mutex<Vec<ReplicaConfig>>,
    /// Per `(source, target)`.
    progress: Mutex<BTreeMap<(String, String), Progress>>,
    applied_blocks: AtomicU64,
}

impl Shared {
    fn all(&self) -> Vec<ReplicaConfig> {
        let mut all = self.configured.clone();
        all.extend(lock(&self.declared).iter().cloned());
        all
    }
}

/// The replicas (configured and declared) and their worker thread, which follows each
/// source (its committed blocks in-process, or its journal stream) from the position saved in
/// its target and applies blocks with [`apply_block`].
pub struct Replicas {
    shared: Arc<Shared>,
    worker: Mutex<Worker>,
    /// Set by shutdown: no worker starts after it.
    stopped: Mutex<bool>,
}

impl std::fmt::Debug for Replicas {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Replicas")
            .field("replicas", &self.shared.all())
            .finish_non_exhaustive()
    }
}

/// Refuses a set of replicas in which a ledger is the target of two.
fn check_targets(replicas: &[ReplicaConfig]) -> Result<()> {
    let mut targets = BTreeSet::new();
    for replica in replicas {
        if !targets.insert(replica.target.as_str()) {
            return Err(ReplicaError::Config(format!(
                "ledger {} is the target of two replicas",
                replica.target
            )));
        }
    }
    Ok(())
}

impl Replicas {
    /// Checks the configuration, reads the declared replicas of `data_dir`, and starts the
    /// worker (none when no replica is declared).
    pub fn start(
        data_dir: &Path,
        ledgers: Arc<Ledgers>,
        log: Arc<Log>,
        configured: Vec<ReplicaConfig>,
    ) -> Result<Replicas> {
        for replica in &configured {
            replica.validate()?;
        }
        check_targets(&configured)?;
        let directory = data_dir.join(REPLICAS_DIRECTORY);
        let declared = read_catalog(&directory)?;
        let shared = Arc::new(Shared {
            ledgers,
            log,
            directory,
            configured,
            declared: Mutex::new(declared),
            progress: Mutex::new(BTreeMap::new()),
            applied_blocks: AtomicU64::new(0),
        });
        check_targets(&shared.all())?;
        let replicas = Replicas {
            shared,
            worker: Mutex::new(Worker::idle(WORKER_NAME)),
            stopped: Mutex::new(false),
        };
        if !replicas.shared.all().is_empty() {
            replicas.start_worker()?;
        }
        Ok(replicas)
    }

    fn start_worker(&self) -> Result<()> {
        if *lock(&self.stopped) {
            return Ok(());
        }
        let mut worker = lock(&self.worker);
        if worker.is_running() {
            return Ok(());
        }
        let shared = self.shared.clone();
        *worker = Worker::spawn(WORKER_NAME, Some(WORKER_STACK_BYTES), move |stop| {
            run(&shared, &stop)
        })
        .map_err(|error| ReplicaError::Config(format!("starting the worker: {error}")))?;
        Ok(())
    }

    /// Declares a replica (`sluice ledger replicate`): kept in the catalog, so it resumes after
    /// a restart, and started at once. Declaring the same replica again changes nothing; a
    /// target that already replicates something else is refused with [`ReplicaError::InUse`].
    pub fn declare(&self, replica: ReplicaConfig) -> Result<()> {
        replica.validate()?;
        let mut declared = lock(&self.shared.declared);
        let existing = self
            .shared
            .configured
            .iter()
            .chain(declared.iter())
            .find(|existing| existing.target == replica.target);
        match existing {
            Some(existing) if *existing == replica => return Ok(()),
            Some(existing) => {
                return Err(ReplicaError::InUse(format!(
                    "ledger {} is already the replica of {}",
                    replica.target, existing.source
                )));
            }
            None => {}
        }
        if self.shared.configured.len() + declared.len() >= REPLICAS_MAX {
            return Err(ReplicaError::Config(format!(
                "{REPLICAS_MAX} replicas are declared, the most a node runs"
            )));
        }
        let mut next = declared.clone();
        next.push(replica);
        write_catalog(&self.shared.directory, &next)?;
        *declared = next;
        drop(declared);
        self.start_worker()
    }

    /// The replica whose target is `target`.
    pub fn describe(&self, target: &str) -> Option<ReplicaDescription> {
        let configured = self
            .shared
            .configured
            .iter()
            .any(|replica| replica.target == target);
        let config = self
            .shared
            .all()
            .into_iter()
            .find(|replica| replica.target == target)?;
        let key = (config.source.clone(), config.target.clone());
        let next_sequence_no = lock(&self.shared.progress)
            .get(&key)
            .map_or(0, |progress| progress.next_sequence_no);
        let lag_blocks = self.lag_of(&config);
        Some(ReplicaDescription {
            config,
            configured,
            next_sequence_no,
            lag_blocks,
        })
    }

    /// The lag of one replica: against the source's committed blocks when the source is a
    /// ledger of this node, else against the blocks its stream has shown.
    fn lag_of(&self, replica: &ReplicaConfig) -> Option<u64> {
        let key = (replica.source.clone(), replica.target.clone());
        let progress = lock(&self.shared.progress).get(&key).copied();
        if replica.endpoint.is_none() {
            let committed = self
                .shared
                .ledgers
                .ledger(&replica.source)
                .and_then(|source| source.committed_block_count())
                .ok()?;
            let next = progress.map_or(0, |progress| progress.next_sequence_no);
            return Some(committed.saturating_sub(next));
        }
        let progress = progress?;
        Some(
            progress
                .seen_next_sequence_no
                .saturating_sub(progress.next_sequence_no),
        )
    }

    /// Lag and counters for `/metrics`. The lag of a source of this node compares its
    /// committed blocks now with the position last seen in its target, so a commit
    /// acknowledged before the call counts.
    pub fn snapshot(&self) -> ReplicasSnapshot {
        let mut lag_blocks = BTreeMap::new();
        for replica in self.shared.all() {
            if let Some(lag) = self.lag_of(&replica) {
                lag_blocks.insert((replica.source.clone(), replica.target.clone()), lag);
            }
        }
        ReplicasSnapshot {
            lag_blocks,
            applied_blocks: self.shared.applied_blocks.load(Ordering::Relaxed),
        }
    }

    /// Stops the worker; a block in flight is either committed with its position or not at all.
    pub fn shutdown(&self) {
        *lock(&self.stopped) = true;
        lock(&self.worker).shutdown();
    }
}

fn storage(what: &str, error: impl std::fmt::Display) -> ReplicaError {
    ReplicaError::Storage(format!("{what}: {error}"))
}

fn read_catalog(directory: &Path) -> Result<Vec<ReplicaConfig>> {
    let path = directory.join(CATALOG_FILE_NAME);
    let Some(bytes) =
        position_file::read_bounded(&path, CATALOG_BYTES_MAX).map_err(ReplicaError::Storage)?
    else {
        return Ok(Vec::new());
    };
    let file: CatalogFile = serde_json::from_slice(&bytes)
        .map_err(|error| storage(&format!("parsing {}", path.display()), error))?;
    if file.format_version != CATALOG_FORMAT_VERSION {
        return Err(ReplicaError::Storage(format!(
            "{}: format version {} (this build reads {CATALOG_FORMAT_VERSION})",
            path.display(),
            file.format_version
        )));
    }
    for replica in &file.replicas {
        replica.validate()?;
    }
    Ok(file.replicas)
}

fn write_catalog(directory: &Path, replicas: &[ReplicaConfig]) -> Result<()> {
    std::fs::create_dir_all(directory)
        .map_err(|error| storage(&format!("creating {}", directory.display()), error))?;
    let file = CatalogFile {
        format_version: CATALOG_FORMAT_VERSION,
        replicas: replicas.to_vec(),
    };
    let bytes =
        serde_json::to_vec_pretty(&file).map_err(|error| storage("encoding the catalog", error))?;
    position_file::replace(directory, CATALOG_FILE_NAME, &bytes).map_err(ReplicaError::Storage)
}

fn run(shared: &Shared, stop: &Stop) {
    // Each stream-fed replica's reader and assembler, by target; kept between passes.
    let mut followers: BTreeMap<String, Follower> = BTreeMap::new();
    let pairs = || {
        shared
            .all()
            .into_iter()
            .map(|replica| Pair {
                label: format!("{} -> {}", replica.source, replica.target),
                target: replica.target,
            })
            .collect()
    };
    run_passes(WORKER_NAME, stop, pairs, |pair: &Pair| {
        let Some(replica) = shared
            .all()
            .into_iter()
            .find(|replica| replica.target == pair.target)
        else {
            return Ok(worker::Progress::Idle);
        };
        if replica.is_in_process() {
            replicate_once(shared, &replica)
        } else {
            follow_stream_once(shared, &replica, &mut followers)
        }
        .map(worker::Progress::moved)
    });
}

/// One replica as the worker's loop sees it: its target, and how logs name it.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Pair {
    target: String,
    label: String,
}

impl std::fmt::Display for Pair {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.label)
    }
}

/// The target ledger, created when missing.
fn open_target(shared: &Shared, replica: &ReplicaConfig) -> Result<Arc<Ledger>> {
    match shared.ledgers.ledger(&replica.target) {
        Ok(target) => Ok(target),
        Err(LedgerError::NotFound(_)) => Ok(shared.ledgers.create_ledger(&replica.target, true)?),
        Err(error) => Err(error.into()),
    }
}

fn record_progress(shared: &Shared, replica: &ReplicaConfig, next: u64, seen_next: u64) {
    let key = (replica.source.clone(), replica.target.clone());
    lock(&shared.progress).insert(
        key,
        Progress {
            next_sequence_no: next,
            seen_next_sequence_no: seen_next.max(next),
        },
    );
}

/// One pass of one in-process replica: at most [`BLOCKS_PER_READ`] source blocks applied.
/// Returns whether any was.
fn replicate_once(shared: &Shared, replica: &ReplicaConfig) -> Result<bool> {
    let source = shared.ledgers.ledger(&replica.source)?;
    let target = open_target(shared, replica)?;
    let next = match position(&target, &replica.source)? {
        Some((strand_id, next)) if strand_id == source.strand_id() => next,
        Some((strand_id, _)) => {
            return Err(ReplicaError::OtherStrand {
                source_name: replica.source.clone(),
                expected: strand_id,
                found: source.strand_id().to_owned(),
            });
        }
        None => 0,
    };
    record_progress(shared, replica, next, next);
    let blocks = source.committed_blocks(next, BLOCKS_PER_READ)?;
    let mut moved = false;
    for committed in &blocks {
        let block = ReplicaBlock::from_block(&committed.block)?;
        match apply_block(&target, &replica.source, &block)? {
            Applied::Applied => {
                moved = true;
                shared.applied_blocks.fetch_add(1, Ordering::Relaxed);
                record_progress(
                    shared,
                    replica,
                    block.sequence_no + 1,
                    block.sequence_no + 1,
                );
            }
            Applied::AlreadyApplied => {}
            // Blocks are read in order from the position: another writer moved it. Read again.
            Applied::Waiting { .. } => break,
        }
    }
    Ok(moved)
}

/// A stream-fed replica's reading state, kept between passes.
struct Follower {
    /// The configuration it reads for; a changed one starts a new follower.
    config: ReplicaConfig,
    source: RecordSource,
    assembler: BlockAssembler,
    /// One cursor per shard (`None`: the shard is closed and read to its end); `None` until the
    /// shards are listed.
    cursors: Option<Vec<Option<String>>>,
}

impl Follower {
    fn new(shared: &Shared, replica: &ReplicaConfig, next: u64) -> Result<Follower> {
        let stream = replica
            .stream
            .as_deref()
            .ok_or_else(|| malformed("a stream-fed replica without a stream"))?;
        Ok(Follower {
            config: replica.clone(),
            source: RecordSource::new(shared.log.clone(), stream, replica.endpoint.as_deref())?,
            assembler: BlockAssembler::new(next, replica.settling_window()),
            cursors: None,
        })
    }

    /// Forgets what was read: the next pass reads the stream from its trim horizon, releasing
    /// blocks from `next`.
    fn rewind(&mut self, next: u64) {
        self.assembler = BlockAssembler::new(next, self.config.settling_window());
        self.cursors = None;
    }

    /// Reads one batch from every shard into the assembler; returns how many Kinesis records
    /// were read.
    fn read(&mut self) -> Result<usize> {
        let cursors = match self.cursors.take() {
            Some(cursors) => cursors,
            None => self.source.trim_horizon()?.into_iter().map(Some).collect(),
        };
        let mut next_cursors = Vec::with_capacity(cursors.len());
        let mut n_records = 0;
        let mut failure = None;
        for cursor in cursors {
            let Some(cursor) = cursor.filter(|_| failure.is_none()) else {
                next_cursors.push(None);
                continue;
            };
            match self.source.read(&cursor) {
                Ok(read) => {
                    n_records += read.records.len();
                    for data in &read.records {
                        self.add(data);
                    }
                    next_cursors.push(read.next);
                }
                Err(error) => failure = Some(error),
            }
        }
        if let Some(error) = failure {
            return Err(error);
        }
        self.cursors = Some(next_cursors);
        Ok(n_records)
    }

    /// One Kinesis record: its user records, each one journal stream record. A record that is
    /// not one (not Ion, too deep, not a journal record) is skipped: a stream may carry other
    /// writers' records, and nothing a replica applies can come from one.
    fn add(&mut self, data: &[u8]) {
        for user_record in kpl::deaggregate(data) {
            let added = ion_read::read_one(user_record, STREAM_RECORD_DEPTH_MAX)
                .map_err(|error| ReplicaError::Malformed(error.to_string()))
                .and_then(|record| self.assembler.add(&record));
            if let Err(error) = added {
                tracing::warn!(
                    source = %self.config.source,
                    target = %self.config.target,
                    %error,
                    "a record of the journal stream is skipped"
                );
            }
        }
    }
}

/// One pass of one stream-fed replica: one read of every shard, then every block that is whole
/// and next applied. Returns whether anything was read or applied.
fn follow_stream_once(
    shared: &Shared,
    replica: &ReplicaConfig,
    followers: &mut BTreeMap<String, Follower>,
) -> Result<bool> {
    let target = open_target(shared, replica)?;
    let next = position(&target, &replica.source)?.map_or(0, |(_, next)| next);
    let current = followers
        .get(&replica.target)
        .is_some_and(|follower| follower.config == *replica);
    if !current {
        followers.insert(
            replica.target.clone(),
            Follower::new(shared, replica, next)?,
        );
    }
    let follower = followers
        .get_mut(&replica.target)
        .ok_or_else(|| malformed("a follower vanished"))?;
    // The target moved without this follower (a failed apply, another writer): read again.
    if follower.assembler.next_sequence_no() != next {
        follower.rewind(next);
    }
    let n_records = match follower.read() {
        Ok(n_records) => n_records,
        Err(error) => {
            follower.rewind(next);
            return Err(error);
        }
    };
    let mut applied_any = false;
    let mut next = next;
    loop {
        match follower.assembler.next_block(Instant::now()) {
            Ok(Some(block)) => match apply_block(&target, &replica.source, &block)? {
                Applied::Applied => {
                    applied_any = true;
                    next = block.sequence_no + 1;
                    shared.applied_blocks.fetch_add(1, Ordering::Relaxed);
                }
                Applied::AlreadyApplied => {}
                Applied::Waiting { next_sequence_no } => {
                    follower.rewind(next_sequence_no);
                    break;
                }
            },
            Ok(None) => break,
            Err(missing) => {
                record_progress(
                    shared,
                    replica,
                    next,
                    follower.assembler.seen_next_sequence_no(),
                );
                follower.rewind(next);
                return Err(missing);
            }
        }
    }
    record_progress(
        shared,
        replica,
        next,
        follower.assembler.seen_next_sequence_no(),
    );
    // Records dropped past a gap are read again once the stream has nothing new.
    if n_records == 0 && follower.assembler.has_dropped() {
        follower.rewind(next);
    }
    Ok(applied_any || n_records > 0)
}
