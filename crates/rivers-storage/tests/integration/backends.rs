//! The three connection modes behind one implementation, embedded locks, and a real
//! SurrealDB server on loopback for remote mode.

use crate::common::{Auth, new_run, start_server, successful_step};
use rivers_core::RunStatus;
use rivers_storage::{Error, RemoteTarget, Storage, StorageKind};

fn target(endpoint: &str, credentials: Option<(&str, &str)>) -> RemoteTarget {
    RemoteTarget {
        endpoint: endpoint.into(),
        namespace: "rivers".into(),
        database: "main".into(),
        credentials: credentials.map(|(u, p)| (u.into(), p.into())),
    }
}

/// The same round trip on any backend: a run, its events, state and kv.
async fn round_trip(storage: &Storage) {
    storage.create_run(new_run("r")).await.unwrap();
    storage.attach_run("r");
    successful_step(storage, "r", "a");
    storage.set_run_outcome("r", RunStatus::Success, 1, 1, None).await.unwrap();
    assert_eq!(storage.get_run("r").await.unwrap().unwrap().status, RunStatus::Success);
    assert_eq!(storage.get_events_for_run("r").await.unwrap().len(), 3);
    let latest = storage.get_latest_materialization("a", None).await.unwrap().unwrap();
    assert_eq!(latest.data_version.as_deref(), Some("r-a"));
    assert_eq!(storage.succeeded_steps("r", None).await.unwrap().len(), 1);
    storage.kv_set("k", b"v").await.unwrap();
    assert_eq!(storage.kv_get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
}

#[tokio::test]
async fn memory_and_embedded_share_the_implementation() {
    let memory = Storage::memory().await.unwrap();
    assert_eq!(memory.kind(), StorageKind::Memory);
    round_trip(&memory).await;
    let dir = tempfile::tempdir().unwrap();
    let embedded = Storage::embedded(dir.path()).await.unwrap();
    assert_eq!(embedded.kind(), StorageKind::Embedded);
    round_trip(&embedded).await;
}

#[tokio::test]
async fn a_second_open_is_refused_and_closing_releases_the_lock_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let first = Storage::embedded(dir.path()).await.unwrap();
    let refused = Storage::embedded(dir.path()).await.unwrap_err();
    assert!(matches!(refused, Error::Locked { .. }), "{refused}");
    let message = refused.to_string();
    assert!(message.contains("locked") && message.contains(&dir.path().display().to_string()), "{message}");

    // Closing one of two handles keeps the store open...
    let second_handle = first.clone();
    first.close().await.unwrap();
    assert!(Storage::embedded(dir.path()).await.is_err());
    // ... closing the last releases it before returning.
    second_handle.close().await.unwrap();
    let reopened = Storage::embedded(dir.path()).await.unwrap();
    reopened.kv_set("k", b"v").await.unwrap();
}

#[tokio::test]
async fn remote_without_credentials() {
    let server = start_server(Auth::None);
    let storage = Storage::connect(&target(&server.endpoint, None)).await.unwrap();
    assert_eq!(storage.kind(), StorageKind::Remote);
    round_trip(&storage).await;
    // A second client sees the same database.
    let other = Storage::connect(&target(&server.endpoint, None)).await.unwrap();
    assert_eq!(other.get_run("r").await.unwrap().unwrap().status, RunStatus::Success);
}

#[tokio::test]
async fn remote_with_a_database_user() {
    let server = start_server(Auth::DatabaseUser);
    let storage = Storage::connect(&target(&server.endpoint, Some(("app", "secret")))).await.unwrap();
    round_trip(&storage).await;

    let err = Storage::connect(&target(&server.endpoint, Some(("app", "wrong")))).await.unwrap_err();
    assert!(err.to_string().contains("cannot sign in") && err.to_string().contains("'app'"), "{err}");
    // Without signing in, the server refuses to run the schema check.
    assert!(Storage::connect(&target(&server.endpoint, None)).await.is_err());
}

#[tokio::test]
async fn unreachable_and_malformed_endpoints() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let err = Storage::connect(&target(&format!("ws://127.0.0.1:{port}"), None)).await.unwrap_err();
    assert!(err.to_string().contains("cannot connect"), "{err}");
    let err = Storage::connect(&target("http://127.0.0.1:8000", None)).await.unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
}

#[test]
fn remote_settings_resolve_from_arguments_then_environment_then_defaults() {
    let env = |name: &str| match name {
        "RIVERS_SURREAL_NAMESPACE" => Some("from-env".to_string()),
        "RIVERS_SURREAL_USERNAME" => Some("env-user".to_string()),
        "RIVERS_SURREAL_PASSWORD" => Some(String::new()),
        _ => None,
    };
    let resolved = RemoteTarget::resolve_with("ws://x".into(), None, None, None, None, env);
    assert_eq!((resolved.namespace.as_str(), resolved.database.as_str()), ("from-env", "main"));
    // An empty password counts as unset: no sign-in.
    assert_eq!(resolved.credentials, None);
    let explicit =
        RemoteTarget::resolve_with("ws://x".into(), None, Some("pw".into()), Some("ns".into()), Some("db".into()), env);
    assert_eq!((explicit.namespace.as_str(), explicit.database.as_str()), ("ns", "db"));
    assert_eq!(explicit.credentials, Some(("env-user".into(), "pw".into())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_dropped_without_close_writes_its_queue_and_releases_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::embedded(dir.path()).await.unwrap();
    storage.create_run(new_run("r")).await.unwrap();
    successful_step(&storage, "r", "a");
    drop(storage);
    // The store is shut down in the background once the writer has written what was queued.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let reopened = loop {
        match Storage::embedded(dir.path()).await {
            Ok(storage) => break storage,
            Err(Error::Locked { .. }) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(err) => panic!("the dropped store was not released: {err}"),
        }
    };
    let events = reopened.get_events_for_run("r").await.unwrap();
    assert_eq!(events.len(), 3, "the queued events were written before the store closed");
    reopened.close().await.unwrap();
}
