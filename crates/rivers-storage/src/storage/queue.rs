//! The run queue's storage: the queued runs of a code location in admission order, the
//! dequeued runs of the whole store (limits are global), a short admission lock so that
//! coordinators of several code locations never admit past a global limit together, and the
//! compare-and-set transitions of admission and launch failure.

use std::time::Duration;

use rivers_core::{EventType, RunStatus};
use serde_json::json;

use super::{Storage, decode};
use crate::clock::now_ns;
use crate::error::Result;
use crate::records::NewEvent;

/// A queued run as the coordinator orders and gates it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct QueuedRun {
    /// Run id.
    pub run_id: String,
    /// Admission priority (higher first).
    pub priority: i64,
    /// When it was queued, in nanoseconds since the epoch.
    #[serde(rename = "start_time")]
    pub queued_at: i64,
    /// Run tags.
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    /// Why it is still queued, as last recorded.
    #[serde(default)]
    pub block_reason: Option<String>,
    /// The backfill that launched it, whose `max_concurrency` also gates it.
    #[serde(default)]
    pub backfill_id: Option<String>,
}

/// A dequeued run that has not ended: what counts against the queue's limits.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct ActiveRun {
    /// Run id.
    pub run_id: String,
    /// `NotStarted` or `Running`.
    pub status: RunStatus,
    /// Run tags.
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    /// When it left the queue (or was created, if it never queued), in nanoseconds.
    pub since: i64,
    /// The code location that created it.
    #[serde(default)]
    pub code_location: Option<String>,
    /// The backfill that launched it.
    #[serde(default)]
    pub backfill_id: Option<String>,
}

impl Storage {
    /// The queued runs of this handle's code location, highest priority first, then oldest
    /// first.
    ///
    /// # Errors
    /// `MissingCodeLocation` in a cloud deployment without an identity; `Backend`.
    pub async fn queued_runs_here(&self) -> Result<Vec<QueuedRun>> {
        let location = self.code_location.for_writing(|| "the run queue")?;
        let rows = self
            .rows(
                "SELECT run_id, priority, start_time, tags, block_reason, backfill_id FROM run \
                 WHERE code_location = $location AND status = 'Queued'",
                json!({"location": location}),
            )
            .await?;
        let mut runs: Vec<QueuedRun> = decode("queued run", rows)?;
        runs.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.queued_at.cmp(&b.queued_at)));
        Ok(runs)
    }

    /// Every dequeued run of the store that has not ended (`NotStarted` or `Running`).
    ///
    /// # Errors
    /// `Backend`.
    pub async fn active_runs(&self) -> Result<Vec<ActiveRun>> {
        // One indexed read per status: an `IN` filter would not use the status index.
        let mut response = self
            .inner
            .client
            .query(
                "SELECT run_id, status, tags, dequeued_at ?? start_time AS since, code_location, backfill_id FROM run \
                     WHERE status = 'NotStarted'; \
                 SELECT run_id, status, tags, dequeued_at ?? start_time AS since, code_location, backfill_id FROM run \
                     WHERE status = 'Running';",
                json!({}),
            )
            .await?;
        let mut rows: Vec<serde_json::Value> = response.take(0)?;
        rows.extend(response.take::<Vec<serde_json::Value>>(1)?);
        decode("active run", rows)
    }

    /// Takes the store-wide admission lock for `lease` unless another holder has it; `true`
    /// when `holder` has it now.
    ///
    /// # Errors
    /// `Backend`.
    pub async fn lock_run_queue(&self, holder: &str, lease: Duration) -> Result<bool> {
        let now = now_ns();
        let rows = self
            .rows(
                "UPSERT run_queue_lock:admission SET holder = $holder, expires = $expires \
                 WHERE holder = NONE OR holder = $holder OR expires < $now RETURN VALUE holder",
                json!({"holder": holder, "now": now, "expires": now + lease.as_nanos() as i64}),
            )
            .await?;
        Ok(rows.iter().any(|row| row.as_str() == Some(holder)))
    }

    /// Releases the admission lock if `holder` has it.
    ///
    /// # Errors
    /// `Backend`.
    pub async fn unlock_run_queue(&self, holder: &str) -> Result<()> {
        self.execute(
            "UPDATE run_queue_lock:admission SET holder = NONE, expires = NONE WHERE holder = $holder RETURN NONE",
            json!({"holder": holder}),
        )
        .await
    }

    /// Admits a queued run: `Queued` → `NotStarted` in one compare-and-set, its block reason
    /// cleared, with a `RunDequeued` event. `false` when it was no longer queued.
    ///
    /// # Errors
    /// `Backend`.
    pub async fn dequeue_run(&self, run_id: &str, priority: i64) -> Result<bool> {
        let rows = self
            .rows(
                "UPDATE type::record('run', $id) SET status = 'NotStarted', block_reason = NONE, dequeued_at = $now \
                 WHERE status = 'Queued' RETURN VALUE true",
                json!({"id": run_id, "now": now_ns()}),
            )
            .await?;
        if rows.is_empty() {
            return Ok(false);
        }
        self.attach_run(run_id);
        let mut event = NewEvent::new(EventType::RunDequeued, run_id);
        event.metadata.push(("priority".into(), priority.to_string()));
        self.enqueue_event(event);
        self.flush_run(run_id).await?;
        Ok(true)
    }

    /// Records why each queued run stays queued (`None` clears it).
    ///
    /// # Errors
    /// `Backend`.
    pub async fn set_block_reasons(&self, reasons: &[(String, Option<String>)]) -> Result<()> {
        if reasons.is_empty() {
            return Ok(());
        }
        self.execute(
            "FOR $entry IN $reasons { \
                UPDATE type::record('run', $entry[0]) SET block_reason = $entry[1] WHERE status = 'Queued' \
                RETURN NONE; \
            };",
            json!({"reasons": reasons}),
        )
        .await
    }

    /// Fails a run that no executor started (`NotStarted` → `Failure`) with `error` as its
    /// message and a `RunLaunchFailed` event; `false` when an executor claimed it first.
    ///
    /// # Errors
    /// `Backend`.
    pub async fn fail_unstarted_run(&self, run_id: &str, error: &str) -> Result<bool> {
        let rows = self
            .rows(
                "UPDATE type::record('run', $id) SET status = 'Failure', message = $error, end_time = $now \
                 WHERE status = 'NotStarted' RETURN VALUE true",
                json!({"id": run_id, "error": error, "now": now_ns()}),
            )
            .await?;
        if rows.is_empty() {
            return Ok(false);
        }
        self.attach_run(run_id);
        let mut event = NewEvent::new(EventType::RunLaunchFailed, run_id);
        event.metadata.push(("error".into(), error.to_owned()));
        self.enqueue_event(event);
        self.flush_run(run_id).await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use rivers_core::{LaunchedBy, RunBackendKind, RunStatus};

    use super::*;
    use crate::records::NewRun;

    fn run(run_id: &str, status: RunStatus) -> NewRun {
        NewRun {
            run_id: run_id.into(),
            job_name: None,
            status,
            tags: vec![("team".into(), "core".into())],
            node_names: vec!["a".into()],
            priority: 0,
            partition_key: None,
            launched_by: LaunchedBy::MANUAL,
            backend: RunBackendKind::Local,
        }
    }

    #[tokio::test]
    async fn active_runs_are_the_not_started_and_the_running_ones() {
        let storage = Storage::memory().await.unwrap();
        for (run_id, status) in [("waiting", RunStatus::Queued), ("admitted", RunStatus::NotStarted)] {
            storage.create_requested_run(run(run_id, status), None).await.unwrap();
        }
        storage.create_requested_run(run("executing", RunStatus::NotStarted), None).await.unwrap();
        storage.execute("UPDATE run:executing SET status = 'Running'", json!({})).await.unwrap();
        let mut active: Vec<(String, RunStatus)> =
            storage.active_runs().await.unwrap().into_iter().map(|run| (run.run_id, run.status)).collect();
        active.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            active,
            [("admitted".to_owned(), RunStatus::NotStarted), ("executing".to_owned(), RunStatus::Running)]
        );
    }
}
