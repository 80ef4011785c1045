"""Pooled assets that record when their bodies run (importable, so parallel workers and
subprocesses find them), and the overlap measured from those records.

Each body writes ``<root>/<name>-<uuid>.start`` when it begins and ``.end`` when it returns,
holding the wall-clock time in nanoseconds: the most bodies running at once is read from the
files afterwards, whatever process ran them, without asserting on durations.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import rivers as rs


def _enter(root: str, name: str) -> Path:
    stem = Path(root) / f"{name}-{uuid.uuid4().hex}"
    stem.with_suffix(".start").write_text(str(time.time_ns()))
    return stem


def _leave(stem: Path) -> None:
    stem.with_suffix(".end").write_text(str(time.time_ns()))


def pooled_assets(
    root: str,
    count: int,
    *,
    pool: str | list[str] = "db",
    pool_slots: int | dict[str, int] | None = None,
    hold: float = 0.2,
    is_async: bool = False,
    prefix: str = "step",
) -> list[Any]:
    """``count`` independent assets, each holding its pool slots for ``hold`` seconds."""
    handler = rs.PickleIOHandler(store=__import__("obstore").store.LocalStore(root))

    def sync_asset(name: str) -> Any:
        def body() -> str:
            stem = _enter(root, name)
            time.sleep(hold)
            _leave(stem)
            return name

        body.__name__ = name
        return rs.Asset(pool=pool, pool_slots=pool_slots, io_handler=handler)(body)

    def async_asset(name: str) -> Any:
        async def body() -> str:
            stem = _enter(root, name)
            await asyncio.sleep(hold)
            _leave(stem)
            return name

        body.__name__ = name
        return rs.Asset(pool=pool, pool_slots=pool_slots, io_handler=handler)(body)

    make = async_asset if is_async else sync_asset
    return [make(f"{prefix}_{i}") for i in range(count)]


def intervals(root: str | Path, prefix: str = "") -> list[tuple[int, int]]:
    """``(start, end)`` of every finished body whose name starts with ``prefix``."""
    found = []
    for start in Path(root).glob(f"{prefix}*.start"):
        end = start.with_suffix(".end")
        if end.exists():
            found.append((int(start.read_text()), int(end.read_text())))
    return found


def max_overlap(spans: list[tuple[int, int]]) -> int:
    """The most intervals covering one instant."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans], key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _, delta in edges:
        running += delta
        peak = max(peak, running)
    return peak
