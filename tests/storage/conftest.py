"""Fixtures for the storage-and-io.md acceptance tests."""

from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import PrivateAttr

import rivers as rs


class RecordingIOHandler(rs.BaseIOHandler):
    """Keeps values in a private dict and snapshots every context it is called with."""

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
def store() -> rs.Storage:
    return rs.Storage.memory()


@pytest.fixture
def make_repo():
    """Build a ``CodeRepository`` on the in-process executor, resolved on a memory store
    (or the ``storage=`` given); every repository is shut down at teardown."""
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


@pytest.fixture
def finance(make_repo, store):
    """A small materialized repository: ``invoices`` -> ``invoice_total`` plus ``audit_log``,
    with distinct tags, kinds and groups; one successful run with tags."""

    @rs.Asset(tags=["finance", "raw"], kinds=["table"], group="billing", code_version="3")
    def invoices():
        return [{"id": 7, "amount": 120.0}, {"id": 8, "amount": 80.5}]

    @rs.Asset(kinds="scalar", group="billing")
    def invoice_total(invoices):
        return sum(row["amount"] for row in invoices)

    @rs.Asset(tags=["ops"], kinds=["table", "log"], group="ops")
    def audit_log(context: rs.AssetExecutionContext):
        context.add_output_metadata({"entries": 2})
        return ["created", "paid"]

    repo = make_repo([invoices, invoice_total, audit_log], storage=store)
    result = repo.materialize(tags=[("team", "finance"), ("ticket", "FIN-1")])
    return SimpleNamespace(repo=repo, store=store, result=result, run_id=result.run_id)


def materializations(store: rs.Storage, run_id: str) -> dict[str, rs.StoredEvent]:
    return {
        event.asset_key: event for event in store.get_events_for_run(run_id) if event.event_type == "Materialization"
    }


@pytest.fixture
def run_materializations():
    return materializations
