//! Ledgers on disk: creation, deletion protection, documents, revisions and versions, the
//! committed view and history, and persistence across reopen.

mod common;

use common::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sluice_ledger::{LedgerError, PermissionsMode};

#[test]
fn ledger_deletion_is_refused_while_protected() {
    let fixture = Fixture::new();
    fixture.ledger("orders");
    assert!(matches!(
        fixture.ledgers.create_ledger("orders", true),
        Err(LedgerError::AlreadyExists(_))
    ));
    assert!(matches!(
        fixture.ledgers.delete_ledger("orders"),
        Err(LedgerError::PreconditionFailed(_))
    ));
    assert!(
        fixture
            .ledgers
            .describe_ledger("orders")
            .unwrap()
            .deletion_protection
    );
    fixture.ledgers.update_ledger("orders", false).unwrap();
    fixture.ledgers.delete_ledger("orders").unwrap();
    assert!(matches!(
        fixture.ledgers.ledger("orders"),
        Err(LedgerError::NotFound(_))
    ));
    assert!(fixture.ledgers.list_ledgers().unwrap().is_empty());
    assert!(matches!(
        fixture.ledgers.create_ledger("bad name!", true),
        Err(LedgerError::BadRequest(_))
    ));
}

#[test]
fn a_deleted_ledger_commits_nothing_for_the_handles_still_open() {
    let fixture = Fixture::new();
    let ledger = fixture.ledger("orders");
    run(&ledger, "CREATE TABLE Orders");
    fixture.ledgers.update_ledger("orders", false).unwrap();
    // A session's transaction, begun before the deletion and committed after it.
    let mut open = ledger.begin().unwrap();
    open.execute("INSERT INTO Orders ?", &[ion("{id: 1}")])
        .unwrap();
    fixture.ledgers.delete_ledger("orders").unwrap();
    assert!(matches!(open.commit(), Err(LedgerError::NotFound(_))));
    assert!(matches!(ledger.begin(), Err(LedgerError::NotFound(_))));
    // A ledger created again under the name starts empty.
    fixture.ledgers.create_ledger("orders", false).unwrap();
    let again = fixture.ledgers.ledger("orders").unwrap();
    assert!(matches!(
        again.execute("SELECT * FROM Orders", &[]),
        Err(LedgerError::NotFound(_))
    ));
}

/// Descriptors this process holds on files under `directory` (deleted files included).
fn open_files_under(directory: &std::path::Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.starts_with(directory))
        .count()
}

/// The last handle of a deleted ledger may be dropped by an async worker ending a session:
/// its files are gone, so it makes no checkpoint after the deletion (a durable redb commit),
/// the last one at close included, and it still closes every file. A ledger closed with its
/// node makes that last checkpoint.
#[test]
fn a_deleted_ledgers_last_handle_closes_its_files_without_a_last_checkpoint() {
    let mut fixture = Fixture::new();
    let mut counters = Vec::new();
    for name in ["kept", "doomed"] {
        let ledger = fixture.ledger(name);
        run(&ledger, "CREATE TABLE T");
        ledger.checkpoint().unwrap();
        run(&ledger, "INSERT INTO T << {'id': 1} >>");
        let counter = ledger.checkpoint_counter();
        if name == "kept" {
            counters.push((counter.load(Ordering::SeqCst), counter));
        } else {
            let directory = fixture.dir.path().join("ledgers").join("doomed.ledger");
            assert!(open_files_under(&directory) > 0);
            fixture.ledgers.update_ledger(name, false).unwrap();
            fixture.ledgers.delete_ledger(name).unwrap();
            // From the deletion on, no checkpoint (which a timer may start at any moment).
            counters.push((counter.load(Ordering::SeqCst), counter));
            drop(ledger);
            // Closed on a thread of its own: wait for it (a stuck close fails here).
            let waited = std::time::Instant::now();
            while open_files_under(&directory) > 0 {
                assert!(
                    waited.elapsed() < std::time::Duration::from_secs(60),
                    "the deleted ledger's files stay open"
                );
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
    // Closing the node closes "kept" with a last checkpoint.
    fixture.reopen();
    let made = |(before, counter): &(u64, Arc<AtomicU64>)| counter.load(Ordering::SeqCst) - before;
    assert!(made(&counters[0]) >= 1, "the kept ledger's last checkpoint");
    assert_eq!(made(&counters[1]), 0, "a checkpoint of the deleted ledger");
}

#[test]
fn the_permissions_mode_is_kept_across_reopen() {
    let mut fixture = Fixture::new();
    fixture
        .ledgers
        .create_ledger_with_mode("open", false, PermissionsMode::AllowAll)
        .unwrap();
    fixture.ledger("strict");
    fixture.reopen();
    let mode = |name: &str| {
        fixture
            .ledgers
            .ledger(name)
            .unwrap()
            .describe()
            .unwrap()
            .permissions_mode
    };
    assert_eq!(mode("open"), PermissionsMode::AllowAll);
    assert_eq!(mode("strict"), PermissionsMode::Standard);
    fixture
        .ledgers
        .update_permissions_mode("open", PermissionsMode::Standard)
        .unwrap();
    fixture.reopen();
    let ledger = fixture.ledgers.ledger("open").unwrap();
    assert_eq!(ledger.permissions_mode(), PermissionsMode::Standard);
    assert_eq!(
        PermissionsMode::parse("ALLOW_ALL"),
        Some(PermissionsMode::AllowAll)
    );
    assert_eq!(PermissionsMode::parse("allow_all"), None);
}

#[test]
fn revisions_have_growing_versions_and_a_final_delete_revision() {
    let fixture = Fixture::new();
    let ledger = fixture.ledger("orders");
    run(&ledger, "CREATE TABLE Orders");
    let inserted = run(
        &ledger,
        "INSERT INTO Orders VALUE {'OrderId': '1', 'Quantity': 1}",
    );
    let id = document_id(&inserted);
    assert_eq!(id.len(), 22);
    assert!(
        id.chars()
            .all(|character| character.is_ascii_alphanumeric())
    );
    fixture.clock.advance_ms(1000);
    run(
        &ledger,
        "UPDATE Orders SET Quantity = 2 WHERE OrderId = '1'",
    );
    fixture.clock.advance_ms(1000);
    run(&ledger, "DELETE FROM Orders WHERE OrderId = '1'");

    assert!(run(&ledger, "SELECT * FROM Orders").is_empty());
    let history = run(
        &ledger,
        "SELECT h.metadata.version AS v, h.data AS d FROM history(Orders) AS h",
    );
    assert_bag_eq(
        &history,
        "{v: 0, d: {OrderId: \"1\", Quantity: 1}} {v: 1, d: {OrderId: \"1\", Quantity: 2}} {v: 2}",
    );
    let ids = run(
        &ledger,
        "SELECT VALUE h.metadata.id FROM history(Orders) AS h",
    );
    assert!(ids.iter().all(|value| value.as_text() == Some(id.as_str())));
}

#[test]
fn committed_view_has_block_address_hash_data_and_metadata() {
    let fixture = Fixture::new();
    let ledger = fixture.ledger("orders");
    run(&ledger, "CREATE TABLE Orders");
    run(&ledger, "INSERT INTO Orders VALUE {'OrderId': '1'}");
    let committed = run(&ledger, "SELECT * FROM _ql_committed_Orders");
    assert_eq!(committed.len(), 1);
    let fields = committed[0].as_struct().unwrap();
    for name in ["blockAddress", "hash", "data", "metadata"] {
        assert!(
            fields.get(name).is_some(),
            "missing {name} in {}",
            committed[0]
        );
    }
    let metadata = fields.get("metadata").unwrap().as_struct().unwrap();
    assert_eq!(metadata.get("version").unwrap().as_i64(), Some(0));
    assert_eq!(
        metadata.get("txTime").unwrap(),
        &ion("2024-01-02T03:04:05.678Z")
    );
    let address = fields.get("blockAddress").unwrap().as_struct().unwrap();
    assert_eq!(address.get("sequenceNo").unwrap().as_i64(), Some(1));
    assert_eq!(
        address.get("strandId").unwrap().as_text(),
        Some(ledger.strand_id())
    );
    // The user view is the data only.
    assert_bag_eq(&run(&ledger, "SELECT * FROM Orders"), "{OrderId: \"1\"}");
}

#[test]
fn data_survives_reopen() {
    let mut fixture = Fixture::new();
    let ledger = fixture.ledger("orders");
    run(&ledger, "CREATE TABLE Orders");
    run(&ledger, "INSERT INTO Orders << {'a': 1}, {'a': 2} >>");
    let digest_before = ledger.digest().unwrap().unwrap();
    drop(ledger);
    fixture.reopen();
    let ledger = fixture.ledgers.ledger("orders").unwrap();
    assert_bag_eq(&run(&ledger, "SELECT VALUE a FROM Orders"), "1 2");
    assert_eq!(ledger.digest().unwrap().unwrap(), digest_before);
    assert_eq!(ledger.verify_chain(|_, _| {}).unwrap().blocks_verified, 2);
}
