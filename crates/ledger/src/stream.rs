//! Journal stream records in the shapes QLDB streams to Kinesis: `CONTROL`, `BLOCK_SUMMARY` and
//! `REVISION_DETAILS` (see `vectors/qldb-hashing.md`). The delivery layer moves them; this module
//! only shapes them from blocks.

use ion_rs::{Element, Struct};
use time::OffsetDateTime;

use crate::error::LedgerError;
use crate::ledger::Ledger;
use crate::model;
use crate::transaction::CATALOG_TABLE_ID;

/// `{qldbStreamArn, recordType: "CONTROL", payload: {controlRecordType}}`, with
/// `controlRecordType` `CREATED` or `COMPLETED`.
pub fn control_record(stream_arn: &str, control_record_type: &str) -> Element {
    record(
        stream_arn,
        "CONTROL",
        Element::from(
            Struct::builder()
                .with_field("controlRecordType", Element::string(control_record_type))
                .build(),
        ),
    )
}

fn record(stream_arn: &str, record_type: &str, payload: Element) -> Element {
    Element::from(
        Struct::builder()
            .with_field("qldbStreamArn", Element::string(stream_arn))
            .with_field("recordType", Element::string(record_type))
            .with_field("payload", payload)
            .build(),
    )
}

/// The `BLOCK_SUMMARY` record of a block followed by one `REVISION_DETAILS` record per user
/// revision (catalog revisions and hash-only revisions are summarized but not detailed).
pub fn block_records(stream_arn: &str, block: &Element) -> Result<Vec<Element>, LedgerError> {
    let fields = model::expect_struct(block, "block")?;
    let mut summary = Struct::builder();
    for name in [
        "blockAddress",
        "transactionId",
        "blockTimestamp",
        "blockHash",
        "entriesHash",
        "previousBlockHash",
        "entriesHashList",
        "transactionInfo",
    ] {
        if let Some(value) = fields.get(name) {
            summary = summary.with_field(name, value.clone());
        }
    }
    let documents = fields
        .get("transactionInfo")
        .and_then(Element::as_struct)
        .and_then(|info| info.get("documents"))
        .and_then(Element::as_struct);
    let mut summaries = Vec::new();
    let mut details = Vec::new();
    if let Some(revisions) = fields.get("revisions").and_then(Element::as_sequence) {
        for revision in revisions.elements() {
            let revision_fields = model::expect_struct(revision, "revision")?;
            let document_id = revision_fields
                .get("metadata")
                .and_then(Element::as_struct)
                .and_then(|metadata| metadata.get("id"))
                .and_then(Element::as_text);
            let mut revision_summary = Struct::builder();
            if let Some(hash) = revision_fields.get("hash") {
                revision_summary = revision_summary.with_field("hash", hash.clone());
            }
            if let Some(document_id) = document_id {
                revision_summary =
                    revision_summary.with_field("documentId", Element::string(document_id));
            }
            summaries.push(Element::from(revision_summary.build()));
            let table = document_id
                .and_then(|id| documents.and_then(|documents| documents.get(id)))
                .and_then(Element::as_struct);
            if let Some(table) = table {
                let table_id = model::field_text(table, "tableId")?;
                if table_id == CATALOG_TABLE_ID {
                    continue;
                }
                let table_info = Element::from(
                    Struct::builder()
                        .with_field(
                            "tableName",
                            Element::string(model::field_text(table, "tableName")?),
                        )
                        .with_field("tableId", Element::string(table_id))
                        .build(),
                );
                details.push(record(
                    stream_arn,
                    "REVISION_DETAILS",
                    Element::from(
                        Struct::builder()
                            .with_field("tableInfo", table_info)
                            .with_field("revision", revision.clone())
                            .build(),
                    ),
                ));
            }
        }
    }
    summary = summary.with_field("revisionSummaries", model::list_element(summaries));
    let mut records = vec![record(
        stream_arn,
        "BLOCK_SUMMARY",
        Element::from(summary.build()),
    )];
    records.extend(details);
    Ok(records)
}

impl Ledger {
    /// The stream records of the blocks from `first_sequence_no` whose `blockTimestamp` is
    /// before `exclusive_end_time` (all when `None`), in journal order, without control records.
    pub fn stream_records(
        &self,
        stream_arn: &str,
        first_sequence_no: u64,
        exclusive_end_time: Option<OffsetDateTime>,
    ) -> Result<Vec<Element>, LedgerError> {
        let mut records = Vec::new();
        self.for_each_block(first_sequence_no, |block| {
            if let Some(end) = exclusive_end_time {
                let timestamp = model::expect_struct(&block, "block")?
                    .get("blockTimestamp")
                    .and_then(Element::as_timestamp)
                    .ok_or_else(|| LedgerError::Storage("block without timestamp".to_owned()))?;
                if model::datetime_from_timestamp(&timestamp)? >= end {
                    return Ok(std::ops::ControlFlow::Break(()));
                }
            }
            records.extend(block_records(stream_arn, &block)?);
            Ok(std::ops::ControlFlow::Continue(()))
        })?;
        Ok(records)
    }
}
