"""Dagster side of the asset-kind workloads (twins of ``asset_kinds_rivers.py``): ``DynamicOut``
with ``map`` and ``collect`` in-process, a subsettable ``multi_asset``, and loading
``Definitions`` of graph-backed assets."""

from __future__ import annotations

import time
from typing import Any

import dagster
from dagster import DagsterInstance

from workloads import shapes
from workloads.common import peak_rss_mb, summarize, time_runs

_SETTINGS = {"telemetry": {"enabled": False}}


@dagster.op(out=dagster.DynamicOut())
def elements() -> Any:
    for index in range(shapes.FAN_OUT_DAGSTER):
        yield dagster.DynamicOutput(index, mapping_key=str(index))


@dagster.op
def double(value: int) -> int:
    return value * 2


@dagster.op
def add_up(values: list[int]) -> int:
    return sum(values)


@dagster.graph_asset
def fanned() -> int:
    return add_up(elements().map(double).collect())


def fan_out(quick: bool) -> dict[str, Any]:
    instances = shapes.FAN_OUT_DAGSTER
    with DagsterInstance.ephemeral(settings=_SETTINGS) as instance:

        def run() -> None:
            result = dagster.materialize([fanned], instance=instance, resources={"io_manager": dagster.mem_io_manager})
            if not result.success:
                raise RuntimeError("run failed")

        samples = time_runs(run, reps=2 if quick else 5, warmup=1)
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
    specs = {f"out_{i:02d}": dagster.AssetOut(is_required=False) for i in range(outputs)}

    @dagster.multi_asset(outs=specs, can_subset=True)
    def wide(context) -> Any:  # noqa: ANN001 - Dagster resolves the context by name
        for i, key in enumerate(sorted(context.op_execution_context.selected_output_names)):
            yield dagster.Output(i, output_name=key)

    return wide


def multi_subset(quick: bool) -> dict[str, Any]:
    step = shapes.MULTI_OUTPUTS // shapes.MULTI_SELECTED
    selection = [f"out_{i:02d}" for i in range(0, shapes.MULTI_OUTPUTS, step)]
    wide = _multi_asset(shapes.MULTI_OUTPUTS)
    with DagsterInstance.ephemeral(settings=_SETTINGS) as instance:

        def run() -> None:
            result = dagster.materialize(
                [wide], instance=instance, selection=selection, resources={"io_manager": dagster.mem_io_manager}
            )
            if not result.success:
                raise RuntimeError("run failed")

        stats = summarize(time_runs(run, reps=10 if quick else 40, warmup=2))
    return {
        "metrics": {"ms_per_output": stats["median_s"] * 1000 / len(selection)},
        "details": {"outputs": shapes.MULTI_OUTPUTS, "selected": len(selection), "run": stats},
    }


def _graph_assets(count: int) -> list[Any]:
    ops = [dagster.op(name=f.__name__)(f) for f in shapes.chain_functions(shapes.GRAPH_TASKS)]
    graphs = []
    for index in range(count):

        def body() -> Any:
            handle = ops[0]()
            for op in ops[1:]:
                handle = op(handle)
            return handle

        body.__name__ = f"graph_{index:04d}"
        graphs.append(dagster.graph_asset(name=body.__name__)(body))
    return graphs


def validate_graphs(quick: bool) -> dict[str, Any]:
    start = time.perf_counter()
    graphs = _graph_assets(shapes.GRAPH_ASSETS)
    define_s = time.perf_counter() - start

    def validate() -> None:
        dagster.Definitions.validate_loadable(dagster.Definitions(assets=graphs))

    stats = summarize(time_runs(validate, reps=2 if quick else 5, warmup=1))
    return {
        "metrics": {"validate_ms": stats["median_s"] * 1000},
        "details": {"graph_assets": len(graphs), "define_ms": define_s * 1000, "validate": stats},
    }
