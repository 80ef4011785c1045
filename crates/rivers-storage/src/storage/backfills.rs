//! Backfill records: written whole once when a backfill is submitted, then changed only by
//! targeted updates (progress, status, the cancel marker), so that the coordinator and other
//! processes never overwrite each other's writes.

use rivers_core::BackfillState;
use serde_json::json;

use super::{Storage, decode};
use crate::clock::now_ns;
use crate::error::Result;
use crate::records::{BackfillProgress, BackfillRecord};

impl Storage {
    /// Stores a new backfill.
    ///
    /// # Errors
    /// `AlreadyExists` when the id is taken; `Backend` for a failed write.
    pub async fn create_backfill(&self, record: &BackfillRecord) -> Result<()> {
        let mut doc =
            serde_json::to_value(record).map_err(|source| crate::Error::Decode { what: "backfill", source })?;
        doc["created"] = json!(now_ns());
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
        Ok(!rows.is_empty())
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
