"""Code locations that daemon_process.py runs in its own process, one per scenario of
test_daemon_processes.py. Each builder takes ``root``, a directory where step bodies record
what they did, and ``location``, the process's code-location id.

A step body writes ``<root>/<run_id>.start`` when it begins and ``<run_id>.end`` when it
returns, each holding ``"<location> <pid> <time_ns>"``: the test reads from the files which
process ran which run and when, whatever process it was, without asserting on durations.
While ``<root>/hold`` exists a body does not return: the test creates it to keep a step (and
its pool slot) busy until it kills the process.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import obstore

import rivers as rs

# The cursor sensor stops requesting runs once its cursor reaches this.
CURSOR_LIMIT = 8
# Runs each location's burst sensor requests.
BURST_RUNS = 3
# Partitions (one run each) of the backfill scenario's request.
BACKFILL_PARTITIONS = 6
# Longest time a body waits on ``<root>/hold``: far above what the test needs to kill it.
PATIENCE = 120.0


def _record(root: str, run_id: str | None, location: str, suffix: str) -> None:
    stamp = f"{location} {os.getpid()} {time.time_ns()}"
    (Path(root) / f"{run_id}.{suffix}").write_text(stamp)


def _recording_asset(
    root: str,
    location: str,
    name: str,
    hold: float,
    pool: str | None = None,
    partitions_def: rs.PartitionsDefinition | None = None,
) -> rs.Asset:
    """An asset whose body records its start and end under ``root`` and holds for ``hold`` s,
    or for as long as ``<root>/hold`` exists."""

    def body(context: rs.AssetExecutionContext) -> str:
        _record(root, context.run_id, location, "start")
        time.sleep(hold)
        deadline = time.monotonic() + PATIENCE
        while (Path(root) / "hold").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        _record(root, context.run_id, location, "end")
        return name

    body.__name__ = name
    handler = rs.PickleIOHandler(store=obstore.store.LocalStore(root))
    return rs.Asset(pool=pool, io_handler=handler, partitions_def=partitions_def)(body)


def cursor_location(root: str, location: str) -> rs.CodeRepository:
    """A cursor sensor that advances its cursor by one per tick and requests one run keyed by
    the new cursor, up to ``CURSOR_LIMIT``; the runs go through a run queue and hold the one
    slot of pool ``db`` for a moment."""
    pooled = _recording_asset(root, location, "pooled", hold=0.3, pool="db")

    @rs.Sensor(job_name="pooled_job", minimum_interval="300ms", default_status=rs.SensorStatus.Running)
    def counter(context: rs.SensorEvaluationContext) -> rs.SensorResult | rs.SkipReason:
        seen = int(context.cursor or 0)
        if seen >= CURSOR_LIMIT:
            return rs.SkipReason("every key was requested")
        key = str(seen + 1)
        return rs.SensorResult(run_requests=[rs.RunRequest(run_key=key, tags={"key": key})], cursor=key)

    return rs.CodeRepository(
        assets=[pooled],
        jobs=[rs.Job("pooled_job", [pooled])],
        sensors=[counter],
        pool_limits={"db": 1},
        run_queue=rs.RunQueueConfig(max_concurrent_runs=2, dequeue_interval="50ms", start_timeout="3s"),
        default_executor=rs.Executor.in_process(),
    )


def slow_location(root: str, location: str) -> rs.CodeRepository:
    """One asset, ``slow``, in pool ``db``; no automation (the daemon of this location only
    monitors runs)."""
    slow = _recording_asset(root, location, "slow", hold=0.0, pool="db")
    return rs.CodeRepository(assets=[slow], pool_limits={"db": 1}, default_executor=rs.Executor.in_process())


def burst_location(root: str, location: str) -> rs.CodeRepository:
    """A sensor named after the location that requests ``BURST_RUNS`` runs once ``<root>/go``
    exists (so that the test releases several locations at once), each run holding for a
    moment, through a run queue that admits one run at a time."""
    step = _recording_asset(root, location, "step", hold=0.8)

    def burst(context: rs.SensorEvaluationContext) -> rs.SensorResult | rs.SkipReason:
        if context.cursor is not None:
            return rs.SkipReason("requested already")
        if not (Path(root) / "go").exists():
            return rs.SkipReason("waiting for the go signal")
        requests = [rs.RunRequest(run_key=str(n), tags={"location": location}) for n in range(BURST_RUNS)]
        return rs.SensorResult(run_requests=requests, cursor="requested")

    # Ticks and run keys are per automation name: each location's sensor has its own.
    sensor = rs.Sensor(
        burst,
        name=f"burst_{location}",
        job_name="step_job",
        minimum_interval="200ms",
        default_status=rs.SensorStatus.Running,
    )
    return rs.CodeRepository(
        assets=[step],
        jobs=[rs.Job("step_job", [step])],
        sensors=[sensor],
        run_queue=rs.RunQueueConfig(max_concurrent_runs=1, dequeue_interval="50ms", start_timeout="2s"),
        default_executor=rs.Executor.in_process(),
    )


def backfill_location(root: str, location: str) -> rs.CodeRepository:
    """A sensor that requests one backfill of ``BACKFILL_PARTITIONS`` partitions of asset
    ``day``, two runs at a time, through a run queue."""
    partitions = rs.PartitionsDefinition.static_([f"p{n}" for n in range(1, BACKFILL_PARTITIONS + 1)])
    day = _recording_asset(root, location, "day", hold=0.1, partitions_def=partitions)

    @rs.Sensor(minimum_interval="200ms", default_status=rs.SensorStatus.Running)
    def requester(context: rs.SensorEvaluationContext) -> rs.SensorResult | rs.SkipReason:
        if context.cursor is not None:
            return rs.SkipReason("requested already")
        request = rs.BackfillRequest(
            selection=["day"], partition_keys=partitions.get_partition_keys(), max_concurrency=2
        )
        return rs.SensorResult(run_requests=[request], cursor="requested")

    return rs.CodeRepository(
        assets=[day],
        sensors=[requester],
        run_queue=rs.RunQueueConfig(max_concurrent_runs=4, dequeue_interval="50ms", start_timeout="10s"),
        default_executor=rs.Executor.in_process(),
    )


SCENARIOS: dict[str, Callable[[str, str], rs.CodeRepository]] = {
    "cursor": cursor_location,
    "slow": slow_location,
    "burst": burst_location,
    "backfill": backfill_location,
}
