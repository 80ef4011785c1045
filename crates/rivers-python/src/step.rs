//! The typed classes one step attempt crosses the border with: the engine's request going to
//! Python, and the outcome coming back.

use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use rivers_core::FailureReason;
use rivers_core::partitions::PartitionKey;
use rivers_engine::{
    CapturedOutput, FanIn, InputScope, InstanceFeed, InstanceOutcome, Materialized, StepFailure, StepOutput,
    StepRequest, StepScope,
};

use crate::error::BindingError;
use crate::partitions::{PyPartitionContext, key_to_py};
use crate::runtime::{block_on, runtime};

/// The instance keys of a fan-out a step gathers, in element and in completion order, and for
/// a `collect_stream()` consumer the instances' outcomes.
#[pyclass(name = "FanIn", module = "rivers._core", frozen, get_all)]
#[derive(Clone)]
pub(crate) struct PyFanIn {
    template: String,
    keys: Vec<String>,
    completed: Vec<String>,
    outcomes: Option<PyInstanceFeed>,
    live: bool,
}

impl From<&FanIn> for PyFanIn {
    fn from(fan_in: &FanIn) -> Self {
        PyFanIn {
            template: fan_in.template.clone(),
            keys: fan_in.keys.clone(),
            completed: fan_in.completed.clone(),
            outcomes: fan_in.outcomes.clone().map(PyInstanceFeed),
            live: fan_in.live,
        }
    }
}

/// An instance's outcome as Python reads it: `(key, None)` when it succeeded, `(key, message)`
/// when it failed.
type PyOutcome = (String, Option<String>);

fn py_outcome(outcome: InstanceOutcome) -> PyOutcome {
    let failure = outcome.failure().map(str::to_string);
    match outcome {
        InstanceOutcome::Succeeded { key } | InstanceOutcome::Failed { key, .. } => (key, failure),
    }
}

/// The outcomes of a fan-out's instances in the order they ended, read by a `collect_stream()`
/// consumer while they run.
#[pyclass(name = "InstanceFeed", module = "rivers._core", frozen)]
#[derive(Clone)]
pub(crate) struct PyInstanceFeed(InstanceFeed);

#[pymethods]
impl PyInstanceFeed {
    /// The `index`-th outcome to be delivered, waiting for it with the GIL released; `None`
    /// when the run ended first.
    fn outcome(&self, py: Python<'_>, index: usize) -> PyResult<Option<PyOutcome>> {
        let feed = self.0.clone();
        let outcome =
            block_on(py, runtime().handle(), async move { Ok::<_, BindingError>(feed.outcome(index).await) })?;
        Ok(outcome.map(py_outcome))
    }

    /// The outcomes delivered so far, without waiting.
    fn delivered(&self) -> Vec<PyOutcome> {
        self.0.delivered().into_iter().map(py_outcome).collect()
    }
}

/// One step attempt the engine asks Python to run.
#[pyclass(name = "StepRequest", module = "rivers._core", frozen, get_all)]
pub(crate) struct PyStepRequest {
    run_id: String,
    step_key: String,
    node: String,
    mapping_key: Option<String>,
    partition: Option<PyStepPartition>,
    output_selection: Vec<String>,
    fan_in: Vec<PyFanIn>,
    attempt: u32,
    executor: &'static str,
    is_async: bool,
    retry_class_filter: Option<usize>,
    /// [`StepRequest::reads_live`]: the step runs in this process whatever its executor.
    reads_live: bool,
}

impl From<&StepRequest> for PyStepRequest {
    fn from(request: &StepRequest) -> Self {
        PyStepRequest {
            run_id: request.run_id.clone(),
            step_key: request.step_key.to_string(),
            node: request.node_name.clone(),
            mapping_key: request.mapping_key.clone(),
            partition: request.partition.clone().map(PyStepPartition),
            output_selection: request.output_selection.clone(),
            fan_in: request.fan_in.iter().map(PyFanIn::from).collect(),
            attempt: request.attempt,
            executor: request.executor.as_str(),
            is_async: request.is_async,
            retry_class_filter: request.retry_class_filter,
            reads_live: request.reads_live(),
        }
    }
}

#[pymethods]
impl PyStepRequest {
    fn __repr__(&self) -> String {
        format!("StepRequest(step_key={:?}, attempt={}, executor={:?})", self.step_key, self.attempt, self.executor)
    }
}

/// What a step covers and reads of partitions (keys become Python objects when read).
#[pyclass(name = "StepPartition", module = "rivers._core", frozen)]
#[derive(Clone)]
pub(crate) struct PyStepPartition(Arc<StepScope>);

fn key_list<'py>(py: Python<'py>, keys: &[PartitionKey]) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, keys.iter().map(|k| key_to_py(py, k.clone())).collect::<PyResult<Vec<_>>>()?)
}

#[pymethods]
impl PyStepPartition {
    /// The step's `PartitionContext` with `definition` (`None` for an unpartitioned step); its
    /// keys become Python objects only when read.
    fn context(&self, definition: Py<PyAny>) -> Option<PyPartitionContext> {
        (!self.0.keys.is_empty()).then(|| PyPartitionContext::from_engine(Arc::clone(&self.0.keys), definition))
    }

    /// The context input `upstream` is loaded with (upstream `definition`): `None` when it reads
    /// nothing, or no partition.
    fn input_context(&self, upstream: &str, definition: Py<PyAny>) -> Option<PyPartitionContext> {
        self.0.inputs.iter().find(|(name, _)| name == upstream).and_then(|(_, scope)| match scope {
            InputScope::Keys(keys) if !keys.is_empty() => {
                Some(PyPartitionContext::from_engine(Arc::clone(keys), definition))
            }
            _ => None,
        })
    }

    /// The individual partitions the step covers, in enumeration order.
    #[getter]
    fn covered<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        key_list(py, &self.0.covered)
    }

    /// How many individual partitions the step covers.
    #[getter]
    fn covered_count(&self) -> usize {
        self.0.covered.len()
    }

    /// The upstreams read by partition (inputs read whole are absent): name → whether it reads
    /// some partition (`False`: nothing, the parameter is `None`).
    #[getter]
    fn partitioned_inputs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let inputs = PyDict::new(py);
        for (upstream, scope) in &self.0.inputs {
            match scope {
                InputScope::Keys(keys) => inputs.set_item(upstream, !keys.is_empty())?,
                InputScope::Nothing => inputs.set_item(upstream, false)?,
                InputScope::Whole => {}
            }
        }
        Ok(inputs)
    }

    /// Why the step cannot run for its partitions, if it cannot.
    #[getter]
    fn error(&self) -> Option<String> {
        self.0.error.clone()
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
    failed_partitions: Vec<(String, String)>,
}

#[pymethods]
impl PyStepSucceeded {
    /// `failed_partitions`: `(partition display form, message)` of the covered partitions the
    /// body marked failed.
    #[new]
    #[pyo3(signature = (materializations, captured = None, fan_out = None, failed_partitions = Vec::new()))]
    fn new(
        materializations: Vec<PyStepMaterialization>,
        captured: Option<PyCapturedOutput>,
        fan_out: Option<Vec<String>>,
        failed_partitions: Vec<(String, String)>,
    ) -> Self {
        PyStepSucceeded { materializations, captured, fan_out, failed_partitions }
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
            failed_partitions: succeeded.failed_partitions.clone(),
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
    m.add_class::<PyStepPartition>()?;
    m.add_class::<PyFanIn>()?;
    m.add_class::<PyInstanceFeed>()?;
    m.add_class::<PyCapturedOutput>()?;
    m.add_class::<PyStepMaterialization>()?;
    m.add_class::<PyStepSucceeded>()?;
    m.add_class::<PyStepFailed>()?;
    Ok(())
}
