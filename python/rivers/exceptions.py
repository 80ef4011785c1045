"""Exceptions raised by rivers.

Every class derives directly from :class:`Exception`, except
:class:`SchemaMigrationNeededError`, which derives from :class:`StorageError`. The classes are
created by the native module so that Rust errors raise them directly.
"""

from rivers._core import AssetDefinitionError as AssetDefinitionError
from rivers._core import AssetNotFoundError as AssetNotFoundError
from rivers._core import AssetOutputValidationError as AssetOutputValidationError
from rivers._core import ConfigurationError as ConfigurationError
from rivers._core import ExecutionError as ExecutionError
from rivers._core import GraphValidationError as GraphValidationError
from rivers._core import InvalidMetadataError as InvalidMetadataError
from rivers._core import NodeNotFoundError as NodeNotFoundError
from rivers._core import PartitionDefinitionError as PartitionDefinitionError
from rivers._core import PartitionValidationError as PartitionValidationError
from rivers._core import ResultDefinitionError as ResultDefinitionError
from rivers._core import ScheduleDefinitionError as ScheduleDefinitionError
from rivers._core import SchemaMigrationNeededError as SchemaMigrationNeededError
from rivers._core import SensorDefinitionError as SensorDefinitionError
from rivers._core import StorageError as StorageError
from rivers._core import TaskDefinitionError as TaskDefinitionError

__all__ = [
    "AssetDefinitionError",
    "AssetNotFoundError",
    "AssetOutputValidationError",
    "ConfigurationError",
    "ExecutionError",
    "GraphValidationError",
    "InvalidMetadataError",
    "NodeNotFoundError",
    "PartitionDefinitionError",
    "PartitionValidationError",
    "ResultDefinitionError",
    "ScheduleDefinitionError",
    "SchemaMigrationNeededError",
    "SensorDefinitionError",
    "StorageError",
    "TaskDefinitionError",
]
