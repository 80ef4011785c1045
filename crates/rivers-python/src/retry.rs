//! `Backoff` (wait arithmetic lives in `rivers-core`) and the conversion of Python retry
//! policy specs into core policies.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyType;
use rivers_core::{Backoff, FailureReason, RetryOn, RetryPolicy, RetrySpec};

use crate::error::BindingError;
use crate::graph::qualified_name;

/// Wait between retry attempts. Built only through the static factories.
#[pyclass(name = "Backoff", module = "rivers", frozen)]
#[derive(Clone)]
pub(crate) struct PyBackoff(pub(crate) Backoff);

fn checked(backoff: Backoff) -> PyResult<PyBackoff> {
    backoff.validate().map_err(|e| PyErr::from(BindingError::from(e)))?;
    Ok(PyBackoff(backoff))
}

#[pymethods]
impl PyBackoff {
    /// Always `delay` seconds.
    #[staticmethod]
    #[pyo3(signature = (delay, *, jitter = 0.0, max_delay = None))]
    fn constant(delay: f64, jitter: f64, max_delay: Option<f64>) -> PyResult<Self> {
        checked(Backoff::Constant { delay, jitter, max_delay })
    }

    /// `initial + step * n` seconds after `n` failures.
    #[staticmethod]
    #[pyo3(signature = (step, *, initial = 0.0, jitter = 0.0, max_delay = None))]
    fn linear(step: f64, initial: f64, jitter: f64, max_delay: Option<f64>) -> PyResult<Self> {
        checked(Backoff::Linear { step, initial, jitter, max_delay })
    }

    /// `initial * factor ** (n - 1)` seconds after `n` failures.
    #[staticmethod]
    #[pyo3(signature = (initial, *, factor = 2.0, jitter = 0.0, max_delay = None))]
    fn exponential(initial: f64, factor: f64, jitter: f64, max_delay: Option<f64>) -> PyResult<Self> {
        checked(Backoff::Exponential { initial, factor, jitter, max_delay })
    }

    /// `schedule[min(n - 1, len - 1)]` seconds after `n` failures.
    #[staticmethod]
    #[pyo3(signature = (schedule, *, jitter = 0.0))]
    fn fixed(schedule: Vec<f64>, jitter: f64) -> PyResult<Self> {
        checked(Backoff::Fixed { schedule, jitter })
    }

    fn __repr__(&self) -> String {
        format!("Backoff({:?})", self.0)
    }
}

fn reason(text: &str) -> PyResult<FailureReason> {
    text.parse().map_err(|e: rivers_core::Error| PyValueError::new_err(e.to_string()))
}

/// The fields of a Python `rivers.RetryPolicy`, read by attribute.
#[derive(FromPyObject)]
struct PolicyFields<'py> {
    #[pyo3(attribute("max_retries"))]
    max_retries: u32,
    #[pyo3(attribute("backoff"))]
    backoff: Option<PyBackoff>,
    /// `"all"` / `"transient"` for the presets, `None` for an allow-list.
    #[pyo3(attribute("_preset"))]
    preset: Option<String>,
    #[pyo3(attribute("_reasons"))]
    reasons: Vec<String>,
    #[pyo3(attribute("_classes"))]
    classes: Vec<Bound<'py, PyType>>,
    #[pyo3(attribute("_filter_id"))]
    filter_id: Option<usize>,
    #[pyo3(attribute("_escalate_on"))]
    escalate_on: Vec<String>,
}

/// Converts a retry declaration: a registered policy's name, or a `rivers.RetryPolicy`.
pub(crate) fn retry_spec(spec: &Bound<'_, PyAny>) -> PyResult<RetrySpec> {
    if let Ok(name) = spec.extract::<String>() {
        return Ok(RetrySpec::Named(name));
    }
    let fields: PolicyFields<'_> = spec.extract()?;
    let retry_on = match fields.preset.as_deref() {
        Some("all") => RetryOn::All,
        Some("transient") => RetryOn::Transient,
        Some(other) => return Err(PyValueError::new_err(format!("unknown RetryOn preset {other:?}"))),
        None => RetryOn::List {
            reasons: fields.reasons.iter().map(|r| reason(r)).collect::<PyResult<_>>()?,
            classes: fields.classes.iter().map(qualified_name).collect::<PyResult<_>>()?,
            class_filter: fields.filter_id,
        },
    };
    Ok(RetrySpec::Policy(RetryPolicy {
        max_retries: fields.max_retries,
        backoff: fields.backoff.map(|b| b.0),
        retry_on,
        escalate_on: fields.escalate_on.iter().map(|r| reason(r)).collect::<PyResult<_>>()?,
    }))
}
