"""Multi-output assets: ``Asset.from_multi``, ``MultiAsset`` and ``AssetDef`` (assets.md sections 2, 5 and 6,
R17-R23) and their execution (repository-and-execution.md: selection, ``context.output_selection``, events,
``materialized_assets``, ``repo.assets``, retries, hooks, ``load_node`` / ``io_handler_for_output``).

Everything rivers-specific is built inside the tests so that a missing feature fails its own tests only.
"""

import asyncio
import os

import pydantic
import pytest

import rivers as rs
from rivers.exceptions import (
    AssetDefinitionError,
    ExecutionError,
    ResultDefinitionError,
)


def _split_numbers(calls=None, **multi_kwargs):
    """The dict-returning multi-asset from the spec example, counting its calls."""
    calls = [] if calls is None else calls

    @rs.Asset.from_multi(output_defs=[rs.AssetDef("evens"), rs.AssetDef("odds")], **multi_kwargs)
    def split_numbers():
        calls.append("split_numbers")
        nums = range(10)
        return {"evens": [n for n in nums if n % 2 == 0], "odds": [n for n in nums if n % 2]}

    return calls, split_numbers


def _recording_generator(seen, names=("first", "second", "third"), **multi_kwargs):
    """A generator multi-asset that records ``context.output_selection`` and yields every output."""

    @rs.Asset.from_multi(output_defs=[rs.AssetDef(name) for name in names], **multi_kwargs)
    def trio(context: rs.AssetExecutionContext):
        seen.append(list(context.output_selection))
        for index, name in enumerate(names):
            yield rs.Output(index + 1, output_name=name)

    return trio


def _materialized_keys(repo, run_id):
    return [e.asset_key for e in repo.storage.get_events_for_run(run_id) if e.event_type == "Materialization"]


def _event_types(repo, run_id):
    return [e.event_type for e in repo.storage.get_events_for_run(run_id)]


def _assert_result_definition_failure(repo, **materialize_kwargs):
    """The step fails because of a ResultDefinitionError, reported by materialize as ExecutionError."""
    with pytest.raises(ExecutionError) as excinfo:
        repo.materialize(**materialize_kwargs)
    err = excinfo.value
    assert isinstance(err.__cause__, ResultDefinitionError) or "ResultDefinitionError" in str(err), repr(err)
    return err


# --------------------------------------------------------------------------- construction forms and types


def test_from_multi_decorator_returns_multi_asset_named_after_function():
    _, split_numbers = _split_numbers()
    assert isinstance(split_numbers, rs.MultiAsset)
    assert isinstance(split_numbers, rs.Asset)
    assert split_numbers.name == "split_numbers"


def test_from_multi_with_wraps_returns_multi_asset_immediately():
    def ledger():
        return {"invoices": [101], "refunds": [7]}

    multi = rs.Asset.from_multi(wraps=ledger, output_defs=[rs.AssetDef("invoices"), rs.AssetDef("refunds")])
    assert isinstance(multi, rs.MultiAsset)
    assert multi.name == "ledger"
    assert [d.name for d in multi.output_defs] == ["invoices", "refunds"]


def test_from_multi_explicit_name_overrides_function_name():
    @rs.Asset.from_multi(name="ledger_v2", output_defs=[rs.AssetDef("invoices")])
    def ledger():
        return {"invoices": []}

    assert ledger.name == "ledger_v2"


def test_multi_asset_sets_exactly_one_type_flag():
    _, split_numbers = _split_numbers()
    flags = (split_numbers.is_single, split_numbers.is_multi, split_numbers.is_graph, split_numbers.is_external)
    assert flags == (False, True, False, False)
    assert split_numbers.observe_fn is None


def test_output_defs_lists_the_declared_outputs_in_order():
    defs = [rs.AssetDef("c"), rs.AssetDef("a"), rs.AssetDef("b")]

    @rs.Asset.from_multi(output_defs=defs)
    def three():
        return {"a": 1, "b": 2, "c": 3}

    assert all(isinstance(d, rs.AssetDef) for d in three.output_defs)
    assert [d.name for d in three.output_defs] == ["c", "a", "b"]


def test_generator_and_async_flags():
    @rs.Asset.from_multi(output_defs=[rs.AssetDef("a")])
    def sync_gen():
        yield rs.Output(1, output_name="a")

    @rs.Asset.from_multi(output_defs=[rs.AssetDef("b")])
    async def async_gen():
        yield rs.Output(2, output_name="b")

    assert sync_gen.is_async is False
    assert async_gen.is_async is True


def test_direct_call_runs_the_multi_asset_function():
    _, split_numbers = _split_numbers()
    assert split_numbers() == {"evens": [0, 2, 4, 6, 8], "odds": [1, 3, 5, 7, 9]}


def test_empty_output_defs_is_a_definition_error():
    with pytest.raises(AssetDefinitionError):

        @rs.Asset.from_multi(output_defs=[])
        def nothing():
            return {}


def test_empty_output_defs_with_wraps_is_a_definition_error():
    def nothing():
        return {}

    with pytest.raises(AssetDefinitionError):
        rs.Asset.from_multi(wraps=nothing, output_defs=[])


def test_duplicate_output_names_are_a_definition_error():
    with pytest.raises(AssetDefinitionError):

        @rs.Asset.from_multi(output_defs=[rs.AssetDef("twice"), rs.AssetDef("other"), rs.AssetDef("twice")])
        def duplicated():
            return {}


def test_function_level_input_dep_without_parameter_is_a_definition_error():
    with pytest.raises(AssetDefinitionError):

        @rs.Asset.from_multi(output_defs=[rs.AssetDef("a")], deps=[rs.AssetDef.input("not_a_parameter")])
        def missing_param():
            return {"a": 1}


def test_output_io_handler_of_wrong_type_is_a_definition_error():
    with pytest.raises(AssetDefinitionError):

        @rs.Asset.from_multi(output_defs=[rs.AssetDef("a", io_handler=object())])
        def bad_handler():
            return {"a": 1}


def test_non_string_output_metadata_is_a_definition_error():
    with pytest.raises(AssetDefinitionError):

        @rs.Asset.from_multi(output_defs=[rs.AssetDef("a", metadata={"rows": 3})])
        def bad_metadata():
            return {"a": 1}


# --------------------------------------------------------------------------- AssetDef


def test_asset_def_defaults():
    out = rs.AssetDef("orders")
    assert out.name == "orders"
    assert out.tags is None
    assert out.kinds == []
    assert out.group is None
    assert out.code_version is None
    assert out.io_handler is None
    assert out.metadata is None
    assert out.partitions_def is None
    assert out.partition_mapping is None
    assert out.pool == []
    assert out.deps == []


def test_asset_def_accepts_a_resource_key_as_io_handler():
    assert rs.AssetDef("orders", io_handler="warehouse").io_handler == "warehouse"


def test_asset_def_kinds_list_is_kept():
    assert rs.AssetDef("orders", kinds=["table", "delta"]).kinds == ["table", "delta"]


def test_asset_def_pool_is_normalised():
    assert rs.AssetDef("a", pool="db", pool_slots=2).pool == [("db", 2)]
    assert rs.AssetDef("b", pool=["db", "api"]).pool == [("db", 1), ("api", 1)]
    assert rs.AssetDef("c", pool=["db", "api"], pool_slots={"db": 3}).pool == [("db", 3), ("api", 1)]


def test_asset_def_is_hashable():
    out = rs.AssetDef("orders")
    assert hash(out) == hash(out)
    assert {out: 1}[out] == 1


# --------------------------------------------------------------------------- dict and generator forms


def test_dict_form_persists_each_output(make_repo):
    _, split_numbers = _split_numbers()
    repo = make_repo([split_numbers])
    result = repo.materialize()
    assert result.success
    assert repo.load_node("evens") == [0, 2, 4, 6, 8]
    assert repo.load_node("odds") == [1, 3, 5, 7, 9]


def test_generator_form_persists_each_yielded_output(make_repo):
    seen = []
    repo = make_repo([_recording_generator(seen)])
    assert repo.materialize().success
    assert [repo.load_node(name) for name in ("first", "second", "third")] == [1, 2, 3]


def test_async_generator_form_persists_each_yielded_output(make_repo):
    @rs.Asset.from_multi(output_defs=[rs.AssetDef("left"), rs.AssetDef("right")])
    async def halves():
        await asyncio.sleep(0)
        yield rs.Output("L", output_name="left")
        await asyncio.sleep(0)
        yield rs.Output("R", output_name="right")

    repo = make_repo([halves])
    assert repo.materialize().success
    assert (repo.load_node("left"), repo.load_node("right")) == ("L", "R")


def test_async_function_returning_dict_is_awaited(make_repo):
    @rs.Asset.from_multi(output_defs=[rs.AssetDef("left"), rs.AssetDef("right")])
    async def halves():
        await asyncio.sleep(0)
        return {"left": 1, "right": 2}

    repo = make_repo([halves])
    assert repo.materialize().success
    assert (repo.load_node("left"), repo.load_node("right")) == (1, 2)


def test_multi_asset_function_runs_once_per_run(make_repo):
    calls, split_numbers = _split_numbers()
    repo = make_repo([split_numbers])
    repo.materialize()
    assert calls == ["split_numbers"]


def test_dict_output_values_are_unwrapped_for_the_handler(make_repo, recording_handler, run_materializations):
    @rs.Asset.from_multi(output_defs=[rs.AssetDef("a"), rs.AssetDef("b")], io_handler=recording_handler)
    def wrapped():
        return {"a": rs.Output([1, 2], metadata={"rows": 2}, data_version="dv-a", tags=["checked"]), "b": "plain"}

    repo = make_repo([wrapped])
    result = repo.materialize()
    values = {w["asset_name"]: w["value"] for w in recording_handler.writes}
    assert values == {"a": [1, 2], "b": "plain"}
    events = run_materializations(repo.storage, result.run_id)
    assert events["a"].data_version == "dv-a"
    assert dict(events["a"].metadata)["rows"] == "2"
    assert repo.load_node("a") == [1, 2]


def test_dict_output_with_matching_output_name_is_accepted(make_repo):
    @rs.Asset.from_multi(output_defs=[rs.AssetDef("a"), rs.AssetDef("b")])
    def named():
        return {"a": rs.Output(1, output_name="a"), "b": 2}

    repo = make_repo([named])
    assert repo.materialize().success
    assert repo.load_node("a") == 1


def test_dict_materialization_skips_the_handler_and_records_an_event(
    make_repo, recording_handler, run_materializations
):
    @rs.Asset.from_multi(output_defs=[rs.AssetDef("pushed"), rs.AssetDef("kept")], io_handler=recording_handler)
    def mixed():
        return {"pushed": rs.Materialization(metadata={"rows": 3}, data_version="v-push"), "kept": 5}

    repo = make_repo([mixed])
    result = repo.materialize()
    assert result.success
    assert [w["asset_name"] for w in recording_handler.writes] == ["kept"]
    events = run_materializations(repo.storage, result.run_id)
    assert set(events) == {"pushed", "kept"}
    assert events["pushed"].data_version == "v-push"
    assert dict(events["pushed"].metadata)["rows"] == "3"


def test_generator_materialization_with_output_name_skips_the_handler(
    make_repo, recording_handler, run_materializations
):
    @rs.Asset.from_multi(output_defs=[rs.AssetDef("pushed"), rs.AssetDef("kept")], io_handler=recording_handler)
    def mixed():
        yield rs.Materialization(output_name="pushed", metadata={"status": "sent"})
        yield rs.Output("value", output_name="kept")

    repo = make_repo([mixed])
    result = repo.materialize()
    assert [w["asset_name"] for w in recording_handler.writes] == ["kept"]
    events = run_materializations(repo.storage, result.run_id)
    assert set(events) == {"pushed", "kept"}
    assert dict(events["pushed"].metadata)["status"] == "sent"


def test_generator_output_is_persisted_before_the_generator_resumes(make_repo, recording_handler):
    written_before_second_yield = []

    @rs.Asset.from_multi(output_defs=[rs.AssetDef("early"), rs.AssetDef("late")], io_handler=recording_handler)
    def streaming():
        yield rs.Output("e", output_name="early")
        written_before_second_yield.extend(w["asset_name"] for w in recording_handler.writes)
        yield rs.Output("l", output_name="late")

    repo = make_repo([streaming])
    assert repo.materialize().success
    assert written_before_second_yield == ["early"]
    assert [w["asset_name"] for w in recording_handler.writes] == ["early", "late"]


def test_output_metadata_and_data_versions_are_per_output(make_repo, run_materializations):
    @rs.Asset.from_multi(output_defs=[rs.AssetDef("a"), rs.AssetDef("b")])
    def versioned():
        yield rs.Output(1, output_name="a", metadata={"side": "left"}, data_version="va")
        yield rs.Output(2, output_name="b", metadata={"side": "right"}, data_version="vb")

    repo = make_repo([versioned])
    events = run_materializations(repo.storage, repo.materialize().run_id)
    assert (events["a"].data_version, events["b"].data_version) == ("va", "vb")
    assert dict(events["a"].metadata)["side"] == "left"
    assert dict(events["b"].metadata)["side"] == "right"


# --------------------------------------------------------------------------- run results, events and repo.assets


def test_one_materialization_event_per_persisted_output(make_repo):
    _, split_numbers = _split_numbers()
    repo = make_repo([split_numbers])
    result = repo.materialize()
    keys = _materialized_keys(repo, result.run_id)
    assert sorted(keys) == ["evens", "odds"]
    assert "split_numbers" not in keys


def test_multi_asset_run_event_sequence(make_repo):
    _, split_numbers = _split_numbers()
    repo = make_repo([split_numbers])
    result = repo.materialize()
    kinds = _event_types(repo, result.run_id)
    assert kinds[0] == "RunStart"
    assert kinds[-1] == "RunSuccess"
    assert kinds.count("StepStart") == 1
    assert kinds.count("StepSuccess") == 1
    assert kinds.count("Materialization") == 2
    start, success = kinds.index("StepStart"), kinds.index("StepSuccess")
    assert all(start < i < success for i, kind in enumerate(kinds) if kind == "Materialization")


def test_materialized_assets_lists_output_names(make_repo):
    _, split_numbers = _split_numbers()
    repo = make_repo([split_numbers])
    result = repo.materialize()
    assert sorted(result.materialized_assets) == ["evens", "odds"]
    assert "split_numbers" not in result.materialized_assets


def test_repo_assets_lists_the_multi_asset_under_each_output_name(make_repo):
    _, split_numbers = _split_numbers()
    repo = make_repo([split_numbers])
    assert repo.assets["evens"] is split_numbers
    assert repo.assets["odds"] is split_numbers


def test_per_output_events_record_per_output_code_version(make_repo, run_materializations):
    @rs.Asset.from_multi(output_defs=[rs.AssetDef("own", code_version="2"), rs.AssetDef("inherited")], code_version="1")
    def versions():
        return {"own": 1, "inherited": 2}

    repo = make_repo([versions])
    events = run_materializations(repo.storage, repo.materialize().run_id)
    assert events["own"].code_version == "2"
    assert events["inherited"].code_version == "1"


def test_per_output_attributes_are_persisted_on_asset_records(make_repo):
    @rs.Asset.from_multi(
        output_defs=[
            rs.AssetDef("invoices", tags=["billing"], kinds="table", group="ledger", code_version="9"),
            rs.AssetDef("refunds"),
        ],
        tags=["finance"],
        kinds="json",
        group="finance",
        code_version="1",
    )
    def books():
        return {"invoices": [], "refunds": []}

    repo = make_repo([books])
    own = repo.storage.get_asset_record("invoices")
    assert own.tags == ["billing"]
    assert own.kinds == ["table"]
    assert own.group == "ledger"
    assert own.code_version == "9"
    inherited = repo.storage.get_asset_record("refunds")
    assert inherited.tags == ["finance"]
    assert inherited.kinds == ["json"]
    assert inherited.group == "finance"
    assert inherited.code_version == "1"


# --------------------------------------------------------------------------- selection and output_selection


def test_full_run_output_selection_lists_all_outputs_in_declaration_order(make_repo):
    seen = []
    repo = make_repo([_recording_generator(seen, names=("zeta", "alpha", "mid"))])
    repo.materialize()
    assert seen == [["zeta", "alpha", "mid"]]


def test_context_reports_multi_asset_name_and_flag(make_repo):
    seen = {}

    @rs.Asset.from_multi(output_defs=[rs.AssetDef("a"), rs.AssetDef("b")], metadata={"owner": "ops"})
    def pair(context: rs.AssetExecutionContext):
        seen.update(
            asset_name=context.asset_name, is_multi=context.is_multi_asset, asset_metadata=context.asset_metadata
        )
        return {"a": 1, "b": 2}

    repo = make_repo([pair])
    repo.materialize()
    assert seen == {"asset_name": "pair", "is_multi": True, "asset_metadata": {"owner": "ops"}}


def test_context_exposes_multi_level_definition_attributes(make_repo):
    seen = {}

    @rs.Asset.from_multi(output_defs=[rs.AssetDef("a")], tags=["t1"], kinds=["table"], group="g1", code_version="cv1")
    def attributed(context: rs.AssetExecutionContext):
        seen.update(tags=context.tags, kinds=context.kinds, group=context.group, code_version=context.code_version)
        return {"a": 1}

    repo = make_repo([attributed])
    repo.materialize()
    assert seen == {"tags": ["t1"], "kinds": ["table"], "group": "g1", "code_version": "cv1"}


def test_selecting_one_output_persists_only_that_output(make_repo):
    calls, split_numbers = _split_numbers()
    repo = make_repo([split_numbers])
    result = repo.materialize(selection=["odds"])
    assert result.success
    assert calls == ["split_numbers"]
    assert repo.load_node("odds") == [1, 3, 5, 7, 9]
    with pytest.raises(KeyError):
        repo.load_node("evens")


def test_unselected_outputs_get_no_handler_call_and_no_event(make_repo, recording_handler):
    seen = []
    repo = make_repo([_recording_generator(seen, io_handler=recording_handler)])
    result = repo.materialize(selection=["second"])
    assert [w["asset_name"] for w in recording_handler.writes] == ["second"]
    assert _materialized_keys(repo, result.run_id) == ["second"]


def test_subset_run_output_selection_and_materialized_assets(make_repo):
    seen = []
    repo = make_repo([_recording_generator(seen)])
    result = repo.materialize(selection=["third", "first"])
    assert seen == [["first", "third"]]
    assert sorted(result.materialized_assets) == ["first", "third"]
    assert sorted(_materialized_keys(repo, result.run_id)) == ["first", "third"]


def test_subset_of_one_output_materialized_assets_lists_only_it(make_repo):
    _, split_numbers = _split_numbers()
    repo = make_repo([split_numbers])
    result = repo.materialize(selection=["odds"])
    assert result.materialized_assets == ["odds"]


def test_selecting_all_outputs_by_name_runs_the_function_once(make_repo):
    calls, split_numbers = _split_numbers()
    repo = make_repo([split_numbers])
    result = repo.materialize(selection=["evens", "odds"])
    assert calls == ["split_numbers"]
    assert sorted(result.materialized_assets) == ["evens", "odds"]


def test_selecting_the_multi_asset_by_its_own_name_selects_all_outputs(make_repo):
    seen = []
    repo = make_repo([_recording_generator(seen)])
    result = repo.materialize(selection=["trio"])
    assert result.success
    assert seen == [["first", "second", "third"]]
    assert sorted(result.materialized_assets) == ["first", "second", "third"]
    assert sorted(_materialized_keys(repo, result.run_id)) == ["first", "second", "third"]


def test_subset_run_of_spec_ledger_example(make_repo):
    @rs.Asset.from_multi(
        output_defs=[
            rs.AssetDef("invoices", kinds="table", deps=[rs.AssetDef.dep("billing_export")]),
            rs.AssetDef("refunds", metadata={"retention": "90d"}),
        ],
        group="finance",
    )
    def ledger(context: rs.AssetExecutionContext):
        if "invoices" in context.output_selection:
            yield rs.Output([101, 102], output_name="invoices")
        if "refunds" in context.output_selection:
            yield rs.Output([7], output_name="refunds", metadata={"count": 1})

    billing_export = rs.Asset.external(name="billing_export", io_handler=rs.InMemoryIOHandler())
    repo = make_repo([billing_export, ledger])
    result = repo.materialize(selection=["refunds"])
    assert result.success
    assert repo.load_node("refunds") == [7]
    with pytest.raises(KeyError):
        repo.load_node("invoices")


def test_selected_output_never_produced_is_not_materialized(make_repo, recording_handler):
    @rs.Asset.from_multi(output_defs=[rs.AssetDef("made"), rs.AssetDef("skipped")], io_handler=recording_handler)
    def partial():
        yield rs.Output("here", output_name="made")

    repo = make_repo([partial])
    result = repo.materialize()
    assert result.success
    assert [w["asset_name"] for w in recording_handler.writes] == ["made"]
    assert _materialized_keys(repo, result.run_id) == ["made"]
    assert "StepSuccess" in _event_types(repo, result.run_id)


def test_downstream_of_a_never_produced_output_fails_at_load(make_repo):
    calls = []

    @rs.Asset.from_multi(output_defs=[rs.AssetDef("made"), rs.AssetDef("missing")])
    def partial():
        return {"made": 1}

    @rs.Asset
    def needs_missing(missing):
        calls.append(missing)
        return missing

    repo = make_repo([partial, needs_missing])
    result = repo.materialize(raise_on_error=False)
    assert not result.success
    assert [name for name, _ in result.failed_assets] == ["needs_missing"]
    assert calls == []
    assert repo.load_node("made") == 1


def test_config_keyed_by_multi_asset_name_configures_the_step(make_repo):
    class Scale(pydantic.BaseModel):
        factor: int = 1

    @rs.Asset.from_multi(output_defs=[rs.AssetDef("small"), rs.AssetDef("large")])
    def scaled(context: rs.AssetExecutionContext[Scale]):
        return {"small": context.config.factor, "large": context.config.factor * 100}

    repo = make_repo([scaled])
    repo.materialize(config={"scaled": {"factor": 3}})
    assert (repo.load_node("small"), repo.load_node("large")) == (3, 300)


def test_job_with_a_multi_asset_brings_all_outputs(make_repo):
    _, split_numbers = _split_numbers()
    job = rs.Job(name="numbers", assets=[split_numbers], executor=rs.Executor.in_process())
    repo = make_repo([split_numbers], jobs=[job])
    result = repo.get_job("numbers").execute()
    assert result.success
    assert sorted(result.materialized_assets) == ["evens", "odds"]
    assert repo.load_node("evens") == [0, 2, 4, 6, 8]


# --------------------------------------------------------------------------- dependencies


def test_downstream_assets_depend_on_individual_outputs(make_repo):
    _, split_numbers = _split_numbers()

    @rs.Asset
    def odd_total(odds: list) -> int:
        return sum(odds)

    @rs.Asset
    def both(evens: list, odds: list) -> int:
        return len(evens) + len(odds)

    repo = make_repo([split_numbers, odd_total, both])
    result = repo.materialize()
    assert result.success
    assert repo.load_node("odd_total") == 25
    assert repo.load_node("both") == 10


def test_downstream_runs_after_the_multi_asset_step(make_repo):
    order = []

    @rs.Asset
    def report(evens: list) -> int:
        order.append("report")
        return len(evens)

    _, split_numbers = _split_numbers(calls=order)
    repo = make_repo([report, split_numbers])
    assert repo.materialize().success
    assert order == ["split_numbers", "report"]


def test_downstream_selection_loads_output_through_its_handler(make_repo):
    _, split_numbers = _split_numbers()

    @rs.Asset
    def odd_count(odds: list) -> int:
        return len(odds)

    repo = make_repo([split_numbers, odd_count])
    repo.materialize(selection=["odds"])
    result = repo.materialize(selection=["odd_count"])
    assert result.materialized_assets == ["odd_count"]
    assert repo.load_node("odd_count") == 5


def test_include_upstream_runs_the_multi_asset_for_a_downstream(make_repo):
    calls, split_numbers = _split_numbers()

    @rs.Asset
    def even_sum(evens: list) -> int:
        return sum(evens)

    repo = make_repo([split_numbers, even_sum])
    result = repo.materialize(selection=["even_sum"], include_upstream=True)
    assert result.success
    assert calls == ["split_numbers"]
    assert repo.load_node("even_sum") == 20


def test_downstream_records_the_output_data_version_as_input(make_repo, run_materializations):
    @rs.Asset.from_multi(output_defs=[rs.AssetDef("a"), rs.AssetDef("b")])
    def versioned():
        return {"a": rs.Output(1, data_version="va"), "b": 2}

    @rs.Asset
    def uses_a(a: int) -> int:
        return a

    repo = make_repo([versioned, uses_a])
    events = run_materializations(repo.storage, repo.materialize().run_id)
    assert ("a", "va") in events["uses_a"].input_data_versions


def test_function_level_input_dep_feeds_the_parameter(make_repo, recording_handler):
    @rs.Asset(io_handler=recording_handler)
    def raw() -> list:
        return [3, 4]

    @rs.Asset.from_multi(
        output_defs=[rs.AssetDef("total"), rs.AssetDef("count")],
        deps=[rs.AssetDef.input("raw", metadata={"columns": "x"})],
    )
    def stats(raw: list):
        return {"total": sum(raw), "count": len(raw)}

    repo = make_repo([raw, stats])
    assert repo.materialize().success
    assert (repo.load_node("total"), repo.load_node("count")) == (7, 2)
    assert [(r["asset_name"], r["asset_metadata"]) for r in recording_handler.reads] == [("raw", {"columns": "x"})]


def test_per_output_input_dep_becomes_a_function_parameter(make_repo):
    @rs.Asset
    def raw() -> list:
        return [1, 2, 3]

    @rs.Asset.from_multi(output_defs=[rs.AssetDef("first", deps=[rs.AssetDef.input("raw")]), rs.AssetDef("last")])
    def ends(raw: list):
        return {"first": raw[0], "last": raw[-1]}

    repo = make_repo([raw, ends])
    assert repo.materialize().success
    assert (repo.load_node("first"), repo.load_node("last")) == (1, 3)


def test_per_output_lineage_dep_orders_without_injecting(make_repo):
    order = []

    @rs.Asset
    def billing_export() -> str:
        order.append("billing_export")
        return "exported"

    @rs.Asset.from_multi(
        output_defs=[rs.AssetDef("invoices", deps=[rs.AssetDef.dep("billing_export")]), rs.AssetDef("refunds")]
    )
    def ledger():
        order.append("ledger")
        return {"invoices": [1], "refunds": [2]}

    repo = make_repo([ledger, billing_export])
    assert repo.materialize().success
    assert order == ["billing_export", "ledger"]


# --------------------------------------------------------------------------- IO handlers and metadata


def test_io_handler_for_output_resolves_per_output_then_multi_level(make_repo, handler_cls):
    own, shared = handler_cls(), handler_cls()

    @rs.Asset.from_multi(output_defs=[rs.AssetDef("a", io_handler=own), rs.AssetDef("b")], io_handler=shared)
    def routed():
        return {"a": 1, "b": 2}

    repo = make_repo([routed])
    assert repo.io_handler_for_output("a") is own
    assert repo.io_handler_for_output("b") is shared


def test_outputs_without_any_handler_use_the_shared_default(make_repo):
    _, split_numbers = _split_numbers()

    @rs.Asset
    def single() -> int:
        return 1

    repo = make_repo([split_numbers, single])
    default = repo.io_handler_for_output("single")
    assert isinstance(default, rs.InMemoryIOHandler)
    assert repo.io_handler_for_output("evens") is default
    assert repo.io_handler_for_output("odds") is default


def test_outputs_are_written_and_loaded_through_their_resolved_handlers(make_repo, handler_cls):
    own, shared = handler_cls(), handler_cls()

    @rs.Asset.from_multi(output_defs=[rs.AssetDef("a", io_handler=own), rs.AssetDef("b")], io_handler=shared)
    def routed():
        return {"a": "A", "b": "B"}

    repo = make_repo([routed])
    repo.materialize()
    assert [(w["asset_name"], w["value"]) for w in own.writes] == [("a", "A")]
    assert [(w["asset_name"], w["value"]) for w in shared.writes] == [("b", "B")]
    assert repo.load_node("a") == "A"
    assert repo.load_node("b") == "B"
    assert [r["asset_name"] for r in own.reads] == ["a"]
    assert [r["asset_name"] for r in shared.reads] == ["b"]


def test_output_io_handler_string_resolves_from_resources(make_repo, recording_handler):
    @rs.Asset.from_multi(output_defs=[rs.AssetDef("a", io_handler="warehouse"), rs.AssetDef("b")])
    def stored():
        return {"a": 1, "b": 2}

    repo = make_repo([stored], resources={"warehouse": recording_handler})
    assert repo.io_handler_for_output("a") is recording_handler
    repo.materialize()
    assert [w["asset_name"] for w in recording_handler.writes] == ["a"]


def test_multi_level_io_handler_string_resolves_from_resources(make_repo, recording_handler):
    @rs.Asset.from_multi(output_defs=[rs.AssetDef("a"), rs.AssetDef("b")], io_handler="warehouse")
    def stored():
        return {"a": 1, "b": 2}

    repo = make_repo([stored], resources={"warehouse": recording_handler})
    assert repo.io_handler_for_output("a") is recording_handler
    assert repo.io_handler_for_output("b") is recording_handler


def test_output_metadata_becomes_output_context_asset_metadata(make_repo, recording_handler):
    @rs.Asset.from_multi(
        output_defs=[rs.AssetDef("a", metadata={"retention": "90d"}), rs.AssetDef("b", metadata={"owner": "ops"})],
        io_handler=recording_handler,
    )
    def described():
        return {"a": 1, "b": 2}

    repo = make_repo([described])
    repo.materialize()
    by_name = {w["asset_name"]: w for w in recording_handler.writes}
    assert by_name["a"]["asset_metadata"] == {"retention": "90d"}
    assert by_name["b"]["asset_metadata"] == {"owner": "ops"}


def test_output_metadata_becomes_input_context_asset_metadata_downstream(make_repo, recording_handler):
    @rs.Asset.from_multi(output_defs=[rs.AssetDef("a", metadata={"retention": "90d"}, io_handler=recording_handler)])
    def described():
        return {"a": 1}

    @rs.Asset
    def consumer(a: int) -> int:
        return a + 1

    repo = make_repo([described, consumer])
    repo.materialize()
    reads = [r for r in recording_handler.reads if r["downstream_asset"] == "consumer"]
    assert len(reads) == 1
    assert reads[0]["asset_name"] == "a"
    assert reads[0]["asset_metadata"] == {"retention": "90d"}
    assert repo.load_node("consumer") == 2


def test_output_context_type_hint_is_none_for_multi_outputs(make_repo, recording_handler):
    @rs.Asset.from_multi(output_defs=[rs.AssetDef("a")], io_handler=recording_handler)
    def annotated() -> dict:
        return {"a": 1}

    repo = make_repo([annotated])
    repo.materialize()
    assert [w["type_hint"] for w in recording_handler.writes] == [None]


def test_load_node_reads_an_output_through_its_handler(make_repo, recording_handler):
    @rs.Asset.from_multi(output_defs=[rs.AssetDef("a", io_handler=recording_handler), rs.AssetDef("b")])
    def pair():
        return {"a": {"k": 1}, "b": 2}

    repo = make_repo([pair])
    repo.materialize()
    assert repo.load_node("a") == {"k": 1}
    assert [(r["asset_name"], r["downstream_asset"]) for r in recording_handler.reads] == [("a", "a")]


# --------------------------------------------------------------------------- malformed results


def test_dict_with_unknown_output_name_fails_the_step(make_repo):
    @rs.Asset.from_multi(output_defs=[rs.AssetDef("a")])
    def bogus():
        return {"a": 1, "not_declared": 2}

    _assert_result_definition_failure(make_repo([bogus]))


def test_yielded_output_with_unknown_output_name_fails_the_step(make_repo):
    @rs.Asset.from_multi(output_defs=[rs.AssetDef("a")])
    def bogus():
        yield rs.Output(1, output_name="not_declared")

    _assert_result_definition_failure(make_repo([bogus]))


def test_yielded_output_without_output_name_fails_the_step(make_repo):
    @rs.Asset.from_multi(output_defs=[rs.AssetDef("a")])
    def nameless():
        yield rs.Output(1)

    _assert_result_definition_failure(make_repo([nameless]))


def test_yielded_materialization_without_output_name_fails_the_step(make_repo):
    @rs.Asset.from_multi(output_defs=[rs.AssetDef("a")])
    def nameless():
        yield rs.Materialization(metadata={"rows": 1})

    _assert_result_definition_failure(make_repo([nameless]))


def test_same_output_yielded_twice_fails_the_step(make_repo):
    @rs.Asset.from_multi(output_defs=[rs.AssetDef("a"), rs.AssetDef("b")])
    def twice():
        yield rs.Output(1, output_name="a")
        yield rs.Output(2, output_name="a")

    _assert_result_definition_failure(make_repo([twice]))


def test_dict_output_name_differing_from_its_key_fails_the_step(make_repo):
    @rs.Asset.from_multi(output_defs=[rs.AssetDef("a"), rs.AssetDef("b")])
    def mismatched():
        return {"a": rs.Output(1, output_name="b")}

    _assert_result_definition_failure(make_repo([mismatched]))


@pytest.mark.parametrize("value", [[1, 2], 42, "ab"], ids=["list", "int", "str"])
def test_return_value_neither_dict_nor_generator_fails_the_step(make_repo, value):
    @rs.Asset.from_multi(output_defs=[rs.AssetDef("a")])
    def wrong_shape():
        return value

    _assert_result_definition_failure(make_repo([wrong_shape]))


def test_malformed_result_is_reported_in_failed_assets_without_raising(make_repo):
    @rs.Asset.from_multi(output_defs=[rs.AssetDef("a")])
    def bogus():
        return {"not_declared": 1}

    @rs.Asset
    def unrelated() -> str:
        return "ok"

    repo = make_repo([bogus, unrelated])
    result = repo.materialize(raise_on_error=False)
    assert result.success is False
    assert result.failed_assets
    assert "StepFailure" in _event_types(repo, result.run_id)
    assert repo.load_node("unrelated") == "ok"


# --------------------------------------------------------------------------- retries


def test_dict_multi_asset_is_retried_as_a_unit(make_repo, recording_handler, run_materializations):
    attempts = []

    @rs.Asset.from_multi(
        output_defs=[rs.AssetDef("a"), rs.AssetDef("b")],
        io_handler=recording_handler,
        retry=rs.RetryPolicy(max_retries=2),
    )
    def flaky_pair():
        attempts.append(len(attempts) + 1)
        if len(attempts) == 1:
            raise ConnectionError("transient")
        return {"a": 1, "b": 2}

    repo = make_repo([flaky_pair])
    result = repo.materialize()
    assert result.success
    assert attempts == [1, 2]
    assert sorted(w["asset_name"] for w in recording_handler.writes) == ["a", "b"]
    assert _event_types(repo, result.run_id).count("StepRetry") == 1
    assert set(run_materializations(repo.storage, result.run_id)) == {"a", "b"}


def test_dict_multi_asset_exhausts_its_retry_budget(make_repo):
    attempts = []

    @rs.Asset.from_multi(output_defs=[rs.AssetDef("a"), rs.AssetDef("b")], retry=rs.RetryPolicy(max_retries=2))
    def always_fails():
        attempts.append(1)
        raise ValueError("still broken")

    repo = make_repo([always_fails])
    result = repo.materialize(raise_on_error=False)
    assert not result.success
    assert len(attempts) == 3
    kinds = _event_types(repo, result.run_id)
    assert kinds.count("StepRetry") == 2
    assert kinds.count("StepFailure") == 1


def test_generator_multi_asset_is_never_retried(make_repo, recording_handler):
    attempts = []

    @rs.Asset.from_multi(
        output_defs=[rs.AssetDef("a"), rs.AssetDef("b")],
        io_handler=recording_handler,
        retry=rs.RetryPolicy(max_retries=3),
    )
    def half_done():
        attempts.append(1)
        yield rs.Output(1, output_name="a")
        raise ConnectionError("lost after first output")

    repo = make_repo([half_done])
    result = repo.materialize(raise_on_error=False)
    assert not result.success
    assert len(attempts) == 1
    assert "StepRetry" not in _event_types(repo, result.run_id)
    assert [w["asset_name"] for w in recording_handler.writes] == ["a"]


def test_generator_multi_asset_ignores_repository_default_retry_policy(make_repo):
    attempts = []

    @rs.Asset.from_multi(output_defs=[rs.AssetDef("a")])
    def gen_fails():
        attempts.append(1)
        raise ValueError("boom")
        yield rs.Output(1, output_name="a")  # makes this a generator function

    repo = make_repo([gen_fails], default_retry_policy=rs.RetryPolicy(max_retries=2))
    with pytest.raises(ExecutionError, match="boom"):
        repo.materialize()
    assert len(attempts) == 1


def test_agreeing_per_output_retry_is_accepted_and_applied(make_repo):
    policy = rs.RetryPolicy(max_retries=1)
    attempts = []

    @rs.Asset.from_multi(output_defs=[rs.AssetDef("a", retry=policy), rs.AssetDef("b", retry=policy)])
    def agreeing():
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("first attempt fails")
        return {"a": 1, "b": 2}

    repo = make_repo([agreeing])
    assert repo.validate() is None
    assert repo.materialize().success
    assert len(attempts) == 2


def test_per_output_retry_set_on_one_output_only_is_accepted(make_repo):
    attempts = []

    @rs.Asset.from_multi(output_defs=[rs.AssetDef("a", retry=rs.RetryPolicy(max_retries=1)), rs.AssetDef("b")])
    def one_sided():
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("first attempt fails")
        return {"a": 1, "b": 2}

    repo = make_repo([one_sided])
    assert repo.validate() is None
    assert repo.materialize().success
    assert len(attempts) == 2


def test_disagreeing_per_output_retry_is_rejected_at_validation():
    @rs.Asset.from_multi(
        output_defs=[
            rs.AssetDef("a", retry=rs.RetryPolicy(max_retries=1)),
            rs.AssetDef("b", retry=rs.RetryPolicy(max_retries=3)),
        ]
    )
    def disagreeing():
        return {"a": 1, "b": 2}

    with pytest.raises(AssetDefinitionError):
        rs.CodeRepository(assets=[disagreeing], default_executor=rs.Executor.in_process()).validate()


def test_disagreeing_per_output_retry_with_a_named_policy_is_rejected_at_resolve():
    @rs.Asset.from_multi(
        output_defs=[rs.AssetDef("a", retry=rs.RetryPolicy(max_retries=1)), rs.AssetDef("b", retry="patient")]
    )
    def disagreeing():
        return {"a": 1, "b": 2}

    with pytest.raises(AssetDefinitionError):
        repo = rs.CodeRepository(
            assets=[disagreeing],
            default_executor=rs.Executor.in_process(),
            retries={"patient": rs.RetryPolicy(max_retries=5)},
        )
        repo.resolve(storage=rs.Storage.memory())


# --------------------------------------------------------------------------- hooks


def _hook_recorder():
    seen = []

    @rs.Hook.success
    def on_ok(ctx: rs.HookContext) -> None:
        seen.append((ctx.hook_type, ctx.asset_name, ctx.output, ctx.error))

    @rs.Hook.failure
    def on_fail(ctx: rs.HookContext) -> None:
        seen.append((ctx.hook_type, ctx.asset_name, ctx.output, ctx.error))

    return seen, [on_ok, on_fail]


def test_success_hooks_fire_once_per_persisted_output(make_repo):
    seen, hooks = _hook_recorder()
    _, split_numbers = _split_numbers(hooks=hooks)
    repo = make_repo([split_numbers])
    repo.materialize()
    assert sorted(seen) == [
        ("success", "evens", [0, 2, 4, 6, 8], None),
        ("success", "odds", [1, 3, 5, 7, 9], None),
    ]


def test_success_hooks_fire_only_for_selected_outputs(make_repo):
    seen, hooks = _hook_recorder()
    _, split_numbers = _split_numbers(hooks=hooks)
    repo = make_repo([split_numbers])
    repo.materialize(selection=["odds"])
    assert seen == [("success", "odds", [1, 3, 5, 7, 9], None)]


def test_success_hooks_skip_outputs_that_were_never_produced(make_repo):
    seen, hooks = _hook_recorder()

    @rs.Asset.from_multi(output_defs=[rs.AssetDef("made"), rs.AssetDef("absent")], hooks=hooks)
    def partial():
        yield rs.Output("m", output_name="made")

    repo = make_repo([partial])
    repo.materialize()
    assert seen == [("success", "made", "m", None)]


def test_failure_hooks_fire_once_per_selected_output(make_repo):
    seen, hooks = _hook_recorder()

    @rs.Asset.from_multi(output_defs=[rs.AssetDef("a"), rs.AssetDef("b"), rs.AssetDef("c")], hooks=hooks)
    def broken():
        raise RuntimeError("multi exploded")

    repo = make_repo([broken])
    repo.materialize(selection=["a", "c"], raise_on_error=False)
    assert sorted(name for _, name, _, _ in seen) == ["a", "c"]
    assert all(kind == "failure" and output is None for kind, _, output, _ in seen)
    assert all("multi exploded" in error for _, _, _, error in seen)


# --------------------------------------------------------------------------- partitions


# --------------------------------------------------------------------------- parallel executor


def test_multi_asset_outputs_written_in_a_worker_are_loadable():
    from . import multi_parallel_defs as defs

    defs.clear_store()
    repo = rs.CodeRepository(
        assets=[defs.par_split, defs.par_combined], default_executor=rs.Executor.parallel(max_workers=2)
    )
    repo.resolve(storage=rs.Storage.memory())
    try:
        result = repo.materialize()
        assert result.success
        assert sorted(result.materialized_assets) == ["par_combined", "par_left", "par_right"]
        left = repo.load_node("par_left")
        assert left != os.getpid()
        assert repo.load_node("par_right") == -left
        assert repo.load_node("par_combined") == [left, -left]
    finally:
        repo.shutdown()


def test_multi_level_attributes_are_exposed_on_the_multi_asset():
    @rs.Asset.from_multi(
        output_defs=[rs.AssetDef("a"), rs.AssetDef("b")],
        name="pair",
        tags=["t"],
        kinds="python",
        group="g",
        code_version="3",
        metadata={"owner": "me"},
        pool="db",
        pool_slots=2,
    )
    def _fn():
        return {"a": 1, "b": 2}

    assert isinstance(_fn, rs.MultiAsset) and isinstance(_fn, rs.Asset)
    assert (_fn.is_multi, _fn.is_single, _fn.is_graph, _fn.is_external) == (True, False, False, False)
    assert (_fn.name, _fn.tags, _fn.kinds, _fn.group, _fn.code_version) == ("pair", ["t"], ["python"], "g", "3")
    assert _fn.metadata == {"owner": "me"}
    assert _fn.pool == [("db", 2)]
    assert [o.name for o in _fn.output_defs] == ["a", "b"]


def test_asset_def_attributes_round_trip():
    handler = rs.InMemoryIOHandler()
    dep = rs.AssetDef.dep("upstream")
    output = rs.AssetDef(
        "orders",
        tags=["x"],
        kinds="table",
        group="sales",
        code_version="2",
        io_handler=handler,
        metadata={"k": "v"},
        pool=["a", "b"],
        pool_slots={"a": 3},
        deps=[dep],
    )
    assert (output.name, output.tags, output.kinds, output.group, output.code_version) == (
        "orders",
        ["x"],
        ["table"],
        "sales",
        "2",
    )
    assert output.io_handler is handler
    assert output.metadata == {"k": "v"}
    assert output.pool == [("a", 3), ("b", 1)]
    assert output.deps == [dep]
    assert {output: 1}[rs.AssetDef("orders")] == 1, "AssetDef is hashable by name"
