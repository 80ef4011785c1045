"""IO handlers: how asset values are persisted and loaded."""

from rivers.io_handlers.base import BaseIOHandler as BaseIOHandler
from rivers.io_handlers.memory import InMemoryIOHandler as InMemoryIOHandler
from rivers.io_handlers.pickle import PickleIOHandler as PickleIOHandler

__all__ = ["BaseIOHandler", "InMemoryIOHandler", "PickleIOHandler"]
