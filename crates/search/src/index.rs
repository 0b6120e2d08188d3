//! One index: its tantivy index, translog, mapping and settings, the live version map, and the
//! write, get, search and refresh paths.
//!
//! Write path (`Index::write`): under the index's write lock each operation is parsed against the
//! mapping, its version decided against what the index holds for the id (the live version map of
//! writes not yet refreshed, else the current searcher — tombstones included), given the next
//! sequence number, appended to the translog buffer, handed to tantivy's `IndexWriter` and
//! recorded in the live map. The lock is released and the translog fsynced once for every
//! concurrent writer (group commit); only then are the writes acknowledged.
//!
//! Refresh (`Index::refresh`) commits tantivy with the highest sequence number it holds in the
//! commit payload, reloads the reader and empties the live map, then drops the translog
//! generations that the commit covers. Opening replays the translog operations above the
//! committed sequence number.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use tantivy::collector::{Count, TopDocs};
use tantivy::directory::MmapDirectory;
use tantivy::indexer::UserOperation;
use tantivy::query::{BooleanQuery, Occur, Query as _, TermQuery, TermSetQuery};
use tantivy::schema::{IndexRecordOption, OwnedValue, Value as _};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{
    DocAddress, DocSet, IndexReader, IndexWriter, ReloadPolicy, Searcher, TERMINATED,
    TantivyDocument, Term,
};

use crate::analysis::Analyzer;
use crate::compile::Compiler;
use crate::error::{Result, SearchError};
use crate::id_filter::IdFilter;
use crate::ids;
use crate::mapping::{FieldType, Mappings, NestedDocument};
use crate::query::Query;
use crate::schema::{
    LEGACY_TEXT_TOKENIZER, SchemaFields, TEXT_SLOTS, TextPlace, build_schema, document_values,
    schema_fields,
};
use crate::scoring::{NormDocCounts, weight_matches};
use crate::settings::IndexSettings;
use crate::snapshots::SearcherSnapshot;
use crate::sort::{CollectBounds, IndexSort, SortKey, SortOrder, SortValue};
use crate::translog::{Operation, Translog, sync_directory};
use crate::version::{Condition, Current, PRIMARY_TERM, resolve};

/// Format of new indices (`index.json` and the tantivy schema); bump when either changes, and
/// keep reading the old ones. 2: text fields in slots of their own (`schema.rs`), `text_slots`
/// in `index.json`. 3: the `_nested` field of nested objects' hidden documents (`nested.rs`).
/// Older indices still open and keep their format (see `docs/search-format.md`); they cannot
/// map `nested` fields.
pub const INDEX_META_FORMAT_VERSION: u64 = 3;
/// The oldest format this build opens.
pub const INDEX_META_FORMAT_VERSION_MIN: u64 = 1;
/// Longest document id, in bytes, as in Elasticsearch.
pub const ID_BYTES_MAX: usize = 512;
/// Sources held by the live version map before a refresh is forced, so that memory stays
/// bounded even with `refresh_interval: -1`.
pub const LIVE_MAP_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Threads of tantivy's writer per index.
pub const INDEXING_THREADS: usize = 2;
/// Memory tantivy's writer may use per index before it flushes a segment.
pub const INDEXING_MEMORY_BYTES: usize = 96 * 1024 * 1024;

/// A write to apply to an index.
#[derive(Debug, Clone)]
pub enum WriteRequest {
    /// Index a whole document. `id: None` generates one.
    Index {
        id: Option<String>,
        source: Arc<[u8]>,
        document: Value,
        condition: Condition,
    },
    Delete {
        id: String,
        condition: Condition,
    },
    Update(UpdateRequest),
}

/// `POST /index/_update/id`: merge `doc` into the document, or run `script` on it, or insert
/// `upsert`.
#[derive(Debug, Clone, Default)]
pub struct UpdateRequest {
    pub id: String,
    pub doc: Option<Value>,
    pub script: Option<UpdateScript>,
    pub upsert: Option<Value>,
    pub doc_as_upsert: bool,
    pub detect_noop: bool,
    pub condition: Condition,
}

/// A compiled update script with its `params`. It runs under the index's write lock on the
/// document as it is, so scripted updates of one document never conflict with each other.
#[derive(Debug, Clone)]
pub struct UpdateScript {
    pub script: Arc<sluice_script::Script>,
    pub params: sluice_script::Value,
    /// `scripted_upsert`: a missing document runs the script on `upsert` instead of taking it
    /// as is.
    pub scripted_upsert: bool,
}

/// What an update script asked for through `ctx.op`.
#[derive(Debug, Clone, PartialEq)]
pub enum ScriptOutcome {
    /// `index` (or `create` on an upsert): write this source.
    Index(Value),
    /// `noop` or `none`: leave the document as it is.
    Noop,
    /// `delete`: delete the document.
    Delete,
}

impl UpdateScript {
    /// Runs the script over `ctx` (`_index`, `_id`, `_version`, `_source`, `op`, `_now`) and
    /// reads back what it left in `ctx.op` and `ctx._source`.
    pub fn run(
        &self,
        index: &str,
        id: &str,
        version: Option<u64>,
        source: &Value,
        op: &str,
    ) -> Result<ScriptOutcome> {
        use sluice_script::{Map, Value as ScriptValue};
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let mut ctx = Map::new();
        ctx.insert("_index".into(), ScriptValue::Str(index.to_owned()));
        ctx.insert("_id".into(), ScriptValue::Str(id.to_owned()));
        if let Some(version) = version {
            ctx.insert(
                "_version".into(),
                ScriptValue::Long(i64::try_from(version).unwrap_or(i64::MAX)),
            );
        }
        ctx.insert("_routing".into(), ScriptValue::Null);
        ctx.insert("_source".into(), ScriptValue::from_json(source));
        ctx.insert("op".into(), ScriptValue::Str(op.to_owned()));
        ctx.insert("_now".into(), ScriptValue::Long(now_ms));
        let mut variables = Map::new();
        variables.insert("ctx".into(), ScriptValue::Map(ctx));
        variables.insert("params".into(), self.params.clone());
        self.script
            .execute(&mut variables)
            .map_err(|error| SearchError::Script(Box::new(error)))?;
        let Some(ScriptValue::Map(mut ctx)) = variables.shift_remove("ctx") else {
            return Err(SearchError::illegal("the script replaced [ctx]"));
        };
        // Sluice does not move a document to another index, id or routing from a script
        // (`_reindex` and `_update_by_query` in Elasticsearch can): refuse rather than ignore.
        for (field, before) in [
            ("_index", ScriptValue::Str(index.to_owned())),
            ("_id", ScriptValue::Str(id.to_owned())),
            ("_routing", ScriptValue::Null),
        ] {
            if ctx.get(field).is_some_and(|after| *after != before) {
                return Err(SearchError::illegal(format!(
                    "changing [ctx.{field}] in a script is not supported"
                )));
            }
        }
        let op = match ctx.get("op") {
            Some(ScriptValue::Str(op)) => op.clone(),
            Some(ScriptValue::Null) | None => op.to_owned(),
            Some(other) => other.java_string(),
        };
        match op.as_str() {
            "none" | "noop" => Ok(ScriptOutcome::Noop),
            "delete" => Ok(ScriptOutcome::Delete),
            "index" | "create" => match ctx.shift_remove("_source") {
                Some(source @ ScriptValue::Map(_)) => Ok(ScriptOutcome::Index(source.to_json())),
                _ => Err(SearchError::illegal(
                    "the script must leave a map in [ctx._source]",
                )),
            },
            other => Err(SearchError::illegal(format!(
                "Operation type [{other}] not allowed, only [noop, index, delete] are allowed"
            ))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteResult {
    Created,
    Updated,
    Deleted,
    NotFound,
    Noop,
}

impl WriteResult {
    pub fn name(self) -> &'static str {
        match self {
            WriteResult::Created => "created",
            WriteResult::Updated => "updated",
            WriteResult::Deleted => "deleted",
            WriteResult::NotFound => "not_found",
            WriteResult::Noop => "noop",
        }
    }
}

#[derive(Debug, Clone)]
pub struct WriteOutcome {
    pub id: String,
    pub version: u64,
    pub seq_no: u64,
    pub primary_term: u64,
    pub result: WriteResult,
    /// For updates only: the document as the update left it (merged, upserted, or unchanged for
    /// a noop), which `_update` and bulk show under `get` when asked.
    pub source: Option<Arc<[u8]>>,
}

impl WriteOutcome {
    fn with_source(mut self, source: Arc<[u8]>) -> WriteOutcome {
        self.source = Some(source);
        self
    }
}

/// A stored document as `GET /index/_doc/id` returns it.
#[derive(Debug, Clone)]
pub struct StoredDocument {
    pub version: u64,
    pub seq_no: u64,
    pub primary_term: u64,
    /// `None` when the index does not store `_source`.
    pub source: Option<Arc<[u8]>>,
}

#[derive(Debug, Clone)]
pub struct Hit {
    pub id: String,
    pub score: f32,
    pub version: u64,
    pub seq_no: u64,
    /// `None` when the index does not store `_source`.
    pub source: Option<Arc<[u8]>>,
    /// Names (`_name`) of the query's clauses that this document matches.
    pub matched_queries: Vec<String>,
    /// The hit's sort values, when the search has a `sort`.
    pub sort: Vec<SortValue>,
    /// How the score was computed (`explain`): `value`, `description`, `details`.
    pub explanation: Option<Value>,
    /// `collapse`: the value of the hit's group (`null` for documents without one).
    pub collapse: Option<Value>,
    /// The inner hits of the query's `nested` queries that ask for them, by name.
    pub inner_hits: Vec<(String, InnerHitsResult)>,
}

/// The matching nested objects of one hit for one `nested` query.
#[derive(Debug, Clone, Default)]
pub struct InnerHitsResult {
    pub total: u64,
    pub max_score: Option<f32>,
    /// Best first, `from..from + size` of them.
    pub hits: Vec<InnerHit>,
}

#[derive(Debug, Clone)]
pub struct InnerHit {
    /// Where the object sits in its document (`_nested`: `field`, `offset`, inner `_nested`).
    pub nested: Value,
    pub score: f32,
    /// The names of the nested query's named clauses that the object matches.
    pub matched_queries: Vec<String>,
    /// The object itself, cut from its document's source (`None` without a stored source).
    pub source: Option<Value>,
}

/// A `nested` query with inner hits, the weight of its inner query and those of its named
/// clauses, all at the level of its objects.
struct InnerHitWeight<'q> {
    nested: &'q crate::query::Nested,
    weight: Box<dyn tantivy::query::Weight>,
    named: Vec<(String, Box<dyn tantivy::query::Weight>)>,
}

#[derive(Debug, Clone)]
pub struct SearchHits {
    pub total: u64,
    pub max_score: Option<f32>,
    pub hits: Vec<Hit>,
    /// Whether the hits' scores were computed (a sort without `_score` computes none unless
    /// `track_scores`).
    pub scored: bool,
    /// `terminate_after` stopped the search.
    pub terminated_early: bool,
    /// The deadline passed: the hits and total are partial.
    pub timed_out: bool,
}

/// What one read sees of its index (see [`Index::read_view`]).
struct ReadView<'q> {
    mappings: Arc<Mappings>,
    /// The reader's field-level security, when it has some.
    fields: Option<&'q dyn crate::field_security::FieldFilter>,
}

/// One page of a search on one index.
#[derive(Debug, Clone, Copy)]
pub struct SearchPage<'a> {
    pub query: &'a Query,
    pub from: usize,
    pub size: usize,
    /// Empty: by score.
    pub sort: &'a [SortKey],
    /// Compute scores (and `max_score`) even when the sort does not need them.
    pub track_scores: bool,
    /// Only hits after these sort values, one per sort key.
    pub search_after: Option<&'a [serde_json::Value]>,
    /// Read this snapshot of the index instead of its last refresh.
    pub snapshot: Option<&'a SearcherSnapshot>,
    /// The index's position among the indices of the search, for `_shard_doc`.
    pub shard_index: u32,
    /// Only hits scoring at least this.
    pub min_score: Option<f32>,
    /// Stop after collecting this many documents (`terminated_early`).
    pub terminate_after: Option<u64>,
    /// Stop collecting at this instant, with partial results (`timed_out`).
    pub deadline: Option<Instant>,
    /// Explain each hit's score.
    pub explain: bool,
    /// `collapse`: one hit per value of this field, the best by the sort.
    pub collapse: Option<&'a str>,
}

impl<'a> SearchPage<'a> {
    /// The first `size` hits of `query` by score, on the last refresh.
    pub fn new(query: &'a Query, size: usize) -> SearchPage<'a> {
        SearchPage {
            query,
            from: 0,
            size,
            sort: &[],
            track_scores: false,
            search_after: None,
            snapshot: None,
            shard_index: 0,
            min_score: None,
            terminate_after: None,
            deadline: None,
            explain: false,
            collapse: None,
        }
    }

    fn bounds(&self) -> CollectBounds {
        CollectBounds {
            min_score: self.min_score,
            terminate_after: self.terminate_after,
            deadline: self.deadline,
        }
    }
}

/// A point-in-time scan of a query's matches, in index order (see [`Index::scan`]).
pub struct Scan {
    searcher: Searcher,
    weight: Box<dyn tantivy::query::Weight>,
    fields: SchemaFields,
    /// The segment the next batch starts in, and the first document there it may return.
    segment: usize,
    next_doc: tantivy::DocId,
    total: u64,
}

impl std::fmt::Debug for Scan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scan")
            .field("segment", &self.segment)
            .field("next_doc", &self.next_doc)
            .field("total", &self.total)
            .finish()
    }
}

impl Scan {
    /// How many documents matched when the scan opened.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The next at most `size` matches with their sources, versions and sequence numbers;
    /// empty when the scan is done.
    pub fn next_batch(&mut self, size: usize) -> Result<Vec<Hit>> {
        let mut hits = Vec::new();
        while hits.len() < size {
            let Some(segment) = self.searcher.segment_readers().get(self.segment) else {
                break;
            };
            let mut scorer = self.weight.scorer(segment, 1.0)?;
            let mut doc = if scorer.doc() >= self.next_doc {
                scorer.doc()
            } else {
                scorer.seek(self.next_doc)
            };
            while doc != TERMINATED && hits.len() < size {
                if !segment.is_deleted(doc) {
                    let address = DocAddress::new(self.segment as u32, doc);
                    let document: TantivyDocument = self.searcher.doc(address)?;
                    hits.push(Hit {
                        id: document
                            .get_first(self.fields.id)
                            .and_then(|v| v.as_str())
                            .unwrap_or_default()
                            .to_string(),
                        score: 1.0,
                        version: document
                            .get_first(self.fields.version)
                            .and_then(|v| v.as_u64())
                            .unwrap_or(0),
                        seq_no: document
                            .get_first(self.fields.seq_no)
                            .and_then(|v| v.as_u64())
                            .unwrap_or(0),
                        source: document
                            .get_first(self.fields.source)
                            .and_then(|v| v.as_bytes())
                            .map(Arc::from),
                        matched_queries: Vec::new(),
                        sort: Vec::new(),
                        explanation: None,
                        collapse: None,
                        inner_hits: Vec::new(),
                    });
                }
                doc = scorer.advance();
            }
            if doc == TERMINATED {
                self.segment += 1;
                self.next_doc = 0;
            } else {
                self.next_doc = doc;
            }
        }
        Ok(hits)
    }
}

/// The newest write of an id that the current searcher may not show yet.
#[derive(Debug, Clone)]
struct LiveEntry {
    version: u64,
    seq_no: u64,
    /// `None` for a delete.
    source: Option<Arc<[u8]>>,
}

struct WriteState {
    writer: IndexWriter,
    live: HashMap<String, LiveEntry>,
    live_bytes: usize,
    next_seq_no: u64,
    /// Writes since the last refresh.
    dirty: bool,
    last_refresh: Instant,
    /// Readers of the current searcher's segments for version lookups, rebuilt on refresh.
    id_lookup: Arc<IdLookup>,
}

/// Per-segment readers that answer "what does the searcher hold for this `_id`", opened once
/// per searcher generation instead of once per lookup.
struct IdLookup {
    searcher: Searcher,
    fields: SchemaFields,
    segments: Vec<SegmentLookup>,
    /// The segments' id filters by segment, for the deletes of this generation's writes.
    filters: Arc<SegmentFilters>,
}

/// The id filters of one searcher generation's segments. A delete holds these (bit arrays
/// only) rather than the lookup, which would keep the generation's segment files open until
/// tantivy has resolved the delete everywhere, merges included.
struct SegmentFilters(HashMap<tantivy::index::SegmentId, Arc<OnceLock<IdFilter>>>);

impl SegmentFilters {
    /// Whether `segment` certainly holds no document with `id`: it is one of these segments
    /// and its filter, built, refuses the id.
    fn excludes(&self, segment: tantivy::index::SegmentId, id: &[u8]) -> bool {
        self.0.get(&segment).is_some_and(|ids| refuses(ids, id))
    }
}

/// Whether a segment's filter is built and refuses `id`.
fn refuses(ids: &OnceLock<IdFilter>, id: &[u8]) -> bool {
    ids.get().is_some_and(|ids| !ids.may_contain(id))
}

struct SegmentLookup {
    segment_id: tantivy::index::SegmentId,
    inverted: Arc<tantivy::InvertedIndexReader>,
    alive: Option<tantivy::fastfield::AliveBitSet>,
    version: tantivy::columnar::Column<u64>,
    seq_no: tantivy::columnar::Column<u64>,
    deleted: tantivy::columnar::Column<bool>,
    /// The segment's ids, once built: a lookup skips the segment when the filter refuses the
    /// id, and reads the term dictionary until then. Carried over to the next searcher
    /// generation while the segment lives (segments never change).
    ids: Arc<OnceLock<IdFilter>>,
}

/// Segments with at most this many ids get their filter when a refresh first shows them (a
/// few milliseconds); larger ones, which merges produce, on a thread of their own, so that the
/// refresh, which holds the index's write lock, does not wait for them.
const ID_FILTER_INLINE_TERMS_MAX: usize = if cfg!(test) { 64 } else { 65_536 };

impl IdLookup {
    /// Readers for `searcher`'s segments, with the id filters of `previous` for the segments it
    /// had; filters of new segments are built (see [`ID_FILTER_INLINE_TERMS_MAX`]).
    fn new(
        searcher: Searcher,
        fields: SchemaFields,
        previous: Option<&IdLookup>,
    ) -> Result<IdLookup> {
        let mut to_build = Vec::new();
        let mut segments = Vec::with_capacity(searcher.segment_readers().len());
        for segment in searcher.segment_readers() {
            let fast = segment.fast_fields();
            let inverted = segment.inverted_index(fields.id)?;
            let known = previous.and_then(|previous| previous.filters.0.get(&segment.segment_id()));
            let ids = match known {
                Some(ids) => Arc::clone(ids),
                None => {
                    let ids = Arc::new(OnceLock::new());
                    to_build.push((Arc::clone(&inverted), Arc::clone(&ids)));
                    ids
                }
            };
            segments.push(SegmentLookup {
                segment_id: segment.segment_id(),
                inverted,
                alive: segment.alive_bitset().cloned(),
                version: fast.u64("_version")?,
                seq_no: fast.u64("_seq_no")?,
                deleted: fast.bool("_deleted")?,
                ids,
            });
        }
        let (inline, large): (Vec<_>, Vec<_>) = to_build
            .into_iter()
            .partition(|(inverted, _)| inverted.terms().num_terms() <= ID_FILTER_INLINE_TERMS_MAX);
        for (inverted, ids) in inline {
            build_id_filter(&inverted, &ids);
        }
        if !large.is_empty() {
            let spawned = std::thread::Builder::new()
                .name("sluice-id-filter".into())
                .spawn(move || {
                    for (inverted, ids) in large {
                        build_id_filter(&inverted, &ids);
                    }
                });
            if let Err(error) = spawned {
                tracing::warn!(%error, "no thread for the id filters of new segments; their lookups read the term dictionary");
            }
        }
        let filters = Arc::new(SegmentFilters(
            segments
                .iter()
                .map(|segment| (segment.segment_id, Arc::clone(&segment.ids)))
                .collect(),
        ));
        Ok(IdLookup {
            searcher,
            fields,
            segments,
            filters,
        })
    }

    fn find(&self, id: &str, with_source: bool) -> Result<Option<Found>> {
        let term = Term::from_field_text(self.fields.id, id);
        for (segment_ord, segment) in self.segments.iter().enumerate() {
            if refuses(&segment.ids, id.as_bytes()) {
                continue;
            }
            let postings = segment
                .inverted
                .read_postings(&term, IndexRecordOption::Basic)
                .map_err(|e| SearchError::Corrupt {
                    what: "_id postings".into(),
                    reason: e.to_string(),
                })?;
            let Some(mut postings) = postings else {
                continue;
            };
            let mut doc = postings.doc();
            while doc != TERMINATED {
                // Hidden documents of nested objects carry the `_id` of their document but no
                // `_version`: the document is the one with a version.
                if segment.alive.as_ref().is_none_or(|bits| bits.is_alive(doc))
                    && let Some(version) = segment.version.first(doc)
                {
                    let seq_no = segment.seq_no.first(doc).unwrap_or(0);
                    let deleted = segment.deleted.first(doc).unwrap_or(false);
                    let source = if with_source && !deleted {
                        self.stored_source(DocAddress::new(segment_ord as u32, doc))?
                    } else {
                        None
                    };
                    return Ok(Some(Found {
                        current: Current {
                            version,
                            seq_no,
                            deleted,
                        },
                        source,
                    }));
                }
                doc = postings.advance();
            }
        }
        Ok(None)
    }

    /// The stored `_source`, `None` when the index does not store it.
    fn stored_source(&self, address: DocAddress) -> Result<Option<Arc<[u8]>>> {
        let document: TantivyDocument = self.searcher.doc(address)?;
        Ok(document
            .get_first(self.fields.source)
            .and_then(|v| v.as_bytes())
            .map(Arc::from))
    }
}

/// The delete of the documents holding one `_id` (the replaced version, and its nested
/// objects' hidden documents), which tantivy resolves against every segment at the next
/// commit, and again against each segment a merge writes. A term delete reads a block of the
/// `_id` dictionary of every segment; this one first asks the id filters of the searcher's
/// segments as they were at the write (`filters`), and reads the dictionary only of the segments
/// they do not refuse and of the segments they do not know (flushed or merged since).
#[derive(Clone)]
struct IdDeleteQuery {
    term: Term,
    filters: Arc<SegmentFilters>,
}

impl std::fmt::Debug for IdDeleteQuery {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("IdDeleteQuery")
            .field("term", &self.term)
            .finish_non_exhaustive()
    }
}

impl tantivy::query::Query for IdDeleteQuery {
    fn weight(
        &self,
        enable_scoring: tantivy::query::EnableScoring<'_>,
    ) -> tantivy::Result<Box<dyn tantivy::query::Weight>> {
        Ok(Box::new(IdDeleteWeight {
            inner: TermQuery::new(self.term.clone(), IndexRecordOption::Basic)
                .weight(enable_scoring)?,
            id: self.term.serialized_value_bytes().to_vec(),
            filters: Arc::clone(&self.filters),
        }))
    }
}

struct IdDeleteWeight {
    inner: Box<dyn tantivy::query::Weight>,
    id: Vec<u8>,
    filters: Arc<SegmentFilters>,
}

impl IdDeleteWeight {
    fn excludes(&self, reader: &tantivy::SegmentReader) -> bool {
        self.filters.excludes(reader.segment_id(), &self.id)
    }
}

impl tantivy::query::Weight for IdDeleteWeight {
    fn scorer(
        &self,
        reader: &tantivy::SegmentReader,
        boost: tantivy::Score,
    ) -> tantivy::Result<Box<dyn tantivy::query::Scorer>> {
        if self.excludes(reader) {
            return Ok(Box::new(tantivy::query::EmptyScorer));
        }
        self.inner.scorer(reader, boost)
    }

    fn explain(
        &self,
        reader: &tantivy::SegmentReader,
        doc: tantivy::DocId,
    ) -> tantivy::Result<tantivy::query::Explanation> {
        self.inner.explain(reader, doc)
    }

    fn for_each_no_score(
        &self,
        reader: &tantivy::SegmentReader,
        callback: &mut dyn FnMut(&[tantivy::DocId]),
    ) -> tantivy::Result<()> {
        if self.excludes(reader) {
            return Ok(());
        }
        self.inner.for_each_no_score(reader, callback)
    }
}

/// Fills `ids` with the filter of the `_id` terms of one segment; on a read error leaves it
/// empty, so that lookups keep reading the dictionary.
fn build_id_filter(inverted: &tantivy::InvertedIndexReader, ids: &OnceLock<IdFilter>) {
    let terms = inverted.terms();
    let built = terms.stream().map(|mut stream| {
        let mut filter = IdFilter::new(terms.num_terms());
        while stream.advance() {
            filter.insert(stream.key());
        }
        filter
    });
    match built {
        Ok(filter) => {
            let _ = ids.set(filter);
        }
        Err(error) => {
            tracing::warn!(%error, "reading a segment's ids for its filter failed; its lookups read the term dictionary");
        }
    }
}

/// One document or tombstone handed to tantivy.
struct TantivyEntry<'a> {
    id: &'a str,
    version: u64,
    seq_no: u64,
    /// `None` for a tombstone.
    source: Option<&'a [u8]>,
    entries: Vec<(String, crate::mapping::IndexValue)>,
    /// The document's nested objects in block order, written just before it.
    nested: Vec<NestedDocument>,
    /// Whether tantivy may already hold a document with this id.
    replaces: bool,
}

struct Found {
    current: Current,
    source: Option<Arc<[u8]>>,
}

pub struct Index {
    /// The format this index was created with (`INDEX_META_FORMAT_VERSION` of its build).
    format: u64,
    name: String,
    uuid: String,
    directory: PathBuf,
    creation_date_ms: u64,
    settings: RwLock<IndexSettings>,
    mappings: RwLock<Arc<Mappings>>,
    fields: SchemaFields,
    /// `docCount` of the text slots per segment, for BM25 per field.
    doc_counts: Arc<NormDocCounts>,
    /// tantivy's default analyzer, which format 1 indices used for all their text.
    legacy_analyzer: Option<TextAnalyzer>,
    reader: IndexReader,
    state: Mutex<WriteState>,
    translog: Translog,
    /// Highest sequence number visible to searches, and its waiters (`refresh=wait_for`).
    refreshed_seq_no: Mutex<Option<u64>>,
    refreshed: Condvar,
    closed: AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Writes `bytes` to `path` so that a crash leaves the old or the new content, never a mix.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let temporary = path.with_extension("tmp");
    let mut file = fs::File::create(&temporary).map_err(|e| SearchError::io(&temporary, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| SearchError::io(&temporary, e))?;
    fs::rename(&temporary, path).map_err(|e| SearchError::io(path, e))?;
    if let Some(parent) = path.parent() {
        sync_directory(parent)?;
    }
    Ok(())
}

fn directory_size(path: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => directory_size(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Merges `patch` into `target` as `_update` does: objects recursively, anything else replaced.
fn deep_merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                match target.get_mut(key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        deep_merge(existing, value)
                    }
                    _ => {
                        target.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

impl Index {
    /// Creates a new, empty index in `directory`.
    pub fn create(
        directory: &Path,
        name: &str,
        settings: IndexSettings,
        mappings: Mappings,
    ) -> Result<Index> {
        Index::create_with_keyring(directory, name, settings, mappings, None)
    }

    /// [`Index::create`]; with a keyring, its translog is encrypted.
    pub fn create_with_keyring(
        directory: &Path,
        name: &str,
        settings: IndexSettings,
        mappings: Mappings,
        keyring: Option<Arc<sluice_seal::Keyring>>,
    ) -> Result<Index> {
        fs::create_dir_all(directory.join("tantivy")).map_err(|e| SearchError::io(directory, e))?;
        let schema = build_schema();
        let mut mappings = mappings;
        mappings.assign_text_slots(TEXT_SLOTS);
        let mmap =
            MmapDirectory::open(directory.join("tantivy")).map_err(|e| SearchError::Corrupt {
                what: directory.display().to_string(),
                reason: e.to_string(),
            })?;
        tantivy::Index::create(mmap, schema, tantivy::IndexSettings::default())?;
        let meta = json!({
            "format_version": INDEX_META_FORMAT_VERSION,
            "name": name,
            "uuid": ids::new_uuid(),
            "creation_date_ms": now_ms(),
            "settings": Value::Object(settings.flat.clone()),
            "mappings": mappings.to_json(),
            "text_slots": mappings.text_slots,
        });
        write_atomically(&directory.join("index.json"), meta.to_string().as_bytes())?;
        if let Some(parent) = directory.parent() {
            sync_directory(parent)?;
        }
        Index::open_with_keyring(directory, keyring)
    }

    /// Opens the index in `directory`, replaying its translog.
    pub fn open(directory: &Path) -> Result<Index> {
        Index::open_with_keyring(directory, None)
    }

    /// [`Index::open`]; with a keyring, its translog is encrypted from now on (and generations
    /// written encrypted open).
    pub fn open_with_keyring(
        directory: &Path,
        keyring: Option<Arc<sluice_seal::Keyring>>,
    ) -> Result<Index> {
        let meta_path = directory.join("index.json");
        let meta_bytes = fs::read(&meta_path).map_err(|e| SearchError::io(&meta_path, e))?;
        let corrupt = |reason: String| SearchError::Corrupt {
            what: meta_path.display().to_string(),
            reason,
        };
        let meta: Value =
            serde_json::from_slice(&meta_bytes).map_err(|e| corrupt(e.to_string()))?;
        let format = meta
            .get("format_version")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if !(INDEX_META_FORMAT_VERSION_MIN..=INDEX_META_FORMAT_VERSION).contains(&format) {
            return Err(corrupt(format!(
                "unknown index.json format version {format}; this build opens versions {INDEX_META_FORMAT_VERSION_MIN} to {INDEX_META_FORMAT_VERSION}"
            )));
        }
        let text = |key: &str| {
            meta.get(key)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| corrupt(format!("missing {key}")))
        };
        let name = text("name")?;
        let uuid = text("uuid")?;
        let creation_date_ms = meta
            .get("creation_date_ms")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let settings = IndexSettings::from_json(meta.get("settings").unwrap_or(&Value::Null))
            .or_else(|_| IndexSettings::from_json(&Value::Object(Map::new())))?;
        let mut mappings = Mappings::from_json(meta.get("mappings").unwrap_or(&json!({})))?;
        if let Some(slots) = meta.get("text_slots") {
            mappings.text_slots = serde_json::from_value(slots.clone())
                .map_err(|e| corrupt(format!("text_slots: {e}")))?;
        }

        let mmap =
            MmapDirectory::open(directory.join("tantivy")).map_err(|e| corrupt(e.to_string()))?;
        let tantivy_index = tantivy::Index::open(mmap)?;
        tantivy_index.tokenizers().register(
            crate::analysis::TOKENIZER_NAME,
            tantivy::tokenizer::TextAnalyzer::from(crate::analysis::SluiceTokenizer::default()),
        );
        let fields = schema_fields(&tantivy_index.schema())?;
        if mappings
            .text_slots
            .values()
            .any(|slot| *slot >= fields.text_slots.len())
        {
            return Err(corrupt("a text slot beyond the schema's".into()));
        }
        let committed_seq_no: Option<u64> = tantivy_index
            .load_metas()?
            .payload
            .as_deref()
            .and_then(|payload| serde_json::from_str::<Value>(payload).ok())
            .and_then(|payload| payload.get("max_seq_no").and_then(Value::as_u64));
        let writer: IndexWriter =
            tantivy_index.writer_with_num_threads(INDEXING_THREADS, INDEXING_MEMORY_BYTES)?;
        let reader = tantivy_index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let (translog, operations) = Translog::open_with(&directory.join("translog"), keyring)?;

        let id_lookup = Arc::new(IdLookup::new(reader.searcher(), fields.clone(), None)?);
        let index = Index {
            format,
            name,
            uuid,
            directory: directory.to_path_buf(),
            creation_date_ms,
            settings: RwLock::new(settings),
            mappings: RwLock::new(Arc::new(mappings)),
            legacy_analyzer: tantivy_index.tokenizers().get(LEGACY_TEXT_TOKENIZER),
            fields,
            doc_counts: Arc::new(NormDocCounts::default()),
            reader,
            state: Mutex::new(WriteState {
                writer,
                live: HashMap::new(),
                live_bytes: 0,
                next_seq_no: committed_seq_no.map_or(0, |s| s + 1),
                dirty: false,
                last_refresh: Instant::now(),
                id_lookup,
            }),
            translog,
            refreshed_seq_no: Mutex::new(committed_seq_no),
            refreshed: Condvar::new(),
            closed: AtomicBool::new(false),
        };
        let replayed = index.replay(operations, committed_seq_no)?;
        if replayed > 0 {
            tracing::info!(index = %index.name, replayed, "replayed translog");
        }
        // Commit what was replayed (and roll past recovered generations) before taking writes.
        lock(&index.state).dirty = true;
        index.refresh()?;
        Ok(index)
    }

    fn replay(&self, operations: Vec<Operation>, committed_seq_no: Option<u64>) -> Result<usize> {
        let mut state = lock(&self.state);
        let mappings = self.mappings();
        let mut replayed = 0;
        for operation in operations {
            if committed_seq_no.is_some_and(|committed| operation.seq_no() <= committed) {
                continue;
            }
            state.next_seq_no = state.next_seq_no.max(operation.seq_no() + 1);
            match operation {
                Operation::Index {
                    seq_no,
                    version,
                    id,
                    source,
                } => {
                    let entries = serde_json::from_slice::<Value>(&source)
                        .ok()
                        .and_then(|document| {
                            mappings
                                .parse_document_limited(&id, &document, usize::MAX)
                                .ok()
                        })
                        .map(|parsed| (parsed.entries, parsed.nested))
                        .unwrap_or_else(|| {
                            tracing::error!(index = %self.name, id, "replayed document no longer fits its mapping; kept unsearchable");
                            (Vec::new(), Vec::new())
                        });
                    // Replayed operations may overwrite committed documents: always replace.
                    self.add_to_tantivy(
                        &state,
                        TantivyEntry {
                            id: &id,
                            version,
                            seq_no,
                            source: Some(&source),
                            entries: entries.0,
                            nested: entries.1,
                            replaces: true,
                        },
                    )?;
                }
                Operation::Delete {
                    seq_no,
                    version,
                    id,
                } => {
                    self.add_to_tantivy(
                        &state,
                        TantivyEntry {
                            id: &id,
                            version,
                            seq_no,
                            source: None,
                            entries: Vec::new(),
                            nested: Vec::new(),
                            replaces: true,
                        },
                    )?;
                }
            }
            replayed += 1;
        }
        Ok(replayed)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn uuid(&self) -> &str {
        &self.uuid
    }

    pub fn creation_date_ms(&self) -> u64 {
        self.creation_date_ms
    }

    pub fn settings(&self) -> IndexSettings {
        self.settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn mappings(&self) -> Arc<Mappings> {
        self.mappings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn directory(&self) -> &Path {
        &self.directory
    }

    fn persist_meta(&self, settings: &IndexSettings, mappings: &Mappings) -> Result<()> {
        let meta = json!({
            "format_version": self.format,
            "name": self.name,
            "uuid": self.uuid,
            "creation_date_ms": self.creation_date_ms,
            "settings": Value::Object(settings.flat.clone()),
            "mappings": mappings.to_json(),
            "text_slots": mappings.text_slots,
        });
        write_atomically(
            &self.directory.join("index.json"),
            meta.to_string().as_bytes(),
        )
    }

    /// `PUT /index/_mapping`.
    pub fn put_mapping(&self, update: &Mappings) -> Result<()> {
        let _state = lock(&self.state);
        let mut merged = self.mappings().merged_with(update)?;
        self.check_nested_supported(&merged)?;
        merged.assign_text_slots(self.fields.text_slots.len());
        self.persist_meta(&self.settings(), &merged)?;
        *self.mappings.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(merged);
        Ok(())
    }

    /// `PUT /index/_settings`.
    pub fn put_settings(&self, update: &Value) -> Result<()> {
        let _state = lock(&self.state);
        let mut settings = self.settings();
        settings.update(update, false)?;
        self.persist_meta(&settings, &self.mappings())?;
        *self.settings.write().unwrap_or_else(|p| p.into_inner()) = settings;
        Ok(())
    }

    /// Indices of formats 1 and 2 have no `_nested` field, so they cannot hold nested objects.
    fn check_nested_supported(&self, mappings: &Mappings) -> Result<()> {
        if self.fields.nested.is_none()
            && let Some(path) = mappings.nested_paths().first()
        {
            return Err(SearchError::illegal(format!(
                "index [{}] was created in format {} before Sluice supported [nested] fields; reindex it into a new index to map [{path}] as nested",
                self.name, self.format
            )));
        }
        Ok(())
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(SearchError::IndexNotFound {
                index: self.name.clone(),
            });
        }
        Ok(())
    }

    /// Applies `requests` in order and returns once every accepted one is durable. One request
    /// failing never fails the others.
    pub fn write(&self, requests: Vec<WriteRequest>) -> Vec<Result<WriteOutcome>> {
        let mut outcomes = Vec::with_capacity(requests.len());
        let mut durable_end = 0;
        {
            let mut state = lock(&self.state);
            // Checked again under the lock `close` takes: a write that raced the index's
            // deletion is refused, never acknowledged into files about to be removed.
            if self.check_open().is_err() {
                return requests
                    .iter()
                    .map(|_| {
                        Err(SearchError::IndexNotFound {
                            index: self.name.clone(),
                        })
                    })
                    .collect();
            }
            for request in requests {
                let outcome = self.apply(&mut state, request).map(|(outcome, end)| {
                    durable_end = durable_end.max(end);
                    outcome
                });
                outcomes.push(outcome);
            }
            if state.live_bytes > LIVE_MAP_BYTES_MAX
                && let Err(error) = self.refresh_locked(&mut state)
            {
                tracing::error!(index = %self.name, %error, "forced refresh failed");
            }
        }
        if durable_end > 0
            && let Err(error) = self.translog.sync_to(durable_end)
        {
            let reason = error.to_string();
            return outcomes
                .into_iter()
                .map(|o| {
                    o.and_then(|_| {
                        Err(SearchError::Poisoned {
                            index: self.name.clone(),
                            reason: reason.clone(),
                        })
                    })
                })
                .collect();
        }
        outcomes
    }

    /// Applies one request under the write lock; returns its outcome and the translog offset
    /// that must be durable before it is acknowledged (0 for none).
    fn apply(&self, state: &mut WriteState, request: WriteRequest) -> Result<(WriteOutcome, u64)> {
        match request {
            WriteRequest::Index {
                id,
                source,
                document,
                condition,
            } => {
                let auto_id = id.is_none();
                let id = match id {
                    Some(id) => validate_id(id)?,
                    None => ids::new_document_id(),
                };
                // A generated id is new by construction: no need to look it up.
                let found = if auto_id {
                    None
                } else {
                    self.lookup(state, &id, false)?
                };
                self.index_document(
                    state,
                    id,
                    source,
                    &document,
                    condition,
                    found.map(|f| f.current),
                )
            }
            WriteRequest::Delete { id, condition } => {
                let id = validate_id(id)?;
                let found = self.lookup(state, &id, false)?;
                let current = found.map(|f| f.current);
                let version = resolve(&id, current, condition)
                    .map_err(|reason| self.conflict(&id, reason))?;
                self.record_write(state, id, version, current, None, Default::default())
            }
            WriteRequest::Update(update) => self.update(state, update),
        }
    }

    fn update(&self, state: &mut WriteState, update: UpdateRequest) -> Result<(WriteOutcome, u64)> {
        let id = validate_id(update.id)?;
        let found = self.lookup(state, &id, true)?;
        let live = found.as_ref().filter(|f| !f.current.deleted);
        let Some(live) = live else {
            // A missing document is missing whatever `if_seq_no` says (Elasticsearch answers
            // 404, not a conflict): only an upsert creates it.
            let document = match (update.upsert, update.doc, &update.script) {
                (upsert, _, Some(script)) if script.scripted_upsert => {
                    let start = upsert.unwrap_or_else(|| Value::Object(Default::default()));
                    match script.run(&self.name, &id, None, &start, "create")? {
                        ScriptOutcome::Index(document) => document,
                        // A scripted upsert that deletes or does nothing leaves nothing.
                        ScriptOutcome::Noop | ScriptOutcome::Delete => {
                            let outcome = WriteOutcome {
                                id,
                                version: found.as_ref().map_or(0, |f| f.current.version),
                                seq_no: found.as_ref().map_or(0, |f| f.current.seq_no),
                                primary_term: PRIMARY_TERM,
                                result: WriteResult::Noop,
                                source: None,
                            };
                            return Ok((outcome, 0));
                        }
                    }
                }
                (Some(upsert), _, _) => upsert,
                (None, Some(doc), None) if update.doc_as_upsert => doc,
                _ => {
                    return Err(SearchError::DocumentMissing {
                        index: self.name.clone(),
                        id,
                    });
                }
            };
            let source: Arc<[u8]> = serde_json::to_vec(&document)
                .map_err(|e| SearchError::illegal(e.to_string()))?
                .into();
            return self
                .index_document(
                    state,
                    id,
                    source.clone(),
                    &document,
                    Condition::None,
                    found.map(|f| f.current),
                )
                .map(|(outcome, end)| (outcome.with_source(source), end));
        };
        let current = live.current;
        if let Condition::IfSeqNo { .. } = update.condition {
            resolve(&id, Some(current), update.condition)
                .map_err(|reason| self.conflict(&id, reason))?;
        }
        if update.doc.is_none() && update.script.is_none() {
            return Err(SearchError::Validation {
                reason: "script or doc is missing".into(),
            });
        }
        let existing_source = match &live.source {
            Some(source) if self.mappings().source_enabled() => source.clone(),
            _ => {
                return Err(SearchError::DocumentSourceMissing {
                    index: self.name.clone(),
                    id,
                });
            }
        };
        let existing: Value =
            serde_json::from_slice(&existing_source).map_err(|e| SearchError::Corrupt {
                what: format!("_source of [{id}]"),
                reason: e.to_string(),
            })?;
        let noop = |source| WriteOutcome {
            id: id.clone(),
            version: current.version,
            seq_no: current.seq_no,
            primary_term: PRIMARY_TERM,
            result: WriteResult::Noop,
            source: Some(source),
        };
        let merged = match (&update.script, update.doc) {
            (Some(script), _) => {
                match script.run(&self.name, &id, Some(current.version), &existing, "index")? {
                    ScriptOutcome::Index(document) => document,
                    ScriptOutcome::Noop => return Ok((noop(existing_source), 0)),
                    ScriptOutcome::Delete => {
                        let version = resolve(&id, Some(current), Condition::None)
                            .map_err(|reason| self.conflict(&id, reason))?;
                        return self.record_write(
                            state,
                            id,
                            version,
                            Some(current),
                            None,
                            Default::default(),
                        );
                    }
                }
            }
            (None, Some(doc)) => {
                let mut merged = existing.clone();
                deep_merge(&mut merged, &doc);
                if update.detect_noop && merged == existing {
                    return Ok((noop(existing_source), 0));
                }
                merged
            }
            (None, None) => existing,
        };
        let source: Arc<[u8]> = serde_json::to_vec(&merged)
            .map_err(|e| SearchError::illegal(e.to_string()))?
            .into();
        self.index_document(
            state,
            id,
            source.clone(),
            &merged,
            update.condition,
            Some(current),
        )
        .map(|(outcome, end)| (outcome.with_source(source), end))
    }

    fn index_document(
        &self,
        state: &mut WriteState,
        id: String,
        source: Arc<[u8]>,
        document: &Value,
        condition: Condition,
        current: Option<Current>,
    ) -> Result<(WriteOutcome, u64)> {
        let mappings = self.mappings();
        let nested_objects_max = self.settings().nested_objects_max()?;
        let parsed = mappings.parse_document_limited(&id, document, nested_objects_max)?;
        let version =
            resolve(&id, current, condition).map_err(|reason| self.conflict(&id, reason))?;
        if let Some(mut updated) = parsed.mapping_update {
            updated.assign_text_slots(self.fields.text_slots.len());
            // The new mapping is durable before any write that relies on it.
            self.persist_meta(&self.settings(), &updated)?;
            *self.mappings.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(updated);
        }
        self.record_write(
            state,
            id,
            version,
            current,
            Some(source),
            (parsed.entries, parsed.nested),
        )
    }

    /// Records a decided write — a document, or a tombstone when `source` is `None` — in the
    /// translog buffer, in tantivy and in the live map. Returns its outcome and the translog
    /// offset that must be durable before it is acknowledged.
    fn record_write(
        &self,
        state: &mut WriteState,
        id: String,
        version: u64,
        current: Option<Current>,
        source: Option<Arc<[u8]>>,
        (entries, nested): (
            Vec<(String, crate::mapping::IndexValue)>,
            Vec<NestedDocument>,
        ),
    ) -> Result<(WriteOutcome, u64)> {
        let seq_no = state.next_seq_no;
        let operation = match &source {
            Some(source) => Operation::Index {
                seq_no,
                version,
                id: id.clone(),
                source: source.to_vec(),
            },
            None => Operation::Delete {
                seq_no,
                version,
                id: id.clone(),
            },
        };
        let end = self.translog.append(&operation)?;
        state.next_seq_no += 1;
        self.add_to_tantivy(
            state,
            TantivyEntry {
                id: &id,
                version,
                seq_no,
                source: source.as_deref(),
                entries,
                nested,
                replaces: current.is_some(),
            },
        )?;
        let existed = current.is_some_and(|c| !c.deleted);
        let result = match (source.is_some(), existed) {
            (true, true) => WriteResult::Updated,
            (true, false) => WriteResult::Created,
            (false, true) => WriteResult::Deleted,
            (false, false) => WriteResult::NotFound,
        };
        state.live_bytes += id.len() + source.as_ref().map_or(0, |s| s.len());
        state.live.insert(
            id.clone(),
            LiveEntry {
                version,
                seq_no,
                source,
            },
        );
        state.dirty = true;
        let outcome = WriteOutcome {
            id,
            version,
            seq_no,
            primary_term: PRIMARY_TERM,
            result,
            source: None,
        };
        Ok((outcome, end))
    }

    fn conflict(&self, id: &str, reason: String) -> SearchError {
        SearchError::VersionConflict {
            index: self.name.clone(),
            id: id.to_string(),
            reason,
        }
    }

    /// Adds a document, or a tombstone when `source` is `None`, replacing whatever tantivy holds
    /// for the id when `replaces` says it may hold something.
    fn add_to_tantivy(&self, state: &WriteState, entry: TantivyEntry<'_>) -> Result<()> {
        let TantivyEntry {
            id,
            version,
            seq_no,
            source,
            entries,
            nested,
            replaces,
        } = entry;
        let fields = &self.fields;
        let mut operations = Vec::with_capacity(nested.len() + 1);
        // Under the write lock the live map and the searcher know every id tantivy holds, so a
        // write whose lookup found nothing (always so for generated ids) has nothing to replace.
        // Skipping the delete spares tantivy a delete-queue entry that every commit would resolve
        // against every segment. Hidden documents of nested objects carry their document's `_id`,
        // so the same delete takes them with it. It is queued before the adds, so that it takes
        // only what tantivy held before this write; no commit comes between the two, which both
        // run under the write lock.
        if replaces {
            state.writer.delete_query(Box::new(IdDeleteQuery {
                term: Term::from_field_text(fields.id, id),
                filters: Arc::clone(&state.id_lookup.filters),
            }))?;
        }
        let mut document = TantivyDocument::new();
        document.add_text(fields.id, id);
        document.add_u64(fields.version, version);
        document.add_u64(fields.seq_no, seq_no);
        match source {
            Some(source) => {
                let mappings = self.mappings();
                // An index that does not keep `_source` still indexes the document (and its
                // translog still holds it, for recovery), but does not store it.
                if mappings.source_enabled() {
                    document.add_bytes(fields.source, source);
                }
                // The block: nested objects first, in the order `parse_document` gave, then the
                // document, all in one operation group so that they are consecutive in one
                // segment (`nested.rs`).
                if let Some(nested_field) = fields.nested {
                    for object in nested {
                        let mut hidden = TantivyDocument::new();
                        hidden.add_text(fields.id, id);
                        hidden.add_text(nested_field, &object.path);
                        hidden.add_bytes(
                            fields.source,
                            crate::nested::identity_json(&object.identity)
                                .to_string()
                                .as_bytes(),
                        );
                        self.add_values(&mut hidden, &mappings, object.entries);
                        operations.push(UserOperation::Add(hidden));
                    }
                }
                self.add_values(&mut document, &mappings, entries);
            }
            None => document.add_bool(fields.deleted, true),
        }
        operations.push(UserOperation::Add(document));
        state.writer.run(operations)?;
        Ok(())
    }

    /// Adds a document's parsed values to the tantivy fields that hold them.
    fn add_values(
        &self,
        document: &mut TantivyDocument,
        mappings: &Mappings,
        entries: Vec<(String, crate::mapping::IndexValue)>,
    ) {
        let fields = &self.fields;
        let place = |path: &str| TextPlace {
            slot: mappings
                .text_slots
                .get(path)
                .and_then(|slot| fields.text_slots.get(*slot).copied()),
            analyzer: mappings
                .field(path)
                .map_or(Analyzer::Standard, |field| field.analyzer()),
        };
        let values = document_values(fields, entries, &place);
        for (slot, text) in values.slotted {
            document.add_text(slot, text);
        }
        if !values.shared_text.is_empty() {
            document.add_field_value(fields.text, &OwnedValue::Object(values.shared_text));
        }
        if !values.exact.is_empty() {
            document.add_field_value(fields.exact, &OwnedValue::Object(values.exact));
        }
    }

    /// What the index holds for `id`: the live map first, then the searcher.
    fn lookup(&self, state: &WriteState, id: &str, with_source: bool) -> Result<Option<Found>> {
        if let Some(entry) = state.live.get(id) {
            return Ok(Some(Found {
                current: Current {
                    version: entry.version,
                    seq_no: entry.seq_no,
                    deleted: entry.source.is_none(),
                },
                source: entry.source.clone(),
            }));
        }
        state.id_lookup.find(id, with_source)
    }

    /// `GET /index/_doc/id`, real time: it sees writes before they are refreshed.
    pub fn get(&self, id: &str) -> Result<Option<StoredDocument>> {
        self.check_open()?;
        let (live, searcher) = {
            let state = lock(&self.state);
            (state.live.get(id).cloned(), state.id_lookup.clone())
        };
        let found = match live {
            Some(entry) => Some(Found {
                current: Current {
                    version: entry.version,
                    seq_no: entry.seq_no,
                    deleted: entry.source.is_none(),
                },
                source: entry.source,
            }),
            None => searcher.find(id, true)?,
        };
        Ok(self.stored_document(found))
    }

    /// `GET /index/_doc/id?realtime=false`: what the last refresh made visible, as searches see
    /// it; writes since then are not seen.
    pub fn get_refreshed(&self, id: &str) -> Result<Option<StoredDocument>> {
        self.check_open()?;
        let searcher = lock(&self.state).id_lookup.clone();
        let found = searcher.find(id, true)?;
        Ok(self.stored_document(found))
    }

    fn stored_document(&self, found: Option<Found>) -> Option<StoredDocument> {
        let found = found.filter(|f| !f.current.deleted)?;
        let source = if self.mappings().source_enabled() {
            found.source
        } else {
            None
        };
        Some(StoredDocument {
            version: found.current.version,
            seq_no: found.current.seq_no,
            primary_term: PRIMARY_TERM,
            source,
        })
    }

    fn to_tantivy(
        &self,
        query: &Query,
        searcher: &Searcher,
    ) -> Result<Box<dyn tantivy::query::Query>> {
        self.compile_under(query, searcher, &self.read_view(query).mappings)
    }

    /// What a read of `query` sees, worked out once per read (finding the restriction walks
    /// the query tree): the mapping it runs under — the index's, or what the reader's
    /// field-level security leaves of it (`field_security.rs`) — and the field filter its
    /// sources go through.
    fn read_view<'q>(&self, query: &'q Query) -> ReadView<'q> {
        match query.restriction() {
            Some(restricted) => ReadView {
                mappings: restricted.mappings.clone(),
                fields: Some(restricted.fields.as_ref()),
            },
            None => ReadView {
                mappings: self.mappings(),
                fields: None,
            },
        }
    }

    /// Compiles a part of a read (a named clause, an aggregation's filter) under the read's
    /// mapping.
    fn compile_under(
        &self,
        query: &Query,
        searcher: &Searcher,
        mappings: &Mappings,
    ) -> Result<Box<dyn tantivy::query::Query>> {
        let compiler = Compiler {
            fields: &self.fields,
            mappings,
            searcher,
            doc_counts: &self.doc_counts,
            legacy_analyzer: self.legacy_analyzer.as_ref(),
            now_ms: now_ms() as i64,
            nested_scope: None,
        };
        compiler.compile(query)
    }

    /// `POST /_analyze` on this index: `field` names the analyzer of a mapped field (its search
    /// analyzer when `search` is set), else `analyzer` applies, else the `standard` one.
    pub fn field_analyzer(&self, field: &str) -> Option<Analyzer> {
        let mappings = self.mappings();
        let mapping = mappings.field(field)?;
        match mapping.field_type {
            FieldType::Text => Some(mapping.analyzer()),
            FieldType::Object | FieldType::Nested => None,
            _ => Some(Analyzer::Keyword),
        }
    }

    /// Wraps a query so that tombstones and the hidden documents of nested objects never match:
    /// every top-level search, count, aggregation and scan sees documents only.
    fn without_tombstones(&self, query: Box<dyn tantivy::query::Query>) -> BooleanQuery {
        let tombstone = Term::from_field_bool(self.fields.deleted, true);
        let mut clauses: Vec<(Occur, Box<dyn tantivy::query::Query>)> = vec![
            (Occur::Must, query),
            (
                Occur::MustNot,
                Box::new(TermQuery::new(tombstone, IndexRecordOption::Basic)),
            ),
        ];
        if let Some(nested_field) = self.fields.nested {
            let paths = self.mappings().nested_paths();
            if !paths.is_empty() {
                let hidden = paths
                    .iter()
                    .map(|path| Term::from_field_text(nested_field, path));
                clauses.push((Occur::MustNot, Box::new(TermSetQuery::new(hidden))));
            }
        }
        BooleanQuery::new(clauses)
    }

    /// Runs `query` on the last refreshed state and returns hits `from..from + size` by score.
    pub fn search(&self, query: &Query, from: usize, size: usize) -> Result<SearchHits> {
        self.search_page(&SearchPage {
            from,
            ..SearchPage::new(query, size)
        })
    }

    /// Runs one page of a search on the last refreshed state: hits `from..from + size` by
    /// score, or by `sort` (read from the `_fields` columns) when it has keys, after
    /// `search_after` when given.
    pub fn search_page(&self, page: &SearchPage<'_>) -> Result<SearchHits> {
        self.check_open()?;
        let window = self.settings().max_result_window;
        let (from, size) = (page.from, page.size);
        if from.saturating_add(size) as u64 > window {
            return Err(SearchError::illegal(format!(
                "Result window is too large, from + size must be less than or equal to: [{window}] but was [{}]. See the scroll api for a more efficient way to request large data sets. This limit can be set by changing the [index.max_result_window] index level setting.",
                from.saturating_add(size)
            )));
        }
        let searcher = match page.snapshot {
            Some(snapshot) => snapshot.searcher.clone(),
            None => self.reader.searcher(),
        };
        let named = page.query.names();
        let view = self.read_view(page.query);
        let query =
            self.without_tombstones(self.compile_under(page.query, &searcher, &view.mappings)?);
        if !page.sort.is_empty()
            || page.search_after.is_some()
            || page.bounds().is_set()
            || page.collapse.is_some()
        {
            return self.search_sorted(page, &searcher, &query, named, &view);
        }
        if size == 0 {
            let total = searcher.search(&query, &Count)? as u64;
            return Ok(SearchHits {
                total,
                max_score: None,
                hits: Vec::new(),
                scored: true,
                terminated_early: false,
                timed_out: false,
            });
        }
        let (top, total) = searcher.search(
            &query,
            &(
                TopDocs::with_limit(size).and_offset(from).order_by_score(),
                Count,
            ),
        )?;
        let named_weights = self.named_weights(named, &searcher, &view.mappings)?;
        let inner = self.inner_hit_weights(page.query, &searcher, &view.mappings)?;
        let restriction = view.fields;
        let mut hits = Vec::with_capacity(top.len());
        let explain = page.explain.then_some(&query);
        for (score, address) in top {
            hits.push(self.load_hit(
                &searcher,
                address,
                score,
                &named_weights,
                &inner,
                Vec::new(),
                explain,
                restriction,
            )?);
        }
        let max_score = hits.iter().map(|h| h.score).reduce(f32::max);
        Ok(SearchHits {
            total: total as u64,
            max_score,
            hits,
            scored: true,
            terminated_early: false,
            timed_out: false,
        })
    }

    /// A page sorted by `page.sort` (`_score` descending when it only has `search_after`).
    fn search_sorted(
        &self,
        page: &SearchPage<'_>,
        searcher: &Searcher,
        query: &BooleanQuery,
        named: Vec<(&str, Query)>,
        view: &ReadView<'_>,
    ) -> Result<SearchHits> {
        let by_score = [SortKey::Score(SortOrder::Desc)];
        let keys = if page.sort.is_empty() {
            &by_score[..]
        } else {
            page.sort
        };
        let mappings = &view.mappings;
        let sort = IndexSort::new(
            keys,
            page.search_after,
            mappings,
            &self.name,
            page.shard_index,
        )?;
        let sort = match page.collapse {
            Some(field) => sort.collapse_on(field, mappings, &self.name)?,
            None => sort,
        };
        let scored = page.track_scores
            || crate::sort::sorts_by_score(keys)
            || page.min_score.is_some()
            || page.explain;
        // Only `_doc` and `_shard_doc` read the bases: other sorts skip ranking the segments.
        let by_doc = keys
            .iter()
            .any(|key| matches!(key, SortKey::Doc(_) | SortKey::ShardDoc(_)));
        let bases = if by_doc {
            doc_bases(searcher)
        } else {
            Vec::new()
        };
        let limit = page.from.saturating_add(page.size);
        let scoring = scored || crate::sort::sort_reads_scores(keys);
        let fruit =
            searcher.search(query, &sort.collector(limit, scoring, bases, page.bounds()))?;
        if let Some(reason) = fruit.collapse_error {
            return Err(SearchError::illegal(reason));
        }
        if let Some(failure) = fruit.script_error {
            return Err(SearchError::Script(Box::new(failure)));
        }
        let explain = page.explain.then_some(query);
        let named_weights = self.named_weights(named, searcher, mappings)?;
        let inner = self.inner_hit_weights(page.query, searcher, mappings)?;
        let restriction = view.fields;
        let mut hits = Vec::with_capacity(page.size);
        for kept in fruit.kept.into_iter().skip(page.from) {
            let mut hit = self.load_hit(
                searcher,
                kept.address,
                kept.score,
                &named_weights,
                &inner,
                kept.values,
                explain,
                restriction,
            )?;
            hit.collapse = kept.group;
            hits.push(hit);
        }
        Ok(SearchHits {
            total: fruit.total,
            max_score: if scored { fruit.max_score } else { None },
            hits,
            scored,
            terminated_early: fruit.terminated_early,
            timed_out: fruit.timed_out,
        })
    }

    fn named_weights(
        &self,
        named: Vec<(&str, Query)>,
        searcher: &Searcher,
        mappings: &Mappings,
    ) -> Result<Vec<(String, Box<dyn tantivy::query::Weight>)>> {
        let mut named_weights = Vec::with_capacity(named.len());
        for (name, named_query) in named {
            let compiled = self.compile_under(&named_query, searcher, mappings)?;
            named_weights.push((
                name.to_string(),
                compiled.weight(tantivy::query::EnableScoring::disabled_from_searcher(
                    searcher,
                ))?,
            ));
        }
        Ok(named_weights)
    }

    /// Reads one hit's stored fields, the named clauses it matches and its inner hits.
    #[allow(clippy::too_many_arguments)] // each is one thing a hit may show; a struct would only rename them
    fn load_hit(
        &self,
        searcher: &Searcher,
        address: DocAddress,
        score: f32,
        named_weights: &[(String, Box<dyn tantivy::query::Weight>)],
        inner: &[InnerHitWeight<'_>],
        sort: Vec<SortValue>,
        explain: Option<&BooleanQuery>,
        restriction: Option<&dyn crate::field_security::FieldFilter>,
    ) -> Result<Hit> {
        let explanation = match explain {
            Some(query) => Some(explanation_json(query.explain(searcher, address)?)),
            None => None,
        };
        let mut matched_queries = Vec::new();
        if !named_weights.is_empty() {
            let segment = searcher.segment_reader(address.segment_ord);
            for (name, weight) in named_weights {
                if weight_matches(weight.as_ref(), segment, address.doc_id)?
                    && !matched_queries.contains(name)
                {
                    matched_queries.push(name.clone());
                }
            }
        }
        let document: TantivyDocument = searcher.doc(address)?;
        let id = document
            .get_first(self.fields.id)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let version = document
            .get_first(self.fields.version)
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        let seq_no = document
            .get_first(self.fields.seq_no)
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        let mut source: Option<Arc<[u8]>> = document
            .get_first(self.fields.source)
            .and_then(|v| v.as_bytes())
            .map(Arc::from);
        if let (Some(filter), Some(bytes)) = (restriction, &source) {
            source = crate::field_security::filter_source(bytes, filter);
        }
        let mut inner_hits = Vec::with_capacity(inner.len());
        if !inner.is_empty() {
            let parsed: Value = source
                .as_deref()
                .and_then(|bytes| serde_json::from_slice(bytes).ok())
                .unwrap_or(Value::Null);
            for weight in inner {
                inner_hits.push(self.inner_hits_of(searcher, address, weight, &parsed)?);
            }
        }
        Ok(Hit {
            id,
            score,
            version,
            seq_no,
            source,
            matched_queries,
            sort,
            explanation,
            collapse: None,
            inner_hits,
        })
    }

    /// The weights of the inner queries of `nested` queries with `inner_hits`, scoring.
    fn inner_hit_weights<'q>(
        &self,
        query: &'q Query,
        searcher: &Searcher,
        mappings: &Mappings,
    ) -> Result<Vec<InnerHitWeight<'q>>> {
        let mut weights = Vec::new();
        for nested in query.inner_hits() {
            let compiler = Compiler {
                fields: &self.fields,
                mappings,
                searcher,
                doc_counts: &self.doc_counts,
                legacy_analyzer: self.legacy_analyzer.as_ref(),
                now_ms: now_ms() as i64,
                nested_scope: Some(&nested.path),
            };
            let compiled = compiler.compile(&nested.query)?;
            let mut named = Vec::new();
            for (name, clause) in nested.query.names() {
                let clause = compiler.compile(&clause)?;
                named.push((
                    name.to_string(),
                    clause.weight(tantivy::query::EnableScoring::disabled_from_searcher(
                        searcher,
                    ))?,
                ));
            }
            weights.push(InnerHitWeight {
                nested,
                weight: compiled.weight(tantivy::query::EnableScoring::enabled_from_searcher(
                    searcher,
                ))?,
                named,
            });
        }
        Ok(weights)
    }

    /// One hit's inner hits of one `nested` query: its matching nested objects, best first.
    fn inner_hits_of(
        &self,
        searcher: &Searcher,
        address: DocAddress,
        inner: &InnerHitWeight<'_>,
        source: &Value,
    ) -> Result<(String, InnerHitsResult)> {
        let nested = inner.nested;
        let Some(spec) = &nested.inner_hits else {
            return Ok((nested.path.clone(), InnerHitsResult::default()));
        };
        let mut children = match self.fields.nested {
            Some(nested_field) => crate::nested::matching_children(
                searcher.segment_reader(address.segment_ord),
                inner.weight.as_ref(),
                nested_field,
                &nested.path,
                None,
                address.doc_id,
            )?,
            None => Vec::new(),
        };
        children.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut result = InnerHitsResult {
            total: children.len() as u64,
            max_score: children.first().map(|(_, score)| *score),
            hits: Vec::new(),
        };
        for (doc, score) in children.into_iter().skip(spec.from).take(spec.size) {
            let hidden: TantivyDocument =
                searcher.doc(DocAddress::new(address.segment_ord, doc))?;
            let mut matched_queries = Vec::new();
            for (name, weight) in &inner.named {
                if weight_matches(
                    weight.as_ref(),
                    searcher.segment_reader(address.segment_ord),
                    doc,
                )? && !matched_queries.contains(name)
                {
                    matched_queries.push(name.clone());
                }
            }
            let identity: Value = hidden
                .get_first(self.fields.source)
                .and_then(|v| v.as_bytes())
                .and_then(|bytes| serde_json::from_slice(bytes).ok())
                .unwrap_or(Value::Null);
            result.hits.push(InnerHit {
                source: crate::nested::object_at(source, &identity),
                nested: identity,
                score,
                matched_queries,
            });
        }
        Ok((spec.name.clone(), result))
    }

    /// This index as of its last refresh, for searches that page through one unchanging view
    /// (points in time, scrolls): see [`SearchPage::snapshot`].
    pub fn searcher_snapshot(&self) -> Result<SearcherSnapshot> {
        self.check_open()?;
        Ok(SearcherSnapshot {
            searcher: self.reader.searcher(),
        })
    }

    /// Runs aggregations over the documents `query` matches on the last refreshed state; the
    /// partial results merge with other indices' in `aggs::aggregate`.
    pub(crate) fn aggregate_partials(
        &self,
        query: &Query,
        aggs: &[crate::aggs::Aggregation],
        budget: &crate::aggs::MemoryBudget,
    ) -> Result<crate::aggs::IndexPartials> {
        self.check_open()?;
        let view = self.read_view(query);
        let searcher = self.reader.searcher();
        let main = self.without_tombstones(self.compile_under(query, &searcher, &view.mappings)?);
        let all = self.without_tombstones(Box::new(tantivy::query::AllQuery));
        let compile = |part: &Query| self.compile_under(part, &searcher, &view.mappings);
        crate::aggs::collect_index(
            &searcher,
            &self.fields,
            &view.mappings,
            view.fields,
            &self.name,
            &main,
            &all,
            &compile,
            aggs,
            budget,
        )
    }

    /// Opens a scan of the documents `query` matches on the last refreshed state, for by-query
    /// operations: the scan keeps that searcher, so it reads one point in time however the
    /// index changes meanwhile, and each hit carries the `_seq_no` it had then.
    pub fn scan(&self, query: &Query) -> Result<Scan> {
        self.check_open()?;
        let searcher = self.reader.searcher();
        let query = self.without_tombstones(self.to_tantivy(query, &searcher)?);
        let total = searcher.search(&query, &Count)? as u64;
        let weight = query.weight(tantivy::query::EnableScoring::disabled_from_searcher(
            &searcher,
        ))?;
        Ok(Scan {
            searcher,
            weight,
            fields: self.fields.clone(),
            segment: 0,
            next_doc: 0,
            total,
        })
    }

    pub fn count(&self, query: &Query) -> Result<u64> {
        self.check_open()?;
        let searcher = self.reader.searcher();
        let query = self.without_tombstones(self.to_tantivy(query, &searcher)?);
        Ok(searcher.search(&query, &Count)? as u64)
    }

    /// Live documents, as `docs.count` shows them.
    pub fn docs_count(&self) -> u64 {
        self.count(&Query::match_all()).unwrap_or(0)
    }

    pub fn store_size_bytes(&self) -> u64 {
        directory_size(&self.directory)
    }

    /// Makes every write so far searchable and durable in tantivy.
    pub fn refresh(&self) -> Result<()> {
        let mut state = lock(&self.state);
        self.refresh_locked(&mut state)
    }

    fn refresh_locked(&self, state: &mut WriteState) -> Result<()> {
        state.last_refresh = Instant::now();
        if !state.dirty {
            return Ok(());
        }
        let max_seq_no = state.next_seq_no.checked_sub(1);
        let sealed = self.translog.roll()?;
        let mut prepared = state.writer.prepare_commit()?;
        prepared.set_payload(&json!({ "max_seq_no": max_seq_no }).to_string());
        prepared.commit()?;
        self.reader.reload()?;
        self.doc_counts.retain(&self.reader.searcher());
        state.id_lookup = Arc::new(IdLookup::new(
            self.reader.searcher(),
            self.fields.clone(),
            Some(&state.id_lookup),
        )?);
        state.live.clear();
        state.live_bytes = 0;
        state.dirty = false;
        self.translog.remove_through(sealed)?;
        *lock(&self.refreshed_seq_no) = max_seq_no;
        self.refreshed.notify_all();
        Ok(())
    }

    /// Refreshes when the refresh interval has passed since the last refresh and there are writes.
    pub fn refresh_if_due(&self) -> Result<()> {
        let Some(interval) = self.settings().refresh_interval else {
            return Ok(());
        };
        let mut state = lock(&self.state);
        if state.dirty && state.last_refresh.elapsed() >= interval {
            self.refresh_locked(&mut state)?;
        }
        Ok(())
    }

    /// `refresh=wait_for`: returns once `seq_no` is visible to searches.
    pub fn wait_for_refresh(&self, seq_no: u64) -> Result<()> {
        let Some(interval) = self.settings().refresh_interval else {
            return self.refresh();
        };
        let deadline = Instant::now() + interval * 2 + Duration::from_secs(1);
        let mut refreshed = lock(&self.refreshed_seq_no);
        while refreshed.is_none_or(|r| r < seq_no) {
            let now = Instant::now();
            if now >= deadline {
                drop(refreshed);
                return self.refresh();
            }
            refreshed = self
                .refreshed
                .wait_timeout(refreshed, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        Ok(())
    }

    /// Commits what is pending and refuses further work; called on shutdown and delete.
    pub fn close(&self, commit: bool) -> Result<()> {
        if commit && !self.translog.is_poisoned() {
            self.refresh()?;
        }
        // Under the writers' lock: a write applied before this is durable before its answer,
        // and every later one sees the index closed.
        let _state = lock(&self.state);
        self.closed.store(true, Ordering::Release);
        Ok(())
    }
}

/// A score's explanation in Elasticsearch's shape: every node with `value`, `description` and
/// `details` (tantivy's notes on a node join its description).
fn explanation_json(explanation: tantivy::query::Explanation) -> Value {
    fn shape(node: Value) -> Value {
        let Value::Object(mut node) = node else {
            return node;
        };
        let mut description = node
            .remove("description")
            .and_then(|d| d.as_str().map(str::to_string))
            .unwrap_or_default();
        if let Some(Value::Array(context)) = node.remove("context") {
            for note in context.iter().filter_map(Value::as_str) {
                description.push_str(", ");
                description.push_str(note);
            }
        }
        let details = match node.remove("details") {
            Some(Value::Array(details)) => details.into_iter().map(shape).collect(),
            _ => Vec::new(),
        };
        json!({
            "value": node.remove("value").unwrap_or(Value::Null),
            "description": description,
            "details": details,
        })
    }
    shape(serde_json::to_value(&explanation).unwrap_or(Value::Null))
}

fn validate_id(id: String) -> Result<String> {
    if id.is_empty() {
        return Err(SearchError::Validation {
            reason: "id is missing".into(),
        });
    }
    if id.len() > ID_BYTES_MAX {
        return Err(SearchError::Validation {
            reason: format!(
                "id [{id}] is too long, must be no longer than {ID_BYTES_MAX} bytes but was: {}",
                id.len()
            ),
        });
    }
    Ok(id)
}

/// The number `_doc` gives the first document of each segment (by segment ordinal): segments
/// ranked by their smallest `_seq_no`, so `_doc` is the order documents were indexed in, as
/// Lucene's segment order is, rather than the order of tantivy's random segment ids, which a
/// refresh reshuffles.
fn doc_bases(searcher: &tantivy::Searcher) -> Vec<u64> {
    let readers = searcher.segment_readers();
    let mut ranked: Vec<(u64, usize)> = readers
        .iter()
        .enumerate()
        .map(|(ordinal, segment)| {
            let first = segment
                .fast_fields()
                .u64("_seq_no")
                .map_or(u64::MAX, |column| column.min_value());
            (first, ordinal)
        })
        .collect();
    ranked.sort_unstable();
    let mut bases = vec![0u64; readers.len()];
    let mut base = 0u64;
    for (_, ordinal) in ranked {
        if let (Some(slot), Some(segment)) = (bases.get_mut(ordinal), readers.get(ordinal)) {
            *slot = base;
            base += u64::from(segment.max_doc());
        }
    }
    bases
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::Match;

    /// Writes an index of an older format under `dir/old` (its tantivy schema and its
    /// `index.json`), opens it, and writes `document` as id `1`.
    fn old_index(
        dir: &tempfile::TempDir,
        schema: tantivy::schema::Schema,
        meta: Value,
        document: Value,
    ) -> (PathBuf, Index) {
        let path = dir.path().join("old");
        fs::create_dir_all(path.join("tantivy")).unwrap();
        let mmap = MmapDirectory::open(path.join("tantivy")).unwrap();
        tantivy::Index::create(mmap, schema, tantivy::IndexSettings::default()).unwrap();
        fs::write(path.join("index.json"), meta.to_string()).unwrap();
        let index = Index::open(&path).unwrap();
        let outcome = index.write(vec![WriteRequest::Index {
            id: Some("1".into()),
            source: Arc::from(document.to_string().as_bytes()),
            document,
            condition: Condition::None,
        }]);
        assert!(outcome[0].is_ok());
        index.refresh().unwrap();
        (path, index)
    }

    /// A format 1 index (all text in `_text`, tokenized by tantivy's default tokenizer) as the
    /// builds before text slots wrote it: it opens, takes writes and answers queries.
    #[test]
    fn format_1_indices_still_open_and_work() {
        let dir = tempfile::tempdir().unwrap();
        let (path, index) = old_index(
            &dir,
            crate::schema::build_legacy_schema(),
            json!({"format_version": 1, "name": "old", "uuid": "u", "creation_date_ms": 0,
                   "settings": {}, "mappings": {}}),
            json!({"message": "Hello old World"}),
        );
        let query = Query::Match(Box::new(Match::new("message", "world")));
        assert_eq!(index.search(&query, 0, 10).unwrap().total, 1);
        let exists = Query::Exists {
            field: "message".into(),
            boost: 1.0,
        };
        assert_eq!(index.search(&exists, 0, 10).unwrap().total, 1);
        index.close(true).unwrap();
        // It stays format 1 (its schema has no text slots).
        let reread: Value =
            serde_json::from_slice(&fs::read(path.join("index.json")).unwrap()).unwrap();
        assert_eq!(reread["format_version"], 1);
    }

    #[test]
    fn format_2_indices_open_but_refuse_nested_fields() {
        let dir = tempfile::tempdir().unwrap();
        let (_, index) = old_index(
            &dir,
            crate::schema::build_format_2_schema(),
            json!({"format_version": 2, "name": "old", "uuid": "u", "creation_date_ms": 0,
                   "settings": {}, "mappings": {}, "text_slots": {}}),
            json!({"message": "Hello old World", "n": 1}),
        );
        assert_eq!(index.count(&Query::match_all()).unwrap(), 1);
        let nested =
            Mappings::from_json(&json!({"properties": {"c": {"type": "nested"}}})).unwrap();
        let error = index.put_mapping(&nested).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("reindex it into a new index to map [c] as nested"),
            "{error}"
        );
        assert_eq!(index.get("1").unwrap().unwrap().version, 1);
    }

    /// Index `ids`, each as `{"n": <its length>}`, and answer their outcomes.
    fn index_ids(index: &Index, ids: impl Iterator<Item = String>) -> Vec<WriteOutcome> {
        let requests = ids
            .map(|id| {
                let document = json!({"n": id.len()});
                WriteRequest::Index {
                    id: Some(id),
                    source: Arc::from(document.to_string().as_bytes()),
                    document,
                    condition: Condition::None,
                }
            })
            .collect();
        index
            .write(requests)
            .into_iter()
            .map(|outcome| outcome.unwrap())
            .collect()
    }

    /// A version lookup skips the segments whose id filter refuses the id. The filter of a
    /// small segment is built by the refresh that first shows it, that of a large one on a
    /// thread, and until it exists the lookup reads the term dictionary: either way an id the
    /// index holds is found (indexing it again is an update to the next version) and a new one
    /// is not; a later refresh keeps the filters of the segments it keeps.
    #[test]
    fn version_lookups_find_ids_through_the_segments_id_filters() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::create(
            &dir.path().join("ids"),
            "ids",
            IndexSettings::default(),
            Mappings::default(),
        )
        .unwrap();
        let small = (0..10).map(|i| format!("small-{i}"));
        index_ids(&index, small);
        index.refresh().unwrap();
        let large = (0..5 * ID_FILTER_INLINE_TERMS_MAX).map(|i| format!("large-{i}"));
        index_ids(&index, large);
        index.refresh().unwrap();
        let again = |id: &str| index_ids(&index, std::iter::once(id.to_owned())).remove(0);
        // Possibly before the large segment's filter exists.
        let outcome = again("large-7");
        assert_eq!((outcome.result, outcome.version), (WriteResult::Updated, 2));
        let deadline = Instant::now() + Duration::from_secs(30);
        let lookup = || lock(&index.state).id_lookup.clone();
        while !lookup()
            .segments
            .iter()
            .all(|segment| segment.ids.get().is_some())
        {
            assert!(Instant::now() < deadline, "an id filter was never built");
            std::thread::sleep(Duration::from_millis(10));
        }
        let filters = lookup();
        // Each refresh wrote one or two segments (tantivy's writer has two threads).
        assert!(filters.segments.len() >= 2);
        for segment in &filters.segments {
            let ids = segment.ids.get().unwrap();
            let refused = (0..1000)
                .filter(|i| !ids.may_contain(format!("absent-{i}").as_bytes()))
                .count();
            assert!(
                refused > 900,
                "the filter refused only {refused} of 1000 absent ids"
            );
        }
        for id in ["small-3", "large-8", "large-319"] {
            let outcome = again(id);
            assert_eq!(
                (outcome.result, outcome.version),
                (WriteResult::Updated, 2),
                "{id}"
            );
        }
        let outcome = again("new-1");
        assert_eq!((outcome.result, outcome.version), (WriteResult::Created, 1));
        index.refresh().unwrap();
        let after = lookup();
        for segment in &filters.segments {
            let kept = after
                .segments
                .iter()
                .find(|other| other.segment_id == segment.segment_id);
            if let Some(kept) = kept {
                assert!(Arc::ptr_eq(&kept.ids, &segment.ids));
            }
        }
        assert_eq!(index.get("large-8").unwrap().unwrap().version, 2);
        // The replaced versions are gone: their deletes asked the same filters, and read the
        // dictionary of the segments the filters refuse nothing in.
        let ids = 10 + 5 * ID_FILTER_INLINE_TERMS_MAX as u64 + 1;
        assert_eq!(index.count(&Query::match_all()).unwrap(), ids);
        let term = |id: &str| Query::Ids {
            values: vec![id.to_owned()],
            boost: 1.0,
        };
        for id in ["small-3", "large-7", "large-8", "large-319", "new-1"] {
            assert_eq!(index.count(&term(id)).unwrap(), 1, "{id}");
        }
    }
}
