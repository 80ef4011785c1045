"""Fixtures of the pool tests: the real SurrealDB server of the storage tests."""

from tests.storage.conftest import surreal_server

__all__ = ["surreal_server"]
