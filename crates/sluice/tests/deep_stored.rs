//! Deep values already stored stay readable: a document nested to the Ion depth limit, the
//! deepest earlier releases could store, is written with the engine API, then read, queried,
//! hashed, verified, exported and restored through the real server and CLI, whose threads have
//! stacks sized for it.

mod util;

use std::sync::Arc;

use ion_rs::Element;
use serde_json::json;
use sluice_ledger::ion_read::{self, ION_DEPTH_MAX};
use sluice_ledger::{Ledgers, Limits, SystemClock};
use util::*;

/// A document of structs and lists alternating, nested `depth` levels.
fn deep_document(depth: usize) -> String {
    let mut open = String::new();
    let mut close = String::new();
    for level in 1..depth {
        if level % 2 == 1 {
            open.push_str("{a:");
            close.insert(0, '}');
        } else {
            open.push('[');
            close.insert(0, ']');
        }
    }
    format!("{open}{{b: \"x\"}}{close}")
}

/// Reads Ion text of the given depth on a thread with a stack large enough for it.
fn read_deep(text: String) -> Vec<Element> {
    std::thread::Builder::new()
        .stack_size(256 * 1024 * 1024)
        .spawn(move || {
            ion_read::read_all(text.as_bytes(), ion_read::RESULT_DEPTH_MAX)
                .expect("ion")
                .into_iter()
                .collect::<Vec<_>>()
        })
        .expect("spawn")
        .join()
        .expect("read thread")
}

#[test]
fn a_deep_stored_document_is_read_hashed_exported_and_restored_through_the_server() {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let document = deep_document(ION_DEPTH_MAX);
    let ledgers_dir = data_dir.path().join("ledgers");
    let stored = document.clone();
    std::thread::Builder::new()
        .stack_size(256 * 1024 * 1024)
        .spawn(move || {
            let ledgers = Ledgers::open_dir(&ledgers_dir, Arc::new(SystemClock), Limits::default())
                .expect("open ledgers");
            let ledger = ledgers.create_ledger("legacy", false).expect("create");
            ledger.execute("CREATE TABLE T", &[]).expect("table");
            let value = ion_read::read_one(stored.as_bytes(), ION_DEPTH_MAX).expect("document");
            assert_eq!(ion_read::element_depth(&value), ION_DEPTH_MAX);
            ledger.execute("INSERT INTO T ?", &[value]).expect("insert");
        })
        .expect("spawn")
        .join()
        .expect("the engine thread");

    let mut server = Server::start(data_dir.path());
    let expected = read_deep(document.clone());

    // Read through QLDBSession, as a query and in the committed view.
    let read = server.cli_ok(&[
        "sql",
        "--ledger",
        "legacy",
        "--format",
        "ion",
        "SELECT * FROM T",
    ]);
    assert_eq!(read_deep(read), expected);
    // The statement nests the document deeper still: results may pass the input limit.
    let wrapped = format!(
        "SELECT VALUE {}t{} FROM T AS t",
        "[".repeat(100),
        "]".repeat(100)
    );
    let read = server.cli_ok(&["sql", "--ledger", "legacy", "--format", "ion", &wrapped]);
    assert_eq!(
        ion_read::element_depth(&read_deep(read)[0]),
        ION_DEPTH_MAX + 100
    );
    let parameter = document.clone();
    let matched = server.cli_ok(&[
        "sql",
        "--ledger",
        "legacy",
        "SELECT COUNT(*) AS n FROM T AS t WHERE t = ?",
        &parameter,
    ]);
    assert!(matched.contains('1'), "{matched}");
    for format in ["table", "json"] {
        let printed = server.cli_ok(&[
            "sql",
            "--ledger",
            "legacy",
            "--format",
            format,
            "SELECT * FROM T",
        ]);
        assert!(
            printed.contains(r#""b""#) || printed.contains("b:"),
            "{format}"
        );
    }
    let committed = server.cli_ok(&[
        "sql",
        "--ledger",
        "legacy",
        "--format",
        "ion",
        "SELECT * FROM _ql_committed_T",
    ]);
    let committed = read_deep(committed);
    let revision = committed[0].as_struct().expect("a committed view");
    let block_address = revision.get("blockAddress").expect("blockAddress");
    let document_id = revision
        .get("metadata")
        .and_then(Element::as_struct)
        .and_then(|metadata| metadata.get("id"))
        .and_then(Element::as_text)
        .expect("document id")
        .to_owned();

    // GetRevision and GetBlock return it with a proof; `verify` re-hashes every block.
    let tip = server.cli_ok(&["ledger", "digest", "legacy"]);
    let tip = tip
        .lines()
        .find_map(|line| line.strip_prefix("tip: "))
        .expect("tip")
        .to_owned();
    let address = sluice_ledger::model::encode_text(block_address).expect("address");
    for (path, extra) in [
        ("revision", json!({"DocumentId": document_id})),
        ("block", json!({})),
    ] {
        let mut body =
            json!({"BlockAddress": {"IonText": address}, "DigestTipAddress": {"IonText": tip}});
        if let Some(id) = extra.get("DocumentId") {
            body["DocumentId"] = id.clone();
        }
        let reply = server.aws(
            "POST",
            &format!("/ledgers/legacy/{path}"),
            JSON,
            body.to_string().as_bytes(),
        );
        assert_eq!(
            reply.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        assert!(
            reply.json()["Proof"]["IonText"].is_string(),
            "{path} has a proof"
        );
    }
    let verified = server.cli_ok(&["ledger", "verify", "legacy"]);
    assert!(verified.starts_with("verified 2 blocks"), "{verified}");

    // Exported in every format, and restored from Ion with the same digest.
    for format in ["ION_TEXT", "ION_BINARY", "JSON"] {
        let directory = server.cli_ok(&["ledger", "export", "legacy", "--format", format]);
        if format == "JSON" {
            continue;
        }
        let name = format!("restored-{}", format.to_lowercase().replace('_', "-"));
        server.cli_ok(&["ledger", "restore", &name, "--from", directory.trim()]);
        let digest = |ledger: &str| server.cli_ok(&["ledger", "digest", ledger]);
        assert_eq!(digest(&name), digest("legacy"));
        let read = server.cli_ok(&[
            "sql",
            "--ledger",
            &name,
            "--format",
            "ion",
            "SELECT * FROM T",
        ]);
        assert_eq!(read_deep(read), expected);
    }
    server.assert_alive("reading a deep stored document");
}
