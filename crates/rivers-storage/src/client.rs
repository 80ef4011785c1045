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

/// How many times a query that hit a transaction conflict is sent in all. Conflicts clear as
/// soon as the competing transaction commits; with the waits of [`conflict_backoff`] the
/// attempts span about two seconds, enough for dozens of writers contending for one record.
pub(crate) const CONFLICT_RETRIES: u32 = 12;

/// The randomised wait before attempt `attempt + 1` of a conflicted query: exponential from
/// 2 ms, capped at 250 ms, with full jitter so that contending writers spread out.
pub(crate) fn conflict_backoff(attempt: u32) -> Duration {
    let ceiling = (2u64 << attempt.min(7)).min(250);
    Duration::from_micros(fastrand::u64(500..=ceiling * 1000))
}

/// Runs `attempt` until it does not fail with a transaction conflict, at most
/// [`CONFLICT_RETRIES`] times, waiting [`conflict_backoff`] in between.
async fn retrying_conflicts<T, F, Fut>(mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(Error::Conflict { .. }) if tries < CONFLICT_RETRIES => {
                tokio::time::sleep(conflict_backoff(tries)).await;
                tries += 1;
            }
            Err(Error::Conflict { source, .. }) => return Err(Error::Conflict { attempts: tries, source }),
            other => return other,
        }
    }
}

/// What SurrealDB says of the statements of a failed transaction that did not fail themselves.
const NOT_EXECUTED: &str = "not executed due to a failed transaction";

/// Removes every statement error from `response` and returns the one to report: a retryable
/// conflict if any statement hit one, else the earliest statement's own error (in a failed
/// transaction the other statements only say they were not executed), else the earliest.
fn first_error(response: &mut surrealdb::IndexedResults) -> Option<Error> {
    let mut errors: Vec<(usize, Error)> =
        response.take_errors().into_iter().map(|(index, err)| (index, Error::from(err))).collect();
    errors.sort_by_key(|(index, _)| *index);
    let conflict = errors.iter().position(|(_, err)| matches!(err, Error::Conflict { .. }));
    let cause = || errors.iter().position(|(_, err)| !was_not_executed(err));
    match conflict.or_else(cause) {
        Some(position) => Some(errors.swap_remove(position).1),
        None => errors.into_iter().next().map(|(_, err)| err),
    }
}

/// Whether `err` only says its statement was skipped because another one failed the
/// transaction. Only the text tells: SurrealDB gives a failed `COMMIT` (which carries the
/// root cause, such as an I/O error) the same structured kind.
fn was_not_executed(err: &Error) -> bool {
    matches!(err, Error::Database { source } if source.to_string().contains(NOT_EXECUTED))
}

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
    /// Memory or RocksDB, owned by this process. `failed` holds the I/O error after which the
    /// datastore stopped accepting writes.
    Local { db: Surreal<Db>, datastore: Arc<Datastore>, failed: std::sync::OnceLock<String> },
    /// A SurrealDB server over WebSocket.
    Remote { db: Surreal<Any> },
}

impl Client {
    pub(crate) async fn open_local(spec: &str, location: &str) -> Result<Self> {
        // Live queries (the change feed) are delivered through this channel; the SDK client
        // routes them to their subscribers.
        let (notify, notifications) = async_channel::unbounded();
        let datastore = Builder::new().with_notify(notify).build_with_path(spec).await.map_err(|err| {
            // RocksDB reports a held lock as an I/O error whose text is all there is to go by.
            let locked = format!("{err:#}").to_lowercase().contains("lock");
            let (location, source) = (location.to_owned(), err.into());
            if locked {
                Error::Locked { location, source }
            } else {
                Error::Datastore { action: "open", location, source }
            }
        })?;
        datastore.bootstrap().await.map_err(|err| Error::Datastore {
            action: "bootstrap",
            location: location.into(),
            source: err.into(),
        })?;
        let db = Surreal::<Db>::unstable_from_datastore(Arc::clone(&datastore), Some(notifications)).await?;
        Ok(Client::Local { db, datastore, failed: std::sync::OnceLock::new() })
    }

    pub(crate) async fn connect(target: &RemoteTarget) -> Result<Self> {
        let endpoint = &target.endpoint;
        if !(endpoint.starts_with("ws://") || endpoint.starts_with("wss://")) {
            return Err(Error::InvalidArgument(format!(
                "unsupported SurrealDB endpoint {endpoint:?}: use a ws:// or wss:// URL such as \
                 ws://localhost:8000"
            )));
        }
        let db = surrealdb::engine::any::connect(endpoint.as_str()).await.map_err(|source| Error::Connect {
            action: "connect to".into(),
            endpoint: endpoint.clone(),
            source: Box::new(source),
        })?;
        if let Some((username, password)) = &target.credentials {
            db.signin(surrealdb::opt::auth::Database {
                namespace: target.namespace.clone(),
                database: target.database.clone(),
                username: username.clone(),
                password: password.clone(),
            })
            .await
            .map_err(|source| Error::Connect {
                action: format!("sign in as database user '{username}' of {}/{} to", target.namespace, target.database),
                endpoint: endpoint.clone(),
                source: Box::new(source),
            })?;
        }
        Ok(Client::Remote { db })
    }

    /// Selects the namespace and database, which the first use defines (concurrently opening
    /// handles conflict there, and are retried).
    pub(crate) async fn use_ns_db(&self, namespace: &str, database: &str) -> Result<()> {
        retrying_conflicts(|| async {
            match self {
                Client::Local { db, .. } => db.use_ns(namespace).use_db(database).await?,
                Client::Remote { db } => db.use_ns(namespace).use_db(database).await?,
            };
            Ok(())
        })
        .await
    }

    /// Runs `sql` with `vars` bound and returns its statements' results.
    ///
    /// # Errors
    /// The first statement error; `Conflict` when SurrealDB still reports a retryable
    /// transaction conflict after [`CONFLICT_RETRIES`] attempts; `Backend` when a server does not
    /// answer within [`REMOTE_QUERY_TIMEOUT`].
    pub(crate) async fn query(&self, sql: &str, vars: Value) -> Result<surrealdb::IndexedResults> {
        self.query_within(sql, vars, Some(REMOTE_QUERY_TIMEOUT)).await
    }

    /// [`Client::query`] with a caller-chosen bound on how long a server may take (`None`:
    /// unbounded, for migrations over a whole store). Local stores are never bounded: they
    /// cannot lose a connection.
    ///
    /// Several processes write one store, and SurrealDB's transactions are optimistic: a
    /// transaction that touched a record another one changed meanwhile fails with a conflict
    /// that "can be retried". Such a query is sent again, whole, after a short randomised
    /// wait. That is safe because every query this crate sends is either one transaction
    /// (nothing of it was applied) or a sequence of idempotent statements.
    pub(crate) async fn query_within(
        &self,
        sql: &str,
        vars: Value,
        timeout: Option<Duration>,
    ) -> Result<surrealdb::IndexedResults> {
        let outcome = retrying_conflicts(|| async {
            let mut response = self.send(sql, vars.clone(), timeout).await?;
            first_error(&mut response).map_or(Ok(response), Err)
        })
        .await;
        if let (Err(err), Client::Local { failed, .. }) = (&outcome, self) {
            let text = err.to_string();
            if matches!(err, Error::Database { .. }) && text.contains("IO error") {
                let _ = failed.set(text);
            }
        }
        outcome
    }

    async fn send(&self, sql: &str, vars: Value, timeout: Option<Duration>) -> Result<surrealdb::IndexedResults> {
        match self {
            Client::Local { db, failed, .. } => {
                // After an I/O error RocksDB refuses writes until it is reopened, and a commit
                // sent to it then may never be answered: fail at once with the cause instead.
                if let Some(cause) = failed.get() {
                    return Err(Error::DatastoreFailed { cause: cause.clone() });
                }
                Ok(db.query(sql).bind(vars).await?)
            }
            Client::Remote { db } => {
                let query = db.query(sql).bind(vars);
                match timeout {
                    None => Ok(query.await?),
                    // While the server is unreachable the SDK keeps reconnecting and holds
                    // queries back indefinitely; a bound turns that into an error.
                    Some(limit) => tokio::time::timeout(limit, query)
                        .await
                        .map_err(|_| Error::Timeout { seconds: limit.as_secs() })?
                        .map_err(Error::from),
                }
            }
        }
    }

    /// Releases the store: a local datastore is shut down (flushing RocksDB and releasing its
    /// lock), a remote connection is dropped with the handle.
    pub(crate) async fn shutdown(&self) -> Result<()> {
        match self {
            Client::Local { datastore, .. } => datastore.shutdown().await.map_err(|err| Error::Datastore {
                action: "shut down",
                location: "this handle".into(),
                source: err.into(),
            }),
            Client::Remote { .. } => Ok(()),
        }
    }
}
