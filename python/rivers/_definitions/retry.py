"""Retry policies, failure reasons and per-step compute requests.

Backoff arithmetic and the retry decision live in the compiled core; this module holds the
user-facing objects and converts them into the core's policy spec.
"""

from __future__ import annotations

import enum
import itertools
import re
import weakref
from collections.abc import Sequence
from typing import Any

from rivers._core import Backoff as Backoff


class FailureReason(enum.Enum):
    """Classification of a step failure, recorded as ``rivers/failure_reason``."""

    ERROR = "error"
    OUT_OF_MEMORY = "out_of_memory"
    TIMEOUT = "timeout"
    INFRASTRUCTURE = "infrastructure"
    CANCELED = "canceled"


class RetryOn(enum.Enum):
    """Preset failure filters."""

    ALL = "all"
    TRANSIENT = "transient"


_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


def _check_quantity(field: str, value: str | None) -> str | None:
    if value is not None and (not isinstance(value, str) or not _QUANTITY.match(value)):
        raise ValueError(f"{field}={value!r} is not a Kubernetes quantity such as '500m', '2' or '8Gi'")
    return value


class Compute:
    """Per-step CPU/memory/GPU request (used by the Kubernetes executor only)."""

    __slots__ = ("_cpu", "_memory", "_gpu")

    def __init__(self, *, cpu: str | None = None, memory: str | None = None, gpu: str | None = None) -> None:
        self._cpu = _check_quantity("cpu", cpu)
        self._memory = _check_quantity("memory", memory)
        self._gpu = _check_quantity("gpu", gpu)

    @property
    def cpu(self) -> str | None:
        return self._cpu

    @property
    def memory(self) -> str | None:
        return self._memory

    @property
    def gpu(self) -> str | None:
        return self._gpu

    def __repr__(self) -> str:
        return f"Compute(cpu={self._cpu!r}, memory={self._memory!r}, gpu={self._gpu!r})"


class ComputeEscalation:
    """Grow a step's compute on retries caused by resource exhaustion (Kubernetes only)."""

    def __init__(
        self,
        *,
        max_memory: str,
        factor: float = 2.0,
        cpu_factor: float | None = None,
        max_cpu: str | None = None,
        on: Sequence[FailureReason] | None = None,
    ) -> None:
        self._max_memory = _check_quantity("max_memory", max_memory)
        if factor <= 0:
            raise ValueError(f"ComputeEscalation factor must be > 0, got {factor}")
        self._factor = float(factor)
        self.cpu_factor = cpu_factor
        self.max_cpu = _check_quantity("max_cpu", max_cpu)
        self.on = list(on) if on is not None else [FailureReason.OUT_OF_MEMORY]

    @property
    def factor(self) -> float:
        return self._factor

    @property
    def max_memory(self) -> str:
        return self._max_memory  # type: ignore[return-value]


# Exception-class allow-lists are matched in Python (the engine only sees reasons): a policy
# with classes gets an id that the core carries, and failures find the policy again by it. The
# registry holds policies weakly, so it keeps none alive (their nodes do, while they are used).
_filter_ids = itertools.count()
_policies_by_filter: weakref.WeakValueDictionary[int, RetryPolicy] = weakref.WeakValueDictionary()


def class_filter(filter_id: int | None) -> tuple[type[BaseException], ...]:
    """The exception classes of the policy registered under ``filter_id``."""
    policy = _policies_by_filter.get(filter_id) if filter_id is not None else None
    return policy._classes if policy is not None else ()


class RetryPolicy:
    """How a failing step is retried: extra attempts, wait between them, which failures qualify."""

    def __init__(
        self,
        max_retries: int = 1,
        *,
        backoff: Backoff | None = None,
        retry_on: RetryOn | Sequence[type[BaseException] | FailureReason] | None = None,
        escalate: ComputeEscalation | None = None,
    ) -> None:
        if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 0:
            raise ValueError(f"RetryPolicy max_retries must be an integer >= 0, got {max_retries!r}")
        if backoff is not None and not isinstance(backoff, Backoff):
            raise TypeError("RetryPolicy backoff must be built with rs.Backoff.constant/linear/exponential/fixed")
        self._max_retries = max_retries
        self.backoff = backoff
        self.escalate = escalate
        self.retry_on = RetryOn.ALL if retry_on is None else retry_on
        # Read by the core (by attribute name) when the policy is converted.
        self._preset: str | None = None
        self._reasons: list[str] = []
        self._classes: tuple[type[BaseException], ...] = ()
        self._filter_id: int | None = None
        self._escalate_on = [reason.value for reason in escalate.on] if escalate else []
        if isinstance(self.retry_on, RetryOn):
            self._preset = self.retry_on.value
        else:
            reasons: list[str] = []
            classes: list[type[BaseException]] = []
            for entry in self.retry_on:
                if isinstance(entry, FailureReason):
                    reasons.append(entry.value)
                elif isinstance(entry, type) and issubclass(entry, BaseException):
                    classes.append(entry)
                else:
                    raise TypeError(
                        f"retry_on entries must be exception classes or FailureReason members, got {entry!r}"
                    )
            self._reasons = reasons
            self._classes = tuple(classes)
            if classes:
                self._filter_id = next(_filter_ids)
                _policies_by_filter[self._filter_id] = self

    def __setstate__(self, state: dict[str, Any]) -> None:
        # An unpickled copy keeps its id and answers for it while the original is gone.
        self.__dict__.update(state)
        if self._filter_id is not None:
            _policies_by_filter.setdefault(self._filter_id, self)

    @property
    def max_retries(self) -> int:
        return self._max_retries

    def __repr__(self) -> str:
        return f"RetryPolicy(max_retries={self._max_retries}, backoff={self.backoff!r}, retry_on={self.retry_on!r})"


def retry_spec(retry: RetryPolicy | str | None) -> RetryPolicy | str | None:
    """Checks a retry declaration before it is handed to the core: a policy or a policy name."""
    if retry is None or isinstance(retry, (str, RetryPolicy)):
        return retry
    raise TypeError(f"retry must be a RetryPolicy or a registered policy name, got {type(retry).__name__}")
