"""The pyarrow backend: ``pyarrow.Table`` and ``pyarrow.RecordBatchReader``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
from arro3.core import RecordBatchReader

from rivers.io_handlers.delta.base import ArrowDeltaTypeHandler, scan_table


def read_arrow(
    table_uri: str,
    storage_options: dict[str, str] | None,
    predicate: str | None,
    columns: list[str] | None,
    version: int | None,
) -> pa.RecordBatchReader:
    """A streaming pyarrow reader over the table, with the table's declared column types (the
    scan's view types are cast back batch by batch)."""
    scan, schema = scan_table(table_uri, storage_options, predicate, columns, version)
    return pa.RecordBatchReader.from_stream(scan).cast(pa.schema(schema))


class PyArrowTypeHandler(ArrowDeltaTypeHandler[Any]):
    """Writes ``pyarrow.Table`` / ``pyarrow.RecordBatchReader``; reads a whole table or a
    streaming reader."""

    @property
    def supported_types(self) -> Sequence[type[Any]]:
        return [pa.Table, pa.RecordBatchReader]

    def to_arrow(self, obj: Any) -> RecordBatchReader:
        if not isinstance(obj, (pa.Table, pa.RecordBatchReader)):
            raise TypeError(f"PyArrowTypeHandler writes pyarrow.Table or pyarrow.RecordBatchReader, got {type(obj)!r}")
        return RecordBatchReader.from_arrow(obj)

    def load_input(
        self,
        table_uri: str,
        table_name: str,
        storage_options: dict[str, str] | None,
        predicate: str | None,
        target_type: type[Any],
        columns: list[str] | None = None,
        version: int | None = None,
    ) -> Any:
        reader = read_arrow(table_uri, storage_options, predicate, columns, version)
        if issubclass(target_type, pa.RecordBatchReader):
            return reader
        return reader.read_all()
