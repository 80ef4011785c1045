"""Declaring assets: the ``Asset`` decorator, the asset types, ``AssetDef`` and ``DepDef``.

Decoration inspects the function once (signature, annotations, config type, async-ness) so that
nothing is introspected again while steps run.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rivers._definitions.results import Materialization, Output
from rivers._execution.context import AssetExecutionContext, SelfDependency, TaskExecutionContext
from rivers.exceptions import AssetDefinitionError

_SCHEMA_KEY = "rivers/schema"


@dataclass(frozen=True)
class ParamSpec:
    """One function parameter as the executor binds it."""

    name: str
    role: str  # "context" | "context_by_name" | "misplaced_context" | "self" | "named" | "wired" | "constant"
    annotation: Any
    has_default: bool
    # A graph-internal task parameter wired to a handle: the node it loads.
    source: str | None = None
    # Wired to a fan-out's results: "collect" (a list in element order), "stream" (an
    # iterator in completion order) or "stream_ordered" (an iterator in element order).
    gather: str | None = None


def _is_context_annotation(annotation: Any) -> bool:
    origin = typing.get_origin(annotation) or annotation
    return isinstance(origin, type) and issubclass(origin, (AssetExecutionContext, TaskExecutionContext))


def _type_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:
        # Unresolvable forward references: fall back to the raw annotations.
        return dict(getattr(fn, "__annotations__", {}))


def inspect_function(fn: Callable[..., Any], owner: str) -> tuple[list[ParamSpec], Any, Any]:
    """Reads parameters, the config type and the return annotation of ``fn``."""
    if not callable(fn):
        raise AssetDefinitionError(f"'{owner}' must wrap a function, got {type(fn).__name__}")
    signature = inspect.signature(fn)
    hints = _type_hints(fn)
    params: list[ParamSpec] = []
    config_type = None
    for position, param in enumerate(signature.parameters.values()):
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise AssetDefinitionError(
                f"'{owner}' has a *args/**kwargs parameter '{param.name}'; asset parameters are bound by "
                "name, so declare each input explicitly"
            )
        annotation = hints.get(param.name)
        is_self_dep = (typing.get_origin(annotation) or annotation) is SelfDependency
        if _is_context_annotation(annotation):
            role = "context" if position == 0 else "misplaced_context"
            args = typing.get_args(annotation)
            if position == 0 and args:
                config_type = args[0]
        elif position == 0 and param.name == "context" and annotation is None:
            role = "context_by_name"
        elif is_self_dep:
            if param.name != "self":
                raise AssetDefinitionError(
                    f"parameter '{param.name}' of '{owner}' is annotated SelfDependency; the self-dependency "
                    "parameter must be named 'self'"
                )
            role = "self"
        else:
            role = "named"
        params.append(ParamSpec(param.name, role, annotation, param.default is not param.empty))
    return_hint = hints.get("return")
    if return_hint in (Output, Materialization) or typing.get_origin(return_hint) in (Output, Materialization):
        return_hint = None
    return params, config_type, return_hint


# The declaration options every asset kind shares (`Asset._init_common`).
_COMMON_FIELDS = (
    "tags",
    "kinds",
    "group",
    "code_version",
    "io_handler",
    "metadata",
    "partitions_def",
    "deps",
    "hooks",
    "automation_condition",
    "pool",
    "pool_slots",
)


def _declared(scope: dict[str, Any]) -> dict[str, Any]:
    """The declaration options of a decorator call: its keyword arguments, without the class
    and the wrapped function."""
    return {key: value for key, value in scope.items() if key not in ("cls", "f", "wraps")}


def _normalize_kinds(kinds: str | list[str] | None) -> list[str]:
    if kinds is None:
        return []
    return [kinds] if isinstance(kinds, str) else list(kinds)


def _normalize_pool(
    owner: str, pool: str | list[str] | None, pool_slots: int | dict[str, int] | None
) -> list[tuple[str, int]]:
    if pool is None:
        if pool_slots is not None:
            raise AssetDefinitionError(f"'{owner}' sets pool_slots without pool; name the pool(s) with pool=")
        return []
    pools = [pool] if isinstance(pool, str) else list(pool)
    if isinstance(pool_slots, dict):
        unknown = sorted(set(pool_slots) - set(pools))
        if unknown:
            raise AssetDefinitionError(f"'{owner}' has pool_slots for {unknown}, which are not in pool={pools}")
        slots = {p: pool_slots.get(p, 1) for p in pools}
    else:
        slots = dict.fromkeys(pools, 1 if pool_slots is None else pool_slots)
    for name, count in slots.items():
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise AssetDefinitionError(
                f"'{owner}' claims {count!r} slots of pool '{name}'; slot counts must be integers >= 1"
            )
    return [(p, slots[p]) for p in pools]


def _check_metadata(owner: str, metadata: dict[str, Any] | None) -> dict[str, Any] | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise AssetDefinitionError(f"metadata of '{owner}' must be a dict[str, str], got {type(metadata).__name__}")
    for key, value in metadata.items():
        if key == _SCHEMA_KEY:
            continue
        if not isinstance(key, str) or not isinstance(value, str):
            raise AssetDefinitionError(
                f"static metadata of '{owner}' must map str to str; key {key!r} has a {type(value).__name__} "
                f"value (only '{_SCHEMA_KEY}' accepts a non-str value)"
            )
    return dict(metadata)


def _check_io_handler(owner: str, handler: Any, parameter: str = "io_handler") -> Any:
    if handler is None or isinstance(handler, str):
        return handler
    from rivers.io_handlers.base import BaseIOHandler

    if not isinstance(handler, BaseIOHandler):
        raise AssetDefinitionError(
            f"{parameter} of '{owner}' must be a BaseIOHandler instance or a resource key (str), got "
            f"{type(handler).__name__}"
        )
    return handler


def _check_hooks(owner: str, hooks: list[Any] | None) -> list[Any] | None:
    if hooks is None:
        return None
    from rivers._definitions.hooks import Hook

    for hook in hooks:
        if not isinstance(hook, Hook):
            raise AssetDefinitionError(
                f"hooks of '{owner}' must be Hook objects (from @rs.Hook.success / @rs.Hook.failure), got "
                f"{type(hook).__name__}"
            )
    return list(hooks)


def _check_retry(owner: str, retry: Any) -> Any:
    if retry is None or isinstance(retry, str):
        return retry
    from rivers._definitions.retry import RetryPolicy

    if not isinstance(retry, RetryPolicy):
        raise AssetDefinitionError(f"retry of '{owner}' must be a RetryPolicy or a registered policy name")
    return retry


class DepDef:
    """An explicit dependency, built by :meth:`AssetDef.input` or :meth:`AssetDef.dep`."""

    __slots__ = ("name", "partition_mapping", "metadata", "io_handler", "is_input")

    def __init__(
        self,
        name: str,
        partition_mapping: Any | None = None,
        metadata: dict[str, str] | None = None,
        io_handler: Any | None = None,
        is_input: bool = True,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError("a dependency name must be a non-empty str")
        self.name = name
        self.partition_mapping = partition_mapping
        self.metadata = metadata
        self.io_handler = io_handler
        self.is_input = is_input

    def __repr__(self) -> str:
        kind = "input" if self.is_input else "dep"
        return f"AssetDef.{kind}({self.name!r})"


class AssetDef:
    """An output definition of a multi-asset; also the home of ``AssetDef.input`` / ``AssetDef.dep``."""

    def __init__(
        self,
        name: str,
        tags: list[str] | None = None,
        kinds: str | list[str] | None = None,
        group: str | None = None,
        code_version: str | None = None,
        io_handler: Any | None = None,
        metadata: dict[str, str] | None = None,
        partitions_def: Any | None = None,
        partition_mapping: dict[Any, Any] | None = None,
        pool: str | list[str] | None = None,
        pool_slots: int | dict[str, int] | None = None,
        deps: list[DepDef] | None = None,
        retry: Any | None = None,
    ) -> None:
        self.name = name
        self.tags = tags
        self.kinds = _normalize_kinds(kinds)
        self.group = group
        self.code_version = code_version
        self.io_handler = _check_io_handler(name, io_handler)
        self.metadata = _check_metadata(name, metadata)
        self.partitions_def = partitions_def
        self.partition_mapping = (
            {(k.name if isinstance(k, AssetDef) else k): v for k, v in partition_mapping.items()}
            if partition_mapping
            else None
        )
        self.pool = _normalize_pool(name, pool, pool_slots)
        self.deps = list(deps) if deps else []
        self.retry = _check_retry(name, retry)

    def __hash__(self) -> int:
        return hash(("AssetDef", self.name))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AssetDef) and other.name == self.name

    def __repr__(self) -> str:
        return f"AssetDef({self.name!r})"

    @staticmethod
    def input(
        name: str,
        partition_mapping: Any | None = None,
        io_handler: Any | None = None,
        metadata: dict[str, str] | None = None,
    ) -> DepDef:
        """A data dependency loaded into the parameter of the same name."""
        return DepDef(name, partition_mapping, metadata, _check_io_handler(name, io_handler), is_input=True)

    @staticmethod
    def dep(name: str, partition_mapping: Any | None = None) -> DepDef:
        """An ordering/lineage-only dependency; nothing is loaded."""
        return DepDef(name, partition_mapping, None, None, is_input=False)


class Asset:
    """Declare an asset: ``@rs.Asset`` or ``@rs.Asset(name=..., ...)``.

    The variants ``Asset.external(...)`` (data produced outside rivers) share this class, so
    ``isinstance(x, rs.Asset)`` holds for every asset type.
    """

    is_single = False
    is_multi = False
    is_graph = False
    is_external = False

    def __new__(  # noqa: D102 - the class docstring documents the decorator
        cls,
        f: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        tags: list[str] | None = None,
        kinds: str | list[str] | None = None,
        group: str | None = None,
        code_version: str | None = None,
        io_handler: Any | None = None,
        metadata: dict[str, str] | None = None,
        partitions_def: Any | None = None,
        deps: list[DepDef] | None = None,
        hooks: list[Any] | None = None,
        automation_condition: Any | None = None,
        backfill_strategy: Any | None = None,
        pool: str | list[str] | None = None,
        pool_slots: int | dict[str, int] | None = None,
        retry: Any | None = None,
        compute: Any | None = None,
    ) -> Any:
        options = _declared(locals())
        if f is not None:
            return SingleAsset._build(f, **options)
        return lambda fn: SingleAsset._build(fn, **options)

    @classmethod
    def from_multi(
        cls,
        wraps: Callable[..., Any] | None = None,
        output_defs: list[AssetDef] | None = None,
        name: str | None = None,
        tags: list[str] | None = None,
        kinds: str | list[str] | None = None,
        group: str | None = None,
        code_version: str | None = None,
        io_handler: Any | None = None,
        partitions_def: Any | None = None,
        deps: list[DepDef] | None = None,
        hooks: list[Any] | None = None,
        automation_condition: Any | None = None,
        compute: Any | None = None,
        retry: Any | None = None,
        *,
        metadata: dict[str, str] | None = None,
        backfill_strategy: Any | None = None,
        pool: str | list[str] | None = None,
        pool_slots: int | dict[str, int] | None = None,
    ) -> Any:
        """One function producing several assets (``output_defs``), returned as a ``dict`` or
        yielded as ``Output`` / ``Materialization`` items."""
        if output_defs is None:
            raise TypeError("Asset.from_multi() missing required argument: 'output_defs'")
        options = _declared(locals())
        if wraps is not None:
            return MultiAsset._build(wraps, **options)
        return lambda fn: MultiAsset._build(fn, **options)

    @classmethod
    def from_graph(
        cls,
        wraps: Callable[..., Any] | None = None,
        name: str | None = None,
        tags: list[str] | None = None,
        kinds: str | list[str] | None = None,
        group: str | None = None,
        code_version: str | None = None,
        io_handler: Any | None = None,
        node_io_handler: Any | None = None,
        metadata: dict[str, str] | None = None,
        partitions_def: Any | None = None,
        deps: list[DepDef] | None = None,
        hooks: list[Any] | None = None,
        automation_condition: Any | None = None,
        retry: Any | None = None,
    ) -> Any:
        """A graph asset: the body composes tasks (it runs once, now, in recording mode) and
        the returned task's value becomes the asset's value."""
        options = _declared(locals())
        from rivers._definitions.graph import GraphAsset as Graph

        if wraps is not None:
            return Graph._build(wraps, **options)
        return lambda fn: Graph._build(fn, **options)

    @classmethod
    def external(
        cls,
        wraps: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        io_handler: Any,
        tags: list[str] | None = None,
        kinds: str | list[str] | None = None,
        group: str | None = None,
        metadata: dict[str, str] | None = None,
        partitions_def: Any | None = None,
        automation_condition: Any | None = None,
    ) -> ExternalAsset:
        """An asset produced outside rivers; downstream assets load it through ``io_handler``."""
        asset = object.__new__(ExternalAsset)
        asset._init_common(
            name=name or "",
            tags=tags,
            kinds=kinds,
            group=group,
            code_version=None,
            io_handler=io_handler,
            metadata=metadata,
            partitions_def=partitions_def,
            deps=None,
            hooks=None,
            automation_condition=automation_condition,
            pool=None,
            pool_slots=None,
        )
        asset.observe_fn = None
        if wraps is not None:
            asset(wraps)
        return asset

    # -- shared construction -----------------------------------------------------------

    def _init_declared(self, name: str, options: dict[str, Any], **overrides: Any) -> None:
        """``_init_common`` from a decorator's options (``_declared``), with ``overrides``."""
        fields = {key: options.get(key) for key in _COMMON_FIELDS}
        fields.update(overrides)
        self._init_common(name=name, **fields)

    def _init_common(
        self,
        *,
        name: str,
        tags: list[str] | None,
        kinds: str | list[str] | None,
        group: str | None,
        code_version: str | None,
        io_handler: Any,
        metadata: dict[str, str] | None,
        partitions_def: Any,
        deps: list[DepDef] | None,
        hooks: list[Any] | None,
        automation_condition: Any,
        pool: str | list[str] | None,
        pool_slots: int | dict[str, int] | None,
    ) -> None:
        self.name = name
        self.tags = list(tags) if tags is not None else None
        self.kinds = _normalize_kinds(kinds)
        self.group = group
        self.code_version = code_version
        self._io_handler = _check_io_handler(name, io_handler)
        self.metadata = _check_metadata(name, metadata)
        self.partitions_def = partitions_def
        self.deps = list(deps) if deps else []
        for dep in self.deps:
            if not isinstance(dep, DepDef):
                raise AssetDefinitionError(
                    f"deps of '{name}' must be built with AssetDef.input(...) or AssetDef.dep(...)"
                )
        mappings = {d.name: d.partition_mapping for d in self.deps if d.partition_mapping is not None}
        self.partition_mapping = mappings or None
        self.hooks = _check_hooks(name, hooks)
        self.automation_condition = automation_condition
        self.pool = _normalize_pool(name, pool, pool_slots)
        self.observe_fn: Callable[..., Any] | None = None
        self.is_async = False
        self.backfill_strategy = None
        self.retry = None
        self.compute = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class SingleAsset(Asset):
    """One function, one output."""

    is_single = True
    fn: Callable[..., Any]
    _params: list[ParamSpec]
    _config_type: Any
    _return_hint: Any
    __wrapped__: Callable[..., Any]

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("SingleAsset is created with the @rs.Asset decorator")

    @classmethod
    def _build(cls, fn: Callable[..., Any], **options: Any) -> SingleAsset:
        if not callable(fn):
            raise AssetDefinitionError(f"@rs.Asset must decorate a function, got {type(fn).__name__}")
        asset = object.__new__(cls)
        name = options["name"] or fn.__name__
        asset._init_declared(name, options)
        asset.fn = fn
        asset.is_async = inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)
        asset.backfill_strategy = options["backfill_strategy"]
        asset.retry = _check_retry(name, options["retry"])
        asset.compute = options["compute"]
        asset._params, asset._config_type, asset._return_hint = inspect_function(fn, name)
        param_names = {p.name for p in asset._params}
        for dep in asset.deps:
            if dep.is_input and dep.name not in param_names:
                raise AssetDefinitionError(
                    f"AssetDef.input('{dep.name}') on '{name}' names no parameter of the function; add a "
                    f"parameter '{dep.name}' or use AssetDef.dep('{dep.name}') for an ordering-only edge"
                )
        asset.__doc__ = fn.__doc__
        asset.__wrapped__ = fn
        return asset

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Calls the asset function directly (e.g. in tests); inside a graph body, a
        dependency on this asset."""
        from rivers._definitions.composition import recording

        recorder = recording()
        if recorder is not None:
            return recorder.invoke_asset(self, args, kwargs)
        return self.fn(*args, **kwargs)

    def __reduce__(self) -> Any:
        # Module-level assets travel to worker processes by reference and are re-imported there;
        # closures and objects of `__main__` cannot be re-imported and travel by value.
        if not travels_by_reference(self.fn):
            # The state is the third item, set after the object exists, so objects that point
            # back at it (a graph's internal nodes) unpickle to this same object.
            return (new_definition, (type(self),), shipped_state(self))
        return (_import_asset, (self.fn.__module__, self.fn.__qualname__, self.name))


def _same_policy(a: Any, b: Any) -> bool:
    """Retry declarations agree: the same name, the same object, or policies built alike."""
    if a is b or (isinstance(a, str) and a == b):
        return True
    return not isinstance(a, str) and not isinstance(b, str) and repr(a) == repr(b)


def travels_by_reference(fn: Callable[..., Any]) -> bool:
    """Whether workers re-import the asset of ``fn`` rather than receive it by value:
    module-level functions of importable modules do; closures and ``__main__`` objects do not."""
    return "<locals>" not in fn.__qualname__ and fn.__module__ != "__main__"


def new_definition(cls: type) -> Any:
    """An empty definition object (asset, task, internal node) of ``cls`` for pickle to fill
    with its state (their ``__new__`` refuses, or decorates)."""
    return object.__new__(cls)


def shipped_state(definition: Any) -> dict[str, Any]:
    """The state a definition travels by value with: all but its cached core form
    (``_node_spec``), which is process-local and which workers do not need."""
    return {key: value for key, value in definition.__dict__.items() if key != "_node_spec"}


def _import_asset(module: str, qualname: str, name: str) -> Any:
    import importlib

    try:
        target: Any = importlib.import_module(module)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as err:
        raise AssetDefinitionError(
            f"the parallel executor could not import asset '{name}' as {module}.{qualname} in a worker "
            f"process ({err}); define assets at module scope in a module importable from the worker's "
            "sys.path, or pin the asset to the calling process with metadata {'rivers/executor': 'in_process'}"
        ) from err
    if not isinstance(target, Asset):
        raise AssetDefinitionError(f"'{module}.{qualname}' is not the asset '{name}' in the worker process")
    return target


class MultiAsset(Asset):
    """One function, several named outputs (``Asset.from_multi``). The function runs once per
    step; downstream assets depend on individual outputs."""

    is_multi = True
    fn: Callable[..., Any]
    output_defs: list[AssetDef]
    is_generator: bool
    _params: list[ParamSpec]
    _config_type: Any
    _return_hint: Any
    __wrapped__: Callable[..., Any]

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("MultiAsset is created with rs.Asset.from_multi(...)")

    @classmethod
    def _build(cls, fn: Callable[..., Any], **options: Any) -> MultiAsset:
        if not callable(fn):
            raise AssetDefinitionError(f"Asset.from_multi must decorate a function, got {type(fn).__name__}")
        name = options["name"] or fn.__name__
        output_defs = list(options["output_defs"])
        if not output_defs:
            raise AssetDefinitionError(f"multi-asset '{name}' has no output_defs; declare at least one AssetDef")
        seen: set[str] = set()
        for output in output_defs:
            if not isinstance(output, AssetDef):
                raise AssetDefinitionError(
                    f"output_defs of '{name}' must be AssetDef objects, got {type(output).__name__}"
                )
            if output.name in seen:
                raise AssetDefinitionError(
                    f"multi-asset '{name}' declares output '{output.name}' twice; output names must be unique"
                )
            seen.add(output.name)
        # Input deps of outputs join the function's one input set (the function runs once
        # for all outputs); lineage-only deps stay with their output.
        deps = list(options["deps"] or [])
        for output in output_defs:
            deps.extend(dep for dep in output.deps if dep.is_input and all(d.name != dep.name for d in deps))
        pools = list(options["pool"]) if isinstance(options["pool"], list) else options["pool"]
        asset = object.__new__(cls)
        asset._init_declared(name, options, deps=deps, pool=pools)
        # The one step claims each pool once, with the largest count any output asks for.
        for output in output_defs:
            for pool_name, slots in output.pool:
                held = next((i for i, (existing, _) in enumerate(asset.pool) if existing == pool_name), None)
                if held is None:
                    asset.pool.append((pool_name, slots))
                else:
                    asset.pool[held] = (pool_name, max(slots, asset.pool[held][1]))
        mappings = dict(asset.partition_mapping or {})
        for output in output_defs:
            mappings.update(output.partition_mapping or {})
        asset.partition_mapping = mappings or None
        asset.output_defs = output_defs
        asset.fn = fn
        asset.is_async = inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)
        asset.is_generator = inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn)
        asset.backfill_strategy = options["backfill_strategy"]
        asset.retry = _check_retry(name, options["retry"])
        asset.compute = options["compute"]
        asset._params, asset._config_type, asset._return_hint = inspect_function(fn, name)
        param_names = {p.name for p in asset._params}
        for dep in asset.deps:
            if dep.is_input and dep.name not in param_names:
                raise AssetDefinitionError(
                    f"AssetDef.input('{dep.name}') on '{name}' names no parameter of the function; add a "
                    f"parameter '{dep.name}' or use AssetDef.dep('{dep.name}') for an ordering-only edge"
                )
        asset.__doc__ = fn.__doc__
        asset.__wrapped__ = fn
        return asset

    @property
    def output_names(self) -> list[str]:
        return [output.name for output in self.output_defs]

    def output_def(self, name: str) -> AssetDef:
        for output in self.output_defs:
            if output.name == name:
                return output
        raise KeyError(name)

    def effective_retry(self) -> Any:
        """The step's policy: ``from_multi(retry=...)``, else the one every output that sets a
        policy agrees on; ``AssetDefinitionError`` when outputs disagree."""
        if self.retry is not None:
            return self.retry
        policies = [(o.name, o.retry) for o in self.output_defs if o.retry is not None]
        for output_name, policy in policies[1:]:
            if not _same_policy(policy, policies[0][1]):
                raise AssetDefinitionError(
                    f"outputs '{policies[0][0]}' and '{output_name}' of multi-asset '{self.name}' set different "
                    "retry policies; all outputs are retried together, so set one policy with "
                    "Asset.from_multi(retry=...)"
                )
        return policies[0][1] if policies else None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Calls the function directly (e.g. in tests)."""
        return self.fn(*args, **kwargs)

    def __reduce__(self) -> Any:
        return SingleAsset.__reduce__(self)  # type: ignore[arg-type]


class ExternalAsset(Asset):
    """Data produced outside rivers; never materialized, loadable by downstream assets."""

    is_external = True
    _params: list[ParamSpec]
    _config_type: Any

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("ExternalAsset is created with rs.Asset.external(...)")

    def __call__(self, fn: Callable[..., Any] | None = None) -> Any:
        """Attaches ``fn`` as the observation function (decorator form); inside a graph body,
        ``asset()`` is a dependency on this asset."""
        from rivers._definitions.composition import recording

        recorder = recording()
        if recorder is not None and fn is None:
            return recorder.invoke_asset(self, (), {})
        if fn is None or not callable(fn):
            raise AssetDefinitionError("Asset.external(...) can only decorate a function")
        self.observe_fn = fn
        self.__dict__.pop("_node_spec", None)  # the definition changed: convert it again
        if not self.name:
            self.name = fn.__name__
        self.is_async = inspect.iscoroutinefunction(fn)
        self._params, self._config_type, _ = inspect_function(fn, self.name)
        return self
