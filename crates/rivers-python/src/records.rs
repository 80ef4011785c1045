//! Read-only Python views of stored records.

use pyo3::prelude::*;
use rivers_core::partitions::PartitionKey;

use crate::partitions::key_to_py;
use pyo3::types::PyType;
use rivers_core::{LaunchedBy, UserRef};

/// One stored run event.
#[pyclass(name = "StoredEvent", module = "rivers._core.storage", frozen, get_all)]
#[derive(Clone)]
pub(crate) struct PyStoredEvent {
    id: String,
    event_type: &'static str,
    asset_key: Option<String>,
    run_id: String,
    partition_key: Option<String>,
    timestamp: i64,
    metadata: Vec<(String, String)>,
    data_version: Option<String>,
    code_version: Option<String>,
    input_data_versions: Vec<(String, String)>,
}

impl From<rivers_storage::StoredEvent> for PyStoredEvent {
    fn from(e: rivers_storage::StoredEvent) -> Self {
        PyStoredEvent {
            id: e.id,
            event_type: e.event_type.as_str(),
            asset_key: e.asset_key,
            run_id: e.run_id,
            partition_key: e.partition_key,
            timestamp: e.timestamp,
            metadata: e.metadata,
            data_version: e.data_version,
            code_version: e.code_version,
            input_data_versions: e.input_data_versions,
        }
    }
}

#[pymethods]
impl PyStoredEvent {
    fn __repr__(&self) -> String {
        format!(
            "StoredEvent(event_type={:?}, asset_key={:?}, run_id={:?}, data_version={:?})",
            self.event_type, self.asset_key, self.run_id, self.data_version
        )
    }
}

/// One step execution's captured output.
#[pyclass(name = "StoredLog", module = "rivers._core.storage", frozen, get_all)]
#[derive(Clone)]
pub(crate) struct PyStoredLog {
    id: String,
    run_id: String,
    step_key: String,
    timestamp: i64,
    stdout: Option<String>,
    stderr: Option<String>,
    logs: Option<String>,
}

impl From<rivers_storage::StoredLog> for PyStoredLog {
    fn from(l: rivers_storage::StoredLog) -> Self {
        PyStoredLog {
            id: l.id,
            run_id: l.run_id,
            step_key: l.step_key,
            timestamp: l.timestamp,
            stdout: l.stdout,
            stderr: l.stderr,
            logs: l.logs,
        }
    }
}

#[pymethods]
impl PyStoredLog {
    fn __repr__(&self) -> String {
        format!("StoredLog(run_id={:?}, step_key={:?})", self.run_id, self.step_key)
    }
}

/// What storage knows about one asset.
#[pyclass(name = "AssetRecord", module = "rivers._core.storage", frozen, get_all)]
#[derive(Clone)]
pub(crate) struct PyAssetRecord {
    asset_key: String,
    tags: Vec<String>,
    kinds: Vec<String>,
    group: Option<String>,
    code_version: Option<String>,
    last_event_id: Option<String>,
    last_run_id: Option<String>,
    last_timestamp: Option<i64>,
    last_data_version: Option<String>,
    last_materialization_code_version: Option<String>,
    last_input_data_versions: Vec<(String, String)>,
    pool: Vec<(String, i64)>,
}

impl From<rivers_storage::AssetRecord> for PyAssetRecord {
    fn from(r: rivers_storage::AssetRecord) -> Self {
        PyAssetRecord {
            asset_key: r.asset_key,
            tags: r.tags,
            kinds: r.kinds,
            group: r.group,
            code_version: r.code_version,
            last_event_id: r.last_event_id,
            last_run_id: r.last_run_id,
            last_timestamp: r.last_timestamp,
            last_data_version: r.last_data_version,
            last_materialization_code_version: r.last_materialization_code_version,
            last_input_data_versions: r.last_input_data_versions,
            pool: r.pool,
        }
    }
}

#[pymethods]
impl PyAssetRecord {
    fn __repr__(&self) -> String {
        format!("AssetRecord(asset_key={:?}, last_data_version={:?})", self.asset_key, self.last_data_version)
    }
}

/// Why an asset is stale.
#[pyclass(name = "StaleCause", module = "rivers._core.storage", frozen, get_all)]
#[derive(Clone)]
pub(crate) struct PyStaleCause {
    asset_key: String,
    category: String,
    reason: String,
    dependency: Option<String>,
}

impl From<rivers_core::StaleCause> for PyStaleCause {
    fn from(c: rivers_core::StaleCause) -> Self {
        PyStaleCause {
            asset_key: c.asset_key,
            category: c.category.to_string(),
            reason: c.reason,
            dependency: c.dependency,
        }
    }
}

#[pymethods]
impl PyStaleCause {
    fn __repr__(&self) -> String {
        format!(
            "StaleCause(asset_key={:?}, category={:?}, dependency={:?})",
            self.asset_key, self.category, self.dependency
        )
    }
}

/// A run, as stored.
/// A run's partition key as stored: its JSON form (a key stored as a bare string by an older
/// build reads as a one-value key). It reaches Python as a `PartitionKey`.
#[derive(Clone)]
pub(crate) struct RunKey(PartitionKey);

impl RunKey {
    fn from_stored(value: serde_json::Value) -> Option<Self> {
        match value {
            serde_json::Value::String(text) => Some(RunKey(PartitionKey::single(text))),
            other => serde_json::from_value(other).ok().map(RunKey),
        }
    }
}

impl<'py> IntoPyObject<'py> for &RunKey {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        key_to_py(py, self.0.clone())
    }
}

#[pyclass(name = "RunRecord", module = "rivers._core.storage", frozen, get_all)]
#[derive(Clone)]
pub(crate) struct PyRunRecord {
    run_id: String,
    job_name: Option<String>,
    status: &'static str,
    start_time: i64,
    end_time: Option<i64>,
    tags: Vec<(String, String)>,
    node_names: Vec<String>,
    priority: i64,
    partition_key: Option<RunKey>,
    block_reason: Option<String>,
    launched_by: PyLaunchedBy,
    /// Why a run failed (its first failed step, a storage error, a dead owner): an extension
    /// of the spec's fields (docs/runs.md).
    message: Option<String>,
}

impl From<rivers_storage::RunRecord> for PyRunRecord {
    fn from(r: rivers_storage::RunRecord) -> Self {
        PyRunRecord {
            run_id: r.run_id,
            job_name: r.job_name,
            status: r.status.as_str(),
            start_time: r.start_time,
            end_time: r.end_time,
            tags: r.tags,
            node_names: r.node_names,
            priority: r.priority,
            partition_key: r.partition_key.and_then(RunKey::from_stored),
            block_reason: r.block_reason,
            launched_by: PyLaunchedBy(r.launched_by),
            message: r.message,
        }
    }
}

#[pymethods]
impl PyRunRecord {
    fn __repr__(&self) -> String {
        format!("RunRecord(run_id={:?}, job_name={:?}, status={:?})", self.run_id, self.job_name, self.status)
    }
}

/// One automation evaluation.
#[pyclass(name = "StoredTick", module = "rivers._core.storage", frozen, get_all)]
#[derive(Clone)]
pub(crate) struct PyStoredTick {
    id: String,
    automation_name: String,
    automation_type: String,
    status: String,
    timestamp: i64,
    run_ids: Vec<String>,
    backfill_ids: Vec<String>,
    skip_reason: Option<String>,
    error: Option<String>,
    cursor: Option<String>,
}

impl From<rivers_storage::StoredTick> for PyStoredTick {
    fn from(t: rivers_storage::StoredTick) -> Self {
        PyStoredTick {
            id: t.id,
            automation_name: t.automation_name,
            automation_type: t.automation_type.as_str().to_owned(),
            status: t.status.as_str().to_owned(),
            timestamp: t.timestamp,
            run_ids: t.run_ids,
            backfill_ids: t.backfill_ids,
            skip_reason: t.skip_reason,
            error: t.error,
            cursor: t.cursor,
        }
    }
}

/// Where a run came from.
#[pyclass(name = "LaunchedBy", module = "rivers._core.storage", frozen, eq, hash)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct PyLaunchedBy(pub(crate) LaunchedBy);

#[pymethods]
impl PyLaunchedBy {
    #[classmethod]
    fn manual(_cls: &Bound<'_, PyType>) -> Self {
        PyLaunchedBy(LaunchedBy::MANUAL)
    }

    #[classmethod]
    fn schedule(_cls: &Bound<'_, PyType>, name: String) -> Self {
        PyLaunchedBy(LaunchedBy::Schedule { name })
    }

    #[classmethod]
    fn sensor(_cls: &Bound<'_, PyType>, name: String) -> Self {
        PyLaunchedBy(LaunchedBy::Sensor { name })
    }

    #[classmethod]
    fn backfill(_cls: &Bound<'_, PyType>, backfill_id: String) -> Self {
        PyLaunchedBy(LaunchedBy::Backfill { backfill_id })
    }

    #[classmethod]
    fn condition(_cls: &Bound<'_, PyType>) -> Self {
        PyLaunchedBy(LaunchedBy::Condition)
    }

    #[getter]
    fn kind(&self) -> &'static str {
        self.0.kind()
    }

    #[getter]
    fn name(&self) -> Option<String> {
        match &self.0 {
            LaunchedBy::Schedule { name } | LaunchedBy::Sensor { name } => Some(name.clone()),
            _ => None,
        }
    }

    #[getter]
    fn backfill_id(&self) -> Option<String> {
        match &self.0 {
            LaunchedBy::Backfill { backfill_id } => Some(backfill_id.clone()),
            _ => None,
        }
    }

    /// The acting user of an authenticated UI launch; `None` for launches from Python.
    #[getter]
    fn user(&self) -> Option<PyUserRef> {
        match &self.0 {
            LaunchedBy::Manual { user } => user.clone().map(PyUserRef),
            _ => None,
        }
    }

    fn __repr__(&self) -> String {
        match (self.name(), self.backfill_id()) {
            (Some(name), _) => format!("LaunchedBy.{}({name:?})", self.kind()),
            (_, Some(id)) => format!("LaunchedBy.backfill({id:?})"),
            _ => format!("LaunchedBy.{}()", self.kind()),
        }
    }
}

/// The user behind a manual launch through the authenticated UI.
#[pyclass(name = "UserRef", module = "rivers._core.storage", frozen)]
#[derive(Clone)]
pub(crate) struct PyUserRef(UserRef);

#[pymethods]
impl PyUserRef {
    /// Stable id (OIDC `sub` or the forward-auth user header).
    #[getter]
    fn subject(&self) -> &str {
        &self.0.subject
    }

    #[getter]
    fn email(&self) -> Option<&str> {
        self.0.email.as_deref()
    }

    #[getter]
    fn name(&self) -> Option<&str> {
        self.0.name.as_deref()
    }

    /// `name`, else `email`, else `subject`.
    #[getter]
    fn display(&self) -> &str {
        self.0.display()
    }

    fn __repr__(&self) -> String {
        format!("UserRef(subject={:?})", self.0.subject)
    }
}
