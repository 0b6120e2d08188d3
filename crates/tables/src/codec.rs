//! Byte encodings kept on disk (specified in `docs/tables-format.md`): items, the
//! order-preserving encoding of primary keys that makes a partition's items one ordered range,
//! and stream records. Decoding checks every length against the bytes left and bounds nesting,
//! so corrupt bytes are an error, never a panic or a huge allocation.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::TablesError;
use crate::number::Number;
use crate::value::{AttributeValue, Item, NESTING_DEPTH_MAX};

/// The first byte of every encoded item and stream record: the encoding's version.
pub const ENCODING_VERSION: u8 = 1;

const TAG_S: u8 = 1;
const TAG_N: u8 = 2;
const TAG_B: u8 = 3;
const TAG_FALSE: u8 = 4;
const TAG_TRUE: u8 = 5;
const TAG_NULL: u8 = 6;
const TAG_M: u8 = 7;
const TAG_L: u8 = 8;
const TAG_SS: u8 = 9;
const TAG_NS: u8 = 10;
const TAG_BS: u8 = 11;

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_map(out: &mut Vec<u8>, map: &BTreeMap<String, AttributeValue>) {
    put_varint(out, map.len() as u64);
    for (name, value) in map {
        put_bytes(out, name.as_bytes());
        put_value(out, value);
    }
}

fn put_value(out: &mut Vec<u8>, value: &AttributeValue) {
    match value {
        AttributeValue::S(text) => {
            out.push(TAG_S);
            put_bytes(out, text.as_bytes());
        }
        AttributeValue::N(number) => {
            out.push(TAG_N);
            put_bytes(out, number.to_string().as_bytes());
        }
        AttributeValue::B(bytes) => {
            out.push(TAG_B);
            put_bytes(out, bytes);
        }
        AttributeValue::Bool(false) => out.push(TAG_FALSE),
        AttributeValue::Bool(true) => out.push(TAG_TRUE),
        AttributeValue::Null => out.push(TAG_NULL),
        AttributeValue::M(map) => {
            out.push(TAG_M);
            put_map(out, map);
        }
        AttributeValue::L(list) => {
            out.push(TAG_L);
            put_varint(out, list.len() as u64);
            for element in list {
                put_value(out, element);
            }
        }
        AttributeValue::Ss(set) => {
            out.push(TAG_SS);
            put_varint(out, set.len() as u64);
            for text in set {
                put_bytes(out, text.as_bytes());
            }
        }
        AttributeValue::Ns(set) => {
            out.push(TAG_NS);
            put_varint(out, set.len() as u64);
            for number in set {
                put_bytes(out, number.to_string().as_bytes());
            }
        }
        AttributeValue::Bs(set) => {
            out.push(TAG_BS);
            put_varint(out, set.len() as u64);
            for bytes in set {
                put_bytes(out, bytes);
            }
        }
    }
}

/// Appends an item's encoding (without the version byte) to `out`.
pub(crate) fn put_item(out: &mut Vec<u8>, item: &Item) {
    put_map(out, item);
}

/// An item's stored bytes: the version byte, then the item.
pub fn encode_item(item: &Item) -> Vec<u8> {
    let mut out = vec![ENCODING_VERSION];
    put_item(&mut out, item);
    out
}

/// Reads encoded bytes front to back.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

fn corrupt(what: &str) -> TablesError {
    TablesError::Corrupt(what.to_owned())
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub(crate) fn byte(&mut self) -> Result<u8, TablesError> {
        let (first, rest) = self
            .bytes
            .split_first()
            .ok_or_else(|| corrupt("truncated value"))?;
        self.bytes = rest;
        Ok(*first)
    }

    pub(crate) fn u64_be(&mut self) -> Result<u64, TablesError> {
        let slice = self.take(8)?;
        let array: [u8; 8] = slice.try_into().map_err(|_| corrupt("truncated integer"))?;
        Ok(u64::from_be_bytes(array))
    }

    fn varint(&mut self) -> Result<u64, TablesError> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(corrupt("varint longer than 64 bits"))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], TablesError> {
        if len > self.bytes.len() {
            return Err(corrupt("length beyond the end of the value"));
        }
        let (taken, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(taken)
    }

    fn bytes(&mut self) -> Result<&'a [u8], TablesError> {
        let len = usize::try_from(self.varint()?).map_err(|_| corrupt("length too large"))?;
        self.take(len)
    }

    fn string(&mut self) -> Result<String, TablesError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| corrupt("string not utf-8"))
    }

    fn number(&mut self) -> Result<Number, TablesError> {
        let text = std::str::from_utf8(self.bytes()?).map_err(|_| corrupt("number not utf-8"))?;
        Number::parse(text).map_err(|_| corrupt("number does not parse"))
    }

    /// An element count, which can never exceed the bytes left (each element takes one).
    fn count(&mut self) -> Result<usize, TablesError> {
        let count = usize::try_from(self.varint()?).map_err(|_| corrupt("count too large"))?;
        if count > self.bytes.len() {
            return Err(corrupt("count beyond the end of the value"));
        }
        Ok(count)
    }

    fn map(&mut self, depth: usize) -> Result<BTreeMap<String, AttributeValue>, TablesError> {
        let count = self.count()?;
        let mut map = BTreeMap::new();
        for _ in 0..count {
            let name = self.string()?;
            let value = self.value(depth)?;
            map.insert(name, value);
        }
        Ok(map)
    }

    fn value(&mut self, depth: usize) -> Result<AttributeValue, TablesError> {
        Ok(match self.byte()? {
            TAG_S => AttributeValue::S(self.string()?),
            TAG_N => AttributeValue::N(self.number()?),
            TAG_B => AttributeValue::B(self.bytes()?.to_vec()),
            TAG_FALSE => AttributeValue::Bool(false),
            TAG_TRUE => AttributeValue::Bool(true),
            TAG_NULL => AttributeValue::Null,
            tag @ (TAG_M | TAG_L) => {
                if depth >= NESTING_DEPTH_MAX {
                    return Err(corrupt("value nested deeper than allowed"));
                }
                if tag == TAG_M {
                    AttributeValue::M(self.map(depth + 1)?)
                } else {
                    let count = self.count()?;
                    let mut list = Vec::with_capacity(count);
                    for _ in 0..count {
                        list.push(self.value(depth + 1)?);
                    }
                    AttributeValue::L(list)
                }
            }
            TAG_SS => {
                let count = self.count()?;
                let mut set = BTreeSet::new();
                for _ in 0..count {
                    set.insert(self.string()?);
                }
                AttributeValue::Ss(set)
            }
            TAG_NS => {
                let count = self.count()?;
                let mut set = BTreeSet::new();
                for _ in 0..count {
                    set.insert(self.number()?);
                }
                AttributeValue::Ns(set)
            }
            TAG_BS => {
                let count = self.count()?;
                let mut set = BTreeSet::new();
                for _ in 0..count {
                    set.insert(self.bytes()?.to_vec());
                }
                AttributeValue::Bs(set)
            }
            _ => return Err(corrupt("unknown value tag")),
        })
    }

    pub(crate) fn item(&mut self) -> Result<Item, TablesError> {
        self.map(0)
    }
}

/// Decodes an item's stored bytes.
pub fn decode_item(bytes: &[u8]) -> Result<Item, TablesError> {
    let mut reader = Reader::new(bytes);
    if reader.byte()? != ENCODING_VERSION {
        return Err(corrupt("unknown item encoding version"));
    }
    let item = reader.item()?;
    if !reader.is_empty() {
        return Err(corrupt("bytes after the item"));
    }
    Ok(item)
}

/// Key component tags: the partition key's type first, so keys of different types never meet.
fn key_tag(value: &AttributeValue) -> u8 {
    match value {
        AttributeValue::S(_) => TAG_S,
        AttributeValue::N(_) => TAG_N,
        _ => TAG_B,
    }
}

/// Appends `bytes` so that no encoding is a prefix of another: 0x00 becomes 0x00 0xFF and the
/// end is 0x00 0x01. Byte order is kept.
pub(crate) fn put_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    for byte in bytes {
        out.push(*byte);
        if *byte == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0x00, 0x01]);
}

/// Appends a number so that byte order is numeric order. Zero is 0x01. A positive number is
/// 0x02, its leading exponent + 200 as a big-endian u16, then each digit + 1, then 0x00. A
/// negative number is 0x00 followed by the complement: 0xFFFF − (exponent + 200), 10 − digit,
/// then 0xFF.
pub(crate) fn put_ordered_number(out: &mut Vec<u8>, number: &Number) {
    if number.is_zero() {
        out.push(0x01);
        return;
    }
    // The exponent lies in −130..=125, so the biased value lies in 70..=325.
    let biased = (number.leading_exponent() + 200) as u16;
    let digits = number.digit_text();
    if number.is_negative() {
        out.push(0x00);
        out.extend_from_slice(&(0xFFFF - biased).to_be_bytes());
        out.extend(digits.bytes().map(|digit| 10 - (digit - b'0')));
        out.push(0xFF);
    } else {
        out.push(0x02);
        out.extend_from_slice(&biased.to_be_bytes());
        out.extend(digits.bytes().map(|digit| digit - b'0' + 1));
        out.push(0x00);
    }
}

/// The prefix every key of one partition starts with.
pub fn partition_prefix(partition: &AttributeValue) -> Vec<u8> {
    let mut out = vec![key_tag(partition)];
    match partition {
        AttributeValue::S(text) => put_escaped(&mut out, text.as_bytes()),
        AttributeValue::N(number) => put_escaped(&mut out, number.to_string().as_bytes()),
        AttributeValue::B(bytes) => put_escaped(&mut out, bytes),
        _ => {}
    }
    out
}

/// A primary key's stored bytes: the partition prefix, then the sort key in an encoding whose
/// byte order is DynamoDB's order (UTF-8 bytes for `S`, unsigned bytes for `B`, value for `N`).
pub fn encode_key(partition: &AttributeValue, sort: Option<&AttributeValue>) -> Vec<u8> {
    let mut out = partition_prefix(partition);
    match sort {
        None => {}
        Some(AttributeValue::N(number)) => put_ordered_number(&mut out, number),
        Some(AttributeValue::S(text)) => out.extend_from_slice(text.as_bytes()),
        Some(AttributeValue::B(bytes)) => out.extend_from_slice(bytes),
        Some(_) => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn number(text: &str) -> AttributeValue {
        AttributeValue::N(Number::parse(text).unwrap())
    }

    fn arbitrary_value() -> impl Strategy<Value = AttributeValue> {
        let leaf = prop_oneof![
            ".{0,8}".prop_map(AttributeValue::S),
            (-1_000_000_i64..1_000_000, 0_u32..6)
                .prop_map(|(value, scale)| { number(&format!("{value}e-{scale}")) }),
            proptest::collection::vec(any::<u8>(), 0..8).prop_map(AttributeValue::B),
            any::<bool>().prop_map(AttributeValue::Bool),
            Just(AttributeValue::Null),
            proptest::collection::btree_set(".{0,4}", 1..4).prop_map(AttributeValue::Ss),
            proptest::collection::btree_set(-1000_i64..1000, 1..4).prop_map(|set| {
                AttributeValue::Ns(
                    set.into_iter()
                        .map(|value| Number::parse(&value.to_string()).unwrap())
                        .collect(),
                )
            }),
            proptest::collection::btree_set(proptest::collection::vec(any::<u8>(), 0..4), 1..4)
                .prop_map(AttributeValue::Bs),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(AttributeValue::L),
                proptest::collection::btree_map(".{0,4}", inner, 0..4).prop_map(AttributeValue::M),
            ]
        })
    }

    proptest! {
        #[test]
        fn items_round_trip(item in proptest::collection::btree_map(".{1,6}", arbitrary_value(), 0..6)) {
            prop_assert_eq!(decode_item(&encode_item(&item)).unwrap(), item);
        }

        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_item(&bytes);
        }

        #[test]
        fn number_keys_sort_by_value(a in -1_000_000_i64..1_000_000, b in -1_000_000_i64..1_000_000, sa in 0_u32..5, sb in 0_u32..5) {
            let x = Number::parse(&format!("{a}e-{sa}")).unwrap();
            let y = Number::parse(&format!("{b}e-{sb}")).unwrap();
            let partition = AttributeValue::S("p".into());
            let kx = encode_key(&partition, Some(&AttributeValue::N(x)));
            let ky = encode_key(&partition, Some(&AttributeValue::N(y)));
            prop_assert_eq!(kx.cmp(&ky), x.cmp(&y));
        }

        #[test]
        fn partitions_are_contiguous_ranges(a in proptest::collection::vec(0_u8..3, 0..4), b in proptest::collection::vec(0_u8..3, 0..4), sort in proptest::collection::vec(any::<u8>(), 0..4)) {
            let pa = AttributeValue::B(a.clone());
            let pb = AttributeValue::B(b.clone());
            let key = encode_key(&pb, Some(&AttributeValue::B(sort)));
            prop_assert_eq!(key.starts_with(&partition_prefix(&pa)), a == b);
        }
    }

    #[test]
    fn too_deep_stored_items_are_corrupt() {
        let mut value = AttributeValue::Null;
        for _ in 0..=NESTING_DEPTH_MAX {
            value = AttributeValue::L(vec![value]);
        }
        let item = Item::from([("a".to_owned(), value)]);
        assert!(matches!(
            decode_item(&encode_item(&item)),
            Err(TablesError::Corrupt(_))
        ));
    }
}

#[cfg(test)]
mod stable_bytes {
    use super::*;

    /// Version 1's bytes for a small item, written out by hand from `docs/tables-format.md`:
    /// a change to the encoding must add a version, not change these.
    #[test]
    fn version_1_item_bytes_are_stable() {
        let item = Item::from([
            (
                "a".to_owned(),
                AttributeValue::N(Number::parse("1.50").unwrap()),
            ),
            (
                "b".to_owned(),
                AttributeValue::L(vec![AttributeValue::Bool(true), AttributeValue::Null]),
            ),
        ]);
        let expected = [
            1, // version
            2, // attributes
            1, b'a', 2, 3, b'1', b'.', b'5', // a: N "1.5"
            1, b'b', 8, 2, 5, 6, // b: L [true, NULL]
        ];
        assert_eq!(encode_item(&item), expected);
        let key = encode_key(
            &AttributeValue::S("a\0".to_owned()),
            Some(&AttributeValue::N(Number::parse("-12").unwrap())),
        );
        assert_eq!(
            key,
            [1, b'a', 0, 0xFF, 0, 1, 0, 0xFF, 0xFF - 201, 9, 8, 0xFF]
        );
    }
}
