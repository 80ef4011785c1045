"""Schedules and sensors at module scope, importable by name from loky workers
(``EvalMode.Subprocess``). Each reports where and how it ran through its request's tags."""

from __future__ import annotations

import asyncio
import os
import threading

from pydantic import BaseModel

import rivers as rs


class Threshold(BaseModel):
    minimum: int = 3


def _where(config: object) -> dict[str, str]:
    return {"pid": str(os.getpid()), "thread": str(threading.get_ident()), "config": repr(config)}


@rs.Schedule(cron_schedule="0 3 * * *", job_name="orders_job", eval_mode=rs.EvalMode.Subprocess)
def remote_schedule(context: rs.ScheduleEvaluationContext[Threshold]) -> rs.RunRequest:
    return rs.RunRequest(run_key=context.scheduled_execution_time, tags=_where(context.config))


@rs.Schedule(cron_schedule="0 3 * * *", job_name="orders_job", eval_mode=rs.EvalMode.Subprocess)
async def remote_async_schedule(context: rs.ScheduleEvaluationContext) -> list[rs.RunRequest]:
    await asyncio.sleep(0)
    running = asyncio.get_running_loop() is not None
    return [rs.RunRequest(run_key=context.schedule_name, tags={**_where(None), "loop": str(running)})]


@rs.Sensor(job_name="orders_job", eval_mode=rs.EvalMode.Subprocess)
def remote_sensor(context: rs.SensorEvaluationContext[Threshold], inbox: str = "unset") -> rs.SensorResult:
    seen = int(context.cursor or 0)
    return rs.SensorResult(
        run_requests=[rs.RunRequest(run_key=str(seen + 1), tags={**_where(context.config), "inbox": inbox})],
        cursor=str(seen + 1),
    )


@rs.Sensor(job_name="orders_job", eval_mode=rs.EvalMode.Subprocess)
async def remote_async_sensor(context: rs.SensorEvaluationContext):
    await asyncio.sleep(0)
    return rs.SkipReason(f"pid {os.getpid()} last {context.last_tick_time}")


class InboxError(RuntimeError):
    pass


@rs.Sensor(job_name="orders_job", eval_mode=rs.EvalMode.Subprocess)
def remote_failing_sensor(context: rs.SensorEvaluationContext):
    raise InboxError("inbox unreachable")


@rs.Sensor(eval_mode=rs.EvalMode.Subprocess)
def remote_backfill_sensor(context: rs.SensorEvaluationContext):
    keys = [rs.PartitionKey.single("2025-01-01")]
    if context.cursor == "range":
        return rs.BackfillRequest(
            ["orders"],
            partition_range=rs.PartitionKeyRange.single("2025-01-01", "2025-01-02"),
            strategy=rs.BackfillStrategy.single_run(),
        )
    return rs.BackfillRequest(["orders"], partition_keys=keys, failure_policy="stop_on_failure", tags={"a": "b"})
