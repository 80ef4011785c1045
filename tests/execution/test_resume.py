"""materialize(run_id_override=..., resume=True) (repository-and-execution.md R40-R44),
including a crash-safety scenario across processes on embedded storage."""

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from exec_helpers import make_repo, step_event_types

import rivers as rs

HERE = Path(__file__).resolve().parent


def _chain(broken: dict):
    calls: list[str] = []

    @rs.Asset
    def ingest() -> list[int]:
        calls.append("ingest")
        return [1, 2, 3]

    @rs.Asset
    def transform(ingest: list[int]) -> list[int]:
        calls.append("transform")
        if broken["transform"]:
            raise RuntimeError("transform not ready")
        return [x * 2 for x in ingest]

    @rs.Asset
    def publish(transform: list[int]) -> int:
        calls.append("publish")
        return sum(transform)

    return calls, [ingest, transform, publish]


def test_resume_skips_steps_that_already_succeeded():
    broken = {"transform": True}
    calls, assets = _chain(broken)
    repo = make_repo(assets)
    first = repo.materialize(run_id_override="resume-me", raise_on_error=False)
    assert first.success is False
    assert calls == ["ingest", "transform"]
    ingest_events_before = step_event_types(repo.storage, "resume-me", "ingest")

    broken["transform"] = False
    calls.clear()
    second = repo.materialize(run_id_override="resume-me", resume=True)
    assert second.run_id == "resume-me"
    assert second.success is True
    assert calls == ["transform", "publish"]
    # the step satisfied by resume counts as succeeded and is listed
    assert sorted(second.materialized_assets) == ["ingest", "publish", "transform"]
    # ...and gets no new events
    assert step_event_types(repo.storage, "resume-me", "ingest") == ingest_events_before
    transform_kinds = step_event_types(repo.storage, "resume-me", "transform")
    assert transform_kinds.count("StepFailure") == 1
    assert transform_kinds.count("StepSuccess") == 1
    assert transform_kinds.index("StepFailure") < transform_kinds.index("StepSuccess")
    assert step_event_types(repo.storage, "resume-me", "publish")[-3:] == [
        "StepStart",
        "Materialization",
        "StepSuccess",
    ]
    assert repo.storage.get_run("resume-me").status == "Success"
    assert repo.load_node("publish") == 12
    assert [r.run_id for r in repo.storage.get_runs()].count("resume-me") == 1


def test_resume_of_a_fully_successful_run_executes_nothing():
    calls, assets = _chain({"transform": False})
    repo = make_repo(assets)
    repo.materialize(run_id_override="done-already")
    events_before = len(step_event_types(repo.storage, "done-already", "ingest"))
    calls.clear()
    result = repo.materialize(run_id_override="done-already", resume=True)
    assert result.success
    assert calls == []
    assert sorted(result.materialized_assets) == ["ingest", "publish", "transform"]
    assert len(step_event_types(repo.storage, "done-already", "ingest")) == events_before


def test_resume_does_not_fire_hooks_for_resumed_steps():
    fired: list[str] = []

    @rs.Hook.success
    def note(ctx: rs.HookContext) -> None:
        fired.append(ctx.asset_name)

    broken = {"flag": True}

    @rs.Asset(hooks=[note])
    def stable() -> int:
        return 1

    @rs.Asset(hooks=[note])
    def shaky(stable: int) -> int:
        if broken["flag"]:
            raise RuntimeError("shaky")
        return stable + 1

    repo = make_repo([stable, shaky])
    repo.materialize(run_id_override="hooked-resume", raise_on_error=False)
    assert fired == ["stable"]
    broken["flag"] = False
    repo.materialize(run_id_override="hooked-resume", resume=True)
    assert fired == ["stable", "shaky"]


def test_resume_with_unknown_run_id_behaves_like_a_fresh_run():
    calls, assets = _chain({"transform": False})
    repo = make_repo(assets)
    result = repo.materialize(run_id_override="never-seen", resume=True)
    assert result.success
    assert result.run_id == "never-seen"
    assert calls == ["ingest", "transform", "publish"]
    assert repo.storage.get_run("never-seen").status == "Success"


def test_resume_without_run_id_override_raises_value_error():
    calls, assets = _chain({"transform": False})
    repo = make_repo(assets)
    with pytest.raises(ValueError):
        repo.materialize(resume=True)
    assert calls == []


# --------------------------------------------------------------------------- crash safety across processes


def _run_chain(base: Path, run_id: str, mode: str) -> tuple[subprocess.CompletedProcess, Path]:
    output = base / f"{mode}.json"
    env = dict(os.environ, RIVERS_CRASH_DIR=str(base))
    proc = subprocess.run(
        [sys.executable, str(HERE / "exec_crash_chain.py"), run_id, mode, str(output)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc, output


def _counts(base: Path) -> dict[str, int]:
    counts = base / "counts"
    return {p.name: len(p.read_text().splitlines()) for p in sorted(counts.iterdir())}


def test_resume_after_process_crash_does_not_reexecute_completed_steps(tmp_path):
    run_id = "crash-run-1"
    (tmp_path / "kill_marker").touch()

    crashed, crashed_output = _run_chain(tmp_path, run_id, "fresh")
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert not crashed_output.exists()
    assert _counts(tmp_path) == {"crash_clean": 1, "crash_enrich": 1, "crash_extract": 1}

    (tmp_path / "kill_marker").unlink()
    inspected, inspected_output = _run_chain(tmp_path, run_id, "inspect")
    assert inspected.returncode == 0, inspected.stderr
    after_crash = json.loads(inspected_output.read_text())

    resumed, resumed_output = _run_chain(tmp_path, run_id, "resume")
    assert resumed.returncode == 0, resumed.stderr
    payload = json.loads(resumed_output.read_text())

    # steps finished before the kill ran once; the killed one ran again; the rest once
    assert _counts(tmp_path) == {"crash_clean": 1, "crash_enrich": 2, "crash_extract": 1, "crash_report": 1}, (
        f"events persisted for run {run_id} at the time of the crash: {after_crash}"
    )
    assert payload["success"] is True, payload
    assert payload["run_id"] == run_id
    assert payload["failed_assets"] == []
    assert sorted(payload["materialized_assets"]) == sorted(
        ["crash_extract", "crash_clean", "crash_enrich", "crash_report"]
    )
    assert payload["status"] == "Success"
    assert payload["report"] == "total=60"

    materializations = Counter(key for kind, key in payload["events"] if kind == "Materialization")
    assert materializations == {"crash_extract": 1, "crash_clean": 1, "crash_enrich": 1, "crash_report": 1}
    successes = Counter(key for kind, key in payload["events"] if kind == "StepSuccess")
    assert successes == {"crash_extract": 1, "crash_clean": 1, "crash_enrich": 1, "crash_report": 1}
    assert payload["events"][-1] == ["RunSuccess", None]
