//! The small files where the node's followers keep how far they got (journal streams, the
//! built-in ledger and table indexers): `<name>.position`, JSON with a `format_version`, in the
//! follower's own directory. Reads are bounded and check the version; writes replace the file
//! atomically and durably (written and fsynced beside it, renamed over it, the directory
//! fsynced), so a crash leaves either the old position or the new one, never a torn file.
//! Errors are messages naming the file; each follower wraps them in its own error type.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The suffix of a position file after the follower's name for what it follows.
pub(crate) const POSITION_SUFFIX: &str = ".position";
/// The largest position file read; a larger one is refused as damaged rather than read. Room
/// for the ledger indexer's list of indices: QLDB's 40 tables per ledger, 255 bytes per name.
pub(crate) const POSITION_BYTES_MAX: u64 = 64 * 1024;

fn failure(what: &str, path: &Path, error: impl std::fmt::Display) -> String {
    format!("{what} {}: {error}", path.display())
}

/// The position file of `name` in `directory`.
pub(crate) fn path(directory: &Path, name: &str) -> PathBuf {
    directory.join(format!("{name}{POSITION_SUFFIX}"))
}

/// The bytes of `path`, `None` when it does not exist, refused beyond `bytes_max`.
pub(crate) fn read_bounded(path: &Path, bytes_max: u64) -> Result<Option<Vec<u8>>, String> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(failure("opening", path, error)),
    };
    let mut bytes = Vec::new();
    file.take(bytes_max + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| failure("reading", path, error))?;
    if bytes.len() as u64 > bytes_max {
        return Err(failure(
            "reading",
            path,
            format!("larger than {bytes_max} bytes"),
        ));
    }
    Ok(Some(bytes))
}

/// The position of `name`, `None` when none was saved; a file of another `format_version` is
/// refused, never guessed at.
pub(crate) fn read<T: DeserializeOwned>(
    directory: &Path,
    name: &str,
    format_version: u32,
) -> Result<Option<T>, String> {
    let path = path(directory, name);
    let Some(bytes) = read_bounded(&path, POSITION_BYTES_MAX)? else {
        return Ok(None);
    };
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|error| failure("parsing", &path, error))?;
    let found = value
        .get("format_version")
        .and_then(serde_json::Value::as_u64);
    if found != Some(u64::from(format_version)) {
        let found = found.map_or_else(|| "none".to_owned(), |version| version.to_string());
        return Err(failure("reading", &path, format!("format version {found}")));
    }
    serde_json::from_value(value)
        .map(Some)
        .map_err(|error| failure("parsing", &path, error))
}

/// Saves the position of `name` (a value carrying its `format_version`).
pub(crate) fn write<T: Serialize>(
    directory: &Path,
    name: &str,
    position: &T,
) -> Result<(), String> {
    let bytes =
        serde_json::to_vec(position).map_err(|error| format!("encoding a position: {error}"))?;
    replace(directory, &format!("{name}{POSITION_SUFFIX}"), &bytes)
}

/// Removes the position of `name`; one that is already gone is not an error.
pub(crate) fn remove(directory: &Path, name: &str) -> Result<(), String> {
    let path = path(directory, name);
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(failure("removing", &path, error)),
    }
}

/// The names that have a position in `directory` (none when it does not exist).
pub(crate) fn names(directory: &Path) -> Result<Vec<String>, String> {
    let entries = match fs::read_dir(directory) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(failure("listing", directory, error)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|error| failure("listing", directory, error))?;
        if let Some(name) = entry
            .file_name()
            .to_str()
            .and_then(|file| file.strip_suffix(POSITION_SUFFIX))
        {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Replaces `directory/file_name` with `bytes` atomically and durably.
pub(crate) fn replace(directory: &Path, file_name: &str, bytes: &[u8]) -> Result<(), String> {
    let path = directory.join(file_name);
    let temporary = directory.join(format!("{file_name}.tmp"));
    let mut file =
        File::create(&temporary).map_err(|error| failure("creating", &temporary, error))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|error| failure("writing", &temporary, error))?;
    fs::rename(&temporary, &path).map_err(|error| failure("replacing", &path, error))?;
    File::open(directory)
        .and_then(|folder| folder.sync_all())
        .map_err(|error| failure("syncing", directory, error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Position {
        format_version: u32,
        next: u64,
    }

    #[test]
    fn a_position_round_trips_and_other_versions_or_damage_are_refused() {
        let directory = tempfile::tempdir().unwrap();
        let dir = directory.path();
        assert_eq!(read::<Position>(dir, "a", 1).unwrap(), None);
        let position = Position {
            format_version: 1,
            next: 7,
        };
        write(dir, "a", &position).unwrap();
        assert_eq!(read::<Position>(dir, "a", 1).unwrap(), Some(position));
        assert!(!dir.join("a.position.tmp").exists());
        let refused = read::<Position>(dir, "a", 2).unwrap_err();
        assert!(refused.contains("format version 1"), "{refused}");
        fs::write(path(dir, "b"), b"{\"format_version\":").unwrap();
        assert!(
            read::<Position>(dir, "b", 1)
                .unwrap_err()
                .starts_with("parsing")
        );
        fs::write(path(dir, "c"), vec![b' '; POSITION_BYTES_MAX as usize + 1]).unwrap();
        let long = read::<Position>(dir, "c", 1).unwrap_err();
        assert!(long.contains("larger than"), "{long}");
    }
}
