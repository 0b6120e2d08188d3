//! The Merkle tree over all block hashes, stored incrementally so that digests and block proofs
//! cost O(log n) reads instead of reading every block hash.
//!
//! QLDB's tree pairs adjacent hashes left to right and moves an odd last hash up unchanged. For
//! `n` leaves that tree is a left-to-right row of perfect subtrees ("peaks", sizes the binary
//! digits of `n`, largest first) whose root is the right fold `dot(p0, dot(p1, … dot(pk-1, pk)))`.
//! Every perfect node is stored once under `(level, index)`: leaf `i` is `(0, i)` and node
//! `(l + 1, j)` is `dot((l, 2j), (l, 2j + 1))`. Appending a leaf writes at most log2(n) + 1 nodes.

use redb::{ReadableTable, Table, TableDefinition};

use crate::error::LedgerError;
use crate::hash::{self, Hash};

/// Perfect nodes of the block-hash tree: `(level, index)` to a 32-byte hash.
pub const JOURNAL_TREE: TableDefinition<(u32, u64), &[u8]> = TableDefinition::new("journal_tree");

/// Highest level a tree of `u64` leaves can have.
const LEVELS_MAX: u32 = 64;

fn read_node(
    table: &impl ReadableTable<(u32, u64), &'static [u8]>,
    level: u32,
    index: u64,
) -> Result<Hash, LedgerError> {
    let value = table.get((level, index))?.ok_or_else(|| {
        LedgerError::Storage(format!("journal tree node ({level}, {index}) is missing"))
    })?;
    hash::hash_from_slice(value.value())
}

/// Appends leaf `sequence_no` (which must be the next one) and the perfect nodes it completes.
pub fn append_leaf(
    table: &mut Table<'_, (u32, u64), &'static [u8]>,
    sequence_no: u64,
    block_hash: &Hash,
) -> Result<(), LedgerError> {
    table.insert((0, sequence_no), block_hash.as_slice())?;
    let mut level = 0u32;
    let mut index = sequence_no;
    let mut current = *block_hash;
    while index % 2 == 1 && level < LEVELS_MAX {
        let left = read_node(table, level, index - 1)?;
        current = hash::dot_hashes(&left, &current);
        level += 1;
        index /= 2;
        table.insert((level, index), current.as_slice())?;
    }
    Ok(())
}

/// The hash of block `sequence_no` (leaf `(0, sequence_no)`).
pub fn leaf(
    table: &impl ReadableTable<(u32, u64), &'static [u8]>,
    sequence_no: u64,
) -> Result<Hash, LedgerError> {
    read_node(table, 0, sequence_no)
}

/// The peaks of a tree of `leaf_count` leaves, left to right: `(level, index)`.
fn peaks(leaf_count: u64) -> Vec<(u32, u64)> {
    let mut result = Vec::new();
    let mut offset = 0u64;
    for level in (0..LEVELS_MAX).rev() {
        let size = 1u64 << level;
        if leaf_count & size != 0 {
            result.push((level, offset >> level));
            offset += size;
        }
    }
    result
}

fn bag_right(hashes: &[Hash]) -> Option<Hash> {
    hashes
        .iter()
        .rev()
        .fold(None, |accumulated, peak| match accumulated {
            None => Some(*peak),
            Some(right) => Some(hash::dot_hashes(peak, &right)),
        })
}

/// The root of the tree of the first `leaf_count` leaves (the digest); `None` when empty.
pub fn root(
    table: &impl ReadableTable<(u32, u64), &'static [u8]>,
    leaf_count: u64,
) -> Result<Option<Hash>, LedgerError> {
    let mut peak_hashes = Vec::new();
    for (level, index) in peaks(leaf_count) {
        peak_hashes.push(read_node(table, level, index)?);
    }
    Ok(bag_right(&peak_hashes))
}

/// The proof of leaf `leaf_index` in the tree of the first `leaf_count` leaves: equal to
/// [`hash::merkle_proof`] over those leaves.
pub fn proof(
    table: &impl ReadableTable<(u32, u64), &'static [u8]>,
    leaf_index: u64,
    leaf_count: u64,
) -> Result<Vec<Hash>, LedgerError> {
    if leaf_index >= leaf_count {
        return Err(LedgerError::BadRequest(format!(
            "block {leaf_index} is not covered by a digest of {leaf_count} blocks"
        )));
    }
    let peak_list = peaks(leaf_count);
    let mut peak_hashes = Vec::with_capacity(peak_list.len());
    for (level, index) in &peak_list {
        peak_hashes.push(read_node(table, *level, *index)?);
    }
    let position = peak_list
        .iter()
        .position(|(level, index)| leaf_index >> level == *index)
        .ok_or_else(|| LedgerError::Internal("leaf outside every peak".to_owned()))?;
    let (peak_level, _) = peak_list
        .get(position)
        .copied()
        .ok_or_else(|| LedgerError::Internal("peak position".to_owned()))?;
    let mut result = Vec::new();
    for level in 0..peak_level {
        let sibling = (leaf_index >> level) ^ 1;
        result.push(read_node(table, level, sibling)?);
    }
    if let Some(right) = bag_right(peak_hashes.get(position + 1..).unwrap_or_default()) {
        result.push(right);
    }
    for left in peak_hashes.get(..position).unwrap_or_default().iter().rev() {
        result.push(*left);
    }
    Ok(result)
}

/// Number of leaves stored.
pub fn leaf_count(
    table: &impl ReadableTable<(u32, u64), &'static [u8]>,
) -> Result<u64, LedgerError> {
    Ok(table
        .range((0u32, 0u64)..(1u32, 0u64))?
        .next_back()
        .transpose()?
        .map_or(0, |(key, _)| key.value().1 + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::ReadableDatabase;

    #[test]
    fn matches_the_level_by_level_tree_for_every_size() {
        let dir = tempfile::tempdir().unwrap();
        let database = redb::Database::create(dir.path().join("tree.redb")).unwrap();
        let leaves: Vec<Hash> = (0..40u32)
            .map(|index| hash::sha256_bytes(&index.to_le_bytes()))
            .collect();
        for (index, leaf) in leaves.iter().enumerate() {
            let write = database.begin_write().unwrap();
            append_leaf(
                &mut write.open_table(JOURNAL_TREE).unwrap(),
                index as u64,
                leaf,
            )
            .unwrap();
            write.commit().unwrap();
        }
        let read = database.begin_read().unwrap();
        let table = read.open_table(JOURNAL_TREE).unwrap();
        assert_eq!(leaf_count(&table).unwrap(), 40);
        for count in 1..=leaves.len() {
            let prefix = &leaves[..count];
            assert_eq!(
                root(&table, count as u64).unwrap(),
                hash::merkle_root(prefix),
                "root of {count}"
            );
            for index in 0..count {
                assert_eq!(
                    proof(&table, index as u64, count as u64).unwrap(),
                    hash::merkle_proof(prefix, index).unwrap(),
                    "proof of {index} in {count}"
                );
            }
        }
        assert_eq!(root(&table, 0).unwrap(), None);
        assert!(proof(&table, 5, 5).is_err());
    }
}
