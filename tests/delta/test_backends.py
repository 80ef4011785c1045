"""The Arrow backends (pyarrow, polars, pandas, datafusion): each writes real Delta tables and
reads them back as the documented kind of object (R64), lazy frames are written as streams."""

from __future__ import annotations

import datafusion
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from rivers.io_handlers.delta import DeltaIOHandler
from rivers.io_handlers.delta.datafusion import DataFusionTypeHandler
from rivers.io_handlers.delta.pandas import PandasTypeHandler
from rivers.io_handlers.delta.polars import PolarsTypeHandler
from rivers.io_handlers.delta.pyarrow import PyArrowTypeHandler

from .conftest import load, table_rows, write

ROWS = [{"id": 1, "name": "ada"}, {"id": 2, "name": "bo"}, {"id": 3, "name": "cy"}]


def frames() -> dict[str, object]:
    table = pa.Table.from_pylist(ROWS)
    ctx = datafusion.SessionContext()
    return {
        "pyarrow.Table": table,
        "pyarrow.RecordBatchReader": table.to_reader(max_chunksize=1),
        "polars.DataFrame": pl.DataFrame(ROWS),
        "polars.LazyFrame": pl.LazyFrame(ROWS),
        "pandas.DataFrame": pd.DataFrame(ROWS),
        "datafusion.DataFrame": ctx.from_pylist(ROWS),
    }


@pytest.mark.parametrize("kind", list(frames()))
def test_every_backend_writes_a_delta_table(handler, lake, kind):
    metadata = write(handler, "people", frames()[kind])

    assert table_rows(f"{lake}/people") == ROWS
    assert metadata["delta/num_rows"] == 3
    assert metadata["delta/version"] == 0
    assert metadata["rivers/schema"].names == ["id", "name"]


@pytest.mark.parametrize("kind", list(frames()))
def test_every_backend_appends_and_merges(lake, kind):
    from rivers.io_handlers.delta import MergeConfig

    write(DeltaIOHandler(table_uri=lake), "people", pa.Table.from_pylist(ROWS[:1]))
    write(DeltaIOHandler(table_uri=lake, mode="append"), "people", pa.Table.from_pylist(ROWS[1:2]))
    merging = DeltaIOHandler(
        table_uri=lake, mode="merge", merge_config=MergeConfig(merge_type="deduplicate_insert", predicate="s.id = t.id")
    )

    write(merging, "people", frames()[kind])

    assert table_rows(f"{lake}/people") == ROWS


def _sorted(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: r["id"])


def test_read_as_pyarrow_table(handler):
    write(handler, "people", pa.Table.from_pylist(ROWS))

    loaded = load(handler, "people", pa.Table)

    assert isinstance(loaded, pa.Table)
    assert loaded.schema == pa.schema([("id", pa.int64()), ("name", pa.string())])
    assert _sorted(loaded.to_pylist()) == ROWS


def test_read_as_pyarrow_record_batch_reader_streams(handler):
    write(handler, "people", pa.Table.from_pylist(ROWS))

    loaded = load(handler, "people", pa.RecordBatchReader)

    assert isinstance(loaded, pa.RecordBatchReader)
    assert loaded.schema.field("name").type == pa.string()
    assert _sorted(loaded.read_all().to_pylist()) == ROWS


def test_read_as_polars_dataframe(handler):
    write(handler, "people", pl.DataFrame(ROWS))

    loaded = load(handler, "people", pl.DataFrame)

    assert isinstance(loaded, pl.DataFrame)
    assert loaded.sort("id").to_dicts() == ROWS


def test_read_as_polars_lazyframe_is_lazy(handler, lake):
    write(handler, "people", pl.DataFrame(ROWS))

    loaded = load(handler, "people", pl.LazyFrame, {"delta/columns": '["name", "id"]'})
    # Rows written after the load are seen at collect time: nothing was read yet.
    write(DeltaIOHandler(table_uri=lake, mode="append"), "people", pl.DataFrame([{"id": 4, "name": "di"}]))

    assert isinstance(loaded, pl.LazyFrame)
    assert loaded.collect_schema().names() == ["name", "id"]
    collected = loaded.sort("id").collect()
    assert collected["id"].to_list() == [1, 2, 3, 4]
    assert collected.columns == ["name", "id"]


def test_polars_lazyframe_queries_push_into_the_scan(handler):
    write(handler, "people", pl.DataFrame(ROWS))

    lazy = load(handler, "people", pl.LazyFrame)

    assert lazy.filter(pl.col("id") >= 2).select("name").sort("name").collect()["name"].to_list() == ["bo", "cy"]
    assert lazy.head(1).collect().height == 1
    assert lazy.select(pl.len()).collect().item() == 3


def test_read_as_pandas_has_a_fresh_range_index(handler):
    frame = pd.DataFrame(ROWS, index=[10, 20, 30])
    write(handler, "people", frame)

    loaded = load(handler, "people", pd.DataFrame)

    assert isinstance(loaded, pd.DataFrame)
    assert isinstance(loaded.index, pd.RangeIndex)
    assert list(loaded.index) == [0, 1, 2]
    assert list(loaded.columns) == ["id", "name"]  # the index was not written
    assert loaded.sort_values("id").to_dict("records") == ROWS


def test_read_as_datafusion_dataframe_carries_its_context(handler):
    write(handler, "etl/people", pa.Table.from_pylist(ROWS))

    loaded = load(handler, "etl/people", datafusion.DataFrame)

    assert isinstance(loaded, datafusion.DataFrame)
    assert isinstance(loaded.rivers_ctx, datafusion.SessionContext)
    assert _sorted(loaded.to_pylist()) == ROWS
    # The table is registered under its table name, for SQL over the same context.
    joined = loaded.rivers_ctx.sql('SELECT count(*) AS n FROM "etl/people" WHERE id > 1')
    assert joined.to_pylist() == [{"n": 2}]


def test_datafusion_read_uses_the_root_name_and_projection(handler):
    write(handler, "people", pa.Table.from_pylist(ROWS), {"delta/root_name": "crm_people"})

    loaded = load(
        handler, "people", datafusion.DataFrame, {"delta/root_name": "crm_people", "delta/columns": '["name"]'}
    )

    assert loaded.schema().names == ["name"]
    assert loaded.rivers_ctx.table("crm_people").count() == 3


def test_datafusion_read_is_case_sensitive_like_the_scan(handler):
    write(handler, "people", pa.table({"Id": [1, 2]}))

    loaded = load(handler, "people", datafusion.DataFrame, {"delta/columns": '["Id"]'})

    assert sorted(r["Id"] for r in loaded.to_pylist()) == [1, 2]


@pytest.mark.parametrize("hint", [pa.Table, pa.RecordBatchReader, pl.DataFrame, pl.LazyFrame, pd.DataFrame])
def test_time_travel_and_projection_for_every_backend(handler, hint):
    write(handler, "people", pa.Table.from_pylist(ROWS))
    write(handler, "people", pa.Table.from_pylist(ROWS[:1]))

    loaded = load(handler, "people", hint, {"delta/version": "0", "delta/columns": '["name"]'})

    if isinstance(loaded, pl.LazyFrame):
        frame = loaded.collect()
    else:
        frame = pl.DataFrame(pa.table(loaded) if hint is pa.RecordBatchReader else loaded)
    assert frame.columns == ["name"]
    assert sorted(frame["name"].to_list()) == ["ada", "bo", "cy"]


def test_datafusion_time_travel(handler):
    write(handler, "people", pa.Table.from_pylist(ROWS))
    write(handler, "people", pa.Table.from_pylist(ROWS[:1]))

    loaded = load(handler, "people", datafusion.DataFrame, {"delta/version": "0"})

    assert loaded.count() == 3


def test_polars_lazyframe_write_streams_batches(handler, lake):
    calls: list[int] = []

    def tap(series: pl.Series) -> pl.Series:
        calls.append(len(series))
        return series

    lazy = pl.LazyFrame({"id": range(200_000)}).with_columns(pl.col("id").map_batches(tap, return_dtype=pl.Int64))
    reader = PolarsTypeHandler().to_arrow(lazy)

    assert calls == []  # building the stream ran nothing
    assert sum(batch.num_rows for batch in reader) == 200_000
    assert calls

    metadata = write(handler, "numbers", lazy)
    assert metadata["delta/num_rows"] == 200_000
    assert DeltaTable(f"{lake}/numbers").count() == 200_000


def test_empty_lazyframe_writes_an_empty_table(handler, lake):
    write(handler, "nothing", pl.LazyFrame({"id": []}, schema={"id": pl.Int64}))

    assert DeltaTable(f"{lake}/nothing").schema().to_arrow().names == ["id"]
    assert table_rows(f"{lake}/nothing") == []


def test_datafusion_write_streams_batches(handler):
    calls: list[int] = []

    def tap(values: pa.Array) -> pa.Array:
        calls.append(len(values))
        return values

    ctx = datafusion.SessionContext()
    udf = datafusion.udf(tap, [pa.int64()], pa.int64(), "stable", name="tap")
    frame = ctx.from_pydict({"id": list(range(50_000))}).select(udf(datafusion.col("id")).alias("id"))
    reader = DataFusionTypeHandler().to_arrow(frame)

    assert calls == []
    assert sum(batch.num_rows for batch in reader) == 50_000
    assert len(calls) > 1  # executed batch by batch

    assert write(handler, "numbers", frame)["delta/num_rows"] == 50_000


@pytest.mark.parametrize(
    ("backend", "bad"),
    [
        (PyArrowTypeHandler(), [1]),
        (PolarsTypeHandler(), pa.table({"a": [1]})),
        (PandasTypeHandler(), pl.DataFrame({"a": [1]})),
        (DataFusionTypeHandler(), pd.DataFrame({"a": [1]})),
    ],
)
def test_to_arrow_rejects_foreign_objects(backend, bad):
    with pytest.raises(TypeError, match="TypeHandler writes"):
        backend.to_arrow(bad)


def test_backend_can_be_called_directly_with_a_write_request(lake):
    import rivers as rs
    from rivers.io_handlers.delta.base import DeltaWriteRequest

    request = DeltaWriteRequest(
        table_uri=f"{lake}/direct",
        table_name="direct",
        delta_write_mode="append",
        schema_mode=None,
        predicate=None,
        partition_by=["name"],
        table_configuration=None,
        writer_properties=None,
        commit_properties=None,
        merge_config=None,
        merge_predicate_override=None,
        storage_options=None,
    )
    ctx = rs.OutputContext("direct")

    PolarsTypeHandler().handle_output(ctx, pl.DataFrame(ROWS), request)

    assert DeltaTable(f"{lake}/direct").metadata().partition_columns == ["name"]
    assert ctx.output_metadata["delta/mode"].raw_value() == "append"
    merge_request = DeltaWriteRequest(**{**request.__dict__, "delta_write_mode": "merge"})
    with pytest.raises(ValueError, match="merge_config is required when mode='merge'"):
        PolarsTypeHandler().handle_output(rs.OutputContext("direct"), pl.DataFrame(ROWS), merge_request)
    stray = DeltaWriteRequest(**{**request.__dict__, "predicate": "name = 'ada'"})
    with pytest.raises(ValueError, match="only applies to mode='overwrite'"):
        PolarsTypeHandler().handle_output(rs.OutputContext("direct"), pl.DataFrame(ROWS), stray)
