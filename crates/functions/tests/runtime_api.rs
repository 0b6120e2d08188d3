//! The `runtime-api` kind end to end: the real `awslambdaric` from PyPI running unchanged
//! handlers, and a hand-written runtime client for the error paths awslambdaric rarely takes.
//!
//! The Python with awslambdaric is `SLUICE_TEST_PYTHON`, by default `.venv-test/bin/python` at
//! the repository root, which `scripts/test.sh` fills from `tests/python/requirements.txt`.
//! Without it these tests fail: a compatibility claim is only made when it is tested.

mod util;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sluice_functions::{
    Clock, Error, FirehoseRecordResult, FunctionDefinition, FunctionKind, FunctionRegistry,
    InvokeOptions, PAYLOAD_BYTES_MAX, RUNTIME_INIT_GRACE, firehose_codes,
};
use util::{
    event, fail_once, function_error, lines, no_retries, process_ends, start_failed, write,
};

/// Python handlers as a user would deploy them to Lambda.
const HANDLERS: &str = r#"
import base64, os, time, uuid

def identity(event, context):
    return {"records": [
        {"recordId": r["recordId"], "result": "Ok", "data": r["data"]}
        for r in event["records"]
    ]}

def rewrite(event, context):
    out = []
    for r in event["records"]:
        text = "bye world! " + str(uuid.uuid4())
        out.append({"recordId": r["recordId"], "result": "Ok",
                    "data": base64.b64encode(text.encode()).decode()})
    return {"records": out}

def info(event, context):
    return {
        "pid": os.getpid(),
        "request_id": context.aws_request_id,
        "arn": context.invoked_function_arn,
        "name": context.function_name,
        "memory": str(context.memory_limit_in_mb),
        "remaining_ms": context.get_remaining_time_in_millis(),
        "event": event,
    }

def fail(event, context):
    raise ValueError("nope, not this event")

def slow(event, context):
    time.sleep(30)
    return {"late": True}
"#;

/// A minimal runtime client speaking the Runtime API with the standard library only.
const HAND_WRITTEN_RUNTIME: &str = r#"
import json, os, sys, urllib.request, urllib.error

api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"
mode = sys.argv[1]

def post(path, body, headers=None):
    request = urllib.request.Request(api + path, data=body, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return -1

if mode == "init-error":
    post("/init/error",
         json.dumps({"errorType": "Runtime.ImportModuleError",
                     "errorMessage": "Unable to import module 'missing'"}).encode(),
         {"Lambda-Runtime-Function-Error-Type": "Runtime.ImportModuleError"})
    sys.exit(1)

if mode == "hang":
    # Stuck before it asks for an event, as a runtime whose import blocks.
    with open(os.path.join(os.path.dirname(sys.argv[0]), "hang.pid"), "w") as pid_file:
        pid_file.write(str(os.getpid()))
    print("loading a model that never finishes", file=sys.stderr, flush=True)
    import time
    time.sleep(3600)

while True:
    with urllib.request.urlopen(api + "/invocation/next") as response:
        request_id = response.headers["Lambda-Runtime-Aws-Request-Id"]
        headers = {key.lower(): value for key, value in response.headers.items()}
        event = json.loads(response.read())
    if mode == "error":
        post("/invocation/" + request_id + "/error",
             json.dumps({"errorType": "Custom.Error", "errorMessage": "bad thing",
                         "stackTrace": []}).encode())
    elif mode == "crash":
        print("dying on purpose", file=sys.stderr, flush=True)
        sys.exit(7)
    elif mode == "huge":
        post("/invocation/" + request_id + "/response", b'"' + b"x" * 7_000_000 + b'"')
    elif mode == "once":
        post("/invocation/" + request_id + "/response", json.dumps({"pid": os.getpid()}).encode())
        sys.exit(0)
    elif mode == "sleep":
        import time
        time.sleep(0.3)
        post("/invocation/" + request_id + "/response", json.dumps({"pid": os.getpid()}).encode())
    elif mode == "headers":
        bogus = post("/invocation/not-a-request-id/response", b"{}")
        post("/invocation/" + request_id + "/response",
             json.dumps({"headers": headers, "event": event, "bogus": bogus,
                         "pid": os.getpid()}).encode())
"#;

fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Python with awslambdaric; panics with what to do when there is none.
fn python_with_awslambdaric() -> String {
    let python = std::env::var("SLUICE_TEST_PYTHON").unwrap_or_else(|_| {
        repository_root()
            .join(".venv-test/bin/python")
            .display()
            .to_string()
    });
    let probe = Command::new(&python)
        .args(["-c", "import awslambdaric"])
        .output();
    match probe {
        Ok(output) if output.status.success() => python,
        Ok(output) => panic!(
            "{python} cannot import awslambdaric ({}); install it with \
             `{python} -m pip install -r tests/python/requirements.txt` (scripts/test.sh does) \
             or point SLUICE_TEST_PYTHON at a python that has it",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        Err(error) => panic!(
            "no python at {python} ({error}); run scripts/test.sh, which creates .venv-test \
             with awslambdaric, or set SLUICE_TEST_PYTHON"
        ),
    }
}

fn awslambdaric_function(
    name: &str,
    handler: &str,
    task_root: &std::path::Path,
    python: &str,
) -> FunctionDefinition {
    let mut definition = FunctionDefinition::new(
        name,
        FunctionKind::RuntimeApi,
        vec![
            python.to_owned(),
            "-m".into(),
            "awslambdaric".into(),
            handler.to_owned(),
        ],
    );
    definition.handler = Some(handler.to_owned());
    definition.task_root = Some(task_root.to_owned());
    definition.timeout = Duration::from_secs(20);
    definition
}

fn hand_written_function(name: &str, mode: &str, dir: &std::path::Path) -> FunctionDefinition {
    let script = write(dir, "runtime.py", HAND_WRITTEN_RUNTIME);
    let mut definition = FunctionDefinition::new(
        name,
        FunctionKind::RuntimeApi,
        vec!["python3".into(), script.display().to_string(), mode.into()],
    );
    definition.timeout = Duration::from_secs(10);
    definition
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awslambdaric_runs_identity_and_rewriting_firehose_handlers() {
    let python = python_with_awslambdaric();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "handler.py", HANDLERS);
    let registry = FunctionRegistry::new();
    registry
        .register(awslambdaric_function(
            "identity",
            "handler.identity",
            dir.path(),
            &python,
        ))
        .unwrap();
    registry
        .register(awslambdaric_function(
            "rewrite",
            "handler.rewrite",
            dir.path(),
            &python,
        ))
        .unwrap();

    let input = event(&["hello world!", "second"]);
    let same = registry
        .transform_firehose("identity", &input, &no_retries())
        .await
        .unwrap();
    let datas: Vec<&[u8]> = same
        .response
        .records
        .iter()
        .map(|r| r.data.as_slice())
        .collect();
    assert_eq!(datas, [&b"hello world!"[..], b"second"]);

    let rewritten = registry
        .transform_firehose(
            "arn:aws:lambda:us-east-1:000000000000:function:rewrite",
            &input,
            &no_retries(),
        )
        .await
        .unwrap()
        .response;
    let mut uuids = Vec::new();
    for (record, original) in rewritten.records.iter().zip(&input.records) {
        assert_eq!(record.record_id, original.record_id);
        assert_eq!(record.result, FirehoseRecordResult::Ok);
        let text = String::from_utf8(record.data.clone()).unwrap();
        let uuid = text
            .strip_prefix("bye world! ")
            .unwrap_or_else(|| panic!("{text}"));
        assert_eq!(uuid.len(), 36, "{text}");
        assert_eq!(uuid.matches('-').count(), 4, "{text}");
        uuids.push(uuid.to_owned());
    }
    assert_ne!(uuids[0], uuids[1]);
    registry.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awslambdaric_stays_warm_reports_errors_and_is_restarted_when_it_dies() {
    let python = python_with_awslambdaric();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "handler.py", HANDLERS);
    let registry = FunctionRegistry::new();
    let mut info = awslambdaric_function("info", "handler.info", dir.path(), &python);
    info.memory_size_mb = 512;
    registry.register(info).unwrap();
    registry
        .register(awslambdaric_function(
            "fail",
            "handler.fail",
            dir.path(),
            &python,
        ))
        .unwrap();
    let mut slow = awslambdaric_function("slow", "handler.slow", dir.path(), &python);
    slow.timeout = Duration::from_secs(1);
    registry.register(slow).unwrap();

    let first = registry.invoke("info", &json!({"n": 1})).await.unwrap();
    let second = registry.invoke("info", &json!({"n": 2})).await.unwrap();
    assert_eq!(first["pid"], second["pid"], "the runtime stays warm");
    assert_ne!(first["request_id"], second["request_id"]);
    assert_eq!(second["event"], json!({"n": 2}));
    assert_eq!(
        second["arn"],
        "arn:aws:lambda:us-east-1:000000000000:function:info"
    );
    assert_eq!(second["name"], "info");
    assert_eq!(second["memory"], "512");
    let remaining_ms = second["remaining_ms"].as_i64().unwrap();
    assert!(remaining_ms > 0 && remaining_ms <= 20_000, "{remaining_ms}");

    // Kill the warm runtime behind the host's back: the next invocation gets a new one.
    let pid = first["pid"].as_i64().unwrap().to_string();
    let killed = Command::new("kill").args(["-9", &pid]).status().unwrap();
    assert!(killed.success());
    let third = registry.invoke("info", &json!({"n": 3})).await.unwrap();
    assert_ne!(third["pid"], first["pid"], "a dead runtime is restarted");
    assert_eq!(third["event"], json!({"n": 3}));

    // A handler that raises is a function error with the exception's type and message.
    let error = fail_once(&registry, "fail").await;
    let (error_type, message) = function_error(&error);
    assert_eq!(error_type, "ValueError");
    assert!(message.contains("nope, not this event"), "{message}");
    assert_eq!(error.firehose_error_code(), firehose_codes::FUNCTION_ERROR);

    // A handler past its timeout is killed; the function still answers afterwards.
    let error = fail_once(&registry, "slow").await;
    assert!(
        matches!(
            error.last_attempt(),
            Error::Timeout {
                timeout_ms: 1000,
                ..
            }
        ),
        "{error}"
    );
    registry.shutdown().await;
}

/// A clock stuck at one instant, to check the deadline the Runtime API announces.
struct FixedClock(u64);

impl Clock for FixedClock {
    fn now_epoch_ms(&self) -> u64 {
        self.0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_api_headers_and_unknown_request_ids() {
    let dir = tempfile::tempdir().unwrap();
    let registry = FunctionRegistry::with_clock(Arc::new(FixedClock(1_700_000_000_000)));
    registry
        .register(hand_written_function("headers", "headers", dir.path()))
        .unwrap();
    let answer = registry
        .invoke("headers", &json!({"k": "v"}))
        .await
        .unwrap();
    let headers = &answer["headers"];
    assert_eq!(answer["event"], json!({"k": "v"}));
    assert_eq!(answer["bogus"], 400, "an unknown request id is refused");
    assert_eq!(headers["lambda-runtime-deadline-ms"], "1700000010000");
    assert_eq!(
        headers["lambda-runtime-invoked-function-arn"],
        "arn:aws:lambda:us-east-1:000000000000:function:headers"
    );
    let request_id = headers["lambda-runtime-aws-request-id"].as_str().unwrap();
    assert_eq!(request_id.len(), 36);
    let trace_id = headers["lambda-runtime-trace-id"].as_str().unwrap();
    assert!(trace_id.starts_with("Root=1-"), "{trace_id}");
    assert_eq!(headers["content-type"], "application/json");

    let again = registry.invoke("headers", &json!(2)).await.unwrap();
    assert_eq!(again["pid"], answer["pid"]);
    assert_ne!(
        again["headers"]["lambda-runtime-aws-request-id"],
        headers["lambda-runtime-aws-request-id"]
    );
    registry.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_api_error_paths() {
    let dir = tempfile::tempdir().unwrap();
    let registry = FunctionRegistry::new();
    for mode in ["error", "init-error", "crash", "huge"] {
        registry
            .register(hand_written_function(mode, mode, dir.path()))
            .unwrap();
    }

    let error = fail_once(&registry, "error").await;
    let (error_type, message) = function_error(&error);
    assert_eq!((error_type, message), ("Custom.Error", "bad thing"));

    let error = fail_once(&registry, "init-error").await;
    let (error_type, command, reason) = start_failed(&error);
    assert_eq!(error_type, "Runtime.ImportModuleError");
    assert!(reason.contains("failed to initialise"), "{reason}");
    assert!(reason.contains("Unable to import module"), "{reason}");
    assert!(command.ends_with("runtime.py init-error"), "{command}");

    let error = fail_once(&registry, "crash").await;
    let (error_type, message) = function_error(&error);
    assert_eq!(error_type, "Runtime.ExitError");
    assert!(message.contains("status 7"), "{message}");
    assert!(message.contains("dying on purpose"), "{message}");
    assert!(message.contains("runtime.py crash` exited"), "{message}");
    // Each retry gets a fresh process, which crashes again: all attempts are made.
    let error = registry
        .invoke_with(
            "crash",
            &json!({}),
            &InvokeOptions {
                number_of_retries: 2,
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::RetriesExhausted { attempts: 3, .. }),
        "{error}"
    );

    let error = fail_once(&registry, "huge").await;
    assert!(
        matches!(error.last_attempt(), Error::ResponseTooLarge { limit, .. } if *limit == PAYLOAD_BYTES_MAX),
        "{error}"
    );
    registry.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_processes_are_pooled_up_to_the_concurrency() {
    let dir = tempfile::tempdir().unwrap();
    let registry = FunctionRegistry::new();
    let mut definition = hand_written_function("pooled", "sleep", dir.path());
    definition.concurrency = 2;
    registry.register(definition).unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..6 {
        let registry = registry.clone();
        tasks.spawn(async move { registry.invoke("pooled", &json!(index)).await });
    }
    let mut pids = std::collections::BTreeSet::new();
    while let Some(result) = tasks.join_next().await {
        pids.insert(result.unwrap().unwrap()["pid"].as_i64().unwrap());
    }
    assert_eq!(
        pids.len(),
        2,
        "two warm processes serve six invocations: {pids:?}"
    );
    registry.shutdown().await;
    let error = registry.invoke("pooled", &json!(0)).await.unwrap_err();
    assert!(matches!(error, Error::ShutDown), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_that_answers_then_exits_has_answered_and_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let registry = FunctionRegistry::new();
    registry
        .register(hand_written_function("once", "once", dir.path()))
        .unwrap();
    let first = registry
        .invoke_with("once", &json!(1), &no_retries())
        .await
        .unwrap();
    let second = registry
        .invoke_with("once", &json!(2), &no_retries())
        .await
        .unwrap();
    assert_eq!((first.attempts, second.attempts), (1, 1));
    assert_ne!(first.response["pid"], second.response["pid"]);
}

#[tokio::test]
async fn a_runtime_that_cannot_be_run_fails_to_start_naming_its_command() {
    let registry = FunctionRegistry::new();
    registry
        .register(FunctionDefinition::new(
            "missing",
            FunctionKind::RuntimeApi,
            vec![
                "/nonexistent/sluice-runtime".into(),
                "handler.handler".into(),
            ],
        ))
        .unwrap();
    let error = fail_once(&registry, "missing").await;
    let (error_type, command, reason) = start_failed(&error);
    assert_eq!(error_type, "Runtime.InvalidEntrypoint");
    assert_eq!(command, "/nonexistent/sluice-runtime handler.handler");
    assert!(
        reason.starts_with("/nonexistent/sluice-runtime does not exist"),
        "{reason}"
    );
    assert_eq!(error.firehose_error_code(), firehose_codes::FUNCTION_ERROR);
}

/// The issue's case: the runtime module is not installed for the Python the host runs, so the
/// process exits at once, before asking for an event. The error says which command and what
/// Python said, after Firehose's retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_that_exits_before_asking_for_an_event_fails_to_start_with_its_stderr() {
    let registry = FunctionRegistry::new();
    registry
        .register(FunctionDefinition::new(
            "no-runtime",
            FunctionKind::RuntimeApi,
            vec![
                "python3".into(),
                "-m".into(),
                "sluice_no_such_runtime".into(),
                "handler.handler".into(),
            ],
        ))
        .unwrap();
    let error = registry
        .invoke_with(
            "no-runtime",
            &json!({}),
            &InvokeOptions {
                number_of_retries: 1,
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::RetriesExhausted { attempts: 2, .. }),
        "{error}"
    );
    let text = error.to_string();
    assert!(
        text.contains(
            "could not start `python3 -m sluice_no_such_runtime handler.handler`: it exited with status 1 before asking for its first event; stderr: "
        ),
        "{text}"
    );
    assert!(
        text.contains("No module named sluice_no_such_runtime"),
        "{text}"
    );
}

/// A runtime that never asks for its first event (its start hangs) fails to start when the
/// timeout and the start grace have passed, as Lambda's `Sandbox.Timedout`, with what it wrote
/// on stderr; the process is killed, not left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_that_never_asks_for_an_event_fails_to_start_at_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let registry = FunctionRegistry::new();
    let mut definition = hand_written_function("hang", "hang", dir.path());
    definition.timeout = Duration::from_millis(100);
    registry.register(definition).unwrap();
    let error = fail_once(&registry, "hang").await;
    let (error_type, command, reason) = start_failed(&error);
    assert_eq!(error_type, "Sandbox.Timedout");
    assert!(command.ends_with("runtime.py hang"), "{command}");
    let waited_ms = (Duration::from_millis(100) + RUNTIME_INIT_GRACE).as_millis();
    assert!(
        reason.starts_with(&format!(
            "it did not ask for its first event within {waited_ms} ms; stderr: "
        )),
        "{reason}"
    );
    assert!(
        reason.contains("loading a model that never finishes"),
        "{reason}"
    );
    let pid = lines(&dir.path().join("hang.pid"))
        .into_iter()
        .next()
        .unwrap();
    assert!(process_ends(&pid), "the runtime {pid} outlived its start");
}

/// A handler module that awslambdaric cannot import: the runtime reports an init error and
/// exits; the error carries Lambda's type and the runtime's message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awslambdaric_with_a_missing_handler_module_fails_to_start() {
    let python = python_with_awslambdaric();
    let dir = tempfile::tempdir().unwrap();
    let registry = FunctionRegistry::new();
    registry
        .register(awslambdaric_function(
            "no-module",
            "missing_module.handler",
            dir.path(),
            &python,
        ))
        .unwrap();
    let error = fail_once(&registry, "no-module").await;
    let (error_type, command, reason) = start_failed(&error);
    assert_eq!(error_type, "Runtime.ImportModuleError");
    assert!(
        command.ends_with("-m awslambdaric missing_module.handler"),
        "{command}"
    );
    assert!(
        reason.contains("No module named 'missing_module'"),
        "{reason}"
    );
}
