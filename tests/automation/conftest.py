"""Shared helpers of the schedule and sensor tests.

``auto_eval_functions`` holds schedules and sensors at module scope: under
``EvalMode.Subprocess`` a loky worker re-imports them by name, so this directory is put on
``sys.path`` and exported through ``PYTHONPATH`` before any worker process starts.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import rivers as rs

HERE = Path(__file__).resolve().parent

if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
_pythonpath = os.environ.get("PYTHONPATH", "")
if str(HERE) not in _pythonpath.split(os.pathsep):
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE)] + ([_pythonpath] if _pythonpath else []))


@rs.Asset
def orders() -> int:
    return 1


@rs.Asset
def refunds(orders: int) -> int:
    return orders


@pytest.fixture
def make_repo():
    """``make_repo(schedules=..., sensors=..., resources=...)``: a repository over ``orders``
    and ``refunds`` with a job ``orders_job``, shut down when the test ends."""
    made: list[rs.CodeRepository] = []

    def make(**kwargs) -> rs.CodeRepository:
        kwargs.setdefault("assets", [orders, refunds])
        kwargs.setdefault("jobs", [rs.Job("orders_job", [orders, refunds])])
        kwargs.setdefault("default_executor", rs.Executor.in_process())
        repo = rs.CodeRepository(**kwargs)
        made.append(repo)
        return repo

    yield make
    for repo in made:
        repo.shutdown()
