//! The Elasticsearch-compatible REST API: routing, the shared helpers of its handlers, and the
//! bounds that turn overload into 429 instead of unbounded queues.

mod access;
mod aggs;
mod aliases;
mod analyze;
mod bulk;
mod by_query;
mod documents;
pub mod error;
mod fields;
mod filter_path;
mod hit_fields;
mod indices;
mod query_dsl;
mod readers;
pub mod routes;
mod scripts;
mod search;
mod security;
mod security_api;
mod sort;
mod targets;
mod templates;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use hyper::{HeaderMap, Method, StatusCode};
use serde_json::Value;
use sluice_node::Node;
use sluice_search::{Index, IndicesOptions};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use self::error::EsError;
use crate::audit::{AuditEvent, Category};
use crate::http::{Handler, Refusal, Request, Response, off_worker};
use crate::security::{Authenticator, Credentials, Offered, Principal, offered};

/// The challenges of a 401, as Elasticsearch's security sends them.
const WWW_AUTHENTICATE: &str = "Basic realm=\"security\" charset=\"UTF-8\", ApiKey";

/// Elasticsearch's 401: `security_exception` with the challenges in `header`.
fn unauthenticated(reason: String) -> EsError {
    let mut error = EsError::new(StatusCode::UNAUTHORIZED, "security_exception", reason);
    error.extra.insert(
        "header".to_owned(),
        serde_json::json!({"WWW-Authenticate": ["Basic realm=\"security\" charset=\"UTF-8\"", "ApiKey"]}),
    );
    error
}

/// Write requests (document writes and bulks) that may run at once; beyond it, 429.
pub const WRITE_REQUESTS_MAX: usize = 64;
/// Search requests that may run at once; beyond it, 429.
pub const SEARCH_REQUESTS_MAX: usize = 64;
/// The version Sluice reports: the Elasticsearch 8 REST API it follows.
pub const COMPATIBLE_VERSION: &str = "8.17.0";

pub struct EsApi {
    node: Arc<Node>,
    write_slots: Arc<Semaphore>,
    search_slots: Arc<Semaphore>,
    /// Tasks of by-query operations run with `wait_for_completion=false`.
    tasks: by_query::Tasks,
    /// Open points in time and scrolls (`readers.rs`), expired on the wall clock.
    readers: Arc<sluice_search::Snapshots<readers::Reader>>,
    /// With `--security`, every request must authenticate (`None`: anyone may do anything).
    authenticator: Option<Arc<Authenticator>>,
}

type EsResult = Result<Response, EsError>;

impl EsApi {
    pub fn new(node: Arc<Node>) -> EsApi {
        EsApi {
            node,
            write_slots: Arc::new(Semaphore::new(WRITE_REQUESTS_MAX)),
            search_slots: Arc::new(Semaphore::new(SEARCH_REQUESTS_MAX)),
            tasks: by_query::Tasks::default(),
            readers: Arc::new(sluice_search::Snapshots::new(readers::wall_clock_ms)),
            authenticator: None,
        }
    }

    /// Requires every request to authenticate against `authenticator`.
    pub fn with_authenticator(mut self, authenticator: Arc<Authenticator>) -> EsApi {
        self.authenticator = Some(authenticator);
        self
    }

    /// The request's principal: `Err` is the 401.
    async fn check_credentials(
        &self,
        authenticator: &Arc<Authenticator>,
        request: &Request,
    ) -> Result<Principal, EsError> {
        let path = &request.raw_path;
        let principal = match offered(&request.headers) {
            Offered::Signature => self.check_signature(authenticator, request)?,
            Offered::Credentials(Credentials::Basic { user, password }) => authenticator
                .basic_off_thread(&user, &password)
                .await
                .ok_or_else(|| {
                    unauthenticated(format!(
                        "unable to authenticate user [{user}] for REST request [{path}]"
                    ))
                })?,
            Offered::Credentials(Credentials::ApiKey { id, key }) => {
                authenticator.api_key(&id, &key).map_err(|refusal| {
                    let mut error = unauthenticated(
                        "unable to authenticate with provided credentials and anonymous access is not allowed for this request".to_owned(),
                    );
                    error.extra.insert(
                        "additional_unsuccessful_credentials".to_owned(),
                        Value::String(format!("API key: {refusal}")),
                    );
                    error
                })?
            }
            Offered::Nothing => {
                return Err(unauthenticated(format!(
                    "missing authentication credentials for REST request [{path}]"
                )));
            }
        };
        Ok(principal)
    }

    /// A SigV4 signature of an access key (service `es`, as Amazon's managed Elasticsearch
    /// accepts, signed by `requests-aws4auth` or botocore's `SigV4Auth`): the access key's
    /// principal, or the 401.
    fn check_signature(
        &self,
        authenticator: &Authenticator,
        request: &Request,
    ) -> Result<Principal, EsError> {
        authenticator
            .verify_signature(request)
            .map(|(_, principal)| principal)
            .map_err(|(error, _)| {
                unauthenticated(format!(
                    "unable to authenticate the AWS SigV4 signature of REST request [{}]: {error}",
                    request.raw_path
                ))
            })
    }

    fn slot(&self, slots: &Arc<Semaphore>, what: &str) -> Result<OwnedSemaphorePermit, EsError> {
        slots.clone().try_acquire_owned().map_err(|_| {
            EsError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "es_rejected_execution_exception",
                format!("rejected execution of {what} request: too many requests in flight"),
            )
        })
    }

    async fn route(&self, request: &Request) -> EsResult {
        let segments: Vec<&str> = request.segments.iter().map(String::as_str).collect();
        let method = &request.method;
        let get = method == Method::GET;
        let head = method == Method::HEAD;
        let post = method == Method::POST;
        let put = method == Method::PUT;
        let delete = method == Method::DELETE;
        match segments.as_slice() {
            [] if get || head => indices::root(self, request),
            ["_cluster", "health"] if get => indices::cluster_health(self, request, None),
            ["_cluster", "health", target] if get => {
                indices::cluster_health(self, request, Some(target))
            }
            // Walks every index's files and counts its documents.
            ["_cat", "indices"] if get => off_worker(|| indices::cat_indices(self, request, None)),
            ["_cat", "indices", target] if get => {
                off_worker(|| indices::cat_indices(self, request, Some(target)))
            }
            ["_aliases"] if post => aliases::update_aliases(self, request).await,
            ["_alias"] | ["_aliases"] if get || head => {
                aliases::get_aliases(self, request, None, None, head)
            }
            ["_alias", names] if get || head => {
                aliases::get_aliases(self, request, None, Some(names), head)
            }
            [target, "_alias"] | [target, "_aliases"] if get || head => {
                aliases::get_aliases(self, request, Some(target), None, head)
            }
            [target, "_alias", names] | [target, "_aliases", names] if get || head => {
                aliases::get_aliases(self, request, Some(target), Some(names), head)
            }
            [target, "_alias", name] | [target, "_aliases", name] if put || post => {
                aliases::put_alias(self, request, target, name).await
            }
            [target, "_alias", names] | [target, "_aliases", names] if delete => {
                aliases::delete_alias(self, request, target, names).await
            }
            ["_index_template"] if get || head => {
                templates::get_index_templates(self, request, None, head)
            }
            ["_index_template", names] if get || head => {
                templates::get_index_templates(self, request, Some(names), head)
            }
            ["_index_template", name] if put || post => {
                templates::put_index_template(self, request, name).await
            }
            ["_index_template", names] if delete => {
                templates::delete_templates(self, request, names, false).await
            }
            ["_template"] if get || head => {
                templates::get_legacy_templates(self, request, None, head)
            }
            ["_template", names] if get || head => {
                templates::get_legacy_templates(self, request, Some(names), head)
            }
            ["_template", name] if put || post => {
                templates::put_legacy_template(self, request, name).await
            }
            ["_template", names] if delete => {
                templates::delete_templates(self, request, names, true).await
            }
            ["_component_template", ..] => templates::component_templates(request),
            [target, "_delete_by_query"] if post => {
                by_query::delete_by_query(self, request, target).await
            }
            [target, "_update_by_query"] if post => {
                by_query::update_by_query(self, request, target).await
            }
            ["_reindex"] if post => by_query::reindex(self, request).await,
            ["_tasks", id] if get => by_query::get_task(self, request, id).await,
            ["_tasks", id, "_cancel"] if post => by_query::cancel_task(self, request, id),
            ["_msearch"] if get || post => search::msearch(self, request, None).await,
            [target, "_msearch"] if get || post => {
                search::msearch(self, request, Some(target)).await
            }
            // An `index_filter` is a query counted over every target index.
            ["_field_caps"] if get || post => {
                off_worker(|| fields::field_caps(self, request, None))
            }
            [target, "_field_caps"] if get || post => {
                off_worker(|| fields::field_caps(self, request, Some(target)))
            }
            ["_mapping", "field", fields] if get => {
                fields::get_field_mapping(self, request, None, fields)
            }
            [target, "_mapping", "field", fields] if get => {
                fields::get_field_mapping(self, request, Some(target), fields)
            }
            ["_resolve", "index", expression] if get || post => {
                fields::resolve_index(self, request, expression)
            }
            ["_search", "scroll"] | ["_search", "scroll", _] if get || post => {
                readers::scroll(self, request).await
            }
            ["_search", "scroll"] | ["_search", "scroll", _] if delete => {
                readers::clear_scroll(self, request)
            }
            [target, "_pit"] if post => readers::open_pit(self, request, target).await,
            ["_pit"] if delete => readers::close_pit(self, request),
            ["_search"] if get || post => search::search(self, request, None).await,
            [target, "_search"] if get || post => search::search(self, request, Some(target)).await,
            ["_analyze"] if get || post => analyze::analyze(self, request, None),
            [index, "_analyze"] if get || post => analyze::analyze(self, request, Some(index)),
            ["_count"] if get || post => search::count(self, request, None).await,
            [target, "_count"] if get || post => search::count(self, request, Some(target)).await,
            ["_bulk"] if post || put => bulk::bulk(self, request, None).await,
            [index, "_bulk"] if post || put => bulk::bulk(self, request, Some(index)).await,
            ["_mget"] if get || post => documents::mget(self, request, None).await,
            [index, "_mget"] if get || post => documents::mget(self, request, Some(index)).await,
            ["_refresh"] if get || post => indices::refresh(self, request, None).await,
            [target, "_refresh"] if get || post => {
                indices::refresh(self, request, Some(target)).await
            }
            ["_mapping"] if get => indices::get_mapping(self, request, None),
            [target, "_mapping"] if get => indices::get_mapping(self, request, Some(target)),
            [index, "_mapping"] if put || post => indices::put_mapping(self, request, index).await,
            [target, "_settings"] if get => indices::get_settings(self, request, target),
            [index, "_settings"] if put => indices::put_settings(self, request, index).await,
            [index, "_doc", id] if put || post => {
                documents::index(self, request, index, Some(id), false).await
            }
            [index, "_doc"] if post => documents::index(self, request, index, None, false).await,
            [index, "_create", id] if put || post => {
                documents::index(self, request, index, Some(id), true).await
            }
            [index, "_doc", id] if get || head => {
                documents::get(self, request, index, id, false).await
            }
            [index, "_source", id] if get || head => {
                documents::get(self, request, index, id, true).await
            }
            [index, "_doc", id] if delete => documents::delete(self, request, index, id).await,
            [index, "_update", id] if post => documents::update(self, request, index, id).await,
            [index] if put => indices::create_index(self, request, index).await,
            [target] if delete => indices::delete_index(self, target).await,
            [target] if head => indices::index_exists(self, target),
            [target] if get && !target.starts_with('_') => {
                indices::get_index(self, request, target)
            }
            _ => Err(EsError::bad_request(
                "illegal_argument_exception",
                format!(
                    "no handler found for uri [{}] and method [{}]",
                    request.raw_path, request.method
                ),
            )),
        }
    }

    /// Routes the request, then applies `filter_path` to a successful JSON answer. Filtering
    /// re-serialises the answer, so sources lose their verbatim bytes only when it is asked for.
    async fn route_filtered(&self, request: &Request, pretty: bool) -> EsResult {
        let filter = match request.param("filter_path") {
            Some(text) => {
                filter_path::FilterPath::parse(text).map_err(EsError::illegal_argument)?
            }
            None => None,
        };
        let response = self.route(request).await?;
        let Some(filter) = filter else {
            return Ok(response);
        };
        if !response.status.is_success() || response.content_type != "application/json" {
            return Ok(response);
        }
        let Ok(body) = serde_json::from_slice::<Value>(&response.body) else {
            return Ok(response);
        };
        let mut filtered = json_response(response.status, &filter.apply(&body), pretty);
        filtered.headers = response.headers;
        Ok(filtered)
    }

    /// Resolves an index expression (`a`, `a,b`, an alias, `logs-*`, `_all`) to indices, as
    /// administrative reads do: names must exist, wildcards may match nothing, alias filters do
    /// not apply.
    fn resolve(&self, target: Option<&str>) -> Result<Vec<Arc<Index>>, EsError> {
        self.resolve_with(target, IndicesOptions::LENIENT_EXPAND_OPEN)
    }

    /// Resolves an index expression under `options` (see `targets.rs` for the request's own).
    fn resolve_with(
        &self,
        target: Option<&str>,
        options: IndicesOptions,
    ) -> Result<Vec<Arc<Index>>, EsError> {
        Ok(self
            .node
            .indices()
            .resolve(target, options)?
            .into_iter()
            .map(|resolved| resolved.index)
            .collect())
    }
}

/// The request's `ignore_unavailable`, `allow_no_indices` and `expand_wildcards` over the
/// defaults of reads (missing names fail, patterns may match nothing).
pub(crate) fn request_options(request: &Request) -> Result<IndicesOptions, EsError> {
    targets::indices_options(request, IndicesOptions::LENIENT_EXPAND_OPEN)
}

/// `*` matches any run of characters.
pub(crate) fn wildcard_match(pattern: &str, text: &str) -> bool {
    sluice_search::pattern::simple_match(pattern, text)
}

impl Handler for EsApi {
    fn handle(&self, mut request: Request) -> Pin<Box<dyn Future<Output = Response> + Send + '_>> {
        Box::pin(async move {
            let pretty = request.query.get("pretty").is_some_and(|v| v != "false");
            let mut principal = None;
            if let Some(authenticator) = &self.authenticator {
                let checked = match self.check_credentials(authenticator, &request).await {
                    Ok(found) => {
                        let grants = authenticator.grants(&found);
                        let options = request_options(&request)
                            .unwrap_or(IndicesOptions::LENIENT_EXPAND_OPEN);
                        let checked = access::authorize(&self.node, &grants, &mut request, options);
                        request.grants = Some(Arc::new(grants));
                        principal = Some(found);
                        checked
                    }
                    Err(error) => Err(error),
                };
                if let (Ok(()), Some(principal)) = (&checked, &principal)
                    && let Err(wait) = authenticator.admit(principal, request.body.len())
                {
                    return throttled(wait, pretty);
                }
                match checked {
                    Ok(()) => {}
                    Err(error) => {
                        let category = if error.status == StatusCode::UNAUTHORIZED {
                            Category::AuthenticationFailure
                        } else {
                            Category::PermissionDenied
                        };
                        audit(
                            authenticator,
                            category,
                            principal.as_ref(),
                            &request,
                            error.status,
                            &error.reason,
                        );
                        let mut response = json_response(error.status, &error.body(), pretty);
                        if error.status == StatusCode::UNAUTHORIZED {
                            response
                                .headers
                                .push(("www-authenticate", WWW_AUTHENTICATE.to_owned()));
                        }
                        return response;
                    }
                }
            }
            if let Some(response) = precheck(&request) {
                return response;
            }
            let answer = if request
                .segments
                .first()
                .is_some_and(|first| first == "_security")
            {
                security::route(self, &request, principal.as_ref()).await
            } else if security_api::is_security_api(&request.segments) {
                security_api::route(self, &request, principal.as_ref()).await
            } else {
                self.route_filtered(&request, pretty).await
            };
            let mut response = match answer {
                Ok(response) => response,
                Err(error) => json_response(error.status, &error.body(), pretty),
            };
            if let Some(authenticator) = &self.authenticator {
                let category = if response.status == StatusCode::FORBIDDEN {
                    Some(Category::PermissionDenied)
                } else if response.status.is_success() && is_privileged(&request) {
                    Some(Category::PrivilegedAction)
                } else {
                    None
                };
                if let Some(category) = category {
                    let reason = if category == Category::PermissionDenied {
                        String::from_utf8_lossy(&response.body).into_owned()
                    } else {
                        String::new()
                    };
                    audit(
                        authenticator,
                        category,
                        principal.as_ref(),
                        &request,
                        response.status,
                        &reason,
                    );
                }
            }
            response
                .headers
                .push(("x-elastic-product", "Elasticsearch".into()));
            response
        })
    }

    fn refuse(&self, refusal: Refusal, _headers: &HeaderMap) -> Response {
        let error = refusal_error(refusal);
        let mut response = json_response(error.status, &error.body(), false);
        response
            .headers
            .push(("x-elastic-product", "Elasticsearch".into()));
        response
    }
}

/// The 429 of an identity beyond its rate, with `Retry-After`.
fn throttled(wait: std::time::Duration, pretty: bool) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let error = EsError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "es_rejected_execution_exception",
        format!(
            "rejected execution: this identity is beyond its request or byte rate; retry in [{seconds}] seconds"
        ),
    );
    let mut response = json_response(error.status, &error.body(), pretty);
    response.headers.push(("retry-after", seconds.to_string()));
    response
        .headers
        .push(("x-elastic-product", "Elasticsearch".into()));
    response
}

/// Whether a request changes who may do what, or deletes an index: audited when it succeeds.
fn is_privileged(request: &Request) -> bool {
    let reads = matches!(request.method, Method::GET | Method::HEAD);
    let first = request.segments.first().map(String::as_str);
    !reads
        && (security_api::is_security_api(&request.segments)
            || (first == Some("_security")
                && request.segments.get(1).is_some_and(|s| s == "api_key"))
            || (request.method == Method::DELETE && request.segments.len() == 1))
}

/// Records a security event of the search port.
fn audit(
    authenticator: &Authenticator,
    category: Category,
    principal: Option<&Principal>,
    request: &Request,
    status: StatusCode,
    reason: &str,
) {
    authenticator.audit().record(AuditEvent {
        category,
        port: "search",
        principal: principal.map(|principal| principal.name.clone()),
        action: format!("{} {}", request.method, request.raw_path),
        resource: request.raw_path.clone(),
        status: status.as_u16(),
        reason: reason.to_owned(),
    });
}

/// The Elasticsearch error for a request the HTTP server refused.
fn refusal_error(refusal: Refusal) -> EsError {
    match refusal {
        Refusal::BodyTooLarge => EsError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "content_too_long_exception",
            format!(
                "request body is too large, the limit is [{}] bytes",
                crate::http::BODY_BYTES_MAX
            ),
        ),
        Refusal::BodyBroken(reason) => EsError::bad_request(
            "parse_exception",
            format!("failed to read request body: {reason}"),
        ),
        Refusal::BadPath(reason) => EsError::illegal_argument(reason),
        Refusal::BodyTooSlow { received_bytes } => EsError::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout_exception",
            format!(
                "the request body arrived too slowly: [{received_bytes}] bytes received, fewer than [{}] bytes per second",
                crate::http::BODY_READ_MIN_BYTES_PER_S
            ),
        ),
        // Elasticsearch's indexing pressure refuses a coordinating operation the same way.
        Refusal::BufferFull {
            requested_bytes,
            reserved_bytes,
            budget_bytes,
        } => EsError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "es_rejected_execution_exception",
            format!(
                "rejected execution of request: buffered_request_bytes=[{reserved_bytes}], this_request_bytes=[{requested_bytes}], max_buffered_request_bytes=[{budget_bytes}]"
            ),
        ),
        Refusal::TooManyConnections { connections_max } => EsError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "es_rejected_execution_exception",
            format!(
                "rejected connection: the node already serves [{connections_max}] connections on this port"
            ),
        ),
        Refusal::TlsRequired => EsError::bad_request(
            "illegal_argument_exception",
            "this node serves only HTTPS (--tls-only): send the request with https://",
        ),
        Refusal::Panicked => EsError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            "the request failed on an internal error; the node logged it",
        ),
    }
}

/// Media types a request body may have (Elasticsearch's JSON and NDJSON, plain or versioned).
const ACCEPTED_CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/x-ndjson",
    "application/vnd.elasticsearch+json",
    "application/vnd.elasticsearch+x-ndjson",
];

/// Answers what Elasticsearch refuses before any handler runs: an unsupported body media type
/// (406), a method the path does not serve (405), parameters it does not know (400) and a body
/// where the route reads none (400).
fn precheck(request: &Request) -> Option<Response> {
    let with_product = |mut response: Response| {
        response
            .headers
            .push(("x-elastic-product", "Elasticsearch".into()));
        Some(response)
    };
    if !request.body.is_empty()
        && let Some(content_type) = request
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
    {
        let media_type = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if !ACCEPTED_CONTENT_TYPES.contains(&media_type.as_str()) {
            let body = serde_json::json!({
                "error": format!("Content-Type header [{content_type}] is not supported"),
                "status": 406,
            });
            return with_product(json_response(StatusCode::NOT_ACCEPTABLE, &body, false));
        }
    }
    let segments: Vec<&str> = request.segments.iter().map(String::as_str).collect();
    let route = routes::route_of(&segments)?;
    let (methods, params) = (route.methods, route.params);
    if !methods.contains(&request.method.as_str()) {
        let body = serde_json::json!({
            "error": format!(
                "Incorrect HTTP method for uri [{}] and method [{}], allowed: [{}]",
                request.raw_path,
                request.method,
                methods.join(", ")
            ),
            "status": 405,
        });
        let mut response = json_response(StatusCode::METHOD_NOT_ALLOWED, &body, false);
        response.headers.push(("allow", methods.join(",")));
        return with_product(response);
    }
    let unknown = routes::unrecognized(request.query.keys(), params);
    if !unknown.is_empty() {
        let (noun, list) = if unknown.len() == 1 {
            ("parameter", unknown.join(""))
        } else {
            ("parameters", unknown.join("], ["))
        };
        let error = EsError::illegal_argument(format!(
            "request [{}] contains unrecognized {noun}: [{list}]",
            request.raw_path
        ));
        return with_product(json_response(error.status, &error.body(), false));
    }
    if !request.body.is_empty() && route.body(request.method.as_str()).is_none() {
        let error = EsError::illegal_argument(format!(
            "request [{} {}] does not support having a body",
            request.method, request.raw_path
        ));
        return with_product(json_response(error.status, &error.body(), false));
    }
    None
}

pub(crate) fn json_response(status: StatusCode, body: &Value, pretty: bool) -> Response {
    let bytes = if pretty {
        serde_json::to_vec_pretty(body)
    } else {
        serde_json::to_vec(body)
    }
    .unwrap_or_default();
    Response::new(status, "application/json", bytes)
}

/// Responses that carry stored `_source`s exactly as they were sent (numbers, escapes and key
/// order untouched): each source stands in the JSON tree as a placeholder string that
/// serialisation cannot produce from user text (it holds NUL characters), and the stored bytes
/// replace the placeholders after serialisation.
#[derive(Default)]
pub(crate) struct RawSources {
    sources: Vec<Arc<[u8]>>,
}

impl RawSources {
    pub fn placeholder(&mut self, source: Arc<[u8]>) -> Value {
        let value = Value::String(format!("\u{0}sluice-source-{}\u{0}", self.sources.len()));
        self.sources.push(source);
        value
    }

    pub fn render(self, status: StatusCode, body: &Value, pretty: bool) -> Response {
        Response::new(status, "application/json", self.render_bytes(body, pretty))
    }

    /// The JSON text of `body` with the sources in place, for a part of a larger response.
    pub fn render_text(self, body: &Value) -> String {
        String::from_utf8(self.render_bytes(body, false)).unwrap_or_default()
    }

    fn render_bytes(self, body: &Value, pretty: bool) -> Vec<u8> {
        let serialized = if pretty {
            serde_json::to_vec_pretty(body)
        } else {
            serde_json::to_vec(body)
        }
        .unwrap_or_default();
        let mut out = Vec::with_capacity(
            serialized.len() + self.sources.iter().map(|s| s.len()).sum::<usize>(),
        );
        let mut rest = serialized.as_slice();
        for (n, source) in self.sources.iter().enumerate() {
            let token = format!("\"\\u0000sluice-source-{n}\\u0000\"");
            match find(rest, token.as_bytes()) {
                Some(position) => {
                    out.extend_from_slice(&rest[..position]);
                    out.extend_from_slice(trim_ascii(source));
                    rest = &rest[position + token.len()..];
                }
                None => break,
            }
        }
        out.extend_from_slice(rest);
        out
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn trim_ascii(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

pub(crate) fn ok(request: &Request, body: Value) -> EsResult {
    Ok(json_response(StatusCode::OK, &body, is_pretty(request)))
}

pub(crate) fn is_pretty(request: &Request) -> bool {
    request.query.get("pretty").is_some_and(|v| v != "false")
}

/// The index a write to `name` goes to ([`sluice_search::Indices::get_or_create`]): found in
/// memory on the worker, or created off it (templates applied, files written and fsynced under
/// the catalog's lock, which an index being deleted also holds).
pub(crate) async fn write_target(api: &EsApi, name: &str) -> Result<Arc<Index>, EsError> {
    match api.node.indices().write_index(name) {
        Err(sluice_search::SearchError::IndexNotFound { .. }) => {}
        found => return Ok(found?),
    }
    let indices = api.node.indices().clone();
    let name = name.to_owned();
    blocking(move || Ok(indices.get_or_create(&name)?)).await
}

/// Runs blocking engine work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, EsError> + Send + 'static,
) -> Result<T, EsError> {
    tokio::task::spawn_blocking(work).await.map_err(|error| {
        EsError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            format!("internal task failed: {error}"),
        )
    })?
}

/// Parses a JSON body through the shared [`crate::json`] parser (nesting bounded, duplicate keys
/// refused), with the position of the first error, as Elasticsearch reports it. `kind` is the
/// parse exception type of the caller's API (`document_parsing_exception` for documents,
/// `parsing_exception` for searches, `x_content_parse_exception` otherwise); every body parser of
/// this API calls this function.
pub(crate) fn parse_json_body(body: &[u8], kind: &'static str) -> Result<Value, EsError> {
    crate::json::parse(body, crate::json::Duplicates::Refuse)
        .map_err(|error| json_error(&error, kind))
}

/// A refused JSON body as Elasticsearch reports it: `[line:column] failed to parse: …`.
pub(crate) fn json_error(error: &crate::json::JsonError, kind: &'static str) -> EsError {
    EsError::bad_request(
        kind,
        format!(
            "[{}:{}] failed to parse: {error}",
            error.line(),
            error.column()
        ),
    )
}

/// The `refresh` parameter of writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refresh {
    No,
    Immediate,
    WaitFor,
}

pub(crate) fn refresh_param(request: &Request) -> Result<Refresh, EsError> {
    match request.param("refresh") {
        None | Some("false") => Ok(Refresh::No),
        Some("true") | Some("") => Ok(Refresh::Immediate),
        Some("wait_for") => Ok(Refresh::WaitFor),
        Some(other) => Err(EsError::illegal_argument(format!(
            "Unknown value for refresh: [{other}]."
        ))),
    }
}

pub(crate) fn u64_param(request: &Request, name: &str) -> Result<Option<u64>, EsError> {
    match request.param(name) {
        None => Ok(None),
        Some(text) => text.parse::<u64>().map(Some).map_err(|_| {
            EsError::illegal_argument(format!(
                "Failed to parse [{name}] with value [{text}] as a non-negative number"
            ))
        }),
    }
}

/// An integer parameter, as Elasticsearch's `paramAsInt` reads it.
pub(crate) fn int_param(request: &Request, name: &str) -> Result<Option<i64>, EsError> {
    match request.param(name) {
        None => Ok(None),
        Some(text) => text
            .parse::<i32>()
            .map(|n| Some(i64::from(n)))
            .map_err(|_| {
                EsError::illegal_argument(format!(
                    "Failed to parse int parameter [{name}] with value [{text}]"
                ))
            }),
    }
}

pub(crate) fn bool_param(request: &Request, name: &str) -> Result<Option<bool>, EsError> {
    match request.param(name) {
        None => Ok(None),
        Some("true") | Some("") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(EsError::illegal_argument(format!(
            "Failed to parse value [{other}] as only [true] or [false] are allowed."
        ))),
    }
}

pub(crate) fn shards_json(index: &Index) -> Value {
    serde_json::json!({"total": 1 + index.settings().number_of_replicas, "successful": 1, "failed": 0})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("logs-*", "logs-2016"));
        assert!(wildcard_match("*", "x"));
        assert!(wildcard_match("a*c*e", "abcde"));
        assert!(!wildcard_match("a*c", "abd"));
        assert!(wildcard_match("abc", "abc"));
        assert!(!wildcard_match("abc", "abcd"));
    }

    #[tokio::test]
    async fn a_panic_in_blocking_engine_work_is_a_500_for_that_request() {
        let error = blocking(|| -> Result<(), EsError> { panic!("a bug in an engine call") })
            .await
            .unwrap_err();
        assert_eq!(error.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(error.body()["error"]["type"], "exception");
        assert_eq!(blocking(|| Ok(7)).await.unwrap(), 7);
    }

    #[test]
    fn refusals_have_elasticsearch_shapes_and_statuses() {
        let body_of = |refusal| refusal_error(refusal).body();
        let full = body_of(Refusal::BufferFull {
            requested_bytes: 10,
            reserved_bytes: 20,
            budget_bytes: 25,
        });
        assert_eq!(full["status"], 429);
        assert_eq!(full["error"]["type"], "es_rejected_execution_exception");
        assert_eq!(
            full["error"]["root_cause"][0]["type"],
            "es_rejected_execution_exception"
        );
        let crowded = body_of(Refusal::TooManyConnections { connections_max: 3 });
        assert_eq!(crowded["status"], 503);
        assert_eq!(
            body_of(Refusal::BodyTooSlow { received_bytes: 1 })["status"],
            408
        );
        assert_eq!(body_of(Refusal::Panicked)["status"], 500);
        assert_eq!(body_of(Refusal::BodyTooLarge)["status"], 413);
    }
}
