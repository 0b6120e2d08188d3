//! Named limits and defaults of the function host, with what happens at each limit.

use std::time::Duration;

/// Largest request and response payload, in bytes: Lambda's limit for a synchronous invocation.
/// A request over it fails with [`crate::Error::RequestTooLarge`] before anything runs; a response
/// over it fails with [`crate::Error::ResponseTooLarge`] and reading stops at the limit, so a
/// function that writes without end never makes the host buffer more than this.
pub const PAYLOAD_BYTES_MAX: usize = 6 * 1024 * 1024;

/// How long one invocation may run when the definition names no timeout: the 60 s a Firehose
/// Lambda processor uses. Past it the process is killed and the attempt fails with
/// [`crate::Error::Timeout`].
pub const TIMEOUT_DEFAULT: Duration = Duration::from_secs(60);

/// Longest timeout a definition may ask for: Lambda's own ceiling of 15 minutes.
pub const TIMEOUT_MAX: Duration = Duration::from_secs(15 * 60);

/// Retries after a failed attempt when the caller names none: Firehose's default `NumberOfRetries`.
pub const NUMBER_OF_RETRIES_DEFAULT: u32 = 3;

/// Most retries a caller may ask for, so a misconfigured stream cannot loop for hours.
pub const NUMBER_OF_RETRIES_MAX: u32 = 300;

/// Pause before the first retry; it doubles on every further retry up to [`RETRY_BACKOFF_MAX`].
pub const RETRY_BACKOFF_INITIAL: Duration = Duration::from_millis(100);

/// Longest pause between two attempts.
pub const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Invocations running at once per function when the definition names none.
pub const CONCURRENCY_DEFAULT: usize = 1;

/// Most invocations running at once per function (and so most warm runtime processes).
pub const CONCURRENCY_MAX: usize = 64;

/// Invocations of one function that may wait for a free slot. One more fails at once with
/// [`crate::Error::TooManyRequests`] (Lambda's throttle), which callers may retry.
pub const WAITING_INVOCATIONS_MAX: usize = 256;

/// Memory size reported to the handler when the definition names none, as Lambda's default.
pub const MEMORY_SIZE_MB_DEFAULT: u32 = 128;

/// Bounds of the memory size a definition may name, as Lambda's.
pub const MEMORY_SIZE_MB_MIN: u32 = 128;
/// See [`MEMORY_SIZE_MB_MIN`].
pub const MEMORY_SIZE_MB_MAX: u32 = 10_240;

/// Tail of a process's stderr kept to explain a failure, in bytes; older output is only logged.
pub const STDERR_TAIL_BYTES_MAX: usize = 8 * 1024;

/// How long a failed command's error waits for the rest of its stderr after it exited; a
/// forked helper holding stderr open only shortens the message.
pub const STDERR_DRAIN_WAIT: Duration = Duration::from_secs(1);

/// Longest line of process output forwarded to the log as one event; longer lines are cut.
pub const LOG_LINE_BYTES_MAX: usize = 16 * 1024;

/// Longest function name, as Lambda's.
pub const FUNCTION_NAME_BYTES_MAX: usize = 64;

/// Longest argv a definition may have, in arguments.
pub const COMMAND_ARGS_MAX: usize = 256;

/// How long a runtime process may take from start to its first `/invocation/next`, beyond the
/// function's own timeout. A Python runtime importing a large handler needs a few seconds.
/// Past it the process is killed and the invocation fails with [`crate::Error::StartFailed`]
/// (`Sandbox.Timedout`, with the tail of its stderr).
pub const RUNTIME_INIT_GRACE: Duration = Duration::from_secs(10);

/// Bytes of an invocation's output returned with Lambda's `LogType: Tail` (Lambda's 4 KB);
/// older output of the invocation is only logged.
pub const LOG_TAIL_BYTES_MAX: usize = 4 * 1024;

/// Largest body the Runtime API accepts on `/error` and `/init/error`, in bytes.
pub const RUNTIME_ERROR_BODY_BYTES_MAX: usize = 256 * 1024;

/// Longest command line shown in an error or log line, in bytes; a longer one (a long
/// `sh -c` script) is cut and ends with `…`.
pub const COMMAND_DISPLAY_BYTES_MAX: usize = 512;
