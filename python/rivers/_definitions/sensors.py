"""Declaring sensors: ``Sensor`` and ``SensorStatus``."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any

from rivers._definitions.automation import (
    EvalMode,
    EvaluationFunction,
    SensorEvaluationContext,
    check_description,
    check_duration,
    check_eval_mode,
    check_name,
    check_single_function,
    check_status,
    check_tags,
    inspect_evaluation_function,
)
from rivers.exceptions import SensorDefinitionError


class SensorStatus(Enum):
    """Whether the daemon ticks a sensor from start."""

    Running = "Running"
    Stopped = "Stopped"


class Sensor:
    """A polling trigger: the daemon calls its evaluation function every ``minimum_interval``
    and launches what it returns. Use it as a decorator (``@rs.Sensor(job_name=...)``), pass
    the function positionally or as ``evaluation_fn=``."""

    def __init__(
        self,
        func: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        job_name: str | None = None,
        evaluation_fn: Callable[..., Any] | None = None,
        minimum_interval: str | None = None,
        default_status: SensorStatus = SensorStatus.Stopped,
        description: str | None = None,
        tags: dict[str, str] | None = None,
        asset_selection: list[str] | None = None,
        eval_mode: EvalMode = EvalMode.Auto,
        eval_timeout: str | None = None,
    ) -> None:
        fn = check_single_function(func, evaluation_fn, f"sensor {name!r}", SensorDefinitionError)
        # Kept for the decorator form, which names the decorated function's sensor after it.
        self._name_argument = name
        if name is None and fn is not None:
            name = getattr(fn, "__name__", None)
        owner = f"sensor {name!r}"
        if name is not None:
            check_name(name, "name", owner, SensorDefinitionError)
        if job_name is not None:
            check_name(job_name, "job_name", owner, SensorDefinitionError)
        if asset_selection is not None and (
            isinstance(asset_selection, str) or not all(isinstance(a, str) and a for a in asset_selection)
        ):
            raise SensorDefinitionError(
                f"{owner}: asset_selection must be a list of asset names, got {asset_selection!r}"
            )
        check_duration(minimum_interval, "minimum_interval", owner, SensorDefinitionError)
        check_duration(eval_timeout, "eval_timeout", owner, SensorDefinitionError)
        check_status(default_status, SensorStatus, owner, SensorDefinitionError)
        # None only for a decorator factory that has not been applied yet; registering a sensor
        # without a name is refused.
        self.name: str = name  # type: ignore[assignment]
        self.job_name = job_name
        self.evaluation_fn = fn
        self.minimum_interval = minimum_interval
        self.default_status = default_status
        self.description = check_description(description, owner, SensorDefinitionError)
        self.tags = check_tags(tags, owner, SensorDefinitionError)
        self.asset_selection = list(asset_selection) if asset_selection is not None else None
        self.eval_mode = check_eval_mode(eval_mode, owner, SensorDefinitionError)
        self.eval_timeout = eval_timeout
        self._function: EvaluationFunction | None = (
            inspect_evaluation_function(fn, owner, SensorEvaluationContext, SensorDefinitionError)
            if fn is not None
            else None
        )

    def __call__(self, func: Callable[..., Any]) -> Sensor:
        """Decorator form: a sensor with these settings around ``func``."""
        if self.evaluation_fn is not None:
            raise SensorDefinitionError(
                f"sensor {self.name!r} already has an evaluation function; a Sensor decorates one function"
            )
        return Sensor(
            func,
            name=self._name_argument,
            job_name=self.job_name,
            minimum_interval=self.minimum_interval,
            default_status=self.default_status,
            description=self.description,
            tags=self.tags,
            asset_selection=self.asset_selection,
            eval_mode=self.eval_mode,
            eval_timeout=self.eval_timeout,
        )

    @property
    def _config_type(self) -> Any:
        """The config class its evaluation function's context annotation names."""
        return self._function.config_type if self._function is not None else None

    def __repr__(self) -> str:
        return (
            f"Sensor(name={self.name!r}, job_name={self.job_name!r}, asset_selection={self.asset_selection!r}, "
            f"minimum_interval={self.minimum_interval!r}, default_status={self.default_status}, "
            f"eval_mode={self.eval_mode!r})"
        )
