//! Backfill coordination: Python plans a backfill and builds each run's step session; the
//! record, the launches, the counters, the failure policy and cancellation are Rust's
//! (`rivers_engine::coordinate_backfill`).

use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use rivers_core::{BackfillState, FailurePolicy, LaunchedBy};
use rivers_engine::{BackfillJob, BackfillOutcome, BackfillRuns, RunOptions, StepRunner};
use rivers_storage::BackfillRecord;

use crate::graph::PyPlan;
use crate::partitions::{PlannedBackfill, PyBackfillPlan};
use crate::records::PyLaunchedBy;
use crate::run::{PyRunRequest, runner};
use crate::runtime::block_on_interruptible;
use crate::storage::PyStorage;

/// Builds each run of a backfill through a Python callable `prepare(index) -> (session,
/// RunRequest)`; its partitions come from the plan.
struct PyBackfillRuns {
    prepare: Py<PyAny>,
    planned: Arc<PlannedBackfill>,
}

impl BackfillRuns for PyBackfillRuns {
    fn prepare(&self, index: usize) -> Result<(Arc<dyn StepRunner>, RunOptions), String> {
        Python::attach(|py| {
            let prepared = self.prepare.call1(py, (index,))?;
            let (session, request): (Py<PyAny>, PyRef<'_, PyRunRequest>) = prepared.extract(py)?;
            Ok::<_, PyErr>((runner(session), request.options.clone()))
        })
        .map_err(|err| err.to_string())
    }

    fn run_keys(&self, index: usize) -> Vec<String> {
        self.planned.run_keys(index)
    }
}

/// How a backfill stands: its end with `block=True`, its start otherwise.
#[pyclass(name = "BackfillOutcome", module = "rivers._core", frozen, get_all)]
pub(crate) struct PyBackfillOutcome {
    status: &'static str,
    completed: u64,
    failed: u64,
    canceled: u64,
    run_ids: Vec<String>,
}

impl From<BackfillOutcome> for PyBackfillOutcome {
    fn from(outcome: BackfillOutcome) -> Self {
        PyBackfillOutcome {
            status: outcome.status.reported(),
            completed: outcome.completed,
            failed: outcome.failed,
            canceled: outcome.canceled,
            run_ids: outcome.run_ids,
        }
    }
}

/// The record of a backfill planned as `planned` about to be stored with `status`.
#[allow(clippy::too_many_arguments)] // one per field of the backfill's record
fn backfill_record(
    backfill_id: &str,
    status: BackfillState,
    planned: &PlannedBackfill,
    selection: Option<Vec<String>>,
    failure_policy: FailurePolicy,
    max_concurrency: usize,
    tags: Vec<(String, String)>,
    config: Option<&str>,
    launched_by: LaunchedBy,
) -> PyResult<BackfillRecord> {
    let config = config
        .map(serde_json::from_str)
        .transpose()
        .map_err(|err| PyValueError::new_err(format!("backfill config is not JSON: {err}")))?;
    Ok(BackfillRecord {
        selection,
        target: Some(planned.target.clone()),
        max_concurrency: u32::try_from(max_concurrency).unwrap_or(u32::MAX),
        tags,
        config,
        num_partitions: planned.num_partitions() as u64,
        num_runs: planned.num_runs() as u64,
        ..BackfillRecord::new(backfill_id, status, planned.strategy.clone(), failure_policy, launched_by)
    })
}

fn failure_policy_of(text: &str) -> PyResult<FailurePolicy> {
    text.parse().map_err(|err: rivers_core::Error| PyValueError::new_err(err.to_string()))
}

/// Stores backfill `backfill_id` (planned as `backfill`, every run executing `plan`),
/// launched manually, and coordinates its runs: waits for its end with `block`, else returns
/// at once while it runs on the storage's runtime. Ctrl-C while waiting cancels it.
#[pyfunction]
#[pyo3(signature = (
    storage, plan, backfill, prepare, *, backfill_id, selection, failure_policy, max_concurrency, tags, config, block
))]
#[allow(clippy::too_many_arguments)] // keyword-only, one per field of the backfill's record
pub(crate) fn run_backfill(
    py: Python<'_>,
    storage: PyRef<'_, PyStorage>,
    plan: PyRef<'_, PyPlan>,
    backfill: PyRef<'_, PyBackfillPlan>,
    prepare: Py<PyAny>,
    backfill_id: String,
    selection: Option<Vec<String>>,
    failure_policy: &str,
    max_concurrency: usize,
    tags: Vec<(String, String)>,
    config: Option<&str>,
    block: bool,
) -> PyResult<PyBackfillOutcome> {
    let failure_policy = failure_policy_of(failure_policy)?;
    let planned = Arc::clone(&backfill.0);
    let record = backfill_record(
        &backfill_id,
        BackfillState::InProgress,
        &planned,
        selection,
        failure_policy,
        max_concurrency,
        tags,
        config,
        LaunchedBy::MANUAL,
    )?;
    let job = BackfillJob {
        backfill_id: backfill_id.clone(),
        plan: plan.0.clone(),
        num_runs: planned.num_runs(),
        failure_policy,
        max_concurrency,
    };
    let runs: Arc<dyn BackfillRuns> = Arc::new(PyBackfillRuns { prepare, planned });
    let inner = storage.inner().clone();
    let handle = storage.handle();
    storage.sync(py, inner.create_backfill(&record))?;
    // Registered before returning, so that `cancel_backfill` right after a `block=False`
    // submission finds it.
    let registration = rivers_engine::register_live_backfill(&backfill_id);
    let coordinate = rivers_engine::coordinate_backfill(inner, job, runs, registration);
    if !block {
        handle.spawn(async move {
            if let Err(err) = coordinate.await {
                tracing::error!(error = %err, "a backfill running in the background failed");
            }
        });
        return Ok(PyBackfillOutcome {
            status: BackfillState::InProgress.reported(),
            completed: 0,
            failed: 0,
            canceled: 0,
            run_ids: Vec::new(),
        });
    }
    let outcome = block_on_interruptible(py, &handle, coordinate, move || async move {
        rivers_engine::cancel_live_backfill(&backfill_id);
    })?;
    Ok(outcome.into())
}

/// Stores backfill `backfill_id` (planned as `backfill`) as requested, for a daemon of this
/// code location to claim, submit through its run queue and follow.
#[pyfunction]
#[pyo3(signature = (
    storage, backfill, *, backfill_id, selection, failure_policy, max_concurrency, tags, config, launched_by
))]
#[allow(clippy::too_many_arguments)] // keyword-only, one per field of the backfill's record
pub(crate) fn request_backfill(
    py: Python<'_>,
    storage: PyRef<'_, PyStorage>,
    backfill: PyRef<'_, PyBackfillPlan>,
    backfill_id: String,
    selection: Option<Vec<String>>,
    failure_policy: &str,
    max_concurrency: usize,
    tags: Vec<(String, String)>,
    config: Option<&str>,
    launched_by: PyLaunchedBy,
) -> PyResult<()> {
    let record = backfill_record(
        &backfill_id,
        BackfillState::Requested,
        &backfill.0,
        selection,
        failure_policy_of(failure_policy)?,
        max_concurrency,
        tags,
        config,
        launched_by.0,
    )?;
    let inner = storage.inner().clone();
    storage.sync(py, async move { inner.create_backfill(&record).await })
}

/// Cancels a backfill: `True` when this process coordinates it (it was signalled); otherwise a
/// cancel marker is left on its record for the process that does, and `False`.
#[pyfunction]
pub(crate) fn cancel_backfill(py: Python<'_>, storage: PyRef<'_, PyStorage>, backfill_id: String) -> PyResult<bool> {
    if rivers_engine::cancel_live_backfill(&backfill_id) {
        return Ok(true);
    }
    let inner = storage.inner().clone();
    storage.sync(py, async move { inner.request_backfill_cancel(&backfill_id).await.map(|_| false) })
}

/// Registers the backfill functions on the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyBackfillOutcome>()?;
    m.add_function(wrap_pyfunction!(run_backfill, m)?)?;
    m.add_function(wrap_pyfunction!(request_backfill, m)?)?;
    m.add_function(wrap_pyfunction!(cancel_backfill, m)?)?;
    Ok(())
}
