//! Storage errors.

/// Errors from the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The backend failed (connection, transaction, query, lock).
    #[error("storage backend error: {0}")]
    Backend(String),
    /// A stored document could not be decoded.
    #[error("could not decode stored {what}: {source}")]
    Decode {
        /// Kind of record.
        what: &'static str,
        /// Decoder error.
        #[source]
        source: serde_json::Error,
    },
    /// The database schema is older than this build.
    #[error(
        "the database at {location} has schema version {found}, older than this build's {expected}; \
         run `rivers db migrate` to upgrade it"
    )]
    SchemaMigrationNeeded {
        /// Database location.
        location: String,
        /// Stored version.
        found: i64,
        /// Version of this build.
        expected: i64,
    },
    /// A caller passed an invalid argument (e.g. a dynamic partition key with `|`).
    #[error("{0}")]
    InvalidArgument(String),
    /// A caller passed an unknown status spelling.
    #[error("{0}")]
    InvalidStatus(String),
}

impl From<surrealdb::Error> for Error {
    fn from(err: surrealdb::Error) -> Self {
        Error::Backend(err.to_string())
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
