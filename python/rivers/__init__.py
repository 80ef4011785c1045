"""rivers: asset-graph data orchestration with a compiled Rust control plane.

``import rivers as rs``, decorate functions with ``@rs.Asset``, register them in an
``rs.CodeRepository`` and ``materialize()`` them.

Every public name is imported here from its defining module. Names built on pydantic-settings
(IO handlers, ``Resource``) are loaded on first access so that ``import rivers`` stays cheap.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

# Before the native core loads: Rust library errors capture no stack traces unless asked. The
# embedded database uses errors for ordinary control flow, and under RUST_BACKTRACE=1 (common
# on developer machines) capturing them cost several percent of every run; no library error's
# trace ever reaches a user. Panics still print theirs. See docs/observability.md.
os.environ.setdefault("RUST_LIB_BACKTRACE", "0")

from rivers import exceptions as exceptions  # noqa: E402
from rivers._core import AssetRecord as AssetRecord
from rivers._core import AutomationCondition as AutomationCondition
from rivers._core import BackfillStrategy as BackfillStrategy
from rivers._core import ConditionExplanation as ConditionExplanation
from rivers._core import LaunchedBy as LaunchedBy
from rivers._core import PartitionContext as PartitionContext
from rivers._core import PartitionKey as PartitionKey
from rivers._core import PartitionKeyRange as PartitionKeyRange
from rivers._core import PartitionMapping as PartitionMapping
from rivers._core import PartitionsDefinition as PartitionsDefinition
from rivers._core import RunBackendConfig as RunBackendConfig
from rivers._core import RunQueueConfig as RunQueueConfig
from rivers._core import RunRecord as RunRecord
from rivers._core import SimulatedRequest as SimulatedRequest
from rivers._core import StaleCause as StaleCause
from rivers._core import Storage as Storage
from rivers._core import StoredEvent as StoredEvent
from rivers._core import StoredTick as StoredTick
from rivers._core import TagConcurrencyLimit as TagConcurrencyLimit
from rivers._definitions.asset import Asset as Asset
from rivers._definitions.asset import AssetDef as AssetDef
from rivers._definitions.asset import DepDef as DepDef
from rivers._definitions.asset import ExternalAsset as ExternalAsset
from rivers._definitions.asset import MultiAsset as MultiAsset
from rivers._definitions.asset import SingleAsset as SingleAsset
from rivers._definitions.automation import EvalMode as EvalMode
from rivers._definitions.automation import ScheduleEvaluationContext as ScheduleEvaluationContext
from rivers._definitions.automation import SensorEvaluationContext as SensorEvaluationContext
from rivers._definitions.composition import DynamicOutput as DynamicOutput
from rivers._definitions.composition import InvokedNodeOutput as InvokedNodeOutput
from rivers._definitions.executor import Executor as Executor
from rivers._definitions.graph import GraphAsset as GraphAsset
from rivers._definitions.hooks import Hook as Hook
from rivers._definitions.hooks import HookContext as HookContext
from rivers._definitions.metadata import MetadataValue as MetadataValue
from rivers._definitions.requests import BackfillRequest as BackfillRequest
from rivers._definitions.requests import RunRequest as RunRequest
from rivers._definitions.requests import ScheduleTickResult as ScheduleTickResult
from rivers._definitions.requests import SensorResult as SensorResult
from rivers._definitions.requests import SensorTickResult as SensorTickResult
from rivers._definitions.requests import SkipReason as SkipReason
from rivers._definitions.results import Materialization as Materialization
from rivers._definitions.results import Observation as Observation
from rivers._definitions.results import Output as Output
from rivers._definitions.retry import Backoff as Backoff
from rivers._definitions.retry import Compute as Compute
from rivers._definitions.retry import ComputeEscalation as ComputeEscalation
from rivers._definitions.retry import FailureReason as FailureReason
from rivers._definitions.retry import RetryOn as RetryOn
from rivers._definitions.retry import RetryPolicy as RetryPolicy
from rivers._definitions.schedules import Schedule as Schedule
from rivers._definitions.schedules import ScheduleStatus as ScheduleStatus
from rivers._definitions.schema import Schema as Schema
from rivers._definitions.sensors import Sensor as Sensor
from rivers._definitions.sensors import SensorStatus as SensorStatus
from rivers._definitions.task import BashTask as BashTask
from rivers._definitions.task import Task as Task
from rivers._execution.backfill import BackfillResult as BackfillResult
from rivers._execution.backfill import BackfillStatus as BackfillStatus
from rivers._execution.context import AssetExecutionContext as AssetExecutionContext
from rivers._execution.context import SelfDependency as SelfDependency
from rivers._execution.context import TaskExecutionContext as TaskExecutionContext
from rivers._execution.handles import RunHandle as RunHandle
from rivers._execution.handles import RunResult as RunResult
from rivers._execution.io_context import InputContext as InputContext
from rivers._execution.io_context import OutputContext as OutputContext
from rivers._execution.repository import CodeRepository as CodeRepository
from rivers._execution.repository import Job as Job
from rivers._storage.types import StorageType as StorageType

if TYPE_CHECKING:
    from rivers._definitions.resources import Resource as Resource
    from rivers.io_handlers.base import BaseIOHandler as BaseIOHandler
    from rivers.io_handlers.delta import DeltaIOHandler as DeltaIOHandler
    from rivers.io_handlers.memory import InMemoryIOHandler as InMemoryIOHandler
    from rivers.io_handlers.pickle import PickleIOHandler as PickleIOHandler

_LAZY = {
    "Resource": "rivers._definitions.resources",
    "BaseIOHandler": "rivers.io_handlers.base",
    "InMemoryIOHandler": "rivers.io_handlers.memory",
    "PickleIOHandler": "rivers.io_handlers.pickle",
}

# The Delta handler is exported only where `deltalake` is installed (`rivers[delta]`); finding
# the package does not import it.
_HAS_DELTALAKE = __import__("importlib.util", fromlist=["find_spec"]).find_spec("deltalake") is not None
if _HAS_DELTALAKE:
    _LAZY["DeltaIOHandler"] = "rivers.io_handlers.delta"


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rivers' has no attribute '{name}'")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__version__: str = __import__("rivers._core", fromlist=["__version__"]).__version__

# `rivers` log records (context.log included) flow into the native tracing subscriber.
__import__("rivers._execution.capture", fromlist=["install_tracing_bridge"]).install_tracing_bridge()

__all__ = [
    "Asset",
    "AssetDef",
    "AssetExecutionContext",
    "AssetRecord",
    "AutomationCondition",
    "Backoff",
    "BaseIOHandler",
    "BashTask",
    "CodeRepository",
    "Compute",
    "ComputeEscalation",
    "DepDef",
    "DynamicOutput",
    "Executor",
    "ExternalAsset",
    "FailureReason",
    "GraphAsset",
    "Hook",
    "InvokedNodeOutput",
    "HookContext",
    "InMemoryIOHandler",
    "InputContext",
    "Job",
    "LaunchedBy",
    "Materialization",
    "MetadataValue",
    "MultiAsset",
    "Observation",
    "Output",
    "OutputContext",
    "PickleIOHandler",
    "Resource",
    "RetryOn",
    "RetryPolicy",
    "RunHandle",
    "RunRecord",
    "RunResult",
    "Schema",
    "SelfDependency",
    "SingleAsset",
    "StaleCause",
    "Storage",
    "StorageType",
    "StoredEvent",
    "ConditionExplanation",
    "SimulatedRequest",
    "StoredTick",
    "TagConcurrencyLimit",
    "RunQueueConfig",
    "RunBackendConfig",
    "Task",
    "TaskExecutionContext",
    "exceptions",
    "PartitionContext",
    "PartitionKey",
    "PartitionKeyRange",
    "PartitionMapping",
    "PartitionsDefinition",
    "BackfillResult",
    "BackfillStatus",
    "BackfillStrategy",
    "BackfillRequest",
    "EvalMode",
    "RunRequest",
    "Schedule",
    "ScheduleEvaluationContext",
    "ScheduleStatus",
    "ScheduleTickResult",
    "Sensor",
    "SensorEvaluationContext",
    "SensorResult",
    "SensorStatus",
    "SensorTickResult",
    "SkipReason",
]
if _HAS_DELTALAKE:
    __all__.append("DeltaIOHandler")
