"""The pandas backend: ``pandas.DataFrame``. The index is never written; reads get a fresh
``RangeIndex``."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import pyarrow as pa
from arro3.core import RecordBatchReader

from rivers.io_handlers.delta.base import ArrowDeltaTypeHandler
from rivers.io_handlers.delta.pyarrow import read_arrow


class PandasTypeHandler(ArrowDeltaTypeHandler[pd.DataFrame]):
    """Writes and reads ``pandas.DataFrame`` through Arrow."""

    @property
    def supported_types(self) -> Sequence[type[pd.DataFrame]]:
        return [pd.DataFrame]

    def to_arrow(self, obj: pd.DataFrame) -> RecordBatchReader:
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(f"PandasTypeHandler writes pandas.DataFrame, got {type(obj)!r}")
        return RecordBatchReader.from_arrow(pa.Table.from_pandas(obj, preserve_index=False))

    def load_input(
        self,
        table_uri: str,
        table_name: str,
        storage_options: dict[str, str] | None,
        predicate: str | None,
        target_type: type[pd.DataFrame],
        columns: list[str] | None = None,
        version: int | None = None,
    ) -> pd.DataFrame:
        table = read_arrow(table_uri, storage_options, predicate, columns, version).read_all()
        return table.to_pandas().reset_index(drop=True)
