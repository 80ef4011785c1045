//! Partition status: per asset, the grid positions that are materialized, failed and in
//! progress, each kept as sorted ranges (`RangeSet`), with the definition the positions refer
//! to. A daily asset with ten years materialized is one range; reading status is O(ranges),
//! never a scan of partitions or events.
//!
//! Changes are enqueued with the run's events and applied by the writer in the same batch:
//! each asset's record is read, changed in order, and written back under a version check, so
//! a concurrent writer (another process) makes the batch retry on fresh status.

use std::collections::BTreeMap;
use std::str::FromStr;

use rivers_core::partitions::{DynamicKeys, PartitionEnv, Partitions, RangeSet};
use serde_json::{Value, json};

use super::Storage;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::writer::Command;

/// What happened to a set of partitions of an asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionTransition {
    /// A step covering them started.
    Started,
    /// They were materialized (no longer failed or in progress).
    Materialized,
    /// Their step failed, or the body marked them failed.
    Failed,
    /// Their step stopped without an outcome of its own (the run was cancelled).
    Abandoned,
}

/// One status change, in grid positions of the asset's definition.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionStatusChange {
    /// Asset key.
    pub asset_key: String,
    /// What happened.
    pub transition: PartitionTransition,
    /// The partitions it happened to.
    pub positions: RangeSet,
}

/// Which positions a status query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionStatusKind {
    /// Partitions with at least one materialization.
    Materialized,
    /// Partitions whose latest outcome is a failure.
    Failed,
    /// Partitions a running step covers.
    InProgress,
}

impl FromStr for PartitionStatusKind {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "materialized" => Ok(Self::Materialized),
            "failed" => Ok(Self::Failed),
            "in_progress" => Ok(Self::InProgress),
            other => Err(Error::InvalidStatus(format!(
                "unknown partition status {other:?}; use \"materialized\", \"failed\" or \"in_progress\""
            ))),
        }
    }
}

/// The stored status of one asset's partitions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartitionStatus {
    /// The definition positions refer to; `None` before the asset was registered.
    pub definition: Option<Partitions>,
    /// Materialized positions.
    pub materialized: RangeSet,
    /// Failed positions.
    pub failed: RangeSet,
    /// In-progress positions.
    pub in_progress: RangeSet,
    version: i64,
}

impl PartitionStatus {
    /// The positions of one status.
    pub fn ranges(&self, kind: PartitionStatusKind) -> &RangeSet {
        match kind {
            PartitionStatusKind::Materialized => &self.materialized,
            PartitionStatusKind::Failed => &self.failed,
            PartitionStatusKind::InProgress => &self.in_progress,
        }
    }

    fn apply(&mut self, change: &PartitionStatusChange) {
        let positions = &change.positions;
        match change.transition {
            PartitionTransition::Started => self.in_progress = self.in_progress.union(positions),
            PartitionTransition::Materialized => {
                self.materialized = self.materialized.union(positions);
                self.failed = self.failed.difference(positions);
                self.in_progress = self.in_progress.difference(positions);
            }
            PartitionTransition::Failed => {
                self.failed = self.failed.union(positions);
                self.in_progress = self.in_progress.difference(positions);
            }
            PartitionTransition::Abandoned => self.in_progress = self.in_progress.difference(positions),
        }
    }

    fn decode(row: &Value) -> Result<Self> {
        let ranges = |field: &str| -> Result<RangeSet> {
            row[field]
                .as_str()
                .unwrap_or_default()
                .parse()
                .map_err(|e: String| Error::Backend(format!("stored partition status is corrupt: {e}")))
        };
        let definition = match &row["definition"] {
            Value::Null => None,
            value => Some(
                serde_json::from_value(value.clone())
                    .map_err(|source| Error::Decode { what: "partitions definition", source })?,
            ),
        };
        Ok(Self {
            definition,
            materialized: ranges("materialized")?,
            failed: ranges("failed")?,
            in_progress: ranges("in_progress")?,
            version: row["version"].as_i64().unwrap_or(0),
        })
    }

    fn row(&self, asset_key: &str) -> Value {
        json!({
            "asset_key": asset_key,
            "definition": self.definition,
            "materialized": self.materialized.to_string(),
            "failed": self.failed.to_string(),
            "in_progress": self.in_progress.to_string(),
            "version": self.version + 1,
        })
    }
}

async fn read_status(client: &Client, asset_keys: &[&str]) -> Result<BTreeMap<String, PartitionStatus>> {
    let rows: Vec<Value> = client
        .query(
            "SELECT * FROM array::map($keys, |$k| type::record('partition_status', $k))",
            json!({"keys": asset_keys}),
        )
        .await?
        .take(0)?;
    let mut status = BTreeMap::new();
    for row in rows {
        if let Some(key) = row["asset_key"].as_str() {
            status.insert(key.to_owned(), PartitionStatus::decode(&row)?);
        }
    }
    Ok(status)
}

/// Applies a batch's status changes: read, change in order, write under a version check.
pub(crate) async fn apply_changes(client: &Client, changes: &[PartitionStatusChange]) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let mut keys: Vec<&str> = changes.iter().map(|c| c.asset_key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    let mut status = read_status(client, &keys).await?;
    for change in changes {
        status.entry(change.asset_key.clone()).or_default().apply(change);
    }
    let rows: Vec<Value> =
        status.iter().map(|(key, s)| json!({"key": key, "expected": s.version, "row": s.row(key)})).collect();
    client
        .query(
            "BEGIN TRANSACTION; \
             FOR $update IN $rows { \
                 LET $current = (SELECT VALUE version FROM type::record('partition_status', $update.key))[0] ?? 0; \
                 IF $current != $update.expected { THROW 'partition status changed concurrently'; }; \
                 UPSERT type::record('partition_status', $update.key) CONTENT $update.row RETURN NONE; \
             }; \
             COMMIT TRANSACTION;",
            json!({"rows": rows}),
        )
        .await?
        .check()?;
    Ok(())
}

impl Storage {
    /// Enqueues a status change (written with the next batch of run events).
    pub fn enqueue_partition_status(&self, change: PartitionStatusChange) {
        // A closed channel means the writer is gone; the next flush reports it.
        let _ = self.inner.writer.sender.send(Command::PartitionStatus(change));
    }

    /// The partition status of an asset (empty when nothing was recorded).
    pub async fn get_partition_status(&self, asset_key: &str) -> Result<PartitionStatus> {
        Ok(read_status(&self.inner.client, &[asset_key]).await?.remove(asset_key).unwrap_or_default())
    }

    /// Records the definitions assets' positions refer to. Where a definition changed since
    /// the status was written, every stored position is moved to the new definition's grid
    /// (keys the new definition lacks leave the status; their events stay). One read for all
    /// assets; only changed records are written.
    pub async fn register_partitions(&self, definitions: Vec<(String, Partitions)>) -> Result<()> {
        let keys: Vec<&str> = definitions.iter().map(|(k, _)| k.as_str()).collect();
        let current = read_status(&self.inner.client, &keys).await?;
        let mut rows = Vec::new();
        for (asset_key, definition) in &definitions {
            let stored = current.get(asset_key).cloned().unwrap_or_default();
            if stored.definition.as_ref() == Some(definition) {
                continue;
            }
            let mut moved =
                PartitionStatus { definition: Some(definition.clone()), version: stored.version, ..Default::default() };
            if let Some(old) = &stored.definition {
                let mut env = self.partition_env(old).await?;
                for (name, keys) in self.dynamic_sets(definition).await? {
                    env = env.with_dynamic(name, keys);
                }
                let relocate = |ranges: &RangeSet| {
                    RangeSet::from_positions(ranges.positions().filter_map(|position| {
                        let key = old.key_of(&old.coords_at(position, &env)?, &env)?;
                        let coords = definition.individuals(&key, &env).ok()?.into_iter().next()?;
                        definition.position(&coords, &env)
                    }))
                };
                moved.materialized = relocate(&stored.materialized);
                moved.failed = relocate(&stored.failed);
                moved.in_progress = relocate(&stored.in_progress);
            }
            rows.push(json!({"key": asset_key, "row": moved.row(asset_key)}));
        }
        if rows.is_empty() {
            return Ok(());
        }
        self.execute(
            "FOR $update IN $rows { UPSERT type::record('partition_status', $update.key) CONTENT $update.row RETURN NONE; };",
            json!({"rows": rows}),
        )
        .await
    }

    /// The environment keys of `definition` are read in: the host's wall-clock time, and the
    /// current keys of its dynamic sets.
    pub async fn partition_env(&self, definition: &Partitions) -> Result<PartitionEnv> {
        let mut env = PartitionEnv::at(chrono::Local::now().naive_local());
        for (name, keys) in self.dynamic_sets(definition).await? {
            env = env.with_dynamic(name, keys);
        }
        Ok(env)
    }

    async fn dynamic_sets(&self, definition: &Partitions) -> Result<Vec<(String, DynamicKeys)>> {
        let mut sets = Vec::new();
        for (_, dim) in definition.dimensions() {
            if let Partitions::Dynamic(dynamic) = dim {
                let numbered = self.get_dynamic_partition_numbers(&dynamic.name).await?;
                sets.push((dynamic.name.clone(), DynamicKeys::new(numbered)));
            }
        }
        Ok(sets)
    }
}
