"""A shop pipeline with every asset kind: a multi-asset splitting raw orders into two tables, a
graph asset composed of tasks (one of them a shell command), a graph asset fanning out over the
paid orders by order id, and a standalone task that runs only when named.

Run it from this directory (``python pipeline.py``): it materializes the assets on the embedded
default storage at ``.rivers/storage/`` and prints what was recorded.
"""

from __future__ import annotations

import rivers as rs


@rs.Asset
def raw_orders() -> list[dict]:
    return [
        {"id": 1, "amount": 30.0, "status": "paid"},
        {"id": 2, "amount": 12.5, "status": "refunded"},
        {"id": 3, "amount": 99.9, "status": "paid"},
    ]


@rs.Asset.from_multi(output_defs=[rs.AssetDef("paid"), rs.AssetDef("refunds", metadata={"owner": "finance"})])
def split_orders(context: rs.AssetExecutionContext, raw_orders: list[dict]):
    context.log.info("splitting %d orders into %s", len(raw_orders), context.output_selection)
    yield rs.Output([o for o in raw_orders if o["status"] == "paid"], output_name="paid")
    yield rs.Output([o for o in raw_orders if o["status"] == "refunded"], output_name="refunds")


@rs.BashTask(command="date -u +%Y-%m-%d")
def today(): ...


@rs.Task
def total(rows: list[dict]) -> float:
    return round(sum(row["amount"] for row in rows), 2)


@rs.Task
def headline(context: rs.TaskExecutionContext, amount: float, day: str) -> str:
    context.log.info("rendering the headline of %s", day)
    return f"{day}: {amount} in paid orders"


@rs.Asset.from_graph(group="reports")
def daily_revenue(paid: list[dict]):
    return headline(total(paid), today())


@rs.Task
def by_order_id(rows: list[dict]) -> list[rs.DynamicOutput]:
    return [rs.DynamicOutput(key=f"order_{row['id']}", value=row) for row in rows]


@rs.Task
def with_tax(row: dict) -> float:
    return round(row["amount"] * 1.2, 2)


@rs.Task
def largest(amounts: list[float]) -> float:
    return max(amounts)


@rs.Asset.from_graph(group="reports")
def largest_taxed_order(paid: list[dict]):
    taxed = by_order_id(paid).map(with_tax, max_concurrency=4)  # steps largest_taxed_order/with_tax[order_1], ...
    return largest(taxed.collect())


@rs.Task
def refund_count(refunds: list[dict]) -> int:
    return len(refunds)


def main() -> None:
    with rs.CodeRepository(
        assets=[raw_orders, split_orders, daily_revenue, largest_taxed_order],
        tasks=[refund_count],
        default_executor=rs.Executor.in_process(),
    ) as repo:
        repo.resolve()  # embedded SurrealDB on RocksDB at .rivers/storage/
        result = repo.materialize()
        print(f"run {result.run_id}: success={result.success}")
        print(f"materialized: {', '.join(result.materialized_assets)}")
        print(f"daily_revenue: {repo.load_node('daily_revenue')}")
        print(f"total (internal node): {repo.load_node('daily_revenue/total')}")
        print(f"largest_taxed_order: {repo.load_node('largest_taxed_order')}")
        print(f"order_3 with tax (one instance): {repo.load_node('largest_taxed_order/with_tax[order_3]')}")
        only_refunds = repo.materialize(selection=["refunds", "refund_count"])
        print(f"subset run materialized: {', '.join(only_refunds.materialized_assets)}")
        print(f"refund_count: {repo.load_node('refund_count')}")
        for event in repo.storage.get_events_for_run(result.run_id):
            print(f"  {event.event_type:<16} {event.asset_key or ''}")


if __name__ == "__main__":
    main()
