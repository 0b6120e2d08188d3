//! Crash safety: a child process commits transactions and is killed with SIGKILL mid-stream;
//! after reopening, the chain verifies, every acknowledged transaction is there, and no
//! transaction is half there; the same with many sessions committing at once (group commit) while
//! checkpoints run in a loop, killed three times over. Also an in-process variant that drops a
//! ledger mid-transaction.

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

/// Environment variable that turns [`crash_child_concurrent_sessions`] into the writer process.
const CONCURRENT_CHILD_DIR_VARIABLE: &str = "SLUICE_LEDGER_CONCURRENT_CRASH_CHILD_DIR";
/// Environment variable with the number of the run, so documents of different runs differ.
const CONCURRENT_CHILD_RUN_VARIABLE: &str = "SLUICE_LEDGER_CONCURRENT_CRASH_RUN";
/// Sessions (threads) committing at once in the child.
const CONCURRENT_SESSIONS: usize = 12;
/// Acknowledged transactions (over all sessions) to wait for before each kill.
const CONCURRENT_ACKNOWLEDGED_BEFORE_KILL: usize = 120;
/// Each session stops by itself after this many transactions, in case the parent is gone.
const CONCURRENT_CHILD_TRANSACTIONS_MAX: usize = 2_000;
/// Kills of the same ledger, each followed by a restart that recovers it.
const CONCURRENT_RUNS: usize = 3;

/// The writers run inside the child process: many sessions committing at once (so commits are
/// grouped) while another thread checkpoints in a loop (so kills land during checkpoints); a
/// no-op when run as a normal test.
#[test]
fn crash_child_concurrent_sessions() {
    let Ok(dir) = std::env::var(CONCURRENT_CHILD_DIR_VARIABLE) else {
        return;
    };
    let run_number: i64 = std::env::var(CONCURRENT_CHILD_RUN_VARIABLE)
        .unwrap()
        .parse()
        .unwrap();
    let ledgers = Ledgers::open_dir(&dir, Arc::new(SystemClock), Limits::default()).unwrap();
    let ledger = ledgers.ledger("crash").unwrap();
    let writers_done = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while writers_done.load(std::sync::atomic::Ordering::SeqCst) < CONCURRENT_SESSIONS {
                println!("CHECKPOINT start");
                ledger.checkpoint().unwrap();
                println!("CHECKPOINT done");
            }
        });
        for session in 0..CONCURRENT_SESSIONS {
            let ledger = ledger.clone();
            let writers_done = &writers_done;
            scope.spawn(move || {
                for round in 0..CONCURRENT_CHILD_TRANSACTIONS_MAX {
                    let mut transaction = ledger.begin().unwrap();
                    for index in 0..DOCUMENTS_PER_TRANSACTION {
                        transaction
                            .execute(
                                &format!(
                                    "INSERT INTO T VALUE {{'run': {run_number}, 'session': {session}, 'round': {round}, 'index': {index}}}"
                                ),
                                &[],
                            )
                            .unwrap();
                    }
                    let commit = transaction.commit().unwrap();
                    // Printed only after commit returned: an acknowledgement, with its block.
                    println!(
                        "ACK {run_number} {session} {round} {}",
                        commit.block_address.unwrap().sequence_no
                    );
                }
                writers_done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
    });
}

/// Re-checks every block with the hashing rules alone (no journal or state code): revision
/// hashes from metadata and data, entries and block hashes, chain links, and the digest.
fn verify_independently(ledger: &sluice_ledger::Ledger) -> u64 {
    use sluice_ledger::hash;
    let blocks = ledger.blocks_from(0).unwrap();
    let mut previous: Option<hash::Hash> = None;
    let mut block_hashes = Vec::new();
    for (position, block) in blocks.iter().enumerate() {
        let fields = block.as_struct().unwrap();
        let address = fields.get("blockAddress").unwrap().as_struct().unwrap();
        assert_eq!(
            address.get("sequenceNo").unwrap().as_i64(),
            Some(position as i64)
        );
        let mut revision_hashes = Vec::new();
        if let Some(revisions) = fields.get("revisions").and_then(|r| r.as_sequence()) {
            for revision in revisions.elements() {
                let revision = revision.as_struct().unwrap();
                let computed =
                    hash::revision_hash(revision.get("metadata").unwrap(), revision.get("data"))
                        .unwrap();
                assert_eq!(
                    revision.get("hash").unwrap().as_lob(),
                    Some(computed.as_slice())
                );
                revision_hashes.push(computed);
            }
        }
        let hashes = hash::block_hashes(
            fields.get("transactionInfo").unwrap(),
            &revision_hashes,
            previous.as_ref(),
        )
        .unwrap();
        assert_eq!(
            fields.get("blockHash").unwrap().as_lob(),
            Some(hashes.block_hash.as_slice()),
            "block {position}"
        );
        let stored_previous = fields.get("previousBlockHash").and_then(|p| p.as_lob());
        assert_eq!(stored_previous, previous.as_ref().map(|p| p.as_slice()));
        previous = Some(hashes.block_hash);
        block_hashes.push(hashes.block_hash);
    }
    assert_eq!(
        hash::merkle_root(&block_hashes),
        ledger.digest().unwrap().map(|digest| digest.digest)
    );
    blocks.len() as u64
}

#[test]
fn kill_9_of_many_sessions_and_checkpoints_keeps_every_acknowledged_block_exactly() {
    let dir = tempfile::tempdir().unwrap();
    {
        let ledgers =
            Ledgers::open_dir(dir.path(), Arc::new(SystemClock), Limits::default()).unwrap();
        let ledger = ledgers.create_ledger("crash", true).unwrap();
        run(&ledger, "CREATE TABLE T");
    }
    // (run, session, round) → the block its commit acknowledged.
    let mut acknowledged: std::collections::BTreeMap<(i64, i64, i64), u64> = Default::default();
    let mut kills_during_checkpoint = 0;
    for run_number in 0..CONCURRENT_RUNS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash_child_concurrent_sessions",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CONCURRENT_CHILD_DIR_VARIABLE, dir.path())
            .env(CONCURRENT_CHILD_RUN_VARIABLE, run_number.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut acknowledged_this_run = 0;
        let mut checkpoints_done = 0;
        let mut in_checkpoint = false;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(rest) = line.strip_prefix("ACK ") {
                let numbers: Vec<i64> = rest
                    .split_whitespace()
                    .map(|number| number.parse().unwrap())
                    .collect();
                acknowledged.insert((numbers[0], numbers[1], numbers[2]), numbers[3] as u64);
                acknowledged_this_run += 1;
            } else if line == "CHECKPOINT start" {
                in_checkpoint = true;
                // Kill as a checkpoint starts, once enough was acknowledged.
                if acknowledged_this_run >= CONCURRENT_ACKNOWLEDGED_BEFORE_KILL
                    && checkpoints_done > 0
                {
                    break;
                }
            } else if line == "CHECKPOINT done" {
                in_checkpoint = false;
                checkpoints_done += 1;
            }
        }
        child.kill().unwrap(); // SIGKILL on unix
        child.wait().unwrap();
        kills_during_checkpoint += usize::from(in_checkpoint);
        assert!(
            acknowledged_this_run >= CONCURRENT_ACKNOWLEDGED_BEFORE_KILL,
            "run {run_number}: the child stopped early"
        );

        let ledgers =
            Ledgers::open_dir(dir.path(), Arc::new(SystemClock), Limits::default()).unwrap();
        let ledger = ledgers.ledger("crash").unwrap();
        let report = ledger.verify_chain(|_, _| {}).unwrap();
        assert_eq!(verify_independently(&ledger), report.blocks_verified);
        let rows = run(
            &ledger,
            "SELECT r.data.run AS run, r.data.session AS session, r.data.round AS round, \
             r.blockAddress.sequenceNo AS block FROM _ql_committed_T AS r",
        );
        let mut transactions: std::collections::BTreeMap<(i64, i64, i64), Vec<u64>> =
            Default::default();
        for row in &rows {
            let row = row.as_struct().unwrap();
            let field = |name: &str| row.get(name).unwrap().as_i64().unwrap();
            transactions
                .entry((field("run"), field("session"), field("round")))
                .or_default()
                .push(field("block") as u64);
        }
        for (key, blocks) in &transactions {
            assert_eq!(
                blocks.len(),
                DOCUMENTS_PER_TRANSACTION,
                "{key:?} is half there"
            );
            assert!(
                blocks.iter().all(|block| *block == blocks[0]),
                "{key:?} spans blocks"
            );
        }
        for (key, block) in &acknowledged {
            assert_eq!(
                transactions.get(key).map(|blocks| blocks[0]),
                Some(*block),
                "acknowledged transaction {key:?} is not in its block"
            );
        }
        // One block for CREATE TABLE plus one per transaction present.
        assert_eq!(report.blocks_verified, transactions.len() as u64 + 1);
    }
    // Kills are timed at the start of a checkpoint; whether each landed inside the fsync is up
    // to the scheduler, so this only reports it.
    eprintln!("{kills_during_checkpoint} of {CONCURRENT_RUNS} kills came during a checkpoint");
}

/// Environment variable that turns [`failed_sync_child`] into the writer process.
const FAILED_SYNC_CHILD_DIR_VARIABLE: &str = "SLUICE_LEDGER_FAILED_SYNC_CHILD_DIR";

/// The child of [`a_failed_journal_fsync_never_makes_its_state_durable`]: commits twice, then a
/// third time with the journal's fsync failing (its frames lost), tries to checkpoint and to
/// change a setting, and exits normally, closing everything; a no-op as a normal test.
#[test]
fn failed_sync_child() {
    let Ok(dir) = std::env::var(FAILED_SYNC_CHILD_DIR_VARIABLE) else {
        return;
    };
    let ledgers = Ledgers::open_dir(&dir, Arc::new(SystemClock), Limits::default()).unwrap();
    let ledger = ledgers.ledger("sync").unwrap();
    run(&ledger, "INSERT INTO T VALUE {'a': 1}");
    ledger.checkpoint().unwrap();
    run(&ledger, "INSERT INTO T VALUE {'a': 2}");
    let before = ledger.digest().unwrap().unwrap();
    ledger.fail_next_journal_sync();
    let mut transaction = ledger.begin().unwrap();
    transaction
        .execute("INSERT INTO T VALUE {'a': 3}", &[])
        .unwrap();
    let error = transaction.commit().unwrap_err().to_string();
    assert!(error.contains("injected failure"), "{error}");
    // Readers never saw the failed group, and nothing more is accepted.
    assert_eq!(ledger.digest().unwrap().unwrap(), before);
    assert!(ledger.begin().is_err());
    assert!(ledger.set_deletion_protection(false).is_err());
    ledger.checkpoint().unwrap();
    println!("FAILED AS INJECTED");
}

#[test]
fn a_failed_journal_fsync_never_makes_its_state_durable() {
    let dir = tempfile::tempdir().unwrap();
    {
        let ledgers =
            Ledgers::open_dir(dir.path(), Arc::new(SystemClock), Limits::default()).unwrap();
        let ledger = ledgers.create_ledger("sync", true).unwrap();
        run(&ledger, "CREATE TABLE T");
    }
    // In a child process: redb's state, once committed, can only be dropped by ending the
    // process without closing it, which is what the ledger does after such a failure.
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "failed_sync_child", "--nocapture"])
        .env(FAILED_SYNC_CHILD_DIR_VARIABLE, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("FAILED AS INJECTED"),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The state reverted to its checkpoint and the journal's replay stops where its frames do:
    // the lost block is absent, the two acknowledged ones are there, the chain verifies.
    let ledgers = Ledgers::open_dir(dir.path(), Arc::new(SystemClock), Limits::default()).unwrap();
    let ledger = ledgers.ledger("sync").unwrap();
    assert_bag_eq(&run(&ledger, "SELECT VALUE a FROM T"), "1 2");
    assert_eq!(verify_independently(&ledger), 3);
    run(&ledger, "INSERT INTO T VALUE {'a': 4}");
    assert_bag_eq(&run(&ledger, "SELECT VALUE a FROM T"), "1 2 4");
    assert_eq!(ledger.verify_chain(|_, _| {}).unwrap().blocks_verified, 4);
}
