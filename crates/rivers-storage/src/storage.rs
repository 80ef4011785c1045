//! The `Storage` handle: one connection (a local datastore or a SurrealDB server) plus its
//! batched event writer.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::client::{Client, RemoteTarget};
use crate::error::{Error, Result};
use crate::identity::CodeLocationId;
use crate::records::StoredEvent;
use crate::writer::Writer;
use crate::{changes, migrations};

mod assets;
mod automation;
mod backfills;
mod cancellation;
mod code_locations;
mod conditions;
mod events;
mod kv;
mod ownership;
mod paging;
mod partition_status;
mod pools;
mod queue;
mod runs;

pub use automation::RunKey;
pub use backfills::BACKFILL_CLAIM_GRACE;
pub use code_locations::CodeLocationRecord;
pub use conditions::{
    AssetConditionState, AssetLatest, ConditionCheckpoint, ConditionEvaluationRecord, GridStatus, RunTargets,
    UnfinishedRun,
};
pub use events::AssetEventCursor;
pub use ownership::{PlanRegistration, RunClaim, RunOwner};
pub use paging::{Page, PageCursor};
pub use partition_status::{
    PartitionStatus, PartitionStatusChange, PartitionStatusKind, PartitionTransition, definition_fingerprint,
};
pub(crate) use partition_status::{
    expand_nth, is_state_changed as is_partition_state_changed, prepare_writes as prepare_partition_writes,
};
pub use pools::DEFAULT_POOL_LEASE;
pub use queue::{ActiveRun, QueuedRun};
pub use runs::RunFilter;

/// When an embedded store syncs its write-ahead log: on every commit.
const EMBEDDED_SYNC: &str = "every";

/// Namespace and database of local stores (a remote store names its own).
const LOCAL_NAMESPACE: &str = "rivers";
const LOCAL_DATABASE: &str = "main";

/// How long closing waits for the SDK's engine task to let go of a local datastore; past it
/// the datastore is released in the background and the path may stay locked a little longer.
const RELEASE_WAIT: Duration = Duration::from_secs(10);

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
    /// The code location this handle writes runs, backfills and snapshots for; handles of one
    /// store may write for different locations ([`Storage::for_code_location`]).
    code_location: Arc<CodeLocationId>,
}

struct Inner {
    client: Arc<Client>,
    kind: StorageKind,
    location: String,
    writer: Writer,
    /// Cancellation requests this handle knows of: checked between steps without a database
    /// round trip.
    cancellations: Arc<cancellation::Cancellations>,
    /// Learns other processes' requests from the change feed once started; stopped before
    /// the connection is released.
    cancel_watch: cancellation::CancelWatch,
    /// Dynamic key sets as last read, with the set's change count then (`Storage::dynamic_keys`).
    dynamic_keys: Mutex<HashMap<String, (i64, Arc<rivers_core::partitions::DynamicKeys>)>>,
    /// Partitions definitions by fingerprint, as read (a fingerprint names one definition).
    definitions: Mutex<HashMap<String, Arc<rivers_core::partitions::Partitions>>>,
    /// Last, so that it drops after the writer's channel (see [`Closer`]).
    closer: Closer,
}

/// Closes the store when its last handle is dropped without [`Storage::close`] (a daemon that
/// drops its `Storage`): once the writer has drained its queue and let go of the connection, a
/// local datastore is shut down and its files released, in the background of the runtime the
/// drop happens on. Without a runtime the connection is simply dropped.
struct Closer {
    client: Option<Arc<Client>>,
}

impl Drop for Closer {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        runtime.spawn(async move {
            // The writer task holds another reference until its queue is written.
            match sole_owner(client).await {
                Some(client) => Storage::release(client).await,
                None => tracing::warn!("a dropped storage handle's connection is still in use; it is not shut down"),
            }
        });
    }
}

/// The connection, once nothing else references it: the writer finishing its queue, a
/// subscription's task that was just aborted (within [`RELEASE_WAIT`]).
async fn sole_owner(client: Arc<Client>) -> Option<Client> {
    let deadline = tokio::time::Instant::now() + RELEASE_WAIT;
    while Arc::strong_count(&client) > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Arc::try_unwrap(client).ok()
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage").field("kind", &self.inner.kind).field("location", &self.inner.location).finish()
    }
}

pub(crate) fn decode<T: DeserializeOwned>(what: &'static str, rows: Vec<Value>) -> Result<Vec<T>> {
    rows.into_iter().map(|row| serde_json::from_value(row).map_err(|source| Error::Decode { what, source })).collect()
}

/// The first `bytes` bytes of the SHA-256 of `text`, in hex: the digests that name definition
/// grids and tell whether a stored snapshot changed.
pub(crate) fn sha256_hex(text: &str, bytes: usize) -> String {
    use sha2::Digest as _;
    use std::fmt::Write as _;
    let digest = sha2::Sha256::digest(text.as_bytes());
    digest[..bytes.min(digest.len())].iter().fold(String::with_capacity(bytes * 2), |mut hex, byte| {
        let _ = write!(hex, "{byte:02x}");
        hex
    })
}

/// Events as stored in segments and state rows: JSON text since schema 3 (SurrealDB stores a
/// string at a fraction of the cost of the same value as a document), documents before.
pub(crate) fn decode_events(items: Vec<Value>) -> Result<Vec<StoredEvent>> {
    items
        .into_iter()
        .map(|item| match item {
            Value::String(text) => serde_json::from_str(&text),
            other => serde_json::from_value(other),
        })
        .map(|decoded| decoded.map_err(|source| Error::Decode { what: "event", source }))
        .collect()
}

/// The events of one stored segment (a row with `events` and, since schema 6, `run_seq_ends`),
/// numbered in their runs. Numbers are assigned when a segment commits: `run_seq_ends` says
/// where each run's numbers end, and the segment's events of that run take the numbers up to
/// it, in order (a compact event takes one per partition it covers, and is numbered with the
/// first). Older segments carry their numbers in the events.
pub(crate) fn decode_segment(mut row: Value) -> Result<Vec<StoredEvent>> {
    let Value::Array(items) = row["events"].take() else { return Ok(Vec::new()) };
    let mut events = decode_events(items)?;
    let Value::Array(ends) = row["run_seq_ends"].take() else { return Ok(events) };
    let mut counts: HashMap<&str, i64> = HashMap::with_capacity(ends.len());
    for event in &events {
        *counts.entry(event.run_id.as_str()).or_default() += event.weight();
    }
    let mut next: HashMap<String, i64> = HashMap::with_capacity(ends.len());
    for end in &ends {
        if let (Some(run), Some(last)) = (end["run"].as_str(), end["last"].as_i64()) {
            next.insert(run.to_owned(), last - counts.get(run).copied().unwrap_or(0) + 1);
        }
    }
    for event in &mut events {
        if let Some(seq) = next.get_mut(&event.run_id) {
            event.run_seq = *seq;
            *seq += event.weight();
        }
    }
    Ok(events)
}

/// The JSON text an event is stored as.
pub(crate) fn event_text(event: &StoredEvent) -> String {
    serde_json::to_string(event).expect("events serialise: string keys, no non-finite floats")
}

impl Storage {
    /// Opens a fresh, empty in-memory store.
    ///
    /// # Errors
    /// `Backend` if the datastore cannot start.
    pub async fn memory() -> Result<Self> {
        let client = Client::open_local("memory", "memory").await?;
        Self::init(client, StorageKind::Memory, "memory".into(), LOCAL_NAMESPACE, LOCAL_DATABASE).await
    }

    /// Opens (creating if needed) an embedded RocksDB store at `path`.
    ///
    /// # Errors
    /// `Locked` when another live handle holds the path, `Backend` when the directory cannot be
    /// created, `SchemaMigrationNeeded` when the stored schema is older than this build.
    pub async fn embedded(path: &Path) -> Result<Self> {
        let location = Self::embedded_location(path)?;
        let client = Self::open_embedded(&location).await?;
        Self::init(client, StorageKind::Embedded, location, LOCAL_NAMESPACE, LOCAL_DATABASE).await
    }

    /// Connects to a SurrealDB server (eagerly: an unreachable server or failed sign-in fails
    /// here).
    ///
    /// # Errors
    /// `InvalidArgument` for a non-`ws(s)://` endpoint, `Backend` when the server cannot be
    /// reached or refuses the credentials, `SchemaMigrationNeeded` for an older schema.
    pub async fn connect(target: &RemoteTarget) -> Result<Self> {
        let client = Client::connect(target).await?;
        let location = format!("{} ({}/{})", target.endpoint, target.namespace, target.database);
        Self::init(client, StorageKind::Remote, location, &target.namespace, &target.database).await
    }

    /// Applies every pending schema migration to the embedded store at `path`, then closes it.
    ///
    /// # Errors
    /// As [`Storage::embedded`], or a failed migration step.
    pub async fn migrate_embedded(path: &Path) -> Result<()> {
        let location = Self::embedded_location(path)?;
        let client = Self::open_embedded(&location).await?;
        let outcome = Self::migrate_client(&client, &location, LOCAL_NAMESPACE, LOCAL_DATABASE).await;
        Self::release(client).await;
        outcome
    }

    /// Applies every pending schema migration to a SurrealDB server's database.
    ///
    /// # Errors
    /// As [`Storage::connect`], or a failed migration step.
    pub async fn migrate_remote(target: &RemoteTarget) -> Result<()> {
        let client = Client::connect(target).await?;
        let location = format!("{} ({}/{})", target.endpoint, target.namespace, target.database);
        Self::migrate_client(&client, &location, &target.namespace, &target.database).await
    }

    async fn migrate_client(client: &Client, location: &str, namespace: &str, database: &str) -> Result<()> {
        client.use_ns_db(namespace, database).await?;
        migrations::migrate(client, location).await
    }

    fn embedded_location(path: &Path) -> Result<String> {
        std::fs::create_dir_all(path).map_err(|source| Error::Io {
            action: "create storage directory",
            path: path.display().to_string(),
            source,
        })?;
        Ok(std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()).display().to_string())
    }

    async fn open_embedded(location: &str) -> Result<Client> {
        // Every commit is synced to disk before it returns (grouped by RocksDB's commit
        // coordinator), so neither a killed process nor a power loss loses a recorded step.
        Client::open_local(&format!("rocksdb://{location}?sync={EMBEDDED_SYNC}"), location).await
    }

    async fn init(
        client: Client,
        kind: StorageKind,
        location: String,
        namespace: &str,
        database: &str,
    ) -> Result<Self> {
        let checked = async {
            client.use_ns_db(namespace, database).await?;
            migrations::ensure_current(&client, &location).await
        }
        .await;
        if let Err(err) = checked {
            // Release the files (and the lock) of a store we refuse to use.
            Self::release(client).await;
            return Err(err);
        }
        let code_location = match CodeLocationId::from_env() {
            Ok(identity) => identity,
            Err(err) => {
                Self::release(client).await;
                return Err(err);
            }
        };
        let client = Arc::new(client);
        let writer = Writer::spawn(Arc::clone(&client));
        let closer = Closer { client: Some(Arc::clone(&client)) };
        Ok(Storage {
            inner: Arc::new(Inner {
                client,
                kind,
                location,
                writer,
                cancellations: Arc::default(),
                cancel_watch: cancellation::CancelWatch::default(),
                dynamic_keys: Mutex::new(HashMap::new()),
                definitions: Mutex::new(HashMap::new()),
                closer,
            }),
            code_location: Arc::new(code_location),
        })
    }

    /// Shuts a connection down and waits until nothing references its datastore any more, so
    /// an embedded path is unlocked when this returns.
    async fn release(client: Client) {
        // A datastore whose disk failed (full, or refusing writes) may never finish its
        // shutdown; the process must still be able to end.
        match tokio::time::timeout(RELEASE_WAIT, client.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(error = %err, "closing storage failed"),
            Err(_) => tracing::warn!(
                seconds = RELEASE_WAIT.as_secs(),
                "closing storage did not finish in time; its files are released when the process ends"
            ),
        }
        let Client::Local { db, datastore, .. } = client else { return };
        drop(db);
        // The SDK's engine task holds its own reference until it notices the client is gone.
        let deadline = tokio::time::Instant::now() + RELEASE_WAIT;
        while Arc::strong_count(&datastore) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if Arc::strong_count(&datastore) > 1 {
            tracing::warn!("the storage datastore is still referenced after close; its files are released later");
        }
    }

    /// Flushes pending events and closes the store if this is its last handle: an embedded
    /// store's files and lock are released when this returns. Other handles keep the store
    /// open (closing one of several handles only drops it).
    ///
    /// # Errors
    /// The error of the final flush (the store is closed all the same).
    pub async fn close(self) -> Result<()> {
        let flushed = self.flush().await;
        let Ok(inner) = Arc::try_unwrap(self.inner) else { return flushed };
        let Inner { client, writer, mut closer, cancel_watch, .. } = inner;
        // Closed here and now, not in the background.
        closer.client = None;
        cancel_watch.stop().await;
        writer.stop().await;
        match sole_owner(client).await {
            Some(client) => Self::release(client).await,
            None => tracing::warn!("storage connection still shared after its writer stopped"),
        }
        flushed
    }

    /// Whether this is the only live handle to the store.
    pub fn is_last_handle(&self) -> bool {
        Arc::strong_count(&self.inner) == 1
    }

    /// Backend kind.
    pub fn kind(&self) -> StorageKind {
        self.inner.kind
    }

    /// Where the store lives: a directory, `memory`, or an endpoint with namespace/database.
    pub fn location(&self) -> &str {
        &self.inner.location
    }

    /// Subscribes to the change feed: every batch of events and every run and backfill
    /// change committed to this store from now on, by any connection, in commit order. Drop
    /// the feed before closing the store (it holds the connection open).
    ///
    /// # Errors
    /// A failed read of the feed's newest commit.
    pub async fn subscribe(&self) -> Result<crate::ChangeFeed> {
        let head = changes::head(&self.inner.client).await?;
        Ok(changes::follow(Arc::clone(&self.inner.client), head, changes::FeedScope::Everything))
    }

    /// [`Storage::subscribe`] to run and backfill changes only: event batches are passed over
    /// undecoded, which is most of the feed while runs execute.
    ///
    /// # Errors
    /// A failed read of the feed's newest commit.
    pub async fn subscribe_to_runs(&self) -> Result<crate::ChangeFeed> {
        let head = changes::head(&self.inner.client).await?;
        Ok(changes::follow(Arc::clone(&self.inner.client), head, changes::FeedScope::RunsAndBackfills))
    }

    /// Subscribes to the change feed from the commit after `cursor` (the cursor of the last
    /// entry a previous subscription delivered): nothing is missed or repeated, as long as the
    /// cursor is younger than the feed's retention (a day).
    #[must_use]
    pub fn subscribe_after(&self, cursor: crate::FeedCursor) -> crate::ChangeFeed {
        changes::follow(Arc::clone(&self.inner.client), Some(cursor), changes::FeedScope::Everything)
    }

    /// Up to `limit` commits after `cursor`, oldest first (one read of the feed), and the
    /// cursor to read on from.
    ///
    /// # Errors
    /// A failed read, or a change this build cannot decode.
    pub async fn changes_after(&self, cursor: crate::FeedCursor, limit: usize) -> Result<crate::FeedPage> {
        changes::read(&self.inner.client, Some(cursor), limit, changes::FeedScope::Everything).await
    }

    /// A handle on the same store that writes for `code_location` (a process serving several
    /// locations, or a test); the identity from the environment is ignored.
    #[must_use]
    pub fn for_code_location(&self, code_location: impl Into<String>) -> Self {
        Storage { inner: Arc::clone(&self.inner), code_location: Arc::new(CodeLocationId::Known(code_location.into())) }
    }

    /// The code location this handle writes for.
    pub fn code_location(&self) -> &CodeLocationId {
        &self.code_location
    }

    /// Makes the next write batch (and the following `attempts - 1` retries) fail, for tests
    /// of the failure paths.
    #[cfg(feature = "testing")]
    pub fn fail_batches(&self, plan: crate::writer::FailBatches) {
        self.inner.writer.faults.install(plan);
    }

    async fn rows(&self, sql: &str, vars: Value) -> Result<Vec<Value>> {
        Ok(self.inner.client.query(sql, vars).await?.take(0)?)
    }

    async fn execute(&self, sql: &str, vars: Value) -> Result<()> {
        self.inner.client.query(sql, vars).await?.check()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn events_decode_from_text_and_from_the_documents_of_older_schemas() {
        let event = StoredEvent {
            id: "e1".into(),
            event_type: rivers_core::EventType::Materialization,
            asset_key: Some("a".into()),
            run_id: "r".into(),
            partition_key: None,
            timestamp: 7,
            run_seq: 1,
            metadata: vec![("k".into(), "v".into())],
            data_version: Some("v1".into()),
            code_version: None,
            input_data_versions: Vec::new(),
            span: None,
        };
        let text = Value::String(event_text(&event));
        let document = serde_json::to_value(&event).unwrap();
        assert_eq!(decode_events(vec![text, document]).unwrap(), vec![event.clone(), event]);
        let broken = decode_events(vec![Value::String("{".into())]).unwrap_err().to_string();
        assert!(broken.contains("event"), "{broken}");
    }

    /// The reads that must never scan history are answered from their indexes: SurrealDB
    /// silently scans a table when an index cannot serve a condition (an index on a bare
    /// array field cannot serve `CONTAINS`, for example).
    #[tokio::test]
    async fn history_reads_use_their_indexes() {
        let storage = Storage::memory().await.unwrap();
        let plans = [events::RUN_SEGMENTS.to_owned(), events::asset_segments(false), events::asset_segments(true)];
        for sql in plans {
            let vars = json!({"run": "r", "key": "k", "before": 7, "limit": 5, "value": "v"});
            let plan = serde_json::to_string(&storage.rows(&format!("{sql} EXPLAIN"), vars).await.unwrap()).unwrap();
            assert!(plan.contains("IndexScan") && !plan.contains("TableScan"), "{sql}\n{plan}");
        }
        storage.close().await.unwrap();
    }

    #[tokio::test]
    async fn errors_are_typed_at_the_border() {
        let storage = Storage::memory().await.unwrap();
        // A marker thrown by a transaction is recognised by its text, not by a substring.
        let thrown = storage.execute("THROW $marker", json!({"marker": "records moved"})).await.unwrap_err();
        assert!(thrown.is_thrown("records moved") && !thrown.is_thrown("records"), "{thrown:?}");
        // A statement's own failure keeps SurrealDB's error as its source.
        let failed = storage.execute("SELECT * FROM type::record('t', 1) WHERE", json!({})).await.unwrap_err();
        assert!(matches!(failed, Error::Database { .. }), "{failed:?}");
        assert!(std::error::Error::source(&failed).is_some());
        // In a failed transaction the failing statement's error is reported, not the others'.
        let committed = storage
            .execute(
                "BEGIN TRANSACTION; CREATE t:1; THROW 'second statement'; CREATE t:2; COMMIT TRANSACTION;",
                json!({}),
            )
            .await
            .unwrap_err();
        assert!(committed.is_thrown("second statement"), "{committed:?}");
        // A stamp that is not a version is reported, not taken for an empty store.
        storage.execute("UPSERT schema_stamp:current SET version = 'seven'", json!({})).await.unwrap();
        let stamp = crate::migrations::stored_version(&storage.inner.client).await.unwrap_err();
        assert!(matches!(stamp, Error::Corrupt { .. }) && stamp.to_string().contains("schema stamp"), "{stamp}");
        storage.close().await.unwrap();
    }
}
