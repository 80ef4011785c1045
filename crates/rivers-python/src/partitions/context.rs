//! `PartitionContext`: the keys a step (or a load, or a write) is responsible for and the
//! definition they belong to.

use std::sync::{Arc, OnceLock};

use chrono::NaiveDateTime;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyList;
use rivers_core::partitions::{PartitionKey, Partitions};

use super::definition::extract_partitions;
use super::key::{PyPartitionKey, extract_key, key_to_py};

/// Keys and their definition.
///
/// A context the engine builds (a step covering a million partitions) holds the engine's keys;
/// they become Python objects the first time `keys` is read.
#[pyclass(name = "PartitionContext", module = "rivers", frozen)]
pub(crate) struct PyPartitionContext {
    keys: Keys,
    definition: Py<PyAny>,
}

enum Keys {
    /// Given as Python objects.
    Python(Vec<Py<PyAny>>),
    /// The engine's, and their Python objects once read.
    Engine { keys: Arc<[PartitionKey]>, objects: OnceLock<Vec<Py<PyAny>>> },
}

impl PyPartitionContext {
    /// A context of the engine's `keys` (at least one).
    pub(crate) fn from_engine(keys: Arc<[PartitionKey]>, definition: Py<PyAny>) -> Self {
        debug_assert!(!keys.is_empty());
        PyPartitionContext { keys: Keys::Engine { keys, objects: OnceLock::new() }, definition }
    }

    fn objects(&self, py: Python<'_>) -> PyResult<&[Py<PyAny>]> {
        match &self.keys {
            Keys::Python(objects) => Ok(objects),
            Keys::Engine { keys, objects } => {
                if objects.get().is_none() {
                    let created =
                        keys.iter().map(|k| Ok(key_to_py(py, k.clone())?.unbind())).collect::<PyResult<_>>()?;
                    let _ = objects.set(created);
                }
                Ok(objects.get().expect("set above"))
            }
        }
    }

    fn len(&self) -> usize {
        match &self.keys {
            Keys::Python(objects) => objects.len(),
            Keys::Engine { keys, .. } => keys.len(),
        }
    }

    fn first(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match &self.keys {
            Keys::Python(objects) => Ok(objects[0].clone_ref(py)),
            Keys::Engine { keys, objects } => match objects.get() {
                Some(objects) => Ok(objects[0].clone_ref(py)),
                None => Ok(key_to_py(py, keys[0].clone())?.unbind()),
            },
        }
    }

    fn first_key(&self, py: Python<'_>) -> PyResult<PartitionKey> {
        match &self.keys {
            Keys::Python(objects) => Ok(objects[0].bind(py).cast::<PyPartitionKey>()?.get().0.clone()),
            Keys::Engine { keys, .. } => Ok(keys[0].clone()),
        }
    }
}

#[pymethods]
impl PyPartitionContext {
    #[new]
    fn new(keys: Vec<Bound<'_, PyAny>>, definition: Bound<'_, PyAny>) -> PyResult<Self> {
        if keys.is_empty() {
            return Err(PyValueError::new_err("PartitionContext needs at least one key"));
        }
        let multi = extract_partitions(&definition).is_ok_and(|p| matches!(*p, Partitions::Multi(_)));
        let keys = keys
            .into_iter()
            .map(|k| {
                if k.is_instance_of::<PyPartitionKey>() {
                    Ok(k.unbind())
                } else {
                    Ok(key_to_py(k.py(), extract_key(&k, multi)?)?.unbind())
                }
            })
            .collect::<PyResult<Vec<_>>>()?;
        Ok(Self { keys: Keys::Python(keys), definition: definition.unbind() })
    }

    /// Every key the step is responsible for.
    #[getter]
    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.objects(py)?.iter().map(|k| k.bind(py)))
    }

    /// The first key.
    #[getter]
    fn key(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.first(py)
    }

    /// The definition the keys belong to.
    #[getter]
    fn definition(&self, py: Python<'_>) -> Py<PyAny> {
        self.definition.clone_ref(py)
    }

    /// The half-open naive window of `key` for a time-window definition (from the earliest
    /// value's start to the latest value's end), else `None`.
    fn time_window(&self, py: Python<'_>) -> PyResult<Option<(NaiveDateTime, NaiveDateTime)>> {
        let Ok(partitions) = extract_partitions(self.definition.bind(py)) else { return Ok(None) };
        let Partitions::TimeWindow(windows) = &*partitions else { return Ok(None) };
        let PartitionKey::Single(values) = self.first_key(py)? else { return Ok(None) };
        let mut span: Option<(NaiveDateTime, NaiveDateTime)> = None;
        for value in &values {
            let Some((start, end)) = windows.grid_index(value).and_then(|i| windows.window(i)) else {
                return Ok(None);
            };
            span = Some(match span {
                None => (start, end),
                Some((lo, hi)) => (lo.min(start), hi.max(end)),
            });
        }
        Ok(span)
    }

    /// Pickles as its keys and definition (contexts travel to parallel-executor workers).
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let arguments = (self.keys(py)?, self.definition.clone_ref(py));
        Ok((py.get_type::<Self>(), arguments).into_pyobject(py)?.into_any())
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let keys: Vec<String> = match &self.keys {
            Keys::Python(objects) => {
                objects.iter().take(5).map(|k| k.bind(py).str().map(|s| s.to_string())).collect::<PyResult<_>>()?
            }
            Keys::Engine { keys, .. } => keys.iter().take(5).map(ToString::to_string).collect(),
        };
        let more = if self.len() > 5 { format!(", … {} in all", self.len()) } else { String::new() };
        Ok(format!("PartitionContext(keys={keys:?}{more}, definition={})", self.definition.bind(py).repr()?))
    }
}
