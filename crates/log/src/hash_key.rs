//! Kinesis-style hash keys: the 128-bit key space `0..=2^128-1` split evenly among the shards of
//! a stream, and the mapping of a partition key to its hash key (MD5, big-endian) and shard.

use md5::{Digest, Md5};

/// An inclusive range of hash keys owned by one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashKeyRange {
    pub starting_hash_key: u128,
    pub ending_hash_key: u128,
}

impl HashKeyRange {
    pub fn contains(&self, hash_key: u128) -> bool {
        self.starting_hash_key <= hash_key && hash_key <= self.ending_hash_key
    }
}

/// Splits the key space among `shard_count` shards as Kinesis does when a stream is created:
/// shard `i` starts at `i * floor(2^128 / n)`, each ends one before the next starts, and the
/// last ends at `2^128 - 1`. Returns an empty list for zero shards.
pub fn split_hash_key_space_evenly(shard_count: u32) -> Vec<HashKeyRange> {
    if shard_count == 0 {
        return Vec::new();
    }
    if shard_count == 1 {
        return vec![HashKeyRange {
            starting_hash_key: 0,
            ending_hash_key: u128::MAX,
        }];
    }
    let n = u128::from(shard_count);
    // floor(2^128 / n) computed without 2^128: floor((2^128 - 1) / n), plus one when n divides 2^128.
    let step = u128::MAX / n + u128::from(u128::MAX % n == n - 1);
    (0..n)
        .map(|i| {
            let starting_hash_key = step * i;
            let ending_hash_key = if i + 1 == n {
                u128::MAX
            } else {
                step * (i + 1) - 1
            };
            HashKeyRange {
                starting_hash_key,
                ending_hash_key,
            }
        })
        .collect()
}

/// The hash key of a partition key: its MD5 digest read as a big-endian `u128`, as Kinesis does.
pub fn partition_key_hash(partition_key: &str) -> u128 {
    let digest: [u8; 16] = Md5::digest(partition_key.as_bytes()).into();
    u128::from_be_bytes(digest)
}

/// The index of the range holding `hash_key`, for ranges sorted and covering the key space.
pub fn shard_index_for_hash_key(ranges: &[HashKeyRange], hash_key: u128) -> Option<u32> {
    let index = ranges.partition_point(|range| range.ending_hash_key < hash_key);
    let range = ranges.get(index)?;
    if range.contains(hash_key) {
        u32::try_from(index).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_shards_split_like_kinesis() {
        // The ranges `aws kinesis describe-stream` shows for a stream created with 3 shards.
        let ranges = split_hash_key_space_evenly(3);
        assert_eq!(ranges.len(), 3);
        assert_eq!(ranges[0].starting_hash_key, 0);
        assert_eq!(
            ranges[0].ending_hash_key,
            113_427_455_640_312_821_154_458_202_477_256_070_484
        );
        assert_eq!(
            ranges[1].starting_hash_key,
            113_427_455_640_312_821_154_458_202_477_256_070_485
        );
        assert_eq!(
            ranges[1].ending_hash_key,
            226_854_911_280_625_642_308_916_404_954_512_140_969
        );
        assert_eq!(
            ranges[2].starting_hash_key,
            226_854_911_280_625_642_308_916_404_954_512_140_970
        );
        assert_eq!(ranges[2].ending_hash_key, u128::MAX);
    }

    #[test]
    fn ranges_are_contiguous_for_many_counts() {
        for shard_count in [1, 2, 3, 4, 5, 7, 8, 64, 100, 1024] {
            let ranges = split_hash_key_space_evenly(shard_count);
            assert_eq!(ranges.len(), shard_count as usize);
            assert_eq!(ranges[0].starting_hash_key, 0);
            assert_eq!(ranges.last().unwrap().ending_hash_key, u128::MAX);
            for pair in ranges.windows(2) {
                assert_eq!(pair[0].ending_hash_key + 1, pair[1].starting_hash_key);
            }
        }
        // Powers of two split exactly: two shards meet at 2^127.
        let two = split_hash_key_space_evenly(2);
        assert_eq!(two[1].starting_hash_key, 1u128 << 127);
        assert!(split_hash_key_space_evenly(0).is_empty());
    }

    #[test]
    fn partition_key_maps_through_md5_big_endian() {
        // md5("a") = 0cc175b9c0f1b6a831c399e269772661 and md5("") = d41d8cd98f00b204e9800998ecf8427e.
        assert_eq!(
            partition_key_hash("a"),
            0x0cc1_75b9_c0f1_b6a8_31c3_99e2_6977_2661
        );
        assert_eq!(
            partition_key_hash(""),
            0xd41d_8cd9_8f00_b204_e980_0998_ecf8_427e
        );
        let ranges = split_hash_key_space_evenly(4);
        // 0x0cc1... is below 2^126, so the first of four shards.
        assert_eq!(
            shard_index_for_hash_key(&ranges, partition_key_hash("a")),
            Some(0)
        );
        // 0xd41d... is above 3 * 2^126, so the last of four shards.
        assert_eq!(
            shard_index_for_hash_key(&ranges, partition_key_hash("")),
            Some(3)
        );
        assert_eq!(shard_index_for_hash_key(&ranges, u128::MAX), Some(3));
        assert_eq!(shard_index_for_hash_key(&ranges, 0), Some(0));
        assert_eq!(shard_index_for_hash_key(&ranges, 1u128 << 126), Some(1));
        assert_eq!(
            shard_index_for_hash_key(&ranges, (1u128 << 126) - 1),
            Some(0)
        );
        assert_eq!(shard_index_for_hash_key(&[], 5), None);
    }
}
