//! A small HTTP/1.1 server on hyper: accepts connections, reads bodies up to a limit, hands
//! requests to a handler, and shuts down gracefully, letting requests in flight finish.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{HeaderMap, Method, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The largest request body any API accepts (Elasticsearch's `http.max_content_length`).
pub const BODY_BYTES_MAX: usize = 100 * 1024 * 1024;
/// How long shutdown waits for requests in flight before closing their connections.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A request with its body read.
#[derive(Debug)]
pub struct Request {
    pub method: Method,
    /// The path, percent-decoded segment by segment, without empty segments.
    pub segments: Vec<String>,
    pub raw_path: String,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Request {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

impl Response {
    pub fn new(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into(),
        }
    }
}

/// What the server does with a request whose body could not be read.
#[derive(Debug)]
pub enum BodyError {
    TooLarge,
    Broken(String),
    /// The path has a broken percent-escape or is not UTF-8 once decoded.
    BadPath(String),
}

pub trait Handler: Send + Sync + 'static {
    fn handle(&self, request: Request) -> Pin<Box<dyn Future<Output = Response> + Send + '_>>;
    fn body_error(&self, error: BodyError) -> Response;
}

/// Decodes `%XX` escapes; `None` for a broken escape or bytes that are not UTF-8.
fn percent_decode_strict(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte == b'%' {
            let hex = bytes
                .get(index + 1..index + 3)
                .and_then(|h| std::str::from_utf8(h).ok())?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(byte);
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Decodes `%XX` escapes, keeping broken ones as they are (for query strings).
fn percent_decode(segment: &str) -> String {
    percent_decode_strict(segment).unwrap_or_else(|| segment.to_string())
}

fn parse_query(query: Option<&str>) -> HashMap<String, String> {
    let mut params = HashMap::new();
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| percent_decode(&s.replace('+', " "));
        params.insert(decode(key), decode(value));
    }
    params
}

async fn read_request<H: Handler>(
    handler: &H,
    request: hyper::Request<Incoming>,
) -> Result<Request, Response> {
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > BODY_BYTES_MAX as u64) {
        return Err(handler.body_error(BodyError::TooLarge));
    }
    let body = match Limited::new(body, BODY_BYTES_MAX).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error)
            if error
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return Err(handler.body_error(BodyError::TooLarge));
        }
        Err(error) => return Err(handler.body_error(BodyError::Broken(error.to_string()))),
    };
    let path = parts.uri.path();
    let segments: Option<Vec<String>> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode_strict)
        .collect();
    let Some(segments) = segments else {
        return Err(handler.body_error(BodyError::BadPath(format!(
            "unable to decode the path [{path}]: invalid percent-encoding or UTF-8"
        ))));
    };
    Ok(Request {
        method: parts.method,
        segments,
        raw_path: path.to_string(),
        query: parse_query(parts.uri.query()),
        headers: parts.headers,
        body,
    })
}

fn into_hyper(response: Response, head: bool) -> hyper::Response<Full<Bytes>> {
    let length = response.body.len();
    let body = if head { Bytes::new() } else { response.body };
    let mut built = hyper::Response::new(Full::new(body));
    *built.status_mut() = response.status;
    let headers = built.headers_mut();
    headers.insert(
        "content-type",
        HeaderValue::from_static(response.content_type),
    );
    if head {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    }
    for (name, value) in response.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    built
}

/// A server bound to an address, not yet serving.
pub struct Server {
    listener: TcpListener,
}

/// Stops a running server: `shutdown` then await the join handle.
pub struct ServerHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl ServerHandle {
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

impl Server {
    pub async fn bind(address: SocketAddr) -> std::io::Result<Server> {
        Ok(Server {
            listener: TcpListener::bind(address).await?,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn serve<H: Handler>(self, handler: Arc<H>) -> ServerHandle {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let graceful = GracefulShutdown::new();
            loop {
                tokio::select! {
                    accepted = self.listener.accept() => {
                        let Ok((stream, _peer)) = accepted else { continue };
                        let _ = stream.set_nodelay(true);
                        let handler = handler.clone();
                        let service = service_fn(move |request: hyper::Request<Incoming>| {
                            let handler = handler.clone();
                            async move {
                                let head = request.method() == Method::HEAD;
                                let response = match read_request(handler.as_ref(), request).await {
                                    Ok(request) => handler.handle(request).await,
                                    Err(response) => response,
                                };
                                Ok::<_, Infallible>(into_hyper(response, head))
                            }
                        });
                        let connection = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), service);
                        let connection = graceful.watch(connection);
                        tokio::spawn(async move {
                            let _ = connection.await;
                        });
                    }
                    _ = stopped.changed() => break,
                }
            }
            drop(self.listener);
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
        });
        ServerHandle { stop, task }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("a%2Fb"), "a/b");
        assert_eq!(percent_decode("bad%zz"), "bad%zz");
        assert_eq!(percent_decode_strict("bad%zz"), None);
        assert_eq!(percent_decode_strict("%FF%FE"), None);
        assert_eq!(percent_decode_strict("caf%C3%A9"), Some("café".into()));
        let q = parse_query(Some("refresh=true&q=a+b&x"));
        assert_eq!(q["refresh"], "true");
        assert_eq!(q["q"], "a b");
        assert_eq!(q["x"], "");
    }
}
