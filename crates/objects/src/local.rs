//! The local stand-in for S3: bucket `B`, key `K` is the file `<root>/B/K`. Objects are written
//! whole and durably (temporary file, fsync, rename, fsync of the folder), so a crash leaves the
//! old object, the new one, or a `.tmp` file that is not an object. With a keyring, objects are
//! written as sealed files (`sluice_seal`), and read back opened; objects written before the
//! keyring read as they are.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::{ObjectsError, Result};

/// Longest key, as S3's.
pub const KEY_BYTES_MAX: usize = 1024;
/// Largest object read back whole by [`LocalStore::get`] (tests and tools).
pub const READ_BYTES_MAX: u64 = 1024 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
    keyring: Option<std::sync::Arc<sluice_seal::Keyring>>,
}

/// A key both backends can hold the same way: relative, no `.`, `..` or empty parts (which a
/// file system would resolve and S3 would not), no NUL or backslash.
pub fn validate_key(key: &str) -> Result<()> {
    let valid = !key.is_empty()
        && key.len() <= KEY_BYTES_MAX
        && !key.starts_with('/')
        && !key.ends_with('/')
        && key
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
        && !key.contains('\0')
        && !key.contains('\\');
    if valid {
        Ok(())
    } else {
        Err(ObjectsError::Invalid(format!(
            "object key {key:?} must be a relative key without empty, '.' or '..' parts"
        )))
    }
}

impl LocalStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalStore {
            root: root.into(),
            keyring: None,
        }
    }

    /// This store writing sealed objects under `keyring`.
    pub fn with_keyring(mut self, keyring: Option<std::sync::Arc<sluice_seal::Keyring>>) -> Self {
        self.keyring = keyring;
        self
    }

    /// An object's bytes as read from disk, opened when they are sealed.
    pub fn open_bytes(&self, bytes: Vec<u8>) -> Result<Vec<u8>> {
        sluice_seal::open_maybe_sealed(self.keyring.as_deref(), sluice_seal::LOCAL_OBJECT, bytes)
            .map_err(|error| ObjectsError::Invalid(format!("an object of the s3 store: {error}")))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes the object durably; returns its path.
    pub fn put(&self, bucket: &str, key: &str, bytes: &[u8]) -> Result<PathBuf> {
        validate_key(key)?;
        let path = self.root.join(bucket).join(key);
        let directory = path
            .parent()
            .ok_or_else(|| ObjectsError::Invalid(format!("object key {key:?} has no folder")))?;
        let io = |what: &str, error| ObjectsError::io(format!("{what} {}", path.display()), error);
        fs::create_dir_all(directory).map_err(|e| io("creating the folder of", e))?;
        let mut temporary = path.clone().into_os_string();
        temporary.push(".tmp");
        let temporary = PathBuf::from(temporary);
        let sealed;
        let bytes = match &self.keyring {
            None => bytes,
            Some(keyring) => {
                sealed = keyring
                    .seal_file(sluice_seal::LOCAL_OBJECT, bytes)
                    .map_err(|error| {
                        ObjectsError::Invalid(format!("sealing an object: {error}"))
                    })?;
                &sealed[..]
            }
        };
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

    /// Reads an object whole (at most [`READ_BYTES_MAX`]).
    pub fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>> {
        validate_key(key)?;
        let path = self.root.join(bucket).join(key);
        let io = |what: &str, error| ObjectsError::io(format!("{what} {}", path.display()), error);
        let file = File::open(&path).map_err(|e| io("opening", e))?;
        let mut bytes = Vec::new();
        file.take(READ_BYTES_MAX + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| io("reading", e))?;
        if bytes.len() as u64 > READ_BYTES_MAX {
            return Err(ObjectsError::Invalid(format!(
                "{} is larger than {READ_BYTES_MAX} bytes",
                path.display()
            )));
        }
        self.open_bytes(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_would_leave_the_bucket_are_refused() {
        for key in ["", "/a", "a/", "a//b", "a/../b", "./a", "a\\b", "a\0b"] {
            assert!(validate_key(key).is_err(), "{key:?}");
        }
        for key in ["a", "p/2024/01/01/00/s-1-2024-01-01-00-00-00-u", "a.b/c-d"] {
            validate_key(key).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().join("s3"));
        assert!(store.put("b-1", "../../escape", b"x").is_err());
        assert!(!dir.path().join("escape").exists());
    }

    #[test]
    fn a_store_with_a_keyring_writes_sealed_objects_and_reads_both_kinds() {
        let dir = tempfile::tempdir().unwrap();
        let master = sluice_seal::MasterKey::parse(&"ab".repeat(32)).unwrap();
        let keyring = std::sync::Arc::new(
            sluice_seal::Keyring::open_or_create(&dir.path().join("keys"), master).unwrap(),
        );
        let plain = LocalStore::new(dir.path().join("s3"));
        plain.put("b-1", "old", b"SECRET old").unwrap();
        let sealed = LocalStore::new(dir.path().join("s3")).with_keyring(Some(keyring));
        let path = sealed.put("b-1", "new", b"SECRET new").unwrap();
        assert!(
            !std::fs::read(&path)
                .unwrap()
                .windows(6)
                .any(|w| w == b"SECRET")
        );
        assert_eq!(sealed.get("b-1", "new").unwrap(), b"SECRET new");
        assert_eq!(sealed.get("b-1", "old").unwrap(), b"SECRET old");
        assert!(plain.get("b-1", "new").is_err());
    }
}
