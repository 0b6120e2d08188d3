//! The Kinesis Producer Library's aggregated record format, which QLDB journal streams write
//! when `AggregationEnabled` is on and consumers undo with `aws_kinesis_agg` or the KCL: the
//! magic `F3 89 9A C2`, a protobuf `AggregatedRecord` (a table of partition keys and the user
//! records, each naming its key by index), then the MD5 of the protobuf bytes. The protobuf is
//! written and read by hand: three fields, two of them nested, need no code generator.
//! [`deaggregate`] and [`deaggregate_keyed`] are the consumer's side, for replicas that read
//! journal streams and for Kinesis sources.

use md5::{Digest, Md5};

/// The four bytes every aggregated record starts with.
pub const KPL_MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// Bytes of the trailing MD5.
const DIGEST_BYTES: usize = 16;

/// Bytes an aggregated record adds besides its user records and keys: the magic and the MD5.
pub const KPL_OVERHEAD_BYTES: usize = KPL_MAGIC.len() + DIGEST_BYTES;

// Field numbers and wire types of `AggregatedRecord` and its `Record`.
const AGGREGATED_PARTITION_KEY_TABLE: u64 = 1;
const AGGREGATED_RECORDS: u64 = 3;
const RECORD_PARTITION_KEY_INDEX: u64 = 1;
const RECORD_DATA: u64 = 3;
const WIRE_VARINT: u64 = 0;
const WIRE_LENGTH_DELIMITED: u64 = 2;

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7F) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn varint_bytes(value: u64) -> usize {
    let mut bytes = 1;
    let mut rest = value >> 7;
    while rest != 0 {
        bytes += 1;
        rest >>= 7;
    }
    bytes
}

fn put_length_delimited(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(out, (field << 3) | WIRE_LENGTH_DELIMITED);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Bytes a length-delimited field of `length` bytes takes (one-byte tags: fields below 16).
fn length_delimited_bytes(length: usize) -> usize {
    1 + varint_bytes(length as u64) + length
}

/// Builds aggregated records from user records, in order, keeping each under a size bound.
#[derive(Debug, Default)]
pub struct Aggregator {
    keys: Vec<String>,
    records: Vec<u8>,
    n_records: usize,
}

impl Aggregator {
    pub fn new() -> Self {
        Aggregator::default()
    }

    /// How many user records it holds.
    pub fn len(&self) -> usize {
        self.n_records
    }

    pub fn is_empty(&self) -> bool {
        self.n_records == 0
    }

    /// The partition key of the aggregated record: its first user record's, as the KPL does.
    pub fn partition_key(&self) -> Option<&str> {
        self.keys.first().map(String::as_str)
    }

    fn record_message(key_index: usize, data: &[u8]) -> Vec<u8> {
        let mut record = Vec::with_capacity(data.len() + 8);
        put_varint(&mut record, (RECORD_PARTITION_KEY_INDEX << 3) | WIRE_VARINT);
        put_varint(&mut record, key_index as u64);
        put_length_delimited(&mut record, RECORD_DATA, data);
        record
    }

    /// The size of the aggregated record, partition key included, once `partition_key` and
    /// `data` were added.
    pub fn size_with(&self, partition_key: &str, data: &[u8]) -> usize {
        let key_index = self.key_index(partition_key);
        let new_key_bytes = match key_index {
            Some(_) => 0,
            None => length_delimited_bytes(partition_key.len()),
        };
        let index = key_index.unwrap_or(self.keys.len());
        let record_bytes = 1 + varint_bytes(index as u64) + length_delimited_bytes(data.len());
        let first_key_bytes = self.partition_key().unwrap_or(partition_key).len();
        KPL_OVERHEAD_BYTES
            + self.message_bytes()
            + new_key_bytes
            + length_delimited_bytes(record_bytes)
            + first_key_bytes
    }

    fn message_bytes(&self) -> usize {
        self.keys
            .iter()
            .map(|key| length_delimited_bytes(key.len()))
            .sum::<usize>()
            + self.records.len()
    }

    fn key_index(&self, partition_key: &str) -> Option<usize> {
        self.keys.iter().position(|key| key == partition_key)
    }

    /// Adds a user record.
    pub fn add(&mut self, partition_key: &str, data: &[u8]) {
        let index = match self.key_index(partition_key) {
            Some(index) => index,
            None => {
                self.keys.push(partition_key.to_owned());
                self.keys.len() - 1
            }
        };
        let record = Self::record_message(index, data);
        put_length_delimited(&mut self.records, AGGREGATED_RECORDS, &record);
        self.n_records += 1;
    }

    /// The aggregated record's partition key and bytes; the aggregator is empty again.
    pub fn finish(&mut self) -> Option<(String, Vec<u8>)> {
        let partition_key = self.partition_key()?.to_owned();
        let mut message = Vec::with_capacity(self.message_bytes() + KPL_OVERHEAD_BYTES);
        for key in &self.keys {
            put_length_delimited(&mut message, AGGREGATED_PARTITION_KEY_TABLE, key.as_bytes());
        }
        message.extend_from_slice(&self.records);
        let digest = Md5::digest(&message);
        let mut out = Vec::with_capacity(message.len() + KPL_OVERHEAD_BYTES);
        out.extend_from_slice(&KPL_MAGIC);
        out.extend_from_slice(&message);
        out.extend_from_slice(&digest);
        *self = Aggregator::default();
        Some((partition_key, out))
    }
}

/// Reads one protobuf varint from the front of `bytes`; `None` when it is cut or longer than
/// ten bytes.
fn take_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..70u32).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7F).checked_shl(shift).unwrap_or(0);
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// One field of a protobuf message: its number, and its bytes (length-delimited) or value
/// (varint).
#[derive(Clone, Copy)]
struct Field<'a> {
    number: u64,
    bytes: &'a [u8],
    value: u64,
}

/// Reads the fields of one protobuf message; `None` for a wire type other than varint and
/// length-delimited, or a cut field.
fn message_fields(mut bytes: &[u8]) -> Option<Vec<Field<'_>>> {
    let mut fields = Vec::new();
    while !bytes.is_empty() {
        let tag = take_varint(&mut bytes)?;
        match tag & 7 {
            WIRE_VARINT => {
                let value = take_varint(&mut bytes)?;
                fields.push(Field {
                    number: tag >> 3,
                    bytes: &[],
                    value,
                });
            }
            WIRE_LENGTH_DELIMITED => {
                let length = usize::try_from(take_varint(&mut bytes)?).ok()?;
                let (value, rest) = bytes.split_at_checked(length)?;
                fields.push(Field {
                    number: tag >> 3,
                    bytes: value,
                    value: 0,
                });
                bytes = rest;
            }
            _ => return None,
        }
    }
    Some(fields)
}

/// The user records' data inside one Kinesis record, as `aws_kinesis_agg` reads them: an
/// aggregated record (magic, protobuf, matching MD5) gives its user records in order; anything
/// else, a broken aggregate included, is one user record, itself.
pub fn deaggregate(data: &[u8]) -> Vec<&[u8]> {
    match deaggregate_keyed(data) {
        Some(records) => records.into_iter().map(|(_, data)| data).collect(),
        None => vec![data],
    }
}

/// The user records inside an aggregated record, each with its partition key, in order; `None`
/// when `data` is not an aggregate (or a broken one), which is then one user record, itself.
pub fn deaggregate_keyed(data: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    let body = data.strip_prefix(&KPL_MAGIC[..])?;
    let (message, digest) = body.split_at(body.len().checked_sub(DIGEST_BYTES)?);
    if Md5::digest(message).as_slice() != digest {
        return None;
    }
    let fields = message_fields(message)?;
    let keys: Vec<&[u8]> = fields
        .iter()
        .filter(|field| field.number == AGGREGATED_PARTITION_KEY_TABLE)
        .map(|field| field.bytes)
        .collect();
    let mut records = Vec::new();
    for field in fields
        .iter()
        .filter(|field| field.number == AGGREGATED_RECORDS)
    {
        let record = message_fields(field.bytes)?;
        let Some(data) = record.iter().find(|field| field.number == RECORD_DATA) else {
            continue;
        };
        let key = record
            .iter()
            .find(|field| field.number == RECORD_PARTITION_KEY_INDEX)
            .and_then(|field| keys.get(usize::try_from(field.value).ok()?))?;
        records.push((*key, data.bytes));
    }
    Some(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal protobuf reader for the test: (field, wire type, value or bytes).
    fn fields(mut bytes: &[u8]) -> Vec<(u64, Vec<u8>, u64)> {
        fn varint(bytes: &mut &[u8]) -> u64 {
            let mut value = 0u64;
            let mut shift = 0;
            loop {
                let byte = bytes[0];
                *bytes = &bytes[1..];
                value |= u64::from(byte & 0x7F) << shift;
                if byte & 0x80 == 0 {
                    return value;
                }
                shift += 7;
            }
        }
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let tag = varint(&mut bytes);
            match tag & 7 {
                0 => out.push((tag >> 3, Vec::new(), varint(&mut bytes))),
                2 => {
                    let length = varint(&mut bytes) as usize;
                    out.push((tag >> 3, bytes[..length].to_vec(), 0));
                    bytes = &bytes[length..];
                }
                other => panic!("wire type {other}"),
            }
        }
        out
    }

    #[test]
    fn aggregated_records_decode_as_the_kpl_writes_them() {
        let mut aggregator = Aggregator::new();
        let big = vec![7u8; 300];
        let predicted = aggregator.size_with("a", b"one");
        aggregator.add("a", b"one");
        let predicted_second = aggregator.size_with("b", &big);
        aggregator.add("b", &big);
        aggregator.add("a", b"three");
        assert_eq!(aggregator.len(), 3);
        let (key, bytes) = aggregator.finish().unwrap();
        assert!(aggregator.is_empty());
        assert_eq!(key, "a");
        assert_eq!(bytes[..4], KPL_MAGIC);
        let (message, digest) = bytes[4..].split_at(bytes.len() - 4 - 16);
        assert_eq!(Md5::digest(message).as_slice(), digest);
        let top = fields(message);
        let keys: Vec<&[u8]> = top
            .iter()
            .filter(|field| field.0 == 1)
            .map(|field| field.1.as_slice())
            .collect();
        assert_eq!(keys, vec![b"a".as_slice(), b"b".as_slice()]);
        let records: Vec<(u64, Vec<u8>)> = top
            .iter()
            .filter(|field| field.0 == 3)
            .map(|field| {
                let inner = fields(&field.1);
                (inner[0].2, inner[1].1.clone())
            })
            .collect();
        assert_eq!(
            records,
            vec![
                (0, b"one".to_vec()),
                (1, big.clone()),
                (0, b"three".to_vec())
            ]
        );

        // The size predicted before each add is the size of the record then finished.
        let mut one = Aggregator::new();
        one.add("a", b"one");
        let (key, bytes) = one.finish().unwrap();
        assert_eq!(predicted, key.len() + bytes.len());
        let mut two = Aggregator::new();
        two.add("a", b"one");
        two.add("b", &big);
        let (key, bytes) = two.finish().unwrap();
        assert_eq!(predicted_second, key.len() + bytes.len());
        assert!(Aggregator::new().finish().is_none());
    }

    #[test]
    fn deaggregate_reads_what_the_aggregator_writes_and_passes_anything_else_through() {
        let mut aggregator = Aggregator::new();
        aggregator.add("a", b"one");
        aggregator.add("b", &[9u8; 200]);
        aggregator.add("a", b"");
        let (_, bytes) = aggregator.finish().unwrap();
        assert_eq!(
            deaggregate(&bytes),
            vec![b"one".as_slice(), &[9u8; 200][..], b"".as_slice()]
        );
        // Not aggregated, or a broken aggregate: the record itself.
        assert_eq!(deaggregate(b"plain"), vec![b"plain".as_slice()]);
        let mut corrupt = bytes.clone();
        let middle = corrupt.len() / 2;
        corrupt[middle] ^= 1;
        assert_eq!(deaggregate(&corrupt), vec![corrupt.as_slice()]);
        assert_eq!(deaggregate(&KPL_MAGIC), vec![KPL_MAGIC.as_slice()]);
        assert_eq!(
            deaggregate_keyed(&bytes).unwrap(),
            vec![
                (b"a".as_slice(), b"one".as_slice()),
                (b"b".as_slice(), &[9u8; 200][..]),
                (b"a".as_slice(), b"".as_slice())
            ]
        );
        assert!(deaggregate_keyed(b"plain").is_none());
        // Every cut of an aggregate reads without a panic.
        for end in 0..bytes.len() {
            let _ = deaggregate(&bytes[..end]);
        }
    }
}
