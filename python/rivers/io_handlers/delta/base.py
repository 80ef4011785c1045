"""The Delta backend extension API.

A backend is a :class:`DeltaTypeHandler`: it names the frame types it handles, reads a Delta
table into one of them and writes one of them to a table. Backends whose frames export Arrow
extend :class:`ArrowDeltaTypeHandler` and only convert: the mode-specific write, the MERGE and
the output metadata are done once, here, with deltalake. Reads go through
:func:`scan_table`, deltalake's DataFusion scan, so a partition predicate selects the same
rows whichever frame type is asked for.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, get_args

from rivers._definitions.metadata import MetadataValue
from rivers._execution.io_context import OutputContext
from rivers.io_handlers.delta.config import (
    MergeConfig,
    WhenMatchedDelete,
    WhenMatchedUpdate,
    WhenMatchedUpdateAll,
    WhenNotMatchedBySourceDelete,
    WhenNotMatchedBySourceUpdate,
    WhenNotMatchedInsert,
    WhenNotMatchedInsertAll,
    merge_clauses,
)

if TYPE_CHECKING:
    from arro3.core import RecordBatchReader
    from deltalake import CommitProperties, DeltaTable, WriterProperties
    from deltalake.table import TableMerger

T = TypeVar("T")

DeltaWriteMode = Literal["overwrite", "append", "error", "ignore", "merge", "create_or_replace"]
DeltaSchemaMode = Literal["overwrite", "merge"]

WRITE_MODES: tuple[str, ...] = get_args(DeltaWriteMode)
SCHEMA_MODES: tuple[str, ...] = get_args(DeltaSchemaMode)


@dataclass(frozen=True)
class DeltaWriteRequest:
    """Everything a backend needs to write one output, resolved from the handler's fields and
    the node's ``delta/*`` metadata."""

    table_uri: str
    table_name: str
    delta_write_mode: DeltaWriteMode
    schema_mode: DeltaSchemaMode | None
    predicate: str | None
    partition_by: list[str] | None
    table_configuration: dict[str, str] | None
    writer_properties: WriterProperties | None
    commit_properties: CommitProperties | None
    merge_config: MergeConfig | None
    merge_predicate_override: str | None
    storage_options: dict[str, str] | None


class DeltaTypeHandler(ABC, Generic[T]):
    """Reads and writes Delta tables as frames of ``supported_types``."""

    @property
    @abstractmethod
    def supported_types(self) -> Sequence[type[T]]:
        """The frame types this backend reads and writes."""

    @abstractmethod
    def load_input(
        self,
        table_uri: str,
        table_name: str,
        storage_options: dict[str, str] | None,
        predicate: str | None,
        target_type: type[T],
        columns: list[str] | None = None,
        version: int | None = None,
    ) -> T:
        """Reads the table at ``table_uri`` as ``target_type``: only rows matching
        ``predicate`` (SQL), only ``columns`` when given, at ``version`` when given."""

    @abstractmethod
    def handle_output(self, context: OutputContext, obj: T, request: DeltaWriteRequest) -> None:
        """Writes ``obj`` as ``request`` says and adds the output metadata to ``context``."""


def merge_predicate(request: DeltaWriteRequest) -> str:
    """The MERGE condition: ``delta/merge_predicate`` if set, else ``MergeConfig.predicate``."""
    config = require_merge_config(request)
    return request.merge_predicate_override or config.predicate


def require_merge_config(request: DeltaWriteRequest) -> MergeConfig:
    if request.merge_config is None:
        raise ValueError("merge_config is required when mode='merge'")
    return request.merge_config


class ArrowDeltaTypeHandler(DeltaTypeHandler[T]):
    """A backend whose frames convert to an Arrow stream; writes are done here with deltalake.

    ``to_arrow`` should stream (return a reader that produces batches as the writer pulls them)
    when the frame is lazy, so that a large result is never held in memory whole.
    """

    @abstractmethod
    def to_arrow(self, obj: T) -> RecordBatchReader:
        """``obj`` as an arro3 ``RecordBatchReader``."""

    def handle_output(self, context: OutputContext, obj: T, request: DeltaWriteRequest) -> None:
        from deltalake import DeltaTable, write_deltalake

        mode = request.delta_write_mode
        if mode not in WRITE_MODES:
            raise ValueError(f"unknown Delta write mode {mode!r}; expected one of {', '.join(WRITE_MODES)}")
        clauses: list[Any] = []
        if mode == "merge":
            # Configuration errors surface before any data is read or the table is touched.
            clauses = merge_clauses(require_merge_config(request))
            if request.schema_mode == "overwrite":
                raise ValueError(
                    f"table {request.table_name!r}: schema_mode='overwrite' cannot be combined with "
                    "mode='merge'; use schema_mode='merge' to add the source's new columns"
                )
        if request.predicate is not None and mode != "overwrite":
            raise ValueError(f"a partition predicate only applies to mode='overwrite', not mode={mode!r}")
        data = self.to_arrow(obj)
        # Optional deltalake arguments are passed only when set (its stubs type most of them
        # as non-optional).
        properties: dict[str, Any] = {
            key: value
            for key, value in (
                ("storage_options", request.storage_options),
                ("writer_properties", request.writer_properties),
                ("commit_properties", request.commit_properties),
            )
            if value is not None
        }
        started = time.perf_counter()
        metrics: dict[str, Any] | None = None
        if mode == "merge":
            metrics = _merge(data, request, clauses)
        elif mode == "create_or_replace":
            DeltaTable.create(
                request.table_uri,
                schema=data.schema,
                mode="overwrite",
                partition_by=request.partition_by,
                configuration=request.table_configuration,
                storage_options=request.storage_options,
                commit_properties=request.commit_properties,
            )
            write_deltalake(request.table_uri, data, mode="append", **properties)
        else:
            if mode in ("overwrite", "append"):
                _apply_table_configuration(request)
            options: dict[str, Any] = {
                "mode": mode,
                "partition_by": request.partition_by,
                "schema_mode": request.schema_mode,
                "configuration": request.table_configuration,
                **properties,
            }
            if request.predicate is not None:
                options["predicate"] = request.predicate
            write_deltalake(request.table_uri, data, **options)
        duration = round(time.perf_counter() - started, 6)
        table = DeltaTable(request.table_uri, storage_options=request.storage_options)
        add_write_metadata(context, request, table, duration, metrics)


def _apply_table_configuration(request: DeltaWriteRequest) -> None:
    """Sets the table properties that differ on an existing table: deltalake applies
    ``configuration`` only when a write creates the table."""
    from deltalake import DeltaTable

    wanted = request.table_configuration
    if not wanted or not DeltaTable.is_deltatable(request.table_uri, request.storage_options):
        return
    table = DeltaTable(request.table_uri, storage_options=request.storage_options)
    current = table.metadata().configuration
    changed = {key: value for key, value in wanted.items() if current.get(key) != value}
    if changed:
        table.alter.set_table_properties(changed, commit_properties=request.commit_properties)


def _merge(data: RecordBatchReader, request: DeltaWriteRequest, clauses: list[Any]) -> dict[str, Any]:
    from deltalake import DeltaTable

    config = require_merge_config(request)
    # Properties first, so the MERGE starts from the snapshot that has them. A missing target
    # then fails with deltalake's TableNotFoundError, which names the path.
    _apply_table_configuration(request)
    table = DeltaTable(request.table_uri, storage_options=request.storage_options)
    merger = table.merge(
        source=data,
        predicate=merge_predicate(request),
        source_alias=config.source_alias,
        target_alias=config.target_alias,
        merge_schema=request.schema_mode == "merge",
        error_on_type_mismatch=config.error_on_type_mismatch,
        writer_properties=request.writer_properties,
        commit_properties=request.commit_properties,
    )
    for clause in clauses:
        merger = _add_clause(merger, clause)
    return merger.execute()


def _add_clause(merger: TableMerger, clause: Any) -> TableMerger:
    if isinstance(clause, WhenMatchedUpdate):
        return merger.when_matched_update(clause.updates, clause.predicate)
    if isinstance(clause, WhenMatchedUpdateAll):
        return merger.when_matched_update_all(clause.predicate, clause.except_cols)
    if isinstance(clause, WhenMatchedDelete):
        return merger.when_matched_delete(clause.predicate)
    if isinstance(clause, WhenNotMatchedInsert):
        return merger.when_not_matched_insert(clause.updates, clause.predicate)
    if isinstance(clause, WhenNotMatchedInsertAll):
        return merger.when_not_matched_insert_all(clause.predicate, clause.except_cols)
    if isinstance(clause, WhenNotMatchedBySourceDelete):
        return merger.when_not_matched_by_source_delete(clause.predicate)
    if isinstance(clause, WhenNotMatchedBySourceUpdate):
        return merger.when_not_matched_by_source_update(clause.updates, clause.predicate)
    raise TypeError(f"not a merge clause: {clause!r}")


def add_write_metadata(
    context: OutputContext,
    request: DeltaWriteRequest,
    table: DeltaTable,
    duration_s: float,
    merge_metrics: dict[str, Any] | None,
) -> None:
    """Adds the ``delta/*`` output metadata and ``rivers/schema`` describing ``table``."""
    actions = table.get_add_actions(flatten=True)
    num_rows = sum(n for n in actions.column("num_records").to_pylist() if n is not None)
    size_bytes = sum(n for n in actions.column("size_bytes").to_pylist() if n is not None)
    metadata: dict[str, Any] = {
        "delta/table_uri": request.table_uri,
        "delta/mode": request.delta_write_mode,
        "delta/num_rows": int(num_rows),
        "delta/size_bytes": int(size_bytes),
        "delta/write_duration_s": duration_s,
        "delta/version": int(table.version()),
        "rivers/schema": MetadataValue.schema(table.schema().to_arrow()),
    }
    if merge_metrics is not None:
        metadata["delta/num_output_rows"] = int(merge_metrics.get("num_output_rows", 0))
        metadata["delta/merge_stats"] = json.dumps(merge_metrics, sort_keys=True)
    context.add_output_metadata(metadata)


def scan_table(
    table_uri: str,
    storage_options: dict[str, str] | None,
    predicate: str | None,
    columns: list[str] | None,
    version: int | None,
) -> tuple[RecordBatchReader, Any]:
    """A lazy scan of the table (deltalake's DataFusion engine) and the table's arro3 schema,
    projected to ``columns``. The scan may yield view types (``Utf8View``); backends that promise
    the table's declared types cast to the returned schema."""
    from deltalake import DeltaTable

    table = DeltaTable(table_uri, version=version, storage_options=storage_options)
    schema = table.schema().to_arrow()
    if columns is not None:
        unknown = [c for c in columns if c not in schema.names]
        if unknown:
            raise ValueError(
                f"delta/columns names column(s) {unknown} that the table at {table_uri} does not have; "
                f"its columns are {schema.names}"
            )
        from arro3.core import Schema

        schema = Schema([schema.field(c) for c in columns], metadata=schema.metadata)
    return table.scan(columns=columns, predicate=predicate), schema
