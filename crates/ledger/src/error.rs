//! The crate's one error type; each variant is a kind a wire layer maps to a status.

/// Every error the ledger engine returns.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The statement text does not parse; line and column are 1-based.
    #[error("syntax error at line {line}, column {column}: {message}")]
    Syntax {
        message: String,
        line: u32,
        column: u32,
    },
    /// The statement parsed but cannot be evaluated (unknown table, wrong types, bad parameters).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A QLDB limit was exceeded (document size, documents per transaction, indexes per table).
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    /// Optimistic concurrency control: something the transaction read changed before it committed.
    #[error("occ conflict: {0}")]
    OccConflict(String),
    /// The transaction ran longer than the configured timeout, or was already finished.
    #[error("transaction expired: {0}")]
    TransactionExpired(String),
    /// A ledger, table, document, block or index does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A ledger or table with that name already exists.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The resource is in a state that refuses the request (deletion protection, dropped table).
    #[error("resource precondition failed: {0}")]
    PreconditionFailed(String),
    /// A hash, chain link or proof does not verify: the journal or an import is corrupt.
    #[error("verification failed: {0}")]
    VerificationFailed(String),
    /// The storage engine failed; the ledger should be reopened.
    #[error("storage error: {0}")]
    Storage(String),
    /// A restore or import named a location outside the directories it may read from. The
    /// answer is decided before the file system is touched, so it is the same whether the
    /// location exists or not.
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// A long operation (export, restore, import) stopped because it was cancelled (the server
    /// is stopping); it left nothing half-made behind.
    #[error("cancelled: {0}")]
    Cancelled(String),
    /// File system errors outside the storage engine (export, import, data dir).
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
    /// A bug or an impossible state.
    #[error("internal error: {0}")]
    Internal(String),
}

macro_rules! storage_error_from {
    ($($source:ty),*) => {
        $(impl From<$source> for LedgerError {
            fn from(error: $source) -> Self {
                LedgerError::Storage(error.to_string())
            }
        })*
    };
}

storage_error_from!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

impl From<ion_rs::IonError> for LedgerError {
    fn from(error: ion_rs::IonError) -> Self {
        LedgerError::BadRequest(format!("ion: {error}"))
    }
}

impl From<sluice_partiql::ParseError> for LedgerError {
    fn from(error: sluice_partiql::ParseError) -> Self {
        LedgerError::Syntax {
            message: error.message,
            line: error.line,
            column: error.column,
        }
    }
}
