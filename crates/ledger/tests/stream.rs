//! Journal stream records: BLOCK_SUMMARY and REVISION_DETAILS in QLDB's shapes.

mod common;

use common::*;
use sluice_ledger::stream;

#[test]
fn blocks_become_summary_and_revision_detail_records() {
    let fixture = Fixture::new();
    let ledger = fixture.ledger("l");
    run(&ledger, "CREATE TABLE T");
    let inserted = run(&ledger, "INSERT INTO T VALUE {'a': 1}");
    let arn = "arn:aws:qldb:us-east-1:000000000000:stream/l/s1";
    let records = ledger.stream_records(arn, 1, None).unwrap();
    assert_eq!(records.len(), 2);
    let summary = records[0].as_struct().unwrap();
    assert_eq!(summary.get("qldbStreamArn").unwrap().as_text(), Some(arn));
    assert_eq!(
        summary.get("recordType").unwrap().as_text(),
        Some("BLOCK_SUMMARY")
    );
    let payload = summary.get("payload").unwrap().as_struct().unwrap();
    for name in [
        "blockAddress",
        "transactionId",
        "blockTimestamp",
        "blockHash",
        "entriesHash",
        "previousBlockHash",
        "entriesHashList",
        "transactionInfo",
        "revisionSummaries",
    ] {
        assert!(payload.get(name).is_some(), "summary lacks {name}");
    }
    let summaries = payload
        .get("revisionSummaries")
        .unwrap()
        .as_sequence()
        .unwrap();
    assert_eq!(summaries.len(), 1);
    assert_eq!(
        summaries
            .get(0)
            .unwrap()
            .as_struct()
            .unwrap()
            .get("documentId")
            .unwrap()
            .as_text(),
        Some(document_id(&inserted).as_str())
    );
    let details = records[1].as_struct().unwrap();
    assert_eq!(
        details.get("recordType").unwrap().as_text(),
        Some("REVISION_DETAILS")
    );
    let payload = details.get("payload").unwrap().as_struct().unwrap();
    let table_info = payload.get("tableInfo").unwrap().as_struct().unwrap();
    assert_eq!(table_info.get("tableName").unwrap().as_text(), Some("T"));
    let revision = payload.get("revision").unwrap().as_struct().unwrap();
    assert_eq!(revision.get("data").unwrap(), &ion("{a: 1}"));
    // The CREATE TABLE block has a catalog revision: summarized, not detailed.
    let first = ledger.stream_records(arn, 0, None).unwrap();
    assert_eq!(first.len(), 3);
    assert_eq!(
        stream::control_record(arn, "COMPLETED"),
        ion(&format!(
            "{{qldbStreamArn: \"{arn}\", recordType: \"CONTROL\", payload: {{controlRecordType: \"COMPLETED\"}}}}"
        ))
    );
    let end = time::macros::datetime!(2024-01-02 03:04:05.678 UTC);
    assert!(ledger.stream_records(arn, 0, Some(end)).unwrap().is_empty());
}

#[test]
fn committed_blocks_are_read_in_order_from_any_sequence_number() {
    let fixture = Fixture::new();
    let ledger = fixture.ledger("l");
    assert_eq!(ledger.committed_block_count().unwrap(), 0);
    assert!(ledger.committed_blocks(0, 10).unwrap().is_empty());
    run(&ledger, "CREATE TABLE T");
    for value in 0..4 {
        run(&ledger, &format!("INSERT INTO T VALUE {{'a': {value}}}"));
    }
    assert_eq!(ledger.committed_block_count().unwrap(), 5);
    let all = ledger.committed_blocks(0, 100).unwrap();
    assert_eq!(
        all.iter()
            .map(|block| block.sequence_no)
            .collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
    assert!(
        all.windows(2)
            .all(|pair| pair[0].timestamp <= pair[1].timestamp)
    );
    let page = ledger.committed_blocks(2, 2).unwrap();
    assert_eq!(
        page.iter()
            .map(|block| block.sequence_no)
            .collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert_eq!(page[0].block, all[2].block);
    assert!(ledger.committed_blocks(5, 10).unwrap().is_empty());
    // A byte budget stops after the block that reaches it, and reads one block at least.
    assert!(all.iter().all(|block| block.stored_bytes > 0));
    let budget = all[1].stored_bytes + all[2].stored_bytes;
    let within = ledger.committed_blocks_within(1, 100, budget).unwrap();
    assert_eq!(
        within
            .iter()
            .map(|block| block.sequence_no)
            .collect::<Vec<_>>(),
        vec![1, 2]
    );
    let one = ledger.committed_blocks_within(1, 100, 1).unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].block, all[1].block);
    for block in &all {
        assert!(
            ledger
                .first_committed_block_at_or_after(block.timestamp)
                .unwrap()
                <= block.sequence_no
        );
        let first = ledger
            .first_committed_block_at_or_after(block.timestamp)
            .unwrap();
        assert_eq!(all[first as usize].timestamp, block.timestamp);
    }
    assert_eq!(
        ledger
            .first_committed_block_at_or_after(time::OffsetDateTime::UNIX_EPOCH)
            .unwrap(),
        0
    );
    let after = all[4].timestamp + time::Duration::seconds(1);
    assert_eq!(ledger.first_committed_block_at_or_after(after).unwrap(), 5);
    assert!(ledger.committed_blocks(2, 0).unwrap().is_empty());

    let arn = "arn:aws:qldb:us-east-1:000000000000:stream/l/s1";
    let records = stream::block_records(arn, &all[1].block).unwrap();
    let transaction_id = records[0]
        .as_struct()
        .unwrap()
        .get("payload")
        .unwrap()
        .as_struct()
        .unwrap()
        .get("transactionId")
        .unwrap()
        .as_text()
        .unwrap()
        .to_owned();
    assert_eq!(stream::partition_key(&records[0], "sid"), transaction_id);
    let document_id = records[1]
        .as_struct()
        .unwrap()
        .get("payload")
        .unwrap()
        .as_struct()
        .unwrap()
        .get("revision")
        .unwrap()
        .as_struct()
        .unwrap()
        .get("metadata")
        .unwrap()
        .as_struct()
        .unwrap()
        .get("id")
        .unwrap()
        .as_text()
        .unwrap()
        .to_owned();
    assert_eq!(stream::partition_key(&records[1], "sid"), document_id);
    assert_eq!(
        stream::partition_key(&stream::control_record(arn, "CREATED"), "sid"),
        "sid"
    );
}
