"""Runs and backfills the daemon launches: origin, tags, run keys, the run queue and its
events, launch failures (automation-and-concurrency.md R28–R42)."""

from datetime import datetime

import rivers as rs

from .conftest import wait_for


def finished(store, run_id):
    return wait_for(
        lambda: (run := store.get_run(run_id)) is not None and run.status in ("Success", "Failure", "Canceled") and run,
        f"run {run_id} to finish",
    )


def test_sensor_runs_carry_the_sensor_origin_and_merged_tags(daemon_repo):
    @rs.Sensor(
        job_name="orders_job",
        minimum_interval="1h",
        tags={"team": "core", "env": "prod"},
        default_status=rs.SensorStatus.Running,
    )
    def landed(context):
        return rs.RunRequest(tags={"env": "dev", "rivers/priority": "4"})

    _, store, daemon = daemon_repo(sensors=[landed])
    daemon.start()
    tick = wait_for(lambda: store.get_ticks("landed"), "the tick")[0]
    run = finished(store, tick.run_ids[0])
    daemon.stop()
    assert tick.status == "Success"
    assert run.status == "Success"
    assert run.launched_by == rs.LaunchedBy.sensor("landed")
    assert (run.launched_by.kind, run.launched_by.name) == ("sensor", "landed")
    assert dict(run.tags) == {"team": "core", "env": "dev", "rivers/priority": "4"}
    assert run.priority == 4


def test_a_sensor_with_an_asset_selection_and_no_job_launches_an_ad_hoc_run(daemon_repo):
    @rs.Sensor(asset_selection=["orders"], minimum_interval="1h", default_status=rs.SensorStatus.Running)
    def orders_only(context):
        return rs.RunRequest()

    _, store, daemon = daemon_repo(sensors=[orders_only])
    daemon.start()
    tick = wait_for(lambda: store.get_ticks("orders_only"), "the tick")[0]
    run = finished(store, tick.run_ids[0])
    daemon.stop()
    assert run.job_name is None
    assert run.status == "Success"
    assert [e.asset_key for e in store.get_events_for_run(run.run_id) if e.event_type == "Materialization"] == [
        "orders"
    ]


def test_a_run_key_launches_once_per_sensor_even_across_restarts(daemon_repo):
    @rs.Sensor(job_name="orders_job", minimum_interval="50ms", default_status=rs.SensorStatus.Running)
    def keyed(context):
        return rs.RunRequest(run_key="2026-03-01")

    repo, store, daemon = daemon_repo(sensors=[keyed])
    daemon.start()
    wait_for(lambda: len(store.get_ticks("keyed")) >= 3, "three ticks")
    daemon.stop()
    from rivers._core import AutomationDaemon

    again = AutomationDaemon(repo, store)
    again.start()
    wait_for(lambda: len(store.get_ticks("keyed")) >= 4, "a tick after the restart")
    again.stop()
    created = [run_id for tick in store.get_ticks("keyed") for run_id in tick.run_ids]
    assert len(created) == 1
    assert [t.status for t in store.get_ticks("keyed")].count("Success") == 1


def test_an_unknown_job_fails_the_tick_naming_the_job(daemon_repo):
    @rs.Sensor(job_name="no_such_job", minimum_interval="1h", default_status=rs.SensorStatus.Running)
    def misdirected(context):
        return rs.RunRequest()

    _, store, daemon = daemon_repo(sensors=[misdirected])
    daemon.start()
    tick = wait_for(lambda: store.get_ticks("misdirected"), "the tick")[0]
    daemon.stop()
    assert tick.status == "Failure"
    assert "no_such_job" in tick.error and "orders_job" in tick.error


def test_queued_runs_respect_max_concurrent_runs_and_record_queue_events(daemon_repo):
    @rs.Sensor(job_name="orders_job", minimum_interval="300ms", default_status=rs.SensorStatus.Running)
    def burst(context):
        # The first tick requests nothing, so the coordinator's first pass (at start) is over
        # before the runs are queued.
        if context.cursor is None:
            return rs.SensorResult(skip_reason="warming up", cursor="warm")
        if context.cursor == "warm":
            requests = [rs.RunRequest(run_key=str(n), tags={"rivers/priority": str(n)}) for n in range(3)]
            return rs.SensorResult(run_requests=requests, cursor="done")
        return None

    _, store, daemon = daemon_repo(
        # A long interval: no timer pass falls between the tick's submissions; the tick's own
        # pass and each run's end admit the next one.
        sensors=[burst],
        run_queue=rs.RunQueueConfig(max_concurrent_runs=1, dequeue_interval="10s"),
    )
    daemon.start()
    tick = wait_for(lambda: [t for t in store.get_ticks("burst") if t.run_ids], "the tick with runs")[0]
    runs = [finished(store, run_id) for run_id in tick.run_ids]
    daemon.stop()
    assert all(run.status == "Success" for run in runs)
    for run in runs:
        events = [e for e in store.get_events_for_run(run.run_id)]
        kinds = [e.event_type for e in events]
        assert kinds[:2] == ["RunQueued", "RunDequeued"], kinds
        assert dict(events[0].metadata)["priority"] == str(run.priority)
    # Never more than one admitted run at once: each run was dequeued after the previous ended.
    ends = {run.run_id: run.end_time for run in runs}
    dequeued_at = {
        run.run_id: next(e.timestamp for e in store.get_events_for_run(run.run_id) if e.event_type == "RunDequeued")
        for run in runs
    }
    order = sorted(runs, key=lambda run: dequeued_at[run.run_id])
    assert [run.priority for run in order] == [2, 1, 0], "admitted by priority"
    for earlier, later in zip(order, order[1:], strict=False):
        assert dequeued_at[later.run_id] > ends[earlier.run_id]


def test_a_tag_limit_keeps_a_run_queued_with_a_block_reason(daemon_repo):
    @rs.Sensor(job_name="orders_job", minimum_interval="1h", default_status=rs.SensorStatus.Running)
    def tenants(context):
        return [rs.RunRequest(tags={"tenant": "acme"}) for _ in range(2)]

    _, store, daemon = daemon_repo(
        sensors=[tenants],
        run_queue=rs.RunQueueConfig(
            max_concurrent_runs=-1,
            tag_concurrency_limits=[rs.TagConcurrencyLimit(key="tenant", limit=0, value="acme")],
            dequeue_interval="50ms",
        ),
    )
    daemon.start()
    queued = wait_for(lambda: [r for r in store.get_queued_runs() if r.block_reason], "blocked queued runs")
    daemon.stop()
    assert len(queued) == 2
    assert all("tenant" in run.block_reason and run.status == "Queued" for run in queued)
    assert store.cancel_queued_run(queued[0].run_id) is True
    assert store.get_run(queued[0].run_id).status == "Canceled"
    assert store.cancel_queued_run(queued[0].run_id) is False


def test_a_run_that_cannot_start_fails_with_run_launch_failed(daemon_repo):
    days = rs.PartitionsDefinition.daily(start=datetime(2026, 1, 1))

    @rs.Asset(partitions_def=days)
    def daily() -> int:
        return 1

    @rs.Sensor(job_name="daily_job", minimum_interval="1h", default_status=rs.SensorStatus.Running)
    def unkeyed(context):
        return rs.RunRequest()  # a partitioned job needs a partition key

    _, store, daemon = daemon_repo(assets=[daily], jobs=[rs.Job("daily_job", [daily])], sensors=[unkeyed])
    daemon.start()
    tick = wait_for(lambda: store.get_ticks("unkeyed"), "the tick")[0]
    run = finished(store, tick.run_ids[0])
    daemon.stop()
    assert run.status == "Failure"
    failed = [e for e in store.get_events_for_run(run.run_id) if e.event_type == "RunLaunchFailed"]
    assert len(failed) == 1 and "error" in dict(failed[0].metadata)


def test_a_backfill_request_creates_a_backfill_listed_on_the_tick(daemon_repo):
    days = rs.PartitionsDefinition.daily(start=datetime(2026, 1, 1), end=datetime(2026, 1, 4))

    @rs.Asset(partitions_def=days)
    def daily() -> int:
        return 1

    @rs.Sensor(minimum_interval="1h", default_status=rs.SensorStatus.Running)
    def repair(context):
        keys = [rs.PartitionKey.single(day) for day in ("2026-01-01", "2026-01-02")]
        return rs.BackfillRequest(selection=["daily"], partition_keys=keys, max_concurrency=2)

    repo, store, daemon = daemon_repo(assets=[daily], jobs=[], sensors=[repair])
    daemon.start()
    tick = wait_for(lambda: store.get_ticks("repair"), "the tick")[0]
    assert (tick.status, tick.error, len(tick.backfill_ids), tick.run_ids) == ("Success", None, 1, [])
    backfill_id = tick.backfill_ids[0]
    status = wait_for(
        lambda: (b := repo.get_backfill(backfill_id)) is not None and b.status == "completed" and b,
        "the backfill to complete",
    )
    daemon.stop()
    assert status.launched_by == rs.LaunchedBy.sensor("repair")
    runs = [store.get_run(run_id) for run_id in status.run_ids]
    assert len(runs) == 2
    assert all(run.launched_by == rs.LaunchedBy.backfill(backfill_id) for run in runs)
    assert all(run.priority == -10 for run in runs)


def test_a_backfill_request_the_repository_refuses_fails_the_tick_with_its_reason(daemon_repo):
    @rs.Sensor(minimum_interval="1h", default_status=rs.SensorStatus.Running)
    def unpartitioned(context):
        return rs.BackfillRequest(selection=["orders"], partition_keys=[rs.PartitionKey.single("x")])

    _, store, daemon = daemon_repo(sensors=[unpartitioned])
    daemon.start()
    tick = wait_for(lambda: store.get_ticks("unpartitioned"), "the tick")[0]
    daemon.stop()
    assert tick.status == "Failure" and "partitioned" in tick.error


def test_run_queue_config_defaults_and_validation():
    import pytest

    config = rs.RunQueueConfig()
    assert (config.max_concurrent_runs, config.tag_concurrency_limits) == (10, [])
    assert (config.dequeue_interval, config.start_timeout) == ("250ms", "180s")
    limit = rs.TagConcurrencyLimit(key="k", limit=2)
    assert (limit.key, limit.limit, limit.value, limit.per_unique_value) == ("k", 2, None, False)
    with pytest.raises(ValueError, match="max_concurrent_runs"):
        rs.RunQueueConfig(max_concurrent_runs=-2)
    with pytest.raises(ValueError, match="dequeue_interval"):
        rs.RunQueueConfig(dequeue_interval="often")
    with pytest.raises(ValueError, match="start_timeout"):
        rs.RunQueueConfig(start_timeout="5")
    with pytest.raises(ValueError, match="limit"):
        rs.TagConcurrencyLimit(key="k", limit=-1)
    assert rs.RunBackendConfig.local().is_kubernetes() is False
    assert rs.RunBackendConfig.kubernetes("img").is_kubernetes() is True
