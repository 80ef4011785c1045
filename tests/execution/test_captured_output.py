"""Per-step capture of stdout, stderr and log records into StoredLog rows."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import rivers as rs


def _logs_by_step(repo: rs.CodeRepository, run_id: str) -> dict[str, object]:
    return {row.step_key: row for row in repo.storage.get_run_logs(run_id)}


def test_printed_and_logged_output_is_stored_per_step_and_not_as_events():
    @rs.Asset
    def talker(context: rs.AssetExecutionContext) -> int:
        print("this line is captured as stdout of the step")
        context.log.info("counted %d parcels", 3)
        return 3

    @rs.Asset
    def quiet(talker: int) -> int:
        return talker

    repo = rs.CodeRepository(assets=[talker, quiet], default_executor=rs.Executor.in_process())
    repo.resolve(storage=rs.Storage.memory())
    result = repo.materialize()
    rows = _logs_by_step(repo, result.run_id)
    assert set(rows) == {"talker"}
    row = rows["talker"]
    assert row.stdout == "this line is captured as stdout of the step\n"
    assert row.stderr is None
    assert "counted 3 parcels" in row.logs and "rivers.assets.talker" in row.logs
    assert row.run_id == result.run_id
    assert all("captured" not in str(e.metadata) for e in repo.storage.get_events_for_run(result.run_id))


def test_concurrent_async_steps_do_not_mix_their_output():
    started = {"count": 0}

    async def wait_for_both() -> None:
        started["count"] += 1
        for _ in range(200):
            if started["count"] == 2:
                return
            await asyncio.sleep(0.01)

    @rs.Asset
    async def left() -> str:
        await wait_for_both()
        for i in range(3):
            print(f"left {i}")
            await asyncio.sleep(0)
        print("left to stderr", file=sys.stderr)
        return "l"

    @rs.Asset
    async def right() -> str:
        await wait_for_both()
        for i in range(3):
            print(f"right {i}")
            await asyncio.sleep(0)
        return "r"

    repo = rs.CodeRepository(assets=[left, right], default_executor=rs.Executor.parallel(max_workers=1))
    repo.resolve(storage=rs.Storage.memory())
    result = repo.materialize()
    rows = _logs_by_step(repo, result.run_id)
    assert started["count"] == 2
    assert rows["left"].stdout == "left 0\nleft 1\nleft 2\n"
    assert rows["right"].stdout == "right 0\nright 1\nright 2\n"
    assert rows["left"].stderr == "left to stderr\n"
    assert rows["right"].stderr is None


def _run_logging_script(rust_log: str) -> str:
    script = (
        "import rivers as rs\n"
        "@rs.Asset\n"
        "def parcels(context):\n"
        "    context.log.info('weighed %d parcels', 4)\n"
        "    return 4\n"
        "repo = rs.CodeRepository(assets=[parcels], default_executor=rs.Executor.in_process())\n"
        "repo.materialize()\n"
    )
    env = {**os.environ, "RUST_LOG": rust_log}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_rivers_log_records_reach_the_native_subscriber_filtered_by_rust_log():
    shown = _run_logging_script("info")
    assert "rivers::python" in shown and "weighed 4 parcels" in shown
    assert "rivers.assets.parcels" in shown
    assert "weighed 4 parcels" not in _run_logging_script("error")


def test_each_stream_keeps_only_its_last_4_mib():
    mib = 1024 * 1024

    @rs.Asset
    def chatty() -> int:
        for _ in range(3):
            sys.stdout.write("a" * mib)
        sys.stdout.write("é" * mib)  # two bytes each in UTF-8
        sys.stdout.write("END")
        sys.stderr.write("short")
        return 1

    repo = rs.CodeRepository(assets=[chatty], default_executor=rs.Executor.in_process())
    repo.resolve(storage=rs.Storage.memory())
    row = repo.storage.get_run_logs(repo.materialize().run_id)[0]
    stdout = row.stdout
    assert len(stdout.encode("utf-8")) <= 4 * mib
    assert len(stdout.encode("utf-8")) >= 4 * mib - 1  # a cut inside "é" drops its other byte
    assert stdout.endswith("é" * mib + "END")
    assert stdout.lstrip("a").startswith("é")
    assert row.stderr == "short"


def _lib_backtrace_after_import(env: dict[str, str]) -> str:
    script = (
        "import ctypes, rivers\n"
        "libc = ctypes.CDLL(None)\n"
        "libc.getenv.restype = ctypes.c_char_p\n"
        "print((libc.getenv(b'RUST_LIB_BACKTRACE') or b'unset').decode())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_library_errors_capture_no_stack_traces_unless_asked():
    base = {k: v for k, v in os.environ.items() if k != "RUST_LIB_BACKTRACE"}
    assert _lib_backtrace_after_import({**base, "RUST_BACKTRACE": "1"}) == "0"
    assert _lib_backtrace_after_import({**base, "RUST_LIB_BACKTRACE": "1"}) == "1"
