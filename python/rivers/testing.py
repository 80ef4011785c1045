"""Storage factories for tests.

Each store owns a private runtime and shuts down synchronously when the object is dropped, so an
embedded path can be reopened immediately afterwards and long test sessions do not accumulate
pending shutdowns.
"""

from __future__ import annotations

from rivers._core import Storage

__all__ = ["embedded_storage", "memory_storage"]


def memory_storage() -> Storage:
    """A fresh in-memory store (like ``Storage.memory()``)."""
    return Storage._test_memory()


def embedded_storage(path: str) -> Storage:
    """An embedded RocksDB store at ``path`` (like ``Storage.embedded(path)``)."""
    return Storage._test_embedded(path)
