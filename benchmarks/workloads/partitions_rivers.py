"""rivers side of the partition workloads: enumerating the keys of an open-ended minutely
definition, backfills of hourly partitions one run each and in one run, and one run over a
million minutely partitions on embedded storage. Twins: ``partitions_dagster.py`` (no twin for
the million-partition workload)."""

from __future__ import annotations

import gc
import os
import time
from datetime import timedelta
from typing import Any

import rivers as rs
from workloads import shapes
from workloads.common import peak_rss_mb, scratch_dir, summarize, time_runs

PD = rs.PartitionsDefinition
PKR = rs.PartitionKeyRange


def _minutely(end_minutes: int | None = None) -> Any:
    end = None if end_minutes is None else shapes.PARTITION_START + timedelta(minutes=end_minutes)
    return PD.time_window(start=shapes.PARTITION_START, cron_schedule="* * * * *", end=end)


def _hourly(hours: int) -> Any:
    return PD.hourly(start=shapes.PARTITION_START, end=shapes.PARTITION_START + timedelta(hours=hours))


def _key(definition: Any, index: int, step: timedelta) -> str:
    """Key of window ``index`` of a definition starting at ``PARTITION_START``."""
    return (shapes.PARTITION_START + index * step).strftime(definition.fmt)


def _trivial_asset(definition: Any, name: str) -> Any:
    def body() -> int:
        return 1

    body.__name__ = name
    return rs.Asset(body, partitions_def=definition)


def _repo(definition: Any, name: str, storage: Any) -> Any:
    repo = rs.CodeRepository(assets=[_trivial_asset(definition, name)], default_executor=rs.Executor.in_process())
    repo.resolve(storage=storage)
    return repo


def partition_keys(quick: bool) -> dict[str, Any]:
    """``get_partition_keys()`` of ``time_window(start=2024-01-01, cron "* * * * *")``, open-ended
    (every minute up to now, about 1.5 million keys). A fresh definition per sample; the list is
    released outside the timed region."""
    reps, warmup = (3, 1) if quick else (7, 1)
    samples = []
    count, first, last = 0, "", ""
    for index in range(warmup + reps):
        definition = _minutely()
        gc.collect()
        start = time.perf_counter()
        keys = definition.get_partition_keys()
        elapsed = time.perf_counter() - start
        if index >= warmup:
            samples.append(elapsed)
        count, first, last = len(keys), str(keys[0]), str(keys[-1])
        del keys
    if count < 1_000_000 or first != shapes.PARTITION_START.strftime(shapes.MINUTE_FMT):
        raise AssertionError(f"unexpected keys: {count} from {first!r}")
    stats = summarize(samples)
    return {
        "metrics": {"enumerate_s": stats["median_s"]},
        "details": {"keys": count, "first_key": first, "last_key": last, "enumerate": stats},
    }


def backfill_multi_run(quick: bool) -> dict[str, Any]:
    """``repo.backfill(partition_range=...)`` of 500 hourly partitions of a trivial asset with the
    default multi-run strategy (one run per partition), in-process executor, memory storage."""
    count = shapes.MULTI_RUN_RIVERS
    definition = _hourly(count)
    span = PKR.single(_key(definition, 0, timedelta(hours=1)), _key(definition, count - 1, timedelta(hours=1)))
    repo = _repo(definition, "hourly", rs.Storage.memory())
    try:

        def run() -> None:
            result = repo.backfill(partition_range=span)
            if (result.status, result.num_runs, result.completed) != ("completed", count, count):
                raise RuntimeError(f"backfill: {result.status}, {result.num_runs} runs, {result.completed} done")

        stats = summarize(time_runs(run, reps=2 if quick else 5, warmup=1))
        if repo.storage.count_materialized_partitions("hourly") != count:
            raise AssertionError("not every partition is materialized")
    finally:
        repo.shutdown()
    ms_per_run = stats["median_s"] * 1000 / count
    return {
        "metrics": {"ms_per_run": ms_per_run},
        "details": {"partitions": count, "runs": count, "runs_per_s": 1000 / ms_per_run, "backfill": stats},
    }


def backfill_single_run(quick: bool) -> dict[str, Any]:
    """``repo.backfill(partition_range=..., strategy=BackfillStrategy.single_run())`` of 5,000
    hourly partitions of a trivial asset: one run, one step, a materialization per partition."""
    count = shapes.SINGLE_RUN_PARTITIONS
    definition = _hourly(count)
    span = PKR.single(_key(definition, 0, timedelta(hours=1)), _key(definition, count - 1, timedelta(hours=1)))
    repo = _repo(definition, "hourly", rs.Storage.memory())
    try:

        def run() -> None:
            result = repo.backfill(partition_range=span, strategy=rs.BackfillStrategy.single_run())
            if (result.status, result.num_runs, result.completed) != ("completed", 1, count):
                raise RuntimeError(f"backfill: {result.status}, {result.num_runs} runs, {result.completed} done")

        stats = summarize(time_runs(run, reps=2 if quick else 5, warmup=1))
        if repo.storage.count_materialized_partitions("hourly") != count:
            raise AssertionError("not every partition is materialized")
    finally:
        repo.shutdown()
    return {
        "metrics": {"backfill_s": stats["median_s"]},
        "details": {"partitions": count, "backfill": stats},
    }


def _disk_usage(path: str) -> tuple[float, float]:
    """(allocated, apparent) size of a directory tree in MiB."""
    allocated = apparent = 0
    for root, _, files in os.walk(path):
        for name in files:
            stat = os.stat(os.path.join(root, name))
            allocated += stat.st_blocks * 512
            apparent += stat.st_size
    return allocated / 2**20, apparent / 2**20


def million_partitions(quick: bool) -> dict[str, Any]:
    """An asset of 1,000,000 minutely partitions (a closed range) materialized by one single-run
    backfill on embedded storage, then its status read back: the materialized ranges (one range)
    and every materialized key. Quick mode: 100,000 partitions. One backfill, not repeated."""
    count = shapes.MILLION_QUICK if quick else shapes.MILLION
    definition = _minutely(count)
    first, last = _key(definition, 0, timedelta(minutes=1)), _key(definition, count - 1, timedelta(minutes=1))
    with scratch_dir("rivers-million") as tmp:
        path = os.path.join(tmp, "storage")
        repo = _repo(definition, "minutes", rs.Storage.embedded(path))
        try:
            start = time.perf_counter()
            result = repo.backfill(partition_range=PKR.single(first, last), strategy=rs.BackfillStrategy.single_run())
            backfill_s = time.perf_counter() - start
            # The backfill's own peak, before the reads below create a million Python keys.
            backfill_rss_mb = peak_rss_mb()
            if (result.status, result.num_runs, result.completed) != ("completed", 1, count):
                raise RuntimeError(f"backfill: {result.status}, {result.num_runs} runs, {result.completed} done")
            storage_mb, apparent_mb = _disk_usage(path)
            storage = repo.storage

            ranges = storage.get_partition_ranges("minutes", "materialized")
            if ranges != [PKR.single(first, last)]:
                raise AssertionError(f"expected one range {first}..{last}, got {ranges[:3]} ({len(ranges)})")
            ranges_stats = summarize(
                time_runs(lambda: storage.get_partition_ranges("minutes", "materialized"), reps=10 if quick else 25)
            )

            # The latest materialization of one partition, spread over the range.
            probes = [_key(definition, i * (count // 7), timedelta(minutes=1)) for i in range(7)]
            for key in probes:
                latest = storage.get_latest_materialization("minutes", partition=key)
                if latest is None or latest.partition_key != key:
                    raise AssertionError(f"latest materialization of {key}: {latest}")
            cycle = iter(probes * 1000)
            latest_stats = summarize(
                time_runs(lambda: storage.get_latest_materialization("minutes", partition=next(cycle)), reps=25)
            )

            counts: list[int] = []
            materialized = summarize(
                time_runs(
                    lambda: counts.append(len(storage.get_materialized_partitions("minutes"))),
                    reps=2 if quick else 5,
                )
            )
            if set(counts) != {count}:
                raise AssertionError(f"expected {count} materialized partitions, got {sorted(set(counts))}")
        finally:
            repo.shutdown()
    return {
        "metrics": {
            "ranges_ms": ranges_stats["median_s"] * 1000,
            "latest_ms": latest_stats["median_s"] * 1000,
            "materialized_s": materialized["median_s"],
            "peak_rss_mb": backfill_rss_mb,
            "backfill_s": backfill_s,
            "storage_mb": storage_mb,
        },
        "details": {
            "partitions": count,
            "first_key": first,
            "last_key": last,
            "storage_apparent_mb": apparent_mb,
            "peak_rss_after_reads_mb": peak_rss_mb(),
            "get_partition_ranges": ranges_stats,
            "get_latest_materialization": latest_stats,
            "len_get_materialized_partitions": materialized,
        },
    }
