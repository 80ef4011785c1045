"""Automation conditions end to end with a real daemon on memory storage (automation-and-
concurrency.md R54–R58, R62 and the checklist's automation lines), ``explain_automation`` and
``simulate_automation``. A pass is known to have happened when its tick is stored, so the tests
wait for ticks, never for time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

import rivers as rs
from rivers._core import AutomationDaemon
from rivers.exceptions import AssetNotFoundError

from .conftest import wait_for

FAST = {"condition_eval_interval": "100ms"}


def condition_runs(store):
    return [run for run in store.get_runs(limit=100) if run.launched_by.kind == "condition"]


def finished(store, run_id):
    return wait_for(
        lambda: (run := store.get_run(run_id)) is not None and run.status in ("Success", "Failure", "Canceled") and run,
        f"run {run_id} to finish",
    )


def passes(store, asset, more):
    """Waits until ``asset`` has ``more`` condition ticks beyond those it has now."""
    start = len(store.get_ticks(asset, limit=1000))
    return wait_for(lambda: len(store.get_ticks(asset, limit=1000)) >= start + more, f"{more} passes of {asset}")


def test_eager_materializes_the_downstream_once_after_its_upstream_and_not_again(daemon_repo):
    @rs.Asset
    def raw() -> int:
        return 1

    @rs.Asset(automation_condition=rs.AutomationCondition.eager())
    def clean(raw: int) -> int:
        return raw + 1

    repo, store, daemon = daemon_repo(assets=[raw, clean], jobs=[], daemon_args=FAST)
    daemon.start()
    passes(store, "clean", 1)
    assert condition_runs(store) == [], "the upstream is missing: nothing fires"
    repo.materialize(["raw"])
    run = wait_for(lambda: condition_runs(store), "the condition run")[0]
    assert finished(store, run.run_id).status == "Success"
    assert run.node_names == ["clean"] and run.job_name is None
    assert run.launched_by == rs.LaunchedBy.condition()
    passes(store, "clean", 3)
    daemon.stop()
    assert len(condition_runs(store)) == 1, "not re-dispatched after it ran"
    ticks = store.get_ticks("clean", limit=1000)
    assert {tick.automation_type for tick in ticks} == {"condition"}
    fired = [tick for tick in ticks if tick.status == "Success"]
    assert [tick.run_ids for tick in fired] == [[run.run_id]]
    assert repo.load_node("clean") == 2


def test_a_missing_cascade_fires_in_one_joint_run_which_does_not_trigger_a_second_downstream_run(daemon_repo):
    @rs.Asset(automation_condition=rs.AutomationCondition.eager())
    def source() -> int:
        return 1

    @rs.Asset(automation_condition=rs.AutomationCondition.eager())
    def derived(source: int) -> int:
        return source * 10

    repo, store, daemon = daemon_repo(assets=[source, derived], jobs=[], daemon_args=FAST)
    daemon.start()
    run = wait_for(lambda: condition_runs(store), "the joint run")[0]
    assert finished(store, run.run_id).status == "Success"
    assert sorted(run.node_names) == ["derived", "source"]
    passes(store, "derived", 3)
    daemon.stop()
    assert len(condition_runs(store)) == 1
    assert repo.load_node("derived") == 10


def test_eager_does_not_retry_a_failed_asset_and_on_missing_fires_once(daemon_repo):
    @rs.Asset(automation_condition=rs.AutomationCondition.eager())
    def flaky() -> int:
        raise RuntimeError("the feed is down")

    @rs.Asset(automation_condition=rs.AutomationCondition.on_missing())
    def broken() -> int:
        raise RuntimeError("no data")

    _, store, daemon = daemon_repo(assets=[flaky, broken], jobs=[], daemon_args=FAST)
    daemon.start()
    run = wait_for(lambda: condition_runs(store), "the first run")[0]
    assert finished(store, run.run_id).status == "Failure"
    passes(store, "flaky", 3)
    passes(store, "broken", 1)
    daemon.stop()
    assert len(condition_runs(store)) == 1, "neither the failed nor the handled missing asset fires again"


def test_a_restarted_daemon_with_intact_state_does_not_fire_again(daemon_repo):
    @rs.Asset(automation_condition=rs.AutomationCondition.initial_evaluation())
    def snapshot() -> int:
        return 3

    repo, store, daemon = daemon_repo(assets=[snapshot], jobs=[], daemon_args=FAST)
    daemon.start()
    run = wait_for(lambda: condition_runs(store), "the run")[0]
    finished(store, run.run_id)
    passes(store, "snapshot", 1)
    daemon.stop()
    again = AutomationDaemon(repo, store, **FAST)
    again.start()
    passes(store, "snapshot", 2)
    again.stop()
    assert len(condition_runs(store)) == 1, "initial_evaluation() is false after a restart with intact state"


def test_explain_automation_prints_the_evaluated_tree_and_writes_nothing(daemon_repo):
    @rs.Asset(automation_condition=rs.AutomationCondition.on_missing())
    def ledger() -> int:
        return 1

    @rs.Asset
    def plain() -> int:
        return 1

    repo, store, _ = daemon_repo(assets=[ledger, plain], jobs=[])
    explained = repo.explain_automation("ledger")
    assert isinstance(explained, rs.ConditionExplanation)
    assert (explained.label, explained.asset_key, explained.value) == ("on_missing", "ledger", True)
    assert [child.label for child in explained.children][1:] == ["~in_flight"]
    missing = explained.children[0]
    while missing.children:
        missing = missing.children[0]
    assert missing.label == "missing" and missing.value
    assert "never materialized" in missing.facts
    text = str(explained)
    assert text.splitlines()[0].startswith("on_missing [ledger]: true for 1 partition")
    assert "  missing [ledger]" in text
    assert store.get_ticks("ledger") == [], "read-only"
    assert repo.explain_automation("ledger").value, "nothing was persisted: still a first evaluation"
    with pytest.raises(AssetNotFoundError, match="'nope'"):
        repo.explain_automation("nope")
    with pytest.raises(ValueError, match="'plain' has no automation_condition"):
        repo.explain_automation("plain")


def test_explain_automation_reports_one_partition(daemon_repo):
    days = rs.PartitionsDefinition.daily(start=datetime(2025, 1, 1))

    @rs.Asset(partitions_def=days, automation_condition=rs.AutomationCondition.on_missing())
    def daily() -> int:
        return 1

    repo, _, _ = daemon_repo(assets=[daily], jobs=[])
    repo.materialize(["daily"], partition_key="2025-01-02")
    assert not repo.explain_automation("daily", partition_key="2025-01-02").value
    assert repo.explain_automation("daily", partition_key=rs.PartitionKey.single("2025-01-03")).value
    with pytest.raises(ValueError, match="'1999-01-01' is not a partition of asset 'daily'"):
        repo.explain_automation("daily", partition_key="1999-01-01")


def test_simulate_automation_calls_schedules_assumes_success_and_launches_nothing(daemon_repo):
    @rs.Asset
    def prices() -> int:
        return 1

    @rs.Asset(automation_condition=rs.AutomationCondition.eager())
    def report(prices: int) -> int:
        return prices

    evaluated: list[str] = []

    @rs.Schedule(cron_schedule="0 * * * *", job_name="prices_job", default_status=rs.ScheduleStatus.Running)
    def hourly(context: rs.ScheduleEvaluationContext):
        evaluated.append(context.scheduled_execution_time)
        return rs.RunRequest()

    repo, store, _ = daemon_repo(assets=[prices, report], jobs=[rs.Job("prices_job", [prices])], schedules=[hourly])
    start = datetime(2026, 3, 1, tzinfo=timezone.utc)
    requests = repo.simulate_automation(start, start + timedelta(hours=2), step="30m")
    assert all(isinstance(request, rs.SimulatedRequest) for request in requests)
    seen = [(request.time - start, request.automation_type, request.name, request.asset_keys) for request in requests]
    hour = timedelta(hours=1)
    assert seen == [
        (0 * hour, "schedule", "hourly", ["prices"]),
        (0 * hour, "condition", None, ["report"]),
        (1 * hour, "schedule", "hourly", ["prices"]),
        (1 * hour, "condition", None, ["report"]),
        (2 * hour, "schedule", "hourly", ["prices"]),
        (2 * hour, "condition", None, ["report"]),
    ]
    assert len(evaluated) == 3, "the evaluation function is called for every cron tick in the span"
    assert store.get_runs() == [] and store.get_ticks("report") == [] and store.get_ticks("hourly") == []
    with pytest.raises(ValueError, match="before start"):
        repo.simulate_automation(start, start - hour)
