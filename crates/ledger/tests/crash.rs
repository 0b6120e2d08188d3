//! Crash safety: a child process commits transactions and is killed with SIGKILL mid-stream;
//! after reopening, the chain verifies, every acknowledged transaction is there, and no
//! transaction is half there. Also an in-process variant that drops a ledger mid-transaction.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;

use common::*;
use sluice_ledger::{Ledgers, Limits, SystemClock};

/// Environment variable that turns [`crash_child_writer`] into the writer process.
const CHILD_DIR_VARIABLE: &str = "SLUICE_LEDGER_CRASH_CHILD_DIR";
/// Documents each transaction inserts; a transaction is either all there or absent.
const DOCUMENTS_PER_TRANSACTION: usize = 3;
/// Acknowledged transactions to wait for before killing the child.
const ACKNOWLEDGED_BEFORE_KILL: usize = 25;
/// The child stops by itself after this many transactions, in case the parent is gone.
const CHILD_TRANSACTIONS_MAX: usize = 5_000;

/// The writer run inside the child process; a no-op when run as a normal test.
#[test]
fn crash_child_writer() {
    let Ok(dir) = std::env::var(CHILD_DIR_VARIABLE) else {
        return;
    };
    let ledgers = Ledgers::open_dir(&dir, Arc::new(SystemClock), Limits::default()).unwrap();
    let ledger = ledgers.ledger("crash").unwrap();
    for round in 0..CHILD_TRANSACTIONS_MAX {
        let mut transaction = ledger.begin().unwrap();
        for index in 0..DOCUMENTS_PER_TRANSACTION {
            transaction
                .execute(
                    &format!("INSERT INTO T VALUE {{'round': {round}, 'index': {index}}}"),
                    &[],
                )
                .unwrap();
        }
        transaction.commit().unwrap();
        // Printed only after commit returned: an acknowledgement.
        println!("ACK {round}");
    }
}

#[test]
fn kill_9_during_commits_leaves_a_verifiable_ledger_with_every_acknowledged_transaction() {
    let dir = tempfile::tempdir().unwrap();
    {
        let ledgers =
            Ledgers::open_dir(dir.path(), Arc::new(SystemClock), Limits::default()).unwrap();
        let ledger = ledgers.create_ledger("crash", true).unwrap();
        run(&ledger, "CREATE TABLE T");
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child_writer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_VARIABLE, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut acknowledged = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(round) = line.strip_prefix("ACK ") {
            acknowledged.push(round.trim().parse::<i64>().unwrap());
            if acknowledged.len() >= ACKNOWLEDGED_BEFORE_KILL {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL on unix
    child.wait().unwrap();
    assert!(
        acknowledged.len() >= ACKNOWLEDGED_BEFORE_KILL,
        "the child stopped early"
    );

    let ledgers = Ledgers::open_dir(dir.path(), Arc::new(SystemClock), Limits::default()).unwrap();
    let ledger = ledgers.ledger("crash").unwrap();
    let report = ledger.verify_chain(|_, _| {}).unwrap();
    let rounds = run(&ledger, "SELECT VALUE round FROM T");
    let mut counts = std::collections::BTreeMap::new();
    for round in rounds {
        *counts.entry(round.as_i64().unwrap()).or_insert(0usize) += 1;
    }
    for (round, count) in &counts {
        assert_eq!(
            *count, DOCUMENTS_PER_TRANSACTION,
            "round {round} is half there"
        );
    }
    for round in &acknowledged {
        assert!(
            counts.contains_key(round),
            "acknowledged round {round} is lost"
        );
    }
    // One block for CREATE TABLE plus one per committed round.
    assert_eq!(report.blocks_verified, counts.len() as u64 + 1);
    // And the ledger keeps working after the crash.
    run(&ledger, "INSERT INTO T VALUE {'round': -1}");
    ledger.verify_chain(|_, _| {}).unwrap();
}

#[test]
fn dropping_an_uncommitted_transaction_leaves_nothing() {
    let mut fixture = Fixture::new();
    let ledger = fixture.ledger("l");
    run(&ledger, "CREATE TABLE T");
    run(&ledger, "INSERT INTO T VALUE {'a': 1}");
    let mut transaction = ledger.begin().unwrap();
    transaction
        .execute("INSERT INTO T VALUE {'a': 2}", &[])
        .unwrap();
    drop(transaction);
    drop(ledger);
    fixture.reopen();
    let ledger = fixture.ledgers.ledger("l").unwrap();
    assert_bag_eq(&run(&ledger, "SELECT VALUE a FROM T"), "1");
    assert_eq!(ledger.verify_chain(|_, _| {}).unwrap().blocks_verified, 2);
}
