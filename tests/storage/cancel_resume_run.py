"""A run on a SurrealDB server, for test_remote_cancel_resume.py (run as a script in a subprocess).

    python cancel_resume_run.py ENDPOINT RUN_ID BASE_DIR {fresh|resume}

``fresh`` starts run RUN_ID: its first step records that it ran, writes ``BASE_DIR/started`` and
then waits (for the test to SIGKILL this process). ``resume`` resumes RUN_ID and prints the run's
outcome as JSON. Each step appends its name to ``BASE_DIR/executions`` when it runs.
"""

import json
import sys
import time
from pathlib import Path

import obstore.store

import rivers as rs

ENDPOINT, RUN_ID, BASE, MODE = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4]
(BASE / "store").mkdir(parents=True, exist_ok=True)
handler = rs.PickleIOHandler(store=obstore.store.LocalStore(str(BASE / "store")))


def executed(name: str) -> None:
    with open(BASE / "executions", "a") as log:
        log.write(f"{name}\n")


@rs.Asset(io_handler=handler)
def first() -> int:
    executed("first")
    if MODE == "fresh":
        (BASE / "started").write_text("started")
        time.sleep(600)  # until SIGKILL
    return 1


@rs.Asset(io_handler=handler)
def second(first: int) -> int:
    executed("second")
    return first + 1


with rs.CodeRepository(assets=[first, second], default_executor=rs.Executor.in_process()) as repo:
    repo.resolve(storage=rs.Storage.connect(ENDPOINT))
    result = repo.materialize(run_id_override=RUN_ID, resume=MODE == "resume", raise_on_error=False)
    print(json.dumps({"success": result.success, "status": repo.storage.get_run(RUN_ID).status}))
