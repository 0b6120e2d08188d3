//! The journal file: the one place a ledger's blocks are stored, and its commit point. A header
//! names the strand; then every block is one frame `body length u32 · CRC32 u32 · body`, the
//! body being the block's sequence number (u64) and its Ion binary. Frames are only ever
//! appended, a group of them with one write and one fsync (group commit); recovery scans from the
//! last checkpointed position and cuts only a torn tail. The file is grown ahead of its frames in
//! zero-filled steps (as PostgreSQL's WAL segments are), so an append's `fdatasync` flushes the
//! frames' pages only, not a new file size and extent metadata; a zero frame header followed by
//! nothing but zeros is the end of the written frames. The layout borrows the log's segment
//! framing (`crates/log`, `docs/log-format.md`) rather than the crate: a log frame carries a
//! stream record (partition key, arrival time) where the ledger needs numbered blocks in one
//! file whose positions its derived state points into. Spec: `docs/ledger-format.md`.
//!
//! A clear journal created by this build (version 4) stores each block as one LZ4 block after
//! its length; version 2 journals, which stored the Ion binary as is, stay readable and keep
//! their version. An encrypted journal (version 3, with a keyring when the ledger was created)
//! names its data key and salt in a longer header, and seals each block (`nonce · ciphertext ·
//! tag`, the sequence number before it in clear and authenticated); lengths and CRCs are as in
//! version 2.

use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use ion_rs::Element;
use sluice_seal::{FRAME_OVERHEAD_BYTES, FileKey, Keyring, MacKey, Purpose, SALT_BYTES};

use crate::error::LedgerError;

/// First bytes of every journal file.
pub const JOURNAL_MAGIC: [u8; 8] = *b"SLUICEJL";

/// Version of the journal's byte layout, the ledger format version that introduced it: each
/// block's Ion binary stored as is. Read, no longer written.
pub const JOURNAL_FORMAT_VERSION: u32 = 2;

/// Version of an encrypted journal: version 2's frames with every block sealed.
pub const ENCRYPTED_JOURNAL_FORMAT_VERSION: u32 = 3;

/// Version of a clear journal created by this build: version 2's header and frames, each body
/// holding the block's length (u32 LE) and then the block as one LZ4 block. A block's field
/// names, strand id, transaction id, time and table ids repeat in every revision and statement,
/// so the journal takes about 40 % of version 2's bytes.
pub const COMPRESSED_JOURNAL_FORMAT_VERSION: u32 = 4;

/// Bytes a compressed body holds before its LZ4 block: the block's length.
const BLOCK_LENGTH_BYTES: usize = 4;

/// Header: magic 8, version 4, strand id length 1, strand id (at most
/// [`STRAND_ID_BYTES_MAX`]), zero padding, CRC32 of the first 60 bytes 4.
pub const HEADER_BYTES: u64 = 64;

/// Encrypted header: version 2's first 60 bytes, data key id 4, salt 16, zero padding to 92,
/// CRC32 of the first 92 bytes 4.
pub const ENCRYPTED_HEADER_BYTES: u64 = 96;

/// What an encrypted journal's file key is for (the HKDF label).
const PURPOSE: Purpose = Purpose("sluice-ledger journal blocks");

/// What the keyed hash of an encrypted ledger's index entries is for.
const INDEX_PURPOSE: Purpose = Purpose("sluice-ledger index entries");
/// Longest strand id the header holds (QLDB's are 22 characters).
pub const STRAND_ID_BYTES_MAX: usize = 47;

/// Frame header: body length 4, CRC32 of the body 4.
pub const FRAME_HEADER_BYTES: u64 = 8;

/// Smallest valid body: a sequence number and at least the 4-byte Ion version marker.
const FRAME_BODY_BYTES_MIN: u64 = 8 + 4;

/// Largest valid body. A block holds at most 40 documents of 128 KiB (QLDB's limits) plus its
/// statements; imported QLDB blocks are bounded by QLDB's own limits. A longer frame is corrupt,
/// never a block: the scan refuses it instead of allocating its length.
pub const FRAME_BODY_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// Bytes read at a time by sequential scans (recovery, chain verification, export).
const SCAN_BUFFER_BYTES: usize = 1024 * 1024;

/// Least the journal grows by when an append would run past its zero-filled end. Each step
/// is as large as the frames already written, between this and
/// [`JOURNAL_PREALLOCATION_STEP_BYTES_MAX`], so a small ledger (and every test's) costs little
/// disk while a large one extends rarely.
pub const JOURNAL_PREALLOCATION_STEP_BYTES_MIN: u64 = 256 * 1024;

/// Most the journal grows by at a time (PostgreSQL's WAL segment size). The append that finds
/// the zero-filled room too small writes the step's zeros before its frames and pays for one
/// fsync that also commits the new size; every append after it, until the room runs out again,
/// overwrites zeros and its fsync flushes data only. A group larger than the room grows the file
/// to hold it whole.
pub const JOURNAL_PREALLOCATION_STEP_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// Zeros written per `pwrite` while growing the journal.
const ZERO_FILL_CHUNK_BYTES: usize = 1024 * 1024;

/// Where a block's frame lies in the journal: what the derived state keeps instead of a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramePosition {
    /// Byte offset of the frame header.
    pub offset: u64,
    /// Length of the whole frame, header included.
    pub length: u32,
}

impl FramePosition {
    /// The byte just after the frame.
    pub fn end(&self) -> u64 {
        self.offset + u64::from(self.length)
    }
}

/// How a journal stores a block in a frame body, after the block's sequence number.
#[derive(Debug)]
enum BlockCodec {
    /// Version 2: the block's Ion binary as is.
    Plain,
    /// Version 4: the block's length (u32 LE), then its Ion binary as one LZ4 block.
    Lz4,
    /// Version 3: the block sealed under the journal's file key (`nonce · ciphertext · tag`).
    Sealed(Box<FileKey>),
}

impl BlockCodec {
    fn version(&self) -> u32 {
        match self {
            BlockCodec::Plain => JOURNAL_FORMAT_VERSION,
            BlockCodec::Lz4 => COMPRESSED_JOURNAL_FORMAT_VERSION,
            BlockCodec::Sealed(_) => ENCRYPTED_JOURNAL_FORMAT_VERSION,
        }
    }

    fn key(&self) -> Option<&FileKey> {
        match self {
            BlockCodec::Sealed(key) => Some(key),
            BlockCodec::Plain | BlockCodec::Lz4 => None,
        }
    }

    /// Appends block `sequence_no` as the body stores it.
    fn encode_into(
        &self,
        out: &mut Vec<u8>,
        sequence_no: u64,
        block_bytes: &[u8],
    ) -> Result<(), LedgerError> {
        match self {
            BlockCodec::Plain => out.extend_from_slice(block_bytes),
            BlockCodec::Lz4 => {
                let length = u32::try_from(block_bytes.len())
                    .ok()
                    .filter(|length| u64::from(*length) <= FRAME_BODY_BYTES_MAX)
                    .ok_or_else(|| {
                        LedgerError::Storage(format!(
                            "block {sequence_no} has {} bytes, more than a journal frame holds",
                            block_bytes.len()
                        ))
                    })?;
                out.extend_from_slice(&length.to_le_bytes());
                let start = out.len();
                out.resize(
                    start + lz4_flex::block::get_maximum_output_size(block_bytes.len()),
                    0,
                );
                let written = lz4_flex::block::compress_into(
                    block_bytes,
                    out.get_mut(start..).unwrap_or_default(),
                )
                .map_err(|error| {
                    LedgerError::Storage(format!("compressing block {sequence_no}: {error}"))
                })?;
                out.truncate(start + written);
            }
            BlockCodec::Sealed(key) => key
                .seal_into(&sequence_no.to_le_bytes(), block_bytes, out)
                .map_err(|error| {
                    LedgerError::Storage(format!("sealing block {sequence_no}: {error}"))
                })?,
        }
        Ok(())
    }

    /// The block of a body whose CRC matched; `None` when it does not decode (a seal that does
    /// not open, LZ4 data that is damaged, or a block length out of bounds or not met).
    fn decode<'b>(&self, sequence_no: u64, stored: &'b [u8]) -> Option<Cow<'b, [u8]>> {
        match self {
            BlockCodec::Plain => Some(Cow::Borrowed(stored)),
            BlockCodec::Lz4 => {
                let (length, compressed) = stored.split_first_chunk::<BLOCK_LENGTH_BYTES>()?;
                let length = u32::from_le_bytes(*length);
                if u64::from(length) > FRAME_BODY_BYTES_MAX {
                    return None;
                }
                let mut block = vec![0u8; length as usize];
                let decoded = lz4_flex::block::decompress_into(compressed, &mut block).ok()?;
                (decoded == block.len()).then_some(Cow::Owned(block))
            }
            BlockCodec::Sealed(key) => key
                .open(&sequence_no.to_le_bytes(), stored)
                .ok()
                .map(Cow::Owned),
        }
    }

    /// The valid lengths of a frame body.
    fn body_bounds(&self) -> std::ops::RangeInclusive<u64> {
        match self {
            BlockCodec::Plain => FRAME_BODY_BYTES_MIN..=FRAME_BODY_BYTES_MAX,
            // Up to LZ4's worst case for incompressible data.
            BlockCodec::Lz4 => {
                FRAME_BODY_BYTES_MIN
                    ..=BLOCK_LENGTH_BYTES as u64
                        + lz4_flex::block::get_maximum_output_size(FRAME_BODY_BYTES_MAX as usize)
                            as u64
            }
            BlockCodec::Sealed(_) => {
                let overhead = FRAME_OVERHEAD_BYTES as u64;
                FRAME_BODY_BYTES_MIN + overhead..=FRAME_BODY_BYTES_MAX + overhead
            }
        }
    }
}

/// Appends one frame for block `sequence_no` to `out`, its block stored by `codec`; returns its
/// length.
fn encode_frame(
    out: &mut Vec<u8>,
    sequence_no: u64,
    block_bytes: &[u8],
    codec: &BlockCodec,
) -> Result<u32, LedgerError> {
    let start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER_BYTES as usize]);
    out.extend_from_slice(&sequence_no.to_le_bytes());
    codec.encode_into(out, sequence_no, block_bytes)?;
    let body_start = start + FRAME_HEADER_BYTES as usize;
    let body_length = out.len() - body_start;
    let crc = crc32fast::hash(out.get(body_start..).unwrap_or_default());
    let mut header = [0u8; FRAME_HEADER_BYTES as usize];
    let (length_part, crc_part) = header.split_at_mut(4);
    length_part.copy_from_slice(&u32::try_from(body_length).unwrap_or(u32::MAX).to_le_bytes());
    crc_part.copy_from_slice(&crc.to_le_bytes());
    if let Some(slot) = out.get_mut(start..body_start) {
        slot.copy_from_slice(&header);
    }
    Ok(u32::try_from(out.len() - start).unwrap_or(u32::MAX))
}

/// Body length and CRC from a frame header.
fn decode_frame_header(header: [u8; FRAME_HEADER_BYTES as usize]) -> (u64, u32) {
    let [l0, l1, l2, l3, c0, c1, c2, c3] = header;
    (
        u64::from(u32::from_le_bytes([l0, l1, l2, l3])),
        u32::from_le_bytes([c0, c1, c2, c3]),
    )
}

/// The sequence number and block bytes of a body whose CRC matched.
fn split_body(body: &[u8]) -> Option<(u64, &[u8])> {
    let (sequence, block) = body.split_first_chunk::<8>()?;
    Some((u64::from_le_bytes(*sequence), block))
}

fn encode_header(strand_id: &str, codec: &BlockCodec) -> Result<Vec<u8>, LedgerError> {
    let strand = strand_id.as_bytes();
    if strand.len() > STRAND_ID_BYTES_MAX {
        return Err(LedgerError::BadRequest(format!(
            "a strand id has at most {STRAND_ID_BYTES_MAX} bytes"
        )));
    }
    let (version, key) = (codec.version(), codec.key());
    let length = if key.is_some() {
        ENCRYPTED_HEADER_BYTES
    } else {
        HEADER_BYTES
    };
    let mut bytes = Vec::with_capacity(length as usize);
    bytes.extend_from_slice(&JOURNAL_MAGIC);
    bytes.extend_from_slice(&version.to_le_bytes());
    bytes.push(strand.len() as u8);
    bytes.extend_from_slice(strand);
    bytes.resize(HEADER_BYTES as usize - 4, 0);
    if let Some(key) = key {
        bytes.extend_from_slice(&key.key_id().to_le_bytes());
        bytes.extend_from_slice(&key.salt());
    }
    bytes.resize(length as usize - 4, 0);
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    Ok(bytes)
}

/// What a journal header says.
struct Header {
    strand_id: String,
    version: u32,
    length: u64,
    /// An encrypted journal's data key id and salt.
    encryption: Option<(u32, [u8; SALT_BYTES])>,
}

/// The header's version and length (from bytes 8..12 of the file).
fn header_length(path: &Path, start: &[u8]) -> Result<(u32, u64), LedgerError> {
    let corrupt = |what: &str| LedgerError::Storage(format!("journal {}: {what}", path.display()));
    if start.get(..8) != Some(JOURNAL_MAGIC.as_slice()) {
        return Err(corrupt("not a ledger journal (bad magic)"));
    }
    let version = start
        .get(8..12)
        .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| corrupt("short header"))?;
    match version {
        JOURNAL_FORMAT_VERSION | COMPRESSED_JOURNAL_FORMAT_VERSION => Ok((version, HEADER_BYTES)),
        ENCRYPTED_JOURNAL_FORMAT_VERSION => Ok((version, ENCRYPTED_HEADER_BYTES)),
        _ => Err(LedgerError::Storage(format!(
            "journal {} has format version {version}; this build reads {JOURNAL_FORMAT_VERSION}, \
             {ENCRYPTED_JOURNAL_FORMAT_VERSION} and {COMPRESSED_JOURNAL_FORMAT_VERSION}",
            path.display()
        ))),
    }
}

/// The strand id (and encryption) a header names, after checking magic, checksum and version.
fn decode_header(path: &Path, header: &[u8]) -> Result<Header, LedgerError> {
    let corrupt = |what: &str| LedgerError::Storage(format!("journal {}: {what}", path.display()));
    let (version, length) = header_length(path, header)?;
    let covered = header
        .get(..length as usize - 4)
        .ok_or_else(|| corrupt("short header"))?;
    let stored_crc = header
        .get(length as usize - 4..length as usize)
        .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| corrupt("short header"))?;
    if crc32fast::hash(covered) != stored_crc {
        return Err(corrupt("header checksum mismatch"));
    }
    let strand_length = usize::from(*covered.get(12).ok_or_else(|| corrupt("short header"))?);
    if strand_length > STRAND_ID_BYTES_MAX {
        return Err(corrupt("strand id longer than the header"));
    }
    let strand = covered
        .get(13..13 + strand_length)
        .ok_or_else(|| corrupt("strand id longer than the header"))?;
    let strand_id =
        String::from_utf8(strand.to_vec()).map_err(|_| corrupt("strand id is not UTF-8"))?;
    let encryption = if length == ENCRYPTED_HEADER_BYTES {
        let at = HEADER_BYTES as usize - 4;
        let key_id = covered
            .get(at..at + 4)
            .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
            .map(u32::from_le_bytes)
            .ok_or_else(|| corrupt("short header"))?;
        let salt = covered
            .get(at + 4..at + 4 + SALT_BYTES)
            .and_then(|bytes| <[u8; SALT_BYTES]>::try_from(bytes).ok())
            .ok_or_else(|| corrupt("short header"))?;
        Some((key_id, salt))
    } else {
        None
    };
    Ok(Header {
        strand_id,
        version,
        length,
        encryption,
    })
}

/// How a scan ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanEnd {
    /// The byte just after the last valid frame.
    pub valid_end: u64,
    /// The sequence number the next frame would carry.
    pub next_sequence_no: u64,
    /// Set when the frames end in a torn append: a partial frame header, a frame whose length
    /// runs past the end of the file, or a last frame whose checksum fails, each followed by
    /// nothing but zeros (the pre-allocated tail) or by the end of the file. A tail of zeros
    /// alone is not torn: it is the room pre-allocated for the next appends.
    pub torn_tail: Option<String>,
}

/// One valid frame met by a scan.
#[derive(Debug)]
pub struct ScannedFrame<'a> {
    /// The block's sequence number.
    pub sequence_no: u64,
    /// Where the frame lies.
    pub position: FramePosition,
    /// The block's Ion binary.
    pub block_bytes: &'a [u8],
}

/// The error of a failed fsync of the journal at `path`.
pub(crate) fn sync_error(path: &Path, error: &std::io::Error) -> LedgerError {
    LedgerError::Storage(format!("fsync of journal {}: {error}", path.display()))
}

/// A ledger's journal file. Appends and reads use positioned I/O on a shared handle: the
/// ledger's commit leader is the only writer, readers only read below the durable end.
#[derive(Debug)]
pub struct JournalFile {
    path: PathBuf,
    file: File,
    strand_id: String,
    /// Where the first frame starts.
    header_bytes: u64,
    /// How each block is stored in its frame (by the header's version).
    codec: BlockCodec,
    /// An encrypted ledger's keyed hash of index values: its state's index entries hold tags,
    /// not values.
    index_mac: Option<MacKey>,
    /// The file's length: frames up to the ledger's journal end, then zeros. Only the writer
    /// (the commit leader, a load, recovery) changes it, under the ledger's tip lock.
    allocated_end: AtomicU64,
}

impl JournalFile {
    /// Creates a journal holding only its header, durably (file and directory entry); with a
    /// keyring, an encrypted one under its current data key.
    pub fn create(
        path: &Path,
        strand_id: &str,
        keyring: Option<&Keyring>,
    ) -> Result<JournalFile, LedgerError> {
        let key = keyring
            .map(|keyring| keyring.new_file_key(PURPOSE))
            .transpose()
            .map_err(|error| LedgerError::Storage(format!("a journal key: {error}")))?;
        let index_mac = match (keyring, &key) {
            (Some(keyring), Some(key)) => Some(
                keyring
                    .mac_key(key.key_id(), key.salt(), INDEX_PURPOSE)
                    .map_err(|error| LedgerError::Storage(format!("an index key: {error}")))?,
            ),
            _ => None,
        };
        let codec = match key {
            Some(key) => BlockCodec::Sealed(Box::new(key)),
            None => BlockCodec::Lz4,
        };
        let header = encode_header(strand_id, &codec)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        file.write_all_at(&header, 0)?;
        file.sync_all()?;
        if let Some(parent) = path.parent() {
            File::open(parent)?.sync_all()?;
        }
        Ok(JournalFile {
            path: path.to_path_buf(),
            file,
            strand_id: strand_id.to_owned(),
            header_bytes: header.len() as u64,
            allocated_end: AtomicU64::new(header.len() as u64),
            codec,
            index_mac,
        })
    }

    /// Opens a journal and checks its header; frames are checked by [`JournalFile::scan`]. An
    /// encrypted journal needs the keyring holding its data key.
    pub fn open(path: &Path, keyring: Option<&Keyring>) -> Result<JournalFile, LedgerError> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let read = |bytes: &mut [u8]| {
            file.read_exact_at(bytes, 0).map_err(|error| {
                LedgerError::Storage(format!(
                    "journal {}: cannot read its header: {error}",
                    path.display()
                ))
            })
        };
        let mut start = [0u8; 12];
        read(&mut start)?;
        let mut header = vec![0u8; header_length(path, &start)?.1 as usize];
        read(&mut header)?;
        let header = decode_header(path, &header)?;
        let (codec, index_mac) = match header.encryption {
            None if header.version == JOURNAL_FORMAT_VERSION => (BlockCodec::Plain, None),
            None => (BlockCodec::Lz4, None),
            Some((key_id, salt)) => {
                let keyring = keyring.ok_or_else(|| {
                    LedgerError::Storage(format!(
                        "journal {} is encrypted, and Sluice was started without the encryption key",
                        path.display()
                    ))
                })?;
                let error =
                    |error| LedgerError::Storage(format!("journal {}: {error}", path.display()));
                (
                    BlockCodec::Sealed(Box::new(
                        keyring.file_key(key_id, salt, PURPOSE).map_err(error)?,
                    )),
                    Some(
                        keyring
                            .mac_key(key_id, salt, INDEX_PURPOSE)
                            .map_err(error)?,
                    ),
                )
            }
        };
        let allocated_end = AtomicU64::new(file.metadata()?.len());
        Ok(JournalFile {
            path: path.to_path_buf(),
            file,
            strand_id: header.strand_id,
            header_bytes: header.length,
            allocated_end,
            codec,
            index_mac,
        })
    }

    /// The key an index entry for `value` is stored under: the value's normal form
    /// ([`crate::value::index_value_key`]), or in an encrypted ledger its keyed hash, so equal
    /// values still meet and none is stored in clear. `None` for values indexes skip (null).
    pub fn index_key(&self, value: &Element) -> Option<String> {
        let key = crate::value::index_value_key(value)?;
        Some(match &self.index_mac {
            None => key,
            Some(mac) => mac.tag_hex(key.as_bytes()),
        })
    }

    /// Where the first frame starts (the header's length).
    pub fn header_bytes(&self) -> u64 {
        self.header_bytes
    }

    /// Appends one frame for block `sequence_no` to `out` as this journal stores it; returns
    /// its length.
    pub fn encode_frame(
        &self,
        out: &mut Vec<u8>,
        sequence_no: u64,
        block_bytes: &[u8],
    ) -> Result<u32, LedgerError> {
        encode_frame(out, sequence_no, block_bytes, &self.codec)
    }

    /// The header's format version: 2 (plain), 3 (encrypted) or 4 (compressed).
    pub fn format_version(&self) -> u32 {
        self.codec.version()
    }

    /// The strand the header names.
    pub fn strand_id(&self) -> &str {
        &self.strand_id
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's length in bytes.
    pub fn length_bytes(&self) -> Result<u64, LedgerError> {
        Ok(self.file.metadata()?.len())
    }

    /// Writes `frames` at `offset` (the end of the last frame) without fsync, first growing the
    /// file by a zero-filled step if they would run past its end; the caller's [`Self::sync`]
    /// makes both durable.
    pub fn write_at(&self, frames: &[u8], offset: u64) -> Result<(), LedgerError> {
        let storage = |error: std::io::Error| {
            LedgerError::Storage(format!(
                "appending to journal {}: {error}",
                self.path.display()
            ))
        };
        let frames_end = offset + frames.len() as u64;
        let allocated_end = self.allocated_end.load(Ordering::Acquire);
        if frames_end > allocated_end {
            let step = frames_end.clamp(
                JOURNAL_PREALLOCATION_STEP_BYTES_MIN,
                JOURNAL_PREALLOCATION_STEP_BYTES_MAX,
            );
            let new_end = frames_end + step;
            // Zeros only past the frames: the bytes below `frames_end` are written next.
            self.zero_fill(allocated_end.max(frames_end), new_end)
                .map_err(storage)?;
            self.allocated_end.store(new_end, Ordering::Release);
        }
        self.file.write_all_at(frames, offset).map_err(storage)
    }

    /// Reserves `start..end` and writes zeros into it, so later appends there overwrite written
    /// blocks instead of allocating (or converting unwritten extents) under their fsync.
    fn zero_fill(&self, start: u64, end: u64) -> std::io::Result<()> {
        if end <= start {
            return Ok(());
        }
        // Contiguous space up front where the file system offers it; zeros are written anyway,
        // since a reserved but unwritten extent would still cost metadata on first write.
        match rustix::fs::fallocate(
            &self.file,
            rustix::fs::FallocateFlags::empty(),
            start,
            end - start,
        ) {
            Ok(()) | Err(rustix::io::Errno::OPNOTSUPP) => {}
            Err(errno) => return Err(errno.into()),
        }
        let zeros = vec![0u8; ZERO_FILL_CHUNK_BYTES];
        let mut at = start;
        while at < end {
            let take = (end - at).min(ZERO_FILL_CHUNK_BYTES as u64) as usize;
            self.file
                .write_all_at(zeros.get(..take).unwrap_or_default(), at)?;
            at += take as u64;
        }
        Ok(())
    }

    /// A second handle of the file, for the thread that fsyncs it while the commit leader
    /// works on (an `fdatasync` through it covers the writes through this one).
    pub fn sync_handle(&self) -> Result<File, LedgerError> {
        Ok(self.file.try_clone()?)
    }

    /// Makes every written frame durable (`fdatasync`: the length is data too).
    pub fn sync(&self) -> Result<(), LedgerError> {
        self.file
            .sync_data()
            .map_err(|error| sync_error(&self.path, &error))
    }

    /// Cuts the file at `length` (a torn tail, or a cancelled load) and makes that durable.
    /// The next append grows it again by a zero-filled step.
    pub fn truncate(&self, length: u64) -> Result<(), LedgerError> {
        self.file.set_len(length)?;
        self.file.sync_all()?;
        self.allocated_end.store(length, Ordering::Release);
        Ok(())
    }

    /// Reads the frame at `position`, checks its length, checksum and sequence number (the read
    /// that pairs with the write), and returns the block's Ion binary.
    pub fn read_block(
        &self,
        position: FramePosition,
        sequence_no: u64,
    ) -> Result<Vec<u8>, LedgerError> {
        let mut frame = vec![0u8; position.length as usize];
        self.file
            .read_exact_at(&mut frame, position.offset)
            .map_err(|error| {
                LedgerError::Storage(format!(
                    "reading block {sequence_no} from journal {}: {error}",
                    self.path.display()
                ))
            })?;
        let damaged = |what: &str| {
            LedgerError::VerificationFailed(format!(
                "block {sequence_no} in the journal at byte {}: {what}",
                position.offset
            ))
        };
        let (header, body) = frame
            .split_first_chunk::<{ FRAME_HEADER_BYTES as usize }>()
            .ok_or_else(|| damaged("shorter than a frame header"))?;
        let (body_length, crc) = decode_frame_header(*header);
        if body_length != body.len() as u64 {
            return Err(damaged("its length disagrees with the index"));
        }
        if crc32fast::hash(body) != crc {
            return Err(damaged("checksum mismatch"));
        }
        match split_body(body) {
            Some((stored, block)) if stored == sequence_no => self
                .codec
                .decode(sequence_no, block)
                .map(Cow::into_owned)
                .ok_or_else(|| {
                    damaged("its stored block does not decode (or its seal does not open)")
                }),
            _ => Err(damaged("it carries another sequence number")),
        }
    }

    /// Reads frames from `offset` (a frame boundary) in order, expecting sequence numbers from
    /// `first_sequence_no`, and calls `visit` with each, until the end of the file, a torn tail,
    /// or `visit` returning `false`. Damage followed by more bytes, an implausible length or an
    /// out-of-order sequence number is corruption: an error, never a torn tail.
    pub fn scan(
        &self,
        offset: u64,
        first_sequence_no: u64,
        mut visit: impl FnMut(ScannedFrame<'_>) -> Result<bool, LedgerError>,
    ) -> Result<ScanEnd, LedgerError> {
        let corrupt = |position: u64, what: &str| {
            LedgerError::VerificationFailed(format!(
                "journal {} is damaged at byte {position}: {what}",
                self.path.display()
            ))
        };
        let file_length = self.length_bytes()?;
        if offset < self.header_bytes || offset > file_length {
            return Err(LedgerError::Storage(format!(
                "journal {} holds {file_length} bytes, but the ledger's state points at byte {offset}: \
                 the state is ahead of its journal",
                self.path.display()
            )));
        }
        let mut reader = WindowReader::new(&self.file);
        let mut end = ScanEnd {
            valid_end: offset,
            next_sequence_no: first_sequence_no,
            torn_tail: None,
        };
        loop {
            let position = end.valid_end;
            let remaining = file_length - position;
            if remaining == 0 {
                break;
            }
            if remaining < FRAME_HEADER_BYTES {
                end.torn_tail = Some("a partial frame header".to_owned());
                break;
            }
            let header: [u8; FRAME_HEADER_BYTES as usize] = reader
                .bytes(position, FRAME_HEADER_BYTES as usize)?
                .try_into()
                .map_err(|_| corrupt(position, "a short frame header"))?;
            let (body_length, crc) = decode_frame_header(header);
            if body_length == 0 && crc == 0 {
                if rest_is_zero(&mut reader, position, file_length)? {
                    // The room pre-allocated for the next appends (or a tail no byte of the
                    // next append reached): the written frames end here.
                    break;
                }
                return Err(corrupt(position, "a zero frame header before more data"));
            }
            if FRAME_HEADER_BYTES + body_length > remaining {
                end.torn_tail = Some("a frame whose length runs past the end".to_owned());
                break;
            }
            if body_length < FRAME_BODY_BYTES_MIN
                && rest_is_zero(&mut reader, position + 4, file_length)?
            {
                // Only the first bytes of a length were written before the zeros ahead of it.
                end.torn_tail = Some("a partial frame header".to_owned());
                break;
            }
            if !self.codec.body_bounds().contains(&body_length) {
                return Err(corrupt(
                    position,
                    &format!("an implausible frame length {body_length}"),
                ));
            }
            let frame_end = position + FRAME_HEADER_BYTES + body_length;
            if crc32fast::hash(reader.bytes(position + FRAME_HEADER_BYTES, body_length as usize)?)
                != crc
            {
                if rest_is_zero(&mut reader, frame_end, file_length)? {
                    end.torn_tail = Some("a checksum mismatch in the last frame".to_owned());
                    break;
                }
                return Err(corrupt(position, "a checksum mismatch"));
            }
            let body = reader.bytes(position + FRAME_HEADER_BYTES, body_length as usize)?;
            let (sequence_no, stored_block) =
                split_body(body).ok_or_else(|| corrupt(position, "a short body"))?;
            let block_bytes = self
                .codec
                .decode(sequence_no, stored_block)
                .ok_or_else(|| {
                    corrupt(
                        position,
                        "a block that does not decode (or whose seal does not open)",
                    )
                })?;
            if sequence_no != end.next_sequence_no {
                return Err(corrupt(
                    position,
                    &format!(
                        "block {sequence_no} where block {} was due",
                        end.next_sequence_no
                    ),
                ));
            }
            let frame_position = FramePosition {
                offset: position,
                length: u32::try_from(FRAME_HEADER_BYTES + body_length)
                    .map_err(|_| corrupt(position, "a frame longer than 4 GiB"))?,
            };
            let keep_going = visit(ScannedFrame {
                sequence_no,
                position: frame_position,
                block_bytes: &block_bytes,
            })?;
            end.valid_end = frame_position.end();
            end.next_sequence_no += 1;
            if !keep_going {
                break;
            }
        }
        Ok(end)
    }
}

/// Sequential reads through a window of [`SCAN_BUFFER_BYTES`] filled with positioned reads, so
/// scans need neither the file's path nor its shared offset.
struct WindowReader<'f> {
    file: &'f File,
    window_start: u64,
    window: Vec<u8>,
}

impl<'f> WindowReader<'f> {
    fn new(file: &'f File) -> WindowReader<'f> {
        WindowReader {
            file,
            window_start: 0,
            window: Vec::new(),
        }
    }

    /// `length` bytes at `position`, which the caller knows lie inside the file.
    fn bytes(&mut self, position: u64, length: usize) -> Result<&[u8], LedgerError> {
        let window_end = self.window_start + self.window.len() as u64;
        if position < self.window_start || position + length as u64 > window_end {
            self.window.resize(length.max(SCAN_BUFFER_BYTES), 0);
            let mut filled = 0;
            while filled < length {
                let read = self.file.read_at(
                    self.window.get_mut(filled..).unwrap_or_default(),
                    position + filled as u64,
                )?;
                if read == 0 {
                    break;
                }
                filled += read;
            }
            self.window.truncate(filled);
            self.window_start = position;
        }
        let start = (position - self.window_start) as usize;
        self.window.get(start..start + length).ok_or_else(|| {
            LedgerError::Storage(format!(
                "the journal ended before byte {}",
                position + length as u64
            ))
        })
    }
}

/// Whether every byte from `position` to `file_length` is zero.
fn rest_is_zero(
    reader: &mut WindowReader<'_>,
    position: u64,
    file_length: u64,
) -> Result<bool, LedgerError> {
    let mut at = position;
    while at < file_length {
        let take = (file_length - at).min(SCAN_BUFFER_BYTES as u64) as usize;
        if reader.bytes(at, take)?.iter().any(|byte| *byte != 0) {
            return Ok(false);
        }
        at += take as u64;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal_with(blocks: &[&[u8]]) -> (tempfile::TempDir, JournalFile, Vec<FramePosition>) {
        let dir = tempfile::tempdir().unwrap();
        let journal = JournalFile::create(&dir.path().join("journal"), "strand", None).unwrap();
        let mut frames = Vec::new();
        let mut positions = Vec::new();
        let mut offset = HEADER_BYTES;
        for (sequence_no, block) in blocks.iter().enumerate() {
            let length = journal
                .encode_frame(&mut frames, sequence_no as u64, block)
                .unwrap();
            positions.push(FramePosition { offset, length });
            offset += u64::from(length);
        }
        journal.write_at(&frames, HEADER_BYTES).unwrap();
        journal.sync().unwrap();
        (dir, journal, positions)
    }

    fn scan_all(journal: &JournalFile) -> Result<(Vec<Vec<u8>>, ScanEnd), LedgerError> {
        let mut blocks = Vec::new();
        let end = journal.scan(HEADER_BYTES, 0, |frame| {
            blocks.push(frame.block_bytes.to_vec());
            Ok(true)
        })?;
        Ok((blocks, end))
    }

    #[test]
    fn an_encrypted_journal_seals_blocks_and_cuts_torn_sealed_tails() {
        let dir = tempfile::tempdir().unwrap();
        let master = sluice_seal::MasterKey::parse(&"c4".repeat(32)).unwrap();
        let keyring = Keyring::open_or_create(&dir.path().join("keys"), master).unwrap();
        let path = dir.path().join("journal");
        let journal = JournalFile::create(&path, "strand", Some(&keyring)).unwrap();
        assert_eq!(journal.header_bytes(), ENCRYPTED_HEADER_BYTES);
        let mut frames = Vec::new();
        let mut positions = Vec::new();
        let mut offset = ENCRYPTED_HEADER_BYTES;
        for (sequence_no, block) in [
            &b"\xe0\x01\x00\xeaSECRET one"[..],
            b"\xe0\x01\x00\xeaSECRET two",
        ]
        .iter()
        .enumerate()
        {
            let length = journal
                .encode_frame(&mut frames, sequence_no as u64, block)
                .unwrap();
            positions.push(FramePosition { offset, length });
            offset += u64::from(length);
        }
        journal.write_at(&frames, ENCRYPTED_HEADER_BYTES).unwrap();
        journal.sync().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(!bytes.windows(6).any(|w| w == b"SECRET"));
        assert_eq!(
            journal.read_block(positions[1], 1).unwrap(),
            b"\xe0\x01\x00\xeaSECRET two"
        );
        drop(journal);
        assert!(JournalFile::open(&path, None).is_err());
        let reopened = JournalFile::open(&path, Some(&keyring)).unwrap();
        assert_eq!(reopened.strand_id(), "strand");
        let mut blocks = Vec::new();
        let end = reopened
            .scan(reopened.header_bytes(), 0, |frame| {
                blocks.push(frame.block_bytes.to_vec());
                Ok(true)
            })
            .unwrap();
        assert_eq!(blocks[0], b"\xe0\x01\x00\xeaSECRET one");
        assert_eq!(end.valid_end, positions[1].end());
        // A cut in the last sealed frame is a torn tail; a block moved to another sequence
        // number (its CRC made right) does not open.
        std::fs::write(&path, &bytes[..positions[1].end() as usize - 3]).unwrap();
        let cut = JournalFile::open(&path, Some(&keyring)).unwrap();
        let end = cut.scan(cut.header_bytes(), 0, |_| Ok(true)).unwrap();
        assert_eq!(end.valid_end, positions[1].offset);
        assert!(end.torn_tail.is_some());
        let mut moved = bytes.clone();
        let body = positions[0].offset as usize + 8;
        moved[body] ^= 1;
        let crc = crc32fast::hash(&moved[body..positions[0].end() as usize]);
        moved[body - 4..body].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(&path, &moved).unwrap();
        let moved = JournalFile::open(&path, Some(&keyring)).unwrap();
        assert!(moved.scan(moved.header_bytes(), 0, |_| Ok(true)).is_err());
    }

    #[test]
    fn frames_read_back_by_position_and_by_scan() {
        let (dir, journal, positions) =
            journal_with(&[b"\xe0\x01\x00\xeafirst", b"\xe0\x01\x00\xeasecond"]);
        assert_eq!(
            journal.read_block(positions[1], 1).unwrap(),
            b"\xe0\x01\x00\xeasecond"
        );
        assert!(matches!(
            journal.read_block(positions[1], 0),
            Err(LedgerError::VerificationFailed(_))
        ));
        let reopened = JournalFile::open(&dir.path().join("journal"), None).unwrap();
        assert_eq!(reopened.strand_id(), "strand");
        let (blocks, end) = scan_all(&reopened).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(end.valid_end, positions[1].end());
        assert_eq!(end.next_sequence_no, 2);
        assert_eq!(end.torn_tail, None);
    }

    #[test]
    fn a_cut_anywhere_in_the_last_frame_is_a_torn_tail() {
        let (dir, journal, positions) =
            journal_with(&[b"\xe0\x01\x00\xeaone", b"\xe0\x01\x00\xeathe last block"]);
        let path = dir.path().join("journal");
        let last = positions[1];
        let bytes = std::fs::read(&path).unwrap();
        drop(journal);
        for cut in last.offset..last.end() {
            std::fs::write(&path, &bytes[..cut as usize]).unwrap();
            let (blocks, end) = scan_all(&JournalFile::open(&path, None).unwrap()).unwrap();
            assert_eq!(blocks.len(), 1, "cut at {cut}");
            assert_eq!(end.valid_end, last.offset);
            assert_eq!(end.torn_tail.is_some(), cut > last.offset, "cut at {cut}");
        }
    }

    #[test]
    fn damage_before_more_frames_is_corruption_and_a_zero_tail_is_room() {
        let (dir, journal, positions) =
            journal_with(&[b"\xe0\x01\x00\xeaone", b"\xe0\x01\x00\xeatwo"]);
        let path = dir.path().join("journal");
        let mut bytes = std::fs::read(&path).unwrap();
        let flipped = positions[0].offset as usize + 12;
        bytes[flipped] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            scan_all(&JournalFile::open(&path, None).unwrap()),
            Err(LedgerError::VerificationFailed(_))
        ));
        bytes[flipped] ^= 0xff;
        bytes.extend_from_slice(&[0u8; 100]);
        std::fs::write(&path, &bytes).unwrap();
        let (blocks, end) = scan_all(&journal).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(end.valid_end, positions[1].end());
        assert_eq!(
            end.torn_tail, None,
            "zeros after the frames are pre-allocated room"
        );
        assert!(JournalFile::open(&dir.path().join("missing"), None).is_err());
    }

    #[test]
    fn appends_grow_the_file_in_zero_filled_steps_and_scans_stop_at_the_zeros() {
        let (dir, journal, positions) = journal_with(&[b"\xe0\x01\x00\xeaone"]);
        let frames_end = positions[0].end();
        let grown = journal.length_bytes().unwrap();
        assert_eq!(grown, frames_end + JOURNAL_PREALLOCATION_STEP_BYTES_MIN);
        let bytes = std::fs::read(dir.path().join("journal")).unwrap();
        assert!(bytes[frames_end as usize..].iter().all(|byte| *byte == 0));
        // Appends into the room leave the length alone.
        let mut frame = Vec::new();
        let length = journal
            .encode_frame(&mut frame, 1, b"\xe0\x01\x00\xeatwo")
            .unwrap();
        journal.write_at(&frame, frames_end).unwrap();
        journal.sync().unwrap();
        assert_eq!(journal.length_bytes().unwrap(), grown);
        let reopened = JournalFile::open(&dir.path().join("journal"), None).unwrap();
        let (blocks, end) = scan_all(&reopened).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(end.valid_end, frames_end + u64::from(length));
        assert_eq!(end.torn_tail, None);
        // An append larger than the room grows the file to hold it, plus a larger step.
        let big = incompressible((JOURNAL_PREALLOCATION_STEP_BYTES_MIN * 2) as usize, 3);
        let mut frame = Vec::new();
        reopened.encode_frame(&mut frame, 2, &big).unwrap();
        reopened.write_at(&frame, end.valid_end).unwrap();
        let big_end = end.valid_end + frame.len() as u64;
        assert_eq!(reopened.length_bytes().unwrap(), big_end * 2);
        let (blocks, end) = scan_all(&reopened).unwrap();
        assert_eq!(
            (blocks.len(), end.valid_end, end.torn_tail),
            (3, big_end, None)
        );
        // A truncation gives the room back; the next append grows the file again.
        reopened.truncate(big_end).unwrap();
        assert_eq!(reopened.length_bytes().unwrap(), big_end);
    }

    /// `length` bytes that LZ4 cannot compress (xorshift).
    fn incompressible(length: usize, mut state: u64) -> Vec<u8> {
        (0..length)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    #[test]
    fn a_cut_anywhere_in_the_last_frame_before_a_zeroed_tail_is_a_torn_tail() {
        // A body longer than 255 bytes whose length's first byte alone is below the minimum, so
        // the cuts inside the length field meet both kinds of partial header.
        let last_block = (200..400)
            .map(|length| incompressible(length, 7))
            .find(|block| {
                let mut body = Vec::new();
                BlockCodec::Lz4.encode_into(&mut body, 1, block).unwrap();
                let body_length = 8 + body.len() as u64;
                body_length > 255 && (1..FRAME_BODY_BYTES_MIN).contains(&(body_length % 256))
            })
            .unwrap();
        let (dir, journal, positions) = journal_with(&[b"\xe0\x01\x00\xeaone", &last_block]);
        let path = dir.path().join("journal");
        let last = positions[1];
        let bytes = std::fs::read(&path).unwrap();
        drop(journal);
        for cut in last.offset..last.end() {
            let mut torn = bytes.clone();
            torn[cut as usize..].fill(0);
            std::fs::write(&path, &torn).unwrap();
            let (blocks, end) = scan_all(&JournalFile::open(&path, None).unwrap()).unwrap();
            assert_eq!(blocks.len(), 1, "cut at {cut}");
            assert_eq!(end.valid_end, last.offset, "cut at {cut}");
            assert_eq!(end.torn_tail.is_some(), cut > last.offset, "cut at {cut}");
            // The same torn frame followed by a byte of data is corruption, not a tear.
            let mut damaged = torn;
            *damaged.last_mut().unwrap() = 1;
            std::fs::write(&path, &damaged).unwrap();
            assert!(
                matches!(
                    scan_all(&JournalFile::open(&path, None).unwrap()),
                    Err(LedgerError::VerificationFailed(_))
                ),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn new_journals_compress_their_blocks_and_plain_version_2_journals_stay_readable() {
        let repeated: Vec<u8> = b"\xe0\x01\x00\xea"
            .iter()
            .copied()
            .chain(b"strand 0123456789 transaction ".repeat(100))
            .collect();
        let (dir, journal, positions) = journal_with(&[&repeated]);
        assert_eq!(journal.format_version(), COMPRESSED_JOURNAL_FORMAT_VERSION);
        assert!(u64::from(positions[0].length) < repeated.len() as u64 / 10);
        assert_eq!(journal.read_block(positions[0], 0).unwrap(), repeated);
        let reopened = JournalFile::open(&dir.path().join("journal"), None).unwrap();
        assert_eq!(scan_all(&reopened).unwrap().0, [repeated.as_slice()]);

        // A version 2 journal, as earlier builds wrote it: each block as is.
        let path = dir.path().join("journal-v2");
        let mut bytes = encode_header("strand", &BlockCodec::Plain).unwrap();
        encode_frame(&mut bytes, 0, &repeated, &BlockCodec::Plain).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        let plain = JournalFile::open(&path, None).unwrap();
        assert_eq!(plain.format_version(), JOURNAL_FORMAT_VERSION);
        let (blocks, end) = scan_all(&plain).unwrap();
        assert_eq!(blocks, [repeated.as_slice()]);
        assert_eq!(end.valid_end, bytes.len() as u64);
        // It keeps its version: appends to it are written as version 2 frames.
        let mut frame = Vec::new();
        plain.encode_frame(&mut frame, 1, &repeated).unwrap();
        assert_eq!(frame.len(), 16 + repeated.len());
    }

    #[test]
    fn a_compressed_block_that_does_not_decode_is_corruption() {
        let (dir, journal, positions) = journal_with(&[b"\xe0\x01\x00\xeaone two three"]);
        let path = dir.path().join("journal");
        let mut bytes = std::fs::read(&path).unwrap();
        drop(journal);
        // The block's length made longer than the LZ4 data holds, its CRC made right.
        let body = positions[0].offset as usize + 8;
        bytes[body + 8] += 1;
        let crc = crc32fast::hash(&bytes[body..positions[0].end() as usize]);
        bytes[body - 4..body].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let damaged = JournalFile::open(&path, None).unwrap();
        assert!(matches!(
            scan_all(&damaged),
            Err(LedgerError::VerificationFailed(_))
        ));
        assert!(matches!(
            damaged.read_block(positions[0], 0),
            Err(LedgerError::VerificationFailed(_))
        ));
    }

    proptest::proptest! {
        /// Damaged LZ4 data (any bytes after any stated length) decodes to an error or to a
        /// block of exactly the stated length, never a panic or an allocation past the bound.
        #[test]
        fn any_compressed_body_decodes_or_is_refused(
            length in proptest::prop_oneof![0u32..4096, proptest::prelude::any::<u32>()],
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
        ) {
            let mut stored = length.to_le_bytes().to_vec();
            stored.extend_from_slice(&data);
            if let Some(block) = BlockCodec::Lz4.decode(0, &stored) {
                proptest::prop_assert_eq!(block.len(), length as usize);
            }
        }
    }

    #[test]
    fn headers_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        JournalFile::create(&path, "strand", None).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[20] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            JournalFile::open(&path, None),
            Err(LedgerError::Storage(message)) if message.contains("checksum")
        ));
        std::fs::write(&path, b"SLUICEJL").unwrap();
        assert!(JournalFile::open(&path, None).is_err());
    }
}
