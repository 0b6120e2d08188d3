//! [`Tables`]: every table of a node in one redb database (`tables/tables.redb`), and the
//! write path. A write joins a group-commit queue; whoever finds no leader takes the queue
//! as one group and, inside one redb write transaction, reads each member's current item,
//! runs its condition, writes the item, its counts and — when the table has a stream — its
//! stream record, then commits durably (fsync) once for the whole group. Members are answered
//! only after that commit: an acknowledged change is durable, and it and its stream record
//! are one commit, so no crash can leave one without the other. Reads use redb snapshots,
//! which only ever hold committed (so durable) state.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition as RedbTable,
};
use sluice_log::Clock;

use crate::codec::{decode_item, encode_item, encode_key};
use crate::error::{CancellationReason, Result, TablesError};
use crate::schema::{
    CreateTable, StreamInfo, StreamViewType, TTL_ATTRIBUTE_BYTES_MAX, TableDefinition,
    TableDescription, check_key_sizes, ttl_expired, validate_table_name,
};
use crate::stream::{STREAM_RETENTION_MS, StreamRecord, StreamSummary};
use crate::value::{AttributeValue, Item, check_item_limits, item_size_bytes};

/// The on-disk format's version, kept in the `meta` table; `docs/tables-format.md` describes
/// it. Opening a database of another version fails rather than guess.
pub const FORMAT_VERSION: u64 = 1;
/// Most writes one leader commits as one group (one redb commit, one fsync); later arrivals
/// wait for the next group. Each member already holds its item in memory, so this bounds the
/// group's transaction, not a queue: the queue holds one entry per waiting client thread.
pub const GROUP_WRITES_MAX: usize = 256;
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

const KEY_FORMAT_VERSION: &str = "format_version";
const KEY_NEXT_TABLE_ID: &str = "next_table_id";
const KEY_NEXT_STREAM_ID: &str = "next_stream_id";

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
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
}

#[derive(Default)]
struct QueueState {
    waiting: Vec<(u64, Prepared)>,
    leader_active: bool,
    finished: HashMap<u64, Result<WriteOutcome>>,
    next_ticket: u64,
}

/// All tables of a node and their streams.
pub struct Tables {
    database: Database,
    clock: Arc<dyn Clock>,
    queue: Mutex<QueueState>,
    turn: Condvar,
    /// Set when a commit failed: the database refuses writes until it is reopened.
    poisoned: AtomicBool,
    /// The catalog as last committed, for reads and for checking writes before they queue.
    catalog: Mutex<HashMap<String, Arc<TableDefinition>>>,
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
        let database = Database::create(directory.join("tables.redb"))?;
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
        }
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
        Ok(Tables {
            database,
            clock,
            queue: Mutex::new(QueueState::default()),
            turn: Condvar::new(),
            poisoned: AtomicBool::new(false),
            catalog: Mutex::new(catalog),
        })
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
        let mut write = self.database.begin_write()?;
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
            };
            let json = serde_json::to_string(&definition).map_err(json_error)?;
            catalog.insert(request.name.as_str(), json.as_str())?;
            write.open_table(COUNTS)?.insert(table_id, (0, 0))?;
            definition
        };
        self.commit_control(write)?;
        let definition = Arc::new(definition);
        lock(&self.catalog).insert(definition.name.clone(), definition.clone());
        Ok(TableDescription {
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
        self.refuse_if_poisoned()?;
        let now_ms = self.clock.now_ms();
        let mut write = self.database.begin_write()?;
        write.set_durability(redb::Durability::Immediate)?;
        let definition = {
            let mut catalog = write.open_table(CATALOG)?;
            let json = catalog
                .get(name)?
                .map(|json| json.value().to_owned())
                .ok_or_else(not_found)?;
            let mut definition: TableDefinition =
                serde_json::from_str(&json).map_err(json_error)?;
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
                    self.disable_stream(&write, stream.stream_id)?;
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
            let json = serde_json::to_string(&definition).map_err(json_error)?;
            catalog.insert(name, json.as_str())?;
            definition
        };
        self.commit_control(write)?;
        lock(&self.catalog).insert(name.to_owned(), Arc::new(definition));
        self.describe_table(name)
    }

    fn commit_control(&self, write: redb::WriteTransaction) -> Result<()> {
        if let Err(error) = write.commit() {
            self.poisoned.store(true, Ordering::SeqCst);
            tracing::error!(%error, "tables commit failed; writes refused until reopened");
            return Err(error.into());
        }
        Ok(())
    }

    /// A table's definition and counts.
    pub fn describe_table(&self, name: &str) -> Result<TableDescription> {
        let definition = self.definition(name)?;
        let read = self.database.begin_read()?;
        let (item_count, size_bytes) = read
            .open_table(COUNTS)?
            .get(definition.table_id)?
            .map(|counts| counts.value())
            .ok_or_else(not_found)?;
        Ok(TableDescription {
            definition: (*definition).clone(),
            item_count,
            size_bytes,
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
        let mut write = self.database.begin_write()?;
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
            if let Some(stream) = &definition.stream {
                self.disable_stream(&write, stream.stream_id)?;
            }
        }
        self.commit_control(write)?;
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
        let read = self.database.begin_read()?;
        let items = read.open_table(ITEMS)?;
        let stored = items.get((definition.table_id, key_bytes.as_slice()))?;
        stored.map(|bytes| decode_item(bytes.value())).transpose()
    }

    /// One page of a table's items in key order (partitions in their encoded order), as
    /// committed when the scan began.
    pub fn scan(&self, table: &str, request: &ScanRequest) -> Result<ScanPage> {
        let definition = self.definition(table)?;
        let schema = &definition.key_schema;
        let id = definition.table_id;
        let start = match &request.exclusive_start_key {
            Some(key) => {
                let (partition, sort) = schema.exact_key(key)?;
                Some(encode_key(partition, sort))
            }
            None => None,
        };
        let read = self.database.begin_read()?;
        let items = read.open_table(ITEMS)?;
        let range = match &start {
            Some(start) => items.range((id, start.as_slice())..(id + 1, &[][..]))?,
            None => items.range((id, &[][..])..(id + 1, &[][..]))?,
        };
        let in_segment = |item: &Item| -> Result<bool> {
            let Some((segment, total)) = request.segment else {
                return Ok(true);
            };
            let (partition, _) = schema.key_of_item(item)?;
            Ok(segment_of(&crate::codec::partition_prefix(partition), total) == segment)
        };
        page_of(
            schema,
            range,
            start.as_deref(),
            request.limit,
            in_segment,
            request.filter.as_ref(),
        )
    }

    /// One page of a partition's items in sort key order (or its reverse), those whose sort
    /// key meets the request's key condition, as committed when the query began.
    pub fn query(&self, table: &str, request: &QueryRequest) -> Result<ScanPage> {
        let definition = self.definition(table)?;
        let schema = &definition.key_schema;
        let id = definition.table_id;
        let prefix = crate::codec::partition_prefix(&request.partition);
        // Every key of the partition starts with the prefix, which ends 0x00 0x01: the keys
        // below the prefix with 0x02 in place of that last byte are exactly the partition's.
        let mut prefix_end = prefix.clone();
        if let Some(last) = prefix_end.last_mut() {
            *last = 0x02;
        }
        let start = match &request.exclusive_start_key {
            Some(key) => {
                let (partition, sort) = schema.exact_key(key)?;
                Some(encode_key(partition, sort))
            }
            None => None,
        };
        let read = self.database.begin_read()?;
        let items = read.open_table(ITEMS)?;
        let lower = match (&start, request.forward) {
            (Some(start), true) if start.as_slice() > prefix.as_slice() => start.as_slice(),
            _ => prefix.as_slice(),
        };
        let upper = match (&start, request.forward) {
            (Some(start), false) if start.as_slice() < prefix_end.as_slice() => start.as_slice(),
            _ => prefix_end.as_slice(),
        };
        let range = items.range((id, lower)..(id, upper))?;
        let key_condition = |item: &Item| -> Result<bool> {
            Ok(request
                .key_condition
                .as_ref()
                .is_none_or(|condition| crate::expression::evaluate(condition, Some(item))))
        };
        if request.forward {
            page_of(
                schema,
                range,
                start.as_deref(),
                request.limit,
                key_condition,
                request.filter.as_ref(),
            )
        } else {
            page_of(
                schema,
                range.rev(),
                start.as_deref(),
                request.limit,
                key_condition,
                request.filter.as_ref(),
            )
        }
    }

    /// Several items, each at `(table, key)`, read from one snapshot (TransactGetItems).
    pub fn get_items(&self, keys: &[(String, Item)]) -> Result<Vec<Option<Item>>> {
        let read = self.database.begin_read()?;
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
    pub fn write_batch(&self, writes: Vec<Write>) -> Result<Vec<Result<WriteOutcome>>> {
        self.refuse_if_poisoned()?;
        let prepared: Vec<Prepared> = writes
            .into_iter()
            .map(|write| self.prepare(write))
            .collect::<Result<_>>()?;
        Ok(self.enqueue(prepared))
    }

    /// Queues prepared writes for the group commit and waits for their outcomes, in order.
    fn enqueue(&self, prepared: Vec<Prepared>) -> Vec<Result<WriteOutcome>> {
        let mut state = lock(&self.queue);
        let mut tickets = Vec::with_capacity(prepared.len());
        for prepared in prepared {
            let ticket = state.next_ticket;
            state.next_ticket += 1;
            state.waiting.push((ticket, prepared));
            tickets.push(ticket);
        }
        let mut outcomes: HashMap<u64, Result<WriteOutcome>> = HashMap::new();
        loop {
            for ticket in &tickets {
                if let Some(outcome) = state.finished.remove(ticket) {
                    outcomes.insert(*ticket, outcome);
                }
            }
            if outcomes.len() == tickets.len() {
                return tickets
                    .iter()
                    .map(|ticket| {
                        outcomes.remove(ticket).unwrap_or_else(|| {
                            Err(TablesError::Storage(
                                "a batch write lost its outcome".to_owned(),
                            ))
                        })
                    })
                    .collect();
            }
            if !state.leader_active {
                state.leader_active = true;
                let take = state.waiting.len().min(GROUP_WRITES_MAX);
                let group: Vec<(u64, Prepared)> = state.waiting.drain(..take).collect();
                drop(state);
                let mut guard = LeaderGuard {
                    tables: self,
                    tickets: group.iter().map(|(ticket, _)| *ticket).collect(),
                    outcomes: None,
                };
                guard.outcomes = Some(self.commit_group(group));
                drop(guard);
                state = lock(&self.queue);
                continue;
            }
            state = self
                .turn
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
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
        let mut write = self.database.begin_write()?;
        write.set_durability(redb::Durability::Immediate)?;
        let outcomes = {
            let catalog = write.open_table(CATALOG)?;
            let mut items = write.open_table(ITEMS)?;
            let mut counts = write.open_table(COUNTS)?;
            let mut stream_next = write.open_table(STREAM_NEXT)?;
            let mut records = write.open_table(RECORDS)?;
            let mut decided = Vec::with_capacity(prepared.len());
            let mut reasons = Vec::with_capacity(prepared.len());
            let mut failed = false;
            for mut member in prepared {
                let definition: TableDefinition = catalog
                    .get(member.table.as_str())?
                    .map(|json| serde_json::from_str(json.value()))
                    .transpose()
                    .map_err(json_error)?
                    .ok_or_else(not_found)?;
                let old = read_item(&items, definition.table_id, &member.key_bytes)?;
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
                drop((catalog, items, counts, stream_next, records));
                write.abort()?;
                return Err(TablesError::TransactionCanceled { reasons });
            }
            let mut open = OpenTables {
                items: &mut items,
                counts: &mut counts,
                stream_next: &mut stream_next,
                records: &mut records,
            };
            let mut outcomes = Vec::with_capacity(decided.len());
            for (definition, key_bytes, old, decision) in decided {
                outcomes.push(match decision {
                    None => WriteOutcome {
                        new: old.clone(),
                        old,
                        sequence: None,
                    },
                    Some(put) => {
                        store_change(&mut open, &definition, &key_bytes, old, put, now_ms, false)?
                    }
                });
            }
            outcomes
        };
        self.commit_control(write)?;
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
                return Ok(Prepared {
                    table: write.table,
                    key_bytes,
                    put: None,
                    update: Some((actions, write.key)),
                    check_only: false,
                    check: write.check,
                    by_service: false,
                });
            }
        };
        Ok(Prepared {
            table: write.table,
            key_bytes,
            put,
            update: None,
            check_only,
            check: write.check,
            by_service: false,
        })
    }

    /// The leader's work: every member in one transaction, one durable commit.
    fn commit_group(&self, group: Vec<(u64, Prepared)>) -> Vec<(u64, Result<WriteOutcome>)> {
        let tickets: Vec<u64> = group.iter().map(|(ticket, _)| *ticket).collect();
        match self.try_commit_group(group) {
            Ok(outcomes) => tickets.into_iter().zip(outcomes).collect(),
            Err(error) => {
                self.poisoned.store(true, Ordering::SeqCst);
                tracing::error!(%error, "tables group commit failed; writes refused until reopened");
                tickets
                    .into_iter()
                    .map(|ticket| (ticket, Err(TablesError::Storage(error.to_string()))))
                    .collect()
            }
        }
    }

    /// An `Err` is fatal to the whole group (storage failed); a member's own failure (its
    /// table is gone, its condition is false) is its outcome.
    fn try_commit_group(&self, group: Vec<(u64, Prepared)>) -> Result<Vec<Result<WriteOutcome>>> {
        self.refuse_if_poisoned()?;
        let now_ms = self.clock.now_ms();
        let mut write = self.database.begin_write()?;
        write.set_durability(redb::Durability::Immediate)?;
        let mut outcomes = Vec::with_capacity(group.len());
        let mut changed = false;
        {
            let catalog = write.open_table(CATALOG)?;
            let mut items = write.open_table(ITEMS)?;
            let mut counts = write.open_table(COUNTS)?;
            let mut stream_next = write.open_table(STREAM_NEXT)?;
            let mut records = write.open_table(RECORDS)?;
            // Definitions as this transaction sees them: a table deleted or recreated before
            // it is seen here, never half.
            let mut definitions: HashMap<String, Option<TableDefinition>> = HashMap::new();
            for (_, mut prepared) in group {
                if !definitions.contains_key(&prepared.table) {
                    let definition = catalog
                        .get(prepared.table.as_str())?
                        .map(|json| serde_json::from_str(json.value()))
                        .transpose()
                        .map_err(json_error)?;
                    definitions.insert(prepared.table.clone(), definition);
                }
                let Some(Some(definition)) = definitions.get(&prepared.table) else {
                    outcomes.push(Err(not_found()));
                    continue;
                };
                let old = read_item(&items, definition.table_id, &prepared.key_bytes)?;
                let key_bytes = std::mem::take(&mut prepared.key_bytes);
                let by_service = prepared.by_service;
                match decide(definition, prepared, old.as_ref()) {
                    Err(refused) => outcomes.push(Err(refused)),
                    Ok(None) => outcomes.push(Ok(WriteOutcome {
                        new: old.clone(),
                        old,
                        sequence: None,
                    })),
                    Ok(Some(put)) => {
                        let mut open = OpenTables {
                            items: &mut items,
                            counts: &mut counts,
                            stream_next: &mut stream_next,
                            records: &mut records,
                        };
                        outcomes.push(Ok(store_change(
                            &mut open, definition, &key_bytes, old, put, now_ms, by_service,
                        )?));
                        changed = true;
                    }
                }
            }
        }
        if changed {
            write.commit()?;
        } else {
            write.abort()?;
        }
        Ok(outcomes)
    }

    /// Every stream with records or enabled, oldest first.
    pub fn streams(&self) -> Result<Vec<StreamSummary>> {
        let read = self.database.begin_read()?;
        let mut streams = Vec::new();
        for entry in read.open_table(STREAMS)?.iter()? {
            let (_, json) = entry?;
            streams.push(serde_json::from_str(json.value()).map_err(json_error)?);
        }
        Ok(streams)
    }

    /// One stream's summary.
    pub fn stream(&self, stream_id: u64) -> Result<StreamSummary> {
        let read = self.database.begin_read()?;
        let json = read
            .open_table(STREAMS)?
            .get(stream_id)?
            .map(|json| json.value().to_owned())
            .ok_or_else(not_found)?;
        serde_json::from_str(&json).map_err(json_error)
    }

    /// The first and last sequence numbers a stream holds, None when it holds none.
    pub fn stream_bounds(&self, stream_id: u64) -> Result<Option<(u64, u64)>> {
        let read = self.database.begin_read()?;
        let records = read.open_table(RECORDS)?;
        let mut range = records.range((stream_id, 0)..=(stream_id, u64::MAX))?;
        let first = range.next().transpose()?.map(|(key, _)| key.value().1);
        let last = range.next_back().transpose()?.map(|(key, _)| key.value().1);
        Ok(first.map(|first| (first, last.unwrap_or(first))))
    }

    /// The sequence number the stream's next record will get (1 for a stream without any).
    pub fn stream_next_sequence(&self, stream_id: u64) -> Result<u64> {
        let read = self.database.begin_read()?;
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
        let read = self.database.begin_read()?;
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
        let mut write = self.database.begin_write()?;
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
        self.commit_control(write)?;
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
        self.refuse_if_poisoned()?;
        let mut write = self.database.begin_write()?;
        write.set_durability(redb::Durability::Immediate)?;
        let definition = {
            let mut catalog = write.open_table(CATALOG)?;
            let json = catalog
                .get(name)?
                .map(|json| json.value().to_owned())
                .ok_or_else(not_found)?;
            let mut definition: TableDefinition =
                serde_json::from_str(&json).map_err(json_error)?;
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
            let json = serde_json::to_string(&definition).map_err(json_error)?;
            catalog.insert(name, json.as_str())?;
            definition
        };
        self.commit_control(write)?;
        lock(&self.catalog).insert(name.to_owned(), Arc::new(definition));
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
            let read = self.database.begin_read()?;
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
                Ok(_) | Err(TablesError::ConditionFailed { .. } | TablesError::NotFound(_)) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(removed)
    }
}

/// The write-side tables a change touches, open in one redb write transaction.
struct OpenTables<'a, 't> {
    items: &'a mut redb::Table<'t, (u64, &'static [u8]), &'static [u8]>,
    counts: &'a mut redb::Table<'t, u64, (u64, u64)>,
    stream_next: &'a mut redb::Table<'t, u64, u64>,
    records: &'a mut redb::Table<'t, (u64, u64), &'static [u8]>,
}

fn read_item(
    items: &redb::Table<'_, (u64, &'static [u8]), &'static [u8]>,
    table_id: u64,
    key_bytes: &[u8],
) -> Result<Option<Item>> {
    items
        .get((table_id, key_bytes))?
        .map(|bytes| decode_item(bytes.value()))
        .transpose()
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
    let bytes = encode_item(&updated);
    Ok(Some(Some((updated, bytes))))
}

/// Stores one change: the item, its table's counts and — when the table has a stream and the
/// item changed (DynamoDB writes no record for a write that changed nothing) — its record.
fn store_change(
    open: &mut OpenTables<'_, '_>,
    definition: &TableDefinition,
    key_bytes: &[u8],
    old: Option<Item>,
    put: Option<(Item, Vec<u8>)>,
    now_ms: u64,
    by_service: bool,
) -> Result<WriteOutcome> {
    let id = definition.table_id;
    let key = (id, key_bytes);
    let new = match put {
        Some((item, bytes)) => {
            open.items.insert(key, bytes.as_slice())?;
            Some(item)
        }
        None => {
            open.items.remove(key)?;
            None
        }
    };
    let (mut count, mut size) = open.counts.get(id)?.map_or((0, 0), |value| value.value());
    if let Some(old) = &old {
        count = count.saturating_sub(1);
        size = size.saturating_sub(item_size_bytes(old) as u64);
    }
    if let Some(new) = &new {
        count += 1;
        size += item_size_bytes(new) as u64;
    }
    open.counts.insert(id, (count, size))?;
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
            let next = open
                .stream_next
                .get(stream.stream_id)?
                .map_or(1, |next| next.value());
            record.sequence = next;
            record.by_service = by_service;
            open.records
                .insert((stream.stream_id, next), record.encode().as_slice())?;
            open.stream_next.insert(stream.stream_id, next + 1)?;
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
    schema: &crate::schema::KeySchema,
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
        let item = decode_item(bytes.value())?;
        if !accept(&item)? {
            continue;
        }
        if scanned_count >= limit || page_bytes >= PAGE_BYTES_MAX {
            // Another candidate follows a full page: the page says where to go on.
            return Ok(ScanPage {
                items,
                scanned_count,
                last_evaluated_key: last_scanned.map(|item| schema.project_key(&item)),
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

fn next_id(meta: &mut redb::Table<&str, u64>, key: &str) -> Result<u64> {
    let id = meta.get(key)?.map_or(1, |value| value.value());
    meta.insert(key, id + 1)?;
    Ok(id)
}

/// Hands a group's outcomes back even if the leader panics, so no member waits forever.
struct LeaderGuard<'a> {
    tables: &'a Tables,
    tickets: Vec<u64>,
    outcomes: Option<Vec<(u64, Result<WriteOutcome>)>>,
}

impl Drop for LeaderGuard<'_> {
    fn drop(&mut self) {
        let outcomes = match self.outcomes.take() {
            Some(outcomes) => outcomes,
            None => {
                // The leader unwound mid-group: its transaction was dropped, so nothing of the
                // group was committed; refuse writes anyway, the cause is a bug.
                self.tables.poisoned.store(true, Ordering::SeqCst);
                self.tickets
                    .iter()
                    .map(|ticket| {
                        (
                            *ticket,
                            Err(TablesError::Storage(
                                "the commit of this write's group failed".to_owned(),
                            )),
                        )
                    })
                    .collect()
            }
        };
        let mut state = lock(&self.tables.queue);
        state.leader_active = false;
        state.finished.extend(outcomes);
        drop(state);
        self.tables.turn.notify_all();
    }
}
