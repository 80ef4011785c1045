//! The `Storage` handle: one SurrealDB datastore plus its batched event writer.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use surrealdb::Surreal;
use surrealdb::engine::local::Db;
use surrealdb_core::kvs::Datastore;

use crate::error::{Error, Result};
use crate::schema::{BOOTSTRAP, SCHEMA_VERSION};
use crate::writer::Writer;

mod assets;
mod events;
mod kv;
mod runs;

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

pub(crate) fn decode<T: DeserializeOwned>(what: &'static str, rows: Vec<Value>) -> Result<Vec<T>> {
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
}
