"""assets.md sections 10 and 11: ``MetadataValue`` factories, variants, coercion, equality and
``Schema`` (the latter only when pyarrow is importable)."""

from datetime import datetime, timezone

import pytest

import rivers as rs
from rivers.exceptions import InvalidMetadataError

MV = rs.MetadataValue

# (factory name, args, kwargs, variant class name, attributes, raw_value)
SIMPLE_FACTORIES = [
    ("text", ("hello",), {}, "Text", {"value": "hello"}, "hello"),
    ("int", (42,), {}, "Int", {"value": 42}, 42),
    ("float_", (2.5,), {}, "Float", {"value": 2.5}, 2.5),
    ("bool_", (True,), {}, "Bool", {"value": True}, True),
    ("url", ("https://example.org/wx",), {}, "Url", {"value": "https://example.org/wx"}, "https://example.org/wx"),
    ("path", ("/srv/data/a.pkl",), {}, "Path", {"value": "/srv/data/a.pkl"}, "/srv/data/a.pkl"),
    ("json", ('{"a": [1, 2]}',), {}, "Json", {"value": '{"a": [1, 2]}'}, '{"a": [1, 2]}'),
    ("md", ("# Title",), {}, "Markdown", {"value": "# Title"}, "# Title"),
    ("timestamp", (1717000000.5,), {}, "Timestamp", {"value": 1717000000.5}, 1717000000.5),
    ("bytes", (2048,), {}, "Bytes", {"value": 2048}, 2048),
    ("duration", (1.25,), {}, "Duration", {"value": 1.25}, 1.25),
    (
        "sql",
        ("select 1",),
        {"dialect": "duckdb"},
        "Sql",
        {"query": "select 1", "dialect": "duckdb"},
        "select 1",
    ),
    (
        "code_block",
        ("print(1)",),
        {"language": "python"},
        "CodeBlock",
        {"code": "print(1)", "language": "python"},
        "print(1)",
    ),
    (
        "image",
        ("data:image/png;base64,AAAA",),
        {},
        "Image",
        {"value": "data:image/png;base64,AAAA"},
        "data:image/png;base64,AAAA",
    ),
    ("percentage", (87.5,), {}, "Percentage", {"value": 87.5}, 87.5),
    ("data_version", ("dv-7",), {}, "DataVersion", {"value": "dv-7"}, "dv-7"),
]

ALL_FACTORY_NAMES = [
    "text",
    "int",
    "float_",
    "bool_",
    "url",
    "path",
    "json",
    "md",
    "timestamp",
    "null",
    "bytes",
    "duration",
    "sql",
    "code_block",
    "image",
    "percentage",
    "list_",
    "date_range",
    "schema",
    "data_version",
]

ALL_VARIANT_NAMES = [
    "Text",
    "Int",
    "Float",
    "Bool",
    "Url",
    "Path",
    "Json",
    "Markdown",
    "Timestamp",
    "Null",
    "Bytes",
    "Duration",
    "Sql",
    "CodeBlock",
    "Image",
    "Percentage",
    "List",
    "DateRange",
    "Schema",
    "DataVersion",
]


def test_all_twenty_factories_exist():
    assert len(ALL_FACTORY_NAMES) == 20
    missing = [name for name in ALL_FACTORY_NAMES if not callable(getattr(MV, name, None))]
    assert missing == []


def test_all_twenty_variant_classes_subclass_metadata_value():
    assert len(ALL_VARIANT_NAMES) == 20
    for name in ALL_VARIANT_NAMES:
        variant = getattr(MV, name)
        assert isinstance(variant, type), name
        assert issubclass(variant, MV), name


@pytest.mark.parametrize("name", ["float", "bool", "list"])
def test_builtin_shadowing_factory_names_do_not_exist(name):
    assert not hasattr(MV, name)


@pytest.mark.parametrize(
    ("factory", "args", "kwargs", "variant", "attributes", "raw"),
    SIMPLE_FACTORIES,
    ids=[row[0] for row in SIMPLE_FACTORIES],
)
def test_factory_returns_variant_with_attributes_and_raw_value(factory, args, kwargs, variant, attributes, raw):
    value = getattr(MV, factory)(*args, **kwargs)

    assert isinstance(value, getattr(MV, variant))
    assert isinstance(value, MV)
    for attribute, expected in attributes.items():
        assert getattr(value, attribute) == expected
    assert value.raw_value() == raw
    assert type(value.raw_value()) is type(raw)


def test_sql_and_code_block_optional_arguments_default_to_none():
    assert MV.sql("select 1").dialect is None
    assert MV.code_block("x = 1").language is None


def test_null_factory():
    value = MV.null()

    assert isinstance(value, MV.Null)
    assert value.raw_value() is None


def test_markdown_factory_is_named_md():
    assert isinstance(MV.md("**bold**"), MV.Markdown)


def test_list_factory_keeps_nested_metadata_values():
    nested = [MV.int(1), MV.text("two")]
    value = MV.list_(nested)

    assert isinstance(value, MV.List)
    assert len(value.values) == 2
    raw = value.raw_value()
    assert isinstance(raw, list)
    assert [type(item) for item in raw] == [MV.Int, MV.Text]
    assert [item.raw_value() for item in raw] == [1, "two"]


def test_list_factory_coerces_plain_primitives():
    value = MV.list_([1, "a", True, None, 2.5])

    assert [type(item) for item in value.values] == [MV.Int, MV.Text, MV.Bool, MV.Null, MV.Float]


def test_list_factory_rejects_unencodable_items():
    with pytest.raises(InvalidMetadataError):
        MV.list_([{"a": 1}])


def test_date_range_keeps_half_open_bounds():
    start = datetime(2024, 3, 5, tzinfo=timezone.utc)
    end = datetime(2024, 3, 6, tzinfo=timezone.utc)
    value = MV.date_range(start, end)

    assert isinstance(value, MV.DateRange)
    assert (value.start, value.end) == (start, end)
    assert value.raw_value() == (start, end)


@pytest.mark.parametrize("factory", ["timestamp", "duration", "percentage", "float_"])
def test_float_factories_accept_ints(factory):
    value = getattr(MV, factory)(5)

    assert value.raw_value() == 5.0
    assert isinstance(value.raw_value(), float)


@pytest.mark.parametrize(
    ("factory", "bad"),
    [
        ("int", "3"),
        ("text", 3),
        ("float_", "2.5"),
        ("bool_", "yes"),
        ("url", 1),
        ("bytes", "1kb"),
        ("timestamp", "yesterday"),
    ],
)
def test_factories_reject_wrong_argument_types(factory, bad):
    with pytest.raises(TypeError):
        getattr(MV, factory)(bad)


def test_percentage_range_and_json_syntax_are_not_validated():
    assert MV.percentage(250.0).raw_value() == 250.0
    assert MV.json("{not json").raw_value() == "{not json"


def test_schema_factory_rejects_non_arrow_objects():
    with pytest.raises(TypeError):
        MV.schema({"sku": "string"})


# --- equality and repr -----------------------------------------------------------------------


def test_values_with_same_variant_and_attributes_are_equal():
    assert MV.int(42) == MV.int(42)
    assert MV.text("a") == MV.text("a")
    assert MV.sql("select 1", dialect="duckdb") == MV.sql("select 1", dialect="duckdb")
    assert MV.null() == MV.null()


def test_values_differing_in_variant_or_attributes_are_not_equal():
    assert MV.int(42) != MV.int(43)
    assert MV.int(1) != MV.float_(1.0)
    assert MV.text("a") != MV.url("a")
    assert MV.sql("select 1", dialect="duckdb") != MV.sql("select 1", dialect="postgres")


def test_repr_names_variant_and_value():
    assert repr(MV.int(42)) == "MetadataValue.Int(42)"
    assert "MetadataValue.Text" in repr(MV.text("hi"))
    assert "hi" in repr(MV.text("hi"))


# --- coercion --------------------------------------------------------------------------------

COERCIONS = [
    (True, "Bool", True),
    (False, "Bool", False),
    (3, "Int", 3),
    (2.5, "Float", 2.5),
    ("x", "Text", "x"),
    (None, "Null", None),
]


@pytest.mark.parametrize(("plain", "variant", "raw"), COERCIONS)
def test_output_context_coerces_plain_values(plain, variant, raw):
    ctx = rs.OutputContext("coerced")
    ctx.add_output_metadata({"key": plain})

    value = ctx.output_metadata["key"]
    assert type(value) is getattr(MV, variant)
    assert value.raw_value() == raw


@pytest.mark.parametrize(("plain", "variant", "raw"), COERCIONS)
def test_asset_context_coerces_plain_values(plain, variant, raw):
    ctx = rs.AssetExecutionContext("coerced")
    ctx.add_output_metadata({"key": plain})

    assert type(ctx.output_metadata["key"]) is getattr(MV, variant)


@pytest.mark.parametrize(("plain", "variant", "raw"), COERCIONS)
def test_output_and_materialization_coerce_plain_values(plain, variant, raw):
    assert type(rs.Output(1, metadata={"key": plain}).metadata["key"]) is getattr(MV, variant)
    assert type(rs.Materialization(metadata={"key": plain}).metadata["key"]) is getattr(MV, variant)


def test_metadata_values_are_kept_unchanged():
    original = MV.url("https://example.org")
    ctx = rs.OutputContext("kept")
    ctx.add_output_metadata({"link": original})

    assert isinstance(ctx.output_metadata["link"], MV.Url)
    assert ctx.output_metadata["link"] == original


@pytest.mark.parametrize(
    "bad",
    [{"a": 1}, [1, 2], {1, 2}, datetime(2024, 1, 1), object(), (1, 2)],
    ids=["dict", "list", "set", "datetime", "object", "tuple"],
)
def test_unencodable_values_raise_invalid_metadata_error_everywhere(bad):
    with pytest.raises(InvalidMetadataError):
        rs.OutputContext("bad").add_output_metadata({"key": bad})
    with pytest.raises(InvalidMetadataError):
        rs.AssetExecutionContext("bad").add_output_metadata({"key": bad})
    with pytest.raises(InvalidMetadataError):
        rs.Output(1, metadata={"key": bad})
    with pytest.raises(InvalidMetadataError):
        rs.Materialization(metadata={"key": bad})


def test_data_version_metadata_does_not_set_the_event_data_version(make_repo, run_materializations):
    @rs.Asset
    def displayed(context: rs.AssetExecutionContext):
        context.add_output_metadata({"upstream_version": MV.data_version("display-only")})
        return 1

    repo = make_repo([displayed])
    result = repo.materialize()

    event = run_materializations(repo.storage, result.run_id)["displayed"]
    assert dict(event.metadata)["upstream_version"] == "display-only"
    assert event.data_version != "display-only"


def test_stored_metadata_renders_text_verbatim_and_numbers_in_decimal(make_repo, run_materializations):
    @rs.Asset
    def rendered(context: rs.AssetExecutionContext):
        context.add_output_metadata({"rows": 1234, "owner": "data team", "link": MV.url("https://x.org/a")})
        return 1

    repo = make_repo([rendered])
    result = repo.materialize()

    stored = dict(run_materializations(repo.storage, result.run_id)["rendered"].metadata)
    assert stored["rows"] == "1234"
    assert stored["owner"] == "data team"
    assert stored["link"] == "https://x.org/a"


# --- Schema (optional pyarrow) ---------------------------------------------------------------


@pytest.fixture
def pa():
    return pytest.importorskip("pyarrow")


def test_schema_names_and_length(pa):
    schema = rs.Schema(pa.schema([("sku", pa.string()), ("qty", pa.int32())]))

    assert schema.names == ["sku", "qty"]
    assert len(schema) == 2


def test_schema_equality_and_hash_are_structural(pa):
    first = rs.Schema(pa.schema([("sku", pa.string()), ("qty", pa.int32())]))
    same = rs.Schema(pa.schema([("sku", pa.string()), ("qty", pa.int32())]))
    other_type = rs.Schema(pa.schema([("sku", pa.string()), ("qty", pa.int64())]))
    not_nullable = rs.Schema(pa.schema([pa.field("sku", pa.string(), nullable=False), ("qty", pa.int32())]))

    assert first == same
    assert hash(first) == hash(same)
    assert first != other_type
    assert first != not_nullable


def test_schema_exports_arrow_c_schema(pa):
    original = pa.schema([("sku", pa.string()), ("qty", pa.int32())])
    schema = rs.Schema(original)

    assert pa.schema(schema) == original


def test_schema_ipc_round_trip(pa):
    schema = rs.Schema(pa.schema([("sku", pa.string()), ("qty", pa.int32())]))
    ipc = schema.to_ipc()

    assert isinstance(ipc, bytes)
    assert rs.Schema.from_ipc(ipc) == schema


def test_schema_from_invalid_ipc_bytes_raises_value_error():
    with pytest.raises(ValueError):
        rs.Schema.from_ipc(b"definitely not arrow ipc")


def test_schema_constructor_rejects_non_arrow_objects():
    with pytest.raises(TypeError):
        rs.Schema(["sku", "qty"])


def test_schema_metadata_value_stores_ipc_bytes(pa):
    value = MV.schema(pa.schema([("sku", pa.string())]))

    assert isinstance(value, MV.Schema)
    assert isinstance(value.ipc_bytes, bytes)
    assert len(value.ipc_bytes) > 0
    raw = value.raw_value()
    assert isinstance(raw, rs.Schema)
    assert raw.names == ["sku"]


def test_arrow_schema_is_coerced_to_schema_metadata(pa):
    ctx = rs.OutputContext("typed")
    ctx.add_output_metadata(
        {"schema": pa.schema([("a", pa.int64())]), "wrapped": rs.Schema(pa.schema([("b", pa.int8())]))}
    )

    assert isinstance(ctx.output_metadata["schema"], MV.Schema)
    assert isinstance(ctx.output_metadata["wrapped"], MV.Schema)
    assert ctx.output_metadata["wrapped"].raw_value().names == ["b"]
