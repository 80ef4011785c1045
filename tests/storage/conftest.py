"""Fixtures for the storage-and-io.md acceptance tests: shared ones live in ``tests/conftest.py``."""

from types import SimpleNamespace

import pytest

import rivers as rs


@pytest.fixture
def store() -> rs.Storage:
    return rs.Storage.memory()


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
