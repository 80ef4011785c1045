//! Calling an evaluation function under `eval_timeout`, and recording the tick it produced.
//!
//! An evaluation runs as a task of its own. When it exceeds its timeout, the tick fails and
//! the task is left to finish: the next evaluation of the same schedule or sensor waits for
//! it first, so one automation never has two evaluations in flight.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures::future::BoxFuture;
use rivers_core::{AutomationType, TickStatus};
use rivers_storage::StoredTick;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::location::EvaluationError;
use crate::requests::Evaluation;
use crate::submit::Submitted;

type Outcome = Result<Evaluation, EvaluationError>;

/// Evaluates one automation, one evaluation at a time.
pub(crate) struct Evaluator {
    timeout: Option<Duration>,
    /// An evaluation that timed out and is still running.
    abandoned: Option<JoinHandle<Outcome>>,
}

impl Evaluator {
    pub(crate) fn new(timeout: Option<Duration>) -> Self {
        Self { timeout, abandoned: None }
    }

    /// Waits for an abandoned evaluation, then starts one with `start` and waits for it under
    /// the timeout.
    pub(crate) async fn evaluate(
        &mut self,
        clock: &dyn Clock,
        start: impl FnOnce() -> BoxFuture<'static, Outcome>,
    ) -> Outcome {
        if let Some(previous) = self.abandoned.take() {
            let _ = previous.await;
        }
        let mut task = tokio::spawn(start());
        let Some(limit) = self.timeout else {
            return task.await.unwrap_or_else(|error| Err(panicked(&error)));
        };
        let deadline = clock.now() + TimeDelta::from_std(limit).unwrap_or(TimeDelta::MAX);
        tokio::select! {
            joined = &mut task => joined.unwrap_or_else(|error| Err(panicked(&error))),
            () = clock.sleep_until(deadline) => {
                self.abandoned = Some(task);
                Err(EvaluationError(format!(
                    "the evaluation did not finish within eval_timeout ({}); the next tick waits for it to end",
                    humanize(limit)
                )))
            }
        }
    }
}

fn panicked(error: &tokio::task::JoinError) -> EvaluationError {
    EvaluationError(format!("the evaluation task ended abnormally: {error}"))
}

/// A duration as the user wrote it, roughly (`30s`, `1.5s`, `250ms`).
fn humanize(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else if duration.as_secs() == 0 {
        format!("{}ms", duration.as_millis())
    } else {
        format!("{}s", duration.as_secs_f64())
    }
}

/// The tick of one evaluation: `Failure` when the evaluation or a submission failed,
/// `Success` when something was created, `Skipped` otherwise.
pub(crate) fn tick(
    automation_type: AutomationType,
    name: &str,
    evaluated_at: DateTime<Utc>,
    skip_reason: Option<String>,
    submitted: Submitted,
    cursor: Option<String>,
) -> StoredTick {
    let status = if submitted.error.is_some() {
        TickStatus::Failure
    } else if submitted.run_ids.is_empty() && submitted.backfill_ids.is_empty() {
        TickStatus::Skipped
    } else {
        TickStatus::Success
    };
    StoredTick {
        id: uuid::Uuid::now_v7().to_string(),
        automation_name: name.to_owned(),
        automation_type,
        status,
        timestamp: evaluated_at.timestamp_nanos_opt().unwrap_or(i64::MAX),
        run_ids: submitted.run_ids,
        backfill_ids: submitted.backfill_ids,
        skip_reason,
        error: submitted.error,
        cursor,
    }
}
