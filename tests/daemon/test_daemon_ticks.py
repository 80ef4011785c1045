"""Ticks written by the daemon for schedules and sensors: statuses, cursors, errors, timeouts,
pruning (automation-and-concurrency.md R22–R29)."""

import threading

import rivers as rs

from .conftest import wait_for


def test_a_running_sensor_writes_ticks_and_its_cursor_moves_forward(daemon_repo):
    @rs.Sensor(minimum_interval="50ms", default_status=rs.SensorStatus.Running)
    def counter(context):
        seen = int(context.cursor or 0)
        return rs.SensorResult(skip_reason="nothing new", cursor=str(seen + 1))

    _, store, daemon = daemon_repo(sensors=[counter])
    daemon.start()
    wait_for(lambda: len(store.get_ticks("counter")) >= 3, "three ticks")
    daemon.stop()
    ticks = store.get_ticks("counter")
    assert [t.cursor for t in ticks] == [str(n) for n in range(len(ticks), 0, -1)], "newest first, cursor carried"
    tick = ticks[0]
    assert (tick.automation_type, tick.status, tick.skip_reason) == ("sensor", "Skipped", "nothing new")
    assert tick.run_ids == [] and tick.backfill_ids == [] and tick.error is None


def test_a_stopped_sensor_and_schedule_write_no_ticks(daemon_repo):
    @rs.Sensor(minimum_interval="10ms")
    def idle(context):
        raise AssertionError("a stopped sensor is never evaluated")

    schedule = rs.Schedule(cron_schedule="* * * * * *", job_name="orders_job")
    _, store, daemon = daemon_repo(sensors=[idle], schedules=[schedule])
    daemon.start()
    threading.Event().wait(1.2)
    daemon.stop()
    assert store.get_ticks("idle") == [] and store.get_ticks("orders_job_schedule") == []


def test_cursor_and_last_tick_time_survive_a_daemon_restart(daemon_repo):
    seen = []

    @rs.Sensor(minimum_interval="1h", default_status=rs.SensorStatus.Running)
    def inbox(context):
        seen.append((context.cursor, context.last_tick_time))
        return rs.SensorResult(cursor=str(len(seen)))

    repo, store, daemon = daemon_repo(sensors=[inbox])
    daemon.start()
    wait_for(lambda: seen, "the first evaluation")
    daemon.stop()
    first_tick = store.get_ticks("inbox")[0]

    from rivers._core import AutomationDaemon

    again = AutomationDaemon(repo, store)
    again.start()
    wait_for(lambda: len(seen) == 2, "the evaluation after the restart")
    again.stop()
    assert seen[0] == (None, None)
    assert seen[1] == ("1", first_tick.timestamp / 1e9)


def test_a_raising_evaluation_is_a_failure_tick_with_the_exception_and_ticking_goes_on(daemon_repo):
    calls = []

    @rs.Sensor(minimum_interval="50ms", default_status=rs.SensorStatus.Running)
    def flaky(context):
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("the feed is down")
        return rs.SkipReason("recovered")

    _, store, daemon = daemon_repo(sensors=[flaky])
    daemon.start()
    wait_for(lambda: len(store.get_ticks("flaky")) >= 2, "a tick after the failure")
    daemon.stop()
    failure = store.get_ticks("flaky")[-1]
    assert failure.status == "Failure"
    assert "ValueError: the feed is down" in failure.error
    assert store.get_ticks("flaky")[0].skip_reason == "recovered"


def test_an_invalid_return_value_is_a_failure_tick(daemon_repo):
    @rs.Sensor(minimum_interval="1h", default_status=rs.SensorStatus.Running)
    def wrong(context):
        return 42

    _, store, daemon = daemon_repo(sensors=[wrong])
    daemon.start()
    tick = wait_for(lambda: store.get_ticks("wrong"), "the tick")[0]
    daemon.stop()
    assert tick.status == "Failure" and "TypeError" in tick.error


def test_an_evaluation_past_eval_timeout_is_a_failure_tick(daemon_repo):
    release = threading.Event()

    @rs.Sensor(minimum_interval="50ms", eval_timeout="200ms", default_status=rs.SensorStatus.Running)
    def hanging(context):
        release.wait(10)

    _, store, daemon = daemon_repo(sensors=[hanging])
    daemon.start()
    tick = wait_for(lambda: store.get_ticks("hanging"), "the timed-out tick")[0]
    release.set()
    daemon.stop()
    assert tick.status == "Failure" and "eval_timeout" in tick.error


def test_a_slow_sensor_does_not_delay_another(daemon_repo):
    release = threading.Event()
    quick_calls = []

    @rs.Sensor(minimum_interval="50ms", default_status=rs.SensorStatus.Running)
    def slow(context):
        release.wait(20)

    @rs.Sensor(minimum_interval="50ms", default_status=rs.SensorStatus.Running)
    def quick(context):
        quick_calls.append(1)

    _, _, daemon = daemon_repo(sensors=[slow, quick])
    daemon.start()
    wait_for(lambda: len(quick_calls) >= 3, "the quick sensor ticking while the slow one hangs")
    release.set()
    daemon.stop()


def test_ticks_are_pruned_to_max_ticks_retained(daemon_repo):
    @rs.Sensor(minimum_interval="10ms", default_status=rs.SensorStatus.Running)
    def chatty(context):
        return None

    _, store, daemon = daemon_repo(sensors=[chatty], daemon_args={"max_ticks_retained": 3})
    daemon.start()
    calls = []
    wait_for(lambda: calls.append(1) or len(calls) > 60, "a few dozen ticks", timeout=60)
    daemon.stop()
    assert len(store.get_ticks("chatty", limit=100)) == 3


def test_a_schedule_with_seconds_and_no_function_launches_its_job_every_tick(daemon_repo):
    schedule = rs.Schedule(cron_schedule="* * * * * *", job_name="orders_job", default_status=rs.ScheduleStatus.Running)
    _, store, daemon = daemon_repo(schedules=[schedule])
    daemon.start()
    ticks = wait_for(lambda: store.get_ticks("orders_job_schedule"), "a schedule tick", timeout=10)
    run_id = ticks[0].run_ids[0]
    run = wait_for(
        lambda: (r := store.get_run(run_id)) is not None and r.status == "Success" and r, "the run to succeed"
    )
    daemon.stop()
    assert ticks[0].status == "Success" and ticks[0].automation_type == "schedule"
    assert run.job_name == "orders_job"
    assert run.launched_by == rs.LaunchedBy.schedule("orders_job_schedule")
