//! The `runtime-api` kind: warm processes that pull events from an AWS Lambda Runtime API
//! served by the host, exactly as Lambda's runtimes do (`python -m awslambdaric module.handler`).
//!
//! Each runtime process gets its own Runtime API on `127.0.0.1` at an ephemeral port, named by
//! `AWS_LAMBDA_RUNTIME_API`. A process handles one invocation at a time, so the pool holds up
//! to the function's concurrency of them. A process that crashed, timed out or failed to
//! initialise is killed and replaced by a fresh one on the next invocation; one that answered
//! (even with `/error`) goes back to the pool warm.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::convert::Infallible;
use std::hash::{BuildHasher, Hasher};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::arn::function_arn;
use crate::clock::Clock;
use crate::definition::FunctionDefinition;
use crate::error::{Error, Result};
use crate::limits::{
    PAYLOAD_BYTES_MAX, RUNTIME_ERROR_BODY_BYTES_MAX, RUNTIME_INIT_GRACE, STDERR_DRAIN_WAIT,
};
use crate::process::{
    Failing, LogSlot, OutputTail, ProcessGroup, display_command, exit_description, forward_output,
    handler_command, spawn_failure, with_stderr,
};

/// Pause after a failed `accept` before trying again.
const ACCEPT_RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Lambda's error type for a function that did not finish its init phase in time.
const INIT_TIMEOUT_ERROR_TYPE: &str = "Sandbox.Timedout";

/// Path prefix of every Runtime API route.
const API_PREFIX: &str = "/2018-06-01/runtime/";

/// Warm runtime processes of one function.
/// Scheduler turns an invocation that asked for its log gives the output forwarders after the
/// answer: what the handler wrote before answering is in the pipes by then.
const LOG_DRAIN_YIELDS: usize = 8;

pub(crate) struct RuntimePool {
    definition: FunctionDefinition,
    clock: Arc<dyn Clock>,
    /// Processes waiting for work; at most the function's concurrency, since the registry's
    /// semaphore lets no more invocations run at once.
    idle: Mutex<Vec<RuntimeInstance>>,
    shut_down: AtomicBool,
    /// Set by the registry during a burst of failures: starts and output log at debug level.
    failing: Failing,
}

impl RuntimePool {
    pub(crate) fn new(
        definition: FunctionDefinition,
        clock: Arc<dyn Clock>,
        failing: Failing,
    ) -> Self {
        RuntimePool {
            definition,
            clock,
            idle: Mutex::new(Vec::new()),
            shut_down: AtomicBool::new(false),
            failing,
        }
    }

    /// One invocation on a warm process, starting one when none is idle or the idle one died.
    pub(crate) async fn invoke(&self, payload: Bytes, log: Option<OutputTail>) -> Result<Bytes> {
        if self.shut_down.load(Ordering::SeqCst) {
            return Err(Error::ShutDown);
        }
        let mut instance = match self.take_idle() {
            Some(warm) => warm,
            None => self.start().await?,
        };
        let mut outcome = instance.invoke(payload.clone(), log.clone()).await;
        if outcome.is_err() && instance.died_before_delivery && instance.initialised {
            // The warm process died while idle, before the host noticed: this event never
            // reached it, so it goes to a fresh process as Lambda would, without using a retry.
            tracing::info!(function = %self.definition.name, "warm runtime process had died; starting a new one");
            instance = self.start().await?;
            outcome = instance.invoke(payload, log).await;
        }
        if instance.reusable
            && instance.is_alive()
            && !self.shut_down.load(Ordering::SeqCst)
            && let Ok(mut idle) = self.idle.lock()
        {
            idle.push(instance);
        }
        outcome
    }

    async fn start(&self) -> Result<RuntimeInstance> {
        RuntimeInstance::start(
            &self.definition,
            Arc::clone(&self.clock),
            Arc::clone(&self.failing),
        )
        .await
    }

    fn take_idle(&self) -> Option<RuntimeInstance> {
        let mut idle = self.idle.lock().ok()?;
        while let Some(instance) = idle.pop() {
            if instance.is_alive() {
                return Some(instance);
            }
            tracing::info!(function = %self.definition.name, "runtime process died while idle; starting a new one");
        }
        None
    }

    /// Kills every idle process and refuses further invocations.
    pub(crate) async fn shutdown(&self) {
        self.shut_down.store(true, Ordering::SeqCst);
        let instances: Vec<RuntimeInstance> = match self.idle.lock() {
            Ok(mut idle) => idle.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        for instance in instances {
            instance.stop().await;
        }
    }
}

/// What the runtime said about one invocation.
enum RuntimeOutcome {
    Response(Bytes),
    ResponseTooLarge,
    Error { error_type: String, message: String },
}

/// How the wait for one invocation's answer ended.
enum Waited {
    Answered(RuntimeOutcome),
    /// The process exited, or its runtime reported an init error, before it answered.
    Ended,
    /// The function's timeout passed (with [`RUNTIME_INIT_GRACE`] for a fresh process).
    TimedOut,
}

/// An event waiting for the runtime's `/invocation/next`.
struct PendingInvocation {
    request_id: String,
    payload: Bytes,
    deadline_ms: u64,
    responder: oneshot::Sender<RuntimeOutcome>,
}

/// State the Runtime API server shares with the instance that owns it.
struct ApiState {
    function_name: String,
    trace_seed: u64,
    next: tokio::sync::Mutex<mpsc::Receiver<PendingInvocation>>,
    in_flight: Mutex<HashMap<String, oneshot::Sender<RuntimeOutcome>>>,
    /// Events handed out by `/invocation/next` so far.
    n_delivered: AtomicU64,
    init_error: watch::Sender<Option<(String, String)>>,
}

/// One runtime process and its Runtime API.
struct RuntimeInstance {
    function_name: String,
    /// The command line, for error messages.
    command: String,
    timeout: Duration,
    clock: Arc<dyn Clock>,
    next: mpsc::Sender<PendingInvocation>,
    state: Arc<ApiState>,
    server: JoinHandle<()>,
    exited: watch::Receiver<Option<String>>,
    kill: Option<oneshot::Sender<()>>,
    stderr: OutputTail,
    /// The log tail of the invocation under way, when its caller asked for one.
    log_slot: LogSlot,
    /// Finishes when the process's stderr closes: its last words are in `stderr` then.
    stderr_forwarder: Option<JoinHandle<()>>,
    /// Still fresh: the first invocation also waits for the runtime to initialise.
    initialised: bool,
    /// False once the process timed out, crashed or broke the protocol.
    reusable: bool,
    /// The last invocation failed because the process ended before it took the event.
    died_before_delivery: bool,
}

impl Drop for RuntimeInstance {
    fn drop(&mut self) {
        self.server.abort();
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
    }
}

impl RuntimeInstance {
    async fn start(
        definition: &FunctionDefinition,
        clock: Arc<dyn Clock>,
        failing: Failing,
    ) -> Result<Self> {
        let name = definition.name.clone();
        let io_error = |context: &'static str| {
            let name = name.clone();
            move |source| Error::Io {
                name,
                context,
                source,
            }
        };
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .map_err(io_error("binding the runtime api"))?;
        let address = listener
            .local_addr()
            .map_err(io_error("binding the runtime api"))?;

        // Capacity 1: an instance runs one invocation at a time.
        let (next_sender, next_receiver) = mpsc::channel(1);
        let (init_error, _) = watch::channel(None);
        let state = Arc::new(ApiState {
            function_name: name.clone(),
            trace_seed: random_u64(),
            next: tokio::sync::Mutex::new(next_receiver),
            in_flight: Mutex::new(HashMap::new()),
            n_delivered: AtomicU64::new(0),
            init_error,
        });
        let server = tokio::spawn(serve(listener, Arc::clone(&state)));

        let mut command = handler_command(definition, Some(&address.to_string()), Stdio::null())?;
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(source) => {
                server.abort();
                return Err(spawn_failure(definition, &source));
            }
        };
        let stderr = OutputTail::default();
        let log_slot = LogSlot::default();
        if let Some(stdout) = child.stdout.take() {
            forward_output(
                stdout,
                name.clone(),
                "stdout",
                None,
                Arc::clone(&failing),
                Some(Arc::clone(&log_slot)),
            );
        }
        let stderr_forwarder = child.stderr.take().map(|pipe| {
            forward_output(
                pipe,
                name.clone(),
                "stderr",
                Some(stderr.clone()),
                Arc::clone(&failing),
                Some(Arc::clone(&log_slot)),
            )
        });
        let group = ProcessGroup::of(&child);
        let (exit_sender, exited) = watch::channel(None);
        let (kill, kill_requested) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let description = tokio::select! {
                status = child.wait() => match status {
                    Ok(status) => exit_description(status),
                    Err(error) => format!("could not be waited for: {error}"),
                },
                _ = kill_requested => {
                    group.kill();
                    let _ = child.kill().await;
                    "was stopped".to_owned()
                }
            };
            // Helpers the runtime forked do not outlive it.
            drop(group);
            let _ = exit_sender.send(Some(description));
        });
        if failing.load(Ordering::Relaxed) {
            tracing::debug!(function = %name, %address, "runtime process started");
        } else {
            tracing::info!(function = %name, %address, "runtime process started");
        }
        Ok(RuntimeInstance {
            function_name: name,
            command: display_command(&definition.command),
            timeout: definition.timeout,
            clock,
            next: next_sender,
            state,
            server,
            exited,
            kill: Some(kill),
            stderr,
            log_slot,
            stderr_forwarder,
            initialised: false,
            reusable: true,
            died_before_delivery: false,
        })
    }

    fn is_alive(&self) -> bool {
        self.exited.borrow().is_none()
    }

    async fn stop(mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        let _ = self.exited.wait_for(Option::is_some).await;
    }

    async fn invoke(&mut self, payload: Bytes, log: Option<OutputTail>) -> Result<Bytes> {
        let logged = log.is_some();
        if let Ok(mut slot) = self.log_slot.lock() {
            *slot = log;
        }
        let outcome = self.invoke_unlogged(payload).await;
        if logged {
            // The handler wrote its output before it answered; give the forwarders a turn to
            // read what is already in the pipes, then stop collecting.
            for _ in 0..LOG_DRAIN_YIELDS {
                tokio::task::yield_now().await;
            }
            if let Ok(mut slot) = self.log_slot.lock() {
                *slot = None;
            }
        }
        outcome
    }

    async fn invoke_unlogged(&mut self, payload: Bytes) -> Result<Bytes> {
        let name = self.function_name.clone();
        let timeout_ms = u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX);
        let request_id = new_request_id();
        let (responder, answer) = oneshot::channel();
        self.stderr.clear();
        self.died_before_delivery = false;
        let n_delivered_before = self.state.n_delivered.load(Ordering::SeqCst);
        let pending = PendingInvocation {
            request_id: request_id.clone(),
            payload,
            deadline_ms: self.clock.now_epoch_ms().saturating_add(timeout_ms),
            responder,
        };
        if self.next.send(pending).await.is_err() {
            self.reusable = false;
            return Err(self.crashed("lost its runtime api".to_owned()));
        }
        // A fresh process first has to start and import its handler.
        let wait = if self.initialised {
            self.timeout
        } else {
            self.timeout.saturating_add(RUNTIME_INIT_GRACE)
        };
        let mut exited = self.exited.clone();
        let mut init_error = self.state.init_error.subscribe();
        // Biased: a runtime that answered and then exited has still answered.
        let waited = tokio::select! {
            biased;
            answer = answer => match answer {
                Ok(outcome) => Waited::Answered(outcome),
                Err(_) => Waited::Ended,
            },
            _ = exited.wait_for(Option::is_some) => Waited::Ended,
            _ = init_error.wait_for(Option::is_some) => Waited::Ended,
            _ = tokio::time::sleep(wait) => Waited::TimedOut,
        };
        self.forget(&request_id);
        match waited {
            Waited::Answered(RuntimeOutcome::Response(body)) => {
                self.initialised = true;
                Ok(body)
            }
            Waited::Answered(RuntimeOutcome::ResponseTooLarge) => {
                self.initialised = true;
                Err(Error::ResponseTooLarge {
                    name,
                    limit: PAYLOAD_BYTES_MAX,
                })
            }
            Waited::Answered(RuntimeOutcome::Error {
                error_type,
                message,
            }) => {
                self.initialised = true;
                Err(Error::FunctionError {
                    name,
                    error_type,
                    message,
                })
            }
            Waited::TimedOut => {
                self.reusable = false;
                if self.state.n_delivered.load(Ordering::SeqCst) > 0 {
                    return Err(Error::Timeout { name, timeout_ms });
                }
                // It never asked for an event: it hangs before it is a runtime (an import
                // that blocks, a program that is not a Lambda runtime at all). Stop it here
                // so its stderr closes and the error carries what it said.
                if let Some(kill) = self.kill.take() {
                    let _ = kill.send(());
                }
                self.await_last_words(&mut exited).await;
                Err(self.start_failed(
                    INIT_TIMEOUT_ERROR_TYPE.to_owned(),
                    format!(
                        "it did not ask for its first event within {} ms",
                        wait.as_millis()
                    ),
                ))
            }
            Waited::Ended => {
                self.reusable = false;
                let n_delivered = self.state.n_delivered.load(Ordering::SeqCst);
                self.died_before_delivery = n_delivered == n_delivered_before;
                // A runtime that reported an init error exits right after, as awslambdaric does.
                self.await_last_words(&mut exited).await;
                let init_error = self.state.init_error.borrow().clone();
                if let Some((error_type, message)) = init_error {
                    return Err(self.start_failed(
                        error_type.clone(),
                        format!("its runtime failed to initialise: {error_type}: {message}"),
                    ));
                }
                let description = exited
                    .borrow()
                    .clone()
                    .unwrap_or_else(|| "stopped answering".to_owned());
                if n_delivered == 0 {
                    // It never asked for an event: it did not start as a runtime at all (a
                    // module that is not installed, a script that fails at once).
                    return Err(self.start_failed(
                        "Runtime.ExitError".to_owned(),
                        format!("it {description} before asking for its first event"),
                    ));
                }
                Err(self.crashed(description))
            }
        }
    }

    /// Gives the exit watcher and the stderr forwarder of an ending process a bounded moment,
    /// so an error can say how the process ended and what it said last.
    async fn await_last_words(&mut self, exited: &mut watch::Receiver<Option<String>>) {
        let _ = tokio::time::timeout(STDERR_DRAIN_WAIT, exited.wait_for(Option::is_some)).await;
        if let Some(forwarder) = self.stderr_forwarder.take() {
            let _ = tokio::time::timeout(STDERR_DRAIN_WAIT, forwarder).await;
        }
    }

    fn forget(&self, request_id: &str) {
        if let Ok(mut in_flight) = self.state.in_flight.lock() {
            in_flight.remove(request_id);
        }
    }

    /// The process died while it held an event.
    fn crashed(&self, description: String) -> Error {
        let message = format!("runtime `{}` {description}", self.command);
        Error::FunctionError {
            name: self.function_name.clone(),
            error_type: "Runtime.ExitError".to_owned(),
            message: with_stderr(message, &self.stderr.text()),
        }
    }

    /// The process ended, or its runtime gave up, before it could take an event.
    fn start_failed(&self, error_type: String, reason: String) -> Error {
        Error::StartFailed {
            name: self.function_name.clone(),
            command: self.command.clone(),
            error_type,
            reason: with_stderr(reason, &self.stderr.text()),
        }
    }
}

/// Accepts connections of the runtime process until the instance aborts this task.
async fn serve(listener: TcpListener, state: Arc<ApiState>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                // Out of file descriptors, usually: wait instead of spinning on the error.
                tracing::warn!(function = %state.function_name, %error, "runtime api cannot accept");
                tokio::time::sleep(ACCEPT_RETRY_PAUSE).await;
                continue;
            }
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(route(&state, request).await) }
            });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "runtime api connection ended");
            }
        });
    }
}

async fn route(state: &ApiState, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let Some(route) = path.strip_prefix(API_PREFIX) else {
        return error_response(StatusCode::NOT_FOUND, "NotFound", "unknown path");
    };
    let segments: Vec<&str> = route.split('/').collect();
    match (request.method(), segments.as_slice()) {
        (&Method::GET, ["invocation", "next"]) => next_invocation(state).await,
        (&Method::POST, ["invocation", request_id, "response"]) => {
            let request_id = (*request_id).to_owned();
            let outcome = match read_body(request, PAYLOAD_BYTES_MAX).await {
                Some(body) => RuntimeOutcome::Response(body),
                None => RuntimeOutcome::ResponseTooLarge,
            };
            let too_large = matches!(outcome, RuntimeOutcome::ResponseTooLarge);
            let answered = answer(state, &request_id, outcome);
            if too_large {
                error_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "RequestEntityTooLarge",
                    "response exceeds the payload limit",
                )
            } else {
                answered
            }
        }
        (&Method::POST, ["invocation", request_id, "error"]) => {
            let request_id = (*request_id).to_owned();
            let (error_type, message) = read_error(request).await;
            answer(
                state,
                &request_id,
                RuntimeOutcome::Error {
                    error_type,
                    message,
                },
            )
        }
        (&Method::POST, ["init", "error"]) => {
            let (error_type, message) = read_error(request).await;
            tracing::warn!(function = %state.function_name, %error_type, %message, "runtime failed to initialise");
            state.init_error.send_replace(Some((error_type, message)));
            accepted()
        }
        _ => error_response(StatusCode::NOT_FOUND, "NotFound", "unknown route"),
    }
}

/// Long-polls until the instance hands over an event, as Lambda's `/invocation/next` does.
async fn next_invocation(state: &ApiState) -> Response<Full<Bytes>> {
    let pending = {
        let mut next = state.next.lock().await;
        next.recv().await
    };
    let Some(pending) = pending else {
        return error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceException",
            "runtime is shutting down",
        );
    };
    if let Ok(mut in_flight) = state.in_flight.lock() {
        in_flight.insert(pending.request_id.clone(), pending.responder);
    }
    state.n_delivered.fetch_add(1, Ordering::SeqCst);
    let trace_id = format!(
        "Root=1-{:08x}-{:016x}{:08x};Sampled=0",
        pending.deadline_ms / 1000 % (1 << 32),
        state.trace_seed,
        random_u64() % (1 << 32)
    );
    let mut response = Response::new(Full::new(pending.payload));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let values = [
        ("lambda-runtime-aws-request-id", pending.request_id),
        (
            "lambda-runtime-deadline-ms",
            pending.deadline_ms.to_string(),
        ),
        (
            "lambda-runtime-invoked-function-arn",
            function_arn(&state.function_name),
        ),
        ("lambda-runtime-trace-id", trace_id),
    ];
    for (header, value) in values {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(header, value);
        }
    }
    response
}

fn answer(state: &ApiState, request_id: &str, outcome: RuntimeOutcome) -> Response<Full<Bytes>> {
    let responder = state
        .in_flight
        .lock()
        .ok()
        .and_then(|mut in_flight| in_flight.remove(request_id));
    match responder {
        Some(responder) => {
            let _ = responder.send(outcome);
            accepted()
        }
        None => error_response(
            StatusCode::BAD_REQUEST,
            "InvalidRequestID",
            "unknown or already answered request id",
        ),
    }
}

/// The body, or `None` when it is larger than `limit` (reading stops there).
async fn read_body(request: Request<Incoming>, limit: usize) -> Option<Bytes> {
    Limited::new(request.into_body(), limit)
        .collect()
        .await
        .ok()
        .map(|collected| collected.to_bytes())
}

/// The error type and message of an `/error` or `/init/error` post: the JSON body's
/// `errorType`/`errorMessage`, else the `Lambda-Runtime-Function-Error-Type` header and raw body.
async fn read_error(request: Request<Incoming>) -> (String, String) {
    let header_type = request
        .headers()
        .get("lambda-runtime-function-error-type")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let body = read_body(request, RUNTIME_ERROR_BODY_BYTES_MAX)
        .await
        .unwrap_or_default();
    let parsed: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    let field = |key: &str| {
        parsed
            .as_ref()
            .and_then(|value| value.get(key))
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    let error_type = field("errorType")
        .or(header_type)
        .unwrap_or_else(|| "Unhandled".to_owned());
    let message =
        field("errorMessage").unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_owned());
    (error_type, message)
}

fn accepted() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"{\"status\":\"OK\"}")));
    *response.status_mut() = StatusCode::ACCEPTED;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn error_response(status: StatusCode, error_type: &str, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({"errorType": error_type, "errorMessage": message});
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A random-looking u64 from the standard library's per-process hash keys and a counter;
/// ids only need to be unique, not unguessable.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}

/// A request id shaped like Lambda's (a version-4 UUID).
fn new_request_id() -> String {
    let high = random_u64();
    let low = random_u64();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0x0fff,
        0x8000 | ((low >> 48) & 0x3fff),
        low & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_look_like_uuids_and_differ() {
        let first = new_request_id();
        let second = new_request_id();
        assert_ne!(first, second);
        assert_eq!(first.len(), 36);
        assert_eq!(first.split('-').count(), 5);
    }
}
