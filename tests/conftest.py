"""Fixtures shared by the whole suite.

Repositories built with ``make_repo`` run on ``Executor.in_process()`` and a fresh
``Storage.memory()`` unless a test asks otherwise, and are shut down when the test ends.
"""

from typing import Any

import pytest
from pydantic import PrivateAttr

import rivers as rs


class RecordingIOHandler(rs.BaseIOHandler):
    """An IO handler that keeps values in a private dict and snapshots every context it sees.

    ``register_version`` / ``extra_metadata`` let a test make the handler register a data
    version or add output metadata from inside ``handle_output``.
    """

    register_version: str | None = None
    extra_metadata: dict[str, Any] | None = None

    _values: dict = PrivateAttr(default_factory=dict)
    _writes: list = PrivateAttr(default_factory=list)
    _reads: list = PrivateAttr(default_factory=list)

    def handle_output(self, context: rs.OutputContext, obj: Any) -> None:
        self._writes.append(
            {
                "asset_name": context.asset_name,
                "asset_metadata": context.asset_metadata,
                "type_hint": context.type_hint,
                "partition": context.partition,
                "output_metadata_on_entry": dict(context.output_metadata or {}),
                "value": obj,
            }
        )
        self._values[context.asset_name] = obj
        if self.extra_metadata:
            context.add_output_metadata(self.extra_metadata)
        if self.register_version is not None:
            context.register_data_version(self.register_version)

    def load_input(self, context: rs.InputContext) -> Any:
        self._reads.append(
            {
                "asset_name": context.asset_name,
                "downstream_asset": context.downstream_asset,
                "asset_metadata": context.asset_metadata,
                "type_hint": context.type_hint,
                "partition": context.partition,
            }
        )
        return self._values[context.asset_name]

    @property
    def writes(self) -> list[dict[str, Any]]:
        return self._writes

    @property
    def reads(self) -> list[dict[str, Any]]:
        return self._reads


@pytest.fixture
def handler_cls() -> type[RecordingIOHandler]:
    return RecordingIOHandler


@pytest.fixture
def recording_handler() -> RecordingIOHandler:
    return RecordingIOHandler()


@pytest.fixture
def make_repo():
    """Build a ``CodeRepository`` (in-process executor) and resolve it on a memory store.

    ``make_repo(assets, resolve=False)`` skips the resolve; ``storage=`` binds a given store.
    """
    repos: list[rs.CodeRepository] = []

    def _make(assets, *, resolve: bool = True, storage: rs.Storage | None = None, **kwargs):
        kwargs.setdefault("default_executor", rs.Executor.in_process())
        repo = rs.CodeRepository(assets=assets, **kwargs)
        repos.append(repo)
        if resolve:
            repo.resolve(storage=storage if storage is not None else rs.Storage.memory())
        return repo

    yield _make
    for repo in repos:
        repo.shutdown()


def materializations(store: rs.Storage, run_id: str) -> dict[str, rs.StoredEvent]:
    """Materialization events of one run keyed by asset key."""
    return {
        event.asset_key: event for event in store.get_events_for_run(run_id) if event.event_type == "Materialization"
    }


@pytest.fixture
def run_materializations():
    return materializations
