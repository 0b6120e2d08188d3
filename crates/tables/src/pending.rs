//! What a write group reads and writes, without writing redb.
//!
//! A leader computes its group's rows against the latest state: redb as of a snapshot, under
//! the rows logged but not yet applied to redb ([`Pending`]), under the rows of its own group so
//! far ([`Staged`]). Only the rows a write reads back are kept in memory: items, table counts
//! and stream sequence numbers (stream records and index entries are only ever added or
//! removed by key). Once the group's log record is on disk its staged rows join the pending
//! ones under its number; rows redb has applied are forgotten at the start of the next group.
//! A group that fails before its record is on disk drops its staged rows, so nothing of it is
//! seen.

use std::collections::HashMap;

use redb::ReadOnlyTable;

use crate::codec::decode_item;
use crate::error::Result;
use crate::value::Item;
use crate::wal::{Redo, Row};

/// Items by table id and key bytes: their stored bytes, or None when removed.
type ItemRows<V> = HashMap<u64, HashMap<Vec<u8>, V>>;

/// Rows logged and not yet applied to redb, each with the number of the record that last
/// wrote it.
#[derive(Default)]
pub(crate) struct Pending {
    items: ItemRows<(u64, Option<Vec<u8>>)>,
    counts: HashMap<u64, (u64, (u64, u64))>,
    stream_next: HashMap<u64, (u64, u64)>,
    /// Item rows held, and the number of the last record merged.
    item_rows: usize,
    last: u64,
}

impl Pending {
    /// Item rows held: the leader waits for redb to catch up when this grows large.
    pub(crate) fn item_rows(&self) -> usize {
        self.item_rows
    }

    /// Forgets the rows of records up to `applied`, which redb now holds.
    pub(crate) fn forget_applied(&mut self, applied: u64) {
        if applied >= self.last {
            self.clear();
            return;
        }
        let mut item_rows = 0;
        self.items.retain(|_, rows| {
            rows.retain(|_, (lsn, _)| *lsn > applied);
            item_rows += rows.len();
            !rows.is_empty()
        });
        self.item_rows = item_rows;
        self.counts.retain(|_, (lsn, _)| *lsn > applied);
        self.stream_next.retain(|_, (lsn, _)| *lsn > applied);
    }

    /// Forgets every row: redb holds them all (or the tables refuse writes).
    pub(crate) fn clear(&mut self) {
        self.items.clear();
        self.counts.clear();
        self.stream_next.clear();
        self.item_rows = 0;
    }

    /// Takes a group's rows as those of record `lsn`, now on disk.
    pub(crate) fn merge(&mut self, staged: Staged, lsn: u64) {
        for (table, rows) in staged.items {
            let held = self.items.entry(table).or_default();
            for (key, value) in rows {
                if held.insert(key, (lsn, value)).is_none() {
                    self.item_rows += 1;
                }
            }
        }
        for (id, counts) in staged.counts {
            self.counts.insert(id, (lsn, counts));
        }
        for (id, next) in staged.stream_next {
            self.stream_next.insert(id, (lsn, next));
        }
        self.last = lsn;
    }
}

/// One group's rows so far, for its own later members to read.
#[derive(Default)]
pub(crate) struct Staged {
    items: ItemRows<Option<Vec<u8>>>,
    counts: HashMap<u64, (u64, u64)>,
    stream_next: HashMap<u64, u64>,
}

/// The redb tables a group reads, in one snapshot.
pub(crate) struct Snapshot {
    pub(crate) items: ReadOnlyTable<(u64, &'static [u8]), &'static [u8]>,
    pub(crate) counts: ReadOnlyTable<u64, (u64, u64)>,
    pub(crate) stream_next: ReadOnlyTable<u64, u64>,
}

/// The latest state as a group sees it, and where its rows go: the log record's [`Redo`] and
/// the [`Staged`] rows.
pub(crate) struct GroupView<'a> {
    pub(crate) snapshot: &'a Snapshot,
    pub(crate) pending: &'a Pending,
    pub(crate) staged: &'a mut Staged,
    pub(crate) redo: &'a mut Redo,
}

impl GroupView<'_> {
    /// The item at `key` of table `table`, as of the group so far.
    pub(crate) fn item(&self, table: u64, key: &[u8]) -> Result<Option<Item>> {
        let staged = self.staged.items.get(&table).and_then(|rows| rows.get(key));
        let latest = match staged {
            Some(value) => Some(value.as_deref()),
            None => (self.pending.items.get(&table))
                .and_then(|rows| rows.get(key))
                .map(|(_, value)| value.as_deref()),
        };
        match latest {
            Some(Some(bytes)) => Ok(Some(decode_item(bytes)?)),
            Some(None) => Ok(None),
            None => self
                .snapshot
                .items
                .get((table, key))?
                .map(|bytes| decode_item(bytes.value()))
                .transpose(),
        }
    }

    /// A table's or an index's (item count, size in bytes).
    pub(crate) fn counts(&self, id: u64) -> Result<(u64, u64)> {
        match latest(&self.staged.counts, &self.pending.counts, id) {
            Some(counts) => Ok(counts),
            None => Ok((self.snapshot.counts.get(id)?).map_or((0, 0), |value| value.value())),
        }
    }

    /// The sequence number a stream's next record gets.
    pub(crate) fn stream_next(&self, stream: u64) -> Result<u64> {
        match latest(&self.staged.stream_next, &self.pending.stream_next, stream) {
            Some(next) => Ok(next),
            None => Ok((self.snapshot.stream_next.get(stream)?).map_or(1, |value| value.value())),
        }
    }

    /// Writes one row: into the log record, and among the staged rows when a later write may
    /// read it.
    pub(crate) fn apply(&mut self, row: Row<'_>) {
        match row {
            Row::PutItem(table, key, value) => {
                (self.staged.items.entry(table).or_default())
                    .insert(key.to_vec(), Some(value.to_vec()));
            }
            Row::RemoveItem(table, key) => {
                (self.staged.items.entry(table).or_default()).insert(key.to_vec(), None);
            }
            Row::PutCounts(id, count, size) => {
                self.staged.counts.insert(id, (count, size));
            }
            Row::PutStreamNext(stream, next) => {
                self.staged.stream_next.insert(stream, next);
            }
            Row::PutRecord(..) | Row::PutIndexEntry(..) | Row::RemoveIndexEntry(..) => {}
        }
        self.redo.push(&row);
    }
}

/// A row's value as of the group so far, when the group or a pending record wrote it.
fn latest<V: Copy>(
    staged: &HashMap<u64, V>,
    pending: &HashMap<u64, (u64, V)>,
    id: u64,
) -> Option<V> {
    (staged.get(&id).copied()).or_else(|| pending.get(&id).map(|(_, value)| *value))
}
