//! The one error type of the crate.

/// Everything that can go wrong managing mappings.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    /// No mapping has that UUID.
    #[error("the resource you requested does not exist: event source mapping {0}")]
    NotFound(String),
    /// A parameter breaks a rule; the message says which.
    #[error("{0}")]
    InvalidParameter(String),
    /// A mapping of the same source and function already exists.
    #[error("{0}")]
    Conflict(String),
    /// [`crate::MAPPINGS_MAX`] mappings exist already.
    #[error("{0}")]
    LimitExceeded(String),
    /// The source stream or table stream does not exist (any more).
    #[error("{0}")]
    SourceNotFound(String),
    #[error(transparent)]
    Log(#[from] sluice_log::LogError),
    #[error(transparent)]
    Tables(#[from] sluice_tables::TablesError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The catalog on disk cannot be read by this build.
    #[error("event source mapping catalog {path}: {reason}")]
    Catalog { path: String, reason: String },
}

/// Result with this crate's [`MappingError`].
pub type Result<T, E = MappingError> = std::result::Result<T, E>;
