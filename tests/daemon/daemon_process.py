"""A code location in a process of its own, for test_daemon_processes.py (run as a script).

    python daemon_process.py daemon SCENARIO STORAGE ROOT [--hang-launches]
    python daemon_process.py materialize SCENARIO STORAGE ROOT RUN_ID

Builds the repository of SCENARIO (``process_defs.SCENARIOS``) with ROOT for its step
records, as code location ``RIVERS_CODE_LOCATION_ID``, and resolves it on STORAGE: a
``ws://`` endpoint, else an embedded store at that path.

``daemon`` starts an ``AutomationDaemon`` (every tick retained), prints ``ready``, then a JSON
line every 100 ms with the newest cursor of each sensor and the number of unfinished runs in
the store, until SIGTERM stops the daemon (it prints ``stopped``) or SIGKILL ends the process.
``--hang-launches`` makes every run the daemon admits wait forever instead of starting, as
when no executor comes up for it.

``materialize`` materializes every asset as run RUN_ID, which blocks until the process is
killed when a step holds on.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from typing import Any

import rivers as rs
from rivers._core import AutomationDaemon
from tests.daemon.process_defs import SCENARIOS

UNFINISHED = ("Queued", "NotStarted", "Running")
STATE_INTERVAL = 0.1


def storage_of(target: str) -> rs.Storage:
    return rs.Storage.connect(target) if target.startswith("ws://") else rs.Storage.embedded(target)


def state(repo: rs.CodeRepository, storage: rs.Storage) -> dict[str, Any]:
    cursors = {}
    for sensor in repo.sensors:
        latest = storage.get_ticks(sensor.name, limit=1)
        cursors[sensor.name] = latest[0].cursor if latest else None
    unfinished = sum(len(storage.get_runs(limit=1000, status=status)) for status in UNFINISHED)
    return {"cursors": cursors, "unfinished": unfinished}


def run_daemon(repo: rs.CodeRepository, storage: rs.Storage, hang_launches: bool) -> None:
    if hang_launches:
        never = threading.Event()

        def launch_nothing(*_: object) -> None:
            never.wait()

        repo._launch_run = launch_nothing  # type: ignore[method-assign]
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    daemon = AutomationDaemon(repo, storage, max_ticks_retained=None)
    daemon.start()
    print("ready", flush=True)
    while not stopping.wait(STATE_INTERVAL):
        print(json.dumps(state(repo, storage)), flush=True)
    daemon.stop()
    print("stopped", flush=True)


def main() -> None:
    action, scenario, target, root = sys.argv[1:5]
    location = os.environ.get("RIVERS_CODE_LOCATION_ID", "default")
    storage = storage_of(target)
    with SCENARIOS[scenario](root, location) as repo:
        repo.resolve(storage=storage)
        if action == "daemon":
            run_daemon(repo, storage, hang_launches="--hang-launches" in sys.argv[5:])
        else:
            repo.materialize(run_id_override=sys.argv[5])


if __name__ == "__main__":
    main()
