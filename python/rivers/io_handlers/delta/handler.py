"""``DeltaIOHandler``: asset values as Delta Lake tables, one table per node.

The handler resolves what to do (table location, mode, partition predicate, merge settings)
from its fields and the node's ``delta/*`` metadata, then hands the frame to the backend that
handles its type. Backends are looked up at call time, so installing polars after the handler
was built is enough to read polars frames.
"""

from __future__ import annotations

import importlib
import json
from typing import Any, cast, get_origin

from deltalake import CommitProperties, WriterProperties
from pydantic import field_validator
from pydantic_settings import SettingsConfigDict

from rivers._execution.io_context import InputContext, OutputContext
from rivers.io_handlers.base import BuiltinIOHandler
from rivers.io_handlers.delta.base import (
    SCHEMA_MODES,
    WRITE_MODES,
    DeltaSchemaMode,
    DeltaTypeHandler,
    DeltaWriteMode,
    DeltaWriteRequest,
)
from rivers.io_handlers.delta.config import MergeConfig, PartitionExpr
from rivers.io_handlers.delta.predicates import partition_predicate

# (module, class) of each built-in backend, in dispatch order. A backend whose module fails to
# import (its frame library is not installed) is left out.
_BACKENDS: tuple[tuple[str, str], ...] = (
    ("rivers.io_handlers.delta.pyarrow", "PyArrowTypeHandler"),
    ("rivers.io_handlers.delta.polars", "PolarsTypeHandler"),
    ("rivers.io_handlers.delta.datafusion", "DataFusionTypeHandler"),
    ("rivers.io_handlers.delta.pandas", "PandasTypeHandler"),
    ("rivers.io_handlers.delta.pyspark", "PySparkDeltaTypeHandler"),
)

# Top-level modules with a backend, which is also the name of the extra that installs it.
_KNOWN_LIBRARIES = ("pyarrow", "polars", "pandas", "datafusion", "pyspark")

_HANDLER_CONFIG_KEYS = ("spark_session",)


def _type_name(tp: Any) -> str:
    module = getattr(tp, "__module__", None) or ""
    name = getattr(tp, "__qualname__", None) or repr(tp)
    return f"{module.split('.')[0]}.{name}" if module and module != "builtins" else name


class DeltaIOHandler(BuiltinIOHandler):
    """Writes each node's value to the Delta table ``{table_uri}/{name}`` and reads it back as
    the frame type the consumer's parameter is annotated with.

    ``name`` is the node's ``delta/root_name`` metadata, else its name. Per-node metadata keys
    (``delta/mode``, ``delta/schema_mode``, ``delta/partition_expr``, ``delta/columns``,
    ``delta/version``, ...) override or complete the handler's settings.
    """

    model_config = SettingsConfigDict(arbitrary_types_allowed=True)

    table_uri: str
    mode: DeltaWriteMode = "overwrite"
    schema_mode: DeltaSchemaMode | None = None
    storage_options: dict[str, str] | None = None
    writer_properties: WriterProperties | None = None
    commit_properties: CommitProperties | None = None
    table_config: dict[str, str] | None = None
    merge_config: MergeConfig | None = None
    handler_config: dict[str, Any] | None = None

    @field_validator("handler_config")
    @classmethod
    def _known_handler_config_keys(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        unknown = sorted(set(value or {}) - set(_HANDLER_CONFIG_KEYS))
        if unknown:
            raise ValueError(
                f"unknown handler_config key(s) {unknown}; the only key used is {', '.join(_HANDLER_CONFIG_KEYS)}"
            )
        return value

    @staticmethod
    def type_handlers(handler_config: dict[str, Any] | None = None) -> dict[type, DeltaTypeHandler]:
        """The ``{frame type: backend}`` map of the backends importable now, in dispatch order."""
        config = handler_config or {}
        handlers: dict[type, DeltaTypeHandler] = {}
        for module_name, class_name in _BACKENDS:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue
            backend_cls = getattr(module, class_name)
            if class_name == "PySparkDeltaTypeHandler":
                backend = backend_cls(spark_session=config.get("spark_session"))
            else:
                backend = backend_cls()
            for tp in backend.supported_types:
                handlers.setdefault(tp, backend)
        return handlers

    # --- resolution ------------------------------------------------------------------------

    def _table(self, metadata: dict[str, str], asset_name: str) -> tuple[str, str]:
        name = metadata.get("delta/root_name") or asset_name
        return f"{self.table_uri.rstrip('/')}/{name}", name

    def _backend(self, target: Any, action: str, asset_name: str) -> DeltaTypeHandler:
        handlers = self.type_handlers(self.handler_config)
        # A parameterised hint (``list[dict]``) dispatches on its class (``list``).
        cls = get_origin(target) or target
        if isinstance(cls, type):
            for tp, backend in handlers.items():
                if issubclass(cls, tp):
                    return backend
        supported = ", ".join(_type_name(tp) for tp in handlers) or "none (no backend library is installed)"
        library = (getattr(target, "__module__", None) or "").split(".")[0]
        if library in _KNOWN_LIBRARIES:
            raise TypeError(
                f"DeltaIOHandler cannot {action} asset {asset_name!r} as {_type_name(target)}: no installed Delta "
                f"backend handles it (pip install rivers[{library}]); supported types: {supported}"
            )
        raise TypeError(
            f"DeltaIOHandler cannot {action} asset {asset_name!r} as {_type_name(target)}; supported types: {supported}"
        )

    # --- BaseIOHandler ---------------------------------------------------------------------

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        asset = context.asset_name
        metadata = context.asset_metadata or {}
        table_uri, table_name = self._table(metadata, asset)
        mode = cast(DeltaWriteMode, _choice(metadata, "delta/mode", self.mode, WRITE_MODES, asset))
        schema_mode = cast(
            "DeltaSchemaMode | None", _choice(metadata, "delta/schema_mode", self.schema_mode, SCHEMA_MODES, asset)
        )
        expr = _partition_expr(metadata, asset)
        partitioned = context.partition is not None
        partition_by = expr.partition_columns if partitioned and expr is not None else None
        predicate = None
        if partitioned and mode == "overwrite":
            predicate = partition_predicate(context.partition, expr, asset)
        if mode == "merge" and self.merge_config is None:
            raise ValueError("merge_config is required when mode='merge'")

        configuration = dict(self.table_config or {})
        override = _json_object(metadata, "delta/table_configuration", asset)
        if override is not None:
            non_text = sorted(k for k, v in override.items() if not isinstance(v, str))
            if non_text:
                raise ValueError(
                    f"asset {asset!r}: 'delta/table_configuration' values must be strings (Delta table properties "
                    f'are text, e.g. "true"), not for {non_text}'
                )
            configuration.update(override)
        writer_properties = _build(metadata, "delta/writer_properties", WriterProperties, asset)
        commit_properties = _build(metadata, "delta/commit_properties", CommitProperties, asset)

        backend = self._backend(type(obj), "write", asset)
        request = DeltaWriteRequest(
            table_uri=table_uri,
            table_name=table_name,
            delta_write_mode=mode,
            schema_mode=schema_mode,
            predicate=predicate,
            partition_by=partition_by,
            table_configuration=configuration or None,
            writer_properties=writer_properties if writer_properties is not None else self.writer_properties,
            commit_properties=commit_properties if commit_properties is not None else self.commit_properties,
            merge_config=self.merge_config,
            merge_predicate_override=metadata.get("delta/merge_predicate"),
            storage_options=self.storage_options,
        )
        backend.handle_output(context, obj, request)

    def load_input(self, context: InputContext) -> Any:
        asset = context.asset_name
        if context.type_hint is None:
            supported = ", ".join(_type_name(tp) for tp in self.type_handlers(self.handler_config))
            raise TypeError(
                f"DeltaIOHandler cannot load asset {asset!r} for {context.downstream_asset!r} without a type hint: "
                f"annotate the parameter with one of the supported types: {supported or 'none installed'}"
            )
        backend = self._backend(context.type_hint, "load", asset)
        metadata = context.asset_metadata or {}
        table_uri, table_name = self._table(metadata, asset)
        predicate = None
        if context.partition is not None:
            predicate = partition_predicate(context.partition, _partition_expr(metadata, asset), asset)
        return backend.load_input(
            table_uri,
            table_name,
            self.storage_options,
            predicate,
            context.type_hint,
            columns=_columns(metadata, asset),
            version=_version(metadata, asset),
        )


# --- metadata parsing ------------------------------------------------------------------------


def _choice(
    metadata: dict[str, str], key: str, default: str | None, allowed: tuple[str, ...], asset: str
) -> str | None:
    value = metadata.get(key)
    if value is None:
        return default
    if value not in allowed:
        raise ValueError(f"asset {asset!r}: metadata {key!r} is {value!r}; expected one of {', '.join(allowed)}")
    return value


def _partition_expr(metadata: dict[str, str], asset: str) -> PartitionExpr | None:
    raw = metadata.get("delta/partition_expr")
    if raw is None:
        return None
    try:
        parsed: Any = json.loads(raw)
    except ValueError:
        parsed = raw
    if not isinstance(parsed, (str, dict)):
        parsed = raw  # e.g. a column named "2024": JSON would read it as a number
    try:
        return PartitionExpr(expr=parsed)
    except ValueError as err:
        raise ValueError(
            f"asset {asset!r}: metadata 'delta/partition_expr' must be a column name or a JSON object mapping "
            f"dimension names to column names, got {raw!r}"
        ) from err


def _json_object(metadata: dict[str, str], key: str, asset: str) -> dict[str, Any] | None:
    raw = metadata.get(key)
    if raw is None:
        return None
    try:
        parsed = json.loads(raw)
    except ValueError as err:
        raise ValueError(f"asset {asset!r}: metadata {key!r} is not valid JSON: {raw!r}") from err
    if not isinstance(parsed, dict):
        raise ValueError(f"asset {asset!r}: metadata {key!r} must be a JSON object, got {raw!r}")
    return parsed


def _build(metadata: dict[str, str], key: str, factory: Any, asset: str) -> Any:
    options = _json_object(metadata, key, asset)
    if options is None:
        return None
    try:
        return factory(**options)
    except (TypeError, ValueError) as err:
        raise ValueError(f"asset {asset!r}: metadata {key!r} does not build {factory.__name__}: {err}") from err


def _columns(metadata: dict[str, str], asset: str) -> list[str] | None:
    raw = metadata.get("delta/columns")
    if raw is None:
        return None
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    if not isinstance(parsed, list) or not all(isinstance(c, str) for c in parsed):
        raise ValueError(f"asset {asset!r}: metadata 'delta/columns' must be a JSON list of column names, got {raw!r}")
    return parsed


def _version(metadata: dict[str, str], asset: str) -> int | None:
    raw = metadata.get("delta/version")
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError as err:
        raise ValueError(f"asset {asset!r}: metadata 'delta/version' must be an integer, got {raw!r}") from err
