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

use crate::worker::{Stop, Worker, lock, run_passes};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ion_rs::{Element, Struct};
use serde::Deserialize;
use sluice_ledger::{Ledger, LedgerError, Ledgers, model, transaction::CATALOG_TABLE_ID};

/// The worker thread's name, also its name in logs.
const WORKER_NAME: &str = "sluice-ledger-replica";
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

/// One entry of `ledger_replicas` in the `--config` file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaConfig {
    /// The source ledger's name.
    pub source: String,
    /// The target ledger's name; created when missing.
    pub target: String,
    /// A remote Sluice holding the source. Not supported yet: refused at start.
    #[serde(default)]
    pub endpoint: Option<String>,
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
    /// `ledger_replicas` in the configuration is not usable.
    #[error("ledger_replicas: {0}")]
    Config(String),
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
    /// Per `(source, target)`: source blocks committed but not yet applied to the target.
    pub lag_blocks: BTreeMap<(String, String), u64>,
    /// Blocks applied since start.
    pub applied_blocks: u64,
}

struct Shared {
    ledgers: Arc<Ledgers>,
    replicas: Vec<ReplicaConfig>,
    /// Per `(source, target)`: the next source block, as last read or applied.
    positions: Mutex<BTreeMap<(String, String), u64>>,
    applied_blocks: AtomicU64,
}

/// The replicas declared in the configuration and their worker thread, which follows each
/// source's committed blocks ([`Ledger::committed_blocks`]) from the position saved in its
/// target and applies them with [`apply_block`].
pub struct Replicas {
    shared: Arc<Shared>,
    worker: Worker,
}

impl std::fmt::Debug for Replicas {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Replicas")
            .field("replicas", &self.shared.replicas)
            .finish_non_exhaustive()
    }
}

impl Replicas {
    /// Checks the configuration and starts the worker (none when no replica is declared).
    pub fn start(ledgers: Arc<Ledgers>, replicas: Vec<ReplicaConfig>) -> Result<Replicas> {
        let mut pairs = BTreeSet::new();
        for replica in &replicas {
            sluice_ledger::ledger::validate_ledger_name(&replica.source)?;
            sluice_ledger::ledger::validate_ledger_name(&replica.target)?;
            if replica.source == replica.target {
                return Err(ReplicaError::Config(format!(
                    "ledger {} cannot be its own replica",
                    replica.source
                )));
            }
            if replica.endpoint.is_some() {
                return Err(ReplicaError::Config(format!(
                    "the replica of {} names an endpoint; replicas of remote ledgers are not \
                     supported yet",
                    replica.source
                )));
            }
            if !pairs.insert(replica.target.clone()) {
                return Err(ReplicaError::Config(format!(
                    "ledger {} is the target of two replicas",
                    replica.target
                )));
            }
        }
        let shared = Arc::new(Shared {
            ledgers,
            replicas,
            positions: Mutex::new(BTreeMap::new()),
            applied_blocks: AtomicU64::new(0),
        });
        let worker = if shared.replicas.is_empty() {
            Worker::idle(WORKER_NAME)
        } else {
            let shared = shared.clone();
            Worker::spawn(WORKER_NAME, None, move |stop| run(&shared, &stop))
                .map_err(|error| ReplicaError::Config(format!("starting the worker: {error}")))?
        };
        Ok(Replicas { shared, worker })
    }

    /// Lag and counters for `/metrics`. The lag compares each source's committed blocks now
    /// with the position last seen in its target, so a commit acknowledged before the call
    /// counts.
    pub fn snapshot(&self) -> ReplicasSnapshot {
        let positions = lock(&self.shared.positions).clone();
        let mut lag_blocks = BTreeMap::new();
        for replica in &self.shared.replicas {
            let Ok(source) = self.shared.ledgers.ledger(&replica.source) else {
                continue;
            };
            let Ok(committed) = source.committed_block_count() else {
                continue;
            };
            let key = (replica.source.clone(), replica.target.clone());
            let next = positions.get(&key).copied().unwrap_or(0);
            lag_blocks.insert(key, committed.saturating_sub(next));
        }
        ReplicasSnapshot {
            lag_blocks,
            applied_blocks: self.shared.applied_blocks.load(Ordering::Relaxed),
        }
    }

    /// Stops the worker; a block in flight is either committed with its position or not at all.
    pub fn shutdown(&self) {
        self.worker.shutdown();
    }
}

fn run(shared: &Shared, stop: &Stop) {
    let pairs = || {
        (shared.replicas.iter().enumerate())
            .map(|(index, replica)| Pair {
                index,
                label: format!("{} -> {}", replica.source, replica.target),
            })
            .collect()
    };
    run_passes(WORKER_NAME, stop, pairs, |pair: &Pair| {
        shared
            .replicas
            .get(pair.index)
            .map_or(Ok(false), |replica| replicate_once(shared, replica))
    });
}

/// One replica as the worker's loop sees it: its place in the configuration, and how logs name it.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Pair {
    index: usize,
    label: String,
}

impl std::fmt::Display for Pair {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.label)
    }
}

/// One pass of one replica: at most [`BLOCKS_PER_READ`] source blocks applied. Returns whether
/// any was.
fn replicate_once(shared: &Shared, replica: &ReplicaConfig) -> Result<bool> {
    let source = shared.ledgers.ledger(&replica.source)?;
    let target = match shared.ledgers.ledger(&replica.target) {
        Ok(target) => target,
        Err(LedgerError::NotFound(_)) => shared.ledgers.create_ledger(&replica.target, true)?,
        Err(error) => return Err(error.into()),
    };
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
    let key = (replica.source.clone(), replica.target.clone());
    lock(&shared.positions).insert(key.clone(), next);
    let blocks = source.committed_blocks(next, BLOCKS_PER_READ)?;
    let mut moved = false;
    for committed in &blocks {
        let block = ReplicaBlock::from_block(&committed.block)?;
        match apply_block(&target, &replica.source, &block)? {
            Applied::Applied => {
                moved = true;
                shared.applied_blocks.fetch_add(1, Ordering::Relaxed);
                lock(&shared.positions).insert(key.clone(), block.sequence_no + 1);
            }
            Applied::AlreadyApplied => {}
            // Blocks are read in order from the position: another writer moved it. Read again.
            Applied::Waiting { .. } => break,
        }
    }
    Ok(moved)
}
