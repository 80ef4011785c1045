"""Crash-safety helper, run as a script by test_resume.py in a subprocess.

    python exec_crash_chain.py RUN_ID {fresh|resume|inspect} OUTPUT_JSON

``inspect`` executes nothing: it only dumps the run's status and events.

``$RIVERS_CRASH_DIR`` holds the embedded storage (``state/``), the pickle store
(``store/``), one execution-count file per asset (``counts/<asset>``) and the
``kill_marker`` file: while it exists, ``crash_enrich`` SIGKILLs its own process
in the middle of the chain crash_extract -> crash_clean -> crash_enrich -> crash_report.
"""

import json
import os
import signal
import sys
from pathlib import Path

import obstore.store

import rivers as rs

BASE = Path(os.environ["RIVERS_CRASH_DIR"])
COUNTS = BASE / "counts"
STORE = BASE / "store"
KILL_MARKER = BASE / "kill_marker"
COUNTS.mkdir(parents=True, exist_ok=True)
STORE.mkdir(parents=True, exist_ok=True)

handler = rs.PickleIOHandler(store=obstore.store.LocalStore(str(STORE)))

CHAIN = ["crash_extract", "crash_clean", "crash_enrich", "crash_report"]


def count_execution(name: str) -> None:
    with open(COUNTS / name, "a") as fh:
        fh.write("executed\n")
        fh.flush()
        os.fsync(fh.fileno())


@rs.Asset(io_handler=handler)
def crash_extract() -> list[int]:
    count_execution("crash_extract")
    return [1, 2, 3]


@rs.Asset(io_handler=handler)
def crash_clean(crash_extract: list[int]) -> list[int]:
    count_execution("crash_clean")
    return [x * 10 for x in crash_extract]


@rs.Asset(io_handler=handler)
def crash_enrich(crash_clean: list[int]) -> int:
    count_execution("crash_enrich")
    if KILL_MARKER.exists():
        os.kill(os.getpid(), signal.SIGKILL)
    return sum(crash_clean)


@rs.Asset(io_handler=handler)
def crash_report(crash_enrich: int) -> str:
    count_execution("crash_report")
    return f"total={crash_enrich}"


def main() -> None:
    run_id, mode, output = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    repo = rs.CodeRepository(
        assets=[crash_extract, crash_clean, crash_enrich, crash_report],
        default_executor=rs.Executor.in_process(),
    )
    repo.resolve(storage=rs.Storage.embedded(str(BASE / "state")))
    if mode == "inspect":
        record = repo.storage.get_run(run_id)
        payload = {
            "status": record.status if record is not None else None,
            "events": [[e.event_type, e.asset_key] for e in repo.storage.get_events_for_run(run_id)],
        }
        output.write_text(json.dumps(payload))
        repo.shutdown()
        return
    result = repo.materialize(run_id_override=run_id, resume=(mode == "resume"), raise_on_error=False)
    storage = repo.storage
    try:
        report = repo.load_node("crash_report")
    except Exception as exc:  # reported to the test, which asserts on it
        report = f"<load failed: {exc!r}>"
    payload = {
        "success": result.success,
        "run_id": result.run_id,
        "materialized_assets": list(result.materialized_assets),
        "failed_assets": [list(item) for item in result.failed_assets],
        "status": storage.get_run(run_id).status,
        "events": [[e.event_type, e.asset_key] for e in storage.get_events_for_run(run_id)],
        "report": report,
    }
    output.write_text(json.dumps(payload))
    repo.shutdown()


if __name__ == "__main__":
    main()
