"""assets.md sections 1.2 (context binding) and 13: ``AssetExecutionContext``."""

import pytest

import rivers as rs
from rivers.exceptions import ExecutionError, InvalidMetadataError

# --- injection -------------------------------------------------------------------------------


def test_context_is_injected_by_annotation_on_first_parameter(make_repo):
    seen = {}

    @rs.Asset
    def annotated(ctx: rs.AssetExecutionContext):
        seen["ctx"] = ctx
        return ctx.asset_name

    repo = make_repo([annotated])
    repo.materialize()

    assert isinstance(seen["ctx"], rs.AssetExecutionContext)
    assert repo.load_node("annotated") == "annotated"


def test_context_is_injected_by_the_name_context_without_annotation(make_repo):
    seen = {}

    @rs.Asset
    def by_name(context):
        seen["ctx"] = context
        return context.asset_name

    repo = make_repo([by_name])
    repo.materialize()

    assert isinstance(seen["ctx"], rs.AssetExecutionContext)
    assert repo.load_node("by_name") == "by_name"


def test_parameterised_context_annotation_is_injected(make_repo):
    from pydantic import BaseModel

    class Knobs(BaseModel):
        level: int = 2

    seen = {}

    @rs.Asset
    def configured(ctx: rs.AssetExecutionContext[Knobs]):
        seen["ctx"] = ctx
        return ctx.config.level

    repo = make_repo([configured])
    repo.materialize()

    assert isinstance(seen["ctx"], rs.AssetExecutionContext)
    assert repo.load_node("configured") == 2


def test_parameter_named_context_receives_an_asset_named_context(make_repo):
    @rs.Asset(name="context")
    def context_source():
        return 41

    @rs.Asset
    def uses_context_asset(context):
        return context + 1

    repo = make_repo([context_source, uses_context_asset])
    assert repo.materialize().success
    assert repo.load_node("uses_context_asset") == 42


def test_asset_without_context_parameter_runs_without_one(make_repo):
    @rs.Asset
    def contextless():
        return "no context needed"

    repo = make_repo([contextless])
    assert repo.materialize().success
    assert repo.load_node("contextless") == "no context needed"


def test_context_in_non_first_position_fails_the_step_with_execution_error(make_repo):
    @rs.Asset
    def late_context(number, ctx: rs.AssetExecutionContext):
        return number

    repo = make_repo([late_context], resources={"number": 3})
    with pytest.raises(ExecutionError, match=r"Context must be the first parameter of 'late_context'"):
        repo.materialize()


def test_misplaced_context_is_reported_in_failed_assets(make_repo):
    @rs.Asset
    def late_context(number, ctx: rs.AssetExecutionContext):
        return number

    repo = make_repo([late_context], resources={"number": 3})
    result = repo.materialize(raise_on_error=False)

    assert result.success is False
    assert len(result.failed_assets) == 1
    name, message = result.failed_assets[0]
    assert name == "late_context"
    assert "Context must be the first parameter of 'late_context'" in message


# --- attributes at run time ------------------------------------------------------------------


def test_runtime_context_exposes_definition_attributes(make_repo):
    seen = {}

    @rs.Asset(
        tags=["ingest"],
        kinds="json",
        group="weather",
        code_version="2",
        metadata={"owner": "wx-team"},
    )
    def readings(context: rs.AssetExecutionContext):
        seen.update(
            asset_name=context.asset_name,
            tags=context.tags,
            kinds=context.kinds,
            group=context.group,
            code_version=context.code_version,
            asset_metadata=context.asset_metadata,
            is_multi_asset=context.is_multi_asset,
            output_selection=context.output_selection,
            config=context.config,
            log_name=context.log.name,
        )
        return []

    repo = make_repo([readings])
    repo.materialize()

    assert seen == {
        "asset_name": "readings",
        "tags": ["ingest"],
        "kinds": ["json"],
        "group": "weather",
        "code_version": "2",
        "asset_metadata": {"owner": "wx-team"},
        "is_multi_asset": False,
        "output_selection": ["readings"],
        "config": None,
        "log_name": "rivers.assets.readings",
    }


def test_runtime_context_of_unpartitioned_asset_has_no_partition(make_repo):
    seen = {}

    @rs.Asset
    def unpartitioned(context: rs.AssetExecutionContext):
        seen["partition"] = context.partition
        seen["has_partition_key"] = context.has_partition_key
        seen["time_window"] = context.partition_time_window
        try:
            _ = context.partition_key
        except ValueError as err:
            seen["partition_key_error"] = err
        return 1

    repo = make_repo([unpartitioned])
    repo.materialize()

    assert seen["partition"] is None
    assert seen["has_partition_key"] is False
    assert seen["time_window"] is None
    assert isinstance(seen["partition_key_error"], ValueError)


def test_context_logger_is_named_after_the_asset(make_repo):
    names = []

    @rs.Asset(name="wx_readings")
    def fetch(context: rs.AssetExecutionContext):
        names.append(context.log.name)
        return 0

    repo = make_repo([fetch])
    repo.materialize()

    assert names == ["rivers.assets.wx_readings"]


def test_context_exposes_no_resources_attribute(make_repo):
    seen = {}

    @rs.Asset
    def introspect(context: rs.AssetExecutionContext):
        seen["has_resources"] = hasattr(context, "resources")
        return 1

    repo = make_repo([introspect], resources={"anything": object()})
    repo.materialize()

    assert seen == {"has_resources": False}


# --- directly constructed context ------------------------------------------------------------


def test_directly_constructed_context_defaults():
    ctx = rs.AssetExecutionContext("direct")

    assert ctx.asset_name == "direct"
    assert ctx.tags is None
    assert ctx.kinds == []
    assert ctx.group is None
    assert ctx.code_version is None
    assert ctx.asset_metadata is None
    assert ctx.partition is None
    assert ctx.is_multi_asset is False
    assert ctx.output_selection == []
    assert ctx.config is None
    assert ctx.output_metadata is None
    assert ctx.has_partition_key is False
    assert ctx.partition_time_window is None
    assert ctx.log.name == "rivers.assets.direct"
    with pytest.raises(ValueError):
        _ = ctx.partition_key


def test_directly_constructed_context_keeps_given_attributes():
    ctx = rs.AssetExecutionContext(
        "manual",
        tags=["t1"],
        kinds=["table"],
        group="g",
        code_version="5",
        asset_metadata={"k": "v"},
        is_multi_asset=False,
        output_selection=["manual"],
    )

    assert (ctx.tags, ctx.kinds, ctx.group, ctx.code_version) == (["t1"], ["table"], "g", "5")
    assert ctx.asset_metadata == {"k": "v"}
    assert ctx.output_selection == ["manual"]


def test_directly_constructed_context_can_be_passed_to_a_direct_call():
    @rs.Asset
    def greet(context: rs.AssetExecutionContext):
        return f"hello from {context.asset_name}"

    assert greet(rs.AssetExecutionContext("greet")) == "hello from greet"


def test_add_output_metadata_accumulates_and_later_keys_win():
    ctx = rs.AssetExecutionContext("accumulating")
    assert ctx.output_metadata is None

    ctx.add_output_metadata({"rows": 1, "source": "api"})
    ctx.add_output_metadata({"rows": 2, "ok": True})

    metadata = ctx.output_metadata
    assert set(metadata) == {"rows", "source", "ok"}
    assert isinstance(metadata["rows"], rs.MetadataValue.Int)
    assert metadata["rows"].raw_value() == 2
    assert isinstance(metadata["source"], rs.MetadataValue.Text)
    assert metadata["source"].raw_value() == "api"
    assert isinstance(metadata["ok"], rs.MetadataValue.Bool)


def test_add_output_metadata_rejects_unencodable_values():
    ctx = rs.AssetExecutionContext("strict")

    with pytest.raises(InvalidMetadataError):
        ctx.add_output_metadata({"payload": {"nested": 1}})


def test_register_data_version_is_drained_once():
    ctx = rs.AssetExecutionContext("versioned")
    assert ctx.drain_data_version() is None

    ctx.register_data_version("v-1")
    ctx.register_data_version("v-2")

    assert ctx.drain_data_version() == "v-2"
    assert ctx.drain_data_version() is None


# --- output metadata flowing to the handler and the event ------------------------------------


def test_body_metadata_reaches_handler_and_stored_event(make_repo, recording_handler, run_materializations):
    @rs.Asset(io_handler=recording_handler)
    def measured(context: rs.AssetExecutionContext):
        context.add_output_metadata({"row_count": 2, "source": "https://example.org/wx"})
        return [1, 2]

    repo = make_repo([measured])
    result = repo.materialize()

    on_entry = recording_handler.writes[0]["output_metadata_on_entry"]
    assert on_entry["row_count"].raw_value() == 2
    assert on_entry["source"].raw_value() == "https://example.org/wx"

    event = run_materializations(repo.storage, result.run_id)["measured"]
    stored = dict(event.metadata)
    assert stored["row_count"] == "2"
    assert stored["source"] == "https://example.org/wx"
