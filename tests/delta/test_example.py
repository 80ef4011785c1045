"""``examples/delta/pipeline.py`` runs end to end, and a second run sees the tables' history."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "delta" / "pipeline.py"


def test_delta_example_runs_twice(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE, tmp_path / "pipeline.py")
    first, second = (
        subprocess.run(
            [sys.executable, "-W", "error", "pipeline.py"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        for _ in range(2)
    )

    assert "success=True" in first
    assert "total_revenue: 147.4" in first
    assert "orders     warehouse/orders version=0 rows=4" in first
    assert "revenue    warehouse/marts/revenue version=0 rows=3" in first
    # Seeded with two customers; the upsert updates 10 and inserts 12.
    assert "customers: [(10, 'gold'), (11, 'bronze'), (12, 'silver')]" in first
    assert "customers  warehouse/customers version=1 rows=3" in first
    assert "orders     warehouse/orders version=1 rows=4" in second
    assert "customers  warehouse/customers version=2 rows=3" in second
    assert "orders version 0 still holds 4 rows" in second
    assert (tmp_path / "warehouse" / "marts" / "revenue" / "_delta_log").is_dir()
