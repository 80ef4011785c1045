//! `Backoff` (wait arithmetic lives in `rivers-core`) and the conversion of Python retry
//! policy specs into core policies.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use rivers_core::{Backoff, FailureReason, RetryOn, RetryPolicy, RetrySpec};

use crate::error::BindingError;

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

/// Converts a Python-side spec: a policy name, or
/// `(max_retries, backoff | None, retry_on, escalate_on)` where `retry_on` is `("all",)`,
/// `("transient",)` or `("list", [reason, ...], class_filter_id | None)`.
pub(crate) fn retry_spec(spec: &Bound<'_, PyAny>) -> PyResult<RetrySpec> {
    if let Ok(name) = spec.extract::<String>() {
        return Ok(RetrySpec::Named(name));
    }
    let (max_retries, backoff, retry_on, escalate_on): (u32, Option<PyBackoff>, Bound<'_, PyAny>, Vec<String>) =
        spec.extract()?;
    let kind: String = retry_on.get_item(0)?.extract()?;
    let retry_on = match kind.as_str() {
        "all" => RetryOn::All,
        "transient" => RetryOn::Transient,
        _ => {
            let reasons: Vec<String> = retry_on.get_item(1)?.extract()?;
            RetryOn::List {
                reasons: reasons.iter().map(|r| reason(r)).collect::<PyResult<_>>()?,
                class_filter: retry_on.get_item(2)?.extract()?,
            }
        }
    };
    Ok(RetrySpec::Policy(RetryPolicy {
        max_retries,
        backoff: backoff.map(|b| b.0),
        retry_on,
        escalate_on: escalate_on.iter().map(|r| reason(r)).collect::<PyResult<_>>()?,
    }))
}
