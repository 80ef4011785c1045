"""Dagster side of the parallel-executor workload, as an importable module.

Dagster's multiprocess executor re-loads the job in every step subprocess
through a ``reconstructable`` pointer, so the assets and the job factory must
live at module level in a module the subprocesses can import (``run.py`` puts
``benchmarks/`` on ``PYTHONPATH``).
"""

from __future__ import annotations

import time  # noqa: F401  (used by the generated asset bodies)

import dagster

from workloads.shapes import SLEEP_ASSETS, SLEEP_S, SLEEP_WORKERS, sleep_source  # noqa: F401

JOB_NAME = "parallel_sleep"

# Defines sleep_00 .. sleep_39 as module attributes, as hand-written code would.
exec(compile(sleep_source("dagster.asset"), f"<generated {__name__}>", "exec"), globals())

ASSETS = [globals()[f"sleep_{i:02d}"] for i in range(SLEEP_ASSETS)]

# The fs IO manager writes under the instance's storage directory, which the
# benchmark points at a scratch directory (DagsterInstance.local_temp).
defs = dagster.Definitions(
    assets=ASSETS,
    jobs=[
        dagster.define_asset_job(
            JOB_NAME,
            executor_def=dagster.multiprocess_executor.configured({"max_concurrent": SLEEP_WORKERS}),
        )
    ],
    resources={"io_manager": dagster.fs_io_manager},
)


def parallel_sleep_job() -> dagster.JobDefinition:
    """Job factory for ``dagster.reconstructable``."""
    return defs.resolve_job_def(JOB_NAME)
