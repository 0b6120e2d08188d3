//! QLDB-compatible verifiable ledger engine: tables of Ion documents with revisions, OCC
//! transactions, PartiQL evaluation, a journal of hash-chained blocks, digests and proofs,
//! export, restore and import. Speaks Rust types only; the wire layer lives in `api`.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod clock;
pub mod error;
pub mod hash;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::LedgerError;
