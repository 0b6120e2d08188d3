//! Backward compatibility: the ledger file and the journal export written by format version 1
//! (`tests/fixtures/format-v1`, made by `fixture_writer.rs`) are read by this build.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::*;
use sluice_ledger::{BlockAddress, CancelToken, ExportLocation, Ledgers, Limits, SystemClock};

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format-v1")
}

fn recorded() -> (String, BlockAddress, PathBuf) {
    let text = std::fs::read_to_string(fixture_dir().join("digest.txt")).unwrap();
    let mut lines = text.lines();
    let digest = lines.next().unwrap().to_owned();
    let tip = BlockAddress::parse_ion_text(lines.next().unwrap()).unwrap();
    let export = fixture_dir().join(lines.next().unwrap());
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
