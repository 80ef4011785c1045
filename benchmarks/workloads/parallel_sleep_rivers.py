"""rivers side of the parallel-executor workload, as an importable module.

``Executor.parallel()`` ships step functions to loky workers as
``(module, qualname)`` references, so these assets must live at module level in
a module the workers can import (``run.py`` puts ``benchmarks/`` on
``PYTHONPATH``). The IO handler is referenced by resource key so that importing
this module in a worker needs no knowledge of the run's scratch directory.
"""

from __future__ import annotations

import time  # noqa: F401  (used by the generated asset bodies)

import rivers as rs  # noqa: F401  (used by the generated decorators)
from workloads.shapes import SLEEP_ASSETS, SLEEP_S, sleep_source  # noqa: F401

IO_HANDLER_KEY = "pickle_io"

# Defines sleep_00 .. sleep_39 as module attributes, as hand-written code would.
exec(
    compile(
        sleep_source(f"rs.Asset(io_handler={IO_HANDLER_KEY!r})"),
        f"<generated {__name__}>",
        "exec",
    ),
    globals(),
)

ASSETS = [globals()[f"sleep_{i:02d}"] for i in range(SLEEP_ASSETS)]
