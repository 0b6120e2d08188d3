//! Transactions: multi-statement visibility of own writes, serializable OCC (document reads,
//! reads that found nothing, scans, index lookups), QLDB limits and the timeout, indexes.

mod common;

use common::*;
use sluice_ledger::{LedgerError, Limits};

#[test]
fn statements_see_earlier_writes_of_the_same_transaction() {
    let fixture = Fixture::new();
    let ledger = fixture.ledger("l");
    run(&ledger, "CREATE TABLE T");
    let mut transaction = ledger.begin().unwrap();
    transaction
        .execute("INSERT INTO T VALUE {'k': 1}", &[])
        .unwrap();
    transaction
        .execute("UPDATE T SET k = 2 WHERE k = 1", &[])
        .unwrap();
    let seen = transaction.execute("SELECT VALUE k FROM T", &[]).unwrap();
    assert_bag_eq(&seen, "2");
    // Not visible outside before commit.
    assert!(run(&ledger, "SELECT * FROM T").is_empty());
    let commit = transaction.commit().unwrap();
    assert!(commit.block_address.is_some());
    assert_bag_eq(&run(&ledger, "SELECT VALUE k FROM T"), "2");
    // One revision only: insert and update in one transaction make version 0.
    assert_bag_eq(
        &run(
            &ledger,
            "SELECT VALUE h.metadata.version FROM history(T) AS h",
        ),
        "0",
    );
}

#[test]
fn history_of_one_document_reads_its_revisions_and_conflicts_only_with_its_writes() {
    let fixture = Fixture::new();
    let ledger = fixture.ledger("l");
    run(&ledger, "CREATE TABLE T");
    let a = document_id(&run(&ledger, "INSERT INTO T VALUE {'k': 'a', 'n': 0}"));
    let b = document_id(&run(&ledger, "INSERT INTO T VALUE {'k': 'b', 'n': 0}"));
    run(&ledger, "UPDATE T SET n = 1 WHERE k = 'a'");
    run(&ledger, "DELETE FROM T WHERE k = 'a'");
    let history_of = "SELECT VALUE h.metadata.version FROM history(T) AS h WHERE h.metadata.id = ?";
    // The same rows as filtering the whole table's history, either way round the `=`.
    let whole = format!(
        "SELECT VALUE h.metadata.version FROM history(T) AS h WHERE h.metadata.id || '' = '{a}'"
    );
    let narrowed = ledger
        .execute(history_of, &[ion(&format!("\"{a}\""))])
        .unwrap();
    assert_bag_eq(&narrowed, "0 1 2");
    assert_bag_eq(&run(&ledger, &whole), "0 1 2");
    assert_bag_eq(
        &run(
            &ledger,
            &format!(
                "SELECT VALUE h.data.n FROM history(T) AS h WHERE '{b}' = h.metadata.id AND h.data.n = 0"
            ),
        ),
        "0",
    );
    assert!(
        ledger
            .execute(history_of, &[ion("\"none\"")])
            .unwrap()
            .is_empty()
    );
    // Reading one document's history conflicts with a write of that document only.
    let mut reader = ledger.begin().unwrap();
    reader
        .execute(history_of, &[ion(&format!("\"{b}\""))])
        .unwrap();
    reader
        .execute("INSERT INTO T VALUE {'k': 'c'}", &[])
        .unwrap();
    run(&ledger, "INSERT INTO T VALUE {'k': 'd'}");
    reader.commit().unwrap();
    let mut reader = ledger.begin().unwrap();
    reader
        .execute(history_of, &[ion(&format!("\"{b}\""))])
        .unwrap();
    reader
        .execute("INSERT INTO T VALUE {'k': 'e'}", &[])
        .unwrap();
    run(&ledger, "UPDATE T SET n = 5 WHERE k = 'b'");
    assert!(matches!(reader.commit(), Err(LedgerError::OccConflict(_))));
}

#[test]
fn concurrent_update_of_a_read_document_is_an_occ_conflict() {
    let fixture = Fixture::new();
    let ledger = fixture.ledger("l");
    run(&ledger, "CREATE TABLE T");
    run(&ledger, "INSERT INTO T VALUE {'k': 1, 'n': 0}");
    let mut first = ledger.begin().unwrap();
    let mut second = ledger.begin().unwrap();
    first
        .execute("UPDATE T SET n = 1 WHERE k = 1", &[])
        .unwrap();
    second
        .execute("UPDATE T SET n = 2 WHERE k = 1", &[])
        .unwrap();
    first.commit().unwrap();
    assert!(matches!(second.commit(), Err(LedgerError::OccConflict(_))));
    assert_bag_eq(&run(&ledger, "SELECT VALUE n FROM T"), "1");
}

#[test]
fn a_read_that_found_nothing_conflicts_with_a_later_insert() {
    let fixture = Fixture::new();
    let ledger = fixture.ledger("l");
    run(&ledger, "CREATE TABLE T");
    run(&ledger, "CREATE TABLE U");
    // Write skew: each transaction checks T is empty, then writes to U.
    let mut first = ledger.begin().unwrap();
    let mut second = ledger.begin().unwrap();
    assert!(
        first
            .execute("SELECT * FROM T WHERE k = 1", &[])
            .unwrap()
            .is_empty()
    );
    assert!(
        second
            .execute("SELECT * FROM T WHERE k = 1", &[])
            .unwrap()
            .is_empty()
    );
    first.execute("INSERT INTO T VALUE {'k': 1}", &[]).unwrap();
    second.execute("INSERT INTO T VALUE {'k': 1}", &[]).unwrap();
    first.commit().unwrap();
    assert!(matches!(second.commit(), Err(LedgerError::OccConflict(_))));
    assert_eq!(run(&ledger, "SELECT * FROM T").len(), 1);
}

#[test]
fn index_lookups_that_found_nothing_conflict_too() {
    let fixture = Fixture::new();
    let ledger = fixture.ledger("l");
    run(&ledger, "CREATE TABLE T");
    run(&ledger, "CREATE INDEX ON T (k)");
    run(&ledger, "INSERT INTO T VALUE {'k': 0}");
    let mut first = ledger.begin().unwrap();
    let mut second = ledger.begin().unwrap();
    assert!(
        first
            .execute("SELECT * FROM T WHERE k = 7", &[])
            .unwrap()
            .is_empty()
    );
    assert!(
        second
            .execute("SELECT * FROM T WHERE k = 7", &[])
            .unwrap()
            .is_empty()
    );
    first.execute("INSERT INTO T VALUE {'k': 7}", &[]).unwrap();
    second.execute("INSERT INTO T VALUE {'k': 7}", &[]).unwrap();
    first.commit().unwrap();
    assert!(matches!(second.commit(), Err(LedgerError::OccConflict(_))));
}

#[test]
fn disjoint_index_lookups_do_not_conflict() {
    let fixture = Fixture::new();
    let ledger = fixture.ledger("l");
    run(&ledger, "CREATE TABLE T");
    run(&ledger, "CREATE INDEX ON T (k)");
    run(
        &ledger,
        "INSERT INTO T << {'k': 1, 'n': 0}, {'k': 2, 'n': 0} >>",
    );
    let mut first = ledger.begin().unwrap();
    let mut second = ledger.begin().unwrap();
    first
        .execute("UPDATE T SET n = 1 WHERE k = 1", &[])
        .unwrap();
    second
        .execute("UPDATE T SET n = 2 WHERE k = 2", &[])
        .unwrap();
    first.commit().unwrap();
    second.commit().unwrap();
    assert_bag_eq(
        &run(&ledger, "SELECT k, n FROM T"),
        "{k: 1, n: 1} {k: 2, n: 2}",
    );
}

#[test]
fn index_is_used_and_kept_up_to_date() {
    let fixture = Fixture::new();
    let ledger = fixture.ledger("l");
    run(&ledger, "CREATE TABLE Vehicle");
    run(
        &ledger,
        "INSERT INTO Vehicle << {'VIN': 'A', 'n': 1}, {'VIN': 'B', 'n': 2} >>",
    );
    // Created on a non-empty table: built at commit.
    run(&ledger, "CREATE INDEX ON Vehicle (VIN)");
    assert_bag_eq(
        &run(&ledger, "SELECT VALUE n FROM Vehicle WHERE VIN = 'A'"),
        "1",
    );
    run(&ledger, "UPDATE Vehicle SET VIN = 'C' WHERE VIN = 'A'");
    assert!(run(&ledger, "SELECT * FROM Vehicle WHERE VIN = 'A'").is_empty());
    assert_bag_eq(
        &run(
            &ledger,
            "SELECT VALUE n FROM Vehicle AS v WHERE v.VIN IN ('B', 'C')",
        ),
        "1 2",
    );
    run(&ledger, "DELETE FROM Vehicle WHERE VIN = 'B'");
    assert_bag_eq(
        &run(
            &ledger,
            "SELECT VALUE n FROM Vehicle WHERE VIN IN ('B', 'C')",
        ),
        "1",
    );
    let tables = run(
        &ledger,
        "SELECT VALUE t.indexes FROM information_schema.user_tables AS t",
    );
    assert_eq!(tables.len(), 1);
    assert!(tables[0].to_string().contains("[VIN]"), "{}", tables[0]);
}

#[test]
fn at_most_five_indexes_per_table() {
    let fixture = Fixture::new();
    let ledger = fixture.ledger("l");
    run(&ledger, "CREATE TABLE T");
    for field in ["a", "b", "c", "d", "e"] {
        run(&ledger, &format!("CREATE INDEX ON T ({field})"));
    }
    assert!(matches!(
        ledger.execute("CREATE INDEX ON T (f)", &[]),
        Err(LedgerError::LimitExceeded(_))
    ));
}

#[test]
fn limits_are_enforced() {
    let limits = Limits {
        document_size_max_bytes: 64,
        documents_written_per_transaction_max: 3,
        ..Limits::default()
    };
    let fixture = Fixture::with_limits(limits);
    let ledger = fixture.ledger("l");
    run(&ledger, "CREATE TABLE T");
    let big = format!("INSERT INTO T VALUE {{'text': '{}'}}", "x".repeat(100));
    assert!(matches!(
        ledger.execute(&big, &[]),
        Err(LedgerError::LimitExceeded(_))
    ));
    assert!(matches!(
        ledger.execute(
            "INSERT INTO T << {'a': 1}, {'a': 2}, {'a': 3}, {'a': 4} >>",
            &[]
        ),
        Err(LedgerError::LimitExceeded(_))
    ));
    assert!(run(&ledger, "SELECT * FROM T").is_empty());
    run(&ledger, "INSERT INTO T << {'a': 1}, {'a': 2}, {'a': 3} >>");
}

/// `ion_rs` writes a decimal whose exponent needs more than 62 bits but does not read it back:
/// stored, it would make its block unreadable, and the ledger would not reopen. Such a value is
/// a bad request, as a parameter and as a literal, and the ledger goes on.
#[test]
fn a_decimal_that_ion_binary_cannot_hold_is_refused() {
    let mut fixture = Fixture::new();
    let ledger = fixture.ledger("l");
    run(&ledger, "CREATE TABLE T");
    let parameter = ion("{price: 1d4611686018427387904}");
    assert!(matches!(
        ledger.execute("INSERT INTO T VALUE ?", &[parameter]),
        Err(LedgerError::BadRequest(_))
    ));
    assert!(matches!(
        ledger.execute(
            "INSERT INTO T VALUE {'price': `-1d-4611686018427387904`}",
            &[]
        ),
        Err(LedgerError::BadRequest(_))
    ));
    run(
        &ledger,
        "INSERT INTO T VALUE {'price': `1d4611686018427387903`}",
    );
    drop(ledger);
    fixture.reopen();
    let ledger = fixture.ledgers.ledger("l").unwrap();
    assert_eq!(ledger.verify_chain(|_, _| {}).unwrap().blocks_verified, 2);
    assert_bag_eq(
        &run(&ledger, "SELECT * FROM T"),
        "{price: 1d4611686018427387903}",
    );
}

#[test]
fn default_limits_are_qldb_quotas() {
    let limits = Limits::default();
    assert_eq!(limits.document_size_max_bytes, 128 * 1024);
    assert_eq!(limits.documents_written_per_transaction_max, 40);
    assert_eq!(limits.transaction_timeout_ms, 30_000);
    assert_eq!(limits.indexes_per_table_max, 5);
}

#[test]
fn a_transaction_expires_after_the_timeout() {
    let fixture = Fixture::new();
    let ledger = fixture.ledger("l");
    run(&ledger, "CREATE TABLE T");
    let mut transaction = ledger.begin().unwrap();
    transaction
        .execute("INSERT INTO T VALUE {'a': 1}", &[])
        .unwrap();
    fixture.clock.advance_ms(30_001);
    assert!(matches!(
        transaction.execute("SELECT * FROM T", &[]),
        Err(LedgerError::TransactionExpired(_))
    ));
    assert!(matches!(
        transaction.commit(),
        Err(LedgerError::TransactionExpired(_))
    ));
    assert!(run(&ledger, "SELECT * FROM T").is_empty());
}

#[test]
fn syntax_errors_carry_line_and_column() {
    let fixture = Fixture::new();
    let ledger = fixture.ledger("l");
    match ledger.execute("SELECT * FROM\n  WHERE", &[]) {
        Err(LedgerError::Syntax { line, column, .. }) => {
            assert_eq!(line, 2);
            assert!(column >= 1);
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
    assert!(matches!(
        ledger.execute("SELECT * FROM Nope", &[]),
        Err(LedgerError::NotFound(_))
    ));
}

#[test]
fn ddl_in_a_transaction_conflicts_with_concurrent_ddl() {
    let fixture = Fixture::new();
    let ledger = fixture.ledger("l");
    let mut first = ledger.begin().unwrap();
    let mut second = ledger.begin().unwrap();
    first.execute("CREATE TABLE T", &[]).unwrap();
    second.execute("CREATE TABLE T", &[]).unwrap();
    first.commit().unwrap();
    assert!(matches!(second.commit(), Err(LedgerError::OccConflict(_))));
}

#[test]
fn drop_and_undrop_table() {
    let fixture = Fixture::new();
    let ledger = fixture.ledger("l");
    let created = run(&ledger, "CREATE TABLE T");
    let table_id = created[0]
        .as_struct()
        .unwrap()
        .get("tableId")
        .unwrap()
        .as_text()
        .unwrap()
        .to_owned();
    run(&ledger, "INSERT INTO T VALUE {'a': 1}");
    run(&ledger, "DROP TABLE T");
    assert!(matches!(
        ledger.execute("SELECT * FROM T", &[]),
        Err(LedgerError::NotFound(_))
    ));
    assert_bag_eq(
        &run(
            &ledger,
            "SELECT VALUE status FROM information_schema.user_tables",
        ),
        "\"DELETED\"",
    );
    run(&ledger, &format!("UNDROP TABLE \"{table_id}\""));
    assert_bag_eq(&run(&ledger, "SELECT VALUE a FROM T"), "1");
}

#[test]
fn concurrent_increments_with_retries_are_serializable() {
    const THREADS: usize = 4;
    const INCREMENTS_PER_THREAD: i64 = 10;
    let fixture = Fixture::new();
    let ledger = fixture.ledger("l");
    run(&ledger, "CREATE TABLE Counter");
    run(&ledger, "INSERT INTO Counter VALUE {'name': 'c', 'n': 0}");
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            let ledger = ledger.clone();
            scope.spawn(move || {
                for _ in 0..INCREMENTS_PER_THREAD {
                    ledger
                        .run_in_transaction(1_000, |transaction| {
                            let current = transaction
                                .execute("SELECT VALUE n FROM Counter WHERE name = 'c'", &[])?;
                            let value = current[0].as_i64().unwrap();
                            transaction.execute(
                                "UPDATE Counter SET n = ? WHERE name = 'c'",
                                &[ion(&(value + 1).to_string())],
                            )
                        })
                        .unwrap();
                }
            });
        }
    });
    assert_bag_eq(
        &run(&ledger, "SELECT VALUE n FROM Counter"),
        &(THREADS as i64 * INCREMENTS_PER_THREAD).to_string(),
    );
    ledger.verify_chain(|_, _| {}).unwrap();
}

#[test]
fn handles_cross_threads() {
    fn assert_send<T: Send>() {}
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send::<sluice_ledger::Transaction>();
    assert_send_sync::<sluice_ledger::Ledger>();
    assert_send_sync::<sluice_ledger::Ledgers>();
}

#[test]
fn commit_digest_is_checked_like_qldb_session() {
    let fixture = Fixture::new();
    let ledger = fixture.ledger("l");
    run(&ledger, "CREATE TABLE T");
    let statement = "INSERT INTO T VALUE ?";
    let parameter = ion("{a: 1}");
    // What a QLDB driver computes: dot-fold of Ion hashes of the id, statements and parameters.
    let driver_digest = |transaction_id: &str| {
        use sluice_ledger::hash::{dot_hashes, ion_hash};
        let statement_hash = dot_hashes(
            &ion_hash(&ion_rs::Element::string(statement)).unwrap(),
            &ion_hash(&parameter).unwrap(),
        );
        dot_hashes(
            &ion_hash(&ion_rs::Element::string(transaction_id)).unwrap(),
            &statement_hash,
        )
    };
    let mut transaction = ledger.begin().unwrap();
    transaction
        .execute(statement, std::slice::from_ref(&parameter))
        .unwrap();
    let wrong = driver_digest("not the id");
    assert!(matches!(
        transaction.commit_with_digest(&wrong),
        Err(LedgerError::BadRequest(_))
    ));
    let mut transaction = ledger.begin().unwrap();
    transaction
        .execute(statement, std::slice::from_ref(&parameter))
        .unwrap();
    let right = driver_digest(transaction.id());
    let commit = transaction.commit_with_digest(&right).unwrap();
    assert_eq!(commit.commit_digest, right);
}

/// The non-blocking commit an async server uses: the first submitter is told to lead, later
/// ones queue behind it, and one call of the leader commits them all as one group and delivers
/// every outcome; refusals and read-only transactions are delivered at once, without a group.
#[test]
fn submitted_commits_queue_until_their_leader_commits_them_as_one_group() {
    use sluice_ledger::{CommitDelivery, CommitSubmitted};
    let fixture = Fixture::new();
    let ledger = fixture.ledger("l");
    run(&ledger, "CREATE TABLE T");
    let blocks_before = ledger.committed_block_count().unwrap();
    let (sender, outcomes) = std::sync::mpsc::channel();
    let deliver = |n: usize| -> CommitDelivery {
        let sender = sender.clone();
        Box::new(move |outcome| sender.send((n, outcome)).unwrap())
    };
    let mut leader = None;
    for n in 0..5 {
        let mut transaction = ledger.begin().unwrap();
        transaction
            .execute(&format!("INSERT INTO T VALUE {{'n': {n}}}"), &[])
            .unwrap();
        let digest = transaction.commit_digest().unwrap();
        match transaction.submit_commit_with_digest(&digest, deliver(n)) {
            CommitSubmitted::Lead(to_lead) if n == 0 => leader = Some(to_lead),
            CommitSubmitted::Queued if n > 0 => {}
            other => panic!("transaction {n}: {other:?}"),
        }
    }
    assert!(
        outcomes.try_recv().is_err(),
        "nothing commits before the leader leads"
    );
    // A wrong digest and a read-only transaction are answered without the queue.
    let mut wrong = ledger.begin().unwrap();
    wrong.execute("INSERT INTO T VALUE {'n': 99}", &[]).unwrap();
    assert!(matches!(
        wrong.submit_commit_with_digest(b"not the digest", deliver(99)),
        CommitSubmitted::Delivered
    ));
    assert!(matches!(
        outcomes.try_recv(),
        Ok((99, Err(LedgerError::BadRequest(_))))
    ));
    let mut reader = ledger.begin().unwrap();
    reader.execute("SELECT * FROM T", &[]).unwrap();
    let digest = reader.commit_digest().unwrap();
    assert!(matches!(
        reader.submit_commit_with_digest(&digest, deliver(100)),
        CommitSubmitted::Delivered
    ));
    assert!(matches!(outcomes.try_recv(), Ok((100, Ok(result))) if result.block_address.is_none()));

    let leader = leader.expect("the first submitter leads");
    assert!(!leader.lead_commits(1), "one group took the whole queue");
    let mut delivered: Vec<usize> = (0..5)
        .map(|_| {
            let (n, outcome) = outcomes.try_recv().expect("every member is delivered");
            assert!(outcome.unwrap().block_address.is_some());
            n
        })
        .collect();
    delivered.sort_unstable();
    assert_eq!(delivered, vec![0, 1, 2, 3, 4]);
    assert_eq!(ledger.committed_block_count().unwrap(), blocks_before + 5);
    assert_eq!(run(&ledger, "SELECT VALUE COUNT(*) FROM T"), vec![ion("5")]);
    // Nobody leads now: the next submitter does.
    let mut next = ledger.begin().unwrap();
    next.execute("INSERT INTO T VALUE {'n': 5}", &[]).unwrap();
    let digest = next.commit_digest().unwrap();
    let CommitSubmitted::Lead(leader) = next.submit_commit_with_digest(&digest, deliver(5)) else {
        panic!("the next submitter leads");
    };
    assert!(!leader.lead_commits(usize::MAX));
    assert!(matches!(outcomes.try_recv(), Ok((5, Ok(_)))));
}

#[test]
fn lookups_by_document_id_read_only_that_document() {
    let fixture = Fixture::new();
    let ledger = fixture.ledger("l");
    run(&ledger, "CREATE TABLE T");
    let first = document_id(&run(&ledger, "INSERT INTO T VALUE {'n': 0}"));
    let second = document_id(&run(&ledger, "INSERT INTO T VALUE {'n': 0}"));
    let mut one = ledger.begin().unwrap();
    let mut two = ledger.begin().unwrap();
    one.execute(
        "UPDATE T AS t BY id SET t.n = 1 WHERE id = ?",
        &[ion_rs::Element::string(first.as_str())],
    )
    .unwrap();
    two.execute(
        "UPDATE T AS t BY id SET t.n = 2 WHERE id = ?",
        &[ion_rs::Element::string(second.as_str())],
    )
    .unwrap();
    one.commit().unwrap();
    two.commit().unwrap();
    assert_bag_eq(
        &ledger
            .execute(
                "SELECT VALUE t.n FROM T AS t BY id WHERE id = ?",
                &[ion_rs::Element::string(first.as_str())],
            )
            .unwrap(),
        "1",
    );
    assert!(run(&ledger, "SELECT * FROM T AS t BY id WHERE id = 'nope'").is_empty());
}

#[test]
fn drop_index_removes_it_and_its_entries() {
    let fixture = Fixture::new();
    let ledger = fixture.ledger("drop-index");
    run(&ledger, "CREATE TABLE T");
    run(&ledger, "CREATE INDEX ON T (k)");
    run(&ledger, "INSERT INTO T << {'k': 1}, {'k': 2} >>");
    let index_id = run(
        &ledger,
        "SELECT VALUE i.indexId FROM information_schema.user_tables AS t, t.indexes AS i",
    )[0]
    .as_text()
    .unwrap()
    .to_owned();
    run(&ledger, &format!("DROP INDEX \"{index_id}\" ON T"));
    assert!(
        run(
            &ledger,
            "SELECT VALUE t.indexes FROM information_schema.user_tables AS t"
        )[0]
        .as_sequence()
        .unwrap()
        .is_empty()
    );
    assert_bag_eq(&run(&ledger, "SELECT VALUE k FROM T WHERE k = 2"), "2");
    drop(ledger);
    fixture.ledgers.close_ledger("drop-index").unwrap();
    let database = redb::Database::open(
        fixture
            .dir
            .path()
            .join("ledgers/drop-index.ledger/state.redb"),
    )
    .unwrap();
    let read = redb::ReadableDatabase::begin_read(&database).unwrap();
    let entries = read
        .open_multimap_table(sluice_ledger::storage::INDEX_ENTRIES)
        .unwrap();
    assert_eq!(redb::ReadableTableMetadata::len(&entries).unwrap(), 0);
}

#[test]
fn transactions_share_the_catalog_until_one_changes_it() {
    let fixture = Fixture::new();
    let ledger = fixture.ledger("catalog");
    run(&ledger, "CREATE TABLE A");
    let mut changing = ledger.begin().unwrap();
    let watching = ledger.begin().unwrap();
    changing.execute("CREATE TABLE B", &[]).unwrap();
    // The catalog is ordered by table id, which is random: compare the names as a set.
    let names = |transaction: &sluice_ledger::Transaction| -> Vec<String> {
        let mut names: Vec<String> = transaction
            .tables()
            .iter()
            .map(|table| table.name.clone())
            .collect();
        names.sort();
        names
    };
    assert_eq!(names(&changing), ["A", "B"]);
    // The other transaction's catalog (shared at begin) did not change with it.
    assert_eq!(names(&watching), ["A"]);
    changing.commit().unwrap();
    assert_eq!(names(&watching), ["A"]);
    assert_eq!(names(&ledger.begin().unwrap()), ["A", "B"]);
    // A transaction that began at the old catalog version conflicts if it writes.
    let mut stale = watching;
    stale.execute("INSERT INTO A VALUE {'x': 1}", &[]).unwrap();
    assert!(matches!(stale.commit(), Err(LedgerError::OccConflict(_))));
}

/// A block's revisions are in the order the transaction's statements first wrote their
/// documents, also after a document it inserted was deleted again (which leaves no revision),
/// and the catalog's revisions of its DDL come after them.
#[test]
fn a_block_lists_revisions_in_the_order_they_were_written_and_the_catalog_last() {
    let fixture = Fixture::new();
    let ledger = fixture.ledger("l");
    run(&ledger, "CREATE TABLE T");
    let mut transaction = ledger.begin().unwrap();
    for k in 0..8 {
        transaction
            .execute(&format!("INSERT INTO T VALUE {{'k': {k}}}"), &[])
            .unwrap();
    }
    transaction
        .execute("DELETE FROM T WHERE k < 4", &[])
        .unwrap();
    for k in 8..12 {
        transaction
            .execute(&format!("INSERT INTO T VALUE {{'k': {k}}}"), &[])
            .unwrap();
    }
    transaction.execute("CREATE TABLE U", &[]).unwrap();
    let committed = transaction.commit().unwrap();
    let sequence_no = committed.block_address.unwrap().sequence_no;
    let block = ledger.committed_blocks(sequence_no, 1).unwrap().remove(0);
    let revisions = block
        .block
        .as_struct()
        .and_then(|block| block.get("revisions"))
        .and_then(|revisions| revisions.as_sequence())
        .expect("a block with revisions")
        .elements()
        .map(|revision| {
            let data = revision.as_struct().unwrap().get("data").unwrap();
            let data = data.as_struct().unwrap();
            match data.get("k") {
                Some(k) => k.to_string(),
                None => data.get("name").unwrap().to_string(),
            }
        })
        .collect::<Vec<_>>();
    assert_eq!(
        revisions,
        ["4", "5", "6", "7", "8", "9", "10", "11", "\"U\""],
        "the documents in statement order, then the new table"
    );
}
