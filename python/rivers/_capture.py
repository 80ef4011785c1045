"""Per-step capture of stdout, stderr and ``rivers`` log records.

Captured text is still echoed to the real streams; each stream keeps at most its last 4 MiB.
"""

from __future__ import annotations

import io
import logging
import sys
from types import TracebackType
from typing import TextIO

_LIMIT = 4 * 1024 * 1024
_rivers_logger = logging.getLogger("rivers")


class _Tee(io.TextIOBase):
    def __init__(self, echo: TextIO) -> None:
        self._echo = echo
        self._parts: list[str] = []

    def write(self, text: str) -> int:
        self._parts.append(text)
        try:
            self._echo.write(text)
        except ValueError:  # the real stream was closed (e.g. at interpreter shutdown)
            pass
        return len(text)

    def flush(self) -> None:
        self._echo.flush()

    def value(self) -> str | None:
        text = "".join(self._parts)
        return text[-_LIMIT:] if text else None


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


class StepCapture:
    """Context manager capturing one step execution's output."""

    def __enter__(self) -> StepCapture:
        self._stdout, self._stderr = sys.stdout, sys.stderr
        self._out, self._err = _Tee(self._stdout), _Tee(self._stderr)
        sys.stdout, sys.stderr = self._out, self._err
        self._handler = _Collect()
        if _rivers_logger.level == logging.NOTSET:
            # context.log.info(...) must reach the capture even when the root logger is unset.
            _rivers_logger.setLevel(logging.INFO)
        _rivers_logger.addHandler(self._handler)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        sys.stdout, sys.stderr = self._stdout, self._stderr
        _rivers_logger.removeHandler(self._handler)

    def result(self) -> tuple[str | None, str | None, str | None] | None:
        """``(stdout, stderr, logs)``, or ``None`` when the step produced no output at all."""
        logs = "\n".join(self._handler.lines)[-_LIMIT:] or None
        captured = (self._out.value(), self._err.value(), logs)
        return captured if any(part is not None for part in captured) else None
