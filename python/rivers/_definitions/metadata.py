"""Typed runtime metadata: :class:`MetadataValue`, its variants, coercion and storage encoding."""

from __future__ import annotations

import builtins
import json
import math
from datetime import datetime
from typing import Any, ClassVar

from rivers.exceptions import InvalidMetadataError

_py_int = builtins.int
_py_float = builtins.float
_py_bool = builtins.bool
_py_list = builtins.list
_py_bytes = builtins.bytes


def _type_error(factory: str, expected: str, value: object) -> TypeError:
    return TypeError(f"MetadataValue.{factory}() expects {expected}, got {type(value).__name__}: {value!r}")


def _check_str(factory: str, value: object) -> str:
    if not isinstance(value, str):
        raise _type_error(factory, "a str", value)
    return value


def _check_int(factory: str, value: object) -> int:
    if isinstance(value, _py_bool) or not isinstance(value, _py_int):
        raise _type_error(factory, "an int", value)
    return value


def _check_float(factory: str, value: object) -> float:
    if isinstance(value, _py_bool) or not isinstance(value, (_py_int, _py_float)):
        raise _type_error(factory, "a float", value)
    return _py_float(value)


def _check_optional_str(factory: str, value: object) -> str | None:
    return None if value is None else _check_str(factory, value)


class MetadataValue:
    """A typed metadata value. Build one with the static factories; inspect it with
    ``isinstance`` against the nested variant classes."""

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]] = ()

    def raw_value(self) -> Any:
        """The plain Python value."""
        return getattr(self, "value", None)

    def _encode(self) -> str:
        """The string stored in ``StoredEvent.metadata``."""
        return str(self.raw_value())

    def _key(self) -> tuple[Any, ...]:
        return (type(self),) + tuple(getattr(self, f) for f in self._fields)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MetadataValue) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(tuple(tuple(v) if isinstance(v, _py_list) else v for v in self._key()))

    def __repr__(self) -> str:
        args = ", ".join(repr(getattr(self, f)) for f in self._fields)
        return f"MetadataValue.{type(self).__name__}({args})"

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"MetadataValue.{type(self).__name__} is immutable")

    def _init(self, **fields: Any) -> None:
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    # Variant classes are attached below; the annotations keep type checkers informed.
    Text: ClassVar[type[_Text]]
    Int: ClassVar[type[_Int]]
    Float: ClassVar[type[_Float]]
    Bool: ClassVar[type[_Bool]]
    Url: ClassVar[type[_Url]]
    Path: ClassVar[type[_Path]]
    Json: ClassVar[type[_Json]]
    Markdown: ClassVar[type[_Markdown]]
    Timestamp: ClassVar[type[_Timestamp]]
    Null: ClassVar[type[_Null]]
    Bytes: ClassVar[type[_Bytes]]
    Duration: ClassVar[type[_Duration]]
    Sql: ClassVar[type[_Sql]]
    CodeBlock: ClassVar[type[_CodeBlock]]
    Image: ClassVar[type[_Image]]
    Percentage: ClassVar[type[_Percentage]]
    List: ClassVar[type[_List]]
    DateRange: ClassVar[type[_DateRange]]
    Schema: ClassVar[type[_SchemaValue]]
    DataVersion: ClassVar[type[_DataVersion]]

    @staticmethod
    def text(value: str) -> _Text:
        return _Text(_check_str("text", value))

    @staticmethod
    def int(value: _py_int) -> _Int:
        return _Int(_check_int("int", value))

    @staticmethod
    def float_(value: _py_float) -> _Float:
        return _Float(_check_float("float_", value))

    @staticmethod
    def bool_(value: _py_bool) -> _Bool:
        if not isinstance(value, _py_bool):
            raise _type_error("bool_", "a bool", value)
        return _Bool(value)

    @staticmethod
    def url(value: str) -> _Url:
        return _Url(_check_str("url", value))

    @staticmethod
    def path(value: str) -> _Path:
        return _Path(_check_str("path", value))

    @staticmethod
    def json(value: str) -> _Json:
        return _Json(_check_str("json", value))

    @staticmethod
    def md(value: str) -> _Markdown:
        return _Markdown(_check_str("md", value))

    @staticmethod
    def timestamp(value: _py_float) -> _Timestamp:
        return _Timestamp(_check_float("timestamp", value))

    @staticmethod
    def null() -> _Null:
        return _Null()

    @staticmethod
    def bytes(value: _py_int) -> _Bytes:
        return _Bytes(_check_int("bytes", value))

    @staticmethod
    def duration(value: _py_float) -> _Duration:
        return _Duration(_check_float("duration", value))

    @staticmethod
    def sql(query: str, dialect: str | None = None) -> _Sql:
        return _Sql(_check_str("sql", query), _check_optional_str("sql", dialect))

    @staticmethod
    def code_block(code: str, language: str | None = None) -> _CodeBlock:
        return _CodeBlock(_check_str("code_block", code), _check_optional_str("code_block", language))

    @staticmethod
    def image(value: str) -> _Image:
        return _Image(_check_str("image", value))

    @staticmethod
    def percentage(value: _py_float) -> _Percentage:
        return _Percentage(_check_float("percentage", value))

    @staticmethod
    def list_(values: _py_list[Any]) -> _List:
        if not isinstance(values, (_py_list, tuple)):
            raise _type_error("list_", "a list", values)
        return _List([coerce(v, "list_") for v in values])

    @staticmethod
    def date_range(start: datetime, end: datetime) -> _DateRange:
        if not isinstance(start, datetime) or not isinstance(end, datetime):
            raise TypeError("MetadataValue.date_range() expects two datetime objects")
        return _DateRange(start, end)

    @staticmethod
    def schema(value: Any) -> _SchemaValue:
        from rivers._definitions.schema import Schema

        if not hasattr(value, "__arrow_c_schema__"):
            raise _type_error("schema", "an object implementing __arrow_c_schema__", value)
        schema = value if isinstance(value, Schema) else Schema(value)
        return _SchemaValue(schema.to_ipc())

    @staticmethod
    def data_version(value: str) -> _DataVersion:
        return _DataVersion(_check_str("data_version", value))


class _Single(MetadataValue):
    __slots__ = ("value",)
    _fields = ("value",)
    value: Any

    def __init__(self, value: Any) -> None:
        self._init(value=value)


class _Text(_Single):
    __slots__ = ()


class _Int(_Single):
    __slots__ = ()


class _Float(_Single):
    __slots__ = ()

    def _encode(self) -> str:
        return repr(self.value) if math.isfinite(self.value) else str(self.value)


class _Bool(_Single):
    __slots__ = ()

    def _encode(self) -> str:
        return "true" if self.value else "false"


class _Url(_Single):
    __slots__ = ()


class _Path(_Single):
    __slots__ = ()


class _Json(_Single):
    __slots__ = ()


class _Markdown(_Single):
    __slots__ = ()


class _Timestamp(_Float):
    __slots__ = ()


class _Null(MetadataValue):
    __slots__ = ()

    def raw_value(self) -> None:
        return None

    def _encode(self) -> str:
        return "null"


class _Bytes(_Single):
    __slots__ = ()


class _Duration(_Float):
    __slots__ = ()


class _Sql(MetadataValue):
    __slots__ = ("query", "dialect")
    _fields = ("query", "dialect")
    query: str
    dialect: str | None

    def __init__(self, query: str, dialect: str | None = None) -> None:
        self._init(query=query, dialect=dialect)

    def raw_value(self) -> str:
        return self.query


class _CodeBlock(MetadataValue):
    __slots__ = ("code", "language")
    _fields = ("code", "language")
    code: str
    language: str | None

    def __init__(self, code: str, language: str | None = None) -> None:
        self._init(code=code, language=language)

    def raw_value(self) -> str:
        return self.code


class _Image(_Single):
    __slots__ = ()


class _Percentage(_Float):
    __slots__ = ()


class _List(MetadataValue):
    __slots__ = ("values",)
    _fields = ("values",)
    values: list[MetadataValue]

    def __init__(self, values: list[MetadataValue]) -> None:
        self._init(values=_py_list(values))

    def raw_value(self) -> list[MetadataValue]:
        return _py_list(self.values)

    def _encode(self) -> str:
        return json.dumps([v._encode() for v in self.values])


class _DateRange(MetadataValue):
    __slots__ = ("start", "end")
    _fields = ("start", "end")
    start: datetime
    end: datetime

    def __init__(self, start: datetime, end: datetime) -> None:
        self._init(start=start, end=end)

    def raw_value(self) -> tuple[datetime, datetime]:
        return (self.start, self.end)

    def _encode(self) -> str:
        return f"{self.start.isoformat()}/{self.end.isoformat()}"


class _SchemaValue(MetadataValue):
    __slots__ = ("ipc_bytes",)
    _fields = ("ipc_bytes",)
    ipc_bytes: bytes

    def __init__(self, ipc_bytes: bytes) -> None:
        self._init(ipc_bytes=_py_bytes(ipc_bytes))

    def raw_value(self) -> Any:
        from rivers._definitions.schema import Schema

        return Schema.from_ipc(self.ipc_bytes)

    def _encode(self) -> str:
        return json.dumps(self.raw_value().names)


class _DataVersion(_Single):
    __slots__ = ()


_VARIANTS = {
    "Text": _Text,
    "Int": _Int,
    "Float": _Float,
    "Bool": _Bool,
    "Url": _Url,
    "Path": _Path,
    "Json": _Json,
    "Markdown": _Markdown,
    "Timestamp": _Timestamp,
    "Null": _Null,
    "Bytes": _Bytes,
    "Duration": _Duration,
    "Sql": _Sql,
    "CodeBlock": _CodeBlock,
    "Image": _Image,
    "Percentage": _Percentage,
    "List": _List,
    "DateRange": _DateRange,
    "Schema": _SchemaValue,
    "DataVersion": _DataVersion,
}
for _name, _cls in _VARIANTS.items():
    _cls.__name__ = _name
    _cls.__qualname__ = f"MetadataValue.{_name}"
    setattr(MetadataValue, _name, _cls)


def coerce(value: Any, where: str = "metadata") -> MetadataValue:
    """Converts a plain value to a :class:`MetadataValue` (``bool`` is checked before ``int``)."""
    if isinstance(value, MetadataValue):
        return value
    if isinstance(value, _py_bool):
        return _Bool(value)
    if isinstance(value, _py_int):
        return _Int(value)
    if isinstance(value, _py_float):
        return _Float(value)
    if isinstance(value, str):
        return _Text(value)
    if value is None:
        return _Null()
    if hasattr(value, "__arrow_c_schema__"):
        return MetadataValue.schema(value)
    raise InvalidMetadataError(
        f"{where} value {value!r} of type {type(value).__name__} has no MetadataValue encoding; "
        "use str, int, float, bool, None, an Arrow schema, or a MetadataValue factory such as "
        "MetadataValue.json(...)"
    )


def coerce_dict(metadata: dict[str, Any] | None, where: str = "metadata") -> dict[str, MetadataValue]:
    """Coerces every value of a metadata dict, naming the offending key on failure."""
    if not metadata:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidMetadataError(f"{where} must be a dict of str to values, got {type(metadata).__name__}")
    out: dict[str, MetadataValue] = {}
    for key, value in metadata.items():
        out[str(key)] = coerce(value, f"{where} key {key!r}:")
    return out


def encode(metadata: dict[str, MetadataValue]) -> list[tuple[str, str]]:
    """Renders metadata as the ``(key, string)`` pairs stored on events."""
    return [(key, value._encode()) for key, value in metadata.items()]
