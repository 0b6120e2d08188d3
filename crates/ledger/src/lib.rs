//! QLDB-compatible verifiable ledger engine: tables of Ion documents with revisions, OCC
//! transactions, PartiQL evaluation, a journal of hash-chained blocks, digests and proofs,
//! export, restore and import. Speaks Rust types only; the wire layer lives in `api`.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod clock;
pub mod datetime;
pub mod error;
pub mod hash;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::LedgerError;
pub mod eval;
pub mod export;
pub mod journal;
pub mod journal_tree;
pub mod ledger;
pub mod model;
pub mod storage;
pub mod stream;
pub mod transaction;
pub mod value;

pub use export::{ExportFormat, JournalExport};
pub use ledger::{
    BlockWithProof, ChainReport, Ledger, LedgerDescription, LedgerDigest, Ledgers,
    RevisionWithProof,
};
pub use model::{BlockAddress, Limits, Revision, RevisionMetadata, TableInfo, TableStatus};
pub use transaction::{CommitResult, DocumentView, Transaction};
