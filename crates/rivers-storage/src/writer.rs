//! The batched event writer (group commit).
//!
//! The engine enqueues events and never waits for a database round trip per event. A single
//! task drains whatever is queued, writes it in one query (events plus the asset-record
//! updates of materializations), then takes the next batch; under load batches grow by
//! themselves, idle there is no added latency. `flush` waits until everything enqueued before
//! it is durable, which is what a run does before writing its terminal status.

use std::sync::Arc;

use parking_lot::Mutex;
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

const WRITE_BATCH: &str = "
INSERT INTO event $events RETURN NONE;
FOR $m IN $mats {
    UPSERT type::record('asset', $m.asset_key) MERGE {
        asset_key: $m.asset_key,
        last_event_id: $m.eid,
        last_run_id: $m.run_id,
        last_timestamp: $m.timestamp,
        last_data_version: $m.data_version,
        last_materialization_code_version: $m.code_version,
        last_input_data_versions: $m.input_data_versions
    } RETURN NONE;
};
FOR $o IN $observations {
    UPSERT type::record('asset', $o.asset_key) MERGE {
        asset_key: $o.asset_key,
        last_observation_data_version: $o.data_version
    } RETURN NONE;
};
";

impl Writer {
    pub(crate) fn spawn(db: Surreal<Db>) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        let failure = Arc::new(Mutex::new(None::<String>));
        tokio::spawn(run(db, receiver, failure));
        Writer { sender }
    }
}

async fn run(db: Surreal<Db>, mut receiver: mpsc::UnboundedReceiver<Command>, failure: Arc<Mutex<Option<String>>>) {
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
        if !events.is_empty() {
            if let Err(err) = write_batch(&db, std::mem::take(&mut events)).await {
                tracing::error!(error = %err, "writing a batch of run events failed");
                *failure.lock() = Some(err.to_string());
            }
        }
        for done in waiters.drain(..) {
            let outcome = match failure.lock().take() {
                Some(message) => Err(Error::Backend(message)),
                None => Ok(()),
            };
            let _ = done.send(outcome);
        }
    }
}

async fn write_batch(db: &Surreal<Db>, events: Vec<Value>) -> Result<()> {
    let pick = |kind: &str| -> Vec<Value> {
        events.iter().filter(|e| e["event_type"] == kind && !e["asset_key"].is_null()).cloned().collect()
    };
    let mats = pick("Materialization");
    let observations = pick("Observation");
    db.query(WRITE_BATCH)
        .bind(json!({"events": events, "mats": mats, "observations": observations}))
        .await?
        .check()?;
    Ok(())
}
