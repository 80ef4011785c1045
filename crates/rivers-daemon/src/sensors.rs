//! The loop of one sensor: evaluate with the cursor and time of its previous tick, submit,
//! record the tick, then wait `minimum_interval` from the evaluation's start. The first
//! evaluation happens right after the daemon starts; cursor and last tick time come from the
//! newest stored tick, so they survive restarts.

use std::sync::Arc;

use chrono::TimeDelta;
use rivers_core::AutomationType;

use crate::daemon::Context;
use crate::evaluation::{Evaluator, tick};
use crate::location::SensorContext;
use crate::specs::SensorSpec;
use crate::submit::{Origin, Submitted, submit};

pub(crate) async fn run_sensor(context: Arc<Context>, spec: SensorSpec) {
    let clock = context.clock.clone();
    let mut evaluator = Evaluator::new(spec.eval_timeout);
    let mut previous = match context.storage.latest_tick(&spec.name).await {
        Ok(latest) => SensorContext {
            cursor: latest.as_ref().and_then(|tick| tick.cursor.clone()),
            last_tick_time: latest.map(|tick| tick.timestamp as f64 / 1e9),
        },
        Err(error) => {
            tracing::error!(sensor = spec.name, %error, "reading the sensor's last tick failed; it does not run");
            return;
        }
    };
    let interval = TimeDelta::from_std(spec.minimum_interval).unwrap_or(TimeDelta::MAX);
    loop {
        if !context.wait_until_running(AutomationType::Sensor, &spec.name, spec.default_status).await {
            return;
        }
        let evaluated_at = clock.now();
        let result =
            evaluator.evaluate(clock.as_ref(), || context.location.evaluate_sensor(&spec.name, previous.clone())).await;
        let origin = Origin {
            automation_type: AutomationType::Sensor,
            name: &spec.name,
            job_name: spec.job_name.as_deref(),
            asset_selection: &spec.asset_selection,
            tags: &spec.tags,
        };
        let (skip_reason, submitted, cursor) = match result {
            Ok(evaluation) => {
                let cursor = evaluation.cursor.or_else(|| previous.cursor.clone());
                (evaluation.skip_reason, submit(&context, &origin, evaluation.requests).await, cursor)
            }
            Err(error) => (None, Submitted { error: Some(error.0), ..Default::default() }, previous.cursor.clone()),
        };
        let moved_cursor = cursor != previous.cursor;
        let record = tick(AutomationType::Sensor, &spec.name, evaluated_at, skip_reason, submitted, cursor.clone());
        context.record_evaluation_tick(record, moved_cursor).await;
        previous = SensorContext {
            cursor,
            last_tick_time: Some(evaluated_at.timestamp_nanos_opt().unwrap_or(i64::MAX) as f64 / 1e9),
        };
        if !context.sleep_until(evaluated_at + interval).await {
            return;
        }
    }
}
