"""What the parallel executor ships to its loky workers (repository-and-execution.md: module-level
definitions travel by reference, anything else by value): partition mappings travel by value,
graph assets defined inside a function are rebuilt whole in the worker, and nothing shipped holds
the repository's storage. Every run here uses the real loky pool."""

import os
import pickle
from datetime import datetime

import cloudpickle
import pydantic
import pytest
from obstore.store import LocalStore

import rivers as rs

DAILY = rs.PartitionsDefinition.daily(start=datetime(2024, 1, 1), end=datetime(2024, 2, 1))
COLORS = rs.PartitionsDefinition.static_(["red", "blue"])


@pytest.fixture
def handler(tmp_path):
    (tmp_path / "values").mkdir()
    return rs.PickleIOHandler(store=LocalStore(str(tmp_path / "values")))


def _parallel_repo(assets, **kwargs):
    repo = rs.CodeRepository(assets=assets, default_executor=rs.Executor.parallel(max_workers=2), **kwargs)
    repo.resolve(storage=rs.Storage.memory())
    return repo


MAPPINGS = {
    "identity": rs.PartitionMapping.identity(),
    "all_partitions": rs.PartitionMapping.all_partitions(),
    "static": rs.PartitionMapping.static_({"red": "2024-01-02"}),
    "time_window": rs.PartitionMapping.time_window(-1),
    "multi": rs.PartitionMapping.multi(
        {"date": rs.PartitionMapping.time_window(-1), "color": ("colour", rs.PartitionMapping.subset())}
    ),
    "multi_to_single": rs.PartitionMapping.multi_to_single("date", rs.PartitionMapping.specific_partitions(["x"])),
    "specific_partitions": rs.PartitionMapping.specific_partitions(["a", "b"]),
    "for_keys": rs.PartitionMapping.for_keys(
        [rs.PartitionKey.single("red"), rs.PartitionKeyRange.single("2024-01-01", "2024-01-03")]
    ),
    "subset": rs.PartitionMapping.subset(),
}


@pytest.mark.parametrize("name", sorted(MAPPINGS))
def test_every_partition_mapping_pickles_by_value_as_its_variant(name):
    mapping = MAPPINGS[name]
    copy = pickle.loads(pickle.dumps(mapping))
    assert copy == mapping
    assert type(copy) is type(mapping)
    assert repr(copy) == repr(mapping)


def test_nested_mappings_keep_their_inner_mappings():
    copy = pickle.loads(pickle.dumps(MAPPINGS["multi"]))
    target, inner = copy.dimension_mappings["color"]
    assert target == "colour"
    assert isinstance(inner, rs.PartitionMapping.Subset)
    single = pickle.loads(pickle.dumps(MAPPINGS["multi_to_single"]))
    assert single.partition_mapping.partition_keys == ["x"]


def test_a_local_asset_with_a_mapped_input_runs_in_a_worker(handler):
    @rs.Asset(io_handler=handler)
    def config() -> dict:
        return {"scale": 3}

    @rs.Asset(io_handler=handler, partitions_def=COLORS)
    def palette(context: rs.AssetExecutionContext) -> str:
        return context.partition_key

    @rs.Asset(
        io_handler=handler,
        partitions_def=COLORS,
        deps=[
            rs.AssetDef.input(
                "config", partition_mapping=rs.PartitionMapping.for_keys([rs.PartitionKey.single("red")])
            ),
            rs.AssetDef.input("palette", partition_mapping=rs.PartitionMapping.static_({"red": "blue", "blue": "red"})),
        ],
    )
    def mixed(config: dict | None, palette: str) -> str:
        return f"{palette}x{config['scale'] if config else 0}"

    with _parallel_repo([config, palette, mixed]) as repo:
        assert repo.materialize(selection=["config"]).success
        for color in ("red", "blue"):
            assert repo.materialize(selection=["palette"], partition_key=rs.PartitionKey.single(color)).success
        assert repo.materialize(selection=["mixed"], partition_key=rs.PartitionKey.single("red")).success
        assert repo.load_node("mixed", partition_key=rs.PartitionKey.single("red")) == "bluex3"
        assert repo.materialize(selection=["mixed"], partition_key=rs.PartitionKey.single("blue")).success
        assert repo.load_node("mixed", partition_key=rs.PartitionKey.single("blue")) == "redx0"


def test_subset_and_specific_partitions_inputs_of_a_local_asset_run_in_a_worker(handler):
    @rs.Asset(io_handler=handler, partitions_def=COLORS)
    def shade(context: rs.AssetExecutionContext) -> str:
        return f"{context.partition_key}-shade"

    @rs.Asset(
        io_handler=handler,
        partitions_def=rs.PartitionsDefinition.static_(["red", "blue", "green"]),
        deps=[
            rs.AssetDef.input("shade", partition_mapping=rs.PartitionMapping.subset()),
            rs.AssetDef.input("palette", partition_mapping=rs.PartitionMapping.specific_partitions(["red"])),
        ],
    )
    def combined(shade: str | None, palette: str) -> tuple[str | None, str]:
        return shade, palette

    @rs.Asset(io_handler=handler, partitions_def=COLORS)
    def palette(context: rs.AssetExecutionContext) -> str:
        return context.partition_key

    with _parallel_repo([shade, palette, combined]) as repo:
        for color in ("red", "blue"):
            key = rs.PartitionKey.single(color)
            assert repo.materialize(selection=["shade", "palette"], partition_key=key).success
        for color, expected in (("blue", ("blue-shade", "red")), ("green", (None, "red"))):
            key = rs.PartitionKey.single(color)
            assert repo.materialize(selection=["combined"], partition_key=key).success
            assert repo.load_node("combined", partition_key=key) == expected


def test_a_time_window_offset_input_of_a_local_asset_runs_in_a_worker(handler):
    @rs.Asset(io_handler=handler, partitions_def=DAILY)
    def daily(context: rs.AssetExecutionContext) -> str:
        return str(context.partition_key)

    @rs.Asset(
        io_handler=handler,
        partitions_def=DAILY,
        deps=[rs.AssetDef.input("daily", partition_mapping=rs.PartitionMapping.time_window(-1))],
    )
    def previous(daily: str) -> str:
        return f"after {daily}"

    with _parallel_repo([daily, previous]) as repo:
        assert repo.materialize(selection=["daily"], partition_key=rs.PartitionKey.single("2024-01-04")).success
        assert repo.materialize(selection=["previous"], partition_key=rs.PartitionKey.single("2024-01-05")).success
        assert repo.load_node("previous", partition_key=rs.PartitionKey.single("2024-01-05")) == "after 2024-01-04"


def _local_graph(handler, partitions_def=None):
    @rs.Task
    def start(context: rs.TaskExecutionContext) -> int:
        return len(str(context.partition_key)) if context.has_partition_key else 1

    @rs.Task
    def double(value: int) -> int:
        return value * 2

    @rs.Asset.from_graph(io_handler=handler, node_io_handler=handler, partitions_def=partitions_def)
    def local_pipeline():
        return double(start())

    return local_pipeline


def test_a_graph_asset_defined_in_a_function_is_rebuilt_in_the_worker(handler):
    graph = _local_graph(handler)
    with _parallel_repo([graph]) as repo:
        result = repo.materialize()
        assert result.success
        assert repo.load_node("local_pipeline") == 2
        assert repo.load_node("local_pipeline/start") == 1


def test_a_partitioned_graph_asset_defined_in_a_function_is_rebuilt_in_the_worker(handler):
    graph = _local_graph(handler, DAILY)
    with _parallel_repo([graph]) as repo:
        key = rs.PartitionKey.single("2024-01-09")
        assert repo.materialize(partition_key=key).success
        assert repo.load_node("local_pipeline", partition_key=key) == 20


def test_a_local_graph_node_pickles_with_its_graph_whole(handler):
    graph = _local_graph(handler)
    node = graph.node("local_pipeline/double")
    # loky pickles objects that cannot be imported by value with cloudpickle.
    copy = pickle.loads(cloudpickle.dumps(node))
    assert copy.name == "local_pipeline/double"
    assert copy.graph.name == "local_pipeline"
    assert copy.graph.node("local_pipeline/double") is copy
    assert [n.name for n in copy.graph.internal_nodes] == ["local_pipeline/start", "local_pipeline/double"]


def test_local_classes_travel_without_the_namespace_they_were_defined_in(handler):
    # pydantic keeps the locals of the function that defines a model class; the storage opened
    # here, before the classes, must not travel with them (it cannot be pickled at all).
    storage = rs.Storage.memory()

    class LocalPickle(rs.PickleIOHandler):
        pass

    class Scale(pydantic.BaseModel):
        factor: int = 3

    class Settings(pydantic.BaseModel):
        scale: Scale = Scale()

    class Offset(rs.Resource):
        amount: int = 1

    local_handler = LocalPickle(store=handler.store)

    @rs.Asset(io_handler=local_handler)
    def source() -> int:
        return os.getpid()

    @rs.Asset(io_handler=local_handler)
    def sink(context: rs.AssetExecutionContext[Settings], source: int, offset: Offset) -> tuple[int, int, int]:
        return source, os.getpid(), context.config.scale.factor + offset.amount

    repo = rs.CodeRepository(
        assets=[source, sink],
        resources={"offset": Offset(amount=2)},
        default_executor=rs.Executor.parallel(max_workers=2),
    )
    repo.resolve(storage=storage)
    with repo:
        assert repo.materialize().success
        source_pid, sink_pid, total = repo.load_node("sink")
        assert os.getpid() not in (source_pid, sink_pid)
        assert total == 5
