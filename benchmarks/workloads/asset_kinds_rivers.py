"""rivers side of the asset-kind workloads: dynamic fan-out, a subset multi-asset, and
validating a repository of graph assets. Twins: ``asset_kinds_dagster.py``."""

from __future__ import annotations

import time
from typing import Any

import rivers as rs
from workloads import shapes
from workloads.common import peak_rss_mb, summarize, time_runs


@rs.Task
def elements(count: int = shapes.FAN_OUT_RIVERS) -> list[int]:
    return list(range(count))


@rs.Task
def double(value: int) -> int:
    return value * 2


@rs.Task
def add_up(values: list[int]) -> int:
    return sum(values)


@rs.Asset.from_graph
def fanned():
    return add_up(elements().map(double).collect())


def fan_out(quick: bool) -> dict[str, Any]:
    """A graph asset mapping a trivial task over the elements, then collecting them."""
    instances = shapes.FAN_OUT_RIVERS
    repo = rs.CodeRepository(assets=[fanned], default_executor=rs.Executor.in_process())
    try:
        repo.resolve(storage=rs.Storage.memory())

        def run() -> None:
            result = repo.materialize()
            if not result.success:
                raise RuntimeError(f"run failed: {result.failed_assets[:3]}")

        samples = time_runs(run, reps=2 if quick else 5, warmup=1)
        if repo.load_node("fanned") != instances * (instances - 1):
            raise AssertionError(f"fanned: got {repo.load_node('fanned')!r}")
    finally:
        repo.shutdown()
    stats = summarize(samples)
    return {
        "metrics": {
            "ms_per_instance": stats["median_s"] * 1000 / instances,
            "run_s": stats["median_s"],
            "peak_rss_mb": peak_rss_mb(),
        },
        "details": {"instances": instances, "run": stats},
    }


def _multi_asset(outputs: int) -> Any:
    defs = [rs.AssetDef(f"out_{i:02d}") for i in range(outputs)]

    @rs.Asset.from_multi(output_defs=defs)
    def wide(context: rs.AssetExecutionContext) -> dict[str, int]:
        return {name: i for i, name in enumerate(context.output_selection)}

    return wide


def multi_subset(quick: bool) -> dict[str, Any]:
    """A 50-output multi-asset materialized with 5 outputs selected."""
    selection = [f"out_{i:02d}" for i in range(0, shapes.MULTI_OUTPUTS, shapes.MULTI_OUTPUTS // shapes.MULTI_SELECTED)]
    repo = rs.CodeRepository(assets=[_multi_asset(shapes.MULTI_OUTPUTS)], default_executor=rs.Executor.in_process())
    try:
        repo.resolve(storage=rs.Storage.memory())

        def run() -> None:
            result = repo.materialize(selection=selection)
            if result.materialized_assets != selection:
                raise RuntimeError(f"run materialized {result.materialized_assets}")

        stats = summarize(time_runs(run, reps=50 if quick else 200, warmup=5))
    finally:
        repo.shutdown()
    return {
        "metrics": {"ms_per_output": stats["median_s"] * 1000 / len(selection)},
        "details": {"outputs": shapes.MULTI_OUTPUTS, "selected": len(selection), "run": stats},
    }


def _graph_assets(count: int) -> list[Any]:
    tasks = [rs.Task(f, name=f.__name__) for f in shapes.chain_functions(shapes.GRAPH_TASKS)]
    graphs = []
    for index in range(count):

        def body() -> Any:
            handle = tasks[0]()
            for task in tasks[1:]:
                handle = task(handle)
            return handle

        body.__name__ = f"graph_{index:04d}"
        graphs.append(rs.Asset.from_graph(body))
    return graphs


def validate_graphs(quick: bool) -> dict[str, Any]:
    """``validate()`` of 1,000 graph assets of 5 tasks each (6,000 nodes)."""
    start = time.perf_counter()
    graphs = _graph_assets(shapes.GRAPH_ASSETS)
    define_s = time.perf_counter() - start
    repo = rs.CodeRepository(assets=graphs, default_executor=rs.Executor.in_process())
    validate = summarize(time_runs(repo.validate, reps=5 if quick else 15, warmup=1))
    return {
        "metrics": {"validate_ms": validate["median_s"] * 1000},
        "details": {"graph_assets": len(graphs), "define_ms": define_s * 1000, "validate": validate},
    }
