//! `rivers._core.explain_automation` and `simulate_automation`: why an asset's automation
//! condition is or is not true now, and what the automation would request over a span of time.
//! The evaluation is `rivers_daemon`'s (`explain_condition`, `simulate_automation`), exactly as
//! the daemon runs it; this module converts.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use rivers_core::DefinitionsSnapshot;
use rivers_core::condition::Explanation;
use rivers_daemon::{ConditionAssets, ExplainError, SimulateError, SimulatedRequest, explain_condition};

use crate::daemon::{PythonLocation, automations};
use crate::error::BindingError;
use crate::exceptions::AssetNotFoundError;
use crate::partitions::PyPartitionKey;
use crate::storage::PyStorage;

/// One evaluated node of a condition tree.
#[pyclass(name = "ConditionExplanation", module = "rivers._core", frozen)]
pub(crate) struct PyConditionExplanation {
    label: String,
    subject: String,
    value: bool,
    true_count: u64,
    facts: Vec<String>,
    children: Vec<Py<PyConditionExplanation>>,
    text: String,
}

impl PyConditionExplanation {
    /// `node` as a Python tree; `value` is whether it holds for `position` of the asset
    /// wearing the condition (for nodes about that asset), else whether it holds anywhere.
    fn convert(py: Python<'_>, node: &Explanation, root: &str, position: Option<u128>) -> PyResult<Py<Self>> {
        let value = match position {
            Some(position) if node.subject == root => node.true_positions.contains(position),
            _ => !node.true_positions.is_empty(),
        };
        let children =
            node.children.iter().map(|child| Self::convert(py, child, root, position)).collect::<PyResult<_>>()?;
        Py::new(
            py,
            Self {
                label: node.description.clone(),
                subject: node.subject.clone(),
                value,
                true_count: u64::try_from(node.true_count()).unwrap_or(u64::MAX),
                facts: node.facts.clone(),
                children,
                text: node.to_string(),
            },
        )
    }
}

#[pymethods]
impl PyConditionExplanation {
    /// The node's description (its label when labelled).
    #[getter]
    fn label(&self) -> &str {
        &self.label
    }

    /// The asset the node inspected.
    #[getter]
    fn asset_key(&self) -> &str {
        &self.subject
    }

    /// Whether the node holds (for the partition asked about, or for any partition).
    #[getter]
    fn value(&self) -> bool {
        self.value
    }

    /// How many partitions of `asset_key` the node holds for.
    #[getter]
    fn true_count(&self) -> u64 {
        self.true_count
    }

    /// The facts the node used, in words.
    #[getter]
    fn facts(&self) -> Vec<String> {
        self.facts.clone()
    }

    /// The operands' explanations.
    #[getter]
    fn children(&self, py: Python<'_>) -> Vec<Py<PyConditionExplanation>> {
        self.children.iter().map(|child| child.clone_ref(py)).collect()
    }

    fn __str__(&self) -> &str {
        &self.text
    }

    fn __repr__(&self) -> String {
        format!("ConditionExplanation(label={:?}, asset_key={:?}, value={})", self.label, self.subject, self.value)
    }
}

/// Explains `asset`'s condition against `storage` now; writes nothing.
#[pyfunction]
#[pyo3(signature = (snapshot, storage, asset, partition_key=None))]
pub(crate) fn explain_automation(
    py: Python<'_>,
    snapshot: &str,
    storage: &PyStorage,
    asset: &str,
    partition_key: Option<PyRef<'_, PyPartitionKey>>,
) -> PyResult<Py<PyConditionExplanation>> {
    let snapshot: DefinitionsSnapshot = serde_json::from_str(snapshot)
        .map_err(|error| PyRuntimeError::new_err(format!("the repository's definitions do not decode: {error}")))?;
    let assets = ConditionAssets::from_snapshot(&snapshot).map_err(PyValueError::new_err)?;
    let key = partition_key.map(|key| key.0.clone());
    let handle = storage.handle();
    let store = storage.inner().clone();
    let explained =
        py.detach(|| handle.block_on(explain_condition(&store, &assets, asset, key.as_ref(), chrono::Utc::now())));
    match explained {
        Ok(report) => PyConditionExplanation::convert(py, &report.explanation, asset, report.position),
        Err(ExplainError::UnknownAsset(_)) => Err(AssetNotFoundError::new_err(explained_text(&explained))),
        Err(ExplainError::Storage(error)) => Err(BindingError::from(error).into()),
        Err(ExplainError::NoCondition(_) | ExplainError::UnknownPartition { .. }) => {
            Err(PyValueError::new_err(explained_text(&explained)))
        }
    }
}

fn explained_text<T>(result: &Result<T, ExplainError>) -> String {
    result.as_ref().err().map(ToString::to_string).unwrap_or_default()
}

/// A run the automation would have requested in a simulation.
#[pyclass(name = "SimulatedRequest", module = "rivers._core", frozen)]
pub(crate) struct PySimulatedRequest(SimulatedRequest);

#[pymethods]
impl PySimulatedRequest {
    /// When it would have been requested (UTC).
    #[getter]
    fn time(&self) -> DateTime<Utc> {
        self.0.time
    }

    /// `"schedule"` or `"condition"`.
    #[getter]
    fn automation_type(&self) -> &'static str {
        self.0.automation_type.as_str()
    }

    /// The schedule's name; `None` for conditions.
    #[getter]
    fn name(&self) -> Option<&str> {
        self.0.name.as_deref()
    }

    /// The job it runs; `None` for an ad-hoc run.
    #[getter]
    fn job_name(&self) -> Option<&str> {
        self.0.job_name.as_deref()
    }

    /// The assets it materializes (external assets: observes).
    #[getter]
    fn asset_keys(&self) -> Vec<String> {
        self.0.asset_keys.clone()
    }

    /// Its partition key in display form.
    #[getter]
    fn partition_key(&self) -> Option<String> {
        self.0.partition_key.as_ref().map(ToString::to_string)
    }

    fn __repr__(&self) -> String {
        format!(
            "SimulatedRequest(time={}, automation_type={:?}, name={:?}, asset_keys={:?}, partition_key={:?})",
            self.0.time.to_rfc3339(),
            self.0.automation_type.as_str(),
            self.0.name,
            self.0.asset_keys,
            self.partition_key()
        )
    }
}

/// Simulates the repository's schedules and conditions from `start` to `end` every `step`.
#[pyfunction]
pub(crate) fn simulate_automation(
    py: Python<'_>,
    repo: Py<PyAny>,
    storage: &PyStorage,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    step: &str,
) -> PyResult<Vec<PySimulatedRequest>> {
    let step = rivers_core::parse_duration(step).map_err(|error| PyValueError::new_err(format!("step: {error}")))?;
    let snapshot: String = repo.call_method0(py, "_definitions_snapshot")?.extract(py)?;
    let snapshot: DefinitionsSnapshot = serde_json::from_str(&snapshot)
        .map_err(|error| PyRuntimeError::new_err(format!("the repository's definitions do not decode: {error}")))?;
    let automations = automations(&snapshot)?;
    let location = PythonLocation::new(Arc::new(repo));
    let handle = storage.handle();
    let store = storage.inner().clone();
    let simulated = py.detach(|| {
        handle.block_on(rivers_daemon::simulate_automation(&store, &location, &automations, start, end, step))
    });
    match simulated {
        Ok(requests) => Ok(requests.into_iter().map(PySimulatedRequest).collect()),
        Err(SimulateError::Storage(error)) => Err(BindingError::from(error).into()),
        Err(error @ SimulateError::InvalidSpan(_)) => Err(PyValueError::new_err(error.to_string())),
        Err(error @ SimulateError::Evaluation { .. }) => Err(PyRuntimeError::new_err(error.to_string())),
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyConditionExplanation>()?;
    m.add_class::<PySimulatedRequest>()?;
    m.add_function(wrap_pyfunction!(explain_automation, m)?)?;
    m.add_function(wrap_pyfunction!(simulate_automation, m)?)?;
    Ok(())
}
