"""storage-and-io.md: ``Storage.connect`` against a real SurrealDB server on a loopback port
(R1, R7, R8), ``Storage.migrate_remote`` / ``migrate_embedded``, and a server that goes away in
the middle of a run: the run fails with ``StorageError``, nothing is reported as written that
was not, and a resume re-runs exactly the unfinished steps."""

import os
from pathlib import Path

import pytest
from obstore.store import LocalStore

import rivers as rs
from rivers.exceptions import SchemaMigrationNeededError, StorageError

from .conftest import DATABASE_USER_SETUP

SCHEMA_V1 = (Path(__file__).parent / "schema_v1_fixture.surql").read_text()
# The fixture is written for an already selected database.
SCHEMA_V1_SETUP = "DEFINE NAMESPACE rivers; USE NS rivers; DEFINE DATABASE main; USE DB main;\n" + SCHEMA_V1


@pytest.fixture
def no_surreal_env(monkeypatch):
    for name in ("USERNAME", "PASSWORD", "NAMESPACE", "DATABASE"):
        monkeypatch.delenv(f"RIVERS_SURREAL_{name}", raising=False)
    return monkeypatch


def _pipeline():
    @rs.Asset
    def orders() -> list[int]:
        return [30, 12]

    @rs.Asset
    def revenue(orders: list[int]) -> int:
        return sum(orders)

    return [orders, revenue]


def test_connect_unauthenticated_runs_a_pipeline(surreal_server, no_surreal_env):
    server = surreal_server()
    storage = rs.Storage.connect(server.endpoint)
    assert storage.type == rs.StorageType.Remote

    with rs.CodeRepository(assets=_pipeline()) as repo:
        repo.resolve(storage=storage)
        result = repo.materialize()
        assert result.success
        assert repo.load_node("revenue") == 42

    other = rs.Storage.connect(server.endpoint)
    latest = other.get_latest_materialization("revenue")
    assert latest is not None and latest.run_id == result.run_id
    assert [run.run_id for run in other.get_runs()] == [result.run_id]
    assert [e.event_type for e in other.get_events_for_run(result.run_id)] == [
        "RunStart",
        "StepStart",
        "Materialization",
        "StepSuccess",
        "StepStart",
        "Materialization",
        "StepSuccess",
        "RunSuccess",
    ]


def test_connect_signs_in_as_a_database_user(surreal_server, no_surreal_env):
    server = surreal_server(auth=True, setup=DATABASE_USER_SETUP)
    storage = rs.Storage.connect(server.endpoint, username="app", password="secret")
    storage.kv_set("k", b"v")
    assert rs.Storage.connect(server.endpoint, username="app", password="secret").kv_get("k") == b"v"

    with pytest.raises(StorageError, match="cannot sign in.*'app'"):
        rs.Storage.connect(server.endpoint, username="app", password="wrong")


def test_connect_reads_credentials_namespace_and_database_from_the_environment(surreal_server, no_surreal_env):
    setup = (
        "DEFINE NAMESPACE team; USE NS team; DEFINE DATABASE prod; USE DB prod; "
        "DEFINE USER env_user ON DATABASE PASSWORD 'env-pass' ROLES EDITOR;"
    )
    server = surreal_server(auth=True, setup=setup)
    no_surreal_env.setenv("RIVERS_SURREAL_USERNAME", "env_user")
    no_surreal_env.setenv("RIVERS_SURREAL_PASSWORD", "env-pass")
    no_surreal_env.setenv("RIVERS_SURREAL_NAMESPACE", "team")
    no_surreal_env.setenv("RIVERS_SURREAL_DATABASE", "prod")
    rs.Storage.connect(server.endpoint).kv_set("from", b"env")

    # Explicit keyword arguments win over the environment.
    with pytest.raises(StorageError, match="cannot sign in"):
        rs.Storage.connect(server.endpoint, password="not-the-env-one")
    no_surreal_env.setenv("RIVERS_SURREAL_PASSWORD", "")
    no_surreal_env.setenv("RIVERS_SURREAL_USERNAME", "")
    # Without credentials (empty variables count as unset) nothing signs in, and the
    # authenticated server refuses the queries.
    with pytest.raises(StorageError):
        rs.Storage.connect(server.endpoint)


def test_namespace_and_database_defaults_separate_stores(surreal_server, no_surreal_env):
    server = surreal_server()
    rs.Storage.connect(server.endpoint).kv_set("k", b"main")
    rs.Storage.connect(server.endpoint, database="other").kv_set("k", b"other")
    assert rs.Storage.connect(server.endpoint, namespace="rivers", database="main").kv_get("k") == b"main"
    assert rs.Storage.connect(server.endpoint, database="other").kv_get("k") == b"other"


def test_unreachable_endpoint_raises_storage_error(no_surreal_env):
    from .conftest import _free_port

    with pytest.raises(StorageError, match="cannot connect"):
        rs.Storage.connect(f"ws://127.0.0.1:{_free_port()}")


def test_a_schema_1_database_needs_migrate_remote(surreal_server, no_surreal_env):
    server = surreal_server(setup=SCHEMA_V1_SETUP)
    with pytest.raises(SchemaMigrationNeededError, match="rivers db migrate"):
        rs.Storage.connect(server.endpoint)
    assert issubclass(SchemaMigrationNeededError, StorageError)

    rs.Storage.migrate_remote(server.endpoint)
    rs.Storage.migrate_remote(server.endpoint)  # idempotent
    storage = rs.Storage.connect(server.endpoint)
    latest = storage.get_latest_materialization("a")
    assert (latest.id, latest.run_id, latest.data_version) == ("e11", "crashed", "a-2")
    assert [run.run_id for run in storage.get_runs()] == ["crashed", "done"]


def test_migrate_embedded_is_idempotent_on_a_current_store(tmp_path):
    path = str(tmp_path / "state")
    storage = rs.Storage.embedded(path)
    storage.kv_set("k", b"v")
    del storage
    rs.Storage.migrate_embedded(path)
    rs.Storage.migrate_embedded(path)
    assert rs.Storage.embedded(path).kv_get("k") == b"v"


def test_a_server_that_goes_away_mid_run_fails_the_run_and_resume_finishes_it(surreal_server, no_surreal_env, tmp_path):
    data = f"rocksdb://{tmp_path / 'server-data'}"
    server = surreal_server(path=data)
    calls: list[str] = []
    (tmp_path / "values").mkdir()
    handler = rs.PickleIOHandler(store=LocalStore(str(tmp_path / "values")))

    @rs.Asset(io_handler=handler)
    def first() -> int:
        calls.append("first")
        return 1

    @rs.Asset(io_handler=handler)
    def second(first: int) -> int:
        calls.append("second")
        if calls.count("second") == 1:
            server.kill()  # the store goes away while this step runs
        return first + 1

    @rs.Asset(io_handler=handler)
    def third(second: int) -> int:
        calls.append("third")
        return second + 1

    with rs.CodeRepository(assets=[first, second, third], default_executor=rs.Executor.in_process()) as repo:
        repo.resolve(storage=rs.Storage.connect(server.endpoint))
        with pytest.raises(StorageError, match=r"not written.*StepSuccess of 'second'") as raised:
            repo.materialize(run_id_override="crash-run")
        assert "crash-run" in str(raised.value)
    assert calls == ["first", "second"]

    restarted = surreal_server(path=data, port=server.port)
    storage = rs.Storage.connect(restarted.endpoint)
    # What was reported durable is there; what was not is not claimed.
    stored = [(e.event_type, e.asset_key) for e in storage.get_events_for_run("crash-run")]
    assert ("StepSuccess", "first") in stored
    assert ("StepSuccess", "second") not in stored
    assert storage.get_run("crash-run").status != "Success"

    with rs.CodeRepository(assets=[first, second, third], default_executor=rs.Executor.in_process()) as repo:
        repo.resolve(storage=storage)
        resumed = repo.materialize(run_id_override="crash-run", resume=True)
        assert resumed.success
    assert calls == ["first", "second", "second", "third"]
    assert storage.get_run("crash-run").status == "Success"
    assert sorted(os.listdir(tmp_path / "values")) == ["first.pkl", "second.pkl", "third.pkl"]
