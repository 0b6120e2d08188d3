//! The `command` kind end to end: real processes, real pipes, real timeouts.

mod util;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sluice_functions::{
    Error, FirehoseRecordResult, FunctionDefinition, FunctionKind, FunctionRegistry, InvokeOptions,
    PAYLOAD_BYTES_MAX, WAITING_INVOCATIONS_MAX, firehose_codes,
};
use util::{
    event, fail_once, function_error, lines, no_retries, process_ends, sh, start_failed, write,
};

/// A Firehose handler in Python that upper-cases every record, drops `drop` and fails `fail`.
const PYTHON_REWRITE: &str = r#"
import base64, json, sys
event = json.load(sys.stdin)
out = []
for record in event["records"]:
    data = base64.b64decode(record["data"]).decode()
    if data == "drop":
        out.append({"recordId": record["recordId"], "result": "Dropped", "data": record["data"]})
    elif data == "fail":
        out.append({"recordId": record["recordId"], "result": "ProcessingFailed", "data": record["data"]})
    else:
        new = base64.b64encode(data.upper().encode()).decode()
        out.append({"recordId": record["recordId"], "result": "Ok", "data": new})
json.dump({"records": out}, sys.stdout)
"#;

/// A Firehose handler in Python that returns every record unchanged.
const PYTHON_IDENTITY: &str = r#"
import json, sys
event = json.load(sys.stdin)
records = [{"recordId": r["recordId"], "result": "Ok", "data": r["data"]} for r in event["records"]]
json.dump({"records": records}, sys.stdout)
"#;

fn register(registry: &FunctionRegistry, name: &str, command: Vec<String>) {
    registry
        .register(FunctionDefinition::new(
            name,
            FunctionKind::Command,
            command,
        ))
        .unwrap();
}

#[tokio::test]
async fn identity_and_rewrite_handlers_in_python() {
    let dir = tempfile::tempdir().unwrap();
    let identity = write(dir.path(), "identity.py", PYTHON_IDENTITY);
    let rewrite = write(dir.path(), "rewrite.py", PYTHON_REWRITE);
    let registry = FunctionRegistry::new();
    register(
        &registry,
        "identity",
        vec!["python3".into(), identity.display().to_string()],
    );
    register(
        &registry,
        "rewrite",
        vec!["python3".into(), rewrite.display().to_string()],
    );

    let input = event(&["hello", "drop", "world", "fail"]);
    let same = registry
        .transform_firehose("identity", &input, &no_retries())
        .await
        .unwrap();
    assert_eq!(same.attempts, 1);
    let datas: Vec<&[u8]> = same
        .response
        .records
        .iter()
        .map(|r| r.data.as_slice())
        .collect();
    assert_eq!(datas, [&b"hello"[..], b"drop", b"world", b"fail"]);

    let arn = "arn:aws:lambda:us-east-1:000000000000:function:rewrite:$LATEST";
    let rewritten = registry
        .transform_firehose(arn, &input, &no_retries())
        .await
        .unwrap()
        .response;
    let got: Vec<(&str, FirehoseRecordResult, &[u8])> = rewritten
        .records
        .iter()
        .map(|r| (r.record_id.as_str(), r.result, r.data.as_slice()))
        .collect();
    assert_eq!(
        got,
        [
            ("r0", FirehoseRecordResult::Ok, &b"HELLO"[..]),
            ("r1", FirehoseRecordResult::Dropped, b"drop"),
            ("r2", FirehoseRecordResult::Ok, b"WORLD"),
            ("r3", FirehoseRecordResult::ProcessingFailed, b"fail"),
        ]
    );
}

#[tokio::test]
async fn handler_sees_the_lambda_environment_and_its_own_variables() {
    let registry = FunctionRegistry::new();
    let mut definition = FunctionDefinition::new(
        "env-fn",
        FunctionKind::Command,
        sh(
            r#"printf '{"name":"%s","memory":"%s","extra":"%s","secret":"%s"}' "$AWS_LAMBDA_FUNCTION_NAME" "$AWS_LAMBDA_FUNCTION_MEMORY_SIZE" "$EXTRA" "$CARGO_MANIFEST_DIR""#,
        ),
    );
    definition.memory_size_mb = 256;
    definition.environment.insert("EXTRA".into(), "yes".into());
    registry.register(definition).unwrap();
    // Cargo sets this for the test process; the handler must not see the host's environment.
    assert!(std::env::var("CARGO_MANIFEST_DIR").is_ok());
    let answer = registry.invoke("env-fn", &json!({})).await.unwrap();
    assert_eq!(
        answer,
        json!({"name": "env-fn", "memory": "256", "extra": "yes", "secret": ""})
    );
}

#[tokio::test]
async fn output_that_is_not_json_fails_with_json_processing_exception() {
    let registry = FunctionRegistry::new();
    register(
        &registry,
        "bad",
        sh("cat >/dev/null; echo 'this is not json'"),
    );
    let error = registry
        .transform_firehose("bad", &event(&["a"]), &no_retries())
        .await
        .unwrap_err();
    assert!(
        matches!(error.last_attempt(), Error::InvalidJson { .. }),
        "{error}"
    );
    assert_eq!(
        error.firehose_error_code(),
        firehose_codes::JSON_PROCESSING_EXCEPTION
    );
}

#[tokio::test]
async fn missing_duplicated_and_unknown_record_ids_fail_the_whole_batch() {
    let registry = FunctionRegistry::new();
    register(
        &registry,
        "missing",
        sh(r#"cat >/dev/null; echo '{"records":[{"recordId":"r0","result":"Ok","data":"eA=="}]}'"#),
    );
    register(
        &registry,
        "duplicated",
        sh(
            r#"cat >/dev/null; echo '{"records":[{"recordId":"r0","result":"Ok","data":"eA=="},{"recordId":"r0","result":"Ok","data":"eA=="},{"recordId":"r1","result":"Ok","data":"eA=="}]}'"#,
        ),
    );
    register(
        &registry,
        "unknown",
        sh(
            r#"cat >/dev/null; echo '{"records":[{"recordId":"r0","result":"Ok","data":"eA=="},{"recordId":"r1","result":"Ok","data":"eA=="},{"recordId":"zz","result":"Ok","data":"eA=="}]}'"#,
        ),
    );
    register(
        &registry,
        "bad-base64",
        sh(
            r#"cat >/dev/null; echo '{"records":[{"recordId":"r0","result":"Ok","data":"eA=="},{"recordId":"r1","result":"Ok","data":"not base64!"}]}'"#,
        ),
    );
    register(
        &registry,
        "bad-result",
        sh(
            r#"cat >/dev/null; echo '{"records":[{"recordId":"r0","result":"Ok","data":"eA=="},{"recordId":"r1","result":"Maybe","data":"eA=="}]}'"#,
        ),
    );
    let input = event(&["a", "b"]);
    for (name, code) in [
        ("missing", firehose_codes::MISSING_RECORD_ID),
        ("duplicated", firehose_codes::DUPLICATED_RECORD_ID),
        ("unknown", firehose_codes::MISSING_RECORD_ID),
        ("bad-base64", firehose_codes::JSON_PROCESSING_EXCEPTION),
        ("bad-result", firehose_codes::JSON_PROCESSING_EXCEPTION),
    ] {
        let error = registry
            .transform_firehose(name, &input, &no_retries())
            .await
            .unwrap_err();
        assert!(
            matches!(error.last_attempt(), Error::InvalidOutput { .. }),
            "{name}: {error}"
        );
        assert_eq!(error.firehose_error_code(), code, "{name}: {error}");
    }
}

#[tokio::test]
async fn a_slow_handler_is_killed_at_its_timeout() {
    let registry = FunctionRegistry::new();
    let mut definition =
        FunctionDefinition::new("slow", FunctionKind::Command, sh("exec sleep 30"));
    definition.timeout = Duration::from_millis(300);
    registry.register(definition).unwrap();
    let started = Instant::now();
    let error = fail_once(&registry, "slow").await;
    assert!(
        matches!(
            error.last_attempt(),
            Error::Timeout {
                timeout_ms: 300,
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(error.firehose_error_code(), firehose_codes::FUNCTION_ERROR);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_timeout_also_kills_what_the_handler_forked() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let registry = FunctionRegistry::new();
    let mut definition = FunctionDefinition::new(
        "forks",
        FunctionKind::Command,
        sh(&format!(
            "sleep 30 & echo $! > '{}'; wait",
            pid_file.display()
        )),
    );
    definition.timeout = Duration::from_millis(500);
    registry.register(definition).unwrap();
    let error = fail_once(&registry, "forks").await;
    assert!(
        matches!(error.last_attempt(), Error::Timeout { .. }),
        "{error}"
    );
    let pid = lines(&pid_file).into_iter().next().unwrap();
    assert!(
        process_ends(&pid),
        "the forked sleep {pid} outlived the timeout"
    );
}

#[tokio::test]
async fn a_non_zero_exit_is_a_function_error_with_stderr() {
    let registry = FunctionRegistry::new();
    register(
        &registry,
        "exit3",
        sh("cat >/dev/null; echo 'boom: handler blew up' >&2; exit 3"),
    );
    let error = fail_once(&registry, "exit3").await;
    let (_, message) = function_error(&error);
    assert!(message.contains("status 3"), "{message}");
    assert!(message.contains("boom: handler blew up"), "{message}");
    assert!(message.starts_with("command `sh -c "), "{message}");
    assert_eq!(error.firehose_error_code(), firehose_codes::FUNCTION_ERROR);
}

#[tokio::test]
async fn payloads_over_the_limit_fail_in_both_directions() {
    let registry = FunctionRegistry::new();
    register(
        &registry,
        "huge",
        sh("cat >/dev/null; head -c 7000000 /dev/zero"),
    );
    register(&registry, "echo", vec!["cat".into()]);

    let error = fail_once(&registry, "huge").await;
    assert!(
        matches!(error.last_attempt(), Error::ResponseTooLarge { limit, .. } if *limit == PAYLOAD_BYTES_MAX),
        "{error}"
    );

    let big = json!({"data": "x".repeat(PAYLOAD_BYTES_MAX)});
    let error = registry.invoke("echo", &big).await.unwrap_err();
    assert!(matches!(error, Error::RequestTooLarge { .. }), "{error}");

    // Just under the limit goes through unchanged.
    let fits = json!("y".repeat(PAYLOAD_BYTES_MAX - 16));
    assert_eq!(registry.invoke("echo", &fits).await.unwrap(), fits);
}

#[tokio::test]
async fn failed_attempts_are_retried_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let always = dir.path().join("always");
    let flaky = dir.path().join("flaky");
    let registry = FunctionRegistry::new();
    register(
        &registry,
        "always-fails",
        sh(&format!("echo attempt >> '{}'; exit 1", always.display())),
    );
    // Fails twice, then answers.
    register(
        &registry,
        "flaky",
        sh(&format!(
            "echo attempt >> '{0}'; [ $(wc -l < '{0}') -ge 3 ] || exit 1; cat",
            flaky.display()
        )),
    );

    let error = registry
        .invoke("always-fails", &json!({}))
        .await
        .unwrap_err();
    let Error::RetriesExhausted { attempts, .. } = &error else {
        panic!("{error}");
    };
    assert_eq!(*attempts, 4, "the first attempt and Firehose's 3 retries");
    assert_eq!(lines(&always).len(), 4);

    let invocation = registry
        .invoke_with("flaky", &json!({"k": 1}), &InvokeOptions::default())
        .await
        .unwrap();
    assert_eq!(invocation.attempts, 3);
    assert_eq!(invocation.response, json!({"k": 1}));
    assert_eq!(lines(&flaky).len(), 3);

    // A missing function is not retried.
    let error = registry.invoke("nope", &json!({})).await.unwrap_err();
    assert!(matches!(error, Error::FunctionNotFound { .. }), "{error}");
    assert_eq!(
        error.firehose_error_code(),
        firehose_codes::RESOURCE_NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_is_respected() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let registry = FunctionRegistry::new();
    let mut definition = FunctionDefinition::new(
        "limited",
        FunctionKind::Command,
        sh(&format!(
            "echo start >> '{0}'; sleep 0.5; echo end >> '{0}'; cat",
            log.display()
        )),
    );
    definition.concurrency = 2;
    registry.register(definition).unwrap();

    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..6 {
        let registry = registry.clone();
        tasks.spawn(async move { registry.invoke("limited", &json!(index)).await });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap().unwrap();
    }
    let mut running = 0i32;
    let mut most_running = 0i32;
    for line in lines(&log) {
        running += if line == "start" { 1 } else { -1 };
        most_running = most_running.max(running);
    }
    assert_eq!(lines(&log).len(), 12);
    assert_eq!(most_running, 2, "two at once, never more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_invocations_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("flag");
    let registry = FunctionRegistry::new();
    // The first invocation holds the only slot for a while; the others answer at once.
    register(
        &registry,
        "one-at-a-time",
        sh(&format!(
            "if [ -e '{0}' ]; then cat; else touch '{0}'; sleep 3; cat; fi",
            flag.display()
        )),
    );
    let registry = Arc::new(registry);
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..WAITING_INVOCATIONS_MAX + 5 {
        let registry = Arc::clone(&registry);
        tasks.spawn(async move {
            registry
                .invoke_with("one-at-a-time", &json!(index), &no_retries())
                .await
        });
    }
    let mut throttled = 0;
    let mut answered = 0;
    while let Some(result) = tasks.join_next().await {
        match result.unwrap() {
            Ok(_) => answered += 1,
            Err(error) => {
                assert!(
                    matches!(error.last_attempt(), Error::TooManyRequests { .. }),
                    "{error}"
                );
                assert_eq!(
                    error.firehose_error_code(),
                    firehose_codes::INVOKE_LIMIT_EXCEEDED
                );
                throttled += 1;
            }
        }
    }
    assert!(throttled >= 1, "throttled {throttled}");
    assert!(
        answered <= WAITING_INVOCATIONS_MAX + 1,
        "answered {answered}"
    );
    assert_eq!(throttled + answered, WAITING_INVOCATIONS_MAX + 5);
}

#[tokio::test]
async fn a_program_not_on_the_path_fails_to_start_naming_it() {
    let registry = FunctionRegistry::new();
    register(
        &registry,
        "absent",
        vec!["sluice-no-such-program".into(), "--flag".into()],
    );
    let error = fail_once(&registry, "absent").await;
    let (error_type, command, reason) = start_failed(&error);
    assert_eq!(error_type, "Runtime.InvalidEntrypoint");
    assert_eq!(command, "sluice-no-such-program --flag");
    assert!(
        reason.starts_with("sluice-no-such-program is not on the PATH handlers get"),
        "{reason}"
    );
    assert_eq!(error.firehose_error_code(), firehose_codes::FUNCTION_ERROR);
}
