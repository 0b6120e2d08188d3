//! The one error type of the log crate: every failure a caller can see, typed so that the API
//! layer can map each kind to its own wire error in one place.

use std::{io, path::PathBuf, sync::Arc};

/// Every failure of the log. `Clone` so that one failed shard write can be reported on each of
/// the records of a batch that it carried (I/O errors are shared behind an `Arc`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum LogError {
    /// An operating-system call failed; `context` says what the log was doing and on which path.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: Arc<io::Error>,
    },
    /// Bytes on disk fail their checksum or shape somewhere recovery must not guess: in the
    /// middle of a segment, in a sealed segment, in a checkpoint or in the catalog.
    #[error("corrupt log data in {path} at byte {position_bytes}: {reason}")]
    Corruption {
        path: PathBuf,
        position_bytes: u64,
        reason: String,
    },
    /// A file was written by a format version this build does not read.
    #[error("unsupported format version {found} in {path} (this build reads version {supported})")]
    UnsupportedFormatVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    /// A write or fsync of this shard failed earlier: what is on disk is unknown, so the shard
    /// refuses writes until the log is reopened and recovery has looked at the file again.
    #[error(
        "shard {shard_index} of stream {stream} refuses writes after a failed write or fsync; reopen the log"
    )]
    ShardPoisoned { stream: String, shard_index: u32 },
    /// An encrypted segment cannot be read or written: no keyring, a data key the keyring
    /// does not hold, or the system's random numbers failed.
    #[error("encrypted segment {path}: {reason}")]
    Encryption { path: PathBuf, reason: String },
    /// Another process (or another `Log` in this one) holds the data directory.
    #[error("log directory {path} is locked by another open log")]
    DirectoryLocked { path: PathBuf },
    #[error("stream {0} not found")]
    StreamNotFound(String),
    #[error("stream {0} already exists")]
    StreamAlreadyExists(String),
    /// The stream was deleted while the caller still held a handle to it.
    #[error("stream {0} was deleted")]
    StreamDeleted(String),
    #[error("shard {shard_index} not found in stream {stream}")]
    ShardNotFound { stream: String, shard_index: u32 },
    /// A stream or consumer name outside the allowed characters or length.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    /// An argument is out of its domain (empty partition key, zero shards, a read of 0 records…).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A request is larger than one of the named limits in [`crate::limits`].
    #[error("{what} exceeds its limit: {value} > {limit}")]
    LimitExceeded {
        what: &'static str,
        value: u64,
        limit: u64,
    },
    /// A sequence-number string that does not parse.
    #[error("invalid sequence number {input:?}: {reason}")]
    InvalidSequenceNumber { input: String, reason: &'static str },
    /// A well-formed sequence number that names no record of this shard (another shard's, or
    /// one not yet written).
    #[error(
        "sequence number {sequence_number} does not name a record of shard {shard_index} of stream {stream}: {reason}"
    )]
    SequenceNumberNotInShard {
        stream: String,
        shard_index: u32,
        sequence_number: String,
        reason: &'static str,
    },
}

impl LogError {
    /// Wraps an I/O error with a sentence saying what was being done.
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        LogError::Io {
            context: context.into(),
            source: Arc::new(source),
        }
    }

    pub(crate) fn corruption(
        path: impl Into<PathBuf>,
        position_bytes: u64,
        reason: impl Into<String>,
    ) -> Self {
        LogError::Corruption {
            path: path.into(),
            position_bytes,
            reason: reason.into(),
        }
    }
}

/// The result type of the log crate.
pub type Result<T, E = LogError> = std::result::Result<T, E>;
