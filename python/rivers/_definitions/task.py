"""Declaring tasks: ``Task`` (a Python function as a step) and ``BashTask`` (a shell command run
natively by the core).

A task is a node that is not an asset producer: standalone on a repository (under its bare
name) or inside a graph asset (as ``graph/task``). Its step writes its value through its IO
handler and records step events only, never a ``Materialization``.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from typing import Any

from rivers import _core
from rivers._definitions.asset import ParamSpec, inspect_function, new_definition, shipped_state
from rivers.exceptions import AssetDefinitionError, TaskDefinitionError

_RESERVED = ("/", "[", "]")


def check_node_name(kind: str, name: Any) -> str:
    """A task (or instance) name: a non-empty ``str`` without the reserved characters."""
    if not isinstance(name, str) or not name:
        raise TaskDefinitionError(f"{kind} name must be a non-empty str, got {name!r}")
    for char in _RESERVED:
        if char in name:
            raise TaskDefinitionError(
                f"{kind} name {name!r} contains {char!r}; '/', '[' and ']' are reserved for graph namespaces "
                "and fan-out instance keys: rename it"
            )
    return name


def _check_handler(owner: str, handler: Any) -> Any:
    if handler is None or isinstance(handler, str):
        return handler
    from rivers.io_handlers.base import BaseIOHandler

    if not isinstance(handler, BaseIOHandler):
        raise TaskDefinitionError(
            f"io_handler of task '{owner}' must be a BaseIOHandler instance or a resource key (str), got "
            f"{type(handler).__name__}"
        )
    return handler


def _check_retry(owner: str, retry: Any) -> Any:
    if retry is None or isinstance(retry, str):
        return retry
    from rivers._definitions.retry import RetryPolicy

    if not isinstance(retry, RetryPolicy):
        raise TaskDefinitionError(f"retry of task '{owner}' must be a RetryPolicy or a registered policy name")
    return retry


def _check_tags(owner: str, tags: Any) -> list[str] | None:
    if tags is None:
        return None
    if isinstance(tags, str) or not all(isinstance(tag, str) for tag in tags):
        raise TaskDefinitionError(f"tags of task '{owner}' must be a list of str")
    return list(tags)


def _mapping_keys(mapping: dict[Any, Any] | None) -> dict[str, Any] | None:
    if not mapping:
        return None
    return {getattr(key, "name", key): value for key, value in mapping.items()}


class _TaskBase:
    """What every task kind shares: options, reference pickling, recording inside graphs."""

    name: str | None
    tags: list[str] | None
    partitions_def: Any
    partition_mapping: dict[str, Any] | None
    io_handler: Any
    retry: Any
    is_async: bool = False
    is_bash: bool = False
    is_task = True
    is_multi = False
    # Tasks take no hooks and no static metadata; steps read these like an asset's.
    hooks: list[Any] | None = None
    metadata: dict[str, str] | None = None
    compute: Any = None
    _params: list[ParamSpec]
    _config_type: Any
    _return_hint: Any

    def _require_name(self) -> str:
        if not self.name:
            raise TaskDefinitionError(
                f"{type(self).__name__} has no name: apply it to a function as a decorator or pass name="
            )
        return self.name

    def __reduce__(self) -> Any:
        # Module-level tasks travel to worker processes by reference, like assets: by the
        # qualified name of their function, or by the module global that holds them
        # (`parse3 = rs.Task(fn, name=...)`). Anything else travels by value.
        reference = self._reference()
        if reference is not None:
            return (_import_task, (*reference, self.name))
        return (new_definition, (type(self),), shipped_state(self))

    def _reference(self) -> tuple[str, str] | None:
        module_name, qualname = self._origin()
        module = sys.modules.get(module_name or "")
        if module is None or module_name == "__main__":
            return None
        if qualname is not None and "<locals>" not in qualname:
            target: Any = module
            for part in qualname.split("."):
                target = getattr(target, part, None)
            if target is self:
                return module_name, qualname  # type: ignore[return-value]
        for attr, value in vars(module).items():
            if value is self:
                return module_name, attr  # type: ignore[return-value]
        return None

    def _origin(self) -> tuple[str | None, str | None]:
        return None, None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class Task(_TaskBase):
    """A Python function as a unit of work: ``@rs.Task``, ``@rs.Task(name=...)`` or
    ``rs.Task(fn, ...)``. Called outside a graph body it is the plain function; inside one it
    records an internal node."""

    def __init__(
        self,
        wraps: Callable[..., Any] | None = None,
        name: str | None = None,
        tags: list[str] | None = None,
        partitions_def: Any | None = None,
        partition_mapping: dict[Any, Any] | None = None,
        io_handler: Any | None = None,
        retry: Any | None = None,
    ) -> None:
        if name is not None:
            check_node_name("Task", name)
        owner = str(name or getattr(wraps, "__name__", "task"))
        self.name = name
        self.tags = _check_tags(owner, tags)
        self.partitions_def = partitions_def
        self.partition_mapping = _mapping_keys(partition_mapping)
        self.io_handler = _check_handler(owner, io_handler)
        self.retry = _check_retry(owner, retry)
        self.fn: Callable[..., Any] | None = None
        if wraps is not None:
            self._wrap(wraps)

    def _wrap(self, fn: Callable[..., Any]) -> None:
        if not callable(fn):
            raise TaskDefinitionError(f"Task must wrap a function, got {type(fn).__name__}")
        if self.name is None:
            self.name = check_node_name("Task", getattr(fn, "__name__", None))
        try:
            self._params, self._config_type, self._return_hint = inspect_function(fn, self.name)
        except AssetDefinitionError as err:
            raise TaskDefinitionError(str(err).replace("asset parameters", "task parameters")) from None
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def _origin(self) -> tuple[str | None, str | None]:
        if self.fn is None:
            return None, None
        return getattr(self.fn, "__module__", None), getattr(self.fn, "__qualname__", None)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.fn is None:
            if len(args) != 1 or kwargs or not callable(args[0]):
                raise TaskDefinitionError("an unapplied @rs.Task(...) decorator takes exactly one function")
            task = Task(
                name=self.name,
                tags=self.tags,
                partitions_def=self.partitions_def,
                partition_mapping=self.partition_mapping,
                io_handler=self.io_handler,
                retry=self.retry,
            )
            task._wrap(args[0])
            return task
        from rivers._definitions.composition import recording

        recorder = recording()
        if recorder is not None:
            return recorder.invoke_task(self, args, kwargs)
        return self.fn(*args, **kwargs)


class BashTask(_TaskBase):
    """A shell command as a task; its value is the command's standard output (``str``). A
    ``str`` command runs through ``sh -c``; a ``list[str]`` is executed directly, without a
    shell. The command is run by the core, not by a Python subprocess."""

    is_bash = True

    def __init__(
        self,
        name: str | None = None,
        command: str | list[str] | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        tags: list[str] | None = None,
        partition_mapping: dict[Any, Any] | None = None,
        io_handler: Any | None = None,
        retry: Any | None = None,
    ) -> None:
        if command is None:
            raise TypeError("BashTask() missing required argument: 'command'")
        if name is not None:
            check_node_name("BashTask", name)
        owner = name or "bash task"
        if isinstance(command, str):
            if not command.strip():
                raise TaskDefinitionError(f"the command of BashTask '{owner}' is empty")
        elif isinstance(command, list):
            if not command:
                raise TaskDefinitionError(f"the command of BashTask '{owner}' is an empty list")
            if not all(isinstance(arg, str) for arg in command):
                raise TaskDefinitionError(f"the command list of BashTask '{owner}' must hold only str arguments")
        else:
            raise TaskDefinitionError(
                f"the command of BashTask '{owner}' must be a str or a list of str, got {type(command).__name__}"
            )
        if env is not None:
            if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
                raise TaskDefinitionError(f"env of BashTask '{owner}' must map str to str")
        if cwd is not None and not isinstance(cwd, str):
            raise TaskDefinitionError(f"cwd of BashTask '{owner}' must be a str or None")
        self.name = name
        self._command = list(command) if isinstance(command, list) else command
        self._env = dict(env) if env is not None else None
        self._cwd = cwd
        self.tags = _check_tags(owner, tags)
        self.partitions_def = None
        self.partition_mapping = _mapping_keys(partition_mapping)
        self.io_handler = _check_handler(owner, io_handler)
        self.retry = _check_retry(owner, retry)
        self._params = []
        self._config_type = None
        self._return_hint = str
        self._module: str | None = None
        self._qualname: str | None = None

    @property
    def command(self) -> str | list[str]:
        return list(self._command) if isinstance(self._command, list) else self._command

    @property
    def env(self) -> dict[str, str] | None:
        return dict(self._env) if self._env is not None else None

    @property
    def cwd(self) -> str | None:
        return self._cwd

    def _origin(self) -> tuple[str | None, str | None]:
        return self._module, self._qualname

    def run(self) -> str:
        """Runs the command now and returns its standard output; ``OSError`` when it cannot
        start or exits non-zero (the message holds its stderr and exit code)."""
        return self._run(echo_stderr=False)

    def run_in_step(self) -> str:
        """Runs the command as a step body: its stderr goes to the step's captured stderr."""
        return self._run(echo_stderr=True)

    def _run(self, echo_stderr: bool) -> str:
        name = self._require_name()
        result = _core.run_command(self._command, self._env, self._cwd)
        if echo_stderr and result.stderr:
            sys.stderr.write(result.stderr)
        if result.exit_code != 0:
            raise OSError(
                f"BashTask '{name}' exited with status {result.exit_code}: {result.stderr.strip() or '(no stderr)'}"
            )
        return _strip_trailing_newlines(result.stdout)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.name is None:
            if len(args) == 1 and not kwargs and callable(args[0]) and not isinstance(args[0], _TaskBase):
                return self._applied(args[0])
            raise TaskDefinitionError(
                "this BashTask has no name: use it as a decorator on a function, or pass name= to BashTask(...)"
            )
        from rivers._definitions.composition import recording

        recorder = recording()
        if recorder is not None:
            return recorder.invoke_bash(self, args, kwargs)
        if len(args) == 1 and not kwargs and callable(args[0]) and not isinstance(args[0], _TaskBase):
            # The decorator form with an explicit name: the function only lends its location.
            return self._applied(args[0])
        if args or kwargs:
            raise TypeError(f"BashTask '{self.name}' takes no arguments when called directly")
        return self.run()

    def _applied(self, fn: Callable[..., Any]) -> BashTask:
        task = BashTask(
            name=self.name or check_node_name("BashTask", getattr(fn, "__name__", None)),
            command=self._command,
            env=self._env,
            cwd=self._cwd,
            tags=self.tags,
            partition_mapping=self.partition_mapping,
            io_handler=self.io_handler,
            retry=self.retry,
        )
        task._module = getattr(fn, "__module__", None)
        task._qualname = getattr(fn, "__qualname__", None)
        task.__doc__ = fn.__doc__
        return task


def _strip_trailing_newlines(text: str) -> str:
    return text.rstrip("\r\n")


def _import_task(module: str, qualname: str, name: str | None) -> Any:
    import importlib

    try:
        target: Any = importlib.import_module(module)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as err:
        raise TaskDefinitionError(
            f"the parallel executor could not import task '{name}' as {module}.{qualname} in a worker process "
            f"({err}); define tasks at module scope in a module importable from the worker's sys.path"
        ) from err
    if not isinstance(target, _TaskBase):
        raise TaskDefinitionError(f"'{module}.{qualname}' is not the task '{name}' in the worker process")
    return target
