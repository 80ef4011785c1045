"""Schedules (automation-and-concurrency.md "Schedule", "ScheduleEvaluationContext",
``CodeRepository`` members; R1, R2, R5, R7-R10, R12, R13, R18-R21): declaration forms and
defaults, definition-time errors, ``evaluate_schedule``, the daemon entry point in every
``eval_mode``, ``CronSchedule`` / ``parse_duration`` and the definitions snapshot."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from datetime import datetime, timedelta, timezone

import auto_eval_functions as remote
import pytest
from pydantic import BaseModel
from pydantic_settings import BaseSettings

import rivers as rs
from rivers import _core
from rivers.exceptions import ConfigurationError, ScheduleDefinitionError


class Window(BaseModel):
    days: int = 1
    label: str = "default"


class FromEnvironment(BaseSettings):
    label: str = "unset"


# ------------------------------------------------------------------------------ declaration


def test_decorator_form_names_the_schedule_after_the_function_with_spec_defaults():
    @rs.Schedule(cron_schedule="0 3 * * *", job_name="orders_job")
    def nightly(context: rs.ScheduleEvaluationContext):
        return None

    assert isinstance(nightly, rs.Schedule)
    assert nightly.name == "nightly"
    assert (nightly.cron_schedule, nightly.job_name) == ("0 3 * * *", "orders_job")
    assert callable(nightly.evaluation_fn) and nightly.evaluation_fn.__name__ == "nightly"
    assert nightly.default_status is rs.ScheduleStatus.Stopped
    assert (nightly.timezone, nightly.tags, nightly.description) == (None, None, None)
    assert nightly.eval_mode is rs.EvalMode.Auto
    assert nightly.eval_timeout is None
    assert repr(nightly).startswith("Schedule(name='nightly', cron_schedule='0 3 * * *', job_name='orders_job'")


def test_positional_keyword_and_function_less_forms():
    def evaluate(context):
        return rs.RunRequest()

    positional = rs.Schedule(evaluate, cron_schedule="0 3 * * *", job_name="orders_job")
    assert (positional.name, positional.evaluation_fn) == ("evaluate", evaluate)
    keyword = rs.Schedule(cron_schedule="0 3 * * *", job_name="orders_job", evaluation_fn=evaluate)
    assert (keyword.name, keyword.evaluation_fn) == ("orders_job_schedule", evaluate)
    bare = rs.Schedule(cron_schedule="0 3 * * *", job_name="orders_job")
    assert (bare.name, bare.evaluation_fn) == ("orders_job_schedule", None)
    named = rs.Schedule(evaluate, cron_schedule="0 3 * * *", job_name="orders_job", name="custom")
    assert named.name == "custom"


def test_the_decorator_keeps_an_explicit_name_and_every_setting():
    @rs.Schedule(
        cron_schedule="*/15 * * * * *",
        job_name="orders_job",
        name="quarter_minute",
        default_status=rs.ScheduleStatus.Running,
        timezone="Europe/Berlin",
        tags={"team": "sales"},
        description="every fifteen seconds",
        eval_mode=rs.EvalMode.InProcess,
        eval_timeout="250ms",
    )
    def fast(context):
        return None

    assert fast.name == "quarter_minute"
    assert fast.default_status is rs.ScheduleStatus.Running
    assert (fast.timezone, fast.tags, fast.description) == ("Europe/Berlin", {"team": "sales"}, "every fifteen seconds")
    assert (fast.eval_mode, fast.eval_timeout) == (rs.EvalMode.InProcess, "250ms")


def test_the_evaluation_function_must_be_callable():
    with pytest.raises(ScheduleDefinitionError, match="must be callable, got 5"):
        rs.Schedule(5, cron_schedule="0 3 * * *", job_name="orders_job")
    with pytest.raises(ScheduleDefinitionError, match="must be callable"):
        rs.Schedule(cron_schedule="0 3 * * *", job_name="orders_job", evaluation_fn="nightly")


def test_a_schedule_decorates_one_function_and_takes_one():
    def a(context):
        return None

    schedule = rs.Schedule(a, cron_schedule="0 3 * * *", job_name="orders_job")
    with pytest.raises(ScheduleDefinitionError, match="already has an evaluation function"):
        schedule(a)
    with pytest.raises(ScheduleDefinitionError, match="two evaluation functions"):
        rs.Schedule(a, cron_schedule="0 3 * * *", job_name="orders_job", evaluation_fn=a)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cron_schedule": "", "job_name": "j"}, "cron_schedule must be a non-empty str"),
        ({"cron_schedule": "0 * * * *", "job_name": ""}, "job_name must be a non-empty str"),
        ({"cron_schedule": "* * * *", "job_name": "j"}, "4 fields"),
        ({"cron_schedule": "61 * * * *", "job_name": "j"}, "schedule 'j_schedule'"),
        ({"cron_schedule": "0 3 * * *", "job_name": "j", "timezone": "Mars/Olympus"}, "unknown timezone"),
        ({"cron_schedule": "0 3 * * *", "job_name": "j", "eval_timeout": "soon"}, 'eval_timeout "soon"'),
        ({"cron_schedule": "0 3 * * *", "job_name": "j", "default_status": "Running"}, "default_status"),
        ({"cron_schedule": "0 3 * * *", "job_name": "j", "default_status": rs.SensorStatus.Running}, "default_status"),
        ({"cron_schedule": "0 3 * * *", "job_name": "j", "eval_mode": 7}, "eval_mode"),
        ({"cron_schedule": "0 3 * * *", "job_name": "j", "tags": {"a": 1}}, "tags"),
        ({"cron_schedule": "0 3 * * *", "job_name": "j", "description": 5}, "description"),
    ],
)
def test_definition_errors_are_schedule_definition_errors(kwargs, message):
    with pytest.raises(ScheduleDefinitionError, match=message):
        rs.Schedule(**kwargs)


def test_both_cron_lengths_are_accepted():
    assert rs.Schedule(cron_schedule="0 3 * * *", job_name="j").cron_schedule == "0 3 * * *"
    assert rs.Schedule(cron_schedule="*/15 * * * * *", job_name="j").cron_schedule == "*/15 * * * * *"
    assert rs.Schedule(cron_schedule="0 0 6 * * MON-FRI", job_name="j", timezone="US/Eastern").timezone == "US/Eastern"


@pytest.mark.parametrize(
    ("function", "message"),
    [
        (lambda *args: None, r"\*args/\*\*kwargs parameter 'args'"),
        (lambda context, **resources: None, r"\*args/\*\*kwargs parameter 'resources'"),
    ],
)
def test_evaluation_functions_that_cannot_be_called_by_name_are_refused(function, message):
    with pytest.raises(ScheduleDefinitionError, match=message):
        rs.Schedule(function, cron_schedule="0 3 * * *", job_name="j", name="s")


def test_the_context_must_be_the_schedule_context_and_come_first():
    def wrong_kind(context: rs.SensorEvaluationContext):
        return None

    def second(db: str, context: rs.ScheduleEvaluationContext):
        return None

    with pytest.raises(ScheduleDefinitionError, match="annotated SensorEvaluationContext; annotate it Schedule"):
        rs.Schedule(wrong_kind, cron_schedule="0 3 * * *", job_name="j")
    with pytest.raises(ScheduleDefinitionError, match="the context must be the first parameter"):
        rs.Schedule(second, cron_schedule="0 3 * * *", job_name="j")


# ----------------------------------------------------------------------------- registration


def test_repository_lists_and_finds_schedules_in_registration_order(make_repo):
    first = rs.Schedule(cron_schedule="0 3 * * *", job_name="orders_job", name="b")
    second = rs.Schedule(cron_schedule="0 4 * * *", job_name="orders_job", name="a")
    repo = make_repo(schedules=[first, second])
    assert repo.schedules == [first, second]
    assert repo.get_schedule("a") is second
    with pytest.raises(ValueError, match=r"no schedule named 'c' is registered; registered schedules: \[b, a\]"):
        repo.get_schedule("c")
    with pytest.raises(ValueError, match="no schedule named 'c'"):
        repo.evaluate_schedule("c")


def test_registering_something_else_is_a_type_error_naming_it(make_repo):
    with pytest.raises(TypeError, match=r"schedules=\.\.\.\) accepts rs\.Schedule objects, got 'nightly'"):
        make_repo(schedules=["nightly"])


def test_duplicate_names_fail_validation(make_repo):
    twins = [rs.Schedule(cron_schedule="0 3 * * *", job_name="orders_job", name="twin") for _ in range(2)]
    repo = make_repo(schedules=twins)
    with pytest.raises(ScheduleDefinitionError, match="two schedules are named 'twin'"):
        repo.validate()
    with pytest.raises(ScheduleDefinitionError, match="two schedules are named 'twin'"):
        repo.resolve(storage=rs.Storage.memory())


def test_a_parameter_that_matches_no_resource_fails_validation(make_repo):
    @rs.Schedule(cron_schedule="0 3 * * *", job_name="orders_job")
    def needs_db(context, warehouse_db):
        return None

    with pytest.raises(ConfigurationError, match=r"parameter 'warehouse_db' of the evaluation function of schedule "):
        make_repo(schedules=[needs_db]).validate()
    make_repo(schedules=[needs_db], resources={"warehouse_db": "dsn"}).validate()


def test_a_subprocess_function_may_not_ask_for_resources(make_repo):
    @rs.Schedule(cron_schedule="0 3 * * *", job_name="orders_job", eval_mode=rs.EvalMode.Subprocess)
    def remote_with_db(context, db):
        return None

    with pytest.raises(ConfigurationError, match="EvalMode.Subprocess injects none"):
        make_repo(schedules=[remote_with_db], resources={"db": "dsn"}).validate()


def test_an_unknown_job_name_fails_nothing(make_repo):
    @rs.Schedule(cron_schedule="0 3 * * *", job_name="no_such_job")
    def orphan(context):
        return rs.RunRequest()

    repo = make_repo(schedules=[orphan])
    repo.validate()
    assert repo.evaluate_schedule("orphan").run_requests == [rs.RunRequest()]


def test_stopped_schedules_are_listed_and_evaluable(make_repo):
    schedule = rs.Schedule(cron_schedule="0 3 * * *", job_name="orders_job")
    assert schedule.default_status is rs.ScheduleStatus.Stopped
    repo = make_repo(schedules=[schedule])
    assert repo.schedules == [schedule]
    assert repo.evaluate_schedule("orders_job_schedule").run_requests == [rs.RunRequest()]


# ------------------------------------------------------------------------------- evaluation


def test_evaluate_schedule_passes_the_time_and_name_verbatim_and_returns_the_requests(make_repo):
    seen = []

    @rs.Schedule(cron_schedule="15 2 * * *", job_name="orders_job", timezone="Europe/Berlin")
    def close_previous_day(context: rs.ScheduleEvaluationContext):
        seen.append((context.scheduled_execution_time, context.schedule_name, context.config))
        tick = datetime.fromisoformat(context.scheduled_execution_time)
        day = (tick - timedelta(days=1)).strftime("%Y-%m-%d")
        return rs.RunRequest(run_key=day, partition_key=day, tags={"origin": "nightly-close"})

    repo = make_repo(schedules=[close_previous_day])
    tick = repo.evaluate_schedule("close_previous_day", execution_time="2025-03-02T02:15:00+01:00")
    assert isinstance(tick, rs.ScheduleTickResult)
    assert tick.schedule_name == "close_previous_day"
    assert tick.run_requests == [
        rs.RunRequest(run_key="2025-03-01", partition_key="2025-03-01", tags={"origin": "nightly-close"})
    ]
    assert tick.skip_reason is None
    assert seen == [("2025-03-02T02:15:00+01:00", "close_previous_day", None)]
    repo.evaluate_schedule("close_previous_day", execution_time="2025-03-02 02:15")
    assert seen[-1][0] == "2025-03-02 02:15"


def test_without_an_execution_time_the_context_gets_now_in_utc(make_repo):
    times = []

    @rs.Schedule(cron_schedule="0 3 * * *", job_name="orders_job")
    def stamp(context):
        times.append(context.scheduled_execution_time)

    before = datetime.now(timezone.utc).replace(microsecond=0)
    make_repo(schedules=[stamp]).evaluate_schedule("stamp")
    parsed = datetime.fromisoformat(times[0])
    assert parsed.utcoffset() == timedelta(0)
    assert before <= parsed <= datetime.now(timezone.utc)


def test_evaluation_persists_nothing(make_repo):
    @rs.Schedule(cron_schedule="0 3 * * *", job_name="orders_job")
    def busy(context):
        return [rs.RunRequest(run_key="a"), rs.BackfillRequest(["orders"], partition_keys=[])]

    repo = make_repo(schedules=[busy])
    repo.resolve(storage=rs.Storage.memory())
    assert len(repo.evaluate_schedule("busy").run_requests) == 2
    assert repo.storage.get_runs() == []
    assert repo.storage.get_ticks("busy") == []


def test_user_exceptions_propagate_unchanged(make_repo):
    class FeedDown(RuntimeError):
        pass

    @rs.Schedule(cron_schedule="0 3 * * *", job_name="orders_job")
    def broken(context):
        raise FeedDown("feed is down")

    with pytest.raises(FeedDown, match="feed is down"):
        make_repo(schedules=[broken]).evaluate_schedule("broken")


def test_every_return_form(make_repo):
    def schedule_returning(name, value):
        return rs.Schedule(lambda context: value, cron_schedule="0 3 * * *", job_name="orders_job", name=name)

    def generator(context):
        yield rs.RunRequest(run_key="g1")
        yield rs.RunRequest(run_key="g2")

    repo = make_repo(
        schedules=[
            schedule_returning("single", rs.RunRequest(run_key="s")),
            schedule_returning("listed", [rs.RunRequest(run_key="1"), rs.RunRequest(run_key="2")]),
            schedule_returning("tupled", (rs.RunRequest(run_key="t"),)),
            schedule_returning("nothing", None),
            schedule_returning("skipped", rs.SkipReason("holiday")),
            schedule_returning(
                "sensor_style", rs.SensorResult([rs.RunRequest(run_key="r")], "partly", cursor="ignored")
            ),
            rs.Schedule(generator, cron_schedule="0 3 * * *", job_name="orders_job"),
        ]
    )
    keys = lambda name: [r.run_key for r in repo.evaluate_schedule(name).run_requests]  # noqa: E731
    assert keys("single") == ["s"]
    assert keys("listed") == ["1", "2"]
    assert keys("tupled") == ["t"]
    assert keys("generator") == ["g1", "g2"]
    assert repo.evaluate_schedule("nothing") == rs.ScheduleTickResult("nothing", [], None)
    assert repo.evaluate_schedule("skipped") == rs.ScheduleTickResult("skipped", [], rs.SkipReason("holiday"))
    sensor_style = repo.evaluate_schedule("sensor_style")
    assert sensor_style == rs.ScheduleTickResult("sensor_style", [rs.RunRequest(run_key="r")], rs.SkipReason("partly"))


def test_a_wrong_return_type_is_a_type_error_naming_the_schedule(make_repo):
    schedule = rs.Schedule(lambda context: 3, cron_schedule="0 3 * * *", job_name="orders_job", name="numeric")
    with pytest.raises(TypeError, match="schedule 'numeric' returned 3; return a RunRequest"):
        make_repo(schedules=[schedule]).evaluate_schedule("numeric")


def test_typed_config_is_built_from_defaults_and_environment(make_repo, monkeypatch):
    configs = []

    @rs.Schedule(cron_schedule="0 3 * * *", job_name="orders_job")
    def configured(context: rs.ScheduleEvaluationContext[Window]):
        configs.append(context.config)

    repo = make_repo(schedules=[configured])
    repo.evaluate_schedule("configured")
    assert configs == [Window()]
    monkeypatch.setenv("LABEL", "from-env")

    @rs.Schedule(cron_schedule="0 3 * * *", job_name="orders_job")
    def settings(context: rs.ScheduleEvaluationContext[FromEnvironment]):
        configs.append(context.config.label)

    make_repo(schedules=[settings]).evaluate_schedule("settings")
    assert configs[-1] == "from-env"


def test_resources_are_injected_by_name_and_defaults_kept(make_repo):
    calls = []

    @rs.Schedule(cron_schedule="0 3 * * *", job_name="orders_job")
    def with_resources(context: rs.ScheduleEvaluationContext, warehouse: dict, region: str = "eu"):
        calls.append((warehouse, region))

    def no_context(warehouse: dict):
        calls.append(("no context", warehouse))

    repo = make_repo(
        schedules=[with_resources, rs.Schedule(no_context, cron_schedule="0 3 * * *", job_name="orders_job")],
        resources={"warehouse": {"dsn": "duckdb://"}},
    )
    repo.evaluate_schedule("with_resources")
    repo.evaluate_schedule("no_context")
    assert calls == [({"dsn": "duckdb://"}, "eu"), ("no context", {"dsn": "duckdb://"})]


def test_context_log_is_named_after_the_schedule(make_repo, caplog):
    @rs.Schedule(cron_schedule="0 3 * * *", job_name="orders_job")
    def chatty(context: rs.ScheduleEvaluationContext):
        context.log.warning("checking the feed")
        return None

    with caplog.at_level(logging.WARNING, logger="rivers.schedules.chatty"):
        make_repo(schedules=[chatty]).evaluate_schedule("chatty")
    assert [(r.name, r.getMessage()) for r in caplog.records] == [("rivers.schedules.chatty", "checking the feed")]
    context = rs.ScheduleEvaluationContext("2025-01-01T00:00:00+00:00", "direct")
    assert (context.log.name, context.config) == ("rivers.schedules.direct", None)
    assert "schedule_name='direct'" in repr(context)


def test_an_async_function_runs_to_completion(make_repo):
    @rs.Schedule(cron_schedule="0 3 * * *", job_name="orders_job")
    async def awaiting(context: rs.ScheduleEvaluationContext):
        import asyncio

        await asyncio.sleep(0)
        return rs.RunRequest(run_key=context.scheduled_execution_time)

    repo = make_repo(schedules=[awaiting])
    assert repo.evaluate_schedule("awaiting", "t1").run_requests == [rs.RunRequest(run_key="t1")]
    assert repo._evaluate_schedule_tick("awaiting", "t2").run_requests == [rs.RunRequest(run_key="t2")]


# ------------------------------------------------------------------------- daemon entry point


@pytest.mark.parametrize("mode", [rs.EvalMode.Auto, rs.EvalMode.InProcess])
def test_the_daemon_entry_runs_in_process_modes_in_the_calling_thread_with_injection(make_repo, mode):
    @rs.Schedule(cron_schedule="0 3 * * *", job_name="orders_job", eval_mode=mode)
    def local(context: rs.ScheduleEvaluationContext[Window], warehouse: str):
        return rs.RunRequest(
            run_key=context.scheduled_execution_time,
            tags={"thread": str(threading.get_ident()), "pid": str(os.getpid()), "warehouse": warehouse},
        )

    repo = make_repo(schedules=[local], resources={"warehouse": "wh"})
    tick = repo._evaluate_schedule_tick("local", "2025-06-01T03:00:00+00:00")
    (request,) = tick.run_requests
    assert request.run_key == "2025-06-01T03:00:00+00:00"
    assert request.tags == {"thread": str(threading.get_ident()), "pid": str(os.getpid()), "warehouse": "wh"}


def test_the_daemon_entry_runs_subprocess_schedules_in_a_worker_without_config(make_repo):
    repo = make_repo(schedules=[remote.remote_schedule, remote.remote_async_schedule])
    tick = repo._evaluate_schedule_tick("remote_schedule", "2025-06-01T03:00:00+00:00")
    (request,) = tick.run_requests
    assert request.run_key == "2025-06-01T03:00:00+00:00"
    assert request.tags["pid"] != str(os.getpid())
    assert request.tags["config"] == "None"
    # The same function called in this process gets its config.
    local = repo.evaluate_schedule("remote_schedule", "t").run_requests[0]
    assert (local.tags["pid"], local.tags["config"]) == (str(os.getpid()), repr(remote.Threshold()))

    (awaited,) = repo._evaluate_schedule_tick("remote_async_schedule", "t").run_requests
    assert awaited.run_key == "remote_async_schedule"
    assert awaited.tags["pid"] != str(os.getpid()) and awaited.tags["loop"] == "True"


def test_subprocess_mode_without_loky_names_loky(make_repo, monkeypatch):
    monkeypatch.setitem(sys.modules, "loky", None)
    repo = make_repo(schedules=[remote.remote_schedule])
    with pytest.raises(ImportError, match="needs the 'loky' package"):
        repo._evaluate_schedule_tick("remote_schedule", "t")


# -------------------------------------------------------------------------- snapshot and core


def test_the_definitions_snapshot_carries_every_field_the_daemon_needs(make_repo):
    @rs.Schedule(
        cron_schedule="*/15 * * * * *",
        job_name="orders_job",
        timezone="Europe/Berlin",
        default_status=rs.ScheduleStatus.Running,
        tags={"team": "sales", "tier": "1"},
        description="fast",
        eval_mode=rs.EvalMode.Subprocess,
        eval_timeout="1m30s",
    )
    def fast(context):
        return None

    bare = rs.Schedule(cron_schedule="0 3 * * *", job_name="orders_job")
    repo = make_repo(schedules=[fast, bare])
    schedules = json.loads(repo._definitions_snapshot())["schedules"]
    assert schedules == [
        {
            "name": "fast",
            "cron": "*/15 * * * * *",
            "timezone": "Europe/Berlin",
            "job": "orders_job",
            "default_status": "Running",
            "description": "fast",
            "tags": [["team", "sales"], ["tier", "1"]],
            "eval_timeout_secs": 90.0,
            "eval_mode": "Subprocess",
            "has_evaluation_fn": True,
        },
        {
            "name": "orders_job_schedule",
            "cron": "0 3 * * *",
            "timezone": None,
            "job": "orders_job",
            "default_status": "Stopped",
            "description": None,
            "tags": [],
            "eval_timeout_secs": None,
            "eval_mode": "Auto",
            "has_evaluation_fn": False,
        },
    ]


def test_cron_schedule_finds_the_next_tick_in_its_zone():
    cron = _core.CronSchedule("0 9 * * *", "Europe/Berlin")
    assert (cron.expression, cron.timezone) == ("0 9 * * *", "Europe/Berlin")
    after = datetime(2025, 6, 1, 0, 0, tzinfo=timezone.utc)
    tick = cron.next_after(after)
    assert tick == datetime(2025, 6, 1, 7, 0, tzinfo=timezone.utc)
    assert tick.utcoffset() == timedelta(hours=2)
    assert cron.next_after(tick) == datetime(2025, 6, 2, 7, 0, tzinfo=timezone.utc), "strictly after"
    seconds = _core.CronSchedule("*/15 * * * * *")
    assert seconds.timezone is None
    assert seconds.next_after(datetime(2025, 6, 1, 12, 0, 7, tzinfo=timezone.utc)) == datetime(
        2025, 6, 1, 12, 0, 15, tzinfo=timezone.utc
    )
    assert repr(cron) == 'CronSchedule("0 9 * * *", timezone="Europe/Berlin")'


def test_cron_schedule_refuses_bad_input_with_value_errors():
    with pytest.raises(ValueError, match="4 fields"):
        _core.CronSchedule("* * * *")
    with pytest.raises(ValueError, match="unknown timezone"):
        _core.CronSchedule("0 3 * * *", "Mars/Olympus")
    with pytest.raises(ValueError, match="aware datetime"):
        _core.CronSchedule("0 3 * * *").next_after(datetime(2025, 1, 1))


def test_parse_duration_returns_timedeltas():
    assert _core.parse_duration("250ms") == timedelta(milliseconds=250)
    assert _core.parse_duration("1h30m") == timedelta(hours=1, minutes=30)
    with pytest.raises(ValueError, match='"30" is not a duration'):
        _core.parse_duration("30")
