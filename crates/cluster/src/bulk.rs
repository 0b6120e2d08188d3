//! The `_bulk` API as a client speaks it: operations encoded as NDJSON (an action line, then the
//! source line of an index), and the answer read item by item into what a delivery does next
//! with each document. The shapes are those Elasticsearch 7.x and 8.x and OpenSearch 1.x–3.x
//! share: `{"took", "errors", "items": [{ACTION: {"_index", "_id", "status", "error"?, …}}]}`,
//! one item per operation in order, and a whole-request error `{"error": {…}, "status"}` (or,
//! from a gateway in front of the cluster, any text at all).
//!
//! What an item's status means for its document:
//! - 2xx, and a delete's 404 `not_found` (nothing to delete), are applied;
//! - a 409 `version_conflict_engine_exception` on an operation with an external version is
//!   applied too: the cluster already holds that version or a later one, which is exactly what
//!   a redelivery after a crash meets;
//! - 429 and 5xx are worth another attempt (the cluster is busy or a shard is unavailable);
//! - any other status (a mapping conflict, a document that is not JSON) will not change on
//!   retry: the document goes to the failed-documents backup at once.

use serde::Deserialize;
use serde_json::{Map, Value, json};

/// Longest error text kept for one item (the Elasticsearch error object as JSON). A longer one
/// is cut, on a character boundary, and ends with `…`; it only goes into a backup record.
pub const ITEM_ERROR_BYTES_MAX: usize = 8 * 1024;

/// One document operation of a bulk request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkOperation {
    pub index: String,
    /// `None` lets the cluster choose an id (an index only).
    pub id: Option<String>,
    /// An external version (`version_type: external`): the cluster applies the operation only
    /// over an older version, so replays and reorderings converge.
    pub version: Option<u64>,
    pub action: BulkAction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkAction {
    /// Index the document: the JSON object's bytes.
    Index {
        source: Vec<u8>,
    },
    Delete,
}

/// Why an item was not applied: Firehose's `errorCode` (the HTTP status, or a named failure of
/// the request) and `errorMessage` (the Elasticsearch error object, as JSON text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError {
    pub code: String,
    pub message: String,
}

impl ItemError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> ItemError {
        ItemError {
            code: code.into(),
            message: message.into(),
        }
    }

    /// An Elasticsearch-shaped error of `status` with `type` and `reason`.
    pub fn elasticsearch(status: u16, kind: &str, reason: &str) -> ItemError {
        ItemError::new(
            status.to_string(),
            json!({"type": kind, "reason": reason}).to_string(),
        )
    }
}

/// What happened to one operation of a bulk request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    /// In the cluster (or already there at this version or a later one).
    Applied,
    /// Not applied, and another attempt may succeed (429, 5xx, or the request failed whole).
    Retry(ItemError),
    /// Not applied, and another attempt would fail the same way.
    Failed(ItemError),
}

/// Appends `operation` to a bulk body. A source that is not one line of JSON is made one
/// (NDJSON needs it); a source that is not JSON at all cannot be sent and is answered here.
pub fn encode_operation(
    operation: &BulkOperation,
    type_name: Option<&str>,
    body: &mut Vec<u8>,
) -> Result<(), ItemError> {
    let (action, source) = match &operation.action {
        BulkAction::Index { source } => ("index", Some(source)),
        BulkAction::Delete => ("delete", None),
    };
    let source_line = match source {
        None => None,
        Some(source) if is_one_line_of_json_object(source) => Some(source.clone()),
        Some(source) => match serde_json::from_slice::<Value>(source) {
            Ok(value @ Value::Object(_)) => Some(value.to_string().into_bytes()),
            Ok(_) | Err(_) => {
                return Err(ItemError::elasticsearch(
                    400,
                    "mapper_parsing_exception",
                    "failed to parse: the record is not a JSON object",
                ));
            }
        },
    };
    // The action line, written directly (a delivery encodes thousands per request):
    // `{"index":{"_index":…,"_id":…,"_type":…,"version":…,"version_type":"external"}}`.
    let quoted = |body: &mut Vec<u8>, text: &str| {
        // Writing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *body, text);
    };
    body.extend_from_slice(b"{\"");
    body.extend_from_slice(action.as_bytes());
    body.extend_from_slice(b"\":{\"_index\":");
    quoted(body, &operation.index);
    if let Some(id) = &operation.id {
        body.extend_from_slice(b",\"_id\":");
        quoted(body, id);
    }
    if let Some(type_name) = type_name.filter(|name| !name.is_empty()) {
        body.extend_from_slice(b",\"_type\":");
        quoted(body, type_name);
    }
    if let Some(version) = operation.version {
        body.extend_from_slice(
            format!(",\"version\":{version},\"version_type\":\"external\"").as_bytes(),
        );
    }
    body.extend_from_slice(b"}}\n");
    if let Some(source) = source_line {
        body.extend_from_slice(&source);
        body.push(b'\n');
    }
    Ok(())
}

/// A cheap check that `source` can go into the body as it is: it opens as an object and has no
/// line break. Whether it is valid JSON is the cluster's to say (its answer is the item's).
fn is_one_line_of_json_object(source: &[u8]) -> bool {
    let opens_as_object = source
        .iter()
        .find(|byte| !byte.is_ascii_whitespace())
        .is_some_and(|byte| *byte == b'{');
    opens_as_object && !source.iter().any(|byte| *byte == b'\n' || *byte == b'\r')
}

/// The answer to a bulk request that did not come back item by item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFailure {
    pub error: ItemError,
}

#[derive(Deserialize)]
struct BulkResponse {
    #[serde(default)]
    items: Vec<Map<String, Value>>,
}

/// A bulk answer read straight into its items' few members (the rest skipped), the common
/// case; an answer that does not fit is read again as [`BulkResponse`], item by item.
#[derive(Deserialize)]
struct TypedBulkResponse {
    #[serde(default)]
    items: Vec<std::collections::BTreeMap<String, BulkItem>>,
}

#[derive(Deserialize)]
struct BulkItem {
    #[serde(default)]
    status: u16,
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    result: Option<String>,
}

/// Reads a bulk answer of HTTP `status` and `body` for `operations` (those that were sent, in
/// order). `Err` when the request failed whole (its status, or an answer without one item per
/// operation): then every operation is to be tried again.
pub fn parse_bulk_response(
    status: u16,
    body: &[u8],
    operations: &[&BulkOperation],
) -> Result<Vec<ItemOutcome>, RequestFailure> {
    if !(200..300).contains(&status) {
        return Err(RequestFailure {
            error: ItemError::new(status.to_string(), whole_error_message(body)),
        });
    }
    if let Ok(typed) = serde_json::from_slice::<TypedBulkResponse>(body)
        && typed.items.len() == operations.len()
        && typed.items.iter().all(|item| item.len() == 1)
    {
        return Ok(typed
            .items
            .into_iter()
            .zip(operations)
            .map(|(item, operation)| match item.into_values().next() {
                Some(item) => typed_outcome(item, operation),
                None => {
                    ItemOutcome::Retry(ItemError::new("500", "an empty item in the bulk answer"))
                }
            })
            .collect());
    }
    let response: BulkResponse = serde_json::from_slice(body).map_err(|error| RequestFailure {
        error: ItemError::new(
            status.to_string(),
            format!(
                "the bulk answer is not a bulk response ({error}): {}",
                cut(&String::from_utf8_lossy(body), ITEM_ERROR_BYTES_MAX)
            ),
        ),
    })?;
    if response.items.len() != operations.len() {
        return Err(RequestFailure {
            error: ItemError::new(
                status.to_string(),
                format!(
                    "the bulk answer has {} items for {} operations",
                    response.items.len(),
                    operations.len()
                ),
            ),
        });
    }
    Ok(response
        .items
        .into_iter()
        .zip(operations)
        .map(|(item, operation)| item_outcome(item, operation))
        .collect())
}

fn item_outcome(item: Map<String, Value>, operation: &BulkOperation) -> ItemOutcome {
    let Some((_, inner)) = item.into_iter().next() else {
        return ItemOutcome::Retry(ItemError::new("500", "an empty item in the bulk answer"));
    };
    match serde_json::from_value(inner) {
        Ok(item) => typed_outcome(item, operation),
        Err(error) => ItemOutcome::Retry(ItemError::new(
            "500",
            format!("an unreadable item in the bulk answer: {error}"),
        )),
    }
}

/// What one item's status (and error) means for its operation.
fn typed_outcome(item: BulkItem, operation: &BulkOperation) -> ItemOutcome {
    let error_type = item
        .error
        .as_ref()
        .and_then(|error| error.get("type"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let message = || {
        let text = match &item.error {
            Some(Value::String(text)) => text.clone(),
            Some(error) => error.to_string(),
            None => {
                json!({"type": "unknown", "reason": format!("status {}", item.status)}).to_string()
            }
        };
        cut(&text, ITEM_ERROR_BYTES_MAX)
    };
    let deleted_nothing = matches!(operation.action, BulkAction::Delete)
        && item.status == 404
        && item.error.is_none()
        && item
            .result
            .as_deref()
            .is_none_or(|result| result == "not_found");
    match item.status {
        200..=299 => ItemOutcome::Applied,
        404 if deleted_nothing => ItemOutcome::Applied,
        409 if operation.version.is_some() && error_type == "version_conflict_engine_exception" => {
            ItemOutcome::Applied
        }
        429 | 500..=599 => ItemOutcome::Retry(ItemError::new(item.status.to_string(), message())),
        0 => ItemOutcome::Retry(ItemError::new("500", "an item without a status")),
        status => ItemOutcome::Failed(ItemError::new(status.to_string(), message())),
    }
}

/// The error of a whole failed request: the `error` object of an Elasticsearch answer, else
/// the body as text (a proxy's HTML page, a gateway's `{"message"}`), cut.
fn whole_error_message(body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<Value>(body)
        && let Some(error) = value
            .get("error")
            .or_else(|| value.get("message"))
            .or_else(|| value.get("Message"))
    {
        let text = match error {
            Value::String(text) => json!({"type": "exception", "reason": text}).to_string(),
            other => other.to_string(),
        };
        return cut(&text, ITEM_ERROR_BYTES_MAX);
    }
    let text = String::from_utf8_lossy(body);
    cut(
        &json!({"type": "exception", "reason": text.trim()}).to_string(),
        ITEM_ERROR_BYTES_MAX,
    )
}

/// `text` cut to at most `bytes_max` bytes on a character boundary, ending with `…` when cut.
pub fn cut(text: &str, bytes_max: usize) -> String {
    if text.len() <= bytes_max {
        return text.to_owned();
    }
    let mut end = bytes_max.saturating_sub('…'.len_utf8());
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut cut = text.get(..end).unwrap_or_default().to_owned();
    cut.push('…');
    cut
}
