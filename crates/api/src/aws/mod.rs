//! The AWS-compatible port: AWS JSON 1.0/1.1 services dispatched by `X-Amz-Target`
//! (`Kinesis_20131202.PutRecord`, `Firehose_20150804.PutRecordBatch`, …) and REST-JSON services
//! dispatched by path (the QLDB control plane). Each service maps its errors to
//! `{"__type","message"}` with the status AWS gives, through [`AwsError`].
//!
//! Every service declares its route list ([`JsonService::operations`], [`RestService::routes`])
//! with the input formats each route reads, and [`CATALOG`] gathers them: the dispatcher serves
//! only listed routes, and the tests that send hostile input to every endpoint are generated
//! from the same lists, so a new endpoint is covered as soon as it can be called. JSON bodies
//! are parsed here, once, by [`crate::json`].
//!
//! Without `--security` request signatures (SigV4) are accepted unchecked; with it every request
//! must be signed (`check_signature`, `crate::sigv4`).

pub mod kinesis;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hyper::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::audit::{AuditEvent, Category};
use crate::http::{Handler, Refusal, Request, Response};
use crate::roles::Grants;
use crate::security::Authenticator;

/// The error of an identity beyond its rate (not audited: it is not a security event).
const THROTTLED: &str = "ThrottlingException";

/// A request whose signature and permissions were checked.
struct Checked {
    /// The payload of an `aws-chunked` body, which the handlers read instead of the body.
    decoded_body: Option<Vec<u8>>,
    /// The access key id.
    principal: String,
    /// The IAM action (empty when no operation serves the request).
    action: String,
    grants: Arc<Grants>,
}

/// Whether an IAM action is audited when it succeeds: deletes, and changes of a ledger's
/// settings.
fn is_privileged(action: &str) -> bool {
    let operation = action
        .split_once(':')
        .map_or("", |(_, operation)| operation);
    operation.starts_with("Delete")
        || matches!(
            operation,
            "UpdateLedger" | "CancelJournalKinesisStream" | "RestoreLedger"
        )
}
use crate::sigv4::{self, SigV4Error};

pub mod dynamodb;
pub mod dynamodb_streams;
pub mod firehose;
pub mod lambda;
pub mod lambda_events;
pub mod qldb;
pub mod qldb_session;
mod resources;

/// The account every resource belongs to (there is one, local, account), in ARNs and messages.
pub const ACCOUNT_ID: &str = "000000000000";

/// The region named in ARNs.
pub const REGION: &str = "us-east-1";

/// A request's turn to lead a group-commit queue (the tables' writes, a ledger's commits): the
/// queue is `queue`, and `lead(queue, n)` commits up to `n` groups and answers whether more wait.
/// Dropping a turn that still leads (work still waits, or the request unwound before leading)
/// hands it to a blocking-pool thread that leads until nothing waits, so queued work never
/// waits for a leader that is gone.
pub(crate) struct LeadTurn<Q: Send + Sync + 'static> {
    queue: Option<Arc<Q>>,
    lead: fn(&Q, usize) -> bool,
}

impl<Q: Send + Sync + 'static> LeadTurn<Q> {
    pub(crate) fn new(queue: Arc<Q>, lead: fn(&Q, usize) -> bool) -> Self {
        LeadTurn {
            queue: Some(queue),
            lead,
        }
    }

    /// Leads one group, the caller's own, on this worker's thread (`block_in_place`: the group
    /// waits for the disk, and tokio reads sockets only from workers that park), then leaves
    /// what queued meanwhile to a blocking-pool thread, so the caller answers without waiting
    /// for it. On a current-thread runtime the whole turn goes to the blocking pool.
    pub(crate) fn lead_one_group(mut self) {
        let multi_thread = tokio::runtime::Handle::current().runtime_flavor()
            == tokio::runtime::RuntimeFlavor::MultiThread;
        if let Some(queue) = &self.queue
            && multi_thread
            && !tokio::task::block_in_place(|| (self.lead)(queue, 1))
        {
            // Nothing waits: nobody leads, and nobody needs to.
            self.queue = None;
        }
    }
}

impl<Q: Send + Sync + 'static> Drop for LeadTurn<Q> {
    fn drop(&mut self) {
        if let Some(queue) = self.queue.take() {
            let lead = self.lead;
            tokio::task::spawn_blocking(move || while lead(&queue, usize::MAX) {});
        }
    }
}

/// A shard iterator (Kinesis or DynamoDB Streams) issued at `issued_ms` is valid for `ttl_ms`;
/// past that, GetRecords answers `ExpiredIteratorException` in the services' own words. A clock
/// that went back never expires one early.
pub(crate) fn check_iterator_age(issued_ms: u64, now_ms: u64, ttl_ms: u64) -> Result<(), AwsError> {
    if now_ms.saturating_sub(issued_ms) > ttl_ms {
        return Err(AwsError::client(
            "ExpiredIteratorException",
            format!(
                "Iterator expired. The iterator was created at time {issued_ms} while right now it is {now_ms} which is further in the future than the tolerated delay of {ttl_ms} milliseconds."
            ),
        ));
    }
    Ok(())
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An error as AWS JSON protocols report it.
#[derive(Debug, Clone)]
pub struct AwsError {
    pub status: StatusCode,
    /// The `__type`: `ResourceNotFoundException`, `ValidationException`, …
    pub kind: &'static str,
    pub message: String,
    /// Members some errors carry besides `__type` and `message` (DynamoDB's
    /// `CancellationReasons`, for one).
    pub extra: Option<Box<serde_json::Map<String, Value>>>,
}

impl AwsError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> AwsError {
        AwsError {
            status,
            kind,
            message: message.into(),
            extra: None,
        }
    }

    /// A 400 error of the given type.
    pub fn client(kind: &'static str, message: impl Into<String>) -> AwsError {
        AwsError::new(StatusCode::BAD_REQUEST, kind, message)
    }

    pub fn validation(message: impl Into<String>) -> AwsError {
        AwsError::client("ValidationException", message)
    }

    pub fn internal(message: impl Into<String>) -> AwsError {
        AwsError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailure",
            message,
        )
    }

    pub fn body(&self) -> Value {
        let mut body = json!({"__type": self.kind, "message": self.message});
        if let (Some(extra), Value::Object(members)) = (&self.extra, &mut body) {
            members.extend(
                extra
                    .iter()
                    .map(|(name, value)| (name.clone(), value.clone())),
            );
        }
        body
    }
}

/// An input format a route reads from the client, beyond its path: what tests send too deep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A JSON body (every AWS JSON operation, and REST routes that take a body).
    Json,
    /// Ion text in the JSON body member `{"<member>": {"IonText": "…"}}`.
    IonTextMember(&'static str),
    /// Statement parameters: QLDBSession value holders, `IonText` or base64 `IonBinary`.
    IonParameters,
    /// Ion files (manifests and journal blocks) of the directory the body member names.
    IonExportDirectory(&'static str),
}

/// One operation of a JSON service and the formats it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    pub name: &'static str,
    pub formats: &'static [Format],
}

/// One route of a REST service: method, path template (`/ledgers/{name}/block`; a `{…}`
/// segment matches any one segment) and the formats it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestRoute {
    pub method: &'static str,
    pub path: &'static str,
    /// The IAM action it is (`qldb:GetDigest`), which roles' cluster permissions allow.
    pub action: &'static str,
    pub formats: &'static [Format],
}

impl RestRoute {
    /// Whether a request's method and decoded path segments are this route's.
    pub fn matches(&self, method: &str, segments: &[String]) -> bool {
        let template = self.path.split('/').filter(|part| !part.is_empty());
        method == self.method
            && template.clone().count() == segments.len()
            && template.zip(segments).all(|(part, segment)| {
                (part.starts_with('{') && part.ends_with('}')) || part == segment
            })
    }
}

/// The route list of one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceRoutes {
    Json {
        target_prefix: &'static str,
        operations: &'static [Operation],
    },
    Rest {
        routes: &'static [RestRoute],
    },
}

/// Every AWS-compatible service Sluice serves, by its route list. [`AwsApi`] checks in debug
/// builds that each service it is given is listed here, so no endpoint escapes the tests
/// generated from this list.
pub const CATALOG: &[ServiceRoutes] = &[
    ServiceRoutes::Json {
        target_prefix: kinesis::TARGET_PREFIX,
        operations: kinesis::OPERATIONS,
    },
    ServiceRoutes::Json {
        target_prefix: firehose::TARGET_PREFIX,
        operations: firehose::OPERATIONS,
    },
    ServiceRoutes::Json {
        target_prefix: dynamodb::TARGET_PREFIX,
        operations: dynamodb::OPERATIONS,
    },
    ServiceRoutes::Json {
        target_prefix: dynamodb_streams::TARGET_PREFIX,
        operations: dynamodb_streams::OPERATIONS,
    },
    ServiceRoutes::Json {
        target_prefix: qldb_session::TARGET_PREFIX,
        operations: qldb_session::OPERATIONS,
    },
    ServiceRoutes::Rest {
        routes: qldb::ROUTES,
    },
    ServiceRoutes::Rest {
        routes: lambda::ROUTES,
    },
    ServiceRoutes::Rest {
        routes: firehose::METRICS_ROUTES,
    },
];

/// An AWS JSON service: operations named by the `X-Amz-Target` header, JSON in and out.
pub trait JsonService: Send + Sync + 'static {
    /// The part of `X-Amz-Target` before the dot, e.g. `Kinesis_20131202`.
    fn target_prefix(&self) -> &'static str;
    /// Every operation it serves; others are refused before [`JsonService::call`].
    fn operations(&self) -> &'static [Operation];
    fn call<'a>(
        &'a self,
        operation: &'a str,
        body: Value,
    ) -> BoxFuture<'a, Result<Value, AwsError>>;
    /// [`JsonService::call`] for a caller whose grants (with security on) a service may check
    /// further than the operation itself (QLDBSession checks each statement's tables).
    fn call_as<'a>(
        &'a self,
        operation: &'a str,
        body: Value,
        _grants: Option<Arc<Grants>>,
    ) -> BoxFuture<'a, Result<Value, AwsError>> {
        self.call(operation, body)
    }
}

/// A REST-JSON service: claims requests by path, answers them whole.
pub trait RestService: Send + Sync + 'static {
    /// Every route it serves; requests matching none are not handed to it.
    fn routes(&self) -> &'static [RestRoute];
    /// `None` when the request's path is not this service's.
    fn handle<'a>(&'a self, request: &'a Request) -> Option<BoxFuture<'a, Response>>;
}

/// Parses an AWS JSON body, which must be an object (an empty body is `{}`); errors are
/// SerializationException, as AWS answers malformed or too deeply nested input.
pub(crate) fn parse_body(body: &[u8]) -> Result<Value, AwsError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    match crate::json::parse(body, crate::json::Duplicates::KeepLast) {
        Ok(body @ Value::Object(_)) => Ok(body),
        Ok(_) => Err(AwsError::client(
            "SerializationException",
            "the request body must be a JSON object",
        )),
        Err(error) => Err(AwsError::client(
            "SerializationException",
            format!(
                "malformed JSON at line {} column {}: {error}",
                error.line(),
                error.column()
            ),
        )),
    }
}

#[derive(Default)]
pub struct AwsApi {
    json_services: Vec<Arc<dyn JsonService>>,
    rest_services: Vec<Arc<dyn RestService>>,
    /// With `--security`, every request must carry a SigV4 signature of a known access key.
    authenticator: Option<Arc<Authenticator>>,
}

/// The AWS error for a request whose signature does not check out: 400 for the JSON
/// protocols (`X-Amz-Target`), 403 for the REST ones, as AWS answers.
fn signature_error(error: &SigV4Error, rest: bool) -> AwsError {
    let status = if rest {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::BAD_REQUEST
    };
    AwsError::new(status, error.aws_type(), error.to_string())
}

static REQUEST_COUNTER: AtomicU64 = AtomicU64::new(0);

fn request_id() -> String {
    let n = REQUEST_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("00000000-0000-4000-8000-{n:012x}")
}

pub(crate) fn aws_response(
    status: StatusCode,
    content_type: &'static str,
    body: &Value,
) -> Response {
    let mut response = Response::new(
        status,
        content_type,
        serde_json::to_vec(body).unwrap_or_default(),
    );
    response.headers.push(("x-amzn-requestid", request_id()));
    response
}

pub(crate) fn error_response(error: &AwsError, content_type: &'static str) -> Response {
    let mut response = aws_response(error.status, content_type, &error.body());
    response
        .headers
        .push(("x-amzn-errortype", error.kind.to_string()));
    response
}

impl AwsApi {
    pub fn new() -> AwsApi {
        AwsApi::default()
    }

    /// Requires every request to be signed with a known access key.
    pub fn with_authenticator(mut self, authenticator: Arc<Authenticator>) -> AwsApi {
        self.authenticator = Some(authenticator);
        self
    }

    /// Checks the request's signature (header or presigned form) and its principal's role:
    /// `Err` is the AWS error; `Ok` carries the decoded payload of an `aws-chunked` body.
    fn check_signature(
        &self,
        authenticator: &Authenticator,
        request: &Request,
        target: Option<&str>,
    ) -> Result<Checked, AwsError> {
        let checked = self.check_signature_unaudited(authenticator, request, target);
        if let Err((error, principal)) = &checked
            && error.kind != THROTTLED
        {
            let category = if error.kind == "AccessDeniedException" {
                Category::PermissionDenied
            } else {
                Category::AuthenticationFailure
            };
            authenticator.audit().record(AuditEvent {
                category,
                port: "aws",
                principal: principal.clone(),
                action: self.iam_action(request, target),
                resource: request.raw_path.clone(),
                status: error.status.as_u16(),
                reason: format!("{}: {}", error.kind, error.message),
            });
        }
        checked.map_err(|(error, _)| error)
    }

    /// [`Self::check_signature`] without its audit: `Err` carries the access key id when known.
    fn check_signature_unaudited(
        &self,
        authenticator: &Authenticator,
        request: &Request,
        target: Option<&str>,
    ) -> Result<Checked, (AwsError, Option<String>)> {
        let rest = target.is_none();
        let status = if rest {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::BAD_REQUEST
        };
        if !request.headers.contains_key("authorization")
            && !sigv4::is_presigned(&request.raw_query)
        {
            return Err((
                AwsError::new(
                    status,
                    "MissingAuthenticationTokenException",
                    "Missing Authentication Token",
                ),
                None,
            ));
        }
        let action = self.iam_action(request, target);
        let (verified, principal) = authenticator
            .verify_signature(request)
            .map_err(|(error, key_id)| (signature_error(&error, rest), key_id))?;
        let grants = authenticator.grants(&principal);
        let allowed = if action.is_empty() {
            // A request no route serves is answered as unknown once authenticated.
            true
        } else if !grants.aws_statements_name(&action) {
            grants.cluster_allows(&action)
        } else {
            // Only statements naming the action make its resources matter: then the body is
            // read for them.
            let body = verified.decoded_body.as_deref().unwrap_or(&request.body);
            match resources::of(&action, body, &request.segments) {
                Some(resources) => grants.aws_allows(&action, &resources),
                None => grants.aws_allows_somewhere(&action),
            }
        };
        if allowed {
            let body_bytes = verified
                .decoded_body
                .as_ref()
                .map_or(request.body.len(), Vec::len);
            if let Err(wait) = authenticator.admit(&principal, body_bytes) {
                let status = if rest {
                    StatusCode::TOO_MANY_REQUESTS
                } else {
                    StatusCode::BAD_REQUEST
                };
                let error = AwsError::new(
                    status,
                    THROTTLED,
                    format!(
                        "Rate exceeded for access key {}: retry in {} ms",
                        principal.name,
                        wait.as_millis().max(1)
                    ),
                );
                return Err((error, Some(principal.name)));
            }
            Ok(Checked {
                decoded_body: verified.decoded_body,
                principal: principal.name,
                action,
                grants: Arc::new(grants),
            })
        } else {
            Err((
                AwsError::new(
                    status,
                    "AccessDeniedException",
                    format!(
                        "User: {} is not authorized to perform: {action} with roles [{}]",
                        principal.name,
                        grants.roles.join(",")
                    ),
                ),
                Some(principal.name),
            ))
        }
    }

    /// The IAM action of a request (`kinesis:PutRecord`, `qldb:SendCommand`,
    /// `lambda:InvokeFunction`), or empty when no operation serves it.
    fn iam_action(&self, request: &Request, target: Option<&str>) -> String {
        match target {
            Some(target) => {
                let (prefix, operation) = target.split_once('.').unwrap_or((target, ""));
                let service = prefix
                    .split('_')
                    .next()
                    .unwrap_or(prefix)
                    .to_ascii_lowercase();
                let service = match service.as_str() {
                    "dynamodbstreams" => "dynamodb",
                    "qldbsession" => "qldb",
                    other => other,
                };
                format!("{service}:{operation}")
            }
            None => self
                .rest_services
                .iter()
                .flat_map(|service| service.routes())
                .find(|route| route.matches(request.method.as_str(), &request.segments))
                .map(|route| route.action.to_owned())
                .unwrap_or_default(),
        }
    }

    pub fn with_json_service(mut self, service: Arc<dyn JsonService>) -> AwsApi {
        debug_assert!(
            CATALOG.contains(&ServiceRoutes::Json {
                target_prefix: service.target_prefix(),
                operations: service.operations(),
            }),
            "{} is missing from aws::CATALOG, so no test covers it",
            service.target_prefix()
        );
        self.json_services.push(service);
        self
    }

    pub fn with_rest_service(mut self, service: Arc<dyn RestService>) -> AwsApi {
        debug_assert!(
            CATALOG.contains(&ServiceRoutes::Rest {
                routes: service.routes(),
            }),
            "a REST service with routes {:?} is missing from aws::CATALOG, so no test covers it",
            service.routes()
        );
        self.rest_services.push(service);
        self
    }

    async fn route(&self, mut request: Request) -> Response {
        let mut audited = None;
        let mut grants = None;
        let target = request
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let content_type = match request
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
        {
            Some(t) if t.contains("x-amz-json-1.0") => "application/x-amz-json-1.0",
            _ => "application/x-amz-json-1.1",
        };
        if let Some(authenticator) = &self.authenticator {
            match self.check_signature(authenticator, &request, target.as_deref()) {
                Ok(checked) => {
                    // An `aws-chunked` body, its signatures checked: the handlers read its
                    // payload.
                    if let Some(decoded) = checked.decoded_body {
                        request.body = decoded.into();
                    }
                    grants = Some(checked.grants);
                    if is_privileged(&checked.action) {
                        audited = Some((authenticator, checked.principal, checked.action));
                    }
                }
                Err(error) => {
                    let content_type = if target.is_some() {
                        content_type
                    } else {
                        "application/json"
                    };
                    return error_response(&error, content_type);
                }
            }
        }
        let response = self.dispatch(&request, target, content_type, grants).await;
        if let Some((authenticator, principal, action)) = audited
            && response.status.is_success()
        {
            authenticator.audit().record(AuditEvent {
                category: Category::PrivilegedAction,
                port: "aws",
                principal: Some(principal),
                action,
                resource: request.raw_path.clone(),
                status: response.status.as_u16(),
                reason: String::new(),
            });
        }
        response
    }

    /// Hands an authenticated request to its service.
    async fn dispatch(
        &self,
        request: &Request,
        target: Option<String>,
        content_type: &'static str,
        grants: Option<Arc<Grants>>,
    ) -> Response {
        let Some(target) = target else {
            let method = request.method.as_str();
            for service in &self.rest_services {
                let listed = service
                    .routes()
                    .iter()
                    .any(|route| route.matches(method, &request.segments));
                if listed && let Some(response) = service.handle(request) {
                    return response.await;
                }
            }
            let error = AwsError::new(
                StatusCode::NOT_FOUND,
                "UnknownOperationException",
                format!("no operation at {} {}", request.method, request.raw_path),
            );
            return error_response(&error, "application/json");
        };
        let (prefix, operation) = target.split_once('.').unwrap_or((target.as_str(), ""));
        let Some(service) = self
            .json_services
            .iter()
            .find(|s| s.target_prefix() == prefix)
        else {
            let error = AwsError::client(
                "UnknownOperationException",
                format!("unknown target {target}"),
            );
            return error_response(&error, content_type);
        };
        if !service
            .operations()
            .iter()
            .any(|listed| listed.name == operation)
        {
            let error = AwsError::client(
                "UnknownOperationException",
                format!("{prefix} has no operation {operation}"),
            );
            return error_response(&error, content_type);
        }
        let body = match parse_body(&request.body) {
            Ok(body) => body,
            Err(error) => return error_response(&error, content_type),
        };
        match service.call_as(operation, body, grants).await {
            Ok(body) => aws_response(StatusCode::OK, content_type, &body),
            Err(error) => error_response(&error, content_type),
        }
    }
}

impl Handler for AwsApi {
    fn handle(&self, request: Request) -> Pin<Box<dyn Future<Output = Response> + Send + '_>> {
        Box::pin(self.route(request))
    }

    fn refuse(&self, refusal: Refusal, headers: &HeaderMap) -> Response {
        let target = headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let content_type = match headers.get("content-type").and_then(|v| v.to_str().ok()) {
            Some(t) if t.contains("x-amz-json-1.0") => "application/x-amz-json-1.0",
            Some(t) if t.contains("x-amz-json-1.1") => "application/x-amz-json-1.1",
            _ => "application/json",
        };
        error_response(&refusal_error(refusal, target), content_type)
    }
}

/// The AWS error for a request the HTTP server refused. Overload gets the error each service's
/// clients retry: the SDKs retry every 5xx and the throttling codes botocore lists
/// (`ProvisionedThroughputExceededException`, `LimitExceededException`, `ThrottlingException`…),
/// and pyqldb retries QLDBSession's 500 and 503.
fn refusal_error(refusal: Refusal, target: &str) -> AwsError {
    let (service, operation) = target.split_once('.').unwrap_or((target, ""));
    match refusal {
        Refusal::BodyTooLarge => AwsError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLargeException",
            format!(
                "request body is larger than {} bytes",
                crate::http::BODY_BYTES_MAX
            ),
        ),
        Refusal::BodyBroken(reason) => AwsError::client(
            "SerializationException",
            format!("failed to read request body: {reason}"),
        ),
        Refusal::BadPath(reason) => AwsError::client("InvalidArgumentException", reason),
        // botocore retries RequestTimeoutException as a transient error.
        Refusal::BodyTooSlow { received_bytes } => AwsError::new(
            StatusCode::REQUEST_TIMEOUT,
            "RequestTimeoutException",
            format!(
                "the request body arrived too slowly: {received_bytes} bytes received, fewer than {} bytes per second",
                crate::http::BODY_READ_MIN_BYTES_PER_S
            ),
        ),
        Refusal::BufferFull {
            requested_bytes,
            reserved_bytes,
            budget_bytes,
        } => {
            let message = format!(
                "Rate exceeded: {reserved_bytes} bytes of requests are buffered, this one needs {requested_bytes} more, at most {budget_bytes}; retry later"
            );
            match service {
                "Kinesis_20131202"
                    if matches!(operation, "PutRecord" | "PutRecords" | "GetRecords") =>
                {
                    AwsError::client("ProvisionedThroughputExceededException", message)
                }
                "Kinesis_20131202" => AwsError::client("LimitExceededException", message),
                "Firehose_20150804" => AwsError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailableException",
                    format!("Slow down. {message}"),
                ),
                "QLDBSession" => AwsError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "CapacityExceededException",
                    message,
                ),
                _ => AwsError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "ThrottlingException",
                    message,
                ),
            }
        }
        Refusal::TooManyConnections { connections_max } => {
            let kind = if service == "QLDBSession" {
                "CapacityExceededException"
            } else {
                "ServiceUnavailableException"
            };
            AwsError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                kind,
                format!(
                    "the server already serves {connections_max} connections on this port; retry later"
                ),
            )
        }
        Refusal::TlsRequired => AwsError::client(
            "InvalidRequestException",
            "this endpoint serves only HTTPS (--tls-only): send the request with https://",
        ),
        Refusal::Panicked => {
            AwsError::internal("the request failed on an internal error; the server logged it")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overload_gets_the_error_each_services_clients_retry() {
        let full = || Refusal::BufferFull {
            requested_bytes: 10,
            reserved_bytes: 20,
            budget_bytes: 25,
        };
        let kind_and_status = |refusal, target| {
            let error = refusal_error(refusal, target);
            (error.kind, error.status.as_u16())
        };
        assert_eq!(
            kind_and_status(full(), "Kinesis_20131202.PutRecords"),
            ("ProvisionedThroughputExceededException", 400)
        );
        assert_eq!(
            kind_and_status(full(), "Kinesis_20131202.CreateStream"),
            ("LimitExceededException", 400)
        );
        assert_eq!(
            kind_and_status(full(), "Firehose_20150804.PutRecordBatch"),
            ("ServiceUnavailableException", 503)
        );
        assert_eq!(
            kind_and_status(full(), "QLDBSession.SendCommand"),
            ("CapacityExceededException", 503)
        );
        assert_eq!(kind_and_status(full(), ""), ("ThrottlingException", 429));
        assert_eq!(
            kind_and_status(
                Refusal::TooManyConnections { connections_max: 1 },
                "Kinesis_20131202.PutRecord"
            ),
            ("ServiceUnavailableException", 503)
        );
        assert_eq!(
            kind_and_status(Refusal::BodyTooSlow { received_bytes: 0 }, ""),
            ("RequestTimeoutException", 408)
        );
        assert_eq!(
            kind_and_status(Refusal::Panicked, "Kinesis_20131202.PutRecord"),
            ("InternalFailure", 500)
        );
    }

    #[test]
    fn rest_routes_match_by_method_and_segments() {
        let route = RestRoute {
            method: "POST",
            path: "/ledgers/{name}/block",
            action: "qldb:GetBlock",
            formats: &[],
        };
        let segments = |path: &str| -> Vec<String> {
            path.split('/')
                .filter(|part| !part.is_empty())
                .map(str::to_owned)
                .collect()
        };
        assert!(route.matches("POST", &segments("/ledgers/cars/block")));
        assert!(!route.matches("GET", &segments("/ledgers/cars/block")));
        assert!(!route.matches("POST", &segments("/ledgers/cars")));
        assert!(!route.matches("POST", &segments("/ledgers/cars/block/x")));
        assert!(!route.matches("POST", &segments("/other/cars/block")));
    }

    #[test]
    fn bodies_are_objects_parsed_with_a_depth_limit() {
        assert_eq!(parse_body(b"").unwrap(), json!({}));
        assert_eq!(parse_body(br#"{"a":1,"a":2}"#).unwrap(), json!({"a": 2}));
        let error = parse_body(b"[1]").unwrap_err();
        assert_eq!(error.kind, "SerializationException");
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(1_000), "]".repeat(1_000));
        let error = parse_body(deep.as_bytes()).unwrap_err();
        assert_eq!(
            (error.status.as_u16(), error.kind),
            (400, "SerializationException")
        );
        assert!(
            error
                .message
                .contains("nesting depth (101) exceeds the maximum allowed (100)"),
            "{}",
            error.message
        );
    }

    #[test]
    fn the_catalog_lists_each_operation_once() {
        let mut seen = std::collections::BTreeSet::new();
        for service in CATALOG {
            match service {
                ServiceRoutes::Json {
                    target_prefix,
                    operations,
                } => {
                    for operation in *operations {
                        assert!(seen.insert(format!("{target_prefix}.{}", operation.name)));
                        assert!(operation.formats.contains(&Format::Json));
                    }
                }
                ServiceRoutes::Rest { routes } => {
                    for route in *routes {
                        assert!(seen.insert(format!("{} {}", route.method, route.path)));
                    }
                }
            }
        }
    }
}
