//! Where restores and imports may read from, and how they read.
//!
//! [`ImportRoots`] are the only directories a request may name: the data directory's `s3/` store
//! (by bucket and prefix, as ExportJournalToS3 writes) and the directories the operator named
//! with `sluice up --import-dir` (none by default). A requested location is checked lexically
//! first (absolute, no `..`, under a root), before the file system is touched, so the answer for
//! a location outside the roots is the same whether it exists or not.
//!
//! The walk ([`ExportReader`]) then opens every path component relative to its parent's
//! directory handle with `O_NOFOLLOW`, so it never follows a symbolic link: a link anywhere below
//! the root is refused, and so is anything but directories and regular files (a FIFO or a device
//! is never opened). It detects directory loops (bind mounts), is bounded in depth, entries,
//! data objects and bytes, checks its [`CancelToken`] between entries, and names files in errors
//! relative to the export directory, never with their contents.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{self as fs_at, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::cancel::CancelToken;
use crate::error::LedgerError;

/// Deepest directory below an export directory the walk enters. QLDB's layout needs four
/// (`yyyy/mm/dd/hh`) plus an S3 prefix; a deeper tree is refused with `LimitExceeded`.
pub const EXPORT_WALK_DEPTH_MAX: usize = 16;
/// Most directory entries (and manifest-key lookups) one walk looks at; past it the import is
/// refused with `LimitExceeded`, so a huge tree cannot keep a request busy for long.
pub const EXPORT_WALK_ENTRIES_MAX: usize = 1_000_000;
/// Most data objects one export may hold; more is refused with `LimitExceeded`.
pub const EXPORT_OBJECTS_MAX: usize = 100_000;
/// Largest data object or manifest; a larger file is refused with `LimitExceeded` before it is
/// read. Sluice writes at most 1,000 blocks per object.
pub const EXPORT_OBJECT_BYTES_MAX: u64 = 256 * 1024 * 1024;
/// Most bytes read from one export in all. Every block is held in memory while the chain is
/// verified, so this bounds the memory of an import; past it the import is refused with
/// `LimitExceeded`.
pub const EXPORT_BYTES_MAX: u64 = 4 * 1024 * 1024 * 1024;
/// Most path components of one manifest key; a longer key is refused with `BadRequest`.
const MANIFEST_KEY_PARTS_MAX: usize = EXPORT_WALK_DEPTH_MAX + 8;

/// A directory reads may start from: as the operator named it and as the file system resolves it.
#[derive(Debug, Clone)]
struct Root {
    /// Absolute, as given (symbolic links not resolved).
    given: PathBuf,
    /// Canonical: what the walk opens.
    canonical: PathBuf,
}

impl Root {
    fn new(path: &Path, what: &str) -> Result<Root, LedgerError> {
        let given = std::path::absolute(path)?;
        let canonical = std::fs::canonicalize(path).map_err(|error| {
            LedgerError::BadRequest(format!("{what} {}: {error}", path.display()))
        })?;
        if !canonical.is_dir() {
            return Err(LedgerError::BadRequest(format!(
                "{what} {} is not a directory",
                path.display()
            )));
        }
        Ok(Root { given, canonical })
    }

    /// `path` relative to this root, when it lies inside it (compared component by component).
    fn relative<'a>(&self, path: &'a Path) -> Option<&'a Path> {
        path.strip_prefix(&self.canonical)
            .or_else(|_| path.strip_prefix(&self.given))
            .ok()
    }
}

/// The directories restores and imports may read: the data directory's s3 store and the
/// operator's import directories.
#[derive(Debug, Clone)]
pub struct ImportRoots {
    s3_store: Root,
    import_dirs: Vec<Root>,
    /// Opens objects the s3 store holds encrypted (files not encrypted are read as they are).
    keyring: Option<std::sync::Arc<sluice_seal::Keyring>>,
}

impl ImportRoots {
    /// `s3_store` (`data_dir/s3`) is created if missing; every import directory must exist.
    pub fn new(s3_store: &Path, import_dirs: &[PathBuf]) -> Result<ImportRoots, LedgerError> {
        std::fs::create_dir_all(s3_store)?;
        Ok(ImportRoots {
            s3_store: Root::new(s3_store, "the s3 store")?,
            import_dirs: import_dirs
                .iter()
                .map(|directory| Root::new(directory, "import directory"))
                .collect::<Result<_, _>>()?,
            keyring: None,
        })
    }

    /// These roots reading encrypted objects with `keyring`.
    pub fn with_keyring(mut self, keyring: Option<std::sync::Arc<sluice_seal::Keyring>>) -> Self {
        self.keyring = keyring;
        self
    }

    /// The s3 store's canonical path: `<bucket>/<prefix>/…` below it.
    pub fn s3_store(&self) -> &Path {
        &self.s3_store.canonical
    }

    /// The import directories, canonical.
    pub fn import_dirs(&self) -> impl Iterator<Item = &Path> {
        self.import_dirs.iter().map(|root| root.canonical.as_path())
    }

    /// The directory of `bucket` and `prefix` in the s3 store; refused when either would leave
    /// it. Lexical only: nothing is created or read.
    pub fn s3_path(&self, bucket: &str, prefix: &str) -> Result<PathBuf, LedgerError> {
        if bucket.trim_matches('/').is_empty() {
            return Err(LedgerError::BadRequest("Bucket is required".to_owned()));
        }
        Ok(self
            .s3_store
            .canonical
            .join(relative_key_path(bucket, "Bucket")?)
            .join(relative_key_path(prefix, "Prefix")?))
    }

    /// An export in the s3 store: `prefix` is the key prefix of the export's own objects (the
    /// directory holding its manifests), as in `<prefix>/<ledger>/<exportId>` for an export
    /// that ExportJournalToS3 wrote with `prefix`.
    pub fn locate_s3(&self, bucket: &str, prefix: &str) -> Result<ExportLocation, LedgerError> {
        let directory = self.s3_path(bucket, prefix)?;
        let relative = directory
            .strip_prefix(&self.s3_store.canonical)
            .map_err(|_| LedgerError::Internal("s3 path outside the s3 store".to_owned()))?
            .to_path_buf();
        Ok(ExportLocation {
            root: self.s3_store.canonical.clone(),
            relative,
            name: format!("s3://{bucket}/{}", prefix.trim_matches('/')),
            keyring: self.keyring.clone(),
        })
    }

    /// An export directory named by path: absolute and inside the s3 store or an import
    /// directory, or relative to an import directory (the first that holds it). Every path
    /// outside them gets the same `AccessDenied`, whether it exists or not.
    pub fn locate_directory(&self, text: &str) -> Result<ExportLocation, LedgerError> {
        if text.is_empty() {
            return Err(LedgerError::BadRequest(
                "ExportDirectory is empty".to_owned(),
            ));
        }
        if text.contains('\0') {
            return Err(LedgerError::BadRequest(
                "ExportDirectory contains a NUL character".to_owned(),
            ));
        }
        let path = Path::new(text);
        let mut clean = PathBuf::new();
        for component in path.components() {
            match component {
                Component::RootDir => clean.push("/"),
                Component::Normal(part) => clean.push(part),
                Component::CurDir => {}
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(LedgerError::BadRequest(format!(
                        "ExportDirectory {text:?} must not contain `..`"
                    )));
                }
            }
        }
        if clean.is_absolute() {
            let roots = std::iter::once(&self.s3_store).chain(&self.import_dirs);
            for root in roots {
                if let Some(relative) = root.relative(&clean) {
                    return Ok(ExportLocation {
                        root: root.canonical.clone(),
                        relative: relative.to_path_buf(),
                        name: text.to_owned(),
                        keyring: self.keyring.clone(),
                    });
                }
            }
            return Err(LedgerError::AccessDenied(format!(
                "ExportDirectory {text:?} is outside the directories restores and imports may \
                 read: the data directory's s3 store and the directories given to \
                 `sluice up --import-dir` ({} given)",
                self.import_dirs.len()
            )));
        }
        if self.import_dirs.is_empty() {
            return Err(LedgerError::AccessDenied(format!(
                "ExportDirectory {text:?} is relative, so it is read inside an import directory, \
                 and the server was started without `--import-dir`"
            )));
        }
        // The first import directory that holds it; when none does, the first one, so the walk
        // tells why (missing, or a symbolic link). Inside the roots, telling which path exists
        // is allowed: the operator opened them.
        let locations: Vec<ExportLocation> = self
            .import_dirs
            .iter()
            .map(|root| ExportLocation {
                root: root.canonical.clone(),
                relative: clean.clone(),
                name: text.to_owned(),
                keyring: self.keyring.clone(),
            })
            .collect();
        let found = locations
            .iter()
            .position(|location| open_location(location).is_ok())
            .unwrap_or(0);
        locations
            .into_iter()
            .nth(found)
            .ok_or_else(|| LedgerError::Internal("no import directory".to_owned()))
    }
}

/// A bucket, prefix or key as a relative path that stays inside its root: leading and trailing
/// slashes are ignored; `..` and NUL are refused.
pub fn relative_key_path(text: &str, what: &str) -> Result<PathBuf, LedgerError> {
    if text.contains('\0') {
        return Err(LedgerError::BadRequest(format!(
            "{what} contains a NUL character"
        )));
    }
    let mut relative = PathBuf::new();
    for component in Path::new(text.trim_matches('/')).components() {
        match component {
            Component::Normal(part) => relative.push(part),
            Component::CurDir => {}
            _ => {
                return Err(LedgerError::BadRequest(format!(
                    "{what} {text:?} is not allowed"
                )));
            }
        }
    }
    Ok(relative)
}

/// Where one export lies: a root the walk opens as it is, and a path below it that the walk
/// opens component by component without following symbolic links.
#[derive(Debug, Clone)]
pub struct ExportLocation {
    root: PathBuf,
    relative: PathBuf,
    /// How errors name the export: as the request named it.
    name: String,
    /// Opens encrypted files of the export.
    keyring: Option<std::sync::Arc<sluice_seal::Keyring>>,
}

impl ExportLocation {
    /// A directory the caller vouches for (tests, tools, the process's own exports), read as
    /// its own root: the walk below it is still symlink-safe and bounded.
    pub fn trusted_directory(path: &Path) -> ExportLocation {
        ExportLocation {
            root: path.to_path_buf(),
            relative: PathBuf::new(),
            name: path.display().to_string(),
            keyring: None,
        }
    }

    /// The export as the request named it.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Opens an export directory: its root as it is, then each component with `O_NOFOLLOW`.
fn open_location(location: &ExportLocation) -> Result<OwnedFd, LedgerError> {
    let not_found = || LedgerError::NotFound(format!("export directory {}", location.name));
    let mut directory = match fs_at::open(&location.root, directory_flags(false), Mode::empty()) {
        Ok(directory) => directory,
        Err(Errno::NOENT | Errno::NOTDIR) => return Err(not_found()),
        Err(error) => return Err(LedgerError::Io(error.into())),
    };
    for component in location.relative.components() {
        let Component::Normal(part) = component else {
            return Err(LedgerError::Internal(
                "an export location holds more than names".to_owned(),
            ));
        };
        directory = match open_directory_at(&directory, part) {
            Ok(next) => next,
            Err(Errno::NOENT | Errno::NOTDIR) => return Err(not_found()),
            Err(Errno::LOOP) => {
                return Err(LedgerError::BadRequest(format!(
                    "export directory {} passes through a symbolic link; imports do not follow \
                     symbolic links",
                    location.name
                )));
            }
            Err(Errno::ACCESS) => {
                return Err(LedgerError::BadRequest(format!(
                    "export directory {} cannot be read: permission denied",
                    location.name
                )));
            }
            Err(error) => return Err(LedgerError::Io(error.into())),
        };
    }
    Ok(directory)
}

/// Opens directory `name` inside `parent` without following a link. With `O_DIRECTORY`, Linux
/// reports a link as `ENOTDIR`; it is told apart here and answered as `ELOOP`, as without.
fn open_directory_at(parent: &OwnedFd, name: &OsStr) -> Result<OwnedFd, Errno> {
    match fs_at::openat(parent, name, directory_flags(true), Mode::empty()) {
        Err(Errno::NOTDIR) => {
            let is_link = fs_at::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|stat| FileType::from_raw_mode(stat.st_mode) == FileType::Symlink);
            Err(if is_link { Errno::LOOP } else { Errno::NOTDIR })
        }
        other => other,
    }
}

fn directory_flags(no_follow: bool) -> OFlags {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    if no_follow {
        flags | OFlags::NOFOLLOW
    } else {
        flags
    }
}

/// A regular file is opened without following a link, without blocking (a FIFO swapped in
/// after the type check must not hang the walk) and without becoming a controlling terminal.
fn file_flags() -> OFlags {
    OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY
}

/// A path below the export directory, as errors show it.
fn display(relative: &[OsString]) -> String {
    relative
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// What a lookup of one manifest-key candidate found.
enum Lookup {
    File(Vec<OsString>),
    Missing,
}

/// Reads one export directory: finds its completed manifest or walks it for data objects, and
/// reads files, all relative to the directory's handle and within the limits above.
pub(crate) struct ExportReader<'a> {
    directory: OwnedFd,
    keyring: Option<std::sync::Arc<sluice_seal::Keyring>>,
    cancel: &'a CancelToken,
    entries_seen: usize,
    bytes_read: u64,
}

impl<'a> ExportReader<'a> {
    pub(crate) fn open(
        location: &ExportLocation,
        cancel: &'a CancelToken,
    ) -> Result<ExportReader<'a>, LedgerError> {
        cancel.check()?;
        Ok(ExportReader {
            directory: open_location(location)?,
            keyring: location.keyring.clone(),
            cancel,
            entries_seen: 0,
            bytes_read: 0,
        })
    }

    fn count_entry(&mut self) -> Result<(), LedgerError> {
        self.cancel.check()?;
        self.entries_seen += 1;
        if self.entries_seen > EXPORT_WALK_ENTRIES_MAX {
            return Err(LedgerError::LimitExceeded(format!(
                "an export walk looks at most {EXPORT_WALK_ENTRIES_MAX} directory entries"
            )));
        }
        Ok(())
    }

    /// The names and types of a directory's entries, sorted by name.
    fn list(
        &mut self,
        directory: &OwnedFd,
        relative: &[OsString],
    ) -> Result<Vec<(OsString, FileType)>, LedgerError> {
        let mut entries = Vec::new();
        let mut reader = fs_at::Dir::read_from(directory).map_err(|error| {
            LedgerError::BadRequest(format!(
                "directory {} of the export cannot be read: {error}",
                display_dir(relative)
            ))
        })?;
        while let Some(entry) = reader.read() {
            let entry = entry.map_err(|error| LedgerError::Io(error.into()))?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if name == "." || name == ".." {
                continue;
            }
            self.count_entry()?;
            let mut file_type = entry.file_type();
            if file_type == FileType::Unknown {
                // Some file systems do not report types in directory entries.
                file_type = fs_at::statat(directory, name, AtFlags::SYMLINK_NOFOLLOW)
                    .map(|stat| FileType::from_raw_mode(stat.st_mode))
                    .map_err(|error| LedgerError::Io(error.into()))?;
            }
            entries.push((name.to_owned(), file_type));
        }
        entries.sort_by(|left, right| left.0.cmp(&right.0));
        Ok(entries)
    }

    /// The completed manifest at the top of the export directory, if there is one: its name and
    /// bytes.
    pub(crate) fn completed_manifest(&mut self) -> Result<Option<(String, Vec<u8>)>, LedgerError> {
        let directory = self.directory.try_clone()?;
        let entries = self.list(&directory, &[])?;
        let manifest = entries
            .into_iter()
            .find(|(name, _)| name.as_bytes().ends_with(b".completed.manifest"));
        match manifest {
            None => Ok(None),
            Some((name, _)) => {
                let relative = vec![name];
                let bytes = self.read(&relative)?;
                Ok(Some((display(&relative), bytes)))
            }
        }
    }

    /// Every `.ion` file below the export directory, in name order, depth first. Symbolic
    /// links, `.ion` entries that are not regular files, directory loops, and trees deeper than
    /// [`EXPORT_WALK_DEPTH_MAX`] are refused.
    pub(crate) fn data_objects(&mut self) -> Result<Vec<Vec<OsString>>, LedgerError> {
        let mut objects = Vec::new();
        let mut visited = HashSet::new();
        let directory = self.directory.try_clone()?;
        let metadata = File::from(directory.try_clone()?).metadata()?;
        visited.insert((metadata.dev(), metadata.ino()));
        self.collect(directory, &mut Vec::new(), &mut visited, &mut objects)?;
        Ok(objects)
    }

    fn collect(
        &mut self,
        directory: OwnedFd,
        relative: &mut Vec<OsString>,
        visited: &mut HashSet<(u64, u64)>,
        objects: &mut Vec<Vec<OsString>>,
    ) -> Result<(), LedgerError> {
        for (name, file_type) in self.list(&directory, relative)? {
            relative.push(name.clone());
            let is_ion = Path::new(&name)
                .extension()
                .is_some_and(|extension| extension == "ion");
            match file_type {
                FileType::Symlink => {
                    return Err(LedgerError::BadRequest(format!(
                        "{} in the export is a symbolic link; imports do not follow symbolic links",
                        display(relative)
                    )));
                }
                FileType::Directory => {
                    if relative.len() > EXPORT_WALK_DEPTH_MAX {
                        return Err(LedgerError::LimitExceeded(format!(
                            "the export is deeper than {EXPORT_WALK_DEPTH_MAX} directories at {}",
                            display(relative)
                        )));
                    }
                    let child = self.open_directory(&directory, relative)?;
                    let metadata = File::from(child.try_clone()?).metadata()?;
                    if !visited.insert((metadata.dev(), metadata.ino())) {
                        return Err(LedgerError::BadRequest(format!(
                            "{} in the export leads back into a directory already walked",
                            display(relative)
                        )));
                    }
                    self.collect(child, relative, visited, objects)?;
                }
                FileType::RegularFile if is_ion => {
                    if objects.len() >= EXPORT_OBJECTS_MAX {
                        return Err(LedgerError::LimitExceeded(format!(
                            "an export holds at most {EXPORT_OBJECTS_MAX} data objects"
                        )));
                    }
                    objects.push(relative.clone());
                }
                _ if is_ion => {
                    return Err(LedgerError::BadRequest(format!(
                        "{} in the export is not a regular file",
                        display(relative)
                    )));
                }
                // Manifests, JSON objects and anything else are not data objects.
                _ => {}
            }
            relative.pop();
        }
        Ok(())
    }

    /// Opens the last component of `relative` as a directory inside `parent`.
    fn open_directory(
        &self,
        parent: &OwnedFd,
        relative: &[OsString],
    ) -> Result<OwnedFd, LedgerError> {
        let name = relative.last().map(OsString::as_os_str).unwrap_or_default();
        open_directory_at(parent, name).map_err(|error| component_error(error, relative))
    }

    /// The file a manifest key names: relative to the export directory, or an S3 key whose tail
    /// is (QLDB's keys carry the bucket prefix).
    pub(crate) fn resolve_key(&mut self, key: &str) -> Result<Vec<OsString>, LedgerError> {
        let parts: Vec<&str> = key
            .split('/')
            .filter(|part| !part.is_empty() && *part != ".")
            .collect();
        if parts.contains(&"..") || key.contains('\0') {
            return Err(LedgerError::BadRequest(format!(
                "manifest key {key:?} leaves the export"
            )));
        }
        if parts.len() > MANIFEST_KEY_PARTS_MAX {
            return Err(LedgerError::BadRequest(format!(
                "manifest key {key:?} has more than {MANIFEST_KEY_PARTS_MAX} parts"
            )));
        }
        for skip in 0..parts.len() {
            self.count_entry()?;
            let candidate: Vec<OsString> = parts
                .iter()
                .skip(skip)
                .map(|part| OsString::from(*part))
                .collect();
            if let Lookup::File(relative) = self.lookup(candidate)? {
                return Ok(relative);
            }
        }
        Err(LedgerError::NotFound(format!("export object {key:?}")))
    }

    /// Whether `relative` names a regular file, walking it without following links.
    fn lookup(&self, relative: Vec<OsString>) -> Result<Lookup, LedgerError> {
        let Some((name, parents)) = relative.split_last() else {
            return Ok(Lookup::Missing);
        };
        let mut directory = self.directory.try_clone()?;
        for (depth, part) in parents.iter().enumerate() {
            directory = match open_directory_at(&directory, part) {
                Ok(next) => next,
                Err(Errno::NOENT | Errno::NOTDIR) => return Ok(Lookup::Missing),
                Err(error) => {
                    return Err(component_error(
                        error,
                        relative.get(..=depth).unwrap_or_default(),
                    ));
                }
            };
        }
        match fs_at::statat(&directory, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => match FileType::from_raw_mode(stat.st_mode) {
                FileType::RegularFile => Ok(Lookup::File(relative)),
                FileType::Symlink => Err(component_error(Errno::LOOP, &relative)),
                _ => Ok(Lookup::Missing),
            },
            Err(Errno::NOENT | Errno::NOTDIR) => Ok(Lookup::Missing),
            Err(error) => Err(component_error(error, &relative)),
        }
    }

    /// Reads a regular file below the export directory, within the size limits.
    pub(crate) fn read(&mut self, relative: &[OsString]) -> Result<Vec<u8>, LedgerError> {
        self.cancel.check()?;
        let Some((name, parents)) = relative.split_last() else {
            return Err(LedgerError::Internal("reading an empty path".to_owned()));
        };
        let mut directory = self.directory.try_clone()?;
        for (depth, part) in parents.iter().enumerate() {
            directory = open_directory_at(&directory, part).map_err(|error| {
                component_error(error, relative.get(..=depth).unwrap_or_default())
            })?;
        }
        // The type is checked before opening, so a FIFO or a device is never opened, and again
        // on the open file, in case the entry was swapped in between.
        let stat = fs_at::statat(&directory, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|error| component_error(error, relative))?;
        let not_regular = || {
            LedgerError::BadRequest(format!(
                "{} in the export is not a regular file",
                display(relative)
            ))
        };
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::RegularFile => {}
            FileType::Symlink => return Err(component_error(Errno::LOOP, relative)),
            _ => return Err(not_regular()),
        }
        let file = File::from(
            fs_at::openat(&directory, name.as_os_str(), file_flags(), Mode::empty())
                .map_err(|error| component_error(error, relative))?,
        );
        let metadata = file.metadata()?;
        if !metadata.is_file() {
            return Err(not_regular());
        }
        if metadata.len() > EXPORT_OBJECT_BYTES_MAX {
            return Err(LedgerError::LimitExceeded(format!(
                "{} in the export is larger than {EXPORT_OBJECT_BYTES_MAX} bytes",
                display(relative)
            )));
        }
        let mut bytes = Vec::new();
        // A file that grows while it is read stops at the limit all the same.
        file.take(EXPORT_OBJECT_BYTES_MAX + 1)
            .read_to_end(&mut bytes)?;
        let length = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        if length > EXPORT_OBJECT_BYTES_MAX {
            return Err(LedgerError::LimitExceeded(format!(
                "{} in the export is larger than {EXPORT_OBJECT_BYTES_MAX} bytes",
                display(relative)
            )));
        }
        self.bytes_read = self.bytes_read.saturating_add(length);
        if self.bytes_read > EXPORT_BYTES_MAX {
            return Err(LedgerError::LimitExceeded(format!(
                "an export holds at most {EXPORT_BYTES_MAX} bytes"
            )));
        }
        // The s3 store keeps objects encrypted when Sluice has a key; other files pass as read.
        sluice_seal::open_maybe_sealed(self.keyring.as_deref(), sluice_seal::LOCAL_OBJECT, bytes)
            .map_err(|error| {
                LedgerError::BadRequest(format!("{} in the export: {error}", display(relative)))
            })
    }
}

/// Errors show directories with a trailing slash and the export directory itself as `.`.
fn display_dir(relative: &[OsString]) -> String {
    if relative.is_empty() {
        ".".to_owned()
    } else {
        format!("{}/", display(relative))
    }
}

/// Why a component below the export directory could not be opened, naming it relative to the
/// export directory.
fn component_error(error: Errno, relative: &[OsString]) -> LedgerError {
    let shown = display(relative);
    match error {
        Errno::LOOP => LedgerError::BadRequest(format!(
            "{shown} in the export is a symbolic link; imports do not follow symbolic links"
        )),
        Errno::NOENT | Errno::NOTDIR => LedgerError::NotFound(format!("{shown} in the export")),
        Errno::ACCESS | Errno::PERM => LedgerError::BadRequest(format!(
            "{shown} in the export cannot be read: permission denied"
        )),
        other => LedgerError::Io(other.into()),
    }
}

/// Shows a data object's path relative to the export directory.
pub(crate) fn object_name(relative: &[OsString]) -> String {
    display(relative)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_inside_their_root() {
        assert_eq!(
            relative_key_path("bucket", "Bucket").unwrap(),
            PathBuf::from("bucket")
        );
        assert_eq!(
            relative_key_path("/a/b/", "Prefix").unwrap(),
            PathBuf::from("a/b")
        );
        assert!(relative_key_path("../etc", "Prefix").is_err());
        assert!(relative_key_path("a/../../b", "Prefix").is_err());
        assert!(relative_key_path("a\0b", "Prefix").is_err());
    }

    #[test]
    fn locations_outside_the_roots_are_refused_lexically() {
        let dir = tempfile::tempdir().unwrap();
        let imports = dir.path().join("imports");
        std::fs::create_dir_all(imports.join("x")).unwrap();
        let roots =
            ImportRoots::new(&dir.path().join("s3"), std::slice::from_ref(&imports)).unwrap();
        let inside = roots
            .locate_directory(imports.join("x").to_str().unwrap())
            .unwrap();
        assert_eq!(inside.relative, PathBuf::from("x"));
        let relative = roots.locate_directory("x").unwrap();
        assert_eq!(relative.root, std::fs::canonicalize(&imports).unwrap());
        for outside in ["/etc", "/nonexistent", "/proc/1"] {
            let message = roots.locate_directory(outside).unwrap_err().to_string();
            assert_eq!(
                message.replace(outside, "PATH"),
                roots
                    .locate_directory("/etc")
                    .unwrap_err()
                    .to_string()
                    .replace("/etc", "PATH")
            );
            assert!(message.starts_with("access denied"), "{message}");
        }
        let dotted = format!("{}/../../etc", imports.display());
        assert!(matches!(
            roots.locate_directory(&dotted),
            Err(LedgerError::BadRequest(_))
        ));
        // A sibling whose name starts with the root's is not inside it.
        let sibling = format!("{}-other", imports.display());
        assert!(matches!(
            roots.locate_directory(&sibling),
            Err(LedgerError::AccessDenied(_))
        ));
    }
}
