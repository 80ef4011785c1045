//! Cancellation requests for runs and backfills, as a process executing them sees them: those
//! made through this handle at once, and, once [`Storage::watch_cancellations`] runs, those
//! any other process stores, from the change feed. Executing code checks them without a
//! database round trip.

use std::collections::HashSet;
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::{OnceCell, watch};
use tokio::task::JoinHandle;

use super::Storage;
use crate::changes::{self, Change, FeedCursor};
use crate::client::Client;
use crate::error::Result;

/// The requests a handle knows of.
pub(crate) struct Cancellations {
    runs: Mutex<HashSet<String>>,
    backfills: Mutex<HashSet<String>>,
    /// Counts the requests learned so far; its receivers wake on each new one.
    learned: watch::Sender<u64>,
}

impl Default for Cancellations {
    fn default() -> Self {
        Self { runs: Mutex::default(), backfills: Mutex::default(), learned: watch::Sender::new(0) }
    }
}

impl Cancellations {
    fn learn_run(&self, run_id: &str) {
        if self.runs.lock().insert(run_id.to_owned()) {
            self.learned.send_modify(|count| *count += 1);
        }
    }

    fn learn_backfill(&self, backfill_id: &str) {
        if self.backfills.lock().insert(backfill_id.to_owned()) {
            self.learned.send_modify(|count| *count += 1);
        }
    }
}

/// The task reading cancellation requests from the change feed, started once per store by
/// [`Storage::watch_cancellations`] and stopped with the store.
#[derive(Default)]
pub(crate) struct CancelWatch {
    task: OnceCell<JoinHandle<()>>,
}

impl CancelWatch {
    /// Stops the task and waits until it let go of the connection.
    pub(crate) async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for CancelWatch {
    fn drop(&mut self) {
        if let Some(task) = self.task.get() {
            task.abort();
        }
    }
}

/// Reads the feed after `after` for cancellation requests until aborted.
async fn watch(client: Arc<Client>, cancellations: Arc<Cancellations>, after: Option<FeedCursor>) {
    changes::tail(&client, after, changes::FeedScope::RunsAndBackfills, |item| {
        match item {
            Ok(entry) => {
                for change in entry.changes {
                    match change {
                        Change::Run(run) if run.cancel_requested => cancellations.learn_run(&run.run_id),
                        Change::Backfill(backfill) if backfill.cancel_requested => {
                            cancellations.learn_backfill(&backfill.backfill_id);
                        }
                        _ => {}
                    }
                }
            }
            Err(err) => tracing::warn!(error = %err, "reading cancellation requests from the change feed failed"),
        }
        std::future::ready(true)
    })
    .await;
}

impl Storage {
    /// Starts learning the cancellation requests other processes store (once per store;
    /// later calls return at once). A process executing runs or coordinating backfills calls
    /// this before it starts them: requests stored from then on reach
    /// [`Storage::is_cancel_requested_locally`] and [`Storage::is_backfill_cancel_seen`]
    /// within the feed's poll interval ([`crate::FEED_POLL`]).
    ///
    /// # Errors
    /// A failed read of the change feed.
    pub async fn watch_cancellations(&self) -> Result<()> {
        self.inner
            .cancel_watch
            .task
            .get_or_try_init(|| async {
                let head = changes::head(&self.inner.client).await?;
                let (client, cancellations) = (Arc::clone(&self.inner.client), Arc::clone(&self.inner.cancellations));
                Ok(tokio::spawn(watch(client, cancellations, head)))
            })
            .await
            .map(|_| ())
    }

    /// A receiver that wakes whenever this handle learns of a new cancellation request.
    #[must_use]
    pub fn cancellation_requests(&self) -> watch::Receiver<u64> {
        self.inner.cancellations.learned.subscribe()
    }

    /// Sets the cooperative cancellation flag of a run. A run not created yet is flagged on this
    /// handle only, so a run started through it later begins cancelled.
    ///
    /// # Errors
    /// A failed write.
    pub async fn request_cancellation(&self, run_id: &str) -> Result<()> {
        self.inner.cancellations.learn_run(run_id);
        self.execute("UPDATE type::record('run', $id) SET cancel_requested = true RETURN NONE", json!({"id": run_id}))
            .await
    }

    /// Withdraws a run's cancellation request, on this handle and in storage: `resume` of a
    /// run that ended `Canceled` runs again instead of cancelling itself at once.
    ///
    /// # Errors
    /// A failed write.
    pub async fn clear_cancellation(&self, run_id: &str) -> Result<()> {
        self.inner.cancellations.runs.lock().remove(run_id);
        self.execute("UPDATE type::record('run', $id) SET cancel_requested = false RETURN NONE", json!({"id": run_id}))
            .await
    }

    /// Whether this handle knows that cancellation of the run was requested (no database
    /// round trip): through this handle, or by any process once cancellations are watched.
    pub fn is_cancel_requested_locally(&self, run_id: &str) -> bool {
        self.inner.cancellations.runs.lock().contains(run_id)
    }

    /// Whether this handle knows that cancellation of the backfill was requested: through
    /// this handle, or by any process once cancellations are watched.
    pub fn is_backfill_cancel_seen(&self, backfill_id: &str) -> bool {
        self.inner.cancellations.backfills.lock().contains(backfill_id)
    }

    pub(super) fn learn_backfill_cancel(&self, backfill_id: &str) {
        self.inner.cancellations.learn_backfill(backfill_id);
    }

    /// Whether cancellation was requested, through any handle (one read of the run).
    ///
    /// # Errors
    /// A failed read.
    pub async fn is_cancelled(&self, run_id: &str) -> Result<bool> {
        if self.is_cancel_requested_locally(run_id) {
            return Ok(true);
        }
        let rows =
            self.rows("SELECT VALUE cancel_requested FROM type::record('run', $id)", json!({"id": run_id})).await?;
        Ok(rows.first().and_then(Value::as_bool).unwrap_or(false))
    }
}
