"""automation-and-concurrency.md, `AutomationCondition`: factories, operators, structural methods,
description rendering, errors (R2-R4, R59-R61), and the condition's way into the definitions."""

from __future__ import annotations

import json
import math

import pytest

import rivers as rs
from rivers.exceptions import AssetDefinitionError, AssetNotFoundError

AC = rs.AutomationCondition

LEAVES = {
    "missing": AC.missing(),
    "in_progress": AC.in_progress(),
    "execution_failed": AC.execution_failed(),
    "newly_updated": AC.newly_updated(),
    "newly_requested": AC.newly_requested(),
    "code_version_changed": AC.code_version_changed(),
    "data_version_changed": AC.data_version_changed(),
    "initial_evaluation": AC.initial_evaluation(),
    "backfill_in_progress": AC.backfill_in_progress(),
    "will_be_requested": AC.will_be_requested(),
    "last_run_includes_target": AC.last_run_includes_target(),
    "in_latest_time_window": AC.in_latest_time_window(),
    "last_executed_with_tags": AC.last_executed_with_tags(),
    "has_run_with_tags": AC.has_run_with_tags(),
    "all_runs_have_tags": AC.all_runs_have_tags(),
}


@pytest.mark.parametrize("name", list(LEAVES))
def test_leaves_render_as_their_factory_name_and_have_no_children(name):
    leaf = LEAVES[name]
    assert isinstance(leaf, rs.AutomationCondition)
    assert leaf.description == name
    assert leaf.label is None
    assert leaf.children == []


def test_parameterised_leaves_render_their_arguments():
    assert AC.cron_tick_passed("0 * * * *").description == "cron_tick_passed('0 * * * *')"
    berlin = AC.cron_tick_passed("0 3 * * *", timezone="Europe/Berlin")
    assert berlin.description == "cron_tick_passed('0 3 * * *', 'Europe/Berlin')"
    assert (
        AC.in_latest_time_window(lookback_delta=6 * 3600).description == "in_latest_time_window(lookback_delta=21600)"
    )
    dry = AC.last_executed_with_tags(tag_keys=["owner"], tag_values=[("mode", "dry")])
    assert dry.description == "last_executed_with_tags(tag_keys=['owner'], tag_values=[('mode', 'dry')])"
    assert AC.has_run_with_tags(tag_keys=["k"]).description == "has_run_with_tags(tag_keys=['k'])"


def test_tag_filters_are_keyword_only():
    with pytest.raises(TypeError):
        AC.last_executed_with_tags(["owner"])  # type: ignore[misc]


@pytest.mark.parametrize(
    ("factory", "label", "operands"),
    [(AC.eager, "eager", 5), (lambda: AC.on_cron("0 * * * *"), "on_cron", 3), (AC.on_missing, "on_missing", 2)],
)
def test_presets_are_labelled_ands_of_their_top_level_operands(factory, label, operands):
    preset = factory()
    assert preset.label == label
    assert preset.description == label
    assert len(preset.children) == operands


def test_eager_expands_exactly_as_specified():
    expected = (
        (AC.missing().newly_true() | AC.any_deps_updated()).since_last_handled()
        & ~AC.any_deps_missing()
        & ~AC.any_deps_in_progress()
        & ~AC.in_flight()
        & ~AC.execution_failed()
    )
    assert AC.eager().children == expected.children
    assert AC.eager() == expected.with_label("eager")
    assert [c.description for c in AC.eager().children] == [
        "(missing.newly_true() | any_deps_updated).since_last_handled()",
        "~any_deps_missing",
        "~any_deps_in_progress",
        "~in_flight",
        "~execution_failed",
    ]


def test_on_cron_and_on_missing_expand_exactly_as_specified():
    cron = AC.cron_tick_passed("0 * * * *", "Europe/Berlin")
    on_cron = (
        cron.since((AC.newly_requested() | AC.newly_updated()) & ~cron)
        & AC.all_deps_updated_since_cron("0 * * * *", "Europe/Berlin")
        & ~AC.in_flight()
    )
    assert AC.on_cron("0 * * * *", timezone="Europe/Berlin") == on_cron.with_label("on_cron")
    on_missing = (AC.missing() & ~AC.execution_failed()).newly_true().since_last_handled() & ~AC.in_flight()
    assert AC.on_missing() == on_missing.with_label("on_missing")


def test_dependency_aggregates_are_labelled_expansions():
    assert AC.any_deps_missing() == AC.any_deps_match(AC.missing() & ~AC.will_be_requested()).with_label(
        "any_deps_missing"
    )
    assert AC.any_deps_in_progress() == AC.any_deps_match(AC.in_progress()).with_label("any_deps_in_progress")
    updated = (AC.newly_updated() & ~AC.last_run_includes_target()) | AC.will_be_requested()
    assert AC.any_deps_updated() == AC.any_deps_match(updated).with_label("any_deps_updated")
    since_cron = AC.newly_updated().since(AC.cron_tick_passed("0 3 * * *")) | AC.will_be_requested()
    assert AC.all_deps_updated_since_cron("0 3 * * *") == AC.all_deps_match(since_cron).with_label(
        "all_deps_updated_since_cron"
    )
    assert AC.any_deps_match(AC.missing()).description == "any_deps_match(missing)"
    assert AC.all_deps_match(AC.missing()).children == [AC.missing()]


def test_in_flight_is_a_labelled_composite():
    flight = AC.in_flight()
    assert flight.label == "in_flight"
    assert flight.children == [AC.in_progress(), AC.backfill_in_progress()]


@pytest.mark.parametrize(
    "factory",
    [AC.on_cron, AC.cron_tick_passed, AC.all_deps_updated_since_cron],
    ids=["on_cron", "cron_tick_passed", "all_deps_updated_since_cron"],
)
def test_cron_factories_accept_5_and_6_fields_and_refuse_bad_crons(factory):
    assert factory("0 3 * * *") != factory("0 0 3 * * *")
    factory("*/15 * * * * *")
    factory("0 0 6 * * MON-FRI", "US/Eastern")
    for bad in ["* * * *", "61 * * * *", "not a cron", ""]:
        with pytest.raises(ValueError, match=factory.__name__):
            factory(bad)
    with pytest.raises(ValueError, match="Mars/Olympus"):
        factory("0 3 * * *", "Mars/Olympus")


@pytest.mark.parametrize("bad", [0, -1, 0.0, float("inf"), float("-inf"), math.nan])
def test_in_latest_time_window_refuses_non_positive_or_non_finite_lookbacks(bad):
    with pytest.raises(ValueError, match="lookback_delta"):
        AC.in_latest_time_window(lookback_delta=bad)


def test_in_latest_time_window_accepts_none_and_positive_lookbacks():
    assert AC.in_latest_time_window(None) == AC.in_latest_time_window()
    assert AC.in_latest_time_window(0.5) != AC.in_latest_time_window(1)


def test_operators_build_and_or_not():
    a, b, c = AC.missing(), AC.in_progress(), AC.execution_failed()
    both = a & b
    assert both.children == [a, b]
    assert both.description == "missing & in_progress"
    assert (a | b).children == [a, b]
    assert (a | b).description == "missing | in_progress"
    assert (~a).children == [a]
    assert (~a).description == "~missing"
    assert (~AC.any_deps_missing()).description == "~any_deps_missing"
    assert (~(a | b)).description == "~(missing | in_progress)"
    assert ((a | b) & c).description == "(missing | in_progress) & execution_failed"


def test_unlabelled_operands_of_the_same_operator_are_flattened():
    a, b, c = AC.missing(), AC.in_progress(), AC.execution_failed()
    assert ((a & b) & c).children == [a, b, c]
    assert (a & (b & c)).children == [a, b, c]
    assert ((a | b) | c).children == [a, b, c]
    assert ((a | b) & c).children == [a | b, c]
    labelled = (a & b).with_label("pair")
    assert (labelled & c).children == [labelled, c]
    assert (AC.eager() & AC.in_latest_time_window()).children == [AC.eager(), AC.in_latest_time_window()]


@pytest.mark.parametrize("other", [1, "missing", None, True])
def test_combining_with_a_non_condition_raises_type_error_naming_its_type(other):
    cond = AC.missing()
    kind = type(other).__name__
    with pytest.raises(TypeError, match=kind):
        cond & other
    with pytest.raises(TypeError, match=kind):
        cond | other
    with pytest.raises(TypeError, match=kind):
        other & cond
    with pytest.raises(TypeError, match=kind):
        other | cond


def test_structural_methods_build_new_nodes():
    changed = AC.code_version_changed()
    assert changed.newly_true().children == [changed]
    assert changed.newly_true().description == "code_version_changed.newly_true()"
    latch = changed.since(AC.newly_requested())
    assert latch.children == [changed, AC.newly_requested()]
    assert latch.description == "code_version_changed.since(newly_requested)"
    assert changed.since_last_handled().description == "code_version_changed.since_last_handled()"
    assert (AC.missing() | changed).since_last_handled().description == (
        "(missing | code_version_changed).since_last_handled()"
    )


def test_on_selected_takes_one_key_or_a_list():
    one = AC.newly_updated().on_selected("fx_rates")
    assert one.description == "newly_updated.on_selected('fx_rates')"
    assert one.children == [AC.newly_updated()]
    assert one == AC.newly_updated().on_selected(["fx_rates"])
    assert AC.newly_updated().on_selected(["a", "b"]).description == "newly_updated.on_selected('a', 'b')"
    with pytest.raises(TypeError, match="on_selected"):
        AC.newly_updated().on_selected(3)  # type: ignore[arg-type]


def test_with_label_sets_the_label_and_description_without_touching_the_original():
    cond = AC.missing() & AC.in_progress()
    labelled = cond.with_label("x")
    assert labelled.label == "x"
    assert labelled.description == "x"
    assert labelled.children == cond.children
    assert cond.label is None
    assert labelled != cond


def test_equality_and_hash_are_structural():
    assert AC.eager() == AC.eager()
    assert hash(AC.eager()) == hash(AC.eager())
    assert len({AC.eager(), AC.eager(), AC.on_missing()}) == 2
    assert AC.missing() != AC.in_progress()
    assert AC.missing() != "missing"
    assert repr(AC.eager()) == "AutomationCondition(eager)"


@pytest.mark.parametrize(
    "target",
    ["~any_deps_missing", "any_deps_missing", ~AC.any_deps_missing()],
    ids=["description", "inner-label", "structure"],
)
def test_without_removes_one_guard_of_eager(target):
    eager = AC.eager()
    relaxed = eager.without(target)
    assert len(relaxed.children) == len(eager.children) - 1
    assert "any_deps_missing" not in relaxed.description
    assert ~AC.any_deps_missing() not in relaxed.children
    assert eager == AC.eager()
    assert len(eager.children) == 5


def test_without_by_label_of_a_plain_operand():
    cond = (AC.missing() & AC.in_flight()).with_label("guarded")
    assert cond.without("in_flight").children == [AC.missing()]
    assert AC.eager().without("execution_failed").children == AC.eager().children[:4]


def test_without_refuses_non_and_nodes_and_missing_operands():
    with pytest.raises(ValueError, match="And"):
        AC.missing().without("missing")
    with pytest.raises(ValueError, match="no operand matches"):
        AC.eager().without("in_progress")
    with pytest.raises(ValueError, match="no operand matches"):
        AC.eager().without(AC.missing())
    with pytest.raises(TypeError, match="without"):
        AC.eager().without(3)  # type: ignore[arg-type]


def test_replace_swaps_every_match_by_label_description_or_structure():
    eager = AC.eager()
    by_label = eager.replace("in_flight", AC.in_progress())
    assert ~AC.in_progress() in by_label.children
    assert ~AC.in_flight() not in by_label.children
    by_description = eager.replace("~execution_failed", AC.missing())
    assert by_description.children[4] == AC.missing()
    # `missing` occurs in the trigger and inside any_deps_missing: both are replaced.
    by_structure = eager.replace(AC.missing(), AC.execution_failed())
    assert "missing.newly_true" not in by_structure.description
    assert "execution_failed.newly_true()" in by_structure.children[0].description
    assert eager.replace("nothing like this", AC.missing()) == eager
    assert eager.replace("eager", AC.on_missing()) == AC.on_missing()
    assert eager == AC.eager(), "the original is never mutated"
    with pytest.raises(TypeError, match="replace"):
        eager.replace(1, AC.missing())  # type: ignore[arg-type]


def test_spec_examples_build():
    rebuild_on_deploy = (AC.code_version_changed().since(AC.newly_requested()) & ~AC.in_flight()).with_label(
        "rebuild_on_deploy"
    )
    assert rebuild_on_deploy.label == "rebuild_on_deploy"
    follow_feed = (
        AC.newly_updated().on_selected("fx_rates")
        & ~AC.last_executed_with_tags(tag_values=[("mode", "dry")])
        & ~AC.in_flight()
    )
    assert len(follow_feed.children) == 3
    freshest = AC.eager() & AC.in_latest_time_window(lookback_delta=6 * 3600)
    assert freshest.children[0] == AC.eager()


# -- the condition in the definitions ------------------------------------------------------------


def _snapshot_nodes(repo: rs.CodeRepository) -> dict[str, dict]:
    return {node["name"]: node for node in json.loads(repo._definitions_snapshot())["nodes"]}


def test_the_condition_reaches_the_resolved_definitions():
    @rs.Asset(automation_condition=AC.on_cron("0 3 * * *", "Europe/Berlin"))
    def upstream() -> int:
        return 1

    @rs.Asset(automation_condition=AC.eager().without("any_deps_missing"))
    def downstream(upstream: int) -> int:
        return upstream

    @rs.Asset
    def plain() -> int:
        return 2

    repo = rs.CodeRepository(assets=[upstream, downstream, plain])
    repo.resolve(storage=rs.Storage.memory())
    nodes = _snapshot_nodes(repo)
    assert nodes["plain"]["automation_condition"] is None
    cron = nodes["upstream"]["automation_condition"]
    assert cron["label"] == "on_cron" and cron["type"] == "and" and len(cron["operands"]) == 3
    tick = cron["operands"][0]["trigger"]
    assert tick == {"type": "cron_tick_passed", "cron": {"cron_schedule": "0 3 * * *", "timezone": "Europe/Berlin"}}
    relaxed = nodes["downstream"]["automation_condition"]
    assert "label" not in relaxed and len(relaxed["operands"]) == 4
    assert upstream.automation_condition == AC.on_cron("0 3 * * *", "Europe/Berlin")


def test_multi_graph_and_external_assets_carry_their_condition():
    @rs.Asset.from_multi(output_defs=[rs.AssetDef("left"), rs.AssetDef("right")], automation_condition=AC.on_missing())
    def pair() -> dict[str, int]:
        return {"left": 1, "right": 2}

    @rs.Task
    def extract() -> int:
        return 1

    @rs.Asset.from_graph(automation_condition=AC.eager())
    def pipeline():
        return extract()

    @rs.Asset.external(name="feed", io_handler=rs.InMemoryIOHandler(), automation_condition=AC.newly_updated())
    def observe_feed() -> rs.Observation:
        return rs.Observation()

    nodes = _snapshot_nodes(rs.CodeRepository(assets=[pair, pipeline, observe_feed]))
    assert nodes["pair"]["automation_condition"]["label"] == "on_missing"
    assert nodes["pipeline"]["automation_condition"]["label"] == "eager"
    assert nodes["feed"]["automation_condition"] == {"type": "newly_updated"}


def test_a_non_condition_is_refused_naming_the_asset():
    @rs.Asset(automation_condition="eager")
    def sloppy() -> int:
        return 1

    with pytest.raises(TypeError, match=r"asset 'sloppy' declares automation_condition='eager'.*AutomationCondition"):
        rs.CodeRepository(assets=[sloppy])


def test_on_selected_must_name_a_registered_asset():
    @rs.Asset(automation_condition=AC.newly_updated().on_selected(["pair_left", "fx_rates"]) & ~AC.in_flight())
    def follower() -> int:
        return 1

    @rs.Asset(name="pair_left")
    def left() -> int:
        return 1

    repo = rs.CodeRepository(assets=[follower, left])
    with pytest.raises(AssetNotFoundError, match=r"asset 'follower' selects 'fx_rates'"):
        repo.validate()
    with pytest.raises(AssetNotFoundError, match="fx_rates"):
        repo.resolve(storage=rs.Storage.memory())

    @rs.Asset(name="fx_rates")
    def fx() -> int:
        return 1

    rs.CodeRepository(assets=[follower, left, fx]).validate()


def test_an_external_asset_with_a_condition_needs_an_observe_function():
    source = rs.Asset.external(name="src", io_handler=rs.InMemoryIOHandler(), automation_condition=AC.eager())
    with pytest.raises(AssetDefinitionError, match="src"):
        rs.CodeRepository(assets=[source]).validate()
