"""The daemon across real processes (automation-and-concurrency.md "Daemon model", R23, R32,
R35, R41; docs/automation-daemon.md): a daemon killed with SIGKILL and restarted on the same
embedded store loses no cursor, fires no run key twice and leaves no pool slot held; run
monitoring fails a run whose process was killed and frees its slots; the run queue's limit is
global across code locations; a dequeued run that no executor starts fails after
``start_timeout``; a daemon killed in the middle of a backfill is restarted and finishes it.
Every code location is a daemon_process.py subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rivers as rs
from tests.daemon.process_defs import BACKFILL_PARTITIONS, BURST_RUNS, CURSOR_LIMIT
from tests.pools.pool_defs import max_overlap
from tests.storage.conftest import surreal_server

__all__ = ["surreal_server"]

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
# Longest wait for a process to get somewhere: far above what it needs.
PATIENCE = 60.0
# Heartbeats fast enough for a test: a run's owner counts as dead 1.5 s after its last one,
# and run monitoring looks every 0.2 s.
FAST_HEARTBEATS = {"RIVERS_RUN_HEARTBEAT_INTERVAL": "0.2", "RIVERS_RUN_HEARTBEAT_TIMEOUT": "1.5"}
TERMINAL = ("Success", "Failure", "Canceled")


def _environment(**extra: str) -> dict[str, str]:
    # The server runs unauthenticated: no credentials from the caller's environment.
    env = {
        key: value
        for key, value in os.environ.items()
        if (not key.startswith("RIVERS_SURREAL_") or key == "RIVERS_SURREAL_SERVER")
        and key not in ("RIVERS_CODE_LOCATION_ID", "RIVERS_DEPLOYMENT")
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["RIVERS_CLAIM_POLL_INTERVAL"] = "50ms"
    env.update(FAST_HEARTBEATS)
    env.update(extra)
    return env


class LocationProcess:
    """daemon_process.py in a subprocess; its stdout lines are read as they come."""

    def __init__(self, workdir: Path, *args: str, **env: str) -> None:
        self.stderr_path = workdir / f"stderr-{time.monotonic_ns()}.txt"
        with self.stderr_path.open("w") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, str(HERE / "daemon_process.py"), *args],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                cwd=workdir,
                env=_environment(**env),
            )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.strip())

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_for(self, condition: Callable[[], Any], what: str) -> Any:
        deadline = time.monotonic() + PATIENCE
        while True:
            value = condition()
            if value:
                return value
            assert self.process.poll() is None, f"the process ended: {self.stderr_path.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.02)

    def wait_until_ready(self) -> None:
        """Waits for the ``ready`` line of ``daemon`` mode."""
        self.wait_for(lambda: "ready" in self.lines, "the daemon to start")

    def wait_for_state(self, condition: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        """Waits for a state line (``daemon`` mode) that satisfies ``condition``."""

        def latest() -> dict[str, Any] | None:
            states = [line for line in self.lines if line.startswith("{")]
            state = json.loads(states[-1]) if states else None
            return state if state is not None and condition(state) else None

        return self.wait_for(latest, what)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        assert self.process.wait(timeout=PATIENCE) == -signal.SIGKILL

    def stop(self) -> None:
        """SIGTERM: the daemon stops and the process exits cleanly."""
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=PATIENCE) == 0, self.stderr_path.read_text()[-3000:]
        self._reader.join(timeout=PATIENCE)
        assert self.lines[-1] == "stopped"

    def close(self) -> None:
        """Kills the process if it still runs, and releases its pipe."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=PATIENCE)
        self._reader.join(timeout=PATIENCE)
        assert self.process.stdout is not None
        self.process.stdout.close()


def _daemon(workdir: Path, scenario: str, storage: str, root: Path, *flags: str, **env: str) -> LocationProcess:
    process = LocationProcess(workdir, "daemon", scenario, storage, str(root), *flags, **env)
    process.wait_until_ready()
    return process


def _records(root: Path, suffix: str) -> dict[str, tuple[str, int, int]]:
    """Per run id, ``(location, pid, time_ns)`` of its step's start or end record."""
    found = {}
    for path in root.glob(f"*.{suffix}"):
        location, pid, at = path.read_text().split()
        found[path.stem] = (location, int(pid), int(at))
    return found


def _unfinished_steps(root: Path) -> set[str]:
    return set(_records(root, "start")) - set(_records(root, "end"))


def _events(store: rs.Storage, run_id: str, event_type: str) -> list[rs.StoredEvent]:
    return [event for event in store.get_events_for_run(run_id) if event.event_type == event_type]


def test_a_daemon_killed_mid_way_restarts_without_losing_a_cursor_or_firing_a_run_key_twice(tmp_path):
    path, root = str(tmp_path / "store"), tmp_path / "steps"
    root.mkdir()
    # The first run's step holds the pool's only slot until the process is killed.
    (root / "hold").write_text("")
    first = _daemon(tmp_path, "cursor", path, root)
    try:
        first.wait_for_state(
            lambda state: int(state["cursors"]["counter"] or 0) >= 3 and bool(_unfinished_steps(root)),
            "a few ticks with a step holding its slot",
        )
        first.kill()
    finally:
        first.close()
    [interrupted] = _unfinished_steps(root)
    (root / "hold").unlink()

    second = _daemon(tmp_path, "cursor", path, root)
    try:
        second.wait_for_state(
            lambda state: state["cursors"]["counter"] == str(CURSOR_LIMIT) and state["unfinished"] == 0,
            "every key to be requested and every run to end",
        )
        second.stop()
    finally:
        second.close()

    store = rs.Storage.embedded(path)
    ticks = list(reversed(store.get_ticks("counter", limit=1000)))
    cursors = [int(tick.cursor) for tick in ticks]
    last_request = cursors.index(CURSOR_LIMIT)
    # Every cursor once, in order, across the kill; then skips that keep the last one.
    assert cursors[: last_request + 1] == list(range(1, CURSOR_LIMIT + 1)), cursors
    assert set(cursors[last_request:]) == {CURSOR_LIMIT}
    assert {tick.skip_reason for tick in ticks[last_request + 1 :]} <= {"every key was requested"}
    runs = store.get_runs(limit=1000)
    assert Counter(dict(run.tags)["key"] for run in runs) == {str(key): 1 for key in range(1, CURSOR_LIMIT + 1)}
    for tick in ticks:
        assert [dict(store.get_run(run_id).tags)["key"] for run_id in tick.run_ids] in ([], [tick.cursor])

    # The run the kill interrupted was failed by the restarted daemon's run monitoring; at most
    # the other run the first process had admitted failed with it; every other run succeeded.
    failed = {run.run_id: run.message for run in runs if run.status != "Success"}
    assert interrupted in failed and len(failed) <= 2, failed
    assert "stopped sending heartbeats" in failed[interrupted]
    assert all("heartbeats" in message or "start_timeout" in message for message in failed.values())
    assert {run.status for run in runs} <= {"Success", "Failure"}
    ended_by_second = {run_id for run_id, (_, pid, _) in _records(root, "end").items() if pid == second.pid}
    assert ended_by_second == {run.run_id for run in runs if run.status == "Success"}
    # Its slot was freed when it failed, not held for the lease (5 minutes): the runs after it
    # took the pool's only slot; none is held or left to expire now.
    assert store.get_pool_slot_holders("db") == []
    assert store.get_pool_info("db").claimed_count == 0
    assert store._free_expired_leases() == 0


def test_run_monitoring_fails_a_run_whose_process_was_killed_and_frees_its_slots(surreal_server, tmp_path):
    server = surreal_server()
    root = tmp_path / "steps"
    root.mkdir()
    observer = rs.Storage.connect(server.endpoint)
    monitor = _daemon(tmp_path, "slow", server.endpoint, root)
    (root / "hold").write_text("")
    run_id = "killed-run"
    runner = LocationProcess(tmp_path, "materialize", "slow", server.endpoint, str(root), run_id)
    try:
        runner.wait_for(lambda: (root / f"{run_id}.start").exists(), "the step to start")
        [holder] = observer.get_pool_slot_holders("db")
        assert holder.run_id == run_id
        # Longer than the heartbeat timeout: a run whose process heart-beats is left running.
        time.sleep(2.0)
        assert observer.get_run(run_id).status == "Running"
        runner.kill()
        failed = monitor.wait_for(
            lambda: (run := observer.get_run(run_id)).status in TERMINAL and run, "the monitor to fail the run"
        )
        monitor.stop()
    finally:
        runner.close()
        monitor.close()
    assert failed.status == "Failure"
    assert "stopped sending heartbeats" in failed.message
    assert len(_events(observer, run_id, "RunFailure")) == 1
    assert observer.get_pool_slot_holders("db") == []
    assert observer.get_pool_info("db").claimed_count == 0


def test_the_run_queue_limit_is_global_across_code_locations(surreal_server, tmp_path):
    server = surreal_server()
    observer = rs.Storage.connect(server.endpoint)
    locations = ("east", "west")
    roots = {location: tmp_path / location for location in locations}
    daemons = {}
    try:
        for location in locations:
            roots[location].mkdir()
            daemons[location] = LocationProcess(
                tmp_path, "daemon", "burst", server.endpoint, str(roots[location]), RIVERS_CODE_LOCATION_ID=location
            )
        for daemon in daemons.values():
            daemon.wait_until_ready()
        # Both locations request their runs at once.
        for root in roots.values():
            (root / "go").write_text("")
        runs = daemons["east"].wait_for(
            lambda: (
                len(found := observer.get_runs(limit=100)) == 2 * BURST_RUNS
                and all(run.status in TERMINAL for run in found)
                and found
            ),
            "every run of both locations to end",
        )
        for daemon in daemons.values():
            daemon.stop()
    finally:
        for daemon in daemons.values():
            daemon.close()

    assert [run.status for run in runs] == ["Success"] * 2 * BURST_RUNS
    for location in locations:
        mine = [run for run in runs if dict(run.tags)["location"] == location]
        assert len(mine) == BURST_RUNS
        assert {run.launched_by for run in mine} == {rs.LaunchedBy.sensor(f"burst_{location}")}
        # Each coordinator admitted (and so executed) only its own location's runs.
        executed = _records(roots[location], "start")
        assert set(executed) == {run.run_id for run in mine}
        assert {(where, pid) for where, pid, _ in executed.values()} == {(location, daemons[location].pid)}
    # From admission to end, no two runs overlap, whatever location they belong to.
    queued = {run.run_id: _events(observer, run.run_id, "RunQueued")[0].timestamp for run in runs}
    dequeued = {run.run_id: _events(observer, run.run_id, "RunDequeued")[0].timestamp for run in runs}
    assert max_overlap([(dequeued[run.run_id], run.end_time) for run in runs]) == 1
    # And the limit held a location's run back while the other location's run went on.
    location_of = {run.run_id: dict(run.tags)["location"] for run in runs}
    assert any(
        location_of[waiting.run_id] != location_of[running.run_id]
        and queued[waiting.run_id] < running.end_time <= dequeued[waiting.run_id]
        for waiting in runs
        for running in runs
    )


def test_a_run_no_executor_starts_fails_after_start_timeout_in_another_process(surreal_server, tmp_path):
    server = surreal_server()
    observer = rs.Storage.connect(server.endpoint)
    root = tmp_path / "steps"
    root.mkdir()
    (root / "go").write_text("")
    # This location's process admits a run, and its executor never comes up: the process dies.
    lost = _daemon(tmp_path, "burst", server.endpoint, root, "--hang-launches", RIVERS_CODE_LOCATION_ID="east")
    try:
        lost.wait_for(lambda: observer.get_runs(limit=10, status="NotStarted"), "a run to be admitted")
        lost.kill()
    finally:
        lost.close()

    # The location restarted: its coordinator fails the admitted run, and runs the rest.
    restarted = _daemon(tmp_path, "burst", server.endpoint, root, RIVERS_CODE_LOCATION_ID="east")
    try:
        runs = restarted.wait_for(
            lambda: (
                len(found := observer.get_runs(limit=100)) == BURST_RUNS
                and all(run.status in TERMINAL for run in found)
                and found
            ),
            "every run to end",
        )
        restarted.stop()
    finally:
        restarted.close()

    failed = [run for run in runs if run.status == "Failure"]
    assert failed, "the admitted run that never started failed"
    for run in failed:
        [launch_failed] = _events(observer, run.run_id, "RunLaunchFailed")
        assert "start_timeout" in dict(launch_failed.metadata)["error"]
        assert "start_timeout" in run.message
        assert _events(observer, run.run_id, "RunStart") == []
    succeeded = {run.run_id for run in runs if run.status == "Success"}
    assert len(succeeded) + len(failed) == BURST_RUNS
    assert {run_id for run_id, (_, pid, _) in _records(root, "end").items() if pid == restarted.pid} == succeeded


def test_a_daemon_killed_mid_backfill_is_restarted_and_finishes_the_backfill(surreal_server, tmp_path):
    server = surreal_server()
    observer = rs.Storage.connect(server.endpoint)
    root = tmp_path / "steps"
    root.mkdir()
    # The first two runs hold until the daemon that executes them is killed.
    (root / "hold").write_text("")
    first = _daemon(tmp_path, "backfill", server.endpoint, root)
    try:
        first.wait_for(lambda: len(_records(root, "start")) == 2, "the backfill's first two runs to start")
        first.kill()
    finally:
        first.close()
    killed = set(_records(root, "start"))
    (root / "hold").unlink()
    second = _daemon(tmp_path, "backfill", server.endpoint, root)
    try:
        [tick] = [tick for tick in observer.get_ticks("requester", limit=100) if tick.backfill_ids]
        [backfill_id] = tick.backfill_ids
        record = second.wait_for(
            lambda: (
                (found := json.loads(observer._get_backfill(backfill_id)))["status"] not in ("requested", "in_progress")
                and found
            ),
            "the backfill to end",
        )
        second.stop()
    finally:
        second.close()
    runs = {run_id: observer.get_run(run_id) for run_id in record["run_ids"]}
    assert len(runs) == BACKFILL_PARTITIONS, "the runs were submitted once"
    # Run monitoring failed the two runs that died with the first daemon; the restarted daemon
    # admitted and executed every other run, each once, two at a time.
    assert {run_id for run_id, run in runs.items() if run.status == "Failure"} == killed
    assert all("stopped sending heartbeats" in runs[run_id].message for run_id in killed)
    rest = set(runs) - killed
    assert all(runs[run_id].status == "Success" for run_id in rest)
    executed = _records(root, "end")
    assert set(executed) == rest
    assert {pid for _, pid, _ in executed.values()} == {second.pid}
    assert (record["status"], record["completed"], record["failed"], record["canceled"]) == (
        "failed",
        BACKFILL_PARTITIONS - 2,
        2,
        0,
    )
    dequeued = {run_id: _events(observer, run_id, "RunDequeued")[0].timestamp for run_id in rest}
    assert max_overlap([(dequeued[run_id], runs[run_id].end_time) for run_id in rest]) <= 2
    assert sum(len(tick.backfill_ids) for tick in observer.get_ticks("requester", limit=100)) == 1
