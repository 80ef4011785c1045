"""Running one step body: bind parameters, load inputs, call the function, persist what it
produced through the IO handlers, run success hooks. The same code runs in the calling process
and in parallel-executor workers; the engine (scheduling, retries, events) lives in the core.

A step runs one node: a single asset, a multi-asset (one function, several outputs), or a task
(a Python function or a shell command, whose value is written without a materialization).
"""

from __future__ import annotations

import inspect
import json
import sys
import traceback
import typing
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from rivers._definitions.hooks import HookContext
from rivers._definitions.metadata import MetadataValue, encode
from rivers._definitions.results import Materialization, Observation, Output
from rivers._execution.context import AssetExecutionContext, SelfDependency, TaskExecutionContext
from rivers._execution.coroutines import run_coroutine
from rivers._execution.fan_out import StreamSource
from rivers._execution.io_context import InputContext, OutputContext
from rivers._execution.partitions import WHOLE, StepPartitions
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


class OutputTarget(NamedTuple):
    """Where one output of a step is written, and whether it is an asset (recorded as a
    materialization) or a task's value (written only)."""

    name: str
    handler: Any
    metadata: dict[str, str] | None
    code_version: str | None
    type_hint: Any
    is_asset: bool = True


@dataclass
class StepSpec:
    """Everything needed to run one step, resolved by the repository."""

    node: Any
    outputs: dict[str, OutputTarget]
    inputs: dict[str, InputSpec]
    resources: dict[str, Any]
    config_overrides: dict[str, Any] | None
    run_id: str
    # The outputs this step persists (a multi-asset's selection; every output otherwise).
    output_selection: list[str] = field(default_factory=list)
    # Values bound to parameters by the composition of a graph asset.
    constants: dict[str, Any] = field(default_factory=dict)
    partitions: StepPartitions | None = None
    hook_state: dict[str, Any] = field(default_factory=dict)
    # What this attempt persisted so far; a failing attempt reports it all the same.
    persisted: list[Persisted] = field(default_factory=list)
    # The step key when it differs from the node name (a fan-out instance, `graph/task[key]`).
    step_key: str | None = None
    # A fan-out template: the instance keys its producer's value gives (the step runs no body),
    # and the elements by key, which its instances receive.
    fan_out: list[str] | None = None
    elements: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.step_key or str(self.node.name)

    @property
    def partition(self) -> Any:
        """The step's ``PartitionContext``; ``None`` when it is unpartitioned."""
        return self.partitions.context if self.partitions is not None else None

    @property
    def failed_partitions(self) -> list[tuple[str, str]]:
        """``(display form, message)`` of the partitions the body marked failed."""
        return list(self.partitions.failed.items()) if self.partitions is not None else []


def build_config(node: Any, overrides: dict[str, Any] | None) -> Any:
    """Instantiates the node's config class from defaults, environment and overrides."""
    config_type = node._config_type
    if config_type is None:
        return None
    try:
        return config_type(**(overrides or {}))
    except Exception as err:
        raise ExecutionError(f"config for '{node.name}' failed validation: {err}") from err


def _load_self(spec: StepSpec, type_hint: Any) -> Any:
    target = spec.outputs[spec.name]
    context = InputContext(target.name, target.name, target.metadata, spec.partition, type_hint)
    try:
        return target.handler.load_input(context)
    except (KeyError, FileNotFoundError):
        return None


def _bind(spec: StepSpec, context: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for param in spec.node._params:
        if param.role == "context" or (param.role == "context_by_name" and param.name not in spec.inputs):
            kwargs[param.name] = context
        elif param.role == "misplaced_context":
            raise ExecutionError(f"Context must be the first parameter of '{spec.name}'")
        elif param.role == "self":
            args = getattr(param.annotation, "__args__", None)
            kwargs[param.name] = SelfDependency(_load_self(spec, args[0] if args else None))
        elif param.name in spec.constants:
            value = spec.constants[param.name]
            # A collect_stream() value: a fresh iterator for each attempt.
            kwargs[param.name] = value.open() if isinstance(value, StreamSource) else value
        elif param.name in spec.inputs:
            source = spec.inputs[param.name]
            partition = spec.partitions.input(source.upstream) if spec.partitions is not None else WHOLE
            if partition is None:  # the mapping selects nothing for this step's partitions
                kwargs[param.name] = None
                continue
            read = None if partition is WHOLE else partition
            load = InputContext(source.upstream, spec.name, source.asset_metadata, read, param.annotation)
            kwargs[param.name] = source.handler.load_input(load)
        elif param.name in spec.resources:
            kwargs[param.name] = spec.resources[param.name]
    return kwargs


# StoredEvent has no tags field: the tags of an Output / Materialization are recorded in the
# event's metadata under this key, as a JSON array of strings.
EVENT_TAGS_KEY = "rivers/tags"


def _with_tags(pairs: list[tuple[str, str]], tags: list[str] | None) -> list[tuple[str, str]]:
    if tags:
        pairs.append((EVENT_TAGS_KEY, json.dumps([str(tag) for tag in tags])))
    return pairs


def _write(spec: StepSpec, context: Any, target: OutputTarget, result: Any) -> Any:
    """Persists one produced result under ``target``; returns the bare value. An asset's write
    is recorded in ``spec.persisted``."""
    if isinstance(result, Observation):
        raise ResultDefinitionError(
            f"'{spec.name}' produced an Observation; only external assets' observation functions may"
        )
    recording = isinstance(context, AssetExecutionContext)
    metadata: dict[str, MetadataValue] = dict(context._output_metadata) if recording else {}
    registered = context._data_version if recording else None
    if isinstance(result, Materialization):
        metadata.update(result.metadata or {})
        if target.is_asset:
            version = result.data_version or registered
            pairs = _with_tags(encode(metadata), result.tags)
            spec.persisted.append(Persisted(target.name, pairs, version, target.code_version))
        return None
    explicit = None
    value = result
    if isinstance(result, Output):
        metadata.update(result.metadata or {})
        explicit = result.data_version
        value = result.value
    partition = spec.partitions.written() if spec.partitions is not None else None
    if partition is False:  # every partition of the step was marked failed: nothing to write
        return value
    output = OutputContext(target.name, target.metadata, partition, target.type_hint)
    output._output_metadata = metadata
    target.handler.handle_output(output, value)
    if target.is_asset:
        version = explicit or registered or output.drain_data_version()
        tags = result.tags if isinstance(result, Output) else None
        pairs = _with_tags(encode(output._output_metadata), tags)
        spec.persisted.append(Persisted(target.name, pairs, version, target.code_version))
    return value


def run_hooks(
    spec: StepSpec,
    hook_type: str,
    output: Any = None,
    error: str | None = None,
    config: Any = None,
    asset_name: str | None = None,
) -> None:
    """Runs the node's hooks of one type in list order; a raising hook is reported on stderr."""
    node = spec.node
    for hook in getattr(node, "hooks", None) or ():
        if hook.hook_type != hook_type or hook.func is None:
            continue
        name = asset_name or node.name
        metadata = spec.outputs[name].metadata if name in spec.outputs else node.metadata
        context = HookContext(name, spec.run_id, hook_type, output, error, metadata, config)
        try:
            hook.func(context)
        except Exception:
            print(f"rivers: {hook_type} hook '{hook.name}' of '{name}' raised:", file=sys.stderr)
            traceback.print_exc()


def run_failure_hooks(spec: StepSpec, message: str) -> None:
    """Failure hooks after a step's final failed attempt: once per selected output of a
    multi-asset, once otherwise."""
    config = failure_hook_config(spec)
    if getattr(spec.node, "is_multi", False):
        for name in spec.output_selection:
            run_hooks(spec, "failure", error=message, config=config, asset_name=name)
    else:
        run_hooks(spec, "failure", error=message, config=config)


def failure_hook_config(spec: StepSpec) -> Any:
    """The config failure hooks receive: the one the body ran with, else built now; ``None``
    when it cannot be built (an invalid config is then what failed the step, and the hooks
    still run)."""
    config = spec.hook_state.get("config")
    if config is not None:
        return config
    try:
        return build_config(spec.node, spec.config_overrides)
    except Exception:
        return None


def _wants_task_context(node: Any) -> bool:
    """A task receives a ``TaskExecutionContext`` unless its context parameter asks for an
    ``AssetExecutionContext`` (by annotation, or unannotated and named ``context``)."""
    for param in node._params:
        if param.role == "context":
            origin = typing.get_origin(param.annotation) or param.annotation
            return isinstance(origin, type) and issubclass(origin, TaskExecutionContext)
    return False


def _context(spec: StepSpec, config: Any) -> Any:
    """The execution context the body receives; ``None`` when no parameter takes one (nothing
    could then add output metadata or register a data version)."""
    node = spec.node
    if not any(param.role in ("context", "context_by_name") for param in node._params):
        return None
    if getattr(node, "is_task", False):
        if _wants_task_context(node):
            task_context: TaskExecutionContext[Any] = TaskExecutionContext(spec.name, node.tags, spec.partition)
            task_context._config = config
            task_context.run_id = spec.run_id
            return task_context
        selection = [spec.name]
    else:
        selection = list(spec.output_selection)
    context: AssetExecutionContext[Any] = AssetExecutionContext(
        spec.name,
        node.tags,
        getattr(node, "kinds", None),
        getattr(node, "group", None),
        getattr(node, "code_version", None),
        getattr(node, "metadata", None),
        spec.partition,
        bool(getattr(node, "is_multi", False)),
        selection,
        config,
    )
    context.run_id = spec.run_id
    if spec.partitions is not None:
        context._partitions = spec.partitions
    return context


def _begin(spec: StepSpec) -> tuple[Any, dict[str, Any]]:
    """Builds the step's config and context and binds its parameters (loading inputs)."""
    if spec.partitions is not None and spec.partitions.error is not None:
        raise ExecutionError(f"step '{spec.name}' cannot run: {spec.partitions.error}")
    config = build_config(spec.node, spec.config_overrides)
    spec.hook_state["config"] = config
    context = _context(spec, config)
    return context, _bind(spec, context)


class _MultiOutputs:
    """The outputs one multi-asset step produced so far: checks each item names a declared,
    not yet produced output, and persists the selected ones."""

    def __init__(self, spec: StepSpec, context: Any) -> None:
        self.spec = spec
        self.context = context
        self.produced: set[str] = set()

    def take(self, output_name: str | None, item: Any) -> None:
        spec = self.spec
        if output_name is None:
            raise ResultDefinitionError(
                f"multi-asset '{spec.name}' produced {type(item).__name__} without output_name; name the output it "
                f"belongs to (one of {spec.node.output_names})"
            )
        if output_name not in spec.outputs:
            raise ResultDefinitionError(
                f"multi-asset '{spec.name}' produced output '{output_name}', which is not in its output_defs "
                f"{spec.node.output_names}"
            )
        if output_name in self.produced:
            raise ResultDefinitionError(f"multi-asset '{spec.name}' produced output '{output_name}' twice")
        self.produced.add(output_name)
        if output_name not in spec.output_selection:
            return  # not selected: discarded without an IO call or event
        value = _write(spec, self.context, spec.outputs[output_name], item)
        run_hooks(spec, "success", output=value, config=spec.hook_state.get("config"), asset_name=output_name)

    def take_dict(self, result: dict[Any, Any]) -> None:
        for key, item in result.items():
            if isinstance(item, (Output, Materialization)) and item.output_name not in (None, key):
                raise ResultDefinitionError(
                    f"multi-asset '{self.spec.name}' returned {type(item).__name__}(output_name="
                    f"{item.output_name!r}) under key '{key}'; the output_name must equal the key"
                )
            self.take(key, item)

    def take_yielded(self, item: Any) -> None:
        if not isinstance(item, (Output, Materialization)):
            raise ResultDefinitionError(
                f"multi-asset '{self.spec.name}' yielded {type(item).__name__}; yield rs.Output(value, "
                "output_name=...) or rs.Materialization(output_name=...)"
            )
        self.take(item.output_name, item)


def _not_dict_or_generator(spec: StepSpec, result: Any) -> ResultDefinitionError:
    return ResultDefinitionError(
        f"multi-asset '{spec.name}' returned {type(result).__name__}; return a dict keyed by output name or yield "
        "rs.Output(..., output_name=...) items"
    )


def _end(spec: StepSpec, context: Any, result: Any) -> list[Persisted]:
    """Persists the body's result and runs the success hooks."""
    node = spec.node
    if getattr(node, "is_multi", False):
        outputs = _MultiOutputs(spec, context)
        if isinstance(result, Iterator):
            for item in result:
                outputs.take_yielded(item)
        elif isinstance(result, dict):
            outputs.take_dict(result)
        else:
            raise _not_dict_or_generator(spec, result)
        return spec.persisted
    if getattr(node, "is_task", False) and inspect.isgenerator(result):
        result = list(result)  # a generator task's value is everything it yielded, in order
    if isinstance(result, (Output, Materialization)) and result.output_name not in (None, spec.name):
        raise ResultDefinitionError(
            f"'{spec.name}' returned {type(result).__name__}(output_name={result.output_name!r}); a single "
            f"output's output_name must be None or '{spec.name}'"
        )
    value = _write(spec, context, spec.outputs[spec.name], result)
    run_hooks(spec, "success", output=value, config=spec.hook_state.get("config"))
    return spec.persisted


def _call(spec: StepSpec, kwargs: dict[str, Any]) -> Any:
    node = spec.node
    if getattr(node, "is_graph", False):
        return kwargs["value"]  # the dual write: the final node's value under the graph's name
    if getattr(node, "is_bash", False):
        return node.run_in_step()
    return node.fn(**kwargs)


def run_step_body(spec: StepSpec) -> list[Persisted]:
    """Executes a step and returns what it persisted; raises the step's exception (what was
    persisted before it stays in ``spec.persisted``)."""
    spec.persisted = []
    context, kwargs = _begin(spec)
    result = _call(spec, kwargs)
    if inspect.iscoroutine(result):  # a plain function that returned a coroutine
        result = run_coroutine(result)
    if isinstance(result, AsyncIterator):
        result = _drain_async(result)
    return _end(spec, context, result)


def _drain_async(generator: AsyncIterator[Any]) -> Iterator[Any]:
    """Iterates an async generator from synchronous code (a sync step's body)."""

    async def next_item() -> Any:
        return await anext(generator)

    while True:
        try:
            yield run_coroutine(next_item())
        except StopAsyncIteration:
            return


async def run_async_step_body(spec: StepSpec) -> list[Persisted]:
    """Executes an ``async def`` step on the running event loop. Inputs are loaded and outputs
    persisted on the loop too: IO handlers are synchronous, as they are for sync steps."""
    spec.persisted = []
    context, kwargs = _begin(spec)
    call = spec.node.fn(**kwargs)
    if isinstance(call, AsyncIterator):
        if not getattr(spec.node, "is_multi", False):
            return _end(spec, context, [item async for item in call])
        outputs = _MultiOutputs(spec, context)
        async for item in call:
            outputs.take_yielded(item)
        return spec.persisted
    return _end(spec, context, await call)
