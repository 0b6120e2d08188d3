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
    /// Extra fields beside `type` and `reason` (`index`, `index_uuid`, `shard`, …); boxed so
    /// that `Result<_, EsError>` stays small on every path that returns one.
    pub extra: Box<Map<String, Value>>,
    /// The error under this one, shown as `caused_by`.
    pub caused_by: Option<Box<EsError>>,
}

/// Error types that are plain Java exceptions in Elasticsearch, not `ElasticsearchException`s:
/// `root_cause` stops above them, as Elasticsearch's `guessRootCauses` does.
const JAVA_EXCEPTION_TYPES: &[&str] = &[
    "illegal_argument_exception",
    "illegal_state_exception",
    "number_format_exception",
    "unsupported_operation_exception",
    // The Java exceptions a script's runtime error carries.
    "null_pointer_exception",
    "class_cast_exception",
    "arithmetic_exception",
    "index_out_of_bounds_exception",
    "string_index_out_of_bounds_exception",
];

impl EsError {
    pub fn new(status: StatusCode, kind: &'static str, reason: impl Into<String>) -> EsError {
        EsError {
            status,
            kind,
            reason: reason.into(),
            extra: Box::default(),
            caused_by: None,
        }
    }

    /// This error, caused by `cause` (shown as `caused_by`).
    pub fn caused_by(mut self, cause: EsError) -> EsError {
        self.caused_by = Some(Box::new(cause));
        self
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

    /// The same error with another reason.
    pub fn with_reason(mut self, reason: impl Into<String>) -> EsError {
        self.reason = reason.into();
        self
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> EsError {
        self.extra.insert(key.to_string(), value.into());
        self
    }

    /// `type`, `reason`, the extra fields, and the `caused_by` chain when `with_causes`.
    fn cause(&self, with_causes: bool) -> Value {
        let mut cause = Map::new();
        cause.insert("type".into(), Value::String(self.kind.into()));
        cause.insert("reason".into(), Value::String(self.reason.clone()));
        for (key, value) in self.extra.iter() {
            cause.insert(key.clone(), value.clone());
        }
        if with_causes && let Some(inner) = &self.caused_by {
            cause.insert("caused_by".into(), inner.cause(true));
        }
        Value::Object(cause)
    }

    /// The deepest error of the chain that Elasticsearch reports as the root cause: it follows
    /// `caused_by` only while the cause is an Elasticsearch exception.
    fn root_cause(&self) -> &EsError {
        match &self.caused_by {
            Some(inner) if !JAVA_EXCEPTION_TYPES.contains(&inner.kind) => inner.root_cause(),
            _ => self,
        }
    }

    /// The `error` object of a response or of a bulk item.
    pub fn error_object(&self) -> Value {
        let mut error = match self.cause(true) {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let mut ordered = Map::new();
        ordered.insert("root_cause".into(), json!([self.root_cause().cause(false)]));
        ordered.append(&mut error);
        Value::Object(ordered)
    }

    /// A bulk item's or mget doc's `error`: without `root_cause`, as Elasticsearch shows it.
    pub fn item_error(&self) -> Value {
        self.cause(true)
    }

    /// A script's failure in Elasticsearch's shape: a `script_exception` ("compile error" or
    /// "runtime error") with `script_stack`, `script`, `lang` and `position`, caused by the
    /// Java exception Painless would throw.
    pub fn script(error: &sluice_script::ScriptError) -> EsError {
        let cause = EsError::bad_request(error.cause_type, error.cause_reason.clone());
        EsError::bad_request("script_exception", error.reason())
            .with("script_stack", error.script_stack.clone())
            .with("script", error.script.clone())
            .with("lang", "painless")
            .with(
                "position",
                json!({"offset": error.offset, "start": error.window.start, "end": error.window.end}),
            )
            .caused_by(cause)
    }

    /// A mapping definition refused while parsing `PUT /index` or `PUT /index/_mapping`:
    /// Elasticsearch wraps it in "Failed to parse mapping: …" and nests the original.
    pub fn mapping_definition(error: sluice_search::SearchError) -> EsError {
        match error {
            SearchError::MapperParsing { reason, cause } => {
                let inner_reason = reason
                    .strip_prefix("Failed to parse mapping: ")
                    .unwrap_or(&reason)
                    .to_string();
                let inner = match cause {
                    Some(rule) => EsError::illegal_argument(rule),
                    None => EsError::bad_request("mapper_parsing_exception", inner_reason.clone()),
                };
                EsError::bad_request(
                    "mapper_parsing_exception",
                    format!("Failed to parse mapping: {inner_reason}"),
                )
                .caused_by(inner)
            }
            other => EsError::from(other),
        }
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
            SearchError::InvalidAliasName { .. } => {
                EsError::bad_request("invalid_alias_name_exception", reason)
            }
            SearchError::AliasesNotFound { aliases } => {
                EsError::new(StatusCode::NOT_FOUND, "aliases_not_found_exception", reason)
                    .with("resource.type", "aliases")
                    .with("resource.id", aliases.join(","))
            }
            SearchError::InvalidIndexTemplate { .. } => {
                EsError::bad_request("invalid_index_template_exception", reason)
            }
            SearchError::IndexTemplateMissing { .. } => EsError::new(
                StatusCode::NOT_FOUND,
                "index_template_missing_exception",
                reason,
            ),
            SearchError::ResourceNotFound { .. } => EsError::new(
                StatusCode::NOT_FOUND,
                "resource_not_found_exception",
                reason,
            ),
            // Elasticsearch answers its metadata checks' IllegalStateException with 500; the
            // request, not the node, is at fault, so it is not logged as an engine failure.
            SearchError::IllegalState { .. } => EsError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "illegal_state_exception",
                reason,
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
            SearchError::DocumentParsing { cause, .. } => {
                let error = EsError::bad_request("document_parsing_exception", reason);
                match cause {
                    Some(rule) => error.caused_by(EsError::illegal_argument(rule.clone())),
                    None => error,
                }
            }
            SearchError::StrictDynamicMapping { .. } => {
                EsError::bad_request("strict_dynamic_mapping_exception", reason)
            }
            SearchError::MapperParsing { .. } => {
                EsError::bad_request("mapper_parsing_exception", reason)
            }
            SearchError::IllegalArgument { .. } => EsError::illegal_argument(reason),
            SearchError::QueryShard { .. } => EsError::bad_request("query_shard_exception", reason),
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
            SearchError::DocumentSourceMissing { index, .. } => {
                EsError::bad_request("document_source_missing_exception", reason)
                    .with("index_uuid", "_na_")
                    .with("shard", "0")
                    .with("index", index.clone())
            }
            SearchError::Rejected { .. } => EsError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "es_rejected_execution_exception",
                reason,
            ),
            SearchError::Script(script) => EsError::illegal_argument("failed to execute script")
                .caused_by(EsError::script(script)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_causes_stop_above_plain_java_exceptions() {
        let wrapped_rule = EsError::bad_request("document_parsing_exception", "failed to parse: x")
            .caused_by(EsError::illegal_argument("x"));
        let body = wrapped_rule.body();
        assert_eq!(
            body["error"]["root_cause"][0]["type"],
            "document_parsing_exception"
        );
        assert!(body["error"]["root_cause"][0].get("caused_by").is_none());
        assert_eq!(
            body["error"]["caused_by"]["type"],
            "illegal_argument_exception"
        );
        let mapping = EsError::mapping_definition(SearchError::MapperParsing {
            reason: "No handler for type [x] declared on field [a]".into(),
            cause: None,
        });
        let body = mapping.body();
        assert_eq!(
            body["error"]["reason"],
            "Failed to parse mapping: No handler for type [x] declared on field [a]"
        );
        assert_eq!(
            body["error"]["root_cause"][0]["reason"],
            "No handler for type [x] declared on field [a]"
        );
        // Bulk items show the chain but no root cause.
        assert_eq!(
            wrapped_rule.item_error(),
            json!({"type": "document_parsing_exception", "reason": "failed to parse: x", "caused_by": {"type": "illegal_argument_exception", "reason": "x"}})
        );
    }
}
