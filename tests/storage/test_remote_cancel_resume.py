"""Cancelling and resuming one run from several processes on a SurrealDB server (docs/decisions.md
"Resuming a cancelled run"): a request made from another process while the run's owner dies
(SIGKILL) survives the restart, which cancels itself at once; resuming the run once it ended
`Canceled` withdraws the request and finishes it."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import rivers as rs

HERE = Path(__file__).resolve().parent
# Longest wait for the first process to reach its step: far above what it needs.
PATIENCE = 60.0


def _script(endpoint: str, run_id: str, base: Path, mode: str) -> list[str]:
    return [sys.executable, str(HERE / "cancel_resume_run.py"), endpoint, run_id, str(base), mode]


def _environment() -> dict[str, str]:
    # The server runs unauthenticated: no credentials from the caller's environment.
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("RIVERS_SURREAL_") or key == "RIVERS_SURREAL_SERVER"
    }


def _resume(endpoint: str, run_id: str, base: Path) -> dict:
    done = subprocess.run(
        _script(endpoint, run_id, base, "resume"), capture_output=True, text=True, timeout=120, env=_environment()
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _executions(base: Path) -> list[str]:
    return (base / "executions").read_text().split()


def test_a_request_outlives_a_killed_owner_and_resuming_the_cancelled_run_finishes_it(surreal_server, tmp_path):
    server = surreal_server()
    run_id = "cancel-across-processes"
    owner = subprocess.Popen(
        _script(server.endpoint, run_id, tmp_path, "fresh"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=_environment(),
    )
    try:
        deadline = time.monotonic() + PATIENCE
        while not (tmp_path / "started").exists():
            assert owner.poll() is None, owner.stderr.read().decode() if owner.stderr else ""
            assert time.monotonic() < deadline, "the owner never reached its first step"
            time.sleep(0.05)
        # Another process asks for cancellation; the owner dies before it ends the run.
        rs.Storage.connect(server.endpoint).request_cancellation(run_id)
        owner.send_signal(signal.SIGKILL)
        assert owner.wait(timeout=30) == -signal.SIGKILL
    finally:
        if owner.poll() is None:
            owner.kill()
        if owner.stderr:
            owner.stderr.close()

    observer = rs.Storage.connect(server.endpoint)
    assert observer.get_run(run_id).status == "Running"
    assert observer.is_cancelled(run_id) is True

    # The run had not ended: the request survives the restart, which cancels itself at once.
    restarted = _resume(server.endpoint, run_id, tmp_path)
    assert restarted == {"success": False, "status": "Canceled"}
    assert _executions(tmp_path) == ["first"]

    # It ended Canceled: resuming it withdraws the request and runs what is left.
    finished = _resume(server.endpoint, run_id, tmp_path)
    assert finished == {"success": True, "status": "Success"}
    assert _executions(tmp_path) == ["first", "first", "second"]
    assert observer.is_cancelled(run_id) is False
