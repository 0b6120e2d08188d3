//! [`Tables`]: every table of a node in one redb database (`tables/tables.redb`), and the
//! write path. A write joins a group-commit queue; whoever finds no leader leads: it takes the
//! queue as one group (and the next, until none wait) and, against the latest state (a redb
//! snapshot under the rows logged but not yet in redb: `pending.rs`), reads each member's
//! current item, runs its condition, and computes the rows it writes: the item, its counts,
//! its index entries and — when the table has a stream — its stream record. The group's rows
//! are one record of the write-ahead log (`wal.rs`), appended durably once for the whole group.
//! Members are answered then: an acknowledged change is durable, and it and its stream record
//! are one log record, so no crash can leave one without the other. The record goes to the
//! applier (`applier.rs`), which writes it into redb and commits without an fsync while the
//! answers travel. Reads use redb snapshots begun once every record handed over before them is
//! committed, so they hold every acknowledged change and nothing that is not durable. Catalog
//! changes wait for the applier and commit durably in redb, which checkpoints the log.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition as RedbTable,
};
use sluice_log::Clock;

use crate::applier::{Applier, Logged};
use crate::codec::{decode_item, encode_item, encode_key};
use crate::error::{CancellationReason, Result, TablesError};
use crate::index::{IndexRequest, SecondaryIndex, validate_indexes};
use crate::pending::{GroupView, Pending, Snapshot, Staged};
use crate::schema::{
    CreateTable, KeyAttribute, StreamInfo, StreamViewType, TTL_ATTRIBUTE_BYTES_MAX,
    TableDefinition, TableDescription, check_key_sizes, ttl_expired, validate_table_name,
};
use crate::stream::{STREAM_RETENTION_MS, StreamRecord, StreamSummary};
use crate::value::{AttributeValue, Item, check_item_limits, item_size_bytes};
use crate::wal::{Redo, Row, Rows, Wal};

/// The on-disk format's version, kept in the `meta` table; `docs/tables-format.md` describes
/// it. Version 1 (before secondary indexes) is upgraded when opened: it has no index entries,
/// so adopting the `index_entries` table is the whole change. Version 2 (before the
/// write-ahead log) has every commit durable in redb, so it opens as a database whose log holds
/// nothing. Version 3 (the log in one file) opens as version 4: its one file is the first of
/// the log's two, the second is created empty. A version-3 build refuses a version-4 database,
/// whose second file it would not read. Opening a database of a later version fails rather
/// than guess.
pub const FORMAT_VERSION: u64 = 4;
/// Most writes one leader commits as one group (one redb commit, one fsync); later arrivals
/// wait for the next group. Each member already holds its item in memory, so this bounds the
/// group's transaction, not a queue: [`QUEUED_WRITE_BYTES_MAX`] bounds the queue.
pub const GROUP_WRITES_MAX: usize = 256;
/// Most bytes of writes waiting for a group commit (their keys, items and update operands, as
/// DynamoDB counts item bytes). A call queues the longest run of its writes that fits and is
/// answered [`TablesError::Throttled`] for the rest, which changed nothing: BatchWriteItem
/// returns them as `UnprocessedItems`. A write always fits in an empty queue, so an item of
/// any allowed size is written on an idle node.
pub const QUEUED_WRITE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Most tables in one node (DynamoDB's default quota is 2,500 per region); CreateTable
/// beyond it is `LimitExceededException`.
pub const TABLES_MAX: usize = 2_500;
/// Most table names in one ListTables page (DynamoDB's `Limit` maximum).
pub const LIST_TABLES_PAGE_MAX: usize = 100;
/// Most item bytes (as DynamoDB counts them) one Scan page holds: DynamoDB's 1 MB. The item that
/// crosses it ends the page, which then says where the next one starts.
pub const PAGE_BYTES_MAX: usize = 1024 * 1024;
/// Most items one Scan page holds when the request sets no `Limit`. A page ends at this or at
/// [`PAGE_BYTES_MAX`], whichever comes first, so a page of tiny items is bounded too.
pub const PAGE_ITEMS_MAX: usize = 100_000;
/// Most segments of a parallel Scan (DynamoDB's `TotalSegments` maximum).
pub const SCAN_SEGMENTS_MAX: u32 = 1_000_000;
/// Most TTL deletes committed as one group by [`Tables::expire_items`]: a table with many
/// expired items is emptied in several commits, so client writes queued meanwhile wait at
/// most one such group (the group commit's own cap, [`GROUP_WRITES_MAX`], also holds).
pub const TTL_EXPIRE_GROUP_MAX: usize = 256;
/// Most stream records one read returns; DynamoDB Streams' GetRecords maximum.
pub const STREAM_READ_MAX: usize = 1_000;

const META: RedbTable<&str, u64> = RedbTable::new("meta");
const CATALOG: RedbTable<&str, &str> = RedbTable::new("catalog");
const ITEMS: RedbTable<(u64, &[u8]), &[u8]> = RedbTable::new("items");
const COUNTS: RedbTable<u64, (u64, u64)> = RedbTable::new("counts");
const STREAMS: RedbTable<u64, &str> = RedbTable::new("streams");
const STREAM_NEXT: RedbTable<u64, u64> = RedbTable::new("stream_next");
const RECORDS: RedbTable<(u64, u64), &[u8]> = RedbTable::new("records");
/// Secondary index entries: (index id, index key then table key) → the projected item.
const INDEX_ENTRIES: RedbTable<(u64, &[u8]), &[u8]> = RedbTable::new("index_entries");

const KEY_FORMAT_VERSION: &str = "format_version";
const KEY_NEXT_TABLE_ID: &str = "next_table_id";
const KEY_NEXT_STREAM_ID: &str = "next_stream_id";
/// The last write-ahead log record the database holds (0 before the first).
const KEY_WAL_APPLIED: &str = "wal_applied";

/// Locks a mutex, poisoned or not.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn not_found() -> TablesError {
    TablesError::NotFound("Requested resource not found".to_owned())
}

fn json_error(error: serde_json::Error) -> TablesError {
    TablesError::Corrupt(format!("catalog entry: {error}"))
}

/// A condition checked against the item a write finds (None when there is none), inside the
/// commit, so nothing changes between the check and the write. It answers
/// [`TablesError::ConditionFailed`] (or any error) to refuse the write.
pub type Check = Box<dyn FnOnce(Option<&Item>) -> Result<()> + Send>;

/// What a write does to the item at its key.
pub enum Change {
    /// Store this item (which has the write's key) in place of any other.
    Put(Item),
    /// Remove the item, if there is one.
    Delete,
    /// Apply an `UpdateExpression`'s actions to the item (to the key alone when there is
    /// none), computed inside the commit from the item as committed.
    Update(Vec<crate::expression::UpdateAction>),
    /// Change nothing: only the check runs (a transaction's `ConditionCheck`).
    ConditionCheck,
}

/// One item write.
pub struct Write {
    pub table: String,
    /// The primary key: for `Put`, taken from the item.
    pub key: Item,
    pub change: Change,
    pub check: Option<Check>,
}

impl Write {
    pub fn put(table: impl Into<String>, item: Item) -> Write {
        Write {
            table: table.into(),
            key: Item::new(),
            change: Change::Put(item),
            check: None,
        }
    }

    pub fn delete(table: impl Into<String>, key: Item) -> Write {
        Write {
            table: table.into(),
            key,
            change: Change::Delete,
            check: None,
        }
    }

    pub fn with_check(mut self, check: Check) -> Write {
        self.check = Some(check);
        self
    }
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOutcome {
    /// The item before the write.
    pub old: Option<Item>,
    /// The item after the write.
    pub new: Option<Item>,
    /// The stream record's sequence number, when the table has a stream and the item changed.
    pub sequence: Option<u64>,
}

/// One Scan request, already checked in shape by the API.
#[derive(Debug, Clone, Default)]
pub struct ScanRequest {
    /// Start after this primary key (exactly the table's key attributes).
    pub exclusive_start_key: Option<Item>,
    /// Most items in the page (bounded by [`PAGE_ITEMS_MAX`]).
    pub limit: Option<usize>,
    /// `(segment, total_segments)` of a parallel scan: the page holds only items whose
    /// partition falls in that segment.
    pub segment: Option<(u32, u32)>,
    /// `FilterExpression`: scanned items it refuses are counted but not returned.
    pub filter: Option<crate::expression::Condition>,
    /// `IndexName`: scan this secondary index's entries instead of the table.
    pub index: Option<String>,
    /// For a local index: answer whole items, read from the table, rather than the projection
    /// (`Select: ALL_ATTRIBUTES`).
    pub fetch_items: bool,
}

/// One Query request, already checked against the key schema by the API.
#[derive(Debug, Clone)]
pub struct QueryRequest {
    /// The partition key's value.
    pub partition: AttributeValue,
    /// The sort key part of `KeyConditionExpression`, evaluated on each item of the partition.
    pub key_condition: Option<crate::expression::Condition>,
    /// `FilterExpression`: scanned items it refuses are counted but not returned.
    pub filter: Option<crate::expression::Condition>,
    /// `ScanIndexForward`: ascending sort key order when true.
    pub forward: bool,
    pub exclusive_start_key: Option<Item>,
    pub limit: Option<usize>,
    /// `IndexName`: query this secondary index (the partition and key condition are its keys).
    pub index: Option<String>,
    /// For a local index: answer whole items, read from the table, rather than the projection.
    pub fetch_items: bool,
}

/// A change to a table's global secondary indexes (UpdateTable's `GlobalSecondaryIndexUpdates`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexUpdate {
    /// Create an index, filled from the table's items; `attribute_definitions` are the request's
    /// (its new key attributes must be among them).
    Create {
        index: IndexRequest,
        attribute_definitions: Vec<KeyAttribute>,
    },
    /// Delete an index and its entries.
    Delete(String),
    /// Change an index's provisioned capacity (kept only to describe it back).
    Update {
        name: String,
        provisioned_throughput: (u64, u64),
    },
}

/// One page of a Scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanPage {
    pub items: Vec<Item>,
    /// Items read before the filter (`ScannedCount`).
    pub scanned_count: usize,
    /// The key to start the next page after, when the page ended before the table did.
    pub last_evaluated_key: Option<Item>,
}

/// The segment of a partition in a parallel scan: FNV-1a of its key prefix, so a partition's
/// items are all in one segment and segments split the table about evenly.
fn segment_of(partition_prefix: &[u8], total_segments: u32) -> u32 {
    let hash = partition_prefix
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    (hash % u64::from(total_segments.max(1))) as u32
}

/// A write checked and encoded by its caller's thread, so the leader's work is short.
struct Prepared {
    table: String,
    key_bytes: Vec<u8>,
    /// The item to store and its stored bytes, or None to delete.
    put: Option<(Item, Vec<u8>)>,
    /// Update actions and the key item they start from when there is no item.
    update: Option<(Vec<crate::expression::UpdateAction>, Item)>,
    /// A transaction's ConditionCheck: the check runs, nothing is written.
    check_only: bool,
    check: Option<Check>,
    /// A TTL expiry: the service, not a client, removes the item, and its stream record
    /// says so.
    by_service: bool,
    /// What the write counts against [`QUEUED_WRITE_BYTES_MAX`] while it waits.
    bytes: usize,
}

/// Receives a queued call's outcomes, in the order of its writes, once every one of them has
/// committed or been refused. It runs on the thread that finished the call's last group, outside
/// the queue's lock, so it must only hand the outcomes on (to a channel, a waiting task).
pub type Deliver = Box<dyn FnOnce(Vec<Result<WriteOutcome>>) + Send>;

/// Where a queued write's outcome goes: its call and its place in the call.
#[derive(Debug, Clone, Copy)]
struct Slot {
    call: u64,
    index: usize,
}

/// A call whose writes are queued or being committed.
struct PendingCall {
    outcomes: Vec<Option<Result<WriteOutcome>>>,
    /// Writes of the call not yet answered.
    remaining: usize,
    deliver: Deliver,
}

#[derive(Default)]
struct QueueState {
    waiting: Vec<(Slot, Prepared)>,
    /// The sum of `waiting`'s `bytes`.
    waiting_bytes: usize,
    /// Whether some thread leads: commits the waiting writes, group after group, until none
    /// wait. Whoever queues writes while nobody leads is told to lead.
    leader_active: bool,
    pending: HashMap<u64, PendingCall>,
    next_call: u64,
}

/// What the caller of [`Tables::submit`] must do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a caller told to lead must call `Tables::lead` until it answers false"]
pub enum Submitted {
    /// A leader is at work: the outcomes arrive through the call's [`Deliver`].
    Queued,
    /// Nobody leads: the caller must, with [`Tables::lead`], until it answers false.
    Lead,
}

/// Most item rows logged and not yet applied to redb before a leader waits for the applier:
/// it bounds the memory of [`Pending`] should redb fall behind.
const PENDING_ITEM_ROWS_MAX: usize = 16 * 1024;

/// The write side, locked by a leader from its group's first read to its record's hand-over,
/// and by catalog changes and checkpoints for their whole redb transaction: so records are
/// numbered in the order they were computed, each against every record before it.
pub(crate) struct WriteSide {
    wal: Wal,
    pending: Pending,
}

/// All tables of a node and their streams.
pub struct Tables {
    database: Arc<Database>,
    clock: Arc<dyn Clock>,
    queue: Mutex<QueueState>,
    /// [`QUEUED_WRITE_BYTES_MAX`], smaller in tests.
    queued_bytes_max: usize,
    /// Set when a commit failed: the database refuses writes until it is reopened.
    poisoned: Arc<AtomicBool>,
    /// The catalog as last committed, for reads and for checking writes before they queue.
    /// Changed only while holding `write_side`, so a leader holding it sees the catalog as
    /// committed.
    catalog: Mutex<HashMap<String, Arc<TableDefinition>>>,
    /// The commit point of item writes and the rows logged but not yet in redb.
    write_side: Mutex<WriteSide>,
    /// Applies logged groups to redb after they are answered; readers wait for it.
    applier: Applier,
}

impl Drop for Tables {
    /// A clean close leaves every commit durable in the database and the log empty, so the next
    /// open has nothing to apply. Not needed for safety: the log is applied after a crash.
    fn drop(&mut self) {
        self.applier.stop();
        if !self.poisoned.load(Ordering::SeqCst)
            && let Err(error) = self.checkpoint(&mut lock(&self.write_side))
        {
            tracing::warn!(%error, "tables: the closing checkpoint failed; the next open applies the write-ahead log");
        }
    }
}

impl std::fmt::Debug for Tables {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Tables").finish_non_exhaustive()
    }
}

impl Tables {
    /// Now, on the clock the tables were opened with (stream record times, retention, and the
    /// age of stream iterators).
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Opens (or creates) the tables database in `directory`.
    pub fn open(directory: &Path, clock: Arc<dyn Clock>) -> Result<Tables> {
        std::fs::create_dir_all(directory)?;
        let database = Arc::new(Database::create(directory.join("tables.redb"))?);
        let write = database.begin_write()?;
        {
            let mut meta = write.open_table(META)?;
            let version = meta.get(KEY_FORMAT_VERSION)?.map(|value| value.value());
            match version {
                None => {
                    meta.insert(KEY_FORMAT_VERSION, FORMAT_VERSION)?;
                    meta.insert(KEY_NEXT_TABLE_ID, 1)?;
                    meta.insert(KEY_NEXT_STREAM_ID, 1)?;
                }
                Some(FORMAT_VERSION) => {}
                Some(1..=3) => {
                    meta.insert(KEY_FORMAT_VERSION, FORMAT_VERSION)?;
                }
                Some(other) => {
                    return Err(TablesError::Corrupt(format!(
                        "tables database has format version {other}, this build reads {FORMAT_VERSION}"
                    )));
                }
            }
            write.open_table(CATALOG)?;
            write.open_table(ITEMS)?;
            write.open_table(COUNTS)?;
            write.open_table(STREAMS)?;
            write.open_table(STREAM_NEXT)?;
            write.open_table(RECORDS)?;
            write.open_table(INDEX_ENTRIES)?;
        }
        let wal = recover(&write, directory)?;
        write.commit()?;
        let mut catalog = HashMap::new();
        {
            let read = database.begin_read()?;
            for entry in read.open_table(CATALOG)?.iter()? {
                let (name, json) = entry?;
                let definition: TableDefinition =
                    serde_json::from_str(json.value()).map_err(json_error)?;
                catalog.insert(name.value().to_owned(), Arc::new(definition));
            }
        }
        let poisoned = Arc::new(AtomicBool::new(false));
        let applied = wal.next_lsn() - 1;
        Ok(Tables {
            applier: Applier::start(database.clone(), applied, poisoned.clone())?,
            database,
            clock,
            queue: Mutex::new(QueueState::default()),
            queued_bytes_max: QUEUED_WRITE_BYTES_MAX,
            poisoned,
            catalog: Mutex::new(catalog),
            write_side: Mutex::new(WriteSide {
                wal,
                pending: Pending::default(),
            }),
        })
    }

    /// The write side and redb's write transaction, for a change made in redb directly (a
    /// catalog change, a checkpoint), once redb holds every logged record. The caller holds
    /// the returned guard until it has committed.
    fn begin_direct(&self) -> Result<(MutexGuard<'_, WriteSide>, redb::WriteTransaction)> {
        let mut side = lock(&self.write_side);
        let write = self.begin_direct_held(&mut side)?;
        Ok((side, write))
    }

    /// [`Tables::begin_direct`] for a caller that holds the write side already.
    fn begin_direct_held(&self, side: &mut WriteSide) -> Result<redb::WriteTransaction> {
        self.applier.wait_visible()?;
        side.pending.clear();
        Ok(self.database.begin_write()?)
    }

    /// A snapshot holding every acknowledged write (and nothing that is not durable: redb
    /// only ever sees a group after its log record is on disk).
    fn read(&self) -> Result<redb::ReadTransaction> {
        self.applier.wait_visible()?;
        Ok(self.database.begin_read()?)
    }

    /// The latest state's redb part for a group about to be computed: a snapshot holding at
    /// least every record [`Pending`] no longer holds.
    fn group_snapshot(&self, side: &mut WriteSide) -> Result<Snapshot> {
        if side.pending.item_rows() > PENDING_ITEM_ROWS_MAX {
            self.applier.wait_visible()?;
        }
        // Read what redb holds before the snapshot begins, so the snapshot holds it too.
        let applied = self.applier.applied();
        let read = self.database.begin_read()?;
        side.pending.forget_applied(applied);
        Ok(Snapshot {
            items: read.open_table(ITEMS)?,
            counts: read.open_table(COUNTS)?,
            stream_next: read.open_table(STREAM_NEXT)?,
        })
    }

    /// Logs a group's rows: once its record is on disk the change is durable and may be
    /// answered; the rows join the pending ones and go to the applier, which writes them into
    /// redb (without an fsync of its own) while the answers travel; readers wait for that. A
    /// failure refuses writes until the tables are reopened, which replays the log.
    fn log_group(&self, side: &mut WriteSide, staged: Staged, redo: Redo) -> Result<()> {
        let lsn = match side.wal.append(redo.bytes()) {
            Ok(lsn) => lsn,
            Err(error) => {
                self.poisoned.store(true, Ordering::SeqCst);
                tracing::error!(%error, "tables commit failed; writes refused until reopened");
                return Err(error);
            }
        };
        side.pending.merge(staged, lsn);
        // Past its size the log moves to its other file, whose records redb holds durably by
        // now, and the applier's commit of this group is made durable, which frees this file.
        let checkpoint =
            side.wal.wants_checkpoint() && side.wal.switch_if_free(self.applier.durable());
        self.applier.hand_over(lsn, redo.into_bytes(), checkpoint);
        // Should that checkpoint still be running when this file is full too, the writer
        // waits for one. The group is durable in the log whatever happens here; a checkpoint
        // that fails leaves the log to grow and is tried again after the next group (a failed
        // database commit has poisoned the tables already).
        if side.wal.must_checkpoint()
            && let Err(error) = self.checkpoint(side)
        {
            tracing::error!(%error, "tables checkpoint failed; the write-ahead log keeps growing");
        }
        Ok(())
    }

    /// Makes every logged record durable in the database and starts the write-ahead log
    /// again at its front. The caller holds the write side.
    fn checkpoint(&self, side: &mut WriteSide) -> Result<()> {
        let mut write = self.begin_direct_held(side)?;
        write.set_durability(redb::Durability::Immediate)?;
        self.commit_control(side, write)
    }

    fn refuse_if_poisoned(&self) -> Result<()> {
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(TablesError::Storage(
                "a commit failed earlier; tables refuse writes until reopened".to_owned(),
            ));
        }
        Ok(())
    }

    /// A table's definition as last committed, from memory (no disk read): for checking a
    /// request against the key schema before queuing it.
    pub fn definition(&self, name: &str) -> Result<Arc<TableDefinition>> {
        lock(&self.catalog).get(name).cloned().ok_or_else(not_found)
    }

    /// Creates a table (and its stream, when asked), durably.
    pub fn create_table(&self, request: CreateTable) -> Result<TableDescription> {
        request.validate()?;
        self.refuse_if_poisoned()?;
        let now_ms = self.clock.now_ms();
        let (mut side, mut write) = self.begin_direct()?;
        write.set_durability(redb::Durability::Immediate)?;
        let definition = {
            let mut catalog = write.open_table(CATALOG)?;
            if catalog.get(request.name.as_str())?.is_some() {
                return Err(TablesError::InUse(format!(
                    "Table already exists: {}",
                    request.name
                )));
            }
            if catalog.len()? as usize >= TABLES_MAX {
                return Err(TablesError::LimitExceeded(format!(
                    "Subscriber limit exceeded: a node holds at most {TABLES_MAX} tables"
                )));
            }
            let mut meta = write.open_table(META)?;
            let table_id = next_id(&mut meta, KEY_NEXT_TABLE_ID)?;
            let stream = match request.stream_view_type {
                Some(view_type) => {
                    let stream_id = next_id(&mut meta, KEY_NEXT_STREAM_ID)?;
                    let summary = StreamSummary {
                        stream_id,
                        table_name: request.name.clone(),
                        view_type,
                        created_ms: now_ms,
                        disabled_ms: None,
                        key_schema: Some(request.key_schema.clone()),
                    };
                    let json = serde_json::to_string(&summary).map_err(json_error)?;
                    write
                        .open_table(STREAMS)?
                        .insert(stream_id, json.as_str())?;
                    write.open_table(STREAM_NEXT)?.insert(stream_id, 1)?;
                    Some(StreamInfo {
                        stream_id,
                        view_type,
                        created_ms: now_ms,
                    })
                }
                None => None,
            };
            let mut counts = write.open_table(COUNTS)?;
            let mut indexes = Vec::with_capacity(request.indexes.len());
            for index in request.indexes {
                let index_id = next_id(&mut meta, KEY_NEXT_TABLE_ID)?;
                counts.insert(index_id, (0, 0))?;
                indexes.push(SecondaryIndex::from_request(index, index_id));
            }
            let definition = TableDefinition {
                name: request.name.clone(),
                table_id,
                key_schema: request.key_schema,
                attribute_definitions: request.attribute_definitions,
                billing_mode: request.billing_mode,
                provisioned_throughput: request.provisioned_throughput,
                created_ms: now_ms,
                stream,
                ttl_attribute: None,
                indexes,
                tags: request.tags,
            };
            let json = serde_json::to_string(&definition).map_err(json_error)?;
            catalog.insert(request.name.as_str(), json.as_str())?;
            counts.insert(table_id, (0, 0))?;
            definition
        };
        self.commit_control(&mut side, write)?;
        let definition = Arc::new(definition);
        lock(&self.catalog).insert(definition.name.clone(), definition.clone());
        Ok(TableDescription {
            index_counts: vec![(0, 0); definition.indexes.len()],
            definition: (*definition).clone(),
            item_count: 0,
            size_bytes: 0,
        })
    }

    /// UpdateTable's stream part: `Some(view)` enables a new stream (a new id and label),
    /// `None` disables the current one, whose records stay readable until retention ends.
    pub fn update_stream(
        &self,
        name: &str,
        view_type: Option<StreamViewType>,
    ) -> Result<TableDescription> {
        let now_ms = self.clock.now_ms();
        self.change_definition(name, |write, definition| {
            match (&definition.stream, view_type) {
                (Some(_), Some(_)) => {
                    return Err(TablesError::Validation(format!(
                        "Table already has an enabled stream: TableName: {name}"
                    )));
                }
                (None, None) => {
                    return Err(TablesError::Validation(
                        "One or more parameter values were invalid: Table does not have a stream to disable"
                            .to_owned(),
                    ));
                }
                (Some(stream), None) => {
                    self.disable_stream(write, stream.stream_id)?;
                    definition.stream = None;
                }
                (None, Some(view_type)) => {
                    let stream_id = next_id(&mut write.open_table(META)?, KEY_NEXT_STREAM_ID)?;
                    let summary = StreamSummary {
                        stream_id,
                        table_name: name.to_owned(),
                        view_type,
                        created_ms: now_ms,
                        disabled_ms: None,
                        key_schema: Some(definition.key_schema.clone()),
                    };
                    let json = serde_json::to_string(&summary).map_err(json_error)?;
                    write
                        .open_table(STREAMS)?
                        .insert(stream_id, json.as_str())?;
                    write.open_table(STREAM_NEXT)?.insert(stream_id, 1)?;
                    definition.stream = Some(StreamInfo {
                        stream_id,
                        view_type,
                        created_ms: now_ms,
                    });
                }
            }
            Ok(())
        })?;
        self.describe_table(name)
    }

    /// Changes one table's catalog entry in its own durable transaction: `change` edits the
    /// entry as committed (and may write other tables of the transaction, as a new stream's
    /// summary); an `Err` from it leaves everything as it was. The in-memory catalog follows the
    /// commit.
    fn change_definition(
        &self,
        name: &str,
        change: impl FnOnce(&redb::WriteTransaction, &mut TableDefinition) -> Result<()>,
    ) -> Result<Arc<TableDefinition>> {
        self.refuse_if_poisoned()?;
        let (mut side, mut write) = self.begin_direct()?;
        write.set_durability(redb::Durability::Immediate)?;
        let definition = {
            let mut catalog = write.open_table(CATALOG)?;
            let json = catalog
                .get(name)?
                .map(|json| json.value().to_owned())
                .ok_or_else(not_found)?;
            let mut definition: TableDefinition =
                serde_json::from_str(&json).map_err(json_error)?;
            change(&write, &mut definition)?;
            let json = serde_json::to_string(&definition).map_err(json_error)?;
            catalog.insert(name, json.as_str())?;
            definition
        };
        self.commit_control(&mut side, write)?;
        let definition = Arc::new(definition);
        lock(&self.catalog).insert(name.to_owned(), definition.clone());
        Ok(definition)
    }

    /// Commits a `Durability::Immediate` transaction (a catalog change or a checkpoint), begun
    /// once redb held every logged record: it makes them durable in the database too, so the
    /// write-ahead log starts again at its front.
    fn commit_control(&self, side: &mut WriteSide, write: redb::WriteTransaction) -> Result<()> {
        if let Err(error) = write.commit() {
            self.poisoned.store(true, Ordering::SeqCst);
            tracing::error!(%error, "tables commit failed; writes refused until reopened");
            return Err(error.into());
        }
        self.applier.mark_durable();
        side.wal.restart();
        Ok(())
    }

    /// A table's definition and counts.
    pub fn describe_table(&self, name: &str) -> Result<TableDescription> {
        let definition = self.definition(name)?;
        let read = self.read()?;
        let counts = read.open_table(COUNTS)?;
        let (item_count, size_bytes) = counts
            .get(definition.table_id)?
            .map(|counts| counts.value())
            .ok_or_else(not_found)?;
        let index_counts = (definition.indexes.iter())
            .map(|index| {
                Ok(counts
                    .get(index.index_id)?
                    .map_or((0, 0), |counts| counts.value()))
            })
            .collect::<Result<_>>()?;
        Ok(TableDescription {
            definition: (*definition).clone(),
            item_count,
            size_bytes,
            index_counts,
        })
    }

    /// Table names in byte order after `exclusive_start`, at most `limit` (bounded by
    /// [`LIST_TABLES_PAGE_MAX`]), and the last name when more follow.
    pub fn list_tables(
        &self,
        exclusive_start: Option<&str>,
        limit: usize,
    ) -> (Vec<String>, Option<String>) {
        let limit = limit.clamp(1, LIST_TABLES_PAGE_MAX);
        let mut names: Vec<String> = lock(&self.catalog)
            .keys()
            .filter(|name| exclusive_start.is_none_or(|start| name.as_str() > start))
            .cloned()
            .collect();
        names.sort();
        let more = names.len() > limit;
        names.truncate(limit);
        let last = if more { names.last().cloned() } else { None };
        (names, last)
    }

    /// Deletes a table and its items; its stream stops and its records stay readable until
    /// retention removes them. Answers the table as it was.
    pub fn delete_table(&self, name: &str) -> Result<TableDescription> {
        validate_table_name(name)?;
        self.refuse_if_poisoned()?;
        let description = self.describe_table(name)?;
        let definition = &description.definition;
        let (mut side, mut write) = self.begin_direct()?;
        write.set_durability(redb::Durability::Immediate)?;
        {
            let mut catalog = write.open_table(CATALOG)?;
            if catalog.remove(name)?.is_none() {
                return Err(not_found());
            }
            let id = definition.table_id;
            write
                .open_table(ITEMS)?
                .retain_in((id, &[][..])..(id + 1, &[][..]), |_, _| false)?;
            write.open_table(COUNTS)?.remove(id)?;
            for index in &definition.indexes {
                drop_index_entries(&write, index.index_id)?;
            }
            if let Some(stream) = &definition.stream {
                self.disable_stream(&write, stream.stream_id)?;
            }
        }
        self.commit_control(&mut side, write)?;
        lock(&self.catalog).remove(name);
        Ok(description)
    }

    fn disable_stream(&self, write: &redb::WriteTransaction, stream_id: u64) -> Result<()> {
        let mut streams = write.open_table(STREAMS)?;
        let json = streams.get(stream_id)?.map(|json| json.value().to_owned());
        if let Some(json) = json {
            let mut summary: StreamSummary = serde_json::from_str(&json).map_err(json_error)?;
            summary.disabled_ms = Some(self.clock.now_ms());
            let json = serde_json::to_string(&summary).map_err(json_error)?;
            streams.insert(stream_id, json.as_str())?;
        }
        Ok(())
    }

    /// The item at `key` (exactly the table's key attributes), as last committed.
    pub fn get_item(&self, table: &str, key: &Item) -> Result<Option<Item>> {
        let definition = self.definition(table)?;
        let (partition, sort) = definition.key_schema.exact_key(key)?;
        let key_bytes = encode_key(partition, sort);
        let read = self.read()?;
        let items = read.open_table(ITEMS)?;
        let stored = items.get((definition.table_id, key_bytes.as_slice()))?;
        stored.map(|bytes| decode_item(bytes.value())).transpose()
    }

    /// One page of a table's items in key order (partitions in their encoded order), or of a
    /// secondary index's entries in its key order, as committed when the scan began.
    pub fn scan(&self, table: &str, request: &ScanRequest) -> Result<ScanPage> {
        let definition = self.definition(table)?;
        let schema = &definition.key_schema;
        let read = self.read()?;
        let view = View::of(&definition, request.index.as_deref(), request.fetch_items)?;
        let start = request
            .exclusive_start_key
            .as_ref()
            .map(|key| view.start_key(schema, key))
            .transpose()?;
        let store = read.open_table(view.store())?;
        let table_items = read.open_table(ITEMS)?;
        let id = view.id();
        let range = match &start {
            Some(start) => store.range((id, start.as_slice())..(id + 1, &[][..]))?,
            None => store.range((id, &[][..])..(id + 1, &[][..]))?,
        };
        let partition_key = view.partition_key(schema);
        let in_segment = |item: &Item| -> Result<bool> {
            let Some((segment, total)) = request.segment else {
                return Ok(true);
            };
            let Some(partition) = item.get(&partition_key.name) else {
                return Ok(false);
            };
            Ok(segment_of(&crate::codec::partition_prefix(partition), total) == segment)
        };
        page_of(
            range,
            start.as_deref(),
            request.limit,
            in_segment,
            request.filter.as_ref(),
            &|item| view.last_key(schema, item),
            &|bytes| view.load(schema, &table_items, bytes),
        )
    }

    /// One page of a partition's items in sort key order (or its reverse), those whose sort
    /// key meets the request's key condition, as committed when the query began; of a
    /// secondary index's partition when the request names one.
    pub fn query(&self, table: &str, request: &QueryRequest) -> Result<ScanPage> {
        let definition = self.definition(table)?;
        let schema = &definition.key_schema;
        let view = View::of(&definition, request.index.as_deref(), request.fetch_items)?;
        let id = view.id();
        let prefix = crate::codec::partition_prefix(&request.partition);
        // Every key of the partition starts with the prefix, which ends 0x00 0x01: the keys
        // below the prefix with 0x02 in place of that last byte are exactly the partition's.
        let mut prefix_end = prefix.clone();
        if let Some(last) = prefix_end.last_mut() {
            *last = 0x02;
        }
        let start = request
            .exclusive_start_key
            .as_ref()
            .map(|key| view.start_key(schema, key))
            .transpose()?;
        let read = self.read()?;
        let store = read.open_table(view.store())?;
        let table_items = read.open_table(ITEMS)?;
        let lower = match (&start, request.forward) {
            (Some(start), true) if start.as_slice() > prefix.as_slice() => start.as_slice(),
            _ => prefix.as_slice(),
        };
        let upper = match (&start, request.forward) {
            (Some(start), false) if start.as_slice() < prefix_end.as_slice() => start.as_slice(),
            _ => prefix_end.as_slice(),
        };
        let range = store.range((id, lower)..(id, upper))?;
        let key_condition = |item: &Item| -> Result<bool> {
            Ok(request
                .key_condition
                .as_ref()
                .is_none_or(|condition| crate::expression::evaluate(condition, Some(item))))
        };
        let last_key = |item: &Item| view.last_key(schema, item);
        let load = |bytes: &[u8]| view.load(schema, &table_items, bytes);
        if request.forward {
            page_of(
                range,
                start.as_deref(),
                request.limit,
                key_condition,
                request.filter.as_ref(),
                &last_key,
                &load,
            )
        } else {
            page_of(
                range.rev(),
                start.as_deref(),
                request.limit,
                key_condition,
                request.filter.as_ref(),
                &last_key,
                &load,
            )
        }
    }

    /// Several items, each at `(table, key)`, read from one snapshot (TransactGetItems).
    pub fn get_items(&self, keys: &[(String, Item)]) -> Result<Vec<Option<Item>>> {
        let read = self.read()?;
        let items = read.open_table(ITEMS)?;
        keys.iter()
            .map(|(table, key)| {
                let definition = self.definition(table)?;
                let (partition, sort) = definition.key_schema.exact_key(key)?;
                let key_bytes = encode_key(partition, sort);
                items
                    .get((definition.table_id, key_bytes.as_slice()))?
                    .map(|bytes| decode_item(bytes.value()))
                    .transpose()
            })
            .collect()
    }

    /// Applies one write durably, with its stream record, and answers what it did. Concurrent
    /// writes share one commit.
    pub fn write(&self, write: Write) -> Result<WriteOutcome> {
        self.write_batch(vec![write])?
            .pop()
            .unwrap_or_else(|| Err(TablesError::Storage("a write lost its outcome".to_owned())))
    }

    /// Applies several writes durably, all queued at once so they share a group commit, and
    /// answers each one's outcome in order. Every write is checked before any is queued: one
    /// that is malformed (its table missing, its key or item invalid) fails the whole batch
    /// and changes nothing. The writes are not one transaction: each has its own outcome.
    /// When the queue is full the writes that do not fit are answered
    /// [`TablesError::Throttled`] and changed nothing.
    pub fn write_batch(&self, writes: Vec<Write>) -> Result<Vec<Result<WriteOutcome>>> {
        self.refuse_if_poisoned()?;
        let prepared: Vec<Prepared> = writes
            .into_iter()
            .map(|write| self.prepare(write))
            .collect::<Result<_>>()?;
        Ok(self.enqueue(prepared))
    }

    /// [`Tables::write_batch`] without blocking: the writes are checked and queued, and their
    /// outcomes go to `deliver` once committed. An `Err` (a malformed write, refused writes)
    /// queued nothing, and `deliver` is dropped uncalled. When the answer is
    /// [`Submitted::Lead`], the caller must call [`Tables::lead`] until it answers false, on a
    /// thread that may block: nothing else commits the queue meanwhile.
    pub fn submit(&self, writes: Vec<Write>, deliver: Deliver) -> Result<Submitted> {
        self.refuse_if_poisoned()?;
        let prepared: Vec<Prepared> = writes
            .into_iter()
            .map(|write| self.prepare(write))
            .collect::<Result<_>>()?;
        Ok(self.submit_prepared(prepared, deliver))
    }

    /// Queues prepared writes for the group commit and waits for their outcomes, in order,
    /// leading the queue when nobody does.
    fn enqueue(&self, prepared: Vec<Prepared>) -> Vec<Result<WriteOutcome>> {
        let count = prepared.len();
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        let deliver: Deliver = Box::new(move |outcomes| {
            // The receiver is this thread, waiting below.
            let _ = sender.send(outcomes);
        });
        if self.submit_prepared(prepared, deliver) == Submitted::Lead {
            while self.lead(usize::MAX) {}
        }
        receiver.recv().unwrap_or_else(|_| {
            (0..count)
                .map(|_| {
                    Err(TablesError::Storage(
                        "a queued write lost its outcome".to_owned(),
                    ))
                })
                .collect()
        })
    }

    /// Queues the longest run of `prepared` that fits under `queued_bytes_max` (the rest are
    /// answered [`TablesError::Throttled`]); says whether the caller must lead.
    fn submit_prepared(&self, prepared: Vec<Prepared>, deliver: Deliver) -> Submitted {
        let count = prepared.len();
        let mut state = lock(&self.queue);
        let call = state.next_call;
        state.next_call += 1;
        let mut queued = 0;
        for (index, prepared) in prepared.into_iter().enumerate() {
            let fits = state.waiting.is_empty()
                || state.waiting_bytes.saturating_add(prepared.bytes) <= self.queued_bytes_max;
            if !fits {
                break;
            }
            state.waiting_bytes += prepared.bytes;
            state.waiting.push((Slot { call, index }, prepared));
            queued += 1;
        }
        let outcomes: Vec<Option<Result<WriteOutcome>>> = (0..count)
            .map(|index| (index >= queued).then_some(Err(TablesError::Throttled)))
            .collect();
        if queued == 0 {
            drop(state);
            deliver(outcomes.into_iter().flatten().collect());
            return Submitted::Queued;
        }
        state.pending.insert(
            call,
            PendingCall {
                outcomes,
                remaining: queued,
                deliver,
            },
        );
        if state.leader_active {
            Submitted::Queued
        } else {
            state.leader_active = true;
            Submitted::Lead
        }
    }

    /// The leader's turn: commits up to `groups_max` groups of the waiting writes, each as one
    /// transaction with one fsync, and delivers the outcomes of every call they complete.
    /// Answers whether writes still wait: then the caller is still the leader and must call
    /// again (or hand the turn to a thread that will); otherwise nobody leads any more.
    pub fn lead(&self, groups_max: usize) -> bool {
        for _ in 0..groups_max {
            let group = {
                let mut state = lock(&self.queue);
                if state.waiting.is_empty() {
                    state.leader_active = false;
                    return false;
                }
                let take = state.waiting.len().min(GROUP_WRITES_MAX);
                let group: Vec<(Slot, Prepared)> = state.waiting.drain(..take).collect();
                let taken: usize = group.iter().map(|(_, prepared)| prepared.bytes).sum();
                state.waiting_bytes -= taken;
                group
            };
            let mut guard = LeaderGuard {
                tables: self,
                slots: group.iter().map(|(slot, _)| *slot).collect(),
                outcomes: None,
            };
            guard.outcomes = Some(self.commit_group(group));
            drop(guard);
        }
        let mut state = lock(&self.queue);
        if state.waiting.is_empty() {
            state.leader_active = false;
            false
        } else {
            true
        }
    }

    /// Puts a group's outcomes in their calls, then delivers each call they complete.
    fn finish(&self, outcomes: Vec<(Slot, Result<WriteOutcome>)>) {
        let mut complete = Vec::new();
        {
            let mut state = lock(&self.queue);
            for (slot, outcome) in outcomes {
                let Some(call) = state.pending.get_mut(&slot.call) else {
                    continue;
                };
                if let Some(place) = call.outcomes.get_mut(slot.index) {
                    *place = Some(outcome);
                }
                call.remaining -= 1;
                if call.remaining == 0
                    && let Some(call) = state.pending.remove(&slot.call)
                {
                    complete.push(call);
                }
            }
        }
        for call in complete {
            let outcomes = call
                .outcomes
                .into_iter()
                .map(|outcome| {
                    outcome.unwrap_or_else(|| {
                        Err(TablesError::Storage("a write lost its outcome".to_owned()))
                    })
                })
                .collect();
            (call.deliver)(outcomes);
        }
    }

    /// Applies writes as one transaction: every member's condition is checked and its new item
    /// computed against the committed state, then all are stored in one durable commit, or —
    /// when any member fails — none is, and the error gives one reason per member. Two members
    /// may not touch one item.
    pub fn transact_write(&self, writes: Vec<Write>) -> Result<Vec<WriteOutcome>> {
        self.refuse_if_poisoned()?;
        let prepared: Vec<Prepared> = writes
            .into_iter()
            .map(|write| self.prepare(write))
            .collect::<Result<_>>()?;
        let mut distinct = std::collections::HashSet::new();
        if !prepared
            .iter()
            .all(|member| distinct.insert((member.table.clone(), member.key_bytes.clone())))
        {
            return Err(TablesError::Validation(
                "Transaction request cannot include multiple operations on one item".to_owned(),
            ));
        }
        let now_ms = self.clock.now_ms();
        let mut side = lock(&self.write_side);
        let snapshot = self.group_snapshot(&mut side)?;
        let mut redo = Redo::default();
        let mut staged = Staged::default();
        let outcomes = {
            let mut view = GroupView {
                snapshot: &snapshot,
                pending: &side.pending,
                staged: &mut staged,
                redo: &mut redo,
            };
            let mut decided = Vec::with_capacity(prepared.len());
            let mut reasons = Vec::with_capacity(prepared.len());
            let mut failed = false;
            for mut member in prepared {
                // The catalog changes only under the write side, held here.
                let definition = self.definition(&member.table)?;
                let old = view.item(definition.table_id, &member.key_bytes)?;
                let key_bytes = std::mem::take(&mut member.key_bytes);
                match decide(&definition, member, old.as_ref()) {
                    Ok(decision) => {
                        reasons.push(CancellationReason {
                            code: "None".to_owned(),
                            message: None,
                            item: None,
                        });
                        decided.push((definition, key_bytes, old, decision));
                    }
                    Err(error) => {
                        failed = true;
                        reasons.push(match error {
                            TablesError::ConditionFailed { item } => CancellationReason {
                                code: "ConditionalCheckFailed".to_owned(),
                                message: Some("The conditional request failed".to_owned()),
                                item: item.map(|item| *item),
                            },
                            TablesError::Validation(message) => CancellationReason {
                                code: "ValidationError".to_owned(),
                                message: Some(message),
                                item: None,
                            },
                            other => return Err(other),
                        });
                    }
                }
            }
            if failed {
                return Err(TablesError::TransactionCanceled { reasons });
            }
            let mut outcomes = Vec::with_capacity(decided.len());
            for (definition, key_bytes, old, decision) in decided {
                outcomes.push(match decision {
                    None => WriteOutcome {
                        new: old.clone(),
                        old,
                        sequence: None,
                    },
                    Some(put) => {
                        store_change(&mut view, &definition, &key_bytes, old, put, now_ms, false)?
                    }
                });
            }
            outcomes
        };
        if !redo.is_empty() {
            self.log_group(&mut side, staged, redo)?;
        }
        Ok(outcomes)
    }

    fn prepare(&self, write: Write) -> Result<Prepared> {
        let definition = self.definition(&write.table)?;
        let schema = &definition.key_schema;
        let check_only = matches!(write.change, Change::ConditionCheck);
        let (key_bytes, put) = match write.change {
            Change::Put(item) => {
                let (partition, sort) = schema.key_of_item(&item)?;
                check_key_sizes(schema, partition, sort)?;
                check_item_limits(&item)?;
                let key_bytes = encode_key(partition, sort);
                let bytes = encode_item(&item);
                (key_bytes, Some((item, bytes)))
            }
            Change::Delete | Change::ConditionCheck => {
                let (partition, sort) = schema.exact_key(&write.key)?;
                (encode_key(partition, sort), None)
            }
            Change::Update(actions) => {
                let (partition, sort) = schema.exact_key(&write.key)?;
                check_key_sizes(schema, partition, sort)?;
                let key_bytes = encode_key(partition, sort);
                let bytes = key_bytes.len()
                    + item_size_bytes(&write.key)
                    + actions
                        .iter()
                        .map(crate::expression::UpdateAction::size_bytes)
                        .sum::<usize>();
                return Ok(Prepared {
                    table: write.table,
                    key_bytes,
                    put: None,
                    update: Some((actions, write.key)),
                    check_only: false,
                    check: write.check,
                    by_service: false,
                    bytes,
                });
            }
        };
        let bytes = key_bytes.len() + put.as_ref().map_or(0, |(_, stored)| stored.len());
        Ok(Prepared {
            table: write.table,
            key_bytes,
            put,
            update: None,
            check_only,
            check: write.check,
            by_service: false,
            bytes,
        })
    }

    /// The leader's work: every member in one transaction, one durable commit.
    fn commit_group(&self, group: Vec<(Slot, Prepared)>) -> Vec<(Slot, Result<WriteOutcome>)> {
        let slots: Vec<Slot> = group.iter().map(|(slot, _)| *slot).collect();
        match self.try_commit_group(group) {
            Ok(outcomes) => slots.into_iter().zip(outcomes).collect(),
            Err(error) => {
                self.poisoned.store(true, Ordering::SeqCst);
                tracing::error!(%error, "tables group commit failed; writes refused until reopened");
                slots
                    .into_iter()
                    .map(|slot| (slot, Err(TablesError::Storage(error.to_string()))))
                    .collect()
            }
        }
    }

    /// An `Err` is fatal to the whole group (storage failed); a member's own failure (its
    /// table is gone, its condition is false) is its outcome.
    fn try_commit_group(&self, group: Vec<(Slot, Prepared)>) -> Result<Vec<Result<WriteOutcome>>> {
        self.refuse_if_poisoned()?;
        let now_ms = self.clock.now_ms();
        let mut side = lock(&self.write_side);
        let snapshot = self.group_snapshot(&mut side)?;
        let mut outcomes = Vec::with_capacity(group.len());
        let mut redo = Redo::default();
        let mut staged = Staged::default();
        {
            let mut view = GroupView {
                snapshot: &snapshot,
                pending: &side.pending,
                staged: &mut staged,
                redo: &mut redo,
            };
            // The catalog changes only under the write side, held here: a table deleted or
            // recreated is seen before or after, never half.
            for (_, mut prepared) in group {
                let Ok(definition) = self.definition(&prepared.table) else {
                    outcomes.push(Err(not_found()));
                    continue;
                };
                let old = view.item(definition.table_id, &prepared.key_bytes)?;
                let key_bytes = std::mem::take(&mut prepared.key_bytes);
                let by_service = prepared.by_service;
                match decide(&definition, prepared, old.as_ref()) {
                    Err(refused) => outcomes.push(Err(refused)),
                    Ok(None) => outcomes.push(Ok(WriteOutcome {
                        new: old.clone(),
                        old,
                        sequence: None,
                    })),
                    Ok(Some(put)) => outcomes.push(Ok(store_change(
                        &mut view,
                        &definition,
                        &key_bytes,
                        old,
                        put,
                        now_ms,
                        by_service,
                    )?)),
                }
            }
        }
        if !redo.is_empty() {
            self.log_group(&mut side, staged, redo)?;
        }
        Ok(outcomes)
    }

    /// Every stream with records or enabled, oldest first.
    pub fn streams(&self) -> Result<Vec<StreamSummary>> {
        let read = self.read()?;
        let mut streams = Vec::new();
        for entry in read.open_table(STREAMS)?.iter()? {
            let (_, json) = entry?;
            streams.push(serde_json::from_str(json.value()).map_err(json_error)?);
        }
        Ok(streams)
    }

    /// One stream's summary.
    pub fn stream(&self, stream_id: u64) -> Result<StreamSummary> {
        let read = self.read()?;
        let json = read
            .open_table(STREAMS)?
            .get(stream_id)?
            .map(|json| json.value().to_owned())
            .ok_or_else(not_found)?;
        serde_json::from_str(&json).map_err(json_error)
    }

    /// The first and last sequence numbers a stream holds, None when it holds none.
    pub fn stream_bounds(&self, stream_id: u64) -> Result<Option<(u64, u64)>> {
        let read = self.read()?;
        let records = read.open_table(RECORDS)?;
        let mut range = records.range((stream_id, 0)..=(stream_id, u64::MAX))?;
        let first = range.next().transpose()?.map(|(key, _)| key.value().1);
        let last = range.next_back().transpose()?.map(|(key, _)| key.value().1);
        Ok(first.map(|first| (first, last.unwrap_or(first))))
    }

    /// The sequence number the stream's next record will get (1 for a stream without any).
    pub fn stream_next_sequence(&self, stream_id: u64) -> Result<u64> {
        let read = self.read()?;
        let next = read
            .open_table(STREAM_NEXT)?
            .get(stream_id)?
            .map_or(1, |next| next.value());
        Ok(next)
    }

    /// Up to `limit` (at most [`STREAM_READ_MAX`]) records of a stream from sequence number
    /// `from` on, in order. This is the stable way to follow a table's changes: keep the
    /// last sequence number handled and read from the next one. Records removed by retention
    /// are skipped; the first record returned says where reading really resumed.
    pub fn read_stream(
        &self,
        stream_id: u64,
        from: u64,
        limit: usize,
    ) -> Result<Vec<StreamRecord>> {
        let limit = limit.clamp(1, STREAM_READ_MAX);
        let read = self.read()?;
        let records = read.open_table(RECORDS)?;
        let mut out = Vec::new();
        for entry in records
            .range((stream_id, from)..=(stream_id, u64::MAX))?
            .take(limit)
        {
            let (key, bytes) = entry?;
            out.push(StreamRecord::decode(key.value().1, bytes.value())?);
        }
        Ok(out)
    }

    /// Removes stream records older than [`STREAM_RETENTION_MS`], and forgets disabled
    /// streams with nothing left. Returns how many records were removed.
    pub fn trim_streams(&self) -> Result<u64> {
        self.refuse_if_poisoned()?;
        let cutoff_ms = self.clock.now_ms().saturating_sub(STREAM_RETENTION_MS);
        let streams = self.streams()?;
        let mut removed = 0;
        let (mut side, mut write) = self.begin_direct()?;
        write.set_durability(redb::Durability::Immediate)?;
        {
            let mut records = write.open_table(RECORDS)?;
            let mut summaries = write.open_table(STREAMS)?;
            for stream in streams {
                let id = stream.stream_id;
                // Records of one stream were committed in order, so their times only grow
                // (but for a clock stepped back, which at worst keeps a record longer).
                let mut expired = Vec::new();
                for entry in records.range((id, 0)..=(id, u64::MAX))? {
                    let (key, bytes) = entry?;
                    let record = StreamRecord::decode(key.value().1, bytes.value())?;
                    if record.created_ms >= cutoff_ms {
                        break;
                    }
                    expired.push(record.sequence);
                }
                for sequence in &expired {
                    records.remove((id, *sequence))?;
                }
                removed += expired.len() as u64;
                let empty = records.range((id, 0)..=(id, u64::MAX))?.next().is_none();
                if empty
                    && stream
                        .disabled_ms
                        .is_some_and(|disabled| disabled < cutoff_ms)
                {
                    summaries.remove(id)?;
                }
            }
        }
        if removed == 0 {
            write.abort()?;
            return Ok(0);
        }
        self.commit_control(&mut side, write)?;
        Ok(removed)
    }
}

impl Tables {
    /// UpdateTimeToLive: enables TTL on `attribute` or disables it, durably in the table's
    /// catalog entry, with DynamoDB's refusals (enabling while enabled, disabling while
    /// disabled or naming another attribute than the enabled one).
    pub fn update_time_to_live(&self, name: &str, attribute: &str, enabled: bool) -> Result<()> {
        if attribute.is_empty() || attribute.len() > TTL_ATTRIBUTE_BYTES_MAX {
            return Err(TablesError::Validation(format!(
                "1 validation error detected: Value '{attribute}' at 'timeToLiveSpecification.attributeName' failed to satisfy constraint: Member must have length less than or equal to {TTL_ATTRIBUTE_BYTES_MAX} and greater than or equal to 1"
            )));
        }
        self.change_definition(name, |_, definition| {
            match (&definition.ttl_attribute, enabled) {
                (Some(_), true) => {
                    return Err(TablesError::Validation(
                        "TimeToLive is already enabled".to_owned(),
                    ));
                }
                (None, false) => {
                    return Err(TablesError::Validation(
                        "TimeToLive is already disabled".to_owned(),
                    ));
                }
                (Some(current), false) if current != attribute => {
                    return Err(TablesError::Validation(format!(
                        "TimeToLive is active on a different AttributeName: current AttributeName is {current}"
                    )));
                }
                _ => {}
            }
            definition.ttl_attribute = enabled.then(|| attribute.to_owned());
            Ok(())
        })?;
        Ok(())
    }

    /// UpdateTable's `GlobalSecondaryIndexUpdates`, durably in one commit: at most one index
    /// created or deleted per call (as DynamoDB allows), any number of capacity updates. A new
    /// index is filled from the table's items inside that commit (writes to the table wait for
    /// it), so it is `ACTIVE` when the call answers; items whose key attributes are missing or
    /// of another type are left out of it, as DynamoDB's backfill leaves them.
    pub fn update_indexes(
        &self,
        name: &str,
        updates: Vec<IndexUpdate>,
    ) -> Result<TableDescription> {
        let online = updates
            .iter()
            .filter(|update| !matches!(update, IndexUpdate::Update { .. }))
            .count();
        if online > 1 {
            return Err(TablesError::LimitExceeded(
                "Subscriber limit exceeded: Only 1 online index can be created or deleted simultaneously per table".to_owned(),
            ));
        }
        self.change_definition(name, |write, definition| {
            for update in updates {
                match update {
                    IndexUpdate::Create {
                        index,
                        attribute_definitions,
                    } => {
                        self.create_index(write, definition, index, attribute_definitions)?
                    }
                    IndexUpdate::Delete(index_name) => {
                        let position = definition
                            .indexes
                            .iter()
                            .position(|index| index.name == index_name)
                            .ok_or_else(|| {
                                TablesError::NotFound(format!(
                                    "Requested resource not found: Index: {index_name} not found"
                                ))
                            })?;
                        let removed = definition.indexes.remove(position);
                        if !removed.global {
                            return Err(TablesError::Validation(format!(
                                "One or more parameter values were invalid: {index_name} is a local secondary index, which cannot be deleted"
                            )));
                        }
                        drop_index_entries(write, removed.index_id)?;
                        retain_used_definitions(definition);
                    }
                    IndexUpdate::Update {
                        name: index_name,
                        provisioned_throughput,
                    } => {
                        let index = definition
                            .indexes
                            .iter_mut()
                            .find(|index| index.name == index_name && index.global)
                            .ok_or_else(|| {
                                TablesError::NotFound(format!(
                                    "Requested resource not found: Index: {index_name} not found"
                                ))
                            })?;
                        index.provisioned_throughput = Some(provisioned_throughput);
                    }
                }
            }
            Ok(())
        })?;
        self.describe_table(name)
    }

    /// TagResource and UntagResource: sets `set` and removes the keys `remove`, durably in the
    /// table's catalog entry; more than [`TAGS_MAX`](crate::schema::TAGS_MAX) tags in the end
    /// is refused.
    pub fn update_tags(
        &self,
        name: &str,
        set: BTreeMap<String, String>,
        remove: &[String],
    ) -> Result<TableDefinition> {
        self.change_definition(name, |_, definition| {
            definition.tags.extend(set);
            for key in remove {
                definition.tags.remove(key);
            }
            crate::schema::validate_tags(&definition.tags)?;
            Ok(())
        })
        .map(|definition| (*definition).clone())
    }

    /// Every table's definition as last committed, in name order.
    pub fn definitions(&self) -> Vec<Arc<TableDefinition>> {
        let mut definitions: Vec<Arc<TableDefinition>> =
            lock(&self.catalog).values().cloned().collect();
        definitions.sort_by(|a, b| a.name.cmp(&b.name));
        definitions
    }

    /// Adds a global index to `definition` and fills it from the table's items.
    fn create_index(
        &self,
        write: &redb::WriteTransaction,
        definition: &mut TableDefinition,
        request: IndexRequest,
        attribute_definitions: Vec<KeyAttribute>,
    ) -> Result<()> {
        let invalid = |message: String| {
            TablesError::Validation(format!(
                "One or more parameter values were invalid: {message}"
            ))
        };
        if !request.global {
            return Err(invalid(
                "Local secondary indexes can only be created with the table".to_owned(),
            ));
        }
        if definition
            .indexes
            .iter()
            .any(|index| index.name == request.name)
        {
            return Err(invalid(format!(
                "Attempting to create an index which already exists: {}",
                request.name
            )));
        }
        // Every key attribute of the new index needs a definition, of the same type as any
        // the table already has.
        for key in std::iter::once(&request.key_schema.partition).chain(&request.key_schema.sort) {
            let given = attribute_definitions
                .iter()
                .find(|definition| definition.name == key.name);
            let known = definition
                .attribute_definitions
                .iter()
                .find(|definition| definition.name == key.name);
            match (given, known) {
                (None, None) => {
                    return Err(invalid(format!(
                        "Global Secondary Index key attribute {} is not defined in AttributeDefinitions",
                        key.name
                    )));
                }
                (Some(given), Some(known)) if given.scalar_type != known.scalar_type => {
                    return Err(invalid(format!(
                        "Cannot update attribute {}. This attribute is part of an index",
                        key.name
                    )));
                }
                (Some(given), _) if given.scalar_type != key.scalar_type => {
                    return Err(invalid(format!("Type mismatch for key {}", key.name)));
                }
                (Some(given), None) => definition.attribute_definitions.push(given.clone()),
                _ => {}
            }
        }
        let mut requests: Vec<IndexRequest> = (definition.indexes.iter())
            .map(|index| IndexRequest {
                name: index.name.clone(),
                global: index.global,
                key_schema: index.key_schema.clone(),
                projection: index.projection.clone(),
                provisioned_throughput: index.provisioned_throughput,
            })
            .collect();
        requests.push(request.clone());
        validate_indexes(&definition.key_schema, &requests)?;
        let index_id = next_id(&mut write.open_table(META)?, KEY_NEXT_TABLE_ID)?;
        let index = SecondaryIndex::from_request(request, index_id);
        let mut entries = write.open_table(INDEX_ENTRIES)?;
        let items = write.open_table(ITEMS)?;
        let (mut count, mut size) = (0_u64, 0_u64);
        let id = definition.table_id;
        for entry in items.range((id, &[][..])..(id + 1, &[][..]))? {
            let (key, bytes) = entry?;
            let item = decode_item(bytes.value())?;
            if index.check_item(&item).is_err() {
                continue;
            }
            let Some(entry_key) = index.entry_key(&item, key.value().1) else {
                continue;
            };
            let projected = index.project(&item, &definition.key_schema);
            entries.insert(
                (index_id, entry_key.as_slice()),
                encode_item(&projected).as_slice(),
            )?;
            count += 1;
            size += item_size_bytes(&projected) as u64;
        }
        write.open_table(COUNTS)?.insert(index_id, (count, size))?;
        definition.indexes.push(index);
        Ok(())
    }

    /// Removes expired items (see [`ttl_expired`]) of every table with TTL enabled, as of the
    /// tables' clock, each as a delete through the group commit whose stream record is marked
    /// as the service's. Expired keys are found in a read snapshot and removed in groups of at
    /// most [`TTL_EXPIRE_GROUP_MAX`]; each delete checks again, inside its commit, that the
    /// item it finds is still expired, so an item rewritten meanwhile stays. Returns how many
    /// items were removed.
    pub fn expire_items(&self) -> Result<u64> {
        self.refuse_if_poisoned()?;
        let now_seconds = self.clock.now_ms() / 1000;
        let tables: Vec<Arc<TableDefinition>> = lock(&self.catalog)
            .values()
            .filter(|definition| definition.ttl_attribute.is_some())
            .cloned()
            .collect();
        let mut removed = 0;
        for definition in tables {
            let Some(attribute) = definition.ttl_attribute.clone() else {
                continue;
            };
            let id = definition.table_id;
            let read = self.read()?;
            let items = read.open_table(ITEMS)?;
            let mut group = Vec::new();
            for entry in items.range((id, &[][..])..(id + 1, &[][..]))? {
                let (key, bytes) = entry?;
                let item = decode_item(bytes.value())?;
                if !ttl_expired(&item, &attribute, now_seconds) {
                    continue;
                }
                group.push(self.expiry(&definition, &attribute, key.value().1, now_seconds));
                if group.len() >= TTL_EXPIRE_GROUP_MAX {
                    removed += self.commit_expiries(std::mem::take(&mut group))?;
                }
            }
            removed += self.commit_expiries(group)?;
        }
        Ok(removed)
    }

    /// One TTL delete, prepared: it removes the item only if the item it finds at commit is
    /// still expired.
    fn expiry(
        &self,
        definition: &TableDefinition,
        attribute: &str,
        key_bytes: &[u8],
        now_seconds: u64,
    ) -> Prepared {
        let attribute = attribute.to_owned();
        Prepared {
            table: definition.name.clone(),
            key_bytes: key_bytes.to_vec(),
            put: None,
            update: None,
            check_only: false,
            check: Some(Box::new(move |found: Option<&Item>| {
                if found.is_some_and(|item| ttl_expired(item, &attribute, now_seconds)) {
                    Ok(())
                } else {
                    Err(TablesError::ConditionFailed { item: None })
                }
            })),
            by_service: true,
            bytes: key_bytes.len(),
        }
    }

    /// Commits TTL deletes through the group commit; answers how many removed an item. A
    /// delete whose item changed meanwhile (or whose table went) is not an error; a storage
    /// failure is.
    fn commit_expiries(&self, group: Vec<Prepared>) -> Result<u64> {
        if group.is_empty() {
            return Ok(0);
        }
        let mut removed = 0;
        for outcome in self.enqueue(group) {
            match outcome {
                Ok(outcome) if outcome.old.is_some() => removed += 1,
                // A full queue leaves the item for the next sweep.
                Ok(_)
                | Err(
                    TablesError::ConditionFailed { .. }
                    | TablesError::NotFound(_)
                    | TablesError::Throttled,
                ) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(removed)
    }
}

/// Writes log records' rows into redb, in log order, and notes `last` as the last record
/// the database holds.
fn write_records<'r>(
    write: &redb::WriteTransaction,
    records: impl IntoIterator<Item = &'r [u8]>,
    last: u64,
) -> Result<()> {
    let mut items = write.open_table(ITEMS)?;
    let mut counts = write.open_table(COUNTS)?;
    let mut stream_next = write.open_table(STREAM_NEXT)?;
    let mut stream_records = write.open_table(RECORDS)?;
    let mut index_entries = write.open_table(INDEX_ENTRIES)?;
    for payload in records {
        for row in Rows::of(payload) {
            match row? {
                Row::PutItem(id, key, value) => {
                    items.insert((id, key), value)?;
                }
                Row::RemoveItem(id, key) => {
                    items.remove((id, key))?;
                }
                Row::PutCounts(id, count, size) => {
                    counts.insert(id, (count, size))?;
                }
                Row::PutStreamNext(id, next) => {
                    stream_next.insert(id, next)?;
                }
                Row::PutRecord(id, sequence, value) => {
                    stream_records.insert((id, sequence), value)?;
                }
                Row::PutIndexEntry(id, key, value) => {
                    index_entries.insert((id, key), value)?;
                }
                Row::RemoveIndexEntry(id, key) => {
                    index_entries.remove((id, key))?;
                }
            }
        }
    }
    write.open_table(META)?.insert(KEY_WAL_APPLIED, last)?;
    Ok(())
}

/// The applier's work: logged records, on disk and in log order, written into redb in one
/// commit, without an fsync (the log makes them durable) unless it is a checkpoint's.
pub(crate) fn apply_logged(database: &Database, records: &[Logged], durable: bool) -> Result<()> {
    let Some(&(last, _)) = records.last() else {
        return Ok(());
    };
    let mut write = database.begin_write()?;
    write.set_durability(if durable {
        redb::Durability::Immediate
    } else {
        redb::Durability::None
    })?;
    write_records(
        &write,
        records.iter().map(|(_, rows)| rows.as_slice()),
        last,
    )?;
    write.commit()?;
    Ok(())
}

/// Opens the write-ahead log and applies, in `write` (the open's transaction, which commits
/// durably), every record the database does not hold yet: what was acknowledged before a crash
/// but not yet durable in redb.
fn recover(write: &redb::WriteTransaction, directory: &Path) -> Result<Wal> {
    let applied = (write.open_table(META)?.get(KEY_WAL_APPLIED)?).map_or(0, |value| value.value());
    let (mut wal, records) = Wal::open(directory, applied)?;
    let Some((last, _)) = records.last() else {
        wal.restart();
        return Ok(wal);
    };
    let last = *last;
    write_records(
        write,
        records.iter().map(|(_, payload)| payload.as_slice()),
        last,
    )?;
    tracing::info!(
        records = records.len(),
        last,
        "tables: applied the write-ahead log's records after the last durable commit"
    );
    // The caller's commit is durable before anything is appended again.
    wal.restart();
    Ok(wal)
}

/// An item to store with its encoded bytes, or None to remove the item.
type StoredItem = Option<(Item, Vec<u8>)>;

/// What a prepared write does to the item it found: `Ok(None)` changes nothing (a condition
/// check), `Ok(Some(None))` removes the item, `Ok(Some(Some(item)))` stores one. An `Err` is
/// the write's own failure: its condition was false or its update cannot apply.
fn decide(
    definition: &TableDefinition,
    prepared: Prepared,
    old: Option<&Item>,
) -> Result<Option<StoredItem>> {
    if let Some(check) = prepared.check {
        check(old)?;
    }
    if prepared.check_only {
        return Ok(None);
    }
    let Some((actions, key)) = prepared.update else {
        if let Some((item, _)) = &prepared.put {
            for index in &definition.indexes {
                index.check_item(item)?;
            }
        }
        return Ok(Some(prepared.put));
    };
    let updated = crate::expression::apply_update(old.unwrap_or(&key), &actions)?;
    // An update may not change the key; the API refuses actions on key attributes, this keeps
    // the item at its key anyway.
    if definition.key_schema.project_key(&updated) != key {
        return Err(TablesError::Validation(
            "One or more parameter values were invalid: an update may not change the key"
                .to_owned(),
        ));
    }
    check_item_limits(&updated)?;
    for index in &definition.indexes {
        index.check_item(&updated)?;
    }
    let bytes = encode_item(&updated);
    Ok(Some(Some((updated, bytes))))
}

/// Stores one change: the item, its table's counts and — when the table has a stream and the
/// item changed (DynamoDB writes no record for a write that changed nothing) — its record.
fn store_change(
    view: &mut GroupView<'_>,
    definition: &TableDefinition,
    key_bytes: &[u8],
    old: Option<Item>,
    put: Option<(Item, Vec<u8>)>,
    now_ms: u64,
    by_service: bool,
) -> Result<WriteOutcome> {
    let id = definition.table_id;
    let new = match put {
        Some((item, bytes)) => {
            view.apply(Row::PutItem(id, key_bytes, &bytes));
            Some(item)
        }
        None => {
            view.apply(Row::RemoveItem(id, key_bytes));
            None
        }
    };
    let (mut count, mut size) = view.counts(id)?;
    if let Some(old) = &old {
        count = count.saturating_sub(1);
        size = size.saturating_sub(item_size_bytes(old) as u64);
    }
    if let Some(new) = &new {
        count += 1;
        size += item_size_bytes(new) as u64;
    }
    view.apply(Row::PutCounts(id, count, size));
    for index in &definition.indexes {
        update_index_entry(
            view,
            definition,
            index,
            key_bytes,
            old.as_ref(),
            new.as_ref(),
        )?;
    }
    let mut sequence = None;
    if let Some(stream) = &definition.stream
        && old != new
    {
        let keys = definition
            .key_schema
            .project_key(new.as_ref().or(old.as_ref()).unwrap_or(&Item::new()));
        if let Some(mut record) =
            StreamRecord::for_change(stream.view_type, keys, old.as_ref(), new.as_ref(), now_ms)
        {
            let next = view.stream_next(stream.stream_id)?;
            record.sequence = next;
            record.by_service = by_service;
            view.apply(Row::PutRecord(stream.stream_id, next, &record.encode()));
            view.apply(Row::PutStreamNext(stream.stream_id, next + 1));
            sequence = Some(next);
        }
    }
    Ok(WriteOutcome { old, new, sequence })
}

/// Fills one page from stored entries: items `accept` refuses are passed over (another
/// segment, outside the key condition), the others count as scanned and are kept when they
/// pass `filter`. The page ends at `limit` scanned items or [`PAGE_BYTES_MAX`], and then names
/// the last scanned key when another candidate follows.
fn page_of<'a>(
    entries: impl Iterator<
        Item = std::result::Result<
            (
                redb::AccessGuard<'a, (u64, &'static [u8])>,
                redb::AccessGuard<'a, &'static [u8]>,
            ),
            redb::StorageError,
        >,
    >,
    exclusive_start: Option<&[u8]>,
    limit: Option<usize>,
    accept: impl Fn(&Item) -> Result<bool>,
    filter: Option<&crate::expression::Condition>,
    last_key: &dyn Fn(&Item) -> Item,
    load: &dyn Fn(&[u8]) -> Result<Item>,
) -> Result<ScanPage> {
    let limit = limit.unwrap_or(PAGE_ITEMS_MAX).clamp(1, PAGE_ITEMS_MAX);
    let mut items = Vec::new();
    let mut scanned_count = 0;
    let mut page_bytes = 0;
    let mut last_scanned: Option<Item> = None;
    for entry in entries {
        let (key, bytes) = entry?;
        let (_, key_bytes) = key.value();
        if exclusive_start == Some(key_bytes) {
            continue;
        }
        let item = load(bytes.value())?;
        if !accept(&item)? {
            continue;
        }
        if scanned_count >= limit || page_bytes >= PAGE_BYTES_MAX {
            // Another candidate follows a full page: the page says where to go on.
            return Ok(ScanPage {
                items,
                scanned_count,
                last_evaluated_key: last_scanned.map(|item| last_key(&item)),
            });
        }
        scanned_count += 1;
        page_bytes += item_size_bytes(&item);
        let keep = filter.is_none_or(|filter| crate::expression::evaluate(filter, Some(&item)));
        if keep {
            items.push(item.clone());
        }
        last_scanned = Some(item);
    }
    Ok(ScanPage {
        items,
        scanned_count,
        last_evaluated_key: None,
    })
}

/// What a Scan or Query reads: the table's items, or one index's entries.
enum View<'a> {
    Table(&'a TableDefinition),
    Index {
        definition: &'a TableDefinition,
        index: &'a SecondaryIndex,
        fetch_items: bool,
    },
}

impl<'a> View<'a> {
    fn of(
        definition: &'a TableDefinition,
        index: Option<&str>,
        fetch_items: bool,
    ) -> Result<View<'a>> {
        Ok(match index {
            None => View::Table(definition),
            Some(name) => View::Index {
                definition,
                index: definition.index(name)?,
                fetch_items,
            },
        })
    }

    fn store(&self) -> RedbTable<'static, (u64, &'static [u8]), &'static [u8]> {
        match self {
            View::Table(_) => ITEMS,
            View::Index { .. } => INDEX_ENTRIES,
        }
    }

    fn id(&self) -> u64 {
        match self {
            View::Table(definition) => definition.table_id,
            View::Index { index, .. } => index.index_id,
        }
    }

    fn partition_key(&self, schema: &'a crate::schema::KeySchema) -> &'a KeyAttribute {
        match self {
            View::Table(_) => &schema.partition,
            View::Index { index, .. } => &index.key_schema.partition,
        }
    }

    fn start_key(&self, schema: &crate::schema::KeySchema, start: &Item) -> Result<Vec<u8>> {
        match self {
            View::Table(_) => {
                let (partition, sort) = schema.exact_key(start)?;
                Ok(encode_key(partition, sort))
            }
            View::Index { index, .. } => index.start_key(start, schema),
        }
    }

    fn last_key(&self, schema: &crate::schema::KeySchema, item: &Item) -> Item {
        match self {
            View::Table(_) => schema.project_key(item),
            View::Index { index, .. } => index.last_key(item, schema),
        }
    }

    /// The item an entry stands for: the stored item, the projection, or (for a local index
    /// asked for all attributes) the table's item the projection points at.
    fn load(
        &self,
        schema: &crate::schema::KeySchema,
        items: &redb::ReadOnlyTable<(u64, &'static [u8]), &'static [u8]>,
        bytes: &[u8],
    ) -> Result<Item> {
        let stored = decode_item(bytes)?;
        let View::Index {
            definition,
            fetch_items: true,
            ..
        } = self
        else {
            return Ok(stored);
        };
        let (partition, sort) = schema.key_of_item(&stored)?;
        let key = encode_key(partition, sort);
        match items.get((definition.table_id, key.as_slice()))? {
            Some(bytes) => decode_item(bytes.value()),
            // Entries and items are written in one commit, so a snapshot has both or neither.
            None => Err(TablesError::Corrupt(
                "an index entry points at no item".to_owned(),
            )),
        }
    }
}

/// Keeps one index's entry of an item in step with the item, in the item's commit: the old
/// entry removed and the new one written (an item without the index's keys has none), and the
/// index's counts moved with them.
fn update_index_entry(
    view: &mut GroupView<'_>,
    definition: &TableDefinition,
    index: &SecondaryIndex,
    key_bytes: &[u8],
    old: Option<&Item>,
    new: Option<&Item>,
) -> Result<()> {
    let entry = |item: &Item| {
        index
            .entry_key(item, key_bytes)
            .map(|key| (key, index.project(item, &definition.key_schema)))
    };
    let old_entry = old.and_then(entry);
    let new_entry = new.and_then(entry);
    if old_entry == new_entry {
        return Ok(());
    }
    let id = index.index_id;
    let (mut count, mut size) = view.counts(id)?;
    if let Some((key, projected)) = &old_entry {
        view.apply(Row::RemoveIndexEntry(id, key));
        count = count.saturating_sub(1);
        size = size.saturating_sub(item_size_bytes(projected) as u64);
    }
    if let Some((key, projected)) = &new_entry {
        view.apply(Row::PutIndexEntry(id, key, &encode_item(projected)));
        count += 1;
        size += item_size_bytes(projected) as u64;
    }
    view.apply(Row::PutCounts(id, count, size));
    Ok(())
}

/// Keeps only the attribute definitions a key of the table or of an index still uses.
fn retain_used_definitions(definition: &mut TableDefinition) {
    let mut used: Vec<String> = vec![definition.key_schema.partition.name.clone()];
    used.extend(
        definition
            .key_schema
            .sort
            .iter()
            .map(|key| key.name.clone()),
    );
    for index in &definition.indexes {
        used.push(index.key_schema.partition.name.clone());
        used.extend(index.key_schema.sort.iter().map(|key| key.name.clone()));
    }
    definition
        .attribute_definitions
        .retain(|attribute| used.contains(&attribute.name));
}

/// Removes every entry of an index and its counts.
fn drop_index_entries(write: &redb::WriteTransaction, index_id: u64) -> Result<()> {
    write
        .open_table(INDEX_ENTRIES)?
        .retain_in((index_id, &[][..])..(index_id + 1, &[][..]), |_, _| false)?;
    write.open_table(COUNTS)?.remove(index_id)?;
    Ok(())
}

fn next_id(meta: &mut redb::Table<&str, u64>, key: &str) -> Result<u64> {
    let id = meta.get(key)?.map_or(1, |value| value.value());
    meta.insert(key, id + 1)?;
    Ok(id)
}

/// Hands a group's outcomes back even if the leader panics, so no call waits forever.
struct LeaderGuard<'a> {
    tables: &'a Tables,
    slots: Vec<Slot>,
    outcomes: Option<Vec<(Slot, Result<WriteOutcome>)>>,
}

impl Drop for LeaderGuard<'_> {
    fn drop(&mut self) {
        if let Some(outcomes) = self.outcomes.take() {
            self.tables.finish(outcomes);
            return;
        }
        // The leader unwound mid-group: its transaction was dropped, so nothing of the group
        // was committed. Refuse writes (the cause is a bug), answer the group, and answer
        // everything still waiting too: nobody leads any more to do it.
        self.tables.poisoned.store(true, Ordering::SeqCst);
        let failed = || {
            Err(TablesError::Storage(
                "the commit of this write's group failed".to_owned(),
            ))
        };
        let mut outcomes: Vec<(Slot, Result<WriteOutcome>)> =
            self.slots.iter().map(|slot| (*slot, failed())).collect();
        {
            let mut state = lock(&self.tables.queue);
            let waiting = std::mem::take(&mut state.waiting);
            state.waiting_bytes = 0;
            state.leader_active = false;
            outcomes.extend(waiting.into_iter().map(|(slot, _)| (slot, failed())));
        }
        self.tables.finish(outcomes);
    }
}

#[cfg(test)]
impl Tables {
    /// A smaller bound on the write queue, for tests that fill it.
    pub(crate) fn set_queued_bytes_max(&mut self, max: usize) {
        self.queued_bytes_max = max;
    }

    /// Takes the write side: a leader waits for it until the guard is dropped.
    pub(crate) fn hold_writes(&self) -> MutexGuard<'_, WriteSide> {
        lock(&self.write_side)
    }

    pub(crate) fn applier(&self) -> &Applier {
        &self.applier
    }

    /// How many writes wait for a group, and whether a leader is committing one.
    pub(crate) fn queue_state(&self) -> (usize, bool) {
        let state = lock(&self.queue);
        (state.waiting.len(), state.leader_active)
    }
}
