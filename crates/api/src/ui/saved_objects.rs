//! The dashboard's saved objects (index patterns, searches, visualizations, dashboards): kept in
//! memory and persisted as one JSON file, `data_dir/ui/saved_objects.json`
//! (`{"format_version": 1, "objects": [...]}`), replaced atomically on every change: written to a
//! temporary file, fsynced, renamed over the old one, and the directory fsynced, so a crash
//! leaves the old file or the new one, never a mix. A change is acknowledged only after that.
//! The JSON API under `/api/saved_objects` lists, reads, creates, replaces and deletes them, and
//! exports and imports them as NDJSON (one object per line, Kibana's shape).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hyper::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{api_error, json_answer};
use crate::http::{Request, Response, off_worker};
use crate::json::{Duplicates, parse};

/// The file's format; a file of a later version is refused at start rather than overwritten.
pub const FORMAT_VERSION: u32 = 1;
/// The types the dashboard keeps; anything else is refused (400).
pub const SAVED_OBJECT_TYPES: &[&str] = &["index-pattern", "search", "visualization", "dashboard"];
/// Most saved objects kept; creating one more is refused (400) until some are deleted.
pub const SAVED_OBJECTS_MAX: usize = 10_000;
/// Largest serialized object (its attributes and names); a larger one is refused (400). The file
/// is therefore at most about 10 GB only in theory: the HTTP body limit and the cap above bound
/// what one import adds, and real dashboards are kilobytes.
pub const SAVED_OBJECT_BYTES_MAX: usize = 1024 * 1024;
/// Longest id; ids are ASCII letters, digits, `-` and `_`.
pub const SAVED_OBJECT_ID_BYTES_MAX: usize = 100;

const FILE_NAME: &str = "saved_objects.json";

#[derive(Debug, thiserror::Error)]
pub enum SavedObjectsError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a saved objects file: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("{path} has format version {found}, newer than this build's {FORMAT_VERSION}")]
    NewerFormat { path: PathBuf, found: u32 },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("saved object {index} of the config file: {message}")]
    Declared { index: usize, message: String },
}

/// One saved object as stored and served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedObject {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    pub attributes: Map<String, Value>,
    /// Increments on every replacement, from 1.
    pub version: u64,
    /// RFC 3339, UTC.
    pub updated_at: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    format_version: u32,
    objects: Vec<SavedObject>,
}

type Key = (String, String);

/// The saved objects of one data directory.
#[derive(Debug)]
pub struct SavedObjects {
    directory: PathBuf,
    objects: Mutex<BTreeMap<Key, SavedObject>>,
}

impl SavedObjects {
    /// Opens the objects kept in `directory` (created if missing), refusing a damaged file or one
    /// of a later format.
    pub fn open(directory: &Path) -> Result<SavedObjects, SavedObjectsError> {
        let path = directory.join(FILE_NAME);
        std::fs::create_dir_all(directory).map_err(|source| SavedObjectsError::Write {
            path: directory.to_owned(),
            source,
        })?;
        let mut objects = BTreeMap::new();
        match std::fs::read(&path) {
            Ok(bytes) => {
                let version: Value =
                    serde_json::from_slice(&bytes).map_err(|error| SavedObjectsError::Corrupt {
                        path: path.clone(),
                        message: error.to_string(),
                    })?;
                let found = version
                    .get("format_version")
                    .and_then(Value::as_u64)
                    .and_then(|found| u32::try_from(found).ok())
                    .unwrap_or(0);
                if found > FORMAT_VERSION {
                    return Err(SavedObjectsError::NewerFormat { path, found });
                }
                let file: File = serde_json::from_value(version).map_err(|error| {
                    SavedObjectsError::Corrupt {
                        path: path.clone(),
                        message: error.to_string(),
                    }
                })?;
                for object in file.objects {
                    objects.insert((object.kind.clone(), object.id.clone()), object);
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(SavedObjectsError::Read { path, source }),
        }
        Ok(SavedObjects {
            directory: directory.to_owned(),
            objects: Mutex::new(objects),
        })
    }

    pub fn list(&self, kind: Option<&str>) -> Vec<SavedObject> {
        let objects = self.lock();
        objects
            .values()
            .filter(|object| kind.is_none_or(|kind| object.kind == kind))
            .cloned()
            .collect()
    }

    pub fn get(&self, kind: &str, id: &str) -> Option<SavedObject> {
        self.lock().get(&(kind.to_owned(), id.to_owned())).cloned()
    }

    /// Applies `change` to a copy of the objects, persists the copy, then adopts it: a change
    /// that fails to persist changes nothing.
    fn change<T>(
        &self,
        change: impl FnOnce(&mut BTreeMap<Key, SavedObject>) -> Result<T, Response>,
    ) -> Result<T, Response> {
        let mut objects = self.lock();
        let mut next = objects.clone();
        let outcome = change(&mut next)?;
        if next.len() > SAVED_OBJECTS_MAX && next.len() > objects.len() {
            return Err(api_error(
                StatusCode::BAD_REQUEST,
                format!("at most {SAVED_OBJECTS_MAX} saved objects are kept; delete some first"),
            ));
        }
        self.persist(&next).map_err(|error| {
            tracing::error!(%error, "saving the dashboard's objects failed");
            api_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the saved objects could not be written",
            )
        })?;
        *objects = next;
        Ok(outcome)
    }

    fn persist(&self, objects: &BTreeMap<Key, SavedObject>) -> Result<(), SavedObjectsError> {
        let path = self.directory.join(FILE_NAME);
        let temporary = self.directory.join(format!("{FILE_NAME}.tmp"));
        let write_error = |source| SavedObjectsError::Write {
            path: path.clone(),
            source,
        };
        let file = File {
            format_version: FORMAT_VERSION,
            objects: objects.values().cloned().collect(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|error| write_error(error.into()))?;
        let mut handle = std::fs::File::create(&temporary).map_err(write_error)?;
        handle.write_all(&bytes).map_err(write_error)?;
        handle.sync_all().map_err(write_error)?;
        drop(handle);
        std::fs::rename(&temporary, &path).map_err(write_error)?;
        std::fs::File::open(&self.directory)
            .and_then(|directory| directory.sync_all())
            .map_err(write_error)
    }

    /// Adds the objects a `--config` file declares (`{type, id, attributes}` each) that do not
    /// exist yet, in one durable change; existing ones are kept as the user left them, as
    /// declared delivery streams are. Returns how many were added.
    pub fn declare(&self, declared: &[Value]) -> Result<usize, SavedObjectsError> {
        let mut checked = Vec::new();
        for (index, value) in declared.iter().enumerate() {
            let kind = value
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let id = value.get("id").and_then(Value::as_str).unwrap_or_default();
            let attributes = match value.get("attributes") {
                Some(Value::Object(attributes)) => attributes.clone(),
                _ => Map::new(),
            };
            if check_kind(kind).is_err()
                || check_id(id).is_err()
                || value.get("attributes").is_none_or(|a| !a.is_object())
            {
                return Err(SavedObjectsError::Declared {
                    index,
                    message: format!(
                        "a saved object needs a [type] among {}, an [id] of ASCII letters, digits, - or _ and an object [attributes]",
                        SAVED_OBJECT_TYPES.join(", ")
                    ),
                });
            }
            checked.push((kind.to_owned(), id.to_owned(), attributes));
        }
        let mut objects = self.lock();
        let mut next = objects.clone();
        let mut added = 0;
        for (kind, id, attributes) in checked {
            let key = (kind.clone(), id.clone());
            if next.contains_key(&key) {
                continue;
            }
            next.insert(
                key,
                SavedObject {
                    kind,
                    id,
                    attributes,
                    version: 1,
                    updated_at: now_rfc3339(),
                },
            );
            added += 1;
        }
        if added > 0 {
            self.persist(&next)?;
            *objects = next;
        }
        Ok(added)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Key, SavedObject>> {
        // A panic while holding the lock left the map as it was before the change (changes are
        // made on a copy), so the data is still good.
        self.objects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn check_kind(kind: &str) -> Result<(), Response> {
    if SAVED_OBJECT_TYPES.contains(&kind) {
        Ok(())
    } else {
        Err(api_error(
            StatusCode::BAD_REQUEST,
            format!(
                "unknown saved object type [{kind}]; expected one of {}",
                SAVED_OBJECT_TYPES.join(", ")
            ),
        ))
    }
}

fn check_id(id: &str) -> Result<(), Response> {
    let valid = !id.is_empty()
        && id.len() <= SAVED_OBJECT_ID_BYTES_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(api_error(
            StatusCode::BAD_REQUEST,
            format!(
                "a saved object id is 1 to {SAVED_OBJECT_ID_BYTES_MAX} ASCII letters, digits, - or _"
            ),
        ))
    }
}

/// A new id: random enough that two dashboards never pick the same one.
fn new_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        time::OffsetDateTime::now_utc()
            .unix_timestamp_nanos()
            .cast_unsigned(),
    );
    let high = hasher.finish();
    hasher.write_u64(high);
    format!("{high:016x}{:016x}", hasher.finish())
}

/// The attributes of a request body `{"attributes": {...}}`.
fn attributes_of(body: &Value) -> Result<Map<String, Value>, Response> {
    match body.get("attributes") {
        Some(Value::Object(attributes)) => Ok(attributes.clone()),
        _ => Err(api_error(
            StatusCode::BAD_REQUEST,
            "the body needs an object member [attributes]",
        )),
    }
}

fn sized(object: SavedObject) -> Result<SavedObject, Response> {
    let bytes = serde_json::to_vec(&object)
        .map(|bytes| bytes.len())
        .unwrap_or(usize::MAX);
    if bytes > SAVED_OBJECT_BYTES_MAX {
        return Err(api_error(
            StatusCode::BAD_REQUEST,
            format!(
                "a saved object is at most {SAVED_OBJECT_BYTES_MAX} bytes; this one is {bytes}"
            ),
        ));
    }
    Ok(object)
}

fn body_json(request: &Request) -> Result<Value, Response> {
    parse(&request.body, Duplicates::Refuse).map_err(|error| {
        api_error(
            StatusCode::BAD_REQUEST,
            format!("the body is not JSON: {error}"),
        )
    })
}

fn to_value(object: &SavedObject) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}

/// Writes must say their body is JSON (or NDJSON for an import): a page of another origin can
/// POST only form or plain-text bodies without a CORS preflight, which this server never grants,
/// so this keeps other sites from writing saved objects through a user's browser.
fn check_content_type(request: &Request, accepted: &[&str]) -> Result<(), Response> {
    let content_type = request
        .headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    if accepted
        .iter()
        .any(|accepted| media_type.eq_ignore_ascii_case(accepted))
    {
        Ok(())
    } else {
        Err(api_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("the body must be sent as {}", accepted.join(" or ")),
        ))
    }
}

/// Serves `/api/saved_objects/<rest>`.
pub(super) async fn handle(
    store: &Arc<SavedObjects>,
    request: &Request,
    rest: &[&str],
) -> Response {
    let writes_body = request.method == Method::POST || request.method == Method::PUT;
    let accepted: &[&str] = if rest == ["_import"] {
        &["application/x-ndjson", "application/json"]
    } else {
        &["application/json"]
    };
    if writes_body && let Err(response) = check_content_type(request, accepted) {
        return response;
    }
    let outcome = match (rest, &request.method) {
        // The store's lock is held while a change rewrites and fsyncs its file.
        ([], &Method::GET) => off_worker(|| list(store, request)),
        (["_export"], &Method::GET) => Ok(off_worker(|| export(store))),
        (["_import"], &Method::POST) => {
            let store = store.clone();
            let body = request.body.clone();
            let overwrite = request.param("overwrite") == Some("true");
            run_blocking(move || import(&store, &body, overwrite)).await
        }
        ([kind, id], &Method::GET) => check_kind(kind).and_then(|()| {
            off_worker(|| store.get(kind, id))
                .map(|object| json_answer(StatusCode::OK, &to_value(&object)))
                .ok_or_else(|| {
                    api_error(
                        StatusCode::NOT_FOUND,
                        format!("saved object [{kind}/{id}] not found"),
                    )
                })
        }),
        ([kind], &Method::POST) | ([kind, _], &Method::POST | &Method::PUT) => {
            let kind = (*kind).to_owned();
            let id = rest.get(1).map(|id| (*id).to_owned());
            let replace = request.method == Method::PUT;
            match body_json(request).and_then(|body| attributes_of(&body)) {
                Ok(attributes) => {
                    let store = store.clone();
                    run_blocking(move || save(&store, &kind, id, attributes, replace)).await
                }
                Err(response) => Err(response),
            }
        }
        ([kind, id], &Method::DELETE) => {
            let (kind, id) = ((*kind).to_owned(), (*id).to_owned());
            let store = store.clone();
            run_blocking(move || delete(&store, &kind, &id)).await
        }
        _ => Err(api_error(
            StatusCode::NOT_FOUND,
            "no such saved objects API",
        )),
    };
    outcome.unwrap_or_else(|response| response)
}

/// Runs a change (which fsyncs) off the async threads.
async fn run_blocking(
    work: impl FnOnce() -> Result<Response, Response> + Send + 'static,
) -> Result<Response, Response> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|_| {
        Err(api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "saving failed (a bug)",
        ))
    })
}

fn list(store: &SavedObjects, request: &Request) -> Result<Response, Response> {
    let kind = request.param("type");
    if let Some(kind) = kind {
        check_kind(kind)?;
    }
    let objects: Vec<Value> = store.list(kind).iter().map(to_value).collect();
    Ok(json_answer(
        StatusCode::OK,
        &json!({"total": objects.len(), "saved_objects": objects}),
    ))
}

fn save(
    store: &SavedObjects,
    kind: &str,
    id: Option<String>,
    attributes: Map<String, Value>,
    replace: bool,
) -> Result<Response, Response> {
    check_kind(kind)?;
    let id = id.unwrap_or_else(new_id);
    check_id(&id)?;
    let saved = store.change(|objects| {
        let key = (kind.to_owned(), id.clone());
        let previous = objects.get(&key);
        if previous.is_some() && !replace {
            return Err(api_error(
                StatusCode::CONFLICT,
                format!("saved object [{kind}/{id}] already exists; PUT replaces it"),
            ));
        }
        let object = sized(SavedObject {
            kind: kind.to_owned(),
            id: id.clone(),
            attributes,
            version: previous.map_or(1, |previous| previous.version + 1),
            updated_at: now_rfc3339(),
        })?;
        objects.insert(key, object.clone());
        Ok(object)
    })?;
    Ok(json_answer(StatusCode::OK, &to_value(&saved)))
}

fn delete(store: &SavedObjects, kind: &str, id: &str) -> Result<Response, Response> {
    check_kind(kind)?;
    store.change(|objects| {
        objects
            .remove(&(kind.to_owned(), id.to_owned()))
            .map(|_| ())
            .ok_or_else(|| {
                api_error(
                    StatusCode::NOT_FOUND,
                    format!("saved object [{kind}/{id}] not found"),
                )
            })
    })?;
    Ok(json_answer(StatusCode::OK, &json!({})))
}

fn export(store: &SavedObjects) -> Response {
    let mut body = Vec::new();
    for object in store.list(None) {
        if serde_json::to_writer(&mut body, &object).is_ok() {
            body.push(b'\n');
        }
    }
    let mut response = Response::new(StatusCode::OK, "application/x-ndjson", body);
    response.headers.push((
        "content-disposition",
        "attachment; filename=\"export.ndjson\"".to_owned(),
    ));
    response
}

/// Imports NDJSON: every line is checked first, then all are saved in one change, or none.
/// Without `overwrite`, an object that exists is reported as a conflict and the rest are saved.
fn import(store: &SavedObjects, body: &[u8], overwrite: bool) -> Result<Response, Response> {
    let mut incoming = Vec::new();
    for (number, line) in body.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let value = parse(line, Duplicates::Refuse).map_err(|error| {
            api_error(
                StatusCode::BAD_REQUEST,
                format!("line {}: not JSON: {error}", number + 1),
            )
        })?;
        let kind = value
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let id = value
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let attributes = attributes_of(&value);
        let checked = check_kind(&kind)
            .and_then(|()| check_id(&id))
            .and(attributes);
        let attributes = checked.map_err(|_| {
            api_error(
                StatusCode::BAD_REQUEST,
                format!(
                    "line {}: a saved object needs a known [type], a valid [id] and [attributes]",
                    number + 1
                ),
            )
        })?;
        incoming.push((kind, id, attributes));
    }
    let (saved, conflicts) = store.change(|objects| {
        let mut saved = 0usize;
        let mut conflicts = Vec::new();
        for (kind, id, attributes) in incoming {
            let key = (kind.clone(), id.clone());
            let previous = objects.get(&key);
            if previous.is_some() && !overwrite {
                conflicts.push(json!({"type": kind, "id": id, "error": {"type": "conflict"}}));
                continue;
            }
            let object = sized(SavedObject {
                version: previous.map_or(1, |previous| previous.version + 1),
                kind,
                id,
                attributes,
                updated_at: now_rfc3339(),
            })?;
            objects.insert(key, object);
            saved += 1;
        }
        Ok((saved, conflicts))
    })?;
    Ok(json_answer(
        StatusCode::OK,
        &json!({"success": conflicts.is_empty(), "successCount": saved, "errors": conflicts}),
    ))
}
