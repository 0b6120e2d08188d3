//! The one error type of the search engine. Each variant is a kind a client can act on; the
//! `api` crate maps kinds to Elasticsearch error types and HTTP statuses in one place.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("no such index [{index}]")]
    IndexNotFound { index: String },
    #[error("index [{index}/{uuid}] already exists")]
    IndexAlreadyExists { index: String, uuid: String },
    #[error("Invalid index name [{name}], {reason}")]
    InvalidIndexName { name: String, reason: String },
    #[error("Invalid alias name [{name}]: {reason}")]
    InvalidAliasName { name: String, reason: String },
    /// Aliases a removal named that no index has.
    #[error("aliases [{}] missing", aliases.join(","))]
    AliasesNotFound { aliases: Vec<String> },
    #[error("index_template [{name}] invalid, cause [{reason}]")]
    InvalidIndexTemplate { name: String, reason: String },
    #[error("index_template [{name}] missing")]
    IndexTemplateMissing { name: String },
    /// A named thing (a template, …) that does not exist.
    #[error("{reason}")]
    ResourceNotFound { reason: String },
    /// A change that would leave the catalog inconsistent, as Elasticsearch's metadata checks
    /// find it (two write indices for one alias).
    #[error("{reason}")]
    IllegalState { reason: String },
    /// A write whose version, sequence number or `create` condition does not hold.
    #[error("{reason}")]
    VersionConflict {
        index: String,
        id: String,
        reason: String,
    },
    /// A document that does not fit its mapping; nothing of it was written. `cause` holds the
    /// rule the document broke when the refusal is for a rule rather than for the document's
    /// shape (an immense term, an empty field name), as Elasticsearch nests it.
    #[error("{reason}")]
    DocumentParsing {
        reason: String,
        cause: Option<String>,
    },
    /// A new field under `dynamic: strict`.
    #[error("{reason}")]
    StrictDynamicMapping { reason: String },
    /// A mapping definition that cannot be accepted. `cause` holds the rule it broke when
    /// Elasticsearch reports a broken rule (an empty field name) under the mapping error.
    #[error("{reason}")]
    MapperParsing {
        reason: String,
        cause: Option<String>,
    },
    #[error("{reason}")]
    IllegalArgument { reason: String },
    /// A request that cannot run on an index as mapped (a sort on a field it does not map).
    #[error("{reason}")]
    QueryShard { reason: String },
    /// Request parameters that are each valid but do not go together.
    #[error("Validation Failed: 1: {reason};")]
    Validation { reason: String },
    #[error("[{id}]: document missing")]
    DocumentMissing { index: String, id: String },
    /// An aggregation response would hold more buckets than `search.max_buckets`.
    #[error(
        "Trying to create too many buckets. Must be less than or equal to: [{max}] but was [{count}]. This limit can be set by changing the [search.max_buckets] cluster level setting."
    )]
    TooManyBuckets { max: usize, count: usize },
    /// A request would hold more memory than its limit (Elasticsearch's request breaker).
    #[error("{reason}")]
    CircuitBreaking {
        reason: String,
        bytes_wanted: u64,
        bytes_limit: u64,
    },
    /// An aggregation that cannot be built as requested (a misplaced `global`, …).
    #[error("{reason}")]
    AggregationInitialization { reason: String },
    /// An aggregation that cannot run on the data (a bad order path, several weights, …).
    #[error("{reason}")]
    AggregationExecution { reason: String },
    /// An update of a document whose index does not store `_source`: there is nothing to merge
    /// the partial document into.
    #[error("[{id}]: document source missing")]
    DocumentSourceMissing { index: String, id: String },
    /// A bounded resource is full; the caller should retry later.
    #[error("{reason}")]
    Rejected { reason: String },
    /// The index refuses writes after a failed fsync, until it is reopened.
    #[error("index [{index}] refuses writes after a failed fsync: {reason}")]
    Poisoned { index: String, reason: String },
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("corrupt {what}: {reason}")]
    Corrupt { what: String, reason: String },
    /// A script failed while the write ran (`_update`, by-query operations); the api wraps it
    /// as Elasticsearch does ("failed to execute script").
    #[error("failed to execute script: {0}")]
    Script(Box<sluice_script::ScriptError>),
    #[error("tantivy: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
}

impl SearchError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SearchError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn parsing(reason: impl Into<String>) -> Self {
        SearchError::DocumentParsing {
            reason: reason.into(),
            cause: None,
        }
    }

    /// A document refused for breaking a rule: Elasticsearch says "failed to parse: <rule>" and
    /// nests the rule as the cause.
    pub(crate) fn parsing_rule(rule: impl Into<String>) -> Self {
        let rule = rule.into();
        SearchError::DocumentParsing {
            reason: format!("failed to parse: {rule}"),
            cause: Some(rule),
        }
    }

    pub(crate) fn illegal(reason: impl Into<String>) -> Self {
        SearchError::IllegalArgument {
            reason: reason.into(),
        }
    }
}

pub type Result<T, E = SearchError> = std::result::Result<T, E>;
