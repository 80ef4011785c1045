//! Engine errors: only storage failures stop a run from being recorded; step failures are
//! outcomes, not errors.

/// Errors from running a plan.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Storage failed while recording the run.
    #[error(transparent)]
    Storage(#[from] rivers_storage::Error),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
