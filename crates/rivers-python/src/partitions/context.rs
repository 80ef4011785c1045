//! `PartitionContext`: the keys a step (or a load, or a write) is responsible for and the
//! definition they belong to.

use chrono::NaiveDateTime;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyList;
use rivers_core::partitions::{PartitionKey, Partitions};

use super::definition::extract_partitions;
use super::key::{PyPartitionKey, extract_key, key_to_py};

/// Keys and their definition.
#[pyclass(name = "PartitionContext", module = "rivers", frozen)]
pub(crate) struct PyPartitionContext {
    keys: Vec<Py<PyAny>>,
    definition: Py<PyAny>,
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
        Ok(Self { keys, definition: definition.unbind() })
    }

    /// Every key the step is responsible for.
    #[getter]
    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.keys.iter().map(|k| k.bind(py)))
    }

    /// The first key.
    #[getter]
    fn key(&self, py: Python<'_>) -> Py<PyAny> {
        self.keys[0].clone_ref(py)
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
        let key = self.keys[0].bind(py).cast::<PyPartitionKey>()?.get().0.clone();
        let PartitionKey::Single(values) = key else { return Ok(None) };
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
        let keys: Vec<String> =
            self.keys.iter().take(5).map(|k| k.bind(py).str().map(|s| s.to_string())).collect::<PyResult<_>>()?;
        let more = if self.keys.len() > 5 { format!(", … {} in all", self.keys.len()) } else { String::new() };
        Ok(format!("PartitionContext(keys={keys:?}{more}, definition={})", self.definition.bind(py).repr()?))
    }
}
