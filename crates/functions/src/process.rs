//! What both out-of-process kinds share: the environment Lambda gives a handler, and the
//! forwarding of a process's output into the log with a bounded tail kept for error messages.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::arn::{REGION, function_arn};
use crate::definition::FunctionDefinition;
use crate::limits::{LOG_LINE_BYTES_MAX, STDERR_TAIL_BYTES_MAX};

/// Variables of the host's environment a handler process keeps; everything else is cleared so
/// a function sees the same environment wherever the host runs, and none of the host's secrets.
const INHERITED_VARIABLES: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ"];

/// The environment of a handler process: the inherited basics, what Lambda sets, then the
/// definition's own variables (which win). `runtime_api` is `127.0.0.1:PORT` for the
/// Runtime API kind.
pub(crate) fn environment(
    definition: &FunctionDefinition,
    runtime_api: Option<&str>,
) -> Vec<(String, String)> {
    let mut variables: Vec<(String, String)> = INHERITED_VARIABLES
        .iter()
        .filter_map(|name| {
            std::env::var(name)
                .ok()
                .map(|value| ((*name).to_owned(), value))
        })
        .collect();
    let name = definition.name.as_str();
    let task_root = match &definition.task_root {
        Some(path) => path.display().to_string(),
        None => std::env::current_dir()
            .map(|path| path.display().to_string())
            .unwrap_or_default(),
    };
    let lambda = [
        ("AWS_LAMBDA_FUNCTION_NAME", name.to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            definition.memory_size_mb.to_string(),
        ),
        (
            "AWS_LAMBDA_FUNCTION_TIMEOUT",
            definition.timeout.as_secs().max(1).to_string(),
        ),
        ("AWS_LAMBDA_FUNCTION_ARN", function_arn(name)),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "sluice".to_owned()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
        ("AWS_REGION", REGION.to_owned()),
        ("AWS_DEFAULT_REGION", REGION.to_owned()),
        ("AWS_EXECUTION_ENV", "sluice".to_owned()),
        ("LAMBDA_TASK_ROOT", task_root),
    ];
    variables.extend(
        lambda
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value)),
    );
    if let Some(address) = runtime_api {
        variables.push(("AWS_LAMBDA_RUNTIME_API".to_owned(), address.to_owned()));
    }
    if let Some(handler) = &definition.handler {
        variables.push(("_HANDLER".to_owned(), handler.clone()));
    }
    variables.extend(
        definition
            .environment
            .iter()
            .map(|(key, value)| (key.clone(), value.clone())),
    );
    variables
}

/// The last [`STDERR_TAIL_BYTES_MAX`] bytes a process wrote, shared between the task that
/// reads the pipe and the invocation that reports a failure.
#[derive(Debug, Clone, Default)]
pub(crate) struct OutputTail {
    bytes: Arc<Mutex<VecDeque<u8>>>,
}

impl OutputTail {
    fn push(&self, chunk: &[u8]) {
        if let Ok(mut bytes) = self.bytes.lock() {
            bytes.extend(chunk);
            let excess = bytes.len().saturating_sub(STDERR_TAIL_BYTES_MAX);
            bytes.drain(..excess);
        }
    }

    /// The tail as text, trimmed; empty when the process wrote nothing.
    pub(crate) fn text(&self) -> String {
        match self.bytes.lock() {
            Ok(bytes) => {
                let (front, back) = bytes.as_slices();
                let mut all = Vec::with_capacity(bytes.len());
                all.extend_from_slice(front);
                all.extend_from_slice(back);
                String::from_utf8_lossy(&all).trim().to_owned()
            }
            Err(_) => String::new(),
        }
    }

    /// Forgets what was written so far, so the next invocation's error shows only its own output.
    pub(crate) fn clear(&self) {
        if let Ok(mut bytes) = self.bytes.lock() {
            bytes.clear();
        }
    }
}

/// Reads `reader` until it closes, logging each line (cut at [`LOG_LINE_BYTES_MAX`]) with the
/// function's name, and keeping a tail in `tail`. Memory stays bounded whatever the process writes.
/// The returned handle finishes when the pipe closes.
pub(crate) fn forward_output<R>(
    reader: R,
    function_name: String,
    stream: &'static str,
    tail: Option<OutputTail>,
) -> tokio::task::JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut reader = reader;
        let mut chunk = vec![0u8; 8 * 1024];
        let mut line: Vec<u8> = Vec::new();
        loop {
            let n_read = match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n_read) => n_read,
            };
            let read = chunk.get(..n_read).unwrap_or_default();
            if let Some(tail) = &tail {
                tail.push(read);
            }
            for &byte in read {
                if byte == b'\n' || line.len() >= LOG_LINE_BYTES_MAX {
                    emit_line(&function_name, stream, &line);
                    line.clear();
                    if byte == b'\n' {
                        continue;
                    }
                }
                line.push(byte);
            }
        }
        if !line.is_empty() {
            emit_line(&function_name, stream, &line);
        }
    })
}

fn emit_line(function_name: &str, stream: &'static str, line: &[u8]) {
    let text = String::from_utf8_lossy(line);
    tracing::info!(
        function = function_name,
        stream,
        "{}",
        text.trim_end_matches('\r')
    );
}

/// The command that starts a definition's handler process: its argv, the Lambda environment
/// (`runtime_api` for the Runtime API kind), piped stdout and stderr, its own process group, its
/// task root as working directory, killed if dropped.
pub(crate) fn handler_command(
    definition: &FunctionDefinition,
    runtime_api: Option<&str>,
    stdin: std::process::Stdio,
) -> crate::error::Result<tokio::process::Command> {
    let (program, arguments) =
        definition
            .command
            .split_first()
            .ok_or_else(|| crate::error::Error::InvalidDefinition {
                name: definition.name.clone(),
                reason: "command is empty".to_owned(),
            })?;
    let mut command = tokio::process::Command::new(program);
    command
        .args(arguments)
        .env_clear()
        .envs(environment(definition, runtime_api))
        .stdin(stdin)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    own_process_group(&mut command);
    if let Some(task_root) = &definition.task_root {
        command.current_dir(task_root);
    }
    Ok(command)
}

/// Puts a handler process in its own process group, so [`ProcessGroup`] can end it together
/// with whatever it forked (a shell wrapper's children, worker processes).
pub(crate) fn own_process_group(command: &mut tokio::process::Command) {
    #[cfg(unix)]
    command.process_group(0);
    #[cfg(not(unix))]
    let _ = command;
}

/// The process group of a handler process; dropping it kills every process left in the group,
/// so a timeout, a crash or a cancelled invocation leaves nothing running behind.
#[derive(Debug)]
pub(crate) struct ProcessGroup {
    leader: Option<u32>,
}

impl ProcessGroup {
    /// The group led by `child`, which must have been started after [`own_process_group`].
    pub(crate) fn of(child: &tokio::process::Child) -> Self {
        ProcessGroup { leader: child.id() }
    }

    /// Sends SIGKILL to every process of the group; a group already gone is fine.
    pub(crate) fn kill(&self) {
        #[cfg(unix)]
        if let Some(pid) = self
            .leader
            .and_then(|leader| i32::try_from(leader).ok())
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}
