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
