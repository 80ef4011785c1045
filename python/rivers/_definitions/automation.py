"""What schedules and sensors share: ``EvalMode``, the evaluation contexts, the inspection of
an evaluation function, and the definition-time checks of their common parameters.

An evaluation function is inspected once, when the schedule or sensor is declared: which
parameter receives the context, which config class the context annotation names, and which
parameters are resources (bound by name from ``CodeRepository(resources=...)``).
"""

from __future__ import annotations

import inspect
import logging
import typing
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar, Generic, TypeVar

from rivers import _core
from rivers._definitions.asset import _type_hints


class EvalMode(IntEnum):
    """How the daemon runs a schedule's or sensor's evaluation function."""

    Auto = 0
    """A coroutine function on the event loop, any other on a blocking thread."""
    InProcess = 1
    """In the daemon's process; today the same as ``Auto``."""
    Subprocess = 2
    """In a loky worker process, without resources or config."""


ConfigT = TypeVar("ConfigT")


class _EvaluationContext(Generic[ConfigT]):
    """The ``config`` and ``log`` both evaluation contexts offer."""

    # The logger namespace ("rivers.schedules") and the attribute holding the automation's name.
    _log_namespace: ClassVar[str]
    _name_attribute: ClassVar[str]
    _config: Any

    @property
    def config(self) -> ConfigT:
        """The config built from the annotation's type argument (defaults and environment);
        ``None`` without one, and always under ``EvalMode.Subprocess``."""
        return self._config  # type: ignore[no-any-return]

    @property
    def log(self) -> logging.Logger:
        """A logger named after the automation (``rivers.schedules.<name>`` /
        ``rivers.sensors.<name>``)."""
        return logging.getLogger(f"{self._log_namespace}.{getattr(self, self._name_attribute)}")


class ScheduleEvaluationContext(_EvaluationContext[ConfigT]):
    """What a schedule's evaluation function receives. Annotate it with a pydantic config
    class (``ScheduleEvaluationContext[MyConfig]``) to receive ``config``."""

    _log_namespace = "rivers.schedules"
    _name_attribute = "schedule_name"

    def __init__(self, scheduled_execution_time: str, schedule_name: str, config: Any | None = None) -> None:
        self.scheduled_execution_time = scheduled_execution_time
        self.schedule_name = schedule_name
        self._config = config

    def __repr__(self) -> str:
        return (
            f"ScheduleEvaluationContext(scheduled_execution_time={self.scheduled_execution_time!r}, "
            f"schedule_name={self.schedule_name!r})"
        )


class SensorEvaluationContext(_EvaluationContext[ConfigT]):
    """What a sensor's evaluation function receives: the cursor and time of the previous tick.
    Annotate it with a pydantic config class to receive ``config``."""

    _log_namespace = "rivers.sensors"
    _name_attribute = "sensor_name"

    def __init__(
        self,
        sensor_name: str,
        cursor: str | None = None,
        last_tick_time: float | None = None,
        config: Any | None = None,
    ) -> None:
        self.sensor_name = sensor_name
        self.cursor = cursor
        self.last_tick_time = last_tick_time
        self._config = config

    def __repr__(self) -> str:
        return (
            f"SensorEvaluationContext(sensor_name={self.sensor_name!r}, cursor={self.cursor!r}, "
            f"last_tick_time={self.last_tick_time!r})"
        )


@dataclass(frozen=True)
class EvaluationFunction:
    """An evaluation function and how it is called: ``fn(context, **resources)``."""

    fn: Callable[..., Any]
    # The parameter that receives the context; None when the function takes none.
    context_parameter: str | None
    # The config class of a `...EvaluationContext[Config]` annotation, else None.
    config_type: Any
    # Parameters bound from the repository's resources by name, and which of them have a default.
    resource_parameters: tuple[str, ...]
    optional_parameters: frozenset[str]

    @property
    def required_resources(self) -> list[str]:
        """The resource parameters without a default: each must name a registered resource."""
        return [name for name in self.resource_parameters if name not in self.optional_parameters]


def _context_class(annotation: Any) -> type | None:
    origin = typing.get_origin(annotation) or annotation
    return origin if isinstance(origin, type) else None


def inspect_evaluation_function(fn: Any, owner: str, context_type: type, error: type[Exception]) -> EvaluationFunction:
    """Reads how to call ``fn``, the evaluation function of ``owner`` ("schedule 'x'"): the
    first parameter receives the context when it is annotated ``context_type`` (optionally
    with a config class) or named ``context``; every other parameter is a resource. Raises
    ``error`` for what cannot be called that way."""
    hints = _type_hints(fn)
    context_parameter = None
    config_type = None
    resources: list[str] = []
    optional: set[str] = set()
    for position, parameter in enumerate(inspect.signature(fn).parameters.values()):
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise error(
                f"the evaluation function of {owner} has a *args/**kwargs parameter '{parameter.name}'; it is "
                "called as fn(context, **resources), so declare each resource parameter by name"
            )
        if parameter.kind is parameter.POSITIONAL_ONLY and position > 0:
            raise error(
                f"parameter '{parameter.name}' of the evaluation function of {owner} is positional-only; resources "
                "are passed by name"
            )
        annotation = hints.get(parameter.name)
        declared = _context_class(annotation)
        if declared is not None and issubclass(declared, _EvaluationContext) and declared is not context_type:
            raise error(
                f"parameter '{parameter.name}' of the evaluation function of {owner} is annotated "
                f"{declared.__name__}; annotate it {context_type.__name__}"
            )
        is_context = declared is context_type
        if position == 0 and (is_context or parameter.name == "context"):
            context_parameter = parameter.name
            arguments = typing.get_args(annotation) if is_context else ()
            config_type = arguments[0] if arguments else None
            continue
        if is_context:
            raise error(
                f"parameter '{parameter.name}' of the evaluation function of {owner} is a {context_type.__name__}; "
                "the context must be the first parameter"
            )
        resources.append(parameter.name)
        if parameter.default is not parameter.empty:
            optional.add(parameter.name)
    return EvaluationFunction(fn, context_parameter, config_type, tuple(resources), frozenset(optional))


def check_name(value: Any, parameter: str, owner: str, error: type[Exception]) -> None:
    """A name-like parameter must be a non-empty ``str``."""
    if not isinstance(value, str) or not value:
        raise error(f"{owner}: {parameter} must be a non-empty str, got {value!r}")


def check_description(description: Any, owner: str, error: type[Exception]) -> str | None:
    if description is not None and not isinstance(description, str):
        raise error(f"{owner}: description must be a str or None, got {description!r}")
    return description


def check_tags(tags: Any, owner: str, error: type[Exception]) -> dict[str, str] | None:
    if tags is None:
        return None
    if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
        raise error(f"{owner}: tags must be a dict[str, str], got {tags!r}")
    return tags


def check_duration(text: Any, parameter: str, owner: str, error: type[Exception]) -> None:
    """A duration parameter (``"30s"``, ``"1h30m"``) must parse; ``None`` is allowed."""
    if text is None:
        return
    if not isinstance(text, str):
        raise error(f'{owner}: {parameter} must be a duration string such as "30s", got {text!r}')
    try:
        _core.parse_duration(text)
    except ValueError as err:
        raise error(f"{owner}: {parameter} {err}") from err


def check_eval_mode(mode: Any, owner: str, error: type[Exception]) -> EvalMode:
    try:
        return EvalMode(mode)
    except ValueError:
        raise error(f"{owner}: eval_mode must be an EvalMode (Auto, InProcess or Subprocess), got {mode!r}") from None


def check_status(status: Any, status_type: type, owner: str, error: type[Exception]) -> None:
    if not isinstance(status, status_type):
        raise error(
            f"{owner}: default_status must be {status_type.__name__}.Running or {status_type.__name__}.Stopped, "
            f"got {status!r}"
        )


def check_single_function(func: Any, evaluation_fn: Any, owner: str, error: type[Exception]) -> Any:
    """The evaluation function, given positionally (or by decoration) or as ``evaluation_fn=``."""
    if func is not None and evaluation_fn is not None:
        raise error(f"{owner} is given two evaluation functions; pass it positionally or as evaluation_fn=, not both")
    fn = func if func is not None else evaluation_fn
    if fn is not None and not callable(fn):
        raise error(f"the evaluation function of {owner} must be callable, got {fn!r}")
    return fn
