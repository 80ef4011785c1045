//! What the automation daemon stores: ticks (written in batches and pruned per automation),
//! run keys (a schedule's or sensor's idempotency keys) and runtime statuses of schedules
//! and sensors.

use std::collections::{BTreeSet, HashMap};

use rivers_core::{AutomationStatus, AutomationType, EventType};
use serde_json::json;

use super::runs::CREATE_RUNS;
use super::{Storage, decode};
use crate::error::{Error, Result};
use crate::records::{NewEvent, NewRun, RunRecord, StoredTick};

/// The idempotency key of a run a schedule or sensor requested: one run per automation and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunKey {
    /// Schedule or sensor.
    pub automation_type: AutomationType,
    /// The schedule's or sensor's name.
    pub automation_name: String,
    /// The request's `run_key`.
    pub key: String,
}

impl Storage {
    // ---- ticks --------------------------------------------------------------------------

    /// Writes `ticks` in one transaction, then keeps only the newest `retain` ticks of each
    /// automation they belong to (all of them with `None`).
    ///
    /// # Errors
    /// `Backend` for a failed write: none of the ticks is stored.
    pub async fn write_ticks(&self, ticks: &[StoredTick], retain: Option<usize>) -> Result<()> {
        if ticks.is_empty() {
            return Ok(());
        }
        let docs = serde_json::to_value(ticks).map_err(|source| Error::Decode { what: "tick", source })?;
        let names: BTreeSet<&str> = ticks.iter().map(|tick| tick.automation_name.as_str()).collect();
        // The newest `retain` ticks of a name are read from the (automation_name, timestamp)
        // index; everything older than the last of them goes.
        let prune = match retain {
            None => "",
            Some(_) => {
                "FOR $name IN $names { \
                    LET $kept = (SELECT VALUE timestamp FROM tick WHERE automation_name = $name \
                        ORDER BY timestamp DESC LIMIT $retain); \
                    IF array::len($kept) >= $retain { \
                        DELETE tick WHERE automation_name = $name AND timestamp < $kept[array::len($kept) - 1]; \
                    }; \
                };"
            }
        };
        let sql = format!("BEGIN TRANSACTION; INSERT INTO tick $ticks RETURN NONE; {prune} COMMIT TRANSACTION;");
        self.execute(&sql, json!({"ticks": docs, "names": names, "retain": retain.unwrap_or(0).max(1)})).await
    }

    /// The newest tick of an automation, if it has one.
    pub async fn latest_tick(&self, automation_name: &str) -> Result<Option<StoredTick>> {
        Ok(self.get_ticks(automation_name, 1).await?.pop())
    }

    // ---- runs requested by automations --------------------------------------------------

    /// Creates a run a schedule, sensor or condition requested, with its `RunQueued` event
    /// when it enters the queue. With a run key, the run is created only if no run was created
    /// for that key before (in one transaction with the key's record, so concurrent daemons
    /// cannot both create it): `None` when the key was already used.
    ///
    /// # Errors
    /// `Backend` for a failed write: then no run exists and the key stays unused.
    pub async fn create_requested_run(&self, run: NewRun, run_key: Option<&RunKey>) -> Result<Option<RunRecord>> {
        let queued = run.status == rivers_core::RunStatus::Queued;
        let priority = run.priority;
        let partition_key = run.partition_key.clone();
        let doc = self.run_document(run)?;
        let mut record: RunRecord =
            serde_json::from_value(doc.run.clone()).map_err(|source| Error::Decode { what: "run", source })?;
        record.partition_key = partition_key;
        let claim_key = match run_key {
            None => "",
            Some(_) => "CREATE type::record('run_key', $key) CONTENT { run_id: $run_id, created: $now } RETURN NONE;",
        };
        let sql = format!("BEGIN TRANSACTION; {claim_key} {CREATE_RUNS} COMMIT TRANSACTION;");
        let key = run_key.map(|key| json!([key.automation_type, key.automation_name, key.key]));
        let vars = json!({"docs": [doc], "key": key, "run_id": record.run_id, "now": record.start_time});
        match self.execute(&sql, vars).await {
            Ok(()) => {}
            // Run ids are fresh UUIDs: the record that already exists is the run key's.
            Err(Error::AlreadyExists { .. }) if run_key.is_some() => return Ok(None),
            Err(error) => return Err(error),
        }
        if queued {
            self.attach_run(&record.run_id);
            let mut event = NewEvent::new(EventType::RunQueued, record.run_id.clone());
            event.metadata.push(("priority".into(), priority.to_string()));
            self.enqueue_event(event);
            self.flush_run(&record.run_id).await?;
        }
        Ok(Some(record))
    }

    /// The run created for a run key, if any.
    pub async fn run_for_key(&self, run_key: &RunKey) -> Result<Option<String>> {
        let rows = self
            .rows(
                "SELECT VALUE run_id FROM type::record('run_key', $key)",
                json!({"key": [run_key.automation_type, run_key.automation_name, run_key.key]}),
            )
            .await?;
        Ok(rows.into_iter().next().and_then(|id| id.as_str().map(str::to_owned)))
    }

    // ---- runtime statuses ---------------------------------------------------------------

    /// Sets a schedule's or sensor's status at runtime; it overrides the declared default
    /// from then on.
    ///
    /// # Errors
    /// `Backend` for a failed write.
    pub async fn set_automation_status(
        &self,
        automation_type: AutomationType,
        name: &str,
        status: AutomationStatus,
    ) -> Result<()> {
        self.execute(
            "UPSERT type::record('automation_status', [$type, $name]) \
                CONTENT { automation_type: $type, name: $name, status: $status } RETURN NONE",
            json!({"type": automation_type, "name": name, "status": status}),
        )
        .await
    }

    /// Every status set at runtime, by automation type and name.
    pub async fn automation_statuses(&self) -> Result<HashMap<(AutomationType, String), AutomationStatus>> {
        #[derive(serde::Deserialize)]
        struct Row {
            automation_type: AutomationType,
            name: String,
            status: AutomationStatus,
        }
        let rows: Vec<Row> = decode(
            "automation status",
            self.rows("SELECT automation_type, name, status FROM automation_status", json!({})).await?,
        )?;
        Ok(rows.into_iter().map(|row| ((row.automation_type, row.name), row.status)).collect())
    }
}
