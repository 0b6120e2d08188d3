//! Journal stream records in the shapes QLDB streams to Kinesis: `CONTROL`, `BLOCK_SUMMARY` and
//! `REVISION_DETAILS` (see `vectors/qldb-hashing.md`), their partition keys, and the reader of
//! committed blocks ([`Ledger::committed_blocks`]) that journal streams follow. The node's
//! journal-stream workers move the records; this module only shapes them from blocks.

use ion_rs::{Element, Struct};
use time::OffsetDateTime;

use crate::error::LedgerError;
use crate::ledger::Ledger;
use crate::model;
use crate::transaction::CATALOG_TABLE_ID;

/// `{qldbStreamArn, recordType: "CONTROL", payload: {controlRecordType}}`, with
/// `controlRecordType` `CREATED`, `COMPLETED` or `CANCELLED`.
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
    let mut summaries = Vec::new();
    let mut details = Vec::new();
    for revision in block_revisions(block)? {
        let mut revision_summary = Struct::builder();
        if let Some(hash) = revision.fields.get("hash") {
            revision_summary = revision_summary.with_field("hash", hash.clone());
        }
        if let Some(document_id) = revision.document_id {
            revision_summary =
                revision_summary.with_field("documentId", Element::string(document_id));
        }
        summaries.push(Element::from(revision_summary.build()));
        if let Some(table) = revision.user_table() {
            let table_info = Element::from(
                Struct::builder()
                    .with_field("tableName", Element::string(table.name))
                    .with_field("tableId", Element::string(table.id))
                    .build(),
            );
            details.push(record(
                stream_arn,
                "REVISION_DETAILS",
                Element::from(
                    Struct::builder()
                        .with_field("tableInfo", table_info)
                        .with_field("revision", revision.element.clone())
                        .build(),
                ),
            ));
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

/// A revision of a block, borrowed from it, with what the block says about its table.
#[derive(Debug, Clone, Copy)]
pub struct BlockRevision<'a> {
    /// The whole revision (`blockAddress`, `hash`, and `data` and `metadata` unless it is
    /// hash-only).
    pub element: &'a Element,
    /// Its fields.
    pub fields: &'a Struct,
    /// `metadata.id`; `None` for a hash-only revision.
    pub document_id: Option<&'a str>,
    /// Its table, from the block's `transactionInfo.documents`.
    table: Option<RevisionTable<'a>>,
}

/// The table a revision belongs to.
#[derive(Debug, Clone, Copy)]
pub struct RevisionTable<'a> {
    pub name: &'a str,
    pub id: &'a str,
}

impl<'a> BlockRevision<'a> {
    /// Its table, unless it is a revision of the catalog (a table's own definition) or has
    /// none: what journal streams detail in `REVISION_DETAILS` records.
    pub fn user_table(&self) -> Option<RevisionTable<'a>> {
        self.table.filter(|table| table.id != CATALOG_TABLE_ID)
    }
}

/// Every revision of a block in order, borrowed, each with its table: what journal streams and
/// the ledger's indexing into search read from a block, without copying it.
pub fn block_revisions(block: &Element) -> Result<Vec<BlockRevision<'_>>, LedgerError> {
    let fields = model::expect_struct(block, "block")?;
    let documents = fields
        .get("transactionInfo")
        .and_then(Element::as_struct)
        .and_then(|info| info.get("documents"))
        .and_then(Element::as_struct);
    let Some(revisions) = fields.get("revisions").and_then(Element::as_sequence) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(revisions.len());
    for element in revisions.elements() {
        let revision_fields = model::expect_struct(element, "revision")?;
        let document_id = revision_fields
            .get("metadata")
            .and_then(Element::as_struct)
            .and_then(|metadata| metadata.get("id"))
            .and_then(Element::as_text);
        let table = document_id
            .and_then(|id| documents.and_then(|documents| documents.get(id)))
            .and_then(Element::as_struct)
            .map(|table| {
                let id = model::field_text(table, "tableId")?;
                // The catalog's own entries need no name: they are never detailed.
                let name = if id == CATALOG_TABLE_ID {
                    table
                        .get("tableName")
                        .and_then(Element::as_text)
                        .unwrap_or("")
                } else {
                    model::field_text(table, "tableName")?
                };
                Ok::<_, LedgerError>(RevisionTable { name, id })
            })
            .transpose()?;
        out.push(BlockRevision {
            element,
            fields: revision_fields,
            document_id,
            table,
        });
    }
    Ok(out)
}

/// A block committed to the journal, as journal streams read it.
#[derive(Debug, Clone)]
pub struct CommittedBlock {
    /// Its sequence number on the ledger's strand.
    pub sequence_no: u64,
    /// Its `blockTimestamp`: the time of its commit.
    pub timestamp: OffsetDateTime,
    /// The whole block.
    pub block: Element,
    /// Its size as Ion binary (what its journal frame holds, before compression or sealing).
    pub stored_bytes: usize,
}

/// The partition key of a stream record. QLDB does not document its keys; these keep what a
/// consumer needs in order on one shard: a document's revisions share its id, a block summary
/// is keyed by its transaction, control records by the journal stream's id.
pub fn partition_key(record: &Element, journal_stream_id: &str) -> String {
    let fields = record.as_struct();
    let payload = fields
        .and_then(|fields| fields.get("payload"))
        .and_then(Element::as_struct);
    let record_type = fields
        .and_then(|fields| fields.get("recordType"))
        .and_then(Element::as_text);
    let key = match record_type {
        Some("REVISION_DETAILS") => payload
            .and_then(|payload| payload.get("revision"))
            .and_then(Element::as_struct)
            .and_then(|revision| revision.get("metadata"))
            .and_then(Element::as_struct)
            .and_then(|metadata| metadata.get("id"))
            .and_then(Element::as_text),
        Some("BLOCK_SUMMARY") => payload
            .and_then(|payload| payload.get("transactionId"))
            .and_then(Element::as_text),
        _ => None,
    };
    key.unwrap_or(journal_stream_id).to_owned()
}

impl Ledger {
    /// The time by the ledger's clock, the one that stamps `blockTimestamp`: a journal stream
    /// compares its end time with it.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// How many blocks are committed: durable in the journal and applied to the state.
    pub fn committed_block_count(&self) -> Result<u64, LedgerError> {
        let read = self.snapshot();
        let meta = read.open_table(crate::storage::META)?;
        crate::storage::meta_u64(&meta, crate::storage::APPLIED_BLOCK_COUNT_KEY)
    }

    /// The committed blocks from `first_sequence_no`, in order, at most `blocks_max` of them
    /// (empty when none is committed there yet). This is the stable API journal streams read
    /// the journal through: a block is returned only once its journal frame is fsynced and its
    /// state applied, never a block a crash could take back, and blocks never change, so a
    /// reader that remembers the next sequence number it wants can stop and resume anywhere.
    pub fn committed_blocks(
        &self,
        first_sequence_no: u64,
        blocks_max: usize,
    ) -> Result<Vec<CommittedBlock>, LedgerError> {
        self.committed_blocks_within(first_sequence_no, blocks_max, usize::MAX)
    }

    /// [`Self::committed_blocks`], stopping after the block that brings what was read past
    /// `stored_bytes_max` bytes of journal (at least one block is read).
    pub fn committed_blocks_within(
        &self,
        first_sequence_no: u64,
        blocks_max: usize,
        stored_bytes_max: usize,
    ) -> Result<Vec<CommittedBlock>, LedgerError> {
        let mut blocks = Vec::new();
        if blocks_max == 0 {
            return Ok(blocks);
        }
        let mut sequence_no = first_sequence_no;
        let mut stored_bytes = 0usize;
        self.for_each_stored_block(first_sequence_no, |block, size| {
            stored_bytes = stored_bytes.saturating_add(size);
            let timestamp = model::expect_struct(&block, "block")?
                .get("blockTimestamp")
                .and_then(Element::as_timestamp)
                .ok_or_else(|| LedgerError::Storage("block without timestamp".to_owned()))?;
            blocks.push(CommittedBlock {
                stored_bytes: size,
                sequence_no,
                timestamp: model::datetime_from_timestamp(&timestamp)?,
                block,
            });
            sequence_no += 1;
            Ok(
                if blocks.len() >= blocks_max || stored_bytes >= stored_bytes_max {
                    std::ops::ControlFlow::Break(())
                } else {
                    std::ops::ControlFlow::Continue(())
                },
            )
        })?;
        Ok(blocks)
    }

    /// The sequence number of the first committed block stamped at or after `instant` (the
    /// committed block count when there is none), found by bisection: block timestamps never go
    /// backwards (a commit stamps at least its predecessor's time). Journal streams start there
    /// instead of reading the whole journal before their `InclusiveStartTime`.
    pub fn first_committed_block_at_or_after(
        &self,
        instant: OffsetDateTime,
    ) -> Result<u64, LedgerError> {
        let read = self.snapshot();
        let meta = read.open_table(crate::storage::META)?;
        let mut high = crate::storage::meta_u64(&meta, crate::storage::APPLIED_BLOCK_COUNT_KEY)?;
        let mut low = 0u64;
        while low < high {
            let middle = low + (high - low) / 2;
            let block = self.read_block(&read, middle)?;
            let timestamp = model::expect_struct(&block, "block")?
                .get("blockTimestamp")
                .and_then(Element::as_timestamp)
                .ok_or_else(|| LedgerError::Storage("block without timestamp".to_owned()))?;
            if model::datetime_from_timestamp(&timestamp)? < instant {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        Ok(low)
    }

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
