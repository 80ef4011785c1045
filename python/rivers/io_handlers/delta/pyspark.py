"""The PySpark backend: ``pyspark.sql.DataFrame``, written and read by Spark's Delta connector.

Spark reaches storage through its own session configuration, so the handler's
``storage_options``, ``writer_properties`` and ``commit_properties`` do not apply here: a
``UserWarning`` says so when they are set. Writes use ``replaceWhere`` for partition overwrites
and the Delta merge builder for merges; ``create_or_replace`` is not offered.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Sequence
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from rivers._definitions.metadata import MetadataValue
from rivers._execution.io_context import OutputContext
from rivers.io_handlers.delta.base import DeltaTypeHandler, DeltaWriteRequest, merge_predicate, require_merge_config
from rivers.io_handlers.delta.config import (
    WhenMatchedDelete,
    WhenMatchedUpdate,
    WhenMatchedUpdateAll,
    WhenNotMatchedBySourceDelete,
    WhenNotMatchedBySourceUpdate,
    WhenNotMatchedInsert,
    WhenNotMatchedInsertAll,
    merge_clauses,
)

# Spark's names for the writer modes that exist on both sides.
_SPARK_MODES = {"overwrite": "overwrite", "append": "append", "error": "errorifexists", "ignore": "ignore"}


def _spark_literal(value: str) -> str:
    # Spark SQL escapes quotes with a backslash; adjacent literals ('a''b') concatenate instead.
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _local_delta_session() -> SparkSession:
    try:
        from delta import configure_spark_with_delta_pip
    except ImportError as err:
        raise ImportError(
            "no SparkSession is active and building a local Delta-enabled one needs delta-spark: "
            "pip install rivers[delta-pyspark], or pass handler_config={'spark_session': spark} to DeltaIOHandler"
        ) from err
    builder = (
        SparkSession.builder.appName("rivers-delta")
        .master("local[*]")
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
    )
    return configure_spark_with_delta_pip(builder).getOrCreate()


class PySparkDeltaTypeHandler(DeltaTypeHandler[DataFrame]):
    """Reads and writes ``pyspark.sql.DataFrame`` with ``spark_session``.

    Without a session, the first read or write warns and uses the active session, or builds a
    local Delta-enabled one (which needs ``rivers[delta-pyspark]``).
    """

    def __init__(self, spark_session: SparkSession | None = None) -> None:
        self._spark = spark_session

    @property
    def supported_types(self) -> Sequence[type[DataFrame]]:
        return [DataFrame]

    @property
    def spark(self) -> SparkSession:
        """The session used for reads and writes (resolved on first use)."""
        if self._spark is None:
            warnings.warn(
                "DeltaIOHandler got no handler_config={'spark_session': ...}; using the active SparkSession "
                "(or a local Delta-enabled one when none is active)",
                UserWarning,
                stacklevel=3,
            )
            self._spark = SparkSession.getActiveSession() or _local_delta_session()
        return self._spark

    def _warn_ignored(self, storage_options: Any, writer_properties: Any = None, commit_properties: Any = None) -> None:
        ignored = [
            name
            for name, value in (
                ("storage_options", storage_options),
                ("writer_properties", writer_properties),
                ("commit_properties", commit_properties),
            )
            if value is not None
        ]
        if ignored:
            warnings.warn(
                f"the PySpark Delta backend ignores {', '.join(ignored)}: configure credentials and writer "
                "settings on the SparkSession",
                UserWarning,
                stacklevel=3,
            )

    def load_input(
        self,
        table_uri: str,
        table_name: str,
        storage_options: dict[str, str] | None,
        predicate: str | None,
        target_type: type[DataFrame],
        columns: list[str] | None = None,
        version: int | None = None,
    ) -> DataFrame:
        self._warn_ignored(storage_options)
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        frame = reader.load(table_uri)
        if predicate is not None:
            frame = frame.filter(predicate)
        if columns is not None:
            frame = frame.select(*columns)
        return frame

    def handle_output(self, context: OutputContext, obj: DataFrame, request: DeltaWriteRequest) -> None:
        if not isinstance(obj, DataFrame):
            raise TypeError(f"PySparkDeltaTypeHandler writes pyspark.sql.DataFrame, got {type(obj)!r}")
        mode = request.delta_write_mode
        if mode == "create_or_replace":
            raise ValueError(
                "mode='create_or_replace' is not supported by the PySpark Delta backend; use 'overwrite' with "
                "schema_mode='overwrite'"
            )
        self._warn_ignored(request.storage_options, request.writer_properties, request.commit_properties)
        from delta.tables import DeltaTable

        spark = self.spark
        started = time.perf_counter()
        exists = DeltaTable.isDeltaTable(spark, request.table_uri)
        if mode == "merge":
            clauses = merge_clauses(require_merge_config(request))
            if exists:
                self._merge(obj, request, clauses)
            else:
                # No target yet: the frame becomes the table, every row an insert.
                self._write(obj, request, "overwrite", None)
        else:
            self._write(obj, request, mode, request.predicate if exists else None)
        if request.table_configuration:
            self._apply_table_configuration(request.table_uri, request.table_configuration)
        duration = round(time.perf_counter() - started, 6)
        self._add_metadata(context, request, duration, merged=mode == "merge" and exists)

    def _write(self, obj: DataFrame, request: DeltaWriteRequest, mode: str, replace_where: str | None) -> None:
        writer = obj.write.format("delta").mode(_SPARK_MODES[mode])
        if request.partition_by:
            writer = writer.partitionBy(*request.partition_by)
        if replace_where is not None:
            writer = writer.option("replaceWhere", replace_where)
        if request.schema_mode == "merge":
            writer = writer.option("mergeSchema", "true")
        elif request.schema_mode == "overwrite":
            writer = writer.option("overwriteSchema", "true")
        writer.save(request.table_uri)

    def _merge(self, obj: DataFrame, request: DeltaWriteRequest, clauses: list[Any]) -> None:
        from delta.tables import DeltaTable

        config = require_merge_config(request)
        if request.schema_mode == "overwrite":
            raise ValueError("schema_mode='overwrite' cannot be combined with mode='merge'; use schema_mode='merge'")
        source_columns = list(obj.columns)

        def all_columns(except_cols: list[str] | None) -> dict[str, str]:
            # Spark's updateAll/insertAll take no exclusion list: spell the columns out instead.
            return {c: f"{config.source_alias}.`{c}`" for c in source_columns if c not in (except_cols or [])}

        builder = (
            DeltaTable.forPath(self.spark, request.table_uri)
            .alias(config.target_alias)
            .merge(obj.alias(config.source_alias), merge_predicate(request))
        )
        if request.schema_mode == "merge":
            builder = builder.withSchemaEvolution()
        for clause in clauses:
            if isinstance(clause, WhenMatchedUpdate):
                builder = builder.whenMatchedUpdate(condition=clause.predicate, set=clause.updates)
            elif isinstance(clause, WhenMatchedUpdateAll):
                if clause.except_cols:
                    builder = builder.whenMatchedUpdate(condition=clause.predicate, set=all_columns(clause.except_cols))
                else:
                    builder = builder.whenMatchedUpdateAll(condition=clause.predicate)
            elif isinstance(clause, WhenMatchedDelete):
                builder = builder.whenMatchedDelete(condition=clause.predicate)
            elif isinstance(clause, WhenNotMatchedInsert):
                builder = builder.whenNotMatchedInsert(condition=clause.predicate, values=clause.updates)
            elif isinstance(clause, WhenNotMatchedInsertAll):
                if clause.except_cols:
                    builder = builder.whenNotMatchedInsert(
                        condition=clause.predicate, values=all_columns(clause.except_cols)
                    )
                else:
                    builder = builder.whenNotMatchedInsertAll(condition=clause.predicate)
            elif isinstance(clause, WhenNotMatchedBySourceDelete):
                builder = builder.whenNotMatchedBySourceDelete(condition=clause.predicate)
            elif isinstance(clause, WhenNotMatchedBySourceUpdate):
                builder = builder.whenNotMatchedBySourceUpdate(condition=clause.predicate, set=clause.updates)
        if not config.error_on_type_mismatch:
            warnings.warn(
                "error_on_type_mismatch=False has no per-merge equivalent in Spark; set "
                "spark.sql.storeAssignmentPolicy on the session instead",
                UserWarning,
                stacklevel=3,
            )
        builder.execute()

    def _apply_table_configuration(self, table_uri: str, configuration: dict[str, str]) -> None:
        from delta.tables import DeltaTable

        current = DeltaTable.forPath(self.spark, table_uri).detail().collect()[0]["properties"] or {}
        changed = {k: v for k, v in configuration.items() if current.get(k) != v}
        if changed:
            assignments = ", ".join(f"{_spark_literal(k)} = {_spark_literal(v)}" for k, v in changed.items())
            self.spark.sql(f"ALTER TABLE delta.`{table_uri}` SET TBLPROPERTIES ({assignments})")

    def _add_metadata(self, context: OutputContext, request: DeltaWriteRequest, duration: float, merged: bool) -> None:
        from delta.tables import DeltaTable
        from pyspark.sql.pandas.types import to_arrow_schema

        table = DeltaTable.forPath(self.spark, request.table_uri)
        last = table.history(1).collect()[0]
        metrics = {k: v for k, v in (last["operationMetrics"] or {}).items()}
        schema = to_arrow_schema(table.toDF().schema)
        written_rows = int(metrics.get("numOutputRows", 0))
        metadata: dict[str, Any] = {
            "delta/table_uri": request.table_uri,
            "delta/mode": request.delta_write_mode,
            "delta/num_rows": written_rows,
            "delta/size_bytes": int(metrics.get("numOutputBytes", metrics.get("numTargetBytesAdded", 0))),
            "delta/write_duration_s": duration,
            "delta/version": int(last["version"]),
            "rivers/schema": MetadataValue.schema(schema),
        }
        if request.delta_write_mode == "merge":
            if not merged:
                metrics = {"numTargetRowsInserted": str(written_rows), "numOutputRows": str(written_rows)}
            metadata["delta/num_output_rows"] = written_rows
            metadata["delta/merge_stats"] = json.dumps(metrics, sort_keys=True)
        context.add_output_metadata(metadata)
