//! The one error type of the crate, and how each error maps to Firehose's error codes.

/// Everything that can go wrong defining or invoking a function.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No function of that name is registered.
    #[error("function not found: {name}")]
    FunctionNotFound {
        /// The name that was looked up.
        name: String,
    },
    /// A function of that name is already registered.
    #[error("function already exists: {name}")]
    FunctionExists {
        /// The name that is taken.
        name: String,
    },
    /// A string that starts like an ARN is not a Lambda function ARN.
    #[error("invalid function arn: {arn}")]
    InvalidArn {
        /// The string given.
        arn: String,
    },
    /// A definition breaks a rule (empty argv, timeout out of range, …).
    #[error("invalid definition of function {name}: {reason}")]
    InvalidDefinition {
        /// The function's name.
        name: String,
        /// Which rule.
        reason: String,
    },
    /// The caller's event breaks a rule of the contract (two records with one id, …);
    /// nothing was run.
    #[error("invalid event for function {name}: {reason}")]
    InvalidEvent {
        /// The function's name.
        name: String,
        /// Which rule.
        reason: String,
    },
    /// The event is larger than [`crate::PAYLOAD_BYTES_MAX`]; nothing was run.
    #[error("request payload of {bytes} bytes exceeds the limit of {limit} bytes")]
    RequestTooLarge {
        /// Size of the serialized event.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// The function answered more than [`crate::PAYLOAD_BYTES_MAX`]; reading stopped at the limit.
    #[error("function {name} returned a response larger than the limit of {limit} bytes")]
    ResponseTooLarge {
        /// The function's name.
        name: String,
        /// The limit.
        limit: usize,
    },
    /// The invocation ran past the function's timeout; its process was killed.
    #[error("function {name} timed out after {timeout_ms} ms")]
    Timeout {
        /// The function's name.
        name: String,
        /// The timeout that passed.
        timeout_ms: u64,
    },
    /// The handler failed: it raised (Runtime API `/error`), its process exited non-zero or
    /// died mid-invocation, or its runtime reported an init error.
    #[error("function {name} failed: {error_type}: {message}")]
    FunctionError {
        /// The function's name.
        name: String,
        /// Lambda's error type, such as `Runtime.ExitError` or the handler's exception class.
        error_type: String,
        /// What the handler or the host said, with the tail of stderr when there is one.
        message: String,
    },
    /// The response is not JSON.
    #[error("function {name} returned invalid json: {reason}")]
    InvalidJson {
        /// The function's name.
        name: String,
        /// The parser's message.
        reason: String,
    },
    /// The response is JSON but breaks the Firehose transformation contract.
    #[error("function {name} broke the firehose contract ({code}): {reason}")]
    InvalidOutput {
        /// The function's name.
        name: String,
        /// Firehose's error code for this breach, such as `Lambda.MissingRecordId`.
        code: &'static str,
        /// Which record and which rule.
        reason: String,
    },
    /// More than [`crate::WAITING_INVOCATIONS_MAX`] invocations already wait for this function.
    #[error("too many invocations waiting for function {name}")]
    TooManyRequests {
        /// The function's name.
        name: String,
    },
    /// The handler's process could not start: its program is missing or not executable, it
    /// exited before it asked for its first event or did not ask for it in time (the
    /// function's timeout and [`crate::RUNTIME_INIT_GRACE`]), or its runtime reported an
    /// initialisation error (a handler module that cannot be imported).
    #[error("function {name} could not start `{command}`: {reason}")]
    StartFailed {
        /// The function's name.
        name: String,
        /// The command line as the host ran it (cut at [`crate::COMMAND_DISPLAY_BYTES_MAX`]).
        command: String,
        /// Lambda's error type: `Runtime.InvalidEntrypoint` when the program cannot be run,
        /// `Runtime.ExitError` when it exited, `Sandbox.Timedout` when it did not ask for an
        /// event in time, or the type its runtime reported to `/init/error` (such as
        /// `Runtime.ImportModuleError`).
        error_type: String,
        /// What happened, with the tail of the process's stderr when it wrote any.
        reason: String,
    },
    /// Talking to the process failed, or the host could not set it up.
    #[error("function {name}: {context}: {source}")]
    Io {
        /// The function's name.
        name: String,
        /// What the host was doing.
        context: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Every attempt failed; `last` is the error of the final one.
    #[error("function {name} failed after {attempts} attempts: {last}")]
    RetriesExhausted {
        /// The function's name.
        name: String,
        /// Attempts made, the first one included.
        attempts: u32,
        /// The last attempt's error.
        last: Box<Error>,
    },
    /// The registry is shutting down.
    #[error("function host is shutting down")]
    ShutDown,
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Firehose's error codes for a failed transformation, as it writes them into the
/// `errorCode` of records it backs up to `processing-failed/`.
pub mod firehose_codes {
    /// The invocation failed: the handler raised, exited, timed out or answered too much.
    pub const FUNCTION_ERROR: &str = "Lambda.FunctionError";
    /// The response is not JSON, or not the `{records: [...]}` shape.
    pub const JSON_PROCESSING_EXCEPTION: &str = "Lambda.JsonProcessingException";
    /// A record of the event has no answer (or an answer names an id the event never had).
    pub const MISSING_RECORD_ID: &str = "Lambda.MissingRecordId";
    /// A record was answered more than once.
    pub const DUPLICATED_RECORD_ID: &str = "Lambda.DuplicatedRecordId";
    /// The function does not exist.
    pub const RESOURCE_NOT_FOUND: &str = "Lambda.ResourceNotFound";
    /// The function's concurrency and wait queue are full.
    pub const INVOKE_LIMIT_EXCEEDED: &str = "Lambda.InvokeLimitExceeded";
}

impl Error {
    /// The Firehose error code that records of a batch failed by this error carry.
    pub fn firehose_error_code(&self) -> &'static str {
        match self {
            Error::FunctionNotFound { .. } | Error::InvalidArn { .. } => {
                firehose_codes::RESOURCE_NOT_FOUND
            }
            Error::InvalidJson { .. } => firehose_codes::JSON_PROCESSING_EXCEPTION,
            Error::InvalidOutput { code, .. } => code,
            Error::TooManyRequests { .. } => firehose_codes::INVOKE_LIMIT_EXCEEDED,
            Error::RetriesExhausted { last, .. } => last.firehose_error_code(),
            Error::FunctionExists { .. }
            | Error::InvalidDefinition { .. }
            | Error::InvalidEvent { .. }
            | Error::RequestTooLarge { .. }
            | Error::ResponseTooLarge { .. }
            | Error::Timeout { .. }
            | Error::FunctionError { .. }
            | Error::StartFailed { .. }
            | Error::Io { .. }
            | Error::ShutDown => firehose_codes::FUNCTION_ERROR,
        }
    }

    /// Whether another attempt may succeed. Firehose retries every failed invocation of an
    /// existing function; a missing function, a bad ARN or an event over the size limit fails
    /// the same way every time, so those are not retried.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::FunctionNotFound { .. }
            | Error::FunctionExists { .. }
            | Error::InvalidArn { .. }
            | Error::InvalidDefinition { .. }
            | Error::InvalidEvent { .. }
            | Error::RequestTooLarge { .. }
            | Error::RetriesExhausted { .. }
            | Error::ShutDown => false,
            Error::ResponseTooLarge { .. }
            | Error::Timeout { .. }
            | Error::FunctionError { .. }
            | Error::InvalidJson { .. }
            | Error::InvalidOutput { .. }
            | Error::TooManyRequests { .. }
            | Error::StartFailed { .. }
            | Error::Io { .. } => true,
        }
    }

    /// Whether the function itself failed (it could not start, raised, crashed, timed out or
    /// broke the contract), as opposed to the host refusing the call.
    pub fn is_the_functions_own(&self) -> bool {
        match self {
            Error::StartFailed { .. }
            | Error::FunctionError { .. }
            | Error::Timeout { .. }
            | Error::ResponseTooLarge { .. }
            | Error::InvalidJson { .. }
            | Error::InvalidOutput { .. }
            | Error::Io { .. } => true,
            Error::RetriesExhausted { last, .. } => last.is_the_functions_own(),
            Error::FunctionNotFound { .. }
            | Error::FunctionExists { .. }
            | Error::InvalidArn { .. }
            | Error::InvalidDefinition { .. }
            | Error::InvalidEvent { .. }
            | Error::RequestTooLarge { .. }
            | Error::TooManyRequests { .. }
            | Error::ShutDown => false,
        }
    }

    /// The error of the last attempt, looking through [`Error::RetriesExhausted`].
    pub fn last_attempt(&self) -> &Error {
        match self {
            Error::RetriesExhausted { last, .. } => last,
            other => other,
        }
    }
}
