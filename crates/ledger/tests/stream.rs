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
