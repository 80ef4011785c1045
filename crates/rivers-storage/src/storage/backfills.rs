//! Backfill records: written whole once when a backfill is submitted, then changed only by
//! targeted updates (progress, status, the cancel marker), so that the coordinator and other
//! processes never overwrite each other's writes.
//!
//! A backfill another process executes (a daemon's `BackfillRequest`, a gRPC or CLI launch) is
//! submitted `requested`; one coordinator claims it (`in_progress`, compare-and-set) and
//! submits its runs atomically. A claimed backfill that has submitted no run after a grace
//! period (its coordinator died in between) goes back to `requested`.

use std::time::Duration;

use rivers_core::BackfillState;
use serde_json::json;

use super::paging::{self, Page, PageCursor};
use super::runs::CREATE_RUNS;
use super::{Storage, decode};
use crate::clock::now_ns;
use crate::error::Result;
use crate::records::{BackfillProgress, BackfillRecord, NewRun};

/// How long a claimed backfill may go without submitting a run before it is requeued
/// (partitions-and-backfills.md).
pub const BACKFILL_CLAIM_GRACE: Duration = Duration::from_secs(180);

impl Storage {
    /// Stores a new backfill.
    ///
    /// # Errors
    /// `AlreadyExists` when the id is taken; `Backend` for a failed write.
    pub async fn create_backfill(&self, record: &BackfillRecord) -> Result<()> {
        let code_location = self.code_location.for_writing(|| format!("backfill '{}'", record.backfill_id))?;
        let mut doc =
            serde_json::to_value(record).map_err(|source| crate::Error::Decode { what: "backfill", source })?;
        doc["created"] = json!(now_ns());
        doc["code_location"] = json!(code_location);
        self.execute(
            "CREATE type::record('backfill', $id) CONTENT $doc RETURN NONE",
            json!({"id": record.backfill_id, "doc": doc}),
        )
        .await
    }

    /// Backfill `backfill_id`, if there is one.
    ///
    /// # Errors
    /// `Decode` for a record this build cannot read; `Backend` for a failed read.
    pub async fn get_backfill(&self, backfill_id: &str) -> Result<Option<BackfillRecord>> {
        let rows = self.rows("SELECT * OMIT id FROM type::record('backfill', $id)", json!({"id": backfill_id})).await?;
        Ok(decode("backfill", rows)?.into_iter().next())
    }

    /// Adds finished runs' outcomes and new run ids to a backfill, atomically.
    ///
    /// # Errors
    /// `Backend` for a failed write.
    pub async fn record_backfill_progress(&self, backfill_id: &str, progress: &BackfillProgress) -> Result<()> {
        if progress.is_empty() {
            return Ok(());
        }
        self.execute(
            "UPDATE type::record('backfill', $id) SET completed += $p.completed, failed += $p.failed, \
                 canceled += $p.canceled, run_ids = array::concat(run_ids ?? [], $p.run_ids), \
                 failed_keys = array::concat(failed_keys ?? [], $p.failed_keys), \
                 canceled_keys = array::concat(canceled_keys ?? [], $p.canceled_keys) RETURN NONE",
            json!({"id": backfill_id, "p": progress}),
        )
        .await
    }

    /// Moves a backfill that has not ended to `status` (compare-and-set); `false` when it had
    /// ended already or does not exist.
    ///
    /// # Errors
    /// `Backend` for a failed write.
    pub async fn set_backfill_state(
        &self,
        backfill_id: &str,
        status: BackfillState,
        error: Option<&str>,
    ) -> Result<bool> {
        let rows = self
            .rows(
                "UPDATE type::record('backfill', $id) SET status = $status, error = $error ?? error \
                 WHERE status IN ['requested', 'in_progress'] RETURN VALUE true",
                json!({"id": backfill_id, "status": status, "error": error}),
            )
            .await?;
        Ok(!rows.is_empty())
    }

    /// Leaves a cancel marker on a backfill that has not ended; `false` for unknown or ended
    /// backfills (the marker then changes nothing).
    ///
    /// # Errors
    /// `Backend` for a failed write.
    pub async fn request_backfill_cancel(&self, backfill_id: &str) -> Result<bool> {
        let rows = self
            .rows(
                "UPDATE type::record('backfill', $id) SET cancel_requested = true \
                 WHERE status IN ['requested', 'in_progress'] RETURN VALUE true",
                json!({"id": backfill_id}),
            )
            .await?;
        if rows.is_empty() {
            return Ok(false);
        }
        self.learn_backfill_cancel(backfill_id);
        Ok(true)
    }

    /// Up to `limit` of this code location's backfills waiting for a coordinator, oldest first
    /// (from the location and status index).
    ///
    /// # Errors
    /// `MissingCodeLocation` without an identity; `Decode` for a record this build cannot
    /// read; `Backend` for a failed read.
    pub async fn requested_backfills(&self, limit: usize) -> Result<Vec<BackfillRecord>> {
        let code_location = self.code_location.for_writing(|| "the claim of a requested backfill")?;
        let rows = self
            .rows(
                "SELECT * OMIT id FROM backfill WITH INDEX backfill_location_status_created \
                 WHERE code_location = $location AND status = 'requested' ORDER BY created LIMIT $limit",
                json!({"limit": limit, "location": code_location}),
            )
            .await?;
        decode("backfill", rows)
    }

    /// This code location's backfills that a coordinator claimed and submitted runs for, and
    /// that have not ended: what a restarted daemon follows again (from the location and
    /// status index).
    ///
    /// # Errors
    /// `MissingCodeLocation` without an identity; `Decode` for a record this build cannot
    /// read; `Backend` for a failed read.
    pub async fn submitted_backfills_here(&self) -> Result<Vec<BackfillRecord>> {
        let code_location = self.code_location.for_writing(|| "following submitted backfills")?;
        let rows = self
            .rows(
                "SELECT * OMIT id FROM backfill WITH INDEX backfill_location_status_created \
                 WHERE code_location = $location AND status = 'in_progress' AND array::len(run_ids ?? []) > 0 \
                 ORDER BY created",
                json!({"location": code_location}),
            )
            .await?;
        decode("backfill", rows)
    }

    /// A backfill's `max_concurrency` (one field read); `None` for an unknown backfill.
    ///
    /// # Errors
    /// `Backend` for a failed read.
    pub async fn backfill_max_concurrency(&self, backfill_id: &str) -> Result<Option<u32>> {
        let rows = self
            .rows("SELECT VALUE max_concurrency FROM type::record('backfill', $id)", json!({"id": backfill_id}))
            .await?;
        Ok(rows.first().and_then(serde_json::Value::as_u64).map(|n| u32::try_from(n).unwrap_or(u32::MAX)))
    }

    /// Replaces a backfill's counters and partition lists with `totals`: a coordinator that
    /// took over a backfill recounts its runs and writes what they add up to.
    ///
    /// # Errors
    /// `Backend` for a failed write.
    pub async fn set_backfill_totals(&self, backfill_id: &str, totals: &BackfillProgress) -> Result<()> {
        self.execute(
            "UPDATE type::record('backfill', $id) SET completed = $t.completed, failed = $t.failed, \
                 canceled = $t.canceled, failed_keys = $t.failed_keys, canceled_keys = $t.canceled_keys RETURN NONE",
            json!({"id": backfill_id, "t": totals}),
        )
        .await
    }

    /// One page of backfills, newest first: every backfill, or one code location's. Each page
    /// costs what its backfills cost, however deep it is.
    ///
    /// # Errors
    /// `Decode` for a record this build cannot read; `Backend` for a failed read.
    pub async fn get_backfills_page(
        &self,
        code_location: Option<&str>,
        limit: usize,
        after: Option<&PageCursor>,
    ) -> Result<Page<BackfillRecord>> {
        let before = if after.is_some() { "AND created <= $before" } else { "" };
        let source = match code_location {
            None => format!("FROM backfill WITH INDEX backfill_created WHERE true {before}"),
            Some(_) => {
                format!("FROM backfill WITH INDEX backfill_location_created WHERE code_location = $location {before}")
            }
        };
        let rows = self
            .rows(
                &format!("SELECT * OMIT id {source} ORDER BY created DESC LIMIT $limit"),
                json!({"location": code_location, "before": paging::bound(after), "limit": paging::fetch_size(limit, after)}),
            )
            .await?;
        let read: Vec<BackfillRecord> = decode("backfill", rows)?;
        Ok(paging::page(read, limit, after, |backfill| backfill.created, |backfill| &backfill.backfill_id))
    }

    /// Claims a requested backfill for this process's coordinator: `requested → in_progress`
    /// in one compare-and-set, so that exactly one of several claiming processes gets it.
    ///
    /// # Errors
    /// `Backend` for a failed write.
    pub async fn claim_backfill(&self, backfill_id: &str) -> Result<bool> {
        let rows = self
            .rows(
                "UPDATE type::record('backfill', $id) SET status = 'in_progress', claimed_at = $now \
                 WHERE status = 'requested' RETURN VALUE true",
                json!({"id": backfill_id, "now": now_ns()}),
            )
            .await?;
        Ok(!rows.is_empty())
    }

    /// Creates a claimed backfill's runs and links them to it, all in one transaction: either
    /// every run and its `run_ids` entry is stored, or none is.
    ///
    /// # Errors
    /// `AlreadyExists` when a run id is taken; `Backend` for a failed write (nothing stored).
    pub async fn submit_backfill_runs(&self, backfill_id: &str, runs: Vec<NewRun>) -> Result<()> {
        let docs = runs.into_iter().map(|run| self.run_document(run)).collect::<Result<Vec<_>>>()?;
        let sql = format!(
            "BEGIN TRANSACTION; {CREATE_RUNS} \
             UPDATE type::record('backfill', $id) SET run_ids = array::concat(run_ids ?? [], $docs.run.run_id) \
                 RETURN NONE; \
             COMMIT TRANSACTION;"
        );
        self.execute(&sql, json!({"id": backfill_id, "docs": docs})).await
    }

    /// Puts claimed backfills that submitted no run within `grace` back to `requested` (their
    /// coordinator died before submitting) and returns their ids.
    ///
    /// # Errors
    /// `Backend` for a failed write.
    pub async fn requeue_stalled_backfills(&self, grace: Duration) -> Result<Vec<String>> {
        let rows = self
            .rows(
                "UPDATE backfill SET status = 'requested', claimed_at = NONE \
                 WHERE status = 'in_progress' AND array::len(run_ids ?? []) = 0 AND (claimed_at ?? 0) < $cutoff \
                 RETURN VALUE backfill_id",
                json!({"cutoff": now_ns() - grace.as_nanos() as i64}),
            )
            .await?;
        Ok(rows.into_iter().filter_map(|row| row.as_str().map(str::to_owned)).collect())
    }

    /// Whether another process asked backfill `backfill_id` to stop (one field read).
    ///
    /// # Errors
    /// `Backend` for a failed read.
    pub async fn backfill_cancel_requested(&self, backfill_id: &str) -> Result<bool> {
        let rows = self
            .rows("SELECT VALUE cancel_requested FROM type::record('backfill', $id)", json!({"id": backfill_id}))
            .await?;
        Ok(rows.first().and_then(serde_json::Value::as_bool).unwrap_or(false))
    }
}
