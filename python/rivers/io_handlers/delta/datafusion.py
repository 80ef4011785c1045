"""The DataFusion backend: ``datafusion.DataFrame``.

Writes stream the frame's batches (DataFusion executes the plan as the writer pulls). Reads
register the Delta table in a fresh ``SessionContext`` under the node's table name and return a
lazy frame over it; the context is attached to the frame as ``rivers_ctx`` so that further SQL
can join other tables registered in it.
"""

from __future__ import annotations

from collections.abc import Sequence

import datafusion
from arro3.core import RecordBatchReader
from deltalake import DeltaTable

from rivers.io_handlers.delta.base import ArrowDeltaTypeHandler


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


class DataFusionTypeHandler(ArrowDeltaTypeHandler[datafusion.DataFrame]):
    """Writes and reads ``datafusion.DataFrame``."""

    @property
    def supported_types(self) -> Sequence[type[datafusion.DataFrame]]:
        return [datafusion.DataFrame]

    def to_arrow(self, obj: datafusion.DataFrame) -> RecordBatchReader:
        if not isinstance(obj, datafusion.DataFrame):
            raise TypeError(f"DataFusionTypeHandler writes datafusion.DataFrame, got {type(obj)!r}")
        return RecordBatchReader.from_arrow(obj)

    def load_input(
        self,
        table_uri: str,
        table_name: str,
        storage_options: dict[str, str] | None,
        predicate: str | None,
        target_type: type[datafusion.DataFrame],
        columns: list[str] | None = None,
        version: int | None = None,
    ) -> datafusion.DataFrame:
        table = DeltaTable(table_uri, version=version, storage_options=storage_options)
        if columns is not None:
            names = table.schema().to_arrow().names
            unknown = [c for c in columns if c not in names]
            if unknown:
                raise ValueError(
                    f"delta/columns names column(s) {unknown} that the table at {table_uri} does not have; "
                    f"its columns are {names}"
                )
        # Identifiers keep their case, as in deltalake's own scans, so one predicate means the
        # same thing for every backend.
        config = datafusion.SessionConfig().set("datafusion.sql_parser.enable_ident_normalization", "false")
        ctx = datafusion.SessionContext(config)
        ctx.register_table(table_name, table)
        projection = "*" if columns is None else ", ".join(_quote(c) for c in columns)
        query = f"SELECT {projection} FROM {_quote(table_name)}"
        if predicate is not None:
            query += f" WHERE {predicate}"
        frame = ctx.sql(query)
        frame.rivers_ctx = ctx  # type: ignore[attr-defined]
        return frame
