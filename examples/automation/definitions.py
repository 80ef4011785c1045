"""An automated code location: a sensor follows an order feed, a schedule refreshes customers,
and eager automation conditions keep the revenue assets up to date.

- ``orders_feed`` (sensor, cursor): the feed publishes a numbered batch every two seconds; the
  sensor's cursor is the last batch it requested, so each batch is requested once (its run key
  is the batch number), even across daemon restarts.
- ``refresh_customers`` (schedule): every two seconds (a 6-field cron with seconds).
- ``daily_revenue`` and ``revenue_report`` carry ``AutomationCondition.eager()``: they follow
  ``orders`` whenever it is materialized.
- Pool ``warehouse`` has one slot: steps that write to the warehouse never overlap, whichever
  run they belong to.
- The run queue admits two runs at once, and one per ``source`` tag value.

``run_daemon.py`` runs the daemon over this repository.
"""

from __future__ import annotations

import time
from pathlib import Path

from obstore.store import LocalStore

import rivers as rs

HERE = Path(__file__).resolve().parent
VALUES = HERE / ".rivers" / "values"
VALUES.mkdir(parents=True, exist_ok=True)
values = rs.PickleIOHandler(store=LocalStore(str(VALUES)))

# The simulated feed publishes batch n during second [2n, 2n + 2) of the Unix epoch.
FEED_PERIOD_SECONDS = 2


def published_batch() -> int:
    """The newest batch the order feed has published."""
    return int(time.time()) // FEED_PERIOD_SECONDS


@rs.Asset(io_handler=values, group="sales", pool="warehouse")
def orders(context: rs.AssetExecutionContext) -> list[dict]:
    batch = published_batch()
    rows = [{"order_id": f"{batch}-{i}", "amount": 10.0 * (i + 1)} for i in range(3)]
    context.log.info("loaded %d orders of batch %d", len(rows), batch)
    return rows


@rs.Asset(io_handler=values, group="crm")
def customers() -> list[str]:
    return ["acme", "globex", "initech"]


@rs.Asset(io_handler=values, group="sales", pool="warehouse", automation_condition=rs.AutomationCondition.eager())
def daily_revenue(orders: list[dict]) -> float:
    return sum(order["amount"] for order in orders)


@rs.Asset(io_handler=values, group="sales", automation_condition=rs.AutomationCondition.eager())
def revenue_report(daily_revenue: float, customers: list[str]) -> str:
    return f"revenue {daily_revenue:.2f} from {len(customers)} customers"


ingest_orders = rs.Job("ingest_orders", [orders])
refresh_customers_job = rs.Job("refresh_customers_job", [customers])


@rs.Sensor(
    job_name="ingest_orders",
    minimum_interval="1s",
    tags={"source": "orders_feed"},
    default_status=rs.SensorStatus.Running,
)
def orders_feed(context: rs.SensorEvaluationContext) -> rs.SensorResult | rs.SkipReason:
    newest = published_batch()
    # On the very first tick, start from the newest batch rather than from the epoch.
    last_requested = int(context.cursor) if context.cursor is not None else newest - 1
    if newest <= last_requested:
        return rs.SkipReason(f"no batch after {last_requested}")
    batches = range(last_requested + 1, newest + 1)
    return rs.SensorResult(
        run_requests=[rs.RunRequest(run_key=f"batch-{batch}", tags={"batch": str(batch)}) for batch in batches],
        cursor=str(newest),
    )


@rs.Schedule(
    cron_schedule="*/2 * * * * *",
    job_name="refresh_customers_job",
    tags={"source": "crm"},
    default_status=rs.ScheduleStatus.Running,
)
def refresh_customers(context: rs.ScheduleEvaluationContext) -> rs.RunRequest:
    return rs.RunRequest(run_key=context.scheduled_execution_time)


repo = rs.CodeRepository(
    assets=[orders, customers, daily_revenue, revenue_report],
    jobs=[ingest_orders, refresh_customers_job],
    sensors=[orders_feed],
    schedules=[refresh_customers],
    pool_limits={"warehouse": 1},
    run_queue=rs.RunQueueConfig(
        max_concurrent_runs=2,
        tag_concurrency_limits=[rs.TagConcurrencyLimit(key="source", limit=1, per_unique_value=True)],
        dequeue_interval="100ms",
    ),
    default_executor=rs.Executor.in_process(),
)
