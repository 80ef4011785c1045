"""Partition-scoped Delta reads and writes: the SQL predicate of each kind of partition key and
definition, partition-only overwrites (R60), and partitioned assets end to end."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl
import pyarrow as pa
import pytest

import rivers as rs
from rivers.io_handlers.delta import DeltaIOHandler, PartitionExpr
from rivers.io_handlers.delta.predicates import partition_predicate

from .conftest import load, table_rows, write

REGIONS = rs.PartitionsDefinition.static_(["north", "south", "o'neil"])
DAILY = rs.PartitionsDefinition.daily(start=datetime(2024, 3, 1))
TENANTS = rs.PartitionsDefinition.dynamic("tenants")
GRID = rs.PartitionsDefinition.multi({"region": REGIONS, "date": DAILY})


def ctx(definition, *keys) -> rs.PartitionContext:
    return rs.PartitionContext(keys=list(keys), definition=definition)


def single(value):
    return rs.PartitionKey.single(value)


def multi(**values):
    return rs.PartitionKey.multi(values)


def predicate(partition, expr) -> str:
    return partition_predicate(partition, PartitionExpr(expr=expr), "shipments")


# --- predicates ------------------------------------------------------------------------------


def test_static_key_is_an_equality():
    assert predicate(ctx(REGIONS, single("north")), "region") == "region = 'north'"


def test_quotes_in_values_are_doubled():
    assert predicate(ctx(REGIONS, single("o'neil")), "region") == "region = 'o''neil'"


def test_key_with_several_values_is_an_in_list():
    assert predicate(ctx(REGIONS, single(["north", "south"])), "region") == "region IN ('north', 'south')"


def test_several_static_keys_merge_into_one_in_list():
    partition = ctx(REGIONS, single("north"), single("south"), single("north"))

    assert predicate(partition, "region") == "region IN ('north', 'south')"


def test_transport_set_keys_are_expanded():
    bundle = rs.PartitionKey.from_json('{"set": [{"single": ["north"]}, {"single": ["south"]}]}')

    assert predicate(ctx(REGIONS, bundle), "region") == "region IN ('north', 'south')"


def test_dynamic_key_is_an_equality():
    assert predicate(ctx(TENANTS, single("acme")), "tenant") == "tenant = 'acme'"


def test_time_window_key_is_a_half_open_range():
    assert (
        predicate(ctx(DAILY, single("2024-03-05")), "day")
        == "day >= '2024-03-05 00:00:00' AND day < '2024-03-06 00:00:00'"
    )


def test_several_time_window_keys_are_ored_ranges():
    partition = ctx(DAILY, single("2024-03-05"), single("2024-03-09"))

    assert predicate(partition, "day") == (
        "(day >= '2024-03-05 00:00:00' AND day < '2024-03-06 00:00:00') OR "
        "(day >= '2024-03-09 00:00:00' AND day < '2024-03-10 00:00:00')"
    )


def test_time_window_key_with_contiguous_values_is_its_time_window():
    partition = ctx(DAILY, single(["2024-03-05", "2024-03-06"]))
    start, end = partition.time_window()

    assert predicate(partition, "day") == (f"day >= '{start:%Y-%m-%d %H:%M:%S}' AND day < '{end:%Y-%m-%d %H:%M:%S}'")


def test_time_window_key_with_a_gap_never_covers_the_gap():
    partition = ctx(DAILY, single(["2024-03-05", "2024-03-07"]))

    assert predicate(partition, "day") == (
        "(day >= '2024-03-05 00:00:00' AND day < '2024-03-06 00:00:00') OR "
        "(day >= '2024-03-07 00:00:00' AND day < '2024-03-08 00:00:00')"
    )


def test_multi_key_has_one_clause_per_dimension_in_name_order():
    partition = ctx(GRID, multi(region="north", date="2024-03-05"))

    assert predicate(partition, {"region": "r", "date": "d"}) == (
        "d >= '2024-03-05 00:00:00' AND d < '2024-03-06 00:00:00' AND r = 'north'"
    )


def test_multi_keys_forming_a_cartesian_product_factor_per_dimension():
    partition = ctx(
        GRID,
        multi(region="north", date="2024-03-05"),
        multi(region="south", date="2024-03-05"),
    )

    assert predicate(partition, {"region": "r", "date": "d"}) == (
        "d >= '2024-03-05 00:00:00' AND d < '2024-03-06 00:00:00' AND r IN ('north', 'south')"
    )


def test_multi_keys_that_are_not_a_product_are_ored_per_key():
    partition = ctx(
        GRID,
        multi(region="north", date="2024-03-05"),
        multi(region="south", date="2024-03-06"),
    )

    assert predicate(partition, {"region": "r", "date": "d"}) == (
        "(d >= '2024-03-05 00:00:00' AND d < '2024-03-06 00:00:00' AND r = 'north') OR "
        "(d >= '2024-03-06 00:00:00' AND d < '2024-03-07 00:00:00' AND r = 'south')"
    )


def test_missing_partition_expr_is_a_value_error():
    with pytest.raises(ValueError, match="PartitionExpr is required"):
        partition_predicate(ctx(REGIONS, single("north")), None, "shipments")


def test_multi_definition_needs_a_mapping():
    with pytest.raises(ValueError, match="JSON object mapping each dimension"):
        predicate(ctx(GRID, multi(region="north", date="2024-03-05")), "region")


def test_multi_mapping_must_name_every_dimension():
    with pytest.raises(ValueError, match="no column for dimension"):
        predicate(ctx(GRID, multi(region="north", date="2024-03-05")), {"region": "r"})


def test_one_dimensional_definition_needs_a_column_name():
    with pytest.raises(ValueError, match="single column name"):
        predicate(ctx(REGIONS, single("north")), {"region": "r"})


# --- partition-scoped writes and reads through the handler (R60) -------------------------------

EXPR = {"delta/partition_expr": "region"}


def shipments(region: str, *parcels: int) -> pa.Table:
    return pa.table({"region": [region] * len(parcels), "parcels": list(parcels)})


def test_overwriting_a_partition_replaces_only_its_rows(handler, lake):
    write(handler, "shipments", shipments("north", 1, 2), EXPR, ctx(REGIONS, single("north")))
    write(handler, "shipments", shipments("south", 3), EXPR, ctx(REGIONS, single("south")))

    metadata = write(handler, "shipments", shipments("north", 9), EXPR, ctx(REGIONS, single("north")))

    assert table_rows(f"{lake}/shipments", sort_by="parcels") == [
        {"region": "south", "parcels": 3},
        {"region": "north", "parcels": 9},
    ]
    assert metadata["delta/num_rows"] == 2
    from deltalake import DeltaTable

    assert DeltaTable(f"{lake}/shipments").metadata().partition_columns == ["region"]


def test_rows_outside_the_written_partition_are_rejected(handler):
    with pytest.raises(Exception, match="(?i)invalid data|predicate"):
        write(handler, "shipments", shipments("south", 1), EXPR, ctx(REGIONS, single("north")))


def test_partitioned_overwrite_without_partition_expr_is_a_value_error(handler, lake):
    import os

    with pytest.raises(ValueError, match="PartitionExpr is required"):
        write(handler, "shipments", shipments("north", 1), None, ctx(REGIONS, single("north")))
    assert not os.path.exists(f"{lake}/shipments")


def test_partitioned_read_without_partition_expr_is_a_value_error(handler):
    write(handler, "shipments", shipments("north", 1), EXPR, ctx(REGIONS, single("north")))

    with pytest.raises(ValueError, match="PartitionExpr is required"):
        load(handler, "shipments", pa.Table, None, ctx(REGIONS, single("north")))


def test_partition_expr_may_be_a_json_string(handler, lake):
    from deltalake import DeltaTable

    metadata = {"delta/partition_expr": '"region"'}
    write(handler, "shipments", shipments("north", 1), metadata, ctx(REGIONS, single("north")))

    assert DeltaTable(f"{lake}/shipments").metadata().partition_columns == ["region"]


def test_partition_expr_that_maps_to_non_columns_is_a_value_error(handler):
    with pytest.raises(ValueError, match="'delta/partition_expr' must be a column name or a JSON object"):
        write(
            handler,
            "shipments",
            shipments("north", 1),
            {"delta/partition_expr": '{"region": 1}'},
            ctx(REGIONS, single("north")),
        )


def test_unpartitioned_node_table_has_no_partition_columns(handler, lake):
    from deltalake import DeltaTable

    # delta/partition_expr only partitions the table of a partitioned node.
    write(handler, "shipments", shipments("north", 1), EXPR)

    assert DeltaTable(f"{lake}/shipments").metadata().partition_columns == []


def test_partitioned_append_adds_rows_without_a_predicate(lake):
    handler = DeltaIOHandler(table_uri=lake, mode="append")

    write(handler, "shipments", shipments("north", 1), EXPR, ctx(REGIONS, single("north")))
    write(handler, "shipments", shipments("north", 2), EXPR, ctx(REGIONS, single("north")))

    assert [r["parcels"] for r in table_rows(f"{lake}/shipments", sort_by="parcels")] == [1, 2]


@pytest.mark.parametrize("hint", [pa.Table, pl.DataFrame, pl.LazyFrame])
def test_partitioned_read_returns_only_the_partition(handler, hint):
    write(handler, "shipments", shipments("north", 1, 2), EXPR, ctx(REGIONS, single("north")))
    write(handler, "shipments", shipments("south", 3), EXPR, ctx(REGIONS, single("south")))

    loaded = load(handler, "shipments", hint, EXPR, ctx(REGIONS, single("south")))

    frame = loaded.collect() if isinstance(loaded, pl.LazyFrame) else pl.DataFrame(loaded)
    assert frame["parcels"].to_list() == [3]


def test_datafusion_partitioned_read(handler):
    import datafusion

    write(handler, "shipments", shipments("north", 1, 2), EXPR, ctx(REGIONS, single("north")))
    write(handler, "shipments", shipments("south", 3), EXPR, ctx(REGIONS, single("south")))

    loaded = load(handler, "shipments", datafusion.DataFrame, EXPR, ctx(REGIONS, single("north")))

    assert sorted(r["parcels"] for r in loaded.to_pylist()) == [1, 2]


def test_time_window_partitions_on_a_date_column(handler, lake):
    expr = {"delta/partition_expr": "day"}
    for day, parcels in (("2024-03-05", 1), ("2024-03-06", 2)):
        table = pa.table({"day": [date.fromisoformat(day)], "parcels": [parcels]})
        write(handler, "daily", table, expr, ctx(DAILY, single(day)))

    write(
        handler, "daily", pa.table({"day": [date(2024, 3, 5)], "parcels": [10]}), expr, ctx(DAILY, single("2024-03-05"))
    )

    assert [r["parcels"] for r in table_rows(f"{lake}/daily", sort_by="parcels")] == [2, 10]
    loaded = load(handler, "daily", pa.Table, expr, ctx(DAILY, single("2024-03-06")))
    assert loaded.column("parcels").to_pylist() == [2]


def test_multi_dimensional_partitions(handler, lake):
    expr = {"delta/partition_expr": '{"region": "region", "date": "day"}'}

    def rows(region: str, day: str, parcels: int) -> pa.Table:
        return pa.table({"region": [region], "day": [date.fromisoformat(day)], "parcels": [parcels]})

    write(handler, "grid", rows("north", "2024-03-05", 1), expr, ctx(GRID, multi(region="north", date="2024-03-05")))
    write(handler, "grid", rows("south", "2024-03-05", 2), expr, ctx(GRID, multi(region="south", date="2024-03-05")))
    write(handler, "grid", rows("north", "2024-03-05", 7), expr, ctx(GRID, multi(region="north", date="2024-03-05")))

    from deltalake import DeltaTable

    assert DeltaTable(f"{lake}/grid").metadata().partition_columns == ["region", "day"]
    assert [r["parcels"] for r in table_rows(f"{lake}/grid", sort_by="parcels")] == [2, 7]
    loaded = load(handler, "grid", pa.Table, expr, ctx(GRID, multi(region="south", date="2024-03-05")))
    assert loaded.column("parcels").to_pylist() == [2]


# --- partitioned assets end to end -------------------------------------------------------------


def test_partitioned_assets_materialize_partition_by_partition(lake, make_repo, store):
    lake_handler = DeltaIOHandler(table_uri=lake)
    regions = rs.PartitionsDefinition.static_(["north", "south"])

    @rs.Asset(io_handler=lake_handler, partitions_def=regions, metadata={"delta/partition_expr": "region"})
    def parcels(context: rs.AssetExecutionContext) -> pl.DataFrame:
        count = {"north": [5, 9], "south": [4]}[context.partition_key]
        return pl.DataFrame({"region": [context.partition_key] * len(count), "parcels": count})

    @rs.Asset(
        partitions_def=regions,
        deps=[
            rs.AssetDef.input("parcels", metadata={"delta/partition_expr": "region", "delta/columns": '["parcels"]'})
        ],
    )
    def parcel_total(parcels: pl.LazyFrame) -> int:
        assert parcels.collect_schema().names() == ["parcels"]
        return int(parcels.collect()["parcels"].sum())

    repo = make_repo([parcels, parcel_total], storage=store)
    repo.materialize(partition_key=rs.PartitionKey.single("north"))
    repo.materialize(partition_key=rs.PartitionKey.single("south"))
    repo.materialize(partition_key=rs.PartitionKey.single("north"))

    assert table_rows(f"{lake}/parcels", sort_by="parcels") == [
        {"region": "south", "parcels": 4},
        {"region": "north", "parcels": 5},
        {"region": "north", "parcels": 9},
    ]
    assert repo.load_node("parcel_total", partition_key=rs.PartitionKey.single("north")) == 14
    assert repo.load_node("parcel_total", partition_key=rs.PartitionKey.single("south")) == 4
