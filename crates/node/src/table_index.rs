//! Table → search, built in: the changes of each configured table, read from its stream, are
//! written into an index (the table's name in lower case unless configured) with `_id` from
//! the item's key ([`document_id`]) and the stream record's sequence number as an external
//! version; a REMOVE deletes the document with its sequence number. Items become JSON with real
//! types ([`item_to_json`]).
//!
//! Off by default: only the tables named in the `--config` file's `table_indexing`
//! ([`TableIndexConfig`]) are indexed. A table needs its stream with `NEW_IMAGE` or
//! `NEW_AND_OLD_IMAGES`: one that exists without such a stream refuses the start, and one
//! created or changed later so is skipped with a warning (and counted in `refused_tables`).
//!
//! It reads with [`sluice_tables::Tables::read_stream`] on one worker thread. Each table has a
//! position, `<data dir>/table-index/<table>.position`
//! (`{"format_version":1,"stream_id","next_sequence"}`), replaced atomically after the index
//! writes it covers were acknowledged. A crash writes those records again and the external
//! versions make that a no-op (version conflicts are expected and ignored): at-least-once
//! delivery, converging on the table's contents. A position naming another stream (the stream
//! was disabled and enabled again, or the table recreated) starts at that stream's first
//! record; its sequence numbers start again at 1, so documents already written with higher
//! versions keep them until the index is deleted.

use crate::position_file;
use crate::worker::{Progress, Stop, Worker, lock, run_passes};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use serde::{Deserialize, Serialize};
use sluice_search::version::Condition;
use sluice_search::{Indices, Mappings, SearchError, WriteRequest};
use sluice_tables::{AttributeValue, EventName, Item, StreamRecord, TableDefinition, Tables};

/// The worker thread's name, also its name in logs.
const WORKER_NAME: &str = "sluice-table-index";
/// The folder of the data directory that holds the positions.
pub const TABLE_INDEX_DIRECTORY: &str = "table-index";
const POSITION_FORMAT_VERSION: u32 = 1;
/// Stream records read from one table at once before their writes and the position move;
/// bounds the worker's memory and what a crash writes again.
pub const RECORDS_PER_READ: usize = 500;

/// `table_indexing` in the `--config` file: `{"tables": {TABLE: {"index", "mapping"}}}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableIndexConfig {
    /// The indexed tables, by name; no table is indexed unless named here.
    #[serde(default)]
    pub tables: BTreeMap<String, TableIndexTableConfig>,
}

/// One table's indexing.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableIndexTableConfig {
    /// The index instead of the table's name in lower case.
    #[serde(default)]
    pub index: Option<String>,
    /// The mapping the index is created with (the body of `mappings` in `PUT /index`).
    #[serde(default)]
    pub mapping: Option<serde_json::Value>,
}

impl TableIndexConfig {
    /// The index a table's items go to; `None` when it is not indexed.
    pub fn index_for(&self, table: &str) -> Option<String> {
        let config = self.tables.get(table)?;
        Some(config.index.clone().unwrap_or_else(|| table.to_lowercase()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Position {
    format_version: u32,
    stream_id: u64,
    next_sequence: u64,
}

/// What the indexer did, for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableIndexSnapshot {
    /// Per indexed table with a stream: records in its stream not yet written into search.
    pub lag_records: BTreeMap<String, u64>,
    /// Stream records written (or found already written) into their index.
    pub indexed_records: u64,
    /// Stream records that could not be indexed (refused by the index's mapping).
    pub failed_records: u64,
    /// Configured tables skipped now because their stream does not carry new images.
    pub refused_tables: BTreeSet<String>,
}

struct Shared {
    directory: PathBuf,
    tables: Arc<Tables>,
    indices: Arc<Indices>,
    config: TableIndexConfig,
    /// Per table: the stream and the next sequence number not yet indexed, as last saved.
    positions: Mutex<BTreeMap<String, (u64, u64)>>,
    refused: Mutex<BTreeSet<String>>,
    indexed_records: AtomicU64,
    failed_records: AtomicU64,
}

/// The built-in indexer of tables into search.
pub struct TableIndexer {
    shared: Arc<Shared>,
    worker: Worker,
}

impl std::fmt::Debug for TableIndexer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TableIndexer")
            .field("directory", &self.shared.directory)
            .finish_non_exhaustive()
    }
}

/// Errors of the indexer's setup and of one table's pass.
#[derive(Debug, thiserror::Error)]
pub enum TableIndexError {
    #[error("table index: {0}")]
    Storage(String),
    /// `table_indexing` names a bad mapping or index, or a table whose stream cannot feed it.
    #[error("table_indexing: {0}")]
    Config(String),
    #[error(transparent)]
    Tables(#[from] sluice_tables::TablesError),
    #[error(transparent)]
    Search(#[from] SearchError),
}

fn storage(what: &str, path: &Path, error: impl std::fmt::Display) -> TableIndexError {
    TableIndexError::Storage(format!("{what} {}: {error}", path.display()))
}

/// Why a table cannot be indexed now, if it cannot: no stream, or one without new images.
fn stream_refusal(definition: &TableDefinition) -> Option<String> {
    match &definition.stream {
        None => Some(format!(
            "table {} has no stream; enable one with StreamViewType NEW_IMAGE or NEW_AND_OLD_IMAGES",
            definition.name
        )),
        Some(stream) if !stream.view_type.keeps_new() => Some(format!(
            "the stream of table {} is {}; indexing needs NEW_IMAGE or NEW_AND_OLD_IMAGES",
            definition.name,
            stream.view_type.as_str()
        )),
        Some(_) => None,
    }
}

impl TableIndexer {
    /// Checks the configuration and starts the worker (none when no table is configured).
    pub fn start(
        data_dir: &Path,
        tables: Arc<Tables>,
        indices: Arc<Indices>,
        config: TableIndexConfig,
    ) -> Result<TableIndexer, TableIndexError> {
        for (table, table_config) in &config.tables {
            if let Some(mapping) = &table_config.mapping {
                Mappings::from_json(mapping).map_err(|error| {
                    TableIndexError::Config(format!("the mapping of table {table}: {error}"))
                })?;
            }
            if let Some(index) = config.index_for(table) {
                sluice_search::validate_index_name(&index).map_err(|error| {
                    TableIndexError::Config(format!("the index of table {table}: {error}"))
                })?;
            }
            // A table that exists already must be able to feed its index; one created later
            // is checked by the worker.
            if let Ok(definition) = tables.definition(table)
                && let Some(reason) = stream_refusal(&definition)
            {
                return Err(TableIndexError::Config(reason));
            }
        }
        let directory = data_dir.join(TABLE_INDEX_DIRECTORY);
        fs::create_dir_all(&directory).map_err(|error| storage("creating", &directory, error))?;
        let shared = Arc::new(Shared {
            directory,
            tables,
            indices,
            config,
            positions: Mutex::new(BTreeMap::new()),
            refused: Mutex::new(BTreeSet::new()),
            indexed_records: AtomicU64::new(0),
            failed_records: AtomicU64::new(0),
        });
        // Always running: a table may be tagged for indexing at any time.
        let worker = {
            let shared = shared.clone();
            Worker::spawn(WORKER_NAME, None, move |stop| run(&shared, &stop)).map_err(|error| {
                TableIndexError::Storage(format!("starting the worker: {error}"))
            })?
        };
        Ok(TableIndexer { shared, worker })
    }

    /// Counters and lag for `/metrics`. The lag compares each stream's next sequence number
    /// now with the saved position, so a write acknowledged before the call counts.
    pub fn snapshot(&self) -> TableIndexSnapshot {
        let mut lag_records = BTreeMap::new();
        let positions = lock(&self.shared.positions).clone();
        for table in indexed_tables(&self.shared) {
            let Ok(definition) = self.shared.tables.definition(&table) else {
                continue;
            };
            let Some(stream) = &definition.stream else {
                continue;
            };
            let Ok(next) = self.shared.tables.stream_next_sequence(stream.stream_id) else {
                continue;
            };
            let indexed = positions
                .get(&table)
                .filter(|(stream_id, _)| *stream_id == stream.stream_id)
                .map_or(1, |(_, next)| *next);
            lag_records.insert(table.clone(), next.saturating_sub(indexed));
        }
        TableIndexSnapshot {
            lag_records,
            indexed_records: self.shared.indexed_records.load(Ordering::Relaxed),
            failed_records: self.shared.failed_records.load(Ordering::Relaxed),
            refused_tables: lock(&self.shared.refused).clone(),
        }
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &TableIndexConfig {
        &self.shared.config
    }

    /// Stops the worker; a pass in flight is abandoned before its position moves.
    pub fn shutdown(&self) {
        self.worker.shutdown();
    }
}

fn run(shared: &Shared, stop: &Stop) {
    let tables = || indexed_tables(shared);
    run_passes(WORKER_NAME, stop, tables, |table: &String| {
        index_table(shared, table).map(Progress::moved)
    });
}

/// The tables to index: those the configuration names and those tagged
/// `sluice:search-index`.
fn indexed_tables(shared: &Shared) -> Vec<String> {
    let mut tables: BTreeSet<String> = shared.config.tables.keys().cloned().collect();
    tables.extend(
        (shared.tables.definitions().iter())
            .filter(|definition| definition.tagged_search_index().is_some())
            .map(|definition| definition.name.clone()),
    );
    tables.into_iter().collect()
}

/// The index a table's records go to: the configuration's choice, else its tag's.
fn index_for(shared: &Shared, definition: &TableDefinition) -> Option<String> {
    shared
        .config
        .index_for(&definition.name)
        .or_else(|| definition.tagged_search_index())
}

/// One pass over one table: at most [`RECORDS_PER_READ`] records written and the position
/// moved. Returns whether it moved.
fn index_table(shared: &Shared, table: &str) -> Result<bool, TableIndexError> {
    let Ok(definition) = shared.tables.definition(table) else {
        // Not created yet (or deleted): nothing to follow.
        return Ok(false);
    };
    if let Some(reason) = stream_refusal(&definition) {
        if lock(&shared.refused).insert(table.to_owned()) {
            tracing::warn!(table, reason, "the table cannot be indexed");
        }
        return Ok(false);
    }
    lock(&shared.refused).remove(table);
    let Some(stream) = &definition.stream else {
        return Ok(false);
    };
    let stream_id = stream.stream_id;
    let next = read_position(&shared.directory, table)?
        .filter(|position| position.stream_id == stream_id)
        .map_or(1, |position| position.next_sequence);
    lock(&shared.positions).insert(table.to_owned(), (stream_id, next));
    let records = shared
        .tables
        .read_stream(stream_id, next, RECORDS_PER_READ)?;
    let Some(last) = records.last().map(|record| record.sequence) else {
        return Ok(false);
    };
    let Some(index_name) = index_for(shared, &definition) else {
        return Ok(false);
    };
    let key_names = (
        definition.key_schema.partition.name.clone(),
        definition
            .key_schema
            .sort
            .as_ref()
            .map(|sort| sort.name.clone()),
    );
    let mut requests = Vec::with_capacity(records.len());
    for record in &records {
        match record_write(record, &key_names) {
            Ok(request) => requests.push(request),
            Err(reason) => {
                shared.failed_records.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(table, reason, "a stream record cannot be indexed");
            }
        }
    }
    let mapping = shared
        .config
        .tables
        .get(table)
        .and_then(|config| config.mapping.as_ref());
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
    // The position moves only if every write is done or refused for good.
    crate::index_writes::count_outcomes(
        index.write(requests),
        &index_name,
        "a table change",
        &shared.indexed_records,
        &shared.failed_records,
    )?;
    write_position(
        &shared.directory,
        table,
        &Position {
            format_version: POSITION_FORMAT_VERSION,
            stream_id,
            next_sequence: last + 1,
        },
    )?;
    lock(&shared.positions).insert(table.to_owned(), (stream_id, last + 1));
    Ok(true)
}

/// The write one stream record asks for.
fn record_write(
    record: &StreamRecord,
    key_names: &(String, Option<String>),
) -> Result<WriteRequest, String> {
    let id = document_id(&record.keys, &key_names.0, key_names.1.as_deref())?;
    let condition = Condition::External {
        version: record.sequence,
        gte: false,
    };
    match record.event_name {
        EventName::Remove => Ok(WriteRequest::Delete { id, condition }),
        EventName::Insert | EventName::Modify => {
            let image = record
                .new_image
                .as_ref()
                .ok_or("the record carries no new image")?;
            let source = item_to_json(image);
            let document: serde_json::Value = serde_json::from_slice(&source)
                .map_err(|error| format!("the converted item does not parse: {error}"))?;
            Ok(WriteRequest::Index {
                id: Some(id),
                source: Arc::from(source),
                document,
                condition,
            })
        }
    }
}

/// A key attribute's text: S as is, N in plain decimal notation, B in base64.
fn key_text(value: &AttributeValue) -> Result<String, String> {
    match value {
        AttributeValue::S(text) => Ok(text.clone()),
        AttributeValue::N(number) => Ok(number.to_string()),
        AttributeValue::B(bytes) => Ok(base64::engine::general_purpose::STANDARD.encode(bytes)),
        other => Err(format!("a key attribute of type {}", other.type_name())),
    }
}

/// The `_id` of an item's document: the partition key's text alone; with a sort key,
/// the partition key's text with `\` written `\\` and `|` written `\|`, then `|`, then the sort
/// key's text. The first unescaped `|` separates the two, so no two keys share an id.
pub fn document_id(keys: &Item, partition: &str, sort: Option<&str>) -> Result<String, String> {
    let partition_text = key_text(
        keys.get(partition)
            .ok_or_else(|| format!("the record has no key {partition}"))?,
    )?;
    let Some(sort) = sort else {
        return Ok(partition_text);
    };
    let sort_text = key_text(
        keys.get(sort)
            .ok_or_else(|| format!("the record has no key {sort}"))?,
    )?;
    let escaped = partition_text.replace('\\', "\\\\").replace('|', "\\|");
    Ok(format!("{escaped}|{sort_text}"))
}

/// An item as JSON text with real types: `S` strings, `N` numbers written with all their digits
/// in plain notation (so `_source` keeps every one of up to 38 digits, while the indexed field,
/// a double, holds about 16), `B` base64 strings, `BOOL` booleans, `NULL` null, `M` objects,
/// `L` arrays, `SS`/`NS`/`BS` arrays of strings, numbers and base64 strings. Items nest at most
/// [`sluice_tables::NESTING_DEPTH_MAX`] levels (refused at write), which bounds the recursion.
/// An integer beyond a `long` is refused by a dynamically mapped field (as by Elasticsearch);
/// give such a field a `double` type in the configured `mapping`.
pub fn item_to_json(item: &Item) -> Vec<u8> {
    let mut out = Vec::new();
    write_map(item, &mut out);
    out
}

fn write_string(out: &mut Vec<u8>, text: &str) {
    // Serialising a string cannot fail.
    let quoted = serde_json::to_string(text).unwrap_or_default();
    out.extend_from_slice(quoted.as_bytes());
}

fn write_map(map: &BTreeMap<String, AttributeValue>, out: &mut Vec<u8>) {
    out.push(b'{');
    for (position, (name, value)) in map.iter().enumerate() {
        if position > 0 {
            out.push(b',');
        }
        write_string(out, name);
        out.push(b':');
        write_value(value, out);
    }
    out.push(b'}');
}

fn write_array<T>(
    items: impl Iterator<Item = T>,
    out: &mut Vec<u8>,
    write: impl Fn(T, &mut Vec<u8>),
) {
    out.push(b'[');
    for (position, item) in items.enumerate() {
        if position > 0 {
            out.push(b',');
        }
        write(item, out);
    }
    out.push(b']');
}

fn write_value(value: &AttributeValue, out: &mut Vec<u8>) {
    let base64 = |bytes: &[u8], out: &mut Vec<u8>| {
        write_string(
            out,
            &base64::engine::general_purpose::STANDARD.encode(bytes),
        );
    };
    match value {
        AttributeValue::S(text) => write_string(out, text),
        AttributeValue::N(number) => out.extend_from_slice(number.to_string().as_bytes()),
        AttributeValue::B(bytes) => base64(bytes, out),
        AttributeValue::Bool(true) => out.extend_from_slice(b"true"),
        AttributeValue::Bool(false) => out.extend_from_slice(b"false"),
        AttributeValue::Null => out.extend_from_slice(b"null"),
        AttributeValue::M(map) => write_map(map, out),
        AttributeValue::L(items) => write_array(items.iter(), out, write_value),
        AttributeValue::Ss(set) => {
            write_array(set.iter(), out, |text, out| write_string(out, text))
        }
        AttributeValue::Ns(set) => write_array(set.iter(), out, |number, out| {
            out.extend_from_slice(number.to_string().as_bytes())
        }),
        AttributeValue::Bs(set) => write_array(set.iter(), out, |bytes, out| base64(bytes, out)),
    }
}

fn read_position(directory: &Path, table: &str) -> Result<Option<Position>, TableIndexError> {
    position_file::read(directory, table, POSITION_FORMAT_VERSION).map_err(TableIndexError::Storage)
}

fn write_position(
    directory: &Path,
    table: &str,
    position: &Position,
) -> Result<(), TableIndexError> {
    position_file::write(directory, table, position).map_err(TableIndexError::Storage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_tables::Number;

    fn n(text: &str) -> AttributeValue {
        AttributeValue::N(Number::parse(text).unwrap())
    }

    #[test]
    fn items_become_json_with_real_types() {
        let item: Item = [
            ("s".to_owned(), AttributeValue::S("a\"b".to_owned())),
            ("n".to_owned(), n("12345678901234567890123456789012345678")),
            ("f".to_owned(), n("-0.015")),
            ("b".to_owned(), AttributeValue::B(b"hello".to_vec())),
            ("t".to_owned(), AttributeValue::Bool(true)),
            ("z".to_owned(), AttributeValue::Null),
            (
                "m".to_owned(),
                AttributeValue::M([("l".to_owned(), AttributeValue::L(vec![n("1")]))].into()),
            ),
            (
                "ss".to_owned(),
                AttributeValue::Ss(["x".to_owned(), "y".to_owned()].into()),
            ),
            (
                "ns".to_owned(),
                AttributeValue::Ns(
                    [Number::parse("2").unwrap(), Number::parse("1e3").unwrap()].into(),
                ),
            ),
            ("bs".to_owned(), AttributeValue::Bs([b"hi".to_vec()].into())),
        ]
        .into();
        assert_eq!(
            String::from_utf8(item_to_json(&item)).unwrap(),
            r#"{"b":"aGVsbG8=","bs":["aGk="],"f":-0.015,"m":{"l":[1]},"n":12345678901234567890123456789012345678,"ns":[2,1000],"s":"a\"b","ss":["x","y"],"t":true,"z":null}"#
        );
    }

    #[test]
    fn ids_are_unambiguous() {
        let keys = |hash: &str, range: &str| -> Item {
            [
                ("h".to_owned(), AttributeValue::S(hash.to_owned())),
                ("r".to_owned(), AttributeValue::S(range.to_owned())),
            ]
            .into()
        };
        assert_eq!(document_id(&keys("a", "b"), "h", None).unwrap(), "a");
        assert_eq!(document_id(&keys("a", "b"), "h", Some("r")).unwrap(), "a|b");
        let one = document_id(&keys("a|b", "c"), "h", Some("r")).unwrap();
        let two = document_id(&keys("a", "b|c"), "h", Some("r")).unwrap();
        assert_eq!(one, "a\\|b|c");
        assert_ne!(one, two);
        let numeric: Item = [("h".to_owned(), n("3"))].into();
        assert_eq!(document_id(&numeric, "h", None).unwrap(), "3");
        assert!(document_id(&numeric, "missing", None).is_err());
    }
}
