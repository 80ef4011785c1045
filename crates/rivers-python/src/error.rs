//! The one bridge from Rust errors to Python exceptions.

use pyo3::PyErr;
use pyo3::exceptions::PyValueError;

use crate::exceptions::{
    AssetDefinitionError, AssetNotFoundError, ConfigurationError, GraphValidationError, NodeNotFoundError,
    PartitionDefinitionError, PartitionValidationError, SchemaMigrationNeededError, StorageError,
};

/// Errors of the lower crates, converted to their `rivers.exceptions` classes.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BindingError {
    #[error(transparent)]
    Core(#[from] rivers_core::Error),
    #[error(transparent)]
    Storage(#[from] rivers_storage::Error),
    #[error(transparent)]
    Engine(#[from] rivers_engine::Error),
}

impl From<BindingError> for PyErr {
    fn from(err: BindingError) -> PyErr {
        use rivers_core::Error as C;
        match err {
            BindingError::Core(core) => match core {
                C::GraphValidation(m) => GraphValidationError::new_err(m),
                C::AssetDefinition(m) => AssetDefinitionError::new_err(m),
                C::AssetNotFound(m) => AssetNotFoundError::new_err(m),
                C::NodeNotFound(m) => NodeNotFoundError::new_err(m),
                C::Configuration(m) => ConfigurationError::new_err(m),
                C::InvalidValue(m) => PyValueError::new_err(m),
                C::PartitionDefinition(m) => PartitionDefinitionError::new_err(m),
                C::PartitionValidation(m) => PartitionValidationError::new_err(m),
            },
            BindingError::Storage(storage) => storage_error(&storage),
            BindingError::Engine(engine) => BindingError::engine_ref(&engine),
        }
    }
}

impl BindingError {
    /// The exception for an engine error that is shared (a launched run's outcome).
    pub(crate) fn engine_ref(err: &rivers_engine::Error) -> PyErr {
        match err {
            rivers_engine::Error::Storage(storage) => storage_error(storage),
            rivers_engine::Error::Aborted { .. } | rivers_engine::Error::BackfillRun(_) => {
                pyo3::exceptions::PyRuntimeError::new_err(err.to_string())
            }
        }
    }
}

/// The spec's classes only: a migration hint, a bad status spelling, and `StorageError` for
/// everything else, its message carrying the root cause.
fn storage_error(err: &rivers_storage::Error) -> PyErr {
    use rivers_storage::Error as S;
    match err {
        S::SchemaMigrationNeeded { .. } => SchemaMigrationNeededError::new_err(err.to_string()),
        S::InvalidStatus(m) => PyValueError::new_err(m.clone()),
        _ => StorageError::new_err(err.to_string()),
    }
}
