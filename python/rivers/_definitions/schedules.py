"""Declaring schedules: ``Schedule`` and ``ScheduleStatus``."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any

from rivers import _core
from rivers._definitions.automation import (
    EvalMode,
    EvaluationFunction,
    ScheduleEvaluationContext,
    check_description,
    check_duration,
    check_eval_mode,
    check_name,
    check_single_function,
    check_status,
    check_tags,
    inspect_evaluation_function,
)
from rivers.exceptions import ScheduleDefinitionError


class ScheduleStatus(Enum):
    """Whether the daemon ticks a schedule from start."""

    Running = "Running"
    Stopped = "Stopped"


class Schedule:
    """A cron-driven trigger of a job. Use it as a decorator (``@rs.Schedule(cron_schedule=...,
    job_name=...)``), pass the function positionally or as ``evaluation_fn=``, or give none:
    every tick then requests one run of ``job_name``."""

    def __init__(
        self,
        func: Callable[..., Any] | None = None,
        *,
        cron_schedule: str,
        job_name: str,
        name: str | None = None,
        evaluation_fn: Callable[..., Any] | None = None,
        default_status: ScheduleStatus = ScheduleStatus.Stopped,
        timezone: str | None = None,
        tags: dict[str, str] | None = None,
        description: str | None = None,
        eval_mode: EvalMode = EvalMode.Auto,
        eval_timeout: str | None = None,
    ) -> None:
        fn = check_single_function(func, evaluation_fn, f"schedule {name or job_name!r}", ScheduleDefinitionError)
        # Kept for the decorator form, which names the decorated function's schedule after it.
        self._name_argument = name
        if name is None:
            # The decorator and positional forms are named after the function; a schedule built
            # directly after its job.
            name = getattr(func, "__name__", None) if func is not None else f"{job_name}_schedule"
        owner = f"schedule {name!r}"
        check_name(cron_schedule, "cron_schedule", owner, ScheduleDefinitionError)
        check_name(job_name, "job_name", owner, ScheduleDefinitionError)
        check_name(name, "name", owner, ScheduleDefinitionError)
        if timezone is not None and not isinstance(timezone, str):
            raise ScheduleDefinitionError(f"{owner}: timezone must be an IANA name (str) or None, got {timezone!r}")
        try:
            _core.CronSchedule(cron_schedule, timezone)
        except ValueError as err:
            raise ScheduleDefinitionError(f"{owner}: {err}") from err
        check_status(default_status, ScheduleStatus, owner, ScheduleDefinitionError)
        check_duration(eval_timeout, "eval_timeout", owner, ScheduleDefinitionError)
        self.name: str = name  # type: ignore[assignment]  # a non-empty str, checked above
        self.cron_schedule = cron_schedule
        self.job_name = job_name
        self.evaluation_fn = fn
        self.default_status = default_status
        self.timezone = timezone
        self.tags = check_tags(tags, owner, ScheduleDefinitionError)
        self.description = check_description(description, owner, ScheduleDefinitionError)
        self.eval_mode = check_eval_mode(eval_mode, owner, ScheduleDefinitionError)
        self.eval_timeout = eval_timeout
        self._function: EvaluationFunction | None = (
            inspect_evaluation_function(fn, owner, ScheduleEvaluationContext, ScheduleDefinitionError)
            if fn is not None
            else None
        )

    def __call__(self, func: Callable[..., Any]) -> Schedule:
        """Decorator form: a schedule with these settings around ``func``."""
        if self.evaluation_fn is not None:
            raise ScheduleDefinitionError(
                f"schedule {self.name!r} already has an evaluation function; a Schedule decorates one function"
            )
        return Schedule(
            func,
            cron_schedule=self.cron_schedule,
            job_name=self.job_name,
            name=self._name_argument,
            default_status=self.default_status,
            timezone=self.timezone,
            tags=self.tags,
            description=self.description,
            eval_mode=self.eval_mode,
            eval_timeout=self.eval_timeout,
        )

    @property
    def _config_type(self) -> Any:
        """The config class its evaluation function's context annotation names."""
        return self._function.config_type if self._function is not None else None

    def __repr__(self) -> str:
        return (
            f"Schedule(name={self.name!r}, cron_schedule={self.cron_schedule!r}, job_name={self.job_name!r}, "
            f"timezone={self.timezone!r}, default_status={self.default_status}, eval_mode={self.eval_mode!r})"
        )
