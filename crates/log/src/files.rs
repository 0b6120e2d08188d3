//! Small durable-file helpers shared by the catalog and checkpoints: atomic replacement
//! (temporary file, fsync, rename, fsync of the directory) and bounded whole-file reads.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Read, Write},
    path::Path,
};

use crate::{
    disk::Disk,
    error::{LogError, Result},
    segment::TEMPORARY_SUFFIX,
};

/// Replaces `directory/file_name` with `bytes` so that a crash leaves either the old or the new
/// content, never a mix: write `file_name.tmp`, fsync it, rename it over the old file, fsync
/// the directory so the rename itself is durable.
pub(crate) fn replace_file_atomically(
    directory: &Path,
    file_name: &str,
    bytes: &[u8],
    disk: &dyn Disk,
) -> Result<()> {
    let path = directory.join(file_name);
    let temporary_path = directory.join(format!("{file_name}{TEMPORARY_SUFFIX}"));
    let context = |what: &str| format!("{what} {}", temporary_path.display());
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temporary_path)
        .map_err(|error| LogError::io(context("create"), error))?;
    file.write_all(bytes)
        .map_err(|error| LogError::io(context("write"), error))?;
    disk.sync_file(&file)
        .map_err(|error| LogError::io(context("fsync"), error))?;
    drop(file);
    fs::rename(&temporary_path, &path)
        .map_err(|error| LogError::io(format!("rename into {}", path.display()), error))?;
    disk.sync_directory(directory)
        .map_err(|error| LogError::io(format!("fsync directory {}", directory.display()), error))
}

/// Reads a whole file of at most `bytes_max` bytes; `Ok(None)` when it does not exist.
pub(crate) fn read_file_bounded(path: &Path, bytes_max: u64) -> Result<Option<Vec<u8>>> {
    let context = || format!("read {}", path.display());
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(LogError::io(context(), error)),
    };
    let mut bytes = Vec::new();
    file.take(bytes_max + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| LogError::io(context(), error))?;
    if bytes.len() as u64 > bytes_max {
        return Err(LogError::corruption(
            path,
            bytes_max,
            format!("file larger than its limit of {bytes_max} bytes"),
        ));
    }
    Ok(Some(bytes))
}

/// Creates a directory and any missing parents, and makes each new entry durable in its
/// parent, so that a crash never loses a folder that later files were made durable in.
pub(crate) fn create_directory_durably(path: &Path, disk: &dyn Disk) -> Result<()> {
    let missing: Vec<&Path> = path
        .ancestors()
        .take_while(|ancestor| !ancestor.exists())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    fs::create_dir_all(path)
        .map_err(|error| LogError::io(format!("create directory {}", path.display()), error))?;
    for created in missing.iter().rev() {
        if let Some(parent) = created
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            disk.sync_directory(parent).map_err(|error| {
                LogError::io(format!("fsync directory {}", parent.display()), error)
            })?;
        }
    }
    Ok(())
}
