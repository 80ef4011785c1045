"""Configuration models of the Delta IO handler: partition column mapping and MERGE settings.

These models hold no deltalake objects, so they can be built and validated without a Delta
backend installed. Unknown fields are rejected rather than ignored: a misspelt clause option
would otherwise silently change what a MERGE does.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

MergeType = Literal["deduplicate_insert", "update_only", "upsert", "replace_delete_unmatched", "custom"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PartitionExpr(_Strict):
    """Maps partition dimensions to table columns.

    ``expr`` is one column name for a one-dimensional partitions definition, or a dict of
    dimension name to column name for a multi-dimensional one.
    """

    expr: str | dict[str, str]

    @property
    def partition_columns(self) -> list[str]:
        """The table's partition columns: ``[expr]``, or the dict's columns in insertion order."""
        if isinstance(self.expr, str):
            return [self.expr]
        return list(self.expr.values())


class WhenNotMatchedInsert(_Strict):
    """Insert a source row without a target match; ``updates`` maps target column to SQL."""

    predicate: str | None = None
    updates: dict[str, str]


class WhenNotMatchedInsertAll(_Strict):
    """Insert every column of a source row without a target match, except ``except_cols``."""

    predicate: str | None = None
    except_cols: list[str] | None = None


class WhenMatchedUpdate(_Strict):
    """Update a matched target row; ``updates`` maps target column to SQL."""

    predicate: str | None = None
    updates: dict[str, str]


class WhenMatchedUpdateAll(_Strict):
    """Update every column of a matched target row from the source, except ``except_cols``."""

    predicate: str | None = None
    except_cols: list[str] | None = None


class WhenMatchedDelete(_Strict):
    """Delete a matched target row."""

    predicate: str | None = None


class WhenNotMatchedBySourceDelete(_Strict):
    """Delete a target row that no source row matches."""

    predicate: str | None = None


class WhenNotMatchedBySourceUpdate(_Strict):
    """Update a target row that no source row matches; ``updates`` maps target column to SQL."""

    predicate: str | None = None
    updates: dict[str, str]


class MergeOperationsConfig(_Strict):
    """The clauses of a ``custom`` merge. They are applied in a fixed order, whatever order the
    fields are given in: matched-update, matched-update-all, matched-delete, not-matched-insert,
    not-matched-insert-all, not-matched-by-source-delete, not-matched-by-source-update (each
    list in list order)."""

    when_not_matched_insert: list[WhenNotMatchedInsert] | None = None
    when_not_matched_insert_all: list[WhenNotMatchedInsertAll] | None = None
    when_matched_update: list[WhenMatchedUpdate] | None = None
    when_matched_update_all: list[WhenMatchedUpdateAll] | None = None
    when_matched_delete: list[WhenMatchedDelete] | None = None
    when_not_matched_by_source_delete: list[WhenNotMatchedBySourceDelete] | None = None
    when_not_matched_by_source_update: list[WhenNotMatchedBySourceUpdate] | None = None


class MergeConfig(_Strict):
    """How a write with mode ``"merge"`` combines the new rows with the table.

    ``predicate`` is the join condition, written with ``source_alias`` / ``target_alias``
    (e.g. ``"s.id = t.id"``). ``merge_type`` picks the clauses: ``upsert`` updates matched rows
    and inserts the rest, ``deduplicate_insert`` inserts only unmatched rows, ``update_only``
    only updates matched rows, ``replace_delete_unmatched`` updates matched rows and deletes
    target rows absent from the source, ``custom`` applies ``operations``.
    """

    merge_type: MergeType
    predicate: str
    source_alias: str = "s"
    target_alias: str = "t"
    error_on_type_mismatch: bool = True
    operations: MergeOperationsConfig | None = None


MergeClause = (
    WhenMatchedUpdate
    | WhenMatchedUpdateAll
    | WhenMatchedDelete
    | WhenNotMatchedInsert
    | WhenNotMatchedInsertAll
    | WhenNotMatchedBySourceDelete
    | WhenNotMatchedBySourceUpdate
)


def merge_clauses(config: MergeConfig) -> list[MergeClause]:
    """The clauses ``config`` stands for, in the order they are added to the MERGE.

    Raises ``ValueError`` for a ``custom`` merge without ``operations``.
    """
    if config.merge_type == "upsert":
        return [WhenMatchedUpdateAll(), WhenNotMatchedInsertAll()]
    if config.merge_type == "deduplicate_insert":
        return [WhenNotMatchedInsertAll()]
    if config.merge_type == "update_only":
        return [WhenMatchedUpdateAll()]
    if config.merge_type == "replace_delete_unmatched":
        return [WhenMatchedUpdateAll(), WhenNotMatchedBySourceDelete()]
    ops = config.operations
    if ops is None:
        raise ValueError(
            "MergeConfig(merge_type='custom') needs operations=MergeOperationsConfig(...) listing the merge clauses"
        )
    ordered: list[list[MergeClause] | None] = [
        list(ops.when_matched_update) if ops.when_matched_update else None,
        list(ops.when_matched_update_all) if ops.when_matched_update_all else None,
        list(ops.when_matched_delete) if ops.when_matched_delete else None,
        list(ops.when_not_matched_insert) if ops.when_not_matched_insert else None,
        list(ops.when_not_matched_insert_all) if ops.when_not_matched_insert_all else None,
        list(ops.when_not_matched_by_source_delete) if ops.when_not_matched_by_source_delete else None,
        list(ops.when_not_matched_by_source_update) if ops.when_not_matched_by_source_update else None,
    ]
    clauses = [clause for group in ordered if group for clause in group]
    if not clauses:
        raise ValueError("MergeConfig(merge_type='custom'): operations lists no merge clause")
    return clauses
