//! The Lambda API (REST-JSON, the paths boto3's `lambda` client calls): CreateFunction,
//! GetFunction, GetFunctionConfiguration, ListFunctions, DeleteFunction, Invoke, and the
//! event-source mappings (Create, Get, List, Update, Delete).
//!
//! Functions live in the node's [`FunctionRegistry`]: the ones declared with `--function` or
//! `--config` are listed, described, invoked and mapped like the ones created here. A function
//! created here is kept in `data_dir/functions/catalog.json` (format version
//! [`FUNCTIONS_CATALOG_VERSION`]) and registered again at start.
//!
//! Code: `Code.ZipFile` is unpacked into `data_dir/functions/code/<name>/` (bounded by
//! [`ZIP_BYTES_MAX`], [`UNZIPPED_BYTES_MAX`] and [`ZIP_ENTRIES_MAX`], no entry outside it). As
//! Sluice has no S3, `Code.S3Bucket` and `Code.S3Key` name a directory of the local s3 store,
//! `data_dir/s3/<bucket>/<key>/`, used in place (no `..`, no absolute key). Either becomes
//! the function's `LAMBDA_TASK_ROOT`.
//! `Runtime` `python3.x` runs `<python> -m awslambdaric <Handler>` (the interpreter is
//! `--lambda-python`, which must have `awslambdaric` installed); `nodejs*` runs
//! `<nodejs ric> <Handler>` (`--lambda-nodejs-ric`, the `aws-lambda-ric` command of npm);
//! `provided*` runs the directory's `bootstrap`.
//!
//! Invoke: `RequestResponse` runs once and answers the function's JSON, or its error payload
//! `{"errorMessage","errorType","stackTrace"}` with `X-Amz-Function-Error: Unhandled`;
//! `Event` queues the call durably before answering 202 (`lambda_events`: at most
//! [`EVENT_INVOCATIONS_MAX`] waiting, then `TooManyRequestsException`; a crash leaves it to run
//! at the next start) and retries it twice as Lambda does; `DryRun` only checks.
//! `LogType: Tail` returns the invocation's output (both streams, between Lambda's START, END and
//! REPORT lines), its last 4 KB, base64 in `X-Amz-Log-Result`.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use hyper::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sluice_functions::arn::{function_arn, function_name};

use super::lambda_events::{EventQueue, QueuedEvent};
use sluice_functions::{
    Error as FunctionsError, FunctionDefinition, FunctionKind, FunctionRegistry, InvokeOptions,
    LOG_TAIL_BYTES_MAX, LogTail, PAYLOAD_BYTES_MAX,
};
use sluice_mappings::{
    EventSourceMappings, MappingConfig, MappingDescription, MappingError, SourceSpec,
    StartingPosition,
};
use sluice_node::Node;
use sluice_node::kinesis_sources::SourceStart;
use tokio::sync::Semaphore;

use super::{
    ACCOUNT_ID, AwsError, BoxFuture, Format, RestRoute, RestService, aws_response, error_response,
    parse_body,
};
use crate::http::{Request, Response};

/// The API version segment every Lambda path starts with.
const VERSION: &str = "2015-03-31";
const CONTENT_TYPE: &str = "application/json";

/// Version of `functions/catalog.json`; a start refuses a catalog with another.
pub const FUNCTIONS_CATALOG_VERSION: u32 = 1;

/// `Event` invocations queued or running at once; one more is refused with
/// `TooManyRequestsException` (429), which clients retry.
pub const EVENT_INVOCATIONS_MAX: usize = 1_000;

/// Largest `Code.ZipFile`, as Lambda's direct upload (50 MB); larger is
/// `RequestEntityTooLargeException` (413).
pub const ZIP_BYTES_MAX: usize = 50 * 1024 * 1024;

/// Largest unzipped code, as Lambda's 250 MB; past it the create fails and nothing is kept.
pub const UNZIPPED_BYTES_MAX: usize = 250 * 1024 * 1024;

/// Most entries a code zip may have; more is refused before anything is unpacked.
pub const ZIP_ENTRIES_MAX: usize = 10_000;

/// Retries of an `Event` invocation that failed, as Lambda's asynchronous invocation.
pub const EVENT_RETRIES: u32 = 2;

/// ListFunctions' page size when `MaxItems` is absent, and its largest, as Lambda's.
pub const LIST_FUNCTIONS_PAGE_DEFAULT: usize = 50;
/// See [`LIST_FUNCTIONS_PAGE_DEFAULT`].
pub const LIST_PAGE_MAX: usize = 10_000;

/// ListEventSourceMappings' page size when `MaxItems` is absent, as Lambda's.
pub const LIST_MAPPINGS_PAGE_DEFAULT: usize = 100;

/// Every route served; each reads a JSON body (Invoke's is the event).
pub const ROUTES: &[RestRoute] = &[
    RestRoute {
        method: "POST",
        path: "/2015-03-31/functions",
        action: "lambda:CreateFunction",
        formats: &[Format::Json],
    },
    RestRoute {
        method: "GET",
        path: "/2015-03-31/functions",
        action: "lambda:ListFunctions",
        formats: &[Format::Json],
    },
    RestRoute {
        method: "GET",
        path: "/2015-03-31/functions/{name}",
        action: "lambda:GetFunction",
        formats: &[Format::Json],
    },
    RestRoute {
        method: "GET",
        path: "/2015-03-31/functions/{name}/configuration",
        action: "lambda:GetFunctionConfiguration",
        formats: &[Format::Json],
    },
    RestRoute {
        method: "DELETE",
        path: "/2015-03-31/functions/{name}",
        action: "lambda:DeleteFunction",
        formats: &[Format::Json],
    },
    RestRoute {
        method: "POST",
        path: "/2015-03-31/functions/{name}/invocations",
        action: "lambda:InvokeFunction",
        formats: &[Format::Json],
    },
    RestRoute {
        method: "POST",
        path: "/2015-03-31/event-source-mappings",
        action: "lambda:CreateEventSourceMapping",
        formats: &[Format::Json],
    },
    RestRoute {
        method: "GET",
        path: "/2015-03-31/event-source-mappings",
        action: "lambda:ListEventSourceMappings",
        formats: &[Format::Json],
    },
    RestRoute {
        method: "GET",
        path: "/2015-03-31/event-source-mappings/{uuid}",
        action: "lambda:GetEventSourceMapping",
        formats: &[Format::Json],
    },
    RestRoute {
        method: "PUT",
        path: "/2015-03-31/event-source-mappings/{uuid}",
        action: "lambda:UpdateEventSourceMapping",
        formats: &[Format::Json],
    },
    RestRoute {
        method: "DELETE",
        path: "/2015-03-31/event-source-mappings/{uuid}",
        action: "lambda:DeleteEventSourceMapping",
        formats: &[Format::Json],
    },
];

/// How functions created through the API run.
#[derive(Debug, Clone)]
pub struct LambdaOptions {
    /// The Python interpreter of `python3.x` runtimes; it must have `awslambdaric`.
    pub python: String,
    /// The command of `nodejs*` runtimes, given the handler as its last argument.
    pub nodejs_ric: Vec<String>,
}

impl Default for LambdaOptions {
    fn default() -> Self {
        LambdaOptions {
            python: "python3".to_owned(),
            nodejs_ric: vec!["aws-lambda-ric".to_owned()],
        }
    }
}

/// A function created through the API, as its catalog keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatedFunction {
    pub definition: FunctionDefinition,
    pub runtime: String,
    pub role: String,
    pub description: String,
    pub code_location: String,
    pub last_modified_ms: u64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FunctionsCatalog {
    format_version: u32,
    functions: Vec<CreatedFunction>,
}

/// The Lambda API over the node's functions and mappings.
pub struct LambdaService {
    node: Arc<Node>,
    registry: FunctionRegistry,
    options: LambdaOptions,
    created: Mutex<BTreeMap<String, CreatedFunction>>,
    events: Arc<Semaphore>,
    /// Where `Event` invocations wait durably; `None` if its directory could not be opened
    /// (then `Event` invocations are refused rather than kept in memory only).
    event_queue: Option<Arc<EventQueue>>,
    /// Events a previous run left, run by [`LambdaService::resume_events`].
    left_events: Mutex<Vec<(PathBuf, QueuedEvent)>>,
}

fn catalog_path(node: &Node) -> PathBuf {
    node.data_dir().join("functions").join("catalog.json")
}

/// Registers the functions created through the API in an earlier run. Called at start, before
/// the API serves; a function whose name the config file took keeps the config's definition.
pub fn load_created_functions(
    node: &Node,
    registry: &FunctionRegistry,
) -> Result<Vec<CreatedFunction>, String> {
    let path = catalog_path(node);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(format!("reading {}: {error}", path.display())),
    };
    let catalog: FunctionsCatalog = serde_json::from_slice(&bytes)
        .map_err(|error| format!("parsing {}: {error}", path.display()))?;
    if catalog.format_version != FUNCTIONS_CATALOG_VERSION {
        return Err(format!(
            "{}: format version {} is not supported (this build reads {FUNCTIONS_CATALOG_VERSION})",
            path.display(),
            catalog.format_version
        ));
    }
    let mut loaded = Vec::new();
    for function in catalog.functions {
        match registry.register(function.definition.clone()) {
            Ok(()) => loaded.push(function),
            Err(error) => {
                tracing::warn!(function = %function.definition.name, %error, "a function of the catalog was not registered")
            }
        }
    }
    Ok(loaded)
}

impl LambdaService {
    /// The service; `created` are the functions [`load_created_functions`] registered.
    pub fn new(
        node: Arc<Node>,
        registry: FunctionRegistry,
        options: LambdaOptions,
        created: Vec<CreatedFunction>,
    ) -> LambdaService {
        let (event_queue, left_events) = match EventQueue::open(
            &node.data_dir().join("functions").join("events"),
            node.keyring().cloned(),
        ) {
            Ok((queue, left, damaged)) => {
                for file in damaged {
                    tracing::error!(
                        file,
                        "an Event invocation file cannot be read; left in place"
                    );
                }
                (Some(Arc::new(queue)), left)
            }
            Err(error) => {
                tracing::error!(%error, "the Event invocation queue cannot be opened; Event invocations are refused");
                (None, Vec::new())
            }
        };
        LambdaService {
            event_queue,
            left_events: Mutex::new(left_events),
            node,
            registry,
            options,
            created: Mutex::new(
                created
                    .into_iter()
                    .map(|function| (function.definition.name.clone(), function))
                    .collect(),
            ),
            events: Arc::new(Semaphore::new(EVENT_INVOCATIONS_MAX)),
        }
    }

    /// Runs the `Event` invocations a previous run acknowledged and did not finish, oldest
    /// first, each once a slot of [`EVENT_INVOCATIONS_MAX`] is free. Returns how many.
    pub fn resume_events(&self) -> usize {
        let left = std::mem::take(&mut *self.left_events.lock().unwrap_or_else(|p| p.into_inner()));
        let count = left.len();
        for (path, event) in left {
            let registry = self.registry.clone();
            let events = Arc::clone(&self.events);
            tokio::spawn(async move {
                let Ok(permit) = events.acquire_owned().await else {
                    return;
                };
                run_event(registry, event.function, event.payload, path).await;
                drop(permit);
            });
        }
        count
    }

    fn mappings(&self) -> &Arc<EventSourceMappings> {
        self.node.mappings()
    }

    fn persist(&self, created: &BTreeMap<String, CreatedFunction>) -> Result<(), AwsError> {
        let catalog = FunctionsCatalog {
            format_version: FUNCTIONS_CATALOG_VERSION,
            functions: created.values().cloned().collect(),
        };
        let bytes = serde_json::to_vec_pretty(&catalog)
            .map_err(|error| AwsError::internal(error.to_string()))?;
        let path = catalog_path(&self.node);
        write_atomically(&path, &bytes)
            .map_err(|error| AwsError::internal(format!("writing {}: {error}", path.display())))
    }
}

/// Runs one queued `Event` invocation with Lambda's retries, then forgets its file.
async fn run_event(registry: FunctionRegistry, name: String, payload: Value, path: PathBuf) {
    let options = InvokeOptions {
        number_of_retries: EVENT_RETRIES,
    };
    match registry.invoke_with(&name, &payload, &options).await {
        Ok(_) => {}
        Err(FunctionsError::FunctionNotFound { .. }) => {
            tracing::warn!(function = %name, "a queued Event invocation's function is gone; dropped");
        }
        Err(error) => {
            tracing::warn!(function = %name, %error, "an Event invocation failed after its retries");
        }
    }
    let _ = tokio::task::spawn_blocking(move || EventQueue::done(&path)).await;
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let directory = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(directory)?;
    let temporary = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path)?;
    std::fs::File::open(directory)?.sync_all()
}

fn not_found(message: impl Into<String>) -> AwsError {
    AwsError::new(StatusCode::NOT_FOUND, "ResourceNotFoundException", message)
}

fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::client("InvalidParameterValueException", message)
}

fn conflict(message: impl Into<String>) -> AwsError {
    AwsError::new(StatusCode::CONFLICT, "ResourceConflictException", message)
}

fn function_not_found(name: &str) -> AwsError {
    not_found(format!("Function not found: {}", function_arn(name)))
}

/// The one place where function-host errors become Lambda's.
fn functions_error(error: FunctionsError) -> AwsError {
    match error {
        FunctionsError::FunctionNotFound { name } => function_not_found(&name),
        FunctionsError::FunctionExists { name } => {
            conflict(format!("Function already exist: {name}"))
        }
        FunctionsError::InvalidArn { .. }
        | FunctionsError::InvalidDefinition { .. }
        | FunctionsError::InvalidEvent { .. } => invalid(error.to_string()),
        FunctionsError::RequestTooLarge { bytes, limit } => AwsError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestTooLargeException",
            format!(
                "Request must be smaller than {limit} bytes for the InvokeFunction operation (was {bytes})"
            ),
        ),
        FunctionsError::TooManyRequests { .. } => AwsError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequestsException",
            "Rate Exceeded.",
        ),
        FunctionsError::ShutDown => AwsError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceException",
            "the function host is shutting down",
        ),
        other => AwsError::internal(other.to_string()),
    }
}

/// The one place where mapping errors become Lambda's.
fn mapping_error(error: MappingError) -> AwsError {
    match error {
        MappingError::NotFound(_) => not_found(
            "The resource you requested does not exist. (Service: Lambda, Status Code: 404)",
        ),
        MappingError::InvalidParameter(message) | MappingError::SourceNotFound(message) => {
            invalid(message)
        }
        MappingError::Conflict(message) => conflict(message),
        MappingError::LimitExceeded(message) => {
            AwsError::client("ResourceLimitExceededException", message)
        }
        other => AwsError::internal(other.to_string()),
    }
}

fn string_member(body: &Value, name: &str) -> Result<Option<String>, AwsError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(invalid(format!("{name} must be a string"))),
    }
}

fn integer_member(body: &Value, name: &str) -> Result<Option<i64>, AwsError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_i64()
            .map(Some)
            .ok_or_else(|| invalid(format!("{name} must be an integer"))),
    }
}

fn bool_member(body: &Value, name: &str) -> Result<Option<bool>, AwsError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_bool()
            .map(Some)
            .ok_or_else(|| invalid(format!("{name} must be true or false"))),
    }
}

/// Lambda's `LastModified`: `2024-01-31T12:00:00.000+0000`.
fn last_modified(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|at| {
            at.format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]+0000"
            ))
            .ok()
        })
        .unwrap_or_default()
}

impl LambdaService {
    fn configuration(&self, definition: &FunctionDefinition) -> Value {
        let created = self
            .created
            .lock()
            .ok()
            .and_then(|created| created.get(&definition.name).cloned());
        let (runtime, role, description, modified_ms) = match &created {
            Some(created) => (
                created.runtime.clone(),
                created.role.clone(),
                created.description.clone(),
                created.last_modified_ms,
            ),
            None => (
                "provided".to_owned(),
                format!("arn:aws:iam::{ACCOUNT_ID}:role/sluice"),
                String::new(),
                0,
            ),
        };
        json!({
            "FunctionName": definition.name,
            "FunctionArn": function_arn(&definition.name),
            "Runtime": runtime,
            "Role": role,
            "Handler": definition.handler.clone().unwrap_or_default(),
            "CodeSize": 0,
            "Description": description,
            "Timeout": definition.timeout.as_secs().max(1),
            "MemorySize": definition.memory_size_mb,
            "LastModified": last_modified(modified_ms),
            "CodeSha256": "",
            "Version": "$LATEST",
            "Environment": {"Variables": definition.environment},
            "State": "Active",
            "LastUpdateStatus": "Successful",
            "PackageType": "Zip",
            "Architectures": ["x86_64"],
        })
    }

    fn code_directory(&self, name: &str, code: &Value) -> Result<(PathBuf, String), AwsError> {
        if let Some(zip) = code.get("ZipFile").filter(|zip| !zip.is_null()) {
            let zip = zip
                .as_str()
                .and_then(|text| {
                    use base64::Engine;
                    base64::engine::general_purpose::STANDARD.decode(text).ok()
                })
                .ok_or_else(|| invalid("Code.ZipFile must be the bytes of a zip file"))?;
            let directory = self.unpacked_dir(name);
            unpack_zip(&zip, &directory)?;
            return Ok((directory, "ZipFile".to_owned()));
        }
        let (Some(bucket), Some(key)) = (
            string_member(code, "S3Bucket")?,
            string_member(code, "S3Key")?,
        ) else {
            return Err(invalid(
                "Code must name a directory of the s3 store with S3Bucket and S3Key",
            ));
        };
        let relative = Path::new(&bucket).join(&key);
        if relative
            .components()
            .any(|component| !matches!(component, Component::Normal(_)))
        {
            return Err(invalid(
                "Code.S3Bucket and Code.S3Key must be relative names without '..'",
            ));
        }
        let directory = self.node.s3_dir().join(relative);
        if !directory.is_dir() {
            return Err(invalid(format!(
                "Error occurred while GetObject. S3 Error Code: NoSuchKey. S3 Error Message: the directory s3/{bucket}/{key} does not exist"
            )));
        }
        Ok((directory, format!("s3://{bucket}/{key}")))
    }

    fn create_function(&self, body: &Value) -> Result<(StatusCode, Value), AwsError> {
        let name = string_member(body, "FunctionName")?
            .ok_or_else(|| invalid("FunctionName is required"))?;
        let name = function_name(&name).map_err(functions_error)?.to_owned();
        let runtime =
            string_member(body, "Runtime")?.ok_or_else(|| invalid("Runtime is required"))?;
        let role = string_member(body, "Role")?.unwrap_or_default();
        let handler = string_member(body, "Handler")?;
        let code = body
            .get("Code")
            .ok_or_else(|| invalid("Code is required"))?;
        let (directory, code_location) = self.code_directory(&name, code)?;
        let command = if runtime.starts_with("python3") {
            let handler = handler
                .clone()
                .ok_or_else(|| invalid("Handler is required for runtime python3.x"))?;
            vec![
                self.options.python.clone(),
                "-m".to_owned(),
                "awslambdaric".to_owned(),
                handler,
            ]
        } else if runtime.starts_with("nodejs") {
            let handler = handler
                .clone()
                .ok_or_else(|| invalid("Handler is required for runtime nodejs"))?;
            let mut command = self.options.nodejs_ric.clone();
            command.push(handler);
            command
        } else if runtime.starts_with("provided") {
            vec![directory.join("bootstrap").display().to_string()]
        } else {
            return Err(invalid(format!(
                "Value {runtime} at 'runtime' failed to satisfy constraint: Sluice runs python3.x, nodejs and provided runtimes"
            )));
        };
        let mut definition =
            FunctionDefinition::new(name.clone(), FunctionKind::RuntimeApi, command);
        definition.handler = handler;
        definition.task_root = Some(directory);
        if let Some(timeout) = integer_member(body, "Timeout")? {
            let seconds = u64::try_from(timeout)
                .ok()
                .filter(|seconds| (1..=900).contains(seconds))
                .ok_or_else(|| invalid(format!("1 validation error detected: Value '{timeout}' at 'timeout' failed to satisfy constraint: Member must have value between 1 and 900")))?;
            definition.timeout = std::time::Duration::from_secs(seconds);
        }
        if let Some(memory) = integer_member(body, "MemorySize")? {
            definition.memory_size_mb =
                u32::try_from(memory).map_err(|_| invalid("MemorySize is out of range"))?;
        }
        if let Some(variables) = body
            .get("Environment")
            .and_then(|environment| environment.get("Variables"))
            .and_then(Value::as_object)
        {
            for (key, value) in variables {
                let value = value
                    .as_str()
                    .ok_or_else(|| invalid("Environment variables must be strings"))?;
                definition.environment.insert(key.clone(), value.to_owned());
            }
        }
        let mut created = self
            .created
            .lock()
            .map_err(|_| AwsError::internal("the function catalog is unusable"))?;
        self.registry
            .register(definition.clone())
            .map_err(functions_error)?;
        created.insert(
            name.clone(),
            CreatedFunction {
                definition: definition.clone(),
                runtime,
                role,
                description: string_member(body, "Description")?.unwrap_or_default(),
                code_location,
                last_modified_ms: self.node.log().clock().now_ms(),
            },
        );
        if let Err(error) = self.persist(&created) {
            created.remove(&name);
            drop(created);
            let registry = self.registry.clone();
            let name = name.clone();
            tokio::spawn(async move { registry.remove(&name).await });
            return Err(error);
        }
        drop(created);
        Ok((StatusCode::CREATED, self.configuration(&definition)))
    }

    /// Where a function's `Code.ZipFile` is unpacked.
    fn unpacked_dir(&self, name: &str) -> PathBuf {
        self.node
            .data_dir()
            .join("functions")
            .join("code")
            .join(name)
    }

    fn get_function(&self, name: &str) -> Result<Value, AwsError> {
        let definition = self.registry.definition(name).map_err(functions_error)?;
        let location = self
            .created
            .lock()
            .ok()
            .and_then(|created| {
                created
                    .get(&definition.name)
                    .map(|f| f.code_location.clone())
            })
            .unwrap_or_default();
        Ok(json!({
            "Configuration": self.configuration(&definition),
            "Code": {"RepositoryType": "S3", "Location": location},
        }))
    }

    fn list_functions(&self, request: &Request) -> Result<Value, AwsError> {
        let (start, page) = paging(request, LIST_FUNCTIONS_PAGE_DEFAULT)?;
        let names = self.registry.names();
        let functions: Vec<Value> = names
            .iter()
            .skip(start)
            .take(page)
            .filter_map(|name| self.registry.definition(name).ok())
            .map(|definition| self.configuration(&definition))
            .collect();
        let mut answer = json!({"Functions": functions});
        if start + page < names.len() {
            answer["NextMarker"] = json!((start + page).to_string());
        }
        Ok(answer)
    }

    async fn delete_function(&self, name: &str) -> Result<(), AwsError> {
        let name = function_name(name).map_err(functions_error)?.to_owned();
        self.registry.remove(&name).await.map_err(functions_error)?;
        // Writing the catalog (fsynced) and removing the unpacked code: off the async workers.
        tokio::task::block_in_place(|| {
            let mut created = self
                .created
                .lock()
                .map_err(|_| AwsError::internal("the function catalog is unusable"))?;
            if let Some(removed) = created.remove(&name) {
                self.persist(&created)?;
                if removed.code_location == "ZipFile" {
                    let _ = std::fs::remove_dir_all(self.unpacked_dir(&name));
                }
            }
            Ok(())
        })
    }

    async fn invoke(&self, name: &str, request: &Request) -> Response {
        let header = |header: &str| {
            request
                .headers
                .get(header)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        let invocation_type =
            header("x-amz-invocation-type").unwrap_or_else(|| "RequestResponse".to_owned());
        let fail = |error: AwsError| error_response(&error, CONTENT_TYPE);
        if request.body.len() > PAYLOAD_BYTES_MAX {
            return fail(functions_error(FunctionsError::RequestTooLarge {
                bytes: request.body.len(),
                limit: PAYLOAD_BYTES_MAX,
            }));
        }
        // The payload is any JSON value, read before the function is looked up.
        let payload = if request.body.is_empty() {
            json!({})
        } else {
            match crate::json::parse(&request.body, crate::json::Duplicates::KeepLast) {
                Ok(payload) => payload,
                Err(error) => {
                    return fail(AwsError::client(
                        "InvalidRequestContentException",
                        format!("Could not parse request body into json: {error}"),
                    ));
                }
            }
        };
        if let Err(error) = self.registry.definition(name) {
            return fail(functions_error(error));
        }
        match invocation_type.as_str() {
            "DryRun" => Response::new(StatusCode::NO_CONTENT, CONTENT_TYPE, Vec::new()),
            "Event" => {
                let Ok(permit) = Arc::clone(&self.events).try_acquire_owned() else {
                    return fail(functions_error(FunctionsError::TooManyRequests {
                        name: name.to_owned(),
                    }));
                };
                let Some(queue) = self.event_queue.clone() else {
                    return fail(AwsError::internal(
                        "the Event invocation queue is unavailable; see the server's log",
                    ));
                };
                let registry = self.registry.clone();
                let name = name.to_owned();
                // Acknowledged means durable: the 202 goes out only after the event is on disk.
                let persisted = {
                    let (name, payload) = (name.clone(), payload.clone());
                    tokio::task::spawn_blocking(move || queue.persist(&name, &payload)).await
                };
                let path = match persisted {
                    Ok(Ok(path)) => path,
                    Ok(Err(error)) => {
                        return fail(AwsError::internal(format!(
                            "queuing the Event invocation: {error}"
                        )));
                    }
                    Err(error) => {
                        return fail(AwsError::internal(format!(
                            "queuing the Event invocation: {error}"
                        )));
                    }
                };
                tokio::spawn(async move {
                    run_event(registry, name, payload, path).await;
                    drop(permit);
                });
                let mut response = Response::new(StatusCode::ACCEPTED, CONTENT_TYPE, Vec::new());
                response.headers.push((
                    "x-amzn-requestid",
                    format!("event-{}", name_hash(&request.body)),
                ));
                response
            }
            "RequestResponse" => {
                let options = InvokeOptions {
                    number_of_retries: 0,
                };
                let tail = header("x-amz-log-type").is_some_and(|log_type| log_type == "Tail");
                let log = LogTail::default();
                let started = std::time::Instant::now();
                let outcome = if tail {
                    self.registry
                        .invoke_logged(name, &payload, &options, &log)
                        .await
                } else {
                    self.registry.invoke_with(name, &payload, &options).await
                };
                let log_result =
                    tail.then(|| log_result(&log.text(), started.elapsed(), &self.registry, name));
                let (body, function_error) = match outcome {
                    Ok(invocation) => (invocation.response, None),
                    Err(error) => match error.last_attempt() {
                        FunctionsError::FunctionError {
                            error_type,
                            message,
                            ..
                        } => (
                            json!({"errorMessage": message, "errorType": error_type, "stackTrace": []}),
                            Some("Unhandled"),
                        ),
                        FunctionsError::Timeout { timeout_ms, .. } => (
                            json!({
                                "errorMessage": format!("Task timed out after {:.2} seconds", *timeout_ms as f64 / 1000.0),
                                "errorType": "Sandbox.Timedout",
                            }),
                            Some("Unhandled"),
                        ),
                        other if other.is_the_functions_own() => {
                            let error_type = match other {
                                FunctionsError::StartFailed { error_type, .. } => {
                                    error_type.clone()
                                }
                                FunctionsError::InvalidJson { .. } => {
                                    "Runtime.InvalidResponse".to_owned()
                                }
                                _ => "Runtime.Unknown".to_owned(),
                            };
                            (
                                json!({"errorMessage": other.to_string(), "errorType": error_type}),
                                Some("Unhandled"),
                            )
                        }
                        _ => return fail(functions_error(error)),
                    },
                };
                let mut response = aws_response(StatusCode::OK, CONTENT_TYPE, &body);
                response
                    .headers
                    .push(("x-amz-executed-version", "$LATEST".to_owned()));
                if let Some(log_result) = log_result {
                    response.headers.push(("x-amz-log-result", log_result));
                }
                if let Some(function_error) = function_error {
                    response
                        .headers
                        .push(("x-amz-function-error", function_error.to_owned()));
                }
                response
            }
            other => fail(invalid(format!(
                "1 validation error detected: Value '{other}' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]"
            ))),
        }
    }
}

/// `X-Amz-Log-Result`: the invocation's output between Lambda's START, END and REPORT lines,
/// its last [`LOG_TAIL_BYTES_MAX`] bytes, in base64.
fn log_result(
    output: &str,
    elapsed: std::time::Duration,
    registry: &FunctionRegistry,
    name: &str,
) -> String {
    use base64::Engine;
    let request_id = super::request_id();
    let memory_mb = registry
        .definition(name)
        .map_or(0, |definition| definition.memory_size_mb);
    let duration_ms = elapsed.as_secs_f64() * 1000.0;
    let mut text = format!("START RequestId: {request_id} Version: $LATEST\n");
    if !output.is_empty() {
        text.push_str(output);
        text.push('\n');
    }
    text.push_str(&format!(
        "END RequestId: {request_id}\nREPORT RequestId: {request_id}\tDuration: {duration_ms:.2} ms\tBilled Duration: {} ms\tMemory Size: {memory_mb} MB\tMax Memory Used: {memory_mb} MB\t\n",
        duration_ms.ceil()
    ));
    let mut start = text.len().saturating_sub(LOG_TAIL_BYTES_MAX);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    base64::engine::general_purpose::STANDARD.encode(text.get(start..).unwrap_or_default())
}

/// A short, stable tag of a payload for an Event invocation's request id.
fn name_hash(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// Unpacks a function's zip into `directory` (replacing what was there): entries only under
/// it (names that would leave it are refused), at most [`ZIP_ENTRIES_MAX`] entries and
/// [`UNZIPPED_BYTES_MAX`] bytes; the owner's execute bit is kept, so a `bootstrap` runs.
fn unpack_zip(zip: &[u8], directory: &Path) -> Result<(), AwsError> {
    use std::io::Read;
    if zip.len() > ZIP_BYTES_MAX {
        return Err(AwsError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLargeException",
            format!("Zipped size must be smaller than {ZIP_BYTES_MAX} bytes"),
        ));
    }
    let bad = |reason: String| invalid(format!("Could not unzip uploaded file: {reason}"));
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(zip)).map_err(|error| bad(error.to_string()))?;
    if archive.len() > ZIP_ENTRIES_MAX {
        return Err(bad(format!("more than {ZIP_ENTRIES_MAX} entries")));
    }
    let staging = directory.with_extension("unpacking");
    let io = |error: std::io::Error| AwsError::internal(format!("unpacking code: {error}"));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(io)?;
    let mut budget = UNZIPPED_BYTES_MAX;
    for index in 0..archive.len() {
        let mut entry = archive
            .by_index(index)
            .map_err(|error| bad(error.to_string()))?;
        let relative = entry.enclosed_name().ok_or_else(|| {
            bad(format!(
                "entry {:?} leaves the code directory",
                entry.name()
            ))
        })?;
        let target = staging.join(relative);
        if entry.is_dir() {
            std::fs::create_dir_all(&target).map_err(io)?;
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let mut file = std::fs::File::create(&target).map_err(io)?;
        let limit = u64::try_from(budget).unwrap_or(u64::MAX).saturating_add(1);
        let written = std::io::copy(&mut (&mut entry).take(limit), &mut file)
            .map_err(|error| bad(error.to_string()))?;
        budget = budget
            .checked_sub(usize::try_from(written).unwrap_or(usize::MAX))
            .ok_or_else(|| {
                bad(format!(
                    "Unzipped size must be smaller than {UNZIPPED_BYTES_MAX} bytes"
                ))
            })?;
        #[cfg(unix)]
        if entry.unix_mode().is_some_and(|mode| mode & 0o100 != 0) {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o700))
                .map_err(io)?;
        }
    }
    let _ = std::fs::remove_dir_all(directory);
    std::fs::rename(&staging, directory).map_err(io)?;
    Ok(())
}

/// `Marker` (an offset this API handed out) and `MaxItems`.
fn paging(request: &Request, default: usize) -> Result<(usize, usize), AwsError> {
    let start = match request.param("Marker") {
        None => 0,
        Some(marker) => marker
            .parse()
            .map_err(|_| invalid("Marker is not one this API handed out"))?,
    };
    let page = match request.param("MaxItems") {
        None => default,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|page| (1..=LIST_PAGE_MAX).contains(page))
            .ok_or_else(|| invalid(format!("MaxItems must be between 1 and {LIST_PAGE_MAX}")))?,
    };
    Ok((start, page))
}

impl LambdaService {
    /// Resolves an `EventSourceArn` into what the mappings read.
    fn source_of(&self, arn: &str) -> Result<SourceSpec, AwsError> {
        let missing = || invalid(format!("Stream not found: {arn}"));
        if let Some(stream) = arn
            .strip_prefix("arn:aws:kinesis:")
            .and_then(|rest| rest.split_once(":stream/"))
            .map(|(_, name)| name)
        {
            self.node.log().stream(stream).map_err(|_| missing())?;
            return Ok(SourceSpec::Stream {
                stream: stream.to_owned(),
                copy: false,
            });
        }
        if let Some((table, label)) = arn
            .strip_prefix("arn:aws:dynamodb:")
            .and_then(|rest| rest.split_once(":table/"))
            .and_then(|(_, rest)| rest.split_once("/stream/"))
        {
            let streams = self
                .node
                .tables()
                .streams()
                .map_err(|error| AwsError::internal(error.to_string()))?;
            let stream = streams
                .into_iter()
                .find(|stream| {
                    stream.table_name == table
                        && stream.disabled_ms.is_none()
                        && super::dynamodb::stream_label(stream.created_ms) == label
                })
                .ok_or_else(missing)?;
            return Ok(SourceSpec::TableStream {
                stream_id: stream.stream_id,
                table: table.to_owned(),
                view_type: stream.view_type.as_str().to_owned(),
            });
        }
        Err(invalid(format!(
            "Unsupported event source: {arn}; Sluice maps Kinesis streams and DynamoDB table streams"
        )))
    }

    /// The stream an OnFailure destination names.
    fn failure_stream(&self, destination: &str) -> Result<String, AwsError> {
        let stream = destination
            .strip_prefix("arn:aws:kinesis:")
            .and_then(|rest| rest.split_once(":stream/"))
            .map(|(_, name)| name.to_owned())
            .ok_or_else(|| {
                invalid(format!(
                    "The OnFailure destination {destination} is not supported: Sluice sends failures to a Kinesis stream"
                ))
            })?;
        self.node
            .log()
            .stream(&stream)
            .map_err(|_| invalid(format!("Stream not found: {destination}")))?;
        Ok(stream)
    }

    /// Applies the options a Create or Update request names.
    fn apply_options(&self, body: &Value, config: &mut MappingConfig) -> Result<(), AwsError> {
        let bounded = |name: &str, value: i64| {
            i32::try_from(value).map_err(|_| invalid(format!("{name} is out of range")))
        };
        if let Some(enabled) = bool_member(body, "Enabled")? {
            config.enabled = enabled;
        }
        if let Some(size) = integer_member(body, "BatchSize")? {
            config.batch_size =
                u32::try_from(size).map_err(|_| invalid("BatchSize is out of range"))?;
        }
        if let Some(window) = integer_member(body, "MaximumBatchingWindowInSeconds")? {
            config.maximum_batching_window_s = u32::try_from(window)
                .map_err(|_| invalid("MaximumBatchingWindowInSeconds is out of range"))?;
        }
        if let Some(factor) = integer_member(body, "ParallelizationFactor")? {
            config.parallelization_factor = u32::try_from(factor)
                .map_err(|_| invalid("ParallelizationFactor is out of range"))?;
        }
        if let Some(retries) = integer_member(body, "MaximumRetryAttempts")? {
            config.maximum_retry_attempts = bounded("MaximumRetryAttempts", retries)?;
        }
        if let Some(age) = integer_member(body, "MaximumRecordAgeInSeconds")? {
            config.maximum_record_age_s = bounded("MaximumRecordAgeInSeconds", age)?;
        }
        if let Some(bisect) = bool_member(body, "BisectBatchOnFunctionError")? {
            config.bisect_batch_on_function_error = bisect;
        }
        if let Some(types) = body.get("FunctionResponseTypes") {
            let types = types
                .as_array()
                .ok_or_else(|| invalid("FunctionResponseTypes must be a list"))?;
            config.report_batch_item_failures = false;
            for kind in types {
                match kind.as_str() {
                    Some("ReportBatchItemFailures") => config.report_batch_item_failures = true,
                    _ => {
                        return Err(invalid(format!(
                            "1 validation error detected: Value '{kind}' at 'functionResponseTypes' failed to satisfy constraint: Member must satisfy enum value set: [ReportBatchItemFailures]"
                        )));
                    }
                }
            }
        }
        if let Some(destination) = body
            .get("DestinationConfig")
            .and_then(|config| config.get("OnFailure"))
        {
            match string_member(destination, "Destination")? {
                Some(arn) if !arn.is_empty() => {
                    config.on_failure_stream = Some(self.failure_stream(&arn)?);
                    config.on_failure_destination = Some(arn);
                }
                _ => {
                    config.on_failure_stream = None;
                    config.on_failure_destination = None;
                }
            }
        }
        if let Some(criteria) = body.get("FilterCriteria") {
            let filters = match criteria.get("Filters") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(filters)) => filters.clone(),
                Some(_) => return Err(invalid("FilterCriteria.Filters must be a list")),
            };
            config.filters = filters
                .iter()
                .map(|filter| {
                    string_member(filter, "Pattern")?
                        .ok_or_else(|| invalid("each filter needs a Pattern"))
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some(function) = string_member(body, "FunctionName")? {
            let definition = self
                .registry
                .definition(&function)
                .map_err(functions_error)?;
            config.function_arn = function_arn(&definition.name);
        }
        Ok(())
    }

    /// Creates a mapping of the config file (`event_source_mappings`, each in
    /// CreateEventSourceMapping's request shape) unless one of the same source and function
    /// exists: a restart keeps the mapping and its checkpoints. Returns its UUID.
    pub fn ensure_mapping(&self, body: &Value) -> Result<String, AwsError> {
        let arn = string_member(body, "EventSourceArn")?.unwrap_or_default();
        let function = string_member(body, "FunctionName")?.unwrap_or_default();
        let function = function_arn(function_name(&function).map_err(functions_error)?);
        if let Some(existing) = self.mappings().list().into_iter().find(|mapping| {
            mapping.config.event_source_arn == arn && mapping.config.function_arn == function
        }) {
            return Ok(existing.config.uuid);
        }
        let (_, created) = self.create_mapping(body)?;
        Ok(created["UUID"].as_str().unwrap_or_default().to_owned())
    }

    fn create_mapping(&self, body: &Value) -> Result<(StatusCode, Value), AwsError> {
        let arn = string_member(body, "EventSourceArn")?
            .ok_or_else(|| invalid("EventSourceArn is required"))?;
        let function = string_member(body, "FunctionName")?
            .ok_or_else(|| invalid("FunctionName is required"))?;
        let definition = self
            .registry
            .definition(&function)
            .map_err(functions_error)?;
        let external = self.node.kinesis_endpoints().resolve(&arn).cloned();
        let source = match external {
            // Read through a Kinesis source, made below once the options are known.
            Some(_) => SourceSpec::Stream {
                stream: String::new(),
                copy: true,
            },
            None => self.source_of(&arn)?,
        };
        let starting_position = match string_member(body, "StartingPosition")?.as_deref() {
            Some("TRIM_HORIZON") => StartingPosition::TrimHorizon,
            Some("LATEST") => StartingPosition::Latest,
            Some("AT_TIMESTAMP") => {
                let seconds = body
                    .get("StartingPositionTimestamp")
                    .and_then(Value::as_f64)
                    .ok_or_else(|| {
                        invalid("StartingPositionTimestamp is required with AT_TIMESTAMP")
                    })?;
                StartingPosition::AtTimestamp {
                    timestamp_ms: (seconds.max(0.0) * 1000.0) as u64,
                }
            }
            Some(other) => {
                return Err(invalid(format!(
                    "1 validation error detected: Value '{other}' at 'startingPosition' failed to satisfy constraint: Member must satisfy enum value set: [LATEST, AT_TIMESTAMP, TRIM_HORIZON]"
                )));
            }
            None => {
                return Err(invalid(
                    "1 validation error detected: Value null at 'startingPosition' failed to satisfy constraint: Member must not be null",
                ));
            }
        };
        let mut config = MappingConfig::new(
            new_uuid(),
            arn,
            source,
            function_arn(&definition.name),
            starting_position,
        );
        let mut options = body.clone();
        if let Some(members) = options.as_object_mut() {
            members.remove("FunctionName");
        }
        self.apply_options(&options, &mut config)?;
        let description = match external {
            None => self.mappings().create(config).map_err(mapping_error)?,
            Some(endpoint) => self.create_mapping_of_external_stream(config, &endpoint)?,
        };
        Ok((
            StatusCode::ACCEPTED,
            mapping_json(&description, Some("Creating")),
        ))
    }

    /// Creates a mapping of a stream outside this node (the `--config` file's
    /// `kinesis_endpoints`): a Kinesis source of the node copies the stream from the mapping's
    /// starting position on, and the mapping reads the copy; the source starts once the mapping
    /// exists and is deleted with it.
    fn create_mapping_of_external_stream(
        &self,
        mut config: MappingConfig,
        endpoint: &sluice_node::KinesisEndpoint,
    ) -> Result<MappingDescription, AwsError> {
        let now_ms = sluice_node::kinesis_client::now_ms();
        let start = match config.starting_position {
            StartingPosition::TrimHorizon => SourceStart::TrimHorizon,
            StartingPosition::Latest => SourceStart::AtTimestamp {
                timestamp_ms: now_ms,
            },
            StartingPosition::AtTimestamp { timestamp_ms } => {
                SourceStart::AtTimestamp { timestamp_ms }
            }
        };
        self.node.kinesis_sources().create_with_consumer(
            &format!("lambda/{}", config.uuid),
            &config.event_source_arn.clone(),
            endpoint,
            start,
            now_ms,
            |copy_stream| {
                config.source = SourceSpec::Stream {
                    stream: copy_stream,
                    copy: true,
                };
                self.mappings().create(config).map_err(mapping_error)
            },
            invalid,
        )
    }

    fn list_mappings(&self, request: &Request) -> Result<Value, AwsError> {
        let (start, page) = paging(request, LIST_MAPPINGS_PAGE_DEFAULT)?;
        let function = match request.param("FunctionName") {
            Some(name) => Some(function_arn(function_name(name).map_err(functions_error)?)),
            None => None,
        };
        let source = request.param("EventSourceArn");
        let all: Vec<MappingDescription> = self
            .mappings()
            .list()
            .into_iter()
            .filter(|mapping| {
                function
                    .as_ref()
                    .is_none_or(|function| &mapping.config.function_arn == function)
                    && source.is_none_or(|source| mapping.config.event_source_arn == source)
            })
            .collect();
        let mappings: Vec<Value> = all
            .iter()
            .skip(start)
            .take(page)
            .map(|mapping| mapping_json(mapping, None))
            .collect();
        let mut answer = json!({"EventSourceMappings": mappings});
        if start + page < all.len() {
            answer["NextMarker"] = json!((start + page).to_string());
        }
        Ok(answer)
    }

    fn update_mapping(&self, uuid: &str, body: &Value) -> Result<(StatusCode, Value), AwsError> {
        let mut failure = None;
        let outcome = self.mappings().update(uuid, |config| {
            self.apply_options(body, config).map_err(|error| {
                let message = error.message.clone();
                failure = Some(error);
                MappingError::InvalidParameter(message)
            })
        });
        match outcome {
            Ok(description) => Ok((
                StatusCode::ACCEPTED,
                mapping_json(&description, Some("Updating")),
            )),
            Err(error) => Err(failure.unwrap_or_else(|| mapping_error(error))),
        }
    }

    async fn operation(&self, request: &Request) -> Result<(StatusCode, Value), AwsError> {
        let segments: Vec<&str> = request.segments.iter().map(String::as_str).collect();
        let method = &request.method;
        // Every route reads its body first, so bad input is refused the same way everywhere.
        let body = parse_body(&request.body)?;
        let body = || Ok::<_, AwsError>(body.clone());
        match (method, segments.as_slice()) {
            (&Method::POST, [_, "functions"]) => {
                // Unpacking a zip writes files: off the async workers.
                let body = body()?;
                tokio::task::block_in_place(|| self.create_function(&body))
            }
            // The function catalog's lock is held across its fsynced writes, and the mappings'
            // across stopping their workers (which waits for an invocation in flight): readers
            // wait for it off the async workers too.
            (&Method::GET, [_, "functions"]) => Ok((
                StatusCode::OK,
                crate::http::off_worker(|| self.list_functions(request))?,
            )),
            (&Method::GET, [_, "functions", name]) => Ok((
                StatusCode::OK,
                crate::http::off_worker(|| self.get_function(name))?,
            )),
            (&Method::GET, [_, "functions", name, "configuration"]) => {
                let definition = self.registry.definition(name).map_err(functions_error)?;
                Ok((
                    StatusCode::OK,
                    crate::http::off_worker(|| self.configuration(&definition)),
                ))
            }
            (&Method::DELETE, [_, "functions", name]) => {
                self.delete_function(name).await?;
                Ok((StatusCode::NO_CONTENT, Value::Null))
            }
            (&Method::POST, [_, "event-source-mappings"]) => {
                // Resolving the starting position reads the source: off the async workers.
                let body = body()?;
                tokio::task::block_in_place(|| self.create_mapping(&body))
            }
            (&Method::GET, [_, "event-source-mappings"]) => Ok((
                StatusCode::OK,
                crate::http::off_worker(|| self.list_mappings(request))?,
            )),
            (&Method::GET, [_, "event-source-mappings", uuid]) => Ok((
                StatusCode::OK,
                mapping_json(
                    &crate::http::off_worker(|| self.mappings().get(uuid))
                        .map_err(mapping_error)?,
                    None,
                ),
            )),
            (&Method::PUT, [_, "event-source-mappings", uuid]) => {
                // Stopping the workers waits for an invocation in flight.
                let body = body()?;
                tokio::task::block_in_place(|| self.update_mapping(uuid, &body))
            }
            (&Method::DELETE, [_, "event-source-mappings", uuid]) => {
                let description = tokio::task::block_in_place(|| {
                    let description = self.mappings().delete(uuid)?;
                    self.node
                        .kinesis_sources()
                        .delete_of_owner(&format!("lambda/{uuid}"));
                    Ok(description)
                })
                .map_err(mapping_error)?;
                Ok((
                    StatusCode::ACCEPTED,
                    mapping_json(&description, Some("Deleting")),
                ))
            }
            _ => Err(AwsError::new(
                StatusCode::NOT_FOUND,
                "UnknownOperationException",
                format!("no operation at {} {}", request.method, request.raw_path),
            )),
        }
    }
}

/// A new mapping's UUID: random bits from the standard library's hasher seeds and the time.
fn new_uuid() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut bits = 0u128;
    for round in 0..2u64 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(round);
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_nanos()),
        );
        bits = (bits << 64) | u128::from(hasher.finish());
    }
    // Version 4, variant 1.
    let bits = (bits & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        hex.get(0..8).unwrap_or_default(),
        hex.get(8..12).unwrap_or_default(),
        hex.get(12..16).unwrap_or_default(),
        hex.get(16..20).unwrap_or_default(),
        hex.get(20..32).unwrap_or_default()
    )
}

/// A mapping as Lambda describes it; `state` overrides the settled state in the answers of
/// Create, Update and Delete, as Lambda reports the transition.
fn mapping_json(mapping: &MappingDescription, state: Option<&str>) -> Value {
    let config = &mapping.config;
    let settled = if config.enabled {
        "Enabled"
    } else {
        "Disabled"
    };
    let mut answer = json!({
        "UUID": config.uuid,
        "StartingPosition": config.starting_position.as_str(),
        "BatchSize": config.batch_size,
        "MaximumBatchingWindowInSeconds": config.maximum_batching_window_s,
        "ParallelizationFactor": config.parallelization_factor,
        "EventSourceArn": config.event_source_arn,
        "FunctionArn": config.function_arn,
        "LastModified": config.last_modified_ms as f64 / 1000.0,
        "LastProcessingResult": mapping.last_processing_result,
        "State": state.unwrap_or(settled),
        "StateTransitionReason": "User action",
        "DestinationConfig": {"OnFailure": match &config.on_failure_destination {
            Some(destination) => json!({"Destination": destination}),
            None => json!({}),
        }},
        "MaximumRecordAgeInSeconds": config.maximum_record_age_s,
        "BisectBatchOnFunctionError": config.bisect_batch_on_function_error,
        "MaximumRetryAttempts": config.maximum_retry_attempts,
        "FunctionResponseTypes": if config.report_batch_item_failures {
            json!(["ReportBatchItemFailures"])
        } else {
            json!([])
        },
    });
    if let StartingPosition::AtTimestamp { timestamp_ms } = config.starting_position {
        answer["StartingPositionTimestamp"] = json!(timestamp_ms as f64 / 1000.0);
    }
    if !config.filters.is_empty() {
        answer["FilterCriteria"] = json!({
            "Filters": config.filters.iter().map(|pattern| json!({"Pattern": pattern})).collect::<Vec<_>>()
        });
    }
    answer
}

impl RestService for LambdaService {
    fn routes(&self) -> &'static [RestRoute] {
        ROUTES
    }

    fn handle<'a>(&'a self, request: &'a Request) -> Option<BoxFuture<'a, Response>> {
        if request.segments.first().map(String::as_str) != Some(VERSION) {
            return None;
        }
        Some(Box::pin(async move {
            if let (&Method::POST, [_, functions, name, invocations]) =
                (&request.method, request.segments.as_slice())
                && functions == "functions"
                && invocations == "invocations"
            {
                return self.invoke(name, request).await;
            }
            match self.operation(request).await {
                Ok((status, Value::Null)) => Response::new(status, CONTENT_TYPE, Vec::new()),
                Ok((status, body)) => aws_response(status, CONTENT_TYPE, &body),
                Err(error) => error_response(&error, CONTENT_TYPE),
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_version_4_and_differ() {
        let first = new_uuid();
        assert_eq!(first.len(), 36);
        assert_eq!(first.get(14..15), Some("4"));
        assert_ne!(first, new_uuid());
    }

    #[test]
    fn last_modified_is_lambdas_format() {
        assert_eq!(
            last_modified(1_700_000_000_123),
            "2023-11-14T22:13:20.123+0000"
        );
    }
}
