//! Run records: creation, status, outcome, cancellation, run logs and ticks.

use rivers_core::RunStatus;

use crate::clock::now_ns;
use crate::records::{NewRun, RunEnding, RunRecord, StoredLog, StoredTick};
use serde_json::{Value, json};

use super::paging::{self, Page, PageCursor};
use super::{Storage, decode};
use crate::error::{Error, Result};

/// Creates the run of each [`RunDocument`] in `$docs` with its `run_tag` rows (one per tag,
/// which page runs by tag newest-first) and its key stored apart, if any; part of the
/// caller's transaction.
pub(super) const CREATE_RUNS: &str = "FOR $doc IN $docs { \
        LET $run = IF $doc.partition_key = NONE { $doc.run } ELSE { \
            LET $apart = type::record('run_partition_key', $doc.run.run_id); \
            CREATE $apart CONTENT { json: $doc.partition_key } RETURN NONE; \
            $doc.run + { partition_key_ref: $apart } \
        }; \
        CREATE type::record('run', $run.run_id) CONTENT $run RETURN NONE; \
        FOR $tag IN $run.tags { \
            UPSERT type::record('run_tag', [$run.run_id, $tag[0], $tag[1]]) \
                CONTENT { key: $tag[0], value: $tag[1], run_id: $run.run_id, start_time: $run.start_time } \
                RETURN NONE; \
        }; \
    };";

/// The columns of a stored run that [`decode_runs`] reads, with its key stored apart, if any.
pub(super) const RUN_COLUMNS: &str = "SELECT *, partition_key_ref.json AS partition_key_json \
    OMIT id, tag_pairs, backfill_id, partition_key_ref";

/// A run's partition key covering more values than this is stored in its own record, not in
/// the run's: every heartbeat and status change rewrites the run's record, and a single-run
/// backfill's key can hold a million values.
const INLINE_KEY_VALUES: usize = 64;

/// A new run as it is written: the run's record, and its partition key as JSON text when
/// that is stored apart (see [`INLINE_KEY_VALUES`]). Text, because the database would hold a
/// million-value key as a million values, several hundred bytes each while it writes them.
#[derive(Debug, serde::Serialize)]
pub(crate) struct RunDocument {
    pub(crate) run: Value,
    pub(crate) partition_key: Option<String>,
}

/// Runs as [`RUN_COLUMNS`] reads them.
pub(super) fn decode_runs(mut rows: Vec<Value>) -> Result<Vec<RunRecord>> {
    for row in &mut rows {
        let apart = row.as_object_mut().and_then(|fields| fields.remove("partition_key_json"));
        if let Some(Value::String(text)) = apart {
            row["partition_key"] =
                serde_json::from_str(&text).map_err(|source| Error::Decode { what: "run partition key", source })?;
        }
    }
    decode("run", rows)
}

/// Whether a key's JSON form holds more than `limit` values.
fn holds_more_than(key: &Value, limit: usize) -> bool {
    fn count(value: &Value, limit: usize, seen: &mut usize) -> bool {
        match value {
            Value::Array(items) => items.iter().any(|item| count(item, limit, seen)),
            Value::Object(fields) => fields.values().any(|field| count(field, limit, seen)),
            _ => {
                *seen += 1;
                *seen > limit
            }
        }
    }
    count(key, limit, &mut 0)
}

impl Storage {
    // ---- runs ---------------------------------------------------------------------------

    /// Creates a run record.
    ///
    /// # Errors
    /// `AlreadyExists` when a run with this id exists; `Backend` for a failed write.
    pub async fn create_run(&self, run: NewRun) -> Result<RunRecord> {
        let partition_key = run.partition_key.clone();
        let doc = self.run_document(run)?;
        let mut record: RunRecord =
            serde_json::from_value(doc.run.clone()).map_err(|source| Error::Decode { what: "run", source })?;
        record.partition_key = partition_key;
        self.insert_run(doc).await?;
        Ok(record)
    }

    /// The stored document of a new run, under this handle's code location.
    ///
    /// # Errors
    /// `MissingCodeLocation` in a cloud deployment without an identity.
    pub(crate) fn run_document(&self, mut run: NewRun) -> Result<RunDocument> {
        let apart = run.partition_key.take_if(|key| holds_more_than(key, INLINE_KEY_VALUES)).map(|key| key.to_string());
        let code_location = self.code_location.for_writing(|| format!("run '{}'", run.run_id))?.to_owned();
        let record = RunRecord {
            run_id: run.run_id,
            job_name: run.job_name,
            status: run.status,
            start_time: now_ns(),
            end_time: None,
            tags: run.tags,
            node_names: run.node_names,
            priority: run.priority,
            partition_key: run.partition_key,
            block_reason: None,
            launched_by: run.launched_by,
            cancel_requested: false,
            message: None,
            failed_partitions: Vec::new(),
            backend: run.backend,
            owner: None,
            owner_process: None,
            owner_host: None,
            owner_pid: None,
            heartbeat: None,
            code_location: Some(code_location),
        };
        let mut doc = serde_json::to_value(&record).map_err(|source| Error::Decode { what: "run", source })?;
        // The indexed companion of a field that is not directly indexable: the backfill a run
        // belongs to.
        doc["backfill_id"] = match &record.launched_by {
            rivers_core::LaunchedBy::Backfill { backfill_id } => json!(backfill_id),
            _ => Value::Null,
        };
        Ok(RunDocument { run: doc, partition_key: apart })
    }

    /// Writes a new run document; each tag also gets a `run_tag` row, which pages runs by tag
    /// newest-first.
    pub(super) async fn insert_run(&self, doc: RunDocument) -> Result<()> {
        let sql = format!("BEGIN TRANSACTION; {CREATE_RUNS} COMMIT TRANSACTION;");
        self.execute(&sql, json!({"docs": [doc]})).await
    }

    /// The run, or `None`.
    pub async fn get_run(&self, run_id: &str) -> Result<Option<RunRecord>> {
        let rows = self.rows(&format!("{RUN_COLUMNS} FROM type::record('run', $id)"), json!({"id": run_id})).await?;
        Ok(decode_runs(rows)?.into_iter().next())
    }

    /// Up to `limit` runs, newest first, optionally with one status.
    pub async fn get_runs(&self, limit: usize, status: Option<RunStatus>) -> Result<Vec<RunRecord>> {
        let filter = status.map_or(RunFilter::All, RunFilter::Status);
        self.get_runs_where(&filter, limit).await
    }

    /// Up to `limit` runs matching `filter`, newest first. Each filter is served by its own
    /// index on (field, creation time), so the cost is that of the page, not of the number of
    /// runs stored.
    pub async fn get_runs_where(&self, filter: &RunFilter, limit: usize) -> Result<Vec<RunRecord>> {
        Ok(self.get_runs_page(filter, limit, None).await?.items)
    }

    /// One page of the runs matching `filter`, newest first: up to `limit` runs after `after`
    /// (the previous page's [`Page::next`]; `None` for the first page). Each page costs what
    /// its runs cost, however deep it is, whatever runs are created meanwhile.
    pub async fn get_runs_page(
        &self,
        filter: &RunFilter,
        limit: usize,
        after: Option<&PageCursor>,
    ) -> Result<Page<RunRecord>> {
        let before = if after.is_some() { "AND start_time <= $before" } else { "" };
        let (source, mut vars) = match filter {
            RunFilter::All => (format!("FROM run WITH INDEX run_start_time WHERE true {before}"), json!({})),
            RunFilter::Status(status) => (
                format!("FROM run WITH INDEX run_status_time WHERE status = $value {before}"),
                json!({"value": status}),
            ),
            RunFilter::Job(job) => {
                (format!("FROM run WITH INDEX run_job_time WHERE job_name = $value {before}"), json!({"value": job}))
            }
            RunFilter::Backfill(id) => (
                format!("FROM run WITH INDEX run_backfill_time WHERE backfill_id = $value {before}"),
                json!({"value": id}),
            ),
            RunFilter::CodeLocation { code_location, status: None } => (
                format!("FROM run WITH INDEX run_location_time WHERE code_location = $value {before}"),
                json!({"value": code_location}),
            ),
            RunFilter::CodeLocation { code_location, status: Some(status) } => (
                format!(
                    "FROM run WITH INDEX run_location_status_time WHERE code_location = $value \
                     AND status = $status {before}"
                ),
                json!({"value": code_location, "status": status}),
            ),
            RunFilter::Tag { key, value } => (
                format!(
                    "FROM (SELECT VALUE type::record('run', run_id) FROM run_tag WITH INDEX run_tag_time \
                     WHERE key = $key AND value = $value {before} ORDER BY start_time DESC LIMIT $limit)"
                ),
                json!({"key": key, "value": value}),
            ),
        };
        vars["limit"] = json!(paging::fetch_size(limit, after));
        vars["before"] = json!(paging::bound(after));
        let sql = format!("{RUN_COLUMNS} {source} ORDER BY start_time DESC LIMIT $limit");
        let runs = decode_runs(self.rows(&sql, vars).await?)?;
        Ok(paging::page(runs, limit, after, |run| run.start_time, |run| &run.run_id))
    }

    /// Moves a run to `status` if the lifecycle allows it from the run's current status
    /// (`RunStatus::predecessors`), in one compare-and-set. `false` when it does not (the run
    /// is missing, or another process moved it first).
    ///
    /// # Errors
    /// `Backend` for a failed write.
    pub async fn transition_run(&self, run_id: &str, status: RunStatus) -> Result<bool> {
        let from: Vec<&str> = RunStatus::predecessors(status).iter().map(|s| s.as_str()).collect();
        let end = status.is_terminal().then(now_ns);
        let rows = self
            .rows(
                "UPDATE type::record('run', $id) SET status = $status, end_time = $end WHERE status IN $from \
                 RETURN VALUE true",
                json!({"id": run_id, "status": status.as_str(), "from": from, "end": end}),
            )
            .await?;
        Ok(!rows.is_empty())
    }

    /// Parses the status of `set_run_outcome`: `Success`, `Failure`, `Canceled` and
    /// `Cancelled` (stored as `Canceled`).
    ///
    /// # Errors
    /// `InvalidStatus` for any other spelling.
    pub fn parse_outcome_status(status: &str) -> Result<RunStatus> {
        match status {
            "Success" => Ok(RunStatus::Success),
            "Failure" => Ok(RunStatus::Failure),
            "Canceled" | "Cancelled" => Ok(RunStatus::Canceled),
            other => Err(Error::InvalidStatus(format!(
                "unknown run outcome status {other:?}; expected \"Success\", \"Failure\" or \"Cancelled\""
            ))),
        }
    }

    /// Persists a run's terminal outcome with its progress counts, after every event of the
    /// run is durable: the record a run pod writes when its run ends (platform.md). Allowed
    /// from the statuses the lifecycle allows, and over an earlier outcome (a run pod records
    /// the outcome of the run its executor already finished).
    ///
    /// # Errors
    /// `EventsNotWritten` when some of the run's events were lost (the outcome is not written
    /// then); `InvalidArgument` for a missing run or one whose status does not allow `status`;
    /// `Backend` for a failed write.
    pub async fn set_run_outcome(
        &self,
        run_id: &str,
        status: RunStatus,
        completed_steps: i64,
        total_steps: i64,
        message: Option<&str>,
    ) -> Result<()> {
        self.flush_run(run_id).await?;
        let mut from: Vec<&str> = RunStatus::predecessors(status).iter().map(|s| s.as_str()).collect();
        from.extend(RunStatus::ALL.iter().filter(|s| s.is_terminal()).map(|s| s.as_str()));
        let rows = self
            .rows(
                "UPDATE type::record('run', $id) SET status = $status, message = $message, end_time = $end, \
                     owner = NONE, owner_process = NONE, owner_host = NONE, owner_pid = NONE \
                 WHERE status IN $from RETURN VALUE true",
                json!({"id": run_id, "status": status.as_str(), "message": message, "end": now_ns(), "from": from}),
            )
            .await?;
        if !rows.is_empty() {
            self.execute(
                "UPSERT type::record('run_counter', $id) SET completed = $done, total = $total RETURN NONE",
                json!({"id": run_id, "done": completed_steps, "total": total_steps}),
            )
            .await?;
        }
        if rows.is_empty() {
            return Err(match self.get_run(run_id).await? {
                None => Error::InvalidArgument(format!("cannot record an outcome of run '{run_id}': no such run")),
                Some(run) => Error::InvalidArgument(format!(
                    "cannot record outcome {status} of run '{run_id}': it is {}{}",
                    run.status,
                    if run.status == RunStatus::Queued { "; cancel it with cancel_queued_run" } else { "" }
                )),
            });
        }
        Ok(())
    }

    /// `(completed_steps, total_steps)` of a run, from its counters (kept atomically by every
    /// process writing the run); `(0, 0)` when unknown.
    pub async fn get_run_progress(&self, run_id: &str) -> Result<(i64, i64)> {
        let rows =
            self.rows("SELECT completed, total FROM type::record('run_counter', $id)", json!({"id": run_id})).await?;
        Ok(rows
            .first()
            .map_or((0, 0), |row| (row["completed"].as_i64().unwrap_or(0), row["total"].as_i64().unwrap_or(0))))
    }

    /// Records the partitions a run's steps marked failed, before the run's outcome, so that
    /// whoever follows the run learns them with its terminal status.
    ///
    /// # Errors
    /// `Backend` for a failed write.
    pub async fn record_failed_partitions(&self, run_id: &str, keys: &[String]) -> Result<()> {
        self.execute(
            "UPDATE type::record('run', $id) SET failed_partitions = $keys RETURN NONE",
            json!({"id": run_id, "keys": keys}),
        )
        .await
    }

    /// How runs `run_ids` stand (unknown ids are left out): one read of the records by id.
    ///
    /// # Errors
    /// `Decode` for a record this build cannot read; `Backend` for a failed read.
    pub async fn run_endings(&self, run_ids: &[String]) -> Result<Vec<RunEnding>> {
        let rows = self
            .rows(
                "SELECT run_id, status, failed_partitions FROM array::map($runs, |$r| type::record('run', $r)) \
                 WHERE run_id != NONE",
                json!({"runs": run_ids}),
            )
            .await?;
        decode("run", rows)
    }

    /// Runs currently queued.
    pub async fn get_queued_runs(&self) -> Result<Vec<RunRecord>> {
        self.get_runs(usize::MAX >> 1, Some(RunStatus::Queued)).await
    }

    /// Cancels a queued run in one compare-and-set; `false` when the run is not queued.
    pub async fn cancel_queued_run(&self, run_id: &str) -> Result<bool> {
        let rows = self
            .rows(
                "UPDATE type::record('run', $id) SET status = 'Canceled', end_time = $end WHERE status = 'Queued' \
                 RETURN VALUE true",
                json!({"id": run_id, "end": now_ns()}),
            )
            .await?;
        Ok(!rows.is_empty())
    }

    // ---- run logs -----------------------------------------------------------------------

    /// Captured step output of a run, oldest first.
    pub async fn get_run_logs(&self, run_id: &str) -> Result<Vec<StoredLog>> {
        self.flush().await?;
        let rows = self
            .rows("SELECT * OMIT id FROM run_log WHERE run_id = $run ORDER BY timestamp", json!({"run": run_id}))
            .await?;
        decode("run log", rows)
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
}

/// Which runs a page of [`Storage::get_runs_where`] lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunFilter {
    /// Every run.
    All,
    /// Runs with this status.
    Status(RunStatus),
    /// Runs of this job.
    Job(String),
    /// Runs launched by this backfill.
    Backfill(String),
    /// Runs of this code location, optionally only those with one status (a daemon's queue).
    CodeLocation {
        /// The location's identity.
        code_location: String,
        /// Only runs with this status.
        status: Option<RunStatus>,
    },
    /// Runs carrying this tag.
    Tag {
        /// Tag key.
        key: String,
        /// Tag value.
        value: String,
    },
}
