//! The translog: every acknowledged write of an index, fsynced before the write is acknowledged,
//! and replayed on open for the writes that the last tantivy commit does not hold.
//!
//! Layout: `translog/<generation>.tlog`, each a header (`SLTLOG01`) followed by frames
//! `[payload length u32 LE][crc32 of payload u32 LE][payload]`. A payload is one operation:
//! `[kind u8: 1 index, 2 delete][seq_no u64][version u64][id length u16][id][source length u32][source]`
//! (deletes carry no source). A commit rolls to a new generation; generations the commit covers
//! are deleted after it. Only bytes written after the last fsync can be torn, so recovery keeps
//! the frames before the first bad one of the newest generation and truncates the rest; a bad
//! frame in an older generation, which was fsynced whole before the roll, is corruption.
//!
//! Group commit: appends go into a buffer under the index's write lock; `sync_to` writes and
//! fsyncs the buffer once for every writer waiting on it.
//!
//! Encrypted (with a keyring): the header is `SLTLOG02`, the data key id (u32) and a salt (16
//! bytes), and each payload is sealed (`nonce · ciphertext · tag`) under the file key they name,
//! the CRC covering the sealed payload. One translog instance seals every generation it writes
//! with one file key, so that frames buffered before a roll open in whichever generation they
//! land in; a roll with nothing buffered takes up a rotated data key.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use sluice_seal::{FileKey, Keyring, Purpose, SALT_BYTES};

use crate::error::{Result, SearchError};

const MAGIC: &[u8; 8] = b"SLTLOG01";
const ENCRYPTED_MAGIC: &[u8; 8] = b"SLTLOG02";
/// Encrypted header: magic 8, data key id 4, salt 16.
const ENCRYPTED_HEADER_BYTES: usize = 8 + 4 + SALT_BYTES;
const PURPOSE: Purpose = Purpose("sluice-search translog");
const FRAME_HEADER_BYTES: usize = 8;
/// The largest operation a frame may hold: the request body limit of the API, with room.
pub const OPERATION_BYTES_MAX: usize = 128 * 1024 * 1024;
const KIND_INDEX: u8 = 1;
const KIND_DELETE: u8 = 2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    Index {
        seq_no: u64,
        version: u64,
        id: String,
        source: Vec<u8>,
    },
    Delete {
        seq_no: u64,
        version: u64,
        id: String,
    },
}

impl Operation {
    pub fn seq_no(&self) -> u64 {
        match self {
            Operation::Index { seq_no, .. } | Operation::Delete { seq_no, .. } => *seq_no,
        }
    }

    fn encode_into(&self, out: &mut Vec<u8>, key: Option<&FileKey>) -> Result<()> {
        let (kind, seq_no, version, id, source) = match self {
            Operation::Index {
                seq_no,
                version,
                id,
                source,
            } => (KIND_INDEX, seq_no, version, id, source.as_slice()),
            Operation::Delete {
                seq_no,
                version,
                id,
            } => (KIND_DELETE, seq_no, version, id, &[][..]),
        };
        let start = out.len();
        out.extend_from_slice(&[0; FRAME_HEADER_BYTES]);
        out.push(kind);
        out.extend_from_slice(&seq_no.to_le_bytes());
        out.extend_from_slice(&version.to_le_bytes());
        // Ids are limited to 512 bytes by the API, so the length fits.
        out.extend_from_slice(&(id.len() as u16).to_le_bytes());
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(&(source.len() as u32).to_le_bytes());
        out.extend_from_slice(source);
        if let Some(key) = key {
            let plain = out.split_off(start + FRAME_HEADER_BYTES);
            key.seal_into(&[], &plain, out)
                .map_err(|error| SearchError::Corrupt {
                    what: "the translog".into(),
                    reason: error.to_string(),
                })?;
        }
        let payload_len = (out.len() - start - FRAME_HEADER_BYTES) as u32;
        let crc = crc32fast::hash(out.get(start + FRAME_HEADER_BYTES..).unwrap_or_default());
        if let Some(header) = out.get_mut(start..start + FRAME_HEADER_BYTES) {
            header[..4].copy_from_slice(&payload_len.to_le_bytes());
            header[4..].copy_from_slice(&crc.to_le_bytes());
        }
        Ok(())
    }

    fn decode(payload: &[u8]) -> Option<Operation> {
        let mut reader = ByteReader { bytes: payload };
        let kind = reader.u8()?;
        let seq_no = reader.u64()?;
        let version = reader.u64()?;
        let id_len = usize::from(reader.u16()?);
        let id = String::from_utf8(reader.take(id_len)?.to_vec()).ok()?;
        let source_len = reader.u32()? as usize;
        let source = reader.take(source_len)?.to_vec();
        if !reader.bytes.is_empty() {
            return None;
        }
        match kind {
            KIND_INDEX => Some(Operation::Index {
                seq_no,
                version,
                id,
                source,
            }),
            KIND_DELETE if source.is_empty() => Some(Operation::Delete {
                seq_no,
                version,
                id,
            }),
            _ => None,
        }
    }
}

struct ByteReader<'a> {
    bytes: &'a [u8],
}

impl<'a> ByteReader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.bytes.split_at_checked(n)?;
        self.bytes = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

struct Appender {
    generation: u64,
    file: File,
    /// Bytes appended but not yet written to the file.
    pending: Vec<u8>,
    /// Logical end of the translog over all generations: bytes ever appended.
    appended_end: u64,
    /// Set when a write or fsync failed; the translog refuses writes until reopened.
    failure: Option<String>,
}

pub struct Translog {
    directory: PathBuf,
    keyring: Option<Arc<Keyring>>,
    /// The file key every generation this instance writes is sealed with (encrypted only).
    key: Mutex<Option<Arc<FileKey>>>,
    appender: Mutex<Appender>,
    /// Logical offset up to which everything is fsynced.
    synced_end: Mutex<u64>,
    synced: Condvar,
    /// Serialises fsyncs; whoever holds it syncs for everyone waiting.
    sync_lock: Mutex<()>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn generation_path(directory: &Path, generation: u64) -> PathBuf {
    directory.join(format!("{generation:020}.tlog"))
}

fn list_generations(directory: &Path) -> Result<Vec<u64>> {
    let mut generations = Vec::new();
    let entries = fs::read_dir(directory).map_err(|e| SearchError::io(directory, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| SearchError::io(directory, e))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".tlog")) else {
            continue;
        };
        if let Ok(generation) = stem.parse::<u64>() {
            generations.push(generation);
        }
    }
    generations.sort_unstable();
    Ok(generations)
}

/// Reads the operations of one generation file, opening them with the key its header names when
/// it is encrypted. Returns them with the length of the valid prefix and whether anything after
/// it was invalid.
fn read_generation(path: &Path, keyring: Option<&Keyring>) -> Result<(Vec<Operation>, u64, bool)> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| SearchError::io(path, e))?;
    let corrupt = |reason: String| SearchError::Corrupt {
        what: path.display().to_string(),
        reason,
    };
    let (header_bytes, key) = match bytes.get(..MAGIC.len()) {
        // Torn before its magic was whole: it holds no frame, and is cut to nothing.
        None => return Ok((Vec::new(), 0, !bytes.is_empty())),
        Some(magic) if magic == MAGIC => (MAGIC.len(), None),
        Some(magic) if magic == ENCRYPTED_MAGIC => {
            let Some(header) = bytes.get(..ENCRYPTED_HEADER_BYTES) else {
                // Torn before its header was whole: it holds no frame, and is cut to nothing.
                return Ok((Vec::new(), 0, true));
            };
            let keyring = keyring.ok_or_else(|| {
                corrupt("it is encrypted, and Sluice was started without the encryption key".into())
            })?;
            let key_id = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
            let mut salt = [0u8; SALT_BYTES];
            salt.copy_from_slice(&header[12..ENCRYPTED_HEADER_BYTES]);
            let key = keyring
                .file_key(key_id, salt, PURPOSE)
                .map_err(|error| corrupt(error.to_string()))?;
            (ENCRYPTED_HEADER_BYTES, Some(key))
        }
        Some(_) => return Err(corrupt("bad translog magic".into())),
    };
    let mut operations = Vec::new();
    let mut position = header_bytes;
    while let Some(header) = bytes.get(position..position + FRAME_HEADER_BYTES) {
        let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if length > OPERATION_BYTES_MAX {
            break;
        }
        let start = position + FRAME_HEADER_BYTES;
        let Some(payload) = bytes.get(start..start + length) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        let opened;
        let payload = match &key {
            None => payload,
            Some(key) => {
                // The CRC matched: a payload that does not open was changed, not torn.
                opened = key.open(&[], payload).map_err(|_| {
                    corrupt(format!(
                        "an encrypted frame at byte {position} does not open"
                    ))
                })?;
                &opened[..]
            }
        };
        let Some(operation) = Operation::decode(payload) else {
            break;
        };
        operations.push(operation);
        position = start + length;
    }
    Ok((operations, position as u64, position < bytes.len()))
}

fn create_generation(directory: &Path, generation: u64, key: Option<&FileKey>) -> Result<File> {
    let path = generation_path(directory, generation);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .map_err(|e| SearchError::io(&path, e))?;
    let header = match key {
        None => MAGIC.to_vec(),
        Some(key) => {
            let mut header = ENCRYPTED_MAGIC.to_vec();
            header.extend_from_slice(&key.key_id().to_le_bytes());
            header.extend_from_slice(&key.salt());
            header
        }
    };
    file.write_all(&header)
        .and_then(|()| file.sync_all())
        .map_err(|e| SearchError::io(&path, e))?;
    sync_directory(directory)?;
    Ok(file)
}

/// A fresh file key under the keyring's current data key, with a keyring.
fn new_key(keyring: Option<&Keyring>) -> Result<Option<Arc<FileKey>>> {
    keyring
        .map(|keyring| {
            keyring
                .new_file_key(PURPOSE)
                .map(Arc::new)
                .map_err(|error| SearchError::Corrupt {
                    what: "the translog's key".into(),
                    reason: error.to_string(),
                })
        })
        .transpose()
}

pub(crate) fn sync_directory(directory: &Path) -> Result<()> {
    File::open(directory)
        .and_then(|d| d.sync_all())
        .map_err(|e| SearchError::io(directory, e))
}

impl Translog {
    /// Opens the translog in `directory`, recovering a torn tail, and returns it with every
    /// operation it holds, oldest first.
    #[cfg(test)]
    pub fn open(directory: &Path) -> Result<(Translog, Vec<Operation>)> {
        Translog::open_with(directory, None)
    }

    /// [`Translog::open`]; with a keyring, the generations it writes are encrypted.
    pub fn open_with(
        directory: &Path,
        keyring: Option<Arc<Keyring>>,
    ) -> Result<(Translog, Vec<Operation>)> {
        fs::create_dir_all(directory).map_err(|e| SearchError::io(directory, e))?;
        let generations = list_generations(directory)?;
        let mut operations = Vec::new();
        let newest = generations.last().copied();
        for &generation in &generations {
            let path = generation_path(directory, generation);
            let (mut ops, valid_bytes, torn) = read_generation(&path, keyring.as_deref())?;
            if torn {
                if Some(generation) != newest {
                    return Err(SearchError::Corrupt {
                        what: path.display().to_string(),
                        reason: format!(
                            "invalid frame at byte {valid_bytes} of a sealed generation"
                        ),
                    });
                }
                tracing::warn!(path = %path.display(), valid_bytes, "truncating torn translog tail");
                let file = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| SearchError::io(&path, e))?;
                file.set_len(valid_bytes)
                    .and_then(|()| file.sync_all())
                    .map_err(|e| SearchError::io(&path, e))?;
            }
            operations.append(&mut ops);
        }
        // Writes always go to a fresh generation, so a recovered file is never appended to.
        let generation = newest.map_or(1, |g| g + 1);
        let key = new_key(keyring.as_deref())?;
        let file = create_generation(directory, generation, key.as_deref())?;
        let translog = Translog {
            directory: directory.to_path_buf(),
            keyring,
            key: Mutex::new(key),
            appender: Mutex::new(Appender {
                generation,
                file,
                pending: Vec::new(),
                appended_end: 0,
                failure: None,
            }),
            synced_end: Mutex::new(0),
            synced: Condvar::new(),
            sync_lock: Mutex::new(()),
        };
        Ok((translog, operations))
    }

    /// Appends an operation to the buffer and returns the offset `sync_to` must reach for it to
    /// be durable.
    pub fn append(&self, operation: &Operation) -> Result<u64> {
        let mut appender = lock(&self.appender);
        if let Some(failure) = &appender.failure {
            return Err(SearchError::Poisoned {
                index: self.directory.display().to_string(),
                reason: failure.clone(),
            });
        }
        let before = appender.pending.len();
        let key = lock(&self.key).clone();
        operation.encode_into(&mut appender.pending, key.as_deref())?;
        appender.appended_end += (appender.pending.len() - before) as u64;
        Ok(appender.appended_end)
    }

    /// Returns once every byte up to `offset` is fsynced, syncing for every waiting writer at once.
    pub fn sync_to(&self, offset: u64) -> Result<()> {
        if *lock(&self.synced_end) >= offset {
            return Ok(());
        }
        let _sync_guard = lock(&self.sync_lock);
        if *lock(&self.synced_end) >= offset {
            return Ok(());
        }
        // Take the buffer and write it outside the appender lock so appends go on meanwhile.
        let (pending, end, file) = {
            let mut appender = lock(&self.appender);
            if let Some(failure) = &appender.failure {
                return Err(SearchError::Poisoned {
                    index: self.directory.display().to_string(),
                    reason: failure.clone(),
                });
            }
            let file = appender
                .file
                .try_clone()
                .map_err(|e| SearchError::io(&self.directory, e))?;
            (
                std::mem::take(&mut appender.pending),
                appender.appended_end,
                file,
            )
        };
        let mut file = file;
        if let Err(error) = file.write_all(&pending).and_then(|()| file.sync_data()) {
            lock(&self.appender).failure = Some(error.to_string());
            return Err(SearchError::Poisoned {
                index: self.directory.display().to_string(),
                reason: error.to_string(),
            });
        }
        *lock(&self.synced_end) = end;
        self.synced.notify_all();
        Ok(())
    }

    /// Writes and fsyncs everything appended so far, then starts a new generation. Returns the
    /// generation that was sealed: every generation up to it may be removed once a commit holds
    /// their operations.
    pub fn roll(&self) -> Result<u64> {
        let end = lock(&self.appender).appended_end;
        self.sync_to(end)?;
        let _sync_guard = lock(&self.sync_lock);
        let mut appender = lock(&self.appender);
        // sync_to above wrote everything up to `end`; appends since then stay in the buffer and
        // go to the new generation, which is why the roll happens under the index's write lock.
        let sealed = appender.generation;
        let next = sealed + 1;
        let mut key = lock(&self.key);
        // Frames still buffered were sealed with the current key: it changes only when none is.
        if appender.pending.is_empty()
            && let (Some(keyring), Some(current)) = (&self.keyring, key.as_ref())
            && keyring.current_key_id() != current.key_id()
        {
            *key = new_key(Some(keyring))?;
        }
        appender.file = create_generation(&self.directory, next, key.as_deref())?;
        appender.generation = next;
        Ok(sealed)
    }

    /// Removes generations up to and including `generation`.
    pub fn remove_through(&self, generation: u64) -> Result<()> {
        for old in list_generations(&self.directory)? {
            if old <= generation {
                let path = generation_path(&self.directory, old);
                fs::remove_file(&path).map_err(|e| SearchError::io(&path, e))?;
            }
        }
        Ok(())
    }

    pub fn is_poisoned(&self) -> bool {
        lock(&self.appender).failure.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index_op(seq_no: u64, id: &str) -> Operation {
        Operation::Index {
            seq_no,
            version: seq_no + 1,
            id: id.into(),
            source: format!("{{\"n\":{seq_no}}}").into_bytes(),
        }
    }

    #[test]
    fn operations_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (log, ops) = Translog::open(dir.path()).unwrap();
        assert!(ops.is_empty());
        let end = log.append(&index_op(0, "a")).unwrap();
        log.append(&Operation::Delete {
            seq_no: 1,
            version: 2,
            id: "a".into(),
        })
        .unwrap();
        let end2 = log.append(&index_op(2, "b")).unwrap();
        assert!(end2 > end);
        log.sync_to(end2).unwrap();
        drop(log);
        let (_log, ops) = Translog::open(dir.path()).unwrap();
        assert_eq!(
            ops,
            vec![
                index_op(0, "a"),
                Operation::Delete {
                    seq_no: 1,
                    version: 2,
                    id: "a".into()
                },
                index_op(2, "b")
            ]
        );
    }

    #[test]
    fn unsynced_appends_are_not_durable_and_torn_tails_are_cut() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = Translog::open(dir.path()).unwrap();
        let end = log.append(&index_op(0, "a")).unwrap();
        log.sync_to(end).unwrap();
        log.append(&index_op(1, "b")).unwrap();
        drop(log);
        // Simulate a torn write: half a frame at the end of the newest file.
        let newest = *list_generations(dir.path()).unwrap().last().unwrap();
        let path = generation_path(dir.path(), newest);
        let synced_len = fs::metadata(&path).unwrap().len();
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&[9, 0, 0, 0, 1, 2]).unwrap();
        drop(file);
        let (log, ops) = Translog::open(dir.path()).unwrap();
        assert_eq!(ops, vec![index_op(0, "a")]);
        assert_eq!(fs::metadata(&path).unwrap().len(), synced_len);
        drop(log);
        let (_log, ops) = Translog::open(dir.path()).unwrap();
        assert_eq!(ops, vec![index_op(0, "a")]);
    }

    #[test]
    fn encrypted_generations_hold_no_plaintext_and_need_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let keys = tempfile::tempdir().unwrap();
        let master = || sluice_seal::MasterKey::parse(&"5e".repeat(32)).unwrap();
        let keyring = Arc::new(Keyring::open_or_create(keys.path(), master()).unwrap());
        let (log, _) = Translog::open_with(dir.path(), Some(keyring.clone())).unwrap();
        let secret = Operation::Index {
            seq_no: 0,
            version: 1,
            id: "secret-id".into(),
            source: br#"{"pin":"SECRET"}"#.to_vec(),
        };
        log.sync_to(log.append(&secret).unwrap()).unwrap();
        // A rotated key is taken up at the next roll; what was sealed before still opens.
        keyring.rotate(None).unwrap();
        let sealed = log.roll().unwrap();
        log.sync_to(log.append(&index_op(1, "b")).unwrap()).unwrap();
        // Half a sealed frame at the end is a torn tail.
        log.append(&index_op(2, "c")).unwrap();
        drop(log);
        for generation in list_generations(dir.path()).unwrap() {
            let bytes = fs::read(generation_path(dir.path(), generation)).unwrap();
            assert!(bytes.starts_with(ENCRYPTED_MAGIC));
            assert!(!bytes.windows(6).any(|w| w == b"SECRET" || w == b"secret"));
        }
        let newest = generation_path(dir.path(), sealed + 1);
        assert_eq!(
            u32::from_le_bytes(fs::read(&newest).unwrap()[8..12].try_into().unwrap()),
            2
        );
        let mut file = OpenOptions::new().append(true).open(&newest).unwrap();
        file.write_all(&[60, 0, 0, 0, 1, 2, 3]).unwrap();
        drop(file);
        let (_log, ops) = Translog::open_with(dir.path(), Some(keyring.clone())).unwrap();
        assert_eq!(ops, vec![secret, index_op(1, "b")]);
        drop(_log);
        assert!(Translog::open(dir.path()).is_err());
        let other = tempfile::tempdir().unwrap();
        let stranger = Keyring::open_or_create(other.path(), master()).unwrap();
        assert!(Translog::open_with(dir.path(), Some(Arc::new(stranger))).is_err());
    }

    #[test]
    fn corruption_in_a_sealed_generation_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = Translog::open(dir.path()).unwrap();
        let end = log.append(&index_op(0, "a")).unwrap();
        log.sync_to(end).unwrap();
        let sealed = log.roll().unwrap();
        drop(log);
        let path = generation_path(dir.path(), sealed);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, bytes).unwrap();
        assert!(matches!(
            Translog::open(dir.path()),
            Err(SearchError::Corrupt { .. })
        ));
    }

    #[test]
    fn roll_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = Translog::open(dir.path()).unwrap();
        log.append(&index_op(0, "a")).unwrap();
        let sealed = log.roll().unwrap();
        let end = log.append(&index_op(1, "b")).unwrap();
        log.sync_to(end).unwrap();
        log.remove_through(sealed).unwrap();
        drop(log);
        let (_log, ops) = Translog::open(dir.path()).unwrap();
        assert_eq!(ops, vec![index_op(1, "b")]);
    }

    #[test]
    fn concurrent_writers_share_fsyncs_and_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = Translog::open(dir.path()).unwrap();
        let log = std::sync::Arc::new(log);
        let seq = std::sync::Arc::new(Mutex::new(0u64));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let log = log.clone();
                let seq = seq.clone();
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let end = {
                            let mut s = seq.lock().unwrap();
                            let end = log.append(&index_op(*s, "x")).unwrap();
                            *s += 1;
                            end
                        };
                        log.sync_to(end).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(log);
        let (_log, ops) = Translog::open(dir.path()).unwrap();
        let seqs: Vec<u64> = ops.iter().map(Operation::seq_no).collect();
        assert_eq!(seqs, (0..400).collect::<Vec<_>>());
    }
}
