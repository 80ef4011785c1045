"""assets.md sections 1, 1.1, 1.2 and 12: the ``@rs.Asset`` decorator on single assets."""

import asyncio

import pytest

import rivers as rs
from rivers.exceptions import AssetDefinitionError, ConfigurationError

# --- decorator forms -----------------------------------------------------------------------


def test_bare_decorator_returns_single_asset_named_after_function():
    @rs.Asset
    def daily_orders():
        return [1, 2]

    assert isinstance(daily_orders, rs.SingleAsset)
    assert isinstance(daily_orders, rs.Asset)
    assert daily_orders.name == "daily_orders"


def test_parameterised_decorator_uses_explicit_name():
    @rs.Asset(name="orders_v2")
    def build_orders():
        return []

    assert isinstance(build_orders, rs.SingleAsset)
    assert build_orders.name == "orders_v2"


def test_parameterised_decorator_without_name_defaults_to_function_name():
    @rs.Asset(group="sales")
    def monthly_revenue():
        return 0

    assert monthly_revenue.name == "monthly_revenue"
    assert monthly_revenue.group == "sales"


def test_asset_called_with_no_arguments_returns_a_decorator():
    decorator = rs.Asset()

    def plain_numbers():
        return [1, 2, 3]

    asset = decorator(plain_numbers)
    assert isinstance(asset, rs.SingleAsset)
    assert asset.name == "plain_numbers"


def test_single_asset_sets_exactly_one_type_flag():
    @rs.Asset
    def flagged():
        return 1

    flags = (flagged.is_single, flagged.is_multi, flagged.is_graph, flagged.is_external)
    assert flags == (True, False, False, False)
    assert flagged.observe_fn is None


def test_all_sixteen_keyword_parameters_are_accepted():
    handler = rs.InMemoryIOHandler()
    policy = rs.RetryPolicy(max_retries=2)
    compute = rs.Compute(cpu="1", memory="1Gi")

    def announce(ctx):
        return None

    hook = rs.Hook.success(announce)

    @rs.Asset(
        name="fully_specified",
        tags=["ingest", "nightly"],
        kinds=["table", "delta"],
        group="warehouse",
        code_version="7",
        io_handler=handler,
        metadata={"owner": "data-team"},
        partitions_def=None,
        deps=[rs.AssetDef.dep("nightly_refresh")],
        hooks=[hook],
        automation_condition=None,
        backfill_strategy=None,
        pool="db",
        pool_slots=2,
        retry=policy,
        compute=compute,
    )
    def build():
        return 1

    assert build.name == "fully_specified"
    assert build.tags == ["ingest", "nightly"]
    assert build.kinds == ["table", "delta"]
    assert build.group == "warehouse"
    assert build.code_version == "7"
    assert build.metadata == {"owner": "data-team"}
    assert build.partitions_def is None
    assert build.automation_condition is None
    assert build.partition_mapping is None
    assert build.pool == [("db", 2)]
    assert len(build.hooks) == 1
    assert isinstance(build.hooks[0], rs.Hook.Success)


@pytest.mark.parametrize("keyword", ["owners", "description"])
def test_owners_and_description_keywords_are_rejected(keyword):
    with pytest.raises(TypeError, match=keyword):

        @rs.Asset(**{keyword: "data-team"})
        def rejected():
            return 1


def test_asset_has_no_public_io_handler_property():
    @rs.Asset(io_handler=rs.InMemoryIOHandler())
    def handled():
        return 1

    assert not hasattr(handled, "io_handler")


# --- normalisation of attributes --------------------------------------------------------------


def test_single_kind_string_is_normalised_to_one_element_list():
    @rs.Asset(kinds="table")
    def tabular():
        return 1

    assert tabular.kinds == ["table"]


def test_omitted_kinds_tags_and_group_have_documented_defaults():
    @rs.Asset
    def bare():
        return 1

    assert bare.kinds == []
    assert bare.tags is None
    assert bare.group is None
    assert bare.code_version is None
    assert bare.metadata is None
    assert bare.hooks is None
    assert bare.pool == []
    assert bare.partition_mapping is None


@pytest.mark.parametrize(
    ("pool", "pool_slots", "expected"),
    [
        ("db", 2, [("db", 2)]),
        ("db", None, [("db", 1)]),
        (["a", "b"], None, [("a", 1), ("b", 1)]),
        (["db", "api"], {"db": 3}, [("db", 3), ("api", 1)]),
        (["api", "db"], 4, [("api", 4), ("db", 4)]),
    ],
)
def test_pool_is_normalised_to_key_slot_pairs_in_pool_order(pool, pool_slots, expected):
    @rs.Asset(pool=pool, pool_slots=pool_slots)
    def pooled():
        return 1

    assert pooled.pool == expected


def test_pool_slots_without_pool_is_rejected():
    with pytest.raises(AssetDefinitionError):

        @rs.Asset(pool_slots=2)
        def orphan_slots():
            return 1


def test_pool_slots_key_outside_the_pools_is_rejected():
    with pytest.raises(AssetDefinitionError):

        @rs.Asset(pool=["db"], pool_slots={"gpu": 2})
        def foreign_slot_key():
            return 1


@pytest.mark.parametrize("slots", [0, -1, {"db": 0}])
def test_pool_slot_count_below_one_is_rejected(slots):
    with pytest.raises(AssetDefinitionError):

        @rs.Asset(pool="db", pool_slots=slots)
        def too_few_slots():
            return 1


def test_partition_mapping_is_none_when_no_dep_sets_one():
    @rs.Asset(deps=[rs.AssetDef.input("upstream_rows"), rs.AssetDef.dep("refresh")])
    def consumer(upstream_rows):
        return upstream_rows

    assert consumer.partition_mapping is None


# --- sync / async ----------------------------------------------------------------------------


def test_is_async_reflects_coroutine_functions():
    @rs.Asset
    def sync_asset():
        return 1

    @rs.Asset
    async def async_asset():
        return 2

    assert sync_asset.is_async is False
    assert async_asset.is_async is True


def test_is_async_is_true_for_async_generator_functions():
    @rs.Asset
    async def streamed():
        yield 1

    assert streamed.is_async is True


def test_async_asset_materializes_and_feeds_sync_downstream(make_repo):
    @rs.Asset
    async def quotes():
        await asyncio.sleep(0)
        return {"EUR": 1.08, "GBP": 1.27}

    @rs.Asset
    def strongest(quotes):
        return max(quotes, key=quotes.get)

    repo = make_repo([quotes, strongest])
    result = repo.materialize()

    assert result.success
    assert repo.load_node("quotes") == {"EUR": 1.08, "GBP": 1.27}
    assert repo.load_node("strongest") == "GBP"


def test_sync_asset_feeds_async_downstream(make_repo):
    @rs.Asset
    def base_numbers():
        return [1, 2, 3]

    @rs.Asset
    async def doubled(base_numbers):
        await asyncio.sleep(0)
        return [n * 2 for n in base_numbers]

    repo = make_repo([base_numbers, doubled])
    assert repo.materialize().success
    assert repo.load_node("doubled") == [2, 4, 6]


# --- direct calls ----------------------------------------------------------------------------


def test_direct_call_runs_the_user_function():
    @rs.Asset
    def add(left, right):
        return left + right

    assert add(2, 3) == 5
    assert add(left="a", right="b") == "ab"


def test_direct_call_of_async_asset_returns_awaitable_coroutine():
    @rs.Asset
    async def fetch_answer(base):
        await asyncio.sleep(0)
        return base * 2

    awaitable = fetch_answer(21)
    assert asyncio.iscoroutine(awaitable)
    assert asyncio.run(awaitable) == 42


# --- decoration-time validation --------------------------------------------------------------


class DuckTypedHandler:
    """Has the two handler methods but does not inherit from BaseIOHandler."""

    def handle_output(self, context, obj):
        return None

    def load_input(self, context):
        return None


@pytest.mark.parametrize("bad_handler", [DuckTypedHandler(), 42, {"kind": "memory"}])
def test_io_handler_must_be_base_io_handler_or_string(bad_handler):
    with pytest.raises(AssetDefinitionError):

        @rs.Asset(io_handler=bad_handler)
        def badly_handled():
            return 1


def test_string_io_handler_is_accepted_at_decoration_time():
    @rs.Asset(io_handler="warehouse")
    def referenced():
        return 1

    assert referenced.name == "referenced"


def test_var_positional_parameters_are_rejected():
    with pytest.raises(AssetDefinitionError):

        @rs.Asset
        def star_args(*values):
            return values


def test_var_keyword_parameters_are_rejected():
    with pytest.raises(AssetDefinitionError):

        @rs.Asset
        def star_kwargs(**values):
            return values


def test_self_dependency_on_parameter_not_named_self_is_rejected():
    with pytest.raises(AssetDefinitionError):

        @rs.Asset
        def misplaced_self(previous: rs.SelfDependency[int]):
            return 1


def test_asset_def_input_naming_no_parameter_is_rejected():
    with pytest.raises(AssetDefinitionError):

        @rs.Asset(deps=[rs.AssetDef.input("catalog")])
        def price_list(inventory):
            return inventory


# --- static metadata rules (section 12) ------------------------------------------------------


def test_static_metadata_strings_are_kept_verbatim():
    metadata = {"owner": "data-team", "delta/mode": "append", "rivers/executor": "in_process"}

    @rs.Asset(metadata=metadata)
    def documented():
        return 1

    assert documented.metadata == metadata


@pytest.mark.parametrize("bad_value", [3, 1.5, True, None, ["a"], {"nested": "dict"}])
def test_non_string_static_metadata_is_rejected(bad_value):
    with pytest.raises(AssetDefinitionError):

        @rs.Asset(metadata={"owner": bad_value})
        def badly_documented():
            return 1


def test_rivers_schema_static_metadata_accepts_an_arrow_schema():
    pa = pytest.importorskip("pyarrow")
    schema = pa.schema([("sku", pa.string()), ("qty", pa.int32())])

    @rs.Asset(metadata={"rivers/schema": schema, "owner": "inventory"})
    def stock():
        return []

    assert stock.name == "stock"
    assert stock.metadata["owner"] == "inventory"


def test_unknown_rivers_executor_value_is_a_configuration_error_at_validation():
    @rs.Asset(metadata={"rivers/executor": "threads"})
    def odd_executor():
        return 1

    repo = rs.CodeRepository(assets=[odd_executor], default_executor=rs.Executor.in_process())
    with pytest.raises(ConfigurationError, match="threads"):
        repo.validate()


@pytest.mark.parametrize("executor", ["in_process", "parallel"])
def test_known_rivers_executor_values_validate(executor):
    @rs.Asset(metadata={"rivers/executor": executor})
    def overridden():
        return 1

    repo = rs.CodeRepository(assets=[overridden], default_executor=rs.Executor.in_process())
    assert repo.validate() is None
