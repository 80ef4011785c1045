"""Module-level tasks and graph assets for the ``Executor.parallel()`` tests in test_fan_out.py and
test_graph_assets.py (graph-and-tasks.md R38-R41, R48-R50, R53).

loky workers re-import step functions and IO handlers by ``(module, qualname)``, so everything here lives at
module scope. Values cross the process boundary through a ``PickleIOHandler`` on a ``LocalStore``. Steps report
what happened (pid, start and end times) as small JSON marker files, one file per event, written atomically.

The scratch directory is ``$RIVERS_FANOUT_TEST_DIR`` when set, else a fixed directory under the temp directory
derived from the user id, so the orchestrator and its workers agree on it.
"""

import asyncio
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import obstore.store

import rivers as rs

BASE = Path(os.environ.get("RIVERS_FANOUT_TEST_DIR") or Path(tempfile.gettempdir()) / f"rivers-fanout-{os.getuid()}")
STORE_DIR = BASE / "store"
MARKS = BASE / "marks"
STORE_DIR.mkdir(parents=True, exist_ok=True)
MARKS.mkdir(parents=True, exist_ok=True)

pickle_handler = rs.PickleIOHandler(store=obstore.store.LocalStore(str(STORE_DIR)))
# Registered as the resource "report_store" by the adapted example 3.
report_store = rs.PickleIOHandler(store=obstore.store.LocalStore(str(STORE_DIR)), prefix="reports")


def reset() -> None:
    """Remove every stored value and marker left by an earlier test."""
    for directory in (STORE_DIR, MARKS):
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True, exist_ok=True)


def mark(kind: str, name: str, **fields: Any) -> None:
    """Record one event of ``kind`` for ``name`` (with this process's pid) as a marker file."""
    stamp = time.time_ns()
    payload = {"kind": kind, "name": name, "pid": os.getpid(), "time_ns": stamp, **fields}
    final = MARKS / f"{kind}--{name}--{os.getpid()}--{stamp}.json"
    tmp = MARKS / f".{final.name}.tmp"
    tmp.write_text(json.dumps(payload))
    tmp.rename(final)


def read_marks(kind: str) -> list[dict[str, Any]]:
    """Every marker of ``kind``, oldest first."""
    found = [json.loads(p.read_text()) for p in MARKS.glob(f"{kind}--*.json")]
    return sorted(found, key=lambda m: m["time_ns"])


def max_overlap(spans: list[dict[str, Any]]) -> int:
    """Largest number of ``[start, end]`` spans open at the same moment.

    Spans are recorded inside the step bodies, so they lie within the real execution windows: the measured
    overlap can only under-estimate the real one.
    """
    points = sorted([(s["start"], 1) for s in spans] + [(s["end"], -1) for s in spans], key=lambda p: (p[0], p[1]))
    current = best = 0
    for _, delta in points:
        current += delta
        best = max(best, current)
    return best


# --------------------------------------------------------------------------- executors of internal tasks (R38-R41)


@rs.Task
def pid_first() -> int:
    return os.getpid()


@rs.Task
def pid_second(first: int) -> list[int]:
    return [first, os.getpid()]


@rs.Asset.from_graph(io_handler=pickle_handler, metadata={"rivers/node/executor": "in_process"})
def node_in_process():
    return pid_second(pid_first())


@rs.Asset.from_graph(io_handler=pickle_handler, metadata={"rivers/node/executor": "parallel"})
def node_parallel():
    return pid_second(pid_first())


@rs.Asset.from_graph(io_handler=pickle_handler, metadata={"rivers/executor": "in_process"})
def graph_executor_fallback():
    return pid_second(pid_first())


@rs.Asset.from_graph(io_handler=pickle_handler)
def inherits_run_executor():
    return pid_second(pid_first())


# --------------------------------------------------------------------------- example 3 (adapted)


@rs.Task
def fetch_rows() -> list[int]:
    mark("pid", "fetch_rows")
    return [3, 1, 2]


@rs.Task
def summarise(rows: list[int]) -> dict[str, int]:
    mark("pid", "summarise")
    return {"count": len(rows), "total": sum(rows)}


@rs.Task
def render(summary: dict[str, int]) -> str:
    mark("pid", "render")
    return f"{summary['count']} rows, total {summary['total']}"


@rs.Asset.from_graph(
    name="daily_report",
    io_handler="report_store",
    node_io_handler=rs.InMemoryIOHandler(),
    metadata={"rivers/executor": "parallel", "rivers/node/executor": "in_process"},
)
def daily_report():
    return render(summarise(fetch_rows()))


# --------------------------------------------------------------------------- fan-out: order of collected results


@rs.Task
def sleep_plan() -> list[float]:
    # The first element sleeps longest, so instances complete in reverse element order.
    return [1.2, 0.6, 0.0]


@rs.Task
def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@rs.Task
def as_list(values: Any) -> list:
    return list(values)


@rs.Asset.from_graph(io_handler=pickle_handler)
def collected_naps():
    return as_list(sleep_plan().map(nap).collect())


@rs.Asset.from_graph(io_handler=pickle_handler)
def streamed_naps():
    return as_list(sleep_plan().map(nap).collect_stream())


@rs.Asset.from_graph(io_handler=pickle_handler)
def streamed_naps_ordered():
    return as_list(sleep_plan().map(nap).collect_stream(ordered=True))


# --------------------------------------------------------------------------- fan-out: max_concurrency


@rs.Task
def six_items() -> list[int]:
    return list(range(6))


@rs.Task
def capped_work(i: int) -> int:
    start = time.time_ns()
    time.sleep(0.4)
    mark("span", f"capped-{i}", start=start, end=time.time_ns())
    return i * 10


@rs.Asset.from_graph(io_handler=pickle_handler)
def capped_fan_out():
    return as_list(six_items().map(capped_work, max_concurrency=2).collect())


@rs.Task
async def async_capped_work(i: int) -> int:
    start = time.time_ns()
    await asyncio.sleep(0.3)
    mark("async-span", f"async-capped-{i}", start=start, end=time.time_ns())
    return i * 100


@rs.Asset.from_graph(io_handler=pickle_handler)
def async_capped_fan_out():
    return as_list(six_items().map(async_capped_work, max_concurrency=2).collect())
