//! The registry of functions by name, and invocation: limits, concurrency, retries, and the
//! Firehose-typed call built on the generic one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use tokio::sync::Semaphore;

use crate::arn::function_name;
use crate::clock::{Clock, SystemClock};
use crate::command;
use crate::definition::{FunctionDefinition, FunctionKind};
use crate::error::{Error, Result};
use crate::firehose::{FirehoseTransformationEvent, FirehoseTransformationResponse};
use crate::limits::{
    NUMBER_OF_RETRIES_DEFAULT, NUMBER_OF_RETRIES_MAX, PAYLOAD_BYTES_MAX, RETRY_BACKOFF_INITIAL,
    RETRY_BACKOFF_MAX, WAITING_INVOCATIONS_MAX,
};
use crate::process::{Failing, LogTail, OutputTail};
use crate::runtime_api::RuntimePool;

/// How one call retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvokeOptions {
    /// Attempts after the first failed one, for errors that [`Error::is_retryable`]; Firehose's
    /// `NumberOfRetries`. Capped at [`NUMBER_OF_RETRIES_MAX`].
    pub number_of_retries: u32,
}

impl Default for InvokeOptions {
    fn default() -> Self {
        InvokeOptions {
            number_of_retries: NUMBER_OF_RETRIES_DEFAULT,
        }
    }
}

/// The outcome of a successful call.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation<T> {
    /// The function's answer.
    pub response: T,
    /// Attempts made, the successful one included (1 when the first attempt succeeded).
    pub attempts: u32,
}

/// The functions of one host, by name. Cheap to clone: clones share the same functions.
#[derive(Clone)]
pub struct FunctionRegistry {
    inner: Arc<RegistryInner>,
}

impl std::fmt::Debug for FunctionRegistry {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("FunctionRegistry")
            .field("functions", &self.names())
            .finish()
    }
}

struct RegistryInner {
    functions: RwLock<HashMap<String, Arc<Function>>>,
    clock: Arc<dyn Clock>,
    shut_down: AtomicBool,
}

/// A registered function and its running state.
pub(crate) struct Function {
    pub(crate) definition: FunctionDefinition,
    /// One permit per invocation that may run at once.
    slots: Semaphore,
    /// Invocations waiting for a permit, bounded by [`WAITING_INVOCATIONS_MAX`].
    waiting: AtomicUsize,
    /// Warm runtime processes, for the Runtime API kind.
    runtimes: Option<RuntimePool>,
    /// The last attempt failed in the function itself; set by the first failure of a burst,
    /// cleared by the next success, so the log tells each burst once (see [`Function::note`]).
    /// Shared with the function's processes, which log quietly during a burst.
    failing: Failing,
}

impl Default for FunctionRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl FunctionRegistry {
    /// An empty registry on the system clock.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// An empty registry whose deadlines (`Lambda-Runtime-Deadline-Ms`) read `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        FunctionRegistry {
            inner: Arc::new(RegistryInner {
                functions: RwLock::new(HashMap::new()),
                clock,
                shut_down: AtomicBool::new(false),
            }),
        }
    }

    /// Adds a function after checking its definition. Nothing starts until the first invocation.
    pub fn register(&self, definition: FunctionDefinition) -> Result<()> {
        definition.validate()?;
        let mut functions = self.inner.functions.write().map_err(|_| Error::ShutDown)?;
        if functions.contains_key(&definition.name) {
            return Err(Error::FunctionExists {
                name: definition.name,
            });
        }
        let failing = Failing::default();
        let runtimes = match definition.kind {
            FunctionKind::Command => None,
            FunctionKind::RuntimeApi => Some(RuntimePool::new(
                definition.clone(),
                Arc::clone(&self.inner.clock),
                Arc::clone(&failing),
            )),
        };
        let function = Function {
            slots: Semaphore::new(definition.concurrency),
            waiting: AtomicUsize::new(0),
            runtimes,
            failing,
            definition,
        };
        functions.insert(function.definition.name.clone(), Arc::new(function));
        Ok(())
    }

    /// Removes a function and stops its warm processes; invocations under way finish first.
    pub async fn remove(&self, name_or_arn: &str) -> Result<FunctionDefinition> {
        let name = function_name(name_or_arn)?;
        let removed = self
            .inner
            .functions
            .write()
            .map_err(|_| Error::ShutDown)?
            .remove(name)
            .ok_or_else(|| Error::FunctionNotFound {
                name: name.to_owned(),
            })?;
        if let Some(runtimes) = &removed.runtimes {
            runtimes.shutdown().await;
        }
        Ok(removed.definition.clone())
    }

    /// The definition of a function, by name or ARN.
    pub fn definition(&self, name_or_arn: &str) -> Result<FunctionDefinition> {
        self.function(name_or_arn)
            .map(|function| function.definition.clone())
    }

    /// Names of the registered functions, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = match self.inner.functions.read() {
            Ok(functions) => functions.keys().cloned().collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names
    }

    /// Invokes a function by name or ARN with a JSON event and returns its JSON answer, retrying
    /// [`NUMBER_OF_RETRIES_DEFAULT`] times. Kinesis and DynamoDB stream events go through here.
    pub async fn invoke(
        &self,
        name_or_arn: &str,
        payload: &serde_json::Value,
    ) -> Result<serde_json::Value> {
        self.invoke_with(name_or_arn, payload, &InvokeOptions::default())
            .await
            .map(|invocation| invocation.response)
    }

    /// [`FunctionRegistry::invoke`] with explicit options, telling how many attempts it took.
    pub async fn invoke_with(
        &self,
        name_or_arn: &str,
        payload: &serde_json::Value,
        options: &InvokeOptions,
    ) -> Result<Invocation<serde_json::Value>> {
        self.invoke_checked(name_or_arn, payload, options, None, Ok)
            .await
    }

    /// [`FunctionRegistry::invoke_with`] that also collects what the function wrote during the
    /// call into `log` (Lambda's `LogType: Tail`).
    pub async fn invoke_logged(
        &self,
        name_or_arn: &str,
        payload: &serde_json::Value,
        options: &InvokeOptions,
        log: &LogTail,
    ) -> Result<Invocation<serde_json::Value>> {
        self.invoke_checked(name_or_arn, payload, options, Some(log), Ok)
            .await
    }

    /// Runs a Firehose transformation: sends `event`, checks the answer strictly against it
    /// (see [`FirehoseTransformationResponse::validate`]) and returns one answer per record in
    /// the event's order. An attempt whose answer breaks the contract counts as failed and is
    /// retried like any other failure; when all fail, the error carries Firehose's code
    /// ([`Error::firehose_error_code`]) for every record of the batch.
    pub async fn transform_firehose(
        &self,
        name_or_arn: &str,
        event: &FirehoseTransformationEvent,
        options: &InvokeOptions,
    ) -> Result<Invocation<FirehoseTransformationResponse>> {
        let name = function_name(name_or_arn)?.to_owned();
        if let Err(reason) = event.check_record_ids_unique() {
            return Err(Error::InvalidEvent { name, reason });
        }
        let payload = serde_json::to_value(event).map_err(|error| Error::InvalidJson {
            name: name.clone(),
            reason: error.to_string(),
        })?;
        self.invoke_checked(name_or_arn, &payload, options, None, |response| {
            FirehoseTransformationResponse::validate(&name, event, response)
        })
        .await
    }

    /// Stops every warm runtime process; later invocations fail with [`Error::ShutDown`].
    pub async fn shutdown(&self) {
        self.inner.shut_down.store(true, Ordering::SeqCst);
        let functions: Vec<Arc<Function>> = match self.inner.functions.read() {
            Ok(functions) => functions.values().cloned().collect(),
            Err(_) => Vec::new(),
        };
        for function in functions {
            if let Some(runtimes) = &function.runtimes {
                runtimes.shutdown().await;
            }
        }
    }

    fn function(&self, name_or_arn: &str) -> Result<Arc<Function>> {
        let name = function_name(name_or_arn)?;
        let functions = self.inner.functions.read().map_err(|_| Error::ShutDown)?;
        functions
            .get(name)
            .cloned()
            .ok_or_else(|| Error::FunctionNotFound {
                name: name.to_owned(),
            })
    }

    /// The retry loop shared by every call: each attempt's answer goes through `check`, and a
    /// retryable failure of either is tried again after a growing pause.
    async fn invoke_checked<T>(
        &self,
        name_or_arn: &str,
        payload: &serde_json::Value,
        options: &InvokeOptions,
        log: Option<&LogTail>,
        check: impl Fn(serde_json::Value) -> Result<T>,
    ) -> Result<Invocation<T>> {
        if self.inner.shut_down.load(Ordering::SeqCst) {
            return Err(Error::ShutDown);
        }
        let function = self.function(name_or_arn)?;
        let name = function.definition.name.clone();
        let payload = serde_json::to_vec(payload).map_err(|error| Error::InvalidJson {
            name: name.clone(),
            reason: error.to_string(),
        })?;
        if payload.len() > PAYLOAD_BYTES_MAX {
            return Err(Error::RequestTooLarge {
                bytes: payload.len(),
                limit: PAYLOAD_BYTES_MAX,
            });
        }
        let payload = Bytes::from(payload);
        let attempts_max = options
            .number_of_retries
            .min(NUMBER_OF_RETRIES_MAX)
            .saturating_add(1);
        let mut backoff = RETRY_BACKOFF_INITIAL;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let outcome = function
                .invoke_once(payload.clone(), log.map(|log| log.0.clone()))
                .await
                .and_then(|answer| {
                    serde_json::from_slice(&answer).map_err(|error| Error::InvalidJson {
                        name: name.clone(),
                        reason: error.to_string(),
                    })
                })
                .and_then(&check);
            let outcome = outcome.map(|response| Invocation { response, attempts });
            function.note(&outcome, attempts);
            let error = match outcome {
                Ok(invocation) => return Ok(invocation),
                Err(error) => error,
            };
            if !error.is_retryable() {
                return Err(error);
            }
            if attempts >= attempts_max || self.inner.shut_down.load(Ordering::SeqCst) {
                return Err(Error::RetriesExhausted {
                    name,
                    attempts,
                    last: Box::new(error),
                });
            }
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2).min(RETRY_BACKOFF_MAX);
        }
    }
}

impl Function {
    /// Logs an attempt's failure, once per burst: the first failure of the function itself
    /// (it could not start, raised, crashed, timed out or broke the contract) is an error line
    /// that carries the whole error (the command and the tail of its stderr); the failures after
    /// it are debug lines until an attempt succeeds, which is logged too. Failures that are not
    /// the function's own (throttling, an event over the limit) are logged every time.
    fn note<T>(&self, outcome: &Result<T>, attempt: u32) {
        let name = &self.definition.name;
        match outcome {
            Ok(_) => {
                if self.failing.swap(false, Ordering::SeqCst) {
                    tracing::info!(function = %name, "function answers again");
                }
            }
            Err(error) if error.is_the_functions_own() => {
                if self.failing.swap(true, Ordering::SeqCst) {
                    tracing::debug!(function = %name, attempt, %error, "invocation failed");
                } else {
                    tracing::error!(
                        function = %name,
                        attempt,
                        "invocation failed: {error} (further failures of this function are logged at debug level until it answers again)"
                    );
                }
            }
            Err(error) => tracing::warn!(function = %name, attempt, %error, "invocation failed"),
        }
    }

    /// One attempt: waits for a slot (bounded), then runs the function's kind.
    async fn invoke_once(&self, payload: Bytes, log: Option<OutputTail>) -> Result<Bytes> {
        let _permit = {
            let waiting_before = self.waiting.fetch_add(1, Ordering::SeqCst);
            let _waiting = WaitingGuard(&self.waiting);
            if waiting_before >= WAITING_INVOCATIONS_MAX {
                return Err(Error::TooManyRequests {
                    name: self.definition.name.clone(),
                });
            }
            self.slots.acquire().await.map_err(|_| Error::ShutDown)?
        };
        match &self.runtimes {
            None => command::invoke(&self.definition, payload, &self.failing, log).await,
            Some(runtimes) => runtimes.invoke(payload, log).await,
        }
    }
}

/// Counts an invocation out of the waiting ones however its wait ends.
struct WaitingGuard<'a>(&'a AtomicUsize);

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
