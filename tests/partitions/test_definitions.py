"""PartitionsDefinition: the variant classes, factories, defaults, construction errors,
enumeration order and key validation (partitions-and-backfills.md, R1-R16)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone

import pytest

import rivers as rs
from rivers.exceptions import PartitionDefinitionError

PD = rs.PartitionsDefinition
PK = rs.PartitionKey


def keys(definition: rs.PartitionsDefinition) -> list[str]:
    return [str(k) for k in definition.get_partition_keys()]


def test_factories_return_the_variant_classes_with_their_attributes():
    static = PD.static_(["b", "a"])
    assert isinstance(static, PD.Static) and isinstance(static, PD)
    assert static.keys == ["b", "a"]
    daily = PD.daily(start=datetime(2024, 1, 1))
    assert isinstance(daily, PD.TimeWindow)
    assert (daily.cron_schedule, daily.interval_seconds, daily.fmt) == ("0 0 * * *", None, "%Y-%m-%d")
    assert daily.start == datetime(2024, 1, 1) and daily.end is None
    hourly = PD.hourly(start=datetime(2024, 1, 1), end=datetime(2024, 1, 2))
    assert (hourly.cron_schedule, hourly.fmt, hourly.end) == ("0 * * * *", "%Y-%m-%dT%H:00", datetime(2024, 1, 2))
    window = PD.time_window(start=datetime(2024, 1, 1), interval_seconds=2700)
    assert (window.cron_schedule, window.interval_seconds, window.fmt) == (None, 2700.0, "%Y-%m-%dT%H:%M:%S")
    dynamic = PD.dynamic("tenants")
    assert isinstance(dynamic, PD.Dynamic) and dynamic.name == "tenants"
    multi = PD.multi({"day": daily, "shop": static})
    assert isinstance(multi, PD.Multi)
    assert [name for name, _ in multi.dimensions] == ["day", "shop"]
    assert multi.dimensions[1][1] == static


def test_definitions_compare_by_value():
    assert PD.static_(["a"]) == PD.static_(["a"])
    assert PD.static_(["a"]) != PD.static_(["b"])
    assert PD.daily(start=datetime(2024, 1, 1)) == PD.daily(start=datetime(2024, 1, 1))
    assert PD.daily(start=datetime(2024, 1, 1)) != PD.hourly(start=datetime(2024, 1, 1))
    assert hash(PD.dynamic("x")) == hash(PD.dynamic("x"))


def test_static_order_is_positional():  # R1
    assert PD.static_(["b", "a"]).get_partition_keys() == [PK.single("b"), PK.single("a")]


@pytest.mark.parametrize("bad", [[], [""], ["a|b"], ["a,b"], ["a", "a"]])
def test_static_construction_errors(bad):  # R2
    with pytest.raises(PartitionDefinitionError):
        PD.static_(bad)


def test_daily_end_is_exclusive():  # R3
    assert keys(PD.daily(start=datetime(2024, 1, 1), end=datetime(2024, 1, 5))) == [
        "2024-01-01",
        "2024-01-02",
        "2024-01-03",
        "2024-01-04",
    ]


def test_daily_starts_at_the_first_midnight_at_or_after_start():
    assert keys(PD.daily(start=datetime(2024, 1, 1, 6), end=datetime(2024, 1, 4))) == ["2024-01-02", "2024-01-03"]


def test_hourly_keys_use_the_default_format():  # R4
    hourly = PD.hourly(start=datetime(2024, 1, 1, 7), end=datetime(2024, 1, 1, 9))
    assert keys(hourly) == ["2024-01-01T07:00", "2024-01-01T08:00"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cron_schedule": "0 * * * *", "interval_seconds": 60},
        {},
        {"interval_seconds": 0},
        {"interval_seconds": -5},
        {"interval_seconds": float("inf")},
        {"interval_seconds": float("nan")},
        {"interval_seconds": 1e-12},
    ],
)
def test_time_window_grid_errors(kwargs):  # R5
    with pytest.raises(PartitionDefinitionError):
        PD.time_window(start=datetime(2024, 1, 1), **kwargs)


def test_six_and_five_field_crons():  # R6
    seconds = PD.time_window(start=datetime(2024, 1, 1), cron_schedule="*/30 * * * * *", end=datetime(2024, 1, 1, 0, 2))
    assert keys(seconds) == [
        "2024-01-01T00:00:00",
        "2024-01-01T00:00:30",
        "2024-01-01T00:01:00",
        "2024-01-01T00:01:30",
    ]
    minutes = PD.time_window(start=datetime(2024, 1, 1), cron_schedule="*/30 * * * *", end=datetime(2024, 1, 1, 1))
    assert keys(minutes) == ["2024-01-01T00:00:00", "2024-01-01T00:30:00"]


def test_cron_start_with_a_fraction_of_a_second_is_rejected():  # R7
    with pytest.raises(PartitionDefinitionError, match="whole second"):
        PD.time_window(start=datetime(2024, 1, 1, 0, 0, 0, 5), cron_schedule="* * * * *")


def test_sub_second_interval_grids_need_a_fine_format():  # R7
    fine = PD.time_window(
        start=datetime(2024, 1, 1), interval_seconds=0.25, fmt="%Y-%m-%dT%H:%M:%S.%f", end=datetime(2024, 1, 1, 0, 0, 1)
    )
    assert keys(fine)[1] == "2024-01-01T00:00:00.250000"
    with pytest.raises(PartitionDefinitionError):
        PD.time_window(start=datetime(2024, 1, 1), interval_seconds=0.25)


@pytest.mark.parametrize(
    "build",
    [
        lambda: PD.hourly(start=datetime(2024, 1, 1), fmt="%Y-%m-%d"),
        lambda: PD.daily(start=datetime(2024, 1, 1), fmt="%Y-%m"),
        lambda: PD.time_window(start=datetime(2024, 1, 1), interval_seconds=31 * 86400, fmt="%Y-%m"),
    ],
)
def test_formats_that_fail_the_round_trip_are_rejected(build):  # R8
    with pytest.raises(PartitionDefinitionError):
        build()


def test_coarse_grids_through_cron_recipes():
    weekly = PD.time_window(
        start=datetime(2024, 1, 1), cron_schedule="0 0 * * 1", fmt="%Y-%m-%d", end=datetime(2024, 1, 20)
    )
    assert keys(weekly) == ["2024-01-01", "2024-01-08", "2024-01-15"]
    monthly = PD.time_window(
        start=datetime(2024, 1, 1), cron_schedule="0 0 1 * *", fmt="%Y-%m", end=datetime(2024, 4, 1)
    )
    assert keys(monthly) == ["2024-01", "2024-02", "2024-03"]
    yearly = PD.time_window(start=datetime(2020, 1, 1), cron_schedule="0 0 1 1 *", fmt="%Y", end=datetime(2023, 1, 1))
    assert keys(yearly) == ["2020", "2021", "2022"]
    every_45 = PD.time_window(start=datetime(2024, 1, 1), interval_seconds=2700, end=datetime(2024, 1, 1, 1, 31))
    assert keys(every_45) == ["2024-01-01T00:00:00", "2024-01-01T00:45:00", "2024-01-01T01:30:00"]


def test_formats_rendering_reserved_characters_are_rejected():  # R9
    with pytest.raises(PartitionDefinitionError):
        PD.daily(start=datetime(2024, 1, 1), fmt="%Y,%m,%d")
    with pytest.raises(PartitionDefinitionError):
        PD.daily(start=datetime(2024, 1, 1), fmt="%Y|%m|%d")


def test_end_must_follow_start_and_unparsable_crons_fail():
    with pytest.raises(PartitionDefinitionError):
        PD.daily(start=datetime(2024, 1, 5), end=datetime(2024, 1, 5))
    with pytest.raises(PartitionDefinitionError, match="cron"):
        PD.time_window(start=datetime(2024, 1, 1), cron_schedule="every day")
    with pytest.raises(PartitionDefinitionError):
        PD.dynamic("")


def test_aware_datetimes_keep_their_wall_clock_fields():  # R10, R12
    aware = PD.daily(start=datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=5))), end=datetime(2024, 1, 3))
    assert aware.start == datetime(2024, 1, 1) and aware.start.tzinfo is None
    assert keys(aware) == ["2024-01-01", "2024-01-02"]


def test_enumeration_ignores_the_host_time_zone_and_daylight_saving():  # R10, R11
    script = textwrap.dedent(
        """
        import time
        from datetime import datetime, timedelta
        import rivers as rs
        time.tzset()
        for day in (datetime(2024, 3, 10), datetime(2024, 11, 3), datetime(2024, 3, 31), datetime(2024, 10, 27)):
            hourly = rs.PartitionsDefinition.hourly(start=day, end=day + timedelta(days=1))
            keys = [str(k) for k in hourly.get_partition_keys()]
            assert len(keys) == 24 and len(set(keys)) == 24, keys
            print(keys[2])
        """
    )
    outputs = set()
    for zone in ("UTC", "America/New_York", "Europe/Berlin"):
        env = {**os.environ, "TZ": zone}
        outputs.add(
            subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True).stdout
        )
    assert len(outputs) == 1


def test_open_ended_grids_include_the_current_window_and_nothing_later():  # R13
    now = datetime.now()
    hourly = PD.hourly(start=now.replace(microsecond=0) - timedelta(hours=3))
    listed = keys(hourly)
    current = now.replace(minute=0, second=0, microsecond=0)
    assert listed[-1] == current.strftime("%Y-%m-%dT%H:00")
    assert len(listed) == 3


def test_validate_partition_key():  # R14
    hourly = PD.hourly(start=datetime(2024, 1, 1), end=datetime(2024, 1, 2))
    assert hourly.validate_partition_key(PK.single("2024-01-01T07:00"))
    assert not hourly.validate_partition_key(PK.single("2024-01-01T07:30"))
    assert not hourly.validate_partition_key(PK.single("2023-12-31T23:00"))
    assert not hourly.validate_partition_key(PK.single("2024-01-02T00:00"))
    assert not hourly.validate_partition_key(PK.single("garbage"))
    assert hourly.validate_partition_key(PK.single(["2024-01-01T07:00", "2024-01-01T08:00"]))
    assert not hourly.validate_partition_key(PK.multi({"d": "2024-01-01T07:00"}))
    grid = PD.multi({"d": hourly, "r": PD.static_(["us"])})
    assert grid.validate_partition_key(PK.multi({"d": "2024-01-01T07:00", "r": "us"}))
    assert not grid.validate_partition_key(PK.single("2024-01-01T07:00"))
    assert not grid.validate_partition_key(PK.multi({"d": "2024-01-01T07:00"}))
    assert not grid.validate_partition_key(PK.multi({"d": "2024-01-01T07:00", "r": "eu"}))
    assert PD.dynamic("t").validate_partition_key(PK.single("anything"))
    assert not PD.dynamic("t").validate_partition_key(PK.single("a|b"))


@pytest.mark.parametrize(
    "build",
    [
        lambda: PD.multi({}),
        lambda: PD.multi({"a": PD.multi({"b": PD.static_(["x"])})}),
        lambda: PD.multi({"": PD.static_(["x"])}),
        lambda: PD.multi({"a|b": PD.static_(["x"])}),
        lambda: PD.multi({"a,b": PD.static_(["x"])}),
        lambda: PD.multi({"a=b": PD.static_(["x"])}),
    ],
)
def test_multi_construction_errors(build):  # R15
    with pytest.raises(PartitionDefinitionError):
        build()


def test_multi_enumerates_the_first_dimension_slowest():  # R16
    grid = PD.multi({"size": PD.static_(["s", "m", "l"]), "color": PD.static_(["red", "blue"])})
    listed = grid.get_partition_keys()
    assert len(listed) == 6
    assert listed[:3] == [
        PK.multi({"size": "s", "color": "red"}),
        PK.multi({"size": "s", "color": "blue"}),
        PK.multi({"size": "m", "color": "red"}),
    ]


def test_multi_with_any_number_of_dimensions_and_kinds():
    grid = PD.multi(
        {
            "day": PD.daily(start=datetime(2024, 1, 1), end=datetime(2024, 1, 3)),
            "hour": PD.time_window(
                start=datetime(2024, 1, 1), cron_schedule="0 0,12 * * *", end=datetime(2024, 1, 2), fmt="%Y-%m-%dT%H:%M"
            ),
            "region": PD.static_(["eu", "us"]),
            "tenant": PD.static_(["a"]),
        }
    )
    assert len(grid.get_partition_keys()) == 2 * 2 * 2 * 1


def test_dynamic_definitions_list_no_keys_without_storage():
    assert PD.dynamic("tenants").get_partition_keys() == []
    assert PD.multi({"t": PD.dynamic("tenants"), "r": PD.static_(["x"])}).get_partition_keys() == []


def test_raw_variant_constructors_defer_their_errors():
    raw = PD.Static([])
    assert raw.keys == []
    with pytest.raises(PartitionDefinitionError):
        raw.get_partition_keys()
    fine = PD.TimeWindow(
        start=datetime(2024, 1, 1), cron_schedule="0 0 * * *", end=datetime(2024, 1, 3), fmt="%Y-%m-%d"
    )
    assert keys(fine) == ["2024-01-01", "2024-01-02"]


def test_a_million_minutely_keys():
    minutely = PD.time_window(start=datetime(2024, 1, 1), cron_schedule="* * * * *", end=datetime(2025, 12, 1))
    listed = minutely.get_partition_keys()
    assert len(listed) == int((datetime(2025, 12, 1) - datetime(2024, 1, 1)) / dt.timedelta(minutes=1))
    assert str(listed[1_000_000]) == (datetime(2024, 1, 1) + timedelta(minutes=1_000_000)).strftime("%Y-%m-%dT%H:%M:%S")
    assert minutely.validate_partition_key(listed[-1])
