"""The storage backend kinds (kept apart so the native module can build them cheaply)."""

from __future__ import annotations

import enum


class StorageType(enum.IntEnum):
    """Which backend a :class:`rivers.Storage` talks to."""

    Memory = 0
    Embedded = 1
    Remote = 2
