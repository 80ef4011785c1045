//! Who executes a run, across processes.
//!
//! A run is executed by one *owner*: the process that created it, or that claimed it from
//! `NotStarted` (the queue's hand-off), from a terminal status (a re-execution through
//! `run_id_override`), or from `Running` after its previous owner stopped heart-beating. The
//! owner writes a heartbeat every few seconds and is the only process that moves the run to a
//! terminal status. Another process that attaches to a run whose owner is alive (a step pod)
//! only appends its steps' events. Every change of status here is one compare-and-set
//! statement, so two processes can never both claim or both finish one run (docs/runs.md).

use std::collections::HashSet;
use std::sync::LazyLock;
use std::time::Duration;

use parking_lot::Mutex;

use rivers_core::{RunBackendKind, RunStatus};
use serde_json::{Value, json};

use super::runs::{RUN_COLUMNS, decode_runs};
use super::{Storage, decode};
use crate::clock::now_ns;
use crate::error::{Error, Result};
use crate::records::{NewRun, RunRecord};

/// Owner tokens of the executions running in this process (see [`owner_is_alive`]).
static EXECUTING: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Default::default);

/// One execution of a run by one process: the token that identifies it in the run record,
/// and where it runs. It counts as executing in this process until dropped.
#[derive(Debug, PartialEq, Eq)]
pub struct RunOwner {
    token: String,
    host: String,
    pid: u32,
    process: String,
}

impl RunOwner {
    /// A new owner token for an execution in this process.
    pub fn for_this_process() -> Self {
        let host = this_host();
        let pid = std::process::id();
        let token = uuid::Uuid::new_v4().to_string();
        EXECUTING.lock().insert(token.clone());
        RunOwner { process: format!("{host} pid {pid}"), token, host, pid }
    }

    /// The process, as `host pid N`.
    pub fn process(&self) -> &str {
        &self.process
    }
}

impl Drop for RunOwner {
    fn drop(&mut self) {
        EXECUTING.lock().remove(&self.token);
    }
}

/// This machine's name as run records carry it (`HOSTNAME`, which is the pod name on
/// Kubernetes).
fn this_host() -> String {
    std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "localhost".into())
}

/// Whether the owner recorded in `run` may still be executing it, judged without waiting for
/// its heartbeat to age: an owner on another host is trusted while its heartbeat is fresh; on
/// this host, an owner in this process is alive while its execution is, and one in another
/// process while that process exists. A run restarted right after its process was killed is
/// thus claimed at once.
fn owner_is_alive(run: &RunRecord) -> bool {
    let (Some(host), Some(pid), Some(token)) = (&run.owner_host, run.owner_pid, &run.owner) else { return true };
    if *host != this_host() {
        return true;
    }
    if pid == std::process::id() {
        return EXECUTING.lock().contains(token);
    }
    process_exists(pid)
}

#[cfg(unix)]
fn process_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    // SAFETY: signal 0 performs only the existence and permission checks; nothing is sent.
    let status = unsafe { libc::kill(pid, 0) };
    status == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(not(unix))]
fn process_exists(_pid: u32) -> bool {
    true
}

/// What [`Storage::open_run`] gave the calling process.
#[derive(Debug, Clone, PartialEq)]
pub enum RunClaim {
    /// The caller owns the run: it records the run's start and outcome. `previous` is the
    /// record as it was before the claim (`None`: the run was created by this call).
    Owned {
        /// The run before it was claimed: its status, owner and cancellation (its partition
        /// key is `None` when that is stored apart; `get_run` reads it).
        previous: Option<Box<RunRecord>>,
    },
    /// Another live process owns the run: the caller only appends its steps' events.
    Attached {
        /// The owning process, as `host pid N`.
        owner_process: String,
    },
}

/// How [`Storage::register_run_steps`] counts a process's planned steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanRegistration {
    /// The owner of a new or resumed run, or a process attached to a run another one owns:
    /// the steps no process registered yet are added to the run's total.
    Add,
    /// The owner executing a run that existed again from the start (`run_id_override` without
    /// `resume`): the total becomes its plan's size, and every step of the run counts again
    /// when it succeeds.
    Restart,
}

/// How many times opening a run re-reads it when its status changes under the caller (each
/// change is some other process's completed transition, so this is never reached in practice).
const OPEN_ATTEMPTS: usize = 8;

/// Registers `$steps` in run `$run`'s plan record and progress total, from scratch when
/// `$restart`: the run's plan record lists every step some process registered, and the total
/// counts them (plus what fan-outs added), so a step two processes plan counts once. Runs
/// inside a transaction.
const REGISTER_STEPS: &str = "\
    LET $plan = type::record('run_plan', $run); \
    LET $before = (SELECT VALUE steps FROM $plan)[0] ?? []; \
    LET $after = IF $restart THEN $steps ELSE array::union($before, $steps) END; \
    UPSERT $plan SET steps = $after RETURN NONE; \
    IF $restart { UPDATE step_state SET counted = false, grown = 0, started = NONE, ended = NONE, retries = 0 \
        WHERE run_id = $run RETURN NONE; }; \
    UPSERT type::record('run_counter', $run) SET total = IF $restart THEN array::len($after) \
        ELSE (total ?? 0) + array::len($after) - array::len($before) END, \
        completed = IF $restart THEN 0 ELSE completed ?? 0 END RETURN NONE;";

impl Storage {
    /// Creates the run `run.run_id` owned by `owner`, or, when it exists, claims it or attaches
    /// to it:
    /// - `NotStarted`, or a terminal status (a re-execution), or `Running` with no heartbeat
    ///   newer than `dead_after`: the caller claims it and it becomes `Running` (a re-execution
    ///   without `resume` restarts its progress count);
    /// - `Running` with a live owner: the caller attaches;
    /// - `Queued`: an error, since only the queue starts a queued run.
    ///
    /// # Errors
    /// `InvalidArgument` for a queued run; `Backend` for a failed write.
    pub async fn open_run(
        &self,
        run: NewRun,
        owner: &RunOwner,
        resume: bool,
        dead_after: Duration,
    ) -> Result<RunClaim> {
        let run_id = run.run_id.clone();
        match self.create_owned_run(run, owner).await {
            Ok(()) => return Ok(RunClaim::Owned { previous: None }),
            Err(Error::AlreadyExists { .. }) => {}
            Err(err) => return Err(err),
        }
        let claimable: Vec<&str> = RunStatus::predecessors(RunStatus::Running).iter().map(|s| s.as_str()).collect();
        for _ in 0..OPEN_ATTEMPTS {
            let now = now_ns();
            let before = self
                .rows(
                    "UPDATE type::record('run', $id) SET status = 'Running', owner = $owner, \
                         owner_process = $process, owner_host = $host, owner_pid = $pid, heartbeat = $now, \
                         end_time = NONE, message = NONE \
                     WHERE status IN $claimable \
                         OR (status = 'Running' AND (heartbeat ?? 0) < $stale_before) \
                     RETURN BEFORE",
                    json!({"id": run_id, "owner": owner.token, "process": owner.process, "host": owner.host,
                           "pid": owner.pid, "now": now,
                           "resume": resume, "claimable": claimable,
                           "stale_before": now - dead_after.as_nanos() as i64}),
                )
                .await?;
            if let Some(previous) = decode::<RunRecord>("run", without_id(before))?.into_iter().next() {
                return Ok(RunClaim::Owned { previous: Some(Box::new(previous)) });
            }
            match self.get_run(&run_id).await? {
                Some(current) if current.status == RunStatus::Queued => {
                    return Err(Error::InvalidArgument(format!(
                        "run '{run_id}' is queued: the run queue starts it when its limits allow; cancel it \
                         (cancel_queued_run) or use another run_id_override to execute now"
                    )));
                }
                Some(current) if current.status == RunStatus::Running && !owner_is_alive(&current) => {
                    if let Some(previous) = self.claim_from(&run_id, owner, resume, current.owner.as_deref()).await? {
                        return Ok(RunClaim::Owned { previous: Some(Box::new(previous)) });
                    }
                }
                Some(current) if current.status == RunStatus::Running => {
                    let owner_process = current.owner_process.unwrap_or_else(|| "another process".into());
                    return Ok(RunClaim::Attached { owner_process });
                }
                // Deleted or moved on meanwhile: look again.
                _ => {}
            }
        }
        Err(Error::Contended { what: format!("open run '{run_id}'") })
    }

    /// Claims a `Running` run from its dead owner `dead`, unless another process did first.
    async fn claim_from(
        &self,
        run_id: &str,
        owner: &RunOwner,
        resume: bool,
        dead: Option<&str>,
    ) -> Result<Option<RunRecord>> {
        let before = self
            .rows(
                "UPDATE type::record('run', $id) SET owner = $owner, owner_process = $process, owner_host = $host, \
                     owner_pid = $pid, heartbeat = $now \
                 WHERE status = 'Running' AND owner = $dead RETURN BEFORE",
                json!({"id": run_id, "owner": owner.token, "process": owner.process, "host": owner.host,
                       "pid": owner.pid, "now": now_ns(), "resume": resume, "dead": dead}),
            )
            .await?;
        Ok(decode::<RunRecord>("run", without_id(before))?.into_iter().next())
    }

    async fn create_owned_run(&self, run: NewRun, owner: &RunOwner) -> Result<()> {
        let mut doc = self.run_document(run)?;
        let run = &mut doc.run;
        run["owner"] = json!(owner.token);
        run["owner_process"] = json!(owner.process);
        run["owner_host"] = json!(owner.host);
        run["owner_pid"] = json!(owner.pid);
        run["heartbeat"] = run["start_time"].clone();
        self.insert_run(doc).await
    }

    /// Records that `owner` is alive. `false` when it no longer owns the run (another process
    /// failed or claimed it after a missed heartbeat).
    ///
    /// # Errors
    /// `Backend` for a failed write.
    pub async fn heartbeat_run(&self, run_id: &str, owner: &RunOwner) -> Result<bool> {
        let rows = self
            .rows(
                "UPDATE type::record('run', $id) SET heartbeat = $now WHERE owner = $owner AND status = 'Running' \
                 RETURN VALUE true",
                json!({"id": run_id, "owner": owner.token, "now": now_ns()}),
            )
            .await?;
        Ok(!rows.is_empty())
    }

    /// Moves a run `owner` executes to its terminal `status`, after every event of the run
    /// is durable; `message` is the failure message. Progress counts are kept by the event
    /// batches and are not touched.
    ///
    /// # Errors
    /// `EventsNotWritten` when some of the run's events were lost (nothing is written then);
    /// `RunTakenOver` when `owner` no longer owns the run; `Backend` for a failed write.
    pub async fn finish_run(
        &self,
        run_id: &str,
        owner: &RunOwner,
        status: RunStatus,
        message: Option<&str>,
    ) -> Result<()> {
        self.flush_run(run_id).await?;
        self.write_finish(run_id, owner, status, message).await
    }

    /// [`Storage::finish_run`] without waiting for the run's events (records the failure of a
    /// run whose events could not all be written).
    ///
    /// # Errors
    /// As [`Storage::finish_run`], except `EventsNotWritten`.
    pub async fn write_finish(
        &self,
        run_id: &str,
        owner: &RunOwner,
        status: RunStatus,
        message: Option<&str>,
    ) -> Result<()> {
        debug_assert!(status.is_terminal(), "a run finishes with a terminal status");
        let rows = self
            .rows(
                "UPDATE type::record('run', $id) SET status = $status, message = $message, end_time = $end, \
                     owner = NONE, owner_process = NONE, owner_host = NONE, owner_pid = NONE \
                 WHERE owner = $owner AND status = 'Running' RETURN VALUE true",
                json!({"id": run_id, "owner": owner.token, "status": status.as_str(), "message": message,
                       "end": now_ns()}),
            )
            .await?;
        if rows.is_empty() {
            let now = self.get_run(run_id).await?;
            let detail = now.map_or_else(
                || "the run record is gone".to_string(),
                |run| {
                    format!("it is now {} (owned by {})", run.status, run.owner_process.as_deref().unwrap_or("nobody"))
                },
            );
            return Err(Error::RunTakenOver { run_id: run_id.into(), detail });
        }
        Ok(())
    }

    /// Registers the steps one process plans to execute in a run, for its progress count
    /// (its total): see [`PlanRegistration`].
    ///
    /// # Errors
    /// `Backend` for a failed write.
    pub async fn register_run_steps(
        &self,
        run_id: &str,
        step_keys: &[String],
        registration: PlanRegistration,
    ) -> Result<()> {
        self.execute(
            &format!("BEGIN TRANSACTION; {REGISTER_STEPS} COMMIT TRANSACTION;"),
            json!({"run": run_id, "steps": step_keys, "restart": registration == PlanRegistration::Restart}),
        )
        .await
    }

    /// Claims a run that its launcher created (`NotStarted`) for `owner` and registers its
    /// steps, in one transaction: what [`Storage::open_run`] and [`Storage::register_run_steps`]
    /// do for such a run, in one round trip and one commit. `None` when the run is not
    /// `NotStarted` (nothing is written; open it the general way); otherwise whether a
    /// cancellation was requested before it started.
    ///
    /// # Errors
    /// `Backend` for a failed write.
    pub async fn claim_created_run(
        &self,
        run_id: &str,
        owner: &RunOwner,
        step_keys: &[String],
    ) -> Result<Option<bool>> {
        let sql = format!(
            "BEGIN TRANSACTION; \
             LET $claimed = (UPDATE type::record('run', $run) SET status = 'Running', owner = $owner, \
                 owner_process = $process, owner_host = $host, owner_pid = $pid, heartbeat = $now, \
                 end_time = NONE, message = NONE \
                 WHERE status = 'NotStarted' RETURN VALUE cancel_requested ?? false); \
             IF array::len($claimed) > 0 {{ {REGISTER_STEPS} }}; \
             RETURN $claimed; \
             COMMIT TRANSACTION;"
        );
        let mut response = self
            .inner
            .client
            .query(
                &sql,
                json!({"run": run_id, "owner": owner.token, "process": owner.process, "host": owner.host,
                               "pid": owner.pid, "now": now_ns(), "steps": step_keys, "restart": false}),
            )
            .await?;
        // Results: BEGIN, LET, IF, RETURN, COMMIT.
        let claimed: Vec<bool> = response.take(3)?;
        Ok(claimed.first().copied())
    }

    /// `Running` runs whose owner has not written a heartbeat for `max_age`, optionally only
    /// those of one backend (a Kubernetes run is restarted by its operator, not failed), oldest
    /// first. Served by the status index: only running runs are read.
    ///
    /// # Errors
    /// `Backend` for a failed read.
    pub async fn stale_runs(&self, max_age: Duration, backend: Option<RunBackendKind>) -> Result<Vec<RunRecord>> {
        let backend_filter = if backend.is_some() { "AND (backend ?? 'local') = $backend" } else { "" };
        let sql = format!(
            "{RUN_COLUMNS} FROM run WITH INDEX run_status_time \
             WHERE status = 'Running' AND (heartbeat ?? 0) < $stale_before {backend_filter} ORDER BY start_time"
        );
        let vars =
            json!({"stale_before": now_ns() - max_age.as_nanos() as i64, "backend": backend.map(|b| b.as_str())});
        decode_runs(self.rows(&sql, vars).await?)
    }

    /// Fails every run [`Storage::stale_runs`] lists: status `Failure` with the cause in the
    /// run's message, and a `RunFailure` event. A run whose owner proves alive meanwhile is
    /// left alone. Returns the ids of the runs failed; `resume` re-executes them.
    ///
    /// # Errors
    /// `Backend` for a failed write.
    pub async fn fail_stale_runs(&self, max_age: Duration, backend: Option<RunBackendKind>) -> Result<Vec<String>> {
        let mut failed = Vec::new();
        for run in self.stale_runs(max_age, backend).await? {
            let silent_for = run.heartbeat.map_or_else(
                || "it never wrote one".to_string(),
                |beat| format!("the last was {:.0} s ago", (now_ns() - beat) as f64 / 1e9),
            );
            let message = format!(
                "the process executing the run ({}) stopped sending heartbeats ({silent_for}): it was \
                 probably killed or lost its node; resume the run to execute its unfinished steps",
                run.owner_process.as_deref().unwrap_or("unknown")
            );
            let rows = self
                .rows(
                    "UPDATE type::record('run', $id) SET status = 'Failure', message = $message, end_time = $now, \
                         owner = NONE, owner_process = NONE, owner_host = NONE, owner_pid = NONE \
                     WHERE status = 'Running' AND (heartbeat ?? 0) < $stale_before RETURN VALUE true",
                    json!({"id": run.run_id, "message": message, "now": now_ns(),
                           "stale_before": now_ns() - max_age.as_nanos() as i64}),
                )
                .await?;
            if rows.is_empty() {
                continue;
            }
            self.enqueue_event(crate::records::NewEvent::new(rivers_core::EventType::RunFailure, run.run_id.clone()));
            tracing::warn!(run_id = run.run_id, "failed a run whose process stopped sending heartbeats");
            failed.push(run.run_id);
        }
        // The failures' events are written together.
        for run_id in &failed {
            self.flush_run(run_id).await?;
        }
        Ok(failed)
    }
}

/// Rows returned by `RETURN BEFORE` carry the record id, which `RunRecord` does not hold.
fn without_id(rows: Vec<Value>) -> Vec<Value> {
    rows.into_iter()
        .filter(Value::is_object)
        .map(|mut row| {
            if let Some(fields) = row.as_object_mut() {
                for internal in ["id", "tag_pairs", "backfill_id"] {
                    fields.remove(internal);
                }
            }
            row
        })
        .collect()
}
