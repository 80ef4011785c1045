//! The Python-backed `StepRunner` and the `execute_run` entry point.

use std::sync::Arc;

use futures::future::BoxFuture;
use pyo3::prelude::*;
use rivers_core::{FailureReason, LaunchedBy};
use rivers_engine::{Materialized, RunOptions, StepFailure, StepOutput, StepRequest, StepRunner};

use crate::graph::PyPlan;
use crate::runtime::block_on_interruptible;
use crate::storage::PyStorage;

type Captured = Option<(Option<String>, Option<String>, Option<String>)>;
/// A materialization as the Python step entry reports it.
type MaterializationRow = (String, Vec<(String, String)>, Option<String>, Option<String>);
/// `(run_id, status, attempted steps, failed steps)` as returned to Python.
type RunSummary = (String, &'static str, Vec<String>, Vec<(String, String)>);

/// Calls the Python run object (`rivers._execution.run.RunSession`) once per step attempt.
///
/// The Python call runs on a blocking thread: it holds the GIL only while Python executes, and
/// a tokio worker is never blocked on the GIL.
struct PyStepRunner {
    session: Arc<Py<PyAny>>,
}

fn parse_outcome(outcome: &Bound<'_, PyAny>) -> PyResult<Result<StepOutput, StepFailure>> {
    let tag: String = outcome.get_item(0)?.extract()?;
    if tag == "ok" {
        let mats: Vec<MaterializationRow> = outcome.get_item(1)?.extract()?;
        let captured: Captured = outcome.get_item(2)?.extract()?;
        Ok(Ok(StepOutput {
            materializations: mats
                .into_iter()
                .map(|(asset_key, metadata, data_version, code_version)| Materialized {
                    asset_key,
                    metadata,
                    data_version,
                    code_version,
                })
                .collect(),
            captured,
        }))
    } else {
        let message: String = outcome.get_item(1)?.extract()?;
        let reason: String = outcome.get_item(2)?.extract()?;
        Ok(Err(StepFailure {
            message,
            reason: reason.parse().unwrap_or(FailureReason::Error),
            matched_retry_class: outcome.get_item(3)?.extract()?,
            captured: outcome.get_item(4)?.extract()?,
        }))
    }
}

fn internal_failure(err: PyErr) -> StepFailure {
    StepFailure {
        message: format!("internal error while running the step: {err}"),
        reason: FailureReason::Error,
        matched_retry_class: false,
        captured: None,
    }
}

impl StepRunner for PyStepRunner {
    fn run_step(&self, request: StepRequest) -> BoxFuture<'static, Result<StepOutput, StepFailure>> {
        let session = Arc::clone(&self.session);
        Box::pin(async move {
            let in_process = request.executor == rivers_core::ExecutorKind::InProcess;
            let call = move || {
                Python::attach(|py| {
                    let outcome = session.call_method1(
                        py,
                        "run_step",
                        (
                            request.step_index,
                            request.step_key,
                            request.attempt,
                            request.executor.as_str(),
                            request.retry_class_filter,
                        ),
                    )?;
                    parse_outcome(outcome.bind(py))
                })
            };
            // In-process steps run one at a time: `block_in_place` runs the call on this worker
            // (tokio moves its other tasks elsewhere) and saves two thread hand-offs per step.
            // Steps that wait on a subprocess pool or an event loop use the blocking pool, so
            // many can wait at once.
            let joined = if in_process {
                Ok(tokio::task::block_in_place(call))
            } else {
                tokio::task::spawn_blocking(call).await
            };
            match joined {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(err)) => Err(internal_failure(err)),
                Err(join) => Err(StepFailure {
                    message: format!("the step's thread failed: {join}"),
                    reason: FailureReason::Infrastructure,
                    matched_retry_class: false,
                    captured: None,
                }),
            }
        })
    }

    fn on_final_failure(&self, request: StepRequest, failure: StepFailure) -> BoxFuture<'static, ()> {
        let session = Arc::clone(&self.session);
        Box::pin(async move {
            let _ = tokio::task::spawn_blocking(move || {
                Python::attach(|py| {
                    if let Err(err) = session.call_method1(
                        py,
                        "on_final_failure",
                        (request.step_index, request.step_key, request.executor.as_str(), failure.message),
                    ) {
                        err.print(py);
                    }
                })
            })
            .await;
        })
    }
}

/// Executes `plan` as one run and returns `(run_id, status, attempted, failed)`.
#[pyfunction]
#[pyo3(signature = (storage, plan, session, run_id, job_name, tags, priority, partition_key, resume, stop_on_failure, max_workers, max_async_concurrent))]
#[allow(clippy::too_many_arguments)] // mirrors the keyword arguments of one Python call site
pub(crate) fn execute_run(
    py: Python<'_>,
    storage: PyRef<'_, PyStorage>,
    plan: PyRef<'_, PyPlan>,
    session: Py<PyAny>,
    run_id: String,
    job_name: Option<String>,
    tags: Vec<(String, String)>,
    priority: i64,
    partition_key: Option<String>,
    resume: bool,
    stop_on_failure: bool,
    max_workers: usize,
    max_async_concurrent: Option<usize>,
) -> PyResult<RunSummary> {
    let runner: Arc<dyn StepRunner> = Arc::new(PyStepRunner { session: Arc::new(session) });
    let options = RunOptions {
        run_id,
        job_name,
        tags,
        priority,
        partition_json: partition_key.clone().map(serde_json::Value::String),
        partition_key,
        resume,
        stop_on_failure,
        max_workers,
        max_async_concurrent,
        launched_by: LaunchedBy::Manual,
    };
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
    Ok((outcome.run_id, outcome.status.as_str(), outcome.attempted, outcome.failed))
}
