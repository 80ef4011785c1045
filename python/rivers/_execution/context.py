"""The execution context handed to asset functions, and ``SelfDependency``."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar

from rivers._definitions.metadata import MetadataValue
from rivers._execution.io_context import OutputRecording
from rivers.exceptions import ExecutionError

ConfigT = TypeVar("ConfigT")
T = TypeVar("T")


class _PartitionAccess:
    """The partition properties both contexts share."""

    partition: Any
    # What runs, for messages: "asset" / "task", and the attribute holding its name.
    _kind: ClassVar[str]
    _name_attribute: ClassVar[str]

    def _subject_label(self) -> str:
        return f"{self._kind} '{getattr(self, self._name_attribute)}'"

    @property
    def has_partition_key(self) -> bool:
        return self.partition is not None

    @property
    def partition_key(self) -> str:
        """Canonical display form of the partition key; ``ValueError`` when unpartitioned."""
        if self.partition is None:
            raise ValueError(
                f"{self._subject_label()} is not partitioned (or was run without a partition key); "
                "check context.has_partition_key first"
            )
        return str(getattr(self.partition, "key", self.partition))

    @property
    def partition_time_window(self) -> tuple[datetime, datetime] | None:
        if self.partition is None:
            return None
        window = getattr(self.partition, "time_window", None)
        return window() if callable(window) else None


class AssetExecutionContext(_PartitionAccess, OutputRecording, Generic[ConfigT]):
    """What a running asset sees: its definition attributes, partition, config, a logger, and
    output-metadata and data-version registration. Parameterise it with a pydantic config class
    (``AssetExecutionContext[MyConfig]``) to receive ``context.config``."""

    _kind = "asset"
    _name_attribute = "asset_name"

    def __init__(
        self,
        asset_name: str,
        tags: list[str] | None = None,
        kinds: list[str] | None = None,
        group: str | None = None,
        code_version: str | None = None,
        asset_metadata: dict[str, str] | None = None,
        partition: Any | None = None,
        is_multi_asset: bool = False,
        output_selection: list[str] | None = None,
        config: ConfigT | None = None,
    ) -> None:
        self.asset_name = asset_name
        self.tags = tags
        self.kinds = list(kinds) if kinds else []
        self.group = group
        self.code_version = code_version
        self.asset_metadata = asset_metadata
        self.partition = partition
        self.is_multi_asset = is_multi_asset
        self.output_selection = list(output_selection) if output_selection is not None else []
        self.config = config
        self.run_id: str | None = None
        self._output_metadata: dict[str, MetadataValue] = {}
        self._data_version: str | None = None
        # The step's partitions (set by the step runner): what it covers, what it marked failed.
        self._partitions: Any = None

    @property
    def log(self) -> logging.Logger:
        """Logger named ``rivers.assets.<asset_name>``; its records are captured per step."""
        return logging.getLogger(f"rivers.assets.{self.asset_name}")

    def mark_partition_failed(self, partition_key: Any, error: str) -> None:
        """Records one individual partition of this step as failed: it gets no materialization
        and counts as failed, while the step's other partitions materialize normally. Does
        nothing on a step that covers one partition (it has its own run)."""
        key = str(partition_key)
        partitions = self._partitions
        if partitions is None or not partitions.covers(key):
            covered = [str(k) for k in partitions.covered[:10]] if partitions is not None else []
            count = partitions.covered_count if partitions is not None else 0
            shown = covered if count <= 10 else [*covered, f"... {count} in all"]
            raise ExecutionError(
                f"partition key {key!r} is not among this context's partition keys {shown}; mark only partitions "
                f"that {self._subject_label()} covers"
            )
        if partitions.covered_count > 1:
            partitions.failed[key] = str(error)

    def __repr__(self) -> str:
        return f"AssetExecutionContext(asset_name={self.asset_name!r})"


class TaskExecutionContext(_PartitionAccess, Generic[ConfigT]):
    """What a running task sees: its step name, tags, partition, config and a logger. The
    lighter sibling of :class:`AssetExecutionContext` (no asset attributes, no output metadata
    or data versions). Parameterise it with a pydantic config class to receive ``config``."""

    _kind = "task"
    _name_attribute = "task_name"

    def __init__(self, task_name: str, tags: list[str] | None = None, partition: Any | None = None) -> None:
        self.task_name = task_name
        self.tags = tags
        self.partition = partition
        self._config: Any = None
        self.run_id: str | None = None

    @property
    def config(self) -> ConfigT:
        """The config built from the annotation's type argument and the run's overrides;
        ``None`` when the annotation has none."""
        return self._config  # type: ignore[no-any-return]

    @property
    def log(self) -> logging.Logger:
        """Logger named ``rivers.tasks.<task_name>``; its records are captured per step."""
        return logging.getLogger(f"rivers.tasks.{self.task_name}")

    def __repr__(self) -> str:
        return f"TaskExecutionContext(task_name={self.task_name!r})"


class SelfDependency(Generic[T]):
    """An asset's own previously stored value, declared as ``self: SelfDependency[T]``."""

    __slots__ = ("_value",)

    def __init__(self, value: T | None = None) -> None:
        self._value = value

    def get_inner(self) -> T | None:
        """The stored value, or ``None`` on the first materialization."""
        return self._value

    def __repr__(self) -> str:
        return f"SelfDependency({self._value!r})"
