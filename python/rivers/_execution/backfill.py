"""Backfills: a request for many partitions of a selection, planned in the core (expansion and
grouping into runs) and run here, up to ``max_concurrency`` runs at once, with counters and a
per-partition outcome kept in the backfill's storage record.

A partition is completed when its run succeeded and its step did not mark it failed, failed
when its run failed or a step marked it, and canceled when its run never finished because of
``cancel_backfill`` or ``failure_policy="stop_on_failure"``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rivers._core import LaunchedBy, PartitionKey, PartitionKeyRange

if TYPE_CHECKING:
    from rivers._execution.repository import CodeRepository

_log = logging.getLogger("rivers")

FAILURE_POLICIES = ("continue", "stop_on_failure")
DEFAULT_PRIORITY = -10
# How stale a running backfill's stored counters may be, and how often it looks for a cancel
# marker left by another process.
SAVE_INTERVAL_S = 0.1

# Backfills running in this process, by id: `cancel_backfill` signals them directly.
_LIVE: dict[str, BackfillRun] = {}
_LIVE_LOCK = threading.Lock()


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


@dataclass
class BackfillRequestSpec:
    """A backfill's arguments, as stored for ``rerun_backfill``."""

    selection: list[str] | None
    strategy: Any
    failure_policy: str
    max_concurrency: int
    tags: list[tuple[str, str]]
    config: dict[str, dict[str, Any]] | None


@dataclass
class BackfillRun:
    """One backfill being run: its plan, its runs' outcomes and its record."""

    repository: CodeRepository
    backfill_id: str
    plan: Any
    spec: BackfillRequestSpec
    run_plan: Any
    priority: int
    status: str = "in_progress"
    completed: int = 0
    failed: int = 0
    canceled: int = 0
    run_ids: list[str] = field(default_factory=list)
    # Display forms of the failed and canceled partitions (what `rerun_backfill` reruns).
    unfinished: list[str] = field(default_factory=list)
    error: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _cancelled: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _saving: threading.Lock = field(default_factory=threading.Lock)
    # Ids of this backfill's runs that are executing now (cancel asks them to stop).
    running: set[str] = field(default_factory=set)
    _thread: threading.Thread | None = None
    _dirty: bool = False
    _last_save: float = 0.0
    _last_marker_check: float = 0.0
    _flush_timer: threading.Timer | None = None

    # -- record -----------------------------------------------------------------------------

    def record(self) -> dict[str, Any]:
        return {
            "backfill_id": self.backfill_id,
            "status": self.status,
            "selection": self.spec.selection,
            "strategy": self.spec.strategy._to_json(),
            "failure_policy": self.spec.failure_policy,
            "max_concurrency": self.spec.max_concurrency,
            "tags": [list(tag) for tag in self.spec.tags],
            "config": _config_json(self.spec.config),
            "num_partitions": self.plan.num_partitions,
            "num_runs": self.plan.num_runs,
            "completed": self.completed,
            "failed": self.failed,
            "canceled": self.canceled,
            "run_ids": list(self.run_ids),
            "unfinished": list(self.unfinished),
            "error": self.error,
            "launched_by": {"kind": "manual"},
            "cancel_requested": False,
        }

    def save(self) -> None:
        """Writes the record now."""
        # One writer at a time: concurrent runs finishing together would otherwise race on the
        # record (and the store rejects the losing transaction).
        with self._saving:
            with self._lock:
                record = self.record()
                self._dirty = False
                self._last_save = time.monotonic()
            self.repository.storage._put_backfill(self.backfill_id, json.dumps(record))

    def save_soon(self) -> None:
        """Writes the record at most every ``SAVE_INTERVAL_S``: runs of a large backfill finish
        faster than a record write, and readers see counters at most that old."""
        with self._lock:
            self._dirty = True
            due = time.monotonic() - self._last_save >= SAVE_INTERVAL_S
            if not due and self._flush_timer is None:
                self._flush_timer = threading.Timer(SAVE_INTERVAL_S, self._flush)
                self._flush_timer.daemon = True
                self._flush_timer.start()
        if due:
            self.save()

    def _flush(self) -> None:
        with self._lock:
            self._flush_timer = None
            dirty = self._dirty and self.status == "in_progress"
        if dirty:
            self.save()

    # -- running ----------------------------------------------------------------------------

    def start(self, block: bool) -> None:
        with _LIVE_LOCK:
            _LIVE[self.backfill_id] = self
        self.save()
        if block:
            self._run()
        else:
            self._thread = threading.Thread(target=self._run, name=f"rivers-backfill-{self.backfill_id}", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            workers = min(self.spec.max_concurrency, max(self.plan.num_runs, 1))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rivers-backfill") as pool:
                for _ in pool.map(self._run_one, range(self.plan.num_runs)):
                    pass
            with self._lock:
                if self._cancelled:
                    self.status = "canceled"
                elif self.failed or self.error:
                    self.status = "failed"
                else:
                    self.status = "completed"
        except Exception as err:  # the backfill itself failed (storage, planning a run)
            _log.exception("backfill %s failed", self.backfill_id)
            with self._lock:
                self.error = f"{type(err).__name__}: {err}"
                self.status = "failed"
        finally:
            self._finish_unstarted()
            with self._lock:
                timer, self._flush_timer = self._flush_timer, None
            if timer is not None:
                timer.cancel()
            try:
                self.save()
            finally:
                with _LIVE_LOCK:
                    _LIVE.pop(self.backfill_id, None)

    def _stopping(self) -> bool:
        if self._stop.is_set():
            return True
        # Another process asks through the record's cancel marker; look at most every interval.
        now = time.monotonic()
        if now - self._last_marker_check < SAVE_INTERVAL_S:
            return False
        self._last_marker_check = now
        record = self.repository.storage._get_backfill(self.backfill_id)
        if record is not None and json.loads(record).get("cancel_requested"):
            self.cancel()
            return True
        return False

    def _run_one(self, index: int) -> None:
        if self._stopping():
            self._mark_canceled(index)
            return
        result = self.repository._run_backfill_partition(self, index)
        keys = self.plan.run_keys(index)
        if self._cancelled and result.status != "Success":
            result_status = "Canceled"
        else:
            result_status = result.status
        with self._lock:
            if result_status == "Success":
                marked = set(result.failed_partitions)
                self.completed += len(keys) - len(marked & set(keys))
                self.failed += len(marked & set(keys))
                self.unfinished.extend(k for k in keys if k in marked)
            elif result_status == "Canceled":
                self.canceled += len(keys)
                self.unfinished.extend(keys)
            else:
                self.failed += len(keys)
                self.unfinished.extend(keys)
                if self.spec.failure_policy == "stop_on_failure":
                    self._stop.set()
        self.save_soon()

    def started(self, run_id: str) -> None:
        """Lists a run as soon as it is created (``run_ids`` holds the runs created so far)."""
        with self._lock:
            self.run_ids.append(run_id)
            self.running.add(run_id)
        self.save_soon()

    def _mark_canceled(self, index: int) -> None:
        keys = self.plan.run_keys(index)
        with self._lock:
            self.canceled += len(keys)
            self.unfinished.extend(keys)

    def _finish_unstarted(self) -> None:
        """Every partition that neither finished nor was counted counts as canceled, so the
        counters add up to ``num_partitions`` whatever stopped the backfill."""
        with self._lock:
            missing = self.plan.num_partitions - (self.completed + self.failed + self.canceled)
            if missing > 0:
                self.canceled += missing

    def cancel(self) -> None:
        """Stops launching runs and asks the running ones to stop between steps."""
        with self._lock:
            self._cancelled = True
            running = list(self.running)
        self._stop.set()
        storage = self.repository.storage
        for run_id in running:
            storage.request_cancellation(run_id)

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def result(self, partition_keys: list[PartitionKey] | None) -> BackfillResult:
        with self._lock:
            return BackfillResult(
                backfill_id=self.backfill_id,
                num_partitions=self.plan.num_partitions,
                num_runs=self.plan.num_runs,
                status=self.status,
                completed=self.completed,
                failed=self.failed,
                canceled=self.canceled,
                run_ids=list(self.run_ids),
                is_dry_run=False,
                partition_keys=partition_keys if partition_keys is not None else self.plan.partition_keys(),
            )


def _config_json(config: dict[str, dict[str, Any]] | None) -> Any:
    try:
        return json.loads(json.dumps(config)) if config is not None else None
    except (TypeError, ValueError):
        _log.warning("backfill config is not JSON-serialisable; rerun_backfill from another process will not have it")
        return None


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


def backfill_priority(tags: list[tuple[str, str]]) -> int:
    for key, value in tags:
        if key == "rivers/priority":
            try:
                return int(value)
            except ValueError:
                raise ValueError(f"backfill tag rivers/priority must be an integer, got {value!r}") from None
    return DEFAULT_PRIORITY


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
        launched_by=LaunchedBy.manual(),
    )


def live_backfill(backfill_id: str) -> BackfillRun | None:
    with _LIVE_LOCK:
        return _LIVE.get(backfill_id)
