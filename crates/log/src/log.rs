//! The log as a whole: the data directory and its lock, the catalog of streams (create, delete,
//! list, look up) and a retention pass over every stream.
//!
//! Layout of the data directory:
//! `LOCK`, `catalog`, `streams/<stream>/shard-NNNNNN/<first offset>.seg`,
//! `streams/<stream>/checkpoints/<consumer>/shard-NNNNNN.ckpt`.

use std::{
    collections::BTreeMap,
    fs::{self, File, OpenOptions, TryLockError},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
};

use crate::{
    catalog::{CatalogEntry, read_catalog, write_catalog},
    clock::{Clock, SystemClock},
    disk::{Disk, OsDisk},
    error::{LogError, Result},
    files::create_directory_durably,
    limits::{SEGMENT_BYTES_MAX_DEFAULT, SEGMENT_BYTES_MAX_LIMIT, SEGMENT_BYTES_MIN, STREAMS_MAX},
    lock, read_lock,
    shard::{Environment, RetentionOutcome, RetentionPolicy},
    stream::{Stream, StreamConfig, StreamSummary, validate_name},
    write_lock,
};

const LOCK_FILE_NAME: &str = "LOCK";
const STREAMS_DIRECTORY_NAME: &str = "streams";

/// How to open a log: the clock and disk to use and the segment size.
#[derive(Debug, Clone)]
pub struct LogOptions {
    pub clock: Arc<dyn Clock>,
    pub disk: Arc<dyn Disk>,
    /// Size at which a shard rolls to a new segment, within
    /// [`SEGMENT_BYTES_MIN`]..=[`SEGMENT_BYTES_MAX_LIMIT`].
    pub segment_bytes_max: u64,
    /// With a keyring, every segment created is encrypted (format version 2) under its current
    /// data key, and a shard whose active segment is not starts a new one when it opens.
    pub keyring: Option<Arc<sluice_seal::Keyring>>,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            clock: Arc::new(SystemClock),
            disk: Arc::new(OsDisk),
            segment_bytes_max: SEGMENT_BYTES_MAX_DEFAULT,
            keyring: None,
        }
    }
}

/// An open log directory. Dropping it without any close is what a crash does to the files, and
/// is safe: every acknowledged record is already durable.
#[derive(Debug)]
pub struct Log {
    directory: PathBuf,
    environment: Arc<Environment>,
    streams: RwLock<BTreeMap<String, Arc<Stream>>>,
    /// Serialises catalog changes (create and delete) so each rewrite sees the one before.
    catalog_lock: Mutex<()>,
    /// Held open for the life of the log: its advisory lock keeps a second `Log` out.
    _lock_file: File,
}

impl Log {
    /// Opens (or creates) the log in `directory`: takes its lock, reads the catalog, recovers
    /// every shard of every stream and removes folders that no catalog entry names (leftovers of
    /// a create or delete interrupted by a crash).
    pub fn open(directory: impl AsRef<Path>, options: LogOptions) -> Result<Log> {
        let directory = directory.as_ref().to_owned();
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX_LIMIT).contains(&options.segment_bytes_max) {
            return Err(LogError::InvalidArgument(format!(
                "segment_bytes_max must be between {SEGMENT_BYTES_MIN} and {SEGMENT_BYTES_MAX_LIMIT}, not {}",
                options.segment_bytes_max
            )));
        }
        let environment = Arc::new(Environment {
            clock: options.clock,
            disk: options.disk,
            segment_bytes_max: options.segment_bytes_max,
            keyring: options.keyring,
        });
        create_directory_durably(&directory, environment.disk.as_ref())?;
        let lock_path = directory.join(LOCK_FILE_NAME);
        let lock_file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|error| LogError::io(format!("open {}", lock_path.display()), error))?;
        match lock_file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LogError::DirectoryLocked { path: directory });
            }
            Err(TryLockError::Error(error)) => {
                return Err(LogError::io(format!("lock {}", lock_path.display()), error));
            }
        }
        let streams_directory = directory.join(STREAMS_DIRECTORY_NAME);
        create_directory_durably(&streams_directory, environment.disk.as_ref())?;
        let entries = read_catalog(&directory)?;
        let mut streams = BTreeMap::new();
        for entry in entries {
            let stream = Stream::open(
                &entry.name,
                entry.config,
                entry.created_time_ms,
                streams_directory.join(&entry.name),
                Arc::clone(&environment),
            )?;
            streams.insert(entry.name, Arc::new(stream));
        }
        remove_uncatalogued_stream_directories(
            &streams_directory,
            &streams,
            environment.disk.as_ref(),
        )?;
        Ok(Log {
            directory,
            environment,
            streams: RwLock::new(streams),
            catalog_lock: Mutex::new(()),
            _lock_file: lock_file,
        })
    }

    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// The clock the log reads for arrival times and retention.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.environment.clock
    }

    fn streams_directory(&self) -> PathBuf {
        self.directory.join(STREAMS_DIRECTORY_NAME)
    }

    fn catalog_entries(streams: &BTreeMap<String, Arc<Stream>>) -> Vec<CatalogEntry> {
        streams
            .values()
            .map(|stream| CatalogEntry {
                name: stream.name().to_owned(),
                config: stream.config(),
                created_time_ms: stream.created_time_ms(),
            })
            .collect()
    }

    /// Creates a stream: its folders and first segments, then its catalog entry. It exists once
    /// the catalog rename is durable.
    pub fn create_stream(&self, name: &str, config: StreamConfig) -> Result<Arc<Stream>> {
        validate_name(name)?;
        config.validate()?;
        let _catalog_guard = lock(&self.catalog_lock);
        {
            let streams = read_lock(&self.streams);
            if streams.contains_key(name) {
                return Err(LogError::StreamAlreadyExists(name.to_owned()));
            }
            if streams.len() >= STREAMS_MAX {
                return Err(LogError::LimitExceeded {
                    what: "streams in the log",
                    value: streams.len() as u64 + 1,
                    limit: STREAMS_MAX as u64,
                });
            }
        }
        let stream_directory = self.streams_directory().join(name);
        remove_directory_if_present(&stream_directory)?;
        let stream = Arc::new(Stream::create(
            name,
            config,
            self.environment.clock.now_ms(),
            stream_directory,
            Arc::clone(&self.environment),
        )?);
        let mut entries = Log::catalog_entries(&read_lock(&self.streams));
        entries.push(CatalogEntry {
            name: name.to_owned(),
            config,
            created_time_ms: stream.created_time_ms(),
        });
        entries.sort_by(|left, right| left.name.cmp(&right.name));
        write_catalog(&self.directory, &entries, self.environment.disk.as_ref())?;
        write_lock(&self.streams).insert(name.to_owned(), Arc::clone(&stream));
        Ok(stream)
    }

    /// Deletes a stream: its catalog entry first (durably), then its folder with its segments
    /// and checkpoints. Handles still held refuse appends from then on.
    pub fn delete_stream(&self, name: &str) -> Result<()> {
        let _catalog_guard = lock(&self.catalog_lock);
        let stream = self.stream(name)?;
        let mut remaining = read_lock(&self.streams).clone();
        remaining.remove(name);
        write_catalog(
            &self.directory,
            &Log::catalog_entries(&remaining),
            self.environment.disk.as_ref(),
        )?;
        write_lock(&self.streams).remove(name);
        stream.mark_deleted();
        remove_directory_if_present(stream.directory())?;
        let streams_directory = self.streams_directory();
        self.environment
            .disk
            .sync_directory(&streams_directory)
            .map_err(|error| {
                LogError::io(
                    format!("fsync directory {}", streams_directory.display()),
                    error,
                )
            })
    }

    /// Changes a stream's retention (Kinesis Increase/DecreaseStreamRetentionPeriod): the
    /// catalog is rewritten durably first, then the stream uses the new policy from its next
    /// retention pass.
    pub fn set_retention(&self, name: &str, policy: RetentionPolicy) -> Result<()> {
        let _catalog_guard = lock(&self.catalog_lock);
        let stream = self.stream(name)?;
        let config = StreamConfig {
            retention_period_ms: policy.retention_period_ms,
            retention_bytes_per_shard_max: policy.retention_bytes_per_shard_max,
            ..stream.config()
        };
        config.validate()?;
        let mut entries = Log::catalog_entries(&read_lock(&self.streams));
        for entry in &mut entries {
            if entry.name == name {
                entry.config = config;
            }
        }
        write_catalog(&self.directory, &entries, self.environment.disk.as_ref())?;
        stream.set_retention_policy(policy);
        Ok(())
    }

    pub fn stream(&self, name: &str) -> Result<Arc<Stream>> {
        read_lock(&self.streams)
            .get(name)
            .cloned()
            .ok_or_else(|| LogError::StreamNotFound(name.to_owned()))
    }

    /// Every stream, by name.
    pub fn list_streams(&self) -> Vec<StreamSummary> {
        read_lock(&self.streams)
            .values()
            .map(|stream| stream.summary())
            .collect()
    }

    /// Applies every stream's retention at the clock's current time. Meant to be called
    /// periodically by the node; it deletes whole segments only.
    pub fn enforce_retention(&self) -> Result<RetentionOutcome> {
        let now_ms = self.environment.clock.now_ms();
        let streams: Vec<Arc<Stream>> = read_lock(&self.streams).values().cloned().collect();
        let mut outcome = RetentionOutcome::default();
        for stream in streams {
            outcome.add(stream.enforce_retention(now_ms)?);
        }
        Ok(outcome)
    }
}

fn remove_directory_if_present(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(LogError::io(
            format!("remove directory {}", path.display()),
            error,
        )),
    }
}

fn remove_uncatalogued_stream_directories(
    streams_directory: &Path,
    streams: &BTreeMap<String, Arc<Stream>>,
    disk: &dyn Disk,
) -> Result<()> {
    let io_context = || format!("list {}", streams_directory.display());
    let mut removed_any = false;
    for entry in
        fs::read_dir(streams_directory).map_err(|error| LogError::io(io_context(), error))?
    {
        let entry = entry.map_err(|error| LogError::io(io_context(), error))?;
        let file_name = entry.file_name();
        let known = file_name
            .to_str()
            .is_some_and(|name| streams.contains_key(name));
        if !known {
            tracing::warn!(path = %entry.path().display(), "removing stream folder absent from the catalog");
            let path = entry.path();
            if path.is_dir() {
                remove_directory_if_present(&path)?;
            } else {
                fs::remove_file(&path)
                    .map_err(|error| LogError::io(format!("remove {}", path.display()), error))?;
            }
            removed_any = true;
        }
    }
    if removed_any {
        disk.sync_directory(streams_directory).map_err(|error| {
            LogError::io(
                format!("fsync directory {}", streams_directory.display()),
                error,
            )
        })?;
    }
    Ok(())
}
