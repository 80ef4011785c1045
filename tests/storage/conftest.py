"""Fixtures for the storage-and-io.md acceptance tests: shared ones live in ``tests/conftest.py``."""

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

import rivers as rs


@pytest.fixture
def store() -> rs.Storage:
    return rs.Storage.memory()


@pytest.fixture
def finance(make_repo, store):
    """A small materialized repository: ``invoices`` -> ``invoice_total`` plus ``audit_log``,
    with distinct tags, kinds and groups; one successful run with tags."""

    @rs.Asset(tags=["finance", "raw"], kinds=["table"], group="billing", code_version="3")
    def invoices():
        return [{"id": 7, "amount": 120.0}, {"id": 8, "amount": 80.5}]

    @rs.Asset(kinds="scalar", group="billing")
    def invoice_total(invoices):
        return sum(row["amount"] for row in invoices)

    @rs.Asset(tags=["ops"], kinds=["table", "log"], group="ops")
    def audit_log(context: rs.AssetExecutionContext):
        context.add_output_metadata({"entries": 2})
        return ["created", "paid"]

    repo = make_repo([invoices, invoice_total, audit_log], storage=store)
    result = repo.materialize(tags=[("team", "finance"), ("ticket", "FIN-1")])
    return SimpleNamespace(repo=repo, store=store, result=result, run_id=result.run_id)


# --- a real SurrealDB server for remote mode ----------------------------------------------------

SERVER_START_TIMEOUT = 30.0

DATABASE_USER_SETUP = (
    "DEFINE NAMESPACE rivers; USE NS rivers; DEFINE DATABASE main; USE DB main; "
    "DEFINE USER app ON DATABASE PASSWORD 'secret' ROLES EDITOR;"
)


@dataclass
class SurrealServer:
    """A SurrealDB server process on a loopback port."""

    process: subprocess.Popen
    port: int
    root: Path
    path: str

    @property
    def endpoint(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=SERVER_START_TIMEOUT)


# A WebSocket upgrade of the RPC endpoint: the server answers 101 only once it serves queries
# (the port opens, and even /health answers, while it is still starting: RPC gets 503 then).
_RPC_UPGRADE = (
    b"GET /rpc HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: cml2ZXJzLXJlYWRpbmVzcw==\r\n\r\n"
)


def rpc_ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(_RPC_UPGRADE)
            return sock.recv(12).endswith(b"101")
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server_binary() -> str:
    binary = os.environ.get("RIVERS_SURREAL_SERVER")
    if not binary or not Path(binary).exists():
        raise RuntimeError(
            "RIVERS_SURREAL_SERVER does not name the SurrealDB dev server: build it with "
            "`source scripts/dev-server.sh` (scripts/test.sh does this) before running the remote-storage tests"
        )
    return binary


@pytest.fixture
def surreal_server(tmp_path):
    """Starts servers: ``surreal_server(auth=False, setup=None, path="memory", port=None)``.

    ``auth=True`` starts with a root user and requires sign-in; ``setup`` is SurrealQL run at
    start (``--import-file``); ``path`` may be ``surrealkv://DIR`` for a server whose data
    survives a restart on the same ``port``. Every server is killed when the test ends.
    """
    started: list[SurrealServer] = []

    def start(*, auth: bool = False, setup: str | None = None, path: str = "memory", port: int | None = None):
        port = port or _free_port()
        args = [_server_binary(), "start", "--no-banner", "--log", "warn", "--bind", f"127.0.0.1:{port}"]
        if auth:
            args += ["--user", "root", "--pass", "root"]
        else:
            args.append("--unauthenticated")
        if setup is not None:
            script = tmp_path / f"setup-{port}-{len(started)}.surql"
            script.write_text(setup)
            args += ["--import-file", str(script)]
        process = subprocess.Popen([*args, path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        server = SurrealServer(process=process, port=port, root=tmp_path, path=path)
        started.append(server)
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if rpc_ready(port):
                return server
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the SurrealDB dev server did not become ready on port {port}")
            time.sleep(0.02)

    yield start
    for server in started:
        server.kill()
