//! Fuzzed credentials against the real binary with `--security`: random `Authorization` headers
//! (Basic, ApiKey, SigV4 and anything else), SigV4 fields (`x-amz-date`,
//! `x-amz-content-sha256`) and presigned query strings never crash the server and are always
//! refused in the client's own shape: 401 `security_exception` on the search port, an AWS
//! signature error on the AWS port (400 for the JSON protocols, 403 for REST).

mod util;

use base64::Engine as _;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use util::*;

/// The AWS error types a refused signature may carry.
const AWS_SIGNATURE_ERRORS: &[&str] = &[
    "MissingAuthenticationTokenException",
    "IncompleteSignatureException",
    "InvalidSignatureException",
    "UnrecognizedClientException",
    "AccessDeniedException",
];

/// Cases per property: each is one request to the debug binary.
const CASES: u32 = 96;

/// An `Authorization` value: a known scheme with random credentials, or random text.
fn authorization() -> impl Strategy<Value = String> {
    let printable = "[ -~]{0,120}";
    prop_oneof![
        printable.prop_map(|text| text),
        printable.prop_map(|text| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(text))),
        printable.prop_map(|text| format!("ApiKey {}", base64::engine::general_purpose::STANDARD.encode(text))),
        "[A-Za-z0-9_-]{0,24}:[A-Za-z0-9_-]{0,24}".prop_map(|text| format!(
            "ApiKey {}",
            base64::engine::general_purpose::STANDARD.encode(text)
        )),
        (
            "[A-Z0-9]{0,24}",
            "[0-9]{0,9}",
            "[a-z0-9-]{0,12}",
            "[a-z;-]{0,40}",
            "[0-9a-fA-F]{0,70}",
        )
            .prop_map(|(key, date, service, signed, signature)| format!(
                "AWS4-HMAC-SHA256 Credential={key}/{date}/us-east-1/{service}/aws4_request, SignedHeaders={signed}, Signature={signature}"
            )),
    ]
}

fn presigned_query() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        (
            prop_oneof![
                Just("X-Amz-Algorithm"),
                Just("X-Amz-Credential"),
                Just("X-Amz-Date"),
                Just("X-Amz-Expires"),
                Just("X-Amz-SignedHeaders"),
                Just("X-Amz-Signature"),
            ],
            "[A-Za-z0-9%/;._~-]{0,60}",
        ),
        0..7,
    )
    .prop_map(|fields| {
        let mut query = String::from("X-Amz-Algorithm=AWS4-HMAC-SHA256");
        for (name, value) in fields {
            query.push_str(&format!("&{name}={value}"));
        }
        query
    })
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    })
}

#[test]
fn random_credentials_are_refused_in_each_client_s_shape_and_never_crash_the_server() {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start_with(data_dir.path(), &["--security"]);

    runner()
        .run(&authorization(), |value| {
            let reply = server.es("GET", "/_search", &[("Authorization", &value)], b"");
            prop_assert_eq!(reply.status, 401, "{}: {}", value, reply.text());
            let body = reply.json();
            prop_assert_eq!(&body["error"]["type"], "security_exception");
            prop_assert!(body["error"]["header"]["WWW-Authenticate"].is_array());
            Ok(())
        })
        .expect("the search port");

    let sigv4 = (
        authorization(),
        "[0-9TZ]{0,18}",
        prop_oneof![Just("UNSIGNED-PAYLOAD".to_owned()), "[0-9a-zA-Z-]{0,64}"],
        any::<bool>(),
    );
    runner()
        .run(&sigv4, |(value, date, content, json)| {
            let mut headers = vec![
                ("Authorization", value.as_str()),
                ("X-Amz-Date", date.as_str()),
                ("X-Amz-Content-Sha256", content.as_str()),
            ];
            let reply = if json {
                headers.push(("X-Amz-Target", "Kinesis_20131202.ListStreams"));
                headers.push(("Content-Type", "application/x-amz-json-1.1"));
                server.aws("POST", "/", &headers, b"{}")
            } else {
                server.aws("GET", "/ledgers", &headers, b"")
            };
            prop_assert_eq!(
                reply.status,
                if json { 400 } else { 403 },
                "{}",
                reply.text()
            );
            let kind = reply.json()["__type"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            prop_assert!(AWS_SIGNATURE_ERRORS.contains(&kind.as_str()), "{}", kind);
            Ok(())
        })
        .expect("SigV4 headers on the AWS port");

    runner()
        .run(&presigned_query(), |query| {
            let reply = server.aws("GET", &format!("/ledgers?{query}"), &[], b"");
            prop_assert_eq!(reply.status, 403, "{}: {}", query, reply.text());
            let kind = reply.json()["__type"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            prop_assert!(AWS_SIGNATURE_ERRORS.contains(&kind.as_str()), "{}", kind);
            Ok(())
        })
        .expect("presigned URLs on the AWS port");

    // Still serving, and still refusing.
    assert_eq!(server.es("GET", "/", &[], b"").status, 401);
    assert_eq!(server.aws("GET", "/ledgers", &[], b"").status, 403);
    server.stop();
}
