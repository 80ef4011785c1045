"""A small weather pipeline: ingest readings, derive statistics, write a report.

Run it from this directory (``python pipeline.py``): it materializes every asset on the embedded
default storage at ``.rivers/storage/`` and prints what was recorded. Values are pickled under
``.rivers/values/`` so that later runs (and other processes) can read them back.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from obstore.store import LocalStore
from pydantic import BaseModel

import rivers as rs

VALUES = Path(".rivers") / "values"
VALUES.mkdir(parents=True, exist_ok=True)
values = rs.PickleIOHandler(store=LocalStore(str(VALUES.resolve())))


class ReportConfig(BaseModel):
    unit: str = "C"


@rs.Asset(io_handler=values, kinds="json", group="weather", tags=["ingest"], code_version="1")
def readings(context: rs.AssetExecutionContext) -> list[dict]:
    rows = [
        {"station": "N1", "temp_c": 11.5},
        {"station": "S4", "temp_c": 17.0},
        {"station": "E2", "temp_c": 14.2},
    ]
    context.log.info("fetched %d readings", len(rows))
    context.add_output_metadata({"row_count": len(rows), "source": rs.MetadataValue.url("https://example.org/wx")})
    context.register_data_version(hashlib.sha1(json.dumps(rows).encode()).hexdigest())
    return rows


@rs.Asset(io_handler=values, group="weather")
def warmest(readings: list[dict]) -> rs.Output:
    best = max(readings, key=lambda r: r["temp_c"])
    return rs.Output(best, metadata={"temp_c": best["temp_c"]})


@rs.Asset(io_handler=values, group="weather")
async def mean_temperature(readings: list[dict]) -> float:
    return round(sum(r["temp_c"] for r in readings) / len(readings), 2)


@rs.Asset(io_handler=values, group="weather", retry=rs.RetryPolicy(max_retries=2))
def report(context: rs.AssetExecutionContext[ReportConfig], warmest: dict, mean_temperature: float) -> str:
    unit = context.config.unit
    return f"warmest station {warmest['station']} at {warmest['temp_c']}{unit}; mean {mean_temperature}{unit}"


def main() -> None:
    with rs.CodeRepository(
        assets=[readings, warmest, mean_temperature, report],
        default_executor=rs.Executor.in_process(),
    ) as repo:
        repo.resolve()  # embedded SurrealDB on RocksDB at .rivers/storage/
        result = repo.materialize(config={"report": {"unit": "°C"}})
        print(f"run {result.run_id}: success={result.success}")
        print(f"materialized: {', '.join(result.materialized_assets)}")
        print(f"report: {repo.load_node('report')}")
        storage = repo.storage
        for event in storage.get_events_for_run(result.run_id):
            print(f"  {event.event_type:<16} {event.asset_key or '':<18} {event.data_version or ''}")
        staleness = storage.compute_staleness()
        print("staleness:", {key: status for key, (status, _) in sorted(staleness.items())})
        print(f"runs stored so far: {len(storage.get_runs(limit=1000))}")


if __name__ == "__main__":
    main()
