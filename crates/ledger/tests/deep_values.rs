//! Nesting limits in the engine: a document nested to `ION_DEPTH_MAX` is stored, read, queried,
//! hashed, verified, exported and restored; deeper ones are refused whichever way they are
//! built (a parameter, a statement wrapping a document in itself, an Ion literal, a cast, an
//! import file), with errors and never a stack overflow.

mod common;

use common::*;
use ion_rs::Element;
use sluice_ledger::ion_read::{self, BLOCK_DEPTH_MAX, ION_DEPTH_MAX};
use sluice_ledger::{CancelToken, ExportFormat, ExportLocation, LedgerError};

/// The stack `sluice up` gives its request threads; the engine runs on them.
const SERVER_STACK_BYTES: usize = 32 * 1024 * 1024;

fn on_server_stack(test: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(SERVER_STACK_BYTES)
        .spawn(test)
        .expect("spawn")
        .join()
        .expect("the test thread panicked");
}

/// A struct nesting `{a: …}` `depth` levels, around a list of a string.
fn deep_document(depth: usize) -> Element {
    let text = format!(
        "{}[\"x\"]{}",
        "{a:".repeat(depth - 1),
        "}".repeat(depth - 1)
    );
    ion_read::read_one(text.as_bytes(), depth).expect("deep document")
}

#[test]
fn a_document_at_the_limit_is_stored_read_hashed_exported_and_restored() {
    on_server_stack(|| {
        let fixture = Fixture::new();
        let ledger = fixture.ledger("deep");
        run(&ledger, "CREATE TABLE T");
        let document = deep_document(ION_DEPTH_MAX);
        assert_eq!(ion_read::element_depth(&document), ION_DEPTH_MAX);
        ledger
            .execute("INSERT INTO T ?", std::slice::from_ref(&document))
            .expect("insert at the limit");

        let read = run(&ledger, "SELECT * FROM T");
        assert_eq!(read, vec![document.clone()]);
        let matched = run(&ledger, "SELECT VALUE t FROM T AS t WHERE t = t");
        assert_eq!(matched.len(), 1);
        let committed = run(&ledger, "SELECT * FROM _ql_committed_T");
        assert_eq!(committed.len(), 1);
        let revision = sluice_ledger::Revision::from_element(&committed[0]).expect("revision");
        assert_eq!(revision.compute_hash().expect("hash"), revision.hash);
        ledger.verify_chain(|_, _| {}).expect("chain verifies");

        for format in [ExportFormat::IonText, ExportFormat::IonBinary] {
            let export = ledger
                .export_journal(
                    &fixture.dir.path().join("s3"),
                    format,
                    None,
                    None,
                    &CancelToken::new(),
                )
                .expect("export");
            let name = format!("restored-{format:?}").to_lowercase();
            let restored = fixture
                .ledgers
                .restore_ledger(
                    &name,
                    &ExportLocation::trusted_directory(&export.directory),
                    &CancelToken::new(),
                )
                .expect("restore");
            assert_eq!(
                restored.digest().expect("digest").map(|d| d.digest),
                ledger.digest().expect("digest").map(|d| d.digest)
            );
            assert_eq!(run(&restored, "SELECT * FROM T"), vec![document.clone()]);
        }
    });
}

#[test]
fn deeper_documents_are_refused_however_they_are_built() {
    on_server_stack(|| {
        let fixture = Fixture::new();
        let ledger = fixture.ledger("deeper");
        run(&ledger, "CREATE TABLE T");
        // A parameter at the limit, wrapped once more by the statement.
        let error = ledger
            .execute("INSERT INTO T {'b': ?}", &[deep_document(ION_DEPTH_MAX)])
            .expect_err("one level too deep");
        assert!(
            matches!(&error, LedgerError::LimitExceeded(message) if message.contains("nested deeper")),
            "{error}"
        );
        // A document wrapped in itself, statement after statement, stops at the limit.
        ledger
            .execute("INSERT INTO T ?", &[deep_document(ION_DEPTH_MAX - 2)])
            .expect("insert");
        let mut wraps = 0;
        let error = loop {
            match ledger.execute("UPDATE T AS t SET t.a = t", &[]) {
                Ok(_) => wraps += 1,
                Err(error) => break error,
            }
            assert!(wraps <= 3, "wrapping never stopped");
        };
        assert!(matches!(error, LedgerError::LimitExceeded(_)), "{error}");
        assert_eq!(wraps, 2, "the document reached the limit, no further");
        let stored = run(&ledger, "SELECT * FROM T");
        assert_eq!(ion_read::element_depth(&stored[0]), ION_DEPTH_MAX);
    });
}

#[test]
fn ion_in_statements_is_bounded_like_parameters() {
    // On an ordinary 2 MiB test thread: these are refused before anything recurses.
    let fixture = Fixture::new();
    let ledger = fixture.ledger("literals");
    run(&ledger, "CREATE TABLE T");
    let depth = 10 * ION_DEPTH_MAX;
    let deep_text = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    let statements = [
        format!("SELECT * FROM T WHERE x = `{deep_text}`"),
        format!("SELECT CAST('{deep_text}' AS TIMESTAMP) FROM T"),
        format!("SELECT CAST('{deep_text}' AS DECIMAL) FROM T"),
        format!("SELECT to_timestamp('{deep_text}') FROM T"),
    ];
    run(&ledger, "INSERT INTO T {'x': 1}");
    for statement in statements {
        let error = ledger.execute(&statement, &[]).expect_err("refused");
        assert!(matches!(error, LedgerError::BadRequest(_)), "{error}");
    }
}

#[test]
fn import_files_nested_too_deeply_are_bad_requests() {
    let fixture = Fixture::new();
    let directory = fixture.dir.path().join("hostile");
    let depth = 10 * BLOCK_DEPTH_MAX;
    let deep_text = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    std::fs::create_dir_all(&directory).expect("dir");
    for bytes in [deep_text.clone().into_bytes(), nested_binary_lists(depth)] {
        std::fs::write(directory.join("block.ion"), &bytes).expect("write");
        let error = fixture
            .ledgers
            .restore_ledger(
                "restored",
                &ExportLocation::trusted_directory(&directory),
                &CancelToken::new(),
            )
            .expect_err("refused");
        assert!(
            matches!(&error, LedgerError::BadRequest(message) if message.contains("nested deeper")),
            "{error}"
        );
    }
    std::fs::write(
        directory.join("x.completed.manifest"),
        format!("{{keys: {deep_text}}}"),
    )
    .expect("write manifest");
    let error = fixture
        .ledgers
        .import_qldb_export(
            "imported",
            &ExportLocation::trusted_directory(&directory),
            &CancelToken::new(),
        )
        .expect_err("refused");
    assert!(
        matches!(&error, LedgerError::BadRequest(message) if message.contains("nested deeper")),
        "{error}"
    );
}
