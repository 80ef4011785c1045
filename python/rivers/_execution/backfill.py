"""Backfills: a request for many partitions of a selection, planned in the core (expansion and
grouping into runs) and coordinated by the engine (``rivers._core.run_backfill``), which keeps
the backfill's record, counters and per-partition outcome in storage. This module checks the
arguments and converts the records.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from rivers._core import LaunchedBy, PartitionKey, PartitionKeyRange

_log = logging.getLogger("rivers")

FAILURE_POLICIES = ("continue", "stop_on_failure")

# Run configs that are not JSON (so not stored), of the backfills submitted from this process,
# by id: `rerun_backfill` in this process still has them.
_CONFIGS: dict[str, dict[str, dict[str, Any]] | None] = {}
_CONFIGS_LOCK = threading.Lock()


@dataclass(frozen=True)
class BackfillResult:
    """What ``CodeRepository.backfill`` returns."""

    backfill_id: str
    num_partitions: int
    num_runs: int
    status: str
    completed: int
    failed: int
    canceled: int
    run_ids: list[str]
    is_dry_run: bool
    partition_keys: list[PartitionKey]


@dataclass(frozen=True)
class PlannedBackfill:
    """A checked and planned backfill: the selected names, the plan every run executes, its
    executor, the partitions grouped into runs, and the normalised tags and config."""

    names: list[str]
    executor: Any
    run_plan: Any
    plan: Any
    tags: list[tuple[str, str]]
    config: dict[str, dict[str, Any]] | None


@dataclass
class DaemonBackfill:
    """A daemon-executed backfill as this process knows it: what its runs execute, its plan,
    and, once its runs exist, each run's index in the plan and the config they run with."""

    names: list[str]
    plan: Any
    run_index: dict[str, int] | None = None
    config: dict[str, dict[str, Any]] | None = None


@dataclass(frozen=True)
class BackfillStatus:
    """A backfill as ``CodeRepository.get_backfill`` reads it from storage."""

    backfill_id: str
    status: str
    total_partitions: int
    completed_partitions: int
    failed_partitions: int
    canceled_partitions: int
    run_ids: list[str]
    error: str | None
    tags: list[tuple[str, str]]
    launched_by: LaunchedBy


def config_json(config: dict[str, dict[str, Any]] | None) -> str | None:
    """The config as stored with a backfill: JSON text, or ``None`` when it is not JSON."""
    if config is None:
        return None
    try:
        return json.dumps(config)
    except (TypeError, ValueError):
        _log.warning("backfill config is not JSON-serialisable; rerun_backfill from another process will not have it")
        return None


def remember_config(backfill_id: str, config: dict[str, dict[str, Any]] | None) -> None:
    with _CONFIGS_LOCK:
        _CONFIGS[backfill_id] = config


def remembered_config(backfill_id: str, record: dict[str, Any]) -> dict[str, dict[str, Any]] | None:
    """The config a backfill ran with: from this process when it submitted it, else stored."""
    with _CONFIGS_LOCK:
        if backfill_id in _CONFIGS:
            return _CONFIGS[backfill_id]
    return record.get("config")


def new_backfill_id() -> str:
    return uuid.uuid4().hex[:12]


def check_arguments(
    partition_keys: list[Any] | None,
    partition_range: Any | None,
    failure_policy: str,
    max_concurrency: int,
) -> None:
    if partition_keys is not None and partition_range is not None:
        raise ValueError("pass either partition_keys= or partition_range= to backfill(), not both")
    if partition_keys is None and partition_range is None:
        raise ValueError("backfill() needs partition_keys= or partition_range=")
    if partition_range is not None and not isinstance(partition_range, PartitionKeyRange):
        raise TypeError(f"partition_range must be a PartitionKeyRange, got {type(partition_range).__name__}")
    if failure_policy not in FAILURE_POLICIES:
        raise ValueError(f"failure_policy must be one of {list(FAILURE_POLICIES)}, got {failure_policy!r}")
    if not isinstance(max_concurrency, int) or max_concurrency < 1:
        raise ValueError(f"max_concurrency must be an integer of at least 1, got {max_concurrency!r}")


def _launched_by(stored: dict[str, Any]) -> LaunchedBy:
    kind = stored.get("kind")
    if kind == "schedule":
        return LaunchedBy.schedule(stored["name"])
    if kind == "sensor":
        return LaunchedBy.sensor(stored["name"])
    if kind == "backfill":
        return LaunchedBy.backfill(stored["backfill_id"])
    if kind == "condition":
        return LaunchedBy.condition()
    return LaunchedBy.manual()


def status_from_record(text: str) -> BackfillStatus:
    record = json.loads(text)
    status = record["status"]
    return BackfillStatus(
        backfill_id=record["backfill_id"],
        status="in_progress" if status == "requested" else status,
        total_partitions=record["num_partitions"],
        completed_partitions=record["completed"],
        failed_partitions=record["failed"],
        canceled_partitions=record["canceled"],
        run_ids=list(record["run_ids"]),
        error=record.get("error"),
        tags=[(k, v) for k, v in record.get("tags", [])],
        launched_by=_launched_by(record.get("launched_by") or {}),
    )


def unfinished_keys(record: dict[str, Any]) -> list[str]:
    """Display keys of a backfill's failed and canceled partitions (what a rerun covers)."""
    return [*record.get("failed_keys", []), *record.get("canceled_keys", [])]
