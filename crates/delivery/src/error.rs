//! The one error type of the delivery crate, typed so the API layer maps each kind to its
//! Firehose exception in one place.

/// Every failure a caller of this crate can see.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("delivery stream {0} not found")]
    NotFound(String),
    #[error("delivery stream {0} already exists")]
    AlreadyExists(String),
    /// A configuration or argument outside its domain; the message says which and why.
    #[error("{0}")]
    InvalidArgument(String),
    /// A request over one of the named limits in [`crate::limits`].
    #[error("{0}")]
    LimitExceeded(String),
    /// The stream is too far behind: the producer should slow down and retry.
    #[error("{0}")]
    Throttled(String),
    /// The stream's worker was asked to stop while a batch was in flight; it is redelivered.
    #[error("delivery stream {0} is stopping")]
    Stopping(String),
    #[error(transparent)]
    Log(#[from] sluice_log::LogError),
    #[error(transparent)]
    Search(#[from] sluice_search::SearchError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// Writing a backup or S3 object failed (after the object store's own retries); the batch
    /// stays in the source and is tried again.
    #[error(transparent)]
    Objects(#[from] sluice_objects::ObjectsError),
    /// An external cluster that cannot be configured or prepared (its client, its index
    /// templates); a batch waiting on it stays in the source and is tried again.
    #[error(transparent)]
    Cluster(#[from] sluice_cluster::ClusterError),
    #[error("installing index templates on {endpoint}: {code} {message}")]
    IndexTemplates {
        endpoint: String,
        code: String,
        message: String,
    },
    #[error("corrupt delivery catalog {path}: {reason}")]
    CorruptCatalog { path: String, reason: String },
}

impl DeliveryError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        DeliveryError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        DeliveryError::InvalidArgument(message.into())
    }
}

pub type Result<T, E = DeliveryError> = std::result::Result<T, E>;
