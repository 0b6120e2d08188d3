//! The S3-like object store on local disk: bucket `B`, key `K` is the file `<root>/B/K`. Objects
//! are written whole and durably (temporary file, fsync, rename, fsync of the folder), so a crash
//! leaves the old object, the new one, or a `.tmp` file that is not an object.
//!
//! Keys follow Firehose's default layout:
//! `<prefix>YYYY/MM/DD/HH/<stream>-<version>-YYYY-MM-DD-HH-MM-SS-<uuid>`. The uuid is derived from
//! the batch's first and last log positions, so redelivering the same batch after a crash
//! rewrites the same object instead of adding a second one.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{DeliveryError, Result};
use crate::rotation::utc;

/// Firehose puts the delivery stream's version in object names; ours never changes.
const DELIVERY_STREAM_VERSION: u32 = 1;

#[derive(Debug, Clone)]
pub struct ObjectStore {
    root: PathBuf,
}

/// A uuid-shaped name from `parts` (deterministic, see the module comment).
pub fn object_uuid(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    let digest = hasher.finalize();
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        hex.get(0..8).unwrap_or_default(),
        hex.get(8..12).unwrap_or_default(),
        hex.get(12..16).unwrap_or_default(),
        hex.get(16..20).unwrap_or_default(),
        hex.get(20..32).unwrap_or_default()
    )
}

/// The key of an object written at `time_ms` under `prefix`.
pub fn object_key(prefix: &str, stream_name: &str, time_ms: u64, uuid: &str) -> String {
    let t = utc(time_ms);
    let (year, month, day) = (t.year(), u8::from(t.month()), t.day());
    let (hour, minute, second) = (t.hour(), t.minute(), t.second());
    format!(
        "{prefix}{year:04}/{month:02}/{day:02}/{hour:02}/{stream_name}-{DELIVERY_STREAM_VERSION}-{year:04}-{month:02}-{day:02}-{hour:02}-{minute:02}-{second:02}-{uuid}"
    )
}

impl ObjectStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ObjectStore { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes the object durably; returns its path.
    pub fn put(&self, bucket: &str, key: &str, bytes: &[u8]) -> Result<PathBuf> {
        let path = self.root.join(bucket).join(key);
        let directory = path
            .parent()
            .ok_or_else(|| DeliveryError::invalid(format!("object key {key:?} has no folder")))?;
        let io = |what: &str, error| DeliveryError::io(format!("{what} {}", path.display()), error);
        fs::create_dir_all(directory).map_err(|e| io("creating the folder of", e))?;
        let mut temporary = path.clone().into_os_string();
        temporary.push(".tmp");
        let temporary = PathBuf::from(temporary);
        let mut file = File::create(&temporary).map_err(|e| io("creating", e))?;
        file.write_all(bytes).map_err(|e| io("writing", e))?;
        file.sync_all().map_err(|e| io("syncing", e))?;
        drop(file);
        fs::rename(&temporary, &path).map_err(|e| io("renaming into", e))?;
        File::open(directory)
            .and_then(|folder| folder.sync_all())
            .map_err(|e| io("syncing the folder of", e))?;
        Ok(path)
    }
}
