"""assets.md section 17 and Appendix A: the ``rivers.exceptions`` module and ``rivers.__all__``."""

import importlib
import importlib.util

import pytest

import rivers
import rivers as rs

EXCEPTION_NAMES = [
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

# Top-level names whose specification belongs to the first build stage (README "Build order").
MILESTONE_NAMES = [
    "exceptions",
    "Asset",
    "AssetDef",
    "AssetExecutionContext",
    "DepDef",
    "SingleAsset",
    "SelfDependency",
    "Output",
    "Materialization",
    "MetadataValue",
    "Schema",
    "OutputContext",
    "InputContext",
    "Resource",
    "CodeRepository",
    "RunResult",
    "Job",
    "Executor",
    "RetryPolicy",
    "Backoff",
    "RetryOn",
    "FailureReason",
    "Compute",
    "Hook",
    "HookContext",
    "Storage",
    "StorageType",
    "StoredEvent",
    "StoredTick",
    "StaleCause",
    "AssetRecord",
    "RunRecord",
    "LaunchedBy",
    "BaseIOHandler",
    "InMemoryIOHandler",
    "PickleIOHandler",
]


def test_exceptions_module_is_reachable_both_ways():
    module = importlib.import_module("rivers.exceptions")

    assert rs.exceptions is module


def test_exceptions_module_exports_all_sixteen_classes():
    assert len(EXCEPTION_NAMES) == 16
    for name in EXCEPTION_NAMES:
        cls = getattr(rs.exceptions, name)
        assert isinstance(cls, type), name
        assert issubclass(cls, Exception), name


@pytest.mark.parametrize("name", [n for n in EXCEPTION_NAMES if n != "SchemaMigrationNeededError"])
def test_exception_classes_derive_directly_from_exception(name):
    assert getattr(rs.exceptions, name).__bases__ == (Exception,)


def test_schema_migration_needed_error_derives_from_storage_error():
    cls = rs.exceptions.SchemaMigrationNeededError

    assert cls.__bases__ == (rs.exceptions.StorageError,)
    assert issubclass(cls, Exception)


@pytest.mark.parametrize("name", EXCEPTION_NAMES)
def test_exception_classes_are_not_top_level_names(name):
    assert name not in rivers.__all__
    assert not hasattr(rivers, name)


def test_exception_classes_can_be_raised_and_caught_with_a_message():
    with pytest.raises(rs.exceptions.StorageError, match="disk full"):
        raise rs.exceptions.SchemaMigrationNeededError("disk full")


def test_all_contains_the_milestone_names():
    missing = [name for name in MILESTONE_NAMES if name not in rivers.__all__]
    assert missing == []


def test_every_name_in_all_is_an_attribute():
    absent = [name for name in rivers.__all__ if not hasattr(rivers, name)]
    assert absent == []


def test_all_has_no_duplicates():
    assert len(rivers.__all__) == len(set(rivers.__all__))


def test_delta_io_handler_is_exported_only_with_deltalake():
    has_deltalake = importlib.util.find_spec("deltalake") is not None

    assert ("DeltaIOHandler" in rivers.__all__) is has_deltalake


def test_single_asset_is_an_asset_subclass():
    assert issubclass(rs.SingleAsset, rs.Asset)
