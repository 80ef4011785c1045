//! The schedules, sensors and jobs of a code location, as the daemon needs them: typed and
//! validated, without Python.

use std::collections::HashMap;
use std::time::Duration;

use rivers_core::{AutomationStatus, CronSchedule};

/// A schedule the daemon ticks.
#[derive(Debug, Clone)]
pub struct ScheduleSpec {
    /// Schedule name.
    pub name: String,
    /// When it ticks.
    pub cron: CronSchedule,
    /// The job its requests run unless they name another.
    pub job_name: String,
    /// Its status unless one was set at runtime.
    pub default_status: AutomationStatus,
    /// Tags of every run it launches.
    pub tags: Vec<(String, String)>,
    /// How long an evaluation may take before its tick fails.
    pub eval_timeout: Option<Duration>,
    /// Whether it has an evaluation function; without one every tick requests one run.
    pub has_evaluation_fn: bool,
}

/// A sensor the daemon ticks.
#[derive(Debug, Clone)]
pub struct SensorSpec {
    /// Sensor name.
    pub name: String,
    /// The job its requests run unless they name another.
    pub job_name: Option<String>,
    /// The assets an ad-hoc run covers when no job applies.
    pub asset_selection: Vec<String>,
    /// Least time from one evaluation's start to the next one's.
    pub minimum_interval: Duration,
    /// Its status unless one was set at runtime.
    pub default_status: AutomationStatus,
    /// Tags of every run it launches.
    pub tags: Vec<(String, String)>,
    /// How long an evaluation may take before its tick fails.
    pub eval_timeout: Option<Duration>,
}

/// The default `minimum_interval` of a sensor.
pub const DEFAULT_SENSOR_INTERVAL: Duration = Duration::from_secs(30);

/// Everything the daemon ticks in one code location, and the jobs requests may target.
#[derive(Debug, Clone, Default)]
pub struct Automations {
    /// Schedules, in registration order.
    pub schedules: Vec<ScheduleSpec>,
    /// Sensors, in registration order.
    pub sensors: Vec<SensorSpec>,
    /// Registered jobs and the nodes each runs.
    pub jobs: HashMap<String, Vec<String>>,
    /// The assets, with the automation conditions the daemon evaluates.
    pub conditions: crate::conditions::ConditionAssets,
}
