//! Helpers shared by the storage tests: event builders and a real SurrealDB server.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::future::join_all;
use rivers_core::{EventType, LaunchedBy, RunBackendKind, RunStatus};
use rivers_storage::{NewEvent, NewRun, RemoteTarget, Storage};

pub(crate) fn new_run(run_id: &str) -> NewRun {
    NewRun {
        run_id: run_id.into(),
        job_name: None,
        status: RunStatus::Running,
        tags: vec![],
        node_names: vec![],
        priority: 0,
        partition_key: None,
        launched_by: LaunchedBy::MANUAL,
        backend: RunBackendKind::Local,
    }
}

pub(crate) fn step_event(event_type: EventType, run_id: &str, key: &str) -> NewEvent {
    NewEvent { asset_key: Some(key.into()), ..NewEvent::new(event_type, run_id) }
}

/// Enqueues the events of one successful step materializing `key`.
pub(crate) fn successful_step(storage: &Storage, run_id: &str, key: &str) {
    storage.enqueue_event(step_event(EventType::StepStart, run_id, key));
    storage.enqueue_event(NewEvent {
        data_version: Some(format!("{run_id}-{key}")),
        ..step_event(EventType::Materialization, run_id, key)
    });
    storage.enqueue_event(step_event(EventType::StepSuccess, run_id, key));
}

/// A SurrealDB server on a free loopback port, killed on drop.
pub(crate) struct Server {
    child: Child,
    pub(crate) endpoint: String,
}

impl Server {
    /// The server's `rivers` / `main` database, without credentials.
    pub(crate) fn target(&self) -> RemoteTarget {
        RemoteTarget {
            endpoint: self.endpoint.clone(),
            namespace: "rivers".into(),
            database: "main".into(),
            credentials: None,
        }
    }

    /// `n` handles opened at once, each its own connection (as separate processes are).
    pub(crate) async fn connect(&self, n: usize) -> Vec<Storage> {
        let target = self.target();
        join_all((0..n).map(|_| Storage::connect(&target))).await.into_iter().map(Result::unwrap).collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The dev server binary: built by `scripts/dev-server.sh`, which exports its path.
pub(crate) fn server_binary() -> PathBuf {
    let path = std::env::var_os("RIVERS_SURREAL_SERVER").map(PathBuf::from).expect(
        "RIVERS_SURREAL_SERVER is not set: build the SurrealDB dev server with \
         `source scripts/dev-server.sh` (scripts/test.sh does this) before running the storage tests",
    );
    assert!(path.exists(), "RIVERS_SURREAL_SERVER points at {}, which does not exist", path.display());
    path
}

/// How a test server authenticates.
pub(crate) enum Auth {
    /// `--unauthenticated`: clients never sign in.
    None,
    /// A root user plus the database user `app` / `secret` of `rivers`/`main` (an editor).
    DatabaseUser,
}

/// Creates the database user of `Auth::DatabaseUser` when the server starts.
const DATABASE_USER: &str = "DEFINE NAMESPACE rivers; USE NS rivers; DEFINE DATABASE main; USE DB main; \
    DEFINE USER app ON DATABASE PASSWORD 'secret' ROLES EDITOR;";

/// Starts an in-memory server on a free loopback port.
pub(crate) fn start_server(auth: Auth) -> Server {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut command = Command::new(server_binary());
    command.args(["start", "--no-banner", "--log", "warn", "--bind", &format!("127.0.0.1:{port}")]);
    let _import = match auth {
        Auth::None => {
            command.arg("--unauthenticated");
            None
        }
        Auth::DatabaseUser => {
            let file = tempfile::NamedTempFile::with_suffix(".surql").unwrap();
            std::fs::write(file.path(), DATABASE_USER).unwrap();
            command.args(["--user", "root", "--pass", "root", "--import-file"]).arg(file.path());
            Some(file)
        }
    };
    let child = command
        .arg("memory")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start the SurrealDB dev server");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !rpc_ready(port) {
        assert!(Instant::now() < deadline, "the SurrealDB dev server was not ready on port {port} within 30 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    Server { child, endpoint: format!("ws://127.0.0.1:{port}") }
}

/// Whether a WebSocket upgrade of the RPC endpoint succeeds: the server answers 101 only once
/// it serves queries (the port opens, and even /health answers, while it is still starting).
fn rpc_ready(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let upgrade = "GET /rpc HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                   Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: cml2ZXJzLXJlYWRpbmVzcw==\r\n\r\n";
    if stream.write_all(upgrade.as_bytes()).is_err() {
        return false;
    }
    let mut status = [0u8; 12];
    stream.read_exact(&mut status).is_ok() && status.ends_with(b"101")
}
