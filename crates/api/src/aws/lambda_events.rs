//! `Event` (asynchronous) invocations kept durably from the moment Invoke answers 202 until the
//! function has run them (or failed them after Lambda's retries): each is a small file
//! `functions/events/<sequence>.event` (JSON: format version, function, payload), written and
//! fsynced with its directory before the answer, removed once the invocation ends. At start the
//! files left by a crash are invoked again, oldest first. So an acknowledged Event invocation
//! runs at least once, as Lambda promises; one that was running at the crash may run twice.
//! With a keyring (encryption at rest) the files are sealed, payloads and all.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Version of an event file; a file of another version is left in place and reported.
pub const EVENT_FORMAT_VERSION: u32 = 1;
/// The suffix of an event file after its sequence number.
const EVENT_SUFFIX: &str = ".event";
/// Largest event file read back: Lambda's 256 KB asynchronous payload limit, with room for
/// the envelope and JSON escaping. A larger file is reported as damaged and left in place.
const EVENT_FILE_BYTES_MAX: u64 = 4 * 1024 * 1024;

/// One queued invocation as its file holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedEvent {
    pub format_version: u32,
    pub function: String,
    pub payload: Value,
}

/// What [`EventQueue::open`] finds: the queue, the events a previous run left (with their
/// files), and the files it could not read.
pub type OpenedQueue = (EventQueue, Vec<(PathBuf, QueuedEvent)>, Vec<String>);

/// The directory of queued events and the next sequence number.
#[derive(Debug)]
pub struct EventQueue {
    directory: PathBuf,
    next: AtomicU64,
    keyring: Option<std::sync::Arc<sluice_seal::Keyring>>,
}

/// What a sealed event file's key is for (the HKDF label).
const EVENT_PURPOSE: sluice_seal::Purpose = sluice_seal::Purpose("sluice-lambda event");

fn sequence_of(path: &Path) -> Option<u64> {
    path.file_name()?
        .to_str()?
        .strip_suffix(EVENT_SUFFIX)?
        .parse()
        .ok()
}

impl EventQueue {
    /// Opens (creating) the directory and reads the events a previous run left, oldest first.
    /// Files that cannot be read are reported in the second list and left in place.
    pub fn open(
        directory: &Path,
        keyring: Option<std::sync::Arc<sluice_seal::Keyring>>,
    ) -> std::io::Result<OpenedQueue> {
        std::fs::create_dir_all(directory)?;
        let mut found: Vec<(u64, PathBuf)> = Vec::new();
        for entry in std::fs::read_dir(directory)? {
            let path = entry?.path();
            if let Some(sequence) = sequence_of(&path) {
                found.push((sequence, path));
            }
        }
        found.sort();
        let next = found.last().map_or(0, |(sequence, _)| sequence + 1);
        let mut events = Vec::new();
        let mut damaged = Vec::new();
        for (_, path) in found {
            match read_event(&path, keyring.as_deref()) {
                Ok(event) => events.push((path, event)),
                Err(error) => damaged.push(format!("{}: {error}", path.display())),
            }
        }
        let queue = EventQueue {
            directory: directory.to_owned(),
            next: AtomicU64::new(next),
            keyring,
        };
        Ok((queue, events, damaged))
    }

    /// Writes an event durably (the file and its directory fsynced) and returns its path.
    pub fn persist(&self, function: &str, payload: &Value) -> std::io::Result<PathBuf> {
        use std::io::Write;
        let event = QueuedEvent {
            format_version: EVENT_FORMAT_VERSION,
            function: function.to_owned(),
            payload: payload.clone(),
        };
        let bytes = serde_json::to_vec(&event)?;
        let bytes = match &self.keyring {
            None => bytes,
            Some(keyring) => keyring
                .seal_file(EVENT_PURPOSE, &bytes)
                .map_err(|error| std::io::Error::other(error.to_string()))?,
        };
        let sequence = self.next.fetch_add(1, Ordering::SeqCst);
        let path = self.directory.join(format!("{sequence:020}{EVENT_SUFFIX}"));
        let temporary = path.with_extension("tmp");
        {
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
        }
        std::fs::rename(&temporary, &path)?;
        std::fs::File::open(&self.directory)?.sync_all()?;
        Ok(path)
    }

    /// Forgets an event that ran. Not fsynced: if the removal is lost in a crash, the event
    /// runs once more, which at-least-once allows.
    pub fn done(path: &Path) {
        if let Err(error) = std::fs::remove_file(path)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), %error, "removing a finished Event invocation failed");
        }
    }
}

fn read_event(path: &Path, keyring: Option<&sluice_seal::Keyring>) -> Result<QueuedEvent, String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(EVENT_FILE_BYTES_MAX + 1).read_to_end(&mut bytes))
        .map_err(|error| error.to_string())?;
    if bytes.len() as u64 > EVENT_FILE_BYTES_MAX {
        return Err(format!("larger than {EVENT_FILE_BYTES_MAX} bytes"));
    }
    let bytes = sluice_seal::open_maybe_sealed(keyring, EVENT_PURPOSE, bytes)
        .map_err(|error| error.to_string())?;
    let event: QueuedEvent = serde_json::from_slice(&bytes).map_err(|error| error.to_string())?;
    if event.format_version != EVENT_FORMAT_VERSION {
        return Err(format!("format version {}", event.format_version));
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_persist_in_order_and_are_read_back_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (queue, left, damaged) = EventQueue::open(dir.path(), None).unwrap();
        assert!(left.is_empty() && damaged.is_empty());
        let first = queue.persist("f", &serde_json::json!({"n": 1})).unwrap();
        queue.persist("g", &serde_json::json!({"n": 2})).unwrap();
        EventQueue::done(&first);
        std::fs::write(dir.path().join("00000000000000000009.event"), b"{torn").unwrap();
        drop(queue);
        let (queue, left, damaged) = EventQueue::open(dir.path(), None).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].1.function, "g");
        assert_eq!(left[0].1.payload, serde_json::json!({"n": 2}));
        assert_eq!(damaged.len(), 1);
        // New events come after every file seen, damaged ones included.
        let next = queue.persist("h", &Value::Null).unwrap();
        assert_eq!(sequence_of(&next), Some(10));
    }
}
