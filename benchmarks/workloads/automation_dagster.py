"""Automation workloads (Dagster): twins of ``automation_rivers.py``, measured the same way.

The sensor and schedule workloads run a real ``dagster-daemon run`` subprocess, as a Dagster
deployment does: ``DAGSTER_HOME`` is a scratch directory holding a ``dagster.yaml`` and the
default SQLite storage, and the daemon loads its definitions from this module
(``-m workloads.automation_dagster -a <definitions function> -d benchmarks/``) through a code
server it starts. Runs use the default run launcher (a subprocess per run, started by the code
server) and the ``DefaultRunCoordinator``, which launches a run as soon as it is submitted: rivers
has no run queue either, and Dagster's default ``QueuedRunCoordinator`` would add its own daemon's
polling to every figure. The workload's parameters reach the daemon, its code server and the run
workers through environment variables.

Dagster's daemons wake on fixed loops (the sensor daemon at most every 5 s, the scheduler at the
start of each minute), each sensor evaluation is a gRPC call to the code server, and a run starts
a fresh Python process, so these figures are seconds or hundreds of milliseconds where rivers' are
milliseconds.

- ``sensor_latency``: a sensor's ``RunRequest`` → the run's first ``STEP_START``, from the moment
  the evaluation function returns (stamped into a tag of the request) to the event's timestamp;
  8 runs (quick: 3), one at a time.
- ``sensors_1000``: 1,000 sensors (quick: 200) due at once, each returning a skip: from the
  daemon's start until every tick is stored.
- ``schedule_lateness``: a ``* * * * *`` schedule (Dagster's cron has minute resolution) while 100
  sensors with ``minimum_interval_seconds=1`` tick: how long after its cron instant each run is
  created; 3 ticks (quick: 2).
- ``pool_claim``: claiming and releasing one slot of a pool, on the event log storage.
"""

from __future__ import annotations

import ctypes
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

# Tick statuses and instigator types are not exported at the top level of ``dagster``.
from dagster._core.scheduler.instigation import InstigatorType, TickStatus
from dagster._core.storage.tags import SCHEDULE_NAME_TAG, SCHEDULED_EXECUTION_TIME_TAG

from workloads.common import scratch_dir, summarize, time_runs

RETURNED_TAG = "bench/returned_ns"
JOB_NAME = "landed_job"
#: How many runs the latency sensor requests; read by the sensor in the daemon's code server.
SAMPLES_ENV = "RIVERS_BENCH_SENSOR_SAMPLES"
#: How many idle sensors ``idle_sensors_defs`` declares.
SENSORS_ENV = "RIVERS_BENCH_IDLE_SENSORS"
BUSY_SENSORS = 100
BENCH_DIR = Path(__file__).resolve().parent.parent
#: Longest wait for a daemon to produce what a workload waits for; a timeout is reported, not hung on.
WAIT_CAP_S = 600
POLL_S = 1.0
#: ``prctl`` option from ``<linux/prctl.h>``.
PR_SET_PDEATHSIG = 1
IN_FLIGHT = [DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]
INSTANCE_YAML = """\
run_coordinator:
  module: dagster._core.run_coordinator
  class: DefaultRunCoordinator
telemetry:
  enabled: false
"""


@dagster.asset
def landed() -> int:
    return 1


# In-process execution and in-memory values, as rivers' side runs the job.
landed_job = dagster.define_asset_job(JOB_NAME, selection=[landed], executor_def=dagster.in_process_executor)
RESOURCES = {"io_manager": dagster.mem_io_manager}


@dagster.sensor(job=landed_job, minimum_interval_seconds=1, default_status=dagster.DefaultSensorStatus.RUNNING)
def arrivals(context: dagster.SensorEvaluationContext) -> dagster.RunRequest | dagster.SkipReason:
    """Requests one run per evaluation, one at a time.

    A Dagster run takes seconds to start, longer than the sensor's interval: waiting for the
    previous run keeps each sample free of another run's start-up on the same cores, as rivers'
    millisecond runs never overlap either.
    """
    requested = int(context.cursor or 0)
    if requested >= int(os.environ[SAMPLES_ENV]):
        return dagster.SkipReason("enough")
    if context.instance.get_run_records(RunsFilter(job_name=JOB_NAME, statuses=IN_FLIGHT), limit=1):
        return dagster.SkipReason("the previous run is still in flight")
    context.update_cursor(str(requested + 1))
    return dagster.RunRequest(run_key=str(requested + 1), tags={RETURNED_TAG: str(time.time_ns())})


def _idle_sensor(name: str, minimum_interval_seconds: int) -> dagster.SensorDefinition:
    def idle(context: dagster.SensorEvaluationContext) -> dagster.SkipReason:
        return dagster.SkipReason("nothing new")

    return dagster.SensorDefinition(
        name=name,
        evaluation_fn=idle,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dagster.DefaultSensorStatus.RUNNING,
    )


@dagster.definitions
def sensor_latency_defs() -> dagster.Definitions:
    return dagster.Definitions(assets=[landed], jobs=[landed_job], sensors=[arrivals], resources=RESOURCES)


@dagster.definitions
def idle_sensors_defs() -> dagster.Definitions:
    # One evaluation each, as rivers' ``minimum_interval="1h"``.
    sensors = [_idle_sensor(f"idle_{i}", 3600) for i in range(int(os.environ[SENSORS_ENV]))]
    return dagster.Definitions(sensors=sensors)


@dagster.definitions
def schedule_lateness_defs() -> dagster.Definitions:
    every_minute = dagster.ScheduleDefinition(
        name="every_minute",
        cron_schedule="* * * * *",
        job=landed_job,
        default_status=dagster.DefaultScheduleStatus.RUNNING,
    )
    busy = [_idle_sensor(f"busy_{i}", 1) for i in range(BUSY_SENSORS)]
    return dagster.Definitions(
        assets=[landed], jobs=[landed_job], schedules=[every_minute], sensors=busy, resources=RESOURCES
    )


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _die_with_parent() -> None:
    """Runs in the daemon's process before exec: the kernel sends it SIGTERM if this worker dies.

    ``_stop_process_group`` covers every exit this worker sees; this covers the one it cannot,
    ``run.py`` killing a worker that overran its time limit. The daemon then stops its code
    server itself, as on the SIGTERM of a normal stop.
    """
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """Stop the daemon and everything it started (code server, run workers).

    They share the daemon's process group: Dagster starts its subprocesses in the group of their
    parent on POSIX. A polite SIGTERM first, so that the daemon stops its code server; then
    SIGKILL for whatever is left, including run workers whose parent already exited.
    """
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


@contextmanager
def _running_daemon(definitions: str, **env: str) -> Iterator[tuple[DagsterInstance, subprocess.Popen[bytes], float]]:
    """A ``dagster-daemon run`` loading ``definitions`` from this module, in a scratch ``DAGSTER_HOME``.

    Yields an instance on the same home (to read what the daemon stored), the daemon process and
    the wall-clock time it was started at. The instance is created first so that its storage
    schema exists before two processes open it.
    """
    daemon = Path(sys.executable).with_name("dagster-daemon")
    if not daemon.exists():
        raise RuntimeError(f"{daemon} not found: the Dagster virtualenv needs the dagster-daemon script")
    with scratch_dir("dagster-automation") as home:
        Path(home, "dagster.yaml").write_text(INSTANCE_YAML)
        with DagsterInstance.from_config(home) as instance:
            command = [str(daemon), "run", "-m", __name__, "-a", definitions, "-d", str(BENCH_DIR)]
            started = time.time()
            # The daemon's stdout goes to this worker's stderr: run.py reads stdout for the result line.
            process = subprocess.Popen(
                command,
                cwd=home,
                env={**os.environ, "DAGSTER_HOME": home, **env},
                stdout=sys.stderr.fileno(),
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
            try:
                yield instance, process, started
            finally:
                _stop_process_group(process)


def _check_alive(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        raise RuntimeError(f"dagster-daemon exited with code {process.returncode}; see the worker log")


def _finished_runs(
    instance: DagsterInstance, process: subprocess.Popen[bytes], runs: RunsFilter, count: int, cap_s: float
) -> list[dagster.DagsterRun]:
    """Wait until ``count`` runs matching ``runs`` have succeeded; fail on a failed run or after ``cap_s``.

    Waiting for success, not creation, also keeps the daemon's shutdown from killing a run
    being launched.
    """
    deadline = time.monotonic() + cap_s
    while True:
        _check_alive(process)
        found = [record.dagster_run for record in instance.get_run_records(runs)]
        failed = [run.run_id for run in found if run.status == DagsterRunStatus.FAILURE]
        if failed:
            raise RuntimeError(f"run {failed[0]} failed; see the worker log")
        if len(found) >= count and all(run.status == DagsterRunStatus.SUCCESS for run in found):
            return found
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(found)} of {count} runs created, not all finished, after {cap_s} s")
        time.sleep(POLL_S)


def sensor_latency(quick: bool) -> dict[str, Any]:
    samples = 3 if quick else 8
    with _running_daemon("sensor_latency_defs", **{SAMPLES_ENV: str(samples)}) as (instance, process, _):
        runs = _finished_runs(instance, process, RunsFilter(job_name=JOB_NAME), samples, WAIT_CAP_S)
        latencies = []
        for run in runs:
            returned_s = int(run.tags[RETURNED_TAG]) / 1e9
            start = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.STEP_START, limit=1)
            latencies.append((start.records[0].timestamp - returned_s) * 1000)
    return {
        "metrics": {"latency_ms": statistics.median(latencies)},
        "details": {
            "min_ms": min(latencies),
            "max_ms": max(latencies),
            "samples_ms": latencies,
            "note": "DefaultRunCoordinator (no run queue), default run launcher: one process per run",
        },
    }


def _stored_ticks(instance: DagsterInstance) -> list[Any]:
    """The latest tick of every idle sensor whose tick has finished."""
    states = instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
    selectors = [state.selector_id for state in states]
    if not selectors:
        return []
    # Filtered by status here: the storage's own status filter fails on SQLite in Dagster 1.13.
    latest = instance.get_batch_ticks(selectors, limit=1)
    return [ticks[0] for ticks in latest.values() if ticks and ticks[0].status == TickStatus.SKIPPED]


def sensors_1000(quick: bool) -> dict[str, Any]:
    total = 200 if quick else 1000
    with _running_daemon("idle_sensors_defs", **{SENSORS_ENV: str(total)}) as (instance, process, started):
        if not instance.supports_batch_tick_queries:
            raise RuntimeError("this SQLite is too old for Dagster's batch tick queries")
        deadline = time.monotonic() + WAIT_CAP_S
        while True:
            _check_alive(process)
            ticks = _stored_ticks(instance)
            timed_out = time.monotonic() > deadline
            if len(ticks) == total or timed_out:
                break
            # The figure comes from the ticks' end times, so a slow poll only delays the end of
            # the wait, and reading every sensor's state less often leaves the cores to the daemon.
            time.sleep(5 * POLL_S)
    if not ticks:
        raise RuntimeError(f"no sensor tick stored in {WAIT_CAP_S} s")
    # The ticks' own end times, not the polling instant, say when the last one was stored.
    ended = [tick.end_timestamp for tick in ticks]
    details: dict[str, Any] = {
        "sensors": total,
        "ticks_stored": len(ticks),
        "first_tick_stored_s": min(ended) - started,
        "note": "from daemon start (code server start-up included); default sensor daemon settings",
    }
    if timed_out and len(ticks) < total:
        details["note"] = f"timed out after {WAIT_CAP_S} s with {len(ticks)} of {total} ticks stored"
        return {"metrics": {"ticks_flushed_s": float(WAIT_CAP_S)}, "details": details}
    return {"metrics": {"ticks_flushed_s": max(ended) - started}, "details": details}


def schedule_lateness(quick: bool) -> dict[str, Any]:
    minutes = 2 if quick else 3
    with _running_daemon("schedule_lateness_defs") as (instance, process, _):
        # A tick at every minute start; the first complete minute may be up to two minutes away.
        by_schedule = RunsFilter(tags={SCHEDULE_NAME_TAG: "every_minute"})
        runs = _finished_runs(instance, process, by_schedule, minutes, 60 * (minutes + 2))
        late_ms = []
        for run in runs:
            scheduled = datetime.fromisoformat(run.tags[SCHEDULED_EXECUTION_TIME_TAG]).timestamp()
            # The run row's create_timestamp has one-second resolution in SQLite; the planned
            # event create_run writes right after the row carries the creation instant.
            planned = instance.get_records_for_run(
                run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION_PLANNED, limit=1
            )
            created = planned.records[0].timestamp
            late_ms.append((created - scheduled) * 1000)
    return {
        "metrics": {"p99_ms": _percentile(late_ms, 0.99), "median_ms": statistics.median(late_ms)},
        "details": {
            "ticks": len(late_ms),
            "max_ms": max(late_ms),
            "samples_ms": late_ms,
            "note": "`* * * * *`: Dagster's cron has minute resolution (rivers: `* * * * * *`, every second)",
        },
    }


def pool_claim(quick: bool) -> dict[str, Any]:
    with scratch_dir("dagster-pool-claim") as tmp:
        with DagsterInstance.local_temp(tmp, overrides={"telemetry": {"enabled": False}}) as instance:
            storage = instance.event_log_storage
            storage.set_concurrency_slots("warehouse", 4)
            steps = iter(range(10**9))

            def claim_and_release() -> None:
                step = f"step_{next(steps)}"
                status = storage.claim_concurrency_slot("warehouse", "bench-run", step)
                if not status.is_claimed:
                    raise RuntimeError(f"claim pending: {status}")
                storage.free_concurrency_slot_for_step("bench-run", step)

            stats = summarize(time_runs(claim_and_release, reps=100 if quick else 400, warmup=5))
    return {
        "metrics": {"claim_release_ms": stats["median_s"] * 1000},
        "details": {"min_ms": stats["min_s"] * 1000, "max_ms": stats["max_s"] * 1000},
    }
