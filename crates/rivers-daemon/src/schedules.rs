//! The loop of one schedule: sleep until its next cron instant, evaluate, submit, record the
//! tick. Ticks missed while the daemon was down or busy are not caught up: the next tick is
//! always the first cron instant after the previous one and after now.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rivers_core::AutomationType;

use crate::daemon::Context;
use crate::evaluation::{Evaluator, tick};
use crate::requests::Evaluation;
use crate::specs::ScheduleSpec;
use crate::submit::{Origin, submit};

/// Ticks `spec` at every cron instant after `started` (when the daemon started).
pub(crate) async fn run_schedule(context: Arc<Context>, spec: ScheduleSpec, started: DateTime<Utc>) {
    let clock = context.clock.clone();
    let mut evaluator = Evaluator::new(spec.eval_timeout);
    let mut after = started;
    while let Some(next) = spec.cron.next_after(after) {
        let due = next.with_timezone(&Utc);
        if !context.sleep_until(due).await {
            return;
        }
        after = due;
        if !context.is_running(AutomationType::Schedule, &spec.name, spec.default_status) {
            continue;
        }
        let evaluated_at = clock.now();
        let result = if spec.has_evaluation_fn {
            evaluator.evaluate(clock.as_ref(), || context.location.evaluate_schedule(&spec.name, next)).await
        } else {
            Ok(Evaluation::default_run())
        };
        let origin = Origin {
            automation_type: AutomationType::Schedule,
            name: &spec.name,
            job_name: Some(&spec.job_name),
            asset_selection: &[],
            tags: &spec.tags,
        };
        let record = match result {
            Ok(evaluation) => {
                let submitted = submit(&context, &origin, evaluation.requests).await;
                tick(AutomationType::Schedule, &spec.name, evaluated_at, evaluation.skip_reason, submitted, None)
            }
            Err(error) => tick(
                AutomationType::Schedule,
                &spec.name,
                evaluated_at,
                None,
                crate::submit::Submitted { error: Some(error.0), ..Default::default() },
                None,
            ),
        };
        context.record_evaluation_tick(record, false).await;
        after = after.max(clock.now());
    }
}
