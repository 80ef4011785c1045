//! The batching tick writer: ticks from every loop are written together, when
//! `RIVERS_TICK_BATCH_SIZE` are pending or 500 ms after the first of them, and pruned to
//! `max_ticks_retained` per automation in the same transaction. A tick that moves a sensor's
//! cursor or created runs is written durably before its loop goes on (a daemon killed right
//! after must not evaluate again from the older cursor).

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use rivers_storage::{Storage, StorageKind, StoredTick};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::clock::Clock;

/// How long a tick may wait for others to share its write.
pub const TICK_FLUSH_INTERVAL: Duration = Duration::from_millis(500);

/// The variable that overrides the batch size.
pub const TICK_BATCH_SIZE_VAR: &str = "RIVERS_TICK_BATCH_SIZE";

/// The batch size for `storage`: `RIVERS_TICK_BATCH_SIZE` when set to a positive integer,
/// else 32 in memory and 256 in a database on disk or a server.
pub fn tick_batch_size(storage: &Storage) -> usize {
    let default = if storage.kind() == StorageKind::Memory { 32 } else { 256 };
    std::env::var(TICK_BATCH_SIZE_VAR)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

enum Message {
    Tick(StoredTick),
    /// Write everything pending now and report the outcome.
    Flush(oneshot::Sender<Result<(), String>>),
    /// Write everything pending and stop.
    Close,
}

/// Writes ticks in batches on a task of its own.
pub struct TickWriter {
    sender: mpsc::UnboundedSender<Message>,
}

impl TickWriter {
    /// Starts the writer; the task ends after [`TickWriter::close`], once the pending ticks
    /// are written.
    pub fn start(
        storage: Storage,
        clock: Arc<dyn Clock>,
        batch_size: usize,
        retain: Option<usize>,
    ) -> (Self, JoinHandle<()>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let task = tokio::spawn(write_batches(storage, clock, batch_size.max(1), retain, receiver));
        (Self { sender }, task)
    }

    /// Queues `tick`; it is written with the next batch.
    pub fn write(&self, tick: StoredTick) {
        // The writer outlives every loop (it is closed last); a send after that is dropped.
        let _ = self.sender.send(Message::Tick(tick));
    }

    /// Queues `tick` and returns once it is stored.
    ///
    /// # Errors
    /// The storage error's text when the batch holding it could not be written.
    pub async fn write_durably(&self, tick: StoredTick) -> Result<(), String> {
        self.write(tick);
        self.flush().await
    }

    /// Writes everything pending now.
    ///
    /// # Errors
    /// The storage error's text when the batch could not be written.
    pub async fn flush(&self) -> Result<(), String> {
        let (done, outcome) = oneshot::channel();
        self.sender.send(Message::Flush(done)).map_err(|_| "the tick writer has stopped".to_owned())?;
        outcome.await.map_err(|_| "the tick writer has stopped".to_owned())?
    }

    /// Writes what is pending and stops the writer.
    pub fn close(&self) {
        let _ = self.sender.send(Message::Close);
    }
}

async fn write_batches(
    storage: Storage,
    clock: Arc<dyn Clock>,
    batch_size: usize,
    retain: Option<usize>,
    mut receiver: mpsc::UnboundedReceiver<Message>,
) {
    let interval = TimeDelta::from_std(TICK_FLUSH_INTERVAL).unwrap_or_default();
    let mut pending: Vec<StoredTick> = Vec::new();
    let mut waiters: Vec<oneshot::Sender<Result<(), String>>> = Vec::new();
    // When the oldest pending tick has waited long enough.
    let mut due: Option<chrono::DateTime<chrono::Utc>> = None;
    loop {
        let (message, timer) = match due {
            None => (receiver.recv().await, false),
            Some(at) => tokio::select! {
                message = receiver.recv() => (message, false),
                () = clock.sleep_until(at) => (None, true),
            },
        };
        let mut closed = message.is_none() && !timer;
        let mut take = |message| match message {
            Message::Tick(tick) => pending.push(tick),
            Message::Flush(done) => waiters.push(done),
            Message::Close => closed = true,
        };
        if let Some(message) = message {
            take(message);
        }
        // Take whatever else is already queued, so a burst is written as one batch.
        while let Ok(message) = receiver.try_recv() {
            take(message);
        }
        if timer || closed || !waiters.is_empty() || pending.len() >= batch_size {
            let outcome = storage.write_ticks(&pending, retain).await.map_err(|error| error.to_string());
            if let Err(error) = &outcome {
                tracing::error!(ticks = pending.len(), %error, "writing ticks failed");
            }
            pending.clear();
            due = None;
            for waiter in waiters.drain(..) {
                let _ = waiter.send(outcome.clone());
            }
        } else if due.is_none() && !pending.is_empty() {
            due = Some(clock.now() + interval);
        }
        if closed {
            return;
        }
    }
}
