"""Module-level assets for the Executor.parallel() tests.

loky workers re-import step functions, hooks and IO handlers by
``(module, qualname)``, so everything here lives at module scope and the module is
importable by name (conftest.py puts this directory on ``sys.path`` and
``PYTHONPATH``).  Steps report what happened by writing small JSON marker files
into ``$RIVERS_EXEC_TEST_DIR/marks`` (one file per event, written atomically), and
persist values through a ``PickleIOHandler`` on a ``LocalStore`` so they cross the
process boundary.
"""

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import obstore.store
import pydantic
from pydantic import PrivateAttr

import rivers as rs

BASE = Path(os.environ["RIVERS_EXEC_TEST_DIR"])
STORE_DIR = BASE / "store"
MARKS = BASE / "marks"
STORE_DIR.mkdir(parents=True, exist_ok=True)
MARKS.mkdir(parents=True, exist_ok=True)

ORCHESTRATOR_PID = int(os.environ["RIVERS_EXEC_ORCHESTRATOR_PID"])

# Upper bound for the barrier waits below; only reached when steps that must
# overlap are (wrongly) executed one after another.
BARRIER_TIMEOUT_S = 45.0

pickle_handler = rs.PickleIOHandler(store=obstore.store.LocalStore(str(STORE_DIR)))


# --------------------------------------------------------------------------- marker files


def mark(kind: str, name: str, **fields: Any) -> None:
    """Record ``kind`` for step ``name`` (with this process's pid) as a marker file."""
    stamp = time.time_ns()
    payload = {"kind": kind, "name": name, "pid": os.getpid(), "time_ns": stamp, **fields}
    final = MARKS / f"{kind}--{name}--{os.getpid()}--{stamp}.json"
    tmp = MARKS / f".{final.name}.tmp"
    tmp.write_text(json.dumps(payload))
    tmp.rename(final)


def read_marks(kind: str, name: str | None = None) -> list[dict[str, Any]]:
    """Every marker of ``kind`` (optionally for one step), oldest first."""
    pattern = f"{kind}--{name}--*.json" if name else f"{kind}--*.json"
    found = [json.loads(p.read_text()) for p in MARKS.glob(pattern)]
    return sorted(found, key=lambda m: m["time_ns"])


def _started(names: list[str]) -> set[str]:
    return {m["name"] for m in read_marks("start") if m["name"] in names}


# --------------------------------------------------------------------------- simple sync steps


@rs.Asset(io_handler=pickle_handler)
def par_pid() -> int:
    return os.getpid()


@rs.Asset(io_handler=pickle_handler)
def par_double(par_pid: int) -> dict[str, int]:
    return {"upstream": par_pid, "pid": os.getpid(), "double": par_pid * 2}


@rs.Asset(io_handler=pickle_handler, metadata={"rivers/executor": "in_process"})
def par_local() -> int:
    return os.getpid()


@rs.Asset(io_handler=pickle_handler, metadata={"rivers/executor": "parallel"})
def par_forced_parallel() -> int:
    return os.getpid()


@rs.Asset
def par_memory() -> int:
    return os.getpid()


@rs.Asset
def par_memory_child(par_memory: int) -> list[int]:
    return [par_memory, os.getpid()]


# --------------------------------------------------------------------------- overlapping sync steps

OVERLAP = ["overlap_1", "overlap_2", "overlap_3", "overlap_4"]


def _wait_for_peers(name: str, group: list[str]) -> int:
    """Barrier: record the start, wait (bounded) until every peer started, record the span."""
    start = time.time_ns()
    mark("start", name)
    deadline = time.monotonic() + BARRIER_TIMEOUT_S
    while _started(group) != set(group) and time.monotonic() < deadline:
        time.sleep(0.05)
    saw = sorted(_started(group))
    mark("span", name, start=start, end=time.time_ns(), saw=saw)
    return os.getpid()


@rs.Asset(io_handler=pickle_handler)
def overlap_1() -> int:
    return _wait_for_peers("overlap_1", OVERLAP)


@rs.Asset(io_handler=pickle_handler)
def overlap_2() -> int:
    return _wait_for_peers("overlap_2", OVERLAP)


@rs.Asset(io_handler=pickle_handler)
def overlap_3() -> int:
    return _wait_for_peers("overlap_3", OVERLAP)


@rs.Asset(io_handler=pickle_handler)
def overlap_4() -> int:
    return _wait_for_peers("overlap_4", OVERLAP)


# --------------------------------------------------------------------------- serial sync steps

SERIAL = ["serial_1", "serial_2", "serial_3", "serial_4"]


def _span(name: str) -> int:
    start = time.time_ns()
    mark("start", name)
    total = sum(range(50_000))
    mark("span", name, start=start, end=time.time_ns(), saw=[], total=total)
    return os.getpid()


@rs.Asset(io_handler=pickle_handler)
def serial_1() -> int:
    return _span("serial_1")


@rs.Asset(io_handler=pickle_handler)
def serial_2() -> int:
    return _span("serial_2")


@rs.Asset(io_handler=pickle_handler)
def serial_3() -> int:
    return _span("serial_3")


@rs.Asset(io_handler=pickle_handler)
def serial_4() -> int:
    return _span("serial_4")


# --------------------------------------------------------------------------- async steps

# Async steps run on the orchestrating process's event loop, so shared state works.
ASYNC_STATE: dict[str, Any] = {}


def reset_async_state(target: int) -> None:
    """``target``: how many async steps must have been active at once before any finishes."""
    ASYNC_STATE.clear()
    ASYNC_STATE.update(active=0, max=0, target=target, pids=set(), done=[])


async def _async_body(name: str) -> str:
    ASYNC_STATE["active"] += 1
    ASYNC_STATE["max"] = max(ASYNC_STATE["max"], ASYNC_STATE["active"])
    ASYNC_STATE["pids"].add(os.getpid())
    deadline = time.monotonic() + BARRIER_TIMEOUT_S
    while ASYNC_STATE["max"] < ASYNC_STATE["target"] and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    ASYNC_STATE["active"] -= 1
    ASYNC_STATE["done"].append(name)
    return name


@rs.Asset
async def async_1() -> str:
    return await _async_body("async_1")


@rs.Asset
async def async_2() -> str:
    return await _async_body("async_2")


@rs.Asset
async def async_3() -> str:
    return await _async_body("async_3")


@rs.Asset
async def async_4() -> str:
    return await _async_body("async_4")


ASYNC_ASSETS = [async_1, async_2, async_3, async_4]


# --------------------------------------------------------------------------- hooks in workers


@rs.Hook.success
def worker_success_hook(ctx: rs.HookContext) -> None:
    mark("hook", ctx.asset_name, hook_type=ctx.hook_type, output=ctx.output, run_id=ctx.run_id)


@rs.Asset(io_handler=pickle_handler, hooks=[worker_success_hook])
def par_hooked() -> int:
    return os.getpid()


class HookedConfig(pydantic.BaseModel):
    threshold: int = 0


@rs.Hook.failure
def worker_failure_hook(ctx: rs.HookContext) -> None:
    threshold = ctx.config.threshold if ctx.config is not None else None
    mark("hook", ctx.asset_name, hook_type=ctx.hook_type, error=ctx.error, threshold=threshold)


@rs.Asset(io_handler=pickle_handler, hooks=[worker_failure_hook])
def par_hooked_failure(context: rs.AssetExecutionContext[HookedConfig]) -> int:
    mark("attempt", "par_hooked_failure", threshold=context.config.threshold)
    raise ValueError(f"over threshold {context.config.threshold}")


# --------------------------------------------------------------------------- retries across the process boundary


@rs.Asset(
    io_handler=pickle_handler,
    retry=rs.RetryPolicy(max_retries=2, retry_on=[ConnectionError]),
)
def par_connection_flaky() -> int:
    mark("attempt", "par_connection_flaky")
    if len(read_marks("attempt", "par_connection_flaky")) == 1:
        raise ConnectionResetError("peer reset the connection")
    return os.getpid()


@rs.Asset(
    io_handler=pickle_handler,
    retry=rs.RetryPolicy(max_retries=2, retry_on=rs.RetryOn.TRANSIENT),
)
def par_value_error() -> int:
    mark("attempt", "par_value_error")
    raise ValueError("bad row in worker")


@rs.Asset(io_handler=pickle_handler)
def par_dies() -> int:
    mark("attempt", "par_dies")
    if os.getpid() == ORCHESTRATOR_PID:
        raise RuntimeError("par_dies ran in the orchestrating process; refusing to kill it")
    os.kill(os.getpid(), signal.SIGKILL)
    return 0


# --------------------------------------------------------------------------- resources, context and config in workers


class WorkerResource(rs.Resource):
    greeting: str = "hello"
    _setup_pid: int | None = PrivateAttr(default=None)

    def setup(self) -> None:
        self._setup_pid = os.getpid()

    @property
    def setup_pid(self) -> int | None:
        return self._setup_pid


@rs.Asset(io_handler=pickle_handler)
def par_resource(greeter: WorkerResource) -> dict[str, Any]:
    return {"greeting": greeter.greeting, "setup_pid": greeter.setup_pid, "pid": os.getpid()}


class ParConfig(pydantic.BaseModel):
    multiplier: int = 1


@rs.Asset(io_handler=pickle_handler)
def par_context(context: rs.AssetExecutionContext[ParConfig]) -> dict[str, Any]:
    return {
        "asset_name": context.asset_name,
        "multiplier": context.config.multiplier,
        "pid": os.getpid(),
    }
