//! The `Storage` handle: one SurrealDB datastore plus its batched event writer.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use parking_lot::Mutex;
use rivers_core::{AssetVersionState, RunStatus, Staleness, compute_staleness};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use surrealdb::Surreal;
use surrealdb::engine::local::Db;
use surrealdb_core::kvs::Datastore;
use tokio::sync::oneshot;

use crate::clock::now_ns;
use crate::error::{Error, Result};
use crate::records::{AssetRecord, NewEvent, NewRun, RunRecord, StoredEvent, StoredLog, StoredTick};
use crate::schema::{BOOTSTRAP, SCHEMA_VERSION};
use crate::writer::{Command, Writer};

/// When an embedded store syncs its write-ahead log: on every commit.
const EMBEDDED_SYNC: &str = "every";

/// Which backend a handle talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageKind {
    /// Process-local, lost on drop.
    Memory,
    /// RocksDB in a local directory.
    Embedded,
    /// A SurrealDB server.
    Remote,
}

/// A handle to one store. Cloning shares the store.
///
/// All methods are async and must run on a tokio runtime (the writer task is spawned on the
/// runtime that opened the store).
#[derive(Clone)]
pub struct Storage {
    inner: Arc<Inner>,
}

struct Inner {
    db: Surreal<Db>,
    datastore: Arc<Datastore>,
    kind: StorageKind,
    writer: Writer,
    /// Runs whose cancellation was requested through this handle: checked between steps
    /// without a database round trip.
    cancelled: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage").field("kind", &self.inner.kind).finish()
    }
}

fn decode<T: DeserializeOwned>(what: &'static str, rows: Vec<Value>) -> Result<Vec<T>> {
    rows.into_iter().map(|row| serde_json::from_value(row).map_err(|source| Error::Decode { what, source })).collect()
}

impl Storage {
    /// Opens a fresh, empty in-memory store.
    ///
    /// # Errors
    /// `Backend` if the datastore cannot start.
    pub async fn memory() -> Result<Self> {
        Self::open_datastore("memory", StorageKind::Memory, "memory").await
    }

    /// Opens (creating if needed) an embedded RocksDB store at `path`.
    ///
    /// # Errors
    /// `Backend` when the directory cannot be created or another handle holds its lock;
    /// `SchemaMigrationNeeded` when the stored schema is older than this build.
    pub async fn embedded(path: &Path) -> Result<Self> {
        std::fs::create_dir_all(path)
            .map_err(|err| Error::Backend(format!("cannot create storage directory {}: {err}", path.display())))?;
        let location = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()).display().to_string();
        // Every commit is synced to disk before it returns (grouped by RocksDB's commit
        // coordinator), so neither a killed process nor a power loss loses a recorded step.
        let spec = format!("rocksdb://{location}?sync={EMBEDDED_SYNC}");
        Self::open_datastore(&spec, StorageKind::Embedded, &location).await
    }

    async fn open_datastore(spec: &str, kind: StorageKind, location: &str) -> Result<Self> {
        let datastore = Datastore::new(spec).await.map_err(|err| {
            let text = format!("{err:#}");
            if text.to_lowercase().contains("lock") {
                Error::Backend(format!(
                    "cannot open embedded storage at {location}: the database is locked by another live \
                     handle (in this or another process); close it first ({text})"
                ))
            } else {
                Error::Backend(format!("cannot open storage at {location}: {text}"))
            }
        })?;
        datastore
            .bootstrap()
            .await
            .map_err(|err| Error::Backend(format!("cannot bootstrap storage at {location}: {err:#}")))?;
        let db = Surreal::<Db>::unstable_from_datastore(Arc::clone(&datastore), None).await?;
        match Self::init(db, Arc::clone(&datastore), kind, location).await {
            Ok(storage) => Ok(storage),
            Err(err) => {
                // Release the files (and the lock) of a store we refuse to use.
                let _ = datastore.shutdown().await;
                Err(err)
            }
        }
    }

    /// Flushes pending events and shuts the datastore down (releasing an embedded store's
    /// lock). Later calls on any clone of this handle fail.
    ///
    /// # Errors
    /// The error of the final flush, or of the shutdown.
    pub async fn close(&self) -> Result<()> {
        let flushed = self.flush().await;
        self.inner
            .datastore
            .shutdown()
            .await
            .map_err(|err| Error::Backend(format!("storage shutdown failed: {err:#}")))?;
        flushed
    }

    /// Whether this is the only live handle to the store.
    pub fn is_last_handle(&self) -> bool {
        Arc::strong_count(&self.inner) == 1
    }

    async fn init(db: Surreal<Db>, datastore: Arc<Datastore>, kind: StorageKind, location: &str) -> Result<Self> {
        db.use_ns("rivers").use_db("main").await?;
        let mut response = db.query("SELECT VALUE version FROM schema_stamp").await?;
        let stamp: Vec<Value> = response.take(0).unwrap_or_default();
        match stamp.first().and_then(Value::as_i64) {
            None => {
                db.query(BOOTSTRAP).await?.check()?;
                db.query("UPSERT schema_stamp:current SET version = $v")
                    .bind(json!({"v": SCHEMA_VERSION}))
                    .await?
                    .check()?;
            }
            Some(found) if found < SCHEMA_VERSION => {
                return Err(Error::SchemaMigrationNeeded {
                    location: location.into(),
                    found,
                    expected: SCHEMA_VERSION,
                });
            }
            Some(found) if found > SCHEMA_VERSION => {
                return Err(Error::Backend(format!(
                    "the database at {location} was written by a newer rivers (schema {found}, this build \
                     understands {SCHEMA_VERSION}); upgrade rivers"
                )));
            }
            Some(_) => {}
        }
        let writer = Writer::spawn(db.clone());
        Ok(Storage { inner: Arc::new(Inner { db, datastore, kind, writer, cancelled: Mutex::new(HashSet::new()) }) })
    }

    /// Backend kind.
    pub fn kind(&self) -> StorageKind {
        self.inner.kind
    }

    async fn rows(&self, sql: &str, vars: Value) -> Result<Vec<Value>> {
        let mut response = self.inner.db.query(sql).bind(vars).await?;
        Ok(response.take(0)?)
    }

    async fn execute(&self, sql: &str, vars: Value) -> Result<()> {
        self.inner.db.query(sql).bind(vars).await?.check()?;
        Ok(())
    }

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

    // ---- runs ---------------------------------------------------------------------------

    /// Creates a run record.
    pub async fn create_run(&self, run: NewRun) -> Result<RunRecord> {
        let record = RunRecord {
            run_id: run.run_id,
            job_name: run.job_name,
            status: run.status.as_str().to_string(),
            start_time: now_ns(),
            end_time: None,
            tags: run.tags,
            node_names: run.node_names,
            priority: run.priority,
            partition_key: run.partition_key,
            block_reason: None,
            launched_by: run.launched_by,
            cancel_requested: false,
            completed_steps: 0,
            total_steps: 0,
            message: None,
        };
        let doc = serde_json::to_value(&record).map_err(|source| Error::Decode { what: "run", source })?;
        self.execute(
            "UPSERT type::record('run', $id) CONTENT $doc RETURN NONE",
            json!({"id": record.run_id, "doc": doc}),
        )
        .await?;
        Ok(record)
    }

    /// The run, or `None`.
    pub async fn get_run(&self, run_id: &str) -> Result<Option<RunRecord>> {
        let rows = self.rows("SELECT * OMIT id FROM type::record('run', $id)", json!({"id": run_id})).await?;
        Ok(decode("run", rows)?.into_iter().next())
    }

    /// Up to `limit` runs, newest first, optionally with one status.
    pub async fn get_runs(&self, limit: usize, status: Option<&str>) -> Result<Vec<RunRecord>> {
        let filter = if status.is_some() { "WHERE status = $status" } else { "" };
        let sql = format!("SELECT * OMIT id FROM run {filter} ORDER BY start_time DESC LIMIT $limit");
        let rows = self.rows(&sql, json!({"status": status, "limit": limit})).await?;
        decode("run", rows)
    }

    /// Moves a run to `status` (non-terminal transitions such as `Running`).
    pub async fn set_run_status(&self, run_id: &str, status: RunStatus) -> Result<()> {
        self.execute(
            "UPDATE type::record('run', $id) SET status = $status RETURN NONE",
            json!({"id": run_id, "status": status.as_str()}),
        )
        .await
    }

    /// Persists a run's terminal outcome. `status` accepts `Success`, `Failure`, `Canceled`
    /// and `Cancelled` (stored as `Canceled`).
    ///
    /// # Errors
    /// `InvalidStatus` for any other spelling.
    pub async fn set_run_outcome(
        &self,
        run_id: &str,
        status: &str,
        completed_steps: i64,
        total_steps: i64,
        message: Option<&str>,
    ) -> Result<()> {
        let canonical = match status {
            "Success" => RunStatus::Success,
            "Failure" => RunStatus::Failure,
            "Canceled" | "Cancelled" => RunStatus::Canceled,
            other => {
                return Err(Error::InvalidStatus(format!(
                    "unknown run outcome status {other:?}; expected \"Success\", \"Failure\" or \"Cancelled\""
                )));
            }
        };
        self.flush().await?;
        self.execute(
            "UPDATE type::record('run', $id) SET status = $status, completed_steps = $done, total_steps = $total, \
             message = $message, end_time = $end RETURN NONE",
            json!({"id": run_id, "status": canonical.as_str(), "done": completed_steps, "total": total_steps,
                   "message": message, "end": now_ns()}),
        )
        .await
    }

    /// `(completed_steps, total_steps)` of a run; `(0, 0)` when unknown.
    pub async fn get_run_progress(&self, run_id: &str) -> Result<(i64, i64)> {
        Ok(self.get_run(run_id).await?.map_or((0, 0), |r| (r.completed_steps, r.total_steps)))
    }

    /// Runs currently queued.
    pub async fn get_queued_runs(&self) -> Result<Vec<RunRecord>> {
        self.get_runs(usize::MAX >> 1, Some(RunStatus::Queued.as_str())).await
    }

    /// Cancels a queued run; `false` when the run is not queued.
    pub async fn cancel_queued_run(&self, run_id: &str) -> Result<bool> {
        match self.get_run(run_id).await? {
            Some(run) if run.status == RunStatus::Queued.as_str() => {
                self.execute(
                    "UPDATE type::record('run', $id) SET status = 'Canceled', end_time = $end RETURN NONE",
                    json!({"id": run_id, "end": now_ns()}),
                )
                .await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Sets the cooperative cancellation flag of a run. A run not created yet is flagged on this
    /// handle only, so a run started through it later begins cancelled.
    pub async fn request_cancellation(&self, run_id: &str) -> Result<()> {
        self.inner.cancelled.lock().insert(run_id.to_string());
        self.execute("UPDATE type::record('run', $id) SET cancel_requested = true RETURN NONE", json!({"id": run_id}))
            .await
    }

    /// Whether cancellation was requested through this handle (no database round trip).
    pub fn is_cancel_requested_locally(&self, run_id: &str) -> bool {
        self.inner.cancelled.lock().contains(run_id)
    }

    /// Whether cancellation was requested, through any handle.
    pub async fn is_cancelled(&self, run_id: &str) -> Result<bool> {
        if self.is_cancel_requested_locally(run_id) {
            return Ok(true);
        }
        Ok(self.get_run(run_id).await?.is_some_and(|r| r.cancel_requested))
    }

    // ---- run logs -----------------------------------------------------------------------

    /// Stores one step execution's captured output.
    pub async fn add_run_log(
        &self,
        run_id: &str,
        step_key: &str,
        stdout: Option<String>,
        stderr: Option<String>,
        logs: Option<String>,
    ) -> Result<()> {
        let row = StoredLog {
            id: uuid::Uuid::now_v7().to_string(),
            run_id: run_id.into(),
            step_key: step_key.into(),
            timestamp: now_ns(),
            stdout,
            stderr,
            logs,
        };
        let doc = serde_json::to_value(&row).map_err(|source| Error::Decode { what: "run log", source })?;
        self.execute("CREATE run_log CONTENT $doc RETURN NONE", json!({"doc": doc})).await
    }

    /// Captured step output of a run, oldest first.
    pub async fn get_run_logs(&self, run_id: &str) -> Result<Vec<StoredLog>> {
        let rows = self
            .rows("SELECT * OMIT id FROM run_log WHERE run_id = $run ORDER BY timestamp", json!({"run": run_id}))
            .await?;
        decode("run log", rows)
    }

    // ---- assets -------------------------------------------------------------------------

    /// Registers assets: declared fields are replaced, `last_*` fields are kept.
    ///
    /// Declared fields live in one registry document (one write for a whole repository, however
    /// large); the `asset` table holds only what materializations and observations record.
    pub async fn register_assets(&self, records: Vec<AssetRecord>) -> Result<()> {
        let declared: serde_json::Map<String, Value> = records
            .into_iter()
            .map(|r| {
                let doc = json!({"tags": r.tags, "kinds": r.kinds, "group": r.group, "code_version": r.code_version,
                                 "pool": r.pool, "upstreams": r.upstreams, "is_external": r.is_external});
                (r.asset_key, doc)
            })
            .collect();
        self.execute(
            "UPSERT asset_registry:current MERGE { assets: $assets } RETURN NONE",
            json!({"assets": Value::Object(declared)}),
        )
        .await
    }

    /// Combines a registry entry (declared fields) with an `asset` row (`last_*` fields).
    fn merge_record(asset_key: &str, declared: Option<&Value>, state: Option<Value>) -> Result<AssetRecord> {
        let mut doc = state.unwrap_or_else(|| json!({}));
        if let (Some(Value::Object(fields)), Value::Object(target)) = (declared, &mut doc) {
            for (key, value) in fields {
                target.insert(key.clone(), value.clone());
            }
        }
        doc["asset_key"] = Value::String(asset_key.to_string());
        serde_json::from_value(doc).map_err(|source| Error::Decode { what: "asset", source })
    }

    /// One asset's record.
    pub async fn get_asset_record(&self, asset_key: &str) -> Result<Option<AssetRecord>> {
        self.flush().await?;
        let mut response = self
            .inner
            .db
            .query("SELECT VALUE assets[$key] FROM asset_registry:current; SELECT * OMIT id FROM type::record('asset', $key);")
            .bind(json!({"key": asset_key}))
            .await?;
        let declared: Vec<Value> = response.take(0)?;
        let state: Vec<Value> = response.take(1)?;
        let declared = declared.into_iter().find(|v| v.is_object());
        let state = state.into_iter().next();
        if declared.is_none() && state.is_none() {
            return Ok(None);
        }
        Self::merge_record(asset_key, declared.as_ref(), state).map(Some)
    }

    /// Every asset record, by ascending key.
    pub async fn get_asset_records(&self) -> Result<Vec<AssetRecord>> {
        self.flush().await?;
        let mut response = self
            .inner
            .db
            .query("SELECT VALUE assets FROM asset_registry:current; SELECT * OMIT id FROM asset;")
            .await?;
        let declared: Vec<Value> = response.take(0)?;
        let states: Vec<Value> = response.take(1)?;
        let declared = match declared.into_iter().next() {
            Some(Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        let mut by_key: std::collections::BTreeMap<String, Option<Value>> =
            declared.keys().map(|k| (k.clone(), None)).collect();
        for state in states {
            if let Some(key) = state["asset_key"].as_str() {
                by_key.insert(key.to_string(), Some(state));
            }
        }
        by_key.into_iter().map(|(key, state)| Self::merge_record(&key, declared.get(&key), state)).collect()
    }

    /// Records whose tags contain `tag`.
    pub async fn get_assets_by_tag(&self, tag: &str) -> Result<Vec<AssetRecord>> {
        Ok(self.get_asset_records().await?.into_iter().filter(|r| r.tags.iter().any(|t| t == tag)).collect())
    }

    /// Records whose kinds contain `kind`.
    pub async fn get_assets_by_kind(&self, kind: &str) -> Result<Vec<AssetRecord>> {
        Ok(self.get_asset_records().await?.into_iter().filter(|r| r.kinds.iter().any(|k| k == kind)).collect())
    }

    /// Records of group `group`.
    pub async fn get_assets_by_group(&self, group: &str) -> Result<Vec<AssetRecord>> {
        Ok(self.get_asset_records().await?.into_iter().filter(|r| r.group.as_deref() == Some(group)).collect())
    }

    /// Live staleness of every asset record, keyed by asset key (ascending).
    pub async fn compute_staleness(&self) -> Result<Vec<(String, Staleness)>> {
        let states: Vec<AssetVersionState> = self
            .get_asset_records()
            .await?
            .into_iter()
            .map(|r| AssetVersionState {
                current_data_version: if r.is_external { r.last_observation_data_version } else { r.last_data_version },
                materialized: r.last_event_id.is_some(),
                asset_key: r.asset_key,
                is_external: r.is_external,
                code_version: r.code_version,
                last_materialization_code_version: r.last_materialization_code_version,
                last_input_data_versions: r.last_input_data_versions,
                upstreams: r.upstreams,
            })
            .collect();
        Ok(compute_staleness(&states))
    }

    // ---- ticks --------------------------------------------------------------------------

    /// Up to `limit` ticks of an automation, newest first.
    pub async fn get_ticks(&self, automation_name: &str, limit: usize) -> Result<Vec<StoredTick>> {
        let rows = self
            .rows(
                "SELECT * OMIT id FROM tick WHERE automation_name = $name ORDER BY timestamp DESC LIMIT $limit",
                json!({"name": automation_name, "limit": limit}),
            )
            .await?;
        decode("tick", rows)
    }

    // ---- kv -----------------------------------------------------------------------------

    /// The value stored under `key`.
    pub async fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let rows = self.rows("SELECT VALUE value FROM type::record('kv', $key)", json!({"key": key})).await?;
        match rows.first().and_then(Value::as_str) {
            None => Ok(None),
            Some(text) => BASE64
                .decode(text)
                .map(Some)
                .map_err(|err| Error::Backend(format!("kv entry '{key}' is corrupt: {err}"))),
        }
    }

    /// Inserts or overwrites `key`.
    pub async fn kv_set(&self, key: &str, value: &[u8]) -> Result<()> {
        self.execute(
            "UPSERT type::record('kv', $key) CONTENT { key: $key, value: $value } RETURN NONE",
            json!({"key": key, "value": BASE64.encode(value)}),
        )
        .await
    }

    // ---- dynamic partitions -------------------------------------------------------------

    /// Registers keys of a dynamic partitions definition; existing keys are kept once.
    ///
    /// # Errors
    /// `InvalidArgument` (and nothing added) for an empty key or one containing `|` or `,`.
    pub async fn add_dynamic_partitions(&self, name: &str, keys: &[String]) -> Result<()> {
        if let Some(bad) = keys.iter().find(|k| k.is_empty() || k.contains('|') || k.contains(',')) {
            return Err(Error::InvalidArgument(format!(
                "invalid dynamic partition key {bad:?} for '{name}': keys must be non-empty and must not \
                 contain '|' or ','"
            )));
        }
        let rows: Vec<Value> = keys.iter().map(|k| json!({"key": k, "seq": now_ns()})).collect();
        self.execute(
            "FOR $k IN $keys { IF !record::exists(type::record('dynamic_partition', [$name, $k.key])) { \
             CREATE type::record('dynamic_partition', [$name, $k.key]) CONTENT { name: $name, key: $k.key, seq: $k.seq } \
             RETURN NONE; }; };",
            json!({"name": name, "keys": rows}),
        )
        .await
    }

    /// Removes one key; absent keys are a no-op.
    pub async fn delete_dynamic_partition(&self, name: &str, key: &str) -> Result<()> {
        self.execute(
            "DELETE type::record('dynamic_partition', [$name, $key]) RETURN NONE",
            json!({"name": name, "key": key}),
        )
        .await
    }

    /// Current keys in first-insertion order.
    pub async fn get_dynamic_partitions(&self, name: &str) -> Result<Vec<String>> {
        let rows = self
            .rows("SELECT VALUE key FROM dynamic_partition WHERE name = $name ORDER BY seq", json!({"name": name}))
            .await?;
        Ok(rows.into_iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
    }

    /// Whether the key is registered.
    pub async fn has_dynamic_partition(&self, name: &str, key: &str) -> Result<bool> {
        let rows = self
            .rows(
                "RETURN record::exists(type::record('dynamic_partition', [$name, $key]))",
                json!({"name": name, "key": key}),
            )
            .await?;
        Ok(rows.first().and_then(Value::as_bool).unwrap_or(false))
    }
}
