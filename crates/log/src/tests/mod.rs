//! Tests of the log as a whole: shared helpers (temporary directory, manual clock, a disk whose
//! fsyncs can be made to fail and are counted), scenario tests and the model-based property test.

mod fixture;
mod model;
mod scenarios;

use std::{
    fs::File,
    io,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use crate::{Disk, Log, LogOptions, ManualClock, OsDisk, ReadBatch, Record, Shard, ShardPosition};

/// A disk that counts fsyncs, can be told to fail them, and can be slowed down so that
/// concurrent appenders pile up behind one fsync.
#[derive(Debug, Default)]
pub(crate) struct TestDisk {
    pub fail_file_syncs: AtomicBool,
    pub file_syncs: AtomicU64,
    pub sync_delay_ms: AtomicU64,
}

impl Disk for TestDisk {
    fn sync_file(&self, file: &File) -> io::Result<()> {
        let delay_ms = self.sync_delay_ms.load(Ordering::SeqCst);
        if delay_ms > 0 {
            std::thread::sleep(Duration::from_millis(delay_ms));
        }
        if self.fail_file_syncs.load(Ordering::SeqCst) {
            return Err(io::Error::other("injected fsync failure"));
        }
        self.file_syncs.fetch_add(1, Ordering::SeqCst);
        OsDisk.sync_file(file)
    }

    fn sync_directory(&self, path: &Path) -> io::Result<()> {
        OsDisk.sync_directory(path)
    }
}

/// A log in a temporary directory with a manual clock and a test disk, reopenable.
pub(crate) struct TestLog {
    pub directory: tempfile::TempDir,
    pub clock: Arc<ManualClock>,
    pub disk: Arc<TestDisk>,
    pub segment_bytes_max: u64,
    pub log: Option<Log>,
    /// With a keyring, new segments are encrypted.
    pub keyring: Option<Arc<sluice_seal::Keyring>>,
}

pub(crate) const START_TIME_MS: u64 = 1_700_000_000_000;

/// A keyring in `directory` under a fixed master key.
pub(crate) fn test_keyring(directory: &Path) -> sluice_seal::Keyring {
    let master = sluice_seal::MasterKey::parse(&"2a".repeat(32)).unwrap();
    sluice_seal::Keyring::open_or_create(directory, master).unwrap()
}

impl TestLog {
    pub fn new(segment_bytes_max: u64) -> TestLog {
        let mut test_log = TestLog {
            directory: tempfile::tempdir().unwrap(),
            clock: Arc::new(ManualClock::new(START_TIME_MS)),
            disk: Arc::new(TestDisk::default()),
            segment_bytes_max,
            log: None,
            keyring: None,
        };
        test_log.reopen().unwrap();
        test_log
    }

    /// A test log whose segments are encrypted under a keyring kept beside it.
    pub fn encrypted(segment_bytes_max: u64) -> TestLog {
        let mut test_log = TestLog::new(segment_bytes_max);
        test_log.log = None;
        test_log.keyring = Some(Arc::new(test_keyring(&test_log.path().join("keys"))));
        test_log.reopen().unwrap();
        test_log
    }

    /// The file key of the segment at `path`, when it is encrypted.
    pub fn segment_key(&self, path: &Path) -> Option<sluice_seal::FileKey> {
        let file = File::open(path).unwrap();
        let header = crate::segment::read_segment_header(path, &file).unwrap();
        let encryption = header.encryption?;
        let keyring = self
            .keyring
            .as_ref()
            .expect("an encrypted segment needs the keyring");
        Some(
            keyring
                .file_key(
                    encryption.key_id,
                    encryption.salt,
                    crate::format::SEGMENT_PURPOSE,
                )
                .unwrap(),
        )
    }

    pub fn options(&self) -> LogOptions {
        LogOptions {
            clock: self.clock.clone(),
            disk: self.disk.clone(),
            segment_bytes_max: self.segment_bytes_max,
            keyring: self.keyring.clone(),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.directory.path().to_owned()
    }

    /// Drops the open log without any close (what a crash does) and opens it again.
    pub fn reopen(&mut self) -> crate::Result<&Log> {
        self.log = None;
        let log = Log::open(self.directory.path(), self.options())?;
        Ok(self.log.insert(log))
    }

    pub fn log(&self) -> &Log {
        self.log.as_ref().unwrap()
    }
}

/// Reads a shard from `position` to its durable end in pages of `page_records` records.
pub(crate) fn read_to_end(
    shard: &Shard,
    mut position: ShardPosition,
    page_records: usize,
) -> Vec<Record> {
    let mut records = Vec::new();
    loop {
        let ReadBatch {
            records: page,
            next_position,
            millis_behind_latest,
        } = shard.read(position, page_records, 1024 * 1024).unwrap();
        if page.is_empty() {
            assert_eq!(millis_behind_latest, 0);
            return records;
        }
        assert_eq!(
            next_position.next_record_offset,
            page.last().unwrap().sequence_number.record_offset() + 1
        );
        records.extend(page);
        position = next_position;
    }
}

/// The last segment file of a shard directory, by name.
pub(crate) fn last_segment_path(log_directory: &Path, stream: &str, shard_index: u32) -> PathBuf {
    let shard_directory = log_directory
        .join("streams")
        .join(stream)
        .join(format!("shard-{shard_index:06}"));
    let mut paths: Vec<PathBuf> = std::fs::read_dir(shard_directory)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "seg"))
        .collect();
    paths.sort();
    paths.pop().unwrap()
}
