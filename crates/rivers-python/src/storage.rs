//! `rivers._core.storage`: the `Storage` handle and its sync and `async_` query methods.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use rivers_core::partitions::Partitions;
use rivers_core::{PoolClaim, RunStatus};
use rivers_storage::{PartitionStatusKind, RemoteTarget, Storage, StorageKind};

use crate::error::BindingError;
use crate::graph::{JobFields, PyGraph};
use crate::partitions::{PyPartitionKeyRange, key_to_py};
use crate::pools::{PyConcurrencyClaimStatus, PyPoolInfo, PyPoolLimit, PySlotHolder, lease_arg};
use crate::records::{
    PyAssetRecord, PyLaunchedBy, PyRunRecord, PyStaleCause, PyStoredEvent, PyStoredLog, PyStoredTick,
};
use crate::runtime::{block_on, runtime};
use crate::schedule::Automations;

/// How long dropping a test store waits for its private runtime's blocking threads.
const TEST_RUNTIME_SHUTDOWN: Duration = Duration::from_secs(10);

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyStorage>()?;
    m.add_class::<PyStoredEvent>()?;
    m.add_class::<PyStoredLog>()?;
    m.add_class::<PyAssetRecord>()?;
    m.add_class::<PyRunRecord>()?;
    m.add_class::<PyLaunchedBy>()?;
    m.add_class::<PyStaleCause>()?;
    m.add_class::<PyStoredTick>()?;
    m.add_class::<crate::records::PyUserRef>()?;
    crate::pools::register(m)?;
    Ok(())
}

/// A handle to one store. Built only through the static factories.
#[pyclass(name = "Storage", module = "rivers._core.storage", frozen)]
pub(crate) struct PyStorage {
    storage: Option<Storage>,
    /// Test stores own a runtime so that dropping them shuts the datastore down synchronously
    /// (releasing the RocksDB lock before control returns).
    private_runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for PyStorage {
    fn drop(&mut self) {
        // Only the last handle closes the store; dropping another costs nothing.
        if let Some(storage) = self.storage.take()
            && storage.is_last_handle()
        {
            let handle = self.handle();
            let close = async move {
                if let Err(err) = storage.close().await {
                    tracing::warn!(error = %err, "closing storage failed");
                }
            };
            // Closing the last handle releases an embedded store's lock, so the path can be
            // reopened as soon as the drop returns; the GIL is released meanwhile. A drop on a
            // runtime thread (e.g. from inside a step) cannot block there and closes in the
            // background instead.
            if tokio::runtime::Handle::try_current().is_ok() {
                handle.spawn(close);
            } else {
                Python::attach(|py| py.detach(|| handle.block_on(close)));
            }
        }
        if let Some(rt) = self.private_runtime.take() {
            rt.shutdown_timeout(TEST_RUNTIME_SHUTDOWN);
        }
    }
}

impl PyStorage {
    pub(crate) fn inner(&self) -> &Storage {
        self.storage.as_ref().expect("storage is only taken on drop")
    }

    pub(crate) fn handle(&self) -> tokio::runtime::Handle {
        self.private_runtime.as_ref().map_or_else(|| runtime().handle().clone(), |rt| rt.handle().clone())
    }

    fn open<F, Fut>(py: Python<'_>, private: bool, open: F) -> PyResult<Self>
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = rivers_storage::Result<Storage>> + Send,
    {
        let private_runtime = if private {
            Some(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .thread_name("rivers-test-storage")
                    .build()
                    .map_err(|e| {
                        crate::exceptions::StorageError::new_err(format!("cannot start storage runtime: {e}"))
                    })?,
            )
        } else {
            None
        };
        let handle = private_runtime.as_ref().map_or_else(|| runtime().handle().clone(), |rt| rt.handle().clone());
        let storage = block_on(py, &handle, async move { open().await.map_err(BindingError::from) })?;
        Ok(PyStorage { storage: Some(storage), private_runtime })
    }

    pub(crate) fn sync<T: Send, F>(&self, py: Python<'_>, future: F) -> PyResult<T>
    where
        F: Future<Output = rivers_storage::Result<T>> + Send,
    {
        block_on(py, &self.handle(), async move { future.await.map_err(BindingError::from) })
    }

    fn awaitable<'py, T, F>(&self, py: Python<'py>, future: F) -> PyResult<Bound<'py, PyAny>>
    where
        T: for<'a> IntoPyObject<'a> + Send + 'static,
        F: Future<Output = rivers_storage::Result<T>> + Send + 'static,
    {
        let handle = self.handle();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            handle
                .spawn(future)
                .await
                .map_err(|e| crate::exceptions::StorageError::new_err(format!("storage task failed: {e}")))?
                .map_err(|e| PyErr::from(BindingError::from(e)))
        })
    }
}

fn kind_value(kind: StorageKind) -> i64 {
    match kind {
        StorageKind::Memory => 0,
        StorageKind::Embedded => 1,
        StorageKind::Remote => 2,
    }
}

/// Unit results resolve to Python `None` (a bare `()` would become an empty tuple).
fn none(_: ()) -> Option<()> {
    None
}

fn convert<T, U: From<T>>(items: Vec<T>) -> Vec<U> {
    items.into_iter().map(U::from).collect()
}

fn bytes_arg(value: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    value.downcast::<PyBytes>().map(|b| b.as_bytes().to_vec()).map_err(|_| {
        PyTypeError::new_err(format!(
            "kv values must be bytes, got {}",
            value.get_type().name().map(|n| n.to_string()).unwrap_or_default()
        ))
    })
}

/// Bytes that convert to Python `bytes` (a `Vec<u8>` would become a list).
struct Blob(Vec<u8>);

impl<'py> IntoPyObject<'py> for Blob {
    type Target = PyBytes;
    type Output = Bound<'py, PyBytes>;
    type Error = std::convert::Infallible;

    fn into_pyobject(self, py: Python<'py>) -> Result<Self::Output, Self::Error> {
        Ok(PyBytes::new(py, &self.0))
    }
}

/// A partition argument as its display string: a `PartitionKey`, or a `str` as given.
fn partition_text(partition: Option<Bound<'_, PyAny>>) -> PyResult<Option<String>> {
    partition.filter(|p| !p.is_none()).map(|p| Ok(p.str()?.to_string())).transpose()
}

fn status_kind(status: &str) -> PyResult<PartitionStatusKind> {
    status.parse().map_err(|e: rivers_storage::Error| PyValueError::new_err(e.to_string()))
}

async fn partition_ranges(
    storage: &Storage,
    asset_key: &str,
    kind: PartitionStatusKind,
) -> rivers_storage::Result<Vec<PyPartitionKeyRange>> {
    let status = storage.get_partition_status(asset_key).await?;
    let Some(definition) = &status.definition else { return Ok(Vec::new()) };
    let env = storage.partition_env(definition).await?;
    Ok(status
        .ranges(kind)
        .ranges()
        .iter()
        .flat_map(|&(start, end)| definition.key_ranges(start, end, &env))
        .map(PyPartitionKeyRange)
        .collect())
}

#[pymethods]
impl PyStorage {
    /// A new, empty in-memory store.
    #[staticmethod]
    fn memory(py: Python<'_>) -> PyResult<Self> {
        Self::open(py, false, Storage::memory)
    }

    /// An embedded RocksDB store at `path` (created if absent).
    #[staticmethod]
    fn embedded(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        Self::open(py, false, move || async move { Storage::embedded(&path).await })
    }

    /// A SurrealDB server's database; keyword arguments fall back to `RIVERS_SURREAL_*`.
    #[staticmethod]
    #[pyo3(signature = (endpoint, *, username = None, password = None, namespace = None, database = None))]
    fn connect(
        py: Python<'_>,
        endpoint: String,
        username: Option<String>,
        password: Option<String>,
        namespace: Option<String>,
        database: Option<String>,
    ) -> PyResult<Self> {
        let target = RemoteTarget::resolve(endpoint, username, password, namespace, database);
        Self::open(py, false, move || async move { Storage::connect(&target).await })
    }

    /// Opens the embedded store at `path`, applies pending migrations and closes it.
    #[staticmethod]
    fn migrate_embedded(py: Python<'_>, path: PathBuf) -> PyResult<()> {
        block_on(
            py,
            runtime().handle(),
            async move { Storage::migrate_embedded(&path).await.map_err(BindingError::from) },
        )
    }

    /// Applies pending migrations to a SurrealDB server's database.
    #[staticmethod]
    #[pyo3(signature = (endpoint, *, username = None, password = None, namespace = None, database = None))]
    fn migrate_remote(
        py: Python<'_>,
        endpoint: String,
        username: Option<String>,
        password: Option<String>,
        namespace: Option<String>,
        database: Option<String>,
    ) -> PyResult<()> {
        let target = RemoteTarget::resolve(endpoint, username, password, namespace, database);
        block_on(
            py,
            runtime().handle(),
            async move { Storage::migrate_remote(&target).await.map_err(BindingError::from) },
        )
    }

    #[staticmethod]
    fn _test_memory(py: Python<'_>) -> PyResult<Self> {
        Self::open(py, true, Storage::memory)
    }

    #[staticmethod]
    fn _test_embedded(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        Self::open(py, true, move || async move { Storage::embedded(&path).await })
    }

    /// The backend kind, a `rivers.StorageType`.
    #[getter]
    fn r#type<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        py.import("rivers._storage.types")?.getattr("StorageType")?.call1((kind_value(self.inner().kind()),))
    }

    fn __repr__(&self) -> String {
        format!("Storage({:?})", self.inner().kind())
    }

    // ---- events, assets, logs ---------------------------------------------------------

    #[pyo3(signature = (asset_key, limit = 100))]
    fn get_events_for_asset(&self, py: Python<'_>, asset_key: String, limit: usize) -> PyResult<Vec<PyStoredEvent>> {
        let s = self.inner().clone();
        self.sync(py, async move { s.get_events_for_asset(&asset_key, limit).await.map(convert) })
    }

    #[pyo3(signature = (asset_key, limit = 100))]
    fn async_get_events_for_asset<'py>(
        &self,
        py: Python<'py>,
        asset_key: String,
        limit: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let s = self.inner().clone();
        self.awaitable(
            py,
            async move { s.get_events_for_asset(&asset_key, limit).await.map(convert::<_, PyStoredEvent>) },
        )
    }

    fn get_events_for_run(&self, py: Python<'_>, run_id: String) -> PyResult<Vec<PyStoredEvent>> {
        let s = self.inner().clone();
        self.sync(py, async move { s.get_events_for_run(&run_id).await.map(convert) })
    }

    fn async_get_events_for_run<'py>(&self, py: Python<'py>, run_id: String) -> PyResult<Bound<'py, PyAny>> {
        let s = self.inner().clone();
        self.awaitable(py, async move { s.get_events_for_run(&run_id).await.map(convert::<_, PyStoredEvent>) })
    }

    fn get_run_logs(&self, py: Python<'_>, run_id: String) -> PyResult<Vec<PyStoredLog>> {
        let s = self.inner().clone();
        self.sync(py, async move { s.get_run_logs(&run_id).await.map(convert) })
    }

    fn async_get_run_logs<'py>(&self, py: Python<'py>, run_id: String) -> PyResult<Bound<'py, PyAny>> {
        let s = self.inner().clone();
        self.awaitable(py, async move { s.get_run_logs(&run_id).await.map(convert::<_, PyStoredLog>) })
    }

    #[pyo3(signature = (asset_key, partition = None))]
    fn get_latest_materialization(
        &self,
        py: Python<'_>,
        asset_key: String,
        partition: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Option<PyStoredEvent>> {
        let partition = partition_text(partition)?;
        let s = self.inner().clone();
        self.sync(py, async move {
            s.get_latest_materialization(&asset_key, partition.as_deref()).await.map(|e| e.map(Into::into))
        })
    }

    #[pyo3(signature = (asset_key, partition = None))]
    fn async_get_latest_materialization<'py>(
        &self,
        py: Python<'py>,
        asset_key: String,
        partition: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let partition = partition_text(partition)?;
        let s = self.inner().clone();
        self.awaitable(py, async move {
            s.get_latest_materialization(&asset_key, partition.as_deref()).await.map(|e| e.map(PyStoredEvent::from))
        })
    }

    fn get_asset_record(&self, py: Python<'_>, asset_key: String) -> PyResult<Option<PyAssetRecord>> {
        let s = self.inner().clone();
        self.sync(py, async move { s.get_asset_record(&asset_key).await.map(|r| r.map(Into::into)) })
    }

    fn async_get_asset_record<'py>(&self, py: Python<'py>, asset_key: String) -> PyResult<Bound<'py, PyAny>> {
        let s = self.inner().clone();
        self.awaitable(py, async move { s.get_asset_record(&asset_key).await.map(|r| r.map(PyAssetRecord::from)) })
    }

    fn get_asset_records(&self, py: Python<'_>) -> PyResult<Vec<PyAssetRecord>> {
        let s = self.inner().clone();
        self.sync(py, async move { s.get_asset_records().await.map(convert) })
    }

    fn async_get_asset_records<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let s = self.inner().clone();
        self.awaitable(py, async move { s.get_asset_records().await.map(convert::<_, PyAssetRecord>) })
    }

    fn get_assets_by_tag(&self, py: Python<'_>, tag: String) -> PyResult<Vec<PyAssetRecord>> {
        let s = self.inner().clone();
        self.sync(py, async move { s.get_assets_by_tag(&tag).await.map(convert) })
    }

    fn async_get_assets_by_tag<'py>(&self, py: Python<'py>, tag: String) -> PyResult<Bound<'py, PyAny>> {
        let s = self.inner().clone();
        self.awaitable(py, async move { s.get_assets_by_tag(&tag).await.map(convert::<_, PyAssetRecord>) })
    }

    fn get_assets_by_kind(&self, py: Python<'_>, kind: String) -> PyResult<Vec<PyAssetRecord>> {
        let s = self.inner().clone();
        self.sync(py, async move { s.get_assets_by_kind(&kind).await.map(convert) })
    }

    fn async_get_assets_by_kind<'py>(&self, py: Python<'py>, kind: String) -> PyResult<Bound<'py, PyAny>> {
        let s = self.inner().clone();
        self.awaitable(py, async move { s.get_assets_by_kind(&kind).await.map(convert::<_, PyAssetRecord>) })
    }

    fn get_assets_by_group(&self, py: Python<'_>, group: String) -> PyResult<Vec<PyAssetRecord>> {
        let s = self.inner().clone();
        self.sync(py, async move { s.get_assets_by_group(&group).await.map(convert) })
    }

    fn async_get_assets_by_group<'py>(&self, py: Python<'py>, group: String) -> PyResult<Bound<'py, PyAny>> {
        let s = self.inner().clone();
        self.awaitable(py, async move { s.get_assets_by_group(&group).await.map(convert::<_, PyAssetRecord>) })
    }

    /// Every individual partition of the asset with at least one materialization, read from
    /// its status ranges (`[]` for unpartitioned or unknown assets).
    fn get_materialized_partitions<'py>(&self, py: Python<'py>, asset_key: String) -> PyResult<Bound<'py, PyList>> {
        let s = self.inner().clone();
        let keys = self.sync(py, async move {
            let status = s.get_partition_status(&asset_key).await?;
            let Some(definition) = &status.definition else { return Ok(Vec::new()) };
            let env = s.partition_env(definition).await?;
            Ok(definition.keys_at(status.materialized.ranges(), &env))
        })?;
        PyList::new(py, keys.into_iter().map(|key| key_to_py(py, key)).collect::<PyResult<Vec<_>>>()?)
    }

    /// `len(get_materialized_partitions(asset_key))`, from the status ranges alone.
    fn count_materialized_partitions(&self, py: Python<'_>, asset_key: String) -> PyResult<u128> {
        let s = self.inner().clone();
        self.sync(py, async move { Ok(s.get_partition_status(&asset_key).await?.materialized.len()) })
    }

    /// The asset's partitions with a status (`"materialized"`, `"failed"` or `"in_progress"`)
    /// as key ranges: one range per run of consecutive keys, O(ranges).
    fn get_partition_ranges(
        &self,
        py: Python<'_>,
        asset_key: String,
        status: &str,
    ) -> PyResult<Vec<PyPartitionKeyRange>> {
        let kind = status_kind(status)?;
        let s = self.inner().clone();
        self.sync(py, async move { partition_ranges(&s, &asset_key, kind).await })
    }

    fn async_get_partition_ranges<'py>(
        &self,
        py: Python<'py>,
        asset_key: String,
        status: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let kind = status_kind(status)?;
        let s = self.inner().clone();
        self.awaitable(py, async move { partition_ranges(&s, &asset_key, kind).await })
    }

    fn compute_staleness(&self, py: Python<'_>) -> PyResult<HashMap<String, (String, Vec<PyStaleCause>)>> {
        let s = self.inner().clone();
        let results = self.sync(py, async move { s.compute_staleness().await })?;
        Ok(results.into_iter().map(|(key, st)| (key, (st.status.as_str().to_string(), convert(st.causes)))).collect())
    }

    // ---- runs and ticks ---------------------------------------------------------------

    fn get_run(&self, py: Python<'_>, run_id: String) -> PyResult<Option<PyRunRecord>> {
        let s = self.inner().clone();
        self.sync(py, async move { s.get_run(&run_id).await.map(|r| r.map(Into::into)) })
    }

    fn async_get_run<'py>(&self, py: Python<'py>, run_id: String) -> PyResult<Bound<'py, PyAny>> {
        let s = self.inner().clone();
        self.awaitable(py, async move { s.get_run(&run_id).await.map(|r| r.map(PyRunRecord::from)) })
    }

    #[pyo3(signature = (limit = 100, status = None))]
    fn get_runs(&self, py: Python<'_>, limit: usize, status: Option<String>) -> PyResult<Vec<PyRunRecord>> {
        let Ok(status) = status.map(|s| s.parse::<RunStatus>()).transpose() else {
            // No run has a status outside the vocabulary.
            return Ok(Vec::new());
        };
        let s = self.inner().clone();
        self.sync(py, async move { s.get_runs(limit, status).await.map(convert) })
    }

    #[pyo3(signature = (limit = 100, status = None))]
    fn async_get_runs<'py>(
        &self,
        py: Python<'py>,
        limit: usize,
        status: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let status = status.map(|s| s.parse::<RunStatus>()).transpose();
        let s = self.inner().clone();
        self.awaitable(py, async move {
            match status {
                Ok(status) => s.get_runs(limit, status).await.map(convert::<_, PyRunRecord>),
                Err(_) => Ok(Vec::new()),
            }
        })
    }

    #[pyo3(signature = (automation_name, limit = 100))]
    fn get_ticks(&self, py: Python<'_>, automation_name: String, limit: usize) -> PyResult<Vec<PyStoredTick>> {
        let s = self.inner().clone();
        self.sync(py, async move { s.get_ticks(&automation_name, limit).await.map(convert) })
    }

    #[pyo3(signature = (automation_name, limit = 100))]
    fn async_get_ticks<'py>(
        &self,
        py: Python<'py>,
        automation_name: String,
        limit: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let s = self.inner().clone();
        self.awaitable(py, async move { s.get_ticks(&automation_name, limit).await.map(convert::<_, PyStoredTick>) })
    }

    fn get_queued_runs(&self, py: Python<'_>) -> PyResult<Vec<PyRunRecord>> {
        let s = self.inner().clone();
        self.sync(py, async move { s.get_queued_runs().await.map(convert) })
    }

    fn cancel_queued_run(&self, py: Python<'_>, run_id: String) -> PyResult<bool> {
        let s = self.inner().clone();
        self.sync(py, async move { s.cancel_queued_run(&run_id).await })
    }

    fn is_cancelled(&self, py: Python<'_>, run_id: String) -> PyResult<bool> {
        let s = self.inner().clone();
        self.sync(py, async move { s.is_cancelled(&run_id).await })
    }

    fn request_cancellation(&self, py: Python<'_>, run_id: String) -> PyResult<()> {
        let s = self.inner().clone();
        self.sync(py, async move { s.request_cancellation(&run_id).await })
    }

    #[pyo3(signature = (run_id, status, completed_steps, total_steps, message = None))]
    fn set_run_outcome(
        &self,
        py: Python<'_>,
        run_id: String,
        status: String,
        completed_steps: i64,
        total_steps: i64,
        message: Option<String>,
    ) -> PyResult<()> {
        let status = Storage::parse_outcome_status(&status).map_err(BindingError::from)?;
        let s = self.inner().clone();
        self.sync(py, async move {
            s.set_run_outcome(&run_id, status, completed_steps, total_steps, message.as_deref()).await
        })
    }

    fn get_run_progress(&self, py: Python<'_>, run_id: String) -> PyResult<(i64, i64)> {
        let s = self.inner().clone();
        self.sync(py, async move { s.get_run_progress(&run_id).await })
    }

    /// Fails the `Running` runs whose owner wrote no heartbeat for `older_than` seconds
    /// (optionally only those of one run backend, `"local"` or `"kubernetes"`) and returns
    /// their ids. Run monitoring calls this periodically.
    #[pyo3(signature = (older_than, backend = None))]
    fn _fail_stale_runs(&self, py: Python<'_>, older_than: f64, backend: Option<String>) -> PyResult<Vec<String>> {
        let max_age = std::time::Duration::try_from_secs_f64(older_than).map_err(|_| {
            PyValueError::new_err(format!("older_than must be a non-negative number of seconds, got {older_than}"))
        })?;
        let backend = backend
            .map(|text| text.parse::<rivers_core::RunBackendKind>())
            .transpose()
            .map_err(|err| PyValueError::new_err(format!("backend: {err}")))?;
        let s = self.inner().clone();
        self.sync(py, async move { s.fail_stale_runs(max_age, backend).await })
    }

    // ---- kv -----------------------------------------------------------------------------

    fn kv_get<'py>(&self, py: Python<'py>, key: String) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let s = self.inner().clone();
        let value = self.sync(py, async move { s.kv_get(&key).await })?;
        Ok(value.map(|v| PyBytes::new(py, &v)))
    }

    fn async_kv_get<'py>(&self, py: Python<'py>, key: String) -> PyResult<Bound<'py, PyAny>> {
        let s = self.inner().clone();
        self.awaitable(py, async move { s.kv_get(&key).await.map(|v| v.map(Blob)) })
    }

    fn kv_set(&self, py: Python<'_>, key: String, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let value = bytes_arg(value)?;
        let s = self.inner().clone();
        self.sync(py, async move { s.kv_set(&key, &value).await })
    }

    fn async_kv_set<'py>(
        &self,
        py: Python<'py>,
        key: String,
        value: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let value = bytes_arg(value)?;
        let s = self.inner().clone();
        self.awaitable(py, async move { s.kv_set(&key, &value).await.map(none) })
    }

    // ---- dynamic partitions -----------------------------------------------------------

    fn add_dynamic_partitions(&self, py: Python<'_>, name: String, keys: Vec<String>) -> PyResult<()> {
        let s = self.inner().clone();
        self.sync(py, async move { s.add_dynamic_partitions(&name, &keys).await })
    }

    fn async_add_dynamic_partitions<'py>(
        &self,
        py: Python<'py>,
        name: String,
        keys: Vec<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let s = self.inner().clone();
        self.awaitable(py, async move { s.add_dynamic_partitions(&name, &keys).await.map(none) })
    }

    fn delete_dynamic_partition(&self, py: Python<'_>, name: String, key: String) -> PyResult<()> {
        let s = self.inner().clone();
        self.sync(py, async move { s.delete_dynamic_partition(&name, &key).await })
    }

    fn async_delete_dynamic_partition<'py>(
        &self,
        py: Python<'py>,
        name: String,
        key: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let s = self.inner().clone();
        self.awaitable(py, async move { s.delete_dynamic_partition(&name, &key).await.map(none) })
    }

    fn get_dynamic_partitions(&self, py: Python<'_>, name: String) -> PyResult<Vec<String>> {
        let s = self.inner().clone();
        self.sync(py, async move { s.get_dynamic_partitions(&name).await })
    }

    fn async_get_dynamic_partitions<'py>(&self, py: Python<'py>, name: String) -> PyResult<Bound<'py, PyAny>> {
        let s = self.inner().clone();
        self.awaitable(py, async move { s.get_dynamic_partitions(&name).await })
    }

    fn has_dynamic_partition(&self, py: Python<'_>, name: String, key: String) -> PyResult<bool> {
        let s = self.inner().clone();
        self.sync(py, async move { s.has_dynamic_partition(&name, &key).await })
    }

    fn async_has_dynamic_partition<'py>(
        &self,
        py: Python<'py>,
        name: String,
        key: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let s = self.inner().clone();
        self.awaitable(py, async move { s.has_dynamic_partition(&name, &key).await })
    }

    // ---- pools ----
    // Public pool queries (each with an `async_` twin), then the internal claim protocol the
    // executor and the coordinator use.

    #[pyo3(signature = (pool_key, limit, lease_duration = "5m"))]
    fn set_pool_limit(&self, py: Python<'_>, pool_key: String, limit: i64, lease_duration: &str) -> PyResult<()> {
        let lease = lease_arg(lease_duration)?;
        let s = self.inner().clone();
        self.sync(py, async move { s.set_pool_limit(&pool_key, limit, lease).await })
    }

    #[pyo3(signature = (pool_key, limit, lease_duration = "5m"))]
    fn async_set_pool_limit<'py>(
        &self,
        py: Python<'py>,
        pool_key: String,
        limit: i64,
        lease_duration: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let lease = lease_arg(lease_duration)?;
        let s = self.inner().clone();
        self.awaitable(py, async move { s.set_pool_limit(&pool_key, limit, lease).await.map(none) })
    }

    fn get_pool_limits(&self, py: Python<'_>) -> PyResult<Vec<PyPoolLimit>> {
        let s = self.inner().clone();
        self.sync(py, async move { s.get_pool_limits().await.map(convert) })
    }

    fn async_get_pool_limits<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let s = self.inner().clone();
        self.awaitable(py, async move { s.get_pool_limits().await.map(convert::<_, PyPoolLimit>) })
    }

    fn get_all_pool_infos(&self, py: Python<'_>) -> PyResult<Vec<PyPoolInfo>> {
        let s = self.inner().clone();
        self.sync(py, async move { s.get_all_pool_infos().await.map(convert) })
    }

    fn async_get_all_pool_infos<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let s = self.inner().clone();
        self.awaitable(py, async move { s.get_all_pool_infos().await.map(convert::<_, PyPoolInfo>) })
    }

    fn get_pool_info(&self, py: Python<'_>, pool_key: String) -> PyResult<PyPoolInfo> {
        let s = self.inner().clone();
        self.sync(py, async move { s.get_pool_info(&pool_key).await.map(PyPoolInfo::from) })
    }

    fn async_get_pool_info<'py>(&self, py: Python<'py>, pool_key: String) -> PyResult<Bound<'py, PyAny>> {
        let s = self.inner().clone();
        self.awaitable(py, async move { s.get_pool_info(&pool_key).await.map(PyPoolInfo::from) })
    }

    fn get_pool_slot_holders(&self, py: Python<'_>, pool_key: String) -> PyResult<Vec<PySlotHolder>> {
        let s = self.inner().clone();
        self.sync(py, async move { s.get_pool_slot_holders(&pool_key).await.map(convert) })
    }

    fn async_get_pool_slot_holders<'py>(&self, py: Python<'py>, pool_key: String) -> PyResult<Bound<'py, PyAny>> {
        let s = self.inner().clone();
        self.awaitable(py, async move { s.get_pool_slot_holders(&pool_key).await.map(convert::<_, PySlotHolder>) })
    }

    #[pyo3(signature = (pools, run_id, step_key, priority = 0, lease_duration = "5m"))]
    fn _claim_concurrency_slots(
        &self,
        py: Python<'_>,
        pools: Vec<(String, i64)>,
        run_id: String,
        step_key: String,
        priority: i64,
        lease_duration: &str,
    ) -> PyResult<PyConcurrencyClaimStatus> {
        let lease = lease_arg(lease_duration)?;
        let claims: Vec<PoolClaim> = pools.into_iter().map(|(pool, slots)| PoolClaim { pool, slots }).collect();
        let s = self.inner().clone();
        self.sync(py, async move {
            s.claim_concurrency_slots(&claims, &run_id, &step_key, priority, Some(lease)).await.map(Into::into)
        })
    }

    fn _free_concurrency_slots(&self, py: Python<'_>, run_id: String, step_key: String) -> PyResult<()> {
        let s = self.inner().clone();
        self.sync(py, async move { s.free_concurrency_slots(&run_id, &step_key).await })
    }

    fn _free_concurrency_slots_for_run(&self, py: Python<'_>, run_id: String) -> PyResult<()> {
        let s = self.inner().clone();
        self.sync(py, async move { s.free_concurrency_slots_for_run(&run_id).await })
    }

    #[pyo3(signature = (run_id, step_key, lease_duration = "5m"))]
    fn _renew_slot_lease(
        &self,
        py: Python<'_>,
        run_id: String,
        step_key: String,
        lease_duration: &str,
    ) -> PyResult<u64> {
        let lease = lease_arg(lease_duration)?;
        let s = self.inner().clone();
        self.sync(py, async move { s.renew_slot_lease(&run_id, &step_key, lease).await })
    }

    fn _free_expired_leases(&self, py: Python<'_>) -> PyResult<u64> {
        let s = self.inner().clone();
        self.sync(py, async move { s.free_expired_leases().await })
    }

    // ---- internal: used by the Python repository layer ---------------------------------

    /// Registers (upserts) the asset records of every node of `graph`, from its definitions,
    /// their partitions definitions, the repository's pool limits (`(pool, limit)` pairs), and
    /// the repository's definitions snapshot under this process's code location.
    #[pyo3(signature = (graph, jobs, automations, default_executor, default_retry = None, pool_limits = Vec::new()))]
    #[allow(clippy::too_many_arguments)] // the repository's declarations, one argument each
    fn _register_definitions(
        &self,
        py: Python<'_>,
        graph: PyRef<'_, PyGraph>,
        jobs: Vec<JobFields<'_>>,
        automations: Automations<'_>,
        default_executor: Bound<'_, PyAny>,
        default_retry: Option<Bound<'_, PyAny>>,
        pool_limits: Vec<(String, u32)>,
    ) -> PyResult<()> {
        let mut snapshot = graph.snapshot(jobs, automations, &default_executor, default_retry.as_ref())?;
        snapshot.pool_limits = pool_limits
            .iter()
            .map(|(pool, slot_limit)| rivers_core::PoolLimitDef { pool: pool.clone(), slot_limit: *slot_limit })
            .collect();
        let pool_limits: Vec<(String, i64)> =
            pool_limits.into_iter().map(|(pool, limit)| (pool, i64::from(limit))).collect();
        let graph = graph.graph();
        let records = graph
            .assets()
            .into_iter()
            .map(|entry| rivers_storage::AssetRecord {
                asset_key: entry.key.to_string(),
                tags: entry.tags.to_vec(),
                kinds: entry.kinds.to_vec(),
                group: entry.group.map(str::to_string),
                code_version: entry.code_version.map(str::to_string),
                pool: entry.node.pools.iter().map(|claim| (claim.pool.clone(), claim.slots)).collect(),
                upstreams: entry.upstreams,
                is_external: entry.node.kind == rivers_core::NodeKind::External,
                ..Default::default()
            })
            .collect();
        let partitioned: Vec<(String, Partitions)> = graph
            .assets()
            .into_iter()
            .filter_map(|entry| {
                let definition = graph.key_partitions(graph.key(entry.key)?)?;
                Some((entry.key.to_string(), (**definition).clone()))
            })
            .collect();
        let s = self.inner().clone();
        self.sync(py, async move {
            s.register_assets(records).await?;
            s.register_partitions(partitioned).await?;
            s.declare_pool_limits(&pool_limits).await?;
            s.put_definitions_snapshot(&snapshot).await.map(drop)
        })
    }

    /// A backfill record as JSON text, or `None`.
    fn _get_backfill(&self, py: Python<'_>, backfill_id: String) -> PyResult<Option<String>> {
        let s = self.inner().clone();
        let record = self.sync(py, async move { s.get_backfill(&backfill_id).await })?;
        record
            .map(|record| serde_json::to_string(&record))
            .transpose()
            .map_err(|err| crate::exceptions::StorageError::new_err(format!("cannot encode a backfill record: {err}")))
    }

    /// Leaves a cancel marker on a backfill that has not ended.
    fn _request_backfill_cancel(&self, py: Python<'_>, backfill_id: String) -> PyResult<bool> {
        let s = self.inner().clone();
        self.sync(py, async move { s.request_backfill_cancel(&backfill_id).await })
    }

    /// Records an `Observation` event of an external asset and waits until it is durable.
    #[pyo3(signature = (asset_key, run_id, metadata, data_version = None))]
    fn _record_observation(
        &self,
        py: Python<'_>,
        asset_key: String,
        run_id: String,
        metadata: Vec<(String, String)>,
        data_version: Option<String>,
    ) -> PyResult<String> {
        let s = self.inner().clone();
        let event_id = s.enqueue_event(rivers_storage::NewEvent {
            asset_key: Some(asset_key),
            metadata,
            data_version,
            ..rivers_storage::NewEvent::new(rivers_core::EventType::Observation, run_id.clone())
        });
        self.sync(py, async move { s.flush_run(&run_id).await })?;
        Ok(event_id)
    }
}
