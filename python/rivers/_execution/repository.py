"""``CodeRepository``, ``Job`` and ``RunResult``: the orchestration entry points.

Graph validation and planning are done by the core (``rivers._core.Graph``); runs are executed
by the core engine, which calls back into :class:`rivers._execution.run.RunSession` once per step.
"""

from __future__ import annotations

import gc
import logging
import uuid
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from rivers import _core
from rivers._definitions.asset import Asset, ExternalAsset
from rivers._definitions.executor import Executor
from rivers._definitions.metadata import coerce_dict, encode
from rivers._definitions.retry import RetryPolicy, retry_spec
from rivers._execution.handles import RunHandle, RunResult
from rivers._execution.run import RunSession
from rivers._execution.step import InputSpec, StepSpec
from rivers.exceptions import (
    AssetDefinitionError,
    AssetNotFoundError,
    ConfigurationError,
    ExecutionError,
    NodeNotFoundError,
    PartitionValidationError,
)

_log = logging.getLogger("rivers")
DEFAULT_STORAGE_PATH = Path(".rivers") / "storage"


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
            if not isinstance(node, Asset):
                raise TypeError(f"Job '{name}' lists {node!r}, which is not an asset or task")
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
        for key, policy in (retries or {}).items():
            if not isinstance(policy, RetryPolicy):
                raise TypeError(f"retries['{key}'] must be a RetryPolicy, got {type(policy).__name__}")
        self._assets = list(assets)
        self._tasks = list(tasks or [])
        self._schedules = list(schedules or [])
        self._sensors = list(sensors or [])
        self._default_executor = default_executor
        self._resources = dict(resources or {})
        self._run_queue = run_queue
        self._run_backend = run_backend
        self._pool_limits = dict(pool_limits or {})
        self._partition_defs = dict(partition_defs or {})
        self._retries = dict(retries or {})
        self._default_retry = default_retry_policy
        self._by_name: dict[str, Any] = {}
        for asset in self._assets:
            if isinstance(asset, ExternalAsset) and not asset.name:
                raise AssetDefinitionError("an external asset has no name; pass name= to rs.Asset.external(...)")
            self._by_name.setdefault(asset.name, asset)
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
        self._graph = self._build_graph(check_bindings=False)
        self._validate_jobs(self._graph)
        for job in self._jobs.values():
            job._repository = self

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

    def _handler_of(self, asset: Any) -> Any:
        handler = asset._io_handler
        if isinstance(handler, str):
            return self._resource_handler(asset.name, handler)
        return handler if handler is not None else self._default_io_handler()

    def _input_handler(self, consumer: Any, upstream: str) -> tuple[Any, dict[str, str] | None]:
        upstream_asset = self._by_name[upstream]
        for dep in consumer.deps:
            if dep.name == upstream and dep.is_input:
                handler = dep.io_handler
                if isinstance(handler, str):
                    handler = self._resource_handler(consumer.name, handler, f"AssetDef.input('{upstream}') io_handler")
                metadata = dep.metadata if dep.metadata is not None else upstream_asset.metadata
                return (handler or self._handler_of(upstream_asset)), metadata
        return self._handler_of(upstream_asset), upstream_asset.metadata

    def _pinned_nodes(self) -> set[str]:
        """Assets whose output or inputs live in an ``InMemoryIOHandler``: their values cannot
        cross a process boundary, so the parallel executor runs them in this process."""
        from rivers.io_handlers.memory import InMemoryIOHandler

        in_memory = {a.name for a in self._assets if isinstance(self._handler_of(a), InMemoryIOHandler)}
        pinned = set()
        for asset in self._assets:
            if isinstance(asset, ExternalAsset):
                continue
            if asset.name in in_memory:
                pinned.add(asset.name)
                continue
            overrides = {d.name: d.io_handler for d in asset.deps if d.is_input and d.io_handler is not None}
            for param in asset._params:
                override = overrides.get(param.name)
                if override is not None:
                    handler = self._resource_handler(asset.name, override) if isinstance(override, str) else override
                    if isinstance(handler, InMemoryIOHandler):
                        pinned.add(asset.name)
                elif param.name in in_memory:
                    pinned.add(asset.name)
        return pinned

    @staticmethod
    def _node_spec(asset: Any) -> Any:
        """The core's form of an asset definition, converted once per asset object."""
        spec = asset.__dict__.get("_node_spec")
        if spec is None:
            external = isinstance(asset, ExternalAsset)
            metadata = asset.metadata or {}
            spec = _core.NodeSpec(
                name=asset.name,
                kind="external" if external else "asset",
                params=[] if external else asset._params,
                deps=asset.deps,
                metadata=encode(coerce_dict(metadata, f"metadata of '{asset.name}'")),
                tags=list(asset.tags or []),
                kinds=list(asset.kinds),
                group=asset.group,
                code_version=asset.code_version,
                io_handler=asset._io_handler,
                executor_override=metadata.get("rivers/executor"),
                is_async=asset.is_async,
                retry=retry_spec(asset.retry),
                pools=list(asset.pool),
                hooks=list(asset.hooks or []),
                observable=external and asset.observe_fn is not None,
            )
            asset._node_spec = spec
        return spec

    def _build_graph(self, check_bindings: bool) -> Any:
        # Building the node tuples allocates tens of thousands of short-lived containers for a
        # large repository; with the cyclic collector on, each allocation burst triggers scans
        # of the whole (possibly large) heap, which costs more than the build itself.
        collecting = gc.isenabled()
        gc.disable()
        try:
            pinned = self._pinned_nodes() if check_bindings else set()
            nodes = [self._node_spec(a) for a in self._assets]
            flags = [a.name in pinned for a in self._assets]
            return _core.Graph(nodes, flags, list(self._resources), self._retries, check_bindings)
        finally:
            if collecting:
                gc.enable()

    def _validate_jobs(self, graph: Any) -> None:
        executor = self._executor_for(None)
        for job in self._jobs.values():
            graph.plan_job(job.name, [a.name for a in job.assets], job.allow_incomplete_deps, executor.kind)

    def _validate(self) -> Any:
        for asset in self._assets:
            if isinstance(asset, ExternalAsset):
                if asset.automation_condition is not None and asset.observe_fn is None:
                    raise AssetDefinitionError(
                        f"external asset '{asset.name}' has an automation_condition but no observation function; "
                        "decorate a function with @rs.Asset.external(...) to observe it"
                    )
            if isinstance(asset._io_handler, str):
                self._resource_handler(asset.name, asset._io_handler)
        graph = self._build_graph(check_bindings=True)
        for message in graph.warnings:
            warnings.warn(message, UserWarning, stacklevel=3)
        if self._default_retry is not None:
            graph.check_retry(retry_spec(self._default_retry), "default_retry_policy")
        for job in self._jobs.values():
            if job.retry is not None:
                graph.check_retry(retry_spec(job.retry), f"job '{job.name}'")
        self._validate_jobs(graph)
        self._reject_unsupported()
        return graph

    def _reject_unsupported(self) -> None:
        """Declarations whose behaviour this build does not provide yet are refused by name,
        never accepted and silently ignored."""
        unsupported = (
            ("schedules", self._schedules, "schedules"),
            ("sensors", self._sensors, "sensors"),
            ("run_queue", self._run_queue, "the run queue"),
            ("pool_limits", self._pool_limits, "concurrency pool limits"),
            ("partition_defs", self._partition_defs, "partitions"),
            ("tasks", self._tasks, "tasks and graph assets"),
            ("run_backend", self._run_backend, "run backends"),
        )
        for parameter, given, what in unsupported:
            if given:
                raise NotImplementedError(
                    f"CodeRepository({parameter}=...): {what} are not available in this version of rivers; "
                    f"remove {parameter}= to run the repository without them"
                )
        for asset in self._assets:
            if asset.partitions_def is not None:
                raise NotImplementedError(
                    f"asset '{asset.name}' declares partitions_def=..., and partitioned assets are not available in "
                    "this version of rivers; it would run unpartitioned: remove partitions_def= from it"
                )
            if asset.partition_mapping:
                raise NotImplementedError(
                    f"asset '{asset.name}' declares a partition_mapping, and partitions are not available in this "
                    "version of rivers; remove the partition_mapping"
                )
            if asset.backfill_strategy is not None:
                raise NotImplementedError(
                    f"asset '{asset.name}' declares backfill_strategy=..., and backfills are not available in this "
                    "version of rivers; remove backfill_strategy= from it"
                )
            if asset.automation_condition is not None:
                raise NotImplementedError(
                    f"asset '{asset.name}' declares automation_condition=..., and automation conditions are not "
                    "evaluated by this version of rivers (no daemon); remove automation_condition= from it"
                )

    def validate(self) -> None:
        """Checks the repository without side effects (no storage, no resource setup)."""
        self._validate()

    def _definitions_snapshot(self) -> str:
        """Every definition of this repository as JSON (``rivers_core::DefinitionsSnapshot``):
        what readers that do not import user code (daemon, gRPC, UI) see."""
        return str(
            self._graph.snapshot_json(
                list(self._jobs.values()), self._executor_for(None), retry_spec(self._default_retry)
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
        self._handlers = {asset.name: self._handler_of(asset) for asset in self._assets}
        storage._register_definitions(graph)
        self._graph = graph
        self._storage = storage
        self._resolved = True

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
        return dict(self._by_name)

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

    # -- execution -------------------------------------------------------------------------

    def _executor_for(self, job: Job | None) -> Executor:
        if job is not None and job.executor is not None:
            return job.executor
        return self._default_executor if self._default_executor is not None else Executor.parallel()

    def _step_bindings(self, asset: Any) -> tuple[dict[str, InputSpec], dict[str, Any]]:
        """Where each parameter of ``asset`` comes from: an upstream (through which handler) or
        a resource. Fixed once the repository is resolved, so computed once per asset."""
        bindings = self._bindings.get(asset.name)
        if bindings is None:
            inputs = {}
            resources = {}
            for param in asset._params:
                if param.role not in ("named", "context_by_name"):
                    continue
                if param.name in self._by_name:
                    handler, metadata = self._input_handler(asset, param.name)
                    inputs[param.name] = InputSpec(param.name, handler, metadata)
                elif param.name in self._resources:
                    resources[param.name] = self._resources[param.name]
            bindings = self._bindings[asset.name] = (inputs, resources)
        return bindings

    def _step_spec(self, asset: Any, run_id: str, config: dict[str, dict[str, Any]]) -> StepSpec:
        inputs, resources = self._step_bindings(asset)
        return StepSpec(
            asset=asset,
            output_handler=self._handlers[asset.name],
            inputs=inputs,
            resources=resources,
            config_overrides=config.get(asset.name),
            run_id=run_id,
        )

    def _check_config(self, config: dict[str, dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
        for key in config or {}:
            if key not in self._by_name:
                raise ConfigurationError(
                    f"materialize(config=...) has an entry for '{key}', which is not a registered node; "
                    f"registered nodes: [{', '.join(self._by_name)}]"
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
    ) -> tuple[RunSession, Any]:
        """Checks a run's arguments; returns the session that runs its steps and the request
        that describes it to the engine."""
        if partition_key is not None:
            raise PartitionValidationError(
                f"partition_key {partition_key!r} was given but none of the planned assets is partitioned"
            )
        config = self._check_config(config)
        tags = [(str(k), str(v)) for k, v in (tags or [])]
        priority = 0
        for key, value in tags:
            if key == "rivers/priority":
                try:
                    priority = int(value)
                except ValueError:
                    raise ValueError(f"run tag rivers/priority must be an integer, got {value!r}") from None
        run_id = run_id or str(uuid.uuid4())
        if executor.kind != "kubernetes":
            for name in plan.node_names:
                if self._by_name[name].compute is not None:
                    _log.warning(
                        "asset '%s' declares compute=%r, which only the Kubernetes executor uses; ignored",
                        name,
                        self._by_name[name].compute,
                    )
        max_workers = getattr(executor, "max_workers", 1)
        session = RunSession(lambda node: self._step_spec(self._by_name[node], run_id, config), max_workers)
        request = _core.RunRequest(
            run_id=run_id,
            job_name=job_name,
            tags=tags,
            priority=priority,
            resume=resume,
            stop_on_failure=stop_on_failure,
            max_workers=max_workers,
            max_async_concurrent=getattr(executor, "max_async_concurrent", None),
        )
        return session, request

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
        executor = self._executor_for(job)
        plan = self._graph.plan_job(
            job.name,
            [a.name for a in job.assets],
            job.allow_incomplete_deps,
            executor.kind,
            retry_spec(job.retry),
            retry_spec(self._default_retry),
        )
        session, request = self._prepare_run(
            plan, executor, job.name, tags, config, None, False, raise_on_error, partition_key
        )
        return run_result(_core.execute_run(self.storage, plan, session, request), session, raise_on_error)

    def _submit_run(self, selection: list[str] | None = None, partition_key: Any | None = None) -> RunHandle:
        """Launches an ad-hoc run in the background (the path daemon and UI launches take): the
        run executes on the engine's runtime and this returns at once."""
        self._ensure_resolved()
        if selection is not None:
            selection = list(dict.fromkeys(selection))
        executor = self._executor_for(None)
        plan = self._graph.plan(selection, False, executor.kind, None, retry_spec(self._default_retry))
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

    def _node(self, name: str) -> Any:
        try:
            return self._by_name[name]
        except KeyError:
            raise NodeNotFoundError(
                f"'{name}' is not a node of this repository; known nodes: [{', '.join(self._by_name)}]"
            ) from None

    def io_handler_for_output(self, name: str) -> Any:
        """The handler that writes ``name``'s output (runs no user code)."""
        self._ensure_resolved()
        return self._handlers[self._node(name).name]

    def load_node(self, name: str, *, partition_key: Any | None = None, type_hint: type | None = None) -> Any:
        """The value the latest materialization of ``name`` wrote, via its IO handler."""
        from rivers._execution.io_context import InputContext

        self._ensure_resolved()
        node = self._node(name)
        if partition_key is not None and node.partitions_def is None:
            raise PartitionValidationError(
                f"'{name}' is not partitioned; call load_node('{name}') without partition_key"
            )
        context = InputContext(name, name, node.metadata, None, type_hint)
        return self._handlers[name].load_input(context)

    # -- lifecycle -------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Tears resources down and releases storage. Idempotent."""
        if self._shut_down:
            return
        self._shut_down = True
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


def run_result(outcome: Any, session: RunSession, raise_on_error: bool) -> RunResult:
    """The user-facing result of a finished run; with ``raise_on_error``, the first step
    failure is raised from the step's own exception."""
    if raise_on_error and outcome.failed:
        step, message = outcome.failed[0]
        raise ExecutionError(f"step '{step}' failed: {message}") from session.errors.get(step)
    return RunResult(outcome.status == "Success", outcome.run_id, outcome.attempted, outcome.failed)
