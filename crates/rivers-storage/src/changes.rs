//! The change feed: new events and run-record changes as they are committed, by any process
//! writing to the store.
//!
//! It is built on SurrealDB live queries over the `event_segment` and `run` tables, so it
//! sees the writes of every connection to the same database (a UI process reading a server
//! that step pods write to), not only this handle's. The UI's server-sent events and the
//! daemon's event-driven wake-ups both read it.

use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::Value;
use surrealdb::Notification;
use surrealdb::types::Action;
use tokio::sync::mpsc;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::records::{RunRecord, StoredEvent};
use crate::storage::decode_segment;

/// How many changes may wait for a slow subscriber before the feed applies back-pressure to
/// its live queries.
const BUFFER: usize = 1024;

/// One committed change. Changes of different commits may arrive in a different order than
/// they were committed: order a run's events by `run_seq`.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Events stored together (one writer batch), in the order they were enqueued.
    Events(Vec<StoredEvent>),
    /// A run record was created or changed (status, outcome, cancellation request).
    Run(Box<RunRecord>),
}

/// A subscription to the change feed; dropping it ends the live queries.
pub struct ChangeFeed {
    receiver: mpsc::Receiver<Result<Change>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ChangeFeed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ChangeFeed {
    /// The next change; `None` once the store is closed.
    ///
    /// # Errors
    /// `Decode` for a record this build cannot read, `Backend` when the connection fails.
    ///
    /// # Cancel safety
    /// Cancel safe: a change not returned stays queued for the next call.
    pub async fn next(&mut self) -> Option<Result<Change>> {
        self.receiver.recv().await
    }
}

type Notifications = BoxStream<'static, surrealdb::Result<Notification<Value>>>;

async fn live(client: &Client, table: &str) -> Result<Notifications> {
    Ok(match client {
        Client::Local { db, .. } => db.select::<Vec<Value>>(table).live().await?.boxed(),
        Client::Remote { db } => db.select::<Vec<Value>>(table).live().await?.boxed(),
    })
}

fn change(table: &'static str, notification: Notification<Value>) -> Option<Result<Change>> {
    if !matches!(notification.action, Action::Create | Action::Update) {
        return None;
    }
    let record = notification.data;
    Some(match table {
        "event_segment" if record["events"].is_array() => decode_segment(record).map(Change::Events),
        "event_segment" => return None,
        _ => serde_json::from_value(record)
            .map(|run| Change::Run(Box::new(run)))
            .map_err(|source| Error::Decode { what: "run", source }),
    })
}

/// Starts the live queries and a task forwarding their notifications.
pub(crate) async fn subscribe(client: &Client) -> Result<ChangeFeed> {
    let segments = live(client, "event_segment").await?.map(|n| (n, "event_segment"));
    let runs = live(client, "run").await?.map(|n| (n, "run"));
    let mut merged = futures::stream::select(segments, runs);
    let (sender, receiver) = mpsc::channel(BUFFER);
    let task = tokio::spawn(async move {
        while let Some((notification, table)) = merged.next().await {
            let item = match notification {
                Ok(notification) => match change(table, notification) {
                    Some(item) => item,
                    None => continue,
                },
                Err(err) => Err(err.into()),
            };
            if sender.send(item).await.is_err() {
                break;
            }
        }
    });
    Ok(ChangeFeed { receiver, task })
}
