//! The `command` kind: one process per invocation, event on stdin, response on stdout.

use std::process::Stdio;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::definition::FunctionDefinition;
use crate::error::{Error, Result};
use crate::limits::{PAYLOAD_BYTES_MAX, STDERR_DRAIN_WAIT};
use crate::process::{
    Failing, OutputTail, ProcessGroup, display_command, exit_description, forward_output,
    handler_command, spawn_failure, with_stderr,
};

/// Runs the command once with `payload` on stdin and returns what it wrote on stdout.
/// A non-zero exit, a timeout (the process is killed) or more than [`PAYLOAD_BYTES_MAX`]
/// bytes of output fail the invocation.
/// `failing` quiets the log of its output during a burst of failures.
pub(crate) async fn invoke(
    definition: &FunctionDefinition,
    payload: Bytes,
    failing: &Failing,
    log: Option<OutputTail>,
) -> Result<Bytes> {
    let name = definition.name.clone();
    let io_error = |context: &'static str| {
        let name = name.clone();
        move |source| Error::Io {
            name,
            context,
            source,
        }
    };
    let mut command = handler_command(definition, None, Stdio::piped())?;
    let mut child = command
        .spawn()
        .map_err(|source| spawn_failure(definition, &source))?;
    // Whatever the handler forked dies with it when this invocation ends, however it ends.
    let _group = ProcessGroup::of(&child);

    let tail = OutputTail::default();
    let stderr_forwarder = child.stderr.take().map(|stderr| {
        forward_output(
            stderr,
            name.clone(),
            "stderr",
            Some(tail.clone()),
            Arc::clone(failing),
            Some(Arc::new(std::sync::Mutex::new(log))),
        )
    });
    if let Some(mut stdin) = child.stdin.take() {
        // Written from its own task so a process that answers before reading all of its input
        // cannot deadlock against us; a process that never reads stdin just breaks the pipe.
        tokio::spawn(async move {
            let _ = stdin.write_all(&payload).await;
            let _ = stdin.shutdown().await;
        });
    }
    let mut stdout = child.stdout.take().ok_or_else(|| Error::Io {
        name: name.clone(),
        context: "reading stdout",
        source: std::io::Error::other("stdout is not piped"),
    })?;

    let limit = u64::try_from(PAYLOAD_BYTES_MAX)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let run = async {
        let mut output = Vec::new();
        (&mut stdout)
            .take(limit)
            .read_to_end(&mut output)
            .await
            .map_err(io_error("reading stdout"))?;
        if output.len() > PAYLOAD_BYTES_MAX {
            return Ok(None);
        }
        let status = child
            .wait()
            .await
            .map_err(io_error("waiting for the command"))?;
        Ok::<_, Error>(Some((output, status)))
    };
    let outcome = tokio::time::timeout(definition.timeout, run).await;
    let (output, status) = match outcome {
        Err(_elapsed) => {
            let _ = child.kill().await;
            return Err(Error::Timeout {
                name,
                timeout_ms: u64::try_from(definition.timeout.as_millis()).unwrap_or(u64::MAX),
            });
        }
        Ok(Err(error)) => {
            let _ = child.kill().await;
            return Err(error);
        }
        Ok(Ok(None)) => {
            let _ = child.kill().await;
            return Err(Error::ResponseTooLarge {
                name,
                limit: PAYLOAD_BYTES_MAX,
            });
        }
        Ok(Ok(Some(done))) => done,
    };
    if !status.success() {
        // The process has exited, but the forwarder may not have read its last words yet.
        // Helpers it forked may hold stderr open, so the wait is bounded.
        if let Some(forwarder) = stderr_forwarder {
            let _ = tokio::time::timeout(STDERR_DRAIN_WAIT, forwarder).await;
        }
        let message = format!(
            "command `{}` {}",
            display_command(&definition.command),
            exit_description(status)
        );
        return Err(Error::FunctionError {
            name,
            error_type: "Runtime.ExitError".to_owned(),
            message: with_stderr(message, &tail.text()),
        });
    }
    Ok(Bytes::from(output))
}
