//! The change feed: new events, run changes and backfill changes in commit order, as any
//! process writing to the store commits them, resumable from a cursor.
//!
//! It reads SurrealDB's change feed (`SHOW CHANGES FOR DATABASE`), which schema 10 keeps for
//! the `event_segment`, `run` and `backfill` tables for a day. Each commit has a versionstamp,
//! increasing in commit order across every connection to the database; a [`FeedCursor`] is
//! that versionstamp, so a subscriber that reconnects with the cursor of the last commit it
//! handled resumes after it, missing and repeating nothing. The UI's server-sent events, the
//! daemon's wake-ups and cancellation across processes all read it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::records::{BackfillRecord, RunRecord, StoredEvent};
use crate::storage::decode_segment;

/// How often a subscription asks for new commits when the last read found none: the longest a
/// change waits before it is delivered.
pub const FEED_POLL: Duration = Duration::from_millis(50);
/// Commits read per query, at most (SurrealDB reads at most 1,000 entries of its feed, one per
/// table a commit changed).
const PAGE: usize = 256;
/// The most entries SurrealDB reads in one `SHOW CHANGES`.
const MAX_PAGE: usize = 1000;
/// How many commits may wait for a slow subscriber before reading pauses.
const BUFFER: usize = 1024;
/// How long a subscription waits before reading again after a failed read.
const RETRY_AFTER: Duration = Duration::from_millis(500);

/// A position in the change feed: the versionstamp of a commit. Its text form (a decimal
/// number) is what a subscriber keeps, for example as an SSE `Last-Event-ID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FeedCursor(u64);

impl fmt::Display for FeedCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for FeedCursor {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        text.trim().parse().map(FeedCursor).map_err(|_| {
            Error::InvalidArgument(format!(
                "'{text}' is not a change-feed cursor: use the cursor of a change the feed delivered"
            ))
        })
    }
}

/// One committed change.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Events stored together (one writer batch), in the order they were enqueued.
    Events(Vec<StoredEvent>),
    /// A run record was created or changed (status, outcome, heartbeat, cancellation request).
    /// A partition key stored apart from the run (more than 64 values) is `None` here;
    /// `get_run` reads it.
    Run(Box<RunRecord>),
    /// A backfill record was created or changed (status, counters, cancellation request).
    Backfill(Box<BackfillRecord>),
}

/// One read of the feed.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedPage {
    /// The commits read that changed event segments, runs or backfills, oldest first.
    pub entries: Vec<FeedEntry>,
    /// Where to read on from: the last commit read, whatever it changed (`None`: nothing was
    /// read, read from the same place again).
    pub cursor: Option<FeedCursor>,
    /// Whether the read stopped at its limit (more commits may follow at once).
    pub more: bool,
}

/// The changes of one commit, and the cursor to resume after it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedEntry {
    /// Where this commit is in the feed.
    pub cursor: FeedCursor,
    /// What it changed, in the order it wrote it.
    pub changes: Vec<Change>,
}

/// Where a read of the feed starts: after a commit, or at the start of the feed.
fn since_clause(after: Option<FeedCursor>) -> String {
    after.map_or(0, |cursor| cursor.0 + 1).to_string()
}

/// Which changes a read decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FeedScope {
    /// Events, runs and backfills.
    Everything,
    /// Runs and backfills only: event segments are passed over without being decoded (a
    /// process watching for cancellations need not parse every step's events again).
    RunsAndBackfills,
}

/// A subscription to the change feed; dropping it stops reading.
pub struct ChangeFeed {
    receiver: mpsc::Receiver<Result<FeedEntry>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ChangeFeed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ChangeFeed {
    /// The next commit's changes; `None` once the subscription ended.
    ///
    /// # Errors
    /// A failed read of the feed (the subscription keeps reading, from where it stopped) or
    /// a record this build cannot decode.
    ///
    /// # Cancel safety
    /// Cancel safe: an entry not returned stays queued for the next call.
    pub async fn next(&mut self) -> Option<Result<FeedEntry>> {
        self.receiver.recv().await
    }
}

/// The cursor of the newest commit in the feed (`None` when it holds none): a subscription
/// from "now" reads after it.
///
/// Found by bisecting the versionstamps with reads of one commit each (at most 64), because
/// `SHOW CHANGES ... SINCE <datetime>` cannot be trusted to map a time to a versionstamp on
/// every SurrealDB engine (the in-memory one reads the time as nanoseconds while it stamps
/// commits in milliseconds). Every later commit has a greater versionstamp.
pub(crate) async fn head(client: &Client) -> Result<Option<FeedCursor>> {
    let Some(mut newest) = first_commit_from(client, 0).await? else { return Ok(None) };
    // Invariant: a commit is stamped `newest`, none is stamped `ceiling` or later (a commit
    // made meanwhile may be: the bisection then ends at it).
    let mut ceiling = u64::MAX >> 1;
    while ceiling - newest > 1 {
        let middle = newest + (ceiling - newest) / 2;
        match first_commit_from(client, middle).await? {
            Some(stamp) => {
                newest = stamp;
                ceiling = ceiling.max(stamp + 1);
            }
            None => ceiling = middle,
        }
    }
    Ok(Some(FeedCursor(newest)))
}

/// The versionstamp of the first commit stamped `from` or later.
async fn first_commit_from(client: &Client, from: u64) -> Result<Option<u64>> {
    let sql = format!("SHOW CHANGES FOR DATABASE SINCE {from} LIMIT 1");
    let sets: Vec<Value> = client.query(&sql, serde_json::json!({})).await?.take(0)?;
    Ok(sets.first().and_then(|set| set["versionstamp"].as_u64()))
}

/// Up to `limit` commits after `after` (from the start of the feed for `None`), oldest first.
///
/// SurrealDB's limit counts the feed's entries, one per table a commit changed, so a read can
/// stop inside a commit: when it may have (as many entries as the limit), the last commit is
/// left for the next read, or, when it is the only one, read again with a larger limit.
pub(crate) async fn read(
    client: &Client,
    after: Option<FeedCursor>,
    limit: usize,
    scope: FeedScope,
) -> Result<FeedPage> {
    let mut limit = limit.clamp(1, MAX_PAGE);
    loop {
        let sql = format!("SHOW CHANGES FOR DATABASE SINCE {} LIMIT {limit}", since_clause(after));
        let mut sets: Vec<Value> = client.query(&sql, serde_json::json!({})).await?.take(0)?;
        let more = sets.iter().map(tables_changed).sum::<usize>() >= limit;
        if more && sets.len() == 1 && limit < MAX_PAGE {
            limit = (limit * 2).min(MAX_PAGE);
            continue;
        }
        if more && sets.len() > 1 {
            sets.pop();
        }
        let cursor = sets.last().and_then(|set| set["versionstamp"].as_u64()).map(FeedCursor).or(after);
        let entries =
            sets.into_iter().map(|set| entry(set, scope)).filter_map(Result::transpose).collect::<Result<_>>()?;
        return Ok(FeedPage { entries, cursor, more });
    }
}

/// How many tables a commit's change set touches: the feed's entries it takes.
fn tables_changed(set: &Value) -> usize {
    let tables: std::collections::BTreeSet<String> = set["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item.as_object()?.iter().next())
        .map(|(kind, change)| match &change["id"] {
            Value::String(id) => id.split(':').next().unwrap_or(id).to_owned(),
            Value::Object(id) => id.get("tb").and_then(Value::as_str).unwrap_or(kind).to_owned(),
            _ => change["name"].as_str().map_or_else(|| kind.clone(), str::to_owned),
        })
        .collect();
    tables.len().max(1)
}

/// A commit's entry; `None` for a commit that changed none of the feed's records (a table
/// definition).
fn entry(mut set: Value, scope: FeedScope) -> Result<Option<FeedEntry>> {
    let stamp = set["versionstamp"]
        .as_u64()
        .ok_or_else(|| Error::Corrupt { what: "change set".into(), detail: format!("no versionstamp in {set}") })?;
    let Value::Array(items) = set["changes"].take() else { return Ok(None) };
    let mut changes = Vec::new();
    for mut item in items {
        // Deletions (pruning) and table definitions are not changes subscribers act on.
        let record = item["update"].take();
        if record.is_null() || (scope == FeedScope::RunsAndBackfills && record["events"].is_array()) {
            continue;
        }
        changes.push(change(record)?);
    }
    Ok((!changes.is_empty()).then_some(FeedEntry { cursor: FeedCursor(stamp), changes }))
}

/// A changed record as what it is: a segment holds `events`, a run its `run_id` (it may also
/// name its backfill), a backfill only its `backfill_id`.
fn change(mut record: Value) -> Result<Change> {
    if let Some(fields) = record.as_object_mut() {
        fields.remove("id");
    }
    if record["events"].is_array() {
        decode_segment(record).map(Change::Events)
    } else if record.get("run_id").is_some() {
        serde_json::from_value(record)
            .map(|run| Change::Run(Box::new(run)))
            .map_err(|source| Error::Decode { what: "run", source })
    } else {
        serde_json::from_value(record)
            .map(|backfill| Change::Backfill(Box::new(backfill)))
            .map_err(|source| Error::Decode { what: "backfill", source })
    }
}

/// Reads the feed after `after` for as long as `deliver` accepts what it is given: each
/// commit in order, or the error of a failed read (read again after [`RETRY_AFTER`], from
/// where it stopped).
pub(crate) async fn tail<F, Fut>(client: &Client, mut after: Option<FeedCursor>, scope: FeedScope, mut deliver: F)
where
    F: FnMut(Result<FeedEntry>) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    loop {
        let wait = match read(client, after, PAGE, scope).await {
            Ok(page) => {
                for entry in page.entries {
                    if !deliver(Ok(entry)).await {
                        return;
                    }
                }
                after = page.cursor;
                if page.more { Duration::ZERO } else { FEED_POLL }
            }
            Err(err) => {
                if !deliver(Err(err)).await {
                    return;
                }
                RETRY_AFTER
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// Reads the feed after `after` in a task, forwarding each commit of `scope` to the
/// subscription.
pub(crate) fn follow(client: std::sync::Arc<Client>, after: Option<FeedCursor>, scope: FeedScope) -> ChangeFeed {
    let (sender, receiver) = mpsc::channel(BUFFER);
    let task = tokio::spawn(async move {
        tail(&client, after, scope, |item| {
            let sender = sender.clone();
            async move { sender.send(item).await.is_ok() }
        })
        .await;
    });
    ChangeFeed { receiver, task }
}
