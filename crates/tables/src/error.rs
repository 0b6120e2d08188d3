//! The crate's one error type. Variants are what a caller must tell apart to answer a client
//! (DynamoDB's error types map one to one); messages are DynamoDB's own texts where the client
//! sees them.

use crate::value::Item;

#[derive(Debug, thiserror::Error)]
pub enum TablesError {
    /// Bad input: the message is DynamoDB's `ValidationException` text.
    #[error("{0}")]
    Validation(String),
    /// No such table (or stream).
    #[error("{0}")]
    NotFound(String),
    /// A table of that name exists already, or is being deleted.
    #[error("{0}")]
    InUse(String),
    /// A write's condition was false; `item` is the item it was checked against, for
    /// `ReturnValuesOnConditionCheckFailure`.
    #[error("The conditional request failed")]
    ConditionFailed { item: Option<Box<Item>> },
    /// A transaction changed nothing because at least one member failed: one reason per
    /// member, in request order (`code` "None" for members that did not fail).
    #[error("Transaction cancelled, please refer cancellation reasons for specific reasons [{}]", reasons.iter().map(|reason| reason.code.as_str()).collect::<Vec<_>>().join(", "))]
    TransactionCanceled { reasons: Vec<CancellationReason> },
    /// More tables than [`crate::TABLES_MAX`].
    #[error("{0}")]
    LimitExceeded(String),
    /// The write queue is full ([`crate::QUEUED_WRITE_BYTES_MAX`]): the write was not queued and
    /// changed nothing; ask again later (DynamoDB's `ProvisionedThroughputExceededException`,
    /// or the write's place in a BatchWriteItem's `UnprocessedItems`).
    #[error(
        "The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API."
    )]
    Throttled,
    /// The disk or the storage engine failed; after a failed commit the store refuses writes
    /// until it is reopened.
    #[error("table storage failed: {0}")]
    Storage(String),
    /// Stored bytes that do not decode: a bug or corruption, never the client's input.
    #[error("corrupt table data: {0}")]
    Corrupt(String),
}

/// Why one member of a cancelled transaction failed, as DynamoDB's `CancellationReasons` say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancellationReason {
    /// `None`, `ConditionalCheckFailed` or `ValidationError`.
    pub code: String,
    pub message: Option<String>,
    /// The item the condition was checked against.
    pub item: Option<Item>,
}

pub type Result<T, E = TablesError> = std::result::Result<T, E>;

macro_rules! storage_error {
    ($($source:ty),*) => {$(
        impl From<$source> for TablesError {
            fn from(error: $source) -> TablesError {
                TablesError::Storage(error.to_string())
            }
        }
    )*};
}

storage_error!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError,
    std::io::Error
);
