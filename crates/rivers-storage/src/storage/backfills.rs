//! Backfill records: one document per backfill (request, strategy, counters, run ids, outcome,
//! tags, origin), and the cancel marker another process can leave for the one running it.

use serde_json::{Value, json};

use super::Storage;
use crate::error::Result;

impl Storage {
    /// Creates or replaces backfill `backfill_id`'s record.
    pub async fn put_backfill(&self, backfill_id: &str, record: Value) -> Result<()> {
        self.execute(
            "UPSERT type::record('backfill', $id) CONTENT $record RETURN NONE",
            json!({"id": backfill_id, "record": record}),
        )
        .await
    }

    /// Backfill `backfill_id`'s record, if there is one.
    pub async fn get_backfill(&self, backfill_id: &str) -> Result<Option<Value>> {
        let rows = self.rows("SELECT * OMIT id FROM type::record('backfill', $id)", json!({"id": backfill_id})).await?;
        Ok(rows.into_iter().next())
    }

    /// Leaves a cancel marker on a backfill that has not ended; `false` for unknown or ended
    /// backfills (the marker then changes nothing).
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
}
