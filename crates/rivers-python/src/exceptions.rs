//! The `rivers.exceptions` classes (spec §17), created here so Rust errors can raise them.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(rivers.exceptions, AssetDefinitionError, PyException, "An asset definition is invalid.");
create_exception!(rivers.exceptions, AssetNotFoundError, PyException, "A referenced asset does not exist.");
create_exception!(rivers.exceptions, AssetOutputValidationError, PyException, "A produced output failed validation.");
create_exception!(rivers.exceptions, ConfigurationError, PyException, "User configuration cannot be resolved.");
create_exception!(rivers.exceptions, ExecutionError, PyException, "A step failed while running.");
create_exception!(rivers.exceptions, GraphValidationError, PyException, "The asset graph is invalid.");
create_exception!(
    rivers.exceptions,
    InvalidMetadataError,
    PyException,
    "A metadata value has no MetadataValue encoding."
);
create_exception!(rivers.exceptions, NodeNotFoundError, PyException, "A referenced node does not exist.");
create_exception!(rivers.exceptions, PartitionDefinitionError, PyException, "A partitions definition is invalid.");
create_exception!(
    rivers.exceptions,
    PartitionValidationError,
    PyException,
    "A partition key or range is invalid for its target."
);
create_exception!(
    rivers.exceptions,
    ResultDefinitionError,
    PyException,
    "An Output, Materialization or Observation is malformed or misplaced."
);
create_exception!(rivers.exceptions, ScheduleDefinitionError, PyException, "A schedule definition is invalid.");
create_exception!(rivers.exceptions, SensorDefinitionError, PyException, "A sensor definition is invalid.");
create_exception!(rivers.exceptions, StorageError, PyException, "A storage backend failed.");
create_exception!(
    rivers.exceptions,
    SchemaMigrationNeededError,
    StorageError,
    "The database schema is older than this build."
);
create_exception!(rivers.exceptions, TaskDefinitionError, PyException, "A task definition is invalid.");

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("AssetDefinitionError", py.get_type::<AssetDefinitionError>())?;
    m.add("AssetNotFoundError", py.get_type::<AssetNotFoundError>())?;
    m.add("AssetOutputValidationError", py.get_type::<AssetOutputValidationError>())?;
    m.add("ConfigurationError", py.get_type::<ConfigurationError>())?;
    m.add("ExecutionError", py.get_type::<ExecutionError>())?;
    m.add("GraphValidationError", py.get_type::<GraphValidationError>())?;
    m.add("InvalidMetadataError", py.get_type::<InvalidMetadataError>())?;
    m.add("NodeNotFoundError", py.get_type::<NodeNotFoundError>())?;
    m.add("PartitionDefinitionError", py.get_type::<PartitionDefinitionError>())?;
    m.add("PartitionValidationError", py.get_type::<PartitionValidationError>())?;
    m.add("ResultDefinitionError", py.get_type::<ResultDefinitionError>())?;
    m.add("ScheduleDefinitionError", py.get_type::<ScheduleDefinitionError>())?;
    m.add("SensorDefinitionError", py.get_type::<SensorDefinitionError>())?;
    m.add("StorageError", py.get_type::<StorageError>())?;
    m.add("SchemaMigrationNeededError", py.get_type::<SchemaMigrationNeededError>())?;
    m.add("TaskDefinitionError", py.get_type::<TaskDefinitionError>())?;
    Ok(())
}
