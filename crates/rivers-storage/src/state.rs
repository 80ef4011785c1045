//! Indexed state derived from a batch of events.
//!
//! The event log is history: nothing reads it to answer a question. Every fact a reader needs
//! (the latest materialization of an asset or partition, a step's state in a run, a run's last
//! event number) is kept in its own table, keyed so that one record read answers it, and
//! updated in the same transaction as the events that change it. This module computes those
//! updates for one writer batch; it is pure so the rules are testable without a database.

use std::collections::BTreeMap;

use rivers_core::EventType;
use serde::Serialize;
use serde_json::{Value, json};

use crate::records::StoredEvent;

/// The state updates of one batch, ready to bind into the batch transaction.
#[derive(Debug, Default, Serialize)]
pub(crate) struct StateUpdates {
    /// `asset` rows: latest materialization per asset.
    pub(crate) materializations: Vec<Value>,
    /// `asset` rows: latest observation per asset.
    pub(crate) observations: Vec<Value>,
    /// `asset_partition` rows: latest observation per (asset, partition).
    pub(crate) partition_observations: Vec<Value>,
    /// `step_state` rows: the status of each step touched.
    pub(crate) steps: Vec<Value>,
    /// `{run, events}`: how many events of each run the batch holds, a compact event counting
    /// for each partition it covers (their numbers are assigned at commit).
    pub(crate) run_counts: Vec<Value>,
    /// `{run, ids}`: the `step_state` ids of each run's steps the batch records as succeeded
    /// (the batch counts those that never succeeded before towards the run's progress).
    pub(crate) successes: Vec<Value>,
}

/// A step's state in a run, as kept in `step_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum StepStatus {
    /// Started (or waiting to retry), not ended.
    Running,
    /// Succeeded.
    Success,
    /// Failed.
    Failure,
    /// Skipped (an upstream failed).
    Skipped,
}

fn step_status(event_type: EventType) -> Option<StepStatus> {
    match event_type {
        // A step waiting to retry is still running.
        EventType::StepStart | EventType::StepRetry => Some(StepStatus::Running),
        EventType::StepSuccess => Some(StepStatus::Success),
        EventType::StepFailure => Some(StepStatus::Failure),
        EventType::StepSkipped => Some(StepStatus::Skipped),
        _ => None,
    }
}

/// Keeps the last value per key, in first-seen key order (later events of a batch win).
#[derive(Default)]
struct Latest<K: Ord> {
    rows: BTreeMap<K, Value>,
}

impl Latest<(String, String)> {
    /// The `asset_partition` row of `(asset, partition)` with `field` set to the event and
    /// `field_time` to its time (rows only move forward in time).
    fn put_partition(&mut self, asset_key: &str, partition: &str, field: &str, event: &Value, time: i64) {
        let mut row = json!({"id": [asset_key, partition], "asset_key": asset_key, "partition_key": partition});
        row[field] = event.clone();
        row[format!("{field}_time")] = json!(time);
        self.put((asset_key.to_string(), partition.to_string()), row);
    }
}

impl<K: Ord> Latest<K> {
    fn put(&mut self, key: K, row: Value) {
        self.rows.insert(key, row);
    }

    fn into_rows(self) -> Vec<Value> {
        self.rows.into_values().collect()
    }
}

impl StateUpdates {
    /// Derives the state updates of `events` (in the order they were enqueued); `texts` are
    /// the events' stored JSON text, one per event, which state rows hold too.
    pub(crate) fn from_events(events: &[StoredEvent], texts: &[String]) -> Self {
        debug_assert_eq!(events.len(), texts.len());
        let mut mats = Latest::default();
        let mut observations = Latest::default();
        let mut partition_observations = Latest::default();
        let mut steps = Latest::default();
        let mut run_counts: BTreeMap<&str, i64> = BTreeMap::new();
        for (event, text) in events.iter().zip(texts) {
            *run_counts.entry(event.run_id.as_str()).or_default() += event.weight();
            let Some(key) = event.asset_key.as_deref() else { continue };
            match event.event_type {
                EventType::Materialization | EventType::Observation => {
                    // The asset row keeps the latest event and its data version beside it (the
                    // other `last_*` fields of a record are read from the event itself). The
                    // latest materialization of each partition is kept by the interval index
                    // (partition_status.rs).
                    let (latest, field, version_field) = if event.event_type == EventType::Materialization {
                        (&mut mats, "last_materialization", "last_data_version")
                    } else {
                        (&mut observations, "last_observation", "last_observation_data_version")
                    };
                    let doc = Value::String(text.clone());
                    if let Some(partition) =
                        event.partition_key.as_deref().filter(|_| event.event_type == EventType::Observation)
                    {
                        partition_observations.put_partition(key, partition, field, &doc, event.timestamp);
                    }
                    let mut row = json!({"id": key, "asset_key": key});
                    row[version_field] = json!(event.latest().data_version);
                    row[field] = doc;
                    row[format!("{field}_time")] = json!(event.timestamp);
                    latest.put(key.to_string(), row);
                }
                other => {
                    if let Some(status) = step_status(other) {
                        let partition = event.partition_key.clone().unwrap_or_default();
                        let row = steps
                            .rows
                            .entry((event.run_id.clone(), key.to_string(), partition.clone()))
                            .or_insert_with(|| {
                                json!({"id": [event.run_id, key, partition], "run_id": event.run_id,
                                   "step_key": key, "partition_key": event.partition_key, "counted": false,
                                   "retries": 0})
                            });
                        row["status"] = json!(status);
                        row["updated"] = json!(event.timestamp);
                        match other {
                            EventType::StepStart if row["started"].is_null() => row["started"] = json!(event.timestamp),
                            EventType::StepRetry => row["retries"] = json!(row["retries"].as_i64().unwrap_or(0) + 1),
                            _ if status != StepStatus::Running => row["ended"] = json!(event.timestamp),
                            _ => {}
                        }
                        if status == StepStatus::Success {
                            row["counted"] = json!(true);
                        }
                    }
                }
            }
        }
        let mut successes: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
        for row in steps.rows.values().filter(|row| row["counted"] == Value::Bool(true)) {
            if let Some(run) = row["run_id"].as_str() {
                successes.entry(run).or_default().push(&row["id"]);
            }
        }
        let successes = successes.into_iter().map(|(run, ids)| json!({"run": run, "ids": ids})).collect();
        StateUpdates {
            successes,
            materializations: mats.into_rows(),
            observations: observations.into_rows(),
            partition_observations: partition_observations.into_rows(),
            steps: steps.into_rows(),
            run_counts: run_counts.into_iter().map(|(run, events)| json!({"run": run, "events": events})).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: EventType, run: &str, key: Option<&str>, partition: Option<&str>, seq: i64) -> StoredEvent {
        StoredEvent {
            id: format!("e{seq}"),
            event_type,
            asset_key: key.map(str::to_owned),
            run_id: run.into(),
            partition_key: partition.map(str::to_owned),
            timestamp: seq,
            run_seq: seq,
            metadata: Vec::new(),
            data_version: Some(format!("v{seq}")),
            code_version: None,
            input_data_versions: Vec::new(),
            span: None,
        }
    }

    fn updates_of(events: &[StoredEvent]) -> StateUpdates {
        let texts: Vec<String> = events.iter().map(crate::storage::event_text).collect();
        StateUpdates::from_events(events, &texts)
    }

    fn stored(doc: &Value) -> StoredEvent {
        crate::storage::decode_events(vec![doc.clone()]).unwrap().remove(0)
    }

    #[test]
    fn later_materializations_of_an_asset_win() {
        let events = [
            event(EventType::Materialization, "r", Some("a"), None, 1),
            event(EventType::Materialization, "r", Some("a"), None, 2),
        ];
        let updates = updates_of(&events);
        assert_eq!(updates.materializations.len(), 1);
        assert_eq!(updates.materializations[0]["last_data_version"], "v2");
        assert_eq!(stored(&updates.materializations[0]["last_materialization"]).id, "e2");
    }

    #[test]
    fn partitions_keep_their_own_latest() {
        let events = [
            event(EventType::Materialization, "r", Some("a"), Some("p1"), 1),
            event(EventType::Materialization, "r", Some("a"), Some("p2"), 2),
            event(EventType::Observation, "r", Some("x"), Some("p1"), 3),
        ];
        let updates = updates_of(&events);
        // Materializations of partitions go to the interval index, observations to their rows.
        assert_eq!(updates.partition_observations.len(), 1);
        assert_eq!(stored(&updates.partition_observations[0]["last_observation"]).id, "e3");
        assert_eq!(updates.observations[0]["last_observation_data_version"], "v3");
    }

    #[test]
    fn a_compact_event_counts_once_per_partition_and_its_last_partition_is_the_latest() {
        let mut compact = event(EventType::Materialization, "r", Some("a"), None, 1);
        compact.data_version = Some(uuid::Uuid::new_v4().to_string());
        compact.span = Some(crate::records::PartitionSpan {
            definition: "d".into(),
            positions: "0-9,20".parse().unwrap(),
            derived_versions: true,
        });
        let updates = updates_of(&[compact.clone()]);
        assert_eq!(updates.run_counts, [json!({"run": "r", "events": 11})]);
        let last = compact.expanded_at(20);
        assert_eq!(last.id, "e1.20");
        assert_eq!(updates.materializations[0]["last_data_version"], json!(last.data_version));
        assert_ne!(last.data_version, compact.expanded_at(0).data_version);
        assert_eq!(compact.expanded_at(9).data_version, compact.expanded_at(9).data_version);
    }

    #[test]
    fn step_state_follows_the_last_step_event_and_runs_count_their_events() {
        let events = [
            event(EventType::StepStart, "r1", Some("a"), None, 4),
            event(EventType::Materialization, "r1", Some("a"), None, 5),
            event(EventType::StepSuccess, "r1", Some("a"), None, 6),
            event(EventType::StepSkipped, "r2", Some("b"), None, 2),
            event(EventType::RunStart, "r3", None, None, 1),
        ];
        let updates = updates_of(&events);
        let statuses: Vec<(&Value, &Value)> = updates.steps.iter().map(|s| (&s["run_id"], &s["status"])).collect();
        assert_eq!(statuses, [(&json!("r1"), &json!("Success")), (&json!("r2"), &json!("Skipped"))]);
        assert_eq!(
            updates.run_counts,
            [json!({"run": "r1", "events": 3}), json!({"run": "r2", "events": 1}), json!({"run": "r3", "events": 1})]
        );
    }
}
