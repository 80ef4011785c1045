"""Evaluating schedules and sensors: one call of the evaluation function, its return value
normalised into a tick result. Nothing is launched or stored here.

In this process the function receives the repository's resources and its config; an
``async def`` function runs on the process's shared event loop (``coroutines.py``), which is
created once and serves concurrent evaluations from any thread. Under ``EvalMode.Subprocess``
the automation travels to a loky worker by reference (re-imported there) with primitive
context data, and the worker calls it without resources or config.
"""

from __future__ import annotations

import inspect
import os
import pickle
from typing import Any, TypeVar

from rivers._definitions.automation import ScheduleEvaluationContext, SensorEvaluationContext
from rivers._definitions.requests import RunRequest, ScheduleTickResult, SensorTickResult, normalize
from rivers._definitions.schedules import Schedule
from rivers._definitions.sensors import Sensor
from rivers._execution.coroutines import run_coroutine
from rivers._execution.step import build_config
from rivers._execution.worker import object_ref, resolve_ref

Tick = TypeVar("Tick", ScheduleTickResult, SensorTickResult)


def _call(automation: Schedule | Sensor, context: Any, resources: dict[str, Any], in_worker: bool) -> Any:
    """The evaluation function's return value; one ``RunRequest()`` when there is none.
    Resource parameters without a registered resource keep their defaults. A coroutine runs
    on the shared loop, or with ``asyncio.run()`` in a worker (which has no loop to share)."""
    function = automation._function
    if function is None:
        return RunRequest()
    kwargs = {name: resources[name] for name in function.resource_parameters if name in resources}
    if function.context_parameter is not None:
        kwargs[function.context_parameter] = context
    result = function.fn(**kwargs)
    if inspect.iscoroutine(result):
        if in_worker:
            import asyncio

            return asyncio.run(result)
        return run_coroutine(result)
    return result


def schedule_tick(
    schedule: Schedule, scheduled_execution_time: str, resources: dict[str, Any], config: Any, in_worker: bool = False
) -> ScheduleTickResult:
    """Evaluates ``schedule`` once for the tick at ``scheduled_execution_time``."""
    owner = f"schedule '{schedule.name}'"
    context: ScheduleEvaluationContext[Any] = ScheduleEvaluationContext(scheduled_execution_time, schedule.name, config)
    requests, skip_reason, _ = normalize(_call(schedule, context, resources, in_worker), owner)
    return ScheduleTickResult(schedule.name, requests, skip_reason)


def sensor_tick(
    sensor: Sensor,
    cursor: str | None,
    last_tick_time: float | None,
    resources: dict[str, Any],
    config: Any,
    in_worker: bool = False,
) -> SensorTickResult:
    """Evaluates ``sensor`` once with the previous tick's cursor and time."""
    owner = f"sensor '{sensor.name}'"
    context: SensorEvaluationContext[Any] = SensorEvaluationContext(sensor.name, cursor, last_tick_time, config)
    requests, skip_reason, new_cursor = normalize(_call(sensor, context, resources, in_worker), owner)
    return SensorTickResult(sensor.name, requests, skip_reason, new_cursor)


def config_of(automation: Schedule | Sensor) -> Any:
    """The config its context annotation asks for, built from defaults and the environment."""
    return build_config(automation, None)


# ---------------------------------------------------------------------------- subprocess mode


def _automation_ref(automation: Schedule | Sensor) -> tuple[Any, ...]:
    """The automation as a global of its function's module (re-imported by the worker), or
    the object itself when it is not one (loky pickles it by value)."""
    module = getattr(automation.evaluation_fn, "__module__", None)
    return object_ref(automation, module)


def _transportable(tick: Tick, owner: str) -> Tick:
    """The tick result, checked to pickle: loky hands it back to the daemon that way, and a
    value that does not pickle would otherwise fail with loky's generic error."""
    try:
        pickle.dumps(tick)
    except Exception as err:
        raise TypeError(
            f"what {owner} returned cannot leave the worker process of EvalMode.Subprocess ({err}); return "
            "picklable requests (a BackfillRequest with partition_keys=, without partition_range= or strategy=) "
            "or use EvalMode.Auto"
        ) from None
    return tick


def schedule_tick_in_worker(ref: tuple[Any, ...], scheduled_execution_time: str) -> ScheduleTickResult:
    """Worker entry of ``EvalMode.Subprocess`` schedules: no resources, no config."""
    schedule = resolve_ref(ref)
    tick = schedule_tick(schedule, scheduled_execution_time, {}, None, in_worker=True)
    return _transportable(tick, f"schedule '{schedule.name}'")


def sensor_tick_in_worker(ref: tuple[Any, ...], cursor: str | None, last_tick_time: float | None) -> SensorTickResult:
    """Worker entry of ``EvalMode.Subprocess`` sensors: no resources, no config."""
    sensor = resolve_ref(ref)
    return _transportable(
        sensor_tick(sensor, cursor, last_tick_time, {}, None, in_worker=True), f"sensor '{sensor.name}'"
    )


def _worker_pool() -> Any:
    """The parallel executor's loky pool, at its default size so that both share the workers."""
    try:
        import loky  # noqa: F401
    except ImportError as err:
        raise ImportError(
            "EvalMode.Subprocess evaluates in a worker process and needs the 'loky' package; install loky or "
            "use EvalMode.Auto"
        ) from err
    from rivers._execution.run import worker_pool

    return worker_pool(os.cpu_count() or 1)


def schedule_tick_in_subprocess(schedule: Schedule, scheduled_execution_time: str) -> ScheduleTickResult:
    future = _worker_pool().submit(schedule_tick_in_worker, _automation_ref(schedule), scheduled_execution_time)
    result: ScheduleTickResult = future.result()
    return result


def sensor_tick_in_subprocess(sensor: Sensor, cursor: str | None, last_tick_time: float | None) -> SensorTickResult:
    future = _worker_pool().submit(sensor_tick_in_worker, _automation_ref(sensor), cursor, last_tick_time)
    result: SensorTickResult = future.result()
    return result
