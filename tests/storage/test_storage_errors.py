"""Storage failures reach the user with their root cause, and nothing written before is lost."""

import json
import subprocess
import sys
from pathlib import Path

import rivers as rs

HERE = Path(__file__).parent
# Larger than a fresh store's files, reached after a few runs of full_disk_run.py.
MAX_FILE_BYTES = 3_000_000


def test_a_write_the_file_system_refuses_raises_storage_error_with_the_root_cause(tmp_path):
    store = tmp_path / "store"
    done = subprocess.run(
        [sys.executable, str(HERE / "full_disk_run.py"), str(store), str(MAX_FILE_BYTES)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["error_type"] == "StorageError", outcome
    # The operating system's own words survive every layer, with what was not written.
    assert "File too large" in outcome["error"], outcome["error"]
    assert "were not written" in outcome["error"], outcome["error"]
    assert outcome["succeeded"], "runs before the failure completed"
    # Once the disk refused a write the store takes no more, and says why instead of hanging.
    assert "stopped accepting writes" in outcome["next_error"], outcome["next_error"]
    assert "File too large" in outcome["next_error"], outcome["next_error"]

    # Reopened without the limit: every run that reported success is intact, and the run whose
    # events were refused is not reported as a success.
    storage = rs.Storage.embedded(str(store))
    runs = {run.run_id: run for run in storage.get_runs(limit=1000)}
    for run_id in outcome["succeeded"]:
        assert runs[run_id].status == "Success"
        events = storage.get_events_for_run(run_id)
        assert sum(e.event_type == "Materialization" for e in events) == 300
    failed = [run for run_id, run in runs.items() if run_id not in outcome["succeeded"]]
    assert len(failed) == 1 and failed[0].status != "Success", [(r.run_id, r.status) for r in failed]
    # What was written of it is whole steps in order: no success without its start.
    started: set[str] = set()
    for event in storage.get_events_for_run(failed[0].run_id):
        if event.event_type == "StepStart":
            started.add(event.asset_key)
        elif event.event_type == "StepSuccess":
            assert event.asset_key in started, event.asset_key
