//! Whole blocks, in order, out of journal stream records that arrive duplicated and reordered
//! (QLDB's streams are at least once, and a consumer may read them in any order): a
//! `BLOCK_SUMMARY` and the `REVISION_DETAILS` of each of its user revisions make one
//! [`ReplicaBlock`], released only when it is the next block the replica needs and every one of
//! its revisions has arrived. A block past a gap waits; when the gap lasts longer than the
//! settling window, [`BlockAssembler::next_block`] reports the missing block instead of
//! applying anything out of order (the caller reads the source again from its position).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ion_rs::{Element, Struct};
use sluice_ledger::transaction::CATALOG_TABLE_ID;

use crate::replica::{ReplicaBlock, ReplicaError};

/// How long a block past a gap waits for the missing one before the gap is reported:
/// scenario 5's settling buffer of two minutes.
pub const SETTLING_WINDOW_DEFAULT: Duration = Duration::from_secs(120);
/// Blocks held past a gap (summaries and details). At the limit, records of further blocks are
/// dropped, not held: they are read again once the gap closes, since the caller's position only
/// moves past applied blocks.
pub const PENDING_BLOCKS_MAX: usize = 4_096;

#[derive(Default)]
struct PendingBlock {
    /// The `BLOCK_SUMMARY` payload, once it arrived.
    summary: Option<Element>,
    /// Revisions from `REVISION_DETAILS`, one per revision hash.
    revisions: Vec<Element>,
}

/// Assembles one source strand's blocks from its stream records.
pub struct BlockAssembler {
    next_sequence_no: u64,
    settling_window: Duration,
    pending: BTreeMap<u64, PendingBlock>,
    /// Since when a block past the next one has been waiting.
    waiting_since: Option<Instant>,
    /// Whether a record was dropped at [`PENDING_BLOCKS_MAX`]: the caller must read the records
    /// again once the gap closes.
    dropped: bool,
}

fn field<'a>(element: &'a Element, name: &str) -> Option<&'a Element> {
    element.as_struct().and_then(|fields| fields.get(name))
}

fn sequence_no_of(address: Option<&Element>) -> Option<u64> {
    address
        .and_then(|address| field(address, "sequenceNo"))
        .and_then(Element::as_i64)
        .and_then(|sequence_no| u64::try_from(sequence_no).ok())
}

impl BlockAssembler {
    /// An assembler that releases blocks from `next_sequence_no` (the replica's position).
    pub fn new(next_sequence_no: u64, settling_window: Duration) -> Self {
        BlockAssembler {
            next_sequence_no,
            settling_window,
            pending: BTreeMap::new(),
            waiting_since: None,
            dropped: false,
        }
    }

    /// The next block it releases.
    pub fn next_sequence_no(&self) -> u64 {
        self.next_sequence_no
    }

    /// One past the highest block any record named so far (at least the next block it
    /// releases): how far the source is known to be.
    pub fn seen_next_sequence_no(&self) -> u64 {
        self.pending
            .keys()
            .next_back()
            .map_or(self.next_sequence_no, |last| {
                last.saturating_add(1).max(self.next_sequence_no)
            })
    }

    /// Whether records were dropped because [`PENDING_BLOCKS_MAX`] blocks were held: the
    /// records must be read again from the position for the blocks after the gap to complete.
    pub fn has_dropped(&self) -> bool {
        self.dropped
    }

    /// Takes one decoded (de-aggregated) stream record. `CONTROL` records, records of blocks
    /// already released and duplicates change nothing.
    pub fn add(&mut self, record: &Element) -> Result<(), ReplicaError> {
        let malformed = |what: &str| ReplicaError::Malformed(format!("stream record: {what}"));
        let record_type = field(record, "recordType")
            .and_then(Element::as_text)
            .ok_or_else(|| malformed("no recordType"))?;
        let payload = field(record, "payload").ok_or_else(|| malformed("no payload"))?;
        let (sequence_no, revision) = match record_type {
            "BLOCK_SUMMARY" => (sequence_no_of(field(payload, "blockAddress")), None),
            "REVISION_DETAILS" => {
                let revision =
                    field(payload, "revision").ok_or_else(|| malformed("no revision"))?;
                (
                    sequence_no_of(field(revision, "blockAddress")),
                    Some(revision),
                )
            }
            _ => return Ok(()),
        };
        let sequence_no = sequence_no.ok_or_else(|| malformed("no block address"))?;
        if sequence_no < self.next_sequence_no {
            return Ok(());
        }
        if !self.pending.contains_key(&sequence_no) && self.pending.len() >= PENDING_BLOCKS_MAX {
            self.dropped = true;
            return Ok(());
        }
        let pending = self.pending.entry(sequence_no).or_default();
        match revision {
            None => pending.summary = Some(payload.clone()),
            Some(revision) => {
                let hash = field(revision, "hash");
                if !pending
                    .revisions
                    .iter()
                    .any(|held| field(held, "hash") == hash)
                {
                    pending.revisions.push(revision.clone());
                }
            }
        }
        Ok(())
    }

    /// The next block when it is whole; `Ok(None)` while it is missing or incomplete within
    /// the settling window; an error naming it once blocks after it have waited longer.
    pub fn next_block(&mut self, now: Instant) -> Result<Option<ReplicaBlock>, ReplicaError> {
        if let Some(block) = self.take_whole()? {
            self.next_sequence_no += 1;
            self.waiting_since = None;
            return Ok(Some(block));
        }
        if self.pending.is_empty() {
            self.waiting_since = None;
            return Ok(None);
        }
        let since = *self.waiting_since.get_or_insert(now);
        if now.saturating_duration_since(since) > self.settling_window {
            return Err(ReplicaError::MissingBlock {
                sequence_no: self.next_sequence_no,
                waited: self.settling_window,
            });
        }
        Ok(None)
    }

    fn take_whole(&mut self) -> Result<Option<ReplicaBlock>, ReplicaError> {
        let Some(pending) = self.pending.get(&self.next_sequence_no) else {
            return Ok(None);
        };
        let Some(summary) = &pending.summary else {
            return Ok(None);
        };
        let documents = field(summary, "transactionInfo")
            .and_then(|info| field(info, "documents"))
            .and_then(Element::as_struct);
        let mut revisions = Vec::new();
        if let Some(summaries) = field(summary, "revisionSummaries").and_then(Element::as_sequence)
        {
            for revision_summary in summaries.elements() {
                let Some(document_id) =
                    field(revision_summary, "documentId").and_then(Element::as_text)
                else {
                    continue;
                };
                let is_user_table = documents
                    .and_then(|documents| documents.get(document_id))
                    .and_then(|document| field(document, "tableId"))
                    .and_then(Element::as_text)
                    .is_some_and(|table_id| table_id != CATALOG_TABLE_ID);
                if !is_user_table {
                    continue;
                }
                let hash = field(revision_summary, "hash");
                match pending
                    .revisions
                    .iter()
                    .find(|revision| field(revision, "hash") == hash)
                {
                    Some(revision) => revisions.push(revision.clone()),
                    None => return Ok(None),
                }
            }
        }
        let mut block = Struct::builder();
        if let Some(fields) = summary.as_struct() {
            for (name, value) in fields.iter() {
                if let Some(name) = name.text()
                    && name != "revisionSummaries"
                {
                    block = block.with_field(name, value.clone());
                }
            }
        }
        block = block.with_field("revisions", sluice_ledger::model::list_element(revisions));
        let block = ReplicaBlock::from_block(&Element::from(block.build()))?;
        self.pending.remove(&self.next_sequence_no);
        Ok(Some(block))
    }
}
