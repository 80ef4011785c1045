"""External assets: never materialized, loadable downstream, observable."""

from __future__ import annotations

import pytest

import rivers as rs
from rivers.exceptions import AssetDefinitionError, AssetNotFoundError, ExecutionError, ResultDefinitionError


def _repo(assets, **kwargs):
    repo = rs.CodeRepository(assets=assets, default_executor=rs.Executor.in_process(), **kwargs)
    repo.resolve(storage=rs.Storage.memory())
    return repo


def test_external_requires_io_handler_and_direct_form_has_no_observe_fn():
    with pytest.raises(TypeError):
        rs.Asset.external(name="raw")  # type: ignore[call-arg]
    raw = rs.Asset.external(name="raw", io_handler=rs.InMemoryIOHandler())
    assert isinstance(raw, rs.ExternalAsset) and raw.is_external and not raw.is_single
    assert raw.observe_fn is None and raw.name == "raw"


def test_decorator_form_attaches_observe_fn_and_name():
    @rs.Asset.external(io_handler=rs.InMemoryIOHandler())
    def partner_feed(context):
        return None

    assert partner_feed.name == "partner_feed"
    assert partner_feed.observe_fn is not None


def test_external_assets_are_never_materialized_and_feed_downstream():
    handler = rs.InMemoryIOHandler()
    handler.handle_output(rs.OutputContext("raw_orders"), [3, 4])
    raw_orders = rs.Asset.external(name="raw_orders", io_handler=handler)

    @rs.Asset
    def total(raw_orders: list[int]) -> int:
        return sum(raw_orders)

    repo = _repo([raw_orders, total])
    result = repo.materialize(selection=["raw_orders", "total"])
    assert result.materialized_assets == ["total"]
    assert repo.load_node("total") == 7
    assert repo.load_node("raw_orders") == [3, 4]
    steps = [e.asset_key for e in repo.storage.get_events_for_run(result.run_id) if e.event_type == "StepStart"]
    assert steps == ["total"]


def test_observe_merges_metadata_observation_wins_and_records_an_event():
    @rs.Asset.external(io_handler="lake", kinds="table")
    def partner_feed(context: rs.AssetExecutionContext):
        context.add_output_metadata({"files": 12, "source": "ctx"})
        return rs.Observation(metadata={"source": "observation"}, data_version="drop-0612")

    unobserved = rs.Asset.external(name="unobserved", io_handler="lake")
    repo = _repo([partner_feed, unobserved], resources={"lake": rs.InMemoryIOHandler()})
    observed = repo.observe()
    assert set(observed) == {"partner_feed"}
    assert observed["partner_feed"]["files"].raw_value() == 12
    assert observed["partner_feed"]["source"] == rs.MetadataValue.text("observation")
    events = repo.storage.get_events_for_asset("partner_feed")
    assert [e.event_type for e in events] == ["Observation"]
    assert events[0].data_version == "drop-0612"
    assert ("files", "12") in events[0].metadata


def test_observe_filters_names_and_rejects_unknown_ones():
    calls = []

    @rs.Asset.external(io_handler=rs.InMemoryIOHandler())
    def first(context):
        calls.append("first")

    @rs.Asset.external(io_handler=rs.InMemoryIOHandler())
    def second(context):
        calls.append("second")

    repo = _repo([first, second])
    assert set(repo.observe(asset_names=["second"])) == {"second"}
    assert calls == ["second"]
    with pytest.raises(AssetNotFoundError, match="nope"):
        repo.observe(asset_names=["nope"])


def test_observe_errors_are_execution_errors_and_bad_results_are_rejected():
    @rs.Asset.external(io_handler=rs.InMemoryIOHandler())
    def broken(context):
        raise RuntimeError("feed offline")

    with pytest.raises(ExecutionError, match="feed offline"):
        _repo([broken]).observe()

    @rs.Asset.external(io_handler=rs.InMemoryIOHandler())
    def wrong(context):
        return rs.Output(1)

    with pytest.raises(ResultDefinitionError, match="wrong"):
        _repo([wrong]).observe()


def test_external_with_condition_but_no_observe_fn_is_rejected_at_validate():
    src = rs.Asset.external(
        name="src", io_handler=rs.InMemoryIOHandler(), automation_condition=rs.AutomationCondition.eager()
    )
    with pytest.raises(AssetDefinitionError, match="src"):
        rs.CodeRepository(assets=[src]).validate()


def test_observed_data_version_feeds_staleness_of_downstream():
    handler = rs.InMemoryIOHandler()
    handler.handle_output(rs.OutputContext("feed"), 1)
    versions = iter(["v1", "v2"])

    @rs.Asset.external(io_handler=handler)
    def feed(context):
        return rs.Observation(data_version=next(versions))

    @rs.Asset
    def derived(feed: int) -> int:
        return feed + 1

    repo = _repo([feed, derived])
    repo.observe()
    repo.materialize(selection=["derived"])
    assert repo.storage.compute_staleness()["derived"][0] == "UpToDate"
    repo.observe()
    status, causes = repo.storage.compute_staleness()["derived"]
    assert status == "Stale"
    assert [(c.category, c.dependency) for c in causes] == [("Data", "feed")]
    assert repo.storage.compute_staleness()["feed"] == ("UpToDate", [])
