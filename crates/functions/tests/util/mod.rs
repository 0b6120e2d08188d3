//! Helpers shared by the integration tests of both kinds: Firehose events, handler scripts in
//! temp dirs, one failed invocation and what its error says, and whether a process ended.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sluice_functions::{
    Error, FirehoseEventRecord, FirehoseTransformationEvent, FunctionRegistry, InvokeOptions,
};

/// A Firehose event whose records carry `datas`, with ids `r0`, `r1`, …
pub fn event(datas: &[&str]) -> FirehoseTransformationEvent {
    FirehoseTransformationEvent {
        invocation_id: "00540a87-5050-496a-84e4-e7d92bbaf5e2".into(),
        delivery_stream_arn: "arn:aws:firehose:us-east-1:000000000000:deliverystream/test".into(),
        region: "us-east-1".into(),
        records: datas
            .iter()
            .enumerate()
            .map(|(index, data)| FirehoseEventRecord {
                record_id: format!("r{index}"),
                approximate_arrival_timestamp: 1_700_000_000_000 + i64::try_from(index).unwrap(),
                data: data.as_bytes().to_vec(),
            })
            .collect(),
    }
}

/// Writes `text` to `dir/name` and returns its path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `["sh", "-c", script]`.
pub fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

/// Lines of a file, empty when it does not exist.
pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// One attempt, as Firehose makes with `NumberOfRetries` 0.
pub fn no_retries() -> InvokeOptions {
    InvokeOptions {
        number_of_retries: 0,
    }
}

/// Invokes `name` once with an empty event, without retries; the invocation must fail.
pub async fn fail_once(registry: &FunctionRegistry, name: &str) -> Error {
    registry
        .invoke_with(name, &serde_json::json!({}), &no_retries())
        .await
        .unwrap_err()
}

/// `(error_type, command, reason)` of an [`Error::StartFailed`], looking through retries;
/// panics on any other error.
pub fn start_failed(error: &Error) -> (&str, &str, &str) {
    match error.last_attempt() {
        Error::StartFailed {
            error_type,
            command,
            reason,
            ..
        } => (error_type, command, reason),
        _ => panic!("not a start failure: {error}"),
    }
}

/// `(error_type, message)` of an [`Error::FunctionError`], looking through retries; panics on
/// any other error.
pub fn function_error(error: &Error) -> (&str, &str) {
    match error.last_attempt() {
        Error::FunctionError {
            error_type,
            message,
            ..
        } => (error_type, message),
        _ => panic!("not a function error: {error}"),
    }
}

/// Whether `pid` is gone (or a zombie waiting to be reaped), polled for up to five seconds
/// because SIGKILL is delivered asynchronously.
pub fn process_ends(pid: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(stat)
                if stat
                    .rsplit(')')
                    .next()
                    .is_some_and(|rest| rest.trim_start().starts_with('Z')) =>
            {
                return true;
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    false
}
