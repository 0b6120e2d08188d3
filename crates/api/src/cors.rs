//! Cross-origin access for the dashboard: the page served on `--ui-port` calls the search and AWS
//! ports from its own origin, so those ports answer CORS for exactly the dashboard's origins and
//! no others (never `*`: any web page a user visits could otherwise read and write their data).
//! [`Cors`] wraps a port's [`Handler`]: it answers preflights from an allowed origin itself and
//! adds `Access-Control-Allow-Origin` to every answer to one, refusals included.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use hyper::header::HeaderValue;
use hyper::{HeaderMap, Method, StatusCode};

use crate::http::{Handler, Refusal, Request, Response};

/// Methods a page may use: what the search and AWS APIs serve.
const ALLOWED_METHODS: &str = "GET, HEAD, POST, PUT, DELETE";
/// Request headers a page may send: bodies' types and the AWS JSON protocols' headers.
const ALLOWED_HEADERS: &str =
    "content-type, x-amz-target, x-amz-user-agent, x-amz-date, authorization";
/// How long a browser may reuse a preflight's answer, in seconds (Chromium caps it at 7,200).
const PREFLIGHT_MAX_AGE_S: u32 = 600;

/// The origins allowed to call a port from a browser, as browsers send them
/// (`http://127.0.0.1:5601`): scheme, host and port, no path.
#[derive(Debug, Clone, Default)]
pub struct AllowedOrigins {
    origins: Arc<Vec<String>>,
}

impl AllowedOrigins {
    pub fn new(origins: impl IntoIterator<Item = String>) -> AllowedOrigins {
        let mut origins: Vec<String> = origins
            .into_iter()
            .map(|origin| origin.trim_end_matches('/').to_ascii_lowercase())
            .collect();
        origins.sort();
        origins.dedup();
        AllowedOrigins {
            origins: Arc::new(origins),
        }
    }

    /// The request's `Origin` when it is allowed, exactly as sent.
    fn allowed<'a>(&self, headers: &'a HeaderMap) -> Option<&'a HeaderValue> {
        let origin = headers.get(hyper::header::ORIGIN)?;
        let text = origin.to_str().ok()?;
        self.origins
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(text))
            .then_some(origin)
    }

    pub fn as_slice(&self) -> &[String] {
        &self.origins
    }
}

/// A handler that answers CORS for [`AllowedOrigins`] around another.
pub struct Cors<H> {
    inner: H,
    origins: AllowedOrigins,
}

impl<H: Handler> Cors<H> {
    pub fn new(inner: H, origins: AllowedOrigins) -> Cors<H> {
        Cors { inner, origins }
    }
}

fn allow(response: &mut Response, origin: &HeaderValue) {
    if let Ok(origin) = origin.to_str() {
        response
            .headers
            .push(("access-control-allow-origin", origin.to_owned()));
        response.headers.push(("vary", "Origin".to_owned()));
    }
}

impl<H: Handler> Handler for Cors<H> {
    fn handle(&self, request: Request) -> Pin<Box<dyn Future<Output = Response> + Send + '_>> {
        let origin = self.origins.allowed(&request.headers).cloned();
        let preflight = request.method == Method::OPTIONS
            && request
                .headers
                .contains_key(hyper::header::ACCESS_CONTROL_REQUEST_METHOD);
        Box::pin(async move {
            match origin {
                Some(origin) if preflight => {
                    let mut response =
                        Response::new(StatusCode::NO_CONTENT, "text/plain", Bytes::new());
                    allow(&mut response, &origin);
                    response
                        .headers
                        .push(("access-control-allow-methods", ALLOWED_METHODS.to_owned()));
                    response
                        .headers
                        .push(("access-control-allow-headers", ALLOWED_HEADERS.to_owned()));
                    response
                        .headers
                        .push(("access-control-max-age", PREFLIGHT_MAX_AGE_S.to_string()));
                    response
                }
                Some(origin) => {
                    let mut response = self.inner.handle(request).await;
                    allow(&mut response, &origin);
                    response
                }
                // Not a browser, or a page of another origin: answered as before, without CORS
                // headers, so a browser keeps the answer from that page.
                None => self.inner.handle(request).await,
            }
        })
    }

    fn refuse(&self, refusal: Refusal, headers: &HeaderMap) -> Response {
        let mut response = self.inner.refuse(refusal, headers);
        if let Some(origin) = self.origins.allowed(headers) {
            allow(&mut response, origin);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Echo;

    impl Handler for Echo {
        fn handle(&self, request: Request) -> Pin<Box<dyn Future<Output = Response> + Send + '_>> {
            Box::pin(async move {
                Response::new(StatusCode::OK, "text/plain", request.method.to_string())
            })
        }

        fn refuse(&self, _refusal: Refusal, _headers: &HeaderMap) -> Response {
            Response::new(StatusCode::TOO_MANY_REQUESTS, "text/plain", "refused")
        }
    }

    fn request(method: Method, headers: &[(&'static str, &str)]) -> Request {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        Request {
            method,
            segments: vec!["_search".into()],
            raw_path: "/_search".into(),
            raw_query: String::new(),
            query: HashMap::new(),
            headers: map,
            body: Bytes::new(),
            grants: None,
        }
    }

    fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
        response
            .headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn cors() -> Cors<Echo> {
        Cors::new(
            Echo,
            AllowedOrigins::new(["http://127.0.0.1:5601".to_owned()]),
        )
    }

    #[tokio::test]
    async fn the_dashboards_origin_is_allowed_and_named_exactly() {
        let response = cors()
            .handle(request(
                Method::POST,
                &[("origin", "http://127.0.0.1:5601")],
            ))
            .await;
        assert_eq!(response.body, "POST");
        assert_eq!(
            header(&response, "access-control-allow-origin"),
            Some("http://127.0.0.1:5601")
        );
        assert_eq!(header(&response, "vary"), Some("Origin"));
    }

    #[tokio::test]
    async fn a_preflight_from_the_dashboard_is_answered_without_the_inner_handler() {
        let response = cors()
            .handle(request(
                Method::OPTIONS,
                &[
                    ("origin", "http://127.0.0.1:5601"),
                    ("access-control-request-method", "POST"),
                    (
                        "access-control-request-headers",
                        "content-type,x-amz-target",
                    ),
                ],
            ))
            .await;
        assert_eq!(response.status, StatusCode::NO_CONTENT);
        assert_eq!(
            header(&response, "access-control-allow-origin"),
            Some("http://127.0.0.1:5601")
        );
        let allowed_headers = header(&response, "access-control-allow-headers").unwrap();
        assert!(allowed_headers.contains("x-amz-target"));
        assert!(
            header(&response, "access-control-allow-methods")
                .unwrap()
                .contains("POST")
        );
    }

    #[tokio::test]
    async fn other_origins_get_no_cors_headers() {
        for origin in [
            "http://127.0.0.1:5602",
            "http://evil.example",
            "null",
            "http://127.0.0.1:5601.evil.example",
            "https://127.0.0.1:5601",
        ] {
            let response = cors()
                .handle(request(Method::GET, &[("origin", origin)]))
                .await;
            assert_eq!(response.body, "GET", "{origin}");
            assert_eq!(
                header(&response, "access-control-allow-origin"),
                None,
                "{origin}"
            );
            let preflight = cors()
                .handle(request(
                    Method::OPTIONS,
                    &[
                        ("origin", origin),
                        ("access-control-request-method", "POST"),
                    ],
                ))
                .await;
            assert_eq!(
                preflight.body, "OPTIONS",
                "{origin}: reached the API itself"
            );
            assert_eq!(
                header(&preflight, "access-control-allow-origin"),
                None,
                "{origin}"
            );
        }
        let without_origin = cors().handle(request(Method::GET, &[])).await;
        assert_eq!(header(&without_origin, "access-control-allow-origin"), None);
    }

    #[test]
    fn refusals_carry_the_header_for_the_dashboard_only() {
        let mut headers = HeaderMap::new();
        headers.insert("origin", HeaderValue::from_static("http://127.0.0.1:5601"));
        let response = cors().refuse(Refusal::Panicked, &headers);
        assert_eq!(
            header(&response, "access-control-allow-origin"),
            Some("http://127.0.0.1:5601")
        );
        headers.insert("origin", HeaderValue::from_static("http://localhost:1"));
        let response = cors().refuse(Refusal::Panicked, &headers);
        assert_eq!(header(&response, "access-control-allow-origin"), None);
    }
}
