//! One log pipeline: the native tracing subscriber (filtered by `RUST_LOG`, default `info`),
//! which also receives the records of Python's `rivers` logger hierarchy.

use pyo3::prelude::*;
use tracing_subscriber::EnvFilter;

/// Without `RUST_LOG`: rivers at `info`. The embedded database's own logs stay out of users'
/// terminals: its lifecycle notices, and the notices it logs at error level during every clean
/// shutdown ("datastore is shutting down", compactions draining); storage failures reach users
/// as `StorageError`s instead. `RUST_LOG=info,surrealdb=debug` brings them back.
const DEFAULT_FILTER: &str = "info,surrealdb=off,surrealdb_core=off,surrealdb_kvs_rocksdb=off";

/// Installs the process-wide subscriber unless the host process already has one.
pub(crate) fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    // `try_init` fails only when a subscriber is already installed, which is fine to keep.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).try_init();
}

/// Forwards one Python log record (from the `rivers` logger hierarchy) to the subscriber.
///
/// Levels follow Python's numbering: DEBUG 10, INFO 20, WARNING 30, ERROR 40 and above.
#[pyfunction]
pub(crate) fn _log(level: u32, logger: &str, message: &str) {
    match level {
        0..=10 => tracing::debug!(target: "rivers::python", logger, "{message}"),
        11..=20 => tracing::info!(target: "rivers::python", logger, "{message}"),
        21..=30 => tracing::warn!(target: "rivers::python", logger, "{message}"),
        _ => tracing::error!(target: "rivers::python", logger, "{message}"),
    }
}
