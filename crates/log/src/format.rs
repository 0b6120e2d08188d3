//! Byte layouts of the log's binary files (see docs/log-format.md): the segment header, the
//! record frame (length + CRC32 + body) and the checkpoint file. Encoding and decoding live side
//! by side so each write is paired with the read that checks it.

use sluice_seal::{FRAME_OVERHEAD_BYTES, FileKey, Purpose, SALT_BYTES, SealError};

use crate::limits::{PARTITION_KEY_BYTES_MAX, RECORD_BYTES_MAX};

/// Version of every binary layout in this file; bumped on any change.
pub const FORMAT_VERSION: u32 = 1;

/// Version of an encrypted segment: version 1's layout with the data key and salt in the header
/// and every frame body after its offset and arrival time sealed (AES-256-GCM).
pub const ENCRYPTED_SEGMENT_VERSION: u32 = 2;

/// What an encrypted segment's file key is for (the HKDF label).
pub(crate) const SEGMENT_PURPOSE: Purpose = Purpose("sluice-log segment frames");

/// First bytes of every segment file.
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"SLUICESG";

/// Segment header: magic 8, version 4, shard index 4, first offset 8, created time 8, CRC32 4.
pub(crate) const SEGMENT_HEADER_BYTES: u64 = 36;

/// Encrypted segment header: version 1's fields, data key id 4, salt 16, then the CRC32 4.
pub(crate) const ENCRYPTED_SEGMENT_HEADER_BYTES: u64 = 56;

/// The clear part of an encrypted frame body: offset 8 and arrival time 8 (associated data).
const CLEAR_BODY_BYTES: usize = 16;

/// Frame header: body length 4, CRC32 of the body 4.
pub(crate) const FRAME_HEADER_BYTES: u64 = 8;

/// Fixed part of a frame body: offset 8, arrival time 8, flags 1, partition key length 2.
const BODY_FIXED_BYTES: usize = 8 + 8 + 1 + 2;

/// Bytes of an explicit hash key in a body when the flag says it is present.
const EXPLICIT_HASH_KEY_BYTES: usize = 16;

/// Flag bit: an explicit hash key follows the flags.
const FLAG_EXPLICIT_HASH_KEY: u8 = 0b1;

/// Smallest valid body: the fixed part and a one-byte partition key, no data.
pub(crate) const FRAME_BODY_BYTES_MIN: u64 = (BODY_FIXED_BYTES + 1) as u64;

/// Largest valid body: a frame longer than this is corrupt, never a record.
pub(crate) const FRAME_BODY_BYTES_MAX: u64 =
    (BODY_FIXED_BYTES + EXPLICIT_HASH_KEY_BYTES + RECORD_BYTES_MAX) as u64;

/// First bytes of every checkpoint file.
pub(crate) const CHECKPOINT_MAGIC: [u8; 8] = *b"SLUICECP";

/// Checkpoint file: magic 8, version 4, shard index 4, sequence number 16, written time 8, CRC32 4.
pub(crate) const CHECKPOINT_BYTES: usize = 44;

/// The header that opens every segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub shard_index: u32,
    /// Offset of the first record in this segment (also in the file name).
    pub first_offset: u64,
    /// Arrival time given to the first record of this segment: every record of this segment
    /// arrived at or after it, every record of earlier segments at or before it.
    pub created_time_ms: u64,
    /// The key of an encrypted segment (version 2); `None` for a version 1 segment.
    pub encryption: Option<SegmentEncryption>,
}

/// Which data key an encrypted segment is sealed under, and its salt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentEncryption {
    pub key_id: u32,
    pub salt: [u8; SALT_BYTES],
}

impl SegmentEncryption {
    pub fn of(key: &FileKey) -> SegmentEncryption {
        SegmentEncryption {
            key_id: key.key_id(),
            salt: key.salt(),
        }
    }
}

impl SegmentHeader {
    /// Bytes of this header in its file: where the first frame starts.
    pub fn length_bytes(&self) -> u64 {
        if self.encryption.is_some() {
            ENCRYPTED_SEGMENT_HEADER_BYTES
        } else {
            SEGMENT_HEADER_BYTES
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.length_bytes() as usize);
        bytes.extend_from_slice(&SEGMENT_MAGIC);
        let version = match self.encryption {
            None => FORMAT_VERSION,
            Some(_) => ENCRYPTED_SEGMENT_VERSION,
        };
        bytes.extend_from_slice(&version.to_le_bytes());
        bytes.extend_from_slice(&self.shard_index.to_le_bytes());
        bytes.extend_from_slice(&self.first_offset.to_le_bytes());
        bytes.extend_from_slice(&self.created_time_ms.to_le_bytes());
        if let Some(encryption) = &self.encryption {
            bytes.extend_from_slice(&encryption.key_id.to_le_bytes());
            bytes.extend_from_slice(&encryption.salt);
        }
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        bytes
    }

    /// The length of the header whose first 12 bytes are `start`, from its version.
    pub fn length_from_start(start: &[u8]) -> Result<u64, HeaderError> {
        let mut reader = ByteReader::new(start);
        if reader.array::<8>() != Some(SEGMENT_MAGIC) {
            return Err(HeaderError::Shape("bad magic"));
        }
        match reader.u32() {
            Some(FORMAT_VERSION) => Ok(SEGMENT_HEADER_BYTES),
            Some(ENCRYPTED_SEGMENT_VERSION) => Ok(ENCRYPTED_SEGMENT_HEADER_BYTES),
            Some(other) => Err(HeaderError::Version(other)),
            None => Err(HeaderError::Shape("short header")),
        }
    }

    /// Decodes a header; the error says what is wrong in words.
    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, HeaderError> {
        let short = HeaderError::Shape("short header");
        let length = SegmentHeader::length_from_start(bytes.get(..12).ok_or(short)?)? as usize;
        let covered = bytes.get(..length - 4).ok_or(short)?;
        let mut reader = ByteReader::new(bytes.get(12..).ok_or(short)?);
        let shard_index = reader.u32().ok_or(short)?;
        let first_offset = reader.u64().ok_or(short)?;
        let created_time_ms = reader.u64().ok_or(short)?;
        let encryption = if length as u64 == ENCRYPTED_SEGMENT_HEADER_BYTES {
            Some(SegmentEncryption {
                key_id: reader.u32().ok_or(short)?,
                salt: reader.array::<SALT_BYTES>().ok_or(short)?,
            })
        } else {
            None
        };
        let stored_crc = reader.u32().ok_or(short)?;
        if crc32fast::hash(covered) != stored_crc {
            return Err(HeaderError::Shape("header checksum mismatch"));
        }
        Ok(SegmentHeader {
            shard_index,
            first_offset,
            created_time_ms,
            encryption,
        })
    }
}

/// The valid lengths of a frame body: plain, or encrypted (its nonce and tag added).
pub(crate) fn body_bytes_bounds(encrypted: bool) -> std::ops::RangeInclusive<u64> {
    let overhead = if encrypted {
        FRAME_OVERHEAD_BYTES as u64
    } else {
        0
    };
    FRAME_BODY_BYTES_MIN + overhead..=FRAME_BODY_BYTES_MAX + overhead
}

/// Why a header or checkpoint did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderError {
    Shape(&'static str),
    Version(u32),
}

/// One record as stored in a frame body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredRecord {
    pub offset: u64,
    pub arrival_time_ms: u64,
    pub partition_key: String,
    pub explicit_hash_key: Option<u128>,
    pub data: Vec<u8>,
}

/// Appends one frame (header and body) to `out`, its body after the offset and arrival time
/// sealed under `key` in an encrypted segment. The caller has validated the key and data sizes
/// against the limits, so the length fits in a `u32`.
pub(crate) fn encode_frame(
    out: &mut Vec<u8>,
    offset: u64,
    arrival_time_ms: u64,
    partition_key: &str,
    explicit_hash_key: Option<u128>,
    data: &[u8],
    key: Option<&FileKey>,
) -> Result<(), SealError> {
    let frame_start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER_BYTES as usize]);
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&arrival_time_ms.to_le_bytes());
    let sealed_start = out.len();
    match explicit_hash_key {
        Some(hash_key) => {
            out.push(FLAG_EXPLICIT_HASH_KEY);
            out.extend_from_slice(&hash_key.to_le_bytes());
        }
        None => out.push(0),
    }
    let key_length = u16::try_from(partition_key.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&key_length.to_le_bytes());
    out.extend_from_slice(partition_key.as_bytes());
    out.extend_from_slice(data);
    if let Some(key) = key {
        let tail = out.split_off(sealed_start);
        let aad = clear_part(
            out.get(sealed_start - CLEAR_BODY_BYTES..)
                .unwrap_or_default(),
        );
        key.seal_into(&aad, &tail, out)?;
    }
    let body_start = frame_start + FRAME_HEADER_BYTES as usize;
    let body = out.get(body_start..).unwrap_or_default();
    let body_length = u32::try_from(body.len()).unwrap_or(u32::MAX);
    let crc = crc32fast::hash(body);
    let mut header = [0u8; FRAME_HEADER_BYTES as usize];
    header[..4].copy_from_slice(&body_length.to_le_bytes());
    header[4..].copy_from_slice(&crc.to_le_bytes());
    if let Some(slot) = out.get_mut(frame_start..body_start) {
        slot.copy_from_slice(&header);
    }
    Ok(())
}

/// Bytes of the frame [`encode_frame`] writes for a record of these sizes.
pub(crate) fn frame_bytes(
    partition_key_bytes: usize,
    explicit_hash_key: bool,
    data_bytes: usize,
    encrypted: bool,
) -> u64 {
    let hash_key = if explicit_hash_key {
        EXPLICIT_HASH_KEY_BYTES
    } else {
        0
    };
    let sealing = if encrypted { FRAME_OVERHEAD_BYTES } else { 0 };
    (FRAME_HEADER_BYTES as usize
        + BODY_FIXED_BYTES
        + hash_key
        + partition_key_bytes
        + data_bytes
        + sealing) as u64
}

/// The offset and arrival time at the start of a body, which an encrypted frame authenticates.
fn clear_part(body: &[u8]) -> [u8; CLEAR_BODY_BYTES] {
    let mut clear = [0u8; CLEAR_BODY_BYTES];
    if let Some(start) = body.get(..CLEAR_BODY_BYTES) {
        clear.copy_from_slice(start);
    }
    clear
}

/// Whether `buffer` holds exactly `count` whole, valid frames with consecutive offsets from
/// `first_offset`: the check that pairs every write with a read, run before writing in debug builds.
pub(crate) fn frames_are_valid(
    buffer: &[u8],
    first_offset: u64,
    count: usize,
    key: Option<&FileKey>,
) -> bool {
    let mut rest = buffer;
    for expected_offset in (first_offset..).take(count) {
        let Some((header, after_header)) =
            rest.split_first_chunk::<{ FRAME_HEADER_BYTES as usize }>()
        else {
            return false;
        };
        let (body_length, crc) = decode_frame_header(*header);
        let Some((body, after_body)) = after_header.split_at_checked(body_length as usize) else {
            return false;
        };
        let decoded_offset = decode_frame_body(body, key).map(|record| record.offset);
        if crc32fast::hash(body) != crc || decoded_offset != Ok(expected_offset) {
            return false;
        }
        rest = after_body;
    }
    rest.is_empty()
}

/// Reads the body length and CRC from a frame header.
pub(crate) fn decode_frame_header(header: [u8; FRAME_HEADER_BYTES as usize]) -> (u32, u32) {
    let [l0, l1, l2, l3, c0, c1, c2, c3] = header;
    (
        u32::from_le_bytes([l0, l1, l2, l3]),
        u32::from_le_bytes([c0, c1, c2, c3]),
    )
}

/// Decodes a body whose CRC already matched, opening it with `key` in an encrypted segment; an
/// error means a bug wrote it, the CRC collided, or (encrypted) the bytes were changed or the
/// key is not theirs.
pub(crate) fn decode_frame_body(
    body: &[u8],
    key: Option<&FileKey>,
) -> Result<StoredRecord, &'static str> {
    let mut reader = ByteReader::new(body);
    let offset = reader.u64().ok_or("body shorter than its fixed part")?;
    let arrival_time_ms = reader.u64().ok_or("body shorter than its fixed part")?;
    let opened;
    let mut reader = match key {
        None => reader,
        Some(key) => {
            opened = key
                .open(&clear_part(body), reader.rest())
                .map_err(|_| "encrypted frame does not open with its segment's key")?;
            ByteReader::new(&opened)
        }
    };
    let flags = reader.u8().ok_or("body shorter than its fixed part")?;
    if flags & !FLAG_EXPLICIT_HASH_KEY != 0 {
        return Err("unknown flag bits");
    }
    let explicit_hash_key = if flags & FLAG_EXPLICIT_HASH_KEY != 0 {
        Some(u128::from_le_bytes(
            reader
                .array::<16>()
                .ok_or("body shorter than its hash key")?,
        ))
    } else {
        None
    };
    let key_length = usize::from(reader.u16().ok_or("body shorter than its fixed part")?);
    if key_length == 0 || key_length > PARTITION_KEY_BYTES_MAX {
        return Err("partition key length out of range");
    }
    let key_bytes = reader
        .take(key_length)
        .ok_or("body shorter than its partition key")?;
    let partition_key = std::str::from_utf8(key_bytes)
        .map_err(|_| "partition key is not UTF-8")?
        .to_owned();
    let data = reader.rest().to_vec();
    if data.len() + key_length > RECORD_BYTES_MAX {
        return Err("record larger than the record limit");
    }
    Ok(StoredRecord {
        offset,
        arrival_time_ms,
        partition_key,
        explicit_hash_key,
        data,
    })
}

/// One consumer checkpoint as stored in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CheckpointFile {
    pub shard_index: u32,
    pub sequence_number: u128,
    pub written_time_ms: u64,
}

impl CheckpointFile {
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(CHECKPOINT_BYTES);
        bytes.extend_from_slice(&CHECKPOINT_MAGIC);
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&self.shard_index.to_le_bytes());
        bytes.extend_from_slice(&self.sequence_number.to_le_bytes());
        bytes.extend_from_slice(&self.written_time_ms.to_le_bytes());
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        bytes
    }

    pub fn decode(bytes: &[u8]) -> Result<CheckpointFile, HeaderError> {
        if bytes.len() != CHECKPOINT_BYTES {
            return Err(HeaderError::Shape("checkpoint file has the wrong length"));
        }
        let mut reader = ByteReader::new(bytes);
        let short = HeaderError::Shape("short checkpoint");
        if reader.array::<8>().ok_or(short)? != CHECKPOINT_MAGIC {
            return Err(HeaderError::Shape("bad checkpoint magic"));
        }
        let version = reader.u32().ok_or(short)?;
        let shard_index = reader.u32().ok_or(short)?;
        let sequence_number = u128::from_le_bytes(reader.array::<16>().ok_or(short)?);
        let written_time_ms = reader.u64().ok_or(short)?;
        let stored_crc = reader.u32().ok_or(short)?;
        let covered = bytes.get(..CHECKPOINT_BYTES - 4).ok_or(short)?;
        if crc32fast::hash(covered) != stored_crc {
            return Err(HeaderError::Shape("checkpoint checksum mismatch"));
        }
        if version != FORMAT_VERSION {
            return Err(HeaderError::Version(version));
        }
        Ok(CheckpointFile {
            shard_index,
            sequence_number,
            written_time_ms,
        })
    }
}

/// A cursor over a byte slice whose reads return `None` instead of panicking when short.
struct ByteReader<'a> {
    bytes: &'a [u8],
}

impl<'a> ByteReader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        ByteReader { bytes }
    }

    fn take(&mut self, count: usize) -> Option<&'a [u8]> {
        let (taken, rest) = self.bytes.split_at_checked(count)?;
        self.bytes = rest;
        Some(taken)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[byte]| byte)
    }

    fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_le_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|start| u8::from_str_radix(&text[start..start + 2], 16).unwrap())
            .collect()
    }

    /// Format version 1 as written by an independent encoder of docs/log-format.md (Python
    /// `struct` and `zlib.crc32`): every later build must write and read these exact bytes.
    #[test]
    fn version_1_bytes_are_stable() {
        let header = SegmentHeader {
            shard_index: 3,
            first_offset: 99,
            created_time_ms: 12345,
            encryption: None,
        };
        let header_bytes =
            hex("534c5549434553470100000003000000630000000000000039300000000000007b03bcc2");
        assert_eq!(header.encode().to_vec(), header_bytes);
        assert_eq!(SegmentHeader::decode(&header_bytes), Ok(header));

        let frame_bytes = hex(concat!(
            "2b000000b32c70fa0700000000000000e803000000000000012a000000000000",
            "00000000000000000003006b657968656c6c6f"
        ));
        let mut frame = Vec::new();
        encode_frame(&mut frame, 7, 1000, "key", Some(42), b"hello", None).unwrap();
        assert_eq!(frame, frame_bytes);
        let record = decode_frame_body(&frame_bytes[8..], None).unwrap();
        assert_eq!((record.offset, record.arrival_time_ms), (7, 1000));
        assert_eq!(record.data, b"hello");

        let checkpoint = CheckpointFile {
            shard_index: 1,
            sequence_number: 1 << 70,
            written_time_ms: 5,
        };
        let checkpoint_bytes = hex(concat!(
            "534c5549434543500100000001000000000000000000000040000000000000",
            "000500000000000000e08da822"
        ));
        assert_eq!(checkpoint.encode(), checkpoint_bytes);
        assert_eq!(CheckpointFile::decode(&checkpoint_bytes), Ok(checkpoint));
    }

    #[test]
    fn frame_round_trips_and_checks_its_crc() {
        let mut out = Vec::new();
        encode_frame(&mut out, 7, 1_000, "key", Some(42), b"hello", None).unwrap();
        encode_frame(&mut out, 8, 1_001, "k2", None, b"", None).unwrap();
        let header: [u8; 8] = out[..8].try_into().unwrap();
        let (length, crc) = decode_frame_header(header);
        let body = &out[8..8 + length as usize];
        assert_eq!(crc32fast::hash(body), crc);
        let record = decode_frame_body(body, None).unwrap();
        assert_eq!(record.offset, 7);
        assert_eq!(record.arrival_time_ms, 1_000);
        assert_eq!(record.partition_key, "key");
        assert_eq!(record.explicit_hash_key, Some(42));
        assert_eq!(record.data, b"hello");
        let second = &out[8 + length as usize..];
        let (length_2, _) = decode_frame_header(second[..8].try_into().unwrap());
        let record_2 = decode_frame_body(&second[8..8 + length_2 as usize], None).unwrap();
        assert_eq!(record_2.explicit_hash_key, None);
        assert!(record_2.data.is_empty());
        assert_eq!(u64::from(length_2), FRAME_BODY_BYTES_MIN + 1);
    }

    #[test]
    fn segment_header_round_trips_and_rejects_damage() {
        let header = SegmentHeader {
            shard_index: 3,
            first_offset: 99,
            created_time_ms: 12345,
            encryption: None,
        };
        let mut bytes = header.encode();
        assert_eq!(SegmentHeader::decode(&bytes), Ok(header));
        bytes[20] ^= 1;
        assert!(SegmentHeader::decode(&bytes).is_err());
        assert!(SegmentHeader::decode(&bytes[..10]).is_err());
    }

    #[test]
    fn encrypted_frames_keep_offsets_clear_and_the_rest_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let master = sluice_seal::MasterKey::parse(&"11".repeat(32)).unwrap();
        let keyring = sluice_seal::Keyring::open_or_create(dir.path(), master).unwrap();
        let key = keyring.new_file_key(SEGMENT_PURPOSE).unwrap();
        let header = SegmentHeader {
            shard_index: 2,
            first_offset: 7,
            created_time_ms: 5,
            encryption: Some(SegmentEncryption::of(&key)),
        };
        let bytes = header.encode();
        assert_eq!(bytes.len() as u64, ENCRYPTED_SEGMENT_HEADER_BYTES);
        assert_eq!(SegmentHeader::decode(&bytes), Ok(header));
        let mut out = Vec::new();
        encode_frame(
            &mut out,
            7,
            1_000,
            "secret-key",
            None,
            b"secret data",
            Some(&key),
        )
        .unwrap();
        encode_frame(&mut out, 8, 1_000, "k", Some(9), b"", Some(&key)).unwrap();
        assert!(!out.windows(6).any(|w| w == b"secret"));
        assert!(frames_are_valid(&out, 7, 2, Some(&key)));
        assert!(!frames_are_valid(&out, 7, 2, None));
        let (length, _) = decode_frame_header(out[..8].try_into().unwrap());
        assert!(body_bytes_bounds(true).contains(&u64::from(length)));
        let body = &out[8..8 + length as usize];
        let record = decode_frame_body(body, Some(&key)).unwrap();
        assert_eq!(record.partition_key, "secret-key");
        assert_eq!(record.data, b"secret data");
        // The clear offset is authenticated: a frame moved to another offset does not open.
        let mut moved = body.to_vec();
        moved[0] ^= 1;
        assert!(decode_frame_body(&moved, Some(&key)).is_err());
        let other = keyring.new_file_key(SEGMENT_PURPOSE).unwrap();
        assert!(decode_frame_body(body, Some(&other)).is_err());
    }

    #[test]
    fn checkpoint_round_trips_and_rejects_damage() {
        let checkpoint = CheckpointFile {
            shard_index: 1,
            sequence_number: 1 << 70,
            written_time_ms: 5,
        };
        let mut bytes = checkpoint.encode();
        assert_eq!(bytes.len(), CHECKPOINT_BYTES);
        assert_eq!(CheckpointFile::decode(&bytes), Ok(checkpoint));
        bytes[30] ^= 0x10;
        assert!(CheckpointFile::decode(&bytes).is_err());
    }
}
