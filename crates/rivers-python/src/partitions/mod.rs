//! Partition classes: definitions, keys and ranges, mappings and contexts. Each is a newtype over
//! a `rivers_core::partitions` value; variant classes hang off their base class
//! (`PartitionsDefinition.Static`, `PartitionKey.Multi`, `PartitionMapping.TimeWindow`, ...).

pub(crate) mod backfill;
mod context;
mod definition;
mod key;
mod mapping;

use pyo3::prelude::*;
use pyo3::type_object::PyTypeInfo;
use pyo3::types::PyType;

pub(crate) use backfill::{PlannedBackfill, PyBackfillPlan, PyBackfillStrategy, strategy_to_py};
pub(crate) use context::PyPartitionContext;
pub(crate) use definition::{declared_partitions, local_now};
pub(crate) use key::{PyPartitionKey, PyPartitionKeyRange, extract_key, key_to_py};
pub(crate) use mapping::extract_mapping;

/// Adds a variant class to its base: `Base.Name`.
fn nest<Base: PyTypeInfo, Variant: PyTypeInfo>(py: Python<'_>, name: &str) -> PyResult<()> {
    let base: Bound<'_, PyType> = py.get_type::<Base>();
    base.setattr(name, py.get_type::<Variant>())
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<definition::PyPartitionsDefinition>()?;
    nest::<definition::PyPartitionsDefinition, definition::PyStaticPartitions>(py, "Static")?;
    nest::<definition::PyPartitionsDefinition, definition::PyTimeWindowPartitions>(py, "TimeWindow")?;
    nest::<definition::PyPartitionsDefinition, definition::PyDynamicPartitions>(py, "Dynamic")?;
    nest::<definition::PyPartitionsDefinition, definition::PyMultiPartitions>(py, "Multi")?;

    m.add_class::<key::PyPartitionKey>()?;
    nest::<key::PyPartitionKey, key::PySingleKey>(py, "Single")?;
    nest::<key::PyPartitionKey, key::PyMultiKey>(py, "Multi")?;
    nest::<key::PyPartitionKey, key::PySetKey>(py, "Set")?;
    m.add_class::<key::PyPartitionKeyRange>()?;

    m.add_class::<mapping::PyPartitionMapping>()?;
    nest::<mapping::PyPartitionMapping, mapping::PyIdentityMapping>(py, "Identity")?;
    nest::<mapping::PyPartitionMapping, mapping::PyAllPartitionsMapping>(py, "AllPartitions")?;
    nest::<mapping::PyPartitionMapping, mapping::PyStaticMapping>(py, "Static")?;
    nest::<mapping::PyPartitionMapping, mapping::PyTimeWindowMapping>(py, "TimeWindow")?;
    nest::<mapping::PyPartitionMapping, mapping::PyMultiMapping>(py, "Multi")?;
    nest::<mapping::PyPartitionMapping, mapping::PyMultiToSingleMapping>(py, "MultiToSingle")?;
    nest::<mapping::PyPartitionMapping, mapping::PySpecificPartitionsMapping>(py, "SpecificPartitions")?;
    nest::<mapping::PyPartitionMapping, mapping::PyForKeysMapping>(py, "ForKeys")?;
    nest::<mapping::PyPartitionMapping, mapping::PySubsetMapping>(py, "Subset")?;

    m.add_class::<context::PyPartitionContext>()?;

    m.add_class::<backfill::PyBackfillStrategy>()?;
    nest::<backfill::PyBackfillStrategy, backfill::PyMultiRun>(py, "MultiRun")?;
    nest::<backfill::PyBackfillStrategy, backfill::PySingleRun>(py, "SingleRun")?;
    nest::<backfill::PyBackfillStrategy, backfill::PyPerDimension>(py, "PerDimension")?;
    m.add_class::<backfill::PyBackfillPlan>()?;
    Ok(())
}
