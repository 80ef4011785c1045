"""The polars backend: ``polars.DataFrame`` and ``polars.LazyFrame``.

A ``LazyFrame`` is written as a stream of the batches its query produces, and read as a lazy
scan: nothing is read before ``collect()``, the partition predicate and ``delta/columns`` are
applied by the scan, and further projections and filters of the query are pushed into it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import polars as pl
from arro3.core import RecordBatch, RecordBatchReader
from polars.io.plugins import register_io_source

from rivers.io_handlers.delta.base import ArrowDeltaTypeHandler, scan_table


def _lazy_reader(frame: pl.LazyFrame) -> RecordBatchReader:
    schema = RecordBatchReader.from_arrow(pl.DataFrame(schema=frame.collect_schema())).schema

    def batches() -> Iterator[RecordBatch]:
        # lazy=True: the query starts when the writer asks for the first batch.
        for chunk in frame.collect_batches(lazy=True):
            yield from RecordBatchReader.from_arrow(chunk)

    return RecordBatchReader.from_batches(schema, batches())


class PolarsTypeHandler(ArrowDeltaTypeHandler[Any]):
    """Writes ``polars.DataFrame`` / ``polars.LazyFrame``; reads a collected frame or a lazy scan."""

    @property
    def supported_types(self) -> Sequence[type[Any]]:
        return [pl.DataFrame, pl.LazyFrame]

    def to_arrow(self, obj: Any) -> RecordBatchReader:
        if isinstance(obj, pl.LazyFrame):
            return _lazy_reader(obj)
        if isinstance(obj, pl.DataFrame):
            return RecordBatchReader.from_arrow(obj)
        raise TypeError(f"PolarsTypeHandler writes polars.DataFrame or polars.LazyFrame, got {type(obj)!r}")

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
        if issubclass(target_type, pl.LazyFrame):
            return _lazy_scan(table_uri, table_name, storage_options, predicate, columns, version)
        scan, _ = scan_table(table_uri, storage_options, predicate, columns, version)
        return pl.DataFrame(scan)


def _lazy_scan(
    table_uri: str,
    table_name: str,
    storage_options: dict[str, str] | None,
    predicate: str | None,
    columns: list[str] | None,
    version: int | None,
) -> pl.LazyFrame:
    # Opened once now, so a missing table or unknown column fails at load time, not at collect.
    _, schema = scan_table(table_uri, storage_options, predicate, columns, version)
    polars_schema = pl.DataFrame(RecordBatchReader.from_batches(schema, [])).schema

    def source(
        with_columns: list[str] | None, filters: pl.Expr | None, n_rows: int | None, batch_size: int | None
    ) -> Iterator[pl.DataFrame]:
        projected = with_columns if with_columns is not None else columns
        scan, _ = scan_table(table_uri, storage_options, predicate, projected, version)
        remaining = n_rows
        for batch in scan:
            frame = pl.DataFrame(batch)
            if filters is not None:
                frame = frame.filter(filters)
            if remaining is not None:
                frame = frame.head(remaining)
                remaining -= frame.height
            yield frame
            if remaining == 0:
                return

    return register_io_source(source, schema=polars_schema)
