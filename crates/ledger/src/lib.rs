//! QLDB-compatible verifiable ledger engine: tables of Ion documents with revisions, OCC
//! transactions, PartiQL evaluation, a journal of hash-chained blocks, digests and proofs,
//! export, restore and import. Speaks Rust types only; the wire layer lives in `api`.
//!
//! ```
//! use std::sync::Arc;
//! use sluice_ledger::{Ledgers, Limits, SystemClock};
//!
//! # fn main() -> Result<(), sluice_ledger::LedgerError> {
//! let dir = tempfile::tempdir()?;
//! let ledgers = Ledgers::open_dir(dir.path(), Arc::new(SystemClock), Limits::default())?;
//! let ledger = ledgers.create_ledger("vehicles", true)?;
//! ledger.execute("CREATE TABLE Vehicle", &[])?;
//!
//! let mut transaction = ledger.begin()?;
//! let parameter = ion_rs::Element::read_one(r#"{VIN: "1N4AL11D75C109151", Year: 2011}"#)?;
//! transaction.execute("INSERT INTO Vehicle VALUE ?", &[parameter])?;
//! let commit = transaction.commit()?; // OccConflict when something read changed meanwhile
//!
//! let digest = ledger.digest()?.expect("one block at least");
//! let block = ledger.block(&commit.block_address.expect("a write commits a block"), Some(&digest.digest_tip_address))?;
//! let folded = sluice_ledger::hash::fold_proof(&block.block_hash, &block.proof.unwrap_or_default());
//! assert_eq!(folded, digest.digest);
//! # Ok(())
//! # }
//! ```
//!
//! Map of the crate: [`ledger`] (ledgers on disk, opening and recovery, digests, proofs, chain
//! verification), [`transaction`] (snapshot, read set, a member's commit), [`commit`] (group
//! commit and background checkpoints), [`journal_file`] (the journal: CRC-framed blocks, the
//! commit point), [`state`] (the derived state a block implies), [`eval`] (PartiQL),
//! [`journal`] (block shapes), [`journal_tree`] (the block-hash Merkle tree), [`hash`] (QLDB
//! hashing), [`ion_read`] (the bounded reader of Ion from outside), [`storage`] (redb layout;
//! spec of both files in `docs/ledger-format.md`), the migration of format-1 ledgers,
//! [`export`] (export, restore,
//! import), [`source`] (where restores and imports may read, and the bounded, symlink-safe
//! walk), [`cancel`] (stopping long operations), [`stream`] (journal stream records), [`model`] and [`value`] (types and PartiQL
//! value semantics), [`datetime`], [`clock`], [`error`].
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod cancel;
pub mod clock;
pub mod datetime;
pub mod error;
pub mod hash;

pub use cancel::CancelToken;
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::LedgerError;
pub mod commit;
pub mod eval;
pub mod export;
mod ion_binary;
mod ion_hash;
pub mod ion_read;
#[cfg(test)]
mod ion_values;
pub mod journal;
pub mod journal_file;
pub mod journal_tree;
pub mod ledger;
mod migrate;
pub mod model;
pub mod source;
pub mod state;
pub mod storage;
pub mod stream;
pub mod transaction;
pub mod value;

pub use commit::{CheckpointStats, CommitDelivery, CommitSubmitted};
pub use export::{ExportFormat, JournalExport};
pub use ledger::{
    BlockWithProof, ChainReport, Ledger, LedgerDescription, LedgerDigest, Ledgers, PermissionsMode,
    RevisionWithProof,
};
pub use model::{BlockAddress, Limits, Revision, RevisionMetadata, TableInfo, TableStatus};
pub use source::{ExportLocation, ImportRoots};
pub use stream::CommittedBlock;
pub use transaction::{CommitResult, DocumentView, Transaction};
