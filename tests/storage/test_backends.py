"""storage-and-io.md: ``Storage.memory()`` / ``Storage.embedded(path)``, ``storage.type`` and
``StorageType``, isolation, persistence across reopen and processes, and the embedded lock."""

import enum
import gc
import os
import selectors
import subprocess
import sys
import textwrap

import pytest

import rivers as rs
from rivers.exceptions import StorageError
from rivers.testing import embedded_storage

SUBPROCESS_TIMEOUT = 180


def _run_python(script: str, *args: str, cwd) -> subprocess.CompletedProcess:
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )
    assert completed.returncode == 0, f"stdout:\n{completed.stdout}\nstderr:\n{completed.stderr}"
    return completed


# --- StorageType -----------------------------------------------------------------------------


def test_storage_type_is_an_int_enum_with_exactly_three_members():
    assert issubclass(rs.StorageType, enum.IntEnum)
    assert [member.name for member in rs.StorageType] == ["Memory", "Embedded", "Remote"]
    assert [int(member) for member in rs.StorageType] == [0, 1, 2]


def test_memory_storage_type():
    assert rs.Storage.memory().type == rs.StorageType.Memory


def test_embedded_storage_type(tmp_path):
    assert rs.Storage.embedded(str(tmp_path / "state")).type == rs.StorageType.Embedded


def test_storage_has_no_public_constructor():
    with pytest.raises(TypeError):
        rs.Storage()


def test_storage_is_reachable_from_core_storage_module():
    from rivers._core.storage import Storage

    assert Storage is rs.Storage


# --- memory isolation ------------------------------------------------------------------------


def test_two_memory_stores_are_isolated():
    first = rs.Storage.memory()
    second = rs.Storage.memory()

    first.kv_set("app/key", b"first")
    first.add_dynamic_partitions("tenants", ["acme"])

    assert second.kv_get("app/key") is None
    assert second.get_dynamic_partitions("tenants") == []
    assert first.kv_get("app/key") == b"first"


def test_memory_stores_do_not_share_runs(make_repo):
    @rs.Asset
    def counted():
        return 1

    first = rs.Storage.memory()
    second = rs.Storage.memory()
    repo = make_repo([counted], storage=first)
    result = repo.materialize()

    assert first.get_run(result.run_id).status == "Success"
    assert second.get_run(result.run_id) is None
    assert second.get_asset_records() == []


def test_repository_storage_is_the_same_store_as_the_bound_handle(make_repo, store):
    @rs.Asset
    def anything():
        return 1

    repo = make_repo([anything], storage=store)
    repo.storage.add_dynamic_partitions("tenants", ["acme"])
    store.kv_set("app/from-handle", b"1")

    assert store.has_dynamic_partition("tenants", "acme")
    assert repo.storage.kv_get("app/from-handle") == b"1"
    assert repo.storage.type == rs.StorageType.Memory


# --- embedded --------------------------------------------------------------------------------


def test_embedded_creates_missing_parent_directories(tmp_path):
    target = tmp_path / "deep" / "nested" / "state"
    handle = rs.Storage.embedded(str(target))
    handle.kv_set("app/probe", b"ok")

    assert target.is_dir()
    assert handle.kv_get("app/probe") == b"ok"


WRITE_KV_SCRIPT = """
import sys
import rivers as rs

store = rs.Storage.embedded(sys.argv[1])
store.kv_set("app/watermark", b"2024-06-30")
store.add_dynamic_partitions("tenants", ["northwind", "contoso"])
print("written")
"""


def test_embedded_data_survives_a_process_restart(tmp_path):
    path = str(tmp_path / "state")
    _run_python(WRITE_KV_SCRIPT, path, cwd=tmp_path)

    completed = _run_python(
        """
        import sys
        import rivers as rs

        store = rs.Storage.embedded(sys.argv[1])
        print(store.kv_get("app/watermark").decode())
        print(",".join(store.get_dynamic_partitions("tenants")))
        """,
        path,
        cwd=tmp_path,
    )
    assert completed.stdout.strip().splitlines()[-2:] == ["2024-06-30", "northwind,contoso"]


def test_embedded_data_written_by_another_process_is_readable_here(tmp_path):
    path = str(tmp_path / "state")
    _run_python(WRITE_KV_SCRIPT, path, cwd=tmp_path)

    reopened = rs.Storage.embedded(path)

    assert reopened.type == rs.StorageType.Embedded
    assert reopened.kv_get("app/watermark") == b"2024-06-30"
    assert reopened.get_dynamic_partitions("tenants") == ["northwind", "contoso"]


def test_embedded_data_written_here_is_readable_from_a_new_process_after_drop(tmp_path):
    # relies on rivers.testing releasing the RocksDB lock synchronously on drop (R5)
    path = str(tmp_path / "state")
    handle = embedded_storage(path)
    handle.kv_set("app/message", b"hello from parent")
    del handle
    gc.collect()

    completed = _run_python(
        """
        import sys
        import rivers as rs

        store = rs.Storage.embedded(sys.argv[1])
        print(store.kv_get("app/message").decode())
        """,
        path,
        cwd=tmp_path,
    )
    assert completed.stdout.strip().splitlines()[-1] == "hello from parent"


def test_runs_written_by_another_process_are_readable_after_reopen(tmp_path):
    path = str(tmp_path / "state")
    completed = _run_python(
        """
        import sys
        import rivers as rs

        @rs.Asset(code_version="9", tags=["persisted"])
        def persisted_value():
            return 21

        repo = rs.CodeRepository(assets=[persisted_value], default_executor=rs.Executor.in_process())
        repo.resolve(storage=rs.Storage.embedded(sys.argv[1]))
        result = repo.materialize()
        assert result.success
        repo.shutdown()
        print("RUN_ID=" + result.run_id)
        """,
        path,
        cwd=tmp_path,
    )
    run_id = [line for line in completed.stdout.splitlines() if line.startswith("RUN_ID=")][-1][len("RUN_ID=") :]

    reopened = embedded_storage(path)
    run = reopened.get_run(run_id)
    assert run.status == "Success"
    assert run.job_name is None
    latest = reopened.get_latest_materialization("persisted_value")
    assert latest.run_id == run_id
    assert latest.code_version == "9"
    record = reopened.get_asset_record("persisted_value")
    assert record.last_event_id == latest.id
    assert record.tags == ["persisted"]
    assert [e.event_type for e in reopened.get_events_for_run(run_id)][0] == "RunStart"


def test_second_live_open_of_the_same_path_raises_storage_error(tmp_path):
    path = str(tmp_path / "state")
    first = rs.Storage.embedded(path)
    first.kv_set("app/owner", b"first")

    with pytest.raises(StorageError, match=r"(?i)lock"):
        rs.Storage.embedded(path)

    # the live handle keeps working
    assert first.kv_get("app/owner") == b"first"


def test_dropping_the_last_handle_releases_the_lock_at_once(tmp_path):
    path = str(tmp_path / "state")
    storage = rs.Storage.embedded(path)
    storage.kv_set("k", b"v")
    del storage
    reopened = rs.Storage.embedded(path)
    assert reopened.kv_get("k") == b"v"


@pytest.mark.parametrize("release", ["shutdown", "garbage collection"])
def test_a_released_repository_releases_its_embedded_store(tmp_path, release):
    @rs.Asset
    def one() -> int:
        return 1

    path = str(tmp_path / "state")
    repo = rs.CodeRepository(assets=[one])
    repo.resolve(storage=rs.Storage.embedded(path))
    run_id = repo.materialize().run_id
    if release == "shutdown":
        repo.shutdown()
    else:
        del repo
        gc.collect()
    assert rs.Storage.embedded(path).get_run(run_id).status == "Success"


def test_the_lock_error_names_the_path_and_the_fix(tmp_path):
    path = tmp_path / "state"
    held = rs.Storage.embedded(str(path))
    with pytest.raises(StorageError) as raised:
        rs.Storage.embedded(str(path))
    message = str(raised.value)
    assert str(path) in message and "close that handle" in message
    del held


def test_open_while_another_process_holds_the_path_raises_storage_error(tmp_path):
    path = str(tmp_path / "state")
    script = textwrap.dedent(
        """
        import sys
        import rivers as rs

        store = rs.Storage.embedded(sys.argv[1])
        store.kv_set("app/held", b"1")
        print("ready", flush=True)
        sys.stdin.read()
        """
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script, path],
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(holder.stdout, selectors.EVENT_READ)
            ready = selector.select(timeout=SUBPROCESS_TIMEOUT)
        line = holder.stdout.readline() if ready else ""
        assert line.strip() == "ready", holder.stderr.read() if holder.poll() is not None else "holder not ready"

        with pytest.raises(StorageError, match=r"(?i)lock"):
            rs.Storage.embedded(path)
    finally:
        holder.stdin.close()
        holder.wait(timeout=SUBPROCESS_TIMEOUT)
        holder.stdout.close()
        holder.stderr.close()

    assert holder.returncode == 0


def test_resolve_without_storage_creates_dot_rivers_storage_in_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    @rs.Asset
    def located():
        return 1

    repo = rs.CodeRepository(assets=[located], default_executor=rs.Executor.in_process())
    try:
        repo.resolve()
        assert repo.storage.type == rs.StorageType.Embedded
        assert (tmp_path / ".rivers" / "storage").is_dir()
        result = repo.materialize()
        assert repo.storage.get_run(result.run_id).status == "Success"
    finally:
        repo.shutdown()
    assert os.listdir(tmp_path / ".rivers" / "storage") != []


def test_implicit_resolve_binds_memory_storage(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    @rs.Asset
    def implicit():
        return 1

    repo = rs.CodeRepository(assets=[implicit], default_executor=rs.Executor.in_process())
    try:
        repo.materialize()
        assert repo.storage.type == rs.StorageType.Memory
    finally:
        repo.shutdown()
    assert not (tmp_path / ".rivers").exists()


def test_default_storage_location_keeps_history_across_processes(tmp_path):
    script = """
        import rivers as rs

        @rs.Asset
        def history_probe():
            return 1

        repo = rs.CodeRepository(assets=[history_probe], default_executor=rs.Executor.in_process())
        repo.resolve()
        result = repo.materialize()
        print("RUNS=" + ",".join(sorted(r.run_id for r in repo.storage.get_runs())))
        print("THIS=" + result.run_id)
        repo.shutdown()
        """

    def run_once():
        lines = _run_python(script, cwd=tmp_path).stdout.splitlines()
        runs = next(line for line in lines if line.startswith("RUNS="))[len("RUNS=") :].split(",")
        this = next(line for line in lines if line.startswith("THIS="))[len("THIS=") :]
        return runs, this

    first_runs, first_id = run_once()
    second_runs, second_id = run_once()

    assert first_runs == [first_id]
    assert sorted(second_runs) == sorted([first_id, second_id])
    assert (tmp_path / ".rivers" / "storage").is_dir()


def test_closing_stores_logs_nothing_at_warn_or_error(tmp_path):
    script = textwrap.dedent(
        """
        import gc
        import sys

        import rivers as rs

        @rs.Asset
        def one() -> int:
            return 1

        repo = rs.CodeRepository(assets=[one])
        repo.resolve(storage=rs.Storage.embedded(sys.argv[1]))
        repo.materialize()
        repo.shutdown()
        memory = rs.Storage.memory()
        memory.kv_set("k", b"v")
        del memory
        gc.collect()
        reopened = rs.Storage.embedded(sys.argv[1])
        del reopened
        print("closed")
        """
    )
    # The log filter a user gets by default (RUST_LOG unset): rivers' own records at INFO and
    # above; SurrealDB's internal ones are off, its failures surface as StorageError instead.
    env = {key: value for key, value in os.environ.items() if key != "RUST_LOG"}
    completed = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "state")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        env=env,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "closed"
    noisy = [line for line in completed.stderr.splitlines() if " WARN " in line or " ERROR " in line]
    assert noisy == []
