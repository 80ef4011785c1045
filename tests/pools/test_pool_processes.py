"""Pools shared by several real processes on a SurrealDB server (automation-and-concurrency.md
R45, claim protocol 6): a limit is global, never exceeded across processes, and the slots of a
killed process are free again once its lease ends."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import rivers as rs
from tests.pools.pool_defs import intervals, max_overlap

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
# Longest wait for a process to reach its step or finish: far above what it needs.
PATIENCE = 120.0


def _environment() -> dict[str, str]:
    # The server runs unauthenticated: no credentials from the caller's environment.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("RIVERS_SURREAL_") or key == "RIVERS_SURREAL_SERVER"
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["RIVERS_CLAIM_POLL_INTERVAL"] = "50ms"
    return env


def _start(endpoint: str, root: Path, *, limit: int, count: int, hold: float, executor: str) -> subprocess.Popen:
    root.mkdir(exist_ok=True)
    args = [endpoint, str(root), str(limit), str(count), str(hold), executor]
    return subprocess.Popen(
        [sys.executable, str(HERE / "pool_process.py"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_environment(),
    )


def _finish(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=PATIENCE)
    assert process.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_a_limit_holds_across_processes(surreal_server, tmp_path):
    server = surreal_server()
    processes = [
        _start(server.endpoint, tmp_path / f"proc{i}", limit=2, count=3, hold=0.4, executor="parallel")
        for i in range(3)
    ]
    results = [_finish(process) for process in processes]
    assert [result["success"] for result in results] == [True, True, True]
    spans = [span for i in range(3) for span in intervals(tmp_path / f"proc{i}")]
    assert len(spans) == 9
    assert max_overlap(spans) <= 2
    observer = rs.Storage.connect(server.endpoint)
    assert observer.get_pool_slot_holders("db") == []
    assert observer.get_pool_info("db").claimed_count == 0


def test_a_killed_processs_slots_are_freed_when_its_lease_ends(surreal_server, tmp_path):
    server = surreal_server()
    observer = rs.Storage.connect(server.endpoint)
    # A short lease; the repositories' pool_limits keep it (an existing pool keeps its lease).
    observer.set_pool_limit("db", 1, "2s")
    victim = _start(server.endpoint, tmp_path / "victim", limit=1, count=1, hold=PATIENCE, executor="in_process")
    try:
        deadline = time.monotonic() + PATIENCE
        while not list((tmp_path / "victim").glob("*.start")):
            assert victim.poll() is None, victim.communicate()[1]
            assert time.monotonic() < deadline, "the victim never started its step"
            time.sleep(0.02)
        [holder] = observer.get_pool_slot_holders("db")
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=PATIENCE)
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.communicate()

    # Nobody releases the victim's slot: the survivor gets it once the lease has run out.
    survivor = _finish(
        _start(server.endpoint, tmp_path / "survivor", limit=1, count=1, hold=0.1, executor="in_process")
    )
    assert survivor["success"]
    assert holder.run_id != survivor["run_id"]
    # The victim's expired row is still stored until the coordinator collects it.
    assert observer._free_expired_leases() == 1
    assert observer.get_pool_slot_holders("db") == []
