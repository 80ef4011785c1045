"""``CodeRepository``, ``Job`` and ``RunResult``: the orchestration entry points.

Graph validation and planning are done by the core (``rivers._core.Graph``); runs are executed
by the core engine, which calls back into :class:`rivers._execution.run.RunSession` once per step.
"""

from __future__ import annotations

import gc
import json
import logging
import re
import uuid
import warnings
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from rivers import _core
from rivers._core import BackfillStrategy, PartitionContext, PartitionKeyRange, PartitionsDefinition
from rivers._definitions.asset import Asset, DepDef, ExternalAsset, MultiAsset
from rivers._definitions.automation import EvalMode
from rivers._definitions.executor import Executor
from rivers._definitions.graph import GraphAsset, GraphTaskNode
from rivers._definitions.metadata import coerce_dict, encode
from rivers._definitions.requests import ScheduleTickResult, SensorTickResult
from rivers._definitions.retry import Compute, RetryPolicy, retry_spec
from rivers._definitions.schedules import Schedule
from rivers._definitions.sensors import Sensor
from rivers._definitions.task import BashTask, Task, _TaskBase
from rivers._execution import automation
from rivers._execution.backfill import (
    BackfillResult,
    BackfillStatus,
    DaemonBackfill,
    PlannedBackfill,
    check_arguments,
    config_json,
    new_backfill_id,
    remember_config,
    remembered_config,
    status_from_record,
    unfinished_keys,
)
from rivers._execution.fan_out import gathered, keyed_elements
from rivers._execution.handles import RunHandle, RunResult, StoredRun
from rivers._execution.io_context import InputContext
from rivers._execution.partitions import step_partitions
from rivers._execution.run import RunSession
from rivers._execution.step import InputSpec, OutputTarget, StepSpec
from rivers._execution.worker import detach_enclosing_namespaces
from rivers.exceptions import (
    AssetDefinitionError,
    AssetNotFoundError,
    ConfigurationError,
    ExecutionError,
    GraphValidationError,
    NodeNotFoundError,
    PartitionValidationError,
    ScheduleDefinitionError,
    SensorDefinitionError,
    TaskDefinitionError,
)

_log = logging.getLogger("rivers")
# A fan-out instance name: `graph/task[key]`.
_INSTANCE = re.compile(r"(.+)\[([^\[\]/]+)\]")
DEFAULT_STORAGE_PATH = Path(".rivers") / "storage"
# Daemon-executed backfills whose plans a process keeps (others are planned again on demand).
DAEMON_BACKFILLS_KEPT = 16
_UNSET = object()


class Job:
    """A named selection of nodes with its own executor and retry default."""

    def __init__(
        self,
        name: str,
        assets: Sequence[Any],
        executor: Executor | None = None,
        allow_incomplete_deps: bool = False,
        retry: RetryPolicy | str | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("Job name must be a non-empty str")
        for node in assets:
            if isinstance(node, ExternalAsset):
                raise TypeError(f"Job '{name}' lists external asset '{node.name}'; external assets are never executed")
            if not isinstance(node, (Asset, _TaskBase)):
                raise TypeError(f"Job '{name}' lists {node!r}, which is not an asset or task")
            if isinstance(node, _TaskBase):
                node._require_name()
        if executor is not None and not isinstance(executor, Executor):
            raise TypeError("Job executor must be built with rs.Executor.in_process()/parallel()/kubernetes()")
        self.name = name
        self.assets = list(assets)
        self.executor = executor
        self.allow_incomplete_deps = allow_incomplete_deps
        self.retry = retry
        self._repository: CodeRepository | None = None

    def execute(
        self,
        partition_key: Any | None = None,
        tags: list[tuple[str, str]] | None = None,
        config: dict[str, dict[str, Any]] | None = None,
        raise_on_error: bool = True,
    ) -> RunResult:
        """Runs the job's plan now, directly (never queued)."""
        if self._repository is None:
            raise ValueError(f"Job '{self.name}' is not registered with a CodeRepository; pass it in jobs=[...]")
        return self._repository._execute_job(self, partition_key, tags, config, raise_on_error)

    def __repr__(self) -> str:
        return f"Job({self.name!r})"


class CodeRepository:
    """Registry of assets, jobs and resources; validates the graph, resolves storage and runs."""

    def __init__(
        self,
        assets: Sequence[Any],
        tasks: Sequence[Any] | None = None,
        jobs: Sequence[Job] | None = None,
        schedules: Sequence[Any] | None = None,
        sensors: Sequence[Any] | None = None,
        default_executor: Executor | None = None,
        resources: dict[str, Any] | None = None,
        run_queue: Any | None = None,
        run_backend: Any | None = None,
        pool_limits: dict[str, int] | None = None,
        partition_defs: dict[str, Any] | None = None,
        retries: dict[str, RetryPolicy] | None = None,
        default_retry_policy: RetryPolicy | str | None = None,
    ) -> None:
        for asset in assets:
            if not isinstance(asset, Asset):
                raise TypeError(f"CodeRepository(assets=...) accepts asset objects, got {asset!r}")
        if default_executor is not None and not isinstance(default_executor, Executor):
            raise TypeError("default_executor must be built with rs.Executor.in_process()/parallel()/kubernetes()")
        for pool_key, limit in (pool_limits or {}).items():
            if not isinstance(pool_key, str) or not pool_key:
                raise TypeError(f"pool_limits keys must be non-empty pool names, got {pool_key!r}")
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
                raise ValueError(
                    f"pool_limits['{pool_key}'] must be an int >= 0 (the pool's slot limit), got {limit!r}"
                )
        for key, policy in (retries or {}).items():
            if not isinstance(policy, RetryPolicy):
                raise TypeError(f"retries['{key}'] must be a RetryPolicy, got {type(policy).__name__}")
        for task in tasks or []:
            if not isinstance(task, (Task, BashTask)):
                raise TypeError(f"CodeRepository(tasks=...) accepts Task and BashTask objects, got {task!r}")
            task._require_name()
            if isinstance(task, Task) and task.fn is None:
                raise TaskDefinitionError(f"task '{task.name}' wraps no function; apply @rs.Task(...) to a function")
        self._assets = list(assets)
        # `tasks=` entries that exist only inside graph assets -> the graphs that call them.
        self._graph_only: dict[str, list[str]] = {}
        self._tasks = self._standalone_tasks(list(tasks or []), resources or {})
        self._schedules = list(schedules or [])
        self._sensors = list(sensors or [])
        self._check_automation_entries()
        self._default_executor = default_executor
        self._resources = dict(resources or {})
        if run_queue is not None and not isinstance(run_queue, _core.RunQueueConfig):
            raise TypeError(f"run_queue must be a RunQueueConfig, got {type(run_queue).__name__}")
        if run_backend is not None and not isinstance(run_backend, _core.RunBackendConfig):
            raise TypeError(
                f"run_backend must be RunBackendConfig.local() or .kubernetes(...), got {type(run_backend).__name__}"
            )
        self._run_queue = run_queue
        self._run_backend = run_backend
        # Daemons started for this repository; shutdown() stops them.
        self._daemons: list[Any] = []
        # Daemon-executed backfills whose runs this process plans or executes, newest last.
        self._daemon_backfills: dict[str, DaemonBackfill] = {}
        self._pool_limits = dict(pool_limits or {})
        for key, definition in (partition_defs or {}).items():
            if not isinstance(definition, PartitionsDefinition):
                raise TypeError(
                    f"partition_defs['{key}'] must be a PartitionsDefinition, got {type(definition).__name__}"
                )
        self._partition_defs = dict(partition_defs or {})
        self._retries = dict(retries or {})
        self._default_retry = default_retry_policy
        # Step names -> nodes (a multi-asset under its own name), and loadable names -> nodes (a
        # multi-asset under each output name; tasks under their name).
        self._nodes: dict[str, Any] = {}
        self._by_name: dict[str, Any] = {}
        for asset in self._assets:
            if isinstance(asset, ExternalAsset) and not asset.name:
                raise AssetDefinitionError("an external asset has no name; pass name= to rs.Asset.external(...)")
            self._nodes.setdefault(asset.name, asset)
            for key in _output_names(asset):
                self._by_name.setdefault(key, asset)
            for node in asset.internal_nodes if isinstance(asset, GraphAsset) else ():
                self._nodes.setdefault(node.name, node)
                self._by_name.setdefault(node.name, node)
        for task in self._tasks:
            self._nodes.setdefault(task.name, task)
            self._by_name.setdefault(task.name, task)
        self._jobs: dict[str, Job] = {}
        for job in jobs or []:
            if job.name in self._jobs:
                raise ValueError(f"two jobs are named '{job.name}'; job names must be unique in a repository")
            self._jobs[job.name] = job
        self._storage: Any = None
        self._resolved = False
        self._shut_down = False
        self._set_up: list[Any] = []
        self._handlers: dict[str, Any] = {}
        self._bindings: dict[str, tuple[dict[str, InputSpec], dict[str, Any]]] = {}
        self._default_handler: Any = None
        self._definitions: dict[str, Any] = {}
        self._graph = self._build_graph(check_bindings=False)
        self._validate_jobs(self._graph)
        for job in self._jobs.values():
            job._repository = self

    def _standalone_tasks(self, tasks: list[Any], resources: dict[str, Any]) -> list[Any]:
        """The ``tasks=`` entries that become standalone nodes. An entry that a registered graph
        asset also calls, and whose parameters do not all resolve by the standalone rules, is
        the graph's internal node only (its graph body wires those parameters): it gets no
        standalone node, and no error (graph-and-tasks.md R7, R60; docs/decisions.md)."""
        in_graphs = {
            id(node.task) for asset in self._assets if isinstance(asset, GraphAsset) for node in asset.internal_nodes
        }
        candidates = [position for position, task in enumerate(tasks) if id(task) in in_graphs]
        if not candidates:
            return tasks
        assets = self._asset_nodes()
        specs = [self._node_spec(node) for node in [*assets, *tasks]]
        offset = len(assets)
        dropped = _core.Graph.graph_only_tasks(specs, [offset + c for c in candidates], list(resources))
        omitted = {position - offset for position in dropped}
        for position in sorted(omitted):
            task = tasks[position]
            self._graph_only[task.name] = [
                asset.name
                for asset in self._assets
                if isinstance(asset, GraphAsset) and any(node.task is task for node in asset.internal_nodes)
            ]
        return [task for position, task in enumerate(tasks) if position not in omitted]

    def _graph_only_hint(self, name: str) -> str:
        """Why ``name`` is no node of its own when it is a ``tasks=`` entry that exists only
        inside graph assets; empty otherwise."""
        graphs = self._graph_only.get(name)
        if graphs is None or name in self._by_name:
            return ""
        return (
            f"; the task '{name}' registered in tasks= runs only inside the graph asset(s) {graphs} (a parameter is "
            "wired by the graph body, so it has no standalone node): name the graph instead"
        )

    # -- validation ------------------------------------------------------------------------

    def _resource_handler(self, owner: str, ref: str, parameter: str = "io_handler") -> Any:
        from rivers.io_handlers.base import BaseIOHandler

        if ref not in self._resources:
            known = ", ".join(sorted(self._resources)) or "none"
            raise ConfigurationError(
                f"{parameter} of '{owner}' refers to resource '{ref}', which is not registered; registered "
                f"resources: [{known}]"
            )
        handler = self._resources[ref]
        if not isinstance(handler, BaseIOHandler):
            raise ConfigurationError(
                f"{parameter} of '{owner}' refers to resource '{ref}', which is a {type(handler).__name__}, "
                "not a BaseIOHandler"
            )
        return handler

    def _default_io_handler(self) -> Any:
        if self._default_handler is None:
            from rivers.io_handlers.memory import InMemoryIOHandler

            self._default_handler = InMemoryIOHandler()
        return self._default_handler

    def _resolve_handler(self, owner: str, handler: Any) -> Any:
        if isinstance(handler, str):
            return self._resource_handler(owner, handler)
        return handler if handler is not None else self._default_io_handler()

    def _declared_handler(self, name: str) -> Any:
        """The handler declared for the loadable name ``name`` (an object, a resource key, or
        ``None`` for the default): a multi-asset output's own, else the multi-asset's; an
        asset's or task's own."""
        node = self._by_name[name]
        if isinstance(node, MultiAsset):
            declared = node.output_def(name).io_handler
            return declared if declared is not None else node._io_handler
        if isinstance(node, (_TaskBase, GraphTaskNode)):
            return node.io_handler
        return node._io_handler

    def _handler_of(self, name: str) -> Any:
        """The handler that writes the loadable name ``name``."""
        return self._resolve_handler(name, self._declared_handler(name))

    def _static_metadata(self, name: str) -> dict[str, str] | None:
        """Static metadata of a loadable name (a multi-asset output's own)."""
        node = self._by_name[name]
        if isinstance(node, MultiAsset):
            return node.output_def(name).metadata
        return getattr(node, "metadata", None)

    def _input_handler(self, consumer: Any, upstream: str) -> tuple[Any, dict[str, str] | None]:
        for dep in getattr(consumer, "deps", ()):
            if dep.name == upstream and dep.is_input:
                handler = dep.io_handler
                if isinstance(handler, str):
                    handler = self._resource_handler(consumer.name, handler, f"AssetDef.input('{upstream}') io_handler")
                metadata = dep.metadata if dep.metadata is not None else self._static_metadata(upstream)
                return (handler or self._handler_of(upstream)), metadata
        return self._handler_of(upstream), self._static_metadata(upstream)

    def _pinned_nodes(self) -> set[str]:
        """Nodes whose output or inputs live in an ``InMemoryIOHandler``: their values cannot
        cross a process boundary, so the parallel executor runs them in this process."""
        from rivers.io_handlers.memory import InMemoryIOHandler

        # Resolves every handler reference (an unknown resource key raises here); most names
        # use the default handler, which is in memory.
        in_memory = set()
        for name in self._by_name:
            declared = self._declared_handler(name)
            if declared is None or isinstance(self._resolve_handler(name, declared), InMemoryIOHandler):
                in_memory.add(name)
        pinned = set()
        for name, node in self._nodes.items():
            if isinstance(node, MultiAsset):
                writes_in_memory = not in_memory.isdisjoint(node.output_names)
            else:
                writes_in_memory = name in in_memory
            if writes_in_memory:
                if not isinstance(node, ExternalAsset):
                    pinned.add(name)
                continue
            if isinstance(node, ExternalAsset):
                continue
            overrides = {d.name: d.io_handler for d in getattr(node, "deps", ()) if d.is_input and d.io_handler}
            for param in node._params:
                source = param.source or param.name
                override = overrides.get(source)
                if override is not None:
                    handler = self._resource_handler(node.name, override) if isinstance(override, str) else override
                    if isinstance(handler, InMemoryIOHandler):
                        pinned.add(node.name)
                elif source in in_memory:
                    pinned.add(node.name)
        return pinned

    @staticmethod
    def _node_spec(node: Any) -> Any:
        """The core's form of a node definition, converted once per node object."""
        spec = node.__dict__.get("_node_spec")
        if spec is None:
            if isinstance(node, (_TaskBase, GraphTaskNode)):
                spec = _task_spec(node)
            elif isinstance(node, GraphAsset):
                spec = _graph_spec(node)
            else:
                spec = _asset_spec(node)
            node._node_spec = spec
        return spec

    def _build_graph(self, check_bindings: bool) -> Any:
        # Building the node tuples allocates tens of thousands of short-lived containers for a
        # large repository; with the cyclic collector on, each allocation burst triggers scans
        # of the whole (possibly large) heap, which costs more than the build itself.
        collecting = gc.isenabled()
        gc.disable()
        try:
            pinned = self._pinned_nodes() if check_bindings else set()
            all_nodes = self._all_nodes()
            nodes = [self._node_spec(node) for node in all_nodes]
            flags = [node.name in pinned for node in all_nodes]
            return _core.Graph(nodes, flags, list(self._resources), self._retries, check_bindings, self._partition_defs)
        finally:
            if collecting:
                gc.enable()

    def _asset_nodes(self) -> list[Any]:
        """Registered assets in registration order, a graph asset followed by its internal
        nodes."""
        nodes: list[Any] = []
        for asset in self._assets:
            nodes.append(asset)
            if isinstance(asset, GraphAsset):
                nodes.extend(asset.internal_nodes)
        return nodes

    def _all_nodes(self) -> list[Any]:
        """Registered nodes in registration order: assets (a graph asset followed by its
        internal nodes), then standalone tasks."""
        return [*self._asset_nodes(), *self._tasks]

    def _validate_jobs(self, graph: Any) -> None:
        executor = self._executor_for(None)
        for job in self._jobs.values():
            for node in job.assets:
                hint = self._graph_only_hint(node.name)
                if hint:
                    raise GraphValidationError(f"job '{job.name}' includes '{node.name}'{hint}")
            graph.plan_job(job.name, [a.name for a in job.assets], job.allow_incomplete_deps, executor.kind)

    def _validate(self) -> Any:
        for asset in self._assets:
            if isinstance(asset, ExternalAsset):
                if asset.automation_condition is not None and asset.observe_fn is None:
                    raise AssetDefinitionError(
                        f"external asset '{asset.name}' has an automation_condition but no observation function; "
                        "decorate a function with @rs.Asset.external(...) to observe it"
                    )
            if isinstance(asset, MultiAsset):
                asset.effective_retry()
        # Building the checked graph resolves every handler reference (`_pinned_nodes`).
        graph = self._build_graph(check_bindings=True)
        for message in graph.warnings:
            warnings.warn(message, UserWarning, stacklevel=3)
        if self._default_retry is not None:
            graph.check_retry(retry_spec(self._default_retry), "default_retry_policy")
        for job in self._jobs.values():
            if job.retry is not None:
                graph.check_retry(retry_spec(job.retry), f"job '{job.name}'")
        self._validate_jobs(graph)
        self._validate_automations()
        self._check_backfill_strategies()
        return graph

    def _check_backfill_strategies(self) -> None:
        """An asset's ``backfill_strategy`` must be a ``BackfillStrategy``."""
        for asset in self._assets:
            strategy = getattr(asset, "backfill_strategy", None)
            if strategy is not None and not isinstance(strategy, BackfillStrategy):
                raise TypeError(
                    f"asset '{asset.name}' declares backfill_strategy={strategy!r}; use rs.BackfillStrategy.multi_run(), "
                    ".single_run() or .per_dimension(...)"
                )

    def validate(self) -> None:
        """Checks the repository without side effects (no storage, no resource setup)."""
        self._validate()

    def _definitions_snapshot(self) -> str:
        """Every definition of this repository as JSON (``rivers_core::DefinitionsSnapshot``):
        what readers that do not import user code (daemon, gRPC, UI) see."""
        return str(
            self._graph.snapshot_json(
                list(self._jobs.values()), self, self._executor_for(None), retry_spec(self._default_retry)
            )
        )

    # -- resolution ------------------------------------------------------------------------

    def resolve(self, storage: Any | None = None) -> None:
        """Validates, binds storage (default: embedded at ``.rivers/storage/``), sets resources up,
        resolves IO-handler references and registers assets in storage. Idempotent."""
        if self._resolved:
            return
        graph = self._validate()
        if storage is None:
            storage = _core.Storage.embedded(str(Path.cwd() / DEFAULT_STORAGE_PATH))
        from rivers._definitions.resources import Resource

        for key, resource in self._resources.items():
            if isinstance(resource, Resource) and resource not in self._set_up:
                try:
                    resource.setup()
                except Exception as err:
                    raise ConfigurationError(f"setup() of resource '{key}' failed: {err}") from err
                self._set_up.append(resource)
        self._handlers = {name: self._handler_of(name) for name in self._by_name}
        self._detach_shipped_classes()
        storage._register_definitions(
            graph,
            list(self._jobs.values()),
            self,
            self._executor_for(None),
            retry_spec(self._default_retry),
            pool_limits=sorted(self._pool_limits.items()),
        )
        self._graph = graph
        self._storage = storage
        self._resolved = True

    def _detach_shipped_classes(self) -> None:
        """Classes of what parallel steps ship to workers (handlers, resources, config models)
        travel without the namespace they were defined in (``detach_enclosing_namespaces``)."""
        shipped: list[Any] = [type(handler) for handler in self._handlers.values()]
        shipped += [type(resource) for resource in self._resources.values()]
        for node in self._nodes.values():
            shipped.append(getattr(node, "_config_type", None))
            shipped += [type(dep.io_handler) for dep in getattr(node, "deps", ()) if dep.io_handler is not None]
        detach_enclosing_namespaces(shipped)

    def _ensure_resolved(self) -> None:
        if not self._resolved:
            self.resolve(storage=_core.Storage.memory())

    @property
    def storage(self) -> Any:
        if self._storage is None:
            if self._shut_down:
                raise RuntimeError("this repository was shut down and released its storage; build a new one")
            raise RuntimeError("repository storage is not bound yet: call resolve() (or run something) first")
        return self._storage

    @property
    def assets(self) -> dict[str, Any]:
        """Registered assets by asset key (a multi-asset under each of its output names)."""
        return {name: node for name, node in self._by_name.items() if isinstance(node, Asset)}

    @property
    def schedules(self) -> list[Any]:
        return list(self._schedules)

    @property
    def sensors(self) -> list[Any]:
        return list(self._sensors)

    def get_job(self, name: str) -> Job:
        try:
            return self._jobs[name]
        except KeyError:
            known = ", ".join(sorted(self._jobs)) or "none"
            raise ValueError(f"no job named '{name}' is registered; registered jobs: [{known}]") from None

    # -- automation ------------------------------------------------------------------------

    def _check_automation_entries(self) -> None:
        for schedule in self._schedules:
            if not isinstance(schedule, Schedule):
                raise TypeError(f"CodeRepository(schedules=...) accepts rs.Schedule objects, got {schedule!r}")
        for sensor in self._sensors:
            if not isinstance(sensor, Sensor):
                raise TypeError(f"CodeRepository(sensors=...) accepts rs.Sensor objects, got {sensor!r}")
            if sensor.name is None:
                raise SensorDefinitionError(
                    f"{sensor!r} has neither a name nor an evaluation function; pass name= or decorate a function"
                )

    def _validate_automations(self) -> None:
        """Unique names, a registered asset for each sensor's ``asset_selection`` entry, and a
        registered resource for each evaluation-function parameter without a default."""
        schedule_names: set[str] = set()
        for schedule in self._schedules:
            if schedule.name in schedule_names:
                raise ScheduleDefinitionError(
                    f"two schedules are named '{schedule.name}'; schedule names must be unique in a repository"
                )
            schedule_names.add(schedule.name)
            self._check_evaluation_resources(f"schedule '{schedule.name}'", schedule)
        sensor_names: set[str] = set()
        assets = self.assets
        for sensor in self._sensors:
            if sensor.name in sensor_names:
                raise SensorDefinitionError(
                    f"two sensors are named '{sensor.name}'; sensor names must be unique in a repository"
                )
            sensor_names.add(sensor.name)
            for asset in sensor.asset_selection or []:
                if asset not in assets:
                    raise AssetNotFoundError(
                        f"sensor '{sensor.name}' selects '{asset}', which is not a registered asset; registered "
                        f"assets: [{', '.join(assets)}]"
                    )
            self._check_evaluation_resources(f"sensor '{sensor.name}'", sensor)

    def _check_evaluation_resources(self, owner: str, automation: Schedule | Sensor) -> None:
        function = automation._function
        if function is None:
            return
        for parameter in function.required_resources:
            if automation.eval_mode == EvalMode.Subprocess:
                raise ConfigurationError(
                    f"parameter '{parameter}' of the evaluation function of {owner} asks for a resource, and "
                    "EvalMode.Subprocess injects none; give the parameter a default or use EvalMode.Auto"
                )
            if parameter not in self._resources:
                known = ", ".join(sorted(self._resources)) or "none"
                raise ConfigurationError(
                    f"parameter '{parameter}' of the evaluation function of {owner} matches no resource; registered "
                    f"resources: [{known}]; register it in CodeRepository(resources=...) or give it a default"
                )

    def get_schedule(self, name: str) -> Schedule:
        for schedule in self._schedules:
            if schedule.name == name:
                return schedule
        known = ", ".join(s.name for s in self._schedules) or "none"
        raise ValueError(f"no schedule named '{name}' is registered; registered schedules: [{known}]")

    def get_sensor(self, name: str) -> Sensor:
        for sensor in self._sensors:
            if sensor.name == name:
                return sensor
        known = ", ".join(s.name for s in self._sensors) or "none"
        raise ValueError(f"no sensor named '{name}' is registered; registered sensors: [{known}]")

    def evaluate_schedule(self, name: str, execution_time: str | None = None) -> ScheduleTickResult:
        """Calls schedule ``name``'s evaluation function once, in this process, with resources
        and config, and returns what it requested. Launches and stores nothing; ``eval_mode``
        and ``eval_timeout`` do not apply. ``execution_time`` (default: now, UTC) reaches the
        context verbatim."""
        if execution_time is None:
            execution_time = datetime.now(timezone.utc).isoformat(timespec="seconds")
        return self._schedule_tick(self.get_schedule(name), execution_time, in_subprocess=False)

    def evaluate_sensor(
        self, name: str, cursor: str | None = None, last_tick_time: float | None = None
    ) -> SensorTickResult:
        """Calls sensor ``name``'s evaluation function once, in this process, with resources and
        config; ``cursor`` and ``last_tick_time`` reach the context verbatim. Launches and
        stores nothing; ``eval_mode`` and ``eval_timeout`` do not apply."""
        return self._sensor_tick(self.get_sensor(name), cursor, last_tick_time, in_subprocess=False)

    # -- automation conditions --------------------------------------------------------------

    def explain_automation(self, asset: str, partition_key: Any | None = None) -> Any:
        """Why ``asset``'s automation condition is or is not true now: the evaluated tree (each
        node's label, value and the facts it used), evaluated against storage exactly as the
        daemon's next pass would; ``print()`` it for the indented text. ``partition_key`` (a
        ``PartitionKey`` or its display form) picks the partition whose values are reported;
        without it a node's value says whether it holds for any partition. Read-only: no
        condition state, tick or run is written. Unknown asset → ``AssetNotFoundError``; an
        asset without a condition → ``ValueError``."""
        from rivers._execution.conditions import explain_automation

        return explain_automation(self, asset, partition_key)

    def simulate_automation(self, start: datetime, end: datetime, step: str = "1m") -> list[Any]:
        """A dry run on a virtual clock: evaluates the running schedules (their evaluation
        functions are called, in this process) and every automation condition at each ``step``
        from ``start`` to ``end`` (both included; naive datetimes are UTC) against the current
        storage, and returns the runs they would request, oldest first. Nothing is launched and
        no state, tick or cursor is written; each simulated request is assumed to succeed at
        once, so downstream conditions fire later in the span as they would."""
        from rivers._execution.conditions import simulate_automation

        return simulate_automation(self, start, end, step)

    def _evaluate_schedule_tick(self, name: str, scheduled_execution_time: str) -> ScheduleTickResult:
        """Daemon entry: evaluates schedule ``name`` for the cron tick ``scheduled_execution_time``
        (RFC 3339, in the schedule's zone) as its ``eval_mode`` says: ``Auto`` / ``InProcess``
        in the calling thread (an ``async def`` function on the shared event loop), ``Subprocess``
        in a loky worker without resources or config (``ImportError`` naming loky when it is
        missing). Exceptions of the evaluation function propagate unchanged; a return value of
        another type raises ``TypeError``. Launches and stores nothing: the daemon does."""
        schedule = self.get_schedule(name)
        return self._schedule_tick(schedule, scheduled_execution_time, schedule.eval_mode == EvalMode.Subprocess)

    def _evaluate_sensor_tick(self, name: str, cursor: str | None, last_tick_time: float | None) -> SensorTickResult:
        """Daemon entry: evaluates sensor ``name`` with the cursor and time (seconds since the
        epoch) of its previous stored tick, as its ``eval_mode`` says (see
        :meth:`_evaluate_schedule_tick`). Launches and stores nothing: the daemon does."""
        sensor = self.get_sensor(name)
        return self._sensor_tick(sensor, cursor, last_tick_time, sensor.eval_mode == EvalMode.Subprocess)

    def _schedule_tick(
        self, schedule: Schedule, scheduled_execution_time: str, in_subprocess: bool
    ) -> ScheduleTickResult:
        self._ensure_resolved()
        if in_subprocess:
            return automation.schedule_tick_in_subprocess(schedule, scheduled_execution_time)
        config = automation.config_of(schedule)
        return automation.schedule_tick(schedule, scheduled_execution_time, self._resources, config)

    def _sensor_tick(
        self, sensor: Sensor, cursor: str | None, last_tick_time: float | None, in_subprocess: bool
    ) -> SensorTickResult:
        self._ensure_resolved()
        if in_subprocess:
            return automation.sensor_tick_in_subprocess(sensor, cursor, last_tick_time)
        config = automation.config_of(sensor)
        return automation.sensor_tick(sensor, cursor, last_tick_time, self._resources, config)

    # -- execution -------------------------------------------------------------------------

    def _executor_for(self, job: Job | None) -> Executor:
        if job is not None and job.executor is not None:
            return job.executor
        return self._default_executor if self._default_executor is not None else Executor.parallel()

    def _step_bindings(self, node: Any) -> tuple[dict[str, InputSpec], dict[str, Any]]:
        """Where each parameter of ``node`` comes from: an upstream (through which handler) or
        a resource. Fixed once the repository is resolved, so computed once per node."""
        bindings = self._bindings.get(node.name)
        if bindings is None:
            inputs = {}
            resources = {}
            for param in node._params:
                if param.role == "wired":
                    handler, metadata = self._input_handler(node, param.source)
                    inputs[param.name] = InputSpec(param.source, handler, metadata)
                    continue
                if param.role not in ("named", "context_by_name"):
                    continue
                if param.name in self._by_name:
                    handler, metadata = self._input_handler(node, param.name)
                    inputs[param.name] = InputSpec(param.name, handler, metadata)
                elif param.name in self._resources:
                    resources[param.name] = self._resources[param.name]
            bindings = self._bindings[node.name] = (inputs, resources)
        return bindings

    def _output_target(self, node: Any, name: str) -> OutputTarget:
        if isinstance(node, MultiAsset):
            output = node.output_def(name)
            code_version = output.code_version if output.code_version is not None else node.code_version
            return OutputTarget(name, self._handlers[name], output.metadata, code_version, None)
        is_asset = not isinstance(node, (_TaskBase, GraphTaskNode))
        return OutputTarget(
            name, self._handlers[name], node.metadata, getattr(node, "code_version", None), node._return_hint, is_asset
        )

    def _step_spec(
        self, request: Any, run_id: str, config: dict[str, dict[str, Any]], templates: dict[str, StepSpec]
    ) -> StepSpec:
        node = self._nodes[request.node]
        if request.mapping_key is not None:
            return self._instance_spec(templates[node.name], request)
        inputs, resources = self._step_bindings(node)
        names = _output_names(node)
        constants = getattr(node, "constants", None) or {}
        if request.fan_in:
            constants = {**constants, **self._gathered(node, request)}
        spec = StepSpec(
            node=node,
            outputs={name: self._output_target(node, name) for name in names},
            inputs=inputs,
            resources=resources,
            config_overrides=config.get(node.name),
            run_id=run_id,
            output_selection=list(request.output_selection) or names,
            constants=constants,
            step_key=request.step_key,
        )
        self._apply_partitions(spec, request)
        settings = getattr(node, "map", None)
        if settings is not None:
            self._expand(spec, settings.element)
            templates[node.name] = spec
        return spec

    def _gathered(self, node: Any, request: Any) -> dict[str, Any]:
        """The values of the parameters wired to a ``collect()`` / ``collect_stream()``."""
        fan_ins = {fan_in.template: fan_in for fan_in in request.fan_in}
        values = {}
        for param in node._params:
            fan_in = fan_ins.get(param.source) if param.gather is not None else None
            if fan_in is not None:
                values[param.name] = gathered(param.gather, fan_in, request.step_key, self._handlers[param.source])
        return values

    @staticmethod
    def _expand(spec: StepSpec, element: str) -> None:
        """A fan-out template reads its producer's value (once per run, in this process) and
        reports the instance keys; the elements stay on the spec for the instances. The
        template itself runs no body."""
        param = next(p for p in spec.node._params if p.name == element)
        if param.name in spec.constants:  # mapped over a collect() result
            value = spec.constants[param.name]
        else:
            source = spec.inputs[param.name]
            load = InputContext(source.upstream, spec.name, source.asset_metadata, None, None)
            value = source.handler.load_input(load)
        spec.elements = keyed_elements(spec.name, param.source, value)
        spec.fan_out = list(spec.elements)

    def _instance_spec(self, template: StepSpec, request: Any) -> StepSpec:
        """One fan-out instance: its template's bindings, its element, its own output name."""
        node = template.node
        name = request.step_key
        instance = StepSpec(
            node=node,
            outputs={name: OutputTarget(name, self._handlers[node.name], None, None, node._return_hint, False)},
            inputs=template.inputs,
            resources=template.resources,
            config_overrides=template.config_overrides,
            run_id=template.run_id,
            output_selection=[name],
            constants={**template.constants, node.map.element: template.elements[request.mapping_key]},
            step_key=name,
        )
        return self._apply_partitions(instance, request)

    def _check_config(self, config: dict[str, dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
        for key in config or {}:
            if key not in self._nodes:
                raise ConfigurationError(
                    f"materialize(config=...) has an entry for '{key}', which is not a registered node; "
                    f"registered nodes: [{', '.join(self._nodes)}]"
                )
        return dict(config or {})

    def _prepare_run(
        self,
        plan: Any,
        executor: Executor,
        job_name: str | None,
        tags: list[tuple[str, str]] | None,
        config: dict[str, dict[str, Any]] | None,
        run_id: str | None,
        resume: bool,
        stop_on_failure: bool,
        partition_key: Any | None,
        backfill: tuple[str, Any, int] | None = None,
        created: bool = False,
    ) -> tuple[RunSession, Any]:
        """Checks a run's arguments; returns the session that runs its steps and the request
        that describes it to the engine. A backfill run (``(backfill_id, plan, run index)``)
        takes its partitions from the backfill's plan, checked when it was planned. A
        ``created`` run's record was created by the daemon that launches it."""
        run_key = self._run_partition_key(plan, partition_key) if backfill is None else None
        config = self._check_config(config)
        tags = [(str(k), str(v)) for k, v in (tags or [])]
        run_id = run_id or str(uuid.uuid4())
        if executor.kind != "kubernetes":
            for name in plan.node_names:
                if self._nodes[name].compute is not None:
                    _log.warning(
                        "asset '%s' declares compute=%r, which only the Kubernetes executor uses; ignored",
                        name,
                        self._nodes[name].compute,
                    )
        max_workers = getattr(executor, "max_workers", 1)
        # Fan-out templates by node name: their instances share their bindings and elements.
        templates: dict[str, StepSpec] = {}
        session = RunSession(lambda request: self._step_spec(request, run_id, config, templates), max_workers)
        request = _core.RunRequest(
            run_id=run_id,
            job_name=job_name,
            tags=tags,
            resume=resume,
            stop_on_failure=stop_on_failure,
            max_workers=max_workers,
            max_async_concurrent=getattr(executor, "max_async_concurrent", None),
            partition_key=run_key,
            backfill=backfill,
            created=created,
        )
        return session, request

    def _run_partition_key(self, plan: Any, partition_key: Any | None) -> Any:
        """The run's key, checked against every partitioned step of the plan (dynamic values
        against storage); required when one is partitioned."""
        if partition_key is None:
            if plan.is_partitioned:
                partitioned = [name for name in plan.node_names if self._definition_of(name) is not None]
                raise PartitionValidationError(
                    f"the run includes partitioned assets {partitioned}; pass partition_key= (a PartitionKey, or "
                    "its display form as a str)"
                )
            return None
        return plan.check_partition_key(self.storage, partition_key)

    def _definition_of(self, name: str) -> Any:
        """The ``PartitionsDefinition`` a node or loadable name runs under (a registered name
        resolved); ``None`` when unpartitioned."""
        cached = self._definitions.get(name, _UNSET)
        if cached is not _UNSET:
            return cached
        node = self._nodes.get(name) or self._by_name.get(name)
        declared = None
        if isinstance(node, MultiAsset):
            declared = node.partitions_def
            if declared is None:
                outputs = [node.output_def(name)] if name in node.output_names else node.output_defs
                declared = next((o.partitions_def for o in outputs if o.partitions_def is not None), None)
        elif isinstance(node, GraphTaskNode):
            declared = node.task.partitions_def or node.graph.partitions_def
        elif node is not None:
            declared = node.partitions_def
        if isinstance(declared, str):
            declared = self._partition_defs[declared]
        self._definitions[name] = declared
        return declared

    def _apply_partitions(self, spec: StepSpec, request: Any) -> StepSpec:
        if request.partition is not None:
            # A multi-asset step runs under its first selected output's definition (outputs may
            # declare their own).
            name = spec.output_selection[0] if isinstance(spec.node, MultiAsset) else spec.node.name
            spec.partitions = step_partitions(request.partition, self._definition_of, name)
        return spec

    def materialize(
        self,
        selection: list[str] | None = None,
        partition_key: Any | None = None,
        tags: list[tuple[str, str]] | None = None,
        raise_on_error: bool = True,
        config: dict[str, dict[str, Any]] | None = None,
        run_id_override: str | None = None,
        include_upstream: bool = False,
        resume: bool = False,
        retry: RetryPolicy | str | None = None,
    ) -> RunResult:
        """Materializes assets now over an ephemeral plan (``RunRecord.job_name`` is ``None``)."""
        if resume and run_id_override is None:
            raise ValueError("resume=True needs run_id_override: the id of the run to resume")
        self._ensure_resolved()
        if selection is not None:
            selection = list(dict.fromkeys(selection))
            for name in selection:
                hint = self._graph_only_hint(name)
                if hint:
                    raise AssetNotFoundError(f"selection names '{name}', which is not a node of this repository{hint}")
        executor = self._executor_for(None)
        plan = self._graph.plan(
            selection, include_upstream, executor.kind, retry_spec(retry), retry_spec(self._default_retry)
        )
        session, request = self._prepare_run(
            plan, executor, None, tags, config, run_id_override, resume, raise_on_error, partition_key
        )
        return run_result(_core.execute_run(self.storage, plan, session, request), session, raise_on_error)

    def _execute_job(
        self,
        job: Job,
        partition_key: Any | None,
        tags: list[tuple[str, str]] | None,
        config: dict[str, dict[str, Any]] | None,
        raise_on_error: bool,
    ) -> RunResult:
        self._ensure_resolved()
        executor, plan = self._job_plan(job)
        session, request = self._prepare_run(
            plan, executor, job.name, tags, config, None, False, raise_on_error, partition_key
        )
        return run_result(_core.execute_run(self.storage, plan, session, request), session, raise_on_error)

    def _job_plan(self, job: Job) -> tuple[Executor, Any]:
        """The executor a job runs on, and its plan."""
        executor = self._executor_for(job)
        plan = self._graph.plan_job(
            job.name,
            [a.name for a in job.assets],
            job.allow_incomplete_deps,
            executor.kind,
            retry_spec(job.retry),
            retry_spec(self._default_retry),
        )
        return executor, plan

    # -- backfills --------------------------------------------------------------------------

    def backfill(
        self,
        selection: list[str] | None = None,
        partition_keys: list[Any] | None = None,
        partition_range: PartitionKeyRange | None = None,
        strategy: BackfillStrategy | None = None,
        failure_policy: str = "continue",
        max_concurrency: int = 4,
        tags: list[tuple[str, str]] | None = None,
        config: dict[str, dict[str, Any]] | None = None,
        block: bool = True,
        dry_run: bool = False,
    ) -> BackfillResult:
        """Materializes the selection over many partitions: the requested partitions are
        expanded and grouped into runs by the strategy, and up to ``max_concurrency`` runs
        execute at once. ``block=False`` returns at once; follow it with ``get_backfill``."""
        planned = self._plan_backfill(
            selection, partition_keys, partition_range, strategy, failure_policy, max_concurrency, tags, config
        )
        plan, tags, config = planned.plan, planned.tags, planned.config
        backfill_id = new_backfill_id()
        if dry_run:
            return BackfillResult(
                backfill_id, plan.num_partitions, plan.num_runs, "completed", 0, 0, 0, [], True, plan.partition_keys()
            )

        def prepare(index: int) -> tuple[RunSession, Any]:
            """The session and request of the backfill's run ``index``."""
            return self._prepare_run(
                planned.run_plan,
                planned.executor,
                None,
                tags,
                config,
                None,
                False,
                False,
                None,
                backfill=(backfill_id, plan, index),
            )

        stored_config = config_json(config)
        if config is not None and stored_config is None:
            remember_config(backfill_id, config)
        outcome = _core.run_backfill(
            self.storage,
            planned.run_plan,
            plan,
            prepare,
            backfill_id=backfill_id,
            selection=selection,
            failure_policy=failure_policy,
            max_concurrency=max_concurrency,
            tags=tags,
            config=stored_config,
            block=block,
        )
        return BackfillResult(
            backfill_id=backfill_id,
            num_partitions=plan.num_partitions,
            num_runs=plan.num_runs,
            status=outcome.status,
            completed=outcome.completed,
            failed=outcome.failed,
            canceled=outcome.canceled,
            run_ids=list(outcome.run_ids),
            is_dry_run=False,
            partition_keys=plan.partition_keys(),
        )

    def _partitioned_targets(self, node_names: list[str], selection: list[str]) -> list[tuple[str, Any]]:
        """``(name, definition)`` of what a backfill's runs write under partitions: each node,
        and for a multi-asset each selected output (all of them when the multi-asset itself is
        selected), since a key must be valid for every selected output's own definition."""
        targets: list[tuple[str, Any]] = []
        for name in node_names:
            node = self._nodes.get(name)
            if isinstance(node, MultiAsset):
                chosen = [o for o in node.output_names if o in selection]
                names = node.output_names if name in selection or not chosen else chosen
            else:
                names = [name]
            targets += [(n, d) for n in names if (d := self._definition_of(n)) is not None]
        return targets

    def _plan_backfill(
        self,
        selection: list[str] | None,
        partition_keys: list[Any] | None,
        partition_range: PartitionKeyRange | None,
        strategy: BackfillStrategy | None,
        failure_policy: str,
        max_concurrency: int,
        tags: list[tuple[str, str]] | None,
        config: dict[str, dict[str, Any]] | None,
    ) -> PlannedBackfill:
        """Checks a backfill's arguments and plans it; raises before anything is stored."""
        check_arguments(partition_keys, partition_range, failure_policy, max_concurrency)
        if strategy is not None and not isinstance(strategy, BackfillStrategy):
            raise TypeError(f"strategy must be a BackfillStrategy, got {type(strategy).__name__}")
        self._ensure_resolved()
        names = self._backfill_selection(selection)
        executor = self._executor_for(None)
        run_plan = self._graph.plan(names, False, executor.kind, None, retry_spec(self._default_retry))
        partitioned = self._partitioned_targets(run_plan.node_names, names)
        if not partitioned:
            raise PartitionValidationError(
                f"the backfill selection {names} has no partitioned asset; backfills materialize partitions"
            )
        strategy = self._backfill_strategy(strategy, [name for name, _ in partitioned])
        tags = [(str(k), str(v)) for k, v in (tags or [])]
        config = self._check_config(config) or None
        plan = _core.BackfillPlan.build(
            self.storage,
            partitioned,
            strategy,
            partition_keys=list(partition_keys) if partition_keys is not None else None,
            partition_range=partition_range,
        )
        return PlannedBackfill(names, executor, run_plan, plan, tags, config)

    def _backfill_selection(self, selection: list[str] | None) -> list[str]:
        if selection is not None:
            return list(dict.fromkeys(selection))
        return [
            asset.name
            for asset in self._assets
            if not isinstance(asset, ExternalAsset) and self._definition_of(asset.name) is not None
        ]

    def _backfill_strategy(self, strategy: BackfillStrategy | None, partitioned: list[str]) -> BackfillStrategy:
        """The explicit strategy, else the one the selected assets declare, else multi-run."""
        if strategy is not None:
            return strategy
        declared = {
            name: node.backfill_strategy
            for name in partitioned
            if (node := self._nodes.get(name) or self._by_name.get(name)) is not None
            and getattr(node, "backfill_strategy", None) is not None
        }
        distinct = {repr(s): s for s in declared.values()}
        if len(distinct) > 1:
            raise ValueError(
                f"the selected assets declare different backfill strategies {declared}; pass strategy= to choose one"
            )
        return next(iter(distinct.values()), None) or BackfillStrategy.multi_run()

    def get_backfill(self, backfill_id: str) -> BackfillStatus | None:
        """The backfill's current status and counters, from storage; ``None`` if unknown."""
        self._ensure_resolved()
        record = self.storage._get_backfill(backfill_id)
        return status_from_record(record) if record is not None else None

    def cancel_backfill(self, backfill_id: str) -> bool:
        """Cancels a backfill: ``True`` when this process runs it and was signalled; otherwise
        a cancel marker is left in storage for the process that runs it, and ``False``."""
        self._ensure_resolved()
        return _core.cancel_backfill(self.storage, backfill_id)

    def rerun_backfill(self, backfill_id: str, block: bool = True, dry_run: bool = False) -> BackfillResult:
        """A new backfill over the failed and canceled partitions of ``backfill_id``, with its
        selection, strategy, failure policy, concurrency, tags and config. Partitions the
        current definitions no longer accept are skipped with a warning."""
        self._ensure_resolved()
        record_text = self.storage._get_backfill(backfill_id)
        if record_text is None:
            raise ValueError(f"no backfill has the id {backfill_id!r}")
        record = json.loads(record_text)
        config = remembered_config(backfill_id, record)
        names = self._backfill_selection(record.get("selection"))
        executor = self._executor_for(None)
        run_plan = self._graph.plan(names, False, executor.kind, None, retry_spec(self._default_retry))
        partitioned = self._partitioned_targets(run_plan.node_names, names)
        keys = unfinished_keys(record)
        try:  # usually every partition is still valid: one check for all of them
            _core.BackfillPlan.build(self.storage, partitioned, BackfillStrategy.multi_run(), partition_keys=list(keys))
        except PartitionValidationError:
            keys = [key for key in keys if self._still_valid(backfill_id, partitioned, key)]
        if not keys:
            raise ValueError(f"backfill {backfill_id!r} has no failed or canceled partitions left to rerun")
        return self.backfill(
            selection=record.get("selection"),
            partition_keys=keys,
            strategy=BackfillStrategy._from_json(json.dumps(record["strategy"])),
            failure_policy=record["failure_policy"],
            max_concurrency=record["max_concurrency"],
            tags=[(k, v) for k, v in record.get("tags", [])],
            config=config,
            block=block,
            dry_run=dry_run,
        )

    def _still_valid(self, backfill_id: str, partitioned: list[tuple[str, Any]], key: str) -> bool:
        """Whether the current definitions (and dynamic keys) still accept ``key``; a rerun
        skips the partitions they do not, with a warning."""
        try:
            _core.BackfillPlan.build(self.storage, partitioned, BackfillStrategy.multi_run(), partition_keys=[key])
        except PartitionValidationError as err:
            _log.warning("rerun of backfill %s skips partition %r: %s", backfill_id, key, err)
            return False
        return True

    # -- the daemon's entry points -----------------------------------------------------------

    def _register_daemon(self, daemon: Any) -> None:
        """Remembers a started ``AutomationDaemon`` so that :meth:`shutdown` stops it."""
        if daemon not in self._daemons:
            self._daemons.append(daemon)

    def _launch_run(
        self,
        run_id: str,
        job_name: str | None,
        node_names: list[str],
        partition_key: Any | None,
        tags: list[tuple[str, str]],
        backfill_id: str | None = None,
    ) -> None:
        """Executes run ``run_id``, which the daemon created (``NotStarted``) and admitted:
        the job's plan, or an ad-hoc plan over ``node_names`` when the run names no job; a run
        of backfill ``backfill_id`` covers its partitions of the backfill's plan. The run's
        record keeps its origin, tags and priority; this process claims and executes it and
        returns when it ends. Raises only when the run cannot start."""
        self._ensure_resolved()
        if job_name is not None:
            executor, plan = self._job_plan(self.get_job(job_name))
        else:
            executor = self._executor_for(None)
            plan = self._graph.plan(node_names, False, executor.kind, None, retry_spec(self._default_retry))
        if backfill_id is None:
            session, request = self._prepare_run(
                plan, executor, job_name, tags, None, run_id, False, False, partition_key, created=True
            )
        else:
            backfill = self._daemon_backfill(backfill_id)
            if backfill.run_index is None or backfill.run_index.get(run_id) is None:
                record = json.loads(self.storage._get_backfill(backfill_id) or "{}")
                backfill.run_index = {run: index for index, run in enumerate(record.get("run_ids", []))}
                backfill.config = remembered_config(backfill_id, record)
            if run_id not in backfill.run_index:
                raise ValueError(f"run {run_id} is not a run of backfill {backfill_id}")
            located = (backfill_id, backfill.plan, backfill.run_index[run_id])
            session, request = self._prepare_run(
                plan, executor, None, tags, backfill.config, run_id, False, False, None, backfill=located, created=True
            )
        _core.execute_run(self.storage, plan, session, request)

    def _submit_backfill_request(
        self,
        selection: list[str],
        partition_keys: list[Any] | None,
        partition_range: PartitionKeyRange | None,
        strategy: BackfillStrategy | None,
        failure_policy: str,
        max_concurrency: int,
        tags: list[tuple[str, str]],
        launched_by: Any,
    ) -> str:
        """Checks and plans the backfill a schedule's or sensor's ``BackfillRequest`` asked
        for, and stores it requested, recorded as launched by that automation, for this code
        location's daemon to run through its run queue; returns its id."""
        planned = self._plan_backfill(
            selection, partition_keys, partition_range, strategy, failure_policy, max_concurrency, tags, None
        )
        backfill_id = new_backfill_id()
        self._remember_daemon_backfill(backfill_id, DaemonBackfill(planned.names, planned.plan))
        _core.request_backfill(
            self.storage,
            planned.plan,
            backfill_id=backfill_id,
            selection=selection,
            failure_policy=failure_policy,
            max_concurrency=max_concurrency,
            tags=planned.tags,
            config=None,
            launched_by=launched_by,
        )
        return backfill_id

    def _plan_backfill_runs(self, backfill_id: str) -> tuple[list[str], Any]:
        """What every run of daemon-executed backfill ``backfill_id`` executes, and its plan."""
        backfill = self._daemon_backfill(backfill_id)
        return backfill.names, backfill.plan

    def _daemon_backfill(self, backfill_id: str) -> DaemonBackfill:
        """A daemon-executed backfill: as this process planned it, else planned again from
        its stored record (the daemon restarted, or another process requested it)."""
        known = self._daemon_backfills.get(backfill_id)
        if known is not None:
            return known
        self._ensure_resolved()
        record_text = self.storage._get_backfill(backfill_id)
        if record_text is None:
            raise ValueError(f"no backfill has the id {backfill_id!r}")
        names = self._backfill_selection(json.loads(record_text).get("selection"))
        executor = self._executor_for(None)
        run_plan = self._graph.plan(names, False, executor.kind, None, retry_spec(self._default_retry))
        partitioned = self._partitioned_targets(run_plan.node_names, names)
        plan = _core.BackfillPlan.replan(self.storage, partitioned, backfill_id)
        return self._remember_daemon_backfill(backfill_id, DaemonBackfill(names, plan))

    def _remember_daemon_backfill(self, backfill_id: str, backfill: DaemonBackfill) -> DaemonBackfill:
        """Keeps the newest daemon-executed backfills' plans (a plan can hold a million keys)."""
        self._daemon_backfills[backfill_id] = backfill
        while len(self._daemon_backfills) > DAEMON_BACKFILLS_KEPT:
            del self._daemon_backfills[next(iter(self._daemon_backfills))]
        return backfill

    def _submit_run(self, selection: list[str] | None = None, partition_key: Any | None = None) -> RunHandle:
        """Launches an ad-hoc run through the queue path (the path UI and gRPC launches take),
        with ``LaunchedBy.manual()``. With a ``run_queue``, the run is ``Queued`` until a
        daemon's coordinator admits and launches it; without one, it executes at once on the
        engine's runtime. Returns at once either way."""
        self._ensure_resolved()
        if selection is not None:
            selection = list(dict.fromkeys(selection))
        executor = self._executor_for(None)
        plan = self._graph.plan(selection, False, executor.kind, None, retry_spec(self._default_retry))
        if self._run_queue is not None:
            key = self._run_partition_key(plan, partition_key)
            run_id = _core.queue_run(self.storage, list(plan.node_names), key)
            return RunHandle(self, StoredRun(self, run_id), lambda result: result)
        session, request = self._prepare_run(plan, executor, None, None, None, None, False, False, partition_key)
        launched = _core.launch_run(self.storage, plan, session, request)
        return RunHandle(self, launched, lambda outcome: run_result(outcome, session, False))

    def observe(self, asset_names: list[str] | None = None) -> dict[str, Any]:
        """Runs the observation functions of external assets and records an ``Observation``
        event for each; returns ``{asset: {key: MetadataValue}}``."""
        from rivers._execution.observe import observe_asset

        self._ensure_resolved()
        if asset_names is not None:
            for name in asset_names:
                if name not in self._by_name:
                    raise AssetNotFoundError(
                        f"observe() names '{name}', which is not a registered asset; registered assets: "
                        f"[{', '.join(self._by_name)}]"
                    )
        wanted = set(asset_names) if asset_names is not None else None
        results: dict[str, Any] = {}
        run_id = str(uuid.uuid4())
        for asset in self._assets:
            if not isinstance(asset, ExternalAsset) or asset.observe_fn is None:
                continue
            if wanted is not None and asset.name not in wanted:
                continue
            metadata, data_version = observe_asset(asset, self._resources)
            self.storage._record_observation(asset.name, run_id, encode(metadata), data_version)
            results[asset.name] = metadata
        return results

    # -- values ----------------------------------------------------------------------------

    def _loadable(self, name: str) -> tuple[Any, Any]:
        """The node of a loadable name and the handler that wrote it; a fan-out instance
        (``graph/task[key]``) is written by its template's handler."""
        instance = _INSTANCE.fullmatch(name)
        if instance is not None and getattr(self._nodes.get(instance.group(1)), "map", None) is not None:
            return self._nodes[instance.group(1)], self._handlers[instance.group(1)]
        node = self._node(name)
        return node, self._handlers[name]

    def _node(self, name: str) -> Any:
        try:
            return self._by_name[name]
        except KeyError:
            hint = ""
            node = self._nodes.get(name)
            if isinstance(node, MultiAsset):
                hint = f"; '{name}' is a multi-asset: name one of its outputs {node.output_names}"
            hint = hint or self._graph_only_hint(name)
            raise NodeNotFoundError(
                f"'{name}' is not a node of this repository{hint}; known nodes: [{', '.join(self._by_name)}]"
            ) from None

    def io_handler_for_output(self, name: str) -> Any:
        """The handler that writes ``name``'s output (runs no user code)."""
        self._ensure_resolved()
        return self._loadable(name)[1]

    def load_node(self, name: str, *, partition_key: Any | None = None, type_hint: type | None = None) -> Any:
        """The value the latest materialization of ``name`` wrote, via its IO handler."""
        self._ensure_resolved()
        node, handler = self._loadable(name)
        definition = self._definition_of(name if name in self._by_name else node.name)
        partition = None
        if definition is None and partition_key is not None:
            raise PartitionValidationError(
                f"'{name}' is not partitioned; call load_node('{name}') without partition_key"
            )
        if definition is not None:
            if partition_key is None:
                raise PartitionValidationError(f"'{name}' is partitioned; pass partition_key= to load one partition")
            if not definition.validate_partition_key(partition_key):
                raise PartitionValidationError(
                    f"Invalid partition_key '{partition_key}' for '{name}': it is not a key of {definition!r}"
                )
            partition = PartitionContext([partition_key], definition)
        metadata = self._static_metadata(name) if name in self._by_name else None
        context = InputContext(name, name, metadata, partition, type_hint)
        return handler.load_input(context)

    # -- lifecycle -------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Tears resources down and releases storage. Idempotent."""
        if self._shut_down:
            return
        self._shut_down = True
        for daemon in self._daemons:
            daemon.stop()
        self._daemons.clear()
        from rivers._definitions.resources import Resource

        for key, resource in self._resources.items():
            if isinstance(resource, Resource):
                try:
                    resource.teardown()
                except Exception:
                    _log.exception("teardown() of resource '%s' failed", key)
        self._storage = None

    def __enter__(self) -> CodeRepository:
        return self

    def __exit__(self, exc_type: Any = None, exc_val: Any = None, exc_tb: Any = None) -> Literal[False]:
        self.shutdown()
        return False

    def __repr__(self) -> str:
        return f"CodeRepository(assets={list(self._by_name)})"


def _output_names(node: Any) -> list[str]:
    """The loadable names a node's step writes: a multi-asset's outputs, else its own name."""
    return node.output_names if isinstance(node, MultiAsset) else [node.name]


def _common_fields(node: Any) -> dict[str, Any]:
    metadata = node.metadata or {}
    declared = node.task if isinstance(node, GraphTaskNode) else node
    compute = getattr(declared, "compute", None)
    if compute is not None and not isinstance(compute, Compute):
        raise TypeError(f"'{node.name}' declares compute={compute!r}; use rs.Compute(cpu=..., memory=..., gpu=...)")
    strategy = getattr(node, "backfill_strategy", None)
    condition = getattr(node, "automation_condition", None)
    if condition is not None and not isinstance(condition, _core.AutomationCondition):
        raise TypeError(
            f"asset '{node.name}' declares automation_condition={condition!r}, which is not an AutomationCondition; "
            "build one with rs.AutomationCondition (for example rs.AutomationCondition.eager())"
        )
    return dict(
        automation_condition=condition,
        compute=compute,
        # Any other value is refused by name when the repository is validated.
        backfill_strategy=strategy if isinstance(strategy, BackfillStrategy) else None,
        name=node.name,
        params=getattr(node, "_params", []),
        metadata=encode(coerce_dict(metadata, f"metadata of '{node.name}'")),
        tags=list(node.tags or []),
        executor_override=metadata.get("rivers/executor"),
        is_async=node.is_async,
        partitions=declared.partitions_def,
        partition_mappings=list((declared.partition_mapping or {}).items()),
    )


class _OutputSpec:
    """A multi-asset output as the core reads it: the output's attributes, with the
    multi-asset's as defaults."""

    def __init__(self, asset: MultiAsset, output: Any) -> None:
        self.name = output.name
        self.tags = list(output.tags if output.tags is not None else asset.tags or [])
        self.kinds = list(output.kinds or asset.kinds)
        self.group = output.group if output.group is not None else asset.group
        self.code_version = output.code_version if output.code_version is not None else asset.code_version
        self.io_handler = output.io_handler if output.io_handler is not None else asset._io_handler
        self.metadata = encode(coerce_dict(output.metadata or {}, f"metadata of '{output.name}'"))
        self.deps = [dep.name for dep in output.deps if not dep.is_input]
        self.partitions_def = output.partitions_def


def _asset_spec(asset: Any) -> Any:
    external = isinstance(asset, ExternalAsset)
    multi = isinstance(asset, MultiAsset)
    fields = _common_fields(asset)
    if external:
        fields["params"] = []  # an observation function's parameters are not graph edges
    return _core.NodeSpec(
        **fields,
        kind="external" if external else "multi" if multi else "asset",
        deps=asset.deps,
        kinds=list(asset.kinds),
        group=asset.group,
        code_version=asset.code_version,
        io_handler=asset._io_handler,
        retry=retry_spec(asset.effective_retry() if multi else asset.retry),
        pools=list(asset.pool),
        hooks=list(asset.hooks or []),
        observable=external and asset.observe_fn is not None,
        outputs=[_OutputSpec(asset, output) for output in asset.output_defs] if multi else [],
        never_retried=multi and asset.is_generator,
    )


def _graph_spec(graph: GraphAsset) -> Any:
    fields = _common_fields(graph)
    members = [graph.final_node, *(n.name for n in graph.internal_nodes if n.name != graph.final_node)]
    return _core.NodeSpec(
        **{**fields, "params": []},
        kind="graph",
        deps=[DepDef(dep.name, is_input=False) for dep in graph.deps],
        kinds=list(graph.kinds),
        group=graph.group,
        code_version=graph.code_version,
        io_handler=graph._io_handler,
        retry=retry_spec(graph.retry),
        pools=[],
        hooks=list(graph.hooks or []),
        observable=False,
        members=members,
    )


def _task_spec(node: Any) -> Any:
    """A standalone task, or a graph's internal node (its task with the recorded wiring). The
    graph's ``AssetDef.dep`` entries order the internal nodes that read nothing inside the
    graph (R30), and the handles given to a BashTask order it after their nodes."""
    fields = _common_fields(node)
    graph = getattr(node, "graph", None)
    deps: list[DepDef] = []
    if graph is not None:
        internal = {n.name for n in graph.internal_nodes}
        reads_inside = any(p.source in internal for p in node._params) or any(a in internal for a in node.after)
        deps = [DepDef(name, is_input=False) for name in node.after]
        if not reads_inside:
            deps.extend(DepDef(dep.name, is_input=False) for dep in graph.deps if not dep.is_input)
        fields["executor_override"] = graph.internal_executor()
    settings = getattr(node, "map", None)
    return _core.NodeSpec(
        **fields,
        kind="task",
        deps=deps,
        kinds=[],
        group=None,
        code_version=None,
        io_handler=node.io_handler,
        retry=retry_spec(node.retry),
        pools=[],
        hooks=[],
        observable=False,
        graph=graph.name if graph is not None else None,
        mapped=settings is not None,
        max_concurrency=settings.max_concurrency if settings is not None else None,
    )


def run_result(outcome: Any, session: RunSession, raise_on_error: bool) -> RunResult:
    """The user-facing result of a finished run; with ``raise_on_error``, the first step
    failure is raised from the step's own exception."""
    if raise_on_error and outcome.failed:
        step, message = outcome.failed[0]
        raise ExecutionError(f"step '{step}' failed: {message}") from session.errors.get(step)
    return RunResult(outcome.status == "Success", outcome.run_id, outcome.attempted, outcome.failed)
