//! The batched event writer (group commit).
//!
//! The engine enqueues events and never waits for a database round trip per event. A single
//! task drains whatever is queued, writes it in one transaction (an event segment, the indexed
//! state the events change, captured step logs), then takes the next batch; under load batches
//! grow by themselves, idle there is no added latency.
//!
//! A batch that fails is retried with backoff. If it still fails, its events are lost, and
//! that is never silent: every flush waiting on the batch gets the error, and every later
//! flush scoped to a run that lost events gets it too, so the engine cannot record that run's
//! steps as succeeded or end it `Success`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::client::{CONFLICT_RETRIES, Client, conflict_backoff};
use crate::error::{Error, Result};
use crate::records::{StoredEvent, StoredLog};
use crate::state::StateUpdates;
use crate::storage::{PartitionStatusChange, is_partition_state_changed, prepare_partition_writes};

/// Most events written in one transaction; bounds the size of a single commit.
const MAX_BATCH: usize = 2048;

/// How long a batch nobody waits for yet keeps gathering events before it is written. Each
/// commit has a fixed cost (statement planning, the transaction); steps emit a few events
/// each, so without this a sequential run pays that cost several times per step.
const LINGER: Duration = Duration::from_millis(2);

/// How a failed batch is retried: the waits before the 2nd, 3rd, ... attempt. About 2 s in
/// all: long enough to ride out a transaction conflict or a server's brief hiccup, short
/// enough that a store that is really gone fails the run promptly.
const RETRY_DELAYS: [Duration; 3] =
    [Duration::from_millis(100), Duration::from_millis(400), Duration::from_millis(1500)];

/// How long one attempt of a batch may wait for a server before it counts as failed (and is
/// retried). A batch commits in milliseconds; this only bounds a server that went away.
const WRITE_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

pub(crate) enum Command {
    Event(Box<StoredEvent>),
    Log(StoredLog),
    PartitionStatus(PartitionStatusChange),
    /// Steps a run's plan grew by (fan-out instances): counted in its progress.
    PlanGrowth(PlanGrowth),
    /// Resolves once everything enqueued before it was written, with an error if any of it
    /// was lost, or (when scoped to a run) if that run lost events at any time.
    Flush {
        run_id: Option<String>,
        done: oneshot::Sender<Result<()>>,
    },
    /// Forgets a run's lost events (a resumed run starts clean).
    ResetRun(String),
}

impl Command {
    /// Whether this is something to write (not a flush or a reset).
    fn is_write(&self) -> bool {
        matches!(self, Command::Event(_) | Command::Log(_) | Command::PartitionStatus(_) | Command::PlanGrowth(_))
    }
}

/// Steps a step added to its run's plan while the run executes (fan-out instances).
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct PlanGrowth {
    pub(crate) run_id: String,
    pub(crate) producer: String,
    pub(crate) partition: Option<String>,
    pub(crate) added: usize,
}

/// Events of one run that could not be written.
#[derive(Debug, Clone)]
struct Lost {
    count: usize,
    /// `StepSuccess of 'a'`-style descriptions of the first few lost events.
    examples: Vec<String>,
    cause: Arc<Error>,
}

impl Lost {
    fn error(&self, run_id: &str) -> Error {
        Error::EventsNotWritten {
            run_id: run_id.to_string(),
            count: self.count,
            events: self.examples.join(", "),
            source: Arc::clone(&self.cause),
        }
    }
}

/// A deliberate write failure, for tests of the failure paths.
#[cfg(feature = "testing")]
#[derive(Debug, Clone, Copy)]
pub struct FailBatches {
    /// 1-based number of the first batch (counted from when the plan is installed) that fails.
    pub first: u64,
    /// How many attempts fail from then on (`u64::MAX`: the store never recovers).
    pub attempts: u64,
}

#[derive(Default)]
pub(crate) struct Faults {
    #[cfg(feature = "testing")]
    plan: parking_lot::Mutex<Option<(FailBatches, u64, u64)>>,
}

impl Faults {
    #[cfg(feature = "testing")]
    pub(crate) fn install(&self, plan: FailBatches) {
        *self.plan.lock() = Some((plan, 0, 0));
    }

    /// Called once per write attempt; `is_retry` attempts do not advance the batch count.
    #[cfg_attr(not(feature = "testing"), allow(clippy::unused_self, reason = "no faults outside tests"))]
    fn check(&self, is_retry: bool) -> Result<()> {
        #[cfg(feature = "testing")]
        if let Some((plan, batches, failed)) = self.plan.lock().as_mut() {
            if !is_retry {
                *batches += 1;
            }
            if *batches >= plan.first && *failed < plan.attempts {
                *failed += 1;
                return Err(Error::Injected { batch: *batches });
            }
        }
        let _ = is_retry;
        Ok(())
    }
}

pub(crate) struct Writer {
    pub(crate) sender: mpsc::UnboundedSender<Command>,
    /// Writes enqueued and not yet attempted: a flush with none waits for nothing.
    unwritten: Arc<AtomicUsize>,
    #[cfg(feature = "testing")]
    pub(crate) faults: Arc<Faults>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    pub(crate) fn spawn(client: Arc<Client>) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        let faults = Arc::new(Faults::default());
        let unwritten = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(run(client, Arc::clone(&faults), Arc::clone(&unwritten), receiver));
        Writer {
            sender,
            unwritten,
            #[cfg(feature = "testing")]
            faults,
            task,
        }
    }

    /// Enqueues a write (an event, captured output, a status change, a plan growth). A closed
    /// channel means the writer is gone; the next flush reports it.
    pub(crate) fn submit(&self, command: Command) {
        self.unwritten.fetch_add(1, Ordering::SeqCst);
        if self.sender.send(command).is_err() {
            self.unwritten.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Whether every write enqueued so far has been attempted.
    pub(crate) fn is_idle(&self) -> bool {
        self.unwritten.load(Ordering::SeqCst) == 0
    }

    /// Stops the writer after it has drained its queue, releasing its connection.
    pub(crate) async fn stop(self) {
        drop(self.sender);
        let _ = self.task.await;
    }
}

struct Waiter {
    run_id: Option<String>,
    done: oneshot::Sender<Result<()>>,
}

async fn run(
    client: Arc<Client>,
    faults: Arc<Faults>,
    unwritten: Arc<AtomicUsize>,
    mut receiver: mpsc::UnboundedReceiver<Command>,
) {
    let mut lost: HashMap<String, Lost> = HashMap::new();
    let mut events: Vec<StoredEvent> = Vec::new();
    let mut logs: Vec<StoredLog> = Vec::new();
    // Each change after the number of events enqueued before it: state follows event order.
    let mut status: Vec<(usize, PartitionStatusChange)> = Vec::new();
    let mut growths: Vec<PlanGrowth> = Vec::new();
    let mut waiters: Vec<Waiter> = Vec::new();
    let mut open = true;
    while open {
        let Some(first) = receiver.recv().await else { break };
        let mut next = Some(first);
        let mut taken = 0;
        let linger_until = tokio::time::Instant::now() + LINGER;
        loop {
            while let Some(command) = next.take() {
                if command.is_write() {
                    taken += 1;
                }
                match command {
                    Command::Event(event) => events.push(*event),
                    Command::Log(log) => logs.push(log),
                    Command::PartitionStatus(change) => status.push((events.len(), change)),
                    Command::PlanGrowth(growth) => growths.push(growth),
                    Command::Flush { run_id, done } => waiters.push(Waiter { run_id, done }),
                    Command::ResetRun(run_id) => {
                        lost.remove(&run_id);
                    }
                }
                if events.len() + logs.len() < MAX_BATCH {
                    next = receiver.try_recv().ok();
                }
            }
            // Nobody waits for this batch yet: gather what follows for a moment, so that a
            // step's events (and those of the next steps) share one commit. A flush ends the
            // wait at once.
            if !waiters.is_empty() || events.len() + logs.len() >= MAX_BATCH {
                break;
            }
            match tokio::time::timeout_at(linger_until, receiver.recv()).await {
                Ok(Some(command)) => next = Some(command),
                Ok(None) => {
                    open = false;
                    break;
                }
                Err(_) => break,
            }
        }
        let mut batch_error = None;
        if !events.is_empty() || !logs.is_empty() || !status.is_empty() || !growths.is_empty() {
            let batch = Batch { events: &events, logs: &logs, growths: &growths, status: &status };
            if let Err(err) = write_with_retry(&client, &faults, &batch).await {
                tracing::error!(error = %err, events = events.len(), logs = logs.len(),
                                "a batch of run events could not be written");
                let cause = Arc::new(err);
                record_lost(&mut lost, &events, &logs, &cause);
                batch_error = Some(cause);
            }
            events.clear();
            logs.clear();
            status.clear();
            growths.clear();
        }
        unwritten.fetch_sub(taken, Ordering::SeqCst);
        for waiter in waiters.drain(..) {
            let outcome = match (&waiter.run_id, &batch_error) {
                (Some(run_id), _) if lost.contains_key(run_id) => Err(lost[run_id].error(run_id)),
                (None, Some(cause)) => Err(Error::BatchNotWritten { source: Arc::clone(cause) }),
                _ => Ok(()),
            };
            let _ = waiter.done.send(outcome);
        }
    }
}

fn record_lost(lost: &mut HashMap<String, Lost>, events: &[StoredEvent], logs: &[StoredLog], cause: &Arc<Error>) {
    /// Lost events named in an error message; the count covers the rest.
    const EXAMPLES: usize = 5;
    let described = events
        .iter()
        .map(|event| {
            let description = match &event.asset_key {
                Some(key) => format!("{} of '{key}'", event.event_type),
                None => event.event_type.to_string(),
            };
            (&event.run_id, description)
        })
        .chain(logs.iter().map(|log| (&log.run_id, format!("captured output of '{}'", log.step_key))));
    for (run_id, description) in described {
        let entry = lost.entry(run_id.clone()).or_insert_with(|| Lost {
            count: 0,
            examples: Vec::new(),
            cause: Arc::clone(cause),
        });
        entry.count += 1;
        if entry.examples.len() < EXAMPLES {
            entry.examples.push(description);
        }
    }
}

/// What one group commit writes.
struct Batch<'a> {
    events: &'a [StoredEvent],
    logs: &'a [StoredLog],
    growths: &'a [PlanGrowth],
    status: &'a [(usize, PartitionStatusChange)],
}

async fn write_with_retry(client: &Client, faults: &Faults, batch: &Batch<'_>) -> Result<()> {
    // One id for every attempt of this batch: an attempt that timed out may still have been
    // committed, and the retry must then change nothing (every statement is idempotent).
    let segment = uuid::Uuid::now_v7().to_string();
    let mut delays = RETRY_DELAYS.iter();
    let mut is_retry = false;
    let mut contended = 0;
    loop {
        let attempt = match faults.check(is_retry) {
            Ok(()) => write_batch(client, Some(&segment), batch).await,
            Err(err) => Err(err),
        };
        // Another process changed partition state this batch read: read it again.
        if let Err(err) = &attempt
            && is_partition_state_changed(err)
            && contended < CONFLICT_RETRIES
        {
            contended += 1;
            tokio::time::sleep(conflict_backoff(contended)).await;
            continue;
        }
        match (attempt, delays.next()) {
            (Ok(()), _) => return Ok(()),
            (Err(err), Some(delay)) => {
                tracing::warn!(error = %err, retry_in = ?delay, "writing a batch of run events failed; retrying");
                tokio::time::sleep(*delay).await;
                is_retry = true;
            }
            (Err(err), None) => return Err(err),
        }
    }
}

/// One group commit: the event segment, the indexed state it changes, the runs' event
/// counters and the captured logs, in one transaction. Bulk `INSERT ... ON DUPLICATE KEY
/// UPDATE` statements cost one statement per table rather than one per record.
const WRITE_BATCH: &str = include_str!("queries/write_batch.surql");

/// Writes the indexed state of `events` without appending them to the log (migrations derive
/// state from history this way).
pub(crate) async fn apply_state(client: &Client, events: &[StoredEvent]) -> Result<()> {
    for chunk in events.chunks(MAX_BATCH) {
        write_batch(client, None, &Batch { events: chunk, logs: &[], growths: &[], status: &[] }).await?;
    }
    Ok(())
}

/// Writes one batch; `segment` names the event segment to append (`None`: state only).
async fn write_batch(client: &Client, segment: Option<&str>, batch: &Batch<'_>) -> Result<()> {
    let Batch { events, logs, growths, status } = *batch;
    // Each event is serialised once: the segment and the state rows hold the same text.
    let texts: Vec<String> = events.iter().map(crate::storage::event_text).collect();
    let updates = StateUpdates::from_events(events, &texts);
    let partitions = prepare_partition_writes(client, events, &texts, status).await?;
    let mut run_ids: Vec<&str> = events.iter().map(|e| e.run_id.as_str()).collect();
    run_ids.sort_unstable();
    run_ids.dedup();
    let mut asset_keys: Vec<&str> = events.iter().filter_map(|e| e.asset_key.as_deref()).collect();
    asset_keys.sort_unstable();
    asset_keys.dedup();
    let seq = events.first().map_or(Value::Null, |e| json!(e.timestamp));
    // Captured-output rows are keyed by their id, so a retried insert is ignored.
    let logs: Vec<Value> = logs
        .iter()
        .map(|log| {
            let mut row = json!(log);
            row["id"] = json!(log.id);
            row
        })
        .collect();
    let mut vars = json!({"segment": segment, "seq": seq, "run_ids": run_ids, "asset_keys": asset_keys,
                          "events": texts, "has_events": segment.is_some() && !events.is_empty(), "logs": logs,
                          "growths": growths});
    // The state updates and partition writes bind field by field (see write_batch.surql).
    let parts = [serde_json::to_value(updates), serde_json::to_value(partitions)];
    for part in parts.into_iter().map(|part| part.expect("batch state serialises: string keys, no floats")) {
        if let (Value::Object(vars), Value::Object(fields)) = (&mut vars, part) {
            vars.extend(fields);
        }
    }
    client.query_within(WRITE_BATCH, vars, Some(WRITE_ATTEMPT_TIMEOUT)).await?.check()?;
    Ok(())
}
