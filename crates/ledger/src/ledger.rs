//! Ledgers on disk: the data directory of ledgers (one directory each, with deletion
//! protection, and the migration of format-1 ledger files), opening a ledger with the recovery
//! of its derived state from the journal, and its journal reads: digest, blocks and revisions
//! with proofs, and the full chain verification.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ion_rs::Element;
use redb::{Database, ReadableDatabase};

use crate::cancel::CancelToken;
use crate::clock::Clock;
use crate::commit::{Checkpointer, CommitQueue, JournalSyncer, lock};
use crate::error::LedgerError;
use crate::hash::{self, Hash};
use crate::journal::{self, Strictness};
use sluice_seal::Keyring;

use crate::journal_file::{FramePosition, JournalFile};
use crate::journal_tree;
use crate::model::{self, BlockAddress, Limits, Revision};
use crate::source::ExportLocation;
use crate::state::{AppliedBlock, StateWriter, Tip};
use crate::storage;
use crate::transaction::Transaction;

/// Longest ledger name QLDB accepts, in characters.
pub const LEDGER_NAME_LENGTH_MAX_CHARS: usize = 32;

/// QLDB's default for `DeletionProtection` when CreateLedger does not say.
pub const DELETION_PROTECTION_DEFAULT: bool = true;

/// Name suffix of a ledger's directory inside the data directory (format version 2).
const LEDGER_DIRECTORY_SUFFIX: &str = ".ledger";

/// File name suffix of a format-1 ledger (one redb file), migrated when first opened.
const V1_LEDGER_FILE_SUFFIX: &str = ".ledger.redb";

/// Name suffix of a ledger being built (`<name>.<id>.ledger.partial`) by a create, restore,
/// import or migration; renamed to `<name>.ledger` once whole, removed on failure and when the
/// data directory opens.
const PARTIAL_SUFFIX: &str = ".ledger.partial";

/// The journal file inside a ledger's directory: the blocks, stored once.
pub const JOURNAL_FILE_NAME: &str = "journal";

/// The redb file inside a ledger's directory: the derived state.
pub const STATE_FILE_NAME: &str = "state.redb";

/// Blocks appended and applied per write when a restore, import or migration loads a journal,
/// so the frames buffered in memory stay bounded (at most this many blocks).
pub(crate) const LOAD_BLOCKS_PER_BATCH: usize = 1_000;

/// Sets one `meta` entry of the ledger files in `directory` (durably), before they are installed.
fn set_meta(directory: &Path, key: &str, value: &str) -> Result<(), LedgerError> {
    let database = Database::open(directory.join(STATE_FILE_NAME))?;
    let mut write = database.begin_write()?;
    write.set_durability(redb::Durability::Immediate)?;
    {
        let mut meta = write.open_table(storage::META)?;
        meta.insert(key, value.as_bytes())?;
    }
    write.commit()?;
    Ok(())
}

/// Removes a partial ledger (a directory, or a file left by an older build); a failure is
/// logged, and the next open of the data directory removes it.
fn remove_partial(path: &Path) {
    let removed = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match removed {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            tracing::error!(%error, path = %path.display(), "removing a partial ledger failed")
        }
    }
}

fn sync_directory(path: &Path) -> Result<(), LedgerError> {
    std::fs::File::open(path)?.sync_all()?;
    Ok(())
}

/// Checks a ledger name: 1 to 32 ASCII letters, digits and hyphens, as QLDB requires.
pub fn validate_ledger_name(name: &str) -> Result<(), LedgerError> {
    let valid = !name.is_empty()
        && name.len() <= LEDGER_NAME_LENGTH_MAX_CHARS
        && name
            .chars()
            .all(|character| character.is_ascii_alphanumeric() || character == '-');
    if valid {
        Ok(())
    } else {
        Err(LedgerError::BadRequest(format!(
            "invalid ledger name {name:?}: 1 to {LEDGER_NAME_LENGTH_MAX_CHARS} letters, digits or hyphens"
        )))
    }
}

/// A ledger's description, as the control plane reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerDescription {
    /// The ledger's name.
    pub name: String,
    /// Whether deleting it is refused.
    pub deletion_protection: bool,
    /// Whether statements need PartiQL permissions on their tables.
    pub permissions_mode: PermissionsMode,
    /// The journal strand id.
    pub strand_id: String,
}

/// QLDB's permissions modes: under `Standard` a statement needs the PartiQL actions
/// (`qldb:PartiQLSelect`, …) on every table it touches; under `AllowAll` sending commands to
/// the ledger is enough. Kept in the ledger's state (`meta` key `permissions_mode`); a ledger
/// without one (created before Sluice kept it) is `Standard`, the stricter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PermissionsMode {
    AllowAll,
    Standard,
}

impl PermissionsMode {
    /// QLDB's name: `ALLOW_ALL` or `STANDARD`.
    pub fn name(self) -> &'static str {
        match self {
            PermissionsMode::AllowAll => "ALLOW_ALL",
            PermissionsMode::Standard => "STANDARD",
        }
    }

    /// The mode QLDB names `name`.
    pub fn parse(name: &str) -> Option<PermissionsMode> {
        match name {
            "ALLOW_ALL" => Some(PermissionsMode::AllowAll),
            "STANDARD" => Some(PermissionsMode::Standard),
            _ => None,
        }
    }

    fn stored(text: Option<&str>) -> PermissionsMode {
        text.and_then(PermissionsMode::parse)
            .unwrap_or(PermissionsMode::Standard)
    }
}

/// The meta key of a ledger's permissions mode.
const PERMISSIONS_MODE_KEY: &str = "permissions_mode";

/// The data directory holding every ledger, and the ledgers currently open.
#[derive(Debug)]
pub struct Ledgers {
    data_dir: PathBuf,
    clock: Arc<dyn Clock>,
    limits: Limits,
    open_ledgers: Mutex<HashMap<String, Arc<Ledger>>>,
    /// With a keyring, ledgers created from now on have encrypted journals.
    keyring: Option<Arc<Keyring>>,
}

impl Ledgers {
    /// Uses (and creates if needed) `data_dir` for ledgers. Partial ledgers left by a create,
    /// restore, import or migration that a crash interrupted are removed, and so is a format-1
    /// file whose migrated directory is already in place.
    pub fn open_dir(
        data_dir: impl AsRef<Path>,
        clock: Arc<dyn Clock>,
        limits: Limits,
    ) -> Result<Self, LedgerError> {
        let data_dir = data_dir.as_ref();
        std::fs::create_dir_all(data_dir)?;
        for entry in std::fs::read_dir(data_dir)? {
            let entry = entry?;
            let file_name = entry.file_name().to_string_lossy().into_owned();
            if file_name.ends_with(PARTIAL_SUFFIX) {
                tracing::warn!(path = %entry.path().display(), "removing a ledger whose creation, restore, import or migration did not finish");
                remove_partial(&entry.path());
            } else if let Some(name) = file_name.strip_suffix(V1_LEDGER_FILE_SUFFIX)
                && data_dir
                    .join(format!("{name}{LEDGER_DIRECTORY_SUFFIX}"))
                    .is_dir()
            {
                tracing::warn!(
                    ledger = name,
                    "removing a format-1 ledger file already migrated"
                );
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(Ledgers {
            data_dir: data_dir.to_path_buf(),
            clock,
            limits,
            open_ledgers: Mutex::new(HashMap::new()),
            keyring: None,
        })
    }

    /// These ledgers with a keyring: journals created from now on are encrypted, and
    /// encrypted ones open.
    pub fn with_keyring(mut self, keyring: Option<Arc<Keyring>>) -> Ledgers {
        self.keyring = keyring;
        self
    }

    fn ledger_path(&self, name: &str) -> PathBuf {
        self.data_dir
            .join(format!("{name}{LEDGER_DIRECTORY_SUFFIX}"))
    }

    fn v1_path(&self, name: &str) -> PathBuf {
        self.data_dir.join(format!("{name}{V1_LEDGER_FILE_SUFFIX}"))
    }

    fn partial_path(&self, name: &str) -> PathBuf {
        self.data_dir
            .join(format!("{name}.{}{PARTIAL_SUFFIX}", model::new_id()))
    }

    fn exists_on_disk(&self, name: &str) -> bool {
        self.ledger_path(name).exists() || self.v1_path(name).exists()
    }

    fn open_map(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, HashMap<String, Arc<Ledger>>>, LedgerError> {
        self.open_ledgers
            .lock()
            .map_err(|_| LedgerError::Internal("ledger map lock poisoned".to_owned()))
    }

    /// Renames a whole partial ledger into place (the commit point of creates, restores,
    /// imports and migrations) and opens it.
    fn install(&self, partial: &Path, name: &str) -> Result<Arc<Ledger>, LedgerError> {
        let path = self.ledger_path(name);
        std::fs::rename(partial, &path)?;
        sync_directory(&self.data_dir)?;
        Ok(Arc::new(Ledger::open(
            &path,
            self.clock.clone(),
            self.limits.clone(),
            self.keyring.as_ref(),
        )?))
    }

    /// Creates a new, empty ledger. QLDB turns deletion protection on by default
    /// ([`DELETION_PROTECTION_DEFAULT`]).
    pub fn create_ledger(
        &self,
        name: &str,
        deletion_protection: bool,
    ) -> Result<Arc<Ledger>, LedgerError> {
        self.create_ledger_with_mode(name, deletion_protection, PermissionsMode::Standard)
    }

    /// [`Ledgers::create_ledger`] in a permissions mode (QLDB's CreateLedger names one).
    pub fn create_ledger_with_mode(
        &self,
        name: &str,
        deletion_protection: bool,
        permissions_mode: PermissionsMode,
    ) -> Result<Arc<Ledger>, LedgerError> {
        validate_ledger_name(name)?;
        let mut open_ledgers = self.open_map()?;
        if open_ledgers.contains_key(name) || self.exists_on_disk(name) {
            return Err(LedgerError::AlreadyExists(format!("ledger {name}")));
        }
        let partial = self.partial_path(name);
        let ledger = Ledger::create_files(
            &partial,
            name,
            deletion_protection,
            &model::new_id(),
            self.keyring.as_deref(),
        )
        .and_then(|()| set_meta(&partial, PERMISSIONS_MODE_KEY, permissions_mode.name()))
        .and_then(|()| self.install(&partial, name));
        let ledger = match ledger {
            Ok(ledger) => ledger,
            Err(error) => {
                remove_partial(&partial);
                return Err(error);
            }
        };
        open_ledgers.insert(name.to_owned(), ledger.clone());
        Ok(ledger)
    }

    /// Opens an existing ledger (or returns it if already open). A format-1 ledger file is
    /// migrated to format 2 first (see [`Ledgers::migrate_v1`]).
    pub fn ledger(&self, name: &str) -> Result<Arc<Ledger>, LedgerError> {
        validate_ledger_name(name)?;
        let mut open_ledgers = self.open_map()?;
        if let Some(ledger) = open_ledgers.get(name) {
            return Ok(ledger.clone());
        }
        let path = self.ledger_path(name);
        let ledger = if path.is_dir() {
            Arc::new(Ledger::open(
                &path,
                self.clock.clone(),
                self.limits.clone(),
                self.keyring.as_ref(),
            )?)
        } else if self.v1_path(name).is_file() {
            self.migrate_v1(name)?
        } else {
            return Err(LedgerError::NotFound(format!("ledger {name}")));
        };
        open_ledgers.insert(name.to_owned(), ledger.clone());
        Ok(ledger)
    }

    /// Migrates the format-1 ledger file `<name>.ledger.redb` to a format-2 ledger directory:
    /// its blocks are read in order, re-verified and appended to a new journal, which rebuilds
    /// the derived state; the strand, deletion protection and so the digest stay the same. The
    /// new ledger is built as a partial directory and renamed into place; only then is the old
    /// file removed. It needs room for both copies while it runs.
    fn migrate_v1(&self, name: &str) -> Result<Arc<Ledger>, LedgerError> {
        let v1_path = self.v1_path(name);
        tracing::info!(
            ledger = name,
            "migrating a format-1 ledger to format {}",
            storage::FORMAT_VERSION
        );
        let partial = self.partial_path(name);
        let migrated = crate::migrate::migrate_v1_file(
            &v1_path,
            &partial,
            self.clock.clone(),
            self.limits.clone(),
            self.keyring.as_ref(),
        )
        .and_then(|blocks| self.install(&partial, name).map(|ledger| (ledger, blocks)));
        let (ledger, blocks) = match migrated {
            Ok(migrated) => migrated,
            Err(error) => {
                remove_partial(&partial);
                return Err(error);
            }
        };
        std::fs::remove_file(&v1_path)?;
        sync_directory(&self.data_dir)?;
        tracing::info!(ledger = name, blocks, "migration finished");
        Ok(ledger)
    }

    /// Forgets an open ledger; its files close once the last handle to it is dropped.
    pub fn close_ledger(&self, name: &str) -> Result<(), LedgerError> {
        self.open_map()?.remove(name);
        Ok(())
    }

    /// Restores a ledger named `name` from a journal export of this engine (Ion text or binary),
    /// re-verifying every hash; the restored digest equals the source's. See
    /// [`Ledgers::import_qldb_export`] for what a failure or a cancellation leaves behind.
    pub fn restore_ledger(
        &self,
        name: &str,
        location: &ExportLocation,
        cancel: &CancelToken,
    ) -> Result<Arc<Ledger>, LedgerError> {
        self.load_export(name, location, Strictness::Qldb, cancel, "restore")
    }

    /// Imports an Amazon QLDB journal export (its blocks from sequence number 0), verifying its
    /// chain; the ledger then keeps appending blocks after the imported tip. The ledger is built
    /// in a partial directory that becomes the ledger only once whole and verified, so a
    /// failure, a cancellation or a crash leaves no ledger behind (a crash's partial directory
    /// is removed when the data directory is next opened).
    pub fn import_qldb_export(
        &self,
        name: &str,
        location: &ExportLocation,
        cancel: &CancelToken,
    ) -> Result<Arc<Ledger>, LedgerError> {
        self.load_export(name, location, Strictness::Qldb, cancel, "import")
    }

    fn load_export(
        &self,
        name: &str,
        location: &ExportLocation,
        strictness: Strictness,
        cancel: &CancelToken,
        operation: &str,
    ) -> Result<Arc<Ledger>, LedgerError> {
        validate_ledger_name(name)?;
        // A taken name is refused before the export is read.
        self.check_name_free(name)?;
        tracing::info!(ledger = name, from = location.name(), "{operation} started");
        let cancelled = |error: LedgerError| match error {
            LedgerError::Cancelled(_) => LedgerError::Cancelled(format!(
                "{operation} of ledger {name} was cancelled because the server is stopping; \
                 no ledger was created"
            )),
            other => other,
        };
        let blocks = crate::export::read_export(location, cancel).map_err(cancelled)?;
        let strand_id =
            crate::export::verify_export_chain(&blocks, strictness, cancel).map_err(cancelled)?;
        let partial = self.partial_path(name);
        let keyring = self.keyring.as_ref();
        let built = Ledger::create_files(&partial, name, true, &strand_id, keyring.map(|k| &**k))
            .and_then(|()| {
                let ledger =
                    Ledger::open(&partial, self.clock.clone(), self.limits.clone(), keyring)?;
                crate::export::apply_blocks(&ledger, &blocks, cancel)
            });
        if let Err(error) = built {
            remove_partial(&partial);
            return Err(cancelled(error));
        }
        let mut open_ledgers = self.open_map()?;
        if open_ledgers.contains_key(name) || self.exists_on_disk(name) {
            remove_partial(&partial);
            return Err(LedgerError::AlreadyExists(format!("ledger {name}")));
        }
        // The rename is the commit point: before it there is no ledger, after it a whole one.
        let ledger = match self.install(&partial, name) {
            Ok(ledger) => ledger,
            Err(error) => {
                remove_partial(&partial);
                return Err(error);
            }
        };
        open_ledgers.insert(name.to_owned(), ledger.clone());
        tracing::info!(ledger = name, "{operation} finished");
        Ok(ledger)
    }

    fn check_name_free(&self, name: &str) -> Result<(), LedgerError> {
        let open_ledgers = self.open_map()?;
        if open_ledgers.contains_key(name) || self.exists_on_disk(name) {
            return Err(LedgerError::AlreadyExists(format!("ledger {name}")));
        }
        Ok(())
    }

    /// Names of every ledger in the data directory (format-1 files not yet migrated included),
    /// sorted.
    pub fn list_ledgers(&self) -> Result<Vec<String>, LedgerError> {
        let mut names = std::collections::BTreeSet::new();
        for entry in std::fs::read_dir(&self.data_dir)? {
            let entry = entry?;
            let file_name = entry.file_name().to_string_lossy().into_owned();
            if let Some(name) = file_name.strip_suffix(LEDGER_DIRECTORY_SUFFIX) {
                if entry.file_type()?.is_dir() {
                    names.insert(name.to_owned());
                }
            } else if let Some(name) = file_name.strip_suffix(V1_LEDGER_FILE_SUFFIX) {
                names.insert(name.to_owned());
            }
        }
        Ok(names.into_iter().collect())
    }

    /// Describes a ledger.
    pub fn describe_ledger(&self, name: &str) -> Result<LedgerDescription, LedgerError> {
        self.ledger(name)?.describe()
    }

    /// Changes a ledger's permissions mode (QLDB's UpdateLedgerPermissionsMode).
    pub fn update_permissions_mode(
        &self,
        name: &str,
        permissions_mode: PermissionsMode,
    ) -> Result<LedgerDescription, LedgerError> {
        let ledger = self.ledger(name)?;
        ledger.set_permissions_mode(permissions_mode)?;
        ledger.describe()
    }

    /// Turns deletion protection on or off.
    pub fn update_ledger(
        &self,
        name: &str,
        deletion_protection: bool,
    ) -> Result<LedgerDescription, LedgerError> {
        let ledger = self.ledger(name)?;
        ledger.set_deletion_protection(deletion_protection)?;
        ledger.describe()
    }

    /// Deletes a ledger and its files; refused while deletion protection is on.
    pub fn delete_ledger(&self, name: &str) -> Result<(), LedgerError> {
        let ledger = self.ledger(name)?;
        if ledger.describe()?.deletion_protection {
            return Err(LedgerError::PreconditionFailed(format!(
                "ledger {name} has deletion protection on; turn it off before deleting"
            )));
        }
        let mut open_ledgers = self.open_map()?;
        open_ledgers.remove(name);
        ledger.mark_deleted();
        drop(ledger);
        std::fs::remove_dir_all(self.ledger_path(name))?;
        sync_directory(&self.data_dir)?;
        Ok(())
    }
}

/// A digest: the Merkle root of every block hash up to the tip, and that tip's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerDigest {
    /// The digest.
    pub digest: Hash,
    /// The last block covered.
    pub digest_tip_address: BlockAddress,
}

/// A block with, when a digest tip was given, its proof.
#[derive(Debug, Clone)]
pub struct BlockWithProof {
    /// The whole block.
    pub block: Element,
    /// The block hash.
    pub block_hash: Hash,
    /// Hashes to fold with the block hash to get the digest at the tip; `None` without a tip.
    pub proof: Option<Vec<Hash>>,
}

/// A revision with, when a digest tip was given, its proof.
#[derive(Debug, Clone)]
pub struct RevisionWithProof {
    /// The revision, committed view.
    pub revision: Revision,
    /// Hashes to fold with the revision hash to get the digest at the tip.
    pub proof: Option<Vec<Hash>>,
}

/// What [`Ledger::verify_chain`] checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// Number of blocks verified.
    pub blocks_verified: u64,
    /// The digest at the tip, if there is any block.
    pub digest: Option<LedgerDigest>,
}

/// One ledger: a directory holding its journal (the blocks, each stored once, and the commit
/// point) and its derived state in redb (catalog, documents, revision references, indexes,
/// block positions, the journal Merkle tree), rebuilt from the journal's tail after a crash.
#[derive(Debug)]
pub struct Ledger {
    name: String,
    strand_id: String,
    /// With a keyring, what the ledger writes into the s3 store (exports) is encrypted.
    keyring: Option<Arc<Keyring>>,
    /// Its permissions mode is `Standard` (read from the state at open).
    standard_permissions: std::sync::atomic::AtomicBool,
    pub(crate) database: Arc<Database>,
    pub(crate) journal: JournalFile,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) limits: Limits,
    /// Set when a commit or checkpoint failed in storage (a failed fsync may have left the files
    /// in an unknown state): every later transaction is refused until the ledger is reopened.
    pub(crate) poisoned: Arc<AtomicBool>,
    /// The end of the journal as the derived state knows it; held by the commit leader (and by
    /// loads) for the whole of a group, so it is also the writers' lock. Every durable redb
    /// commit (checkpoints, settings) holds it too, so none can make durable a derived state
    /// whose blocks the leader has not yet fsynced.
    pub(crate) tip: Arc<Mutex<Tip>>,
    /// The derived state readers see: a snapshot taken after the latest redb commit whose blocks
    /// are durable in the journal. The commit leader commits redb while the journal syncs and
    /// publishes the new snapshot only once the fsync succeeded.
    published: Mutex<Arc<redb::ReadTransaction>>,
    /// Set when the journal's fsync failed after the group's derived state was committed to redb
    /// (without fsync): that state must never become durable (see `Drop`).
    pub(crate) state_ahead_of_journal: AtomicBool,
    /// Set by [`Ledgers::delete_ledger`] under the tip lock: sessions still holding the ledger
    /// begin and commit nothing more, so no commit is acknowledged into deleted files.
    pub(crate) deleted: AtomicBool,
    /// Set by [`Ledger::fail_next_journal_sync`] (fault-injection tests only).
    pub(crate) fail_next_sync: AtomicBool,
    pub(crate) commits: CommitQueue,
    /// Fsyncs the journal for the commit leader while it applies the group's last block.
    pub(crate) syncer: JournalSyncer,
    pub(crate) checkpointer: Checkpointer,
    /// The catalog at the latest catalog version read, decoded once and shared by every
    /// transaction that begins at that version.
    catalog_cache: Mutex<Option<(u64, Arc<Vec<crate::model::TableInfo>>)>>,
}

impl Drop for Ledger {
    /// After a failed journal fsync whose group was already committed to redb, the redb handle
    /// is leaked: closing it would make that commit durable, ahead of what the journal may hold.
    /// Left open, the file reverts to the last checkpoint when the process next opens the ledger
    /// (which a restart does), and recovery replays whatever the journal really kept.
    ///
    /// The last handle of a deleted ledger may be dropped anywhere, an async worker ending a
    /// session included, and nothing of it needs to reach the disk any more: it makes no last
    /// checkpoint (none since its deletion), and the threads' ends and redb's closing flush run
    /// on a thread of their own.
    fn drop(&mut self) {
        if self.state_ahead_of_journal.load(Ordering::SeqCst) {
            tracing::error!(ledger = %self.name, "the journal's fsync failed after its derived state was written: leaving the state file open until the process exits; restart the node to reopen this ledger");
            std::mem::forget(self.database.clone());
        } else if self.deleted.load(Ordering::SeqCst) {
            let threads = [
                self.checkpointer.stop_detached(),
                self.syncer.stop_detached(),
            ];
            let database = self.database.clone();
            // Without a thread to spare, the closure is dropped here: the threads, told to
            // stop, end on their own and redb closes on this thread, as any other ledger does.
            let _ = std::thread::Builder::new()
                .name(format!("ledger-close-{}", self.name))
                .spawn(move || {
                    for thread in threads.into_iter().flatten() {
                        let _ = thread.join();
                    }
                    drop(database);
                });
        }
    }
}

impl Ledger {
    /// Writes the files of a new, empty ledger into the directory `directory` (which must not
    /// exist): the journal with its header, and the derived state with its settings, durably.
    pub(crate) fn create_files(
        directory: &Path,
        name: &str,
        deletion_protection: bool,
        strand_id: &str,
        keyring: Option<&Keyring>,
    ) -> Result<(), LedgerError> {
        std::fs::create_dir(directory)?;
        let journal = JournalFile::create(&directory.join(JOURNAL_FILE_NAME), strand_id, keyring)?;
        let database = Database::create(directory.join(STATE_FILE_NAME))?;
        let mut write = database.begin_write()?;
        write.set_durability(redb::Durability::Immediate)?;
        storage::create_all_tables(&write)?;
        {
            let mut meta = write.open_table(storage::META)?;
            meta.insert(
                storage::FORMAT_VERSION_KEY,
                storage::FORMAT_VERSION.to_string().as_bytes(),
            )?;
            meta.insert("ledger_name", name.as_bytes())?;
            meta.insert("strand_id", strand_id.as_bytes())?;
            meta.insert(
                "deletion_protection",
                deletion_protection.to_string().as_bytes(),
            )?;
            meta.insert(storage::CATALOG_VERSION_KEY, b"0".as_slice())?;
            meta.insert(storage::APPLIED_BLOCK_COUNT_KEY, b"0".as_slice())?;
            meta.insert(
                storage::JOURNAL_END_KEY,
                journal.header_bytes().to_string().as_bytes(),
            )?;
        }
        write.commit()?;
        drop(database);
        sync_directory(directory)?;
        Ok(())
    }

    /// Opens the ledger in `directory`: checks the format version, then brings the derived
    /// state up to the journal's end (replaying blocks written after the last checkpoint and
    /// cutting a torn tail, see [`Ledger::recover`]).
    /// An encrypted journal needs `keyring`; with one, the ledger's exports are encrypted too.
    pub fn open(
        directory: &Path,
        clock: Arc<dyn Clock>,
        limits: Limits,
        keyring: Option<&Arc<Keyring>>,
    ) -> Result<Self, LedgerError> {
        let database = Database::open(directory.join(STATE_FILE_NAME))?;
        let (name, strand_id, tip, permissions_mode) = {
            let read = database.begin_read()?;
            let meta = read.open_table(storage::META)?;
            let format_version = storage::meta_u64(&meta, storage::FORMAT_VERSION_KEY)?;
            if format_version != storage::FORMAT_VERSION {
                return Err(LedgerError::Storage(format!(
                    "ledger format version {format_version} is not supported (this build reads {})",
                    storage::FORMAT_VERSION
                )));
            }
            let name = storage::meta_text(&meta, "ledger_name")?
                .ok_or_else(|| LedgerError::Storage("ledger without a name".to_owned()))?;
            let strand_id = storage::meta_text(&meta, "strand_id")?
                .ok_or_else(|| LedgerError::Storage("ledger without a strand id".to_owned()))?;
            let permissions_mode = PermissionsMode::stored(
                storage::meta_text(&meta, PERMISSIONS_MODE_KEY)?.as_deref(),
            );
            let tree = read.open_table(journal_tree::JOURNAL_TREE)?;
            (name, strand_id, Tip::read(&meta, &tree)?, permissions_mode)
        };
        let journal = JournalFile::open(&directory.join(JOURNAL_FILE_NAME), keyring.map(|k| &**k))?;
        if journal.strand_id() != strand_id {
            return Err(LedgerError::Storage(format!(
                "the journal of ledger {name} belongs to strand {}, its state to strand {strand_id}",
                journal.strand_id()
            )));
        }
        let tip = recover(&database, &journal, &strand_id, tip)?;
        let published = Mutex::new(Arc::new(database.begin_read()?));
        let database = Arc::new(database);
        let poisoned = Arc::new(AtomicBool::new(false));
        let tip = Arc::new(Mutex::new(tip));
        let checkpointer =
            Checkpointer::start(&name, database.clone(), poisoned.clone(), tip.clone())?;
        let syncer = JournalSyncer::start_thread(&name, journal.sync_handle()?, journal.path())?;
        Ok(Ledger {
            keyring: keyring.cloned(),
            standard_permissions: std::sync::atomic::AtomicBool::new(
                permissions_mode == PermissionsMode::Standard,
            ),
            name,
            strand_id,
            database,
            journal,
            clock,
            limits,
            poisoned,
            tip,
            published,
            state_ahead_of_journal: AtomicBool::new(false),
            deleted: AtomicBool::new(false),
            fail_next_sync: AtomicBool::new(false),
            commits: CommitQueue::default(),
            syncer,
            checkpointer,
            catalog_cache: Mutex::new(None),
        })
    }

    /// Appends blocks that follow the tip (a restore, an import, a migration), verifying each
    /// just before writing it, in batches of [`LOAD_BLOCKS_PER_BATCH`], then checkpoints. A
    /// failure or cancellation cuts the journal back and drops the batch's state, so the ledger
    /// keeps exactly the batches loaded before.
    pub(crate) fn append_blocks(
        &self,
        blocks: &[Element],
        cancel: &CancelToken,
    ) -> Result<(), LedgerError> {
        for batch in blocks.chunks(LOAD_BLOCKS_PER_BATCH) {
            self.append_batch(batch, cancel)?;
        }
        self.checkpoint()
    }

    fn append_batch(&self, blocks: &[Element], cancel: &CancelToken) -> Result<(), LedgerError> {
        if self.is_poisoned() {
            return Err(self.poisoned_error());
        }
        let mut tip = self
            .tip
            .lock()
            .map_err(|_| LedgerError::Internal("tip lock poisoned".to_owned()))?;
        let journal_start = tip.journal_end;
        let result = (|| {
            let mut write = self.database.begin_write()?;
            write.set_durability(redb::Durability::None)?;
            let mut state = StateWriter::load(&write, &self.journal, tip.clone())?;
            let mut frames = Vec::new();
            for block in blocks {
                cancel.check()?;
                let verified = journal::verify_block(
                    block,
                    state.tip().last_block_hash.as_ref(),
                    Strictness::Qldb,
                )?;
                let sequence_no = state.tip().block_count;
                if verified.address != self.address(sequence_no) {
                    return Err(LedgerError::VerificationFailed(format!(
                        "block {} of strand {} cannot follow block {} of strand {}",
                        verified.address.sequence_no,
                        verified.address.strand_id,
                        sequence_no.wrapping_sub(1),
                        self.strand_id
                    )));
                }
                let offset = state.tip().journal_end;
                let frame_start = frames.len();
                let length = self.journal.encode_frame(
                    &mut frames,
                    sequence_no,
                    &model::encode_binary(block)?,
                )?;
                let position = FramePosition { offset, length };
                debug_assert_eq!(frames.len() - frame_start, length as usize);
                state.apply(AppliedBlock::from_block(
                    block,
                    verified.block_hash,
                    position,
                )?)?;
            }
            cancel.check()?;
            let new_tip = state.finish()?;
            self.journal.write_at(&frames, journal_start)?;
            self.journal.sync()?;
            write.commit()?;
            Ok((new_tip, self.database.begin_read()?))
        })();
        match result {
            Ok((new_tip, read)) => {
                *tip = new_tip;
                self.publish(read);
                Ok(())
            }
            Err(error) => {
                if let Err(truncation) = self.journal.truncate(journal_start) {
                    self.poison();
                    tracing::error!(ledger = %self.name, %truncation, "cutting back a failed load failed; ledger poisoned");
                }
                Err(error)
            }
        }
    }

    /// The catalog version and catalog of a snapshot, decoded only when the version is new.
    pub(crate) fn catalog_of(
        &self,
        snapshot: &redb::ReadTransaction,
    ) -> Result<(u64, Arc<Vec<crate::model::TableInfo>>), LedgerError> {
        let version = {
            let meta = snapshot.open_table(storage::META)?;
            storage::meta_u64(&meta, storage::CATALOG_VERSION_KEY)?
        };
        let mut cache = self
            .catalog_cache
            .lock()
            .map_err(|_| LedgerError::Internal("catalog cache lock poisoned".to_owned()))?;
        if let Some((cached_version, catalog)) = cache.as_ref()
            && *cached_version == version
        {
            return Ok((version, catalog.clone()));
        }
        let tables = snapshot.open_table(storage::TABLES)?;
        let catalog = Arc::new(storage::read_tables(&tables)?);
        // Versions only grow: an older snapshot does not evict the newer catalog.
        if cache
            .as_ref()
            .is_none_or(|(cached_version, _)| *cached_version < version)
        {
            *cache = Some((version, catalog.clone()));
        }
        Ok((version, catalog))
    }

    /// The catalog [`Self::catalog_of`] decoded last, with its version.
    pub(crate) fn cached_catalog(&self) -> Option<(u64, Arc<Vec<crate::model::TableInfo>>)> {
        crate::commit::lock(&self.catalog_cache).clone()
    }

    /// The ledger's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The journal's only strand.
    /// `bytes` as an object of the s3 store: encrypted with a keyring, else as they are.
    pub(crate) fn object_bytes(&self, bytes: &[u8]) -> Result<Vec<u8>, LedgerError> {
        match &self.keyring {
            None => Ok(bytes.to_vec()),
            Some(keyring) => keyring
                .seal_file(sluice_seal::LOCAL_OBJECT, bytes)
                .map_err(|error| {
                    LedgerError::Storage(format!("sealing an export object: {error}"))
                }),
        }
    }

    /// The key an index entry for `value` is stored under (see [`JournalFile::index_key`]).
    pub(crate) fn index_key(&self, value: &Element) -> Option<String> {
        self.journal.index_key(value)
    }

    /// Appends block `sequence_no`'s frame to `frames` as the journal stores it (sealed in an
    /// encrypted one); returns its length.
    pub(crate) fn encode_frame(
        &self,
        frames: &mut Vec<u8>,
        sequence_no: u64,
        block_bytes: &[u8],
    ) -> Result<u32, LedgerError> {
        self.journal.encode_frame(frames, sequence_no, block_bytes)
    }

    pub fn strand_id(&self) -> &str {
        &self.strand_id
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The published snapshot of the derived state: everything in it is durable in the journal.
    pub(crate) fn snapshot(&self) -> Arc<redb::ReadTransaction> {
        lock(&self.published).clone()
    }

    /// Makes `read` (taken after a redb commit whose blocks are durable) what readers see.
    pub(crate) fn publish(&self, read: redb::ReadTransaction) {
        *lock(&self.published) = Arc::new(read);
    }

    /// Name, deletion protection and strand id.
    pub fn describe(&self) -> Result<LedgerDescription, LedgerError> {
        let read = self.snapshot();
        let meta = read.open_table(storage::META)?;
        Ok(LedgerDescription {
            name: self.name.clone(),
            deletion_protection: storage::meta_text(&meta, "deletion_protection")?.as_deref()
                != Some("false"),
            permissions_mode: self.permissions_mode(),
            strand_id: self.strand_id.clone(),
        })
    }

    /// Whether statements need PartiQL permissions on their tables.
    pub fn permissions_mode(&self) -> PermissionsMode {
        if self.standard_permissions.load(Ordering::Acquire) {
            PermissionsMode::Standard
        } else {
            PermissionsMode::AllowAll
        }
    }

    /// Changes the permissions mode (durably, then in memory).
    pub fn set_permissions_mode(&self, mode: PermissionsMode) -> Result<(), LedgerError> {
        self.write_setting(PERMISSIONS_MODE_KEY, mode.name())?;
        self.standard_permissions
            .store(mode == PermissionsMode::Standard, Ordering::Release);
        Ok(())
    }

    /// Turns deletion protection on or off (durably).
    pub fn set_deletion_protection(&self, deletion_protection: bool) -> Result<(), LedgerError> {
        self.write_setting("deletion_protection", &deletion_protection.to_string())
    }

    /// Sets one `meta` entry with a durable redb commit, under the writers' (tip) lock, and
    /// publishes it. Refused while redb holds a group whose journal fsync failed: the durable
    /// commit would make that state durable too.
    fn write_setting(&self, key: &str, value: &str) -> Result<(), LedgerError> {
        let _writers = lock(&self.tip);
        if self.state_ahead_of_journal.load(Ordering::SeqCst) {
            return Err(self.poisoned_error());
        }
        let mut write = self.database.begin_write()?;
        write.set_durability(redb::Durability::Immediate)?;
        {
            let mut meta = write.open_table(storage::META)?;
            meta.insert(key, value.as_bytes())?;
        }
        write.commit()?;
        self.publish(self.database.begin_read()?);
        Ok(())
    }

    /// Starts a transaction on a snapshot of the committed state.
    pub fn begin(self: &Arc<Self>) -> Result<Transaction, LedgerError> {
        Transaction::begin(self.clone())
    }

    /// Runs one statement in its own transaction and commits it.
    pub fn execute(
        self: &Arc<Self>,
        statement_text: &str,
        parameters: &[Element],
    ) -> Result<Vec<Element>, LedgerError> {
        let mut transaction = self.begin()?;
        let values = transaction.execute(statement_text, parameters)?;
        transaction.commit()?;
        Ok(values)
    }

    /// Runs `body` in a transaction and commits it, retrying from scratch on OCC conflicts up
    /// to `attempts_max` attempts in all, as QLDB drivers do.
    pub fn run_in_transaction<T>(
        self: &Arc<Self>,
        attempts_max: usize,
        mut body: impl FnMut(&mut Transaction) -> Result<T, LedgerError>,
    ) -> Result<(T, crate::transaction::CommitResult), LedgerError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut transaction = self.begin()?;
            let outcome =
                body(&mut transaction).and_then(|value| Ok((value, transaction.commit()?)));
            match outcome {
                Err(LedgerError::OccConflict(_)) if attempt < attempts_max => continue,
                other => return other,
            }
        }
    }

    /// The digest at the current tip; `None` while the journal is empty.
    pub fn digest(&self) -> Result<Option<LedgerDigest>, LedgerError> {
        let read = self.snapshot();
        let block_count = applied_block_count(&read)?;
        let Some(tip) = block_count.checked_sub(1) else {
            return Ok(None);
        };
        let tree = read.open_table(journal_tree::JOURNAL_TREE)?;
        let digest = journal_tree::root(&tree, block_count)?
            .ok_or_else(|| LedgerError::Internal("no block hashes".to_owned()))?;
        Ok(Some(LedgerDigest {
            digest,
            digest_tip_address: self.address(tip),
        }))
    }

    fn address(&self, sequence_no: u64) -> BlockAddress {
        BlockAddress {
            strand_id: self.strand_id.clone(),
            sequence_no,
        }
    }

    fn check_address(&self, address: &BlockAddress) -> Result<(), LedgerError> {
        if address.strand_id != self.strand_id {
            return Err(LedgerError::BadRequest(format!(
                "strand {} is not this ledger's strand",
                address.strand_id
            )));
        }
        Ok(())
    }

    /// The proof of block `sequence_no` against the digest at `tip`: its path in the Merkle tree
    /// of block hashes `0..=tip`.
    fn block_proof(
        &self,
        read: &redb::ReadTransaction,
        sequence_no: u64,
        digest_tip_address: &BlockAddress,
    ) -> Result<Vec<Hash>, LedgerError> {
        self.check_address(digest_tip_address)?;
        if digest_tip_address.sequence_no < sequence_no {
            return Err(LedgerError::BadRequest(
                "the digest tip comes before the requested block".to_owned(),
            ));
        }
        let tip = applied_block_count(read)?.checked_sub(1);
        if tip.is_none_or(|tip| tip < digest_tip_address.sequence_no) {
            return Err(LedgerError::NotFound(format!(
                "digest tip {}",
                digest_tip_address.sequence_no
            )));
        }
        let tree = read.open_table(journal_tree::JOURNAL_TREE)?;
        journal_tree::proof(&tree, sequence_no, digest_tip_address.sequence_no + 1)
    }

    /// GetBlock: the block at `address`, with a proof when a digest tip is given.
    pub fn block(
        &self,
        address: &BlockAddress,
        digest_tip_address: Option<&BlockAddress>,
    ) -> Result<BlockWithProof, LedgerError> {
        self.check_address(address)?;
        let read = self.snapshot();
        let (block, verified) =
            self.read_verified_block(&read, address.sequence_no, Strictness::Qldb)?;
        let proof = match digest_tip_address {
            None => None,
            Some(tip) => Some(self.block_proof(&read, address.sequence_no, tip)?),
        };
        Ok(BlockWithProof {
            block,
            block_hash: verified.block_hash,
            proof,
        })
    }

    /// Reads a block and re-checks its own hashes just after reading (`strictness`), and that
    /// its hash is the journal tree's leaf, which digests and proofs are made of. Its link to
    /// the previous block is checked by `verify_chain`, so the stored `previousBlockHash` is
    /// taken here.
    fn read_verified_block(
        &self,
        read: &redb::ReadTransaction,
        sequence_no: u64,
        strictness: Strictness,
    ) -> Result<(Element, journal::VerifiedBlock), LedgerError> {
        let block = self.read_block(read, sequence_no)?;
        let stored_previous = model::expect_struct(&block, "block")?
            .get("previousBlockHash")
            .and_then(Element::as_lob)
            .map(hash::hash_from_slice)
            .transpose()?;
        let verified = journal::verify_block(&block, stored_previous.as_ref(), strictness)?;
        if verified.address != self.address(sequence_no) {
            return Err(LedgerError::VerificationFailed(format!(
                "block {sequence_no} carries the address of another block"
            )));
        }
        let tree = read.open_table(journal_tree::JOURNAL_TREE)?;
        if journal_tree::leaf(&tree, sequence_no)? != verified.block_hash {
            return Err(LedgerError::VerificationFailed(format!(
                "block {sequence_no}: the journal tree's leaf disagrees with the block"
            )));
        }
        Ok((block, verified))
    }

    /// GetRevision: the revision of `document_id` committed in the block at `address`, with a
    /// proof when a digest tip is given: revision → revisions root → entries hash → block hash →
    /// digest.
    pub fn revision(
        &self,
        address: &BlockAddress,
        document_id: &str,
        digest_tip_address: Option<&BlockAddress>,
    ) -> Result<RevisionWithProof, LedgerError> {
        self.check_address(address)?;
        let read = self.snapshot();
        // The block's links are checked, and the one revision returned is re-hashed below:
        // re-hashing all of a block's revisions for each would make a proof cost a block's
        // worth of hashing (`verify_chain` re-hashes everything).
        let (block, verified) =
            self.read_verified_block(&read, address.sequence_no, Strictness::Links)?;
        let fields = model::expect_struct(&block, "block")?;
        let revisions = fields
            .get("revisions")
            .and_then(Element::as_sequence)
            .ok_or_else(|| LedgerError::NotFound(format!("document {document_id} in block")))?;
        let mut found = None;
        for (index, element) in revisions.elements().enumerate() {
            let revision_fields = model::expect_struct(element, "revision")?;
            let id = revision_fields
                .get("metadata")
                .and_then(Element::as_struct)
                .and_then(|metadata| metadata.get("id"))
                .and_then(Element::as_text);
            if id == Some(document_id) {
                found = Some((index, Revision::from_element(element)?));
                break;
            }
        }
        let (index, revision) = found
            .ok_or_else(|| LedgerError::NotFound(format!("document {document_id} in block")))?;
        let stored = verified.revision_hashes.get(index).copied();
        let redacted = revisions
            .get(index)
            .and_then(Element::as_struct)
            .is_some_and(|fields| fields.get("dataHash").is_some());
        if !redacted && stored != Some(revision.compute_hash()?) {
            return Err(LedgerError::VerificationFailed(format!(
                "block {}: the revision of document {document_id} does not match its hash",
                address.sequence_no
            )));
        }
        let proof = match digest_tip_address {
            None => None,
            Some(tip) => {
                let mut proof = hash::merkle_proof(&verified.revision_hashes, index)
                    .ok_or_else(|| LedgerError::Internal("revision index".to_owned()))?;
                let root = hash::merkle_root(&verified.revision_hashes)
                    .ok_or_else(|| LedgerError::Internal("no revision root".to_owned()))?;
                let root_index = verified
                    .entries_hash_list
                    .iter()
                    .position(|entry| *entry == root)
                    .ok_or_else(|| LedgerError::Internal("root not in entries".to_owned()))?;
                proof.extend(
                    hash::merkle_proof(&verified.entries_hash_list, root_index)
                        .ok_or_else(|| LedgerError::Internal("entries proof".to_owned()))?,
                );
                if let Some(previous) = verified.previous_block_hash {
                    proof.push(previous);
                }
                proof.extend(self.block_proof(&read, address.sequence_no, tip)?);
                Some(proof)
            }
        };
        Ok(RevisionWithProof { revision, proof })
    }

    /// Re-verifies every block: its revision hashes, entries hash, block hash and link to the
    /// previous block, and that the stored block hash index agrees. Calls `progress(done, total)`.
    pub fn verify_chain(&self, progress: impl FnMut(u64, u64)) -> Result<ChainReport, LedgerError> {
        self.verify_chain_with(progress, Strictness::Qldb, &CancelToken::new())
    }

    /// [`Ledger::verify_chain`] with a chosen strictness for the blocks' entries. It reads the
    /// journal itself, frame by frame, up to the tip of one snapshot of the derived state, and
    /// checks the state's block positions and Merkle tree against what it read.
    pub(crate) fn verify_chain_with(
        &self,
        mut progress: impl FnMut(u64, u64),
        strictness: Strictness,
        cancel: &CancelToken,
    ) -> Result<ChainReport, LedgerError> {
        let read = self.snapshot();
        let total = applied_block_count(&read)?;
        let Some(tip) = total.checked_sub(1) else {
            return Ok(ChainReport {
                blocks_verified: 0,
                digest: None,
            });
        };
        let positions = read.open_table(storage::BLOCK_POSITIONS)?;
        let tree = read.open_table(journal_tree::JOURNAL_TREE)?;
        let mut previous: Option<Hash> = None;
        let mut hashes = Vec::new();
        self.journal
            .scan(self.journal.header_bytes(), 0, |frame| {
                cancel.check()?;
                let sequence_no = frame.sequence_no;
                let block = model::decode_stored(frame.block_bytes)?;
                let verified = journal::verify_block(&block, previous.as_ref(), strictness)?;
                if verified.address != self.address(sequence_no) {
                    return Err(LedgerError::VerificationFailed(format!(
                        "block {sequence_no} carries the address of another block"
                    )));
                }
                if storage::read_block_position(&positions, sequence_no)? != Some(frame.position) {
                    return Err(LedgerError::VerificationFailed(format!(
                        "block {sequence_no}: the state's block position disagrees with the journal"
                    )));
                }
                if journal_tree::leaf(&tree, sequence_no)? != verified.block_hash {
                    return Err(LedgerError::VerificationFailed(format!(
                        "block {sequence_no}: the journal tree's leaf disagrees with the block"
                    )));
                }
                hashes.push(verified.block_hash);
                previous = Some(verified.block_hash);
                progress(sequence_no + 1, total);
                Ok(sequence_no < tip)
            })
            .map_err(|error| match error {
                LedgerError::Storage(message) => LedgerError::VerificationFailed(message),
                other => other,
            })?;
        if hashes.len() as u64 != total {
            return Err(LedgerError::VerificationFailed(format!(
                "the journal holds {} blocks, the state {total}",
                hashes.len()
            )));
        }
        if journal_tree::root(&tree, total)? != hash::merkle_root(&hashes) {
            return Err(LedgerError::VerificationFailed(
                "the stored journal tree disagrees with the block hashes".to_owned(),
            ));
        }
        let digest = hash::merkle_root(&hashes).map(|digest| LedgerDigest {
            digest,
            digest_tip_address: self.address(tip),
        });
        Ok(ChainReport {
            blocks_verified: total,
            digest,
        })
    }

    /// Every block from `first` to the tip, in order (all in memory: for small ranges and tests;
    /// [`Ledger::for_each_block`] streams).
    pub fn blocks_from(&self, first_sequence_no: u64) -> Result<Vec<Element>, LedgerError> {
        let mut result = Vec::new();
        self.for_each_block(first_sequence_no, |block| {
            result.push(block);
            Ok(std::ops::ControlFlow::Continue(()))
        })?;
        Ok(result)
    }

    /// Calls `visit` with each block from `first_sequence_no` to the tip of one snapshot, in
    /// order, one at a time, until it returns `Break`. Reads the journal sequentially.
    pub fn for_each_block(
        &self,
        first_sequence_no: u64,
        mut visit: impl FnMut(Element) -> Result<std::ops::ControlFlow<()>, LedgerError>,
    ) -> Result<(), LedgerError> {
        self.for_each_stored_block(first_sequence_no, |block, _| visit(block))
    }

    /// [`Self::for_each_block`], with each block's size as Ion binary (before compression).
    pub(crate) fn for_each_stored_block(
        &self,
        first_sequence_no: u64,
        mut visit: impl FnMut(Element, usize) -> Result<std::ops::ControlFlow<()>, LedgerError>,
    ) -> Result<(), LedgerError> {
        let read = self.snapshot();
        let Some(tip) = applied_block_count(&read)?.checked_sub(1) else {
            return Ok(());
        };
        if first_sequence_no > tip {
            return Ok(());
        }
        let positions = read.open_table(storage::BLOCK_POSITIONS)?;
        let start =
            storage::read_block_position(&positions, first_sequence_no)?.ok_or_else(|| {
                LedgerError::Storage(format!("block {first_sequence_no} has no position"))
            })?;
        self.journal
            .scan(start.offset, first_sequence_no, |frame| {
                let block = model::decode_stored(frame.block_bytes)?;
                Ok(visit(block, frame.block_bytes.len())?.is_continue() && frame.sequence_no < tip)
            })?;
        Ok(())
    }

    /// Reads block `sequence_no` of a snapshot from the journal (checking its frame).
    pub(crate) fn read_block(
        &self,
        read: &redb::ReadTransaction,
        sequence_no: u64,
    ) -> Result<Element, LedgerError> {
        let positions = read.open_table(storage::BLOCK_POSITIONS)?;
        let position = storage::read_block_position(&positions, sequence_no)?
            .ok_or_else(|| LedgerError::NotFound(format!("block {sequence_no}")))?;
        model::decode_stored(&self.journal.read_block(position, sequence_no)?)
    }

    /// The revisions at `references` (`(block, position in its revisions)`) of a snapshot, in
    /// the same order; each block is read from the journal once however many of its revisions
    /// are wanted.
    pub(crate) fn read_revisions(
        &self,
        read: &redb::ReadTransaction,
        references: &[(u64, u32)],
    ) -> Result<Vec<Revision>, LedgerError> {
        if references.is_empty() {
            return Ok(Vec::new());
        }
        let positions = read.open_table(storage::BLOCK_POSITIONS)?;
        read_revision_elements(&self.journal, &positions, references)?
            .iter()
            .map(Revision::from_element)
            .collect()
    }
}

/// The revision elements at `references` (`(block, position in its revisions)`), in the same
/// order, read from the journal at the positions `positions` gives; one read per block.
pub(crate) fn read_revision_elements(
    journal: &JournalFile,
    positions: &impl redb::ReadableTable<u64, (u64, u32)>,
    references: &[(u64, u32)],
) -> Result<Vec<Element>, LedgerError> {
    let mut by_block: BTreeMap<u64, Vec<(u32, usize)>> = BTreeMap::new();
    for (output_index, (sequence_no, index_in_block)) in references.iter().enumerate() {
        by_block
            .entry(*sequence_no)
            .or_default()
            .push((*index_in_block, output_index));
    }
    let mut elements: Vec<Option<Element>> = vec![None; references.len()];
    for (sequence_no, mut wanted) in by_block {
        wanted.sort_unstable();
        let position = storage::read_block_position(positions, sequence_no)?
            .ok_or_else(|| LedgerError::Storage(format!("block {sequence_no} has no position")))?;
        let bytes = journal.read_block(position, sequence_no)?;
        let indexes: Vec<u32> = wanted.iter().map(|(index, _)| *index).collect();
        let found = journal::revisions_at(&bytes, &indexes)?;
        for ((_, output_index), element) in wanted.into_iter().zip(found) {
            if let Some(slot) = elements.get_mut(output_index) {
                *slot = Some(element);
            }
        }
    }
    elements
        .into_iter()
        .map(|element| {
            element.ok_or_else(|| LedgerError::Internal("a revision was not read".to_owned()))
        })
        .collect()
}

/// How many blocks a snapshot of the derived state includes.
fn applied_block_count(read: &redb::ReadTransaction) -> Result<u64, LedgerError> {
    let meta = read.open_table(storage::META)?;
    storage::meta_u64(&meta, storage::APPLIED_BLOCK_COUNT_KEY)
}

/// Brings the derived state up to the journal's end: reads the frames after the position the
/// durable state records, verifies each block and its link to the one before, applies them
/// (one durable redb commit at the end), and cuts a torn tail (a group append a crash
/// interrupted, never acknowledged). Damage before the end of the file is corruption: the
/// open fails rather than guess.
fn recover(
    database: &Database,
    journal: &JournalFile,
    strand_id: &str,
    tip: Tip,
) -> Result<Tip, LedgerError> {
    let mut write = database.begin_write()?;
    write.set_durability(redb::Durability::Immediate)?;
    write.set_quick_repair(true);
    let journal_start = tip.journal_end;
    if let Some(last) = tip.block_count.checked_sub(1) {
        // The journal's pre-allocated tail reads as zeros where a lost block was, so a file long
        // enough is no proof: the state's last block must read back whole where it points.
        let positions = write.open_table(storage::BLOCK_POSITIONS)?;
        let readable = storage::read_block_position(&positions, last)?
            .filter(|position| position.end() == journal_start)
            .is_some_and(|position| journal.read_block(position, last).is_ok());
        if !readable {
            return Err(LedgerError::Storage(format!(
                "journal {} does not hold block {last} where the ledger's state points: \
                 the state is ahead of its journal",
                journal.path().display()
            )));
        }
    }
    let mut state = StateWriter::load(&write, journal, tip)?;
    let mut replayed = 0u64;
    let end = journal.scan(journal_start, state.tip().block_count, |frame| {
        let block = model::decode_stored(frame.block_bytes)?;
        let verified = journal::verify_block(
            &block,
            state.tip().last_block_hash.as_ref(),
            Strictness::Qldb,
        )?;
        if verified.address.strand_id != strand_id
            || verified.address.sequence_no != frame.sequence_no
        {
            return Err(LedgerError::VerificationFailed(format!(
                "the journal's frame {} holds block {} of strand {}",
                frame.sequence_no, verified.address.sequence_no, verified.address.strand_id
            )));
        }
        state.apply(AppliedBlock::from_block(
            &block,
            verified.block_hash,
            frame.position,
        )?)?;
        replayed += 1;
        Ok(true)
    })?;
    if let Some(reason) = &end.torn_tail {
        tracing::warn!(journal = %journal.path().display(), at = end.valid_end, reason, "cutting the torn tail of an append a crash interrupted");
        journal.truncate(end.valid_end)?;
    }
    if replayed == 0 {
        return Ok(state.tip().clone());
    }
    let tip = state.finish()?;
    write.commit()?;
    tracing::info!(journal = %journal.path().display(), blocks = replayed, "replayed the journal's tail into the ledger's state");
    Ok(tip)
}
