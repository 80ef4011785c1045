//! Storage errors.
//!
//! Each variant says what failed and keeps its cause as the error's source; the message shows
//! the whole chain, so that a root cause such as RocksDB's "No space left on device" reaches the
//! user (bindings show only the message).

use std::error::Error as StdError;
use std::sync::Arc;

/// A cause that the storage layer only passes on (the datastore reports `anyhow` errors).
pub type BoxedCause = Box<dyn StdError + Send + Sync + 'static>;

/// Errors from the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// SurrealDB failed a query: the statement's own error, or the transaction's commit (an I/O
    /// error of the datastore, a full disk).
    #[error("storage backend error: {source}")]
    Database {
        /// SurrealDB's error.
        #[source]
        source: Box<surrealdb::Error>,
    },
    /// A transaction threw one of this crate's own markers (`THROW '…'` in SurrealQL): a check
    /// inside it found the records changed since they were read. Callers that threw it read
    /// again and retry; others report it.
    #[error("storage backend error: {marker}")]
    Thrown {
        /// The thrown text.
        marker: String,
    },
    /// Concurrent writers kept changing the records a transaction touched, through every retry.
    #[error(
        "storage write conflict: other processes kept changing the same records through {attempts} \
         attempt(s); try again ({source})"
    )]
    Conflict {
        /// How many times the query was sent.
        attempts: u32,
        /// SurrealDB's error.
        #[source]
        source: Box<surrealdb::Error>,
    },
    /// Optimistic writes of this crate (a read, a compute, a checked write) kept losing to other
    /// writers of the same records.
    #[error("could not {what}: other writers kept changing the same records at the same time; try again")]
    Contended {
        /// What was being written, e.g. `open run 'R'`.
        what: String,
    },
    /// A record that must be new already exists (a run id taken by another run).
    #[error("{source}")]
    AlreadyExists {
        /// SurrealDB's error.
        #[source]
        source: Box<surrealdb::Error>,
    },
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
         (in this or another process); close that handle (or end that process) first ({})",
        chain(source.as_ref())
    )]
    Locked {
        /// Database directory.
        location: String,
        /// The datastore's error.
        #[source]
        source: BoxedCause,
    },
    /// A local datastore could not be opened, bootstrapped or shut down.
    #[error("cannot {action} storage at {location}: {}", chain(source.as_ref()))]
    Datastore {
        /// `open`, `bootstrap` or `shut down`.
        action: &'static str,
        /// Database location.
        location: String,
        /// The datastore's error.
        #[source]
        source: BoxedCause,
    },
    /// A local datastore stopped accepting writes after an I/O error (a full disk): RocksDB
    /// refuses writes until the store is reopened.
    #[error(
        "the store stopped accepting writes after an I/O error ({cause}); fix the cause (free disk space) \
         and open the store again"
    )]
    DatastoreFailed {
        /// The first I/O error.
        cause: String,
    },
    /// A SurrealDB server could not be reached or refused the sign-in.
    #[error("cannot {action} SurrealDB at {endpoint}: {source}")]
    Connect {
        /// `connect to`, or `sign in to … as …`.
        action: String,
        /// The server's URL.
        endpoint: String,
        /// The client's error.
        #[source]
        source: Box<surrealdb::Error>,
    },
    /// A SurrealDB server did not answer a query in time.
    #[error("the SurrealDB server did not answer within {seconds} s (is it running and reachable?)")]
    Timeout {
        /// The bound that passed.
        seconds: u64,
    },
    /// A file-system operation failed (creating the store's directory).
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was attempted, e.g. `create storage directory`.
        action: &'static str,
        /// The path.
        path: String,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// The store was closed while a write still waited for it.
    #[error("the storage writer has stopped (the store was closed)")]
    WriterStopped,
    /// A batch of writes failed; every write waiting on it shares the cause.
    #[error("a batch of run events was not written: {source}")]
    BatchNotWritten {
        /// Why the batch failed.
        #[source]
        source: Arc<Error>,
    },
    /// Events of a run could not be written, even after retries: they are not stored.
    #[error("{count} event(s) of run {run_id} were not written ({events}): {source}")]
    EventsNotWritten {
        /// The run.
        run_id: String,
        /// How many events (and captured-output rows) were lost.
        count: usize,
        /// The first few, e.g. `StepSuccess of 'a'`.
        events: String,
        /// Why the write failed.
        #[source]
        source: Arc<Error>,
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
    /// A stored record holds something this build cannot read.
    #[error("stored {what} is corrupt: {detail}")]
    Corrupt {
        /// The record, e.g. `kv entry 'k'`.
        what: String,
        /// What is wrong with it.
        detail: String,
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
    /// The database was written by a newer build.
    #[error(
        "the database at {location} was written by a newer rivers (schema {found}, this build \
         understands {supported}); upgrade rivers"
    )]
    SchemaTooNew {
        /// Database location.
        location: String,
        /// Stored version.
        found: i64,
        /// Version of this build.
        supported: i64,
    },
    /// A schema migration step failed; the stamp names the last step that completed.
    #[error("migration {version} ({name}) failed at {location}: {source}")]
    Migration {
        /// The step's version.
        version: i64,
        /// The step's name.
        name: &'static str,
        /// Database location.
        location: String,
        /// Why it failed.
        #[source]
        source: Box<Error>,
    },
    /// A cloud deployment has no code-location identity to write per-location rows under.
    #[error(
        "cannot write {what}: RIVERS_DEPLOYMENT=cloud requires a code-location identity, and \
         RIVERS_CODE_LOCATION_ID is not set; set it to the code location's identity (the operator \
         sets it on code-location, run and step pods)"
    )]
    MissingCodeLocation {
        /// What was being written, e.g. `run 'R'`.
        what: String,
    },
    /// A caller passed an invalid argument (e.g. a dynamic partition key with `|`).
    #[error("{0}")]
    InvalidArgument(String),
    /// A caller passed an unknown status spelling.
    #[error("{0}")]
    InvalidStatus(String),
    /// A write a test asked to fail (fault injection of the `testing` feature).
    #[cfg(feature = "testing")]
    #[error("injected write failure (batch {batch})")]
    Injected {
        /// The failed batch's number.
        batch: u64,
    },
}

impl Error {
    /// Whether this is the marker `marker` thrown by one of this crate's transactions.
    pub(crate) fn is_thrown(&self, marker: &str) -> bool {
        matches!(self, Error::Thrown { marker: thrown } if thrown == marker)
    }
}

impl From<surrealdb::Error> for Error {
    fn from(source: surrealdb::Error) -> Self {
        use surrealdb::types::ErrorDetails;
        let source = Box::new(source);
        if is_retryable_conflict(&source) {
            Error::Conflict { attempts: 1, source }
        } else if source.is_already_exists() {
            Error::AlreadyExists { source }
        } else if matches!(source.details(), ErrorDetails::Thrown) {
            Error::Thrown { marker: thrown_text(&source.to_string()) }
        } else {
            Error::Database { source }
        }
    }
}

/// The text a `THROW` carried, without the prefix SurrealDB puts before it.
fn thrown_text(message: &str) -> String {
    message.strip_prefix("An error occurred: ").unwrap_or(message).to_owned()
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

/// `err` and each of its causes, joined with `": "` (a datastore error's context and its root).
fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(next) = cause {
        let part = next.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = next.source();
    }
    text
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
