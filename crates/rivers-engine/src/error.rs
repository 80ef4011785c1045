//! Engine errors: only storage failures stop a run from being recorded; step failures are
//! outcomes, not errors.

/// Errors from running a plan.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Storage failed while recording the run.
    #[error(transparent)]
    Storage(#[from] rivers_storage::Error),
    /// A backfill could not prepare one of its runs (the backfill ends `failed` with this).
    #[error("backfill run: {0}")]
    BackfillRun(String),
    /// A launched run's task ended without an outcome (it panicked); the run record may still
    /// say it is running.
    #[error("run {run_id} stopped without an outcome: its task panicked; see the log for the panic")]
    Aborted {
        /// The run's id.
        run_id: String,
    },
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
