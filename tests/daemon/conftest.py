"""Fixtures of the daemon tests: a repository over two assets and a job, resolved on a memory
store, and an ``AutomationDaemon`` that is stopped when the test ends."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

import rivers as rs
from rivers._core import AutomationDaemon


@rs.Asset
def orders() -> int:
    return 1


@rs.Asset
def refunds(orders: int) -> int:
    return orders


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Polls ``condition`` until it returns something truthy, which is returned."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def daemon_repo():
    """``daemon_repo(schedules=..., sensors=..., **kwargs)`` -> ``(repo, store, daemon)``: a
    resolved repository over ``orders`` / ``refunds`` with job ``orders_job`` and a daemon
    (not started). Repositories are shut down, which stops their daemons, when the test ends."""
    made: list[rs.CodeRepository] = []

    def make(storage: rs.Storage | None = None, daemon_args: dict[str, Any] | None = None, **kwargs):
        kwargs.setdefault("assets", [orders, refunds])
        kwargs.setdefault("jobs", [rs.Job("orders_job", [orders, refunds])])
        kwargs.setdefault("default_executor", rs.Executor.in_process())
        repo = rs.CodeRepository(**kwargs)
        made.append(repo)
        store = storage if storage is not None else rs.Storage.memory()
        repo.resolve(storage=store)
        return repo, store, AutomationDaemon(repo, store, **(daemon_args or {}))

    yield make
    for repo in made:
        repo.shutdown()
