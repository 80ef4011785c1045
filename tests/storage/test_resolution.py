"""storage-and-io.md "IO-handler resolution chain and resource references", plus the metadata and
type-hint flow between assets and handlers (R49-R56)."""

import pytest

import rivers as rs
from rivers.exceptions import ConfigurationError, NodeNotFoundError


def test_default_handler_is_one_shared_in_memory_handler(make_repo):
    @rs.Asset
    def first():
        return 1

    @rs.Asset
    def second(first):
        return first + 1

    @rs.Asset
    def third():
        return 3

    repo = make_repo([first, second, third])
    handlers = [repo.io_handler_for_output(name) for name in ("first", "second", "third")]

    assert isinstance(handlers[0], rs.InMemoryIOHandler)
    assert handlers[0] is handlers[1] is handlers[2]


def test_each_repository_has_its_own_default_handler(make_repo):
    @rs.Asset
    def shared_name():
        return 1

    first_repo = make_repo([shared_name])
    second_repo = make_repo([shared_name])

    assert first_repo.io_handler_for_output("shared_name") is not second_repo.io_handler_for_output("shared_name")
    assert isinstance(second_repo.io_handler_for_output("shared_name"), rs.InMemoryIOHandler)


def test_default_handler_holds_materialized_values(make_repo):
    @rs.Asset
    def produced():
        return {"answer": 42}

    repo = make_repo([produced])
    repo.materialize()

    handler = repo.io_handler_for_output("produced")
    assert handler.load_input(rs.InputContext("produced", "produced")) == {"answer": 42}
    assert repo.load_node("produced") == {"answer": 42}


def test_configured_handler_is_returned_as_is(make_repo, handler_cls):
    handler = handler_cls()

    @rs.Asset(io_handler=handler)
    def configured():
        return 1

    @rs.Asset
    def defaulted():
        return 2

    repo = make_repo([configured, defaulted])

    assert repo.io_handler_for_output("configured") is handler
    assert isinstance(repo.io_handler_for_output("defaulted"), rs.InMemoryIOHandler)


def test_string_reference_resolves_to_the_exact_resource(make_repo, handler_cls):
    shared = handler_cls()

    @rs.Asset(io_handler="blob")
    def catalog():
        return {"items": 3}

    @rs.Asset(io_handler="blob")
    def prices():
        return [1]

    repo = make_repo([catalog, prices], resources={"blob": shared})

    assert repo.io_handler_for_output("catalog") is shared
    assert repo.io_handler_for_output("prices") is shared
    repo.materialize()
    assert sorted(w["asset_name"] for w in shared.writes) == ["catalog", "prices"]


def test_unknown_resource_key_raises_configuration_error_at_resolve():
    @rs.Asset(io_handler="blob")
    def catalog():
        return 1

    repo = rs.CodeRepository(assets=[catalog], default_executor=rs.Executor.in_process())
    with pytest.raises(ConfigurationError, match="blob"):
        repo.resolve(storage=rs.Storage.memory())


def test_io_handler_for_unknown_node_raises_node_not_found(make_repo):
    @rs.Asset
    def known():
        return 1

    repo = make_repo([known])
    with pytest.raises(NodeNotFoundError, match="unknown_node"):
        repo.io_handler_for_output("unknown_node")


def test_default_configuration_materializes_and_loads_end_to_end():
    @rs.Asset
    def zero_config_source():
        return [3, 4]

    @rs.Asset
    def zero_config_sum(zero_config_source):
        return sum(zero_config_source)

    with rs.CodeRepository(assets=[zero_config_source, zero_config_sum]) as repo:
        assert repo.materialize().success
        assert repo.load_node("zero_config_sum") == 7


# --- metadata and data versions through the handler ------------------------------------------


def test_handler_metadata_is_applied_last_on_the_event(make_repo, handler_cls, run_materializations):
    handler = handler_cls(extra_metadata={"source": "handler", "path": "/lake/orders"})

    @rs.Asset(io_handler=handler)
    def orders(context: rs.AssetExecutionContext):
        context.add_output_metadata({"source": "body", "rows": 2})
        return rs.Output([1, 2], metadata={"source": "output", "quality": "ok"})

    repo = make_repo([orders])
    result = repo.materialize()

    on_entry = handler.writes[0]["output_metadata_on_entry"]
    assert {k: v.raw_value() for k, v in on_entry.items()} == {"source": "output", "rows": 2, "quality": "ok"}
    stored = dict(run_materializations(repo.storage, result.run_id)["orders"].metadata)
    assert stored["source"] == "handler"
    assert stored["path"] == "/lake/orders"
    assert stored["rows"] == "2"
    assert stored["quality"] == "ok"


def test_default_handler_metadata_is_on_the_event(make_repo, run_materializations):
    @rs.Asset
    def in_memory():
        return [1, 2, 3]

    repo = make_repo([in_memory])
    result = repo.materialize()

    stored = dict(run_materializations(repo.storage, result.run_id)["in_memory"].metadata)
    assert stored["storage"] == "memory"
    assert int(stored["size_bytes"]) > 0


def test_materialization_result_skips_handle_output_but_stores_event(make_repo, handler_cls, run_materializations):
    handler = handler_cls()

    @rs.Asset(io_handler=handler)
    def side_effect():
        return rs.Materialization(metadata={"pushed": 3})

    repo = make_repo([side_effect])
    result = repo.materialize()

    assert handler.writes == []
    event = run_materializations(repo.storage, result.run_id)["side_effect"]
    assert ("pushed", "3") in event.metadata
    assert isinstance(event.data_version, str) and event.data_version != ""


def test_handler_registered_data_version_is_stored(make_repo, handler_cls, run_materializations):
    handler = handler_cls(register_version="sha-123")

    @rs.Asset(io_handler=handler)
    def hashed_output():
        return b"payload"

    repo = make_repo([hashed_output])
    result = repo.materialize()

    assert run_materializations(repo.storage, result.run_id)["hashed_output"].data_version == "sha-123"
    assert repo.storage.get_asset_record("hashed_output").last_data_version == "sha-123"


# --- type hints and contexts seen by handlers ------------------------------------------------


def test_output_context_type_hint_is_the_return_annotation(make_repo, handler_cls):
    handler = handler_cls()

    @rs.Asset(io_handler=handler)
    def annotated() -> dict:
        return {}

    @rs.Asset(io_handler=handler)
    def unannotated():
        return {}

    @rs.Asset(io_handler=handler)
    def wrapped() -> rs.Output:
        return rs.Output({})

    repo = make_repo([annotated, unannotated, wrapped])
    repo.materialize()

    hints = {w["asset_name"]: w["type_hint"] for w in handler.writes}
    assert hints == {"annotated": dict, "unannotated": None, "wrapped": None}


def test_output_context_carries_static_metadata(make_repo, handler_cls):
    handler = handler_cls()

    @rs.Asset(io_handler=handler, metadata={"delta/mode": "append", "owner": "team"})
    def described():
        return 1

    repo = make_repo([described])
    repo.materialize()

    assert handler.writes[0]["asset_metadata"] == {"delta/mode": "append", "owner": "team"}
    assert handler.writes[0]["asset_name"] == "described"


def test_input_context_type_hint_is_the_parameter_annotation(make_repo, handler_cls):
    handler = handler_cls()

    @rs.Asset(io_handler=handler)
    def upstream_rows():
        return [1]

    @rs.Asset
    def typed_consumer(upstream_rows: list):
        return upstream_rows

    repo = make_repo([upstream_rows, typed_consumer])
    repo.materialize()

    reads = [r for r in handler.reads if r["downstream_asset"] == "typed_consumer"]
    assert [(r["asset_name"], r["type_hint"]) for r in reads] == [("upstream_rows", list)]


def test_load_node_passes_type_hint_and_own_name(make_repo, handler_cls):
    handler = handler_cls()

    @rs.Asset(io_handler=handler)
    def loadable():
        return {"k": 1}

    repo = make_repo([loadable])
    repo.materialize()

    assert repo.load_node("loadable", type_hint=dict) == {"k": 1}
    assert handler.reads[-1]["asset_name"] == "loadable"
    assert handler.reads[-1]["downstream_asset"] == "loadable"
    assert handler.reads[-1]["type_hint"] is dict


def test_input_override_handler_and_metadata_apply_to_one_consumer_only(make_repo, handler_cls):
    own = handler_cls()
    override = handler_cls()
    override._values["source_table"] = "from-override"

    @rs.Asset(io_handler=own, metadata={"format": "parquet"})
    def source_table():
        return "from-own"

    @rs.Asset(deps=[rs.AssetDef.input("source_table", io_handler=override, metadata={"columns": "a"})])
    def special(source_table):
        return source_table

    @rs.Asset
    def ordinary(source_table):
        return source_table

    repo = make_repo([source_table, special, ordinary])
    repo.materialize()

    assert repo.load_node("special") == "from-override"
    assert repo.load_node("ordinary") == "from-own"
    assert [w["asset_name"] for w in own.writes] == ["source_table"]
    assert override.writes == []
    assert [(r["downstream_asset"], r["asset_metadata"]) for r in override.reads] == [("special", {"columns": "a"})]
    own_reads = [r for r in own.reads if r["downstream_asset"] == "ordinary"]
    assert [r["asset_metadata"] for r in own_reads] == [{"format": "parquet"}]
