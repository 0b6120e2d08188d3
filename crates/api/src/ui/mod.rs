//! The dashboard's server (`--ui-port`): the assets `sluice_ui` embeds, `index.html` for every
//! other path so deep links reload (single-page app), and a small JSON API of its own under
//! `/api/`: `/api/config` (where the page finds the search and AWS ports it calls directly, with
//! CORS, see `crate::cors`) and `/api/saved_objects` (`saved_objects.rs`). Every answer carries
//! the security headers: a CSP without inline scripts whose `connect-src` names exactly the two
//! API origins, `nosniff`, no framing, no referrer. `index.html` is never cached; hashed bundles
//! are cached for good. With security on (`with_authenticator`), `/api/` asks for an internal
//! user's basic auth, an API key, or a SigV4 signature like the search port (saved objects are
//! data), and writes need a role that may write; the assets hold no data and stay public so the
//! page can load. `POST /api/login` checks a user's password and answers a temporary access key
//! (`Authenticator::start_session`) that the page signs its requests to every port with;
//! `POST /api/logout` ends it. A 401 to the page's own requests (`Sec-Fetch-Mode` other than
//! `navigate`) has no `WWW-Authenticate`, so the browser shows the login form, not its own
//! prompt.

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
use crate::security::{Authentication, Authenticator, Credentials, Offered, Principal, offered};
pub use saved_objects::{SAVED_OBJECT_TYPES, SavedObjects, SavedObjectsError};

/// The cluster permission of the dashboard's own writes (saved objects).
const DASHBOARD_WRITE: &str = "sluice:dashboard/write";
/// `Cache-Control` of hashed bundles: their path changes with their content.
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

    /// The request's principal when it may go on (`None` with security off), else its 401,
    /// 403 or 429.
    async fn check_credentials(&self, request: &Request) -> Result<Option<Principal>, Response> {
        let Some(authenticator) = self.authenticator.as_ref() else {
            return Ok(None);
        };
        let principal = match offered(&request.headers) {
            Offered::Signature => authenticator
                .verify_signature(request)
                .ok()
                .map(|(_, principal)| principal),
            Offered::Credentials(Credentials::Basic { user, password }) => {
                authenticator.basic_off_thread(&user, &password).await
            }
            Offered::Credentials(Credentials::ApiKey { id, key }) => {
                authenticator.api_key(&id, &key).ok()
            }
            Offered::Nothing => None,
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
                "the dashboard's API needs a login (or a user's basic auth, an API key or a SigV4 signature)",
            );
            let from_page = request
                .headers
                .get("sec-fetch-mode")
                .is_some_and(|mode| mode.as_bytes() != b"navigate");
            if !from_page {
                response.headers.push((
                    "www-authenticate",
                    "Basic realm=\"security\" charset=\"UTF-8\"".to_owned(),
                ));
            }
            return Err(response);
        };
        let action = if matches!(request.method, Method::GET | Method::HEAD) {
            DASHBOARD_READ
        } else {
            DASHBOARD_WRITE
        };
        let grants = authenticator.grants(&principal);
        if grants.cluster_allows(action) {
            let Err(wait) = authenticator.admit(&principal, request.body.len()) else {
                return Ok(Some(principal));
            };
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let mut response = api_error(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "user [{}] is beyond its request or byte rate",
                    principal.name
                ),
            );
            response.headers.push(("retry-after", seconds.to_string()));
            Err(response)
        } else {
            record(
                Category::PermissionDenied,
                Some(principal.name.clone()),
                StatusCode::FORBIDDEN,
                format!("[{action}] is not allowed"),
            );
            Err(api_error(
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
        let segments: Vec<&str> = request
            .segments
            .iter()
            .skip(1)
            .map(String::as_str)
            .collect();
        if segments == ["login"] && request.method == Method::POST {
            return self.log_in(request).await;
        }
        let principal = match self.check_credentials(request).await {
            Ok(principal) => principal,
            Err(refused) => return refused,
        };
        match (segments.as_slice(), &request.method) {
            (["logout"], &Method::POST) => {
                if let (Some(authenticator), Some(principal)) = (&self.authenticator, principal)
                    && let Authentication::Session { key_id } = &principal.authentication
                {
                    authenticator.end_session(key_id);
                }
                json_answer(StatusCode::OK, &json!({"logged_out": true}))
            }
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

impl UiApi {
    /// `POST /api/login` with `{"username", "password"}`: a temporary access key for the user,
    /// or 401 (and an audited authentication failure).
    async fn log_in(&self, request: &Request) -> Response {
        let Some(authenticator) = self.authenticator.clone() else {
            return api_error(
                StatusCode::BAD_REQUEST,
                "security is off: the dashboard needs no login",
            );
        };
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Login {
            username: String,
            password: String,
        }
        let login: Login = match crate::json::parse(&request.body, crate::json::Duplicates::Refuse)
            .ok()
            .and_then(|value| serde_json::from_value(value).ok())
        {
            Some(login) => login,
            None => {
                return api_error(
                    StatusCode::BAD_REQUEST,
                    "a login is a JSON object with a username and a password",
                );
            }
        };
        let principal = authenticator
            .basic_off_thread(&login.username, &login.password)
            .await;
        let Some(principal) = principal else {
            authenticator.audit().record(AuditEvent {
                category: Category::AuthenticationFailure,
                port: "dashboard",
                principal: Some(login.username.clone()),
                action: "POST /api/login".to_owned(),
                resource: request.raw_path.clone(),
                status: 401,
                reason: "wrong user name or password".to_owned(),
            });
            return api_error(StatusCode::UNAUTHORIZED, "wrong user name or password");
        };
        match authenticator.start_session(&principal) {
            Ok(session) => json_answer(
                StatusCode::OK,
                &json!({
                    "access_key_id": session.access_key_id,
                    "secret_access_key": session.secret_access_key,
                    "expiration": session.expiration_ms,
                    "username": principal.name,
                }),
            ),
            Err(error) => api_error(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
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
