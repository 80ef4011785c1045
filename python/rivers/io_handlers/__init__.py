"""IO handlers: how asset values are persisted and loaded.

``DeltaIOHandler`` is listed only where ``deltalake`` is installed (``rivers[delta]``), and is
imported on first access.
"""

from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

from rivers.io_handlers.base import BaseIOHandler as BaseIOHandler
from rivers.io_handlers.memory import InMemoryIOHandler as InMemoryIOHandler
from rivers.io_handlers.pickle import PickleIOHandler as PickleIOHandler

if TYPE_CHECKING:
    from rivers.io_handlers.delta import DeltaIOHandler as DeltaIOHandler

__all__ = ["BaseIOHandler", "InMemoryIOHandler", "PickleIOHandler"]
if find_spec("deltalake") is not None:
    __all__.append("DeltaIOHandler")


def __getattr__(name: str) -> Any:
    if name == "DeltaIOHandler" and "DeltaIOHandler" in __all__:
        from rivers.io_handlers.delta import DeltaIOHandler

        return DeltaIOHandler
    raise AttributeError(f"module 'rivers.io_handlers' has no attribute '{name}'")
