"""assets.md sections 8 and 9: ``SelfDependency``, ``Output`` and ``Materialization``."""

import pytest

import rivers as rs
from rivers.exceptions import ExecutionError, InvalidMetadataError

# --- Output objects --------------------------------------------------------------------------


def test_output_exposes_its_arguments_with_coerced_metadata():
    out = rs.Output([1, 2], metadata={"rows": 2, "source": "api"}, data_version="dv-1", tags=["derived"])

    assert out.value == [1, 2]
    assert out.output_name is None
    assert out.data_version == "dv-1"
    assert out.tags == ["derived"]
    assert set(out.metadata) == {"rows", "source"}
    assert isinstance(out.metadata["rows"], rs.MetadataValue.Int)
    assert out.metadata["rows"].raw_value() == 2
    assert isinstance(out.metadata["source"], rs.MetadataValue.Text)


def test_output_defaults():
    out = rs.Output()

    assert out.value is None
    assert (out.output_name, out.metadata, out.data_version, out.tags) == (None, None, None, None)


def test_output_rejects_unencodable_metadata_at_construction():
    with pytest.raises(InvalidMetadataError):
        rs.Output(1, metadata={"payload": {"nested": True}})


def test_output_extra_arguments_are_keyword_only():
    with pytest.raises(TypeError):
        rs.Output(1, "output_name_positionally")


def test_output_value_is_unwrapped_for_the_handler(make_repo, recording_handler):
    @rs.Asset(io_handler=recording_handler)
    def warmest():
        return rs.Output({"station": "S4"}, metadata={"temp_c": 17.0}, tags=["derived"])

    repo = make_repo([warmest])
    assert repo.materialize().success

    assert [w["value"] for w in recording_handler.writes] == [{"station": "S4"}]
    assert repo.load_node("warmest") == {"station": "S4"}


def test_empty_output_persists_none(make_repo):
    @rs.Asset
    def nothing():
        return rs.Output()

    repo = make_repo([nothing])
    assert repo.materialize().success
    assert repo.load_node("nothing") is None


def test_output_name_equal_to_asset_name_is_accepted(make_repo):
    @rs.Asset
    def named_output():
        return rs.Output(3, output_name="named_output")

    repo = make_repo([named_output])
    assert repo.materialize().success
    assert repo.load_node("named_output") == 3


def test_output_name_different_from_asset_name_fails_the_step(make_repo):
    @rs.Asset
    def misnamed():
        return rs.Output(3, output_name="something_else")

    @rs.Asset
    def bystander():
        return "fine"

    repo = make_repo([misnamed, bystander])
    result = repo.materialize(raise_on_error=False)

    assert result.success is False
    assert [name for name, _ in result.failed_assets] == ["misnamed"]
    assert repo.load_node("bystander") == "fine"
    with pytest.raises(ExecutionError, match="misnamed"):
        repo.materialize(selection=["misnamed"])


def test_output_metadata_merges_with_context_metadata_and_wins(make_repo, run_materializations):
    @rs.Asset
    def merged(context: rs.AssetExecutionContext):
        context.add_output_metadata({"source": "body", "rows": 1})
        return rs.Output([1], metadata={"source": "output", "quality": "high"})

    repo = make_repo([merged])
    result = repo.materialize()

    stored = dict(run_materializations(repo.storage, result.run_id)["merged"].metadata)
    assert stored["source"] == "output"
    assert stored["rows"] == "1"
    assert stored["quality"] == "high"


def test_output_metadata_reaches_handler_on_entry(make_repo, recording_handler):
    @rs.Asset(io_handler=recording_handler)
    def with_output_metadata(context: rs.AssetExecutionContext):
        context.add_output_metadata({"source": "body", "rows": 1})
        return rs.Output([1], metadata={"source": "output"})

    repo = make_repo([with_output_metadata])
    repo.materialize()

    on_entry = recording_handler.writes[0]["output_metadata_on_entry"]
    assert on_entry["source"].raw_value() == "output"
    assert on_entry["rows"].raw_value() == 1


def test_output_data_version_is_stored(make_repo, run_materializations):
    @rs.Asset
    def versioned():
        return rs.Output(5, data_version="orders-2024-06-30")

    repo = make_repo([versioned])
    result = repo.materialize()

    event = run_materializations(repo.storage, result.run_id)["versioned"]
    assert event.data_version == "orders-2024-06-30"
    assert repo.storage.get_asset_record("versioned").last_data_version == "orders-2024-06-30"


# --- Materialization -------------------------------------------------------------------------


def test_materialization_exposes_its_arguments():
    mat = rs.Materialization(metadata={"http_status": 200}, data_version="msg-1", tags=["notify"])

    assert mat.output_name is None
    assert mat.data_version == "msg-1"
    assert mat.tags == ["notify"]
    assert isinstance(mat.metadata["http_status"], rs.MetadataValue.Int)


def test_materialization_arguments_are_keyword_only():
    with pytest.raises(TypeError):
        rs.Materialization({"http_status": 200})


def test_materialization_rejects_unencodable_metadata():
    with pytest.raises(InvalidMetadataError):
        rs.Materialization(metadata={"when": object()})


def test_materialization_skips_handle_output_and_records_event(make_repo, recording_handler, run_materializations):
    @rs.Asset(io_handler=recording_handler)
    def notify_slack():
        return rs.Materialization(metadata={"http_status": 200, "channel": "#data"}, data_version="msg-S4")

    repo = make_repo([notify_slack])
    result = repo.materialize()

    assert result.success
    assert recording_handler.writes == []
    event = run_materializations(repo.storage, result.run_id)["notify_slack"]
    assert event.data_version == "msg-S4"
    stored = dict(event.metadata)
    assert stored["http_status"] == "200"
    assert stored["channel"] == "#data"
    assert "storage" not in stored


def test_materialization_wins_over_context_registration(make_repo, run_materializations):
    @rs.Asset
    def pushed(context: rs.AssetExecutionContext):
        context.add_output_metadata({"target": "context", "attempts": 1})
        context.register_data_version("from-context")
        return rs.Materialization(metadata={"target": "materialization"}, data_version="from-result")

    repo = make_repo([pushed])
    result = repo.materialize()

    event = run_materializations(repo.storage, result.run_id)["pushed"]
    stored = dict(event.metadata)
    assert event.data_version == "from-result"
    assert stored["target"] == "materialization"
    assert stored["attempts"] == "1"


def test_materialization_without_data_version_uses_context_registration(make_repo, run_materializations):
    @rs.Asset
    def pushed(context: rs.AssetExecutionContext):
        context.register_data_version("from-context")
        return rs.Materialization(metadata={"ok": True})

    repo = make_repo([pushed])
    result = repo.materialize()

    assert run_materializations(repo.storage, result.run_id)["pushed"].data_version == "from-context"


# --- SelfDependency --------------------------------------------------------------------------


def test_self_dependency_is_none_first_then_previous_value(make_repo):
    seen = []

    @rs.Asset
    def seen_ids(self: rs.SelfDependency[set], new_batch):
        previous = self.get_inner()
        seen.append(previous)
        return (previous or set()) | set(new_batch)

    repo = make_repo([seen_ids], resources={"new_batch": [1, 2]})
    repo.materialize()
    assert seen == [None]
    assert repo.load_node("seen_ids") == {1, 2}

    repo.materialize()
    assert seen == [None, {1, 2}]


def test_self_dependency_creates_no_graph_edge(make_repo):
    @rs.Asset
    def counter(self: rs.SelfDependency[int]):
        return (self.get_inner() or 0) + 1

    repo = make_repo([counter])
    repo.validate()
    for _ in range(3):
        assert repo.materialize().success

    assert repo.load_node("counter") == 3


def test_self_dependency_loads_through_own_handler_with_type_hint(make_repo, recording_handler):
    @rs.Asset(io_handler=recording_handler)
    def snapshot(self: rs.SelfDependency[dict]):
        previous = self.get_inner() or {"runs": 0}
        return {"runs": previous["runs"] + 1}

    repo = make_repo([snapshot])
    repo.materialize()
    repo.materialize()

    assert repo.load_node("snapshot") == {"runs": 2}
    self_reads = [r for r in recording_handler.reads if r["downstream_asset"] == "snapshot"]
    assert len(self_reads) >= 1
    assert all(r["asset_name"] == "snapshot" for r in self_reads)
    assert self_reads[0]["type_hint"] is dict


def test_unparameterised_self_dependency_passes_type_hint_none(make_repo, recording_handler):
    @rs.Asset(io_handler=recording_handler)
    def untyped(self: rs.SelfDependency):
        return (self.get_inner() or 0) + 1

    repo = make_repo([untyped])
    repo.materialize()
    repo.materialize()

    assert repo.load_node("untyped") == 2
    assert [r["type_hint"] for r in recording_handler.reads if r["downstream_asset"] == "untyped"][:1] == [None]


def test_self_dependency_composes_with_context_upstream_and_resource(make_repo):
    @rs.Asset
    def increments():
        return 5

    @rs.Asset
    def running_total(context: rs.AssetExecutionContext, self: rs.SelfDependency[int], increments, scale):
        return (self.get_inner() or 0) + increments * scale

    repo = make_repo([increments, running_total], resources={"scale": 2})
    repo.materialize()
    repo.materialize()

    assert repo.load_node("running_total") == 20


def test_output_and_materialization_tags_are_recorded_on_the_event(make_repo, run_materializations):
    @rs.Asset
    def tagged_output():
        return rs.Output(1, metadata={"rows": 1}, tags=["derived", "daily"])

    @rs.Asset
    def tagged_materialization():
        return rs.Materialization(metadata={"rows": 2}, tags=["external-write"])

    @rs.Asset
    def untagged():
        return 3

    repo = make_repo([tagged_output, tagged_materialization, untagged])
    result = repo.materialize()
    events = run_materializations(repo.storage, result.run_id)
    output_metadata = dict(events["tagged_output"].metadata)
    assert (output_metadata["rows"], output_metadata["rivers/tags"]) == ("1", '["derived", "daily"]')
    assert dict(events["tagged_materialization"].metadata)["rivers/tags"] == '["external-write"]'
    assert "rivers/tags" not in dict(events["untagged"].metadata)
