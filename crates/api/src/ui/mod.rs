//! The dashboard's server (`--ui-port`): the assets `sluice_ui` embeds, `index.html` for every
//! other path so deep links reload (single-page app), and a small JSON API of its own under
//! `/api/`: `/api/config` (where the page finds the search and AWS ports it calls directly, with
//! CORS, see `crate::cors`) and `/api/saved_objects` (`saved_objects.rs`). Every answer carries
//! the security headers: a CSP without inline scripts whose `connect-src` names exactly the two
//! API origins, `nosniff`, no framing, no referrer. `index.html` is never cached; hashed bundles
//! are cached for good. With security on (`with_authenticator`), `/api/` asks for an internal
//! user's basic auth or an API key like the search port (saved objects are data), and writes
//! need a role that may write; the assets hold no data and stay public so the page can load.

mod saved_objects;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use hyper::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};

use crate::audit::{AuditEvent, Category};
use crate::http::{Handler, Refusal, Request, Response};
use crate::roles::DASHBOARD_READ;
use crate::security::{Authenticator, Credentials, parse_authorization};
pub use saved_objects::{SAVED_OBJECT_TYPES, SavedObjects, SavedObjectsError};

/// `Cache-Control` of hashed bundles: their path changes with their content.
/// The cluster permission of the dashboard's own writes (saved objects).
const DASHBOARD_WRITE: &str = "sluice:dashboard/write";
const CACHE_IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` of `index.html` and the JSON API: a new build's page names new bundles.
const CACHE_NONE: &str = "no-store";
/// Longest host name taken from a request's `Host` header into the CSP (DNS's limit); a longer
/// or odd one is replaced by the listener's own address.
const HOST_NAME_BYTES_MAX: usize = 253;

/// What the dashboard's server needs to know of the other listeners.
#[derive(Debug, Clone)]
pub struct UiOptions {
    /// The search API's port; the page calls it on the host it was loaded from.
    pub search_port: u16,
    /// The AWS-compatible APIs' port (Kinesis, Firehose, QLDB, `/metrics`).
    pub aws_port: u16,
    /// The host the page is told to use when a request's `Host` header is missing or odd.
    pub default_host: String,
    /// Whether the listeners serve TLS: the CSP then names `https://` origins.
    pub tls: bool,
}

pub struct UiApi {
    options: UiOptions,
    saved_objects: Arc<SavedObjects>,
    authenticator: Option<Arc<Authenticator>>,
}

impl UiApi {
    pub fn new(options: UiOptions, saved_objects: Arc<SavedObjects>) -> UiApi {
        UiApi {
            options,
            saved_objects,
            authenticator: None,
        }
    }

    /// Requires every `/api/` request to authenticate against `authenticator`.
    pub fn with_authenticator(mut self, authenticator: Arc<Authenticator>) -> UiApi {
        self.authenticator = Some(authenticator);
        self
    }

    /// `None` when the request may go on, else its 401 or 403.
    async fn check_credentials(&self, request: &Request) -> Option<Response> {
        let authenticator = self.authenticator.as_ref()?;
        let credentials = request
            .headers
            .get("authorization")
            .map(|value| parse_authorization(value.as_bytes()));
        let principal = match credentials {
            Some(Ok(Credentials::Basic { user, password })) => {
                let checking = authenticator.clone();
                tokio::task::spawn_blocking(move || checking.basic(&user, &password))
                    .await
                    .ok()
                    .flatten()
            }
            Some(Ok(Credentials::ApiKey { id, key })) => authenticator.api_key(&id, &key).ok(),
            _ => None,
        };
        let record = |category, principal: Option<String>, status: StatusCode, reason: String| {
            authenticator.audit().record(AuditEvent {
                category,
                port: "dashboard",
                principal,
                action: format!("{} {}", request.method, request.raw_path),
                resource: request.raw_path.clone(),
                status: status.as_u16(),
                reason,
            });
        };
        let Some(principal) = principal else {
            record(
                Category::AuthenticationFailure,
                None,
                StatusCode::UNAUTHORIZED,
                "missing or wrong credentials".to_owned(),
            );
            let mut response = api_error(
                StatusCode::UNAUTHORIZED,
                "the dashboard's API needs an internal user's credentials (basic auth)",
            );
            response.headers.push((
                "www-authenticate",
                "Basic realm=\"security\" charset=\"UTF-8\"".to_owned(),
            ));
            return Some(response);
        };
        let action = if matches!(request.method, Method::GET | Method::HEAD) {
            DASHBOARD_READ
        } else {
            DASHBOARD_WRITE
        };
        let grants = authenticator.grants(&principal);
        if grants.cluster_allows(action) {
            let wait = authenticator.admit(&principal, request.body.len()).err()?;
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let mut response = api_error(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "user [{}] is beyond its request or byte rate",
                    principal.name
                ),
            );
            response.headers.push(("retry-after", seconds.to_string()));
            Some(response)
        } else {
            record(
                Category::PermissionDenied,
                Some(principal.name.clone()),
                StatusCode::FORBIDDEN,
                format!("[{action}] is not allowed"),
            );
            Some(api_error(
                StatusCode::FORBIDDEN,
                format!(
                    "user [{}] with roles [{}] may not perform [{action}]",
                    principal.name,
                    grants.roles.join(",")
                ),
            ))
        }
    }

    /// The host name the browser used (`Host` without its port), if it is a plain name or
    /// address: it goes into the CSP, so nothing else may.
    fn request_host(&self, headers: &HeaderMap) -> String {
        let host = headers
            .get(hyper::header::HOST)
            .and_then(|value| value.to_str().ok())
            .and_then(|host| {
                if let Some(rest) = host.strip_prefix('[') {
                    rest.split_once(']')
                        .map(|(address, _)| format!("[{address}]"))
                } else {
                    host.split(':').next().map(str::to_owned)
                }
            })
            .filter(|host| {
                !host.is_empty()
                    && host.len() <= HOST_NAME_BYTES_MAX
                    && host
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
            });
        host.unwrap_or_else(|| self.options.default_host.clone())
    }

    fn content_security_policy(&self, host: &str) -> String {
        let scheme = if self.options.tls { "https" } else { "http" };
        format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             font-src 'self'; connect-src 'self' {scheme}://{host}:{search} \
             {scheme}://{host}:{aws}; base-uri 'none'; form-action 'none'; \
             frame-ancestors 'none'",
            search = self.options.search_port,
            aws = self.options.aws_port
        )
    }

    fn secure(&self, mut response: Response, headers: &HeaderMap) -> Response {
        let host = self.request_host(headers);
        response.headers.extend([
            (
                "content-security-policy",
                self.content_security_policy(&host),
            ),
            ("x-content-type-options", "nosniff".to_owned()),
            ("x-frame-options", "DENY".to_owned()),
            ("referrer-policy", "no-referrer".to_owned()),
            ("cross-origin-opener-policy", "same-origin".to_owned()),
        ]);
        response
    }

    async fn route(&self, request: &Request) -> Response {
        let first = request.segments.first().map(String::as_str);
        if first == Some("api") {
            return self.api(request).await;
        }
        if request.method != Method::GET && request.method != Method::HEAD {
            return api_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "the dashboard's pages are read with GET",
            );
        }
        if first == Some("assets") {
            return match sluice_ui::asset(&request.raw_path) {
                Some(asset) => serve_asset(asset, &request.headers),
                None => api_error(StatusCode::NOT_FOUND, "no such asset"),
            };
        }
        // Every other path is a view of the single-page app: a deep link or a reload.
        serve_asset(sluice_ui::index(), &request.headers)
    }

    async fn api(&self, request: &Request) -> Response {
        if let Some(refused) = self.check_credentials(request).await {
            return refused;
        }
        let segments: Vec<&str> = request
            .segments
            .iter()
            .skip(1)
            .map(String::as_str)
            .collect();
        match (segments.as_slice(), &request.method) {
            (["config"], &Method::GET) => {
                let config = json!({
                    "version": env!("CARGO_PKG_VERSION"),
                    "search_port": self.options.search_port,
                    "aws_port": self.options.aws_port,
                });
                json_answer(StatusCode::OK, &config)
            }
            (["saved_objects", rest @ ..], _) => {
                saved_objects::handle(&self.saved_objects, request, rest).await
            }
            _ => api_error(StatusCode::NOT_FOUND, "no such dashboard API"),
        }
    }
}

fn serve_asset(asset: &'static sluice_ui::Asset, headers: &HeaderMap) -> Response {
    let cache = if asset.immutable {
        CACHE_IMMUTABLE
    } else {
        CACHE_NONE
    };
    let not_modified = headers
        .get(hyper::header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == asset.etag));
    let mut response = if not_modified {
        Response::new(StatusCode::NOT_MODIFIED, asset.content_type, Bytes::new())
    } else {
        Response::new(
            StatusCode::OK,
            asset.content_type,
            Bytes::from_static(asset.bytes),
        )
    };
    response.headers.push(("etag", asset.etag.to_owned()));
    response.headers.push(("cache-control", cache.to_owned()));
    response
}

/// A JSON answer of the dashboard's API, never cached.
pub(crate) fn json_answer(status: StatusCode, body: &Value) -> Response {
    let mut response = Response::new(
        status,
        "application/json",
        serde_json::to_vec(body).unwrap_or_default(),
    );
    response
        .headers
        .push(("cache-control", CACHE_NONE.to_owned()));
    response
}

/// The dashboard API's error shape (Kibana's): `{statusCode, error, message}`.
pub(crate) fn api_error(status: StatusCode, message: impl Into<String>) -> Response {
    json_answer(
        status,
        &json!({
            "statusCode": status.as_u16(),
            "error": status.canonical_reason().unwrap_or("Error"),
            "message": message.into(),
        }),
    )
}

impl Handler for UiApi {
    fn handle(&self, request: Request) -> Pin<Box<dyn Future<Output = Response> + Send + '_>> {
        Box::pin(async move {
            let response = self.route(&request).await;
            self.secure(response, &request.headers)
        })
    }

    fn refuse(&self, refusal: Refusal, headers: &HeaderMap) -> Response {
        let (status, message) = match refusal {
            Refusal::BodyTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is too large".to_owned(),
            ),
            Refusal::BodyBroken(reason) => (
                StatusCode::BAD_REQUEST,
                format!("the request body could not be read: {reason}"),
            ),
            Refusal::BadPath(reason) => (StatusCode::BAD_REQUEST, reason),
            Refusal::BodyTooSlow { .. } => (
                StatusCode::REQUEST_TIMEOUT,
                "the request body arrived too slowly".to_owned(),
            ),
            Refusal::BufferFull { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "too many request bytes are buffered; retry".to_owned(),
            ),
            Refusal::TooManyConnections { connections_max } => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the dashboard serves at most {connections_max} connections"),
            ),
            Refusal::TlsRequired => (
                StatusCode::BAD_REQUEST,
                "this dashboard serves only HTTPS (--tls-only): open it with https://".to_owned(),
            ),
            Refusal::Panicked => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the dashboard's server failed (a bug)".to_owned(),
            ),
        };
        self.secure(api_error(status, message), headers)
    }
}

#[cfg(test)]
mod tests;
