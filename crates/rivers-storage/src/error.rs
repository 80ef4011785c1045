//! Storage errors.

/// Errors from the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The backend failed (connection, transaction, query, lock).
    #[error("storage backend error: {0}")]
    Backend(String),
    /// An embedded store's path is held by another live handle.
    #[error(
        "cannot open embedded storage at {location}: the database is locked by another live handle \
         (in this or another process); close that handle (or end that process) first ({detail})"
    )]
    Locked {
        /// Database directory.
        location: String,
        /// The backend's message.
        detail: String,
    },
    /// Events of a run could not be written, even after retries: they are not stored.
    #[error("{count} event(s) of run {run_id} were not written ({events}): {reason}")]
    EventsNotWritten {
        /// The run.
        run_id: String,
        /// How many events (and captured-output rows) were lost.
        count: usize,
        /// The first few, e.g. `StepSuccess of 'a'`.
        events: String,
        /// Why the write failed.
        reason: String,
    },
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
         run `rivers db migrate` (or `Storage.migrate_embedded` / `migrate_remote`) to upgrade it"
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
