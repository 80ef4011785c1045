//! `PartitionKey` and `PartitionKeyRange`: newtypes over the core values, with the variant
//! classes `PartitionKey.Single`, `.Multi` and `.Set`.

use std::collections::BTreeMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use rivers_core::partitions::{DimSelection, PartitionKey, PartitionKeyRange};

/// A partition key; see the variant classes.
#[pyclass(name = "PartitionKey", module = "rivers", subclass, frozen, eq, hash)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct PyPartitionKey(pub(crate) PartitionKey);

/// Values of a one-dimensional definition.
#[pyclass(name = "Single", module = "rivers", extends = PyPartitionKey, frozen)]
pub(crate) struct PySingleKey;

/// Values per dimension.
#[pyclass(name = "Multi", module = "rivers", extends = PyPartitionKey, frozen)]
pub(crate) struct PyMultiKey;

/// Keys that do not form a cartesian product.
#[pyclass(name = "Set", module = "rivers", extends = PyPartitionKey, frozen)]
pub(crate) struct PySetKey;

fn value_error(message: String) -> PyErr {
    PyValueError::new_err(message)
}

/// `str` or `list[str]` as a non-empty list.
fn values_of(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<String>> {
    let values: Vec<String> = if let Ok(text) = obj.cast::<PyString>() {
        vec![text.to_str()?.to_owned()]
    } else {
        obj.extract().map_err(|_| value_error(format!("{what} must be a str or a list of str")))?
    };
    if values.is_empty() {
        return Err(value_error(format!("{what} needs at least one value")));
    }
    Ok(values)
}

fn multi_values(keys: &Bound<'_, PyAny>) -> PyResult<BTreeMap<String, Vec<String>>> {
    let mut dims = BTreeMap::new();
    for item in keys.call_method0("items")?.try_iter()? {
        let (dim, values): (String, Bound<'_, PyAny>) = item?.extract()?;
        let values = values_of(&values, &format!("dimension '{dim}'"))?;
        dims.insert(dim, values);
    }
    if dims.is_empty() {
        return Err(value_error("PartitionKey.multi() needs at least one dimension".into()));
    }
    Ok(dims)
}

/// The Python object of a core key, as its variant class.
pub(crate) fn key_to_py(py: Python<'_>, key: PartitionKey) -> PyResult<Bound<'_, PyAny>> {
    Ok(match key {
        PartitionKey::Single(_) => {
            Bound::new(py, PyClassInitializer::from(PyPartitionKey(key)).add_subclass(PySingleKey))?.into_any()
        }
        PartitionKey::Multi(_) => {
            Bound::new(py, PyClassInitializer::from(PyPartitionKey(key)).add_subclass(PyMultiKey))?.into_any()
        }
        PartitionKey::Set(_) => {
            Bound::new(py, PyClassInitializer::from(PyPartitionKey(key)).add_subclass(PySetKey))?.into_any()
        }
    })
}

/// Reads a key argument: a `PartitionKey`, or a `str` in display form (`multi` says whether the
/// target definition has several dimensions).
pub(crate) fn extract_key(obj: &Bound<'_, PyAny>, multi: bool) -> PyResult<PartitionKey> {
    if let Ok(key) = obj.cast::<PyPartitionKey>() {
        return Ok(key.get().0.clone());
    }
    if let Ok(text) = obj.cast::<PyString>() {
        return PartitionKey::parse_display(text.to_str()?, multi).map_err(value_error);
    }
    Err(pyo3::exceptions::PyTypeError::new_err(format!(
        "expected a PartitionKey or a str, got {}",
        obj.get_type().name()?
    )))
}

#[pymethods]
impl PyPartitionKey {
    /// One value, or several values the key covers.
    #[staticmethod]
    fn single<'py>(py: Python<'py>, key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        key_to_py(py, PartitionKey::Single(values_of(key, "PartitionKey.single()")?))
    }

    /// Dimension → value or values.
    #[staticmethod]
    fn multi<'py>(py: Python<'py>, keys: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        key_to_py(py, PartitionKey::Multi(multi_values(keys)?))
    }

    /// The JSON transport form (a JSON object).
    fn to_json(&self) -> String {
        self.0.to_json()
    }

    /// Reads the JSON transport form; `ValueError` when malformed.
    #[staticmethod]
    fn from_json<'py>(py: Python<'py>, s: &str) -> PyResult<Bound<'py, PyAny>> {
        key_to_py(py, PartitionKey::from_json(s).map_err(value_error)?)
    }

    fn __str__(&self) -> String {
        self.0.to_string()
    }

    fn __repr__(&self) -> String {
        repr_key(&self.0)
    }

    /// Pickles as its JSON form (keys travel to parallel-executor workers).
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, (String,))> {
        Ok((py.get_type::<PyPartitionKey>().getattr("from_json")?, (self.0.to_json(),)))
    }
}

fn repr_key(key: &PartitionKey) -> String {
    match key {
        PartitionKey::Single(values) => format!("PartitionKey.Single({values:?})"),
        PartitionKey::Multi(dims) => {
            let parts: Vec<String> = dims.iter().map(|(d, v)| format!("{d:?}: {v:?}")).collect();
            format!("PartitionKey.Multi({{{}}})", parts.join(", "))
        }
        PartitionKey::Set(keys) => {
            let parts: Vec<String> = keys.iter().map(repr_key).collect();
            format!("PartitionKey.Set([{}])", parts.join(", "))
        }
    }
}

#[pymethods]
impl PySingleKey {
    #[new]
    fn new(key: &Bound<'_, PyAny>) -> PyResult<(Self, PyPartitionKey)> {
        Ok((Self, PyPartitionKey(PartitionKey::Single(values_of(key, "PartitionKey.Single")?))))
    }

    /// The values.
    #[getter]
    fn key(slf: PyRef<'_, Self>) -> Vec<String> {
        match &slf.as_super().0 {
            PartitionKey::Single(values) => values.clone(),
            _ => Vec::new(),
        }
    }
}

#[pymethods]
impl PyMultiKey {
    #[new]
    fn new(keys: &Bound<'_, PyAny>) -> PyResult<(Self, PyPartitionKey)> {
        Ok((Self, PyPartitionKey(PartitionKey::Multi(multi_values(keys)?))))
    }

    /// Dimension → values.
    #[getter]
    fn keys<'py>(slf: PyRef<'py, Self>) -> PyResult<Bound<'py, PyDict>> {
        let py = slf.py();
        let dict = PyDict::new(py);
        if let PartitionKey::Multi(dims) = &slf.as_super().0 {
            for (dim, values) in dims {
                dict.set_item(dim, values)?;
            }
        }
        Ok(dict)
    }
}

#[pymethods]
impl PySetKey {
    /// The bundled keys.
    #[getter]
    fn keys<'py>(slf: PyRef<'py, Self>) -> PyResult<Bound<'py, PyList>> {
        let py = slf.py();
        let items = match &slf.as_super().0 {
            PartitionKey::Set(keys) => keys.iter().map(|k| key_to_py(py, k.clone())).collect::<PyResult<Vec<_>>>()?,
            _ => Vec::new(),
        };
        PyList::new(py, items)
    }
}

// ---- ranges --------------------------------------------------------------------------------

/// An inclusive key range, or per-dimension ranges and key lists. Endpoints are checked when the
/// range is used.
#[pyclass(name = "PartitionKeyRange", module = "rivers", frozen)]
#[derive(Clone)]
pub(crate) struct PyPartitionKeyRange(pub(crate) PartitionKeyRange);

#[pymethods]
impl PyPartitionKeyRange {
    /// `from_key..=to_key` over a one-dimensional definition.
    #[staticmethod]
    fn single(from_key: String, to_key: String) -> Self {
        Self(PartitionKeyRange::Single { from: from_key, to: to_key })
    }

    /// Per dimension: an inclusive `(from, to)` tuple or an explicit list of keys.
    #[staticmethod]
    fn multi(dimensions: &Bound<'_, PyDict>) -> PyResult<Self> {
        let mut dims = BTreeMap::new();
        for (name, selection) in dimensions.iter() {
            let name: String = name.extract()?;
            let selection = if let Ok(pair) = selection.cast::<PyTuple>() {
                let (from, to): (String, String) = pair.extract().map_err(|_| {
                    value_error(format!("dimension '{name}': a range is a (from, to) tuple of two str"))
                })?;
                DimSelection::Range(from, to)
            } else {
                let keys: Vec<String> = selection.extract().map_err(|_| {
                    value_error(format!("dimension '{name}': expected a (from, to) tuple or a list of keys"))
                })?;
                DimSelection::Keys(keys)
            };
            dims.insert(name, selection);
        }
        Ok(Self(PartitionKeyRange::Multi(dims)))
    }

    /// Reads the JSON form written by pickling.
    #[staticmethod]
    fn _from_json(text: &str) -> PyResult<Self> {
        serde_json::from_str(text).map(Self).map_err(|e| value_error(format!("not a partition key range: {e}")))
    }

    /// Pickles as its JSON form (a request travels back from a subprocess evaluation).
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, (String,))> {
        let text = serde_json::to_string(&self.0).map_err(|e| value_error(e.to_string()))?;
        Ok((py.get_type::<PyPartitionKeyRange>().getattr("_from_json")?, (text,)))
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.cast::<Self>().is_ok_and(|o| o.get().0.normalized() == self.0.normalized())
    }

    fn __hash__(&self) -> u64 {
        let mut hasher = DefaultHasher::new();
        self.0.normalized().hash(&mut hasher);
        hasher.finish()
    }

    fn __repr__(&self) -> String {
        match &self.0.normalized() {
            PartitionKeyRange::Single { from, to } => format!("PartitionKeyRange.single({from:?}, {to:?})"),
            PartitionKeyRange::Multi(dims) => {
                let parts: Vec<String> = dims
                    .iter()
                    .map(|(name, sel)| match sel {
                        DimSelection::Range(a, b) => format!("{name:?}: ({a:?}, {b:?})"),
                        DimSelection::Keys(keys) => format!("{name:?}: {keys:?}"),
                    })
                    .collect();
                format!("PartitionKeyRange.multi({{{}}})", parts.join(", "))
            }
        }
    }
}
