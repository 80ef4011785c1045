"""Dagster implementations of the benchmark workloads.

Structurally parallel to ``rivers_impl.py``. Where Dagster offers more than one
way to do something, the choice is the one the brief names, and the closest
equivalent of what rivers does:

- values are kept in memory with ``mem_io_manager`` in the layered runs, as
  rivers keeps them in its default ``InMemoryIOHandler``; only the orchestration
  state store differs between the memory and embedded variants, on both sides;
- one instance is created per workload and reused for every run, as rivers
  resolves one repository against one storage and materializes repeatedly.
"""

from __future__ import annotations

import time
from typing import Any

import dagster
from dagster import DagsterInstance

from workloads import shapes
from workloads.common import peak_rss_mb, scratch_dir, summarize, time_runs

LAYERS, WIDTH = 20, 10
BIG_LAYERS, BIG_WIDTH = 500, 10

#: Keep Dagster from writing telemetry files or trying to phone home.
_SETTINGS = {"telemetry": {"enabled": False}}


def _layered_assets(layers: int, width: int) -> list[Any]:
    """Decorate the generated layered-DAG functions with ``dagster.asset``."""
    module_name = f"dagster_bench_layered_{layers}x{width}"
    return [dagster.asset(f) for f in shapes.layered_functions(layers, width, module_name)]


def _check_layered(result: Any, layers: int, width: int) -> None:
    """Fail loudly if the run did not really compute the expected values."""
    expected = shapes.layered_expected(layers, width)
    for index in range(width):
        name = shapes.asset_name(layers - 1, index)
        got = result.output_for_node(name)
        if got != expected[name]:
            raise AssertionError(f"{name}: expected {expected[name]}, got {got!r}")


def _layered_run(instance: DagsterInstance, reps: int, warmup: int) -> dict[str, Any]:
    """Shared body of the memory and embedded layered workloads."""
    steps = LAYERS * WIDTH
    assets = _layered_assets(LAYERS, WIDTH)
    results = []

    def run() -> None:
        result = dagster.materialize(assets, instance=instance, resources={"io_manager": dagster.mem_io_manager})
        if not result.success:
            raise RuntimeError("run failed")
        results.append(result)

    samples = time_runs(run, reps=reps, warmup=warmup)
    _check_layered(results[-1], LAYERS, WIDTH)
    stats = summarize(samples)
    return {
        "metrics": {"ms_per_step": stats["median_s"] * 1000 / steps},
        "details": {"steps": steps, "run": stats},
    }


def layered_memory(quick: bool) -> dict[str, Any]:
    """200-asset layered DAG, in-process executor, ephemeral (in-memory) instance."""
    instance = DagsterInstance.ephemeral(settings=_SETTINGS)
    return _layered_run(instance, reps=2 if quick else 5, warmup=1)


def layered_embedded(quick: bool) -> dict[str, Any]:
    """200-asset layered DAG, in-process executor, SQLite instance in a temp dir.

    A run takes tens of seconds here (SQLite commits per event), so fewer
    samples are taken; their spread is small relative to the ratio measured.
    """
    with scratch_dir("dagster-embedded") as tmp:
        with DagsterInstance.local_temp(tmp, overrides=_SETTINGS) as instance:
            return _layered_run(instance, reps=1 if quick else 3, warmup=0 if quick else 1)


def validate_5k(quick: bool) -> dict[str, Any]:
    """Validation and load of a 5,000-asset layered DAG.

    Dagster caches the repository it builds on the ``Definitions`` object, so
    every sample builds a fresh ``Definitions``; constructing one is lazy and
    cheap, the work happens in ``validate_loadable`` / ``get_repository_def``.
    """
    start = time.perf_counter()
    assets = _layered_assets(BIG_LAYERS, BIG_WIDTH)
    define_s = time.perf_counter() - start

    def validate() -> None:
        dagster.Definitions.validate_loadable(dagster.Definitions(assets=assets))

    def construct_resolve() -> None:
        defs = dagster.Definitions(assets=assets)
        defs.get_repository_def()
        defs.resolve_asset_graph()

    build = summarize(time_runs(construct_resolve, reps=2 if quick else 5, warmup=1))
    check = summarize(time_runs(validate, reps=2 if quick else 5, warmup=1))
    return {
        "metrics": {
            "validate_ms": check["median_s"] * 1000,
            "construct_resolve_ms": build["median_s"] * 1000,
        },
        "details": {
            "assets": len(assets),
            "define_ms": define_s * 1000,
            "validate": check,
            "construct_resolve": build,
        },
    }


def parallel_sleep(quick: bool) -> dict[str, Any]:
    """40 sleeping assets on the multiprocess executor (max_concurrent=2, fs IO)."""
    from workloads import parallel_sleep_dagster as mod

    job = dagster.reconstructable(mod.parallel_sleep_job)
    with scratch_dir("dagster-parallel") as tmp:
        with DagsterInstance.local_temp(tmp, overrides=_SETTINGS) as instance:

            def run() -> None:
                result = dagster.execute_job(job, instance=instance)
                if not result.success:
                    raise RuntimeError("run failed")

            # No warm-up: Dagster starts a fresh process for every step, so a
            # first run costs the same as later ones (and each takes minutes).
            samples = time_runs(run, reps=1 if quick else 2, warmup=0)
    stats = summarize(samples)
    first_s = samples[0]
    return {
        "metrics": {
            "wall_s": stats["median_s"],
            "ratio_to_ideal": stats["median_s"] / shapes.SLEEP_IDEAL_S,
        },
        "details": {"ideal_s": shapes.SLEEP_IDEAL_S, "first_run_s": first_s, "run": stats},
    }


def peak_memory(quick: bool) -> dict[str, Any]:
    """Peak RSS of one 200-asset in-process run on an ephemeral instance."""
    after_import = peak_rss_mb()
    result = dagster.materialize(
        _layered_assets(LAYERS, WIDTH),
        instance=DagsterInstance.ephemeral(settings=_SETTINGS),
        resources={"io_manager": dagster.mem_io_manager},
    )
    if not result.success:
        raise RuntimeError("run failed")
    _check_layered(result, LAYERS, WIDTH)
    return {
        "metrics": {"peak_rss_mb": peak_rss_mb()},
        "details": {"rss_after_import_mb": after_import},
    }


from workloads.asset_kinds_dagster import fan_out as fan_out  # noqa: E402
from workloads.asset_kinds_dagster import multi_subset as multi_subset  # noqa: E402
from workloads.asset_kinds_dagster import validate_graphs as validate_graphs  # noqa: E402
from workloads.automation_dagster import pool_claim as pool_claim  # noqa: E402
from workloads.automation_dagster import schedule_lateness as schedule_lateness  # noqa: E402
from workloads.automation_dagster import sensor_latency as sensor_latency  # noqa: E402
from workloads.automation_dagster import sensors_1000 as sensors_1000  # noqa: E402
from workloads.partitions_dagster import backfill_multi_run as backfill_multi_run  # noqa: E402
from workloads.partitions_dagster import backfill_single_run as backfill_single_run  # noqa: E402
from workloads.partitions_dagster import partition_keys as partition_keys  # noqa: E402


def version() -> str:
    """Version string recorded in the results file."""
    return dagster.__version__
