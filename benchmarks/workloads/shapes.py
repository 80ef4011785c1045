"""Workload shapes, generated identically for every framework.

Both rivers and Dagster infer a data dependency from a parameter whose name is
an upstream asset's name, so the benchmark generates real Python source with
real parameter names once and only the decorator differs between frameworks.
That keeps the two sides semantically equivalent: same graph, same edges, same
values, dependencies declared the idiomatic way.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from datetime import datetime

#: Values stay small: every asset returns an int below this modulus.
MODULUS = 997


def asset_name(layer: int, index: int) -> str:
    """Name of the asset at ``(layer, index)``; zero-padded so it sorts."""
    return f"n{layer:03d}_{index:02d}"


def layered_parents(layer: int, index: int, width: int) -> list[str]:
    """The two upstreams of ``(layer, index)``: same column and the next one.

    Wrapping around at the right edge keeps every asset at exactly two deps.
    """
    if layer == 0:
        return []
    return [asset_name(layer - 1, index), asset_name(layer - 1, (index + 1) % width)]


def layered_source(layers: int, width: int) -> str:
    """Python source for a ``layers`` x ``width`` DAG, one ``def`` per asset."""
    chunks = []
    for layer in range(layers):
        for index in range(width):
            name = asset_name(layer, index)
            parents = layered_parents(layer, index, width)
            if parents:
                body = f"return ({' + '.join(parents)}) % {MODULUS}"
            else:
                body = f"return {index + 1}"
            chunks.append(f"def {name}({', '.join(parents)}):\n    {body}\n")
    return "\n".join(chunks)


def layered_functions(layers: int, width: int, module_name: str) -> list[Callable[..., int]]:
    """Plain functions for the layered DAG, in topological (layer) order.

    They are executed into a synthetic module registered in ``sys.modules`` so
    that ``__module__``/``__qualname__`` point somewhere real, like user code.
    """
    module = types.ModuleType(module_name)
    module.__file__ = f"<generated {module_name}>"
    sys.modules[module_name] = module
    exec(compile(layered_source(layers, width), module.__file__, "exec"), module.__dict__)
    return [module.__dict__[asset_name(layer, index)] for layer in range(layers) for index in range(width)]


def layered_expected(layers: int, width: int) -> dict[str, int]:
    """Value every asset must produce; used to check a run really computed."""
    values: dict[str, int] = {}
    for layer in range(layers):
        for index in range(width):
            parents = layered_parents(layer, index, width)
            name = asset_name(layer, index)
            values[name] = sum(values[p] for p in parents) % MODULUS if parents else index + 1
    return values


#: Parallel-executor workload: independent assets that only sleep.
SLEEP_ASSETS = 40
SLEEP_S = 0.05
SLEEP_WORKERS = 2
#: Best possible wall time: the sleeps perfectly packed onto the workers.
SLEEP_IDEAL_S = SLEEP_ASSETS * SLEEP_S / SLEEP_WORKERS


def sleep_source(decorator: str) -> str:
    """Source for the ``SLEEP_ASSETS`` sleeping assets under ``decorator``.

    The caller executes it into a real, importable module's globals, so each
    asset is a module attribute exactly as if it had been written by hand; a
    process-pool worker can then re-import it by ``(module, qualname)``.
    """
    return "\n".join(
        f"@{decorator}\ndef sleep_{i:02d}():\n    time.sleep(SLEEP_S)\n    return {i}\n" for i in range(SLEEP_ASSETS)
    )


# --- asset kinds: fan-out, multi-asset subsetting, graph assets -------------------------

#: Mapped instances per fan-out run (Dagster's in-process fan-out is measured on fewer; the
#: per-instance figure is compared).
FAN_OUT_RIVERS = 10_000
FAN_OUT_DAGSTER = 1_000
#: Outputs of the wide multi-asset, and how many of them a run selects.
MULTI_OUTPUTS = 50
MULTI_SELECTED = 5
#: Graph assets in the validation workload, and tasks per graph (plus the graph's own node).
GRAPH_ASSETS = 1_000
GRAPH_TASKS = 5


def chain_functions(count: int) -> list[Callable[..., int]]:
    """``count`` plain functions forming a chain: ``step_0()`` starts it, ``step_i(value)``
    adds one."""

    def first() -> int:
        return 1

    functions: list[Callable[..., int]] = [first]
    for _ in range(1, count):

        def step(value: int) -> int:
            return value + 1

        functions.append(step)
    for index, function in enumerate(functions):
        function.__name__ = function.__qualname__ = f"step_{index}"
    return functions


# --- partitions: key enumeration, backfills, a million partitions ----------------------

#: First window of every partitioned workload.
PARTITION_START = datetime(2024, 1, 1)
#: Key formats spelled out on the Dagster side so that both frameworks produce the same
#: strings (rivers' defaults for a minutely cron and for hourly windows).
MINUTE_FMT = "%Y-%m-%dT%H:%M:%S"
HOUR_FMT = "%Y-%m-%dT%H:%M"
#: Hourly partitions backfilled one run each (Dagster runs fewer; the per-run figure is
#: compared) and in one run.
MULTI_RUN_RIVERS = 500
MULTI_RUN_DAGSTER = 50
SINGLE_RUN_PARTITIONS = 5_000
#: Minutely partitions of the asset materialized by one run on embedded storage (quick mode:
#: the smaller figure).
MILLION = 1_000_000
MILLION_QUICK = 100_000
