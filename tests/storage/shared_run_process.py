"""One process taking part in a run shared by several processes on a SurrealDB server, for
test_shared_runs.py (run as a script in a subprocess).

    python shared_run_process.py ENDPOINT RUN_ID BASE_DIR owner
    python shared_run_process.py ENDPOINT RUN_ID BASE_DIR step INDEX

Every process defines the same repository: ``gate`` and ``step_0`` ... ``step_5``. ``owner``
materializes ``gate`` as run RUN_ID: it writes ``BASE_DIR/owner-started`` and holds the run
open until ``BASE_DIR/release`` exists. ``step INDEX`` materializes ``step_INDEX`` in RUN_ID
three times at once, as step pods do. Each prints its results as one JSON line.
"""

import json
import sys
import threading
import time
from pathlib import Path

import rivers as rs

ENDPOINT, RUN_ID, BASE, MODE = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4]
STEPS = 6
# Longest time the owner holds its run open: far above what the test needs.
PATIENCE = 120.0


@rs.Asset
def gate() -> int:
    if MODE == "owner":
        (BASE / "owner-started").write_text("started")
        deadline = time.monotonic() + PATIENCE
        while not (BASE / "release").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    return 0


def _step(index: int) -> rs.Asset:
    def body() -> int:
        return index

    body.__name__ = f"step_{index}"
    return rs.Asset(body)


with rs.CodeRepository(assets=[gate, *(_step(i) for i in range(STEPS))]) as repo:
    repo.resolve(storage=rs.Storage.connect(ENDPOINT))
    if MODE == "owner":
        result = repo.materialize(selection=["gate"], run_id_override=RUN_ID)
        print(json.dumps([result.success]))
    else:
        selection = [f"step_{sys.argv[5]}"]
        results: list[bool] = []

        def execute() -> None:
            outcome = repo.materialize(selection=selection, run_id_override=RUN_ID, raise_on_error=False)
            results.append(outcome.success)

        threads = [threading.Thread(target=execute) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        print(json.dumps(results))
