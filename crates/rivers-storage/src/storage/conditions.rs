//! What the automation-condition evaluator reads and keeps: per pass, a handful of batched
//! reads (asset rows, partition-status records, unfinished runs, active backfills, the change
//! feed since the previous pass), and one transaction writing the evaluation states that
//! changed, the pass's checkpoint and its evaluation records.
//!
//! Every read is keyed (record ids, the run-status and backfill-status indexes, the change
//! feed from a cursor): a pass never scans history, whatever the number of runs or events.

use std::collections::{BTreeMap, BTreeSet};

use rivers_core::condition::ConditionState;
use rivers_core::partitions::RangeSet;
use rivers_core::{BackfillState, RunStatus};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Storage, decode};
use crate::changes::{self, FeedCursor, FeedPage, FeedScope};
use crate::error::{Error, Result};
use crate::records::BackfillRecord;

/// One asset's evaluation state, as the previous pass left it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AssetConditionState {
    /// The asset.
    pub asset_key: String,
    /// Stateful node values and what the daemon requested (see [`ConditionState`]).
    pub state: ConditionState,
    /// Whether the latest execution of the (unpartitioned) asset failed, as the change feed
    /// told: partitioned assets read their failed partitions from partition status instead.
    pub failed: bool,
    /// The asset's current data version when the pass ran (`data_version_changed`).
    pub data_version: Option<String>,
}

/// The stored form of [`AssetConditionState`]: the evaluation state as JSON text, because a
/// document number cannot hold every `u64` tree hash exactly.
#[derive(Serialize, Deserialize)]
struct StateRow {
    asset_key: String,
    state: String,
    #[serde(default)]
    failed: bool,
    #[serde(default)]
    data_version: Option<String>,
}

impl StateRow {
    fn new(state: &AssetConditionState) -> Result<Self> {
        Ok(StateRow {
            asset_key: state.asset_key.clone(),
            state: serde_json::to_string(&state.state)
                .map_err(|source| Error::Decode { what: "condition state", source })?,
            failed: state.failed,
            data_version: state.data_version.clone(),
        })
    }

    fn decode(self) -> Result<AssetConditionState> {
        Ok(AssetConditionState {
            state: serde_json::from_str(&self.state)
                .map_err(|source| Error::Decode { what: "condition state", source })?,
            asset_key: self.asset_key,
            failed: self.failed,
            data_version: self.data_version,
        })
    }
}

/// Where the previous pass of a code location's evaluator stopped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConditionCheckpoint {
    /// The change-feed commit the pass read up to; the next pass reads the changes after it.
    pub cursor: Option<FeedCursor>,
    /// The pass's evaluation time, in nanoseconds since the epoch.
    pub evaluated_at: Option<i64>,
}

/// One evaluation of one asset's condition, as kept for inspection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConditionEvaluationRecord {
    /// The asset wearing the condition.
    pub asset_key: String,
    /// Evaluation time, in nanoseconds since the epoch.
    pub timestamp: i64,
    /// How many partitions (1 for an unpartitioned asset) the condition requested.
    pub requested: u64,
    /// The runs launched for them.
    pub run_ids: Vec<String>,
    /// The evaluated tree, as `explain_automation` prints it.
    pub explanation: String,
}

/// The latest materialization and observation of an asset, from its `asset` row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AssetLatest {
    /// The asset.
    pub asset_key: String,
    /// When it was last materialized (ns).
    pub materialized_at: Option<i64>,
    /// When it was last observed (ns).
    pub observed_at: Option<i64>,
    /// Its current data version: the latest materialization's, else the latest observation's.
    pub data_version: Option<String>,
    /// The run of the latest materialization (else observation).
    pub last_run_id: Option<String>,
    /// The code version the latest materialization recorded.
    pub code_version: Option<String>,
}

/// The recorded partition status of an asset on one definition's grid, with the in-progress
/// positions still per run (the caller knows which runs are unfinished).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GridStatus {
    /// Materialized positions.
    pub materialized: RangeSet,
    /// Positions whose latest outcome is a failure.
    pub failed: RangeSet,
    /// Positions a step of each run covers (ended runs included).
    pub in_progress: BTreeMap<String, RangeSet>,
}

/// A run that has not ended, as the evaluator needs it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct UnfinishedRun {
    /// Run id.
    pub run_id: String,
    /// The nodes it runs.
    #[serde(default)]
    pub node_names: Vec<String>,
    /// Its partition key (serialised `PartitionKey`), if any.
    #[serde(default)]
    pub partition_key: Option<Value>,
}

/// A run's targets and tags.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RunTargets {
    /// Run id.
    pub run_id: String,
    /// The nodes it runs.
    #[serde(default)]
    pub node_names: Vec<String>,
    /// Its tags.
    #[serde(default)]
    pub tags: Vec<(String, String)>,
}

/// The run and code version of a stored event: all the evaluator reads of an asset's latest
/// materialization, decoded without the rest of the event (metadata, partitions), which a
/// pass over thousands of assets would decode for nothing. A compact event's newest partition
/// shares both with the event.
#[derive(Deserialize)]
struct EventOrigin {
    run_id: String,
    #[serde(default)]
    code_version: Option<String>,
}

impl EventOrigin {
    /// Events are stored as JSON text (or, in older records, as objects).
    fn decode(stored: Value) -> Result<Self> {
        match stored {
            Value::String(text) => serde_json::from_str(&text),
            other => serde_json::from_value(other),
        }
        .map_err(|source| Error::Decode { what: "event", source })
    }
}

/// The stored shape of a `partition_status` record, as far as the evaluator reads it.
#[derive(Deserialize)]
struct StatusRow {
    asset_key: String,
    #[serde(default)]
    grids: BTreeMap<String, GridRow>,
}

#[derive(Deserialize)]
struct GridRow {
    #[serde(default)]
    materialized: RangeSet,
    #[serde(default)]
    failed: RangeSet,
    #[serde(default)]
    in_progress: BTreeMap<String, RangeSet>,
}

impl Storage {
    /// The evaluation states of `asset_keys` kept by `code_location`'s evaluator, and where
    /// its previous pass stopped (one query).
    ///
    /// # Errors
    /// `Backend` for a failed read; `Decode` for a state this build cannot read.
    pub async fn condition_states(
        &self,
        code_location: &str,
        asset_keys: &[String],
    ) -> Result<(ConditionCheckpoint, BTreeMap<String, AssetConditionState>)> {
        let mut response = self
            .inner
            .client
            .query(
                "SELECT cursor, evaluated_at FROM type::record('condition_checkpoint', [$location]); \
                 SELECT * OMIT id FROM array::map($keys, |$key| type::record('condition_state', [$location, $key]));",
                json!({"location": code_location, "keys": asset_keys}),
            )
            .await?;
        let checkpoint: Vec<Value> = response.take(0)?;
        let rows: Vec<Value> = response.take(1)?;
        let checkpoint = checkpoint
            .into_iter()
            .next()
            .map(|row| ConditionCheckpoint {
                cursor: row["cursor"].as_str().and_then(|text| text.parse().ok()),
                evaluated_at: row["evaluated_at"].as_i64(),
            })
            .unwrap_or_default();
        let rows: Vec<StateRow> =
            decode("condition state", rows.into_iter().filter(|row| row["asset_key"].is_string()).collect())?;
        let states = rows
            .into_iter()
            .map(|row| row.decode().map(|state| (state.asset_key.clone(), state)))
            .collect::<Result<_>>()?;
        Ok((checkpoint, states))
    }

    /// Writes a pass in one transaction: the given assets' states (the caller passes those
    /// that changed), the checkpoint, and the evaluation records, keeping the records of the
    /// newest `retain` passes per asset.
    ///
    /// A record's id is its asset and pass time, and the checkpoint keeps the times of the
    /// newest `retain` passes: the records of a time that falls out are deleted by id. Pruning
    /// thus costs one deletion per evaluated asset, where a query for each asset's newest
    /// records would cost a read of them all every pass.
    ///
    /// # Errors
    /// `Backend` for a failed write: then nothing of the pass is stored.
    pub async fn write_condition_pass(
        &self,
        code_location: &str,
        checkpoint: &ConditionCheckpoint,
        states: &[AssetConditionState],
        evaluations: &[ConditionEvaluationRecord],
        retain: usize,
    ) -> Result<()> {
        let rows = states.iter().map(StateRow::new).collect::<Result<Vec<_>>>()?;
        let states = serde_json::to_value(rows).map_err(|source| Error::Decode { what: "condition state", source })?;
        let stored = self
            .rows(
                "SELECT VALUE passes FROM type::record('condition_checkpoint', [$location])",
                json!({"location": code_location}),
            )
            .await?;
        let mut passes: Vec<i64> =
            stored.into_iter().next().and_then(|passes| serde_json::from_value(passes).ok()).unwrap_or_default();
        passes.extend(evaluations.iter().map(|evaluation| evaluation.timestamp));
        passes.sort_unstable();
        passes.dedup();
        let dropped: Vec<i64> = passes.drain(..passes.len().saturating_sub(retain.max(1))).collect();
        let assets: BTreeSet<&str> = evaluations.iter().map(|evaluation| evaluation.asset_key.as_str()).collect();
        let stale: Vec<(&str, i64)> =
            dropped.iter().flat_map(|&time| assets.iter().map(move |&asset| (asset, time))).collect();
        let records = evaluations
            .iter()
            .map(|evaluation| {
                let mut row = serde_json::to_value(evaluation)?;
                row["id"] = json!([evaluation.asset_key, evaluation.timestamp]);
                Ok(row)
            })
            .collect::<serde_json::Result<Vec<Value>>>()
            .map_err(|source| Error::Decode { what: "condition evaluation", source })?;
        self.execute(
            "BEGIN TRANSACTION; \
             FOR $state IN $states { \
                 UPSERT type::record('condition_state', [$location, $state.asset_key]) CONTENT $state RETURN NONE; \
             }; \
             UPSERT type::record('condition_checkpoint', [$location]) \
                 CONTENT { cursor: $cursor, evaluated_at: $evaluated_at, passes: $passes } RETURN NONE; \
             INSERT INTO condition_evaluation $records ON DUPLICATE KEY UPDATE \
                 requested = $input.requested, run_ids = $input.run_ids, explanation = $input.explanation \
                 RETURN NONE; \
             DELETE array::map($stale, |$id| type::record('condition_evaluation', $id)) RETURN NONE; \
             COMMIT TRANSACTION;",
            json!({
                "location": code_location,
                "states": states,
                "cursor": checkpoint.cursor.map(|cursor| cursor.to_string()),
                "evaluated_at": checkpoint.evaluated_at,
                "passes": passes,
                "records": records,
                "stale": stale,
            }),
        )
        .await
    }

    /// The newest `limit` evaluation records of an asset's condition, newest first.
    ///
    /// # Errors
    /// `Backend` for a failed read; `Decode` for a record this build cannot read.
    pub async fn condition_evaluations(&self, asset_key: &str, limit: usize) -> Result<Vec<ConditionEvaluationRecord>> {
        let rows = self
            .rows(
                "SELECT * OMIT id FROM condition_evaluation WHERE asset_key = $key \
                 ORDER BY timestamp DESC LIMIT $limit",
                json!({"key": asset_key, "limit": limit}),
            )
            .await?;
        decode("condition evaluation", rows)
    }

    /// The latest materialization and observation of each of `asset_keys` that has one.
    ///
    /// # Errors
    /// `Backend` for a failed read; `Decode` for an event this build cannot read.
    pub async fn latest_of_assets(&self, asset_keys: &[String]) -> Result<Vec<AssetLatest>> {
        if asset_keys.is_empty() {
            return Ok(Vec::new());
        }
        self.flush().await?;
        let rows = self
            .rows(
                "SELECT asset_key, last_materialization_time, last_observation_time, last_data_version, \
                     last_observation_data_version, last_materialization, last_observation \
                 FROM array::map($keys, |$key| type::record('asset', $key))",
                json!({"keys": asset_keys}),
            )
            .await?;
        let mut latest = Vec::new();
        for row in rows {
            let Some(asset_key) = row["asset_key"].as_str() else { continue };
            let event = ["last_materialization", "last_observation"]
                .into_iter()
                .find_map(|field| Some(row[field].clone()).filter(|value| !value.is_null()));
            let event = event.map(EventOrigin::decode).transpose()?;
            latest.push(AssetLatest {
                asset_key: asset_key.to_owned(),
                materialized_at: row["last_materialization_time"].as_i64(),
                observed_at: row["last_observation_time"].as_i64(),
                data_version: row["last_data_version"]
                    .as_str()
                    .or_else(|| row["last_observation_data_version"].as_str())
                    .map(str::to_owned),
                code_version: event.as_ref().and_then(|event| event.code_version.clone()),
                last_run_id: event.map(|event| event.run_id),
            });
        }
        Ok(latest)
    }

    /// The recorded status of each `(asset, definition fingerprint)` grid (one query for all).
    ///
    /// # Errors
    /// `Backend` for a failed read; `Decode` for a record this build cannot read.
    pub async fn grid_statuses(&self, grids: &[(String, String)]) -> Result<BTreeMap<String, GridStatus>> {
        if grids.is_empty() {
            return Ok(BTreeMap::new());
        }
        self.flush().await?;
        let keys: Vec<&str> = grids.iter().map(|(asset, _)| asset.as_str()).collect();
        let rows = self
            .rows(
                "SELECT asset_key, grids FROM array::map($keys, |$k| type::record('partition_status', $k))",
                json!({"keys": keys}),
            )
            .await?;
        let rows: Vec<StatusRow> =
            decode("partition status", rows.into_iter().filter(|row| row["asset_key"].is_string()).collect())?;
        let wanted: BTreeMap<&str, &str> = grids.iter().map(|(a, f)| (a.as_str(), f.as_str())).collect();
        Ok(rows
            .into_iter()
            .filter_map(|mut row| {
                let grid = row.grids.remove(*wanted.get(row.asset_key.as_str())?)?;
                let status =
                    GridStatus { materialized: grid.materialized, failed: grid.failed, in_progress: grid.in_progress };
                Some((row.asset_key, status))
            })
            .collect())
    }

    /// Every run of the store that has not ended (`Queued`, `NotStarted`, `Running`), from the
    /// run-status index.
    ///
    /// # Errors
    /// `Backend` for a failed read.
    pub async fn unfinished_runs(&self) -> Result<Vec<UnfinishedRun>> {
        // One indexed read per status: an `IN` filter would not use the status index.
        let statuses = [RunStatus::Queued, RunStatus::NotStarted, RunStatus::Running];
        let sql = "SELECT run_id, node_names, partition_key FROM run WHERE status = $s0; \
                   SELECT run_id, node_names, partition_key FROM run WHERE status = $s1; \
                   SELECT run_id, node_names, partition_key FROM run WHERE status = $s2;";
        let vars = json!({"s0": statuses[0].as_str(), "s1": statuses[1].as_str(), "s2": statuses[2].as_str()});
        let mut response = self.inner.client.query(sql, vars).await?;
        let mut runs = Vec::new();
        for i in 0..statuses.len() {
            runs.extend(decode::<UnfinishedRun>("run", response.take(i)?)?);
        }
        Ok(runs)
    }

    /// The targets and tags of `run_ids` that exist (one query).
    ///
    /// # Errors
    /// `Backend` for a failed read.
    pub async fn run_targets(&self, run_ids: &[String]) -> Result<Vec<RunTargets>> {
        if run_ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self
            .rows(
                "SELECT run_id, node_names, tags FROM array::map($runs, |$r| type::record('run', $r))",
                json!({"runs": run_ids}),
            )
            .await?;
        decode("run", rows.into_iter().filter(|row| row["run_id"].is_string()).collect())
    }

    /// Every backfill of the store that has not ended (requested or in progress), from the
    /// backfill-status index.
    ///
    /// # Errors
    /// `Backend` for a failed read; `Decode` for a record this build cannot read.
    pub async fn active_backfills(&self) -> Result<Vec<BackfillRecord>> {
        let mut response = self
            .inner
            .client
            .query(
                "SELECT * OMIT id FROM backfill WHERE status = $requested; \
                 SELECT * OMIT id FROM backfill WHERE status = $running;",
                json!({"requested": BackfillState::Requested.as_str(), "running": BackfillState::InProgress.as_str()}),
            )
            .await?;
        let mut backfills: Vec<BackfillRecord> = decode("backfill", response.take(0)?)?;
        backfills.extend(decode::<BackfillRecord>("backfill", response.take(1)?)?);
        Ok(backfills)
    }

    /// The cursor of the newest commit in the change feed (`None` when it holds none): an
    /// evaluator starting afresh reads the changes after it.
    ///
    /// # Errors
    /// `Backend` for a failed read.
    pub async fn feed_head(&self) -> Result<Option<FeedCursor>> {
        changes::head(&self.inner.client).await
    }

    /// Up to `limit` commits after `after` (from the start of the feed for `None`).
    ///
    /// # Errors
    /// A failed read, or a change this build cannot decode.
    pub async fn changes_since(&self, after: Option<FeedCursor>, limit: usize) -> Result<FeedPage> {
        changes::read(&self.inner.client, after, limit, FeedScope::Everything).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(assets: &[&str], timestamp: i64, explanation: &str) -> Vec<ConditionEvaluationRecord> {
        assets
            .iter()
            .map(|asset| ConditionEvaluationRecord {
                asset_key: (*asset).into(),
                timestamp,
                requested: 0,
                run_ids: vec![],
                explanation: explanation.into(),
            })
            .collect()
    }

    async fn kept(storage: &Storage, asset: &str) -> Vec<(i64, String)> {
        let records = storage.condition_evaluations(asset, 100).await.unwrap();
        records.into_iter().map(|record| (record.timestamp, record.explanation)).collect()
    }

    #[tokio::test]
    async fn a_second_pass_at_the_same_time_replaces_that_times_records() {
        let storage = Storage::memory().await.unwrap();
        let checkpoint = ConditionCheckpoint::default();
        storage.write_condition_pass("here", &checkpoint, &[], &records(&["a"], 7, "first"), 5).await.unwrap();
        storage.write_condition_pass("here", &checkpoint, &[], &records(&["a"], 7, "again"), 5).await.unwrap();
        assert_eq!(kept(&storage, "a").await, [(7, "again".to_owned())]);
    }

    #[tokio::test]
    async fn fewer_records_kept_prunes_every_pass_that_falls_out_at_once() {
        let storage = Storage::memory().await.unwrap();
        let checkpoint = ConditionCheckpoint::default();
        for timestamp in 1..=5 {
            let pass = records(&["a", "b"], timestamp, "pass");
            storage.write_condition_pass("here", &checkpoint, &[], &pass, 10).await.unwrap();
        }
        // The next pass keeps two: three earlier passes fall out together.
        storage.write_condition_pass("here", &checkpoint, &[], &records(&["a", "b"], 6, "pass"), 2).await.unwrap();
        for asset in ["a", "b"] {
            let times: Vec<i64> = kept(&storage, asset).await.into_iter().map(|(time, _)| time).collect();
            assert_eq!(times, [6, 5], "{asset}");
        }
    }
}
