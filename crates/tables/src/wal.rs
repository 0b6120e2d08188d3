//! The tables' write-ahead log, `tables/tables.wal` and `tables/tables.wal2`: the commit point
//! of every item write.
//!
//! A write group's effect (every row it put or removed, as bytes: see [`Redo`]) is one log
//! record, appended durably before redb holds it; redb then commits it without an fsync of its
//! own (`Durability::None`). Readers see a change only once its record is on disk. After a crash
//! redb is back at its last durable commit, whose `meta` row `wal_applied` names the last record
//! it holds; the records after it are applied again, in order, before the tables open.
//!
//! The log is two files, one of them active. When the active one passes
//! [`WAL_CHECKPOINT_BYTES`], appends go on at the front of the other — once every record it
//! holds is durable in redb — and the applier makes the next redb commit durable, which frees
//! the first file in turn. So a checkpoint never holds up a write. Should the other file not be
//! free yet, the active one grows; past [`WAL_BYTES_MAX`] the writer waits for a checkpoint. A
//! durable redb commit of everything logged (a catalog change, a clean close) starts both files
//! again.
//!
//! A record is `len: u32 LE`, `crc: u32 LE` (CRC-32 of the next 8 bytes and the payload),
//! `lsn: u64 LE`, then `len` payload bytes. Log sequence numbers count up by one across both
//! files and never repeat. Each file is preallocated with zeros and reused from the front, so a
//! reader takes a file's records from offset 0 for as long as each is whole (its CRC holds) and
//! carries the next number: a torn record, zeros, or a stale record of an earlier round (whose
//! number is lower) ends the file. The records of both files numbered after `wal_applied` are
//! the log, and they must follow each other without a gap.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use crate::error::{Result, TablesError};

/// The log's file names in the tables directory.
pub(crate) const WAL_FILES: [&str; 2] = ["tables.wal", "tables.wal2"];
/// Each file's preallocated size, and the length past which appends move to the other file
/// and a checkpoint begins. A write group's record may run past it (the file grows).
pub(crate) const WAL_CHECKPOINT_BYTES: u64 = 16 * 1024 * 1024;
/// The length past which the active file waits for a checkpoint instead of growing, when the
/// other file is still needed (its checkpoint has not finished).
pub(crate) const WAL_BYTES_MAX: u64 = 8 * WAL_CHECKPOINT_BYTES;
const HEADER_BYTES: usize = 16;
/// Most payload bytes one record may hold: its length is a `u32`.
const RECORD_BYTES_MAX: usize = u32::MAX as usize;

fn crc_of(lsn: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&lsn.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// A record read back from the log: its number and its payload.
pub(crate) type LoggedRecord = (u64, Vec<u8>);

/// The alignment of direct writes: the page size, a multiple of every disk's logical block.
const BLOCK_BYTES: usize = 4096;
/// A direct-write buffer grown past this by a large group is given back after its write.
const BUFFER_KEPT_BYTES: usize = 1 << 20;

/// The open log: its two files, the one appends go to, and the number the next record gets.
pub(crate) struct Wal {
    files: [LogFile; 2],
    active: usize,
    next_lsn: u64,
}

/// One file of the log.
struct LogFile {
    file: File,
    /// How appends reach the disk.
    writer: Writer,
    /// Where the next record goes.
    position: u64,
    /// The number of the last record the file holds since it was last started again (0 for
    /// none): the file may be started again once redb holds that record durably.
    last_lsn: u64,
}

/// An append is durable when its write returns: with `O_DIRECT | O_DSYNC` the data goes from
/// the buffer to the disk in one request with its cache flush, which takes about a fifth less
/// time and half the CPU of a write to the page cache and an `fdatasync` (BENCHMARKS.md, the
/// tables section). Direct writes must cover whole aligned blocks, so the block the log ends
/// in is written again, whole, with the next record: its earlier bytes are rewritten as they
/// were. Where the file system refuses direct I/O (tmpfs), appends go through the page cache
/// and an `fdatasync`.
enum Writer {
    Direct(DirectWriter),
    Buffered,
}

/// The log opened with `O_DIRECT | O_DSYNC`.
struct DirectWriter {
    file: File,
    /// Bytes of the block the log ends in, up to the end of the log.
    tail: Vec<u8>,
    /// Room for one aligned write; the write uses its aligned part.
    buffer: Vec<u8>,
}

impl Wal {
    /// Opens the log in `directory` (creating and preallocating its files the first time) and
    /// reads back the records after `applied`, in order. Appends go on after the file holding
    /// the last record, so appending before a checkpoint keeps every record the log holds.
    pub(crate) fn open(directory: &Path, applied: u64) -> Result<(Wal, Vec<LoggedRecord>)> {
        let mut chains = Vec::with_capacity(WAL_FILES.len());
        let mut files = Vec::with_capacity(WAL_FILES.len());
        for name in WAL_FILES {
            let (file, chain, position) = open_file(directory, name)?;
            let last_lsn = chain.last().map_or(0, |(lsn, _)| *lsn);
            chains.push(chain);
            files.push((file, position, last_lsn));
        }
        // The file with the highest number is where appends go on; a file that holds nothing
        // has last number 0.
        let active = usize::from(
            files.get(1).map_or(0, |file| file.2) > files.first().map_or(0, |file| file.2),
        );
        let mut records: Vec<LoggedRecord> = chains
            .into_iter()
            .flatten()
            .filter(|(lsn, _)| *lsn > applied)
            .collect();
        records.sort_by_key(|(lsn, _)| *lsn);
        for (expected, (lsn, _)) in (applied + 1..).zip(&records) {
            if *lsn != expected {
                return Err(TablesError::Corrupt(if expected == applied + 1 {
                    format!(
                        "the write-ahead log starts at record {lsn}, but the database holds only up to {applied}"
                    )
                } else {
                    format!(
                        "the write-ahead log skips from record {} to {lsn}",
                        expected - 1
                    )
                }));
            }
        }
        let last = files.iter().map(|file| file.2).max().unwrap_or(0);
        let next_lsn = last.max(applied) + 1;
        let mut opened = Vec::with_capacity(files.len());
        for (name, (file, position, last_lsn)) in WAL_FILES.iter().zip(files) {
            let writer = Writer::open(&directory.join(name), &file, position)?;
            opened.push(LogFile {
                file,
                writer,
                position,
                last_lsn,
            });
        }
        let files: [LogFile; 2] = opened
            .try_into()
            .map_err(|_| TablesError::Storage("the write-ahead log has two files".to_owned()))?;
        Ok((
            Wal {
                files,
                active,
                next_lsn,
            },
            records,
        ))
    }

    #[cfg(test)]
    fn buffered(mut self) -> Wal {
        for file in &mut self.files {
            file.writer = Writer::Buffered;
        }
        self
    }

    #[cfg(test)]
    fn is_direct(&self) -> bool {
        self.files
            .iter()
            .all(|file| matches!(file.writer, Writer::Direct(_)))
    }

    /// The number the next record gets.
    pub(crate) fn next_lsn(&self) -> u64 {
        self.next_lsn
    }

    fn active(&mut self) -> &mut LogFile {
        let active = self.active;
        let [first, second] = &mut self.files;
        if active == 0 { first } else { second }
    }

    /// How far the active file reaches.
    fn active_position(&self) -> u64 {
        let [first, second] = &self.files;
        if self.active == 0 { first } else { second }.position
    }

    fn other(&self) -> &LogFile {
        let [first, second] = &self.files;
        if self.active == 0 { second } else { first }
    }

    /// Whether the active file has passed [`WAL_CHECKPOINT_BYTES`]: appends should move to the
    /// other file, and a checkpoint begin.
    pub(crate) fn wants_checkpoint(&self) -> bool {
        self.active_position() >= WAL_CHECKPOINT_BYTES
    }

    /// Whether the active file has passed [`WAL_BYTES_MAX`]: the writer must wait for a
    /// checkpoint rather than grow it further.
    pub(crate) fn must_checkpoint(&self) -> bool {
        self.active_position() >= WAL_BYTES_MAX
    }

    /// Moves appends to the front of the other file, if redb holds every record of it durably
    /// (up to `durable`). Answers whether it did: then the records of the file left behind
    /// are needed until the next durable commit.
    pub(crate) fn switch_if_free(&mut self, durable: u64) -> bool {
        if self.other().last_lsn > durable {
            return false;
        }
        self.active = 1 - self.active;
        self.active().restart();
        true
    }

    /// Appends record [`Self::next_lsn`] and returns once it is on disk. On an error the log
    /// is unchanged in memory; the caller stops writing (what reached the file is at most a
    /// torn record, which ends the log when it is read).
    pub(crate) fn append(&mut self, payload: &[u8]) -> Result<u64> {
        if payload.len() > RECORD_BYTES_MAX {
            return Err(TablesError::Storage(format!(
                "a write group of {} bytes is more than the write-ahead log's record maximum",
                payload.len()
            )));
        }
        let lsn = self.next_lsn;
        let mut bytes = Vec::with_capacity(HEADER_BYTES + payload.len());
        bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&crc_of(lsn, payload).to_le_bytes());
        bytes.extend_from_slice(&lsn.to_le_bytes());
        bytes.extend_from_slice(payload);
        self.active().append(&bytes)?;
        self.active().last_lsn = lsn;
        self.next_lsn += 1;
        Ok(lsn)
    }

    /// Starts both files again at their front: call only once every record is durable in the
    /// database (a `Durability::Immediate` commit after the last one).
    pub(crate) fn restart(&mut self) {
        for file in &mut self.files {
            file.restart();
        }
    }
}

impl LogFile {
    fn append(&mut self, bytes: &[u8]) -> Result<()> {
        let written = match &mut self.writer {
            Writer::Direct(direct) => match direct.append(bytes, self.position) {
                Ok(()) => true,
                Err(error) if error.raw_os_error() == Some(libc::EINVAL) => {
                    // A file system that opens files for direct I/O but refuses the writes: the
                    // record goes through the page cache instead, over whatever part of it was
                    // written, and so does every later one.
                    tracing::warn!(%error, "tables: direct writes to the write-ahead log refused; using fdatasync");
                    self.writer = Writer::Buffered;
                    false
                }
                Err(error) => return Err(error.into()),
            },
            Writer::Buffered => false,
        };
        if !written {
            self.file.write_all_at(bytes, self.position)?;
            self.file.sync_data()?;
        }
        self.position += bytes.len() as u64;
        Ok(())
    }

    fn restart(&mut self) {
        self.position = 0;
        self.last_lsn = 0;
        if let Writer::Direct(direct) = &mut self.writer {
            direct.tail.clear();
        }
    }
}

/// Opens one file of the log (creating and preallocating it the first time) and reads its
/// records from the front while they are whole and numbered one after another: the file's
/// chain, and where it ends.
fn open_file(directory: &Path, name: &str) -> Result<(File, Vec<LoggedRecord>, u64)> {
    let path = directory.join(name);
    let created = !path.exists();
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)?;
    if created || file.metadata()?.len() < WAL_CHECKPOINT_BYTES {
        preallocate(&file)?;
        File::open(directory)?.sync_all()?;
    }
    let mut reader = BufReader::with_capacity(1 << 20, &file);
    let mut position = 0_u64;
    let mut chain: Vec<LoggedRecord> = Vec::new();
    while let Some((lsn, payload)) = read_record(&mut reader)? {
        if chain
            .last()
            .is_some_and(|(previous, _)| lsn != previous + 1)
        {
            break;
        }
        position += (HEADER_BYTES + payload.len()) as u64;
        chain.push((lsn, payload));
    }
    drop(reader);
    Ok((file, chain, position))
}

impl Writer {
    /// Opens the log again for direct, synchronous writes, with the bytes of the block it ends
    /// in; falls back to buffered writes where direct I/O is refused.
    fn open(path: &Path, file: &File, position: u64) -> Result<Writer> {
        // `O_DSYNC`, not `O_SYNC`: a write overwriting allocated blocks then syncs no metadata.
        let direct = match OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT | libc::O_DSYNC)
            .open(path)
        {
            Ok(direct) => direct,
            Err(error) => {
                tracing::info!(%error, "tables: the write-ahead log's file system refuses direct I/O; using fdatasync");
                return Ok(Writer::Buffered);
            }
        };
        let block_start = position - position % BLOCK_BYTES as u64;
        let mut tail = vec![0_u8; (position - block_start) as usize];
        file.read_exact_at(&mut tail, block_start)?;
        Ok(Writer::Direct(DirectWriter {
            file: direct,
            tail,
            buffer: Vec::new(),
        }))
    }
}

impl DirectWriter {
    /// Writes `record` at `position` (the log's end) durably, with the block it starts in.
    fn append(&mut self, record: &[u8], position: u64) -> std::io::Result<()> {
        let DirectWriter { file, tail, buffer } = self;
        let block_start = position - tail.len() as u64;
        let end = tail.len() + record.len();
        let padded = end.div_ceil(BLOCK_BYTES) * BLOCK_BYTES;
        buffer.clear();
        buffer.resize(padded + BLOCK_BYTES, 0);
        let offset = buffer.as_ptr().align_offset(BLOCK_BYTES);
        let Some(aligned) = buffer.get_mut(offset..offset + padded) else {
            return Err(std::io::Error::other("no aligned room in the log's buffer"));
        };
        let (head, rest) = aligned.split_at_mut(tail.len());
        head.copy_from_slice(tail);
        if let Some(place) = rest.get_mut(..record.len()) {
            place.copy_from_slice(record);
        }
        file.write_all_at(aligned, block_start)?;
        // The new tail: the bytes of the last block up to the log's new end.
        let last_block = (end / BLOCK_BYTES) * BLOCK_BYTES;
        tail.clear();
        tail.extend_from_slice(aligned.get(last_block..end).unwrap_or_default());
        if buffer.capacity() > BUFFER_KEPT_BYTES {
            *buffer = Vec::new();
        }
        Ok(())
    }
}

/// Fills the log to [`WAL_CHECKPOINT_BYTES`] with zeros, so appends overwrite allocated blocks
/// (an fdatasync then writes no file size).
fn preallocate(file: &File) -> Result<()> {
    let zeros = vec![0_u8; 1 << 20];
    let mut offset = file.metadata()?.len();
    while offset < WAL_CHECKPOINT_BYTES {
        let length = (WAL_CHECKPOINT_BYTES - offset).min(zeros.len() as u64) as usize;
        file.write_all_at(zeros.get(..length).unwrap_or(&zeros), offset)?;
        offset += length as u64;
    }
    file.sync_all()?;
    Ok(())
}

/// The next whole record, or None where the log ends (end of file, a torn or zeroed record).
fn read_record(reader: &mut impl Read) -> Result<Option<(u64, Vec<u8>)>> {
    let mut header = [0_u8; HEADER_BYTES];
    if !read_fully(reader, &mut header)? {
        return Ok(None);
    }
    let [
        l0,
        l1,
        l2,
        l3,
        c0,
        c1,
        c2,
        c3,
        n0,
        n1,
        n2,
        n3,
        n4,
        n5,
        n6,
        n7,
    ] = header;
    let length = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
    let crc = u32::from_le_bytes([c0, c1, c2, c3]);
    let lsn = u64::from_le_bytes([n0, n1, n2, n3, n4, n5, n6, n7]);
    if lsn == 0 {
        return Ok(None);
    }
    // Read the payload in steps, so a garbage length costs no more memory than the file holds.
    let mut payload = Vec::new();
    let read = reader
        .by_ref()
        .take(length as u64)
        .read_to_end(&mut payload)?;
    if read != length || crc_of(lsn, &payload) != crc {
        return Ok(None);
    }
    Ok(Some((lsn, payload)))
}

/// Fills `buffer`, or answers false at the end of the file.
fn read_fully(reader: &mut impl Read, buffer: &mut [u8]) -> Result<bool> {
    let mut filled = 0;
    while filled < buffer.len() {
        let Some(rest) = buffer.get_mut(filled..) else {
            break;
        };
        match reader.read(rest)? {
            0 => return Ok(false),
            read => filled += read,
        }
    }
    Ok(true)
}

/// One write transaction's effect on the item-side tables, row by row, in the order it was
/// made: what a log record holds. Every row is written whole (counts as their new values), so
/// applying a record again onto the state it was made from gives the same state.
#[derive(Default)]
pub(crate) struct Redo {
    bytes: Vec<u8>,
}

/// The rows a [`Redo`] names, by table.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Row<'a> {
    PutItem(u64, &'a [u8], &'a [u8]),
    RemoveItem(u64, &'a [u8]),
    PutCounts(u64, u64, u64),
    PutStreamNext(u64, u64),
    PutRecord(u64, u64, &'a [u8]),
    PutIndexEntry(u64, &'a [u8], &'a [u8]),
    RemoveIndexEntry(u64, &'a [u8]),
}

impl Redo {
    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    pub(crate) fn push(&mut self, row: &Row<'_>) {
        let bytes = &mut self.bytes;
        match *row {
            Row::PutItem(id, key, value) => {
                bytes.push(1);
                bytes.extend_from_slice(&id.to_le_bytes());
                put_slice(bytes, key);
                put_slice(bytes, value);
            }
            Row::RemoveItem(id, key) => {
                bytes.push(2);
                bytes.extend_from_slice(&id.to_le_bytes());
                put_slice(bytes, key);
            }
            Row::PutCounts(id, count, size) => {
                bytes.push(3);
                for number in [id, count, size] {
                    bytes.extend_from_slice(&number.to_le_bytes());
                }
            }
            Row::PutStreamNext(id, next) => {
                bytes.push(4);
                bytes.extend_from_slice(&id.to_le_bytes());
                bytes.extend_from_slice(&next.to_le_bytes());
            }
            Row::PutRecord(id, sequence, value) => {
                bytes.push(5);
                bytes.extend_from_slice(&id.to_le_bytes());
                bytes.extend_from_slice(&sequence.to_le_bytes());
                put_slice(bytes, value);
            }
            Row::PutIndexEntry(id, key, value) => {
                bytes.push(6);
                bytes.extend_from_slice(&id.to_le_bytes());
                put_slice(bytes, key);
                put_slice(bytes, value);
            }
            Row::RemoveIndexEntry(id, key) => {
                bytes.push(7);
                bytes.extend_from_slice(&id.to_le_bytes());
                put_slice(bytes, key);
            }
        }
    }
}

fn put_slice(bytes: &mut Vec<u8>, slice: &[u8]) {
    bytes.extend_from_slice(&(slice.len() as u32).to_le_bytes());
    bytes.extend_from_slice(slice);
}

/// Reads a record's rows back, in order.
pub(crate) struct Rows<'a> {
    rest: &'a [u8],
}

impl<'a> Rows<'a> {
    pub(crate) fn of(payload: &'a [u8]) -> Rows<'a> {
        Rows { rest: payload }
    }

    fn u64(&mut self) -> Result<u64> {
        let (head, rest) = self.rest.split_first_chunk::<8>().ok_or_else(truncated)?;
        self.rest = rest;
        Ok(u64::from_le_bytes(*head))
    }

    fn slice(&mut self) -> Result<&'a [u8]> {
        let (head, rest) = self.rest.split_first_chunk::<4>().ok_or_else(truncated)?;
        let length = u32::from_le_bytes(*head) as usize;
        if rest.len() < length {
            return Err(truncated());
        }
        let (slice, rest) = rest.split_at(length);
        self.rest = rest;
        Ok(slice)
    }

    fn row(&mut self, kind: u8) -> Result<Row<'a>> {
        Ok(match kind {
            1 => Row::PutItem(self.u64()?, self.slice()?, self.slice()?),
            2 => Row::RemoveItem(self.u64()?, self.slice()?),
            3 => Row::PutCounts(self.u64()?, self.u64()?, self.u64()?),
            4 => Row::PutStreamNext(self.u64()?, self.u64()?),
            5 => Row::PutRecord(self.u64()?, self.u64()?, self.slice()?),
            6 => Row::PutIndexEntry(self.u64()?, self.slice()?, self.slice()?),
            7 => Row::RemoveIndexEntry(self.u64()?, self.slice()?),
            other => {
                return Err(TablesError::Corrupt(format!(
                    "write-ahead log row of unknown kind {other}"
                )));
            }
        })
    }
}

fn truncated() -> TablesError {
    TablesError::Corrupt("a write-ahead log record ends inside a row".to_owned())
}

impl<'a> Iterator for Rows<'a> {
    type Item = Result<Row<'a>>;

    fn next(&mut self) -> Option<Result<Row<'a>>> {
        let (kind, rest) = self.rest.split_first()?;
        self.rest = rest;
        let row = self.row(*kind);
        if row.is_err() {
            self.rest = &[];
        }
        Some(row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(payload: &[u8]) -> Vec<Row<'_>> {
        Rows::of(payload).collect::<Result<_>>().unwrap()
    }

    #[test]
    fn rows_read_back_as_written() {
        let written = vec![
            Row::PutItem(3, b"key", b"value"),
            Row::RemoveItem(3, b""),
            Row::PutCounts(3, 7, 700),
            Row::PutStreamNext(1, 9),
            Row::PutRecord(1, 8, b"record"),
            Row::PutIndexEntry(4, b"entry", b"projected"),
            Row::RemoveIndexEntry(4, b"old"),
        ];
        let mut redo = Redo::default();
        for row in &written {
            redo.push(row);
        }
        assert_eq!(rows(redo.bytes()), written);
        // A record cut inside a row is an error, never a panic or a short read taken as whole.
        for cut in 0..redo.bytes().len() {
            let prefix = redo.bytes().get(..cut).unwrap();
            let read: Vec<Result<Row<'_>>> = Rows::of(prefix).collect();
            assert!(read.len() <= written.len());
        }
        assert!(Rows::of(&[9]).next().unwrap().is_err());
    }

    #[test]
    fn a_reopened_log_gives_back_the_records_after_the_applied_one() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, records) = Wal::open(dir.path(), 0).unwrap();
        assert!(records.is_empty());
        for payload in [&b"one"[..], b"two", b"three"] {
            wal.append(payload).unwrap();
        }
        drop(wal);
        let (wal, records) = Wal::open(dir.path(), 1).unwrap();
        assert_eq!(records, vec![(2, b"two".to_vec()), (3, b"three".to_vec())]);
        assert_eq!(wal.next_lsn(), 4);
        let (_, records) = Wal::open(dir.path(), 3).unwrap();
        assert!(records.is_empty());
        // Records beyond the database's last would mean lost records: refused.
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), 5).unwrap();
        wal.append(b"six").unwrap();
        drop(wal);
        assert!(Wal::open(dir.path(), 2).is_err());
    }

    #[test]
    fn direct_and_buffered_appends_read_back_across_block_boundaries() {
        // Sizes that end a record inside a block, exactly on a boundary, and past several.
        let sizes = [
            10,
            BLOCK_BYTES - 2 * HEADER_BYTES - 10,
            0,
            1,
            BLOCK_BYTES,
            3 * BLOCK_BYTES + 7,
            BLOCK_BYTES - HEADER_BYTES,
            100,
        ];
        let payload = |lsn: u64, size: usize| -> Vec<u8> {
            (0..size).map(|at| (lsn as usize * 31 + at) as u8).collect()
        };
        let dir = tempfile::tempdir().unwrap();
        let mut expected = Vec::new();
        // Each reopen switches between direct and buffered appends, so each continues the
        // other's last block.
        for round in 0..4 {
            let (wal, records) = Wal::open(dir.path(), 0).unwrap();
            assert_eq!(records, expected);
            let mut wal = if round % 2 == 0 { wal } else { wal.buffered() };
            if round == 0 && !wal.is_direct() {
                eprintln!("direct I/O is refused here: only buffered appends are tested");
            }
            for size in sizes {
                let lsn = wal.next_lsn();
                let bytes = payload(lsn, size);
                assert_eq!(wal.append(&bytes).unwrap(), lsn);
                expected.push((lsn, bytes));
            }
        }
        let (mut wal, records) = Wal::open(dir.path(), 0).unwrap();
        assert_eq!(records, expected);
        // A new round from the front ends where the stale records begin.
        let applied = wal.next_lsn() - 1;
        wal.restart();
        let bytes = payload(applied + 1, 5000);
        wal.append(&bytes).unwrap();
        drop(wal);
        let (_, records) = Wal::open(dir.path(), applied).unwrap();
        assert_eq!(records, vec![(applied + 1, bytes)]);
    }

    #[test]
    fn a_torn_record_ends_the_log_and_is_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), 0).unwrap();
        wal.append(b"whole").unwrap();
        wal.append(b"torn record").unwrap();
        drop(wal);
        // Tear the second record: its last bytes never reached the disk.
        let file = OpenOptions::new()
            .write(true)
            .open(dir.path().join(WAL_FILES[0]))
            .unwrap();
        let torn_at = (HEADER_BYTES + 5 + HEADER_BYTES + 4) as u64;
        file.write_all_at(&[0; 7], torn_at).unwrap();
        drop(file);
        let (mut wal, records) = Wal::open(dir.path(), 0).unwrap();
        assert_eq!(records, vec![(1, b"whole".to_vec())]);
        wal.append(b"again").unwrap();
        drop(wal);
        let (_, records) = Wal::open(dir.path(), 0).unwrap();
        assert_eq!(
            records,
            vec![(1, b"whole".to_vec()), (2, b"again".to_vec())]
        );
    }

    #[test]
    fn the_records_of_both_files_read_back_in_order_and_a_gap_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), 0).unwrap();
        wal.append(b"one").unwrap();
        wal.append(b"two").unwrap();
        // The second file is free (it holds nothing): appends move there.
        assert!(wal.switch_if_free(0));
        wal.append(b"three").unwrap();
        // The first file holds records 1 and 2, which redb does not hold durably yet.
        assert!(!wal.switch_if_free(1));
        wal.append(b"four").unwrap();
        drop(wal);
        let (mut wal, records) = Wal::open(dir.path(), 0).unwrap();
        let payloads: Vec<&[u8]> = records
            .iter()
            .map(|(_, payload)| payload.as_slice())
            .collect();
        assert_eq!(payloads, vec![&b"one"[..], b"two", b"three", b"four"]);
        assert_eq!(wal.next_lsn(), 5);
        // Appends go on in the file with the last record, and the first file is reused once
        // redb holds its records.
        wal.append(b"five").unwrap();
        assert!(wal.switch_if_free(2));
        wal.append(b"six").unwrap();
        drop(wal);
        let (_, records) = Wal::open(dir.path(), 2).unwrap();
        let numbers: Vec<u64> = records.iter().map(|(lsn, _)| *lsn).collect();
        assert_eq!(numbers, vec![3, 4, 5, 6]);
        // Without the second file's records, the first file's record 6 follows a gap.
        std::fs::write(dir.path().join(WAL_FILES[1]), vec![0_u8; 4096]).unwrap();
        assert!(Wal::open(dir.path(), 2).is_err());
    }

    #[test]
    fn a_restarted_log_ends_where_the_stale_records_begin() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), 0).unwrap();
        for payload in [&b"a long first record"[..], b"second", b"third"] {
            wal.append(payload).unwrap();
        }
        // Everything is durable elsewhere: the next round starts at the front.
        wal.restart();
        wal.append(b"4").unwrap();
        drop(wal);
        // The stale tail (records 2 and 3, and what is left of 1) is not read as part of it.
        let (wal, records) = Wal::open(dir.path(), 3).unwrap();
        assert_eq!(records, vec![(4, b"4".to_vec())]);
        assert_eq!(wal.next_lsn(), 5);
        // A crash between the checkpoint and the first record of the round: nothing to apply.
        let (_, records) = Wal::open(dir.path(), 4).unwrap();
        assert!(records.is_empty());
    }
}
