//! Writes the format-version fixture of `tests/compatibility.rs` into the directory given as the
//! first argument. Run once per format version (and per journal version: `tests/fixtures/journal-v4`)
//! and commit the files under `tests/fixtures/`:
//! `cargo run -p sluice-ledger --example write_format_fixture -- crates/ledger/tests/fixtures/format-v<N>`

use std::sync::Arc;

use sluice_ledger::{ExportFormat, Ledgers, Limits, ManualClock};
use time::macros::datetime;

fn main() {
    let Some(target) = std::env::args().nth(1) else {
        eprintln!("usage: write_format_fixture <directory>");
        std::process::exit(2);
    };
    let target = std::path::PathBuf::from(target);
    let clock = Arc::new(ManualClock::new(datetime!(2024-01-02 03:04:05.678 UTC)));
    let ledgers =
        Ledgers::open_dir(target.join("ledgers"), clock.clone(), Limits::default()).unwrap();
    let name = format!("fixture-v{}", sluice_ledger::storage::FORMAT_VERSION);
    let ledger = ledgers.create_ledger(&name, true).unwrap();
    for statement in [
        "CREATE TABLE Vehicle",
        "CREATE INDEX ON Vehicle (VIN)",
        "INSERT INTO Vehicle << {'VIN': 'V1', 'Price': 1.50}, {'VIN': 'V2', 'Owners': [{'Name': 'Ann'}]} >>",
        "UPDATE Vehicle SET Price = 2 WHERE VIN = 'V1'",
        "DELETE FROM Vehicle WHERE VIN = 'V2'",
    ] {
        ledger.execute(statement, &[]).unwrap();
        clock.advance_ms(1000);
    }
    let export = ledger
        .export_journal(
            &target.join("export"),
            ExportFormat::IonText,
            None,
            None,
            &sluice_ledger::CancelToken::new(),
        )
        .unwrap();
    let digest = ledger.digest().unwrap().unwrap();
    std::fs::write(
        target.join("digest.txt"),
        format!(
            "{}\n{}\n{}\n",
            sluice_ledger::hash::to_base64(&digest.digest),
            digest.digest_tip_address.to_ion_text(),
            export.directory.strip_prefix(&target).unwrap().display()
        ),
    )
    .unwrap();
}
