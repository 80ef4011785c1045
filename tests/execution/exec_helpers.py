"""Small helpers shared by the execution tests (imported by name, see conftest.py)."""

from __future__ import annotations

from typing import Any

from pydantic import PrivateAttr

import rivers as rs


def make_repo(assets: list[Any], *, resolve: bool = True, **kwargs: Any) -> rs.CodeRepository:
    """A repository on the in-process executor, resolved on a fresh memory storage."""
    kwargs.setdefault("default_executor", rs.Executor.in_process())
    repo = rs.CodeRepository(assets=assets, **kwargs)
    if resolve:
        repo.resolve(storage=rs.Storage.memory())
    return repo


def events(storage: rs.Storage, run_id: str) -> list[tuple[str, str | None]]:
    """``(event_type, asset_key)`` of every event of a run, oldest first."""
    return [(e.event_type, e.asset_key) for e in storage.get_events_for_run(run_id)]


def event_types(storage: rs.Storage, run_id: str) -> list[str]:
    return [e.event_type for e in storage.get_events_for_run(run_id)]


def step_events(storage: rs.Storage, run_id: str, node: str) -> list[Any]:
    """Every event of ``run_id`` whose ``asset_key`` is ``node``, oldest first."""
    return [e for e in storage.get_events_for_run(run_id) if e.asset_key == node]


def step_event_types(storage: rs.Storage, run_id: str, node: str) -> list[str]:
    return [e.event_type for e in step_events(storage, run_id, node)]


def metadata(event: Any) -> dict[str, str]:
    return dict(event.metadata)


def retry_events(storage: rs.Storage, run_id: str, node: str) -> list[dict[str, str]]:
    """Metadata of each ``StepRetry`` event of ``node`` in ``run_id``, oldest first."""
    return [metadata(e) for e in step_events(storage, run_id, node) if e.event_type == "StepRetry"]


def final_step_event(storage: rs.Storage, run_id: str, node: str) -> Any:
    """The ``StepFailure`` / ``StepSuccess`` event of ``node`` (exactly one expected)."""
    finals = [e for e in step_events(storage, run_id, node) if e.event_type in ("StepSuccess", "StepFailure")]
    assert len(finals) == 1, [e.event_type for e in step_events(storage, run_id, node)]
    return finals[0]


class RecordingHandler(rs.BaseIOHandler):
    """A process-local handler that records every call it receives."""

    _values: dict[str, Any] = PrivateAttr(default_factory=dict)
    _calls: list[tuple[str, str, Any]] = PrivateAttr(default_factory=list)

    def handle_output(self, context: rs.OutputContext, obj: Any) -> None:
        self._calls.append(("handle_output", context.asset_name, obj))
        self._values[context.asset_name] = obj

    def load_input(self, context: rs.InputContext) -> Any:
        self._calls.append(("load_input", context.asset_name, context.type_hint))
        return self._values[context.asset_name]

    @property
    def values(self) -> dict[str, Any]:
        return self._values

    @property
    def calls(self) -> list[tuple[str, str, Any]]:
        return self._calls
