"""``BaseIOHandler``: the protocol every IO handler implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Protocol

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from rivers._core import PartitionKey
from rivers._execution.io_context import InputContext, OutputContext


class BaseIOHandler(BaseSettings, ABC):
    """Persists asset values (``handle_output``) and loads them back (``load_input``).

    A pydantic-settings model: fields come from constructor arguments, then environment
    variables named after the fields, then ``.env`` files, then defaults.
    """

    @abstractmethod
    def handle_output(self, context: OutputContext, obj: Any) -> None:
        """Persists ``obj``."""

    @abstractmethod
    def load_input(self, context: InputContext) -> Any:
        """Returns the stored value."""


class BuiltinIOHandler(BaseIOHandler):
    """Base of the handlers rivers ships (``InMemoryIOHandler``, ``PickleIOHandler``,
    ``DeltaIOHandler``): their fields come from constructor arguments and defaults only.

    Their field names are generic (``mode``, ``prefix``, ``store``), so reading them from the
    environment would let an unrelated variable such as ``MODE=append`` change how a handler
    writes. Subclasses inherit this; a subclass that wants environment variables overrides
    ``settings_customise_sources`` (user handlers deriving from ``BaseIOHandler`` read them as
    the specification describes).
    """

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


class IOHandler(Protocol):
    """Typing-only protocol with the two handler methods."""

    def handle_output(self, context: OutputContext, obj: Any) -> None: ...

    def load_input(self, context: InputContext) -> Any: ...


def partition_suffix(partition: Any) -> str | None:
    """The path suffix of ``partition.key``: a single-dimension key's values joined with ``/``;
    a multi-dimension key as ``dim=v1|v2`` segments in dimension-name order joined with ``/``."""
    if partition is None:
        return None
    key = partition.key
    if isinstance(key, PartitionKey.Multi):
        return "/".join(f"{dim}={'|'.join(values)}" for dim, values in sorted(key.keys.items()))
    if isinstance(key, PartitionKey.Single):
        return "/".join(key.key)
    return str(key)


def storage_key(context: OutputContext | InputContext) -> str:
    """``asset_name`` or ``asset_name/<partition suffix>``."""
    suffix = partition_suffix(context.partition)
    return context.asset_name if suffix is None else f"{context.asset_name}/{suffix}"
