//! Segment files of one shard: naming, creation (header written to a temporary file, fsynced,
//! renamed), the recovery scan that tells valid frames from a torn tail and from corruption, the
//! lazily built sparse index, and the cursor that reads durable frames for iterators.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, BufReader, Read, Seek, SeekFrom},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use sluice_seal::FileKey;

use crate::{
    disk::Disk,
    error::{LogError, Result},
    format::{
        ENCRYPTED_SEGMENT_VERSION, FRAME_HEADER_BYTES, HeaderError, SegmentHeader, StoredRecord,
        body_bytes_bounds, decode_frame_body, decode_frame_header,
    },
    limits::INDEX_INTERVAL_BYTES,
    lock,
};

/// Suffix of segment files; the stem is the first offset in 20 zero-padded digits, so that file
/// names sort in offset order.
pub(crate) const SEGMENT_SUFFIX: &str = ".seg";

/// Suffix of files being created (segments, checkpoints, catalog); any left on open are
/// leftovers of a crash before their rename and are deleted.
pub(crate) const TEMPORARY_SUFFIX: &str = ".tmp";

/// Size of the read buffer used by scans and cursors.
const READ_BUFFER_BYTES: usize = 64 * 1024;

pub(crate) fn segment_file_name(first_offset: u64) -> String {
    format!("{first_offset:020}{SEGMENT_SUFFIX}")
}

/// The first offset named by a segment file name, or `None` for any other file.
pub(crate) fn parse_segment_file_name(file_name: &str) -> Option<u64> {
    let stem = file_name.strip_suffix(SEGMENT_SUFFIX)?;
    if stem.len() != 20 || !stem.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// One entry of a sparse index: the frame of record `offset` starts at `position_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub offset: u64,
    pub position_bytes: u64,
    pub arrival_time_ms: u64,
}

/// Pushes an index entry when the frame at `position_bytes` is far enough from the last one.
pub(crate) fn maybe_push_index_entry(entries: &mut Vec<IndexEntry>, entry: IndexEntry) {
    let far_enough = entries
        .last()
        .is_none_or(|last| entry.position_bytes - last.position_bytes >= INDEX_INTERVAL_BYTES);
    if far_enough {
        entries.push(entry);
    }
}

/// One segment file as the shard knows it in memory.
#[derive(Debug)]
pub(crate) struct Segment {
    pub path: PathBuf,
    pub first_offset: u64,
    pub created_time_ms: u64,
    /// Bytes of the file, header included; grows while the segment is active.
    pub size_bytes: AtomicU64,
    /// Sparse index; `None` for a sealed segment not read since the log was opened.
    pub index: Mutex<Option<Vec<IndexEntry>>>,
    /// Where the first frame starts: the header's length.
    pub data_start_bytes: u64,
    /// The file key of an encrypted segment (format version 2).
    pub key: Option<Arc<FileKey>>,
}

impl Segment {
    /// `key` is the file key of an encrypted segment, derived from the header's key id and salt.
    pub fn new(
        path: PathBuf,
        header: SegmentHeader,
        size_bytes: u64,
        key: Option<Arc<FileKey>>,
    ) -> Segment {
        Segment {
            path,
            first_offset: header.first_offset,
            created_time_ms: header.created_time_ms,
            size_bytes: AtomicU64::new(size_bytes),
            index: Mutex::new(None),
            data_start_bytes: header.length_bytes(),
            key,
        }
    }

    pub fn size_bytes(&self) -> u64 {
        self.size_bytes.load(Ordering::Acquire)
    }

    /// The entry to start from when looking for record `offset`: the last entry at or before it,
    /// or the first frame of the segment.
    pub fn start_for_offset(&self, offset: u64) -> IndexEntry {
        let index = lock(&self.index);
        let entries = index.as_deref().unwrap_or_default();
        let count = entries.partition_point(|entry| entry.offset <= offset);
        count
            .checked_sub(1)
            .and_then(|position| entries.get(position))
            .copied()
            .unwrap_or(IndexEntry {
                offset: self.first_offset,
                position_bytes: self.data_start_bytes,
                arrival_time_ms: self.created_time_ms,
            })
    }

    /// The offset to start from when looking for the first record that arrived at or after
    /// `timestamp_ms`: the last indexed record that arrived strictly before it.
    pub fn start_offset_for_timestamp(&self, timestamp_ms: u64) -> u64 {
        let index = lock(&self.index);
        let entries = index.as_deref().unwrap_or_default();
        let count = entries.partition_point(|entry| entry.arrival_time_ms < timestamp_ms);
        count
            .checked_sub(1)
            .and_then(|position| entries.get(position))
            .map_or(self.first_offset, |entry| entry.offset)
    }

    /// Builds the index of a sealed segment by scanning it, once. A sealed segment was fsynced
    /// before the next one was created, so any damage in it, even at its end, is corruption.
    pub fn ensure_sealed_index(&self, end_offset: u64) -> Result<()> {
        if lock(&self.index).is_some() {
            return Ok(());
        }
        let scan = scan_segment(&self.path, self.key.as_deref())?;
        if let Some(torn_tail) = scan.torn_tail {
            return Err(LogError::corruption(
                &self.path,
                torn_tail.position_bytes,
                format!("sealed segment ends in damage: {}", torn_tail.reason),
            ));
        }
        if scan.next_offset != end_offset {
            return Err(LogError::corruption(
                &self.path,
                scan.valid_end_bytes,
                format!(
                    "sealed segment holds records up to offset {} but the next segment starts at {end_offset}",
                    scan.next_offset
                ),
            ));
        }
        *lock(&self.index) = Some(scan.index);
        Ok(())
    }
}

/// Reads and checks the header of the segment file at `path` (either version).
pub(crate) fn read_segment_header(path: &Path, file: &File) -> Result<SegmentHeader> {
    let read = |bytes: &mut [u8]| {
        file.read_exact_at(bytes, 0).map_err(|error| {
            if error.kind() == io::ErrorKind::UnexpectedEof {
                LogError::corruption(path, 0, "file shorter than a segment header")
            } else {
                LogError::io(format!("read segment header {}", path.display()), error)
            }
        })
    };
    let header_error = |error| match error {
        HeaderError::Shape(reason) => LogError::corruption(path, 0, reason),
        HeaderError::Version(found) => LogError::UnsupportedFormatVersion {
            path: path.to_owned(),
            found,
            supported: ENCRYPTED_SEGMENT_VERSION,
        },
    };
    let mut start = [0u8; 12];
    read(&mut start)?;
    let length = SegmentHeader::length_from_start(&start).map_err(header_error)?;
    let mut bytes = vec![0u8; length as usize];
    read(&mut bytes)?;
    SegmentHeader::decode(&bytes).map_err(header_error)
}

/// Creates a segment file durably: header into `<name>.tmp`, fsync, rename, fsync the directory.
/// A crash leaves either no segment or a segment with a complete header.
pub(crate) fn create_segment_file(
    directory: &Path,
    header: SegmentHeader,
    key: Option<Arc<FileKey>>,
    disk: &dyn Disk,
) -> Result<(Segment, File)> {
    let file_name = segment_file_name(header.first_offset);
    let path = directory.join(&file_name);
    let temporary_path = directory.join(format!("{file_name}{TEMPORARY_SUFFIX}"));
    let context = |what: &str| format!("{what} segment {}", path.display());
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temporary_path)
        .map_err(|error| LogError::io(context("create"), error))?;
    file.write_all_at(&header.encode(), 0)
        .map_err(|error| LogError::io(context("write header of"), error))?;
    disk.sync_file(&file)
        .map_err(|error| LogError::io(context("fsync"), error))?;
    fs::rename(&temporary_path, &path).map_err(|error| LogError::io(context("rename"), error))?;
    disk.sync_directory(directory)
        .map_err(|error| LogError::io(format!("fsync directory {}", directory.display()), error))?;
    let length = header.length_bytes();
    Ok((Segment::new(path, header, length, key), file))
}

/// Where and why a segment stops being valid at its very end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TornTail {
    pub position_bytes: u64,
    pub reason: &'static str,
}

/// What a scan of a whole segment found.
#[derive(Debug)]
pub(crate) struct SegmentScan {
    pub index: Vec<IndexEntry>,
    /// Offset the next record after the valid frames would have.
    pub next_offset: u64,
    /// Byte position just after the last valid frame.
    pub valid_end_bytes: u64,
    pub last_arrival_time_ms: Option<u64>,
    pub file_length_bytes: u64,
    /// Set when the segment ends in a torn write: a partial frame, a zero-filled tail, or a last
    /// frame whose checksum fails and that ends exactly at the end of the file.
    pub torn_tail: Option<TornTail>,
}

/// Scans every frame of a segment, opening each with `key` when the segment is encrypted.
/// Damage followed by more bytes is corruption and an error; damage that reaches the end of the
/// file is reported as a torn tail for the caller to judge.
pub(crate) fn scan_segment(path: &Path, key: Option<&FileKey>) -> Result<SegmentScan> {
    let io_context = || format!("scan segment {}", path.display());
    let file = File::open(path).map_err(|error| LogError::io(io_context(), error))?;
    let header = read_segment_header(path, &file)?;
    if header.encryption.is_some() != key.is_some() {
        return Err(LogError::Encryption {
            path: path.to_owned(),
            reason: "the segment's encryption and its key disagree".to_owned(),
        });
    }
    let data_start_bytes = header.length_bytes();
    let bounds = body_bytes_bounds(key.is_some());
    let file_length_bytes = file
        .metadata()
        .map_err(|error| LogError::io(io_context(), error))?
        .len();
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, file);
    reader
        .seek(SeekFrom::Start(data_start_bytes))
        .map_err(|error| LogError::io(io_context(), error))?;
    let mut scan = SegmentScan {
        index: Vec::new(),
        next_offset: header.first_offset,
        valid_end_bytes: data_start_bytes,
        last_arrival_time_ms: None,
        file_length_bytes,
        torn_tail: None,
    };
    loop {
        let position_bytes = scan.valid_end_bytes;
        let remaining_bytes = file_length_bytes.saturating_sub(position_bytes);
        let torn = |reason| {
            Some(TornTail {
                position_bytes,
                reason,
            })
        };
        if remaining_bytes == 0 {
            break;
        }
        if remaining_bytes < FRAME_HEADER_BYTES {
            scan.torn_tail = torn("partial frame header");
            break;
        }
        let mut frame_header = [0u8; FRAME_HEADER_BYTES as usize];
        reader
            .read_exact(&mut frame_header)
            .map_err(|error| LogError::io(io_context(), error))?;
        let (body_length, stored_crc) = decode_frame_header(frame_header);
        let body_length = u64::from(body_length);
        if body_length == 0 && stored_crc == 0 {
            if rest_is_zero(&mut reader, remaining_bytes - FRAME_HEADER_BYTES)
                .map_err(|error| LogError::io(io_context(), error))?
            {
                scan.torn_tail = torn("zero-filled tail");
                break;
            }
            return Err(LogError::corruption(
                path,
                position_bytes,
                "zero frame header followed by non-zero bytes",
            ));
        }
        if FRAME_HEADER_BYTES + body_length > remaining_bytes {
            scan.torn_tail = torn("partial frame: its length runs past the end of the file");
            break;
        }
        if !bounds.contains(&body_length) {
            return Err(LogError::corruption(
                path,
                position_bytes,
                format!("implausible frame length {body_length}"),
            ));
        }
        let mut body = vec![0u8; usize::try_from(body_length).unwrap_or(usize::MAX)];
        reader
            .read_exact(&mut body)
            .map_err(|error| LogError::io(io_context(), error))?;
        if crc32fast::hash(&body) != stored_crc {
            if FRAME_HEADER_BYTES + body_length == remaining_bytes {
                scan.torn_tail = torn("checksum mismatch in the last frame");
                break;
            }
            return Err(LogError::corruption(
                path,
                position_bytes,
                "frame checksum mismatch in the middle of the segment",
            ));
        }
        let record = decode_frame_body(&body, key)
            .map_err(|reason| LogError::corruption(path, position_bytes, reason))?;
        check_record_offset(path, position_bytes, &record, scan.next_offset)?;
        maybe_push_index_entry(
            &mut scan.index,
            IndexEntry {
                offset: record.offset,
                position_bytes,
                arrival_time_ms: record.arrival_time_ms,
            },
        );
        scan.last_arrival_time_ms = Some(record.arrival_time_ms);
        scan.next_offset += 1;
        scan.valid_end_bytes = position_bytes + FRAME_HEADER_BYTES + body_length;
    }
    Ok(scan)
}

fn check_record_offset(
    path: &Path,
    position_bytes: u64,
    record: &StoredRecord,
    expected_offset: u64,
) -> Result<()> {
    if record.offset == expected_offset {
        Ok(())
    } else {
        Err(LogError::corruption(
            path,
            position_bytes,
            format!(
                "frame holds record offset {} where {expected_offset} was expected",
                record.offset
            ),
        ))
    }
}

fn rest_is_zero(reader: &mut impl Read, mut remaining_bytes: u64) -> io::Result<bool> {
    let mut buffer = vec![0u8; READ_BUFFER_BYTES];
    while remaining_bytes > 0 {
        let chunk_bytes = usize::try_from(remaining_bytes)
            .unwrap_or(usize::MAX)
            .min(buffer.len());
        let chunk = buffer.get_mut(..chunk_bytes).unwrap_or_default();
        reader.read_exact(chunk)?;
        if chunk.iter().any(|&byte| byte != 0) {
            return Ok(false);
        }
        remaining_bytes -= chunk_bytes as u64;
    }
    Ok(true)
}

/// Reads consecutive frames of a segment from a known frame boundary. Used only below the
/// durable end, so every frame it meets must be whole and valid: anything else is corruption.
pub(crate) struct SegmentCursor {
    path: PathBuf,
    reader: BufReader<File>,
    position_bytes: u64,
    key: Option<Arc<FileKey>>,
}

impl SegmentCursor {
    /// Opens the segment at a frame boundary. `Ok(None)` when the file is gone, which happens
    /// when retention deleted the segment after the caller looked at the segment list.
    pub fn open(segment: &Arc<Segment>, position_bytes: u64) -> Result<Option<SegmentCursor>> {
        let io_context = || format!("read segment {}", segment.path.display());
        let file = match File::open(&segment.path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(LogError::io(io_context(), error)),
        };
        let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, file);
        reader
            .seek(SeekFrom::Start(position_bytes))
            .map_err(|error| LogError::io(io_context(), error))?;
        Ok(Some(SegmentCursor {
            path: segment.path.clone(),
            reader,
            position_bytes,
            key: segment.key.clone(),
        }))
    }

    /// Reads the next frame, which must hold record `expected_offset`.
    pub fn next_record(&mut self, expected_offset: u64) -> Result<StoredRecord> {
        let position_bytes = self.position_bytes;
        let corrupt = |reason: &str| LogError::corruption(&self.path, position_bytes, reason);
        let read_error = |error: io::Error| {
            if error.kind() == io::ErrorKind::UnexpectedEof {
                LogError::corruption(
                    &self.path,
                    position_bytes,
                    "segment ends inside a durable frame",
                )
            } else {
                LogError::io(format!("read segment {}", self.path.display()), error)
            }
        };
        let mut frame_header = [0u8; FRAME_HEADER_BYTES as usize];
        self.reader
            .read_exact(&mut frame_header)
            .map_err(read_error)?;
        let (body_length, stored_crc) = decode_frame_header(frame_header);
        let body_length = u64::from(body_length);
        if !body_bytes_bounds(self.key.is_some()).contains(&body_length) {
            return Err(corrupt("implausible frame length"));
        }
        let mut body = vec![0u8; usize::try_from(body_length).unwrap_or(usize::MAX)];
        self.reader.read_exact(&mut body).map_err(read_error)?;
        if crc32fast::hash(&body) != stored_crc {
            return Err(corrupt("frame checksum mismatch"));
        }
        let record = decode_frame_body(&body, self.key.as_deref()).map_err(corrupt)?;
        check_record_offset(&self.path, position_bytes, &record, expected_offset)?;
        self.position_bytes += FRAME_HEADER_BYTES + body_length;
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_file_names_sort_by_offset_and_parse_back() {
        assert_eq!(segment_file_name(42), "00000000000000000042.seg");
        assert_eq!(
            parse_segment_file_name("00000000000000000042.seg"),
            Some(42)
        );
        assert_eq!(
            parse_segment_file_name("00000000000000000042.seg.tmp"),
            None
        );
        assert_eq!(parse_segment_file_name("42.seg"), None);
        assert_eq!(
            parse_segment_file_name(&segment_file_name(u64::MAX)),
            Some(u64::MAX)
        );
        assert!(segment_file_name(9) < segment_file_name(10));
    }
}
