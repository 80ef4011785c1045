"""A partitioned shop pipeline: daily orders, their revenue and its day-over-day change, orders
split by date and region, and usage per tenant over a dynamic set of tenants. Partitions are
filled by backfills; one day fails the first time and is retried on its own.

Run it from this directory (``python pipeline.py``). It keeps everything in memory
(``rs.Storage.memory()`` and the default in-memory IO handler), prints what each backfill did
and the partition status as key ranges, and exits non-zero if anything is not as expected.
"""

from __future__ import annotations

from datetime import datetime

import rivers as rs

PD = rs.PartitionsDefinition
PM = rs.PartitionMapping
PKR = rs.PartitionKeyRange

# A closed range (`end` is exclusive): the 14 days 2024-01-01 .. 2024-01-14.
DAYS = PD.daily(start=datetime(2024, 1, 1), end=datetime(2024, 1, 15))
# The day-over-day change has no previous day for 2024-01-01, so it starts one day later.
CHANGE_DAYS = PD.daily(start=datetime(2024, 1, 2), end=datetime(2024, 1, 15))
DATE_BY_REGION = PD.multi({"date": DAYS, "region": PD.static_(["eu", "us"])})
TENANTS = PD.dynamic("tenants")

# Days whose source is unavailable: `orders` fails for them until the set is cleared.
OUTAGE = {"2024-01-09"}


@rs.Asset(partitions_def=DAYS)
def orders(context: rs.AssetExecutionContext) -> list[dict]:
    day = context.partition_key
    if day in OUTAGE:
        raise RuntimeError(f"the order feed has no data for {day} yet")
    start, _ = context.partition_time_window
    count = start.day % 4 + 1
    return [
        {"id": f"{day}-{i}", "region": ("eu", "us")[i % 2], "amount": 10.0 * (i + 1) + start.day} for i in range(count)
    ]


@rs.Asset(partitions_def=DAYS)
def daily_revenue(orders: list[dict]) -> float:  # identity: the same day of `orders`
    return round(sum(o["amount"] for o in orders), 2)


@rs.Asset(
    partitions_def=CHANGE_DAYS,
    deps=[rs.AssetDef.input("daily_revenue", partition_mapping=PM.time_window(offset=-1))],
)
def revenue_change(orders: list[dict], daily_revenue: float) -> float:
    """Today's revenue (from today's `orders`) minus the previous day's `daily_revenue`."""
    today = sum(o["amount"] for o in orders)
    return round(today - daily_revenue, 2)


@rs.Asset(
    partitions_def=DATE_BY_REGION,
    deps=[rs.AssetDef.input("orders", partition_mapping=PM.multi_to_single("date"))],
)
def regional_orders(context: rs.AssetExecutionContext, orders: list[dict]) -> int:
    region = context.partition.key.keys["region"][0]
    return sum(1 for o in orders if o["region"] == region)


@rs.Asset(partitions_def=TENANTS)
def tenant_usage(context: rs.AssetExecutionContext) -> int:
    return 100 * len(context.partition_key)


def show(result: rs.BackfillResult, title: str) -> None:
    print(
        f"{title}: status={result.status} partitions={result.num_partitions} runs={result.num_runs} "
        f"completed={result.completed} failed={result.failed} canceled={result.canceled}"
    )


def ranges(repo: rs.CodeRepository, asset: str, status: str = "materialized") -> str:
    return ", ".join(repr(r) for r in repo.storage.get_partition_ranges(asset, status)) or "-"


def main() -> None:
    with rs.CodeRepository(
        assets=[orders, daily_revenue, revenue_change, regional_orders, tenant_usage],
        default_executor=rs.Executor.in_process(),
    ) as repo:
        repo.resolve(rs.Storage.memory())

        # 1. Two weeks of orders and revenue, one run per day; the outage day fails.
        first = repo.backfill(
            selection=["orders", "daily_revenue"], partition_range=PKR.single("2024-01-01", "2024-01-14")
        )
        show(first, "daily backfill")
        assert (first.num_partitions, first.num_runs, first.status) == (14, 14, "failed")
        assert (first.completed, first.failed, first.canceled) == (13, 1, 0)
        print(f"  orders materialized: {ranges(repo, 'orders')}")
        print(f"  orders failed: {ranges(repo, 'orders', 'failed')}")
        assert repo.storage.get_partition_ranges("orders", "failed") == [PKR.single("2024-01-09", "2024-01-09")]

        # 2. The feed is back: rerun only the failed partition, under a new backfill id.
        OUTAGE.clear()
        retry = repo.rerun_backfill(first.backfill_id)
        show(retry, "rerun of the failed days")
        assert retry.backfill_id != first.backfill_id
        assert (retry.num_partitions, retry.status) == (1, "completed")
        assert [str(k) for k in retry.partition_keys] == ["2024-01-09"]
        print(f"  orders materialized: {ranges(repo, 'orders')}")
        assert repo.storage.get_partition_ranges("orders", "materialized") == [PKR.single("2024-01-01", "2024-01-14")]
        assert repo.storage.get_partition_ranges("orders", "failed") == []
        assert repo.storage.count_materialized_partitions("daily_revenue") == 14

        # 3. Day-over-day change: each day reads the previous day's revenue (offset -1).
        change = repo.backfill(selection=["revenue_change"], partition_range=PKR.single("2024-01-02", "2024-01-14"))
        show(change, "day-over-day backfill")
        assert (change.num_partitions, change.completed, change.status) == (13, 13, "completed")
        print(f"  revenue_change materialized: {ranges(repo, 'revenue_change')}")
        for day in ("2024-01-02", "2024-01-03", "2024-01-04"):
            revenue = repo.load_node("daily_revenue", partition_key=day)
            delta = repo.load_node("revenue_change", partition_key=day)
            print(f"  {day}: revenue {revenue}, change {delta:+}")
        # 2024-01-02 has 3 orders (66.0 in all), 2024-01-01 had 2 (32.0).
        assert repo.load_node("revenue_change", partition_key="2024-01-02") == 34.0

        # 4. Date x region: three days, every region (a dimension left out means all its keys).
        regional = repo.backfill(
            selection=["regional_orders"], partition_range=PKR.multi({"date": ("2024-01-03", "2024-01-05")})
        )
        show(regional, "date x region backfill")
        assert (regional.num_partitions, regional.num_runs, regional.completed) == (6, 6, 6)
        print(f"  regional_orders materialized: {ranges(repo, 'regional_orders')}")
        eu = repo.load_node("regional_orders", partition_key="date=2024-01-03|region=eu")
        us = repo.load_node("regional_orders", partition_key="date=2024-01-03|region=us")
        print(f"  2024-01-03: {eu} orders in eu, {us} in us")
        assert (eu, us) == (2, 2)
        batched = repo.backfill(
            selection=["regional_orders"],
            partition_range=PKR.multi({"date": ("2024-01-03", "2024-01-05")}),
            strategy=rs.BackfillStrategy.per_dimension(multi_run=["date"], single_run=["region"]),
            dry_run=True,
        )
        print(f"  per_dimension plan (dry run): {batched.num_partitions} partitions in {batched.num_runs} runs")
        assert (batched.num_runs, batched.run_ids) == (3, [])

        # 5. Dynamic partitions: the tenant keys live in storage and are registered first.
        repo.storage.add_dynamic_partitions("tenants", ["acme", "globex", "initech"])
        tenants = repo.storage.get_dynamic_partitions("tenants")
        usage = repo.backfill(selection=["tenant_usage"], partition_keys=tenants)
        show(usage, "tenant backfill")
        assert (usage.num_partitions, usage.completed) == (3, 3)
        print(f"  tenant_usage materialized: {ranges(repo, 'tenant_usage')}")
        assert repo.load_node("tenant_usage", partition_key="globex") == 600

        status = repo.get_backfill(first.backfill_id)
        assert status is not None and status.failed_partitions == 1
        print(f"backfills stored: first ended {status.status} with {status.failed_partitions} failed partition")


if __name__ == "__main__":
    main()
