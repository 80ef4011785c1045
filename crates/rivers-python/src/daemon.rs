//! `rivers._core.AutomationDaemon`: the Rust daemon (`rivers_daemon`) over this process's
//! repository. Evaluation functions are called through `PythonLocation` on blocking threads,
//! and runs the daemon admits are executed in this process by `LocalLauncher`.

use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;
use chrono_tz::Tz;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use rivers_core::partitions::PartitionKey;
use rivers_core::{CronSchedule, DefinitionsSnapshot, FailurePolicy, LaunchedBy};
use rivers_daemon::{
    Automations, BackfillPartitions, BackfillRequest, BackfillRunPlan, CodeLocation, Daemon, DaemonConfig, Evaluation,
    EvaluationError, PlannedRun, Request, RunLauncher, RunRequest, ScheduleSpec, SensorContext, SensorSpec,
    SystemClock,
};
use rivers_storage::{BackfillRecord, RunRecord, Storage};
use tokio::sync::Semaphore;

use crate::partitions::{
    PyBackfillPlan, PyBackfillStrategy, PyPartitionKey, PyPartitionKeyRange, key_to_py, strategy_to_py,
};
use crate::queue::{PyRunBackendConfig, PyRunQueueConfig};
use crate::records::PyLaunchedBy;
use crate::storage::PyStorage;

/// Evaluation functions running at once. Sync functions hold the GIL while they compute, so
/// more threads would not run more Python; evaluations that wait on I/O release it, and these
/// threads are reused across all schedules and sensors rather than one per automation.
const EVALUATION_THREADS: usize = 8;

/// The text a failed evaluation records: the exception with its traceback.
fn exception_text(py: Python<'_>, error: &PyErr) -> String {
    let formatted = py.import("traceback").and_then(|traceback| {
        let lines = traceback.call_method1("format_exception", (error.value(py),))?;
        lines.extract::<Vec<String>>()
    });
    match formatted {
        Ok(lines) => lines.concat().trim_end().to_owned(),
        Err(_) => error.to_string(),
    }
}

fn tags_of(value: &Bound<'_, PyAny>) -> PyResult<Vec<(String, String)>> {
    if value.is_none() {
        return Ok(Vec::new());
    }
    let tags = value.cast::<PyDict>()?;
    tags.iter().map(|(key, value)| Ok((key.extract()?, value.extract()?))).collect()
}

/// A request's partition key from its canonical string: `dim=values|dim=values` for a
/// multi-dimensional key, comma-separated values otherwise.
fn partition_key_of(text: &str) -> PyResult<PartitionKey> {
    let multi = text.split('|').all(|segment| segment.contains('='));
    PartitionKey::parse_display(text, multi).map_err(PyValueError::new_err)
}

fn run_request(request: &Bound<'_, PyAny>) -> PyResult<RunRequest> {
    let partition_key: Option<String> = request.getattr("partition_key")?.extract()?;
    Ok(RunRequest {
        run_key: request.getattr("run_key")?.extract()?,
        tags: tags_of(&request.getattr("tags")?)?,
        partition_key: partition_key.as_deref().map(partition_key_of).transpose()?,
        job_name: request.getattr("job_name")?.extract()?,
    })
}

fn backfill_request(request: &Bound<'_, PyAny>) -> PyResult<BackfillRequest> {
    let keys = request.getattr("partition_keys")?;
    let range = request.getattr("partition_range")?;
    let partitions = if !keys.is_none() {
        let keys: Vec<PyRef<'_, PyPartitionKey>> = keys.extract()?;
        BackfillPartitions::Keys(keys.iter().map(|key| key.0.clone()).collect())
    } else if !range.is_none() {
        BackfillPartitions::Range(range.extract::<PyRef<'_, PyPartitionKeyRange>>()?.0.clone())
    } else {
        BackfillPartitions::All
    };
    let strategy = request.getattr("strategy")?;
    let policy: Option<String> = request.getattr("failure_policy")?.extract()?;
    Ok(BackfillRequest {
        selection: request.getattr("selection")?.extract()?,
        partitions,
        strategy: if strategy.is_none() {
            None
        } else {
            Some(strategy.extract::<PyRef<'_, PyBackfillStrategy>>()?.0.clone())
        },
        failure_policy: match policy {
            None => FailurePolicy::Continue,
            Some(text) => text.parse().map_err(|error: rivers_core::Error| PyValueError::new_err(error.to_string()))?,
        },
        max_concurrency: request.getattr("max_concurrency")?.extract()?,
        tags: tags_of(&request.getattr("tags")?)?,
    })
}

/// A `ScheduleTickResult` or `SensorTickResult` as the daemon's [`Evaluation`].
fn evaluation(result: &Bound<'_, PyAny>) -> PyResult<Evaluation> {
    let backfill_type = result.py().import("rivers")?.getattr("BackfillRequest")?;
    let mut requests = Vec::new();
    for request in result.getattr("run_requests")?.cast::<PyList>()?.iter() {
        requests.push(if request.is_instance(&backfill_type)? {
            Request::Backfill(backfill_request(&request)?)
        } else {
            Request::Run(run_request(&request)?)
        });
    }
    let skip = result.getattr("skip_reason")?;
    Ok(Evaluation {
        requests,
        skip_reason: if skip.is_none() { None } else { Some(skip.getattr("message")?.extract()?) },
        cursor: match result.getattr_opt("cursor")? {
            Some(cursor) => cursor.extract()?,
            None => None,
        },
    })
}

/// This process's repository as the daemon's code location.
pub(crate) struct PythonLocation {
    repo: Arc<Py<PyAny>>,
    threads: Arc<Semaphore>,
}

impl PythonLocation {
    /// `repo` as a code location (also what `simulate_automation` evaluates schedules with).
    pub(crate) fn new(repo: Arc<Py<PyAny>>) -> Self {
        Self { repo, threads: Arc::new(Semaphore::new(EVALUATION_THREADS)) }
    }

    /// Calls `method` on the repository on a blocking thread and converts its tick result.
    fn call<A>(&self, method: &'static str, args: A) -> BoxFuture<'static, Result<Evaluation, EvaluationError>>
    where
        A: for<'py> pyo3::call::PyCallArgs<'py> + Send + 'static,
    {
        let repo = self.repo.clone();
        let threads = self.threads.clone();
        Box::pin(async move {
            let _thread = threads.acquire_owned().await;
            let called = tokio::task::spawn_blocking(move || {
                Python::attach(|py| {
                    let result =
                        repo.call_method1(py, method, args).map_err(|e| EvaluationError(exception_text(py, &e)))?;
                    evaluation(result.bind(py)).map_err(|e| {
                        EvaluationError(format!("the evaluation returned a value the daemon cannot read: {e}"))
                    })
                })
            })
            .await;
            called.unwrap_or_else(|error| Err(EvaluationError(format!("the evaluation thread failed: {error}"))))
        })
    }
}

impl CodeLocation for PythonLocation {
    fn evaluate_schedule(
        &self,
        name: &str,
        scheduled: DateTime<Tz>,
    ) -> BoxFuture<'static, Result<Evaluation, EvaluationError>> {
        self.call("_evaluate_schedule_tick", (name.to_owned(), scheduled.to_rfc3339()))
    }

    fn evaluate_sensor(
        &self,
        name: &str,
        context: SensorContext,
    ) -> BoxFuture<'static, Result<Evaluation, EvaluationError>> {
        self.call("_evaluate_sensor_tick", (name.to_owned(), context.cursor, context.last_tick_time))
    }

    fn submit_backfill(
        &self,
        request: BackfillRequest,
        launched_by: LaunchedBy,
    ) -> BoxFuture<'static, Result<String, EvaluationError>> {
        let repo = self.repo.clone();
        Box::pin(async move {
            let submitted = tokio::task::spawn_blocking(move || {
                Python::attach(|py| {
                    let submit = || -> PyResult<String> {
                        let (keys, range) = match request.partitions {
                            BackfillPartitions::All => (py.None(), py.None()),
                            BackfillPartitions::Keys(keys) => {
                                let keys: Vec<_> =
                                    keys.into_iter().map(|k| key_to_py(py, k)).collect::<PyResult<_>>()?;
                                (PyList::new(py, keys)?.into_any().unbind(), py.None())
                            }
                            BackfillPartitions::Range(range) => {
                                (py.None(), Py::new(py, PyPartitionKeyRange(range))?.into_any())
                            }
                        };
                        let strategy = match request.strategy {
                            Some(strategy) => strategy_to_py(py, strategy)?.unbind(),
                            None => py.None(),
                        };
                        let kwargs = PyDict::new(py);
                        kwargs.set_item("selection", request.selection)?;
                        kwargs.set_item("partition_keys", keys)?;
                        kwargs.set_item("partition_range", range)?;
                        kwargs.set_item("strategy", strategy)?;
                        kwargs.set_item("failure_policy", request.failure_policy.as_str())?;
                        kwargs.set_item("max_concurrency", request.max_concurrency)?;
                        kwargs.set_item("tags", request.tags)?;
                        kwargs.set_item("launched_by", PyLaunchedBy(launched_by))?;
                        repo.call_method(py, "_submit_backfill_request", (), Some(&kwargs))?.extract(py)
                    };
                    submit().map_err(|e| EvaluationError(exception_text(py, &e)))
                })
            })
            .await;
            submitted.unwrap_or_else(|error| Err(EvaluationError(format!("the submission thread failed: {error}"))))
        })
    }

    fn plan_backfill(&self, backfill: &BackfillRecord) -> BoxFuture<'static, Result<BackfillRunPlan, EvaluationError>> {
        let repo = self.repo.clone();
        let backfill_id = backfill.backfill_id.clone();
        Box::pin(async move {
            let planned = tokio::task::spawn_blocking(move || {
                Python::attach(|py| {
                    let plan = || -> PyResult<BackfillRunPlan> {
                        let planned = repo.call_method1(py, "_plan_backfill_runs", (backfill_id,))?;
                        let (node_names, plan): (Vec<String>, PyRef<'_, PyBackfillPlan>) = planned.extract(py)?;
                        let runs = (0..plan.0.num_runs())
                            .filter_map(|index| plan.0.run_partition(index))
                            .map(|(key, keys)| PlannedRun {
                                partition_key: key,
                                keys: keys.iter().map(ToString::to_string).collect(),
                            })
                            .collect();
                        Ok(BackfillRunPlan { node_names, runs })
                    };
                    plan().map_err(|e| EvaluationError(exception_text(py, &e)))
                })
            })
            .await;
            planned.unwrap_or_else(|error| Err(EvaluationError(format!("the planning thread failed: {error}"))))
        })
    }

    fn observe(&self, assets: Vec<String>) -> BoxFuture<'static, Result<(), EvaluationError>> {
        let repo = self.repo.clone();
        let threads = self.threads.clone();
        Box::pin(async move {
            let _thread = threads.acquire_owned().await;
            let observed = tokio::task::spawn_blocking(move || {
                Python::attach(|py| {
                    let kwargs = PyDict::new(py);
                    kwargs.set_item("asset_names", assets).map_err(|e| EvaluationError(exception_text(py, &e)))?;
                    repo.call_method(py, "observe", (), Some(&kwargs))
                        .map(drop)
                        .map_err(|e| EvaluationError(exception_text(py, &e)))
                })
            })
            .await;
            observed.unwrap_or_else(|error| Err(EvaluationError(format!("the observation thread failed: {error}"))))
        })
    }
}

/// Executes admitted runs in this process, each on a thread of its own.
struct LocalLauncher {
    repo: Arc<Py<PyAny>>,
    storage: Storage,
    runtime: tokio::runtime::Handle,
}

impl RunLauncher for LocalLauncher {
    fn launch(&self, run: RunRecord) -> BoxFuture<'static, Result<(), String>> {
        let repo = self.repo.clone();
        let storage = self.storage.clone();
        let runtime = self.runtime.clone();
        let run_id = run.run_id.clone();
        let spawned = std::thread::Builder::new().name("rivers-run".into()).spawn(move || {
            let failed = Python::attach(|py| {
                let partition =
                    run.partition_key.as_ref().and_then(|key| serde_json::from_value::<PartitionKey>(key.clone()).ok());
                let launched = (|| -> PyResult<()> {
                    let partition = partition.map(|key| key_to_py(py, key)).transpose()?;
                    let backfill_id = match &run.launched_by {
                        LaunchedBy::Backfill { backfill_id } => Some(backfill_id.clone()),
                        _ => None,
                    };
                    repo.call_method1(
                        py,
                        "_launch_run",
                        (
                            run.run_id.clone(),
                            run.job_name.clone(),
                            run.node_names.clone(),
                            partition,
                            run.tags.clone(),
                            backfill_id,
                        ),
                    )?;
                    Ok(())
                })();
                launched.err().map(|error| exception_text(py, &error))
            });
            // An error before the run started leaves it `NotStarted`: fail it now rather than
            // at `start_timeout`.
            if let Some(error) = failed {
                let message = format!("launching the run failed: {error}");
                if let Err(error) = runtime.block_on(storage.fail_unstarted_run(&run_id, &message)) {
                    tracing::error!(run_id, %error, "recording a failed launch failed");
                }
            }
        });
        let outcome = spawned.map(|_| ()).map_err(|error| format!("no thread for the run: {error}"));
        Box::pin(async move { outcome })
    }
}

fn seconds(value: f64, what: &str) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| PyValueError::new_err(format!("{what} is not a duration: {value}")))
}

/// The schedules, sensors and jobs the daemon ticks, from the repository's definitions.
pub(crate) fn automations(snapshot: &DefinitionsSnapshot) -> PyResult<Automations> {
    let schedules = snapshot
        .schedules
        .iter()
        .map(|def| {
            Ok(ScheduleSpec {
                name: def.name.clone(),
                cron: CronSchedule::parse(&def.cron, def.timezone.as_deref())
                    .map_err(|error| PyValueError::new_err(format!("schedule '{}': {error}", def.name)))?,
                job_name: def.job.clone(),
                default_status: def.default_status,
                tags: def.tags.clone(),
                eval_timeout: def.eval_timeout_secs.map(|s| seconds(s, "eval_timeout")).transpose()?,
                has_evaluation_fn: def.has_evaluation_fn,
            })
        })
        .collect::<PyResult<_>>()?;
    let sensors = snapshot
        .sensors
        .iter()
        .map(|def| {
            Ok(SensorSpec {
                name: def.name.clone(),
                job_name: def.job.clone(),
                asset_selection: def.asset_selection.clone(),
                minimum_interval: seconds(def.minimum_interval_secs, "minimum_interval")?,
                default_status: def.default_status,
                tags: def.tags.clone(),
                eval_timeout: def.eval_timeout_secs.map(|s| seconds(s, "eval_timeout")).transpose()?,
            })
        })
        .collect::<PyResult<_>>()?;
    let jobs = snapshot.jobs.iter().map(|job| (job.name.clone(), job.nodes.clone())).collect();
    let conditions = rivers_daemon::ConditionAssets::from_snapshot(snapshot).map_err(PyValueError::new_err)?;
    Ok(Automations { schedules, sensors, jobs, conditions })
}

/// Ticks a resolved repository's schedules and sensors, runs its run queue and monitors its
/// runs, on the storage's runtime.
#[pyclass(name = "AutomationDaemon", module = "rivers._core")]
pub(crate) struct PyAutomationDaemon {
    repo: Arc<Py<PyAny>>,
    storage: Py<PyStorage>,
    max_ticks_retained: Option<usize>,
    condition_eval_interval: Duration,
    running: Mutex<Option<Daemon>>,
}

#[pymethods]
impl PyAutomationDaemon {
    #[new]
    #[pyo3(
        signature = (repo, storage, *, max_ticks_retained=Some(100), condition_eval_interval="30s"),
        text_signature = "(repo, storage, *, max_ticks_retained=100, condition_eval_interval='30s')"
    )]
    fn new(
        repo: Py<PyAny>,
        storage: Py<PyStorage>,
        max_ticks_retained: Option<usize>,
        condition_eval_interval: &str,
    ) -> PyResult<Self> {
        let condition_eval_interval = rivers_core::parse_duration(condition_eval_interval)
            .map_err(|error| PyValueError::new_err(format!("condition_eval_interval: {error}")))?;
        Ok(Self {
            repo: Arc::new(repo),
            storage,
            max_ticks_retained,
            condition_eval_interval,
            running: Mutex::new(None),
        })
    }

    /// Starts the daemon's loops and returns at once; a no-op when it runs already.
    fn start(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.borrow();
        let repo = this.repo.bind(py);
        if !repo.getattr("_resolved")?.extract::<bool>()? {
            return Err(PyRuntimeError::new_err(
                "AutomationDaemon.start() needs a resolved repository: call repo.resolve(storage) first",
            ));
        }
        if this.running.lock().is_some() {
            return Ok(());
        }
        let snapshot: String = repo.call_method0("_definitions_snapshot")?.extract()?;
        let snapshot: DefinitionsSnapshot = serde_json::from_str(&snapshot)
            .map_err(|error| PyRuntimeError::new_err(format!("the repository's definitions do not decode: {error}")))?;
        let run_queue = repo.getattr("_run_queue")?;
        let run_queue = if run_queue.is_none() {
            None
        } else {
            let config = run_queue
                .cast::<PyRunQueueConfig>()
                .map_err(|_| PyTypeError::new_err("CodeRepository(run_queue=...) must be a RunQueueConfig"))?;
            Some(config.get().to_daemon())
        };
        let backend = repo.getattr("_run_backend")?;
        if !backend.is_none() && backend.cast::<PyRunBackendConfig>().map(|b| b.get().is_kubernetes()).unwrap_or(true) {
            return Err(PyRuntimeError::new_err(
                "CodeRepository(run_backend=...) is not RunBackendConfig.local(): this build launches queued runs \
                 in this process only; use RunBackendConfig.local() (the default)",
            ));
        }
        let automations = automations(&snapshot)?;
        let storage_ref = this.storage.borrow(py);
        let storage = storage_ref.inner().clone();
        let handle = storage_ref.handle();
        let location =
            Arc::new(PythonLocation { repo: this.repo.clone(), threads: Arc::new(Semaphore::new(EVALUATION_THREADS)) });
        let launcher =
            Arc::new(LocalLauncher { repo: this.repo.clone(), storage: storage.clone(), runtime: handle.clone() });
        let config = DaemonConfig {
            max_ticks_retained: this.max_ticks_retained,
            run_queue,
            tick_batch_size: None,
            condition_eval_interval: this.condition_eval_interval,
        };
        let daemon = py.detach(|| {
            handle.block_on(Daemon::start(storage, location, launcher, Arc::new(SystemClock), automations, config))
        });
        *this.running.lock() = Some(daemon);
        repo.call_method1("_register_daemon", (slf,))?;
        Ok(())
    }

    /// Stops every loop and waits for them to end and for pending ticks to be written; runs
    /// already launched go on. A no-op when the daemon is not running.
    fn stop(&self, py: Python<'_>) {
        let Some(daemon) = self.running.lock().take() else { return };
        let handle = self.storage.borrow(py).handle();
        py.detach(|| handle.block_on(daemon.stop()));
    }

    /// Whether the daemon is running.
    #[getter]
    fn running(&self) -> bool {
        self.running.lock().is_some()
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyAutomationDaemon>()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_strings_become_single_or_multi_keys() {
        assert_eq!(partition_key_of("2026-03-01").unwrap(), PartitionKey::single("2026-03-01"));
        let multi = partition_key_of("date=2026-03-01|region=eu").unwrap();
        assert!(matches!(multi, PartitionKey::Multi(dims) if dims.len() == 2));
    }
}
