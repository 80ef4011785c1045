"""Recording the composition of a graph asset.

The body of ``Asset.from_graph`` runs once, at definition time, in recording mode: calling a
task records an internal node (``graph/task``) and returns an :class:`InvokedNodeOutput`
handle; passing a handle to another task records a data edge; calling an asset records an
external dependency. The recorded nodes become ordinary steps of the plan.
"""

from __future__ import annotations

import inspect
from contextvars import ContextVar
from typing import Any, NamedTuple

from rivers._definitions.asset import ParamSpec
from rivers.exceptions import AssetDefinitionError, TaskDefinitionError

_recorder: ContextVar[GraphRecorder | None] = ContextVar("rivers_graph_recorder", default=None)

# Parameter roles that are never wired from the composition.
_CONTEXT_ROLES = ("context", "context_by_name", "misplaced_context", "self")


def recording() -> GraphRecorder | None:
    """The recorder of the graph body being run now, or ``None`` outside graph bodies."""
    return _recorder.get()


class InvokedNodeOutput:
    """A placeholder for a node's value inside a graph body; its value exists only at run
    time. Passing it to a task records a data edge."""

    __slots__ = ("_recorder", "_node_name", "_output_name", "_source", "_internal", "_gather")

    def __init__(
        self, recorder: GraphRecorder, node_name: str, source: str, internal: bool, gather: str | None = None
    ) -> None:
        self._recorder = recorder
        self._node_name = node_name
        self._output_name = "result"
        # The node whose value this is: `graph/task` for internal nodes, else an outer name.
        self._source = source
        self._internal = internal
        # A collect handle: how the fan-out's results are gathered.
        self._gather = gather

    @property
    def node_name(self) -> str:
        return self._node_name

    @property
    def output_name(self) -> str:
        return self._output_name

    def map(self, task: Any, *, max_concurrency: int | None = None) -> MappedOutput:
        """Runs ``task`` once per element of this handle's run-time value, each element a
        step of its own (``graph/task[key]``); collect the results with ``.collect()`` or
        ``.collect_stream()``."""
        if recording() is not self._recorder:
            raise AssetDefinitionError(
                f"{self._node_name}.map(...) is called outside the graph body that created the handle; map inside "
                "the body of Asset.from_graph"
            )
        return self._recorder.invoke_map(self, task, max_concurrency)

    def _refuse(self, *_: Any, **__: Any) -> Any:
        raise TypeError(
            f"the handle of '{self._node_name}' has no value while the graph is composed; pass it to a task, "
            "which receives the value at run time"
        )

    __bool__ = __iter__ = __getitem__ = __len__ = __contains__ = _refuse
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _refuse
    __lt__ = __le__ = __gt__ = __ge__ = _refuse

    def __repr__(self) -> str:
        return f"InvokedNodeOutput(node_name={self._node_name!r})"


class MappedOutput:
    """The instances of a fan-out inside a graph body; collect them before passing them on."""

    __slots__ = ("_recorder", "_node_name", "_template", "_template_name")

    def __init__(self, recorder: GraphRecorder, producer: InvokedNodeOutput, template: str, recorded: str) -> None:
        self._recorder = recorder
        self._node_name = producer.node_name
        self._template = template
        self._template_name = recorded

    @property
    def node_name(self) -> str:
        return self._node_name

    @property
    def output_name(self) -> str:
        return "result"

    def collect(self) -> InvokedNodeOutput:
        """A handle to the list of every instance's output, in element order; its consumers
        start once every instance succeeded."""
        return InvokedNodeOutput(self._recorder, self._template_name, self._template, True, "collect")

    def collect_stream(self, *, ordered: bool = False) -> InvokedNodeOutput:
        """A handle to an iterator over the instances' outputs: in completion order, or in
        element order with ``ordered=True``."""
        gather = "stream_ordered" if ordered else "stream"
        return InvokedNodeOutput(self._recorder, self._template_name, self._template, True, gather)

    def __repr__(self) -> str:
        return f"MappedOutput(node_name={self._node_name!r})"


class DynamicOutput:
    """One fan-out element with an explicit instance key (``graph/task[key]``)."""

    __slots__ = ("_key", "_value")

    def __init__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise TypeError(f"DynamicOutput key must be a str, got {type(key).__name__}")
        if not key or any(char in key for char in "/[]"):
            raise ValueError(f"DynamicOutput key {key!r} must be non-empty and free of '/', '[' and ']'")
        self._key = key
        self._value = value

    @property
    def key(self) -> str:
        return self._key

    @property
    def value(self) -> Any:
        return self._value

    def __reduce__(self) -> Any:
        return (DynamicOutput, (self._key, self._value))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DynamicOutput) and (other._key, other._value) == (self._key, self._value)

    def __hash__(self) -> int:
        return hash(self._key)

    def __repr__(self) -> str:
        return f"DynamicOutput(key={self._key!r}, value={self._value!r})"


class MapSettings(NamedTuple):
    """A fan-out template: the parameter each element binds to, and the concurrency cap."""

    element: str
    max_concurrency: int | None


class RecordedNode:
    """One task invocation recorded in a graph body."""

    __slots__ = ("name", "task", "params", "constants", "after", "map")

    def __init__(
        self,
        name: str,
        task: Any,
        params: list[ParamSpec],
        constants: dict[str, Any],
        after: list[str] | None = None,
        map: MapSettings | None = None,
    ) -> None:
        self.name = name  # graph/task[_n]
        self.task = task
        self.params = params
        self.constants = constants
        # Nodes this one runs after without reading their values (handles given to a BashTask).
        self.after = after or []
        self.map = map


class GraphRecorder:
    """Collects the internal nodes of one graph body while it runs."""

    def __init__(self, graph_name: str) -> None:
        self.graph_name = graph_name
        self.nodes: list[RecordedNode] = []
        self._counts: dict[str, int] = {}

    def __enter__(self) -> GraphRecorder:
        self._token = _recorder.set(self)
        return self

    def __exit__(self, *_: Any) -> None:
        _recorder.reset(self._token)

    def parameter(self, name: str) -> InvokedNodeOutput:
        """The handle a graph function parameter receives: the outer node of that name."""
        return InvokedNodeOutput(self, name, name, internal=False)

    def invoke_asset(self, asset: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> InvokedNodeOutput:
        if args or kwargs:
            raise AssetDefinitionError(
                f"graph '{self.graph_name}' calls asset '{asset.name}' with arguments; inside a graph body an asset "
                f"call only refers to its value: write {asset.name}()"
            )
        if getattr(asset, "is_multi", False):
            raise AssetDefinitionError(
                f"graph '{self.graph_name}' calls multi-asset '{asset.name}'; name one of its outputs "
                f"{asset.output_names} as a parameter of the graph function instead"
            )
        return InvokedNodeOutput(self, asset.name, asset.name, internal=False)

    def _node_name(self, task_name: str) -> tuple[str, str]:
        count = self._counts.get(task_name, 0) + 1
        self._counts[task_name] = count
        recorded = task_name if count == 1 else f"{task_name}_{count}"
        return recorded, f"{self.graph_name}/{recorded}"

    def _check_handle(self, handle: Any, where: str) -> None:
        if isinstance(handle, InvokedNodeOutput) and handle._recorder is not self:
            raise AssetDefinitionError(
                f"graph '{self.graph_name}' passes the handle of '{handle.node_name}' to {where}, but that handle "
                "was created in another graph body; handles are valid only in the body that created them"
            )
        if isinstance(handle, MappedOutput):
            raise AssetDefinitionError(
                f"graph '{self.graph_name}' passes a MappedOutput to {where}; collect it first with .collect() or "
                ".collect_stream()"
            )

    def invoke_task(self, task: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> InvokedNodeOutput:
        recorded, full_name = self._node_name(task.name)
        wireable = [p for p in task._params if p.role not in _CONTEXT_ROLES]
        if len(args) > len(wireable):
            raise TaskDefinitionError(
                f"task '{task.name}' in graph '{self.graph_name}' takes {len(wireable)} wireable parameter(s) "
                f"({', '.join(p.name for p in wireable)}) but was called with {len(args)} positional arguments"
            )
        bound: dict[str, Any] = {param.name: value for param, value in zip(wireable, args, strict=False)}
        names = {p.name for p in wireable}
        for key, value in kwargs.items():
            if key not in names:
                raise TaskDefinitionError(
                    f"task '{task.name}' in graph '{self.graph_name}' has no parameter '{key}'; its wireable "
                    f"parameters are {sorted(names)}"
                )
            if key in bound:
                raise TaskDefinitionError(
                    f"parameter '{key}' of task '{task.name}' in graph '{self.graph_name}' is bound twice "
                    "(positionally and by keyword)"
                )
            bound[key] = value
        params: list[ParamSpec] = []
        constants: dict[str, Any] = {}
        for param in task._params:
            if param.name not in bound:
                params.append(param)
                continue
            value = bound[param.name]
            self._check_handle(value, f"task '{task.name}'")
            if isinstance(value, InvokedNodeOutput):
                params.append(_wired(param, value))
            else:
                params.append(ParamSpec(param.name, "constant", param.annotation, param.has_default))
                constants[param.name] = value
        self.nodes.append(RecordedNode(full_name, task, params, constants))
        return InvokedNodeOutput(self, recorded, full_name, internal=True)

    def invoke_map(self, producer: InvokedNodeOutput, task: Any, max_concurrency: int | None) -> MappedOutput:
        from rivers._definitions.task import Task

        if not isinstance(task, Task) or task.fn is None:
            raise TaskDefinitionError(
                f"map(...) in graph '{self.graph_name}' takes a Task applied to a function, got {task!r} (a "
                "BashTask cannot be mapped)"
            )
        if max_concurrency is not None and (
            not isinstance(max_concurrency, int) or isinstance(max_concurrency, bool) or max_concurrency < 1
        ):
            raise ValueError(f"map(max_concurrency={max_concurrency!r}): give a positive int, or None for no cap")
        wireable = [p for p in task._params if p.role not in _CONTEXT_ROLES]
        if not wireable:
            raise TaskDefinitionError(
                f"task '{task.name}' is mapped in graph '{self.graph_name}' but has no parameter to receive the "
                "element; give it one"
            )
        recorded, full_name = self._node_name(task._require_name())
        element = wireable[0]
        params = [_wired(p, producer) if p is element else p for p in task._params]
        settings = MapSettings(element.name, max_concurrency)
        self.nodes.append(RecordedNode(full_name, task, params, {}, [], settings))
        return MappedOutput(self, producer, full_name, recorded)

    def invoke_bash(self, task: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> InvokedNodeOutput:
        recorded, full_name = self._node_name(task.name)
        after = []
        for value in [*args, *kwargs.values()]:
            self._check_handle(value, f"BashTask '{task.name}'")
            if not isinstance(value, InvokedNodeOutput):
                raise TaskDefinitionError(
                    f"BashTask '{task.name}' in graph '{self.graph_name}' was given {value!r}; a BashTask takes only "
                    "handles, which order it after their nodes (their values are not passed to the command)"
                )
            after.append(value._source)
        self.nodes.append(RecordedNode(full_name, task, [], {}, after))
        return InvokedNodeOutput(self, recorded, full_name, internal=True)


def _wired(param: ParamSpec, handle: InvokedNodeOutput) -> ParamSpec:
    return ParamSpec(param.name, "wired", param.annotation, param.has_default, handle._source, handle._gather)


def record_graph(graph_name: str, fn: Any) -> tuple[list[RecordedNode], InvokedNodeOutput, list[str]]:
    """Runs the graph body once in recording mode; returns its internal nodes, the name of
    its final node and the outer names its parameters refer to."""
    if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
        raise AssetDefinitionError(
            f"graph asset '{graph_name}' has an async body; a graph body composes tasks and never runs at run "
            "time, so write it with def (tasks themselves may be async)"
        )
    from rivers._definitions.asset import inspect_function

    params, _, _ = inspect_function(fn, graph_name)
    for param in params:
        if param.role != "named":
            raise AssetDefinitionError(
                f"graph asset '{graph_name}' takes a context parameter '{param.name}'; graph bodies receive no "
                "context (tasks do: give the task a TaskExecutionContext parameter)"
            )
    with GraphRecorder(graph_name) as recorder:
        handles = {param.name: recorder.parameter(param.name) for param in params}
        result = fn(**handles)
    if (
        not isinstance(result, InvokedNodeOutput)
        or result._recorder is not recorder
        or not result._internal
        or result._gather not in (None, "collect")
    ):
        raise AssetDefinitionError(
            f"graph asset '{graph_name}' returns {result!r}; a graph body must return the handle of one of its "
            "internal tasks or a .collect() result (the final node, whose value becomes the graph asset's value)"
        )
    return recorder.nodes, result, [param.name for param in params]
