//! Event queries: segments flattened and filtered per run or asset.

use std::collections::HashSet;

use tokio::sync::oneshot;

use crate::clock::now_ns;
use crate::records::{NewEvent, StoredEvent};
use crate::writer::Command;
use serde_json::{Value, json};

use super::{Storage, decode};
use crate::error::{Error, Result};

impl Storage {
    // ---- events -------------------------------------------------------------------------

    /// Enqueues an event for the batched writer and returns its id. Never blocks.
    pub fn enqueue_event(&self, event: NewEvent) -> StoredEvent {
        let stored = StoredEvent {
            id: uuid::Uuid::now_v7().to_string(),
            event_type: event.event_type.to_string(),
            asset_key: event.asset_key,
            run_id: event.run_id,
            partition_key: event.partition_key,
            timestamp: now_ns(),
            metadata: event.metadata,
            data_version: event.data_version,
            code_version: event.code_version,
            input_data_versions: event.input_data_versions,
        };
        let doc = serde_json::to_value(&stored).unwrap_or(Value::Null);
        // The writer lives as long as the store; a closed channel means the runtime is gone,
        // in which case there is nobody left to read the event either.
        let _ = self.inner.writer.sender.send(Command::Event(doc));
        stored
    }

    /// Waits until every event enqueued before this call is durable.
    ///
    /// # Errors
    /// The error of a failed batch write since the previous flush.
    pub async fn flush(&self) -> Result<()> {
        let (done, wait) = oneshot::channel();
        if self.inner.writer.sender.send(Command::Flush(done)).is_err() {
            return Err(Error::Backend("the storage writer has stopped".into()));
        }
        wait.await.map_err(|_| Error::Backend("the storage writer has stopped".into()))?
    }

    /// Events of the segments mentioning `key` in `field`, newest segment first, `limit`
    /// segments at most.
    async fn segment_events(&self, field: &str, key: &str, limit: Option<usize>) -> Result<Vec<StoredEvent>> {
        self.flush().await?;
        let limit_clause = if limit.is_some() { "LIMIT $limit" } else { "" };
        let sql = format!(
            "SELECT seq, events FROM event_segment WHERE {field} CONTAINSANY [$key] ORDER BY seq DESC {limit_clause}"
        );
        let rows = self.rows(&sql, json!({"key": key, "limit": limit})).await?;
        let mut events = Vec::new();
        for mut row in rows {
            if let Value::Array(items) = row["events"].take() {
                events.extend(decode::<StoredEvent>("event", items)?);
            }
        }
        Ok(events)
    }

    /// Every event of a run, oldest first.
    pub async fn get_events_for_run(&self, run_id: &str) -> Result<Vec<StoredEvent>> {
        let mut events: Vec<StoredEvent> =
            self.segment_events("run_ids", run_id, None).await?.into_iter().filter(|e| e.run_id == run_id).collect();
        events.sort_by_key(|e| e.timestamp);
        Ok(events)
    }

    /// Events of an asset, newest first, `limit` at most (`None` = all).
    async fn asset_events(&self, asset_key: &str, limit: Option<usize>) -> Result<Vec<StoredEvent>> {
        // Every segment found holds at least one event of the asset, so `limit` segments are
        // enough for `limit` events.
        let mut events: Vec<StoredEvent> = self
            .segment_events("asset_keys", asset_key, limit)
            .await?
            .into_iter()
            .filter(|e| e.asset_key.as_deref() == Some(asset_key))
            .collect();
        events.sort_by_key(|e| std::cmp::Reverse(e.timestamp));
        if let Some(limit) = limit {
            events.truncate(limit);
        }
        Ok(events)
    }

    /// Up to `limit` events of an asset, newest first.
    pub async fn get_events_for_asset(&self, asset_key: &str, limit: usize) -> Result<Vec<StoredEvent>> {
        self.asset_events(asset_key, Some(limit)).await
    }

    /// Newest materialization of an asset, optionally of one partition.
    pub async fn get_latest_materialization(
        &self,
        asset_key: &str,
        partition: Option<&str>,
    ) -> Result<Option<StoredEvent>> {
        Ok(self.asset_events(asset_key, None).await?.into_iter().find(|e| {
            e.event_type == "Materialization" && partition.is_none_or(|p| e.partition_key.as_deref() == Some(p))
        }))
    }

    /// Distinct partition keys (display strings) having a materialization.
    pub async fn get_materialized_partitions(&self, asset_key: &str) -> Result<Vec<String>> {
        let mut keys: Vec<String> = self
            .asset_events(asset_key, None)
            .await?
            .into_iter()
            .filter(|e| e.event_type == "Materialization")
            .filter_map(|e| e.partition_key)
            .collect();
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }

    /// Step keys with a `StepSuccess` in `run_id` for this partition (resume).
    pub async fn succeeded_steps(&self, run_id: &str, partition: Option<&str>) -> Result<HashSet<String>> {
        let events = self.get_events_for_run(run_id).await?;
        Ok(events
            .into_iter()
            .filter(|e| e.event_type == "StepSuccess" && e.partition_key.as_deref() == partition)
            .filter_map(|e| e.asset_key)
            .collect())
    }
}
