//! The typed classes one step attempt crosses the border with: the engine's request going to
//! Python, and the outcome coming back.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use rivers_core::FailureReason;
use rivers_engine::{CapturedOutput, Materialized, StepFailure, StepOutput, StepRequest};

/// The instance keys of a fan-out a step gathers, in element and in completion order.
#[pyclass(name = "FanIn", module = "rivers._core", frozen, get_all)]
#[derive(Clone)]
pub(crate) struct PyFanIn {
    template: String,
    keys: Vec<String>,
    completed: Vec<String>,
}

/// One step attempt the engine asks Python to run.
#[pyclass(name = "StepRequest", module = "rivers._core", frozen, get_all)]
pub(crate) struct PyStepRequest {
    run_id: String,
    step_key: String,
    node: String,
    mapping_key: Option<String>,
    partition_keys: Vec<String>,
    output_selection: Vec<String>,
    fan_in: Vec<PyFanIn>,
    attempt: u32,
    executor: &'static str,
    is_async: bool,
    retry_class_filter: Option<usize>,
}

impl From<&StepRequest> for PyStepRequest {
    fn from(request: &StepRequest) -> Self {
        PyStepRequest {
            run_id: request.run_id.clone(),
            step_key: request.step_key.to_string(),
            node: request.node_name.clone(),
            mapping_key: request.mapping_key.clone(),
            partition_keys: request.partition_keys.clone(),
            output_selection: request.output_selection.clone(),
            fan_in: request
                .fan_in
                .iter()
                .map(|f| PyFanIn { template: f.template.clone(), keys: f.keys.clone(), completed: f.completed.clone() })
                .collect(),
            attempt: request.attempt,
            executor: request.executor.as_str(),
            is_async: request.is_async,
            retry_class_filter: request.retry_class_filter,
        }
    }
}

#[pymethods]
impl PyStepRequest {
    fn __repr__(&self) -> String {
        format!("StepRequest(step_key={:?}, attempt={}, executor={:?})", self.step_key, self.attempt, self.executor)
    }
}

/// What one step printed and logged.
#[pyclass(name = "CapturedOutput", module = "rivers._core", frozen, get_all)]
#[derive(Clone)]
pub(crate) struct PyCapturedOutput {
    stdout: Option<String>,
    stderr: Option<String>,
    logs: Option<String>,
}

#[pymethods]
impl PyCapturedOutput {
    #[new]
    #[pyo3(signature = (stdout = None, stderr = None, logs = None))]
    fn new(stdout: Option<String>, stderr: Option<String>, logs: Option<String>) -> Self {
        PyCapturedOutput { stdout, stderr, logs }
    }
}

impl From<PyCapturedOutput> for CapturedOutput {
    fn from(captured: PyCapturedOutput) -> Self {
        CapturedOutput { stdout: captured.stdout, stderr: captured.stderr, logs: captured.logs }
    }
}

/// One asset value a step persisted (or a `Materialization` it returned).
#[pyclass(name = "StepMaterialization", module = "rivers._core", frozen, get_all)]
#[derive(Clone)]
pub(crate) struct PyStepMaterialization {
    asset_key: String,
    metadata: Vec<(String, String)>,
    data_version: Option<String>,
    code_version: Option<String>,
}

#[pymethods]
impl PyStepMaterialization {
    #[new]
    #[pyo3(signature = (asset_key, metadata, data_version = None, code_version = None))]
    fn new(
        asset_key: String,
        metadata: Vec<(String, String)>,
        data_version: Option<String>,
        code_version: Option<String>,
    ) -> Self {
        PyStepMaterialization { asset_key, metadata, data_version, code_version }
    }
}

/// A step attempt that succeeded; a fan-out template reports its instance keys.
#[pyclass(name = "StepSucceeded", module = "rivers._core", frozen)]
pub(crate) struct PyStepSucceeded {
    materializations: Vec<PyStepMaterialization>,
    captured: Option<PyCapturedOutput>,
    fan_out: Option<Vec<String>>,
}

#[pymethods]
impl PyStepSucceeded {
    #[new]
    #[pyo3(signature = (materializations, captured = None, fan_out = None))]
    fn new(
        materializations: Vec<PyStepMaterialization>,
        captured: Option<PyCapturedOutput>,
        fan_out: Option<Vec<String>>,
    ) -> Self {
        PyStepSucceeded { materializations, captured, fan_out }
    }
}

/// A step attempt that failed, with what it persisted before failing.
#[pyclass(name = "StepFailed", module = "rivers._core", frozen)]
pub(crate) struct PyStepFailed {
    message: String,
    reason: FailureReason,
    matched_retry_class: bool,
    captured: Option<PyCapturedOutput>,
    materializations: Vec<PyStepMaterialization>,
}

#[pymethods]
impl PyStepFailed {
    /// `reason` is a `FailureReason` value (`"error"`, `"timeout"`, ...).
    #[new]
    #[pyo3(signature = (message, reason, matched_retry_class = false, captured = None, materializations = Vec::new()))]
    fn new(
        message: String,
        reason: &str,
        matched_retry_class: bool,
        captured: Option<PyCapturedOutput>,
        materializations: Vec<PyStepMaterialization>,
    ) -> PyResult<Self> {
        let reason = reason.parse().map_err(|_| {
            PyValueError::new_err(format!(
                "StepFailed(reason={reason:?}): not a failure reason; use error, out_of_memory, timeout, \
                 infrastructure or canceled"
            ))
        })?;
        Ok(PyStepFailed { message, reason, matched_retry_class, captured, materializations })
    }
}

fn materialized(materializations: &[PyStepMaterialization]) -> Vec<Materialized> {
    materializations
        .iter()
        .cloned()
        .map(|m| Materialized {
            asset_key: m.asset_key,
            metadata: m.metadata,
            data_version: m.data_version,
            code_version: m.code_version,
        })
        .collect()
}

/// Converts what the Python session returned for an attempt.
pub(crate) fn step_outcome(outcome: &Bound<'_, PyAny>) -> PyResult<Result<StepOutput, StepFailure>> {
    if let Ok(succeeded) = outcome.downcast::<PyStepSucceeded>() {
        let succeeded = succeeded.get();
        return Ok(Ok(StepOutput {
            materializations: materialized(&succeeded.materializations),
            captured: succeeded.captured.clone().map(Into::into),
            growth: Default::default(),
            fan_out: succeeded.fan_out.clone(),
        }));
    }
    if let Ok(failed) = outcome.downcast::<PyStepFailed>() {
        let failed = failed.get();
        return Ok(Err(StepFailure {
            message: failed.message.clone(),
            reason: failed.reason,
            matched_retry_class: failed.matched_retry_class,
            captured: failed.captured.clone().map(|c| Box::new(c.into())),
            materializations: materialized(&failed.materializations),
        }));
    }
    Err(pyo3::exceptions::PyTypeError::new_err(format!(
        "a step attempt must end in StepSucceeded or StepFailed, not {}",
        outcome.get_type().name()?
    )))
}

/// Registers the step classes on the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyStepRequest>()?;
    m.add_class::<PyFanIn>()?;
    m.add_class::<PyCapturedOutput>()?;
    m.add_class::<PyStepMaterialization>()?;
    m.add_class::<PyStepSucceeded>()?;
    m.add_class::<PyStepFailed>()?;
    Ok(())
}
