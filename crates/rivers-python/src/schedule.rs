//! Schedules and sensors at the border: `CronSchedule` and `parse_duration` (the checks
//! `rs.Schedule` / `rs.Sensor` run at definition time) and the conversion of the Python
//! definitions into the snapshot's [`ScheduleDef`] / [`SensorDef`].

use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDateTime, PyDict, PyTzInfo, PyTzInfoAccess};
use rivers_core::{AutomationStatus, CronSchedule, EvalMode, ScheduleDef, SensorDef};

use crate::error::BindingError;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyCronSchedule>()?;
    m.add_function(wrap_pyfunction!(parse_duration, m)?)?;
    Ok(())
}

/// A cron expression (5 fields, or 6 with leading seconds) matched in an IANA time zone.
#[pyclass(name = "CronSchedule", module = "rivers._core", frozen)]
pub(crate) struct PyCronSchedule {
    schedule: CronSchedule,
    timezone: Option<String>,
}

#[pymethods]
impl PyCronSchedule {
    /// Parses `expression` for `timezone` (`None` is UTC); `ValueError` naming the fix for a
    /// bad expression or zone.
    #[new]
    #[pyo3(signature = (expression, timezone = None))]
    fn new(expression: &str, timezone: Option<String>) -> PyResult<Self> {
        let schedule =
            CronSchedule::parse(expression, timezone.as_deref()).map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(Self { schedule, timezone })
    }

    /// The expression, as given.
    #[getter]
    fn expression(&self) -> &str {
        self.schedule.expression()
    }

    /// The zone, as given (`None` is UTC).
    #[getter]
    fn timezone(&self) -> Option<&str> {
        self.timezone.as_deref()
    }

    /// The first tick strictly after the aware datetime `after`, with the zone's UTC offset at
    /// that tick; `None` when the expression never fires again.
    fn next_after<'py>(&self, after: &Bound<'py, PyDateTime>) -> PyResult<Option<Bound<'py, PyDateTime>>> {
        if after.get_tzinfo().is_none() {
            return Err(PyValueError::new_err(
                "next_after() needs an aware datetime: give it a tzinfo, e.g. datetime.now(timezone.utc)",
            ));
        }
        let utc = after.call_method1("astimezone", (PyTzInfo::utc(after.py())?,))?;
        let tick = self.schedule.next_after(utc.extract()?);
        tick.map(|instant| instant.fixed_offset().into_pyobject(after.py())).transpose()
    }

    fn __repr__(&self) -> String {
        match &self.timezone {
            Some(zone) => format!("CronSchedule({:?}, timezone={zone:?})", self.schedule.expression()),
            None => format!("CronSchedule({:?})", self.schedule.expression()),
        }
    }
}

/// Parses a duration string (`"250ms"`, `"30s"`, `"1h30m"`) into a `timedelta`; `ValueError`
/// naming the text and the accepted form otherwise.
#[pyfunction]
pub(crate) fn parse_duration(text: &str) -> PyResult<Duration> {
    rivers_core::parse_duration(text).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// The member name of a Python enum (`ScheduleStatus.Running`, `EvalMode.Subprocess`) as the
/// core's enum; `ValueError` listing the members otherwise.
fn member<T: std::str::FromStr<Err = rivers_core::Error>>(value: &Bound<'_, PyAny>) -> PyResult<T> {
    let name: String = value.getattr("name")?.extract()?;
    name.parse().map_err(|e: rivers_core::Error| PyErr::from(BindingError::from(e)))
}

/// A duration string of a definition (already checked at definition time) in seconds.
fn seconds(text: Option<String>) -> PyResult<Option<f64>> {
    text.map(|t| parse_duration(&t).map(|d| d.as_secs_f64())).transpose()
}

/// A definition's tags in their declaration order.
fn tags(tags: Option<Bound<'_, PyDict>>) -> PyResult<Vec<(String, String)>> {
    tags.map_or_else(
        || Ok(Vec::new()),
        |dict| dict.iter().map(|(key, value)| Ok((key.extract()?, value.extract()?))).collect(),
    )
}

/// A schedule as `rivers.Schedule` describes it.
#[derive(FromPyObject)]
pub(crate) struct ScheduleFields<'py> {
    #[pyo3(attribute("name"))]
    name: String,
    #[pyo3(attribute("cron_schedule"))]
    cron_schedule: String,
    #[pyo3(attribute("timezone"))]
    timezone: Option<String>,
    #[pyo3(attribute("job_name"))]
    job_name: String,
    #[pyo3(attribute("default_status"))]
    default_status: Bound<'py, PyAny>,
    #[pyo3(attribute("description"))]
    description: Option<String>,
    #[pyo3(attribute("tags"))]
    tags: Option<Bound<'py, PyDict>>,
    #[pyo3(attribute("eval_timeout"))]
    eval_timeout: Option<String>,
    #[pyo3(attribute("eval_mode"))]
    eval_mode: Bound<'py, PyAny>,
    #[pyo3(attribute("evaluation_fn"))]
    evaluation_fn: Option<Bound<'py, PyAny>>,
}

impl TryFrom<ScheduleFields<'_>> for ScheduleDef {
    type Error = PyErr;

    fn try_from(schedule: ScheduleFields<'_>) -> PyResult<ScheduleDef> {
        Ok(ScheduleDef {
            name: schedule.name,
            cron: schedule.cron_schedule,
            timezone: schedule.timezone,
            job: schedule.job_name,
            default_status: member::<AutomationStatus>(&schedule.default_status)?,
            description: schedule.description,
            tags: tags(schedule.tags)?,
            eval_timeout_secs: seconds(schedule.eval_timeout)?,
            eval_mode: member::<EvalMode>(&schedule.eval_mode)?,
            has_evaluation_fn: schedule.evaluation_fn.is_some(),
        })
    }
}

/// A sensor as `rivers.Sensor` describes it.
#[derive(FromPyObject)]
pub(crate) struct SensorFields<'py> {
    #[pyo3(attribute("name"))]
    name: String,
    #[pyo3(attribute("job_name"))]
    job_name: Option<String>,
    #[pyo3(attribute("asset_selection"))]
    asset_selection: Option<Vec<String>>,
    #[pyo3(attribute("minimum_interval"))]
    minimum_interval: Option<String>,
    #[pyo3(attribute("default_status"))]
    default_status: Bound<'py, PyAny>,
    #[pyo3(attribute("description"))]
    description: Option<String>,
    #[pyo3(attribute("tags"))]
    tags: Option<Bound<'py, PyDict>>,
    #[pyo3(attribute("eval_timeout"))]
    eval_timeout: Option<String>,
    #[pyo3(attribute("eval_mode"))]
    eval_mode: Bound<'py, PyAny>,
    #[pyo3(attribute("evaluation_fn"))]
    evaluation_fn: Option<Bound<'py, PyAny>>,
}

impl TryFrom<SensorFields<'_>> for SensorDef {
    type Error = PyErr;

    fn try_from(sensor: SensorFields<'_>) -> PyResult<SensorDef> {
        Ok(SensorDef {
            name: sensor.name,
            job: sensor.job_name,
            asset_selection: sensor.asset_selection.unwrap_or_default(),
            minimum_interval_secs: seconds(sensor.minimum_interval)?
                .unwrap_or(SensorDef::DEFAULT_MINIMUM_INTERVAL_SECS),
            default_status: member::<AutomationStatus>(&sensor.default_status)?,
            description: sensor.description,
            tags: tags(sensor.tags)?,
            eval_timeout_secs: seconds(sensor.eval_timeout)?,
            eval_mode: member::<EvalMode>(&sensor.eval_mode)?,
            has_evaluation_fn: sensor.evaluation_fn.is_some(),
        })
    }
}

/// The schedules and sensors of a repository (`rivers.CodeRepository`), in registration order.
#[derive(FromPyObject)]
pub(crate) struct Automations<'py> {
    #[pyo3(attribute("schedules"))]
    pub(crate) schedules: Vec<ScheduleFields<'py>>,
    #[pyo3(attribute("sensors"))]
    pub(crate) sensors: Vec<SensorFields<'py>>,
}
