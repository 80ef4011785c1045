"""``DeltaIOHandler``: table location, write modes, schema modes, ``delta/*`` metadata keys,
output metadata, reads with projection and time travel, and type dispatch (R57-R59, R61, R63)."""

from __future__ import annotations

import glob
import json
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pydantic
import pytest
from deltalake import CommitProperties, DeltaTable, WriterProperties
from deltalake.exceptions import DeltaError

import rivers as rs
from rivers.io_handlers.delta import DeltaIOHandler, MergeConfig
from rivers.io_handlers.delta.base import ArrowDeltaTypeHandler, scan_table
from rivers.io_handlers.delta.datafusion import DataFusionTypeHandler
from rivers.io_handlers.delta.pandas import PandasTypeHandler
from rivers.io_handlers.delta.polars import PolarsTypeHandler
from rivers.io_handlers.delta.pyarrow import PyArrowTypeHandler

from .conftest import load, table_rows, write


def orders(*ids: int, region: str = "north") -> pa.Table:
    return pa.table({"id": list(ids), "region": [region] * len(ids), "amount": [float(i) * 10 for i in ids]})


# --- construction ------------------------------------------------------------------------------


def test_handler_is_a_base_io_handler_with_spec_defaults(lake):
    handler = DeltaIOHandler(table_uri=lake)

    assert isinstance(handler, rs.BaseIOHandler)
    assert handler.mode == "overwrite"
    assert handler.schema_mode is None
    assert handler.storage_options is None
    assert handler.writer_properties is None
    assert handler.commit_properties is None
    assert handler.table_config is None
    assert handler.merge_config is None
    assert handler.handler_config is None


def test_invalid_mode_is_a_validation_error(lake):
    with pytest.raises(pydantic.ValidationError, match="mode"):
        DeltaIOHandler(table_uri=lake, mode="upsert")
    with pytest.raises(pydantic.ValidationError, match="schema_mode"):
        DeltaIOHandler(table_uri=lake, schema_mode="replace")


def test_table_uri_is_required(monkeypatch):
    monkeypatch.delenv("TABLE_URI", raising=False)

    with pytest.raises(pydantic.ValidationError, match="table_uri"):
        DeltaIOHandler()


def test_fields_never_come_from_the_environment(monkeypatch, lake):
    # A built-in handler reads its arguments and defaults only (docs/getting-started.md).
    monkeypatch.setenv("TABLE_URI", lake)
    monkeypatch.setenv("MODE", "append")

    with pytest.raises(pydantic.ValidationError, match="table_uri"):
        DeltaIOHandler()
    assert DeltaIOHandler(table_uri=lake).mode == "overwrite"


def test_unknown_handler_config_key_is_rejected(lake):
    with pytest.raises(pydantic.ValidationError, match="spark_session"):
        DeltaIOHandler(table_uri=lake, handler_config={"session": object()})


# --- table location (R57) ----------------------------------------------------------------------


def test_asset_is_written_to_table_uri_slash_asset_name(handler, lake):
    metadata = write(handler, "orders", orders(1, 2))

    assert metadata["delta/table_uri"] == f"{lake}/orders"
    assert DeltaTable.is_deltatable(f"{lake}/orders")
    assert [r["id"] for r in table_rows(f"{lake}/orders")] == [1, 2]


def test_root_name_metadata_replaces_the_asset_name(handler, lake):
    metadata = write(handler, "orders", orders(1), {"delta/root_name": "sales_orders"})

    assert metadata["delta/table_uri"] == f"{lake}/sales_orders"
    assert DeltaTable.is_deltatable(f"{lake}/sales_orders")
    assert not os.path.exists(f"{lake}/orders")
    loaded = load(handler, "orders", pa.Table, {"delta/root_name": "sales_orders"})
    assert loaded.column("id").to_pylist() == [1]


def test_graph_task_tables_nest_under_the_graph_name(handler, lake):
    write(handler, "etl/clean", orders(3))

    assert DeltaTable.is_deltatable(f"{lake}/etl/clean")


def test_trailing_slash_of_table_uri_is_not_doubled(lake):
    metadata = write(DeltaIOHandler(table_uri=lake + "/"), "orders", orders(1))

    assert metadata["delta/table_uri"] == f"{lake}/orders"


# --- output metadata (R59) -------------------------------------------------------------------


def test_write_adds_every_documented_metadata_key(lake):
    handler = DeltaIOHandler(table_uri=lake)
    ctx = rs.OutputContext("orders")

    handler.handle_output(ctx, orders(1, 2, 3))

    metadata = ctx.output_metadata
    assert set(metadata) == {
        "delta/table_uri",
        "delta/mode",
        "delta/num_rows",
        "delta/size_bytes",
        "delta/write_duration_s",
        "delta/version",
        "rivers/schema",
    }
    assert type(metadata["delta/table_uri"]) is rs.MetadataValue.Text
    assert metadata["delta/mode"].raw_value() == "overwrite"
    assert type(metadata["delta/num_rows"]) is rs.MetadataValue.Int
    assert metadata["delta/num_rows"].raw_value() == 3
    active = DeltaTable(f"{lake}/orders").get_add_actions(flatten=True).column("size_bytes").to_pylist()
    assert metadata["delta/size_bytes"].raw_value() == sum(active) > 0
    assert type(metadata["delta/write_duration_s"]) is rs.MetadataValue.Float
    duration = metadata["delta/write_duration_s"].raw_value()
    assert duration >= 0 and round(duration, 6) == duration
    assert type(metadata["delta/version"]) is rs.MetadataValue.Int
    assert type(metadata["rivers/schema"]) is rs.MetadataValue.Schema
    assert metadata["rivers/schema"].raw_value().names == ["id", "region", "amount"]


def test_two_overwrites_yield_versions_zero_then_one(handler):
    first = write(handler, "orders", orders(1, 2))
    second = write(handler, "orders", orders(3))

    assert (first["delta/version"], second["delta/version"]) == (0, 1)
    assert second["delta/num_rows"] == 1


def test_metadata_added_by_the_asset_body_is_kept(handler):
    ctx = rs.OutputContext("orders")
    ctx.add_output_metadata({"owner": "sales"})

    handler.handle_output(ctx, orders(1))

    assert ctx.output_metadata["owner"].raw_value() == "sales"
    assert "delta/version" in ctx.output_metadata


# --- write modes (R61) -------------------------------------------------------------------------


def test_overwrite_replaces_the_table(handler, lake):
    write(handler, "orders", orders(1, 2))
    write(handler, "orders", orders(3))

    assert [r["id"] for r in table_rows(f"{lake}/orders")] == [3]


def test_append_twice_gives_the_union_of_rows(lake):
    handler = DeltaIOHandler(table_uri=lake, mode="append")

    write(handler, "orders", orders(1, 2))
    metadata = write(handler, "orders", orders(3))

    assert [r["id"] for r in table_rows(f"{lake}/orders")] == [1, 2, 3]
    assert (metadata["delta/mode"], metadata["delta/num_rows"], metadata["delta/version"]) == ("append", 3, 1)


def test_ignore_on_an_existing_table_leaves_it_unchanged(lake):
    write(DeltaIOHandler(table_uri=lake), "orders", orders(1))

    metadata = write(DeltaIOHandler(table_uri=lake, mode="ignore"), "orders", orders(7, 8))

    assert [r["id"] for r in table_rows(f"{lake}/orders")] == [1]
    assert (metadata["delta/mode"], metadata["delta/version"], metadata["delta/num_rows"]) == ("ignore", 0, 1)


def test_ignore_creates_a_missing_table(lake):
    write(DeltaIOHandler(table_uri=lake, mode="ignore"), "orders", orders(5))

    assert [r["id"] for r in table_rows(f"{lake}/orders")] == [5]


def test_error_mode_fails_on_an_existing_table(lake):
    handler = DeltaIOHandler(table_uri=lake, mode="error")
    write(handler, "orders", orders(1))

    with pytest.raises(DeltaError, match="already exists"):
        write(handler, "orders", orders(2))
    assert [r["id"] for r in table_rows(f"{lake}/orders")] == [1]


def test_create_or_replace_recreates_schema_partitioning_and_config(lake):
    write(
        DeltaIOHandler(table_uri=lake, table_config={"delta.appendOnly": "false"}),
        "orders",
        orders(1, 2),
    )

    handler = DeltaIOHandler(
        table_uri=lake, mode="create_or_replace", table_config={"delta.enableChangeDataFeed": "true"}
    )
    metadata = write(handler, "orders", pa.table({"sku": ["a", "b"], "qty": [1, 2]}))

    table = DeltaTable(f"{lake}/orders")
    assert table.schema().to_arrow().names == ["sku", "qty"]
    assert table_rows(f"{lake}/orders") == [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}]
    assert table.metadata().configuration == {"delta.enableChangeDataFeed": "true"}
    assert metadata["delta/mode"] == "create_or_replace"
    assert metadata["delta/num_rows"] == 2
    assert metadata["rivers/schema"].names == ["sku", "qty"]


def test_delta_mode_metadata_overrides_the_handler_mode(handler, lake):
    write(handler, "orders", orders(1))

    metadata = write(handler, "orders", orders(2), {"delta/mode": "append"})

    assert metadata["delta/mode"] == "append"
    assert [r["id"] for r in table_rows(f"{lake}/orders")] == [1, 2]


def test_unknown_delta_mode_metadata_is_a_value_error(handler, lake):
    with pytest.raises(ValueError, match=r"'delta/mode' is 'upsert'; expected one of overwrite, append"):
        write(handler, "orders", orders(1), {"delta/mode": "upsert"})
    assert not os.path.exists(f"{lake}/orders")


# --- schema modes ----------------------------------------------------------------------------


def test_appending_a_new_column_without_schema_mode_fails(handler):
    write(handler, "orders", orders(1))

    with pytest.raises(DeltaError):
        write(handler, "orders", orders(2).append_column("note", pa.array(["x"])), {"delta/mode": "append"})


def test_schema_mode_merge_adds_new_columns(lake):
    write(DeltaIOHandler(table_uri=lake), "orders", orders(1))
    handler = DeltaIOHandler(table_uri=lake, mode="append", schema_mode="merge")

    metadata = write(handler, "orders", orders(2).append_column("note", pa.array(["late"])))

    assert metadata["rivers/schema"].names == ["id", "region", "amount", "note"]
    assert [(r["id"], r["note"]) for r in table_rows(f"{lake}/orders")] == [(1, None), (2, "late")]


def test_schema_mode_overwrite_replaces_the_schema(lake):
    write(DeltaIOHandler(table_uri=lake), "orders", orders(1))

    write(DeltaIOHandler(table_uri=lake, schema_mode="overwrite"), "orders", pa.table({"sku": ["a"]}))

    assert DeltaTable(f"{lake}/orders").schema().to_arrow().names == ["sku"]


def test_schema_mode_metadata_overrides_the_handler(lake):
    handler = DeltaIOHandler(table_uri=lake, mode="append")
    write(handler, "orders", orders(1))

    write(handler, "orders", orders(2).append_column("note", pa.array(["x"])), {"delta/schema_mode": "merge"})

    assert "note" in DeltaTable(f"{lake}/orders").schema().to_arrow().names


def test_unknown_schema_mode_metadata_is_a_value_error(handler):
    with pytest.raises(ValueError, match="'delta/schema_mode' is 'evolve'; expected one of overwrite, merge"):
        write(handler, "orders", orders(1), {"delta/schema_mode": "evolve"})


# --- table properties, writer and commit properties ----------------------------------------------


def test_table_config_sets_table_properties_on_creation(lake):
    handler = DeltaIOHandler(table_uri=lake, table_config={"delta.enableChangeDataFeed": "true"})

    write(handler, "orders", orders(1))

    assert DeltaTable(f"{lake}/orders").metadata().configuration == {"delta.enableChangeDataFeed": "true"}


def test_table_configuration_metadata_is_merged_over_table_config(lake):
    handler = DeltaIOHandler(
        table_uri=lake, table_config={"delta.enableChangeDataFeed": "true", "delta.appendOnly": "false"}
    )

    write(handler, "orders", orders(1), {"delta/table_configuration": '{"delta.appendOnly": "true"}'})

    assert DeltaTable(f"{lake}/orders").metadata().configuration == {
        "delta.enableChangeDataFeed": "true",
        "delta.appendOnly": "true",
    }


def test_table_config_is_applied_to_an_existing_table(handler, lake):
    write(handler, "orders", orders(1))

    configured = DeltaIOHandler(table_uri=lake, table_config={"delta.enableChangeDataFeed": "true"})
    write(configured, "orders", orders(2))
    metadata = write(configured, "orders", orders(3))

    assert DeltaTable(f"{lake}/orders").metadata().configuration == {"delta.enableChangeDataFeed": "true"}
    # One extra commit sets the property; once it matches, writes add no further commit.
    assert metadata["delta/version"] == 3


@pytest.mark.parametrize(
    "raw", ['["delta.appendOnly"]', "not json", '{"delta.appendOnly": true}'], ids=["list", "text", "bool"]
)
def test_invalid_table_configuration_metadata_is_a_value_error(handler, raw):
    with pytest.raises(ValueError, match="delta/table_configuration"):
        write(handler, "orders", orders(1), {"delta/table_configuration": raw})


def _compression(table_dir: str) -> str:
    files = glob.glob(os.path.join(table_dir, "*.parquet"))
    return pq.ParquetFile(files[0]).metadata.row_group(0).column(0).compression


def test_writer_properties_reach_the_parquet_writer(lake):
    handler = DeltaIOHandler(table_uri=lake, writer_properties=WriterProperties(compression="GZIP"))

    write(handler, "orders", orders(1))

    assert _compression(f"{lake}/orders") == "GZIP"


def test_writer_properties_metadata_replaces_the_handler_setting(lake):
    handler = DeltaIOHandler(table_uri=lake, writer_properties=WriterProperties(compression="GZIP"))

    write(handler, "orders", orders(1), {"delta/writer_properties": '{"compression": "ZSTD"}'})

    assert _compression(f"{lake}/orders") == "ZSTD"


def test_bad_writer_properties_metadata_is_a_value_error(handler):
    with pytest.raises(ValueError, match="'delta/writer_properties' does not build WriterProperties"):
        write(handler, "orders", orders(1), {"delta/writer_properties": '{"codec": "ZSTD"}'})


def test_commit_properties_are_recorded_in_the_commit(lake):
    handler = DeltaIOHandler(table_uri=lake, commit_properties=CommitProperties(custom_metadata={"run": "r-1"}))

    write(handler, "orders", orders(1))

    assert DeltaTable(f"{lake}/orders").history(1)[0]["run"] == "r-1"


def test_commit_properties_metadata_replaces_the_handler_setting(lake):
    handler = DeltaIOHandler(table_uri=lake, commit_properties=CommitProperties(custom_metadata={"run": "r-1"}))

    write(handler, "orders", orders(1), {"delta/commit_properties": '{"custom_metadata": {"run": "r-2"}}'})

    assert DeltaTable(f"{lake}/orders").history(1)[0]["run"] == "r-2"


def test_storage_options_are_passed_to_deltalake_for_writes_and_reads(lake, monkeypatch):
    import deltalake

    seen: list[tuple[str, object]] = []
    real_write = deltalake.write_deltalake

    def spy_write(uri, data, **kwargs):
        seen.append(("write", kwargs.get("storage_options")))
        return real_write(uri, data, **kwargs)

    class SpyTable(deltalake.DeltaTable):
        def __init__(self, uri, version=None, storage_options=None, **kwargs):
            seen.append(("open", storage_options))
            super().__init__(uri, version=version, storage_options=storage_options, **kwargs)

    monkeypatch.setattr(deltalake, "write_deltalake", spy_write)
    monkeypatch.setattr(deltalake, "DeltaTable", SpyTable)
    options = {"timeout": "30s"}
    handler = DeltaIOHandler(table_uri=lake, storage_options=options)

    write(handler, "orders", orders(1))
    load(handler, "orders", pa.Table)

    assert ("write", options) in seen
    assert [o for kind, o in seen if kind == "open"] == [options] * len([k for k, _ in seen if k == "open"])
    assert len(seen) >= 3


# --- reads (R63) ---------------------------------------------------------------------------------


def test_columns_metadata_projects_the_read(handler):
    write(handler, "orders", orders(1, 2))

    loaded = load(handler, "orders", pa.Table, {"delta/columns": '["amount", "id"]'})

    assert loaded.column_names == ["amount", "id"]


def test_version_metadata_reads_an_earlier_version(handler):
    write(handler, "orders", orders(1, 2))
    write(handler, "orders", orders(3))

    first = load(handler, "orders", pa.Table, {"delta/version": "0"})
    latest = load(handler, "orders", pa.Table)

    assert sorted(first.column("id").to_pylist()) == [1, 2]
    assert latest.column("id").to_pylist() == [3]


def test_unknown_projected_column_is_a_value_error(handler):
    write(handler, "orders", orders(1))

    with pytest.raises(ValueError, match=r"\['sku'\]"):
        load(handler, "orders", pa.Table, {"delta/columns": '["sku"]'})


@pytest.mark.parametrize("raw", ["amount", '{"a": 1}', "[1]"])
def test_columns_metadata_must_be_a_json_list_of_names(handler, raw):
    write(handler, "orders", orders(1))

    with pytest.raises(ValueError, match="'delta/columns' must be a JSON list"):
        load(handler, "orders", pa.Table, {"delta/columns": raw})


def test_version_metadata_must_be_an_integer(handler):
    write(handler, "orders", orders(1))

    with pytest.raises(ValueError, match="'delta/version' must be an integer"):
        load(handler, "orders", pa.Table, {"delta/version": "latest"})


def test_reading_a_missing_table_raises_deltalakes_not_found(handler):
    from deltalake.exceptions import TableNotFoundError

    with pytest.raises(TableNotFoundError):
        load(handler, "never_written", pa.Table)


# --- type dispatch (R58) -----------------------------------------------------------------------


def test_type_handlers_lists_available_backends_in_dispatch_order():
    import datafusion
    import pandas as pd
    import polars as pl

    handlers = DeltaIOHandler.type_handlers()

    expected = [pa.Table, pa.RecordBatchReader, pl.DataFrame, pl.LazyFrame, datafusion.DataFrame, pd.DataFrame]
    assert list(handlers)[: len(expected)] == expected
    assert isinstance(handlers[pa.Table], PyArrowTypeHandler)
    assert handlers[pa.Table] is handlers[pa.RecordBatchReader]
    assert isinstance(handlers[pl.LazyFrame], PolarsTypeHandler)
    assert isinstance(handlers[datafusion.DataFrame], DataFusionTypeHandler)
    assert isinstance(handlers[pd.DataFrame], PandasTypeHandler)


def test_load_without_type_hint_is_a_type_error_listing_supported_types(handler):
    write(handler, "orders", orders(1))

    with pytest.raises(TypeError, match=r"without a type hint.*pyarrow\.Table.*polars\.LazyFrame.*pandas\.DataFrame"):
        load(handler, "orders", None)


def test_load_as_unsupported_type_is_a_type_error_listing_supported_types(handler):
    write(handler, "orders", orders(1))

    with pytest.raises(TypeError, match=r"as dict; supported types: pyarrow\.Table") as raised:
        load(handler, "orders", dict)
    assert "pip install" not in str(raised.value)


def test_write_of_unsupported_type_is_a_type_error(handler, lake):
    with pytest.raises(TypeError, match=r"cannot write asset 'orders' as list; supported types"):
        write(handler, "orders", [{"id": 1}])
    assert not os.path.exists(f"{lake}/orders")


def test_subclasses_dispatch_to_their_base_types_backend(handler, lake):
    import polars as pl

    class Orders(pl.DataFrame):
        pass

    write(handler, "orders", Orders({"id": [1]}))

    assert table_rows(f"{lake}/orders") == [{"id": 1}]


def test_type_from_a_known_library_without_backend_names_the_extra(handler, monkeypatch):
    import polars as pl

    write(handler, "orders", orders(1))
    # A module set to None in sys.modules cannot be imported: the polars backend is unavailable.
    monkeypatch.setitem(sys.modules, "rivers.io_handlers.delta.polars", None)

    assert pl.DataFrame not in DeltaIOHandler.type_handlers()
    with pytest.raises(TypeError, match=r"pip install rivers\[polars\]"):
        load(handler, "orders", pl.DataFrame)
    with pytest.raises(TypeError, match=r"pip install rivers\[polars\]"):
        write(handler, "orders", pl.DataFrame({"id": [2]}))


def test_unhandled_type_of_a_known_library_names_the_extra(handler):
    write(handler, "orders", orders(1))

    with pytest.raises(TypeError, match=r"pyarrow\.Array.*pip install rivers\[pyarrow\]"):
        load(handler, "orders", pa.Array)


def test_merge_mode_without_merge_config_is_a_value_error(lake):
    handler = DeltaIOHandler(table_uri=lake, mode="merge")

    with pytest.raises(ValueError, match=r"^merge_config is required when mode='merge'$"):
        write(handler, "orders", orders(1))
    with pytest.raises(ValueError, match=r"^merge_config is required when mode='merge'$"):
        write(DeltaIOHandler(table_uri=lake), "orders", orders(1), {"delta/mode": "merge"})


def test_merge_metadata_only_on_merges(handler):
    metadata = write(handler, "orders", orders(1))
    assert "delta/num_output_rows" not in metadata and "delta/merge_stats" not in metadata

    merging = DeltaIOHandler(
        table_uri=handler.table_uri,
        mode="merge",
        merge_config=MergeConfig(merge_type="upsert", predicate="s.id = t.id"),
    )
    merged = write(merging, "orders", orders(1, 2))
    assert merged["delta/num_output_rows"] == 2
    assert json.loads(merged["delta/merge_stats"])["num_target_rows_inserted"] == 1


# --- custom backends -------------------------------------------------------------------------


class RowsTypeHandler(ArrowDeltaTypeHandler[list]):
    """A backend for lists of row dicts, built on the extension API."""

    @property
    def supported_types(self):
        return [list]

    def to_arrow(self, obj):
        from arro3.core import RecordBatchReader

        return RecordBatchReader.from_arrow(pa.Table.from_pylist(obj))

    def load_input(self, table_uri, table_name, storage_options, predicate, target_type, columns=None, version=None):
        scan, _ = scan_table(table_uri, storage_options, predicate, columns, version)
        return pa.table(scan).to_pylist()


class RowsLake(DeltaIOHandler):
    @staticmethod
    def type_handlers(handler_config=None):
        return {**DeltaIOHandler.type_handlers(handler_config), list: RowsTypeHandler()}


def test_a_subclass_can_register_a_custom_backend(lake):
    handler = RowsLake(table_uri=lake)

    metadata = write(handler, "rows", [{"id": 1, "name": "ada"}, {"id": 2, "name": "bo"}])

    assert metadata["delta/num_rows"] == 2
    assert table_rows(f"{lake}/rows") == [{"id": 1, "name": "ada"}, {"id": 2, "name": "bo"}]
    loaded = load(handler, "rows", list[dict], {"delta/columns": '["name"]'})
    assert sorted(r["name"] for r in loaded) == ["ada", "bo"]
