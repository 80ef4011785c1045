//! A dry run of a code location's automation on a virtual clock: schedules (their evaluation
//! functions are called) and conditions over a span of time, against the current storage,
//! launching nothing and writing nothing. Every simulated request is assumed to succeed at
//! once, so downstream conditions fire later in the span as they would.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rivers_core::condition::{ConditionState, EvaluationClock, evaluate_pass};
use rivers_core::partitions::PartitionKey;
use rivers_core::{AutomationStatus, AutomationType};
use rivers_storage::Storage;

use super::facts::PassFacts;
use super::launches;
use crate::location::CodeLocation;
use crate::requests::{Evaluation, Request};
use crate::specs::Automations;

/// The most evaluation instants one simulation may have: a span that needs more wants a
/// coarser step.
pub const MAX_SIMULATION_STEPS: u64 = 100_000;

/// A run the automation would have requested.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatedRequest {
    /// When it would have been requested.
    pub time: DateTime<Utc>,
    /// Which kind of automation requested it.
    pub automation_type: AutomationType,
    /// The schedule's name; `None` for conditions.
    pub name: Option<String>,
    /// The job it runs; `None` for an ad-hoc run.
    pub job_name: Option<String>,
    /// The assets it materializes (external assets: observes).
    pub asset_keys: Vec<String>,
    /// Its partition key.
    pub partition_key: Option<PartitionKey>,
}

/// Why a simulation did not run.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    /// The span or step is unusable.
    #[error("{0}")]
    InvalidSpan(String),
    /// A schedule's evaluation function failed.
    #[error("schedule '{schedule}' failed at {time}: {error}")]
    Evaluation {
        /// The schedule.
        schedule: String,
        /// The tick.
        time: DateTime<Utc>,
        /// The failure.
        error: String,
    },
    /// Reading storage failed.
    #[error(transparent)]
    Storage(#[from] rivers_storage::Error),
}

/// Evaluates `automations` at every `step` from `start` to `end` (both included).
///
/// # Errors
/// [`SimulateError`]: an empty or reversed span, a zero step or too many steps, a failing
/// schedule evaluation, a failed storage read.
pub async fn simulate_automation(
    storage: &Storage,
    location: &dyn CodeLocation,
    automations: &Automations,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    step: Duration,
) -> Result<Vec<SimulatedRequest>, SimulateError> {
    let step = TimeDelta::from_std(step)
        .ok()
        .filter(|step| *step > TimeDelta::zero())
        .ok_or_else(|| SimulateError::InvalidSpan("step must be a positive duration such as \"1m\"".into()))?;
    if end < start {
        return Err(SimulateError::InvalidSpan(format!("end ({end}) is before start ({start})")));
    }
    let steps = (end - start).num_milliseconds() / step.num_milliseconds().max(1);
    if u64::try_from(steps).unwrap_or(u64::MAX) >= MAX_SIMULATION_STEPS {
        return Err(SimulateError::InvalidSpan(format!(
            "the span needs {steps} steps, more than {MAX_SIMULATION_STEPS}: use a coarser step"
        )));
    }
    let assets = &automations.conditions;
    let conditions = assets.conditions();
    let code_location = storage.code_location().for_writing(|| "automation-condition state")?.to_owned();
    let mut facts = PassFacts::gather(storage, assets, &code_location, start).await?;
    let mut states: BTreeMap<String, ConditionState> =
        facts.states.iter().map(|(key, state)| (key.clone(), state.state.clone())).collect();
    let mut previous = facts.checkpoint.evaluated_at.map(DateTime::from_timestamp_nanos);
    let statuses = storage.automation_statuses().await?;
    let running = |name: &str, default: AutomationStatus| {
        statuses.get(&(AutomationType::Schedule, name.to_owned())).copied().unwrap_or(default)
            == AutomationStatus::Running
    };
    let mut requests = Vec::new();
    let mut pending: Vec<SimulatedRequest> = Vec::new();
    // A cron tick exactly at `start` belongs to the span.
    let mut last_instant = start - TimeDelta::nanoseconds(1);
    let mut now = start;
    while now <= end {
        facts.advance_to(now);
        if now > start {
            facts.clear_updates();
        }
        let mut landed = std::mem::take(&mut pending);
        for spec in automations.schedules.iter().filter(|spec| running(&spec.name, spec.default_status)) {
            let mut after = last_instant;
            while let Some(tick) = spec.cron.next_after(after).filter(|tick| tick.with_timezone(&Utc) <= now) {
                let time = tick.with_timezone(&Utc);
                after = time;
                let evaluation =
                    if spec.has_evaluation_fn {
                        location.evaluate_schedule(&spec.name, tick).await.map_err(|error| {
                            SimulateError::Evaluation { schedule: spec.name.clone(), time, error: error.0 }
                        })?
                    } else {
                        Evaluation::default_run()
                    };
                for request in evaluation.requests {
                    let Request::Run(run) = request else { continue };
                    let job = run.job_name.unwrap_or_else(|| spec.job_name.clone());
                    let asset_keys = automations.jobs.get(&job).cloned().unwrap_or_default();
                    landed.push(SimulatedRequest {
                        time,
                        automation_type: AutomationType::Schedule,
                        name: Some(spec.name.clone()),
                        job_name: Some(job),
                        asset_keys,
                        partition_key: run.partition_key,
                    });
                }
            }
        }
        for (i, request) in landed.iter().enumerate() {
            let run_id = format!("simulated-{}-{i}", now.timestamp_nanos_opt().unwrap_or_default());
            for asset in &request.asset_keys {
                let positions = facts.positions_of(asset, request.partition_key.as_ref());
                facts.assume_materialized(asset, &positions, &run_id, &request.asset_keys);
            }
        }
        requests.extend(landed.into_iter().filter(|r| r.automation_type == AutomationType::Schedule));
        let evaluations = evaluate_pass(conditions, &states, &facts, EvaluationClock { now, previous });
        let fired = launches(assets, &facts, &evaluations);
        for evaluation in evaluations {
            states.insert(evaluation.asset, evaluation.state);
        }
        let observed = (!fired.observed.is_empty()).then_some((None, fired.observed));
        for (partition_key, asset_keys) in fired.joint.into_iter().chain(observed) {
            let request = SimulatedRequest {
                time: now,
                automation_type: AutomationType::Condition,
                name: None,
                job_name: None,
                asset_keys,
                partition_key,
            };
            requests.push(request.clone());
            pending.push(request);
        }
        previous = Some(now);
        last_instant = now;
        now += step;
    }
    Ok(requests)
}
