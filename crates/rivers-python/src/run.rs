//! The Python-backed `StepRunner`, and the two ways to start a run: `execute_run` (wait for
//! it) and `launch_run` (in the background).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use rivers_core::{
    BACKFILL_PRIORITY, DEFAULT_PRIORITY, ExecutorKind, FailureReason, LaunchedBy, RunBackendKind, run_priority,
};
use rivers_engine::{
    LaunchOutcome, LaunchedRun, Liveness, RunOptions, RunPartition, StepFailure, StepOutput, StepRequest, StepRunner,
};

use crate::error::BindingError;
use crate::graph::PyPlan;
use crate::partitions::{PyBackfillPlan, PyPartitionKey};
use crate::runtime::{SIGNAL_POLL, block_on, block_on_interruptible};
use crate::step::{PyStepRequest, step_outcome};
use crate::storage::PyStorage;

/// Calls the Python run session (`rivers._execution.run.RunSession`) once per step attempt.
///
/// Sync steps run their Python call on a thread that holds the GIL only while Python executes;
/// async steps are coroutines awaited on the one asyncio loop of the process, so any number of
/// them wait at once without a thread each.
struct PyStepRunner {
    session: Arc<Py<PyAny>>,
}

/// The process's asyncio loop for async step bodies (`rivers._execution.coroutines`), fetched
/// on the first async step.
static EVENT_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn internal_failure(err: PyErr) -> StepFailure {
    StepFailure::new(format!("internal error while running the step: {err}"), FailureReason::Error)
}

type AttemptResult = PyResult<Result<StepOutput, StepFailure>>;

impl PyStepRunner {
    async fn run_sync(session: Arc<Py<PyAny>>, request: StepRequest) -> Result<StepOutput, StepFailure> {
        // A live stream consumer runs in this process whatever its executor, and waits for
        // its instances: on the blocking pool, never on a runtime worker.
        let in_process = request.executor == ExecutorKind::InProcess && !request.reads_live();
        let call = move || -> AttemptResult {
            Python::attach(|py| {
                let outcome = session.call_method1(py, "run_step", (PyStepRequest::from(&request),))?;
                step_outcome(outcome.bind(py))
            })
        };
        // In-process steps run one at a time: `block_in_place` runs the call on this worker
        // (tokio moves its other tasks elsewhere) and saves two thread hand-offs per step.
        // Steps that wait on the subprocess pool or on their instances use the blocking pool,
        // so many can wait.
        let joined =
            if in_process { Ok(tokio::task::block_in_place(call)) } else { tokio::task::spawn_blocking(call).await };
        match joined {
            Ok(outcome) => outcome.unwrap_or_else(|err| Err(internal_failure(err))),
            Err(join) => {
                Err(StepFailure::new(format!("the step's thread failed: {join}"), FailureReason::Infrastructure))
            }
        }
    }

    async fn run_async(session: Arc<Py<PyAny>>, request: StepRequest) -> AttemptResult {
        // Creating the coroutine runs no user code; the body runs when the loop schedules it.
        let awaited = tokio::task::block_in_place(|| {
            Python::attach(|py| {
                let coroutine = session.call_method1(py, "run_async_step", (PyStepRequest::from(&request),))?;
                let event_loop = EVENT_LOOP.get_or_try_init(py, || {
                    py.import("rivers._execution.coroutines")?.call_method0("event_loop").map(Bound::unbind)
                })?;
                let locals = pyo3_async_runtimes::TaskLocals::new(event_loop.bind(py).clone());
                pyo3_async_runtimes::into_future_with_locals(&locals, coroutine.into_bound(py))
            })
        })?;
        let outcome = awaited.await?;
        tokio::task::block_in_place(|| Python::attach(|py| step_outcome(outcome.bind(py))))
    }
}

impl StepRunner for PyStepRunner {
    fn run_step(&self, request: StepRequest) -> BoxFuture<'static, Result<StepOutput, StepFailure>> {
        let session = Arc::clone(&self.session);
        if request.is_async {
            Box::pin(
                async move { Self::run_async(session, request).await.unwrap_or_else(|err| Err(internal_failure(err))) },
            )
        } else {
            Box::pin(Self::run_sync(session, request))
        }
    }

    /// Async steps are interrupted (their tasks cancelled on the event loop); sync steps run
    /// to their end, cancellation being cooperative.
    fn cancel_running(&self, _run_id: &str) {
        tokio::task::block_in_place(|| {
            Python::attach(|py| {
                if let Err(err) = self.session.call_method0(py, "cancel_async_steps") {
                    err.print(py);
                }
            })
        });
    }

    fn on_final_failure(&self, request: StepRequest, failure: StepFailure) -> BoxFuture<'static, ()> {
        let session = Arc::clone(&self.session);
        Box::pin(async move {
            let _ = tokio::task::spawn_blocking(move || {
                Python::attach(|py| {
                    let request = PyStepRequest::from(&request);
                    if let Err(err) = session.call_method1(py, "on_final_failure", (request, failure.message)) {
                        err.print(py);
                    }
                })
            })
            .await;
        })
    }
}

/// The settings of one run, built by the repository.
#[pyclass(name = "RunRequest", module = "rivers._core", frozen)]
pub(crate) struct PyRunRequest {
    pub(crate) options: RunOptions,
}

#[pymethods]
impl PyRunRequest {
    #[new]
    #[pyo3(signature = (
        *, run_id, job_name = None, tags = Vec::new(), partition_key = None, resume = false,
        stop_on_failure = false, max_workers = 1, max_async_concurrent = None, backfill = None, created = false
    ))]
    #[allow(clippy::too_many_arguments)] // keyword-only, one per run setting
    fn new(
        run_id: String,
        job_name: Option<String>,
        tags: Vec<(String, String)>,
        partition_key: Option<PyRef<'_, PyPartitionKey>>,
        resume: bool,
        stop_on_failure: bool,
        max_workers: usize,
        max_async_concurrent: Option<usize>,
        backfill: Option<(String, PyRef<'_, PyBackfillPlan>, usize)>,
        created: bool,
    ) -> PyResult<Self> {
        let mut launched_by = LaunchedBy::MANUAL;
        let mut partition = partition_key.map(|key| RunPartition::single(key.0.clone()));
        if let Some((backfill_id, plan, index)) = backfill {
            let (key, context_keys) = plan
                .0
                .run_partition(index)
                .ok_or_else(|| pyo3::exceptions::PyIndexError::new_err(format!("the backfill has no run {index}")))?;
            partition = Some(RunPartition { key, context_keys: context_keys.into() });
            launched_by = LaunchedBy::Backfill { backfill_id };
        }
        let default_priority =
            if matches!(launched_by, LaunchedBy::Backfill { .. }) { BACKFILL_PRIORITY } else { DEFAULT_PRIORITY };
        let priority = run_priority(&tags, default_priority);
        Ok(PyRunRequest {
            options: RunOptions {
                run_id,
                job_name,
                tags,
                priority,
                partition,
                resume,
                stop_on_failure,
                max_workers,
                max_async_concurrent,
                launched_by,
                backend: RunBackendKind::Local,
                liveness: Liveness::from_env().map_err(pyo3::exceptions::PyValueError::new_err)?,
                created,
            },
        })
    }

    #[getter]
    fn run_id(&self) -> &str {
        &self.options.run_id
    }
}

/// How a run ended.
#[pyclass(name = "RunOutcome", module = "rivers._core", frozen, get_all)]
pub(crate) struct PyRunOutcome {
    run_id: String,
    status: &'static str,
    /// Step keys attempted (succeeded, failed or satisfied by resume), in plan order.
    attempted: Vec<String>,
    /// `(step_key, message)` of failed steps, in the order they failed.
    failed: Vec<(String, String)>,
    /// Display forms of the partitions step bodies marked failed.
    failed_partitions: Vec<String>,
}

impl From<rivers_engine::RunOutcome> for PyRunOutcome {
    fn from(outcome: rivers_engine::RunOutcome) -> Self {
        PyRunOutcome {
            run_id: outcome.run_id,
            status: outcome.status.as_str(),
            attempted: outcome.attempted,
            failed: outcome.failed,
            failed_partitions: outcome.failed_partitions,
        }
    }
}

pub(crate) fn runner(session: Py<PyAny>) -> Arc<dyn StepRunner> {
    Arc::new(PyStepRunner { session: Arc::new(session) })
}

/// Executes `plan` as one run and returns how it ended.
#[pyfunction]
pub(crate) fn execute_run(
    py: Python<'_>,
    storage: PyRef<'_, PyStorage>,
    plan: PyRef<'_, PyPlan>,
    session: Py<PyAny>,
    request: PyRef<'_, PyRunRequest>,
) -> PyResult<PyRunOutcome> {
    let runner = runner(session);
    let options = request.options.clone();
    let inner = storage.inner().clone();
    let plan = plan.0.clone();
    let handle = storage.handle();
    let cancel = (inner.clone(), options.run_id.clone());
    let run = async move { rivers_engine::execute_run(&inner, &plan, runner, options).await };
    // Ctrl-C cancels the run (no new step starts, the run ends `Canceled`), then raises
    // KeyboardInterrupt.
    let outcome = block_on_interruptible(py, &handle, run, move || async move {
        let (storage, run_id) = cancel;
        if let Err(err) = storage.request_cancellation(&run_id).await {
            tracing::warn!(run_id, error = %err, "could not cancel the interrupted run");
        }
    })?;
    Ok(outcome.into())
}

/// A run started with `launch_run`, executing in the background.
#[pyclass(name = "LaunchedRun", module = "rivers._core", frozen)]
pub(crate) struct PyLaunchedRun {
    run: LaunchedRun,
    handle: tokio::runtime::Handle,
}

fn launch_result(outcome: LaunchOutcome) -> PyResult<PyRunOutcome> {
    match &*outcome {
        Ok(outcome) => Ok(outcome.clone().into()),
        Err(err) => Err(BindingError::engine_ref(err)),
    }
}

#[pymethods]
impl PyLaunchedRun {
    #[getter]
    fn run_id(&self) -> &str {
        self.run.run_id()
    }

    /// Whether the run has ended.
    fn done(&self) -> bool {
        self.run.outcome().is_some()
    }

    /// Waits for the run's end (at most `timeout` seconds; `None` or infinity: no limit);
    /// `None` if it is still running then. Ctrl-C interrupts the wait, not the run.
    #[pyo3(signature = (timeout = None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<PyRunOutcome>> {
        let deadline = timeout
            .and_then(|seconds| Duration::try_from_secs_f64(seconds.max(0.0)).ok())
            .and_then(|limit| Instant::now().checked_add(limit));
        loop {
            let slice = deadline.map_or(SIGNAL_POLL, |d| d.saturating_duration_since(Instant::now()).min(SIGNAL_POLL));
            let waited = block_on(py, &self.handle, async { Ok::<_, BindingError>(self.run.wait(Some(slice)).await) })?;
            if let Some(outcome) = waited {
                return launch_result(outcome).map(Some);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            py.check_signals()?;
        }
    }
}

/// Starts executing `plan` as one run in the background and returns at once.
#[pyfunction]
pub(crate) fn launch_run(
    storage: PyRef<'_, PyStorage>,
    plan: PyRef<'_, PyPlan>,
    session: Py<PyAny>,
    request: PyRef<'_, PyRunRequest>,
) -> PyLaunchedRun {
    let handle = storage.handle();
    let _entered = handle.enter();
    let run =
        rivers_engine::launch_run(storage.inner().clone(), plan.0.clone(), runner(session), request.options.clone());
    PyLaunchedRun { run, handle: handle.clone() }
}

/// Registers the run classes and functions on the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyRunRequest>()?;
    m.add_class::<PyRunOutcome>()?;
    m.add_class::<PyLaunchedRun>()?;
    m.add_function(wrap_pyfunction!(execute_run, m)?)?;
    m.add_function(wrap_pyfunction!(launch_run, m)?)?;
    Ok(())
}
