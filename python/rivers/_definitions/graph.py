"""Graph assets: ``Asset.from_graph`` and the internal nodes its composition records.

In the outer graph a graph asset is one asset; in the plan each recorded task invocation is a
step of its own (``graph/task``), and the graph asset's own step writes the final node's value
under the graph's name (the dual write).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rivers._definitions.asset import (
    Asset,
    DepDef,
    ParamSpec,
    SingleAsset,
    _check_io_handler,
    _check_retry,
    new_definition,
    shipped_state,
    travels_by_reference,
)
from rivers._definitions.composition import RecordedNode, record_graph
from rivers.exceptions import AssetDefinitionError

NODE_EXECUTOR_KEY = "rivers/node/executor"
EXECUTOR_KEY = "rivers/executor"


class GraphAsset(Asset):
    """A sub-graph of tasks that appears as one asset (``Asset.from_graph``)."""

    is_graph = True
    fn: Callable[..., Any]
    node_io_handler: Any
    internal_nodes: list[GraphTaskNode]
    final_node: str
    _params: list[ParamSpec]
    _config_type: Any = None
    _return_hint: Any = None
    __wrapped__: Callable[..., Any]

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("GraphAsset is created with rs.Asset.from_graph(...)")

    @classmethod
    def _build(cls, fn: Callable[..., Any], **options: Any) -> GraphAsset:
        if not callable(fn):
            raise AssetDefinitionError(f"Asset.from_graph must decorate a function, got {type(fn).__name__}")
        name = options["name"] or fn.__name__
        asset = object.__new__(cls)
        asset._init_declared(name, options)
        asset.node_io_handler = _check_io_handler(name, options["node_io_handler"], "node_io_handler")
        asset.retry = _check_retry(name, options["retry"])
        asset.fn = fn
        recorded, final, _ = record_graph(name, fn)
        asset.internal_nodes = [GraphTaskNode(asset, node) for node in recorded]
        asset.final_node = final._source
        # The graph step reads one value: its final node's (or the collected list), written by
        # the internal handler.
        asset._params = [ParamSpec("value", "wired", None, False, final._source, final._gather)]
        asset.__doc__ = fn.__doc__
        asset.__wrapped__ = fn
        return asset

    def internal_executor(self) -> str | None:
        """The executor of the internal steps: ``rivers/node/executor``, else ``rivers/executor``."""
        metadata = self.metadata or {}
        return metadata.get(NODE_EXECUTOR_KEY, metadata.get(EXECUTOR_KEY))

    def node(self, name: str) -> GraphTaskNode:
        for node in self.internal_nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Outside a graph body: runs the body as plain Python (tasks execute directly).
        Inside another graph body: a dependency on this asset."""
        from rivers._definitions.composition import recording

        recorder = recording()
        if recorder is not None:
            return recorder.invoke_asset(self, args, kwargs)
        return self.fn(*args, **kwargs)

    def __reduce__(self) -> Any:
        return SingleAsset.__reduce__(self)  # type: ignore[arg-type]


class GraphTaskNode:
    """One internal node of a graph asset (``graph/task``): a task with the wiring its
    invocation recorded. It runs as a step of its own, like a standalone task."""

    is_task = True
    is_multi = False
    is_graph = False
    hooks: list[Any] | None = None
    metadata: dict[str, str] | None = None
    compute: Any = None

    def __init__(self, graph: GraphAsset, recorded: RecordedNode) -> None:
        self.graph = graph
        self.name = recorded.name
        self.task = recorded.task
        self._params = recorded.params
        self.constants = recorded.constants
        self.after = recorded.after
        self.map = recorded.map
        self._config_type = recorded.task._config_type
        self._return_hint = recorded.task._return_hint

    @property
    def fn(self) -> Callable[..., Any] | None:
        return getattr(self.task, "fn", None)

    @property
    def is_async(self) -> bool:
        return bool(self.task.is_async)

    @property
    def is_bash(self) -> bool:
        return bool(self.task.is_bash)

    @property
    def tags(self) -> list[str] | None:
        return self.task.tags  # type: ignore[no-any-return]

    @property
    def retry(self) -> Any:
        return self.task.retry

    @property
    def io_handler(self) -> Any:
        """R31: the task's own handler, else the graph's node handler, else the graph's."""
        for handler in (self.task.io_handler, self.graph.node_io_handler, self.graph._io_handler):
            if handler is not None:
                return handler
        return None

    @property
    def deps(self) -> list[DepDef]:
        """The graph's ``AssetDef.input`` overrides apply to the internal nodes that load them."""
        return [dep for dep in self.graph.deps if dep.is_input]

    def run_in_step(self) -> str:
        return self.task.run_in_step()  # type: ignore[no-any-return]

    def __reduce__(self) -> Any:
        if travels_by_reference(self.graph.fn):
            return (_graph_node, (self.graph, self.name))
        # A graph that travels by value is rebuilt from its state, which holds this node: the
        # node travels by value too (a lookup by name would run before the graph has its nodes).
        return (new_definition, (GraphTaskNode,), shipped_state(self))

    def __repr__(self) -> str:
        return f"GraphTaskNode({self.name!r})"


def _graph_node(graph: GraphAsset, name: str) -> GraphTaskNode:
    return graph.node(name)
