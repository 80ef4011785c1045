"""Automation workloads (rivers): how fast the daemon reacts, on embedded storage.

- ``sensor_latency``: a sensor's ``RunRequest`` → the run's first ``StepStart``, measured from
  the moment the evaluation function returns (stamped into a tag of the request) to the
  event's timestamp; no run queue.
- ``sensors_1000``: 1,000 sensors (quick: 200) due at once, each returning a skip: from
  ``start()`` until every tick is evaluated and flushed.
- ``schedule_lateness``: a ``* * * * * *`` schedule without an evaluation function while 100
  sensors with ``minimum_interval="1s"`` tick: how long after its cron instant each run is
  created; 60 ticks (quick: 10).
- ``pool_claim``: claiming and releasing one slot of a pool.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from typing import Any

import rivers as rs
from rivers._core import AutomationDaemon
from workloads.common import scratch_dir, summarize, time_runs

RETURNED_TAG = "bench/returned_ns"


@rs.Asset
def landed() -> int:
    return 1


def _repo(storage: rs.Storage, **kwargs: Any) -> rs.CodeRepository:
    repo = rs.CodeRepository(
        assets=[landed], jobs=[rs.Job("landed_job", [landed])], default_executor=rs.Executor.in_process(), **kwargs
    )
    repo.resolve(storage=storage)
    return repo


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def sensor_latency(quick: bool) -> dict[str, Any]:
    samples = 10 if quick else 40
    requested = threading.Semaphore(0)
    count = {"n": 0}

    @rs.Sensor(job_name="landed_job", minimum_interval="100ms", default_status=rs.SensorStatus.Running)
    def arrivals(context: rs.SensorEvaluationContext) -> Any:
        count["n"] += 1
        if count["n"] > samples:
            return rs.SkipReason("enough")
        requested.release()
        return rs.RunRequest(run_key=str(count["n"]), tags={RETURNED_TAG: str(time.time_ns())})

    with scratch_dir("rivers-sensor-latency") as tmp:
        store = rs.Storage.embedded(os.path.join(tmp, "storage"))
        repo = _repo(store, sensors=[arrivals])
        daemon = AutomationDaemon(repo, store)
        daemon.start()
        for _ in range(samples):
            requested.acquire(timeout=60)
        deadline = time.monotonic() + 60
        latencies: list[float] = []
        while time.monotonic() < deadline:
            runs = [r for r in store.get_runs(limit=samples * 2) if dict(r.tags).get(RETURNED_TAG)]
            if len(runs) >= samples and all(r.status == "Success" for r in runs):
                for run in runs:
                    returned = int(dict(run.tags)[RETURNED_TAG])
                    start = next(e for e in store.get_events_for_run(run.run_id) if e.event_type == "StepStart")
                    latencies.append((start.timestamp - returned) / 1e6)
                break
            time.sleep(0.05)
        daemon.stop()
        repo.shutdown()
    if len(latencies) < samples:
        raise RuntimeError(f"only {len(latencies)} of {samples} sensor runs finished")
    return {
        "metrics": {"latency_ms": statistics.median(latencies)},
        "details": {"min_ms": min(latencies), "max_ms": max(latencies), "samples_ms": latencies},
    }


def sensors_1000(quick: bool) -> dict[str, Any]:
    total = 200 if quick else 1000
    evaluated = {"n": 0}
    done = threading.Event()
    lock = threading.Lock()

    def make(index: int) -> rs.Sensor:
        def idle(context: rs.SensorEvaluationContext) -> rs.SkipReason:
            with lock:
                evaluated["n"] += 1
                if evaluated["n"] == total:
                    done.set()
            return rs.SkipReason("nothing new")

        return rs.Sensor(idle, name=f"idle_{index}", minimum_interval="1h", default_status=rs.SensorStatus.Running)

    sensors = [make(i) for i in range(total)]
    with scratch_dir("rivers-sensors") as tmp:
        store = rs.Storage.embedded(os.path.join(tmp, "storage"))
        repo = _repo(store, sensors=sensors)
        daemon = AutomationDaemon(repo, store)
        start = time.perf_counter()
        daemon.start()
        done.wait(120)
        evaluated_s = time.perf_counter() - start
        daemon.stop()  # writes the pending ticks
        flushed_s = time.perf_counter() - start
        stored = sum(len(store.get_ticks(f"idle_{i}", limit=1)) for i in range(total))
        repo.shutdown()
    if stored != total:
        raise RuntimeError(f"{stored} of {total} ticks stored")
    return {
        "metrics": {"ticks_flushed_s": flushed_s},
        "details": {"sensors": total, "all_evaluated_s": evaluated_s},
    }


def schedule_lateness(quick: bool) -> dict[str, Any]:
    seconds = 10 if quick else 60
    schedule = rs.Schedule(cron_schedule="* * * * * *", job_name="landed_job", default_status=rs.ScheduleStatus.Running)

    def make(index: int) -> rs.Sensor:
        return rs.Sensor(
            lambda context: None, name=f"busy_{index}", minimum_interval="1s", default_status=rs.SensorStatus.Running
        )

    with scratch_dir("rivers-schedule") as tmp:
        store = rs.Storage.embedded(os.path.join(tmp, "storage"))
        repo = _repo(store, schedules=[schedule], sensors=[make(i) for i in range(100)])
        daemon = AutomationDaemon(repo, store)
        daemon.start()
        time.sleep(seconds + 1.5)
        daemon.stop()
        runs = [r for r in store.get_runs(limit=10 * seconds) if r.launched_by.kind == "schedule"]
        repo.shutdown()
    # A run is created after its instant, a whole second: its lateness is the fraction past it,
    # provided no run was a second or more late. Then every second of the span has exactly one
    # run (a later instant is never caught up, so a late run would leave a second without one).
    late_ms = [(run.start_time % 1_000_000_000) / 1e6 for run in runs]
    if len(late_ms) < seconds - 1:
        raise RuntimeError(f"only {len(late_ms)} schedule runs in {seconds} s")
    instants = sorted(run.start_time // 1_000_000_000 for run in runs)
    if instants != list(range(instants[0], instants[0] + len(instants))):
        raise RuntimeError(f"schedule runs do not cover consecutive seconds: {instants}")
    return {
        "metrics": {"p99_ms": _percentile(late_ms, 0.99), "median_ms": statistics.median(late_ms)},
        "details": {"ticks": len(late_ms), "max_ms": max(late_ms)},
    }


def pool_claim(quick: bool) -> dict[str, Any]:
    with scratch_dir("rivers-pool-claim") as tmp:
        store = rs.Storage.embedded(os.path.join(tmp, "storage"))
        store.set_pool_limit("warehouse", 4)
        steps = iter(range(10**9))

        def claim_and_release() -> None:
            step = f"step_{next(steps)}"
            status = store._claim_concurrency_slots([("warehouse", 1)], "bench-run", step)
            if not status.is_claimed:
                raise RuntimeError(f"claim pending: {status}")
            store._free_concurrency_slots("bench-run", step)

        stats = summarize(time_runs(claim_and_release, reps=100 if quick else 400, warmup=5))
    return {
        "metrics": {"claim_release_ms": stats["median_s"] * 1000},
        "details": {"min_ms": stats["min_s"] * 1000, "max_ms": stats["max_s"] * 1000},
    }
