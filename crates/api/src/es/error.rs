//! Elasticsearch errors on the wire: the one place that maps error kinds to the `type` names and
//! HTTP statuses clients expect, in the shape
//! `{"error":{"root_cause":[…],"type":…,"reason":…},"status":N}`.

use hyper::StatusCode;
use serde_json::{Map, Value, json};
use sluice_search::SearchError;

/// An error as Elasticsearch reports it.
#[derive(Debug, Clone)]
pub struct EsError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub reason: String,
    /// Extra fields beside `type` and `reason` (`index`, `index_uuid`, `shard`, …).
    pub extra: Map<String, Value>,
}

impl EsError {
    pub fn new(status: StatusCode, kind: &'static str, reason: impl Into<String>) -> EsError {
        EsError {
            status,
            kind,
            reason: reason.into(),
            extra: Map::new(),
        }
    }

    pub fn bad_request(kind: &'static str, reason: impl Into<String>) -> EsError {
        EsError::new(StatusCode::BAD_REQUEST, kind, reason)
    }

    pub fn illegal_argument(reason: impl Into<String>) -> EsError {
        EsError::bad_request("illegal_argument_exception", reason)
    }

    pub fn validation(reason: impl Into<String>) -> EsError {
        EsError::bad_request(
            "action_request_validation_exception",
            format!("Validation Failed: 1: {};", reason.into()),
        )
    }

    pub fn parse(reason: impl Into<String>) -> EsError {
        EsError::bad_request("parsing_exception", reason)
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> EsError {
        self.extra.insert(key.to_string(), value.into());
        self
    }

    fn cause(&self) -> Value {
        let mut cause = Map::new();
        cause.insert("type".into(), Value::String(self.kind.into()));
        cause.insert("reason".into(), Value::String(self.reason.clone()));
        for (key, value) in &self.extra {
            cause.insert(key.clone(), value.clone());
        }
        Value::Object(cause)
    }

    /// The `error` object of a response or of a bulk item.
    pub fn error_object(&self) -> Value {
        let mut error = match self.cause() {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let mut ordered = Map::new();
        ordered.insert("root_cause".into(), json!([self.cause()]));
        ordered.append(&mut error);
        Value::Object(ordered)
    }

    /// A bulk item's or mget doc's `error`: without `root_cause`, as Elasticsearch shows it.
    pub fn item_error(&self) -> Value {
        self.cause()
    }

    pub fn body(&self) -> Value {
        json!({ "error": self.error_object(), "status": self.status.as_u16() })
    }
}

impl From<SearchError> for EsError {
    fn from(error: SearchError) -> EsError {
        let reason = error.to_string();
        let index_fields = |e: EsError, index: &str| {
            e.with("index_uuid", "_na_")
                .with("index", index.to_string())
        };
        match &error {
            SearchError::IndexNotFound { index } => index_fields(
                EsError::new(StatusCode::NOT_FOUND, "index_not_found_exception", reason)
                    .with("resource.type", "index_or_alias")
                    .with("resource.id", index.clone()),
                index,
            ),
            SearchError::IndexAlreadyExists { index, uuid } => {
                EsError::bad_request("resource_already_exists_exception", reason)
                    .with("index_uuid", uuid.clone())
                    .with("index", index.clone())
            }
            SearchError::InvalidIndexName { name, .. } => index_fields(
                EsError::bad_request("invalid_index_name_exception", reason),
                name,
            ),
            SearchError::VersionConflict { index, .. } => EsError::new(
                StatusCode::CONFLICT,
                "version_conflict_engine_exception",
                reason,
            )
            .with("index_uuid", "_na_")
            .with("shard", "0")
            .with("index", index.clone()),
            SearchError::DocumentParsing { .. } => {
                EsError::bad_request("document_parsing_exception", reason)
            }
            SearchError::StrictDynamicMapping { .. } => {
                EsError::bad_request("strict_dynamic_mapping_exception", reason)
            }
            SearchError::MapperParsing { .. } => {
                EsError::bad_request("mapper_parsing_exception", reason)
            }
            SearchError::IllegalArgument { .. } => EsError::illegal_argument(reason),
            SearchError::Validation { .. } => {
                EsError::bad_request("action_request_validation_exception", reason)
            }
            SearchError::DocumentMissing { index, .. } => {
                EsError::new(StatusCode::NOT_FOUND, "document_missing_exception", reason)
                    .with("index_uuid", "_na_")
                    .with("shard", "0")
                    .with("index", index.clone())
            }
            SearchError::TooManyBuckets { max, .. } => {
                EsError::bad_request("too_many_buckets_exception", reason).with("max_buckets", *max)
            }
            SearchError::CircuitBreaking {
                bytes_wanted,
                bytes_limit,
                ..
            } => EsError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "circuit_breaking_exception",
                reason,
            )
            .with("bytes_wanted", *bytes_wanted)
            .with("bytes_limit", *bytes_limit)
            .with("durability", "TRANSIENT"),
            SearchError::AggregationInitialization { .. } => {
                EsError::bad_request("aggregation_initialization_exception", reason)
            }
            SearchError::AggregationExecution { .. } => {
                EsError::bad_request("aggregation_execution_exception", reason)
            }
            SearchError::Rejected { .. } => EsError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "es_rejected_execution_exception",
                reason,
            ),
            SearchError::Poisoned { .. }
            | SearchError::Io { .. }
            | SearchError::Corrupt { .. }
            | SearchError::Tantivy(_) => {
                tracing::error!(%error, "engine failure");
                EsError::new(StatusCode::INTERNAL_SERVER_ERROR, "exception", reason)
            }
        }
    }
}
