"""Running one asset step body: bind parameters, load inputs, call the function, persist the
result through the IO handler, run success hooks. The same code runs in the calling process and
in parallel-executor workers; the engine (scheduling, retries, events) lives in the core.
"""

from __future__ import annotations

import inspect
import json
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any

from rivers._definitions.hooks import HookContext
from rivers._definitions.metadata import MetadataValue, encode
from rivers._definitions.results import Materialization, Observation, Output
from rivers._execution.context import AssetExecutionContext, SelfDependency
from rivers._execution.coroutines import run_coroutine
from rivers._execution.io_context import InputContext, OutputContext
from rivers.exceptions import ExecutionError, ResultDefinitionError


@dataclass(frozen=True, slots=True)
class Persisted:
    """One asset value a step persisted (or a ``Materialization`` it returned); plain data, so
    that it travels back from parallel-executor workers."""

    asset_key: str
    metadata: list[tuple[str, str]]
    data_version: str | None
    code_version: str | None


@dataclass
class InputSpec:
    """How one data parameter is loaded."""

    upstream: str
    handler: Any
    asset_metadata: dict[str, str] | None


@dataclass
class StepSpec:
    """Everything needed to run one asset step, resolved by the repository."""

    asset: Any
    output_handler: Any
    inputs: dict[str, InputSpec]
    resources: dict[str, Any]
    config_overrides: dict[str, Any] | None
    run_id: str
    partition: Any = None
    hook_state: dict[str, Any] = field(default_factory=dict)


def build_config(asset: Any, overrides: dict[str, Any] | None) -> Any:
    """Instantiates the asset's config class from defaults, environment and overrides."""
    config_type = asset._config_type
    if config_type is None:
        return None
    try:
        return config_type(**(overrides or {}))
    except Exception as err:
        raise ExecutionError(f"config for '{asset.name}' failed validation: {err}") from err


def _load_self(spec: StepSpec, type_hint: Any) -> Any:
    asset = spec.asset
    context = InputContext(asset.name, asset.name, asset.metadata, spec.partition, type_hint)
    try:
        return spec.output_handler.load_input(context)
    except (KeyError, FileNotFoundError):
        return None


def _bind(spec: StepSpec, context: AssetExecutionContext[Any]) -> dict[str, Any]:
    asset = spec.asset
    kwargs: dict[str, Any] = {}
    for param in asset._params:
        if param.role == "context" or (param.role == "context_by_name" and param.name not in spec.inputs):
            kwargs[param.name] = context
        elif param.role == "misplaced_context":
            raise ExecutionError(f"Context must be the first parameter of '{asset.name}'")
        elif param.role == "self":
            args = getattr(param.annotation, "__args__", None)
            kwargs[param.name] = SelfDependency(_load_self(spec, args[0] if args else None))
        elif param.name in spec.inputs:
            source = spec.inputs[param.name]
            load = InputContext(source.upstream, asset.name, source.asset_metadata, spec.partition, param.annotation)
            kwargs[param.name] = source.handler.load_input(load)
        elif param.name in spec.resources:
            kwargs[param.name] = spec.resources[param.name]
    return kwargs


def _check_output_name(asset_name: str, result: Output | Materialization) -> None:
    if result.output_name is not None and result.output_name != asset_name:
        raise ResultDefinitionError(
            f"asset '{asset_name}' returned {type(result).__name__}(output_name={result.output_name!r}); "
            f"a single asset's output_name must be None or '{asset_name}'"
        )


def _persist(spec: StepSpec, context: AssetExecutionContext[Any], result: Any) -> tuple[Persisted, Any]:
    asset = spec.asset
    metadata: dict[str, MetadataValue] = dict(context._output_metadata)
    registered = context.drain_data_version()
    if isinstance(result, Observation):
        raise ResultDefinitionError(
            f"asset '{asset.name}' returned an Observation; only external assets' observation functions may"
        )
    if isinstance(result, Materialization):
        _check_output_name(asset.name, result)
        metadata.update(result.metadata or {})
        version = result.data_version or registered
        return Persisted(asset.name, _with_tags(encode(metadata), result.tags), version, asset.code_version), None
    explicit = None
    value = result
    if isinstance(result, Output):
        _check_output_name(asset.name, result)
        metadata.update(result.metadata or {})
        explicit = result.data_version
        value = result.value
    output = OutputContext(asset.name, asset.metadata, spec.partition, asset._return_hint)
    output._output_metadata = metadata
    spec.output_handler.handle_output(output, value)
    version = explicit or registered or output.drain_data_version()
    tags = result.tags if isinstance(result, Output) else None
    return Persisted(asset.name, _with_tags(encode(output._output_metadata), tags), version, asset.code_version), value


# StoredEvent has no tags field: the tags of an Output / Materialization are recorded in the
# event's metadata under this key, as a JSON array of strings.
EVENT_TAGS_KEY = "rivers/tags"


def _with_tags(pairs: list[tuple[str, str]], tags: list[str] | None) -> list[tuple[str, str]]:
    if tags:
        pairs.append((EVENT_TAGS_KEY, json.dumps([str(tag) for tag in tags])))
    return pairs


def run_hooks(spec: StepSpec, hook_type: str, output: Any = None, error: str | None = None, config: Any = None) -> None:
    """Runs the asset's hooks of one type in list order; a raising hook is reported on stderr."""
    asset = spec.asset
    for hook in asset.hooks or ():
        if hook.hook_type != hook_type or hook.func is None:
            continue
        context = HookContext(asset.name, spec.run_id, hook_type, output, error, asset.metadata, config)
        try:
            hook.func(context)
        except Exception:
            print(f"rivers: {hook_type} hook '{hook.name}' of asset '{asset.name}' raised:", file=sys.stderr)
            traceback.print_exc()


def failure_hook_config(spec: StepSpec) -> Any:
    """The config failure hooks receive: the one the body ran with, else built now; ``None``
    when it cannot be built (an invalid config is then what failed the step, and the hooks
    still run)."""
    config = spec.hook_state.get("config")
    if config is not None:
        return config
    try:
        return build_config(spec.asset, spec.config_overrides)
    except Exception:
        return None


def _begin(spec: StepSpec) -> tuple[AssetExecutionContext[Any], dict[str, Any]]:
    """Builds the step's config and context and binds its parameters (loading inputs)."""
    asset = spec.asset
    config = build_config(asset, spec.config_overrides)
    spec.hook_state["config"] = config
    context: AssetExecutionContext[Any] = AssetExecutionContext(
        asset.name,
        asset.tags,
        asset.kinds,
        asset.group,
        asset.code_version,
        asset.metadata,
        spec.partition,
        False,
        [asset.name],
        config,
    )
    context.run_id = spec.run_id
    return context, _bind(spec, context)


def _end(spec: StepSpec, context: AssetExecutionContext[Any], result: Any) -> list[Persisted]:
    """Persists the body's result and runs the success hooks."""
    persisted, value = _persist(spec, context, result)
    run_hooks(spec, "success", output=value, config=context.config)
    return [persisted]


def run_step_body(spec: StepSpec) -> list[Persisted]:
    """Executes a step and returns what it persisted; raises the step's exception."""
    context, kwargs = _begin(spec)
    result = spec.asset.fn(**kwargs)
    if inspect.iscoroutine(result):  # a plain function that returned a coroutine
        result = run_coroutine(result)
    return _end(spec, context, result)


async def run_async_step_body(spec: StepSpec) -> list[Persisted]:
    """Executes an ``async def`` step on the running event loop. Inputs are loaded and outputs
    persisted on the loop too: IO handlers are synchronous, as they are for sync steps."""
    context, kwargs = _begin(spec)
    result = await spec.asset.fn(**kwargs)
    return _end(spec, context, result)
