"""Import surface: ``rivers.io_handlers.delta`` exports exactly the spec's names, and only that
package pulls in deltalake or a frame library."""

from __future__ import annotations

import json
import subprocess
import sys

import rivers.io_handlers.delta as delta
import rivers.io_handlers.delta.base as base

HEAVY = ("deltalake", "arro3", "pyarrow", "polars", "pandas", "datafusion", "pyspark")

PROBE = """
import json, sys
{imports}
heavy = {heavy!r}
print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set(heavy))))
"""


def _heavy_modules_after(imports: str) -> list[str]:
    script = PROBE.format(imports=imports, heavy=HEAVY)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_rivers_and_io_handlers_import_no_delta_or_frame_library():
    loaded = _heavy_modules_after(
        "import rivers\nimport rivers.io_handlers\nimport rivers.io_handlers.base\n"
        "from rivers.io_handlers import BaseIOHandler, InMemoryIOHandler, PickleIOHandler\n"
        "rivers.InMemoryIOHandler, rivers.PickleIOHandler"
    )

    assert loaded == []


def test_import_delta_loads_deltalake_but_no_frame_library():
    loaded = _heavy_modules_after("import rivers.io_handlers.delta")

    assert "deltalake" in loaded
    assert not set(loaded) & {"polars", "pandas", "datafusion", "pyspark"}


def test_delta_package_exports_exactly_the_spec_names():
    assert delta.__all__ == [
        "DeltaIOHandler",
        "DeltaTypeHandler",
        "MergeConfig",
        "MergeOperationsConfig",
        "PartitionExpr",
        "WhenMatchedDelete",
        "WhenMatchedUpdate",
        "WhenMatchedUpdateAll",
        "WhenNotMatchedBySourceDelete",
        "WhenNotMatchedBySourceUpdate",
        "WhenNotMatchedInsert",
        "WhenNotMatchedInsertAll",
    ]
    for name in delta.__all__:
        assert getattr(delta, name).__name__ == name


def test_extension_api_lives_in_base():
    assert base.DeltaTypeHandler is delta.DeltaTypeHandler
    assert issubclass(base.ArrowDeltaTypeHandler, base.DeltaTypeHandler)
    assert set(base.DeltaWriteMode.__args__) == {
        "overwrite",
        "append",
        "error",
        "ignore",
        "merge",
        "create_or_replace",
    }
    assert set(base.DeltaSchemaMode.__args__) == {"overwrite", "merge"}
    assert list(base.DeltaWriteRequest.__dataclass_fields__) == [
        "table_uri",
        "table_name",
        "delta_write_mode",
        "schema_mode",
        "predicate",
        "partition_by",
        "table_configuration",
        "writer_properties",
        "commit_properties",
        "merge_config",
        "merge_predicate_override",
        "storage_options",
    ]
    assert base.DeltaWriteRequest.__dataclass_params__.frozen


def test_builtin_backends_and_their_types():
    import datafusion
    import pandas as pd
    import polars as pl
    import pyarrow as pa

    from rivers.io_handlers.delta.datafusion import DataFusionTypeHandler
    from rivers.io_handlers.delta.pandas import PandasTypeHandler
    from rivers.io_handlers.delta.polars import PolarsTypeHandler
    from rivers.io_handlers.delta.pyarrow import PyArrowTypeHandler

    assert list(PyArrowTypeHandler().supported_types) == [pa.Table, pa.RecordBatchReader]
    assert list(PolarsTypeHandler().supported_types) == [pl.DataFrame, pl.LazyFrame]
    assert list(PandasTypeHandler().supported_types) == [pd.DataFrame]
    assert list(DataFusionTypeHandler().supported_types) == [datafusion.DataFrame]
    for backend in (PyArrowTypeHandler, PolarsTypeHandler, PandasTypeHandler, DataFusionTypeHandler):
        assert issubclass(backend, base.ArrowDeltaTypeHandler)
