"""Dagster side of the partition workloads (twins of ``partitions_rivers.py``): enumerating the
keys of an open-ended minutely ``TimeWindowPartitionsDefinition``, one ``materialize`` per
hourly partition (what a multi-run backfill launches), and one run over a partition key range of
a ``BackfillPolicy.single_run()`` asset.

Dagster's backfill daemon only enqueues runs for a run launcher to execute, so the backfill
workloads execute the runs a backfill would launch, in-process, on one ephemeral instance."""

from __future__ import annotations

import gc
import time
import warnings
from datetime import timedelta
from typing import Any

import dagster
from dagster import DagsterInstance

from workloads import shapes
from workloads.common import summarize, time_runs

_SETTINGS = {"telemetry": {"enabled": False}}


def _minutely() -> Any:
    return dagster.TimeWindowPartitionsDefinition(
        start=shapes.PARTITION_START, cron_schedule="* * * * *", fmt=shapes.MINUTE_FMT
    )


def _hourly(hours: int) -> Any:
    return dagster.HourlyPartitionsDefinition(
        start_date=shapes.PARTITION_START,
        end_date=shapes.PARTITION_START + timedelta(hours=hours),
        fmt=shapes.HOUR_FMT,
    )


def _trivial_asset(definition: Any, name: str, **kwargs: Any) -> Any:
    def body() -> int:
        return 1

    body.__name__ = name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # backfill_policy is a beta parameter
        return dagster.asset(name=name, partitions_def=definition, **kwargs)(body)


def partition_keys(quick: bool) -> dict[str, Any]:
    """``get_partition_keys()`` of the same open-ended minutely definition. No warm-up: one
    enumeration takes minutes here. A fresh definition per sample; the list is released outside
    the timed region."""
    reps = 1 if quick else 2
    samples = []
    count, first, last = 0, "", ""
    for _ in range(reps):
        definition = _minutely()
        gc.collect()
        start = time.perf_counter()
        keys = definition.get_partition_keys()
        samples.append(time.perf_counter() - start)
        count, first, last = len(keys), keys[0], keys[-1]
        del keys
    if count < 1_000_000 or first != shapes.PARTITION_START.strftime(shapes.MINUTE_FMT):
        raise AssertionError(f"unexpected keys: {count} from {first!r}")
    stats = summarize(samples)
    return {
        "metrics": {"enumerate_s": stats["median_s"]},
        "details": {"keys": count, "first_key": first, "last_key": last, "enumerate": stats},
    }


def backfill_multi_run(quick: bool) -> dict[str, Any]:
    """One ``dagster.materialize(partition_key=k)`` per hourly partition, in-process, on one
    ephemeral instance, ``mem_io_manager``: the runs a multi-run backfill launches. Measured on 50
    partitions, not 500 (about 50 ms a run here); the per-run figure is compared."""
    count = shapes.MULTI_RUN_DAGSTER
    definition = _hourly(count)
    keys = definition.get_partition_keys()
    hourly = _trivial_asset(definition, "hourly")
    with DagsterInstance.ephemeral(settings=_SETTINGS) as instance:

        def run() -> None:
            for key in keys:
                result = dagster.materialize(
                    [hourly],
                    partition_key=key,
                    instance=instance,
                    resources={"io_manager": dagster.mem_io_manager},
                )
                if not result.success:
                    raise RuntimeError(f"run of {key} failed")

        stats = summarize(time_runs(run, reps=2 if quick else 5, warmup=1))
        if len(instance.get_materialized_partitions(hourly.key)) != count:
            raise AssertionError("not every partition is materialized")
    ms_per_run = stats["median_s"] * 1000 / count
    return {
        "metrics": {"ms_per_run": ms_per_run},
        "details": {
            "partitions": count,
            "runs": count,
            "runs_per_s": 1000 / ms_per_run,
            "note": f"{count} partitions (rivers: {shapes.MULTI_RUN_RIVERS}); compare ms_per_run",
            "backfill": stats,
        },
    }


def backfill_single_run(quick: bool) -> dict[str, Any]:
    """One run of a ``BackfillPolicy.single_run()`` asset over 5,000 hourly partitions, the range
    given by the ``dagster/asset_partition_range_start``/``_end`` tags (what a single-run backfill
    launches), in-process, ephemeral instance, ``mem_io_manager``. One run takes tens of seconds
    here: quick mode 1 run without warm-up, else 1 warm-up and 2 runs."""
    count = shapes.SINGLE_RUN_PARTITIONS
    definition = _hourly(count)
    keys = definition.get_partition_keys()
    hourly = _trivial_asset(definition, "hourly", backfill_policy=dagster.BackfillPolicy.single_run())
    tags = {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}
    with DagsterInstance.ephemeral(settings=_SETTINGS) as instance:

        def run() -> None:
            result = dagster.materialize(
                [hourly], instance=instance, tags=tags, resources={"io_manager": dagster.mem_io_manager}
            )
            if not result.success:
                raise RuntimeError("run failed")

        stats = summarize(time_runs(run, reps=1 if quick else 2, warmup=0 if quick else 1))
        if len(instance.get_materialized_partitions(hourly.key)) != count:
            raise AssertionError("not every partition is materialized")
    return {
        "metrics": {"backfill_s": stats["median_s"]},
        "details": {"partitions": count, "backfill": stats},
    }
