"""PartitionKey, PartitionKeyRange, PartitionMapping and PartitionContext values
(partitions-and-backfills.md, R17, R18, R33-R36)."""

from __future__ import annotations

from datetime import datetime

import pytest

import rivers as rs

PK = rs.PartitionKey
PKR = rs.PartitionKeyRange
PM = rs.PartitionMapping
PD = rs.PartitionsDefinition


def test_factories_return_variants_and_normalize_strings():
    single = PK.single("2024-03-02")
    assert isinstance(single, PK.Single) and isinstance(single, PK)
    assert single.key == ["2024-03-02"]
    multi = PK.multi({"day": "2024-03-02", "shop": ["north", "south"]})
    assert isinstance(multi, PK.Multi)
    assert multi.keys == {"day": ["2024-03-02"], "shop": ["north", "south"]}


def test_value_equality_and_hashing():  # R17
    assert PK.single("x") == PK.single(["x"])
    assert hash(PK.single("x")) == hash(PK.single(["x"]))
    assert PK.multi({"a": "1", "b": "2"}) == PK.multi({"b": "2", "a": "1"})
    assert hash(PK.multi({"a": "1", "b": "2"})) == hash(PK.multi({"b": "2", "a": "1"}))
    assert PK.single(["a", "b"]) != PK.single(["b", "a"])
    assert PK.single("x") != "x"
    assert PK.single("x") != PK.multi({"x": "x"})
    assert len({PK.single("x"), PK.single(["x"]), PK.single("y")}) == 2


@pytest.mark.parametrize(
    "key",
    [PK.single("x"), PK.single(["2024-01-01", "2024-01-02"]), PK.multi({"d": ["1", "2"], "r": "us"})],
)
def test_json_round_trip(key):  # R18
    text = key.to_json()
    assert text.startswith("{")
    assert PK.from_json(text) == key


def test_from_json_rejects_malformed_input():
    for bad in ["", "[]", "{", '{"single": []}', '{"other": 1}']:
        with pytest.raises(ValueError):
            PK.from_json(bad)


def test_display_form_and_repr():
    assert str(PK.single("2024-03-02")) == "2024-03-02"
    assert str(PK.single(["a", "b"])) == "a,b"
    assert str(PK.multi({"shop": ["north", "south"], "day": "2024-03-02"})) == "day=2024-03-02|shop=north,south"
    assert repr(PK.single("a")) == repr(PK.single(["a"]))
    assert "Multi" in repr(PK.multi({"a": "1"}))


def test_empty_keys_are_rejected():
    for build in (lambda: PK.single([]), lambda: PK.multi({}), lambda: PK.multi({"a": []})):
        with pytest.raises(ValueError):
            build()


def test_key_ranges_compare_without_regard_to_order():
    assert PKR.single("a", "b") == PKR.single("a", "b")
    assert PKR.single("a", "b") != PKR.single("a", "c")
    left = PKR.multi({"d": ("1", "3"), "r": ["us", "eu"]})
    right = PKR.multi({"r": ["eu", "us"], "d": ("1", "3")})
    assert left == right and hash(left) == hash(right)
    assert repr(left) == repr(right)


def test_mapping_factories_return_variants_with_attributes():
    assert isinstance(PM.identity(), PM.Identity)
    assert isinstance(PM.all_partitions(), PM.AllPartitions)
    assert PM.static_({"a": "1"}).mapping == {"a": "1"}
    assert PM.time_window(offset=-1).offset == -1
    multi = PM.multi({"day": PM.time_window(-1), "shop": ("store", PM.identity())})
    assert multi.dimension_mappings == {"day": ("day", PM.time_window(-1)), "shop": ("store", PM.identity())}
    to_single = PM.multi_to_single("day")
    assert to_single.dimension_name == "day" and to_single.partition_mapping == PM.identity()
    assert PM.specific_partitions(["p", "q"]).partition_keys == ["p", "q"]
    selectors = PM.for_keys([PK.single("a"), PKR.single("b", "c")]).selectors
    assert selectors == [PK.single("a"), PKR.single("b", "c")]
    assert isinstance(PM.subset(), PM.Subset)
    assert PM.time_window(0) != PM.time_window(1)


def test_partition_context_keys_and_windows():  # R36
    days = PD.daily(start=datetime(2024, 1, 1))
    with pytest.raises(ValueError):
        rs.PartitionContext([], days)
    k1, k2 = PK.single("2024-01-02"), PK.single("2024-01-05")
    context = rs.PartitionContext([k1, k2], days)
    assert context.key == k1 and context.keys == [k1, k2] and context.definition == days
    assert context.time_window() == (datetime(2024, 1, 2), datetime(2024, 1, 3))
    several = rs.PartitionContext([PK.single(["2024-01-03", "2024-01-02"])], days)
    assert several.time_window() == (datetime(2024, 1, 2), datetime(2024, 1, 4))
    static = rs.PartitionContext([PK.single("a")], PD.static_(["a"]))
    assert static.time_window() is None
    grid = PD.multi({"d": days, "r": PD.static_(["us"])})
    assert rs.PartitionContext([PK.multi({"d": "2024-01-02", "r": "us"})], grid).time_window() is None
    per_dim = rs.PartitionContext([PK.single("2024-01-02")], grid.dimensions[0][1])
    assert per_dim.time_window() == (datetime(2024, 1, 2), datetime(2024, 1, 3))
