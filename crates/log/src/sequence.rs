//! Sequence numbers: a `u128` newtype naming one record of one shard, rendered as a fixed-width
//! 56-digit decimal string (the width Kinesis uses) so that strings sort like numbers.
//!
//! Layout of the value: bits 64..96 hold the shard index, bits 0..64 the record's offset in its
//! shard (0 for the first record ever appended to it). Bits 96..128 are zero in this version.

use std::{fmt, str::FromStr};

use crate::error::LogError;

/// Number of decimal digits of a rendered sequence number. `u128::MAX` has 39 digits, so every
/// value fits and the leading zeros make lexicographic order equal numeric order.
pub const SEQUENCE_NUMBER_DIGITS: usize = 56;

/// The position of one record in one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SequenceNumber(u128);

impl SequenceNumber {
    pub const fn from_u128(value: u128) -> Self {
        SequenceNumber(value)
    }

    pub const fn as_u128(self) -> u128 {
        self.0
    }

    /// The sequence number of the record at `record_offset` in shard `shard_index`.
    pub const fn from_shard_offset(shard_index: u32, record_offset: u64) -> Self {
        SequenceNumber(((shard_index as u128) << 64) | record_offset as u128)
    }

    /// The shard index encoded in bits 64..96.
    pub const fn shard_index(self) -> u32 {
        (self.0 >> 64) as u32
    }

    /// The record offset within its shard, bits 0..64.
    pub const fn record_offset(self) -> u64 {
        self.0 as u64
    }

    /// Whether the reserved high bits are zero, as in every number this log issues.
    pub(crate) const fn reserved_bits_are_zero(self) -> bool {
        self.0 >> 96 == 0
    }
}

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:0width$}", self.0, width = SEQUENCE_NUMBER_DIGITS)
    }
}

impl FromStr for SequenceNumber {
    type Err = LogError;

    /// Accepts 1 to 56 ASCII digits (leading zeros allowed) whose value fits in a `u128`.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let invalid = |reason| LogError::InvalidSequenceNumber {
            input: input.chars().take(SEQUENCE_NUMBER_DIGITS + 8).collect(),
            reason,
        };
        if input.is_empty() {
            return Err(invalid("empty"));
        }
        if input.len() > SEQUENCE_NUMBER_DIGITS {
            return Err(invalid("longer than 56 digits"));
        }
        if !input.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err(invalid("not all decimal digits"));
        }
        input
            .parse::<u128>()
            .map(SequenceNumber)
            .map_err(|_| invalid("larger than 2^128 - 1"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_fixed_width_and_parses_back() {
        let zero = SequenceNumber::from_u128(0);
        assert_eq!(zero.to_string(), "0".repeat(56));
        let max = SequenceNumber::from_u128(u128::MAX);
        let rendered = max.to_string();
        assert_eq!(rendered.len(), 56);
        assert!(rendered.ends_with("340282366920938463463374607431768211455"));
        assert_eq!(rendered.parse::<SequenceNumber>().unwrap(), max);
        assert_eq!("42".parse::<SequenceNumber>().unwrap().as_u128(), 42);
    }

    #[test]
    fn strings_sort_like_numbers_across_shards() {
        let mut numbers = [
            SequenceNumber::from_shard_offset(0, 0),
            SequenceNumber::from_shard_offset(0, 9),
            SequenceNumber::from_shard_offset(0, 10),
            SequenceNumber::from_shard_offset(0, u64::MAX),
            SequenceNumber::from_shard_offset(1, 0),
            SequenceNumber::from_shard_offset(7, 123_456),
            SequenceNumber::from_shard_offset(u32::MAX, u64::MAX),
            SequenceNumber::from_u128(u128::MAX),
        ];
        numbers.reverse();
        let mut by_string: Vec<String> = numbers.iter().map(ToString::to_string).collect();
        by_string.sort();
        numbers.sort();
        let by_number: Vec<String> = numbers.iter().map(ToString::to_string).collect();
        assert_eq!(by_string, by_number);
    }

    #[test]
    fn shard_and_offset_round_trip() {
        let sequence_number = SequenceNumber::from_shard_offset(3, 77);
        assert_eq!(sequence_number.shard_index(), 3);
        assert_eq!(sequence_number.record_offset(), 77);
        assert!(sequence_number.reserved_bits_are_zero());
    }

    #[test]
    fn parse_errors_are_clear() {
        let reason = |input: &str| match input.parse::<SequenceNumber>() {
            Err(LogError::InvalidSequenceNumber { reason, .. }) => reason,
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(reason(""), "empty");
        assert_eq!(reason("12a"), "not all decimal digits");
        assert_eq!(reason("-1"), "not all decimal digits");
        assert_eq!(reason("+1"), "not all decimal digits");
        assert_eq!(reason(&"1".repeat(57)), "longer than 56 digits");
        assert_eq!(reason(&"9".repeat(56)), "larger than 2^128 - 1");
    }
}
