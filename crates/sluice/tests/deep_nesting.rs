//! Hostile nesting through every endpoint of the real binary. The cases are generated from the
//! routers' own route lists (`sluice_api::es::routes::ROUTES`, `sluice_api::aws::CATALOG`), so
//! a new endpoint is covered as soon as it can be called: each gets, in every format it reads,
//! a value nested ten times beyond that format's limit, must answer 4xx in its client's error
//! shape, and the server must keep answering.

mod util;

use base64::Engine as _;
use serde_json::{Value, json};
use sluice_api::aws::{CATALOG, Format, ServiceRoutes};
use sluice_api::es::routes::{Body, ROUTES, Segment};
use sluice_api::json::JSON_DEPTH_MAX;
use sluice_ledger::ion_read::{BLOCK_DEPTH_MAX, ION_DEPTH_MAX};
use util::*;

/// Ten times each limit, as the issue asks.
const JSON_DEPTH: usize = 10 * JSON_DEPTH_MAX;
const ION_DEPTH: usize = 10 * ION_DEPTH_MAX;

/// The Elasticsearch error types of a body that does not parse, as each API names it.
const ES_PARSE_TYPES: &[&str] = &[
    "parsing_exception",
    "x_content_parse_exception",
    "document_parsing_exception",
];

/// An index that exists, so that handlers get as far as reading the body.
const INDEX: &str = "deep";

fn es_path(path: &[Segment]) -> String {
    let mut any_seen = 0;
    let segments: Vec<String> = path
        .iter()
        .map(|segment| match segment {
            Segment::Literal(text) => (*text).to_owned(),
            Segment::Any => {
                any_seen += 1;
                if any_seen == 1 { INDEX } else { "1" }.to_owned()
            }
            // The root `PUT /{name}` creates an index: a new name, so the body is read.
            Segment::Name => "fresh".to_owned(),
        })
        .collect();
    format!("/{}", segments.join("/"))
}

/// Asserts an Elasticsearch error: `{"error":{"root_cause":[…],"type","reason"},"status"}`.
fn assert_es_error(reply: &Reply, status: u16, types: &[&str], case: &str) -> Value {
    assert_eq!(
        reply.status,
        status,
        "{case}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    let body = reply.json();
    let kind = body["error"]["type"].as_str().unwrap_or_default();
    assert!(types.contains(&kind), "{case}: type {kind} in {body}");
    assert_eq!(body["status"], status, "{case}");
    assert_eq!(body["error"]["root_cause"][0]["type"], kind, "{case}");
    assert!(body["error"]["reason"].is_string(), "{case}");
    body
}

/// Asserts an AWS error: `{"__type","message"}` with its status.
fn assert_aws_error(reply: &Reply, status: u16, kind: &str, case: &str) {
    assert_eq!(
        reply.status,
        status,
        "{case}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    let body = reply.json();
    assert_eq!(body["__type"], kind, "{case}: {body}");
    assert!(body["message"].is_string(), "{case}: {body}");
}

#[test]
fn every_elasticsearch_route_refuses_deep_bodies_and_the_server_keeps_answering() {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(data_dir.path());
    let created = server.es("PUT", &format!("/{INDEX}"), &[], b"");
    assert_eq!(created.status, 200);

    let deep = deep_json(JSON_DEPTH);
    let mut cases = 0;
    for route in ROUTES {
        let path = es_path(route.path);
        for method in route.methods {
            let case = format!("{method} {path}");
            let (headers, body): (&[(&str, &str)], String) = match route.body(method) {
                Some(Body::Json) | None => (JSON, deep.clone()),
                Some(Body::Ndjson) => (
                    &[("Content-Type", "application/x-ndjson")],
                    format!("{deep}\n"),
                ),
            };
            let reply = server.es(method, &path, headers, body.as_bytes());
            match route.body(method) {
                // HEAD answers carry no body: the status is all there is.
                None if *method == "HEAD" => assert_eq!(reply.status, 400, "{case}"),
                None => {
                    let error =
                        assert_es_error(&reply, 400, &["illegal_argument_exception"], &case);
                    let reason = error["error"]["reason"].as_str().unwrap_or_default();
                    assert!(
                        reason.ends_with("does not support having a body"),
                        "{reason}"
                    );
                }
                Some(_) => {
                    let error = assert_es_error(&reply, 400, ES_PARSE_TYPES, &case);
                    let reason = error["error"]["reason"].as_str().unwrap_or_default();
                    assert!(
                        reason.contains(&format!(
                            "nesting depth ({}) exceeds the maximum allowed ({JSON_DEPTH_MAX})",
                            JSON_DEPTH_MAX + 1
                        )),
                        "{case}: {reason}"
                    );
                }
            }
            let is_msearch = route.path.contains(&Segment::Literal("_msearch"));
            if route.body(method) == Some(Body::Ndjson) && is_msearch {
                // A deep search body fails the whole request: Elasticsearch parses every
                // search of an `_msearch` before it runs any.
                let body = format!("{{}}\n{deep}\n");
                let reply = server.es(
                    method,
                    &path,
                    &[("Content-Type", "application/x-ndjson")],
                    body.as_bytes(),
                );
                assert_es_error(
                    &reply,
                    400,
                    ES_PARSE_TYPES,
                    &format!("{case} with a deep search"),
                );
            } else if route.body(method) == Some(Body::Ndjson) {
                // A deep source fails its own item, as a bad document does.
                for (action, source) in [
                    (r#"{"index":{"_id":"1"}}"#, deep.clone()),
                    (r#"{"update":{"_id":"1"}}"#, format!(r#"{{"doc":{deep}}}"#)),
                ] {
                    let body = format!("{action}\n{source}\n");
                    let path = format!("/{INDEX}/_bulk");
                    let reply = server.es(
                        method,
                        &path,
                        &[("Content-Type", "application/x-ndjson")],
                        body.as_bytes(),
                    );
                    assert_eq!(reply.status, 200, "{case} with a deep source");
                    let answer = reply.json();
                    assert_eq!(answer["errors"], true);
                    let item = answer["items"][0]
                        .as_object()
                        .and_then(|item| item.values().next())
                        .cloned()
                        .unwrap_or_default();
                    assert_eq!(item["status"], 400, "{case}: {item}");
                    let kind = item["error"]["type"].as_str().unwrap_or_default();
                    assert!(ES_PARSE_TYPES.contains(&kind), "{case}: {item}");
                }
            }
            server.assert_alive(&case);
            cases += 1;
        }
    }
    assert!(cases >= ROUTES.len(), "every route was tried");
}

/// Sends the AWS cases of each format of each endpoint, with one QLDB session for them all.
struct AwsCases<'a> {
    server: &'a mut Server,
    session: Option<(String, String)>,
}

impl AwsCases<'_> {
    fn json_service(&mut self, target: &str, format: Format) {
        let content_type = if target.starts_with("QLDBSession") {
            "application/x-amz-json-1.0"
        } else {
            "application/x-amz-json-1.1"
        };
        let headers = [("Content-Type", content_type), ("X-Amz-Target", target)];
        match format {
            Format::Json => {
                let body = format!(r#"{{"a":{}}}"#, deep_json(JSON_DEPTH));
                let reply = self.server.aws("POST", "/", &headers, body.as_bytes());
                assert_aws_error(&reply, 400, "SerializationException", target);
            }
            Format::IonParameters => {
                let (session, transaction) = self.session();
                let deep_binary =
                    base64::engine::general_purpose::STANDARD.encode(deep_ion_binary(ION_DEPTH));
                for holder in [
                    json!({"IonText": deep_ion_text(ION_DEPTH)}),
                    json!({"IonBinary": deep_binary}),
                ] {
                    let command = json!({"SessionToken": session, "ExecuteStatement": {
                        "TransactionId": transaction, "Statement": "INSERT INTO T ?",
                        "Parameters": [holder]}});
                    let reply =
                        self.server
                            .aws("POST", "/", &headers, command.to_string().as_bytes());
                    assert_aws_error(&reply, 400, "BadRequestException", target);
                }
            }
            Format::IonTextMember(_) | Format::IonExportDirectory(_) => {
                panic!("{target}: a JSON service reads no {format:?}")
            }
        }
    }

    /// A session and an open transaction on ledger `deep`, which has a table `T`.
    fn session(&mut self) -> (String, String) {
        if let Some(session) = &self.session {
            return session.clone();
        }
        self.server.cli_ok(&["ledger", "create", "deep"]);
        self.server
            .cli_ok(&["sql", "--ledger", "deep", "CREATE TABLE T"]);
        let send = |command: Value| {
            let reply = self.server.aws(
                "POST",
                "/",
                &[
                    ("Content-Type", "application/x-amz-json-1.0"),
                    ("X-Amz-Target", "QLDBSession.SendCommand"),
                ],
                command.to_string().as_bytes(),
            );
            assert_eq!(
                reply.status,
                200,
                "{}",
                String::from_utf8_lossy(&reply.body)
            );
            reply.json()
        };
        let started = send(json!({"StartSession": {"LedgerName": "deep"}}));
        let token = started["StartSession"]["SessionToken"]
            .as_str()
            .expect("token")
            .to_owned();
        let transaction = send(json!({"SessionToken": token, "StartTransaction": {}}));
        let transaction = transaction["StartTransaction"]["TransactionId"]
            .as_str()
            .expect("transaction")
            .to_owned();
        self.session = Some((token, transaction));
        self.session()
    }

    fn rest_route(&mut self, method: &str, template: &str, format: Format) {
        // A ledger that does not exist: every input is read before the ledger is looked up.
        let path = template
            .replace("{name}", "fresh")
            .replace("{export_id}", "none");
        let case = format!("{method} {path} {format:?}");
        match format {
            Format::Json => {
                let body = format!(r#"{{"a":{}}}"#, deep_json(JSON_DEPTH));
                let reply = self.server.aws(method, &path, JSON, body.as_bytes());
                // Lambda's Invoke reads any JSON payload and names a bad one its own way.
                let kind = if path.ends_with("/invocations") {
                    "InvalidRequestContentException"
                } else {
                    "SerializationException"
                };
                assert_aws_error(&reply, 400, kind, &case);
            }
            Format::IonTextMember(member) => {
                let valid = json!({"IonText": "{strandId:\"x\",sequenceNo:0}"});
                let mut body = json!({"BlockAddress": valid, "DocumentId": "x"});
                body[member] = json!({"IonText": deep_ion_text(ION_DEPTH)});
                let reply = self
                    .server
                    .aws(method, &path, JSON, body.to_string().as_bytes());
                assert_aws_error(&reply, 400, "InvalidParameterException", &case);
            }
            Format::IonExportDirectory(member) => {
                let depth = 10 * BLOCK_DEPTH_MAX;
                let deep_text = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
                // Under the server's own S3 root, where exports live.
                let root = self.server.data_dir.join("s3/deep-exports");
                let cases: [(&str, &str, Vec<u8>); 3] = [
                    ("text", "block.ion", deep_text.clone().into_bytes()),
                    ("binary", "block.ion", deep_ion_binary(depth)),
                    (
                        "manifest",
                        "x.completed.manifest",
                        format!("{{keys: {deep_text}}}").into_bytes(),
                    ),
                ];
                for (directory, file, bytes) in cases {
                    let directory = root.join(directory);
                    std::fs::create_dir_all(&directory).expect("create export dir");
                    std::fs::write(directory.join(file), bytes).expect("write export file");
                    let mut body = json!({});
                    body[member] = json!(directory.to_str().expect("utf-8 path"));
                    let reply = self
                        .server
                        .aws(method, &path, JSON, body.to_string().as_bytes());
                    assert_aws_error(&reply, 400, "InvalidParameterException", &case);
                }
            }
            Format::IonParameters => panic!("{case}: a REST route reads no statement parameters"),
        }
    }
}

#[test]
fn every_aws_operation_and_route_refuses_deep_input_and_the_server_keeps_answering() {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(data_dir.path());
    let mut cases = AwsCases {
        server: &mut server,
        session: None,
    };
    let mut tried = Vec::new();
    for service in CATALOG {
        match service {
            ServiceRoutes::Json {
                target_prefix,
                operations,
            } => {
                for operation in *operations {
                    let target = format!("{target_prefix}.{}", operation.name);
                    for format in operation.formats {
                        cases.json_service(&target, *format);
                        cases.server.assert_alive(&format!("{target} {format:?}"));
                        tried.push(format!("{target} {format:?}"));
                    }
                }
            }
            ServiceRoutes::Rest { routes } => {
                for route in *routes {
                    for format in route.formats {
                        cases.rest_route(route.method, route.path, *format);
                        let case = format!("{} {} {format:?}", route.method, route.path);
                        cases.server.assert_alive(&case);
                        tried.push(case);
                    }
                }
            }
        }
    }
    for expected in [
        "QLDBSession.SendCommand IonParameters",
        "POST /ledgers/{name}/block IonTextMember(\"DigestTipAddress\")",
        "POST /ledgers/{name}/restore IonExportDirectory(\"ExportDirectory\")",
        "Kinesis_20131202.PutRecords Json",
    ] {
        assert!(
            tried.iter().any(|case| case == expected),
            "{expected} in {tried:?}"
        );
    }
}

#[test]
fn partiql_nesting_through_the_wire_is_a_bad_request() {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(data_dir.path());
    server.cli_ok(&["ledger", "create", "statements"]);
    server.cli_ok(&["sql", "--ledger", "statements", "CREATE TABLE T"]);
    // A row, so that the WHERE clause's Ion literal is evaluated.
    server.cli_ok(&["sql", "--ledger", "statements", "INSERT INTO T {'a': 1}"]);
    let depth = 10 * sluice_partiql::NESTING_DEPTH_MAX as usize;
    let nested_parentheses = format!("SELECT {}1{} FROM T", "(".repeat(depth), ")".repeat(depth));
    let nested_lists = format!("SELECT {}1{} FROM T", "[".repeat(depth), "]".repeat(depth));
    let ion_literal = format!("SELECT * FROM T WHERE a = `{}`", deep_ion_text(ION_DEPTH));
    for statement in [nested_parentheses, nested_lists, ion_literal] {
        let output = server.cli(&["sql", "--ledger", "statements", &statement]);
        assert!(!output.status.success());
        assert_eq!(output.status.code(), Some(1), "an error, not a crash");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("BadRequestException"), "{stderr}");
        server.assert_alive("a deep statement");
    }
}

#[test]
fn the_cli_refuses_deep_parameters_without_crashing_and_reads_values_at_the_limit() {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(data_dir.path());
    server.cli_ok(&["ledger", "create", "cli"]);
    server.cli_ok(&["sql", "--ledger", "cli", "CREATE TABLE T"]);
    let too_deep = deep_ion_text(ION_DEPTH);
    let output = server.cli(&["sql", "--ledger", "cli", "INSERT INTO T ?", &too_deep]);
    assert_eq!(output.status.code(), Some(1), "an error, not a crash");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("parameter 1 is not accepted")
            && stderr.contains(&format!("nested deeper than {ION_DEPTH_MAX} levels")),
        "{stderr}"
    );

    let at_limit = deep_ion_text(ION_DEPTH_MAX);
    server.cli_ok(&["sql", "--ledger", "cli", "INSERT INTO T ?", &at_limit]);
    let printed = server.cli_ok(&[
        "sql",
        "--ledger",
        "cli",
        "--format",
        "ion",
        "SELECT * FROM T",
    ]);
    let printed = printed.replace(char::is_whitespace, "");
    assert_eq!(printed, at_limit.replace(char::is_whitespace, ""));
    let verified = server.cli_ok(&["ledger", "verify", "cli"]);
    assert!(verified.starts_with("verified 2 blocks"), "{verified}");
    server.assert_alive("a document at the limit");
}

/// `depth` JSON objects nested as `{"a":{"a":…1…}}`.
fn deep_json(depth: usize) -> String {
    format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth))
}

/// `depth` Ion structs nested as `{a:{a:…1…}}`.
fn deep_ion_text(depth: usize) -> String {
    format!("{}1{}", "{a:".repeat(depth), "}".repeat(depth))
}

/// Ion binary of `depth` nested lists around the int 1, built from the inside out.
fn deep_ion_binary(depth: usize) -> Vec<u8> {
    let mut value = vec![0x21, 0x01];
    for _ in 0..depth {
        let mut groups = Vec::new();
        let mut length = value.len();
        loop {
            groups.push((length & 0x7F) as u8);
            length >>= 7;
            if length == 0 {
                break;
            }
        }
        groups.reverse();
        if let Some(last) = groups.last_mut() {
            *last |= 0x80;
        }
        let mut wrapped = vec![0xBE];
        wrapped.extend(groups);
        wrapped.extend_from_slice(&value);
        value = wrapped;
    }
    let mut stream = vec![0xE0, 0x01, 0x00, 0xEA];
    stream.extend(value);
    stream
}
