//! A small HTTP/1.1 server on hyper, bounded everywhere a client could hold it: at most
//! [`ServerOptions::connections_max`] connections per listener (the next ones are answered 503
//! and closed), deadlines for a request's head, its body (a minimum rate) and an idle
//! kept-alive connection, a stall limit on writing answers, a budget of buffered body bytes
//! shared by every listener ([`BodyBudget`]: beyond it a request is refused before its body is
//! read), and accept errors such as EMFILE met with a backoff instead of a spin. It hands each
//! request to a [`Handler`]; a panic in the handler becomes a 500 for that request only. Shutdown
//! is graceful: requests in flight may finish for [`SHUTDOWN_GRACE`].

use std::any::Any;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{CONTENT_LENGTH, HeaderValue};
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper::{HeaderMap, Method, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, Sleep};

use crate::self_wake::PollAgainOnSelfWake;
use crate::tls::{TLS_HANDSHAKE_RECORD, Tls};

/// The largest request body any API accepts (Elasticsearch's `http.max_content_length`); a
/// larger one is refused with 413, before it is read when its length is declared.
pub const BODY_BYTES_MAX: usize = 100 * 1024 * 1024;
/// Default budget of request-body bytes buffered at once across all listeners
/// (`sluice up --request-buffer-bytes`): ten bodies of the largest size, a small share of a
/// 24 GiB machine. A request whose declared length does not fit in what is left is refused with
/// 429 (or its API's throttling error) before its body is read; a chunked body that outgrows it
/// is refused when it does. A budget is never smaller than [`BODY_BYTES_MAX`].
pub const REQUEST_BUFFER_BYTES_DEFAULT: usize = 1024 * 1024 * 1024;
/// Default most connections one listener serves at once (`sluice up --connections-max`). The
/// next connection is answered 503 in its API's shape and closed; the log says so at most once
/// per [`REFUSAL_LOG_INTERVAL`].
pub const CONNECTIONS_PER_LISTENER_MAX: usize = 1024;
/// Most connections of one listener being turned away at once; beyond it a new connection is
/// closed without an answer, so a flood costs at most this many sockets on top of the cap.
pub const REFUSING_CONNECTIONS_MAX: usize = 64;
/// How long a turned-away connection may take to send its request head and read its 503.
pub const REFUSAL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a request head (request line and headers) may take to arrive: from accept for a
/// connection's first request, from the first byte for the next ones. Beyond it the connection
/// is closed. (hyper's own head timeout is 30 s; Node's is 60 s.)
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a kept-alive connection may wait for its next request to start; beyond it the
/// connection is closed. Client pools (urllib3 under boto3 and the Elasticsearch clients)
/// notice a closed idle connection and open a new one.
pub const KEEP_ALIVE_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A request body's first allowance of time. With [`BODY_READ_MIN_BYTES_PER_S`], a body must have
/// arrived by `BODY_READ_TIMEOUT + received bytes / minimum rate` after its head; when it has
/// not, the request is answered 408 and the connection closed.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(20);
/// The minimum average rate of a request body after its first allowance: 64 KiB/s
/// (512 kbit/s), so a 100 MB body may take 26 minutes but a trickle cannot hold a connection and
/// its share of the body budget.
pub const BODY_READ_MIN_BYTES_PER_S: u64 = 64 * 1024;
/// How long writing an answer may make no progress (a client that stopped reading) before the
/// connection is closed.
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest request head, which is hyper's read buffer per connection: a larger head gets 431.
/// hyper's default (~400 KB) would let a thousand slow clients pin 400 MB; Elasticsearch allows
/// 4 KB of request line and 16 KB of headers.
pub const HEAD_BYTES_MAX: usize = 64 * 1024;
/// First pause after a failed accept (EMFILE, ENFILE, ENOMEM…); it doubles while accepts keep
/// failing, up to [`ACCEPT_BACKOFF_MAX`], so exhaustion never makes the accept loop spin. One
/// warning starts a burst of failures, one line ends it.
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// Longest pause between accepts while they fail: a waiting client is served at most this late
/// once descriptors are free again.
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one warning per this interval about turned-away connections, with their count.
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Most requests one HTTP/2 connection may have in flight at once (hyper's default is 200);
/// a client opening more gets its extra streams refused, as HTTP/2 says, and retries them.
pub const H2_STREAMS_PER_CONNECTION_MAX: u32 = 100;
/// How long shutdown waits for requests in flight before closing their connections.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Runs synchronous `work` whose cost grows with the data (walking an index's files, counting
/// its documents) or that may wait for the disk or for a lock held across disk writes, with
/// the worker's other tasks handed to another thread first (`block_in_place`): tokio polls the
/// sockets only from a worker that parks, so a worker busy with it would leave every
/// connection unread. On a current-thread runtime (unit tests) it runs as it is.
pub(crate) fn off_worker<T>(work: impl FnOnce() -> T) -> T {
    if tokio::runtime::Handle::current().runtime_flavor()
        == tokio::runtime::RuntimeFlavor::MultiThread
    {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}

/// A request with its body read.
#[derive(Debug)]
pub struct Request {
    pub method: Method,
    /// The path, percent-decoded segment by segment, without empty segments.
    pub segments: Vec<String>,
    pub raw_path: String,
    /// The query string as sent (still percent-encoded), without `?`: what SigV4 signs.
    pub raw_query: String,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    /// The body; its bytes count against the [`BodyBudget`] until every clone of it is dropped.
    pub body: Bytes,
    /// What the sender may do, once authenticated; `None` when security is off.
    pub grants: Option<std::sync::Arc<crate::roles::Grants>>,
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

/// Why the server answers a request itself instead of the handler answering it; the handler
/// renders each in its API's error shape ([`Handler::refuse`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The body is larger than [`BODY_BYTES_MAX`] (413).
    BodyTooLarge,
    /// The body could not be read (broken chunking, a closed connection).
    BodyBroken(String),
    /// The path has a broken percent-escape or is not UTF-8 once decoded.
    BadPath(String),
    /// The body did not arrive at the minimum rate (408; the connection is closed).
    BodyTooSlow { received_bytes: usize },
    /// The budget of buffered request bytes cannot hold this body (429 or the API's throttling
    /// error); the body was not read.
    BufferFull {
        requested_bytes: usize,
        reserved_bytes: usize,
        budget_bytes: usize,
    },
    /// The listener already serves its maximum of connections (503; the connection is closed).
    TooManyConnections { connections_max: usize },
    /// A plain HTTP request on a listener that serves only TLS (`--tls-only`): 400, and the
    /// connection is closed.
    TlsRequired,
    /// The handler panicked: a bug, answered 500 and logged.
    Panicked,
}

pub trait Handler: Send + Sync + 'static {
    fn handle(&self, request: Request) -> Pin<Box<dyn Future<Output = Response> + Send + '_>>;
    /// The answer to a request the server refuses; `headers` are the request's (the AWS port
    /// picks its service's error by `X-Amz-Target`).
    fn refuse(&self, refusal: Refusal, headers: &HeaderMap) -> Response;
}

/// The bytes of request bodies buffered at once, shared by every listener of a process.
#[derive(Debug)]
pub struct BodyBudget {
    bytes_max: usize,
    reserved_bytes: AtomicUsize,
}

impl BodyBudget {
    pub fn new(bytes_max: usize) -> Arc<BodyBudget> {
        Arc::new(BodyBudget {
            bytes_max,
            reserved_bytes: AtomicUsize::new(0),
        })
    }

    pub fn bytes_max(&self) -> usize {
        self.bytes_max
    }

    /// Bytes reserved by bodies being read or still held by their requests.
    pub fn reserved_bytes(&self) -> usize {
        self.reserved_bytes.load(Ordering::SeqCst)
    }

    fn add(&self, bytes: usize) -> Result<(), usize> {
        self.reserved_bytes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |reserved| {
                reserved
                    .checked_add(bytes)
                    .filter(|total| *total <= self.bytes_max)
            })
            .map(|_| ())
    }

    /// Reserves `bytes`, or tells how many are reserved already.
    fn try_reserve(self: &Arc<BodyBudget>, bytes: usize) -> Result<Reservation, usize> {
        self.add(bytes).map_err(|_| self.reserved_bytes())?;
        Ok(Reservation {
            budget: self.clone(),
            bytes,
        })
    }
}

/// Bytes of the [`BodyBudget`] held by one body, given back when dropped.
#[derive(Debug)]
struct Reservation {
    budget: Arc<BodyBudget>,
    bytes: usize,
}

impl Reservation {
    /// Grows the reservation to `bytes`, or tells how many are reserved in all.
    fn grow_to(&mut self, bytes: usize) -> Result<(), usize> {
        let extra = bytes.saturating_sub(self.bytes);
        self.budget
            .add(extra)
            .map_err(|_| self.budget.reserved_bytes())?;
        self.bytes += extra;
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget
            .reserved_bytes
            .fetch_sub(self.bytes, Ordering::SeqCst);
    }
}

/// A body's bytes with their reservation: `Bytes::from_owner` keeps both alive as long as any
/// clone or slice of the body, so the budget counts what is really held.
struct BudgetedBody {
    bytes: Vec<u8>,
    _reservation: Reservation,
}

impl AsRef<[u8]> for BudgetedBody {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// The limits one listener enforces; the [`BodyBudget`] in them is usually shared.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Connections served at once ([`CONNECTIONS_PER_LISTENER_MAX`] by default).
    pub connections_max: usize,
    /// See [`HEADER_READ_TIMEOUT`].
    pub header_read_timeout: Duration,
    /// See [`KEEP_ALIVE_IDLE_TIMEOUT`].
    pub keep_alive_idle_timeout: Duration,
    /// See [`BODY_READ_TIMEOUT`].
    pub body_read_timeout: Duration,
    /// See [`BODY_READ_MIN_BYTES_PER_S`].
    pub body_read_min_bytes_per_s: u64,
    /// See [`WRITE_STALL_TIMEOUT`].
    pub write_stall_timeout: Duration,
    /// The budget of buffered body bytes, usually shared with the process's other listeners.
    pub body_budget: Arc<BodyBudget>,
    /// TLS for this listener: `None` serves plain HTTP/1.1 only.
    pub tls: Option<Tls>,
}

impl ServerOptions {
    /// The default limits, with `body_budget` shared with other listeners.
    pub fn new(body_budget: Arc<BodyBudget>) -> ServerOptions {
        ServerOptions {
            connections_max: CONNECTIONS_PER_LISTENER_MAX,
            header_read_timeout: HEADER_READ_TIMEOUT,
            keep_alive_idle_timeout: KEEP_ALIVE_IDLE_TIMEOUT,
            body_read_timeout: BODY_READ_TIMEOUT,
            body_read_min_bytes_per_s: BODY_READ_MIN_BYTES_PER_S,
            write_stall_timeout: WRITE_STALL_TIMEOUT,
            body_budget,
            tls: None,
        }
    }
}

impl Default for ServerOptions {
    fn default() -> ServerOptions {
        ServerOptions::new(BodyBudget::new(REQUEST_BUFFER_BYTES_DEFAULT))
    }
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

/// The deadline by which a body that started at `started` and has `received_bytes` so far must
/// be complete: the first allowance, plus the time the received bytes may take at the minimum
/// rate.
fn body_deadline(options: &ServerOptions, started: Instant, received_bytes: usize) -> Instant {
    let rate = options.body_read_min_bytes_per_s.max(1);
    let earned_us = (received_bytes as u64).saturating_mul(1_000_000) / rate;
    started + options.body_read_timeout + Duration::from_micros(earned_us)
}

/// Reads a body within the budget and the minimum rate. A declared length is reserved whole
/// before anything is read; a chunked body reserves as its buffer grows.
async fn read_body(
    options: &ServerOptions,
    declared: Option<u64>,
    mut body: Incoming,
) -> Result<Bytes, Refusal> {
    if declared == Some(0) || body.is_end_stream() {
        return Ok(Bytes::new());
    }
    let declared = declared.and_then(|length| usize::try_from(length).ok());
    let initial = declared.unwrap_or(0);
    let budget = &options.body_budget;
    let buffer_full = |requested_bytes, reserved_bytes| Refusal::BufferFull {
        requested_bytes,
        reserved_bytes,
        budget_bytes: budget.bytes_max(),
    };
    let mut reservation = budget
        .try_reserve(initial)
        .map_err(|reserved| buffer_full(initial, reserved))?;
    let mut buffer: Vec<u8> = Vec::new();
    buffer
        .try_reserve_exact(initial)
        .map_err(|error| Refusal::BodyBroken(error.to_string()))?;
    let started = Instant::now();
    loop {
        let deadline = body_deadline(options, started, buffer.len());
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_elapsed) => {
                return Err(Refusal::BodyTooSlow {
                    received_bytes: buffer.len(),
                });
            }
            Ok(None) => break,
            Ok(Some(Err(error))) => return Err(Refusal::BodyBroken(error.to_string())),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers carry nothing the APIs read
        };
        let needed = buffer.len().saturating_add(data.len());
        if needed > BODY_BYTES_MAX {
            return Err(Refusal::BodyTooLarge);
        }
        if needed > buffer.capacity() {
            // Grow as a Vec would (doubling), but reserve the capacity before allocating it.
            let capacity = needed
                .max(buffer.capacity().saturating_mul(2))
                .clamp(4096, BODY_BYTES_MAX);
            reservation.grow_to(capacity).map_err(|reserved| {
                buffer_full(capacity.saturating_sub(reservation.bytes), reserved)
            })?;
            buffer
                .try_reserve_exact(capacity - buffer.len())
                .map_err(|error| Refusal::BodyBroken(error.to_string()))?;
        }
        buffer.extend_from_slice(&data);
    }
    Ok(Bytes::from_owner(BudgetedBody {
        bytes: buffer,
        _reservation: reservation,
    }))
}

async fn read_request(
    options: &ServerOptions,
    request: hyper::Request<Incoming>,
) -> Result<Request, Refusal> {
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > BODY_BYTES_MAX as u64) {
        return Err(Refusal::BodyTooLarge);
    }
    let body = read_body(options, declared, body).await?;
    let path = parts.uri.path();
    let segments: Option<Vec<String>> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode_strict)
        .collect();
    let Some(segments) = segments else {
        return Err(Refusal::BadPath(format!(
            "unable to decode the path [{path}]: invalid percent-encoding or UTF-8"
        )));
    };
    Ok(Request {
        method: parts.method,
        segments,
        raw_path: path.to_string(),
        raw_query: parts.uri.query().unwrap_or_default().to_owned(),
        query: parse_query(parts.uri.query()),
        headers: parts.headers,
        body,
        grants: None,
    })
}

/// Polls a future, turning a panic inside it into `Err` with the panic's payload.
struct CatchUnwind<F>(F);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(message) = payload.downcast_ref::<&'static str>() {
        message
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message
    } else {
        "a panic without a message"
    }
}

/// Reads the request and runs the handler; a panic in either becomes the handler's 500, so one
/// bad request never takes the connection task, let alone the process, with it.
async fn answer<H: Handler>(
    handler: &H,
    options: &ServerOptions,
    request: hyper::Request<Incoming>,
) -> Response {
    let headers = request.headers().clone();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let work = pin!(async {
        match read_request(options, request).await {
            Ok(request) => handler.handle(request).await,
            Err(refusal) => handler.refuse(refusal, &headers),
        }
    });
    match CatchUnwind(work).await {
        Ok(response) => response,
        Err(payload) => {
            tracing::error!(
                %method,
                path,
                panic = panic_message(payload.as_ref()),
                "a request handler panicked; answering 500"
            );
            handler.refuse(Refusal::Panicked, &headers)
        }
    }
}

/// What a connection's reads wait for, with the deadline of that wait.
#[derive(Debug, Clone, Copy)]
enum Waiting {
    /// A request is being read or answered: the body reader keeps its own deadline.
    Busy,
    /// A request head: a connection's first one from accept, later ones from their first byte.
    Head { deadline: Instant },
    /// The next request on a kept-alive connection, whose first byte has not come.
    Idle { deadline: Instant },
}

/// Counts the connection's requests in the service, each from its head until its answer's body
/// is dropped by hyper (written or abandoned); the connection is busy while any is (HTTP/2
/// serves several at once).
#[derive(Debug, Default)]
struct ConnectionState {
    in_flight: AtomicUsize,
}

impl ConnectionState {
    fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }
}

/// The connection's socket with its deadlines: it fails a read that waits past the head or idle
/// deadline, and a write that makes no progress for the stall timeout, with `TimedOut`, which
/// makes hyper close the connection. Under TLS it wraps the TCP stream below rustls, so the
/// handshake counts against the first head's deadline and a stalled TLS write is caught too.
struct TimedIo<S = TcpStream> {
    stream: S,
    state: Arc<ConnectionState>,
    waiting: Waiting,
    header_read_timeout: Duration,
    keep_alive_idle_timeout: Duration,
    write_stall_timeout: Duration,
    read_timer: Option<Pin<Box<Sleep>>>,
    write_deadline: Option<Instant>,
    write_timer: Option<Pin<Box<Sleep>>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> TimedIo<S> {
    /// `head_deadline` is the first request head's, counted from accept.
    fn new(
        stream: S,
        state: Arc<ConnectionState>,
        options: &ServerOptions,
        head_deadline: Instant,
    ) -> TimedIo<S> {
        TimedIo {
            stream,
            state,
            waiting: Waiting::Head {
                deadline: head_deadline,
            },
            header_read_timeout: options.header_read_timeout,
            keep_alive_idle_timeout: options.keep_alive_idle_timeout,
            write_stall_timeout: options.write_stall_timeout,
            read_timer: None,
            write_deadline: None,
            write_timer: None,
        }
    }

    /// Polls the write side's outcome against the stall deadline.
    fn check_stall<T>(
        &mut self,
        cx: &mut Context<'_>,
        outcome: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        match outcome {
            Poll::Ready(result) => {
                self.write_deadline = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let deadline = *self
                    .write_deadline
                    .get_or_insert_with(|| Instant::now() + self.write_stall_timeout);
                if timer_fired(&mut self.write_timer, deadline, cx) {
                    Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the client stopped reading the answer",
                    )))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

/// Arms `timer` for `deadline` and polls it: true once the deadline has passed.
fn timer_fired(
    timer: &mut Option<Pin<Box<Sleep>>>,
    deadline: Instant,
    cx: &mut Context<'_>,
) -> bool {
    let sleep = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
    if sleep.deadline() != deadline {
        sleep.as_mut().reset(deadline);
    }
    sleep.as_mut().poll(cx).is_ready()
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TimedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.state.busy() {
            this.waiting = Waiting::Busy;
            return Pin::new(&mut this.stream).poll_read(cx, buf);
        }
        if let Waiting::Busy = this.waiting {
            this.waiting = Waiting::Idle {
                deadline: Instant::now() + this.keep_alive_idle_timeout,
            };
        }
        let filled_before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > filled_before
                    && let Waiting::Idle { .. } = this.waiting
                {
                    this.waiting = Waiting::Head {
                        deadline: Instant::now() + this.header_read_timeout,
                    };
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => {
                let (deadline, what) = match this.waiting {
                    Waiting::Head { deadline } => {
                        (deadline, "the request head did not arrive in time")
                    }
                    Waiting::Idle { deadline } => {
                        (deadline, "the kept-alive connection stayed idle too long")
                    }
                    Waiting::Busy => return Poll::Pending,
                };
                if timer_fired(&mut this.read_timer, deadline, cx) {
                    Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, what)))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TimedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let outcome = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.check_stall(cx, outcome)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let outcome = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.check_stall(cx, outcome)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let outcome = Pin::new(&mut this.stream).poll_flush(cx);
        this.check_stall(cx, outcome)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let outcome = Pin::new(&mut this.stream).poll_shutdown(cx);
        this.check_stall(cx, outcome)
    }
}

/// Counts one request in flight on its connection until hyper drops the answer's body.
struct BusyUntilDropped(Arc<ConnectionState>);

impl BusyUntilDropped {
    fn new(state: Arc<ConnectionState>) -> BusyUntilDropped {
        state.in_flight.fetch_add(1, Ordering::AcqRel);
        BusyUntilDropped(state)
    }
}

impl Drop for BusyUntilDropped {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An answer's body: all of it at once, and the connection's busy flag until it is dropped.
struct ResponseBody {
    body: Full<Bytes>,
    _busy: Option<BusyUntilDropped>,
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

fn into_hyper(
    response: Response,
    head: bool,
    busy: Option<BusyUntilDropped>,
) -> hyper::Response<ResponseBody> {
    let length = response.body.len();
    let body = if head { Bytes::new() } else { response.body };
    let mut built = hyper::Response::new(ResponseBody {
        body: Full::new(body),
        _busy: busy,
    });
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

/// The accept loop's pause after failures, and its one log line per burst of them.
#[derive(Debug, Default)]
struct AcceptBackoff {
    failures: u64,
    pause: Duration,
    burst_started: Option<Instant>,
}

impl AcceptBackoff {
    fn failed(&mut self, address: SocketAddr, error: &std::io::Error) -> Duration {
        if self.failures == 0 {
            tracing::warn!(
                %address,
                %error,
                "accepting a connection failed; pausing accepts until they work again"
            );
            self.burst_started = Some(Instant::now());
            self.pause = ACCEPT_BACKOFF_MIN;
        } else {
            self.pause = (self.pause * 2).min(ACCEPT_BACKOFF_MAX);
        }
        self.failures += 1;
        self.pause
    }

    fn succeeded(&mut self, address: SocketAddr) {
        if self.failures > 0 {
            let failing_ms = self
                .burst_started
                .map(|started| started.elapsed().as_millis() as u64)
                .unwrap_or(0);
            tracing::info!(
                %address,
                failures = self.failures,
                failing_ms,
                "accepting connections again"
            );
            self.failures = 0;
        }
    }
}

/// Counts events and says when to log them: the first at once, then at most once per interval.
#[derive(Debug)]
struct RateLimitedLog {
    interval: Duration,
    last_logged: Option<Instant>,
    unlogged: u64,
}

impl RateLimitedLog {
    fn new(interval: Duration) -> RateLimitedLog {
        RateLimitedLog {
            interval,
            last_logged: None,
            unlogged: 0,
        }
    }

    /// Records one event; `Some(events since the last log line)` when this one should be logged.
    fn record(&mut self) -> Option<u64> {
        self.unlogged += 1;
        let now = Instant::now();
        let due = self
            .last_logged
            .is_none_or(|last| now.duration_since(last) >= self.interval);
        if !due {
            return None;
        }
        self.last_logged = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }
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

    pub fn serve<H: Handler>(self, handler: Arc<H>, options: ServerOptions) -> ServerHandle {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let address = self
                .listener
                .local_addr()
                .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
            let options = Arc::new(options);
            let connections = Arc::new(Semaphore::new(options.connections_max));
            let refusing = Arc::new(Semaphore::new(REFUSING_CONNECTIONS_MAX));
            let mut refusals = RateLimitedLog::new(REFUSAL_LOG_INTERVAL);
            let mut backoff = AcceptBackoff::default();
            let graceful = GracefulShutdown::new();
            loop {
                let accepted = tokio::select! {
                    accepted = self.listener.accept() => accepted,
                    _ = stopped.changed() => break,
                };
                let stream = match accepted {
                    Ok((stream, _peer)) => {
                        backoff.succeeded(address);
                        stream
                    }
                    Err(error) => {
                        let pause = backoff.failed(address, &error);
                        tokio::select! {
                            _ = tokio::time::sleep(pause) => continue,
                            _ = stopped.changed() => break,
                        }
                    }
                };
                let _ = stream.set_nodelay(true);
                let Ok(permit) = connections.clone().try_acquire_owned() else {
                    if let Some(refused) = refusals.record() {
                        tracing::warn!(
                            %address,
                            connections_max = options.connections_max,
                            refused,
                            "turning connections away: the listener serves its maximum of connections"
                        );
                    }
                    if let Ok(refusing_permit) = refusing.clone().try_acquire_owned() {
                        let handler = handler.clone();
                        let connections_max = options.connections_max;
                        let tls = options.tls.clone();
                        tokio::spawn(async move {
                            let _permit = refusing_permit;
                            let refusal = Refusal::TooManyConnections { connections_max };
                            refuse_connection(handler, tls, stream, refusal).await;
                        });
                    }
                    continue;
                };
                let handler = handler.clone();
                let options = options.clone();
                let watcher = graceful.watcher();
                tokio::spawn(PollAgainOnSelfWake::new(async move {
                    let _permit = permit;
                    serve_connection(handler, options, stream, watcher).await;
                }));
            }
            drop(self.listener);
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
        });
        ServerHandle { stop, task }
    }
}

/// What a connection of a TLS listener starts with.
enum Opening {
    Tls,
    PlainHttp,
    /// Closed, failed or silent past the deadline: nothing to serve.
    Nothing,
}

/// Looks at a connection's first byte without consuming it, waiting until `deadline`.
async fn sniff(stream: &TcpStream, deadline: Instant) -> Opening {
    let mut first = [0u8; 1];
    match tokio::time::timeout_at(deadline, stream.peek(&mut first)).await {
        Ok(Ok(1..)) if first[0] == TLS_HANDSHAKE_RECORD => Opening::Tls,
        Ok(Ok(1..)) => Opening::PlainHttp,
        _ => Opening::Nothing,
    }
}

/// Serves one accepted connection: plain HTTP/1.1 without TLS (as always); with TLS, the
/// handshake within the first head's deadline, then HTTP/2 or HTTP/1.1 as ALPN chose, and plain
/// HTTP beside it unless the listener is TLS-only (then plain requests get
/// [`Refusal::TlsRequired`] and the connection closes).
async fn serve_connection<H: Handler>(
    handler: Arc<H>,
    options: Arc<ServerOptions>,
    stream: TcpStream,
    watcher: Watcher,
) {
    let head_deadline = Instant::now() + options.header_read_timeout;
    let state = Arc::new(ConnectionState::default());
    let refusing_handler = handler.clone();
    let service_state = state.clone();
    let service_options = options.clone();
    let service = move |request: hyper::Request<Incoming>| {
        let handler = handler.clone();
        let options = service_options.clone();
        let busy = BusyUntilDropped::new(service_state.clone());
        async move {
            let head = request.method() == Method::HEAD;
            let response = answer(handler.as_ref(), &options, request).await;
            Ok::<_, Infallible>(into_hyper(response, head, Some(busy)))
        }
    };
    let Some(tls) = &options.tls else {
        let io = TimedIo::new(stream, state, &options, head_deadline);
        log_connection_end(serve_http(io, false, true, service, Some(watcher)).await);
        return;
    };
    match sniff(&stream, head_deadline).await {
        Opening::Nothing => {}
        Opening::PlainHttp if tls.only => {
            refuse_connection(refusing_handler, None, stream, Refusal::TlsRequired).await;
        }
        Opening::PlainHttp => {
            let io = TimedIo::new(stream, state, &options, head_deadline);
            log_connection_end(serve_http(io, false, true, service, Some(watcher)).await);
        }
        Opening::Tls => {
            let io = TimedIo::new(stream, state, &options, head_deadline);
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.clone());
            let tls_stream = match tokio::time::timeout_at(head_deadline, acceptor.accept(io)).await
            {
                Ok(Ok(tls_stream)) => tls_stream,
                Ok(Err(error)) => {
                    tracing::debug!(%error, "a TLS handshake failed");
                    return;
                }
                Err(_elapsed) => {
                    tracing::debug!("a TLS handshake did not finish in time");
                    return;
                }
            };
            let h2 = tls_stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
            log_connection_end(serve_http(tls_stream, h2, true, service, Some(watcher)).await);
        }
    }
}
fn log_connection_end(outcome: Result<(), hyper::Error>) {
    if let Err(error) = outcome {
        tracing::debug!(%error, "connection closed on an error");
    }
}

/// Serves HTTP/2 or HTTP/1.1 on `io` until the connection ends, watched by `watcher` for a
/// graceful shutdown when given.
async fn serve_http<I, S, F>(
    io: I,
    h2: bool,
    keep_alive: bool,
    service: S,
    watcher: Option<Watcher>,
) -> Result<(), hyper::Error>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Fn(hyper::Request<Incoming>) -> F + Send + 'static,
    F: Future<Output = Result<hyper::Response<ResponseBody>, Infallible>> + Send + 'static,
{
    let service = service_fn(service);
    if h2 {
        let connection = http2::Builder::new(TokioExecutor::new())
            .max_header_list_size(HEAD_BYTES_MAX as u32)
            .max_concurrent_streams(H2_STREAMS_PER_CONNECTION_MAX)
            .serve_connection(TokioIo::new(io), service);
        match watcher {
            Some(watcher) => watcher.watch(connection).await,
            None => connection.await,
        }
    } else {
        let connection = http1::Builder::new()
            .keep_alive(keep_alive)
            .max_buf_size(HEAD_BYTES_MAX)
            .max_header_size(HEAD_BYTES_MAX)
            .serve_connection(TokioIo::new(io), service);
        match watcher {
            Some(watcher) => watcher.watch(connection).await,
            None => connection.await,
        }
    }
}

/// Answers a connection the listener does not serve with the handler's answer to `refusal`
/// once its request head is in, and closes it, all within [`REFUSAL_TIMEOUT`]. With `tls`, a
/// connection that opens with a TLS handshake gets its answer over TLS.
async fn refuse_connection<H: Handler>(
    handler: Arc<H>,
    tls: Option<Tls>,
    stream: TcpStream,
    refusal: Refusal,
) {
    let deadline = Instant::now() + REFUSAL_TIMEOUT;
    let service = move |request: hyper::Request<Incoming>| {
        let response = handler.refuse(refusal.clone(), request.headers());
        let head = request.method() == Method::HEAD;
        std::future::ready(Ok::<_, Infallible>(into_hyper(response, head, None)))
    };
    let refused = async move {
        let Some(tls) = tls else {
            return serve_http(stream, false, false, service, None).await;
        };
        match sniff(&stream, deadline).await {
            Opening::Tls => {
                let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.clone());
                let Ok(tls_stream) = acceptor.accept(stream).await else {
                    return Ok(());
                };
                let h2 = tls_stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
                serve_http(tls_stream, h2, false, service, None).await
            }
            Opening::PlainHttp => serve_http(stream, false, false, service, None).await,
            Opening::Nothing => Ok(()),
        }
    };
    let _ = tokio::time::timeout_at(deadline, refused).await;
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

    use std::sync::Mutex;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Generous bound on anything the tests wait for: the timeouts under test are far shorter.
    const WAIT: Duration = Duration::from_secs(10);

    /// Answers `/panic` by panicking, `/keep` by keeping its body (so it stays in the budget),
    /// anything else with the length of its body; refusals come back as their `Debug` text.
    #[derive(Default)]
    struct TestHandler {
        kept: Mutex<Vec<Bytes>>,
    }

    impl Handler for TestHandler {
        fn handle(&self, request: Request) -> Pin<Box<dyn Future<Output = Response> + Send + '_>> {
            Box::pin(async move {
                match request.raw_path.as_str() {
                    "/panic" => panic!("a bug in a handler"),
                    "/keep" => {
                        let length = request.body.len();
                        self.kept.lock().unwrap().push(request.body);
                        Response::new(StatusCode::OK, "text/plain", length.to_string())
                    }
                    _ => {
                        Response::new(StatusCode::OK, "text/plain", request.body.len().to_string())
                    }
                }
            })
        }

        fn refuse(&self, refusal: Refusal, _headers: &HeaderMap) -> Response {
            let status = match refusal {
                Refusal::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                Refusal::BodyTooSlow { .. } => StatusCode::REQUEST_TIMEOUT,
                Refusal::BufferFull { .. } => StatusCode::TOO_MANY_REQUESTS,
                Refusal::TooManyConnections { .. } => StatusCode::SERVICE_UNAVAILABLE,
                Refusal::Panicked => StatusCode::INTERNAL_SERVER_ERROR,
                Refusal::BodyBroken(_) | Refusal::BadPath(_) | Refusal::TlsRequired => {
                    StatusCode::BAD_REQUEST
                }
            };
            Response::new(status, "text/plain", format!("{refusal:?}"))
        }
    }

    async fn start(options: ServerOptions) -> (SocketAddr, Arc<TestHandler>, ServerHandle) {
        let server = Server::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let address = server.local_addr().unwrap();
        let handler = Arc::new(TestHandler::default());
        let handle = server.serve(handler.clone(), options);
        (address, handler, handle)
    }

    /// Reads one response: `None` when the connection closes first.
    async fn read_response<S: AsyncRead + Unpin>(stream: &mut S) -> Option<(u16, String)> {
        let mut received = Vec::new();
        let mut chunk = [0u8; 65536];
        loop {
            if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&received[..end]).to_string();
                let length: usize = head
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                if received.len() >= end + 4 + length {
                    let status = head.split(' ').nth(1)?.parse().ok()?;
                    let body = String::from_utf8_lossy(&received[end + 4..end + 4 + length]);
                    return Some((status, body.to_string()));
                }
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
            }
        }
    }

    async fn request(address: SocketAddr, raw: &[u8]) -> Option<(u16, String)> {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream.write_all(raw).await.unwrap();
        tokio::time::timeout(WAIT, read_response(&mut stream))
            .await
            .unwrap()
    }

    /// True once the server closed the connection (end of stream or reset).
    async fn closed_by_server<S: AsyncRead + Unpin>(stream: &mut S) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(WAIT, stream.read(&mut byte)).await,
            Ok(Ok(0) | Err(_))
        )
    }

    fn post(path: &str, body: &[u8]) -> Vec<u8> {
        let mut raw = format!(
            "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        raw.extend_from_slice(body);
        raw
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_and_the_server_keeps_serving() {
        let (address, _handler, server) = start(ServerOptions::default()).await;
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream
            .write_all(b"GET /panic HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let answer = tokio::time::timeout(WAIT, read_response(&mut stream)).await;
        assert_eq!(answer.unwrap(), Some((500, "Panicked".into())));
        // The same connection, and new ones, go on.
        stream.write_all(&post("/echo", b"abc")).await.unwrap();
        let answer = tokio::time::timeout(WAIT, read_response(&mut stream)).await;
        assert_eq!(answer.unwrap(), Some((200, "3".into())));
        assert_eq!(
            request(address, &post("/echo", b"abcd")).await,
            Some((200, "4".into()))
        );
        server.shutdown().await;
    }

    #[tokio::test]
    async fn connections_over_the_cap_get_503_and_closed_until_one_ends() {
        let options = ServerOptions {
            connections_max: 2,
            ..ServerOptions::default()
        };
        let (address, _handler, server) = start(options).await;
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut stream = TcpStream::connect(address).await.unwrap();
            stream.write_all(&post("/echo", b"x")).await.unwrap();
            let answer = tokio::time::timeout(WAIT, read_response(&mut stream)).await;
            assert_eq!(answer.unwrap(), Some((200, "1".into())));
            held.push(stream);
        }
        let mut over = TcpStream::connect(address).await.unwrap();
        over.write_all(&post("/echo", b"x")).await.unwrap();
        let answer = tokio::time::timeout(WAIT, read_response(&mut over)).await;
        assert_eq!(
            answer.unwrap(),
            Some((503, "TooManyConnections { connections_max: 2 }".into()))
        );
        assert!(closed_by_server(&mut over).await);

        // Once a held connection ends, a new one is served (the server notices the close in its
        // own time: poll, within a generous bound).
        drop(held.pop());
        let deadline = Instant::now() + WAIT;
        loop {
            match request(address, &post("/echo", b"yz")).await {
                Some((200, body)) => {
                    assert_eq!(body, "2");
                    break;
                }
                Some((503, _)) if Instant::now() < deadline => tokio::task::yield_now().await,
                other => panic!("unexpected answer {other:?}"),
            }
        }
        server.shutdown().await;
    }

    #[tokio::test]
    async fn silent_slow_and_idle_connections_are_closed_after_their_timeouts() {
        let options = ServerOptions {
            header_read_timeout: Duration::from_millis(200),
            keep_alive_idle_timeout: Duration::from_millis(200),
            ..ServerOptions::default()
        };
        let (address, _handler, server) = start(options).await;
        // Connects and sends nothing.
        let mut silent = TcpStream::connect(address).await.unwrap();
        // Sends half a head and stops.
        let mut slow = TcpStream::connect(address).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n")
            .await
            .unwrap();
        // Sends a request, then keeps the connection idle.
        let mut idle = TcpStream::connect(address).await.unwrap();
        idle.write_all(&post("/echo", b"x")).await.unwrap();
        let answer = tokio::time::timeout(WAIT, read_response(&mut idle)).await;
        assert_eq!(answer.unwrap(), Some((200, "1".into())));

        assert!(closed_by_server(&mut silent).await);
        assert!(closed_by_server(&mut slow).await);
        assert!(closed_by_server(&mut idle).await);
        server.shutdown().await;
    }

    #[tokio::test]
    async fn a_body_slower_than_the_minimum_rate_gets_408_and_the_connection_closes() {
        let options = ServerOptions {
            body_read_timeout: Duration::from_millis(200),
            body_read_min_bytes_per_s: 1024,
            ..ServerOptions::default()
        };
        let (address, _handler, server) = start(options.clone()).await;
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream
            .write_all(
                b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n0123456789",
            )
            .await
            .unwrap();
        let answer = tokio::time::timeout(WAIT, read_response(&mut stream)).await;
        assert_eq!(
            answer.unwrap(),
            Some((408, "BodyTooSlow { received_bytes: 10 }".into()))
        );
        assert!(closed_by_server(&mut stream).await);
        assert_eq!(options.body_budget.reserved_bytes(), 0);
        server.shutdown().await;
    }

    #[tokio::test]
    async fn the_body_budget_refuses_before_reading_and_counts_bodies_until_dropped() {
        let budget = BodyBudget::new(100_000);
        let (address, handler, server) = start(ServerOptions::new(budget.clone())).await;
        assert_eq!(
            request(address, &post("/keep", &[b'k'; 60_000])).await,
            Some((200, "60000".into()))
        );
        assert_eq!(budget.reserved_bytes(), 60_000, "a kept body stays counted");

        // A declared length that does not fit is refused before any of the body is sent.
        let answer = request(
            address,
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 50000\r\n\r\n",
        )
        .await;
        assert_eq!(
            answer,
            Some((
                429,
                "BufferFull { requested_bytes: 50000, reserved_bytes: 60000, budget_bytes: 100000 }"
                    .into()
            ))
        );

        // A chunked body is refused once it outgrows what is left.
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream
            .write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
            .await
            .unwrap();
        let chunk = [b'c'; 10_000];
        let mut answer = None;
        for _ in 0..10 {
            let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
            framed.extend_from_slice(&chunk);
            framed.extend_from_slice(b"\r\n");
            if stream.write_all(&framed).await.is_err() {
                break;
            }
            if let Ok(read) =
                tokio::time::timeout(Duration::from_millis(50), read_response(&mut stream)).await
            {
                answer = read;
                break;
            }
        }
        let (status, body) = answer.expect("an answer before the body ended");
        assert_eq!(status, 429, "{body}");

        // Given back when the bodies are dropped; then a body that did not fit fits.
        handler.kept.lock().unwrap().clear();
        assert_eq!(budget.reserved_bytes(), 0);
        assert_eq!(
            request(address, &post("/echo", &[b'e'; 50_000])).await,
            Some((200, "50000".into()))
        );
        assert_eq!(budget.reserved_bytes(), 0);
        server.shutdown().await;
    }

    #[tokio::test]
    async fn a_head_over_the_limit_gets_431() {
        let (address, _handler, server) = start(ServerOptions::default()).await;
        let raw = format!(
            "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
            "b".repeat(HEAD_BYTES_MAX)
        );
        let answer = request(address, raw.as_bytes()).await;
        assert_eq!(answer.map(|(status, _)| status), Some(431));
        server.shutdown().await;
    }

    #[test]
    fn accept_failures_back_off_doubling_to_a_second_and_reset_on_success() {
        let address = SocketAddr::from(([127, 0, 0, 1], 9));
        let error = std::io::Error::from_raw_os_error(24); // EMFILE
        let mut backoff = AcceptBackoff::default();
        let pauses: Vec<u128> = (0..10)
            .map(|_| backoff.failed(address, &error).as_millis())
            .collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        backoff.succeeded(address);
        assert_eq!(backoff.failed(address, &error), ACCEPT_BACKOFF_MIN);
    }

    #[test]
    fn refusals_are_logged_once_per_interval_with_their_count() {
        let mut log = RateLimitedLog::new(Duration::from_secs(3600));
        assert_eq!(log.record(), Some(1));
        assert_eq!(log.record(), None);
        assert_eq!(log.record(), None);
        let mut log = RateLimitedLog::new(Duration::ZERO);
        assert_eq!(log.record(), Some(1));
        assert_eq!(log.record(), Some(1));
    }

    mod tls {
        use super::*;
        use crate::tls::{CertificateFiles, ReloadingCert, Tls, self_signed};
        use rustls::pki_types::ServerName;
        use tokio_rustls::TlsConnector;
        use tokio_rustls::client::TlsStream;

        /// A listener with a self-signed certificate, and a client trusting only it.
        struct TlsFixture {
            _dir: tempfile::TempDir,
            files: CertificateFiles,
            cert: Arc<ReloadingCert>,
        }

        fn fixture() -> TlsFixture {
            let dir = tempfile::tempdir().unwrap();
            let generated = self_signed(dir.path(), &["localhost".into()]).unwrap();
            // A copy the test may overwrite, as an operator replaces the files before SIGHUP.
            let files = CertificateFiles {
                cert: dir.path().join("cert.pem"),
                key: dir.path().join("key.pem"),
            };
            std::fs::copy(&generated.cert, &files.cert).unwrap();
            std::fs::copy(&generated.key, &files.key).unwrap();
            let cert = Arc::new(ReloadingCert::load(files.clone()).unwrap());
            TlsFixture {
                _dir: dir,
                files,
                cert,
            }
        }

        fn options(fixture: &TlsFixture, only: bool) -> ServerOptions {
            ServerOptions {
                tls: Some(Tls::new(fixture.cert.clone(), only).unwrap()),
                ..ServerOptions::default()
            }
        }

        fn connector(trusted: &CertificateFiles, alpn: &[&[u8]]) -> TlsConnector {
            use rustls::pki_types::CertificateDer;
            use rustls::pki_types::pem::PemObject;
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_file(&trusted.cert).unwrap())
                .unwrap();
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            TlsConnector::from(Arc::new(config))
        }

        async fn connect(
            address: SocketAddr,
            trusted: &CertificateFiles,
            alpn: &[&[u8]],
        ) -> std::io::Result<TlsStream<TcpStream>> {
            let tcp = TcpStream::connect(address).await?;
            let name = ServerName::try_from("localhost").unwrap();
            connector(trusted, alpn).connect(name, tcp).await
        }

        #[tokio::test]
        async fn tls_and_plain_http_share_a_port_unless_tls_only() {
            let fixture = fixture();
            let (address, _handler, server) = start(options(&fixture, false)).await;
            let mut secure = connect(address, &fixture.files, &[b"http/1.1"])
                .await
                .unwrap();
            assert_eq!(
                secure.get_ref().1.alpn_protocol(),
                Some(b"http/1.1".as_slice())
            );
            secure.write_all(&post("/echo", b"abc")).await.unwrap();
            let answer = tokio::time::timeout(WAIT, read_response(&mut secure)).await;
            assert_eq!(answer.unwrap(), Some((200, "3".into())));
            // Kept alive over TLS.
            secure.write_all(&post("/echo", b"ab")).await.unwrap();
            let answer = tokio::time::timeout(WAIT, read_response(&mut secure)).await;
            assert_eq!(answer.unwrap(), Some((200, "2".into())));
            assert_eq!(
                request(address, &post("/echo", b"abcd")).await,
                Some((200, "4".into()))
            );
            server.shutdown().await;

            let (address, _handler, server) = start(options(&fixture, true)).await;
            let mut plain = TcpStream::connect(address).await.unwrap();
            plain.write_all(&post("/echo", b"abcd")).await.unwrap();
            let answer = tokio::time::timeout(WAIT, read_response(&mut plain)).await;
            assert_eq!(answer.unwrap(), Some((400, "TlsRequired".into())));
            assert!(closed_by_server(&mut plain).await);
            let mut secure = connect(address, &fixture.files, &[]).await.unwrap();
            secure.write_all(&post("/echo", b"abc")).await.unwrap();
            let answer = tokio::time::timeout(WAIT, read_response(&mut secure)).await;
            assert_eq!(answer.unwrap(), Some((200, "3".into())));
            server.shutdown().await;
        }

        #[tokio::test]
        async fn alpn_h2_serves_http2() {
            use http_body_util::BodyExt;
            let fixture = fixture();
            let (address, _handler, server) = start(options(&fixture, true)).await;
            let secure = connect(address, &fixture.files, &[b"h2", b"http/1.1"])
                .await
                .unwrap();
            assert_eq!(secure.get_ref().1.alpn_protocol(), Some(b"h2".as_slice()));
            let (sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(secure))
                    .await
                    .unwrap();
            tokio::spawn(connection);
            // Two requests at once on the one connection.
            let send = |body: &'static [u8]| {
                let request = hyper::Request::post("https://localhost/echo")
                    .body(Full::new(Bytes::from_static(body)))
                    .unwrap();
                let mut sender = sender.clone();
                async move { sender.send_request(request).await }
            };
            let (first, second) = (send(b"abc"), send(b"abcdef"));
            let (first, second) = tokio::join!(first, second);
            for (response, expected) in [(first.unwrap(), "3"), (second.unwrap(), "6")] {
                assert_eq!(response.status(), StatusCode::OK);
                let body = response.into_body().collect().await.unwrap().to_bytes();
                assert_eq!(body, expected.as_bytes());
            }
            server.shutdown().await;
        }

        #[tokio::test]
        async fn a_stalled_handshake_is_closed_at_the_head_deadline() {
            let fixture = fixture();
            let options = ServerOptions {
                header_read_timeout: Duration::from_millis(200),
                ..options(&fixture, false)
            };
            let (address, _handler, server) = start(options).await;
            // The first bytes of a ClientHello record, then nothing.
            let mut stalled = TcpStream::connect(address).await.unwrap();
            stalled.write_all(&[0x16, 0x03, 0x01, 0x02]).await.unwrap();
            assert!(closed_by_server(&mut stalled).await);
            // Garbage after the record byte fails the handshake without harming the server.
            let mut garbage = TcpStream::connect(address).await.unwrap();
            // (rustls may send an alert first: read to the end.)
            garbage.write_all(&[0x16; 64]).await.unwrap();
            let mut alert = Vec::new();
            let ended = tokio::time::timeout(WAIT, garbage.read_to_end(&mut alert)).await;
            assert!(ended.is_ok(), "the connection was not closed");
            let mut secure = connect(address, &fixture.files, &[]).await.unwrap();
            secure.write_all(&post("/echo", b"a")).await.unwrap();
            let answer = tokio::time::timeout(WAIT, read_response(&mut secure)).await;
            assert_eq!(answer.unwrap(), Some((200, "1".into())));
            server.shutdown().await;
        }

        #[tokio::test]
        async fn a_reload_serves_new_handshakes_and_keeps_open_connections() {
            let fixture = fixture();
            let (address, _handler, server) = start(options(&fixture, false)).await;
            let mut before = connect(address, &fixture.files, &[]).await.unwrap();

            let other_dir = tempfile::tempdir().unwrap();
            let other = self_signed(other_dir.path(), &["localhost".into()]).unwrap();
            std::fs::copy(&other.cert, &fixture.files.cert).unwrap();
            std::fs::copy(&other.key, &fixture.files.key).unwrap();
            fixture.cert.reload().unwrap();

            // The connection made before goes on with its certificate.
            before.write_all(&post("/echo", b"ab")).await.unwrap();
            let answer = tokio::time::timeout(WAIT, read_response(&mut before)).await;
            assert_eq!(answer.unwrap(), Some((200, "2".into())));
            // New handshakes get the new certificate: a client trusting only it connects.
            let mut after = connect(address, &other, &[]).await.unwrap();
            after.write_all(&post("/echo", b"abc")).await.unwrap();
            let answer = tokio::time::timeout(WAIT, read_response(&mut after)).await;
            assert_eq!(answer.unwrap(), Some((200, "3".into())));
            server.shutdown().await;
        }

        #[tokio::test]
        async fn connections_over_the_cap_get_their_503_over_tls() {
            let fixture = fixture();
            let options = ServerOptions {
                connections_max: 1,
                ..options(&fixture, true)
            };
            let (address, _handler, server) = start(options).await;
            let mut held = connect(address, &fixture.files, &[]).await.unwrap();
            held.write_all(&post("/echo", b"x")).await.unwrap();
            let answer = tokio::time::timeout(WAIT, read_response(&mut held)).await;
            assert_eq!(answer.unwrap(), Some((200, "1".into())));
            let mut over = connect(address, &fixture.files, &[]).await.unwrap();
            over.write_all(&post("/echo", b"x")).await.unwrap();
            let answer = tokio::time::timeout(WAIT, read_response(&mut over)).await;
            assert_eq!(
                answer.unwrap(),
                Some((503, "TooManyConnections { connections_max: 1 }".into()))
            );
            server.shutdown().await;
        }
    }
}
