"""Sensors (automation-and-concurrency.md "Sensor", "SensorEvaluationContext",
"SensorResult", ``CodeRepository`` members; R6-R8, R11-R16, R18-R20, the cursor-sensor
example): declaration forms and defaults, definition-time and validation errors,
``evaluate_sensor``, the daemon entry point in every ``eval_mode`` and the snapshot."""

from __future__ import annotations

import json
import logging
import os
import pickle
import threading

import auto_eval_functions as remote
import pytest
from pydantic import BaseModel

import rivers as rs
from rivers.exceptions import AssetNotFoundError, ConfigurationError, SensorDefinitionError


class Limits(BaseModel):
    batch: int = 10


class InboxClient:
    """A resource: files numbered by sequence."""

    def __init__(self, files: list[tuple[int, str]]) -> None:
        self.files = files

    def files_after(self, seen: int) -> list[tuple[int, str]]:
        return [f for f in self.files if f[0] > seen]


@rs.Sensor(job_name="orders_job", minimum_interval="45s")
def drop_folder(context: rs.SensorEvaluationContext, inbox: InboxClient):
    seen = int(context.cursor or 0)
    fresh = inbox.files_after(seen)
    if not fresh:
        return rs.SkipReason("nothing new")
    return rs.SensorResult(
        run_requests=[rs.RunRequest(run_key=name, partition_key=None) for _, name in fresh],
        cursor=str(fresh[-1][0]),
    )


# ------------------------------------------------------------------------------ declaration


def test_decorator_form_names_the_sensor_after_the_function_with_spec_defaults():
    @rs.Sensor()
    def watcher(context):
        return None

    assert watcher.name == "watcher"
    assert watcher.evaluation_fn.__name__ == "watcher"
    assert (watcher.job_name, watcher.minimum_interval, watcher.description) == (None, None, None)
    assert (watcher.tags, watcher.asset_selection, watcher.eval_timeout) == (None, None, None)
    assert watcher.default_status is rs.SensorStatus.Stopped
    assert watcher.eval_mode is rs.EvalMode.Auto
    assert repr(watcher).startswith("Sensor(name='watcher', job_name=None")


def test_positional_keyword_and_named_forms():
    def poll(context):
        return None

    assert rs.Sensor(poll).name == "poll"
    assert rs.Sensor(evaluation_fn=poll).name == "poll"
    assert rs.Sensor(poll, name="custom").name == "custom"
    assert rs.Sensor(name="no_function").evaluation_fn is None

    @rs.Sensor(name="renamed", job_name="orders_job")
    def original(context):
        return None

    assert (original.name, original.job_name) == ("renamed", "orders_job")


def test_every_parameter_is_kept_as_given():
    sensor = rs.Sensor(
        lambda context: None,
        name="all",
        job_name="orders_job",
        minimum_interval="250ms",
        default_status=rs.SensorStatus.Running,
        description="all of them",
        tags={"team": "ops"},
        asset_selection=["orders"],
        eval_mode=rs.EvalMode.InProcess,
        eval_timeout="5s",
    )
    assert (sensor.minimum_interval, sensor.default_status) == ("250ms", rs.SensorStatus.Running)
    assert (sensor.description, sensor.tags, sensor.asset_selection) == ("all of them", {"team": "ops"}, ["orders"])
    assert (sensor.eval_mode, sensor.eval_timeout) == (rs.EvalMode.InProcess, "5s")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"minimum_interval": "often"}, 'minimum_interval "often" is not a duration'),
        ({"eval_timeout": "30"}, 'eval_timeout "30" is not a duration'),
        ({"minimum_interval": 30}, "minimum_interval must be a duration string"),
        ({"default_status": rs.ScheduleStatus.Running}, "default_status must be SensorStatus"),
        ({"eval_mode": "Subprocess"}, "eval_mode"),
        ({"asset_selection": "orders"}, "asset_selection must be a list of asset names"),
        ({"job_name": ""}, "job_name must be a non-empty str"),
        ({"name": ""}, "name must be a non-empty str"),
        ({"tags": ["a"]}, "tags"),
    ],
)
def test_definition_errors_are_sensor_definition_errors(kwargs, message):
    with pytest.raises(SensorDefinitionError, match=message):
        rs.Sensor(lambda context: None, **{"name": "s", **kwargs})


def test_the_evaluation_function_must_be_callable():
    with pytest.raises(SensorDefinitionError, match="must be callable"):
        rs.Sensor(evaluation_fn=object(), name="s")


def test_the_context_must_be_the_sensor_context():
    def wrong(context: rs.ScheduleEvaluationContext):
        return None

    with pytest.raises(SensorDefinitionError, match="annotated ScheduleEvaluationContext; annotate it Sensor"):
        rs.Sensor(wrong)


# ----------------------------------------------------------------------------- registration


def test_a_sensor_with_neither_name_nor_function_is_refused_at_registration(make_repo):
    with pytest.raises(SensorDefinitionError, match="neither a name nor an evaluation function"):
        make_repo(sensors=[rs.Sensor(job_name="orders_job")])


def test_registering_something_else_is_a_type_error_naming_it(make_repo):
    with pytest.raises(TypeError, match=r"sensors=\.\.\.\) accepts rs\.Sensor objects, got <function"):
        make_repo(sensors=[lambda context: None])


def test_repository_lists_and_finds_sensors(make_repo):
    repo = make_repo(sensors=[drop_folder], resources={"inbox": InboxClient([])})
    assert repo.sensors == [drop_folder]
    assert repo.get_sensor("drop_folder") is drop_folder
    with pytest.raises(ValueError, match=r"no sensor named 'other' is registered; registered sensors: \[drop_folder\]"):
        repo.get_sensor("other")
    with pytest.raises(ValueError, match="no sensor named 'other'"):
        repo.evaluate_sensor("other")


def test_duplicate_names_fail_validation(make_repo):
    repo = make_repo(sensors=[rs.Sensor(name="twin"), rs.Sensor(lambda context: None, name="twin")])
    with pytest.raises(SensorDefinitionError, match="two sensors are named 'twin'"):
        repo.validate()


def test_an_unknown_asset_in_the_selection_fails_validation_and_resolve(make_repo):
    repo = make_repo(sensors=[rs.Sensor(name="watch", asset_selection=["orders", "invoices"])])
    with pytest.raises(AssetNotFoundError, match=r"sensor 'watch' selects 'invoices', which is not a registered asset"):
        repo.validate()
    with pytest.raises(AssetNotFoundError, match="invoices"):
        repo.resolve(storage=rs.Storage.memory())
    make_repo(sensors=[rs.Sensor(name="watch", asset_selection=["orders", "refunds"])]).validate()


def test_a_parameter_that_matches_no_resource_fails_validation(make_repo):
    with pytest.raises(
        ConfigurationError, match="parameter 'inbox' of the evaluation function of sensor 'drop_folder'"
    ):
        make_repo(sensors=[drop_folder]).resolve(storage=rs.Storage.memory())


# ------------------------------------------------------------------------------- evaluation


def test_the_cursor_sensor_example(make_repo):
    inbox = InboxClient([(16, "a.csv"), (17, "b.csv"), (18, "c.csv"), (19, "d.csv")])
    repo = make_repo(sensors=[drop_folder], resources={"inbox": inbox})
    sensed = repo.evaluate_sensor("drop_folder", cursor="17")
    assert isinstance(sensed, rs.SensorTickResult)
    assert sensed.sensor_name == "drop_folder"
    assert [r.run_key for r in sensed.run_requests] == ["c.csv", "d.csv"]
    assert (sensed.skip_reason, sensed.cursor) == (None, "19")
    idle = repo.evaluate_sensor("drop_folder", cursor="19")
    assert (idle.run_requests, idle.skip_reason, idle.cursor) == ([], rs.SkipReason("nothing new"), None)


def test_cursor_and_last_tick_time_reach_the_context_verbatim(make_repo):
    seen = []

    @rs.Sensor(job_name="orders_job")
    def observer(context: rs.SensorEvaluationContext):
        seen.append((context.sensor_name, context.cursor, context.last_tick_time, context.config))

    repo = make_repo(sensors=[observer])
    repo.evaluate_sensor("observer")
    repo.evaluate_sensor("observer", cursor="c-1", last_tick_time=1748746800.25)
    assert seen == [("observer", None, None, None), ("observer", "c-1", 1748746800.25, None)]


def test_the_cursor_of_the_tick_is_the_one_the_result_set(make_repo):
    def plain(context):
        return rs.RunRequest()

    def sets(context):
        return rs.SensorResult(cursor="next")

    repo = make_repo(sensors=[rs.Sensor(plain), rs.Sensor(sets)])
    assert repo.evaluate_sensor("plain", cursor="old").cursor is None
    assert repo.evaluate_sensor("sets", cursor="old").cursor == "next"


def test_a_function_less_sensor_requests_one_run_per_tick(make_repo):
    repo = make_repo(sensors=[rs.Sensor(name="always", job_name="orders_job")])
    assert repo.evaluate_sensor("always") == rs.SensorTickResult("always", [rs.RunRequest()], None, None)


def test_evaluation_persists_nothing(make_repo):
    repo = make_repo(sensors=[rs.Sensor(lambda context: rs.SensorResult([rs.RunRequest()], cursor="1"), name="s")])
    repo.resolve(storage=rs.Storage.memory())
    assert repo.evaluate_sensor("s").cursor == "1"
    assert repo.storage.get_runs() == []
    assert repo.storage.get_ticks("s") == []


def test_user_exceptions_propagate_unchanged(make_repo):
    repo = make_repo(sensors=[remote.remote_failing_sensor])
    with pytest.raises(remote.InboxError, match="inbox unreachable"):
        repo.evaluate_sensor("remote_failing_sensor")


def test_typed_config_and_log_name(make_repo, caplog):
    configs = []

    @rs.Sensor()
    def limited(context: rs.SensorEvaluationContext[Limits]):
        configs.append(context.config)
        context.log.info("polling")

    with caplog.at_level(logging.INFO, logger="rivers.sensors.limited"):
        make_repo(sensors=[limited]).evaluate_sensor("limited")
    assert configs == [Limits()]
    assert [(r.name, r.getMessage()) for r in caplog.records] == [("rivers.sensors.limited", "polling")]
    context = rs.SensorEvaluationContext("direct", cursor="5", last_tick_time=1.5)
    assert (context.log.name, context.cursor, context.last_tick_time, context.config) == (
        "rivers.sensors.direct",
        "5",
        1.5,
        None,
    )


def test_an_async_sensor_runs_to_completion(make_repo):
    @rs.Sensor()
    async def awaiting(context: rs.SensorEvaluationContext):
        import asyncio

        await asyncio.sleep(0)
        return rs.SensorResult(cursor=f"{context.cursor}+1")

    repo = make_repo(sensors=[awaiting])
    assert repo.evaluate_sensor("awaiting", cursor="1").cursor == "1+1"
    assert repo._evaluate_sensor_tick("awaiting", "2", None).cursor == "2+1"


# ------------------------------------------------------------------------- daemon entry point


@pytest.mark.parametrize("mode", [rs.EvalMode.Auto, rs.EvalMode.InProcess])
def test_the_daemon_entry_runs_in_process_modes_in_the_calling_thread(make_repo, mode):
    @rs.Sensor(eval_mode=mode)
    def local(context: rs.SensorEvaluationContext[Limits], inbox: InboxClient):
        return rs.SensorResult(
            [rs.RunRequest(tags={"thread": str(threading.get_ident()), "batch": str(context.config.batch)})],
            cursor=f"{context.cursor}@{context.last_tick_time}",
        )

    repo = make_repo(sensors=[local], resources={"inbox": InboxClient([])})
    tick = repo._evaluate_sensor_tick("local", "c", 12.5)
    assert tick.run_requests[0].tags == {"thread": str(threading.get_ident()), "batch": "10"}
    assert tick.cursor == "c@12.5"


def test_the_daemon_entry_runs_subprocess_sensors_in_a_worker_without_resources_or_config(make_repo):
    repo = make_repo(
        sensors=[remote.remote_sensor, remote.remote_async_sensor, remote.remote_failing_sensor],
        resources={"inbox": "registered"},
    )
    tick = repo._evaluate_sensor_tick("remote_sensor", "4", 100.0)
    (request,) = tick.run_requests
    assert request.run_key == "5" and tick.cursor == "5"
    assert request.tags["pid"] != str(os.getpid())
    assert (request.tags["config"], request.tags["inbox"]) == ("None", "unset")
    # In this process the same sensor receives its resource and config.
    local = repo.evaluate_sensor("remote_sensor", cursor="4").run_requests[0]
    assert (local.tags["inbox"], local.tags["config"]) == ("registered", repr(remote.Threshold()))

    skipped = repo._evaluate_sensor_tick("remote_async_sensor", None, 7.0)
    assert skipped.run_requests == []
    assert skipped.skip_reason.message.endswith("last 7.0")
    assert skipped.skip_reason.message != f"pid {os.getpid()} last 7.0"

    with pytest.raises(remote.InboxError, match="inbox unreachable"):
        repo._evaluate_sensor_tick("remote_failing_sensor", None, None)


def test_subprocess_backfill_requests_come_back_with_their_keys_ranges_and_strategies(make_repo):
    repo = make_repo(sensors=[remote.remote_backfill_sensor])
    (request,) = repo._evaluate_sensor_tick("remote_backfill_sensor", None, None).run_requests
    assert request == rs.BackfillRequest(
        ["orders"],
        partition_keys=[rs.PartitionKey.single("2025-01-01")],
        failure_policy="stop_on_failure",
        tags={"a": "b"},
    )
    (ranged,) = repo._evaluate_sensor_tick("remote_backfill_sensor", "range", None).run_requests
    assert ranged == rs.BackfillRequest(
        ["orders"],
        partition_range=rs.PartitionKeyRange.single("2025-01-01", "2025-01-02"),
        strategy=rs.BackfillStrategy.single_run(),
    )


@pytest.mark.parametrize(
    "value",
    [
        rs.BackfillStrategy.multi_run(),
        rs.BackfillStrategy.single_run(),
        rs.BackfillStrategy.per_dimension(["region"], ["date"]),
        rs.PartitionKeyRange.single("a", "c"),
        rs.PartitionKeyRange.multi({"date": ("2025-01-01", "2025-01-05"), "region": ["eu", "us"]}),
    ],
)
def test_strategies_and_key_ranges_pickle_to_equal_values(value):
    assert pickle.loads(pickle.dumps(value)) == value
    assert type(pickle.loads(pickle.dumps(value))) is type(value)


# ---------------------------------------------------------------------------------- snapshot


def test_the_definitions_snapshot_carries_every_field_the_daemon_needs(make_repo):
    full = rs.Sensor(
        lambda context: None,
        name="full",
        job_name="orders_job",
        minimum_interval="1m30s",
        default_status=rs.SensorStatus.Running,
        description="watch orders",
        tags={"team": "ops"},
        asset_selection=["orders"],
        eval_mode=rs.EvalMode.InProcess,
        eval_timeout="250ms",
    )
    repo = make_repo(sensors=[full, rs.Sensor(name="bare")])
    sensors = json.loads(repo._definitions_snapshot())["sensors"]
    assert sensors == [
        {
            "name": "full",
            "job": "orders_job",
            "asset_selection": ["orders"],
            "minimum_interval_secs": 90.0,
            "default_status": "Running",
            "description": "watch orders",
            "tags": [["team", "ops"]],
            "eval_timeout_secs": 0.25,
            "eval_mode": "InProcess",
            "has_evaluation_fn": True,
        },
        {
            "name": "bare",
            "job": None,
            "asset_selection": [],
            "minimum_interval_secs": 30.0,
            "default_status": "Stopped",
            "description": None,
            "tags": [],
            "eval_timeout_secs": None,
            "eval_mode": "Auto",
            "has_evaluation_fn": False,
        },
    ]
    repo.resolve(storage=rs.Storage.memory())  # the stored snapshot converts the same sensors
