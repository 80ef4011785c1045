"""The value objects of automation-and-concurrency.md: ``RunRequest``, ``BackfillRequest``,
``SkipReason``, ``SensorResult``, ``EvalMode``, the status enums, the tick results, and the
normalisation of evaluation return values (R9, R13-R17)."""

from __future__ import annotations

import pytest

import rivers as rs
import rivers.automation

AUTOMATION_NAMES = [
    "BackfillRequest",
    "EvalMode",
    "RunRequest",
    "Schedule",
    "ScheduleEvaluationContext",
    "ScheduleStatus",
    "ScheduleTickResult",
    "Sensor",
    "SensorEvaluationContext",
    "SensorResult",
    "SensorStatus",
    "SensorTickResult",
    "SkipReason",
]


def test_every_automation_name_is_exported_from_rivers_and_the_automation_module():
    for name in AUTOMATION_NAMES:
        assert name in rs.__all__
        assert getattr(rivers.automation, name) is getattr(rs, name)
    assert rivers.automation.__all__ == AUTOMATION_NAMES
    assert rivers.automation.EvalMode is rs.EvalMode


def test_eval_mode_members_are_the_spec_integers():
    assert (rs.EvalMode.Auto, rs.EvalMode.InProcess, rs.EvalMode.Subprocess) == (0, 1, 2)
    assert [m.name for m in rs.EvalMode] == ["Auto", "InProcess", "Subprocess"]


def test_status_members_equal_only_themselves():
    assert [m.name for m in rs.ScheduleStatus] == ["Running", "Stopped"]
    assert [m.name for m in rs.SensorStatus] == ["Running", "Stopped"]
    assert rs.ScheduleStatus.Running == rs.ScheduleStatus.Running
    assert rs.ScheduleStatus.Running != rs.ScheduleStatus.Stopped
    assert rs.ScheduleStatus.Running != rs.SensorStatus.Running
    assert rs.SensorStatus.Stopped != "Stopped"


# ---------------------------------------------------------------------------------- RunRequest


def test_run_request_defaults_are_all_none():
    request = rs.RunRequest()
    assert (request.run_key, request.tags, request.partition_key, request.job_name) == (None, None, None, None)
    assert repr(request) == "RunRequest(run_key=None, tags=None, partition_key=None, job_name=None)"


def test_run_request_keeps_what_it_was_given_in_order():
    request = rs.RunRequest("k1", {"team": "a"}, "2025-01-01", "other_job")
    assert request.run_key == "k1"
    assert request.tags == {"team": "a"}
    assert request.partition_key == "2025-01-01"
    assert request.job_name == "other_job"
    assert request == rs.RunRequest(run_key="k1", tags={"team": "a"}, partition_key="2025-01-01", job_name="other_job")


def test_a_partition_key_object_becomes_its_canonical_string():
    assert rs.RunRequest(partition_key=rs.PartitionKey.single("2025-03-01")).partition_key == "2025-03-01"
    multi = rs.PartitionKey.multi({"date": "2025-03-01", "region": "eu"})
    assert rs.RunRequest(partition_key=multi).partition_key == str(multi)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"run_key": 7}, "run_key"),
        ({"job_name": ["j"]}, "job_name"),
        ({"partition_key": 20250101}, "partition_key"),
        ({"tags": {"a": 1}}, "tags"),
        ({"tags": [("a", "b")]}, "tags"),
    ],
)
def test_run_request_refuses_wrong_types_naming_the_field(kwargs, named):
    with pytest.raises(TypeError, match=named):
        rs.RunRequest(**kwargs)


# ----------------------------------------------------------------------------- BackfillRequest


def test_backfill_request_defaults():
    request = rs.BackfillRequest(selection=["orders"])
    assert request.selection == ["orders"]
    assert request.max_concurrency == 4
    assert (request.partition_keys, request.partition_range, request.strategy) == (None, None, None)
    assert (request.failure_policy, request.tags) == (None, None)
    assert repr(request).startswith("BackfillRequest(selection=['orders'], partition_keys=None")


def test_backfill_request_keeps_partition_objects_strategy_and_policy():
    keys = [rs.PartitionKey.single("2025-01-01"), rs.PartitionKey.single("2025-01-02")]
    request = rs.BackfillRequest(
        ["orders", "refunds"],
        partition_keys=keys,
        strategy=rs.BackfillStrategy.single_run(),
        failure_policy="stop_on_failure",
        max_concurrency=2,
        tags={"origin": "repair"},
    )
    assert request.partition_keys == keys
    assert request.strategy == rs.BackfillStrategy.single_run()
    assert (request.failure_policy, request.max_concurrency, request.tags) == (
        "stop_on_failure",
        2,
        {"origin": "repair"},
    )
    ranged = rs.BackfillRequest(["orders"], partition_range=rs.PartitionKeyRange.single("2025-01-01", "2025-01-07"))
    assert ranged.partition_range == rs.PartitionKeyRange.single("2025-01-01", "2025-01-07")


def test_backfill_request_refuses_keys_and_range_together():
    with pytest.raises(ValueError, match="partition_keys= or partition_range=, not both"):
        rs.BackfillRequest(
            ["orders"],
            partition_keys=[rs.PartitionKey.single("2025-01-01")],
            partition_range=rs.PartitionKeyRange.single("2025-01-01", "2025-01-02"),
        )


def test_backfill_request_refuses_an_unknown_failure_policy_listing_the_valid_ones():
    with pytest.raises(ValueError, match=r"'continue', 'stop_on_failure'"):
        rs.BackfillRequest(["orders"], failure_policy="retry_forever")


@pytest.mark.parametrize("concurrency", [0, -1, 1.5, True])
def test_backfill_request_refuses_a_concurrency_below_one(concurrency):
    with pytest.raises(ValueError, match="max_concurrency"):
        rs.BackfillRequest(["orders"], max_concurrency=concurrency)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"selection": "orders"}, "selection"),
        ({"selection": ["orders"], "partition_keys": [1]}, "partition_keys"),
        ({"selection": ["orders"], "partition_range": ("a", "b")}, "partition_range"),
        ({"selection": ["orders"], "strategy": "single_run"}, "strategy"),
    ],
)
def test_backfill_request_refuses_wrong_types_naming_the_field(kwargs, named):
    with pytest.raises(TypeError, match=named):
        rs.BackfillRequest(**kwargs)


# ------------------------------------------------------------------------ SkipReason, SensorResult


def test_skip_reason_message_defaults_to_empty():
    assert rs.SkipReason().message == ""
    assert rs.SkipReason("nothing new").message == "nothing new"
    assert repr(rs.SkipReason("x")) == "SkipReason(message='x')"


def test_sensor_result_wraps_a_string_skip_reason():
    result = rs.SensorResult(skip_reason="x")
    assert isinstance(result.skip_reason, rs.SkipReason)
    assert result.skip_reason.message == "x"
    assert (result.run_requests, result.cursor) == (None, None)


def test_sensor_result_carries_requests_skip_reason_and_cursor_together():
    mixed = [rs.RunRequest(run_key="a"), rs.BackfillRequest(["orders"]), rs.RunRequest(run_key="b")]
    result = rs.SensorResult(run_requests=tuple(mixed), skip_reason=rs.SkipReason("some skipped"), cursor="42")
    assert result.run_requests == mixed
    assert result.skip_reason == rs.SkipReason("some skipped")
    assert result.cursor == "42"
    assert "cursor='42'" in repr(result)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"run_requests": [rs.SkipReason()]}, "run_requests"),
        ({"run_requests": rs.RunRequest()}, "run_requests"),
        ({"skip_reason": 3}, "skip_reason"),
        ({"cursor": 17}, "cursor"),
    ],
)
def test_sensor_result_refuses_wrong_types_naming_the_field(kwargs, named):
    with pytest.raises(TypeError, match=named):
        rs.SensorResult(**kwargs)


def test_tick_results_are_plain_values():
    tick = rs.ScheduleTickResult("nightly")
    assert (tick.schedule_name, tick.run_requests, tick.skip_reason) == ("nightly", [], None)
    sensed = rs.SensorTickResult("inbox", [rs.RunRequest()], rs.SkipReason("x"), "9")
    assert "cursor='9'" in repr(sensed) and "SensorTickResult(sensor_name='inbox'" in repr(sensed)


# ------------------------------------------------------------------------------- normalisation


def _returning(value):
    def sensor(context: rs.SensorEvaluationContext):
        return value

    return rs.Sensor(sensor, name="returns")


def _evaluate(make_repo, value) -> rs.SensorTickResult:
    return make_repo(sensors=[_returning(value)]).evaluate_sensor("returns")


def test_a_single_request_becomes_a_one_element_list(make_repo):
    tick = _evaluate(make_repo, rs.RunRequest(run_key="only"))
    assert tick.run_requests == [rs.RunRequest(run_key="only")]
    assert (tick.skip_reason, tick.cursor) == (None, None)
    backfill = rs.BackfillRequest(["orders"])
    assert _evaluate(make_repo, backfill).run_requests == [backfill]


@pytest.mark.parametrize("container", [list, tuple, iter])
def test_an_iterable_keeps_its_order(make_repo, container):
    requests = [rs.RunRequest(run_key=k) for k in "cab"] + [rs.BackfillRequest(["orders"])]
    tick = _evaluate(make_repo, container(requests))
    assert tick.run_requests == requests
    assert tick.skip_reason is None


def test_a_generator_is_consumed(make_repo):
    def sensor(context: rs.SensorEvaluationContext):
        for key in ("1", "2"):
            yield rs.RunRequest(run_key=key)

    tick = make_repo(sensors=[rs.Sensor(sensor)]).evaluate_sensor("sensor")
    assert [r.run_key for r in tick.run_requests] == ["1", "2"]


def test_a_skip_reason_gives_no_requests(make_repo):
    tick = _evaluate(make_repo, rs.SkipReason("m"))
    assert tick.run_requests == []
    assert tick.skip_reason.message == "m"


@pytest.mark.parametrize("value", [None, [], ()])
def test_none_or_an_empty_iterable_is_a_silent_skip(make_repo, value):
    tick = _evaluate(make_repo, value)
    assert (tick.run_requests, tick.skip_reason, tick.cursor) == ([], None, None)


def test_a_skip_reason_inside_an_iterable_counts_only_without_requests(make_repo):
    alone = _evaluate(make_repo, [rs.SkipReason("quiet")])
    assert (alone.run_requests, alone.skip_reason) == ([], rs.SkipReason("quiet"))
    mixed = _evaluate(make_repo, [rs.SkipReason("quiet"), rs.RunRequest(run_key="a")])
    assert (mixed.run_requests, mixed.skip_reason) == ([rs.RunRequest(run_key="a")], None)


def test_a_sensor_result_sets_requests_skip_reason_and_cursor(make_repo):
    tick = _evaluate(make_repo, rs.SensorResult(run_requests=[rs.RunRequest()], skip_reason="x", cursor="c2"))
    assert tick.run_requests == [rs.RunRequest()]
    assert tick.skip_reason == rs.SkipReason("x")
    assert tick.cursor == "c2"
    empty = _evaluate(make_repo, rs.SensorResult(skip_reason="nothing"))
    assert (empty.run_requests, empty.skip_reason.message, empty.cursor) == ([], "nothing", None)


@pytest.mark.parametrize("value", [42, "RunRequest", {"run_key": "a"}, [rs.RunRequest(), 3], [None]])
def test_any_other_return_value_is_a_type_error_naming_the_sensor(make_repo, value):
    with pytest.raises(TypeError, match="sensor 'returns' returned"):
        _evaluate(make_repo, value)
