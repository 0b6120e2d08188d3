//! Encrypted ledgers: a ledger created with a keyring seals its journal's blocks and keeps
//! keyed hashes, not values, in its index entries, so neither file holds a document's content;
//! it reopens with the keyring only, and its indexes still find documents by value.

mod common;

use std::sync::Arc;

use common::{ion, run};
use sluice_ledger::{Ledgers, Limits, ManualClock};
use sluice_seal::{Keyring, MasterKey};
use time::macros::datetime;

fn keyring(dir: &std::path::Path) -> Arc<Keyring> {
    let master = MasterKey::parse(&"7b".repeat(32)).unwrap();
    Arc::new(Keyring::open_or_create(&dir.join("security"), master).unwrap())
}

fn open(dir: &std::path::Path, keyring: Option<Arc<Keyring>>) -> Ledgers {
    let clock = Arc::new(ManualClock::new(datetime!(2024-01-02 03:04:05.678 UTC)));
    Ledgers::open_dir(dir.join("ledgers"), clock, Limits::default())
        .unwrap()
        .with_keyring(keyring)
}

fn files_contain(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.join("ledgers")];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if std::fs::read(&path)
            .unwrap()
            .windows(needle.len())
            .any(|w| w == needle)
        {
            found.push(path.display().to_string());
        }
    }
    found
}

#[test]
fn an_encrypted_ledger_holds_no_document_content_and_needs_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keyring(dir.path());
    let ledgers = open(dir.path(), Some(keys.clone()));
    let ledger = ledgers.create_ledger("cars", true).unwrap();
    run(&ledger, "CREATE TABLE Vehicle");
    run(&ledger, "CREATE INDEX ON Vehicle (VIN)");
    run(
        &ledger,
        "INSERT INTO Vehicle VALUE {'VIN': 'SECRETVIN1', 'Owner': 'SECRETOWNER'}",
    );
    run(
        &ledger,
        "INSERT INTO Vehicle VALUE {'VIN': 'SECRETVIN2', 'Owner': 'SECRETOWNER'}",
    );
    run(
        &ledger,
        "UPDATE Vehicle SET Owner = 'SECRETBUYER' WHERE VIN = 'SECRETVIN2'",
    );
    drop(ledger);
    drop(ledgers);
    assert_eq!(files_contain(dir.path(), b"SECRET"), Vec::<String>::new());

    // Reopened with the keyring, the index finds documents by value.
    let ledgers = open(dir.path(), Some(keys));
    let ledger = ledgers.ledger("cars").unwrap();
    let found = run(
        &ledger,
        "SELECT Owner FROM Vehicle WHERE VIN = 'SECRETVIN2'",
    );
    assert_eq!(found, vec![ion("{Owner: \"SECRETBUYER\"}")]);
    assert_eq!(
        run(&ledger, "SELECT VIN FROM Vehicle WHERE VIN = 'SECRETVIN1'").len(),
        1
    );
    assert!(ledger.verify_chain(|_, _| {}).is_ok());
    drop(ledger);
    drop(ledgers);

    // Without the keyring, or with another, it does not open.
    assert!(open(dir.path(), None).ledger("cars").is_err());
    let other = tempfile::tempdir().unwrap();
    assert!(
        open(dir.path(), Some(keyring(other.path())))
            .ledger("cars")
            .is_err()
    );
}
