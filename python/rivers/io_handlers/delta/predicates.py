"""SQL predicates selecting the rows of the partition(s) a step writes or reads.

The same predicate string serves every backend: deltalake evaluates it for overwrites and
scans, DataFusion and Spark for their frames. String literals are single-quoted with ``'``
doubled; column names are used as written in ``delta/partition_expr``.

Rules, per partitions definition:

* Static / Dynamic: ``col = 'v'``, or ``col IN ('a', 'b')`` for several values (all values of
  all keys, duplicates removed, in order).
* TimeWindow: the half-open range ``col >= 'START' AND col < 'END'`` of each key, bounds
  rendered as ``%Y-%m-%d %H:%M:%S``; several keys give ``(range1) OR (range2) ...``. The column
  should be a date or timestamp column: compared with a string column the bounds are compared
  as text.
* Multi: one clause per dimension in ascending dimension-name order joined by ``AND``.
  Several keys that together form a full cartesian product factor into per-dimension clauses;
  otherwise the per-key clauses are joined by ``OR``.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from rivers.io_handlers.delta.config import PartitionExpr

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def _rivers() -> Any:
    # The partition classes are read from the public package at call time: this module must not
    # import them at import time (``import rivers.io_handlers.delta`` stays cheap and free of
    # cycles), and typing them as ``Any`` keeps the predicate code independent of their stubs.
    import rivers

    return rivers


def sql_literal(value: str) -> str:
    """``value`` as a single-quoted SQL string literal (``'`` doubled)."""
    return "'" + value.replace("'", "''") + "'"


def _equality(column: str, values: list[str]) -> str:
    if len(values) == 1:
        return f"{column} = {sql_literal(values[0])}"
    return f"{column} IN ({', '.join(sql_literal(v) for v in values)})"


def _range(column: str, window: tuple[datetime, datetime]) -> str:
    start, end = window
    return f"{column} >= {sql_literal(start.strftime(TIME_FORMAT))} AND {column} < {sql_literal(end.strftime(TIME_FORMAT))}"


def _or(clauses: list[str]) -> str:
    return clauses[0] if len(clauses) == 1 else " OR ".join(f"({c})" for c in clauses)


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _is_time_window(definition: Any) -> bool:
    return isinstance(definition, _rivers().PartitionsDefinition.TimeWindow)


def _value_windows(values: list[str], definition: Any) -> list[tuple[datetime, datetime]]:
    """The windows of ``values`` sorted by start, with touching windows merged into one."""
    rs = _rivers()
    windows = []
    for value in values:
        window = rs.PartitionContext([rs.PartitionKey.single(value)], definition).time_window()
        if window is None:  # pragma: no cover - a TimeWindow definition always has windows
            raise ValueError(f"partition value {value!r} has no time window")
        windows.append(window)
    windows.sort()
    merged = [windows[0]]
    for start, end in windows[1:]:
        last_start, last_end = merged[-1]
        if start <= last_end:
            merged[-1] = (last_start, max(last_end, end))
        else:
            merged.append((start, end))
    return merged


def _time_clause(column: str, values: list[str], definition: Any) -> str:
    # A key with several contiguous values is one range, the key's time_window(); values with
    # gaps between them become several ranges so rows of the gaps are never selected.
    return _or([_range(column, w) for w in _value_windows(values, definition)])


def _dimension_clause(column: str, values: list[str], definition: Any) -> str:
    if _is_time_window(definition):
        return _time_clause(column, values, definition)
    return _equality(column, values)


def _flatten(keys: list[Any]) -> list[Any]:
    """Expands transport-only ``PartitionKey.Set`` keys into their members."""
    set_type = getattr(_rivers().PartitionKey, "Set", None)
    out: list[Any] = []
    for key in keys:
        if set_type is not None and isinstance(key, set_type):
            out.extend(_flatten(list(key.keys)))
        else:
            out.append(key)
    return out


def partition_predicate(partition: Any, expr: PartitionExpr | None, asset_name: str) -> str:
    """The SQL predicate selecting the rows of ``partition`` (a ``PartitionContext``).

    Raises ``ValueError`` when ``expr`` is missing or does not fit the partition's shape.
    """
    if expr is None:
        raise ValueError(
            f"PartitionExpr is required for partitioned asset {asset_name!r}: set the metadata key "
            "'delta/partition_expr' to the partition column (or a JSON object mapping each dimension to its column)"
        )
    rs = _rivers()
    keys = _flatten(list(partition.keys))
    definition = partition.definition
    if isinstance(definition, rs.PartitionsDefinition.Multi):
        return _multi_predicate(keys, definition, expr, asset_name)
    if not isinstance(expr.expr, str):
        raise ValueError(
            f"asset {asset_name!r} has a one-dimensional partitions definition, so 'delta/partition_expr' must "
            f"be a single column name, not {expr.expr!r}"
        )
    column = expr.expr
    values_per_key: list[list[str]] = []
    for key in keys:
        if not isinstance(key, rs.PartitionKey.Single):
            raise ValueError(f"asset {asset_name!r}: partition key {key} does not fit its one-dimensional definition")
        values_per_key.append(list(key.key))
    if _is_time_window(definition):
        return _or([_time_clause(column, values, definition) for values in values_per_key])
    return _equality(column, _unique([v for values in values_per_key for v in values]))


def _multi_predicate(keys: list[Any], definition: Any, expr: PartitionExpr, asset_name: str) -> str:
    dims = dict(definition.dimensions)
    if not isinstance(expr.expr, dict):
        raise ValueError(
            f"asset {asset_name!r} has a multi-dimensional partitions definition, so 'delta/partition_expr' must "
            f"be a JSON object mapping each dimension ({', '.join(sorted(dims))}) to its column, not {expr.expr!r}"
        )
    columns: dict[str, str] = expr.expr
    missing = sorted(set(dims) - set(columns))
    if missing:
        raise ValueError(
            f"asset {asset_name!r}: 'delta/partition_expr' names no column for dimension(s) {', '.join(missing)}"
        )
    rs = _rivers()
    per_key: list[dict[str, list[str]]] = []
    for key in keys:
        if not isinstance(key, rs.PartitionKey.Multi) or set(key.keys) != set(dims):
            raise ValueError(
                f"asset {asset_name!r}: partition key {key} does not name exactly the dimensions {sorted(dims)}"
            )
        per_key.append({dim: list(values) for dim, values in key.keys.items()})
    names = sorted(dims)

    def clause(values: dict[str, list[str]]) -> str:
        parts = []
        for dim in names:
            part = _dimension_clause(columns[dim], values[dim], dims[dim])
            parts.append(f"({part})" if " OR " in part else part)
        return " AND ".join(parts)

    union = {dim: _unique([v for key in per_key for v in key[dim]]) for dim in names}
    covered = {combo for key in per_key for combo in itertools.product(*(key[dim] for dim in names))}
    if len(per_key) == 1 or covered == set(itertools.product(*(union[dim] for dim in names))):
        return clause(union)
    return _or([clause(key) for key in per_key])
