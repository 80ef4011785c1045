"""What an asset function may return: ``Output``, ``Materialization`` and ``Observation``."""

from __future__ import annotations

from typing import Any

from rivers._definitions.metadata import MetadataValue, coerce_dict


class _Result:
    __slots__ = ("_output_name", "_metadata", "_data_version")

    def __init__(self, output_name: str | None, metadata: dict[str, Any] | None, data_version: str | None) -> None:
        kind = type(self).__name__
        if output_name is not None and not isinstance(output_name, str):
            raise TypeError(f"{kind}.output_name must be a str or None")
        if data_version is not None and not isinstance(data_version, str):
            raise TypeError(f"{kind}.data_version must be a str or None")
        self._output_name = output_name
        self._metadata = coerce_dict(metadata, f"{kind} metadata") if metadata is not None else None
        self._data_version = data_version

    @property
    def output_name(self) -> str | None:
        return self._output_name

    @property
    def metadata(self) -> dict[str, MetadataValue] | None:
        return self._metadata

    @property
    def data_version(self) -> str | None:
        return self._data_version


class _TaggedResult(_Result):
    """A result that records tags with its event (``Output`` and ``Materialization``)."""

    __slots__ = ("_tags",)

    def __init__(
        self, output_name: str | None, metadata: dict[str, Any] | None, data_version: str | None, tags: list[str] | None
    ) -> None:
        super().__init__(output_name, metadata, data_version)
        self._tags = list(tags) if tags is not None else None

    @property
    def tags(self) -> list[str] | None:
        return self._tags


class Output(_TaggedResult):
    """A value plus metadata, data version and tags. The IO handler receives the bare value."""

    __slots__ = ("_value",)

    def __init__(
        self,
        value: Any = None,
        *,
        output_name: str | None = None,
        metadata: dict[str, Any] | None = None,
        data_version: str | None = None,
        tags: list[str] | None = None,
    ) -> None:
        super().__init__(output_name, metadata, data_version, tags)
        self._value = value

    @property
    def value(self) -> Any:
        return self._value

    def __repr__(self) -> str:
        return f"Output(value={self._value!r}, output_name={self._output_name!r}, data_version={self._data_version!r})"


class Materialization(_TaggedResult):
    """Metadata-only result of an asset that persisted its data itself; the IO handler is skipped."""

    __slots__ = ()

    def __init__(
        self,
        *,
        output_name: str | None = None,
        metadata: dict[str, Any] | None = None,
        data_version: str | None = None,
        tags: list[str] | None = None,
    ) -> None:
        super().__init__(output_name, metadata, data_version, tags)

    def __repr__(self) -> str:
        return f"Materialization(output_name={self._output_name!r}, data_version={self._data_version!r})"


class Observation(_Result):
    """Result of an external asset's observation function; carries no value."""

    __slots__ = ()

    def __init__(
        self,
        *,
        output_name: str | None = None,
        metadata: dict[str, Any] | None = None,
        data_version: str | None = None,
    ) -> None:
        super().__init__(output_name, metadata, data_version)

    def __repr__(self) -> str:
        return f"Observation(output_name={self._output_name!r}, data_version={self._data_version!r})"
