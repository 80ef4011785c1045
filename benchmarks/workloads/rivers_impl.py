"""rivers implementations of the benchmark workloads.

Each public function runs one workload in the current process and returns the
result dict that ``worker.py`` prints. The Dagster twins live in
``dagster_impl.py``; keep the two files structurally parallel so that it stays
obvious the two sides do the same work.
"""

from __future__ import annotations

import os
import time
from typing import Any

import rivers as rs
from workloads import shapes
from workloads.common import peak_rss_mb, scratch_dir, summarize, surreal_server, time_runs

LAYERS, WIDTH = 20, 10
BIG_LAYERS, BIG_WIDTH = 500, 10


def _layered_assets(layers: int, width: int) -> list[Any]:
    """Decorate the generated layered-DAG functions with ``rs.Asset``."""
    module_name = f"rivers_bench_layered_{layers}x{width}"
    return [rs.Asset(f) for f in shapes.layered_functions(layers, width, module_name)]


def _check_layered(repo: Any, layers: int, width: int) -> None:
    """Fail loudly if the run did not really compute the expected values."""
    expected = shapes.layered_expected(layers, width)
    for index in range(width):
        name = shapes.asset_name(layers - 1, index)
        got = repo.load_node(name)
        if got != expected[name]:
            raise AssertionError(f"{name}: expected {expected[name]}, got {got!r}")


def _layered_run(storage: Any, quick: bool) -> dict[str, Any]:
    """Shared body of the memory and embedded layered workloads."""
    steps = LAYERS * WIDTH
    repo = rs.CodeRepository(assets=_layered_assets(LAYERS, WIDTH), default_executor=rs.Executor.in_process())
    try:
        repo.resolve(storage=storage)

        def run() -> None:
            result = repo.materialize()
            if not result.success:
                raise RuntimeError(f"run failed: {result.failed_assets[:3]}")

        samples = time_runs(run, reps=5 if quick else 15, warmup=1)
        _check_layered(repo, LAYERS, WIDTH)
    finally:
        repo.shutdown()
    stats = summarize(samples)
    return {
        "metrics": {"ms_per_step": stats["median_s"] * 1000 / steps},
        "details": {"steps": steps, "run": stats},
    }


def layered_memory(quick: bool) -> dict[str, Any]:
    """200-asset layered DAG, in-process executor, memory storage."""
    return _layered_run(rs.Storage.memory(), quick)


def layered_history(quick: bool) -> dict[str, Any]:
    """Per-step cost of the 200-asset layered DAG on embedded storage before and after 10,000
    earlier runs (one-asset materializations) are in the store: reads and writes must not grow
    with history."""
    steps = LAYERS * WIDTH
    earlier = 10_000
    reps = 5 if quick else 9
    with scratch_dir("rivers-history") as tmp:
        repo = rs.CodeRepository(assets=_layered_assets(LAYERS, WIDTH), default_executor=rs.Executor.in_process())
        try:
            repo.resolve(storage=rs.Storage.embedded(os.path.join(tmp, "storage")))

            def run() -> None:
                if not repo.materialize().success:
                    raise RuntimeError("run failed")

            before = summarize(time_runs(run, reps=reps, warmup=1))
            first = shapes.asset_name(0, 0)
            start = time.perf_counter()
            for _ in range(earlier):
                repo.materialize(selection=[first])
            fill_s = time.perf_counter() - start
            after = summarize(time_runs(run, reps=reps, warmup=1))
            _check_layered(repo, LAYERS, WIDTH)
        finally:
            repo.shutdown()
    per_step = lambda stats: stats["median_s"] * 1000 / steps  # noqa: E731
    return {
        "metrics": {"ratio": per_step(after) / per_step(before)},
        "details": {
            "steps": steps,
            "earlier_runs": earlier,
            "fill_s": fill_s,
            "ms_per_step_before": per_step(before),
            "ms_per_step_after": per_step(after),
            "before": before,
            "after": after,
        },
    }


def layered_embedded(quick: bool) -> dict[str, Any]:
    """200-asset layered DAG, in-process executor, embedded (on-disk) storage."""
    with scratch_dir("rivers-embedded") as tmp:
        return _layered_run(rs.Storage.embedded(os.path.join(tmp, "storage")), quick)


def layered_remote(quick: bool) -> dict[str, Any]:
    """200-asset layered DAG, in-process executor, state on a SurrealDB server on loopback.

    The server is the dev-only build from ``scripts/dev-server.sh`` (``RIVERS_SURREAL_SERVER``),
    started in memory mode for the duration of the workload.
    """
    with surreal_server() as endpoint:
        return _layered_run(rs.Storage.connect(endpoint), quick)


def selection_5k(quick: bool) -> dict[str, Any]:
    """Per-run cost of materializing one asset (its upstreams already materialized) in a
    5,000-asset repository against a repository of just that asset and the first layer: a run
    must cost what its selection costs."""
    big = _layered_assets(BIG_LAYERS, BIG_WIDTH)
    first_layer = [shapes.asset_name(0, i) for i in range(BIG_WIDTH)]
    small_names = {*first_layer, shapes.asset_name(1, 0)}
    small = [a for a in _layered_assets(BIG_LAYERS, BIG_WIDTH) if a.name in small_names]
    target = [shapes.asset_name(1, 0)]
    medians = {}
    for label, assets in (("repo_5k", big), ("repo_small", small)):
        repo = rs.CodeRepository(assets=assets, default_executor=rs.Executor.in_process())
        try:
            repo.resolve(storage=rs.Storage.memory())
            repo.materialize(selection=first_layer)

            def run(repo: Any = repo) -> None:
                if not repo.materialize(selection=target).success:
                    raise RuntimeError("run failed")

            medians[label] = summarize(time_runs(run, reps=20 if quick else 60, warmup=3))
        finally:
            repo.shutdown()
    return {
        "metrics": {
            "ratio": medians["repo_5k"]["median_s"] / medians["repo_small"]["median_s"],
            "repo_5k_ms": medians["repo_5k"]["median_s"] * 1000,
            "repo_small_ms": medians["repo_small"]["median_s"] * 1000,
        },
        "details": medians,
    }


def validate_5k(quick: bool) -> dict[str, Any]:
    """Validation and construct+resolve of a 5,000-asset layered DAG."""
    start = time.perf_counter()
    assets = _layered_assets(BIG_LAYERS, BIG_WIDTH)
    define_s = time.perf_counter() - start

    repos = []

    def construct_resolve() -> None:
        repo = rs.CodeRepository(assets=assets, default_executor=rs.Executor.in_process())
        repo.resolve(storage=rs.Storage.memory())
        repos.append(repo)  # shut down outside the timed region

    build = summarize(time_runs(construct_resolve, reps=3 if quick else 7, warmup=1))
    for repo in repos[1:]:
        repo.shutdown()
    repo = repos[0]
    validate = summarize(time_runs(repo.validate, reps=5 if quick else 15, warmup=1))
    repo.shutdown()
    return {
        "metrics": {
            "validate_ms": validate["median_s"] * 1000,
            "construct_resolve_ms": build["median_s"] * 1000,
        },
        "details": {
            "assets": len(assets),
            "define_ms": define_s * 1000,
            "validate": validate,
            "construct_resolve": build,
        },
    }


def parallel_sleep(quick: bool) -> dict[str, Any]:
    """40 sleeping assets on ``Executor.parallel(max_workers=2)``."""
    from obstore.store import LocalStore

    from workloads import parallel_sleep_rivers as mod

    with scratch_dir("rivers-parallel") as tmp:
        handler = rs.PickleIOHandler(store=LocalStore(tmp))
        repo = rs.CodeRepository(
            assets=mod.ASSETS,
            default_executor=rs.Executor.parallel(max_workers=shapes.SLEEP_WORKERS),
            resources={mod.IO_HANDLER_KEY: handler},
        )
        try:
            repo.resolve(storage=rs.Storage.memory())

            def run() -> None:
                result = repo.materialize()
                if not result.success:
                    raise RuntimeError(f"run failed: {result.failed_assets[:3]}")

            # The first run pays for starting the worker pool; report it apart.
            first_s = time_runs(run, reps=1, warmup=0)[0]
            stats = summarize(time_runs(run, reps=2 if quick else 5, warmup=0))
            got = repo.load_node("sleep_07")
            if got != 7:
                raise AssertionError(f"sleep_07: expected 7, got {got!r}")
        finally:
            repo.shutdown()
    return {
        "metrics": {
            "wall_s": stats["median_s"],
            "ratio_to_ideal": stats["median_s"] / shapes.SLEEP_IDEAL_S,
            "first_run_ratio": first_s / shapes.SLEEP_IDEAL_S,
        },
        "details": {"ideal_s": shapes.SLEEP_IDEAL_S, "first_run_s": first_s, "run": stats},
    }


def peak_memory(quick: bool) -> dict[str, Any]:
    """Peak RSS of one 200-asset in-process run on memory storage.

    Must run in a fresh process (``run.py`` gives every workload its own), or
    the peak would include earlier workloads.
    """
    after_import = peak_rss_mb()
    repo = rs.CodeRepository(assets=_layered_assets(LAYERS, WIDTH), default_executor=rs.Executor.in_process())
    repo.resolve(storage=rs.Storage.memory())
    result = repo.materialize()
    if not result.success:
        raise RuntimeError(f"run failed: {result.failed_assets[:3]}")
    _check_layered(repo, LAYERS, WIDTH)
    peak = peak_rss_mb()
    repo.shutdown()
    return {"metrics": {"peak_rss_mb": peak}, "details": {"rss_after_import_mb": after_import}}


from workloads.asset_kinds_rivers import fan_out as fan_out  # noqa: E402
from workloads.asset_kinds_rivers import multi_subset as multi_subset  # noqa: E402
from workloads.asset_kinds_rivers import validate_graphs as validate_graphs  # noqa: E402
from workloads.automation_rivers import pool_claim as pool_claim  # noqa: E402
from workloads.automation_rivers import schedule_lateness as schedule_lateness  # noqa: E402
from workloads.automation_rivers import sensor_latency as sensor_latency  # noqa: E402
from workloads.automation_rivers import sensors_1000 as sensors_1000  # noqa: E402
from workloads.partitions_rivers import backfill_multi_run as backfill_multi_run  # noqa: E402
from workloads.partitions_rivers import backfill_single_run as backfill_single_run  # noqa: E402
from workloads.partitions_rivers import million_partitions as million_partitions  # noqa: E402
from workloads.partitions_rivers import partition_keys as partition_keys  # noqa: E402


def version() -> str:
    """Version string recorded in the results file."""
    return getattr(rs, "__version__", "unknown")
