//! Recovery of the derived state from the journal: a state checkpointed before the journal's
//! last blocks is brought up to date on open, a journal cut at any byte of its last block (a
//! torn group append, with the file ending there or followed by its zero-filled pre-allocated
//! tail) opens as the ledger before that block, and group commit keeps OCC exact when many
//! threads commit at once.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use sluice_ledger::{LedgerDigest, LedgerError, Ledgers, Limits, ManualClock};
use time::macros::datetime;

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(datetime!(2024-01-02 03:04:05.678 UTC)))
}

fn open(data_dir: &Path) -> Ledgers {
    Ledgers::open_dir(data_dir, clock(), Limits::default()).unwrap()
}

/// A ledger closed after a few blocks, its state file saved at that point, then one more block
/// committed and the ledger closed again. Holds the directory, the saved state, where the
/// journal's frames ended and the digest before the last block, and the same after it.
struct TwoPoints {
    _dir: tempfile::TempDir,
    ledger_dir: PathBuf,
    state_before: Vec<u8>,
    journal_before_bytes: u64,
    journal_after_bytes: u64,
    digest_before: LedgerDigest,
    digest_after: LedgerDigest,
}

fn two_points(last_statement: &str) -> TwoPoints {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("ledgers");
    let ledger_dir = data_dir.join("torn.ledger");
    {
        let ledgers = open(&data_dir);
        let ledger = ledgers.create_ledger("torn", true).unwrap();
        run(&ledger, "CREATE TABLE T");
        run(&ledger, "CREATE INDEX ON T (k)");
        run(&ledger, "INSERT INTO T << {'k': 1}, {'k': 2} >>");
    }
    let state_before = std::fs::read(ledger_dir.join("state.redb")).unwrap();
    let journal_before_bytes = journal_frames_end(&ledger_dir.join("journal"));
    let (digest_before, digest_after) = {
        let ledgers = open(&data_dir);
        let ledger = ledgers.ledger("torn").unwrap();
        let before = ledger.digest().unwrap().unwrap();
        run(&ledger, last_statement);
        (before, ledger.digest().unwrap().unwrap())
    };
    let journal_after_bytes = journal_frames_end(&ledger_dir.join("journal"));
    TwoPoints {
        _dir: dir,
        ledger_dir,
        state_before,
        journal_before_bytes,
        journal_after_bytes,
        digest_before,
        digest_after,
    }
}

/// Zeros after a cut that stand for the journal's pre-allocated tail (any length does).
const ZERO_TAIL_BYTES: usize = 16 * 1024;

/// Copies the ledger with its state as saved before the last block and its journal cut at
/// `cut` bytes, as a crash during the last block's append leaves it: the file ends at the cut
/// (an append that grew the file), or zeros follow it (an append into pre-allocated room).
fn crashed_copy(points: &TwoPoints, cut: u64, zero_tail: bool) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    let target = copy.path().join("torn.ledger");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("state.redb"), &points.state_before).unwrap();
    let journal = std::fs::read(points.ledger_dir.join("journal")).unwrap();
    let mut cut_journal = journal[..cut as usize].to_vec();
    if zero_tail {
        cut_journal.resize(points.journal_after_bytes as usize + ZERO_TAIL_BYTES, 0);
    }
    std::fs::write(target.join("journal"), cut_journal).unwrap();
    copy
}

#[test]
fn a_journal_cut_at_every_byte_of_its_last_block_opens_as_the_ledger_before_it() {
    let points = two_points("UPDATE T SET k = 3 WHERE k = 2");
    let journal_after_bytes = points.journal_after_bytes;
    assert!(journal_after_bytes > points.journal_before_bytes);
    for zero_tail in [false, true] {
        for cut in points.journal_before_bytes..=journal_after_bytes {
            let context = format!("cut at {cut}, zero tail {zero_tail}");
            let copy = crashed_copy(&points, cut, zero_tail);
            let ledgers = open(copy.path());
            let ledger = ledgers.ledger("torn").unwrap();
            let whole = cut == journal_after_bytes;
            let expected = if whole {
                &points.digest_after
            } else {
                &points.digest_before
            };
            assert_eq!(&ledger.digest().unwrap().unwrap(), expected, "{context}");
            let report = ledger.verify_chain(|_, _| {}).unwrap();
            assert_eq!(report.digest.as_ref(), Some(expected), "{context}");
            // The derived state (documents and the index) matches the blocks that survived.
            let keys = if whole { "1 3" } else { "1 2" };
            assert_bag_eq(&run(&ledger, "SELECT VALUE k FROM T"), keys);
            assert_eq!(
                run(&ledger, "SELECT VALUE k FROM T WHERE k = 2").len(),
                usize::from(!whole),
                "{context}"
            );
            // The torn tail is gone from the file (only zeros follow what survived), and the
            // ledger appends after what survived.
            let expected_end = if whole {
                journal_after_bytes
            } else {
                points.journal_before_bytes
            };
            let journal = copy.path().join("torn.ledger/journal");
            assert_eq!(journal_frames_end(&journal), expected_end, "{context}");
            // Appending after the cut costs an fsync; a sample of cuts is enough to show it.
            if cut % 32 == 0 || cut + 2 >= journal_after_bytes {
                run(&ledger, "INSERT INTO T VALUE {'k': 4}");
                ledger.verify_chain(|_, _| {}).unwrap();
                assert!(journal_frames_end(&journal) > expected_end, "{context}");
            }
        }
    }
}

#[test]
fn a_torn_frame_before_a_zeroed_tail_is_cut_but_damage_before_a_later_frame_is_refused() {
    let points = two_points("INSERT INTO T VALUE {'k': 9}");
    let last_frame = points.journal_before_bytes as usize..points.journal_after_bytes as usize;
    let mut journal = std::fs::read(points.ledger_dir.join("journal")).unwrap();
    journal.truncate(last_frame.end);
    journal.resize(last_frame.end + ZERO_TAIL_BYTES, 0);
    let write_copy = |bytes: &[u8]| {
        let copy = tempfile::tempdir().unwrap();
        let target = copy.path().join("torn.ledger");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("state.redb"), &points.state_before).unwrap();
        std::fs::write(target.join("journal"), bytes).unwrap();
        copy
    };
    // The last frame's middle sectors never reached the disk: zeros inside it, zeros after it.
    let mut torn = journal.clone();
    torn[last_frame.start + 12..last_frame.end - 4].fill(0);
    let copy = write_copy(&torn);
    {
        let ledgers = open(copy.path());
        let ledger = ledgers.ledger("torn").unwrap();
        assert_eq!(ledger.digest().unwrap().unwrap(), points.digest_before);
        assert_eq!(
            journal_frames_end(&copy.path().join("torn.ledger/journal")),
            points.journal_before_bytes
        );
    }
    // The same damage with a byte of data after it is not a torn append but corruption.
    let mut damaged = torn;
    damaged[last_frame.end + 100] = 1;
    let copy = write_copy(&damaged);
    assert!(matches!(
        open(copy.path()).ledger("torn"),
        Err(LedgerError::VerificationFailed(message)) if message.contains("checksum")
    ));
}

#[test]
fn a_state_behind_its_journal_is_brought_up_to_date_on_open() {
    let points = two_points("INSERT INTO T VALUE {'k': 9}");
    let journal_bytes = points.journal_after_bytes;
    let copy = crashed_copy(&points, journal_bytes, true);
    {
        let ledgers = open(copy.path());
        let ledger = ledgers.ledger("torn").unwrap();
        assert_eq!(ledger.digest().unwrap().unwrap(), points.digest_after);
        assert_bag_eq(&run(&ledger, "SELECT VALUE k FROM T WHERE k = 9"), "9");
        assert_eq!(run(&ledger, "SELECT * FROM history(T)").len(), 3);
    }
    // A state ahead of its journal (the journal lost acknowledged blocks) is refused, whether
    // the file ends before the state's end or zeros stand where the lost block was.
    let state_after = std::fs::read(points.ledger_dir.join("state.redb")).unwrap();
    for zero_tail in [false, true] {
        let copy = crashed_copy(&points, points.journal_before_bytes, zero_tail);
        std::fs::write(copy.path().join("torn.ledger/state.redb"), &state_after).unwrap();
        assert!(
            matches!(
                open(copy.path()).ledger("torn"),
                Err(LedgerError::Storage(message)) if message.contains("ahead of its journal")
            ),
            "zero tail {zero_tail}"
        );
    }
}

#[test]
fn concurrent_increments_lose_no_update_under_group_commit() {
    const THREADS: usize = 8;
    const INCREMENTS_PER_THREAD: usize = 25;
    let fixture = Fixture::new();
    let ledger = fixture.ledger("counter");
    run(&ledger, "CREATE TABLE C");
    run(&ledger, "CREATE INDEX ON C (name)");
    run(&ledger, "INSERT INTO C VALUE {'name': 'n', 'count': 0}");
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            let ledger = ledger.clone();
            scope.spawn(move || {
                for _ in 0..INCREMENTS_PER_THREAD {
                    ledger
                        .run_in_transaction(1_000, |transaction| {
                            let value = transaction.execute(
                                "SELECT VALUE c.count FROM C AS c WHERE c.name = 'n'",
                                &[],
                            )?;
                            let current = value[0].as_i64().unwrap();
                            transaction.execute(
                                &format!("UPDATE C SET count = {} WHERE name = 'n'", current + 1),
                                &[],
                            )
                        })
                        .unwrap();
                }
            });
        }
    });
    let total = (THREADS * INCREMENTS_PER_THREAD) as i64;
    assert_bag_eq(
        &run(&ledger, "SELECT VALUE c.count FROM C AS c"),
        &total.to_string(),
    );
    // One revision per successful increment, each in its own block, versions without gaps.
    let versions = run(
        &ledger,
        "SELECT VALUE h.metadata.version FROM history(C) AS h",
    );
    assert_eq!(versions.len() as i64, total + 1);
    let report = ledger.verify_chain(|_, _| {}).unwrap();
    assert_eq!(report.blocks_verified, 3 + total as u64);
}
