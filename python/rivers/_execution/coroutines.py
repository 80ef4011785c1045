"""The event loop that runs ``async def`` asset bodies.

One loop in a daemon thread per process. The engine awaits async step coroutines on it from
Rust (pyo3-async-runtimes), so concurrent async steps share the loop without a thread each;
observation functions and plain functions returning a coroutine block on it instead.

``asyncio`` is imported on first use: it costs a third of ``import rivers``, and repositories
without async steps never need it.
"""

from __future__ import annotations

import threading
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

_loop: asyncio.AbstractEventLoop | None = None
_lock = threading.Lock()


def event_loop() -> asyncio.AbstractEventLoop:
    """The shared loop, started on first use."""
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            import asyncio

            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="rivers-async", daemon=True).start()
            _loop = loop
        return _loop


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The shared loop if it was started, without starting it."""
    with _lock:
        return _loop if _loop is not None and not _loop.is_closed() else None


def run_coroutine(coro: Coroutine[Any, Any, Any]) -> Any:
    """Runs ``coro`` on the shared loop and returns its result (or raises its exception)."""
    import asyncio

    return asyncio.run_coroutine_threadsafe(coro, event_loop()).result()
