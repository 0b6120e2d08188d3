//! The narrow disk trait: the two durability calls of the log (fsync of a file, fsync of a
//! directory) go through `Disk`, so tests can make them fail and check that a shard poisons itself.
//! Reads and writes use `std::fs` directly.

use std::{fmt, fs::File, io, path::Path};

/// Makes written bytes and directory entries durable.
pub trait Disk: Send + Sync + fmt::Debug {
    /// Makes the data (and the size) of `file` durable: `fdatasync`.
    fn sync_file(&self, file: &File) -> io::Result<()>;
    /// Makes the entries of the directory at `path` durable (creations, renames, deletions).
    fn sync_directory(&self, path: &Path) -> io::Result<()>;
}

/// The real disk: `File::sync_data` and an fsync of the opened directory.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsDisk;

impl Disk for OsDisk {
    fn sync_file(&self, file: &File) -> io::Result<()> {
        file.sync_data()
    }

    fn sync_directory(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }
}
