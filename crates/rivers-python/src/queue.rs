//! `RunQueueConfig`, `TagConcurrencyLimit` and `RunBackendConfig`: validated at construction,
//! read by the daemon as the typed `rivers_daemon` configuration.

use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use rivers_core::{DEFAULT_PRIORITY, LaunchedBy, RunBackendKind, RunStatus, run_priority};
use rivers_storage::NewRun;

use crate::partitions::PyPartitionKey;
use crate::storage::PyStorage;

fn duration(parameter: &str, text: &str) -> PyResult<Duration> {
    rivers_core::parse_duration(text).map_err(|error| PyValueError::new_err(format!("{parameter}: {error}")))
}

/// A limit on concurrent runs carrying a tag.
#[pyclass(name = "TagConcurrencyLimit", module = "rivers", frozen, get_all)]
#[derive(Clone)]
pub(crate) struct PyTagConcurrencyLimit {
    key: String,
    limit: i64,
    value: Option<String>,
    per_unique_value: bool,
}

#[pymethods]
impl PyTagConcurrencyLimit {
    #[new]
    #[pyo3(signature = (key, limit, value=None, per_unique_value=false))]
    fn new(key: String, limit: i64, value: Option<String>, per_unique_value: bool) -> PyResult<Self> {
        if key.is_empty() {
            return Err(PyValueError::new_err("TagConcurrencyLimit key must be a non-empty tag key"));
        }
        if limit < 0 {
            return Err(PyValueError::new_err(format!(
                "TagConcurrencyLimit(key={key:?}) has limit {limit}; a limit is 0 (admit none) or more"
            )));
        }
        Ok(Self { key, limit, value, per_unique_value })
    }

    fn __repr__(&self) -> String {
        format!(
            "TagConcurrencyLimit(key={:?}, limit={}, value={:?}, per_unique_value={})",
            self.key, self.limit, self.value, self.per_unique_value
        )
    }
}

impl PyTagConcurrencyLimit {
    fn to_daemon(&self) -> rivers_daemon::TagConcurrencyLimit {
        rivers_daemon::TagConcurrencyLimit {
            key: self.key.clone(),
            limit: usize::try_from(self.limit).unwrap_or(0),
            value: self.value.clone(),
            per_unique_value: self.per_unique_value && self.value.is_none(),
        }
    }
}

/// How the run queue admits runs that schedules, sensors, conditions and launches submit.
#[pyclass(name = "RunQueueConfig", module = "rivers", frozen)]
pub(crate) struct PyRunQueueConfig {
    #[pyo3(get)]
    max_concurrent_runs: i64,
    #[pyo3(get)]
    tag_concurrency_limits: Vec<PyTagConcurrencyLimit>,
    #[pyo3(get)]
    dequeue_interval: String,
    #[pyo3(get)]
    start_timeout: String,
    config: rivers_daemon::RunQueueConfig,
}

#[pymethods]
impl PyRunQueueConfig {
    #[new]
    #[pyo3(signature = (max_concurrent_runs=10, tag_concurrency_limits=Vec::new(), dequeue_interval="250ms", start_timeout="180s"))]
    fn new(
        max_concurrent_runs: i64,
        tag_concurrency_limits: Vec<PyTagConcurrencyLimit>,
        dequeue_interval: &str,
        start_timeout: &str,
    ) -> PyResult<Self> {
        if max_concurrent_runs < -1 {
            return Err(PyValueError::new_err(format!(
                "RunQueueConfig max_concurrent_runs is {max_concurrent_runs}; use -1 (unlimited), 0 (admit none) or more"
            )));
        }
        let config = rivers_daemon::RunQueueConfig {
            max_concurrent_runs: usize::try_from(max_concurrent_runs).ok(),
            tag_limits: tag_concurrency_limits.iter().map(PyTagConcurrencyLimit::to_daemon).collect(),
            dequeue_interval: duration("RunQueueConfig dequeue_interval", dequeue_interval)?,
            start_timeout: duration("RunQueueConfig start_timeout", start_timeout)?,
        };
        Ok(Self {
            max_concurrent_runs,
            tag_concurrency_limits,
            dequeue_interval: dequeue_interval.to_owned(),
            start_timeout: start_timeout.to_owned(),
            config,
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "RunQueueConfig(max_concurrent_runs={}, tag_concurrency_limits=[{}], dequeue_interval={:?}, start_timeout={:?})",
            self.max_concurrent_runs,
            self.tag_concurrency_limits.iter().map(PyTagConcurrencyLimit::__repr__).collect::<Vec<_>>().join(", "),
            self.dequeue_interval,
            self.start_timeout
        )
    }
}

impl PyRunQueueConfig {
    pub(crate) fn to_daemon(&self) -> rivers_daemon::RunQueueConfig {
        self.config.clone()
    }
}

/// Where dequeued runs are launched.
#[pyclass(name = "RunBackendConfig", module = "rivers", frozen)]
#[derive(Clone)]
pub(crate) struct PyRunBackendConfig {
    kubernetes: Option<KubernetesBackend>,
}

#[derive(Clone, Debug)]
struct KubernetesBackend {
    image: Option<String>,
    namespace: Option<String>,
    service_account: String,
    run_cpu: String,
    run_memory: String,
    worker_cpu: String,
    worker_memory: String,
}

#[pymethods]
impl PyRunBackendConfig {
    /// Runs execute in this process (the default).
    #[staticmethod]
    fn local() -> Self {
        Self { kubernetes: None }
    }

    /// Each run executes in a Kubernetes run pod.
    #[staticmethod]
    #[pyo3(signature = (image=None, *, namespace=None, service_account="rivers-executor", run_cpu="500m", run_memory="512Mi", worker_cpu="500m", worker_memory="512Mi"))]
    fn kubernetes(
        image: Option<String>,
        namespace: Option<String>,
        service_account: &str,
        run_cpu: &str,
        run_memory: &str,
        worker_cpu: &str,
        worker_memory: &str,
    ) -> Self {
        Self {
            kubernetes: Some(KubernetesBackend {
                image,
                namespace,
                service_account: service_account.to_owned(),
                run_cpu: run_cpu.to_owned(),
                run_memory: run_memory.to_owned(),
                worker_cpu: worker_cpu.to_owned(),
                worker_memory: worker_memory.to_owned(),
            }),
        }
    }

    pub(crate) fn is_kubernetes(&self) -> bool {
        self.kubernetes.is_some()
    }

    fn __repr__(&self) -> String {
        match &self.kubernetes {
            None => "RunBackendConfig.local()".to_owned(),
            Some(k) => format!(
                "RunBackendConfig.kubernetes(image={:?}, namespace={:?}, service_account={:?}, run_cpu={:?}, \
                 run_memory={:?}, worker_cpu={:?}, worker_memory={:?})",
                k.image, k.namespace, k.service_account, k.run_cpu, k.run_memory, k.worker_cpu, k.worker_memory
            ),
        }
    }
}

/// Puts a manually launched run of `node_names` into the run queue (status `Queued`, a
/// `RunQueued` event), for a daemon's coordinator to admit and launch; returns its id.
#[pyfunction]
#[pyo3(signature = (storage, node_names, partition_key=None, tags=Vec::new()))]
pub(crate) fn queue_run(
    py: Python<'_>,
    storage: PyRef<'_, PyStorage>,
    node_names: Vec<String>,
    partition_key: Option<PyRef<'_, PyPartitionKey>>,
    tags: Vec<(String, String)>,
) -> PyResult<String> {
    let run = NewRun {
        run_id: uuid::Uuid::now_v7().to_string(),
        job_name: None,
        status: RunStatus::Queued,
        priority: run_priority(&tags, DEFAULT_PRIORITY),
        tags,
        node_names,
        partition_key: partition_key.and_then(|key| serde_json::to_value(&key.0).ok()),
        launched_by: LaunchedBy::MANUAL,
        backend: RunBackendKind::Local,
    };
    let created = storage.sync(py, storage.inner().create_requested_run(run, None))?;
    Ok(created.map(|run| run.run_id).unwrap_or_default())
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(queue_run, m)?)?;
    m.add_class::<PyTagConcurrencyLimit>()?;
    m.add_class::<PyRunQueueConfig>()?;
    m.add_class::<PyRunBackendConfig>()?;
    Ok(())
}
