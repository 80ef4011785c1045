//! Storage errors.

/// Errors from the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The backend failed (connection, transaction, query, lock).
    #[error("storage backend error: {0}")]
    Backend(String),
    /// Concurrent writers kept changing the records a transaction touched, through every retry.
    #[error(
        "storage write conflict: other processes kept changing the same records through {attempts} \
         attempt(s); try again ({detail})"
    )]
    Conflict {
        /// How many times the query was sent.
        attempts: u32,
        /// SurrealDB's message.
        detail: String,
    },
    /// A record that must be new already exists (a run id taken by another run).
    #[error("{0}")]
    AlreadyExists(String),
    /// A process finished a run it no longer owns: another process failed it (after missed
    /// heartbeats) or claimed it meanwhile.
    #[error("run '{run_id}' is no longer owned by this process: {detail}")]
    RunTakenOver {
        /// The run.
        run_id: String,
        /// What happened to it.
        detail: String,
    },
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
        if is_retryable_conflict(&err) {
            Error::Conflict { attempts: 1, detail: err.to_string() }
        } else if err.is_already_exists() {
            Error::AlreadyExists(err.to_string())
        } else {
            Error::Backend(err.to_string())
        }
    }
}

/// Whether SurrealDB reports a transaction conflict, which succeeds when retried. Servers
/// send the kind structurally; the message check covers errors that reach us as text only
/// (for example a conflict inside a transaction that is reported by its `COMMIT`).
fn is_retryable_conflict(err: &surrealdb::Error) -> bool {
    use surrealdb::types::{ErrorDetails, QueryError};
    if matches!(err.details(), ErrorDetails::Query(Some(QueryError::TransactionConflict))) {
        return true;
    }
    let text = err.to_string();
    text.contains("Transaction conflict") || text.contains("can be retried") || text.contains("retry the transaction")
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
