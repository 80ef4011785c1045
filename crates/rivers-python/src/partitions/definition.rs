//! `PartitionsDefinition` and its variant classes `.Static`, `.TimeWindow`, `.Dynamic` and
//! `.Multi`. Factories check every construction rule at the call; a variant built with its raw
//! constructor keeps its error until it is used (a repository checks it at resolve).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use chrono::NaiveDateTime;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use rivers_core::partitions::{PartitionEnv, PartitionKey, Partitions, PartitionsData};

use super::key::{extract_key, key_to_py};
use crate::error::BindingError;
use crate::exceptions::PartitionDefinitionError;

/// How an asset's data is split into partitions; see the variant classes.
#[pyclass(name = "PartitionsDefinition", module = "rivers", subclass, frozen)]
pub(crate) struct PyPartitionsDefinition {
    declared: PartitionsData,
    compiled: Result<Arc<Partitions>, String>,
}

/// A fixed, ordered list of keys.
#[pyclass(name = "Static", module = "rivers", extends = PyPartitionsDefinition, frozen)]
pub(crate) struct PyStaticPartitions;

/// Windows on a cron or interval grid.
#[pyclass(name = "TimeWindow", module = "rivers", extends = PyPartitionsDefinition, frozen)]
pub(crate) struct PyTimeWindowPartitions;

/// A named key set kept in storage.
#[pyclass(name = "Dynamic", module = "rivers", extends = PyPartitionsDefinition, frozen)]
pub(crate) struct PyDynamicPartitions;

/// The cartesian product of named dimensions.
#[pyclass(name = "Multi", module = "rivers", extends = PyPartitionsDefinition, frozen)]
pub(crate) struct PyMultiPartitions {
    dimensions: Vec<(String, Py<PyAny>)>,
}

/// The host's local wall-clock time, as open-ended grids see it.
pub(crate) fn local_now() -> NaiveDateTime {
    chrono::Local::now().naive_local()
}

/// A datetime argument as a naive wall-clock time (a time zone is dropped, its fields kept).
fn naive(value: &Bound<'_, PyAny>) -> PyResult<NaiveDateTime> {
    if value.getattr("tzinfo").is_ok_and(|tz| !tz.is_none()) {
        let kwargs = PyDict::new(value.py());
        kwargs.set_item("tzinfo", value.py().None())?;
        return value.call_method("replace", (), Some(&kwargs))?.extract();
    }
    value.extract()
}

fn optional_naive(value: Option<&Bound<'_, PyAny>>) -> PyResult<Option<NaiveDateTime>> {
    value.filter(|v| !v.is_none()).map(naive).transpose()
}

fn raise(err: rivers_core::Error) -> PyErr {
    BindingError::from(err).into()
}

impl PyPartitionsDefinition {
    /// The compiled definition, or `PartitionDefinitionError` for a variant that breaks a rule.
    pub(crate) fn partitions(&self) -> PyResult<&Arc<Partitions>> {
        self.compiled.as_ref().map_err(|message| PartitionDefinitionError::new_err(message.clone()))
    }
}

/// The compiled definition of a `PartitionsDefinition` argument, or why it breaks a rule.
pub(crate) fn declared_partitions(obj: &Bound<'_, PyAny>) -> PyResult<Result<Arc<Partitions>, String>> {
    let definition = obj.cast::<PyPartitionsDefinition>().map_err(|_| {
        pyo3::exceptions::PyTypeError::new_err(format!(
            "partitions_def must be a PartitionsDefinition or the name of one, got {}",
            obj.get_type().name().map(|n| n.to_string()).unwrap_or_default()
        ))
    })?;
    Ok(definition.get().compiled.clone())
}

/// The compiled definition of a `PartitionsDefinition` argument.
pub(crate) fn extract_partitions(obj: &Bound<'_, PyAny>) -> PyResult<Arc<Partitions>> {
    let definition = obj.cast::<PyPartitionsDefinition>().map_err(|_| {
        pyo3::exceptions::PyTypeError::new_err(format!(
            "expected a PartitionsDefinition, got {}",
            obj.get_type().name().map(|n| n.to_string()).unwrap_or_default()
        ))
    })?;
    definition.get().partitions().cloned()
}

/// Wraps a definition in the variant class its declaration names.
fn new_variant(
    py: Python<'_>,
    base: PyPartitionsDefinition,
    dimensions: Vec<(String, Py<PyAny>)>,
) -> PyResult<Bound<'_, PyAny>> {
    let init = PyClassInitializer::from;
    Ok(match base.declared {
        PartitionsData::Static { .. } => Bound::new(py, init(base).add_subclass(PyStaticPartitions))?.into_any(),
        PartitionsData::TimeWindow { .. } => {
            Bound::new(py, init(base).add_subclass(PyTimeWindowPartitions))?.into_any()
        }
        PartitionsData::Dynamic { .. } => Bound::new(py, init(base).add_subclass(PyDynamicPartitions))?.into_any(),
        PartitionsData::Multi { .. } => {
            Bound::new(py, init(base).add_subclass(PyMultiPartitions { dimensions }))?.into_any()
        }
    })
}

/// A definition from its declaration, raising at once for a factory.
fn declare(
    py: Python<'_>,
    declared: PartitionsData,
    dimensions: Vec<(String, Py<PyAny>)>,
) -> PyResult<Bound<'_, PyAny>> {
    let compiled = Partitions::try_from(declared.clone()).map(Arc::new).map_err(raise)?;
    new_variant(py, PyPartitionsDefinition { declared, compiled: Ok(compiled) }, dimensions)
}

/// A variant from its raw constructor: a broken rule is kept until the definition is used.
fn declare_raw(declared: PartitionsData) -> PyPartitionsDefinition {
    let compiled = Partitions::try_from(declared.clone()).map(Arc::new).map_err(|e| e.to_string());
    PyPartitionsDefinition { declared, compiled }
}

fn time_window_data(
    start: &Bound<'_, PyAny>,
    cron_schedule: Option<String>,
    interval_seconds: Option<f64>,
    end: Option<&Bound<'_, PyAny>>,
    fmt: Option<String>,
    default_fmt: &str,
) -> PyResult<PartitionsData> {
    Ok(PartitionsData::TimeWindow {
        cron_schedule,
        interval_seconds,
        start: naive(start)?,
        end: optional_naive(end)?,
        fmt: fmt.unwrap_or_else(|| default_fmt.to_owned()),
    })
}

/// `daily()` / `hourly()`: a cron grid with its default key format.
fn fixed_grid<'py>(
    py: Python<'py>,
    cron: &str,
    default_fmt: &str,
    start: &Bound<'py, PyAny>,
    end: Option<&Bound<'py, PyAny>>,
    fmt: Option<String>,
) -> PyResult<Bound<'py, PyAny>> {
    declare(py, time_window_data(start, Some(cron.into()), None, end, fmt, default_fmt)?, Vec::new())
}

/// The declared dimensions of a multi definition and their Python objects.
type DimensionPairs = (Vec<(String, PartitionsData)>, Vec<(String, Py<PyAny>)>);

/// `(name, definition)` pairs of a multi declaration.
fn dimension_pairs<'py>(items: impl IntoIterator<Item = (String, Bound<'py, PyAny>)>) -> PyResult<DimensionPairs> {
    let mut declared = Vec::new();
    let mut objects = Vec::new();
    for (name, dim) in items {
        let definition = dim.cast::<PyPartitionsDefinition>().map_err(|_| {
            pyo3::exceptions::PyTypeError::new_err(format!("dimension '{name}' must be a PartitionsDefinition"))
        })?;
        declared.push((name.clone(), definition.get().declared.clone()));
        objects.push((name, dim.unbind()));
    }
    Ok((declared, objects))
}

#[pymethods]
impl PyPartitionsDefinition {
    /// A fixed list of keys, in range order.
    #[staticmethod]
    fn static_(py: Python<'_>, keys: Vec<String>) -> PyResult<Bound<'_, PyAny>> {
        declare(py, PartitionsData::Static { keys }, Vec::new())
    }

    /// One window per day (`fmt` defaults to `%Y-%m-%d`).
    #[staticmethod]
    #[pyo3(signature = (start, end = None, fmt = None))]
    fn daily<'py>(
        py: Python<'py>,
        start: &Bound<'py, PyAny>,
        end: Option<&Bound<'py, PyAny>>,
        fmt: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        fixed_grid(py, "0 0 * * *", rivers_core::partitions::DAILY_FORMAT, start, end, fmt)
    }

    /// One window per hour (`fmt` defaults to `%Y-%m-%dT%H:00`).
    #[staticmethod]
    #[pyo3(signature = (start, end = None, fmt = None))]
    fn hourly<'py>(
        py: Python<'py>,
        start: &Bound<'py, PyAny>,
        end: Option<&Bound<'py, PyAny>>,
        fmt: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        fixed_grid(py, "0 * * * *", rivers_core::partitions::HOURLY_FORMAT, start, end, fmt)
    }

    /// Windows on a cron grid or of a fixed length (exactly one of the two).
    #[staticmethod]
    #[pyo3(signature = (start, cron_schedule = None, interval_seconds = None, end = None, fmt = None))]
    fn time_window<'py>(
        py: Python<'py>,
        start: &Bound<'py, PyAny>,
        cron_schedule: Option<String>,
        interval_seconds: Option<f64>,
        end: Option<&Bound<'py, PyAny>>,
        fmt: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let data = time_window_data(
            start,
            cron_schedule,
            interval_seconds,
            end,
            fmt,
            rivers_core::partitions::DEFAULT_TIME_FORMAT,
        )?;
        declare(py, data, Vec::new())
    }

    /// The cartesian product of named dimensions, the first varying slowest.
    #[staticmethod]
    fn multi<'py>(py: Python<'py>, dimensions: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyAny>> {
        let items = dimensions.iter().map(|(k, v)| Ok((k.extract::<String>()?, v))).collect::<PyResult<Vec<_>>>()?;
        let (declared, objects) = dimension_pairs(items)?;
        declare(py, PartitionsData::Multi { dimensions: declared }, objects)
    }

    /// A named key set kept in storage.
    #[staticmethod]
    fn dynamic(py: Python<'_>, name: String) -> PyResult<Bound<'_, PyAny>> {
        declare(py, PartitionsData::Dynamic { name }, Vec::new())
    }

    /// Every individual partition that exists now (dynamic sets list none here: read them from
    /// storage).
    fn get_partition_keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let partitions = self.partitions()?;
        let env = PartitionEnv::at(local_now());
        all_keys(py, partitions, &env)
    }

    /// Whether every individual partition `key` covers belongs to this definition.
    fn validate_partition_key(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let partitions = self.partitions()?;
        let Ok(key) = extract_key(key, matches!(**partitions, Partitions::Multi(_))) else {
            return Ok(false);
        };
        Ok(partitions.validate(&key, &PartitionEnv::at(local_now())))
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.cast::<Self>().is_ok_and(|o| o.get().declared == self.declared)
    }

    fn __hash__(&self) -> u64 {
        let mut hasher = DefaultHasher::new();
        serde_json::to_string(&self.declared).unwrap_or_default().hash(&mut hasher);
        hasher.finish()
    }

    fn __repr__(&self) -> String {
        repr_declared(&self.declared)
    }

    /// Pickles as its declaration (definitions travel to parallel-executor workers).
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, (String,))> {
        let json = serde_json::to_string(&self.declared).unwrap_or_default();
        Ok((py.get_type::<PyPartitionsDefinition>().getattr("_from_declaration")?, (json,)))
    }

    /// Rebuilds a definition from its pickled declaration (a broken one stays broken).
    #[staticmethod]
    fn _from_declaration<'py>(py: Python<'py>, json: &str) -> PyResult<Bound<'py, PyAny>> {
        let declared: PartitionsData = serde_json::from_str(json)
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("not a partitions declaration: {e}")))?;
        from_declaration(py, declared)
    }
}

fn from_declaration(py: Python<'_>, declared: PartitionsData) -> PyResult<Bound<'_, PyAny>> {
    let dimensions = match &declared {
        PartitionsData::Multi { dimensions } => dimensions
            .iter()
            .map(|(name, dim)| Ok((name.clone(), from_declaration(py, dim.clone())?.unbind())))
            .collect::<PyResult<Vec<_>>>()?,
        _ => Vec::new(),
    };
    new_variant(py, declare_raw(declared), dimensions)
}

fn repr_declared(declared: &PartitionsData) -> String {
    match declared {
        PartitionsData::Static { keys } => format!("PartitionsDefinition.Static(keys={keys:?})"),
        PartitionsData::TimeWindow { cron_schedule, interval_seconds, start, end, fmt } => {
            let grid = match (cron_schedule, interval_seconds) {
                (Some(cron), _) => format!("cron_schedule={cron:?}"),
                (None, Some(seconds)) => format!("interval_seconds={seconds}"),
                (None, None) => "no grid".into(),
            };
            let end = end.map_or_else(|| "None".into(), |e| format!("'{e}'"));
            format!("PartitionsDefinition.TimeWindow({grid}, start='{start}', end={end}, fmt={fmt:?})")
        }
        PartitionsData::Dynamic { name } => format!("PartitionsDefinition.Dynamic(name={name:?})"),
        PartitionsData::Multi { dimensions } => {
            let parts: Vec<String> = dimensions.iter().map(|(n, d)| format!("{n:?}: {}", repr_declared(d))).collect();
            format!("PartitionsDefinition.Multi({{{}}})", parts.join(", "))
        }
    }
}

/// Every current individual key of `partitions` as `PartitionKey` objects.
pub(crate) fn all_keys<'py>(
    py: Python<'py>,
    partitions: &Partitions,
    env: &PartitionEnv,
) -> PyResult<Bound<'py, PyList>> {
    if let Partitions::TimeWindow(windows) = partitions {
        let count = windows.count(env.now) as usize;
        let keys = windows.keys_from(0).take(count).map(|k| key_to_py(py, PartitionKey::Single(vec![k])));
        return PyList::new(py, keys.collect::<PyResult<Vec<_>>>()?);
    }
    let keys = partitions
        .all_coords(env)
        .iter()
        .filter_map(|coords| partitions.key_of(coords, env))
        .map(|key| key_to_py(py, key))
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, keys)
}

fn declared_of(base: &PyPartitionsDefinition) -> &PartitionsData {
    &base.declared
}

#[pymethods]
impl PyStaticPartitions {
    #[new]
    fn new(keys: Vec<String>) -> (Self, PyPartitionsDefinition) {
        (Self, declare_raw(PartitionsData::Static { keys }))
    }

    /// The keys, in range order.
    #[getter]
    fn keys(slf: PyRef<'_, Self>) -> Vec<String> {
        match declared_of(slf.as_super()) {
            PartitionsData::Static { keys } => keys.clone(),
            _ => Vec::new(),
        }
    }
}

#[pymethods]
impl PyTimeWindowPartitions {
    #[new]
    #[pyo3(signature = (start, cron_schedule = None, interval_seconds = None, end = None, fmt = None))]
    fn new(
        start: &Bound<'_, PyAny>,
        cron_schedule: Option<String>,
        interval_seconds: Option<f64>,
        end: Option<&Bound<'_, PyAny>>,
        fmt: Option<String>,
    ) -> PyResult<(Self, PyPartitionsDefinition)> {
        let data = time_window_data(
            start,
            cron_schedule,
            interval_seconds,
            end,
            fmt,
            rivers_core::partitions::DEFAULT_TIME_FORMAT,
        )?;
        Ok((Self, declare_raw(data)))
    }

    /// The cron expression of a cron grid.
    #[getter]
    fn cron_schedule(slf: PyRef<'_, Self>) -> Option<String> {
        match declared_of(slf.as_super()) {
            PartitionsData::TimeWindow { cron_schedule, .. } => cron_schedule.clone(),
            _ => None,
        }
    }

    /// The window length of an interval grid.
    #[getter]
    fn interval_seconds(slf: PyRef<'_, Self>) -> Option<f64> {
        match declared_of(slf.as_super()) {
            PartitionsData::TimeWindow { interval_seconds, .. } => *interval_seconds,
            _ => None,
        }
    }

    /// Naive start of the grid.
    #[getter]
    fn start(slf: PyRef<'_, Self>) -> Option<NaiveDateTime> {
        match declared_of(slf.as_super()) {
            PartitionsData::TimeWindow { start, .. } => Some(*start),
            _ => None,
        }
    }

    /// Exclusive bound on window starts.
    #[getter]
    fn end(slf: PyRef<'_, Self>) -> Option<NaiveDateTime> {
        match declared_of(slf.as_super()) {
            PartitionsData::TimeWindow { end, .. } => *end,
            _ => None,
        }
    }

    /// The key format.
    #[getter]
    fn fmt(slf: PyRef<'_, Self>) -> String {
        match declared_of(slf.as_super()) {
            PartitionsData::TimeWindow { fmt, .. } => fmt.clone(),
            _ => String::new(),
        }
    }
}

#[pymethods]
impl PyDynamicPartitions {
    #[new]
    fn new(name: String) -> (Self, PyPartitionsDefinition) {
        (Self, declare_raw(PartitionsData::Dynamic { name }))
    }

    /// The key set's name in storage.
    #[getter]
    fn name(slf: PyRef<'_, Self>) -> String {
        match declared_of(slf.as_super()) {
            PartitionsData::Dynamic { name } => name.clone(),
            _ => String::new(),
        }
    }
}

#[pymethods]
impl PyMultiPartitions {
    #[new]
    fn new(dimensions: &Bound<'_, PyAny>) -> PyResult<(Self, PyPartitionsDefinition)> {
        let items: Vec<(String, Bound<'_, PyAny>)> = match dimensions.cast::<PyDict>() {
            Ok(dict) => dict.iter().map(|(k, v)| Ok((k.extract()?, v))).collect::<PyResult<_>>()?,
            Err(_) => dimensions.extract()?,
        };
        let (declared, objects) = dimension_pairs(items)?;
        Ok((Self { dimensions: objects }, declare_raw(PartitionsData::Multi { dimensions: declared })))
    }

    /// `(name, definition)` pairs in declaration order.
    #[getter]
    fn dimensions<'py>(slf: PyRef<'py, Self>) -> PyResult<Bound<'py, PyList>> {
        let py = slf.py();
        let pairs = slf
            .dimensions
            .iter()
            .map(|(name, dim)| PyTuple::new(py, [name.into_pyobject(py)?.into_any(), dim.bind(py).clone()]))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, pairs)
    }
}
