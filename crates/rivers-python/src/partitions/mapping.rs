//! `PartitionMapping` and its variant classes: newtypes over the core mapping values.

use std::collections::BTreeMap;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use rivers_core::partitions::{KeySelector, PartitionMapping};

use super::key::{PyPartitionKey, PyPartitionKeyRange, key_to_py};

/// Which upstream partitions a downstream partition reads; see the variant classes.
#[pyclass(name = "PartitionMapping", module = "rivers", subclass, frozen)]
pub(crate) struct PyPartitionMapping(pub(crate) PartitionMapping);

macro_rules! variant {
    ($rust:ident, $name:literal, $doc:literal) => {
        #[doc = $doc]
        #[pyclass(name = $name, module = "rivers", extends = PyPartitionMapping, frozen)]
        pub(crate) struct $rust;
    };
}

variant!(PyIdentityMapping, "Identity", "The same key upstream.");
variant!(PyAllPartitionsMapping, "AllPartitions", "Every current upstream key.");
variant!(PyStaticMapping, "Static", "Downstream key → upstream key.");
variant!(PyTimeWindowMapping, "TimeWindow", "The window `offset` windows away.");
variant!(PyMultiMapping, "Multi", "Per-dimension mappings between two multi definitions.");
variant!(PyMultiToSingleMapping, "MultiToSingle", "One dimension of a multi side to a one-dimensional side.");
variant!(PySpecificPartitionsMapping, "SpecificPartitions", "Exactly the listed upstream keys.");
variant!(PyForKeysMapping, "ForKeys", "An unpartitioned upstream, for matching downstream keys only.");
variant!(PySubsetMapping, "Subset", "Downstream key K reads upstream K when upstream has it.");

/// The Python object of a core mapping, as its variant class.
pub(crate) fn mapping_to_py(py: Python<'_>, mapping: PartitionMapping) -> PyResult<Bound<'_, PyAny>> {
    use PartitionMapping as M;
    let init = |m: PartitionMapping| PyClassInitializer::from(PyPartitionMapping(m));
    Ok(match mapping {
        M::Identity => Bound::new(py, init(mapping).add_subclass(PyIdentityMapping))?.into_any(),
        M::AllPartitions => Bound::new(py, init(mapping).add_subclass(PyAllPartitionsMapping))?.into_any(),
        M::Static { .. } => Bound::new(py, init(mapping).add_subclass(PyStaticMapping))?.into_any(),
        M::TimeWindow { .. } => Bound::new(py, init(mapping).add_subclass(PyTimeWindowMapping))?.into_any(),
        M::Multi { .. } => Bound::new(py, init(mapping).add_subclass(PyMultiMapping))?.into_any(),
        M::MultiToSingle { .. } => Bound::new(py, init(mapping).add_subclass(PyMultiToSingleMapping))?.into_any(),
        M::SpecificPartitions { .. } => {
            Bound::new(py, init(mapping).add_subclass(PySpecificPartitionsMapping))?.into_any()
        }
        M::ForKeys { .. } => Bound::new(py, init(mapping).add_subclass(PyForKeysMapping))?.into_any(),
        M::Subset => Bound::new(py, init(mapping).add_subclass(PySubsetMapping))?.into_any(),
    })
}

/// The core mapping of a `PartitionMapping` argument.
pub(crate) fn extract_mapping(obj: &Bound<'_, PyAny>) -> PyResult<PartitionMapping> {
    obj.cast::<PyPartitionMapping>().map(|m| m.get().0.clone()).map_err(|_| {
        pyo3::exceptions::PyTypeError::new_err(format!(
            "expected a PartitionMapping, got {}",
            obj.get_type().name().map(|n| n.to_string()).unwrap_or_default()
        ))
    })
}

#[pymethods]
impl PyPartitionMapping {
    /// The same key upstream (the default between two partitioned assets).
    #[staticmethod]
    fn identity(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
        mapping_to_py(py, PartitionMapping::Identity)
    }

    /// Every current upstream key.
    #[staticmethod]
    fn all_partitions(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
        mapping_to_py(py, PartitionMapping::AllPartitions)
    }

    /// Downstream key → upstream key (display form for multi sides).
    #[staticmethod]
    fn static_(py: Python<'_>, mapping: BTreeMap<String, String>) -> PyResult<Bound<'_, PyAny>> {
        mapping_to_py(py, PartitionMapping::Static { mapping })
    }

    /// The window `offset` upstream windows away (negative: earlier).
    #[staticmethod]
    fn time_window(py: Python<'_>, offset: i64) -> PyResult<Bound<'_, PyAny>> {
        mapping_to_py(py, PartitionMapping::TimeWindow { offset })
    }

    /// Per downstream dimension: a mapping into the same-named upstream dimension, or a
    /// `(upstream dimension, mapping)` tuple.
    #[staticmethod]
    fn multi<'py>(py: Python<'py>, dimension_mappings: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyAny>> {
        let mut mappings = BTreeMap::new();
        for (dim, value) in dimension_mappings.iter() {
            let dim: String = dim.extract()?;
            let entry = if let Ok(pair) = value.cast::<PyTuple>() {
                let (target, mapping): (String, Bound<'_, PyAny>) = pair.extract()?;
                (target, extract_mapping(&mapping)?)
            } else {
                (dim.clone(), extract_mapping(&value)?)
            };
            mappings.insert(dim, entry);
        }
        mapping_to_py(py, PartitionMapping::Multi { dimension_mappings: mappings })
    }

    /// One dimension of the multi side, mapped (identity by default) to the other side.
    #[staticmethod]
    #[pyo3(signature = (dimension_name, partition_mapping = None))]
    fn multi_to_single<'py>(
        py: Python<'py>,
        dimension_name: String,
        partition_mapping: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let inner = partition_mapping.map(extract_mapping).transpose()?.unwrap_or(PartitionMapping::Identity);
        mapping_to_py(py, PartitionMapping::MultiToSingle { dimension_name, partition_mapping: Box::new(inner) })
    }

    /// Exactly these upstream keys, whatever the downstream key.
    #[staticmethod]
    fn specific_partitions(py: Python<'_>, partition_keys: Vec<String>) -> PyResult<Bound<'_, PyAny>> {
        mapping_to_py(py, PartitionMapping::SpecificPartitions { partition_keys })
    }

    /// The unpartitioned upstream, loaded only for downstream keys matching a selector.
    #[staticmethod]
    fn for_keys<'py>(py: Python<'py>, selectors: Vec<Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
        let selectors = selectors
            .iter()
            .map(|s| {
                if let Ok(key) = s.cast::<PyPartitionKey>() {
                    Ok(KeySelector::Key(key.get().0.clone()))
                } else if let Ok(range) = s.cast::<PyPartitionKeyRange>() {
                    Ok(KeySelector::Range(range.get().0.clone()))
                } else {
                    Err(pyo3::exceptions::PyTypeError::new_err(
                        "for_keys() selectors are PartitionKey or PartitionKeyRange values",
                    ))
                }
            })
            .collect::<PyResult<Vec<_>>>()?;
        mapping_to_py(py, PartitionMapping::ForKeys { selectors })
    }

    /// Downstream key K reads upstream K when the upstream has it, else `None`.
    #[staticmethod]
    fn subset(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
        mapping_to_py(py, PartitionMapping::Subset)
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.cast::<Self>().is_ok_and(|o| o.get().0 == self.0)
    }

    fn __hash__(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        serde_json::to_string(&self.0).unwrap_or_default().hash(&mut hasher);
        hasher.finish()
    }

    fn __repr__(&self) -> String {
        format!("PartitionMapping.{}", self.0.name())
    }

    /// Pickles by value, as its JSON form (mappings travel to parallel-executor workers).
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, (String,))> {
        let json = serde_json::to_string(&self.0)
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("cannot pickle {}: {e}", self.0.name())))?;
        Ok((py.get_type::<PyPartitionMapping>().getattr("_from_json")?, (json,)))
    }

    /// Rebuilds a mapping from its pickled JSON form, as its variant class.
    #[staticmethod]
    fn _from_json<'py>(py: Python<'py>, json: &str) -> PyResult<Bound<'py, PyAny>> {
        let mapping: PartitionMapping = serde_json::from_str(json)
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("not a partition mapping: {e}")))?;
        mapping_to_py(py, mapping)
    }
}

#[pymethods]
impl PyStaticMapping {
    /// Downstream key → upstream key.
    #[getter]
    fn mapping(slf: PyRef<'_, Self>) -> BTreeMap<String, String> {
        match &slf.as_super().0 {
            PartitionMapping::Static { mapping } => mapping.clone(),
            _ => BTreeMap::new(),
        }
    }
}

#[pymethods]
impl PyTimeWindowMapping {
    /// Upstream windows to shift by.
    #[getter]
    fn offset(slf: PyRef<'_, Self>) -> i64 {
        match &slf.as_super().0 {
            PartitionMapping::TimeWindow { offset } => *offset,
            _ => 0,
        }
    }
}

#[pymethods]
impl PyMultiMapping {
    /// Downstream dimension → `(upstream dimension, mapping)`.
    #[getter]
    fn dimension_mappings<'py>(slf: PyRef<'py, Self>) -> PyResult<Bound<'py, PyDict>> {
        let py = slf.py();
        let dict = PyDict::new(py);
        if let PartitionMapping::Multi { dimension_mappings } = &slf.as_super().0 {
            for (dim, (target, mapping)) in dimension_mappings {
                dict.set_item(dim, (target, mapping_to_py(py, mapping.clone())?))?;
            }
        }
        Ok(dict)
    }
}

#[pymethods]
impl PyMultiToSingleMapping {
    /// The multi side's dimension.
    #[getter]
    fn dimension_name(slf: PyRef<'_, Self>) -> String {
        match &slf.as_super().0 {
            PartitionMapping::MultiToSingle { dimension_name, .. } => dimension_name.clone(),
            _ => String::new(),
        }
    }

    /// The mapping between that dimension and the other side.
    #[getter]
    fn partition_mapping<'py>(slf: PyRef<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        match &slf.as_super().0 {
            PartitionMapping::MultiToSingle { partition_mapping, .. } => {
                mapping_to_py(py, (**partition_mapping).clone())
            }
            _ => mapping_to_py(py, PartitionMapping::Identity),
        }
    }
}

#[pymethods]
impl PySpecificPartitionsMapping {
    /// The upstream keys.
    #[getter]
    fn partition_keys(slf: PyRef<'_, Self>) -> Vec<String> {
        match &slf.as_super().0 {
            PartitionMapping::SpecificPartitions { partition_keys } => partition_keys.clone(),
            _ => Vec::new(),
        }
    }
}

#[pymethods]
impl PyForKeysMapping {
    /// The selectors, as given.
    #[getter]
    fn selectors<'py>(slf: PyRef<'py, Self>) -> PyResult<Bound<'py, PyList>> {
        let py = slf.py();
        let items = match &slf.as_super().0 {
            PartitionMapping::ForKeys { selectors } => selectors
                .iter()
                .map(|s| match s {
                    KeySelector::Key(key) => key_to_py(py, key.clone()),
                    KeySelector::Range(range) => Ok(Bound::new(py, PyPartitionKeyRange(range.clone()))?.into_any()),
                })
                .collect::<PyResult<Vec<_>>>()?,
            _ => Vec::new(),
        };
        PyList::new(py, items)
    }
}
