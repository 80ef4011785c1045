"""Fixtures for the Delta IO handler tests (storage-and-io.md, DeltaIOHandler).

Tables are written under ``tmp_path`` and checked with deltalake itself. Tables are read back
with ``DeltaTable.scan()`` rather than ``to_pyarrow_table()``: the latter goes through a
pyarrow dataset whose thread pool can abort the interpreter at exit.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable

import rivers as rs
from rivers.io_handlers.delta import DeltaIOHandler


@pytest.fixture
def lake(tmp_path) -> str:
    """Base URI of the handler's tables."""
    return str(tmp_path / "lake")


@pytest.fixture
def store() -> rs.Storage:
    return rs.Storage.memory()


@pytest.fixture
def handler(lake) -> DeltaIOHandler:
    return DeltaIOHandler(table_uri=lake)


def table_rows(uri: str, version: int | None = None, sort_by: str | None = None) -> list[dict[str, Any]]:
    """Every row of the Delta table at ``uri`` (optionally at ``version``), sorted by ``sort_by``
    (default: the first column)."""
    table = pa.table(DeltaTable(uri, version=version).scan())
    rows = table.to_pylist()
    key = sort_by or (table.column_names[0] if table.column_names else None)
    return sorted(rows, key=lambda r: (r[key] is None, r[key])) if key else rows


def write(
    handler: DeltaIOHandler, asset: str, obj: Any, metadata: dict[str, str] | None = None, partition: Any = None
) -> dict[str, Any]:
    """Writes ``obj`` as ``asset`` and returns the output metadata as plain values."""
    ctx = rs.OutputContext(asset, asset_metadata=metadata, partition=partition)
    handler.handle_output(ctx, obj)
    return {key: value.raw_value() for key, value in (ctx.output_metadata or {}).items()}


def load(
    handler: DeltaIOHandler,
    asset: str,
    type_hint: Any,
    metadata: dict[str, str] | None = None,
    partition: Any = None,
) -> Any:
    return handler.load_input(
        rs.InputContext(asset, "consumer", asset_metadata=metadata, partition=partition, type_hint=type_hint)
    )
