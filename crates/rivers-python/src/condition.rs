//! `AutomationCondition`: the Python face of `rivers_core::condition::Condition`. Factories,
//! operators and structural edits call the core; nothing is evaluated here.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use rivers_core::condition::{Condition, ConditionError, ConditionMatcher, TagFilter};

use crate::error::BindingError;

/// An immutable automation condition tree.
#[pyclass(name = "AutomationCondition", module = "rivers", frozen, eq, hash)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct PyAutomationCondition(pub(crate) Condition);

fn built(result: Result<Condition, ConditionError>) -> PyResult<PyAutomationCondition> {
    result.map(PyAutomationCondition).map_err(|e| PyErr::from(BindingError::from(rivers_core::Error::from(e))))
}

/// `other` as a condition, or a `TypeError` naming its type and the fix.
fn operand(other: &Bound<'_, PyAny>, operator: &str) -> PyResult<Condition> {
    match other.cast::<PyAutomationCondition>() {
        Ok(condition) => Ok(condition.get().0.clone()),
        Err(_) => Err(PyTypeError::new_err(format!(
            "cannot combine an AutomationCondition with {} using '{operator}': both operands must be \
             AutomationCondition objects",
            other.get_type().name()?
        ))),
    }
}

/// A `replace`/`without` target: a label or description, or a condition.
fn matcher(target: &Bound<'_, PyAny>, method: &str) -> PyResult<ConditionMatcher> {
    if let Ok(text) = target.extract::<String>() {
        return Ok(ConditionMatcher::Description(text));
    }
    match target.cast::<PyAutomationCondition>() {
        Ok(condition) => Ok(ConditionMatcher::Condition(condition.get().0.clone())),
        Err(_) => Err(PyTypeError::new_err(format!(
            "AutomationCondition.{method}() takes a label or description (str) or an AutomationCondition, not {}",
            target.get_type().name()?
        ))),
    }
}

fn tag_filter(tag_keys: Option<Vec<String>>, tag_values: Option<Vec<(String, String)>>) -> TagFilter {
    TagFilter { tag_keys, tag_values }
}

#[pymethods]
impl PyAutomationCondition {
    #[staticmethod]
    fn missing() -> Self {
        Self(Condition::missing())
    }

    #[staticmethod]
    fn in_progress() -> Self {
        Self(Condition::in_progress())
    }

    #[staticmethod]
    fn execution_failed() -> Self {
        Self(Condition::execution_failed())
    }

    #[staticmethod]
    fn newly_updated() -> Self {
        Self(Condition::newly_updated())
    }

    #[staticmethod]
    fn newly_requested() -> Self {
        Self(Condition::newly_requested())
    }

    #[staticmethod]
    fn code_version_changed() -> Self {
        Self(Condition::code_version_changed())
    }

    #[staticmethod]
    fn data_version_changed() -> Self {
        Self(Condition::data_version_changed())
    }

    #[staticmethod]
    #[pyo3(signature = (cron_schedule, timezone = None))]
    fn cron_tick_passed(cron_schedule: &str, timezone: Option<&str>) -> PyResult<Self> {
        built(Condition::cron_tick_passed(cron_schedule, timezone))
    }

    #[staticmethod]
    #[pyo3(signature = (lookback_delta = None))]
    fn in_latest_time_window(lookback_delta: Option<f64>) -> PyResult<Self> {
        built(Condition::in_latest_time_window(lookback_delta))
    }

    #[staticmethod]
    fn initial_evaluation() -> Self {
        Self(Condition::initial_evaluation())
    }

    #[staticmethod]
    fn backfill_in_progress() -> Self {
        Self(Condition::backfill_in_progress())
    }

    #[staticmethod]
    fn in_flight() -> Self {
        Self(Condition::in_flight())
    }

    #[staticmethod]
    fn will_be_requested() -> Self {
        Self(Condition::will_be_requested())
    }

    #[staticmethod]
    fn last_run_includes_target() -> Self {
        Self(Condition::last_run_includes_target())
    }

    #[staticmethod]
    #[pyo3(signature = (*, tag_keys = None, tag_values = None))]
    fn last_executed_with_tags(tag_keys: Option<Vec<String>>, tag_values: Option<Vec<(String, String)>>) -> Self {
        Self(Condition::last_executed_with_tags(tag_filter(tag_keys, tag_values)))
    }

    #[staticmethod]
    #[pyo3(signature = (*, tag_keys = None, tag_values = None))]
    fn has_run_with_tags(tag_keys: Option<Vec<String>>, tag_values: Option<Vec<(String, String)>>) -> Self {
        Self(Condition::has_run_with_tags(tag_filter(tag_keys, tag_values)))
    }

    #[staticmethod]
    #[pyo3(signature = (*, tag_keys = None, tag_values = None))]
    fn all_runs_have_tags(tag_keys: Option<Vec<String>>, tag_values: Option<Vec<(String, String)>>) -> Self {
        Self(Condition::all_runs_have_tags(tag_filter(tag_keys, tag_values)))
    }

    #[staticmethod]
    fn any_deps_match(condition: PyRef<'_, Self>) -> Self {
        Self(Condition::any_deps_match(condition.0.clone()))
    }

    #[staticmethod]
    fn all_deps_match(condition: PyRef<'_, Self>) -> Self {
        Self(Condition::all_deps_match(condition.0.clone()))
    }

    #[staticmethod]
    fn any_deps_missing() -> Self {
        Self(Condition::any_deps_missing())
    }

    #[staticmethod]
    fn any_deps_in_progress() -> Self {
        Self(Condition::any_deps_in_progress())
    }

    #[staticmethod]
    fn any_deps_updated() -> Self {
        Self(Condition::any_deps_updated())
    }

    #[staticmethod]
    #[pyo3(signature = (cron_schedule, timezone = None))]
    fn all_deps_updated_since_cron(cron_schedule: &str, timezone: Option<&str>) -> PyResult<Self> {
        built(Condition::all_deps_updated_since_cron(cron_schedule, timezone))
    }

    #[staticmethod]
    fn eager() -> Self {
        Self(Condition::eager())
    }

    #[staticmethod]
    #[pyo3(signature = (cron_schedule, timezone = None))]
    fn on_cron(cron_schedule: &str, timezone: Option<&str>) -> PyResult<Self> {
        built(Condition::on_cron(cron_schedule, timezone))
    }

    #[staticmethod]
    fn on_missing() -> Self {
        Self(Condition::on_missing())
    }

    fn __and__(&self, other: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(Self(self.0.clone() & operand(other, "&")?))
    }

    fn __rand__(&self, other: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(Self(operand(other, "&")? & self.0.clone()))
    }

    fn __or__(&self, other: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(Self(self.0.clone() | operand(other, "|")?))
    }

    fn __ror__(&self, other: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(Self(operand(other, "|")? | self.0.clone()))
    }

    fn __invert__(&self) -> Self {
        Self(!self.0.clone())
    }

    fn newly_true(&self) -> Self {
        Self(self.0.clone().newly_true())
    }

    fn since(&self, reset_condition: PyRef<'_, Self>) -> Self {
        Self(self.0.clone().since(reset_condition.0.clone()))
    }

    fn since_last_handled(&self) -> Self {
        Self(self.0.clone().since_last_handled())
    }

    fn on_selected(&self, keys: &Bound<'_, PyAny>) -> PyResult<Self> {
        // A str is a sequence of characters; it names one asset.
        let keys = match keys.extract::<String>() {
            Ok(key) => vec![key],
            Err(_) => keys.extract::<Vec<String>>().map_err(|_| {
                PyTypeError::new_err("AutomationCondition.on_selected() takes an asset key or a list of asset keys")
            })?,
        };
        Ok(Self(self.0.clone().on_selected(keys)))
    }

    fn with_label(&self, label: String) -> Self {
        Self(self.0.clone().with_label(label))
    }

    fn replace(&self, old: &Bound<'_, PyAny>, new: PyRef<'_, Self>) -> PyResult<Self> {
        Ok(Self(self.0.replace(&matcher(old, "replace")?, &new.0)))
    }

    fn without(&self, condition: &Bound<'_, PyAny>) -> PyResult<Self> {
        built(self.0.without(&matcher(condition, "without")?))
    }

    #[getter]
    fn label(&self) -> Option<&str> {
        self.0.label()
    }

    #[getter]
    fn description(&self) -> String {
        self.0.description()
    }

    #[getter]
    fn children(&self) -> Vec<Self> {
        self.0.children().into_iter().map(Self).collect()
    }

    fn __repr__(&self) -> String {
        format!("AutomationCondition({})", self.0.description())
    }
}
