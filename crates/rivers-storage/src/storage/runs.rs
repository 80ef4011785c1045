//! Run records: creation, status, outcome, cancellation, run logs and ticks.

use rivers_core::RunStatus;

use crate::clock::now_ns;
use crate::records::{NewRun, RunRecord, StoredLog, StoredTick};
use serde_json::{Value, json};

use super::{Storage, decode};
use crate::error::{Error, Result};

impl Storage {
    // ---- runs ---------------------------------------------------------------------------

    /// Creates a run record.
    pub async fn create_run(&self, run: NewRun) -> Result<RunRecord> {
        let record = RunRecord {
            run_id: run.run_id,
            job_name: run.job_name,
            status: run.status,
            start_time: now_ns(),
            end_time: None,
            tags: run.tags,
            node_names: run.node_names,
            priority: run.priority,
            partition_key: run.partition_key,
            block_reason: None,
            launched_by: run.launched_by,
            cancel_requested: false,
            completed_steps: 0,
            total_steps: 0,
            message: None,
        };
        let mut doc = serde_json::to_value(&record).map_err(|source| Error::Decode { what: "run", source })?;
        // The indexed companion of a field that is not directly indexable: the backfill a run
        // belongs to.
        doc["backfill_id"] = match &record.launched_by {
            rivers_core::LaunchedBy::Backfill { backfill_id } => json!(backfill_id),
            _ => Value::Null,
        };
        // Each tag also gets a `run_tag` row, which pages runs by tag newest-first.
        self.execute(
            "UPSERT type::record('run', $id) CONTENT $doc RETURN NONE; \
             FOR $tag IN $doc.tags { \
                 UPSERT type::record('run_tag', [$id, $tag[0], $tag[1]]) \
                     CONTENT { key: $tag[0], value: $tag[1], run_id: $id, start_time: $doc.start_time } \
                     RETURN NONE; \
             };",
            json!({"id": record.run_id, "doc": doc}),
        )
        .await?;
        Ok(record)
    }

    /// The run, or `None`.
    pub async fn get_run(&self, run_id: &str) -> Result<Option<RunRecord>> {
        let rows = self
            .rows("SELECT * OMIT id, tag_pairs, backfill_id FROM type::record('run', $id)", json!({"id": run_id}))
            .await?;
        Ok(decode("run", rows)?.into_iter().next())
    }

    /// Up to `limit` runs, newest first, optionally with one status.
    pub async fn get_runs(&self, limit: usize, status: Option<RunStatus>) -> Result<Vec<RunRecord>> {
        let filter = status.map_or(RunFilter::All, RunFilter::Status);
        self.get_runs_where(&filter, limit).await
    }

    /// Up to `limit` runs matching `filter`, newest first. Each filter is served by its own
    /// index on (field, creation time), so the cost is that of the page, not of the number of
    /// runs stored.
    pub async fn get_runs_where(&self, filter: &RunFilter, limit: usize) -> Result<Vec<RunRecord>> {
        const COLUMNS: &str = "SELECT * OMIT id, tag_pairs, backfill_id";
        let (source, vars) = match filter {
            RunFilter::All => ("FROM run WITH INDEX run_start_time", json!({})),
            RunFilter::Status(status) => {
                ("FROM run WITH INDEX run_status_time WHERE status = $value", json!({"value": status}))
            }
            RunFilter::Job(job) => ("FROM run WITH INDEX run_job_time WHERE job_name = $value", json!({"value": job})),
            RunFilter::Backfill(id) => {
                ("FROM run WITH INDEX run_backfill_time WHERE backfill_id = $value", json!({"value": id}))
            }
            RunFilter::Tag { key, value } => (
                "FROM (SELECT VALUE type::record('run', run_id) FROM run_tag WITH INDEX run_tag_time \
                 WHERE key = $key AND value = $value ORDER BY start_time DESC LIMIT $limit)",
                json!({"key": key, "value": value}),
            ),
        };
        let mut vars = vars;
        vars["limit"] = json!(limit);
        let sql = format!("{COLUMNS} {source} ORDER BY start_time DESC LIMIT $limit");
        decode("run", self.rows(&sql, vars).await?)
    }

    /// Moves a run to `status` (non-terminal transitions such as `Running`).
    pub async fn set_run_status(&self, run_id: &str, status: RunStatus) -> Result<()> {
        self.execute(
            "UPDATE type::record('run', $id) SET status = $status RETURN NONE",
            json!({"id": run_id, "status": status.as_str()}),
        )
        .await
    }

    /// Parses the status of `set_run_outcome`: `Success`, `Failure`, `Canceled` and
    /// `Cancelled` (stored as `Canceled`).
    ///
    /// # Errors
    /// `InvalidStatus` for any other spelling.
    pub fn parse_outcome_status(status: &str) -> Result<RunStatus> {
        match status {
            "Success" => Ok(RunStatus::Success),
            "Failure" => Ok(RunStatus::Failure),
            "Canceled" | "Cancelled" => Ok(RunStatus::Canceled),
            other => Err(Error::InvalidStatus(format!(
                "unknown run outcome status {other:?}; expected \"Success\", \"Failure\" or \"Cancelled\""
            ))),
        }
    }

    /// Persists a run's terminal outcome, after every event of the run is durable.
    ///
    /// # Errors
    /// `EventsNotWritten` when some of the run's events were lost (the outcome is not
    /// written then: the caller records a failure instead); `Backend` for a failed write.
    pub async fn set_run_outcome(
        &self,
        run_id: &str,
        status: RunStatus,
        completed_steps: i64,
        total_steps: i64,
        message: Option<&str>,
    ) -> Result<()> {
        self.flush_run(run_id).await?;
        self.write_run_outcome(run_id, status, completed_steps, total_steps, message).await
    }

    /// Writes a run's terminal outcome without waiting for its events (used to record the
    /// failure of a run whose events could not all be written).
    ///
    /// # Errors
    /// `Backend` for a failed write.
    pub async fn write_run_outcome(
        &self,
        run_id: &str,
        canonical: RunStatus,
        completed_steps: i64,
        total_steps: i64,
        message: Option<&str>,
    ) -> Result<()> {
        self.execute(
            "UPDATE type::record('run', $id) SET status = $status, completed_steps = $done, total_steps = $total, \
             message = $message, end_time = $end RETURN NONE",
            json!({"id": run_id, "status": canonical.as_str(), "done": completed_steps, "total": total_steps,
                   "message": message, "end": now_ns()}),
        )
        .await
    }

    /// `(completed_steps, total_steps)` of a run; `(0, 0)` when unknown.
    pub async fn get_run_progress(&self, run_id: &str) -> Result<(i64, i64)> {
        Ok(self.get_run(run_id).await?.map_or((0, 0), |r| (r.completed_steps, r.total_steps)))
    }

    /// Runs currently queued.
    pub async fn get_queued_runs(&self) -> Result<Vec<RunRecord>> {
        self.get_runs(usize::MAX >> 1, Some(RunStatus::Queued)).await
    }

    /// Cancels a queued run; `false` when the run is not queued.
    pub async fn cancel_queued_run(&self, run_id: &str) -> Result<bool> {
        match self.get_run(run_id).await? {
            Some(run) if run.status == RunStatus::Queued => {
                self.execute(
                    "UPDATE type::record('run', $id) SET status = 'Canceled', end_time = $end RETURN NONE",
                    json!({"id": run_id, "end": now_ns()}),
                )
                .await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Sets the cooperative cancellation flag of a run. A run not created yet is flagged on this
    /// handle only, so a run started through it later begins cancelled.
    pub async fn request_cancellation(&self, run_id: &str) -> Result<()> {
        self.inner.cancelled.lock().insert(run_id.to_string());
        self.execute("UPDATE type::record('run', $id) SET cancel_requested = true RETURN NONE", json!({"id": run_id}))
            .await
    }

    /// Withdraws a run's cancellation request, on this handle and in storage: `resume` of a
    /// run that ended `Canceled` runs again instead of cancelling itself at once.
    pub async fn clear_cancellation(&self, run_id: &str) -> Result<()> {
        self.inner.cancelled.lock().remove(run_id);
        self.execute("UPDATE type::record('run', $id) SET cancel_requested = false RETURN NONE", json!({"id": run_id}))
            .await
    }

    /// Whether cancellation was requested through this handle (no database round trip).
    pub fn is_cancel_requested_locally(&self, run_id: &str) -> bool {
        self.inner.cancelled.lock().contains(run_id)
    }

    /// Whether cancellation was requested, through any handle.
    pub async fn is_cancelled(&self, run_id: &str) -> Result<bool> {
        if self.is_cancel_requested_locally(run_id) {
            return Ok(true);
        }
        Ok(self.get_run(run_id).await?.is_some_and(|r| r.cancel_requested))
    }

    // ---- run logs -----------------------------------------------------------------------

    /// Captured step output of a run, oldest first.
    pub async fn get_run_logs(&self, run_id: &str) -> Result<Vec<StoredLog>> {
        self.flush().await?;
        let rows = self
            .rows("SELECT * OMIT id FROM run_log WHERE run_id = $run ORDER BY timestamp", json!({"run": run_id}))
            .await?;
        decode("run log", rows)
    }

    // ---- ticks --------------------------------------------------------------------------

    /// Up to `limit` ticks of an automation, newest first.
    pub async fn get_ticks(&self, automation_name: &str, limit: usize) -> Result<Vec<StoredTick>> {
        let rows = self
            .rows(
                "SELECT * OMIT id FROM tick WHERE automation_name = $name ORDER BY timestamp DESC LIMIT $limit",
                json!({"name": automation_name, "limit": limit}),
            )
            .await?;
        decode("tick", rows)
    }
}

/// Which runs a page of [`Storage::get_runs_where`] lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunFilter {
    /// Every run.
    All,
    /// Runs with this status.
    Status(RunStatus),
    /// Runs of this job.
    Job(String),
    /// Runs launched by this backfill.
    Backfill(String),
    /// Runs carrying this tag.
    Tag {
        /// Tag key.
        key: String,
        /// Tag value.
        value: String,
    },
}
