//! The batched event writer (group commit).
//!
//! The engine enqueues events and never waits for a database round trip per event. A single
//! task drains whatever is queued, writes it in one query (events plus the asset-record
//! updates of materializations), then takes the next batch; under load batches grow by
//! themselves, idle there is no added latency. `flush` waits until everything enqueued before
//! it is durable, which is what a run does before writing its terminal status.

use serde_json::{Value, json};
use surrealdb::Surreal;
use surrealdb::engine::local::Db;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};

/// Most events written in one query; bounds the size of a single transaction.
const MAX_BATCH: usize = 2048;

pub(crate) enum Command {
    Event(Value),
    Flush(oneshot::Sender<Result<()>>),
}

pub(crate) struct Writer {
    pub(crate) sender: mpsc::UnboundedSender<Command>,
}

/// One group commit: one event segment, then the asset records' `last_*` fields of the
/// materializations and observations among them, in one transaction (one commit per batch).
/// Bulk `INSERT ... ON DUPLICATE KEY UPDATE` statements cost one statement per batch rather
/// than one per record.
const WRITE_BATCH: &str = "
BEGIN TRANSACTION;
CREATE event_segment CONTENT { seq: $seq, run_ids: $run_ids, asset_keys: $asset_keys, events: $events } RETURN NONE;
IF array::len($mats) > 0 {
    INSERT INTO asset $mats ON DUPLICATE KEY UPDATE
        last_event_id = $input.last_event_id,
        last_run_id = $input.last_run_id,
        last_timestamp = $input.last_timestamp,
        last_data_version = $input.last_data_version,
        last_materialization_code_version = $input.last_materialization_code_version,
        last_input_data_versions = $input.last_input_data_versions
    RETURN NONE;
};
IF array::len($observations) > 0 {
    INSERT INTO asset $observations ON DUPLICATE KEY UPDATE
        last_observation_data_version = $input.last_observation_data_version
    RETURN NONE;
};
COMMIT TRANSACTION;
";

impl Writer {
    pub(crate) fn spawn(db: Surreal<Db>) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run(db, receiver));
        Writer { sender }
    }
}

async fn run(db: Surreal<Db>, mut receiver: mpsc::UnboundedReceiver<Command>) {
    // The error of a failed batch, reported to the next flush.
    let mut failure: Option<String> = None;
    let mut events = Vec::new();
    let mut waiters = Vec::new();
    while let Some(first) = receiver.recv().await {
        let mut next = Some(first);
        while let Some(command) = next.take() {
            match command {
                Command::Event(event) => events.push(event),
                Command::Flush(done) => waiters.push(done),
            }
            if events.len() < MAX_BATCH {
                next = receiver.try_recv().ok();
            }
        }
        if !events.is_empty()
            && let Err(err) = write_batch(&db, std::mem::take(&mut events)).await
        {
            tracing::error!(error = %err, "writing a batch of run events failed");
            failure = Some(err.to_string());
        }
        for done in waiters.drain(..) {
            let outcome = match failure.take() {
                Some(message) => Err(Error::Backend(message)),
                None => Ok(()),
            };
            let _ = done.send(outcome);
        }
    }
}

async fn write_batch(db: &Surreal<Db>, events: Vec<Value>) -> Result<()> {
    // Later events of the same asset win: a batch may hold several materializations of it.
    let mut mats: Vec<Value> = Vec::new();
    let mut observations: Vec<Value> = Vec::new();
    for event in &events {
        let Some(key) = event["asset_key"].as_str() else { continue };
        if event["event_type"] == "Materialization" {
            mats.retain(|m| m["asset_key"] != key);
            mats.push(json!({
                "id": key,
                "asset_key": key,
                "last_event_id": event["eid"],
                "last_run_id": event["run_id"],
                "last_timestamp": event["timestamp"],
                "last_data_version": event["data_version"],
                "last_materialization_code_version": event["code_version"],
                "last_input_data_versions": event["input_data_versions"],
            }));
        } else if event["event_type"] == "Observation" {
            observations.retain(|o| o["asset_key"] != key);
            observations.push(json!({
                "id": key,
                "asset_key": key,
                "last_observation_data_version": event["data_version"],
            }));
        }
    }
    let mut run_ids: Vec<&str> = events.iter().filter_map(|e| e["run_id"].as_str()).collect();
    run_ids.sort_unstable();
    run_ids.dedup();
    let mut asset_keys: Vec<&str> = events.iter().filter_map(|e| e["asset_key"].as_str()).collect();
    asset_keys.sort_unstable();
    asset_keys.dedup();
    let seq = events.first().map(|e| e["timestamp"].clone()).unwrap_or(Value::Null);
    db.query(WRITE_BATCH)
        .bind(json!({"seq": seq, "run_ids": run_ids, "asset_keys": asset_keys, "events": events,
                     "mats": mats, "observations": observations}))
        .await?
        .check()?;
    Ok(())
}
