"""The README's example pipeline runs end to end on the embedded default storage."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "weather" / "pipeline.py"


def test_weather_example_runs_twice_on_embedded_storage(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE, tmp_path / "pipeline.py")
    outputs = [
        subprocess.run(
            [sys.executable, "pipeline.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=True
        ).stdout
        for _ in range(2)
    ]
    first, second = outputs
    assert "success=True" in first
    assert "warmest station S4 at 17.0°C" in first
    assert "materialized: readings, warmest, mean_temperature, report" in first
    assert (tmp_path / ".rivers" / "storage").is_dir()
    # The second process sees the first run's history in the same embedded store.
    assert "runs stored so far: 1" in first
    assert "runs stored so far: 2" in second


SHOP = Path(__file__).resolve().parents[1] / "examples" / "shop" / "pipeline.py"


def test_shop_example_runs_every_asset_kind(tmp_path: Path) -> None:
    shutil.copy(SHOP, tmp_path / "pipeline.py")
    output = subprocess.run(
        [sys.executable, "pipeline.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert "success=True" in output
    materialized = output.split("materialized: ", 1)[1].splitlines()[0].split(", ")
    assert sorted(materialized) == sorted(
        [
            "raw_orders",
            "paid",
            "refunds",
            "daily_revenue/today",
            "daily_revenue/total",
            "daily_revenue/headline",
            "daily_revenue",
            "largest_taxed_order/by_order_id",
            "largest_taxed_order/with_tax",
            "largest_taxed_order/with_tax[order_1]",
            "largest_taxed_order/with_tax[order_3]",
            "largest_taxed_order/largest",
            "largest_taxed_order",
        ]
    )
    assert "largest_taxed_order: 119.88" in output
    assert "order_3 with tax (one instance): 119.88" in output
    assert ": 129.9 in paid orders" in output
    assert "total (internal node): 129.9" in output
    assert "subset run materialized: refunds, refund_count" in output
    assert "refund_count: 1" in output


PARTITIONS = Path(__file__).resolve().parents[1] / "examples" / "partitions" / "pipeline.py"


def test_partitions_example_backfills_and_reruns_what_failed(tmp_path: Path) -> None:
    shutil.copy(PARTITIONS, tmp_path / "pipeline.py")
    output = subprocess.run(
        [sys.executable, "pipeline.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert "daily backfill: status=failed partitions=14 runs=14 completed=13 failed=1 canceled=0" in output
    assert 'orders failed: PartitionKeyRange.single("2024-01-09", "2024-01-09")' in output
    assert "rerun of the failed days: status=completed partitions=1 runs=1 completed=1" in output
    assert 'orders materialized: PartitionKeyRange.single("2024-01-01", "2024-01-14")' in output
    assert "day-over-day backfill: status=completed partitions=13 runs=13 completed=13" in output
    assert "2024-01-02: revenue 66.0, change +34.0" in output
    assert (
        'regional_orders materialized: PartitionKeyRange.multi({"date": ("2024-01-03", "2024-01-05"), '
        '"region": ("eu", "us")})' in output
    )
    assert "per_dimension plan (dry run): 6 partitions in 3 runs" in output
    assert 'tenant_usage materialized: PartitionKeyRange.single("acme", "initech")' in output
    # Everything lives in memory: the example leaves no files behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipeline.py"]


AUTOMATION = Path(__file__).resolve().parents[1] / "examples" / "automation"


def test_automation_example_runs_the_daemon_and_summarizes_ticks_and_runs(tmp_path: Path) -> None:
    for name in ("definitions.py", "run_daemon.py"):
        shutil.copy(AUTOMATION / name, tmp_path / name)
    output = subprocess.run(
        [sys.executable, "run_daemon.py", "--seconds", "3"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "tick  sensor    orders_feed        Success  runs=1" in output
    assert "by orders_feed" in output
    summary = output.split("summary: ", 1)[1]
    ticks, runs = summary.splitlines()[0].split(", ", 1)
    assert int(ticks.split()[0]) > 0
    assert " Success" in runs and "Failure" not in runs
    assert "orders_feed: " in summary
    assert "pool warehouse: limit 1, 0 slots held" in summary
    assert (tmp_path / ".rivers" / "storage").is_dir()
