//! The error enum of the domain; each variant maps to one `rivers.exceptions` class.

/// Errors raised while validating definitions or building plans.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The graph is malformed: cycles, unknown deps, duplicate names, broken jobs.
    #[error("{0}")]
    GraphValidation(String),
    /// A single definition is malformed.
    #[error("{0}")]
    AssetDefinition(String),
    /// A selection names an asset that is not registered.
    #[error("{0}")]
    AssetNotFound(String),
    /// A node name given to a lookup is not registered.
    #[error("{0}")]
    NodeNotFound(String),
    /// User configuration cannot be resolved (parameters, resources, policies, executors).
    #[error("{0}")]
    Configuration(String),
    /// A fixed-vocabulary argument has a value outside its vocabulary.
    #[error("{0}")]
    InvalidValue(String),
    /// A partitions definition is malformed.
    #[error("{0}")]
    PartitionDefinition(String),
    /// A partition key, range or mapping does not fit its definition.
    #[error("{0}")]
    PartitionValidation(String),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
