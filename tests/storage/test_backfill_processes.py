"""Backfills coordinated in one process and cancelled from another, on a SurrealDB server
(partitions-and-backfills.md `cancel_backfill`): the coordinator sees the cancel marker within
a second, launches no further run, asks its running run to stop, and ends `canceled` with every
unfinished partition counted."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import rivers as rs

HERE = Path(__file__).resolve().parent
PATIENCE = 60.0


def _environment() -> dict[str, str]:
    # The server runs unauthenticated: no credentials from the caller's environment.
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("RIVERS_SURREAL_") or key == "RIVERS_SURREAL_SERVER"
    }


def _coordinator(endpoint: str, base: Path, strategy: str, seconds: float) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(HERE / "backfill_process.py"), endpoint, str(base), strategy, str(seconds)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_environment(),
    )


def _wait_for_start(base: Path, process: subprocess.Popen) -> str:
    deadline = time.monotonic() + PATIENCE
    while not (base / "started").exists() or not (base / "backfill_id").exists():
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "the backfill never started a run"
        time.sleep(0.02)
    return (base / "backfill_id").read_text()


def _other_process_repo(endpoint: str) -> rs.CodeRepository:
    repo = rs.CodeRepository(assets=[])
    repo.resolve(storage=rs.Storage.connect(endpoint))
    return repo


def _started(base: Path) -> list[str]:
    return (base / "started").read_text().splitlines()


def _cancel_from_another_process(endpoint: str, base: Path, strategy: str, seconds: float) -> tuple[dict, Any, str]:
    """Starts a coordinator, cancels its backfill from this process once a run started, and
    returns how the backfill ended, this process's repository and the backfill's id."""
    coordinator = _coordinator(endpoint, base, strategy, seconds)
    try:
        backfill_id = _wait_for_start(base, coordinator)
        other = _other_process_repo(endpoint)
        assert other.get_backfill(backfill_id).status == "in_progress"
        # Not coordinated here: a marker is left for the coordinator, and False returned.
        assert other.cancel_backfill(backfill_id) is False
        out, err = coordinator.communicate(timeout=120)
        assert coordinator.returncode == 0, err
    finally:
        if coordinator.poll() is None:
            coordinator.kill()
            coordinator.communicate()
    return json.loads(out.strip().splitlines()[-1]), other, backfill_id


def test_a_cancel_from_another_process_stops_launching_runs_within_a_second(surreal_server, tmp_path):
    ended, other, backfill_id = _cancel_from_another_process(surreal_server().endpoint, tmp_path, "multi_run", 0.3)
    # Within a second the coordinator stops launching: at most the run in flight and the ones
    # started before it noticed (0.3 s each) ran after the request.
    started = _started(tmp_path)
    assert len(started) <= 1 + 4, started
    assert ended["status"] == "canceled"
    assert ended["completed"] + ended["failed"] + ended["canceled"] == 20
    assert ended["canceled"] >= 20 - len(started)
    assert ended["runs"] == len(started)
    # The marker on an ended backfill changes nothing.
    assert other.cancel_backfill(backfill_id) is False
    assert other.get_backfill(backfill_id).status == "canceled"


def test_a_single_run_backfill_cancelled_from_another_process_cancels_its_run(surreal_server, tmp_path):
    ended, other, backfill_id = _cancel_from_another_process(surreal_server().endpoint, tmp_path, "single_run", 2.0)
    assert ended == {"status": "canceled", "completed": 0, "failed": 0, "canceled": 20, "runs": 1}
    status = other.get_backfill(backfill_id)
    assert other.storage.get_run(status.run_ids[0]).status == "Canceled"
