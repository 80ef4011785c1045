"""What runs hand back: ``RunResult`` (a finished run) and ``RunHandle`` (a submitted one)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rivers._execution.repository import CodeRepository


class RunResult:
    """Outcome of a synchronous run. Values are read back with ``repo.load_node(name)``."""

    __slots__ = ("_success", "_run_id", "_materialized", "_failed")

    def __init__(
        self, success: bool, run_id: str, materialized_assets: list[str], failed_assets: list[tuple[str, str]]
    ):
        self._success = success
        self._run_id = run_id
        self._materialized = materialized_assets
        self._failed = failed_assets

    @property
    def success(self) -> bool:
        return self._success

    @property
    def run_id(self) -> str:
        return self._run_id

    @property
    def materialized_assets(self) -> list[str]:
        return list(self._materialized)

    @property
    def failed_assets(self) -> list[tuple[str, str]]:
        return list(self._failed)

    def __repr__(self) -> str:
        return (
            f"RunResult(success={self._success}, run_id={self._run_id!r}, materialized_assets={self._materialized!r})"
        )


_TERMINAL = ("Success", "Failure", "Canceled")


class StoredRun:
    """A run executed by another process or thread, followed through storage: what a
    ``RunHandle`` waits on for a queued run."""

    def __init__(self, repository: CodeRepository, run_id: str) -> None:
        self._repository = repository
        self.run_id = run_id

    def wait(self, timeout: float | None = None) -> RunResult | None:
        """The run's result once it is terminal; ``None`` when ``timeout`` seconds pass first."""
        storage = self._repository.storage
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            record = storage.get_run(self.run_id)
            if record is not None and record.status in _TERMINAL:
                return stored_result(storage, record)
            if deadline is not None and time.monotonic() >= deadline:
                return None
            time.sleep(_POLL if deadline is None else max(0.0, min(_POLL, deadline - time.monotonic())))


# How often a wait on a run executed elsewhere reads its status.
_POLL = 0.05


def stored_result(storage: Any, record: Any) -> RunResult:
    """The result of a finished run, from its record and events."""
    materialized: list[str] = []
    failed: list[tuple[str, str]] = []
    for event in storage.get_events_for_run(record.run_id):
        if event.event_type == "Materialization" and event.asset_key not in materialized:
            materialized.append(event.asset_key)
        elif event.event_type == "StepFailure":
            failed.append((event.asset_key or "", dict(event.metadata).get("rivers/error", "")))
    return RunResult(record.status == "Success", record.run_id, materialized, failed)


class RunHandle:
    """Handle to a submitted run: poll its status, wait for it, cancel it."""

    def __init__(self, repository: CodeRepository, launched: Any, to_result: Callable[[Any], RunResult]) -> None:
        self._repository = repository
        self._launched = launched
        self._to_result = to_result

    @property
    def run_id(self) -> str:
        return str(self._launched.run_id)

    @property
    def status(self) -> str:
        record = self._repository.storage.get_run(self.run_id)
        return record.status if record is not None else "NotStarted"

    def wait(self, timeout: float | None = None) -> RunResult:
        """Blocks until the run is terminal; ``TimeoutError`` after ``timeout`` seconds."""
        outcome = self._launched.wait(timeout)
        if outcome is None:
            raise TimeoutError(f"run {self.run_id} did not finish within {timeout} seconds")
        return self._to_result(outcome)

    def cancel(self) -> None:
        """A queued run becomes ``Canceled`` at once; a started one gets a cancellation request
        that its executor honours between steps; a no-op for a terminal run."""
        storage = self._repository.storage
        if not storage.cancel_queued_run(self.run_id) and self.status not in _TERMINAL:
            storage.request_cancellation(self.run_id)

    def __repr__(self) -> str:
        return f"RunHandle(run_id={self.run_id!r})"
