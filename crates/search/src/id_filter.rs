//! A Bloom filter of one segment's `_id` terms, so that a version lookup skips the segments
//! that cannot hold an id.
//!
//! Every write with an explicit id (Firehose's record ids, a table stream's keys, a ledger's
//! document ids, `_bulk` with `_id`) asks each segment of the searcher whether it holds the id.
//! With tantivy's sstable term dictionary that is a block of the dictionary decoded per segment,
//! and an id that is new (the usual case) pays it in every segment. A segment never changes once
//! written, so its filter is built once, from its term dictionary, and answers "certainly not
//! here" for all but about 1 % of absent ids; deleted documents stay in it, which only costs a
//! lookup. Elasticsearch 1.x kept a Bloom filter of `_uid` per segment for the same reason.
//!
//! The filter is blocked (Putze, Sanders and Singler, "Cache-, hash- and space-efficient Bloom
//! filters", 2007): a key's bits all lie in one 512-bit block, one cache line, chosen by the
//! high half of its hash; a remix of it places [`BITS_SET_PER_KEY`] bits in the block. With
//! [`BITS_PER_KEY`] bits a key the false-positive rate is about 1 %.

use std::hash::Hasher;

/// Filter bits per distinct key.
const BITS_PER_KEY: usize = 10;
/// Bits each key sets in its block.
const BITS_SET_PER_KEY: u32 = 7;
/// 512 bits: a 64-byte cache line.
const WORDS_PER_BLOCK: usize = 8;
const BLOCK_BITS: usize = WORDS_PER_BLOCK * 64;

/// The set of a segment's ids, without false negatives.
#[derive(Debug)]
pub(crate) struct IdFilter {
    blocks: Vec<[u64; WORDS_PER_BLOCK]>,
}

impl IdFilter {
    /// An empty filter sized for `expected` keys (more still have no false negatives, only
    /// more false positives).
    pub(crate) fn new(expected: usize) -> IdFilter {
        let block_count = (expected.saturating_mul(BITS_PER_KEY))
            .div_ceil(BLOCK_BITS)
            .max(1);
        IdFilter {
            blocks: vec![[0; WORDS_PER_BLOCK]; block_count],
        }
    }

    /// Whether `key` may be in the set: `false` means certainly not.
    pub(crate) fn may_contain(&self, key: &[u8]) -> bool {
        let (block, bits) = self.place(key);
        self.blocks
            .get(block)
            .is_some_and(|words| bits.iter().all(|&(word, mask)| words[word] & mask != 0))
    }

    /// Memory held, in bytes.
    #[cfg(test)]
    fn size_bytes(&self) -> usize {
        self.blocks.len() * WORDS_PER_BLOCK * 8
    }

    pub(crate) fn insert(&mut self, key: &[u8]) {
        let (block, bits) = self.place(key);
        if let Some(words) = self.blocks.get_mut(block) {
            for (word, mask) in bits {
                words[word] |= mask;
            }
        }
    }

    /// The key's block and, for each of its bits, the word in the block and the bit's mask.
    fn place(&self, key: &[u8]) -> (usize, [(usize, u64); BITS_SET_PER_KEY as usize]) {
        let hash = hash_of(key);
        // Multiply-shift maps the high half onto the blocks without a power-of-two count.
        let block = (((hash >> 32) * self.blocks.len() as u64) >> 32) as usize;
        let mut bits = [(0, 0); BITS_SET_PER_KEY as usize];
        // Kirsch–Mitzenmacher: the i-th bit is low + i * step, modulo the block's bits, both
        // from a remix of the hash, so keys of one block do not share their steps.
        let remixed = remix(hash);
        let low = remixed as u32;
        let step = (remixed >> 32) as u32 | 1;
        for (i, bit) in bits.iter_mut().enumerate() {
            let position = low.wrapping_add((i as u32).wrapping_mul(step)) as usize % BLOCK_BITS;
            *bit = (position / 64, 1_u64 << (position % 64));
        }
        (block, bits)
    }
}

/// SipHash-1-3 with fixed keys (the standard library's `DefaultHasher::new`): the same on every
/// run, so a filter never depends on the process that built it.
fn hash_of(key: &[u8]) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    hasher.write(key);
    hasher.finish()
}

/// SplitMix64's finalizer.
fn remix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(range: std::ops::Range<u64>) -> Vec<Vec<u8>> {
        range.map(|i| format!("id-{i}").into_bytes()).collect()
    }

    fn build(expected: usize, keys: &[Vec<u8>]) -> IdFilter {
        let mut filter = IdFilter::new(expected);
        for key in keys {
            filter.insert(key);
        }
        filter
    }

    #[test]
    fn every_inserted_key_is_found() {
        for count in [0_u64, 1, 7, 1000, 50_000] {
            let inserted = keys(0..count);
            let filter = build(inserted.len(), &inserted);
            assert!(
                inserted.iter().all(|key| filter.may_contain(key)),
                "a key of {count} went missing"
            );
        }
    }

    #[test]
    fn most_absent_keys_are_refused() {
        let inserted = keys(0..100_000);
        let filter = build(inserted.len(), &inserted);
        let absent = keys(1_000_000..1_100_000);
        let false_positives = absent.iter().filter(|key| filter.may_contain(key)).count();
        // About 1 % by design; 3 % would mean the bits are badly spread.
        assert!(
            false_positives < 3_000,
            "{false_positives} of 100000 absent keys passed"
        );
        assert_eq!(filter.size_bytes(), 100_000 * BITS_PER_KEY / 512 * 64 + 64);
    }

    #[test]
    fn an_undersized_filter_still_has_no_false_negatives() {
        let inserted = keys(0..10_000);
        let filter = build(10, &inserted);
        assert!(inserted.iter().all(|key| filter.may_contain(key)));
    }
}
