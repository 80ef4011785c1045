"""rivers: asset-graph data orchestration with a compiled Rust control plane.

``import rivers as rs``, decorate functions with ``@rs.Asset``, register them in an
``rs.CodeRepository`` and ``materialize()`` them.

Every public name is imported here from its defining module. Names built on pydantic-settings
(IO handlers, ``Resource``) are loaded on first access so that ``import rivers`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rivers import exceptions as exceptions
from rivers._asset import Asset as Asset
from rivers._asset import AssetDef as AssetDef
from rivers._asset import DepDef as DepDef
from rivers._asset import ExternalAsset as ExternalAsset
from rivers._asset import GraphAsset as GraphAsset
from rivers._asset import MultiAsset as MultiAsset
from rivers._asset import SingleAsset as SingleAsset
from rivers._context import AssetExecutionContext as AssetExecutionContext
from rivers._context import SelfDependency as SelfDependency
from rivers._core import AssetRecord as AssetRecord
from rivers._core import LaunchedBy as LaunchedBy
from rivers._core import RunRecord as RunRecord
from rivers._core import StaleCause as StaleCause
from rivers._core import Storage as Storage
from rivers._core import StoredEvent as StoredEvent
from rivers._core import StoredTick as StoredTick
from rivers._executor import Executor as Executor
from rivers._handles import RunHandle as RunHandle
from rivers._handles import RunResult as RunResult
from rivers._hooks import Hook as Hook
from rivers._hooks import HookContext as HookContext
from rivers._io_context import InputContext as InputContext
from rivers._io_context import OutputContext as OutputContext
from rivers._metadata import MetadataValue as MetadataValue
from rivers._repository import CodeRepository as CodeRepository
from rivers._repository import Job as Job
from rivers._results import Materialization as Materialization
from rivers._results import Observation as Observation
from rivers._results import Output as Output
from rivers._retry import Backoff as Backoff
from rivers._retry import Compute as Compute
from rivers._retry import ComputeEscalation as ComputeEscalation
from rivers._retry import FailureReason as FailureReason
from rivers._retry import RetryOn as RetryOn
from rivers._retry import RetryPolicy as RetryPolicy
from rivers._schema import Schema as Schema
from rivers._storage_type import StorageType as StorageType

if TYPE_CHECKING:
    from rivers._resources import Resource as Resource
    from rivers.io_handlers.base import BaseIOHandler as BaseIOHandler
    from rivers.io_handlers.memory import InMemoryIOHandler as InMemoryIOHandler
    from rivers.io_handlers.pickle import PickleIOHandler as PickleIOHandler

_LAZY = {
    "Resource": "rivers._resources",
    "BaseIOHandler": "rivers.io_handlers.base",
    "InMemoryIOHandler": "rivers.io_handlers.memory",
    "PickleIOHandler": "rivers.io_handlers.pickle",
}


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
__import__("rivers._capture", fromlist=["install_tracing_bridge"]).install_tracing_bridge()

__all__ = [
    "Asset",
    "AssetDef",
    "AssetExecutionContext",
    "AssetRecord",
    "Backoff",
    "BaseIOHandler",
    "CodeRepository",
    "Compute",
    "ComputeEscalation",
    "DepDef",
    "Executor",
    "ExternalAsset",
    "FailureReason",
    "GraphAsset",
    "Hook",
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
    "StoredTick",
    "exceptions",
]
