//! Partition state: per asset, which grid positions are materialized, failed and in progress
//! (sorted ranges, `RangeSet`), and which event materialized each position last (an interval
//! map, `partition_index.rs`). A daily asset with ten years materialized by one run is one
//! range and one interval; reading either is O(ranges + log n), never a scan of partitions or
//! events.
//!
//! Positions are kept per definition (a grid, named by the definition's fingerprint): a changed
//! definition gets a grid of its own, filled from the previous one, and history is never
//! deleted; going back to a definition shows what its grid held, with what happened meanwhile.
//! In-progress positions belong to the run that started them, so overlapping runs do not clear
//! each other's, and a run that ended (or was killed and failed) stops counting.
//!
//! The state is written in the batch transaction of the events that change it (writer.rs): the
//! writer reads the touched records first, computes their new state, and the transaction
//! checks each record's version, so a concurrent writer (another process) makes the batch read
//! again and retry.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;

use rivers_core::partitions::{DynamicKeys, PartitionEnv, PartitionKey, Partitions, RangeSet};
use rivers_core::{EventType, RunStatus};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Storage;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::partition_index::{Interval, IntervalRegion, padded};
use crate::records::StoredEvent;
use crate::writer::Command;

/// What the version check of a partition-state write throws when another writer changed the
/// record since it was read; the writer then reads it again.
pub(crate) const STATE_CHANGED: &str = "partition state changed concurrently";

/// Index entries further apart than this are read by separate probes; closer ones by one.
const PROBE_GAP: u128 = 64;

/// What happened to a set of partitions of an asset in a run (materializations are recorded
/// from their events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionTransition {
    /// A step covering them started.
    Started,
    /// Their step failed, or the body marked them failed.
    Failed,
    /// Their step stopped without an outcome of its own (the run was cancelled).
    Abandoned,
}

/// One status change, in grid positions of a definition.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionStatusChange {
    /// Asset key.
    pub asset_key: String,
    /// The run it happened in.
    pub run_id: String,
    /// Fingerprint of the definition the positions are on ([`definition_fingerprint`]).
    pub definition: String,
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
    /// Partitions a step of a running run covers.
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

/// The partition status of one asset, on its current definition's grid.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartitionStatus {
    /// The definition positions refer to; `None` before the asset was registered or written.
    pub definition: Option<Arc<Partitions>>,
    /// Materialized positions.
    pub materialized: RangeSet,
    /// Failed positions.
    pub failed: RangeSet,
    /// Positions a step of a still-running run covers.
    pub in_progress: RangeSet,
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
}

/// The name of a definition's grid: the first 128 bits of the SHA-256 of its declared data, in
/// hex.
pub fn definition_fingerprint(definition: &Partitions) -> String {
    let text = serde_json::to_string(definition).expect("partitions definitions serialise");
    super::sha256_hex(&text, 16)
}

/// The status kept on one grid.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Grid {
    #[serde(default)]
    materialized: RangeSet,
    #[serde(default)]
    failed: RangeSet,
    /// Per run.
    #[serde(default)]
    in_progress: BTreeMap<String, RangeSet>,
}

impl Grid {
    fn materialized(&mut self, run_id: &str, positions: &RangeSet) {
        self.materialized = self.materialized.union(positions);
        self.failed = self.failed.difference(positions);
        self.leave(run_id, positions);
    }

    fn apply(&mut self, change: &PartitionStatusChange) {
        let positions = &change.positions;
        match change.transition {
            PartitionTransition::Started => {
                let running = self.in_progress.entry(change.run_id.clone()).or_default();
                *running = running.union(positions);
            }
            PartitionTransition::Failed => {
                self.failed = self.failed.union(positions);
                self.leave(&change.run_id, positions);
            }
            PartitionTransition::Abandoned => self.leave(&change.run_id, positions),
        }
    }

    /// `run_id` no longer covers `positions`.
    fn leave(&mut self, run_id: &str, positions: &RangeSet) {
        if let Some(running) = self.in_progress.get_mut(run_id) {
            *running = running.difference(positions);
            if running.is_empty() {
                self.in_progress.remove(run_id);
            }
        }
    }
}

/// One asset's `partition_status` record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct StatusRecord {
    #[serde(default)]
    asset_key: String,
    /// The fingerprint of the current definition.
    #[serde(default)]
    current: Option<String>,
    /// The current definition, as stored (read through the fingerprint cache: decoding a
    /// definition compiles it again).
    #[serde(default)]
    definition: Option<Value>,
    /// Grids by definition fingerprint.
    #[serde(default)]
    grids: BTreeMap<String, Grid>,
    #[serde(default)]
    version: i64,
}

impl StatusRecord {
    fn new(asset_key: &str) -> Self {
        StatusRecord { asset_key: asset_key.to_string(), ..Self::default() }
    }

    fn decode(row: Value) -> Result<Self> {
        serde_json::from_value(row).map_err(|source| Error::Decode { what: "partition status", source })
    }

    /// The stored form, one version on.
    fn row(&self) -> Value {
        let mut next = self.clone();
        next.version += 1;
        serde_json::to_value(next).expect("partition status serialises")
    }
}

async fn read_records(client: &Client, asset_keys: &[&str]) -> Result<BTreeMap<String, StatusRecord>> {
    // Status reads of one asset (every reader) skip the closure: it costs about as much as the
    // read itself (0.14 ms measured on embedded storage).
    let rows: Vec<Value> = match asset_keys {
        [one] => client.query("SELECT * OMIT id FROM type::record('partition_status', $key)", json!({"key": one})),
        many => client.query(
            "SELECT * OMIT id FROM array::map($keys, |$k| type::record('partition_status', $k))",
            json!({"keys": many}),
        ),
    }
    .await?
    .take(0)?;
    let mut records = BTreeMap::new();
    for row in rows.into_iter().filter(|row| row["asset_key"].is_string()) {
        let record = StatusRecord::decode(row)?;
        records.insert(record.asset_key.clone(), record);
    }
    Ok(records)
}

/// The partition-state writes of one batch, bound into its transaction (write_batch.surql).
#[derive(Debug, Default, Serialize)]
pub(crate) struct PartitionWrites {
    /// `{key, expected, row}`: status records and the version they were read at.
    #[serde(rename = "partition_status")]
    status: Vec<Value>,
    /// Index entry ids to delete.
    #[serde(rename = "partition_deleted")]
    deleted: Vec<Value>,
    /// Index entries to write.
    #[serde(rename = "partition_written")]
    written: Vec<Value>,
}

/// A materialization of partitions: positions on a grid, with the event.
fn spanned(event: &StoredEvent) -> Option<(&str, &crate::records::PartitionSpan)> {
    if event.event_type != EventType::Materialization {
        return None;
    }
    Some((event.asset_key.as_deref()?, event.span.as_ref()?))
}

/// Reads what a batch changes and computes its partition-state writes: `events` in order, and
/// `changes`, each after the number of events enqueued before it.
pub(crate) async fn prepare_writes(
    client: &Client,
    events: &[StoredEvent],
    texts: &[String],
    changes: &[(usize, PartitionStatusChange)],
) -> Result<PartitionWrites> {
    let mut assets: BTreeSet<&str> = changes.iter().map(|(_, c)| c.asset_key.as_str()).collect();
    let mut written: BTreeMap<(&str, &str), RangeSet> = BTreeMap::new();
    for (asset, span) in events.iter().filter_map(spanned) {
        assets.insert(asset);
        let positions = written.entry((asset, span.definition.as_str())).or_default();
        *positions = positions.union(&span.positions);
    }
    if assets.is_empty() {
        return Ok(PartitionWrites::default());
    }
    let keys: Vec<&str> = assets.into_iter().collect();
    let mut records = read_records(client, &keys).await?;
    let mut regions = read_regions(client, &written).await?;
    let versions: HashMap<String, i64> =
        keys.iter().map(|k| ((*k).to_string(), records.get(*k).map_or(0, |r| r.version))).collect();

    let mut pending = changes.iter().peekable();
    for (index, (event, text)) in events.iter().zip(texts).enumerate() {
        while let Some((_, change)) = pending.next_if(|(at, _)| *at <= index) {
            grid(&mut records, &change.asset_key, &change.definition).apply(change);
        }
        if let Some((asset, span)) = spanned(event) {
            grid(&mut records, asset, &span.definition).materialized(&event.run_id, &span.positions);
            if let Some(region) = regions.get_mut(&(asset.to_string(), span.definition.clone())) {
                region.overlay(&span.positions, event.timestamp, &event.id, text);
            }
        }
    }
    for (_, change) in pending {
        grid(&mut records, &change.asset_key, &change.definition).apply(change);
    }
    // Runs of other batches that ended without clearing their in-progress positions (a killed
    // process) are dropped here, so the records do not keep them forever.
    let batch_runs: HashSet<&str> =
        changes.iter().map(|(_, c)| c.run_id.as_str()).chain(events.iter().map(|e| e.run_id.as_str())).collect();
    let others: BTreeSet<String> = records
        .values()
        .flat_map(|record| record.grids.values().flat_map(|grid| grid.in_progress.keys()))
        .filter(|run| !batch_runs.contains(run.as_str()))
        .cloned()
        .collect();
    if !others.is_empty() {
        let live = live_runs(client, &others).await?;
        for grid in records.values_mut().flat_map(|record| record.grids.values_mut()) {
            grid.in_progress.retain(|run, _| batch_runs.contains(run.as_str()) || live.contains(run));
        }
    }

    let mut writes = PartitionWrites::default();
    for (key, record) in &records {
        writes
            .status
            .push(json!({"key": key, "expected": versions.get(key).copied().unwrap_or(0), "row": record.row()}));
    }
    for ((asset, definition), region) in &regions {
        let (deleted, changed) = region.changes();
        writes.deleted.extend(deleted.into_iter().map(|end| json!([asset, definition, padded(end)])));
        writes.written.extend(changed.into_iter().map(|entry| entry.row(asset, definition)));
    }
    Ok(writes)
}

/// Which of `runs` are stored and have not ended.
async fn live_runs(client: &Client, runs: impl IntoIterator<Item = &String>) -> Result<BTreeSet<String>> {
    let runs: Vec<&String> = runs.into_iter().collect();
    if runs.is_empty() {
        return Ok(BTreeSet::new());
    }
    let rows: Vec<Value> = client
        .query(
            "SELECT record::id(id) AS run, status FROM array::map($runs, |$r| type::record('run', $r))",
            json!({"runs": runs}),
        )
        .await?
        .take(0)?;
    Ok(rows
        .into_iter()
        .filter(|row| {
            row["status"].as_str().and_then(|s| s.parse::<RunStatus>().ok()).is_some_and(|s| !s.is_terminal())
        })
        .filter_map(|row| row["run"].as_str().map(str::to_owned))
        .collect())
}

fn grid<'a>(records: &'a mut BTreeMap<String, StatusRecord>, asset: &str, definition: &str) -> &'a mut Grid {
    let record = records.entry(asset.to_string()).or_insert_with(|| StatusRecord::new(asset));
    record.grids.entry(definition.to_string()).or_default()
}

/// The probes reading every index entry that touches `positions`: one per cluster of ranges,
/// each the entries ending inside it plus the first one ending after it.
fn probes(positions: &RangeSet) -> Vec<(u128, u128)> {
    let mut clusters: Vec<(u128, u128)> = Vec::new();
    for &(start, end) in positions.ranges() {
        match clusters.last_mut() {
            Some(last) if start - last.1 <= PROBE_GAP => last.1 = end,
            _ => clusters.push((start, end)),
        }
    }
    clusters
}

/// Reads the index entries each asset's written positions touch.
async fn read_regions(
    client: &Client,
    written: &BTreeMap<(&str, &str), RangeSet>,
) -> Result<BTreeMap<(String, String), IntervalRegion>> {
    let mut sql = String::new();
    let mut vars = serde_json::Map::new();
    let mut owners = Vec::new();
    for ((asset, definition), positions) in written {
        for (start, end) in probes(positions) {
            let i = owners.len();
            sql.push_str(&format!(
                "SELECT * FROM partition_latest:[$a{i}, $d{i}, $lo{i}]..=[$a{i}, $d{i}, $hi{i}]; \
                 SELECT * FROM partition_latest:[$a{i}, $d{i}, $hi{i}]>..=[$a{i}, $d{i}, $top] LIMIT 1; "
            ));
            vars.insert(format!("a{i}"), json!(asset));
            vars.insert(format!("d{i}"), json!(definition));
            vars.insert(format!("lo{i}"), json!(padded(start)));
            vars.insert(format!("hi{i}"), json!(padded(end)));
            owners.push(((*asset).to_string(), (*definition).to_string()));
        }
    }
    let mut regions: BTreeMap<(String, String), Vec<Interval>> = BTreeMap::new();
    if !owners.is_empty() {
        vars.insert("top".into(), json!(padded(u128::MAX)));
        let mut response = client.query(&sql, Value::Object(vars)).await?;
        for (i, owner) in owners.into_iter().enumerate() {
            let mut rows: Vec<Value> = response.take(2 * i)?;
            rows.extend(response.take::<Vec<Value>>(2 * i + 1)?);
            regions.entry(owner).or_default().extend(rows.iter().filter_map(Interval::decode));
        }
    }
    Ok(written
        .keys()
        .map(|(asset, definition)| {
            let key = ((*asset).to_string(), (*definition).to_string());
            let entries = regions.remove(&key).unwrap_or_default();
            (key, IntervalRegion::new(entries))
        })
        .collect())
}

impl Storage {
    /// Enqueues a status change (written with the next batch of run events).
    pub fn enqueue_partition_status(&self, change: PartitionStatusChange) {
        self.inner.writer.submit(Command::PartitionStatus(change));
    }

    /// The partition status of an asset on its current definition's grid (empty when nothing
    /// was recorded). In-progress positions count only for runs that have not ended.
    pub async fn get_partition_status(&self, asset_key: &str) -> Result<PartitionStatus> {
        self.flush().await?;
        let Some(record) = read_records(&self.inner.client, &[asset_key]).await?.remove(asset_key) else {
            return Ok(PartitionStatus::default());
        };
        let Some((fingerprint, definition)) = self.current_definition(&record).await? else {
            return Ok(PartitionStatus::default());
        };
        let grid = record.grids.get(&fingerprint).cloned().unwrap_or_default();
        let live = live_runs(&self.inner.client, grid.in_progress.keys()).await?;
        let in_progress = grid
            .in_progress
            .iter()
            .filter(|(run, _)| live.contains(run.as_str()))
            .fold(RangeSet::new(), |all, (_, positions)| all.union(positions));
        Ok(PartitionStatus {
            definition: Some(definition),
            materialized: grid.materialized,
            failed: grid.failed,
            in_progress,
        })
    }

    /// The current definition of a record: the registered one, or the grid of an asset only
    /// ever written (by a run of a repository that did not register it).
    async fn current_definition(&self, record: &StatusRecord) -> Result<Option<(String, Arc<Partitions>)>> {
        if let Some(fingerprint) = &record.current {
            if let Some(definition) = self.definition(fingerprint).await? {
                return Ok(Some((fingerprint.clone(), definition)));
            }
            if let Some(stored) = &record.definition {
                let definition: Arc<Partitions> = Arc::new(
                    serde_json::from_value(stored.clone())
                        .map_err(|source| Error::Decode { what: "partitions definition", source })?,
                );
                self.inner.definitions.lock().insert(fingerprint.clone(), Arc::clone(&definition));
                return Ok(Some((fingerprint.clone(), definition)));
            }
        }
        let Some(fingerprint) = record.grids.keys().next_back() else { return Ok(None) };
        Ok(self.definition(fingerprint).await?.map(|definition| (fingerprint.clone(), definition)))
    }

    /// Which of `runs` have not ended.
    /// The runs an asset's stored status record keeps in-progress positions for, ended or not
    /// (readers skip ended ones), for tests of the record's upkeep.
    #[cfg(feature = "testing")]
    pub async fn runs_kept_in_progress(&self, asset_key: &str) -> Result<BTreeSet<String>> {
        let records = read_records(&self.inner.client, &[asset_key]).await?;
        Ok(records
            .values()
            .flat_map(|record| record.grids.values().flat_map(|grid| grid.in_progress.keys().cloned()))
            .collect())
    }

    /// A definition by fingerprint (definitions never change under one: cached per handle).
    pub(crate) async fn definition(&self, fingerprint: &str) -> Result<Option<Arc<Partitions>>> {
        if let Some(known) = self.inner.definitions.lock().get(fingerprint) {
            return Ok(Some(Arc::clone(known)));
        }
        let rows = self
            .rows(
                "SELECT VALUE definition FROM type::record('partition_definition', $fingerprint)",
                json!({"fingerprint": fingerprint}),
            )
            .await?;
        let Some(row) = rows.into_iter().find(|row| !row.is_null()) else { return Ok(None) };
        let definition: Arc<Partitions> = Arc::new(
            serde_json::from_value(row).map_err(|source| Error::Decode { what: "partitions definition", source })?,
        );
        self.inner.definitions.lock().insert(fingerprint.to_string(), Arc::clone(&definition));
        Ok(Some(definition))
    }

    /// Stores definitions under their fingerprints, so that events written on their grids can
    /// be read (a run registers the definitions of its plan before writing).
    pub async fn register_partition_definitions(&self, definitions: &[&Partitions]) -> Result<()> {
        let rows: Vec<Value> = definitions
            .iter()
            .map(|definition| json!({"id": definition_fingerprint(definition), "definition": definition}))
            .filter(|row| !self.inner.definitions.lock().contains_key(row["id"].as_str().unwrap_or_default()))
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        self.execute("INSERT IGNORE INTO partition_definition $rows RETURN NONE", json!({"rows": rows})).await?;
        let mut known = self.inner.definitions.lock();
        for definition in definitions {
            known.insert(definition_fingerprint(definition), Arc::new((*definition).clone()));
        }
        Ok(())
    }

    /// Records the definitions assets have now. Where a definition changed, its grid is filled
    /// from the previous definition's (positions moved to the new grid by key; keys the new
    /// definition lacks stay recorded on the old grid, and show again if it comes back).
    pub async fn register_partitions(&self, definitions: Vec<(String, Partitions)>) -> Result<()> {
        // What this handle wrote on the previous grids moves with them.
        self.flush().await?;
        let all: Vec<&Partitions> = definitions.iter().map(|(_, d)| d).collect();
        self.register_partition_definitions(&all).await?;
        for attempt in 1.. {
            match self.try_register_partitions(&definitions).await {
                Err(err) if is_state_changed(&err) && attempt < crate::client::CONFLICT_RETRIES => {
                    tokio::time::sleep(crate::client::conflict_backoff(attempt)).await;
                }
                other => return other,
            }
        }
        unreachable!("the loop returns")
    }

    async fn try_register_partitions(&self, definitions: &[(String, Partitions)]) -> Result<()> {
        let keys: Vec<&str> = definitions.iter().map(|(k, _)| k.as_str()).collect();
        let mut records = read_records(&self.inner.client, &keys).await?;
        let mut rows = Vec::new();
        for (asset_key, definition) in definitions {
            let fingerprint = definition_fingerprint(definition);
            let record = records.entry(asset_key.clone()).or_insert_with(|| StatusRecord::new(asset_key));
            if record.current.as_deref() == Some(fingerprint.as_str()) {
                continue;
            }
            let expected = record.version;
            let previous = self.current_definition(record).await?;
            if let Some((old_fingerprint, old)) = previous.filter(|(old, _)| *old != fingerprint) {
                let moved = self.relocate(record.grids.get(&old_fingerprint), &old, definition).await?;
                let grid = record.grids.entry(fingerprint.clone()).or_default();
                grid.failed = grid.failed.difference(&moved.materialized).union(&moved.failed);
                grid.materialized = grid.materialized.union(&moved.materialized);
            }
            record.current = Some(fingerprint);
            record.definition = Some(serde_json::to_value(definition).expect("partitions definitions serialise"));
            rows.push(json!({"key": asset_key, "expected": expected, "row": record.row()}));
        }
        if rows.is_empty() {
            return Ok(());
        }
        self.execute(
            &format!(
                "BEGIN TRANSACTION; \
                 FOR $update IN $rows {{ \
                     IF ((SELECT VALUE version FROM type::record('partition_status', $update.key))[0] ?? 0) != $update.expected \
                         {{ THROW '{STATE_CHANGED}'; }}; \
                     UPSERT type::record('partition_status', $update.key) CONTENT $update.row RETURN NONE; \
                 }}; \
                 COMMIT TRANSACTION;"
            ),
            json!({"rows": rows}),
        )
        .await
    }

    /// A grid's materialized and failed positions, moved to `new`'s grid by key.
    async fn relocate(&self, grid: Option<&Grid>, old: &Partitions, new: &Partitions) -> Result<Grid> {
        let Some(grid) = grid else { return Ok(Grid::default()) };
        let mut env = self.partition_env(old).await?;
        for (name, keys) in self.dynamic_sets(new).await? {
            env = env.with_dynamic(name, keys);
        }
        let relocate = |ranges: &RangeSet| {
            RangeSet::from_positions(ranges.positions().filter_map(|position| {
                let key = old.key_of(&old.coords_at(position, &env)?, &env)?;
                let coords = new.individuals(&key, &env).ok()?.into_iter().next()?;
                new.position(&coords, &env)
            }))
        };
        Ok(Grid { materialized: relocate(&grid.materialized), failed: relocate(&grid.failed), ..Grid::default() })
    }

    /// The latest materialization of one partition (a display string), from the interval
    /// index: the current definition's grid, and the grids of earlier definitions the key was
    /// also on.
    pub(crate) async fn latest_partition_materialization(
        &self,
        asset_key: &str,
        partition: &str,
    ) -> Result<Option<StoredEvent>> {
        let Some(record) = read_records(&self.inner.client, &[asset_key]).await?.remove(asset_key) else {
            return Ok(None);
        };
        let Ok(key) = PartitionKey::parse_display(partition, partition.contains('=')) else { return Ok(None) };
        let mut probes = Vec::new();
        for fingerprint in record.grids.keys() {
            let Some(definition) = self.definition(fingerprint).await? else { continue };
            let env = self.partition_env(&definition).await?;
            let position = match definition.individuals(&key, &env).ok().as_deref() {
                Some([coords]) => definition.position(coords, &env),
                _ => None,
            };
            if let Some(position) = position {
                probes.push((fingerprint.clone(), position, definition, env));
            }
        }
        if probes.is_empty() {
            return Ok(None);
        }
        // One query for every grid the key is on: the entry ending at or after its position.
        let mut sql = String::new();
        let mut vars = serde_json::Map::new();
        vars.insert("asset".into(), json!(asset_key));
        vars.insert("top".into(), json!(padded(u128::MAX)));
        for (i, (fingerprint, position, ..)) in probes.iter().enumerate() {
            sql.push_str(&format!(
                "SELECT * FROM partition_latest:[$asset, $d{i}, $from{i}]..=[$asset, $d{i}, $top] LIMIT 1; "
            ));
            vars.insert(format!("d{i}"), json!(fingerprint));
            vars.insert(format!("from{i}"), json!(padded(*position)));
        }
        let mut response = self.inner.client.query(&sql, Value::Object(vars)).await?;
        let mut newest: Option<(Interval, u128, Arc<Partitions>, PartitionEnv)> = None;
        for (i, (_, position, definition, env)) in probes.into_iter().enumerate() {
            let rows: Vec<Value> = response.take(i)?;
            let found = rows.iter().filter_map(Interval::decode).find(|entry| entry.start <= position);
            if let Some(entry) = found.filter(|e| newest.as_ref().is_none_or(|(n, ..)| e.time > n.time)) {
                newest = Some((entry, position, definition, env));
            }
        }
        let Some((entry, position, definition, env)) = newest else { return Ok(None) };
        let event = super::decode_events(vec![Value::String(entry.event)])?.remove(0);
        Ok(Some(expand_one(&event, position, &definition, &env)))
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

    async fn dynamic_sets(&self, definition: &Partitions) -> Result<Vec<(String, Arc<DynamicKeys>)>> {
        let mut sets = Vec::new();
        for (_, dim) in definition.dimensions() {
            if let Partitions::Dynamic(dynamic) = dim {
                sets.push((dynamic.name.clone(), self.dynamic_keys(&dynamic.name).await?));
            }
        }
        Ok(sets)
    }
}

/// The event of the partition at `position` of a stored event: a compact event's expansion,
/// or the event itself when it names its partition.
fn expand_one(event: &StoredEvent, position: u128, definition: &Partitions, env: &PartitionEnv) -> StoredEvent {
    let index = event.span.as_ref().map_or(0, |span| span.positions.rank(position));
    expand_nth(event, index, position, definition, env)
}

/// [`expand_one`] for the `index`-th position of the event's span (a reader walking the span
/// knows it, and saves the O(ranges) rank lookup per partition).
pub(crate) fn expand_nth(
    event: &StoredEvent,
    index: u128,
    position: u128,
    definition: &Partitions,
    env: &PartitionEnv,
) -> StoredEvent {
    if !event.is_compact() {
        return event.clone();
    }
    let mut expanded = event.expanded_nth(index, position);
    expanded.partition_key = definition.recorded_key_at(position, env).map(|key| key.to_string());
    expanded
}

/// Whether `err` is the version check of a partition-state write failing.
pub(crate) fn is_state_changed(err: &Error) -> bool {
    err.is_thrown(STATE_CHANGED)
}
