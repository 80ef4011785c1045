"""assets.md sections 1.2 and 7: dependencies by parameter name, ``AssetDef.input`` /
``AssetDef.dep`` / ``DepDef``, and the validation errors for bad graphs and parameters."""

import pytest

import rivers as rs
from rivers.exceptions import ConfigurationError, ExecutionError, GraphValidationError

# --- DepDef objects --------------------------------------------------------------------------


def test_asset_def_input_builds_a_data_dep_def():
    dep = rs.AssetDef.input("catalog")

    assert isinstance(dep, rs.DepDef)
    assert dep.name == "catalog"
    assert dep.is_input is True
    assert dep.partition_mapping is None
    assert dep.metadata is None


def test_asset_def_input_keeps_its_metadata_override():
    dep = rs.AssetDef.input("catalog", metadata={"columns": "sku,price"})

    assert dep.metadata == {"columns": "sku,price"}
    assert dep.is_input is True


def test_asset_def_dep_builds_a_lineage_only_dep_def():
    dep = rs.AssetDef.dep("nightly_refresh")

    assert isinstance(dep, rs.DepDef)
    assert dep.name == "nightly_refresh"
    assert dep.is_input is False
    assert dep.partition_mapping is None
    assert dep.metadata is None


# --- dependencies by parameter name ----------------------------------------------------------


def test_parameter_named_after_upstream_receives_its_value(make_repo):
    @rs.Asset
    def orders():
        return [{"id": 7, "amount": 30}, {"id": 8, "amount": 12}]

    @rs.Asset
    def revenue(orders):
        return sum(o["amount"] for o in orders)

    repo = make_repo([orders, revenue])
    result = repo.materialize()

    assert result.success
    assert repo.load_node("revenue") == 42


def test_upstream_value_is_delivered_by_the_upstream_handlers_load_input(make_repo, recording_handler):
    @rs.Asset(io_handler=recording_handler, metadata={"format": "rows"})
    def raw_rows():
        return [3, 4]

    @rs.Asset
    def row_total(raw_rows: list):
        return sum(raw_rows)

    repo = make_repo([raw_rows, row_total])
    repo.materialize()

    assert repo.load_node("row_total") == 7
    reads = [r for r in recording_handler.reads if r["downstream_asset"] == "row_total"]
    assert len(reads) == 1
    assert reads[0]["asset_name"] == "raw_rows"
    assert reads[0]["asset_metadata"] == {"format": "rows"}
    assert reads[0]["type_hint"] is list


def test_unannotated_data_parameter_gives_type_hint_none(make_repo, recording_handler):
    @rs.Asset(io_handler=recording_handler)
    def source_value():
        return 5

    @rs.Asset
    def plus_one(source_value):
        return source_value + 1

    repo = make_repo([source_value, plus_one])
    repo.materialize()

    reads = [r for r in recording_handler.reads if r["downstream_asset"] == "plus_one"]
    assert [r["type_hint"] for r in reads] == [None]
    assert repo.load_node("plus_one") == 6


def test_dependency_order_follows_parameter_edges_not_registration_order(make_repo):
    calls = []

    @rs.Asset
    def report(summary):
        calls.append("report")
        return f"report:{summary}"

    @rs.Asset
    def summary(raw):
        calls.append("summary")
        return raw * 2

    @rs.Asset
    def raw():
        calls.append("raw")
        return 21

    repo = make_repo([report, summary, raw])
    repo.materialize()

    assert calls == ["raw", "summary", "report"]
    assert repo.load_node("report") == "report:42"


# --- AssetDef.input overrides ----------------------------------------------------------------


def test_input_io_handler_override_loads_through_the_override_only(make_repo, handler_cls):
    own_handler = handler_cls()
    loader = handler_cls()

    @rs.Asset(io_handler=own_handler)
    def catalog():
        return {"sku": ["A1", "B2"]}

    # the override handler serves the consumer's load with its own content
    loader._values["catalog"] = {"sku": ["from-override"]}

    @rs.Asset(deps=[rs.AssetDef.input("catalog", io_handler=loader)])
    def price_list(catalog):
        return catalog["sku"]

    repo = make_repo([catalog, price_list])
    repo.materialize()

    assert repo.load_node("price_list") == ["from-override"]
    # the upstream is still written only through its own handler
    assert [w["asset_name"] for w in own_handler.writes] == ["catalog"]
    assert loader.writes == []
    assert [(r["asset_name"], r["downstream_asset"]) for r in loader.reads] == [("catalog", "price_list")]
    assert repo.load_node("catalog") == {"sku": ["A1", "B2"]}


def test_input_metadata_override_replaces_upstream_metadata(make_repo, recording_handler):
    @rs.Asset(io_handler=recording_handler, metadata={"format": "csv", "owner": "catalog-team"})
    def catalog():
        return {"items": 3}

    @rs.Asset(deps=[rs.AssetDef.input("catalog", metadata={"columns": "sku,price"})])
    def overridden(catalog):
        return catalog["items"]

    @rs.Asset
    def plain(catalog):
        return catalog["items"]

    repo = make_repo([catalog, overridden, plain])
    repo.materialize()

    seen = {r["downstream_asset"]: r["asset_metadata"] for r in recording_handler.reads}
    assert seen["overridden"] == {"columns": "sku,price"}
    assert seen["plain"] == {"format": "csv", "owner": "catalog-team"}
    # the upstream definition itself is unchanged
    assert catalog.metadata == {"format": "csv", "owner": "catalog-team"}


def test_parameter_also_listed_in_deps_takes_options_from_the_deps_entry(make_repo, recording_handler):
    @rs.Asset(io_handler=recording_handler, metadata={"format": "json"})
    def events_feed():
        return [1, 1, 2]

    @rs.Asset(deps=[rs.AssetDef.input("events_feed", metadata={"dedupe": "true"})])
    def unique_events(events_feed):
        return sorted(set(events_feed))

    repo = make_repo([events_feed, unique_events])
    assert repo.materialize().success

    assert repo.load_node("unique_events") == [1, 2]
    reads = [r for r in recording_handler.reads if r["downstream_asset"] == "unique_events"]
    assert [r["asset_metadata"] for r in reads] == [{"dedupe": "true"}]


# --- AssetDef.dep ----------------------------------------------------------------------------


def test_lineage_dep_orders_upstream_first_and_injects_nothing(make_repo):
    calls = []

    @rs.Asset(deps=[rs.AssetDef.dep("nightly_refresh")])
    def price_report():
        calls.append("price_report")
        return "done"

    @rs.Asset
    def nightly_refresh():
        calls.append("nightly_refresh")
        return "refreshed"

    # the consumer is registered first: only the dep edge can put the refresh before it
    repo = make_repo([price_report, nightly_refresh])
    result = repo.materialize()

    assert result.success
    assert calls == ["nightly_refresh", "price_report"]
    assert repo.load_node("price_report") == "done"

    events = repo.storage.get_events_for_run(result.run_id)
    order = [(e.event_type, e.asset_key) for e in events]
    assert order.index(("StepSuccess", "nightly_refresh")) < order.index(("StepStart", "price_report"))


def test_input_edge_to_a_materialization_result_fails_at_load(make_repo):
    @rs.Asset
    def pushed():
        return rs.Materialization(metadata={"status": 200})

    @rs.Asset(deps=[rs.AssetDef.input("pushed")])
    def needs_value(pushed):
        return pushed

    repo = make_repo([pushed, needs_value])
    result = repo.materialize(raise_on_error=False)

    assert result.success is False
    assert [name for name, _ in result.failed_assets] == ["needs_value"]


def test_lineage_edge_to_a_materialization_result_succeeds(make_repo):
    @rs.Asset
    def pushed():
        return rs.Materialization(metadata={"status": 200})

    @rs.Asset(deps=[rs.AssetDef.dep("pushed")])
    def after_push():
        return "ok"

    repo = make_repo([pushed, after_push])
    result = repo.materialize()

    assert result.success
    assert result.failed_assets == []
    assert repo.load_node("after_push") == "ok"


# --- graph validation ------------------------------------------------------------------------


@pytest.mark.parametrize("dep", [rs.AssetDef.input("ghost"), rs.AssetDef.dep("ghost")])
def test_dep_naming_unknown_asset_is_a_graph_validation_error(dep):
    if dep.is_input:

        @rs.Asset(deps=[dep])
        def haunted(ghost):
            return ghost

    else:

        @rs.Asset(deps=[dep])
        def haunted():
            return 1

    with pytest.raises(GraphValidationError, match="ghost"):
        rs.CodeRepository(assets=[haunted], default_executor=rs.Executor.in_process()).validate()


def test_dependency_cycle_is_a_graph_validation_error():
    @rs.Asset
    def chicken(egg):
        return egg

    @rs.Asset
    def egg(chicken):
        return chicken

    with pytest.raises(GraphValidationError):
        rs.CodeRepository(assets=[chicken, egg], default_executor=rs.Executor.in_process()).validate()


def test_lineage_dep_cycle_is_a_graph_validation_error():
    @rs.Asset(deps=[rs.AssetDef.dep("second")])
    def first():
        return 1

    @rs.Asset(deps=[rs.AssetDef.dep("first")])
    def second():
        return 2

    with pytest.raises(GraphValidationError):
        rs.CodeRepository(assets=[first, second], default_executor=rs.Executor.in_process()).validate()


def test_duplicate_asset_names_are_a_graph_validation_error():
    @rs.Asset(name="twin")
    def twin_a():
        return 1

    @rs.Asset(name="twin")
    def twin_b():
        return 2

    with pytest.raises(GraphValidationError, match="twin"):
        rs.CodeRepository(assets=[twin_a, twin_b], default_executor=rs.Executor.in_process()).validate()


# --- unknown parameters ----------------------------------------------------------------------


def test_unknown_parameter_is_a_configuration_error_at_validate():
    @rs.Asset
    def lonely(mystery_input):
        return mystery_input

    repo = rs.CodeRepository(assets=[lonely], default_executor=rs.Executor.in_process())
    with pytest.raises(ConfigurationError, match="mystery_input"):
        repo.validate()


def test_unknown_parameter_is_a_configuration_error_at_resolve():
    @rs.Asset
    def lonely(mystery_input):
        return mystery_input

    repo = rs.CodeRepository(assets=[lonely], default_executor=rs.Executor.in_process())
    with pytest.raises(ConfigurationError, match="mystery_input"):
        repo.resolve(storage=rs.Storage.memory())


def test_unmatched_parameter_with_default_keeps_its_default(make_repo):
    @rs.Asset
    def scaled(factor=3):
        return 14 * factor

    repo = make_repo([scaled])
    assert repo.materialize().success
    assert repo.load_node("scaled") == 42


def test_failed_upstream_surfaces_as_execution_error_naming_the_step(make_repo):
    @rs.Asset
    def flaky_source():
        raise RuntimeError("upstream API down")

    @rs.Asset
    def derived(flaky_source):
        return flaky_source

    repo = make_repo([flaky_source, derived])
    with pytest.raises(ExecutionError, match="upstream API down") as excinfo:
        repo.materialize()
    assert "flaky_source" in str(excinfo.value)


def test_execution_error_chains_the_original_exception_in_process(make_repo):
    @rs.Asset
    def fragile():
        raise LookupError("row 7 missing")

    repo = make_repo([fragile])
    with pytest.raises(ExecutionError, match="row 7 missing") as excinfo:
        repo.materialize()

    assert isinstance(excinfo.value.__cause__, LookupError)
    assert str(excinfo.value.__cause__) == "row 7 missing"
