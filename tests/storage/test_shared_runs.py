"""One run shared by several real processes on a SurrealDB server (docs/runs.md): step
processes attach to a run a live owner holds and append only their steps' events; every event
gets a unique number in commit order; a killed owner stops heart-beating, and its run is failed
by run monitoring and resumed by another process."""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import rivers as rs

HERE = Path(__file__).resolve().parent
# Longest wait for a process to reach its step: far above what it needs.
PATIENCE = 60.0


def _environment(**extra: str) -> dict[str, str]:
    # The server runs unauthenticated: no credentials from the caller's environment.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("RIVERS_SURREAL_") or key == "RIVERS_SURREAL_SERVER"
    }
    env.update(extra)
    return env


def _start(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(HERE / script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env or _environment(),
    )


def _finish(process: subprocess.Popen) -> object:
    out, err = process.communicate(timeout=180)
    assert process.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def _wait_for(path: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + PATIENCE
    while not path.exists():
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


def test_step_processes_append_to_a_run_its_live_owner_finishes(surreal_server, tmp_path):
    server = surreal_server()
    run_id = "shared-run"
    owner = _start("shared_run_process.py", server.endpoint, run_id, str(tmp_path), "owner")
    try:
        _wait_for(tmp_path / "owner-started", owner)
        # Six step processes resolve the code location and attach to the run at once, each
        # materializing its step three times concurrently.
        steps = [
            _start("shared_run_process.py", server.endpoint, run_id, str(tmp_path), "step", str(i)) for i in range(6)
        ]
        results = [_finish(process) for process in steps]
        assert results == [[True, True, True]] * 6
        observer = rs.Storage.connect(server.endpoint)
        assert observer.get_run(run_id).status == "Running", "only the owner ends the run"
        (tmp_path / "release").write_text("go")
        assert _finish(owner) == [True]
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.communicate()

    run = observer.get_run(run_id)
    assert run.status == "Success"
    assert observer.get_run_progress(run_id) == (7, 7)
    assert [r.run_id for r in observer.get_runs(limit=10)] == [run_id]
    events = observer.get_events_for_run(run_id)
    kinds = Counter(e.event_type for e in events if e.asset_key is None)
    assert kinds == {"RunStart": 1, "RunSuccess": 1}, "run events come from the owner alone"
    assert events[0].event_type == "RunStart" and events[-1].event_type == "RunSuccess"
    per_step = Counter((e.asset_key, e.event_type) for e in events if e.asset_key is not None)
    for index in range(6):
        for kind in ("StepStart", "StepSuccess", "Materialization"):
            assert per_step[(f"step_{index}", kind)] == 3, (index, kind)
    assert per_step[("gate", "Materialization")] == 1
    # Nothing was overwritten: every event is stored once.
    assert len({e.id for e in events}) == len(events) == 2 + 3 + 6 * 3 * 3


def test_concurrent_resolves_of_several_code_locations_on_a_fresh_server_succeed(surreal_server, tmp_path):
    server = surreal_server()
    processes = [
        _start("shared_run_process.py", server.endpoint, f"solo-{i}", str(tmp_path), "step", str(i)) for i in range(6)
    ]
    # Each process bootstraps the empty store, registers its definitions and runs its step.
    assert [_finish(process) for process in processes] == [[True, True, True]] * 6
    observer = rs.Storage.connect(server.endpoint)
    for i in range(6):
        assert observer.get_run(f"solo-{i}").status == "Success"


# Heartbeats fast enough for a test: an owner counts as dead 1.5 s after its last one.
FAST_HEARTBEATS = {"RIVERS_RUN_HEARTBEAT_INTERVAL": "0.2", "RIVERS_RUN_HEARTBEAT_TIMEOUT": "1.5"}


def _kill_owner_in_its_first_step(endpoint: str, run_id: str, base: Path, while_alive: Callable[[], None]) -> None:
    """Starts run ``run_id`` in a process that stops in its first step, calls ``while_alive``,
    then SIGKILLs the process."""
    owner = _start("cancel_resume_run.py", endpoint, run_id, str(base), "fresh", env=_environment(**FAST_HEARTBEATS))
    try:
        _wait_for(base / "started", owner)
        while_alive()
        owner.send_signal(signal.SIGKILL)
        assert owner.wait(timeout=30) == -signal.SIGKILL
    finally:
        if owner.poll() is None:
            owner.kill()
        owner.communicate()


def _resume(endpoint: str, run_id: str, base: Path) -> object:
    return _finish(
        _start("cancel_resume_run.py", endpoint, run_id, str(base), "resume", env=_environment(**FAST_HEARTBEATS))
    )


def test_a_killed_owner_stops_heart_beating_and_its_run_is_failed_then_resumed(surreal_server, tmp_path):
    server = surreal_server()
    run_id = "killed-owner"
    observer = rs.Storage.connect(server.endpoint)

    def while_alive() -> None:
        # While the owner is alive its heartbeats keep the run from counting as abandoned.
        time.sleep(2.0)
        assert observer._fail_stale_runs(1.5) == []
        assert observer.get_run(run_id).status == "Running"

    _kill_owner_in_its_first_step(server.endpoint, run_id, tmp_path, while_alive)
    time.sleep(2.0)
    assert observer._fail_stale_runs(1.5, backend="kubernetes") == [], "another backend's runs only"
    assert observer._fail_stale_runs(1.5, backend="local") == [run_id]
    failed = observer.get_run(run_id)
    assert failed.status == "Failure"
    assert "stopped sending heartbeats" in failed.message
    assert observer.get_events_for_run(run_id)[-1].event_type == "RunFailure"
    assert observer._fail_stale_runs(1.5) == [], "a failed run is not failed twice"

    assert _resume(server.endpoint, run_id, tmp_path) == {"success": True, "status": "Success"}
    assert (tmp_path / "executions").read_text().split() == ["first", "first", "second"]


def test_a_process_attaching_to_a_run_whose_owner_died_takes_it_over(surreal_server, tmp_path):
    server = surreal_server()
    run_id = "orphaned"
    # Half a second alive: the owner's first events are committed (a batch lingers 2 ms).
    _kill_owner_in_its_first_step(server.endpoint, run_id, tmp_path, lambda: time.sleep(0.5))
    time.sleep(2.0)
    # No live owner: the attaching process claims the Running run and ends it.
    assert _resume(server.endpoint, run_id, tmp_path) == {"success": True, "status": "Success"}
    events = rs.Storage.connect(server.endpoint).get_events_for_run(run_id)
    assert [e.event_type for e in events if e.asset_key is None] == ["RunStart", "RunStart", "RunSuccess"]
    assert len({e.id for e in events}) == len(events)
