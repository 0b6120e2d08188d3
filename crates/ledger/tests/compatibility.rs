//! Backward compatibility: the ledgers and journal exports written by format versions 1 and 2
//! (`tests/fixtures/format-v<N>`, made by `examples/write_format_fixture.rs`), and a format 2
//! ledger with a version 4 (compressed) journal (`tests/fixtures/journal-v4`), are read by this
//! build; a format-1 ledger file is migrated to format 2 on open, keeping its digest.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::*;
use sluice_ledger::{BlockAddress, CancelToken, ExportLocation, Ledgers, Limits, SystemClock};

fn fixture_dir_of(version: u32) -> PathBuf {
    fixture_named(&format!("format-v{version}"))
}

fn fixture_named(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn fixture_dir() -> PathBuf {
    fixture_dir_of(1)
}

fn recorded() -> (String, BlockAddress, PathBuf) {
    recorded_of(1)
}

fn recorded_of(version: u32) -> (String, BlockAddress, PathBuf) {
    recorded_in(&fixture_dir_of(version))
}

fn recorded_in(fixture_dir: &std::path::Path) -> (String, BlockAddress, PathBuf) {
    let text = std::fs::read_to_string(fixture_dir.join("digest.txt")).unwrap();
    let mut lines = text.lines();
    let digest = lines.next().unwrap().to_owned();
    let tip = BlockAddress::parse_ion_text(lines.next().unwrap()).unwrap();
    let export = fixture_dir.join(lines.next().unwrap());
    (digest, tip, export)
}

#[test]
fn format_v1_ledger_file_opens_verifies_and_queries() {
    let (digest, tip, _) = recorded();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture_dir().join("ledgers/fixture-v1.ledger.redb"),
        dir.path().join("fixture-v1.ledger.redb"),
    )
    .unwrap();
    let ledgers = Ledgers::open_dir(dir.path(), Arc::new(SystemClock), Limits::default()).unwrap();
    let ledger = ledgers.ledger("fixture-v1").unwrap();
    // Migrated on open: the format-2 directory replaced the format-1 file.
    assert!(dir.path().join("fixture-v1.ledger/journal").is_file());
    assert!(!dir.path().join("fixture-v1.ledger.redb").exists());
    assert_eq!(ledgers.list_ledgers().unwrap(), ["fixture-v1"]);
    let report = ledger.verify_chain(|_, _| {}).unwrap();
    let current = report.digest.unwrap();
    assert_eq!(sluice_ledger::hash::to_base64(&current.digest), digest);
    assert_eq!(current.digest_tip_address, tip);
    assert_bag_eq(
        &run(&ledger, "SELECT VIN, Price FROM Vehicle"),
        "{VIN: \"V1\", Price: 2}",
    );
    assert_eq!(run(&ledger, "SELECT * FROM history(Vehicle)").len(), 4);
    // The index of format 1 still answers, and the ledger accepts new commits.
    run(&ledger, "INSERT INTO Vehicle VALUE {'VIN': 'V3'}");
    assert_eq!(
        run(&ledger, "SELECT * FROM Vehicle WHERE VIN = 'V3'").len(),
        1
    );
}

#[test]
fn format_v1_export_restores_to_the_recorded_digest() {
    let (digest, tip, export) = recorded();
    let fixture = Fixture::new();
    let restored = fixture
        .ledgers
        .restore_ledger(
            "restored",
            &ExportLocation::trusted_directory(&export),
            &CancelToken::new(),
        )
        .unwrap();
    let current = restored.digest().unwrap().unwrap();
    assert_eq!(sluice_ledger::hash::to_base64(&current.digest), digest);
    assert_eq!(current.digest_tip_address, tip);
}

fn copy_directory(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn format_v2_ledger_opens_verifies_and_queries() {
    format_v2_ledger_in_opens_verifies_and_queries(&fixture_dir_of(2), 2);
}

#[test]
fn format_v2_ledger_with_a_compressed_journal_opens_verifies_and_queries() {
    format_v2_ledger_in_opens_verifies_and_queries(&fixture_named("journal-v4"), 4);
}

fn format_v2_ledger_in_opens_verifies_and_queries(fixture: &std::path::Path, journal_version: u8) {
    let (digest, tip, _) = recorded_in(fixture);
    let dir = tempfile::tempdir().unwrap();
    copy_directory(
        &fixture.join("ledgers/fixture-v2.ledger"),
        &dir.path().join("fixture-v2.ledger"),
    );
    let journal = std::fs::read(dir.path().join("fixture-v2.ledger/journal")).unwrap();
    assert_eq!(journal[8], journal_version);
    let ledgers = Ledgers::open_dir(dir.path(), Arc::new(SystemClock), Limits::default()).unwrap();
    let ledger = ledgers.ledger("fixture-v2").unwrap();
    let current = ledger.verify_chain(|_, _| {}).unwrap().digest.unwrap();
    assert_eq!(sluice_ledger::hash::to_base64(&current.digest), digest);
    assert_eq!(current.digest_tip_address, tip);
    assert_bag_eq(
        &run(&ledger, "SELECT VIN, Price FROM Vehicle WHERE VIN = 'V1'"),
        "{VIN: \"V1\", Price: 2}",
    );
    assert_eq!(run(&ledger, "SELECT * FROM history(Vehicle)").len(), 4);
    run(&ledger, "INSERT INTO Vehicle VALUE {'VIN': 'V3'}");
    ledger.verify_chain(|_, _| {}).unwrap();
}

#[test]
fn format_v2_export_restores_to_the_recorded_digest() {
    let (digest, tip, export) = recorded_of(2);
    let fixture = Fixture::new();
    let restored = fixture
        .ledgers
        .restore_ledger(
            "restored",
            &ExportLocation::trusted_directory(&export),
            &CancelToken::new(),
        )
        .unwrap();
    let current = restored.digest().unwrap().unwrap();
    assert_eq!(sluice_ledger::hash::to_base64(&current.digest), digest);
    assert_eq!(current.digest_tip_address, tip);
}

#[test]
fn a_migration_interrupted_before_removing_the_old_file_finishes_on_open() {
    let (digest, _, _) = recorded();
    let dir = tempfile::tempdir().unwrap();
    let v1_file = fixture_dir().join("ledgers/fixture-v1.ledger.redb");
    std::fs::copy(&v1_file, dir.path().join("fixture-v1.ledger.redb")).unwrap();
    {
        let ledgers =
            Ledgers::open_dir(dir.path(), Arc::new(SystemClock), Limits::default()).unwrap();
        ledgers.ledger("fixture-v1").unwrap();
    }
    // A crash after the rename and before the removal leaves both.
    std::fs::copy(&v1_file, dir.path().join("fixture-v1.ledger.redb")).unwrap();
    let ledgers = Ledgers::open_dir(dir.path(), Arc::new(SystemClock), Limits::default()).unwrap();
    assert!(!dir.path().join("fixture-v1.ledger.redb").exists());
    let ledger = ledgers.ledger("fixture-v1").unwrap();
    let current = ledger.digest().unwrap().unwrap();
    assert_eq!(sluice_ledger::hash::to_base64(&current.digest), digest);
    // Deletion protection came along.
    assert!(ledger.describe().unwrap().deletion_protection);
}

#[test]
fn a_ledger_file_of_an_unknown_format_version_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.ledger.redb");
    {
        let database = redb::Database::create(&path).unwrap();
        let write = database.begin_write().unwrap();
        write
            .open_table(sluice_ledger::storage::META)
            .unwrap()
            .insert("format_version", b"9".as_slice())
            .unwrap();
        write.commit().unwrap();
    }
    let ledgers = Ledgers::open_dir(dir.path(), Arc::new(SystemClock), Limits::default()).unwrap();
    match ledgers.ledger("future") {
        Err(sluice_ledger::LedgerError::Storage(message)) => {
            assert!(message.contains("format version 9"), "{message}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(path.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "the failed migration left nothing behind"
    );
}
