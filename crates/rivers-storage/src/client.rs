//! The connection under a `Storage` handle: a local datastore (memory or RocksDB) that this
//! process owns and can shut down, or a client of a SurrealDB server.
//!
//! The SDK's any-engine client cannot shut a local datastore down (it lives until the runtime
//! ends, holding RocksDB's lock), so local stores are built from a `Datastore` we keep and
//! close ourselves; remote stores use the any-engine client over WebSocket.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use surrealdb::Surreal;
use surrealdb::engine::any::Any;
use surrealdb::engine::local::Db;
use surrealdb_core::kvs::{Builder, Datastore};

use crate::error::{Error, Result};

/// How long a query may wait for a SurrealDB server. Indexed reads and batched writes take
/// milliseconds; waiting longer means the server is gone (the SDK would wait for it forever).
pub(crate) const REMOTE_QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a remote store lives and who signs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteTarget {
    /// `ws://host:port` or `wss://host:port`.
    pub endpoint: String,
    /// SurrealDB namespace.
    pub namespace: String,
    /// SurrealDB database.
    pub database: String,
    /// Database-scoped user; sign-in happens only when both user and password are set.
    pub credentials: Option<(String, String)>,
}

impl RemoteTarget {
    /// Resolves each setting independently: an explicit value wins, then the matching
    /// `RIVERS_SURREAL_*` environment variable (an empty one counts as unset), then the
    /// default (`rivers` / `main`, no credentials). Sign-in happens only when both user and
    /// password resolve to non-empty strings.
    pub fn resolve(
        endpoint: String,
        username: Option<String>,
        password: Option<String>,
        namespace: Option<String>,
        database: Option<String>,
    ) -> Self {
        Self::resolve_with(endpoint, username, password, namespace, database, |name| std::env::var(name).ok())
    }

    /// [`RemoteTarget::resolve`] with the environment given as a lookup function.
    pub fn resolve_with(
        endpoint: String,
        username: Option<String>,
        password: Option<String>,
        namespace: Option<String>,
        database: Option<String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Self {
        let setting = |explicit: Option<String>, variable: &str| {
            explicit.or_else(|| env(variable)).filter(|value: &String| !value.is_empty())
        };
        let username = setting(username, "RIVERS_SURREAL_USERNAME");
        let password = setting(password, "RIVERS_SURREAL_PASSWORD");
        RemoteTarget {
            endpoint,
            namespace: setting(namespace, "RIVERS_SURREAL_NAMESPACE").unwrap_or_else(|| "rivers".into()),
            database: setting(database, "RIVERS_SURREAL_DATABASE").unwrap_or_else(|| "main".into()),
            credentials: username.zip(password),
        }
    }
}

pub(crate) enum Client {
    /// Memory or RocksDB, owned by this process.
    Local { db: Surreal<Db>, datastore: Arc<Datastore> },
    /// A SurrealDB server over WebSocket.
    Remote { db: Surreal<Any> },
}

impl Client {
    pub(crate) async fn open_local(spec: &str, location: &str) -> Result<Self> {
        // Live queries (the change feed) are delivered through this channel; the SDK client
        // routes them to their subscribers.
        let (notify, notifications) = async_channel::unbounded();
        let datastore = Builder::new().with_notify(notify).build_with_path(spec).await.map_err(|err| {
            let text = format!("{err:#}");
            if text.to_lowercase().contains("lock") {
                Error::Locked { location: location.into(), detail: text }
            } else {
                Error::Backend(format!("cannot open storage at {location}: {text}"))
            }
        })?;
        datastore
            .bootstrap()
            .await
            .map_err(|err| Error::Backend(format!("cannot bootstrap storage at {location}: {err:#}")))?;
        let db = Surreal::<Db>::unstable_from_datastore(Arc::clone(&datastore), Some(notifications)).await?;
        Ok(Client::Local { db, datastore })
    }

    pub(crate) async fn connect(target: &RemoteTarget) -> Result<Self> {
        let endpoint = &target.endpoint;
        if !(endpoint.starts_with("ws://") || endpoint.starts_with("wss://")) {
            return Err(Error::InvalidArgument(format!(
                "unsupported SurrealDB endpoint {endpoint:?}: use a ws:// or wss:// URL such as \
                 ws://localhost:8000"
            )));
        }
        let db = surrealdb::engine::any::connect(endpoint.as_str())
            .await
            .map_err(|err| Error::Backend(format!("cannot connect to SurrealDB at {endpoint}: {err}")))?;
        if let Some((username, password)) = &target.credentials {
            db.signin(surrealdb::opt::auth::Database {
                namespace: target.namespace.clone(),
                database: target.database.clone(),
                username: username.clone(),
                password: password.clone(),
            })
            .await
            .map_err(|err| {
                Error::Backend(format!(
                    "cannot sign in to SurrealDB at {endpoint} as database user '{username}' of {}/{}: {err}",
                    target.namespace, target.database
                ))
            })?;
        }
        Ok(Client::Remote { db })
    }

    pub(crate) async fn use_ns_db(&self, namespace: &str, database: &str) -> Result<()> {
        match self {
            Client::Local { db, .. } => db.use_ns(namespace).use_db(database).await?,
            Client::Remote { db } => db.use_ns(namespace).use_db(database).await?,
        };
        Ok(())
    }

    /// Runs `sql` with `vars` bound; statement errors are left in the response.
    ///
    /// # Errors
    /// `Backend` when the query fails, or when a server does not answer within
    /// [`REMOTE_QUERY_TIMEOUT`].
    pub(crate) async fn query(&self, sql: &str, vars: Value) -> Result<surrealdb::IndexedResults> {
        self.query_within(sql, vars, Some(REMOTE_QUERY_TIMEOUT)).await
    }

    /// [`Client::query`] with a caller-chosen bound on how long a server may take (`None`:
    /// unbounded, for migrations over a whole store). Local stores are never bounded: they
    /// cannot lose a connection.
    pub(crate) async fn query_within(
        &self,
        sql: &str,
        vars: Value,
        timeout: Option<Duration>,
    ) -> Result<surrealdb::IndexedResults> {
        match self {
            Client::Local { db, .. } => Ok(db.query(sql).bind(vars).await?),
            Client::Remote { db } => {
                let query = db.query(sql).bind(vars);
                match timeout {
                    None => Ok(query.await?),
                    // While the server is unreachable the SDK keeps reconnecting and holds
                    // queries back indefinitely; a bound turns that into an error.
                    Some(limit) => tokio::time::timeout(limit, query)
                        .await
                        .map_err(|_| {
                            Error::Backend(format!(
                                "the SurrealDB server did not answer within {} s (is it running and reachable?)",
                                limit.as_secs()
                            ))
                        })?
                        .map_err(Error::from),
                }
            }
        }
    }

    /// Releases the store: a local datastore is shut down (flushing RocksDB and releasing its
    /// lock), a remote connection is dropped with the handle.
    pub(crate) async fn shutdown(&self) -> Result<()> {
        match self {
            Client::Local { datastore, .. } => {
                datastore.shutdown().await.map_err(|err| Error::Backend(format!("storage shutdown failed: {err:#}")))
            }
            Client::Remote { .. } => Ok(()),
        }
    }
}
