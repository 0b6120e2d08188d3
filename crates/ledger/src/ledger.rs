//! Ledgers on disk: the data directory of ledgers (one redb file each, with deletion
//! protection), opening a ledger, and its journal reads: digest, blocks and revisions with
//! proofs, and the full chain verification.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ion_rs::Element;
use redb::{Database, ReadableDatabase};

use crate::cancel::CancelToken;
use crate::clock::Clock;
use crate::error::LedgerError;
use crate::hash::{self, Hash};
use crate::journal::{self, Strictness};
use crate::journal_tree;
use crate::model::{self, BlockAddress, Limits, Revision};
use crate::source::ExportLocation;
use crate::storage;
use crate::transaction::Transaction;

/// Longest ledger name QLDB accepts, in characters.
pub const LEDGER_NAME_LENGTH_MAX_CHARS: usize = 32;

/// QLDB's default for `DeletionProtection` when CreateLedger does not say.
pub const DELETION_PROTECTION_DEFAULT: bool = true;

/// File name suffix of a ledger's redb file inside the data directory.
const LEDGER_FILE_SUFFIX: &str = ".ledger.redb";

/// File name suffix of a ledger being built by a restore or import (`<name>.<id>.ledger.partial`);
/// renamed to `<name>.ledger.redb` once whole, removed on failure and when the directory opens.
const PARTIAL_FILE_SUFFIX: &str = ".ledger.partial";

/// Removes a partial ledger file; a failure is logged, and the next open removes it.
fn remove_partial(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            tracing::error!(%error, path = %path.display(), "removing a partial ledger failed")
        }
    }
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
    /// The journal strand id.
    pub strand_id: String,
}

/// The data directory holding every ledger, and the ledgers currently open.
#[derive(Debug)]
pub struct Ledgers {
    data_dir: PathBuf,
    clock: Arc<dyn Clock>,
    limits: Limits,
    open_ledgers: Mutex<HashMap<String, Arc<Ledger>>>,
}

impl Ledgers {
    /// Uses (and creates if needed) `data_dir` for ledger files. Partial ledgers left by a
    /// restore or import that a crash interrupted are removed.
    pub fn open_dir(
        data_dir: impl AsRef<Path>,
        clock: Arc<dyn Clock>,
        limits: Limits,
    ) -> Result<Self, LedgerError> {
        std::fs::create_dir_all(data_dir.as_ref())?;
        for entry in std::fs::read_dir(data_dir.as_ref())? {
            let entry = entry?;
            if entry
                .file_name()
                .to_string_lossy()
                .ends_with(PARTIAL_FILE_SUFFIX)
            {
                tracing::warn!(path = %entry.path().display(), "removing a ledger whose restore or import did not finish");
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(Ledgers {
            data_dir: data_dir.as_ref().to_path_buf(),
            clock,
            limits,
            open_ledgers: Mutex::new(HashMap::new()),
        })
    }

    fn ledger_path(&self, name: &str) -> PathBuf {
        self.data_dir.join(format!("{name}{LEDGER_FILE_SUFFIX}"))
    }

    fn open_map(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, HashMap<String, Arc<Ledger>>>, LedgerError> {
        self.open_ledgers
            .lock()
            .map_err(|_| LedgerError::Internal("ledger map lock poisoned".to_owned()))
    }

    /// Creates a new, empty ledger. QLDB turns deletion protection on by default
    /// ([`DELETION_PROTECTION_DEFAULT`]).
    pub fn create_ledger(
        &self,
        name: &str,
        deletion_protection: bool,
    ) -> Result<Arc<Ledger>, LedgerError> {
        validate_ledger_name(name)?;
        let mut open_ledgers = self.open_map()?;
        let path = self.ledger_path(name);
        if open_ledgers.contains_key(name) || path.exists() {
            return Err(LedgerError::AlreadyExists(format!("ledger {name}")));
        }
        let ledger = Arc::new(Ledger::create(
            &path,
            name,
            deletion_protection,
            self.clock.clone(),
            self.limits.clone(),
        )?);
        open_ledgers.insert(name.to_owned(), ledger.clone());
        Ok(ledger)
    }

    /// Opens an existing ledger (or returns it if already open).
    pub fn ledger(&self, name: &str) -> Result<Arc<Ledger>, LedgerError> {
        validate_ledger_name(name)?;
        let mut open_ledgers = self.open_map()?;
        if let Some(ledger) = open_ledgers.get(name) {
            return Ok(ledger.clone());
        }
        let path = self.ledger_path(name);
        if !path.exists() {
            return Err(LedgerError::NotFound(format!("ledger {name}")));
        }
        let ledger = Arc::new(Ledger::open(
            &path,
            self.clock.clone(),
            self.limits.clone(),
        )?);
        open_ledgers.insert(name.to_owned(), ledger.clone());
        Ok(ledger)
    }

    /// Forgets an open ledger; its file closes once the last handle to it is dropped.
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
    /// in a partial file that becomes the ledger only once whole and verified, so a failure,
    /// a cancellation or a crash leaves no ledger behind (a crash's partial file is removed
    /// when the directory is next opened).
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
        let partial = self
            .data_dir
            .join(format!("{name}.{}{PARTIAL_FILE_SUFFIX}", model::new_id()));
        let built = Ledger::create_with_strand(
            &partial,
            name,
            true,
            strand_id,
            self.clock.clone(),
            self.limits.clone(),
        )
        .and_then(|ledger| crate::export::apply_blocks(&ledger, &blocks, cancel));
        if let Err(error) = built {
            remove_partial(&partial);
            return Err(cancelled(error));
        }
        let mut open_ledgers = self.open_map()?;
        let path = self.ledger_path(name);
        if open_ledgers.contains_key(name) || path.exists() {
            remove_partial(&partial);
            return Err(LedgerError::AlreadyExists(format!("ledger {name}")));
        }
        // The rename is the commit point: before it there is no ledger, after it a whole one.
        std::fs::rename(&partial, &path)?;
        std::fs::File::open(&self.data_dir)?.sync_all()?;
        let ledger = Arc::new(Ledger::open(
            &path,
            self.clock.clone(),
            self.limits.clone(),
        )?);
        open_ledgers.insert(name.to_owned(), ledger.clone());
        tracing::info!(ledger = name, "{operation} finished");
        Ok(ledger)
    }

    fn check_name_free(&self, name: &str) -> Result<(), LedgerError> {
        let open_ledgers = self.open_map()?;
        if open_ledgers.contains_key(name) || self.ledger_path(name).exists() {
            return Err(LedgerError::AlreadyExists(format!("ledger {name}")));
        }
        Ok(())
    }

    /// Names of every ledger in the data directory, sorted.
    pub fn list_ledgers(&self) -> Result<Vec<String>, LedgerError> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.data_dir)? {
            let file_name = entry?.file_name();
            if let Some(name) = file_name.to_string_lossy().strip_suffix(LEDGER_FILE_SUFFIX) {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Describes a ledger.
    pub fn describe_ledger(&self, name: &str) -> Result<LedgerDescription, LedgerError> {
        self.ledger(name)?.describe()
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

    /// Deletes a ledger and its file; refused while deletion protection is on.
    pub fn delete_ledger(&self, name: &str) -> Result<(), LedgerError> {
        let ledger = self.ledger(name)?;
        if ledger.describe()?.deletion_protection {
            return Err(LedgerError::PreconditionFailed(format!(
                "ledger {name} has deletion protection on; turn it off before deleting"
            )));
        }
        let mut open_ledgers = self.open_map()?;
        open_ledgers.remove(name);
        drop(ledger);
        std::fs::remove_file(self.ledger_path(name))?;
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

/// One ledger: a redb file holding its catalog, documents, revisions, indexes and journal.
#[derive(Debug)]
pub struct Ledger {
    name: String,
    strand_id: String,
    pub(crate) database: Database,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) limits: Limits,
    /// Set when a commit failed in the storage engine (a failed fsync may have left the file in
    /// an unknown state): every later transaction is refused until the ledger is reopened.
    pub(crate) poisoned: std::sync::atomic::AtomicBool,
}

impl Ledger {
    /// Creates the ledger file at `path`.
    pub fn create(
        path: &Path,
        name: &str,
        deletion_protection: bool,
        clock: Arc<dyn Clock>,
        limits: Limits,
    ) -> Result<Self, LedgerError> {
        Self::create_with_strand(
            path,
            name,
            deletion_protection,
            model::new_id(),
            clock,
            limits,
        )
    }

    /// Creates the ledger file with a given strand id (restore and import keep the source's).
    pub(crate) fn create_with_strand(
        path: &Path,
        name: &str,
        deletion_protection: bool,
        strand_id: String,
        clock: Arc<dyn Clock>,
        limits: Limits,
    ) -> Result<Self, LedgerError> {
        let database = Database::create(path)?;
        let mut write = database.begin_write()?;
        write.set_durability(redb::Durability::Immediate)?;
        storage::create_all_tables(&write)?;
        {
            let mut meta = write.open_table(storage::META)?;
            meta.insert(
                "format_version",
                storage::FORMAT_VERSION.to_string().as_bytes(),
            )?;
            meta.insert("ledger_name", name.as_bytes())?;
            meta.insert("strand_id", strand_id.as_bytes())?;
            meta.insert(
                "deletion_protection",
                deletion_protection.to_string().as_bytes(),
            )?;
            meta.insert("catalog_version", b"0".as_slice())?;
        }
        write.commit()?;
        Ok(Ledger {
            name: name.to_owned(),
            strand_id,
            database,
            clock,
            limits,
            poisoned: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Opens an existing ledger file.
    pub fn open(path: &Path, clock: Arc<dyn Clock>, limits: Limits) -> Result<Self, LedgerError> {
        let database = Database::open(path)?;
        let read = database.begin_read()?;
        let meta = read.open_table(storage::META)?;
        let format_version = storage::meta_u64(&meta, "format_version")?;
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
        drop(meta);
        drop(read);
        backfill_journal_tree(&database)?;
        Ok(Ledger {
            name,
            strand_id,
            database,
            clock,
            limits,
            poisoned: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The ledger's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The journal's only strand.
    pub fn strand_id(&self) -> &str {
        &self.strand_id
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Name, deletion protection and strand id.
    pub fn describe(&self) -> Result<LedgerDescription, LedgerError> {
        let read = self.database.begin_read()?;
        let meta = read.open_table(storage::META)?;
        Ok(LedgerDescription {
            name: self.name.clone(),
            deletion_protection: storage::meta_text(&meta, "deletion_protection")?.as_deref()
                != Some("false"),
            strand_id: self.strand_id.clone(),
        })
    }

    /// Turns deletion protection on or off (durably).
    pub fn set_deletion_protection(&self, deletion_protection: bool) -> Result<(), LedgerError> {
        let mut write = self.database.begin_write()?;
        write.set_durability(redb::Durability::Immediate)?;
        {
            let mut meta = write.open_table(storage::META)?;
            meta.insert(
                "deletion_protection",
                deletion_protection.to_string().as_bytes(),
            )?;
        }
        write.commit()?;
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
        let read = self.database.begin_read()?;
        let block_hashes = read.open_table(storage::BLOCK_HASHES)?;
        let Some((tip, _)) = storage::read_tip(&block_hashes)? else {
            return Ok(None);
        };
        let tree = read.open_table(journal_tree::JOURNAL_TREE)?;
        let digest = journal_tree::root(&tree, tip + 1)?
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
        let block_hashes = read.open_table(storage::BLOCK_HASHES)?;
        let tip = storage::read_tip(&block_hashes)?.map(|(tip, _)| tip);
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
        let read = self.database.begin_read()?;
        let (block, verified) = self.read_verified_block(&read, address.sequence_no)?;
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

    /// Reads a block and re-checks its own hashes just after reading, as the writer did just
    /// before writing. Its link to the previous block is checked by `verify_chain`, so the
    /// stored `previousBlockHash` is taken here.
    fn read_verified_block(
        &self,
        read: &redb::ReadTransaction,
        sequence_no: u64,
    ) -> Result<(Element, journal::VerifiedBlock), LedgerError> {
        let blocks = read.open_table(storage::BLOCKS)?;
        let block = storage::read_block(&blocks, sequence_no)?
            .ok_or_else(|| LedgerError::NotFound(format!("block {sequence_no}")))?;
        let stored_previous = model::expect_struct(&block, "block")?
            .get("previousBlockHash")
            .and_then(Element::as_lob)
            .map(hash::hash_from_slice)
            .transpose()?;
        let verified = journal::verify_block(&block, stored_previous.as_ref(), Strictness::Qldb)?;
        if verified.address != self.address(sequence_no) {
            return Err(LedgerError::VerificationFailed(format!(
                "block {sequence_no} carries the address of another block"
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
        let read = self.database.begin_read()?;
        let (block, verified) = self.read_verified_block(&read, address.sequence_no)?;
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

    /// [`Ledger::verify_chain`] with a chosen strictness for the blocks' entries.
    pub(crate) fn verify_chain_with(
        &self,
        mut progress: impl FnMut(u64, u64),
        strictness: Strictness,
        cancel: &CancelToken,
    ) -> Result<ChainReport, LedgerError> {
        let read = self.database.begin_read()?;
        let blocks = read.open_table(storage::BLOCKS)?;
        let block_hashes = read.open_table(storage::BLOCK_HASHES)?;
        let Some((tip, _)) = storage::read_tip(&block_hashes)? else {
            return Ok(ChainReport {
                blocks_verified: 0,
                digest: None,
            });
        };
        let total = tip + 1;
        let mut previous: Option<Hash> = None;
        let mut hashes = Vec::new();
        for sequence_no in 0..total {
            cancel.check()?;
            let block = storage::read_block(&blocks, sequence_no)?.ok_or_else(|| {
                LedgerError::VerificationFailed(format!("block {sequence_no} is missing"))
            })?;
            let verified = journal::verify_block(&block, previous.as_ref(), strictness)?;
            if verified.address != self.address(sequence_no) {
                return Err(LedgerError::VerificationFailed(format!(
                    "block {sequence_no} carries the address of another block"
                )));
            }
            let indexed = block_hashes
                .get(sequence_no)?
                .map(|value| value.value().to_vec())
                .unwrap_or_default();
            if indexed.as_slice() != verified.block_hash.as_slice() {
                return Err(LedgerError::VerificationFailed(format!(
                    "block {sequence_no}: the block hash index disagrees with the block"
                )));
            }
            hashes.push(verified.block_hash);
            previous = Some(verified.block_hash);
            progress(sequence_no + 1, total);
        }
        let tree = read.open_table(journal_tree::JOURNAL_TREE)?;
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
    /// order, one at a time, until it returns `Break`.
    pub fn for_each_block(
        &self,
        first_sequence_no: u64,
        mut visit: impl FnMut(Element) -> Result<std::ops::ControlFlow<()>, LedgerError>,
    ) -> Result<(), LedgerError> {
        let read = self.database.begin_read()?;
        let blocks = read.open_table(storage::BLOCKS)?;
        for entry in blocks.range(first_sequence_no..)? {
            let (_, value) = entry?;
            if visit(model::decode_stored(value.value())?)?.is_break() {
                break;
            }
        }
        Ok(())
    }
}

/// Fills the journal tree from the block hashes when it lags behind them: ledgers written
/// before the tree existed, or a tree table lost. Writes nothing when it is complete.
fn backfill_journal_tree(database: &Database) -> Result<(), LedgerError> {
    let (stored_leaves, block_count) = {
        let read = database.begin_read()?;
        let block_hashes = read.open_table(storage::BLOCK_HASHES)?;
        let block_count = storage::read_tip(&block_hashes)?.map_or(0, |(tip, _)| tip + 1);
        let stored_leaves = match read.open_table(journal_tree::JOURNAL_TREE) {
            Ok(tree) => journal_tree::leaf_count(&tree)?,
            Err(redb::TableError::TableDoesNotExist(_)) => 0,
            Err(error) => return Err(error.into()),
        };
        (stored_leaves, block_count)
    };
    if stored_leaves >= block_count {
        return Ok(());
    }
    let mut write = database.begin_write()?;
    write.set_durability(redb::Durability::Immediate)?;
    let hashes = {
        let block_hashes = write.open_table(storage::BLOCK_HASHES)?;
        storage::read_block_hashes(&block_hashes, block_count - 1)?
    };
    for (sequence_no, block_hash) in hashes.iter().enumerate().skip(stored_leaves as usize) {
        journal_tree::append_leaf(&write, sequence_no as u64, block_hash)?;
    }
    write.commit()?;
    Ok(())
}
