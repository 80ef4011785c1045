"""A small lakehouse of Delta tables: raw orders written with polars, a revenue mart computed
lazily and streamed into its table, a customer table kept up to date with a MERGE, and a
report that reads one column of the mart as a pyarrow table.

Run it from this directory (``python pipeline.py``): the tables land under ``warehouse/`` and
the run history in the embedded storage at ``.rivers/storage/``. Run it again to see the table
versions grow and the upsert update rows in place. Needs ``pip install "rivers[delta,polars,pandas]"``.
"""

from __future__ import annotations

import pandas as pd
import polars as pl
import pyarrow as pa
from deltalake import DeltaTable

import rivers as rs
from rivers.io_handlers.delta import DeltaIOHandler, MergeConfig

WAREHOUSE = "warehouse"

# One table per asset under warehouse/, replaced on every run.
lake = DeltaIOHandler(table_uri=WAREHOUSE)
# Rows of an asset written through this handler are upserted on customer_id.
customer_upserts = DeltaIOHandler(
    table_uri=WAREHOUSE,
    mode="merge",
    merge_config=MergeConfig(merge_type="upsert", predicate="s.customer_id = t.customer_id"),
)

REVENUE_TABLE = {"delta/root_name": "marts/revenue"}


@rs.Asset(io_handler=lake, group="raw")
def orders() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "order_id": [1, 2, 3, 4],
            "customer_id": [10, 11, 10, 12],
            "amount": [30.0, 12.5, 99.9, 5.0],
        }
    )


@rs.Asset(io_handler=lake, group="marts", metadata=REVENUE_TABLE)
def revenue(orders: pl.LazyFrame) -> pl.LazyFrame:
    # Read lazily, written as a stream of batches: the mart is never collected here.
    return orders.group_by("customer_id").agg(pl.col("amount").sum().alias("revenue")).sort("customer_id")


@rs.Asset(io_handler=customer_upserts, group="raw")
def customers() -> pd.DataFrame:
    return pd.DataFrame({"customer_id": [10, 12], "tier": ["gold", "silver"]})


@rs.Asset(
    group="reports",
    deps=[rs.AssetDef.input("revenue", metadata={**REVENUE_TABLE, "delta/columns": '["revenue"]'})],
)
def total_revenue(revenue: pa.Table) -> float:
    return round(sum(revenue.column("revenue").to_pylist()), 2)


def seed_customers() -> None:
    """A merge needs an existing target: create the customers table once."""
    if not DeltaTable.is_deltatable(f"{WAREHOUSE}/customers"):
        seed = pd.DataFrame({"customer_id": [10, 11], "tier": ["silver", "bronze"]})
        DeltaIOHandler(table_uri=WAREHOUSE).handle_output(rs.OutputContext("customers"), seed)


def main() -> None:
    seed_customers()
    with rs.CodeRepository(
        assets=[orders, revenue, customers, total_revenue],
        default_executor=rs.Executor.in_process(),
    ) as repo:
        repo.resolve()  # embedded storage at .rivers/storage/
        result = repo.materialize()
        print(f"run {result.run_id}: success={result.success}")
        print(f"materialized: {', '.join(result.materialized_assets)}")
        print(f"total_revenue: {repo.load_node('total_revenue')}")
        for event in repo.storage.get_events_for_run(result.run_id):
            if event.event_type == "Materialization" and "delta/table_uri" in dict(event.metadata):
                metadata = dict(event.metadata)
                print(
                    f"  {event.asset_key:<10} {metadata['delta/table_uri']} "
                    f"version={metadata['delta/version']} rows={metadata['delta/num_rows']}"
                )
        tiers = repo.load_node("customers", type_hint=pl.DataFrame).sort("customer_id")
        print(f"customers: {tiers.rows()}")
        first = DeltaTable(f"{WAREHOUSE}/orders", version=0).count()
        print(f"orders version 0 still holds {first} rows")


if __name__ == "__main__":
    main()
