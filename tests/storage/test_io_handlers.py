"""storage-and-io.md IO handlers: ``BaseIOHandler``, ``OutputContext`` / ``InputContext``,
``InMemoryIOHandler`` and ``PickleIOHandler``."""

import importlib
import pickle
import sys
import threading

import obstore
import pydantic
import pytest
from obstore.store import LocalStore, MemoryStore
from pydantic_settings import BaseSettings

import rivers as rs
from rivers.exceptions import InvalidMetadataError


def _stored_keys(store) -> list[str]:
    return sorted(meta["path"] for meta in obstore.list(store).collect())


def _stored_bytes(store, key: str) -> bytes:
    return bytes(obstore.get(store, key).bytes())


# --- BaseIOHandler ---------------------------------------------------------------------------


def test_base_io_handler_is_a_pydantic_settings_model():
    assert issubclass(rs.BaseIOHandler, BaseSettings)


def test_subclass_missing_load_input_cannot_be_instantiated():
    class WriteOnly(rs.BaseIOHandler):
        def handle_output(self, context, obj):
            return None

    with pytest.raises(TypeError):
        WriteOnly()


def test_subclass_missing_handle_output_cannot_be_instantiated():
    class ReadOnly(rs.BaseIOHandler):
        def load_input(self, context):
            return None

    with pytest.raises(TypeError):
        ReadOnly()


def test_base_io_handler_itself_cannot_be_instantiated():
    with pytest.raises(TypeError):
        rs.BaseIOHandler()


class JsonRootHandler(rs.BaseIOHandler):
    rivers_test_lake_root: str
    rivers_test_compression: str = "none"

    def handle_output(self, context, obj):
        return None

    def load_input(self, context):
        return None


def test_handler_fields_are_read_from_environment_case_insensitively(monkeypatch):
    monkeypatch.setenv("RIVERS_TEST_LAKE_ROOT", "/tmp/lake")
    monkeypatch.setenv("rivers_test_compression", "zstd")

    handler = JsonRootHandler()

    assert handler.rivers_test_lake_root == "/tmp/lake"
    assert handler.rivers_test_compression == "zstd"


def test_explicit_handler_kwargs_beat_the_environment(monkeypatch):
    monkeypatch.setenv("RIVERS_TEST_LAKE_ROOT", "/tmp/lake")

    assert JsonRootHandler(rivers_test_lake_root="/srv/lake").rivers_test_lake_root == "/srv/lake"


def test_missing_required_handler_field_is_a_validation_error(monkeypatch):
    monkeypatch.delenv("RIVERS_TEST_LAKE_ROOT", raising=False)

    with pytest.raises(pydantic.ValidationError):
        JsonRootHandler()


def test_io_handlers_module_exports_the_handlers():
    module = importlib.import_module("rivers.io_handlers")

    for name in ("BaseIOHandler", "InMemoryIOHandler", "PickleIOHandler"):
        assert name in module.__all__
        assert getattr(module, name) is getattr(rs, name)
    assert importlib.import_module("rivers.io_handlers.base").BaseIOHandler is rs.BaseIOHandler
    assert importlib.import_module("rivers.io_handlers.memory").InMemoryIOHandler is rs.InMemoryIOHandler
    assert importlib.import_module("rivers.io_handlers.pickle").PickleIOHandler is rs.PickleIOHandler


# --- OutputContext / InputContext ------------------------------------------------------------


def test_output_context_defaults():
    ctx = rs.OutputContext("orders")

    assert ctx.asset_name == "orders"
    assert ctx.asset_metadata is None
    assert ctx.partition is None
    assert ctx.type_hint is None
    assert ctx.output_metadata is None


def test_output_context_keeps_given_arguments():
    ctx = rs.OutputContext(asset_name="orders", asset_metadata={"delta/mode": "append"}, type_hint=list)

    assert ctx.asset_metadata == {"delta/mode": "append"}
    assert ctx.type_hint is list


def test_output_context_coerces_added_metadata():
    ctx = rs.OutputContext("orders")
    ctx.add_output_metadata({"n": 3, "ok": True, "s": "x", "none": None, "ratio": 0.5})

    metadata = ctx.output_metadata
    assert type(metadata["n"]) is rs.MetadataValue.Int
    assert type(metadata["ok"]) is rs.MetadataValue.Bool
    assert type(metadata["s"]) is rs.MetadataValue.Text
    assert type(metadata["none"]) is rs.MetadataValue.Null
    assert type(metadata["ratio"]) is rs.MetadataValue.Float


def test_output_context_later_metadata_replaces_earlier_keys():
    ctx = rs.OutputContext("orders")
    ctx.add_output_metadata({"path": "a", "rows": 1})
    ctx.add_output_metadata({"path": "b"})

    assert ctx.output_metadata["path"].raw_value() == "b"
    assert ctx.output_metadata["rows"].raw_value() == 1


def test_output_context_rejects_unencodable_metadata():
    with pytest.raises(InvalidMetadataError):
        rs.OutputContext("orders").add_output_metadata({"rows": [1, 2]})


def test_output_context_data_version_drains_once():
    ctx = rs.OutputContext("orders")
    ctx.register_data_version("v0")
    ctx.register_data_version("v1")

    assert ctx.drain_data_version() == "v1"
    assert ctx.drain_data_version() is None


def test_input_context_defaults_and_arguments():
    ctx = rs.InputContext("orders", "report")

    assert ctx.asset_name == "orders"
    assert ctx.downstream_asset == "report"
    assert ctx.asset_metadata is None
    assert ctx.partition is None
    assert ctx.type_hint is None

    typed = rs.InputContext(asset_name="orders", downstream_asset="report", asset_metadata={"k": "v"}, type_hint=dict)
    assert (typed.asset_metadata, typed.type_hint) == ({"k": "v"}, dict)


# --- InMemoryIOHandler -----------------------------------------------------------------------


def test_in_memory_handler_round_trips_the_same_object():
    handler = rs.InMemoryIOHandler()
    value = {"rows": [1, 2, 3]}
    ctx = rs.OutputContext("orders")

    handler.handle_output(ctx, value)

    assert handler.load_input(rs.InputContext("orders", "report")) is value


def test_in_memory_handler_adds_storage_and_size_metadata():
    handler = rs.InMemoryIOHandler()
    value = [1, 2, 3]
    ctx = rs.OutputContext("orders")

    handler.handle_output(ctx, value)

    metadata = ctx.output_metadata
    assert set(metadata) == {"storage", "size_bytes"}
    assert metadata["storage"].raw_value() == "memory"
    assert type(metadata["size_bytes"]) is rs.MetadataValue.Int
    assert metadata["size_bytes"].raw_value() == sys.getsizeof(value)


def test_in_memory_handler_missing_key_raises_key_error():
    with pytest.raises(KeyError):
        rs.InMemoryIOHandler().load_input(rs.InputContext("never_written", "report"))


def test_in_memory_handler_instances_are_isolated():
    first = rs.InMemoryIOHandler()
    second = rs.InMemoryIOHandler()
    first.handle_output(rs.OutputContext("orders"), [1])

    with pytest.raises(KeyError):
        second.load_input(rs.InputContext("orders", "report"))


def test_in_memory_handler_overwrites_by_asset_name():
    handler = rs.InMemoryIOHandler()
    handler.handle_output(rs.OutputContext("orders"), "old")
    handler.handle_output(rs.OutputContext("orders"), "new")
    handler.handle_output(rs.OutputContext("customers"), "other")

    assert handler.load_input(rs.InputContext("orders", "x")) == "new"
    assert handler.load_input(rs.InputContext("customers", "x")) == "other"


def test_in_memory_handler_is_a_base_io_handler_without_fields():
    handler = rs.InMemoryIOHandler()

    assert isinstance(handler, rs.BaseIOHandler)
    assert type(handler).model_fields == {}


# --- PickleIOHandler -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "asset_name", "expected_key"),
    [
        ("", "readings", "readings.pkl"),
        ("v2", "readings", "v2/readings.pkl"),
        ("", "cleanup/dedupe", "cleanup/dedupe.pkl"),
        ("snap", "cleanup/dedupe", "snap/cleanup/dedupe.pkl"),
    ],
)
def test_pickle_handler_key_layout(prefix, asset_name, expected_key):
    bucket = MemoryStore()
    handler = rs.PickleIOHandler(store=bucket, prefix=prefix)
    ctx = rs.OutputContext(asset_name)

    handler.handle_output(ctx, {"celsius": 4.5})

    assert _stored_keys(bucket) == [expected_key]
    assert pickle.loads(_stored_bytes(bucket, expected_key)) == {"celsius": 4.5}
    assert ctx.output_metadata["path"].raw_value() == expected_key


def test_pickle_handler_prefix_defaults_to_empty():
    handler = rs.PickleIOHandler(store=MemoryStore())

    assert handler.prefix == ""


def test_pickle_handler_store_is_required():
    with pytest.raises(pydantic.ValidationError):
        rs.PickleIOHandler()


def test_pickle_handler_output_metadata_keys_and_values():
    bucket = MemoryStore()
    handler = rs.PickleIOHandler(store=bucket)
    ctx = rs.OutputContext("readings")

    handler.handle_output(ctx, list(range(100)))

    metadata = ctx.output_metadata
    assert set(metadata) == {"path", "serializer", "size_bytes", "write_duration_s"}
    assert metadata["path"].raw_value() == "readings.pkl"
    assert metadata["serializer"].raw_value() == "pickle"
    assert metadata["size_bytes"].raw_value() == len(_stored_bytes(bucket, "readings.pkl"))
    duration = metadata["write_duration_s"].raw_value()
    assert isinstance(duration, float)
    assert duration >= 0.0
    assert round(duration, 6) == duration


def test_pickle_handler_round_trip_and_cross_instance_reads():
    bucket = MemoryStore()
    writer = rs.PickleIOHandler(store=bucket, prefix="shared")
    reader = rs.PickleIOHandler(store=bucket, prefix="shared")

    writer.handle_output(rs.OutputContext("catalog"), {"items": 3})

    assert writer.load_input(rs.InputContext("catalog", "report")) == {"items": 3}
    assert reader.load_input(rs.InputContext("catalog", "report")) == {"items": 3}


def test_pickle_handler_overwrites_existing_objects():
    bucket = MemoryStore()
    handler = rs.PickleIOHandler(store=bucket)
    handler.handle_output(rs.OutputContext("catalog"), "old")
    handler.handle_output(rs.OutputContext("catalog"), "new")

    assert handler.load_input(rs.InputContext("catalog", "report")) == "new"
    assert _stored_keys(bucket) == ["catalog.pkl"]


def test_pickle_handler_missing_object_raises_file_not_found():
    handler = rs.PickleIOHandler(store=MemoryStore())

    with pytest.raises(FileNotFoundError):
        handler.load_input(rs.InputContext("never_written", "report"))


def test_pickle_handler_with_local_store_writes_files(tmp_path):
    handler = rs.PickleIOHandler(store=LocalStore(prefix=str(tmp_path)), prefix="v1")

    handler.handle_output(rs.OutputContext("readings"), [1.5, 2.5])

    target = tmp_path / "v1" / "readings.pkl"
    assert target.is_file()
    assert pickle.loads(target.read_bytes()) == [1.5, 2.5]
    assert handler.load_input(rs.InputContext("readings", "report")) == [1.5, 2.5]


def test_pickle_handler_raises_at_write_time_for_unpicklable_values():
    bucket = MemoryStore()
    handler = rs.PickleIOHandler(store=bucket)

    with pytest.raises((pickle.PicklingError, TypeError, AttributeError)):
        handler.handle_output(rs.OutputContext("locked"), threading.Lock())
    assert _stored_keys(bucket) == []


def test_pickle_handler_end_to_end_with_materialize(make_repo, store, run_materializations):
    bucket = MemoryStore()
    handler = rs.PickleIOHandler(store=bucket, prefix="runs")

    @rs.Asset(io_handler=handler)
    def pickled_orders():
        return [{"id": 1}, {"id": 2}]

    @rs.Asset(io_handler=handler)
    def order_count(pickled_orders):
        return len(pickled_orders)

    repo = make_repo([pickled_orders, order_count], storage=store)
    result = repo.materialize()

    assert _stored_keys(bucket) == ["runs/order_count.pkl", "runs/pickled_orders.pkl"]
    assert repo.load_node("order_count") == 2
    metadata = dict(run_materializations(store, result.run_id)["pickled_orders"].metadata)
    assert metadata["path"] == "runs/pickled_orders.pkl"
    assert metadata["serializer"] == "pickle"
    assert int(metadata["size_bytes"]) == len(_stored_bytes(bucket, "runs/pickled_orders.pkl"))
    assert set(metadata) >= {"path", "serializer", "size_bytes", "write_duration_s"}
