"""``Schema``: an Arrow schema stored as IPC bytes.

Arrow support comes from ``pyarrow``, imported only when a schema is actually built so that
``import rivers`` stays cheap.
"""

from __future__ import annotations

from typing import Any


def _pyarrow() -> Any:
    try:
        import pyarrow
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("rivers.Schema needs pyarrow: pip install pyarrow") from err
    return pyarrow


class Schema:
    """An Arrow schema. Accepts any object implementing ``__arrow_c_schema__``."""

    __slots__ = ("_schema",)
    _schema: Any

    def __init__(self, schema: Any) -> None:
        if isinstance(schema, Schema):
            self._schema = schema._schema
            return
        if not hasattr(schema, "__arrow_c_schema__"):
            raise TypeError(
                f"Schema() expects an object implementing __arrow_c_schema__ (e.g. a pyarrow or polars "
                f"schema), got {type(schema).__name__}"
            )
        self._schema = _pyarrow().schema(schema)

    @property
    def names(self) -> list[str]:
        return list(self._schema.names)

    def __len__(self) -> int:
        return len(self._schema)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schema) and self._schema.equals(other._schema)

    def __hash__(self) -> int:
        return hash(self.to_ipc())

    def __repr__(self) -> str:
        fields = ", ".join(f"{f.name}: {f.type}" for f in self._schema)
        return f"Schema({fields})"

    def __arrow_c_schema__(self) -> object:
        return self._schema.__arrow_c_schema__()

    def to_ipc(self) -> bytes:
        """Serialises to Arrow IPC bytes."""
        return self._schema.serialize().to_pybytes()

    @staticmethod
    def from_ipc(data: bytes) -> Schema:
        """Reads a schema back from :meth:`to_ipc` bytes."""
        pa = _pyarrow()
        try:
            schema = pa.ipc.read_schema(pa.py_buffer(data))
        except Exception as err:
            raise ValueError(f"invalid Arrow IPC schema bytes: {err}") from err
        out = Schema.__new__(Schema)
        out._schema = schema
        return out
