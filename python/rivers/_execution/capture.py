"""Per-step capture of stdout, stderr and ``rivers`` log records.

Capture is scoped per step through a context variable: ``sys.stdout`` / ``sys.stderr`` are
wrapped (once) by routers that append each write to the capture of the step running in the
current thread or asyncio task, and still echo it to the real stream. Concurrent steps —
threads, or async steps sharing one event loop — therefore never mix their output. Each
captured stream keeps at most its last 4 MiB.
"""

from __future__ import annotations

import contextvars
import io
import logging
import sys
import threading
from collections import deque
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TextIO

# Bytes (UTF-8) kept per captured stream; older text is dropped from the front as it arrives,
# so a step that prints gigabytes holds at most this much in memory.
_LIMIT = 4 * 1024 * 1024
_rivers_logger = logging.getLogger("rivers")
_current: contextvars.ContextVar[StepCapture | None] = contextvars.ContextVar("rivers_step_capture", default=None)
_install_lock = threading.Lock()


class _StreamRouter(io.TextIOBase):
    """Stands in for ``sys.stdout`` / ``sys.stderr``: tees writes into the current step's
    capture; everything else is delegated to the wrapped stream."""

    def __init__(self, target: TextIO, stream: str) -> None:
        self._target = target
        self._stream = stream

    def write(self, text: str) -> int:
        capture = _current.get()
        if capture is not None:
            capture._streams[self._stream].append(text)
        try:
            self._target.write(text)
        except ValueError:  # the real stream was closed (e.g. at interpreter shutdown)
            pass
        return len(text)

    def flush(self) -> None:
        self._target.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


class _RecordRouter(logging.Handler):
    """Attached to the ``rivers`` logger: keeps the records of the current step."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        capture = _current.get()
        if capture is not None:
            capture._streams["logs"].append_line(self.format(record))


_record_router = _RecordRouter()


def _install() -> None:
    # Called for every step: the common case (already installed) takes no lock.
    if (
        isinstance(sys.stdout, _StreamRouter)
        and isinstance(sys.stderr, _StreamRouter)
        and _rivers_logger.level != logging.NOTSET
        and _record_router in _rivers_logger.handlers
    ):
        return
    with _install_lock:
        if not isinstance(sys.stdout, _StreamRouter):
            sys.stdout = _StreamRouter(sys.stdout, "stdout")
        if not isinstance(sys.stderr, _StreamRouter):
            sys.stderr = _StreamRouter(sys.stderr, "stderr")
        if _record_router not in _rivers_logger.handlers:
            _rivers_logger.addHandler(_record_router)
        if _rivers_logger.level == logging.NOTSET:
            # context.log.info(...) must reach the capture even when the root logger is unset.
            _rivers_logger.setLevel(logging.INFO)


class _Tail:
    """The last ``_LIMIT`` bytes of a stream, as UTF-8."""

    __slots__ = ("_parts", "_size")

    def __init__(self) -> None:
        self._parts: deque[bytes] = deque()
        self._size = 0

    def append(self, text: str) -> None:
        data = text.encode("utf-8", "replace")
        self._parts.append(data)
        self._size += len(data)
        while len(self._parts) > 1 and self._size - len(self._parts[0]) >= _LIMIT:
            self._size -= len(self._parts.popleft())

    def append_line(self, line: str) -> None:
        self.append(f"\n{line}" if self._parts else line)

    def text(self) -> str | None:
        if not self._size:
            return None
        data = b"".join(self._parts)[-_LIMIT:]
        # A cut inside a multi-byte character drops its remaining bytes.
        return data.decode("utf-8", "ignore")


@dataclass(frozen=True, slots=True)
class Captured:
    """What one step printed and logged (plain data: it travels back from workers)."""

    stdout: str | None
    stderr: str | None
    logs: str | None


class StepCapture:
    """Context manager capturing one step execution's output."""

    def __init__(self) -> None:
        self._streams: dict[str, _Tail] = {"stdout": _Tail(), "stderr": _Tail(), "logs": _Tail()}

    def __enter__(self) -> StepCapture:
        _install()
        self._token = _current.set(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _current.reset(self._token)

    def result(self) -> Captured | None:
        """The captured streams, or ``None`` when the step produced no output at all."""
        captured = Captured(
            self._streams["stdout"].text(), self._streams["stderr"].text(), self._streams["logs"].text()
        )
        if captured.stdout is None and captured.stderr is None and captured.logs is None:
            return None
        return captured


class TracingBridge(logging.Handler):
    """Forwards records of the ``rivers`` logger hierarchy to the native tracing subscriber
    (filtered by ``RUST_LOG``), so Python and Rust logs share one pipeline."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)

    def emit(self, record: logging.LogRecord) -> None:
        from rivers._core import _log

        try:
            _log(record.levelno, record.name, record.getMessage())
        except Exception:
            self.handleError(record)


def install_tracing_bridge() -> None:
    """Attaches the bridge to the ``rivers`` logger once."""
    with _install_lock:
        if not any(isinstance(h, TracingBridge) for h in _rivers_logger.handlers):
            _rivers_logger.addHandler(TracingBridge())
