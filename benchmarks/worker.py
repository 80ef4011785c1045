"""Run one workload of one framework and print its result as a JSON line.

``run.py`` starts this script once per (framework, workload) in the framework's
own interpreter, so that every measurement starts from a fresh process (peak
RSS and import state are per process) and the rivers interpreter never needs
Dagster installed, nor the other way round.

Usage: python benchmarks/worker.py {rivers,dagster} WORKLOAD [--quick]
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import traceback

# The workloads package sits next to this file; process-pool workers find it
# through PYTHONPATH, which run.py sets, but direct invocations work too.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from workloads.common import emit  # noqa: E402

WORKLOADS = (
    "layered_memory",
    "layered_embedded",
    "layered_remote",
    "layered_history",
    "validate_5k",
    "selection_5k",
    "parallel_sleep",
    "peak_memory",
    "fan_out",
    "multi_subset",
    "validate_graphs",
    "partition_keys",
    "backfill_multi_run",
    "backfill_single_run",
    "million_partitions",
    "sensor_latency",
    "sensors_1000",
    "schedule_lateness",
    "pool_claim",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("impl", choices=("rivers", "dagster"))
    parser.add_argument("workload", choices=WORKLOADS)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()

    base = {"impl": args.impl, "workload": args.workload}
    start = time.perf_counter()
    try:
        impl = importlib.import_module(f"workloads.{args.impl}_impl")
        result = getattr(impl, args.workload)(args.quick)
        result.update(base, ok=True, version=impl.version())
    except Exception as exc:  # report any failure as a result line; run.py shows it
        traceback.print_exc()
        result = dict(base, ok=False, error=f"{type(exc).__name__}: {exc}")
    result["elapsed_s"] = time.perf_counter() - start
    emit(result)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
