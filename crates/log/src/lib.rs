//! `sluice-log`: the durable sharded append-only log under Kinesis-like streams and Firehose-like
//! delivery streams. It owns segments and their CRC frames, group-commit fsync, recovery of a
//! torn tail, retention, iterators and consumer checkpoints, and knows nothing of any wire format
//! or of the other Sluice crates.
//!
//! Entry points: [`Log::open`], then [`Log::create_stream`] / [`Log::stream`]; a [`Stream`]
//! appends ([`Stream::append`], [`Stream::append_batch`]) and holds [`Shard`]s that read
//! ([`Shard::position_for`], [`Shard::read`]). An append returns only once its bytes are fsynced.
//! The byte layouts and the commit protocol are specified in `docs/log-format.md`.
//!
//! Every call is blocking (appends wait for an fsync): async callers run them on
//! `spawn_blocking` or a dedicated thread. Time comes only from the [`Clock`] in [`LogOptions`],
//! durability calls only through its [`Disk`], so tests move time and inject fsync failures.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

mod catalog;
mod clock;
mod disk;
mod error;
mod files;
mod format;
mod hash_key;
pub mod limits;
mod log;
mod segment;
mod sequence;
mod shard;
mod stream;

#[cfg(test)]
mod tests;

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub use crate::{
    clock::{Clock, ManualClock, SystemClock},
    disk::{Disk, OsDisk},
    error::{LogError, Result},
    format::FORMAT_VERSION,
    hash_key::{
        HashKeyRange, partition_key_hash, shard_index_for_hash_key, split_hash_key_space_evenly,
    },
    log::{Log, LogOptions},
    sequence::{SEQUENCE_NUMBER_DIGITS, SequenceNumber},
    shard::{
        AppendRecord, AppendedRecord, IteratorStart, ReadBatch, Record, RetentionOutcome,
        RetentionPolicy, Shard, ShardDescription, ShardPosition,
    },
    stream::{Stream, StreamConfig, StreamSummary, validate_batch, validate_name, validate_record},
};

// A thread that panicked while holding one of these locks left no half-done disk state behind
// it (disk state is guarded by checksums and recovery), so the guard is taken over, not propagated.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn read_lock<T>(rwlock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    rwlock.read().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn write_lock<T>(rwlock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    rwlock.write().unwrap_or_else(PoisonError::into_inner)
}
