//! Ledger → search, built in: every revision of every table of every ledger is written into the
//! index `<ledger>-<table>` (lower case) with `_id = metadata.id` and `metadata.version` as an
//! external version; the final, data-less revision of a deleted document deletes it with its
//! version. Ion becomes JSON with real types ([`ion_to_json`]): numbers stay numbers, decimals
//! keep their digits in `_source`, timestamps become RFC 3339 dates whose fields get an explicit
//! `date` mapping, blobs and clobs base64.
//!
//! It follows each ledger's committed blocks with [`sluice_ledger::Ledger::committed_blocks`],
//! the reader journal streams use, not a Kinesis round-trip: the node holds both the ledgers and
//! the indices, and a stream in between would add a second copy of every revision and a second
//! checkpoint to keep in step. One worker thread serves every ledger; each ledger has a
//! position, `<data dir>/ledger-index/<ledger>.position`
//! (`{"format_version":1,"strand_id","next_sequence_no"}`), replaced atomically after the index
//! writes it covers were acknowledged (fsynced). A crash writes those revisions again, and the
//! external versions make that a no-op (version conflicts are expected and ignored), so the
//! indices converge on the ledgers' committed views. A position naming another strand (the
//! ledger was deleted and created again) starts over.
//!
//! The `--config` file's `ledger_indexing` ([`LedgerIndexConfig`]) turns indexing off, or off
//! per ledger or table, and renames a table's index; index templates choose mappings as for any
//! index created by a write.

use crate::position_file;
use crate::worker::{Progress, Stop, Worker, lock, run_passes};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use ion_rs::{Element, IonType};
use serde::{Deserialize, Serialize};
use sluice_ledger::{Ledgers, model, stream};
use sluice_search::version::Condition;
use sluice_search::{Indices, Mappings, SearchError, WriteRequest};

/// The folder of the data directory that holds the positions.
pub const LEDGER_INDEX_DIRECTORY: &str = "ledger-index";
const POSITION_FORMAT_VERSION: u32 = 1;
/// Most blocks read from one ledger at once before their writes and the position move. Each
/// pass costs the index's translog fsync and the position's, on the disk the ledger's commits
/// wait for: under a steady stream of commits the passes are as large as this allows.
pub const BLOCKS_PER_READ: usize = 1024;
/// Most journal bytes (as Ion binary, before compression) one pass reads: with
/// [`BLOCKS_PER_READ`], bounds the worker's memory and what a crash writes again.
pub const BLOCK_BYTES_PER_READ: usize = 4 * 1024 * 1024;
/// The worker thread's name, also its name in logs.
const WORKER_NAME: &str = "sluice-ledger-index";
/// Deepest document indexed, the search API's own JSON nesting limit; a deeper revision is not
/// indexed (counted in `failed_revisions`, logged).
pub const DOCUMENT_DEPTH_MAX: usize = 100;
/// Stack of the worker thread: the conversion recurses at most [`DOCUMENT_DEPTH_MAX`] levels,
/// and tantivy's document parsing below it.
const WORKER_STACK_BYTES: usize = 8 * 1024 * 1024;

fn yes() -> bool {
    true
}

/// `ledger_indexing` in the `--config` file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerIndexConfig {
    /// Off: no ledger is indexed. On by default.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Per ledger, by name.
    #[serde(default)]
    pub ledgers: BTreeMap<String, LedgerIndexLedgerConfig>,
}

impl Default for LedgerIndexConfig {
    fn default() -> Self {
        LedgerIndexConfig {
            enabled: true,
            ledgers: BTreeMap::new(),
        }
    }
}

/// One ledger's indexing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerIndexLedgerConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Per table, by name.
    #[serde(default)]
    pub tables: BTreeMap<String, LedgerIndexTableConfig>,
}

/// One table's indexing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerIndexTableConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The index instead of `<ledger>-<table>`.
    #[serde(default)]
    pub index: Option<String>,
    /// The mapping the index is created with (the body of `mappings` in `PUT /index`), over
    /// the templates matching its name; the timestamps' `date` fields are added to it.
    #[serde(default)]
    pub mapping: Option<serde_json::Value>,
}

impl LedgerIndexConfig {
    fn ledger_enabled(&self, ledger: &str) -> bool {
        self.enabled && self.ledgers.get(ledger).is_none_or(|config| config.enabled)
    }

    /// The mapping a table's index is created with, if the configuration gives one.
    pub fn mapping_for(&self, ledger: &str, table: &str) -> Option<&serde_json::Value> {
        self.ledgers
            .get(ledger)?
            .tables
            .get(table)?
            .mapping
            .as_ref()
    }

    /// The index a table's revisions go to; `None` when it is not indexed.
    pub fn index_for(&self, ledger: &str, table: &str) -> Option<String> {
        // A replica's own bookkeeping is not the source's data.
        if !self.ledger_enabled(ledger) || crate::replica::is_bookkeeping_table(table) {
            return None;
        }
        let table_config = self
            .ledgers
            .get(ledger)
            .and_then(|config| config.tables.get(table));
        match table_config {
            Some(config) if !config.enabled => None,
            Some(LedgerIndexTableConfig {
                index: Some(index), ..
            }) => Some(index.clone()),
            _ => Some(format!("{ledger}-{table}").to_lowercase()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Position {
    format_version: u32,
    strand_id: String,
    next_sequence_no: u64,
    /// Every index this ledger's revisions were written into, saved before the first write to
    /// each, so that deleting the ledger (or creating another of the same name) deletes them.
    /// Absent in positions written before it was kept: those indices are left in place.
    #[serde(default)]
    indices: BTreeSet<String>,
}

/// What the indexer did, for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerIndexSnapshot {
    /// Per indexed ledger: blocks committed but not yet written into search, counted now.
    pub lag_blocks: BTreeMap<String, u64>,
    /// Revisions written (or found already written) into their index.
    pub indexed_revisions: u64,
    /// Revisions that could not be indexed (refused by the index's mapping, too deep).
    pub failed_revisions: u64,
}

struct Shared {
    directory: PathBuf,
    ledgers: Arc<Ledgers>,
    indices: Arc<Indices>,
    config: LedgerIndexConfig,
    /// Per ledger: the strand and the first block not yet indexed, as the worker last saved it.
    positions: Mutex<BTreeMap<String, (String, u64)>>,
    indexed_revisions: AtomicU64,
    failed_revisions: AtomicU64,
}

/// The built-in indexer of ledgers into search.
pub struct LedgerIndexer {
    shared: Arc<Shared>,
    worker: Worker,
}

impl std::fmt::Debug for LedgerIndexer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("LedgerIndexer")
            .field("directory", &self.shared.directory)
            .finish_non_exhaustive()
    }
}

/// Errors of the indexer's setup and of one ledger's pass.
#[derive(Debug, thiserror::Error)]
pub enum LedgerIndexError {
    #[error("ledger index: {0}")]
    Storage(String),
    /// `ledger_indexing` in the configuration names a bad mapping or index.
    #[error("ledger_indexing: {0}")]
    Config(String),
    #[error(transparent)]
    Ledger(#[from] sluice_ledger::LedgerError),
    #[error(transparent)]
    Search(#[from] SearchError),
}

fn storage(what: &str, path: &Path, error: impl std::fmt::Display) -> LedgerIndexError {
    LedgerIndexError::Storage(format!("{what} {}: {error}", path.display()))
}

impl LedgerIndexer {
    /// Starts the worker (unless the configuration turns indexing off).
    pub fn start(
        data_dir: &Path,
        ledgers: Arc<Ledgers>,
        indices: Arc<Indices>,
        config: LedgerIndexConfig,
    ) -> Result<LedgerIndexer, LedgerIndexError> {
        // A mapping that does not parse is refused at start, not at every pass.
        for (ledger, ledger_config) in &config.ledgers {
            for (table, table_config) in &ledger_config.tables {
                if let Some(mapping) = &table_config.mapping {
                    Mappings::from_json(mapping).map_err(|error| {
                        LedgerIndexError::Config(format!(
                            "the mapping of ledger {ledger} table {table}: {error}"
                        ))
                    })?;
                }
                if let Some(index) = &table_config.index {
                    sluice_search::validate_index_name(index).map_err(|error| {
                        LedgerIndexError::Config(format!(
                            "the index of ledger {ledger} table {table}: {error}"
                        ))
                    })?;
                }
            }
        }
        let directory = data_dir.join(LEDGER_INDEX_DIRECTORY);
        fs::create_dir_all(&directory).map_err(|error| storage("creating", &directory, error))?;
        let enabled = config.enabled;
        let shared = Arc::new(Shared {
            directory,
            ledgers,
            indices,
            config,
            positions: Mutex::new(BTreeMap::new()),
            indexed_revisions: AtomicU64::new(0),
            failed_revisions: AtomicU64::new(0),
        });
        let worker = if enabled {
            let shared = shared.clone();
            Worker::spawn(WORKER_NAME, Some(WORKER_STACK_BYTES), move |stop| {
                run(&shared, &stop)
            })
            .map_err(|error| LedgerIndexError::Storage(format!("starting the worker: {error}")))?
        } else {
            Worker::idle(WORKER_NAME)
        };
        Ok(LedgerIndexer { shared, worker })
    }

    /// Counters and lag for `/metrics`. The lag compares each ledger's committed blocks now
    /// with the indexer's saved position, so a commit acknowledged before the call counts.
    pub fn snapshot(&self) -> LedgerIndexSnapshot {
        let mut lag_blocks = BTreeMap::new();
        if self.shared.config.enabled {
            let positions = lock(&self.shared.positions).clone();
            for name in self.shared.ledgers.list_ledgers().unwrap_or_default() {
                if !self.shared.config.ledger_enabled(&name) {
                    continue;
                }
                let Ok(ledger) = self.shared.ledgers.ledger(&name) else {
                    continue;
                };
                let Ok(committed) = ledger.committed_block_count() else {
                    continue;
                };
                let next = positions
                    .get(&name)
                    .filter(|(strand_id, _)| strand_id == ledger.strand_id())
                    .map_or(0, |(_, next)| *next);
                lag_blocks.insert(name, committed.saturating_sub(next));
            }
        }
        LedgerIndexSnapshot {
            lag_blocks,
            indexed_revisions: self.shared.indexed_revisions.load(Ordering::Relaxed),
            failed_revisions: self.shared.failed_revisions.load(Ordering::Relaxed),
        }
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &LedgerIndexConfig {
        &self.shared.config
    }

    /// Stops the worker; a pass in flight is abandoned before its position moves.
    pub fn shutdown(&self) {
        self.worker.shutdown();
    }
}

fn run(shared: &Shared, stop: &Stop) {
    // Index mappings already holding a `date` field, so each is put once per run.
    let mut dates_mapped: BTreeSet<(String, String)> = BTreeSet::new();
    // The enabled ledgers, and those with a position but no ledger any more (deleted: their
    // pass deletes their indices and forgets them).
    let ledgers = || {
        let mut names: BTreeSet<String> = match shared.ledgers.list_ledgers() {
            Ok(names) => names
                .into_iter()
                .filter(|name| shared.config.ledger_enabled(name))
                .collect(),
            Err(error) => {
                tracing::error!(%error, "the ledger indexer cannot list ledgers");
                return Vec::new();
            }
        };
        match position_file::names(&shared.directory) {
            Ok(positions) => names.extend(positions),
            Err(error) => tracing::error!(%error, "the ledger indexer cannot list its positions"),
        }
        names.into_iter().collect()
    };
    run_passes(WORKER_NAME, stop, ledgers, |name: &String| {
        index_ledger(shared, name, &mut dates_mapped)
    });
}

/// Deletes the indices a ledger of this name was indexed into (the ledger was deleted, or
/// created anew with another strand), and with them what the indexer remembers of them.
fn drop_indices(
    shared: &Shared,
    name: &str,
    indices: &BTreeSet<String>,
    dates_mapped: &mut BTreeSet<(String, String)>,
) -> Result<(), LedgerIndexError> {
    for index in indices {
        match shared.indices.delete(index) {
            Ok(()) | Err(SearchError::IndexNotFound { .. }) => {}
            Err(error) => return Err(error.into()),
        }
        dates_mapped.retain(|(mapped, _)| mapped != index);
        tracing::info!(ledger = name, index = %index, "deleted the index of a deleted ledger");
    }
    Ok(())
}

/// One pass over one ledger: at most [`BLOCKS_PER_READ`] blocks (and [`BLOCK_BYTES_PER_READ`])
/// written and the position moved.
/// Returns whether it moved, and whether it took every block there was (then the next pass
/// waits a poll interval and takes what committed meanwhile in one batch).
fn index_ledger(
    shared: &Shared,
    name: &str,
    dates_mapped: &mut BTreeSet<(String, String)>,
) -> Result<Progress, LedgerIndexError> {
    let saved = read_position(&shared.directory, name)?;
    let ledger = match shared.ledgers.ledger(name) {
        Ok(ledger) => ledger,
        Err(sluice_ledger::LedgerError::NotFound(_)) => {
            if let Some(saved) = saved {
                drop_indices(shared, name, &saved.indices, dates_mapped)?;
                position_file::remove(&shared.directory, name)
                    .map_err(LedgerIndexError::Storage)?;
            }
            lock(&shared.positions).remove(name);
            return Ok(Progress::Idle);
        }
        Err(error) => return Err(error.into()),
    };
    if !shared.config.ledger_enabled(name) {
        return Ok(Progress::Idle);
    }
    let strand_id = ledger.strand_id().to_owned();
    let mut position = match saved {
        Some(saved) if saved.strand_id == strand_id => saved,
        other => {
            if let Some(saved) = other {
                // Another ledger of this name: its indices hold the old one's revisions, with
                // versions the new one would conflict with.
                drop_indices(shared, name, &saved.indices, dates_mapped)?;
            }
            let fresh = Position {
                format_version: POSITION_FORMAT_VERSION,
                strand_id: strand_id.clone(),
                next_sequence_no: 0,
                indices: BTreeSet::new(),
            };
            write_position(&shared.directory, name, &fresh)?;
            fresh
        }
    };
    let next = position.next_sequence_no;
    lock(&shared.positions).insert(name.to_owned(), (strand_id.clone(), next));
    let blocks = ledger.committed_blocks_within(next, BLOCKS_PER_READ, BLOCK_BYTES_PER_READ)?;
    let Some(last) = blocks.last().map(|block| block.sequence_no) else {
        return Ok(Progress::Idle);
    };
    // Writes grouped by index, each index's in journal order.
    let mut writes: BTreeMap<String, Vec<(WriteRequest, Vec<String>)>> = BTreeMap::new();
    // The table each index holds, for the configured mapping it is created with.
    let mut tables: BTreeMap<String, String> = BTreeMap::new();
    for block in &blocks {
        for revision in stream::block_revisions(&block.block)? {
            let Some(table) = revision.user_table() else {
                continue;
            };
            let Some(index) = shared.config.index_for(name, table.name) else {
                continue;
            };
            tables
                .entry(index.clone())
                .or_insert_with(|| table.name.to_owned());
            match revision_write(revision.element) {
                Ok(write) => writes.entry(index).or_default().push(write),
                Err(reason) => {
                    shared.failed_revisions.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        ledger = name,
                        table = table.name,
                        reason,
                        "a revision cannot be indexed"
                    );
                }
            }
        }
    }
    // Indices about to be written for the first time are saved in the position first, so a
    // crash after the write still knows to delete them with the ledger.
    let new_indices: Vec<&String> = (writes.keys())
        .filter(|index| !position.indices.contains(*index))
        .collect();
    if !new_indices.is_empty() {
        position.indices.extend(new_indices.into_iter().cloned());
        write_position(&shared.directory, name, &position)?;
    }
    for (index_name, requests) in writes {
        let mapping = tables
            .get(&index_name)
            .and_then(|table| shared.config.mapping_for(name, table));
        let index = match mapping {
            Some(mapping) if !shared.indices.exists(&index_name) => {
                let created = shared.indices.create(
                    &index_name,
                    sluice_search::CreateIndex {
                        mappings: Some(mapping.clone()),
                        ..sluice_search::CreateIndex::default()
                    },
                );
                match created {
                    Err(SearchError::IndexAlreadyExists { .. }) => {
                        shared.indices.get_or_create(&index_name)?
                    }
                    other => other?,
                }
            }
            _ => shared.indices.get_or_create(&index_name)?,
        };
        let mut new_dates = BTreeSet::new();
        for (_, dates) in &requests {
            for path in dates {
                if !dates_mapped.contains(&(index_name.clone(), path.clone())) {
                    new_dates.insert(path.clone());
                }
            }
        }
        if !new_dates.is_empty() {
            let mut properties = serde_json::Map::new();
            for path in &new_dates {
                insert_date_path(&mut properties, path);
            }
            let mapping = Mappings::from_json(&serde_json::json!({"properties": properties}))?;
            index.put_mapping(&mapping)?;
            for path in new_dates {
                dates_mapped.insert((index_name.clone(), path));
            }
        }
        let requests: Vec<WriteRequest> =
            requests.into_iter().map(|(request, _)| request).collect();
        // The position moves only if every write is done or refused for good.
        crate::index_writes::count_outcomes(
            index.write(requests),
            &index_name,
            "a revision",
            &shared.indexed_revisions,
            &shared.failed_revisions,
        )?;
    }
    position.next_sequence_no = last + 1;
    write_position(&shared.directory, name, &position)?;
    lock(&shared.positions).insert(name.to_owned(), (strand_id, last + 1));
    let stored_bytes: usize = blocks.iter().map(|block| block.stored_bytes).sum();
    Ok(
        if blocks.len() < BLOCKS_PER_READ && stored_bytes < BLOCK_BYTES_PER_READ {
            Progress::CaughtUp
        } else {
            Progress::Behind
        },
    )
}

/// `{"a": {"properties": {"b": {"type": "date"}}}}` for the path `a.b`, merged into `properties`.
fn insert_date_path(properties: &mut serde_json::Map<String, serde_json::Value>, path: &str) {
    let mut current = properties;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            current.insert(part.to_owned(), serde_json::json!({"type": "date"}));
            return;
        }
        let entry = current
            .entry(part.to_owned())
            .or_insert_with(|| serde_json::json!({"properties": {}}));
        let Some(next) = entry
            .get_mut("properties")
            .and_then(serde_json::Value::as_object_mut)
        else {
            return;
        };
        current = next;
    }
}

/// The write a revision asks for, and the dotted paths of its timestamps.
fn revision_write(revision: &Element) -> Result<(WriteRequest, Vec<String>), String> {
    let fields = revision.as_struct().ok_or("the revision is not a struct")?;
    let metadata = fields
        .get("metadata")
        .and_then(Element::as_struct)
        .ok_or("the revision has no metadata")?;
    let id = metadata
        .get("id")
        .and_then(Element::as_text)
        .ok_or("the revision has no id")?
        .to_owned();
    let version = metadata
        .get("version")
        .and_then(Element::as_int)
        .and_then(|version| version.as_i64())
        .and_then(|version| u64::try_from(version).ok())
        .ok_or("the revision has no version")?;
    let condition = Condition::External {
        version,
        gte: false,
    };
    match fields.get("data") {
        None => Ok((WriteRequest::Delete { id, condition }, Vec::new())),
        Some(data) => {
            let json = ion_to_json(data)?;
            if !json.value.is_object() {
                return Err("the document is not a struct".to_owned());
            }
            Ok((
                WriteRequest::Index {
                    id: Some(id),
                    source: Arc::from(json.source),
                    document: json.value,
                    condition,
                },
                json.date_paths.into_iter().collect(),
            ))
        }
    }
}

/// An Ion value as JSON text, the same as a JSON value, and where its timestamps are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonDocument {
    /// The JSON text: decimals written with their own digits.
    pub source: Vec<u8>,
    /// The same document parsed, as `serde_json` would parse `source` (decimals as floats).
    pub value: serde_json::Value,
    /// Dotted paths (through structs; lists are transparent) holding timestamps.
    pub date_paths: BTreeSet<String>,
}

/// Converts Ion to JSON with real types: ints and floats are numbers (non-finite floats null),
/// decimals numbers with their digits (`1.50` stays `1.50`), timestamps RFC 3339 strings,
/// strings and symbols strings, blobs and clobs base64, lists and s-expressions arrays, structs
/// objects, nulls of any type null; annotations are dropped. Nesting beyond
/// [`DOCUMENT_DEPTH_MAX`] is refused. The text and the value are written in one walk, so the
/// indexer never parses the text it just wrote.
pub fn ion_to_json(value: &Element) -> Result<JsonDocument, String> {
    let mut source = Vec::new();
    let mut date_paths = BTreeSet::new();
    let value = write_json(value, &mut source, &mut date_paths, &mut String::new(), 0)?;
    Ok(JsonDocument {
        source,
        value,
        date_paths,
    })
}

/// Writes `value`'s JSON text to `out` and returns it as a JSON value.
fn write_json(
    value: &Element,
    out: &mut Vec<u8>,
    date_paths: &mut BTreeSet<String>,
    path: &mut String,
    depth: usize,
) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    if depth > DOCUMENT_DEPTH_MAX {
        return Err(format!(
            "the document nests deeper than {DOCUMENT_DEPTH_MAX} levels"
        ));
    }
    if value.is_null() {
        out.extend_from_slice(b"null");
        return Ok(Value::Null);
    }
    let string = |out: &mut Vec<u8>, text: &str| {
        // Writing a string into a vector cannot fail.
        let _ = serde_json::to_writer(&mut *out, text);
        Value::String(text.to_owned())
    };
    // A number's text as `serde_json` reads it back (an integer beyond 64 bits as a float).
    let number = |out: &mut Vec<u8>, text: &str| -> Result<Value, String> {
        out.extend_from_slice(text.as_bytes());
        serde_json::from_str::<serde_json::Number>(text)
            .map(Value::Number)
            .map_err(|error| format!("the number {text} does not convert: {error}"))
    };
    Ok(match value.ion_type() {
        IonType::Null => {
            out.extend_from_slice(b"null");
            Value::Null
        }
        IonType::Bool => {
            let bool = value.as_bool() == Some(true);
            out.extend_from_slice(if bool { b"true" } else { b"false" });
            Value::Bool(bool)
        }
        IonType::Int => {
            let int = value.as_int().ok_or("an int without a value")?;
            match int.as_i64() {
                Some(small) => {
                    out.extend_from_slice(small.to_string().as_bytes());
                    Value::from(small)
                }
                None => number(out, &int.to_string())?,
            }
        }
        IonType::Float => match value.as_float().and_then(serde_json::Number::from_f64) {
            Some(float) => {
                out.extend_from_slice(float.to_string().as_bytes());
                Value::Number(float)
            }
            None => {
                out.extend_from_slice(b"null");
                Value::Null
            }
        },
        IonType::Decimal => {
            let decimal = value.as_decimal().ok_or("a decimal without a value")?;
            let text = decimal_text(&decimal.coefficient().to_string(), decimal.exponent());
            number(out, &text)?
        }
        IonType::Timestamp => {
            let timestamp = value.as_timestamp().ok_or("a timestamp without a value")?;
            let instant =
                model::datetime_from_timestamp(&timestamp).map_err(|error| error.to_string())?;
            let text = instant
                .format(&time::format_description::well_known::Rfc3339)
                .map_err(|error| error.to_string())?;
            date_paths.insert(path.clone());
            string(out, &text)
        }
        IonType::String | IonType::Symbol => string(out, value.as_text().unwrap_or_default()),
        IonType::Blob | IonType::Clob => {
            let bytes = value.as_lob().unwrap_or_default();
            string(
                out,
                &base64::engine::general_purpose::STANDARD.encode(bytes),
            )
        }
        IonType::List | IonType::SExp => {
            let sequence = value.as_sequence().ok_or("a list without a value")?;
            let mut items = Vec::with_capacity(sequence.len());
            out.push(b'[');
            for (position, item) in sequence.elements().enumerate() {
                if position > 0 {
                    out.push(b',');
                }
                items.push(write_json(item, out, date_paths, path, depth + 1)?);
            }
            out.push(b']');
            Value::Array(items)
        }
        IonType::Struct => {
            let fields = value.as_struct().ok_or("a struct without a value")?;
            let mut object = serde_json::Map::with_capacity(fields.len());
            out.push(b'{');
            for (position, (name, item)) in fields.fields().enumerate() {
                if position > 0 {
                    out.push(b',');
                }
                let name = name.text().unwrap_or_default();
                string(out, name);
                out.push(b':');
                let length = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(name);
                let item = write_json(item, out, date_paths, path, depth + 1)?;
                path.truncate(length);
                // As a parser of the text keeps a repeated name: its last value, in the place
                // of its first.
                object.insert(name.to_owned(), item);
            }
            out.push(b'}');
            Value::Object(object)
        }
    })
}

/// A decimal's coefficient (`-150`, `-0`) and exponent as a JSON number with the same digits:
/// `-150`, −2 → `-1.50`; `15`, 1 → `15e1`; `5`, −3 → `0.005`.
fn decimal_text(coefficient: &str, exponent: i64) -> String {
    let (sign, digits) = match coefficient.strip_prefix('-') {
        Some(digits) => ("-", digits),
        None => ("", coefficient),
    };
    if exponent >= 0 {
        return if exponent == 0 {
            format!("{sign}{digits}")
        } else {
            format!("{sign}{digits}e{exponent}")
        };
    }
    let fraction_digits = usize::try_from(exponent.unsigned_abs()).unwrap_or(usize::MAX);
    if digits.len() > fraction_digits {
        let (whole, fraction) = digits.split_at(digits.len() - fraction_digits);
        format!("{sign}{whole}.{fraction}")
    } else if fraction_digits - digits.len() <= DECIMAL_ZEROS_MAX {
        let zeros = "0".repeat(fraction_digits - digits.len());
        format!("{sign}0.{zeros}{digits}")
    } else {
        format!("{sign}{digits}e{exponent}")
    }
}

/// Leading zeros written out in a small decimal (`0.000…5`) before an exponent is used instead.
const DECIMAL_ZEROS_MAX: usize = 20;

fn read_position(directory: &Path, ledger: &str) -> Result<Option<Position>, LedgerIndexError> {
    position_file::read(directory, ledger, POSITION_FORMAT_VERSION)
        .map_err(LedgerIndexError::Storage)
}

fn write_position(
    directory: &Path,
    ledger: &str,
    position: &Position,
) -> Result<(), LedgerIndexError> {
    position_file::write(directory, ledger, position).map_err(LedgerIndexError::Storage)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(ion: &str) -> (String, Vec<String>) {
        let document = ion_to_json(&Element::read_one(ion).unwrap()).unwrap();
        // The value built beside the text is the text parsed.
        let parsed: serde_json::Value = serde_json::from_slice(&document.source).unwrap();
        assert_eq!(document.value, parsed, "{ion}");
        (
            String::from_utf8(document.source).unwrap(),
            document.date_paths.into_iter().collect(),
        )
    }

    #[test]
    fn ion_becomes_json_with_real_types() {
        assert_eq!(
            json(
                r#"{name: "Ana", points: 3, ratio: 1.50, big: 15d1, tiny: 5d-3, neg: -0.0, f: 2.5e0,
                    notnum: nan, ok: true, sym: abc, blob: {{aGVsbG8=}}, none: null.int,
                    list: [1, (2 3)], when: 2020-07-05T18:22:14.019Z,
                    nested: {at: [2021-01-01T00:00Z]}}"#
            ),
            (
                r#"{"name":"Ana","points":3,"ratio":1.50,"big":15e1,"tiny":0.005,"neg":-0.0,"f":2.5,"notnum":null,"ok":true,"sym":"abc","blob":"aGVsbG8=","none":null,"list":[1,[2,3]],"when":"2020-07-05T18:22:14.019Z","nested":{"at":["2021-01-01T00:00:00Z"]}}"#
                    .to_owned(),
                vec!["nested.at".to_owned(), "when".to_owned()]
            )
        );
        let deep = format!(
            "{}1{}",
            "[".repeat(DOCUMENT_DEPTH_MAX + 2),
            "]".repeat(DOCUMENT_DEPTH_MAX + 2)
        );
        assert!(ion_to_json(&Element::read_one(deep).unwrap()).is_err());
    }

    #[test]
    fn the_value_is_the_text_parsed_for_big_numbers_and_repeated_names() {
        let (text, _) = json(
            "{a: 1, huge: 123456789012345678901234567890, low: -9223372036854775809, \
             top: 18446744073709551615, a: {b: 2}}",
        );
        assert_eq!(
            text,
            r#"{"a":1,"huge":123456789012345678901234567890,"low":-9223372036854775809,"top":18446744073709551615,"a":{"b":2}}"#
        );
        // JSON has no number this large: the revision is not indexable, as its text would not
        // parse.
        let beyond = Element::read_one("{e: 1d400}").unwrap();
        assert!(ion_to_json(&beyond).is_err());
    }

    #[test]
    fn decimals_keep_their_digits() {
        assert_eq!(decimal_text("-150", -2), "-1.50");
        assert_eq!(decimal_text("7", 0), "7");
        assert_eq!(decimal_text("5", -1), "0.5");
        assert_eq!(decimal_text("5", -40), "5e-40");
        assert_eq!(decimal_text("-0", -1), "-0.0");
    }

    #[test]
    fn the_config_renames_and_turns_off() {
        let config: LedgerIndexConfig = serde_json::from_value(serde_json::json!({
            "ledgers": {
                "off": {"enabled": false},
                "l": {"tables": {"Hidden": {"enabled": false}, "Renamed": {"index": "mine"}}}
            }
        }))
        .unwrap();
        assert_eq!(
            config.index_for("l", "BicycleLicence").as_deref(),
            Some("l-bicyclelicence")
        );
        assert_eq!(config.index_for("l", "Hidden"), None);
        assert_eq!(config.index_for("l", "Renamed").as_deref(), Some("mine"));
        assert_eq!(config.index_for("off", "T"), None);
        // A replica's bookkeeping tables are not indexed.
        assert_eq!(
            config.index_for("l", crate::replica::REPLICA_POSITIONS_TABLE),
            None
        );
        assert_eq!(
            config.index_for("l", crate::replica::REPLICA_IDS_TABLE),
            None
        );
        let all_off: LedgerIndexConfig =
            serde_json::from_value(serde_json::json!({"enabled": false})).unwrap();
        assert_eq!(all_off.index_for("l", "T"), None);
        assert!(
            serde_json::from_value::<LedgerIndexConfig>(serde_json::json!({"enable": true}))
                .is_err()
        );
    }
}
