//! Events: enqueueing through the batched writer, flushing, and the queries that read them.
//!
//! Per-run reads decode only the segments of that run; "latest" questions are answered from
//! the indexed state tables (`asset`, the partition index, `step_state`), never from history.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rivers_core::partitions::{PartitionEnv, Partitions};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::clock::now_ns;
use crate::records::{NewEvent, StepState, StoredEvent, StoredLog};
use crate::state::StepStatus;
use crate::writer::Command;

use super::paging::Page;
use super::{Storage, decode_events, decode_segment, expand_nth};
use crate::error::{Error, Result};

/// Where the next page of an asset's events starts: in segment `segment`, after its first
/// `listed` events of the asset. Opaque to callers; serialisable, so that a UI can hand it back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AssetEventCursor {
    segment: i64,
    listed: usize,
}

/// The segments holding events of run `$run`, in commit order (from the element index).
pub(super) const RUN_SEGMENTS: &str = "SELECT events, run_seq_ends FROM event_segment WITH INDEX event_segment_run_seq \
     WHERE run_ids CONTAINS $run ORDER BY seq";

/// Up to `$limit` segments holding events of asset `$key`, newest first; `paged`: from
/// segment `$before` down.
pub(super) fn asset_segments(paged: bool) -> String {
    let before = if paged { "AND seq <= $before" } else { "" };
    format!(
        "SELECT seq, events, run_seq_ends FROM event_segment WITH INDEX event_segment_asset_seq \
         WHERE asset_keys CONTAINS $key {before} ORDER BY seq DESC LIMIT $limit"
    )
}

/// Which end of a list comes first.
#[derive(Clone, Copy)]
enum Order {
    Oldest,
    Newest,
}

impl Storage {
    // ---- writing ------------------------------------------------------------------------

    /// Prepares this handle to write events of `run_id` again (a re-executed or resumed run):
    /// earlier lost writes of the run are forgotten.
    pub fn attach_run(&self, run_id: &str) {
        let _ = self.inner.writer.sender.send(Command::ResetRun(run_id.to_string()));
    }

    /// Enqueues an event for the batched writer and returns the id it was given. Its number in
    /// its run is assigned when its batch commits. Never blocks; whether it was written is
    /// known from the next [`Storage::flush_run`].
    pub fn enqueue_event(&self, event: NewEvent) -> String {
        let stored = StoredEvent {
            id: uuid::Uuid::now_v7().to_string(),
            event_type: event.event_type,
            asset_key: event.asset_key,
            run_id: event.run_id,
            partition_key: event.partition_key,
            timestamp: now_ns(),
            run_seq: 0,
            metadata: event.metadata,
            data_version: event.data_version,
            code_version: event.code_version,
            input_data_versions: event.input_data_versions,
            span: event.span,
        };
        let id = stored.id.clone();
        self.inner.writer.submit(Command::Event(Box::new(stored)));
        id
    }

    /// Enqueues that step `producer` of a run added `added` steps to the run's plan
    /// (fan-out instances), written with the next batch: the run's total counts them once,
    /// however often the producer is executed.
    pub fn enqueue_plan_growth(&self, run_id: &str, producer: &str, partition: Option<String>, added: usize) {
        let growth = crate::writer::PlanGrowth { run_id: run_id.into(), producer: producer.into(), partition, added };
        self.inner.writer.submit(Command::PlanGrowth(growth));
    }

    /// Enqueues one step execution's captured output (written with the next batch).
    pub fn enqueue_run_log(
        &self,
        run_id: &str,
        step_key: &str,
        stdout: Option<String>,
        stderr: Option<String>,
        logs: Option<String>,
    ) {
        let row = StoredLog {
            id: uuid::Uuid::now_v7().to_string(),
            run_id: run_id.into(),
            step_key: step_key.into(),
            timestamp: now_ns(),
            stdout,
            stderr,
            logs,
        };
        self.inner.writer.submit(Command::Log(row));
    }

    async fn flush_scoped(&self, run_id: Option<&str>) -> Result<()> {
        let (done, wait) = oneshot::channel();
        let stopped = || Error::WriterStopped;
        let command = Command::Flush { run_id: run_id.map(str::to_owned), done };
        if self.inner.writer.sender.send(command).is_err() {
            return Err(stopped());
        }
        wait.await.map_err(|_| stopped())?
    }

    /// Waits until every event enqueued before this call is durable.
    ///
    /// # Errors
    /// `Backend` when a batch holding some of those events could not be written.
    pub async fn flush(&self) -> Result<()> {
        // Reads flush first; with nothing enqueued there is nothing to wait for.
        if self.inner.writer.is_idle() {
            return Ok(());
        }
        self.flush_scoped(None).await
    }

    /// Waits until every event enqueued before this call is durable, and checks that no event
    /// of `run_id` was ever lost.
    ///
    /// # Errors
    /// `EventsNotWritten` naming what of the run was not written.
    pub async fn flush_run(&self, run_id: &str) -> Result<()> {
        self.flush_scoped(Some(run_id)).await
    }

    // ---- reading ------------------------------------------------------------------------

    /// Every event of a run, in run order (a compact event read as one event per partition).
    pub async fn get_events_for_run(&self, run_id: &str) -> Result<Vec<StoredEvent>> {
        self.flush().await?;
        let rows = self.rows(RUN_SEGMENTS, json!({"run": run_id})).await?;
        let mut events = Vec::new();
        for row in rows {
            events.extend(decode_segment(row)?.into_iter().filter(|e| e.run_id == run_id));
        }
        // Events numbered before sequence numbers existed (schema 1) sort by time.
        events.sort_by_key(|e| (e.run_seq, e.timestamp));
        self.expand(events, Order::Oldest, 0, usize::MAX).await
    }

    /// Up to `limit` events of an asset, newest first (a compact event read as one event per
    /// partition, expanded only as far as the limit reaches).
    pub async fn get_events_for_asset(&self, asset_key: &str, limit: usize) -> Result<Vec<StoredEvent>> {
        Ok(self.get_asset_events_page(asset_key, limit, None).await?.items)
    }

    /// One page of an asset's events, newest first: up to `limit` after `after` (the previous
    /// page's [`Page::next`]). Events are ordered by the segment (batch) they were committed in,
    /// newest first, and within a segment newest first; a compact event reads as one event per
    /// partition. A page reads its own segments from the (asset, segment) index, however long the
    /// asset's history, and segments committed meanwhile never shift the pages that follow.
    ///
    /// # Errors
    /// `Decode` for a record this build cannot read; `Backend` for a failed read.
    pub async fn get_asset_events_page(
        &self,
        asset_key: &str,
        limit: usize,
        after: Option<&AssetEventCursor>,
    ) -> Result<Page<StoredEvent, AssetEventCursor>> {
        self.flush().await?;
        if limit == 0 {
            return Ok(Page { items: Vec::new(), next: None });
        }
        // Segments are read a few at a time, newest first: one segment may hold many events of
        // the asset (a long batch, a compact event), and each holds at least one.
        let mut items = Vec::with_capacity(limit);
        let mut before = after.map(|cursor| cursor.segment);
        let mut chunk = 2;
        loop {
            let rows = self
                .rows(&asset_segments(before.is_some()), json!({"key": asset_key, "before": before, "limit": chunk}))
                .await?;
            let fetched = rows.len();
            for (index, row) in rows.into_iter().enumerate() {
                let segment = row["seq"].as_i64().unwrap_or_default();
                before = Some(segment - 1);
                let mut events: Vec<StoredEvent> =
                    decode_segment(row)?.into_iter().filter(|e| e.asset_key.as_deref() == Some(asset_key)).collect();
                events.sort_by_key(|e| std::cmp::Reverse((e.timestamp, e.run_seq)));
                let total: usize = events.iter().map(|e| usize::try_from(e.weight()).unwrap_or(usize::MAX)).sum();
                let skip = after.filter(|cursor| cursor.segment == segment).map_or(0, |cursor| cursor.listed);
                let room = limit - items.len();
                let page = self.expand(events, Order::Newest, skip, room).await?;
                let listed = skip + page.len();
                items.extend(page);
                if items.len() == limit {
                    let next = if listed < total {
                        Some(AssetEventCursor { segment, listed })
                    } else {
                        // Whether older segments exist is found out by the next page.
                        (index + 1 < fetched || fetched == chunk)
                            .then_some(AssetEventCursor { segment: segment - 1, listed: 0 })
                    };
                    return Ok(Page { items, next });
                }
            }
            if fetched < chunk {
                break;
            }
            chunk = (chunk * 4).min(limit + 1);
        }
        Ok(Page { items, next: None })
    }

    /// Newest materialization of an asset (`partition=None`: of any partition), or of one of
    /// its partitions: one record read, or one index probe per definition the asset had.
    pub async fn get_latest_materialization(
        &self,
        asset_key: &str,
        partition: Option<&str>,
    ) -> Result<Option<StoredEvent>> {
        self.flush().await?;
        if let Some(partition) = partition {
            return self.latest_partition_materialization(asset_key, partition).await;
        }
        let rows = self
            .rows("SELECT VALUE last_materialization FROM type::record('asset', $key)", json!({"key": asset_key}))
            .await?;
        let rows: Vec<Value> = rows.into_iter().filter(|row| row.is_object() || row.is_string()).collect();
        let events = decode_events(rows)?.into_iter().take(1).collect();
        Ok(self.expand(events, Order::Newest, 0, 1).await?.pop())
    }

    /// Expands compact events into one event per covered partition, in `order`, up to `limit`
    /// events in all.
    async fn expand(
        &self,
        events: Vec<StoredEvent>,
        order: Order,
        mut skip: usize,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        let mut expanded = Vec::with_capacity(events.len().min(limit));
        let mut grids: HashMap<String, (Arc<Partitions>, PartitionEnv)> = HashMap::new();
        for event in events {
            if expanded.len() >= limit {
                break;
            }
            // Whole events before the first wanted one are passed over without expanding them.
            let weight = usize::try_from(event.weight()).unwrap_or(usize::MAX);
            if skip >= weight {
                skip -= weight;
                continue;
            }
            let Some(span) = event.span.as_ref().filter(|_| event.is_compact()) else {
                expanded.push(event);
                continue;
            };
            if !grids.contains_key(&span.definition) {
                let definition = self.definition(&span.definition).await?.ok_or_else(|| Error::Corrupt {
                    what: format!("event {}", event.id),
                    detail: format!("it covers partitions of a definition that is not stored ({})", span.definition),
                })?;
                let env = self.partition_env(&definition).await?;
                grids.insert(span.definition.clone(), (definition, env));
            }
            let (definition, env) = &grids[&span.definition];
            let room = limit - expanded.len();
            // Positions are walked in order, so each one's index in the span is known.
            let expand = |(index, position)| expand_nth(&event, index, position, definition, env);
            match order {
                Order::Oldest => {
                    expanded.extend((0..).zip(span.positions.positions()).skip(skip).take(room).map(expand))
                }
                Order::Newest => {
                    let indices = (0..span.positions.len()).rev();
                    let newest_first = indices.zip(span.positions.positions_descending());
                    expanded.extend(newest_first.skip(skip).take(room).map(expand));
                }
            }
            skip = 0;
        }
        Ok(expanded)
    }

    /// Every step of a run with its status, times and attempts, by start time (steps that
    /// never started last): one indexed read of the run's step states.
    pub async fn get_run_steps(&self, run_id: &str) -> Result<Vec<StepState>> {
        self.flush().await?;
        let rows = self
            .rows(
                "SELECT step_key, partition_key, status, started AS start_time, ended AS end_time, \
                 (retries ?? 0) + 1 AS attempts FROM step_state WHERE run_id = $run",
                json!({"run": run_id}),
            )
            .await?;
        let mut steps: Vec<StepState> = super::decode("step state", rows)?;
        steps.sort_by(|a, b| {
            (a.start_time.is_none(), a.start_time, &a.step_key).cmp(&(
                b.start_time.is_none(),
                b.start_time,
                &b.step_key,
            ))
        });
        Ok(steps)
    }

    /// Step keys that succeeded in `run_id` for this partition (resume): read from the run's
    /// step states.
    pub async fn succeeded_steps(&self, run_id: &str, partition: Option<&str>) -> Result<HashSet<String>> {
        self.flush().await?;
        let rows = self
            .rows(
                "SELECT step_key, partition_key FROM step_state WHERE run_id = $run AND status = $status",
                json!({"run": run_id, "status": StepStatus::Success}),
            )
            .await?;
        Ok(rows
            .into_iter()
            .filter(|row| row["partition_key"].as_str() == partition)
            .filter_map(|row| row["step_key"].as_str().map(str::to_owned))
            .collect())
    }
}
