"""The contexts IO handlers receive: ``OutputContext`` and ``InputContext``."""

from __future__ import annotations

from typing import Any

from rivers._definitions.metadata import MetadataValue, coerce_dict


class OutputRecording:
    """Output metadata accumulated for one write and the data version registered for it; shared
    by the asset's execution context and the IO handler's :class:`OutputContext`."""

    _output_metadata: dict[str, MetadataValue]
    _data_version: str | None

    @property
    def output_metadata(self) -> dict[str, MetadataValue] | None:
        return dict(self._output_metadata) if self._output_metadata else None

    def add_output_metadata(self, metadata: dict[str, Any]) -> None:
        """Merges metadata (later keys replace earlier ones); values are coerced."""
        self._output_metadata.update(coerce_dict(metadata, "output metadata"))

    def register_data_version(self, version: str) -> None:
        """Records the data version of this write (result objects still take precedence)."""
        self._data_version = version

    def drain_data_version(self) -> str | None:
        """Returns the registered version and clears it."""
        version, self._data_version = self._data_version, None
        return version


class OutputContext(OutputRecording):
    """What is being written: the node, its static metadata, partition and accumulated metadata."""

    def __init__(
        self,
        asset_name: str,
        asset_metadata: dict[str, str] | None = None,
        partition: Any | None = None,
        type_hint: type | None = None,
    ) -> None:
        self.asset_name = asset_name
        self.asset_metadata = asset_metadata
        self.partition = partition
        self.type_hint = type_hint
        self._output_metadata = {}
        self._data_version = None

    def __repr__(self) -> str:
        return f"OutputContext(asset_name={self.asset_name!r})"


class InputContext:
    """What is being read: the upstream node, the consumer, metadata, partition and type hint."""

    __slots__ = ("asset_name", "downstream_asset", "asset_metadata", "partition", "type_hint")

    def __init__(
        self,
        asset_name: str,
        downstream_asset: str,
        asset_metadata: dict[str, str] | None = None,
        partition: Any | None = None,
        type_hint: type | None = None,
    ) -> None:
        self.asset_name = asset_name
        self.downstream_asset = downstream_asset
        self.asset_metadata = asset_metadata
        self.partition = partition
        self.type_hint = type_hint

    def __repr__(self) -> str:
        return f"InputContext(asset_name={self.asset_name!r}, downstream_asset={self.downstream_asset!r})"
