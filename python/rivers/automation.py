"""Schedules and sensors: the names of the automation API in one module.

Every name here is also importable from ``rivers`` itself.
"""

from rivers._definitions.automation import EvalMode as EvalMode
from rivers._definitions.automation import ScheduleEvaluationContext as ScheduleEvaluationContext
from rivers._definitions.automation import SensorEvaluationContext as SensorEvaluationContext
from rivers._definitions.requests import BackfillRequest as BackfillRequest
from rivers._definitions.requests import RunRequest as RunRequest
from rivers._definitions.requests import ScheduleTickResult as ScheduleTickResult
from rivers._definitions.requests import SensorResult as SensorResult
from rivers._definitions.requests import SensorTickResult as SensorTickResult
from rivers._definitions.requests import SkipReason as SkipReason
from rivers._definitions.schedules import Schedule as Schedule
from rivers._definitions.schedules import ScheduleStatus as ScheduleStatus
from rivers._definitions.sensors import Sensor as Sensor
from rivers._definitions.sensors import SensorStatus as SensorStatus

__all__ = [
    "BackfillRequest",
    "EvalMode",
    "RunRequest",
    "Schedule",
    "ScheduleEvaluationContext",
    "ScheduleStatus",
    "ScheduleTickResult",
    "Sensor",
    "SensorEvaluationContext",
    "SensorResult",
    "SensorStatus",
    "SensorTickResult",
    "SkipReason",
]
