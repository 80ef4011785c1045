"""What evaluation functions return: ``RunRequest``, ``BackfillRequest``, ``SkipReason`` and
``SensorResult``; what an evaluation produces: ``ScheduleTickResult`` / ``SensorTickResult``;
and the one normalisation from the first to the second.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rivers._core import BackfillStrategy, PartitionKey, PartitionKeyRange
from rivers._definitions.automation import check_tags
from rivers._execution.backfill import FAILURE_POLICIES


@dataclass
class RunRequest:
    """A run for the daemon to launch: the automation's job (or ``job_name``), for one
    partition, with extra tags; ``run_key`` makes it launch at most once per automation."""

    run_key: str | None = None
    tags: dict[str, str] | None = None
    partition_key: str | None = None
    job_name: str | None = None

    def __post_init__(self) -> None:
        for attribute in ("run_key", "job_name"):
            value = getattr(self, attribute)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"RunRequest({attribute}=...) must be a str or None, got {value!r}")
        check_tags(self.tags, "RunRequest", TypeError)
        key: Any = self.partition_key
        if isinstance(key, PartitionKey):
            # The canonical display form, which the launch parses back against the target.
            self.partition_key = str(key)
        elif key is not None and not isinstance(key, str):
            raise TypeError(f"RunRequest(partition_key=...) must be a str or a PartitionKey, got {key!r}")


@dataclass
class BackfillRequest:
    """A backfill for the daemon to start, with the arguments of ``CodeRepository.backfill()``."""

    selection: list[str]
    partition_keys: list[PartitionKey] | None = None
    partition_range: PartitionKeyRange | None = None
    strategy: BackfillStrategy | None = None
    failure_policy: str | None = None
    max_concurrency: int = 4
    tags: dict[str, str] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.selection, str) or not all(isinstance(name, str) for name in self.selection):
            raise TypeError(f"BackfillRequest(selection=...) must be a list of asset names, got {self.selection!r}")
        self.selection = list(self.selection)
        if self.partition_keys is not None and self.partition_range is not None:
            raise ValueError("BackfillRequest takes partition_keys= or partition_range=, not both")
        if self.partition_keys is not None:
            for key in self.partition_keys:
                if not isinstance(key, (PartitionKey, str)):
                    raise TypeError(f"BackfillRequest(partition_keys=...) holds {key!r}; use rs.PartitionKey objects")
            self.partition_keys = list(self.partition_keys)
        if self.partition_range is not None and not isinstance(self.partition_range, PartitionKeyRange):
            raise TypeError(
                f"BackfillRequest(partition_range=...) must be a PartitionKeyRange, got {self.partition_range!r}"
            )
        if self.strategy is not None and not isinstance(self.strategy, BackfillStrategy):
            raise TypeError(f"BackfillRequest(strategy=...) must be a BackfillStrategy, got {self.strategy!r}")
        if self.failure_policy is not None and self.failure_policy not in FAILURE_POLICIES:
            raise ValueError(
                f"BackfillRequest(failure_policy={self.failure_policy!r}): use one of {list(FAILURE_POLICIES)} "
                "(None means 'continue')"
            )
        concurrency = self.max_concurrency
        if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
            raise ValueError(f"BackfillRequest(max_concurrency={concurrency!r}): must be an integer of at least 1")
        check_tags(self.tags, "BackfillRequest", TypeError)


Request = RunRequest | BackfillRequest


@dataclass
class SkipReason:
    """Why a tick launched nothing; the daemon records ``message`` on the tick."""

    message: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.message, str):
            raise TypeError(f"SkipReason(message=...) must be a str, got {self.message!r}")


def _requests(items: Iterable[Any], owner: str) -> list[Request]:
    requests = list(items)
    for item in requests:
        if not isinstance(item, (RunRequest, BackfillRequest)):
            raise TypeError(f"{owner} holds {item!r}; run_requests takes RunRequest and BackfillRequest objects")
    return requests


class SensorResult:
    """A sensor tick's outcome: requests, a skip reason and a new cursor, each optional and
    all three usable together."""

    def __init__(
        self,
        run_requests: Sequence[Request] | None = None,
        skip_reason: str | SkipReason | None = None,
        cursor: str | None = None,
    ) -> None:
        if isinstance(run_requests, (str, Mapping)) or (
            run_requests is not None and not isinstance(run_requests, Iterable)
        ):
            raise TypeError(f"SensorResult(run_requests=...) must be a list of requests, got {run_requests!r}")
        self.run_requests: list[Request] | None = (
            _requests(run_requests, "SensorResult(run_requests=...)") if run_requests is not None else None
        )
        if isinstance(skip_reason, str):
            skip_reason = SkipReason(skip_reason)
        elif skip_reason is not None and not isinstance(skip_reason, SkipReason):
            raise TypeError(f"SensorResult(skip_reason=...) must be a str or a SkipReason, got {skip_reason!r}")
        self.skip_reason: SkipReason | None = skip_reason
        if cursor is not None and not isinstance(cursor, str):
            raise TypeError(f"SensorResult(cursor=...) must be a str or None, got {cursor!r}; serialise it first")
        self.cursor = cursor

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SensorResult):
            return NotImplemented
        return (self.run_requests, self.skip_reason, self.cursor) == (
            other.run_requests,
            other.skip_reason,
            other.cursor,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable value object, like the dataclasses

    def __repr__(self) -> str:
        return f"SensorResult(run_requests={self.run_requests!r}, skip_reason={self.skip_reason!r}, cursor={self.cursor!r})"


@dataclass
class ScheduleTickResult:
    """One evaluation of a schedule: its requests (always a list) and skip reason."""

    schedule_name: str
    run_requests: list[Request] = field(default_factory=list)
    skip_reason: SkipReason | None = None


@dataclass
class SensorTickResult:
    """One evaluation of a sensor: its requests (always a list), skip reason and the cursor
    it set (``None``: keep the previous one)."""

    sensor_name: str
    run_requests: list[Request] = field(default_factory=list)
    skip_reason: SkipReason | None = None
    cursor: str | None = None


_ACCEPTED = "a RunRequest, a BackfillRequest, a SkipReason, a SensorResult, None, or an iterable of requests"


def normalize(value: Any, owner: str) -> tuple[list[Request], SkipReason | None, str | None]:
    """An evaluation function's return value as ``(requests, skip reason, cursor)``; a
    generator is consumed here. A ``SkipReason`` inside an iterable counts only when the
    iterable holds no request. ``TypeError`` naming ``owner`` for anything else."""
    if value is None:
        return [], None, None
    if isinstance(value, (RunRequest, BackfillRequest)):
        return [value], None, None
    if isinstance(value, SkipReason):
        return [], value, None
    if isinstance(value, SensorResult):
        return list(value.run_requests or []), value.skip_reason, value.cursor
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise TypeError(f"{owner} returned {value!r}; return {_ACCEPTED}")
    requests: list[Request] = []
    skip_reason = None
    for item in value:
        if isinstance(item, (RunRequest, BackfillRequest)):
            requests.append(item)
        elif isinstance(item, SkipReason):
            skip_reason = skip_reason or item
        else:
            raise TypeError(f"{owner} returned an iterable holding {item!r}; return {_ACCEPTED}")
    return requests, (skip_reason if not requests else None), None
