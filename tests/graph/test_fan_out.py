"""Dynamic fan-out: ``InvokedNodeOutput.map``, ``MappedOutput.collect`` / ``collect_stream`` and
``rs.DynamicOutput`` (graph-and-tasks.md R42-R55, R57, examples 4 and 7).

Everything rivers-specific is built inside the tests so that a missing feature fails its own tests only.
Parallel-executor definitions live in ``fanout_parallel_defs`` (importable by loky workers).
"""

import asyncio
import functools
import os
import pickle
from collections import Counter

import pytest

import rivers as rs
from rivers.exceptions import AssetDefinitionError, ExecutionError, TaskDefinitionError

from .parallel_repo import parallel_repo


def _events(repo, run_id):
    return [(e.event_type, e.asset_key) for e in repo.storage.get_events_for_run(run_id)]


def _step_types(repo, run_id, node):
    return [e.event_type for e in repo.storage.get_events_for_run(run_id) if e.asset_key == node]


def _started(repo, run_id):
    return [key for kind, key in _events(repo, run_id) if kind == "StepStart"]


def _instances(repo, run_id, prefix):
    """Names of the started steps ``{prefix}[...]``, in start order."""
    return [key for key in _started(repo, run_id) if key.startswith(prefix + "[")]


_parallel_repo = functools.partial(parallel_repo, max_workers=3)


@pytest.fixture
def defs():
    from . import fanout_parallel_defs as module

    module.reset()
    return module


@rs.Task
def _items() -> list[int]:
    return [1, 2, 3]


@rs.Task
def _double(x: int) -> int:
    return x * 2


@rs.Task
def _total(values: list[int]) -> int:
    return sum(values)


@rs.Task
def _drain(stream) -> list:
    return list(stream)


# --------------------------------------------------------------------------- map sources (R42, R45, R47)


def test_map_over_a_task_output(make_repo):
    @rs.Asset.from_graph
    def fanned():
        return _total(_items().map(_double).collect())

    repo = make_repo([fanned])
    result = repo.materialize()
    assert result.success
    assert sorted(_instances(repo, result.run_id, "fanned/_double")) == [
        "fanned/_double[0]",
        "fanned/_double[1]",
        "fanned/_double[2]",
    ]
    assert repo.load_node("fanned/_double[0]") == 2
    assert repo.load_node("fanned/_double[1]") == 4
    assert repo.load_node("fanned/_double[2]") == 6
    assert repo.load_node("fanned/_total") == 12
    assert repo.load_node("fanned") == 12


def test_map_over_an_asset_call(make_repo):
    @rs.Asset
    def numbers() -> list[int]:
        return [5, 6]

    @rs.Asset.from_graph
    def from_asset():
        return _total(numbers().map(_double).collect())

    repo = make_repo([numbers, from_asset])
    result = repo.materialize()
    assert result.success
    assert sorted(_instances(repo, result.run_id, "from_asset/_double")) == [
        "from_asset/_double[0]",
        "from_asset/_double[1]",
    ]
    assert repo.load_node("from_asset/_double[1]") == 12
    assert repo.load_node("from_asset") == 22


def test_map_over_a_graph_parameter(make_repo):
    @rs.Asset
    def numbers() -> list[int]:
        return [10, 20, 30, 40]

    @rs.Asset.from_graph
    def from_parameter(numbers):
        return _total(numbers.map(_double).collect())

    repo = make_repo([numbers, from_parameter])
    result = repo.materialize()
    assert result.success
    assert len(_instances(repo, result.run_id, "from_parameter/_double")) == 4
    assert repo.load_node("from_parameter/_double[3]") == 80
    assert repo.load_node("from_parameter") == 200


def test_chained_maps_through_collect(make_repo):
    @rs.Task
    def inc(x: int) -> int:
        return x + 1

    @rs.Asset.from_graph
    def chained():
        doubled = _items().map(_double).collect()
        return _total(doubled.map(inc).collect())

    repo = make_repo([chained])
    result = repo.materialize()
    assert result.success
    assert len(_instances(repo, result.run_id, "chained/_double")) == 3
    assert sorted(_instances(repo, result.run_id, "chained/inc")) == [
        "chained/inc[0]",
        "chained/inc[1]",
        "chained/inc[2]",
    ]
    assert repo.load_node("chained/inc[2]") == 7
    assert repo.load_node("chained") == 3 + 5 + 7


def test_collect_result_can_be_the_final_node(make_repo):
    @rs.Asset.from_graph
    def collected():
        return _items().map(_double).collect()

    repo = make_repo([collected])
    result = repo.materialize()
    assert result.success
    assert repo.load_node("collected") == [2, 4, 6]
    assert [key for kind, key in _events(repo, result.run_id) if kind == "Materialization"] == ["collected"]


def test_instance_step_events_use_instance_names(make_repo):
    @rs.Asset.from_graph
    def evented():
        return _total(_items().map(_double).collect())

    repo = make_repo([evented])
    result = repo.materialize()
    for key in ("0", "1", "2"):
        assert _step_types(repo, result.run_id, f"evented/_double[{key}]") == ["StepStart", "StepSuccess"]


def test_instances_see_their_instance_name_in_the_context(make_repo):
    @rs.Task
    def named(context: rs.TaskExecutionContext, x: int) -> str:
        return f"{context.task_name}={x}"

    @rs.Asset.from_graph
    def ctx_graph():
        return _drain(_items().map(named).collect())

    repo = make_repo([ctx_graph])
    repo.materialize()
    assert repo.load_node("ctx_graph") == ["ctx_graph/named[0]=1", "ctx_graph/named[1]=2", "ctx_graph/named[2]=3"]


def test_element_binds_to_first_parameter_and_others_resolve_as_usual(make_repo):
    @rs.Asset
    def factor() -> int:
        return 10

    @rs.Task
    def scale(context: rs.TaskExecutionContext, x: int, factor: int, offset: int = 1) -> int:
        return x * factor + offset

    @rs.Asset.from_graph
    def scaled():
        return _drain(_items().map(scale).collect())

    repo = make_repo([factor, scaled])
    result = repo.materialize()
    assert result.success
    assert repo.load_node("scaled") == [11, 21, 31]
    assert repo.load_node("scaled/scale[1]") == 21


# --------------------------------------------------------------------------- DynamicOutput keys (R45, R55, example 4)


def test_example_4_dynamic_output_keys(make_repo):
    received = []

    @rs.Task
    def regions() -> list[rs.DynamicOutput]:
        return [rs.DynamicOutput(key=r, value=r.upper()) for r in ("north", "south", "west")]

    @rs.Task
    async def score(region: str) -> int:
        received.append(region)
        return len(region)

    @rs.Task
    def total(scores: list[int]) -> int:
        return sum(scores)

    @rs.Task
    def first_two(stream: object) -> list[int]:
        it = iter(stream)
        return [next(it), next(it)]

    @rs.Asset.from_graph()
    def region_total():
        scored = regions().map(score, max_concurrency=2)
        return total(scored.collect())

    @rs.Asset.from_graph()
    def early_scores():
        return first_two(regions().map(score).collect_stream(ordered=True))

    repo = make_repo([region_total, early_scores])
    result = repo.materialize()
    assert result.success
    assert sorted(_instances(repo, result.run_id, "region_total/score")) == [
        "region_total/score[north]",
        "region_total/score[south]",
        "region_total/score[west]",
    ]
    assert repo.load_node("region_total") == 14
    assert repo.load_node("region_total/score[south]") == 5
    assert repo.load_node("region_total/score[west]") == 4
    assert repo.load_node("early_scores") == [5, 5]
    # instances receive the unwrapped values
    assert sorted(received) == sorted(["NORTH", "SOUTH", "WEST"] * 2)


def test_producer_stored_value_is_unchanged(make_repo):
    @rs.Task
    def keyed() -> list:
        return [rs.DynamicOutput(key="a", value=1), rs.DynamicOutput(key="b", value=2)]

    @rs.Task
    def describe(items: list) -> list:
        return [(type(i).__name__, i.key, i.value) for i in items]

    @rs.Task
    def ident(x: int) -> int:
        return x

    @rs.Asset.from_graph
    def kept():
        produced = keyed()
        describe(produced)  # a non-mapped consumer of the same handle
        return _total(produced.map(ident).collect())

    repo = make_repo([kept])
    result = repo.materialize()
    assert result.success
    stored = repo.load_node("kept/keyed")
    assert [type(i) for i in stored] == [rs.DynamicOutput, rs.DynamicOutput]
    assert [(i.key, i.value) for i in stored] == [("a", 1), ("b", 2)]
    assert repo.load_node("kept/describe") == [("DynamicOutput", "a", 1), ("DynamicOutput", "b", 2)]
    assert repo.load_node("kept/ident[b]") == 2
    assert repo.load_node("kept") == 3


def test_plain_list_producer_value_is_unchanged(make_repo):
    @rs.Asset.from_graph
    def plain():
        return _total(_items().map(_double).collect())

    repo = make_repo([plain])
    repo.materialize()
    assert repo.load_node("plain/_items") == [1, 2, 3]


# --------------------------------------------------------------------------- DynamicOutput construction


def test_dynamic_output_members():
    out = rs.DynamicOutput(key="k1", value={"x": 1})
    assert out.key == "k1"
    assert out.value == {"x": 1}
    positional = rs.DynamicOutput("k2", [1])
    assert (positional.key, positional.value) == ("k2", [1])


@pytest.mark.parametrize("key", [1, None, 2.5, b"bytes"])
def test_dynamic_output_non_str_key_is_a_type_error(key):
    with pytest.raises(TypeError):
        rs.DynamicOutput(key=key, value=1)


@pytest.mark.parametrize("key", ["", "a/b", "a[", "b]", "[x]"])
def test_dynamic_output_invalid_key_is_a_value_error(key):
    with pytest.raises(ValueError):
        rs.DynamicOutput(key=key, value=1)


def test_dynamic_output_is_picklable():
    restored = pickle.loads(pickle.dumps(rs.DynamicOutput(key="north", value=[1, {"a": 2}])))
    assert isinstance(restored, rs.DynamicOutput)
    assert restored.key == "north"
    assert restored.value == [1, {"a": 2}]


# --------------------------------------------------------------------------- collect and collect_stream (R49-R51)


def test_collect_stream_yields_every_result_once(make_repo):
    @rs.Task
    def five() -> list[int]:
        return [5, 3, 9, 1, 7]

    @rs.Task
    def tenfold(x: int) -> int:
        return x * 10

    @rs.Asset.from_graph
    def streamed():
        return _drain(five().map(tenfold).collect_stream())

    @rs.Asset.from_graph
    def streamed_ordered():
        return _drain(five().map(tenfold).collect_stream(ordered=True))

    repo = make_repo([streamed, streamed_ordered])
    result = repo.materialize()
    assert result.success
    assert sorted(repo.load_node("streamed")) == [10, 30, 50, 70, 90]
    assert repo.load_node("streamed_ordered") == [50, 30, 90, 10, 70]


def test_collect_stream_value_is_an_iterator_not_a_list(make_repo):
    @rs.Task
    def kind_of(stream) -> tuple:
        return (isinstance(stream, list), sorted(stream))

    @rs.Asset.from_graph
    def stream_kind():
        return kind_of(_items().map(_double).collect_stream())

    repo = make_repo([stream_kind])
    repo.materialize()
    assert repo.load_node("stream_kind") == (False, [2, 4, 6])


def test_collect_twice_runs_instances_once(make_repo):
    runs = []

    @rs.Task
    def tracked(x: int) -> int:
        runs.append(x)
        return x

    @rs.Task
    def pair(listed: list, streamed) -> tuple:
        return (list(listed), list(streamed))

    @rs.Asset.from_graph
    def twice():
        mapped = _items().map(tracked)
        return pair(mapped.collect(), mapped.collect_stream(ordered=True))

    repo = make_repo([twice])
    result = repo.materialize()
    assert result.success
    assert sorted(runs) == [1, 2, 3]
    assert repo.load_node("twice") == ([1, 2, 3], [1, 2, 3])


def test_empty_producer_yields_empty_list_and_downstream_runs(make_repo):
    consumed = []

    @rs.Task
    def nothing() -> list:
        return []

    @rs.Task
    def count(values: list) -> int:
        consumed.append(list(values))
        return len(values)

    @rs.Asset.from_graph
    def empty_collect():
        return count(nothing().map(_double).collect())

    @rs.Asset.from_graph
    def empty_stream():
        return _drain(nothing().map(_double).collect_stream())

    @rs.Asset
    def after(empty_collect: int) -> str:
        return f"after:{empty_collect}"

    repo = make_repo([empty_collect, empty_stream, after])
    result = repo.materialize()
    assert result.success
    assert consumed == [[]]
    assert repo.load_node("empty_collect") == 0
    assert repo.load_node("empty_stream") == []
    assert repo.load_node("after") == "after:0"
    assert _instances(repo, result.run_id, "empty_collect/_double") == []
    assert _instances(repo, result.run_id, "empty_stream/_double") == []


# --------------------------------------------------------------------------- producers (R43, R54)


def test_generator_producer(make_repo):
    @rs.Task
    def generated():
        yield 4
        yield 5
        yield 6

    @rs.Asset.from_graph
    def from_generator():
        return _drain(generated().map(_double).collect())

    repo = make_repo([from_generator])
    result = repo.materialize()
    assert result.success
    assert repo.load_node("from_generator/generated") == [4, 5, 6]
    assert len(_instances(repo, result.run_id, "from_generator/_double")) == 3
    assert repo.load_node("from_generator") == [8, 10, 12]


def test_generator_producer_of_dynamic_outputs(make_repo):
    @rs.Task
    def generated():
        yield rs.DynamicOutput(key="x", value=1)
        yield rs.DynamicOutput(key="y", value=2)

    @rs.Asset.from_graph
    def keyed_generator():
        return _drain(generated().map(_double).collect())

    repo = make_repo([keyed_generator])
    result = repo.materialize()
    assert result.success
    stored = repo.load_node("keyed_generator/generated")
    assert [(i.key, i.value) for i in stored] == [("x", 1), ("y", 2)]
    assert repo.load_node("keyed_generator/_double[y]") == 4
    assert repo.load_node("keyed_generator") == [2, 4]


def test_async_generator_producer(make_repo):
    @rs.Task
    async def generated():
        for i in (7, 8):
            await asyncio.sleep(0)
            yield i

    @rs.Asset.from_graph
    def from_async_generator():
        return _drain(generated().map(_double).collect())

    repo = make_repo([from_async_generator])
    result = repo.materialize()
    assert result.success
    assert repo.load_node("from_async_generator/generated") == [7, 8]
    assert repo.load_node("from_async_generator") == [14, 16]


def test_tuple_producer(make_repo):
    @rs.Task
    def pair() -> tuple:
        return (3, 4)

    @rs.Asset.from_graph
    def from_tuple():
        return _drain(pair().map(_double).collect())

    repo = make_repo([from_tuple])
    repo.materialize()
    assert repo.load_node("from_tuple") == [6, 8]


def _failing_fan_out(produced, consumed):
    @rs.Task
    def producer():
        return produced

    @rs.Task
    def ident(x):
        return x

    @rs.Task
    def consume(values: list) -> int:
        consumed.append(values)
        return len(values)

    @rs.Asset.from_graph
    def bad_fan_out():
        return consume(producer().map(ident).collect())

    return bad_fan_out


@pytest.mark.parametrize(
    "make_value",
    [
        pytest.param(lambda: "abc", id="str"),
        pytest.param(lambda: b"abc", id="bytes"),
        pytest.param(lambda: {"a": 1, "b": 2}, id="dict"),
        pytest.param(lambda: 42, id="int"),
        pytest.param(lambda: None, id="none"),
        pytest.param(lambda: [rs.DynamicOutput(key="a", value=1), 2], id="mixed"),
        pytest.param(lambda: [1, rs.DynamicOutput(key="a", value=1)], id="mixed-plain-first"),
        pytest.param(
            lambda: [rs.DynamicOutput(key="a", value=1), rs.DynamicOutput(key="a", value=2)], id="duplicate-keys"
        ),
    ],
)
def test_invalid_producer_values_fail_the_run(make_repo, make_value):
    consumed = []
    repo = make_repo([_failing_fan_out(make_value(), consumed)])
    result = repo.materialize(raise_on_error=False)
    assert result.success is False
    assert result.failed_assets
    assert consumed == []
    assert "Materialization" not in _step_types(repo, result.run_id, "bad_fan_out")
    with pytest.raises(ExecutionError):
        repo.materialize()
    assert consumed == []


# --------------------------------------------------------------------------- failing instances (R52, example 7)


def _example_7(ran):
    @rs.Task
    def ids() -> list[int]:
        return [1, 2, 3]

    @rs.Task
    def check(i: int) -> int:
        ran.append(i)
        if i == 2:
            raise RuntimeError("bad id")
        return i

    @rs.Task
    def add_up(values: list[int]) -> int:
        ran.append("add_up")
        return sum(values)

    @rs.Asset.from_graph()
    def checked():
        return add_up(ids().map(check).collect())

    return checked


def test_example_7_failing_instance():
    ran = []
    repo = rs.CodeRepository(assets=[_example_7(ran)], default_executor=rs.Executor.in_process())
    try:
        repo.resolve(rs.Storage.memory())
        result = repo.materialize(raise_on_error=False)
        assert not result.success
        assert repo.load_node("checked/check[0]") == 1
        assert repo.load_node("checked/check[2]") == 3
        assert sorted(ran) == [1, 2, 3]  # siblings ran, the collect consumer did not
        failed = dict(result.failed_assets)
        assert "bad id" in failed["checked/check[1]"]
        assert "StepStart" not in _step_types(repo, result.run_id, "checked/add_up")
        assert "StepSkipped" in _step_types(repo, result.run_id, "checked/add_up")
        materialized = [key for kind, key in _events(repo, result.run_id) if kind == "Materialization"]
        assert "checked" not in materialized
        assert _step_types(repo, result.run_id, "checked/check[1]")[-1] == "StepFailure"
        assert repo.storage.get_run(result.run_id).status == "Failure"
    finally:
        repo.shutdown()


def test_failing_instance_raises_execution_error(make_repo):
    ran = []
    repo = make_repo([_example_7(ran)])
    with pytest.raises(ExecutionError, match="bad id"):
        repo.materialize()
    assert "add_up" not in ran


# --------------------------------------------------------------------------- retries per instance (R47)


def test_each_instance_has_its_own_retry_budget(make_repo):
    attempts = Counter()

    @rs.Task(retry=rs.RetryPolicy(max_retries=1))
    def shaky(x: int) -> int:
        attempts[x] += 1
        if attempts[x] == 1:
            raise RuntimeError(f"first attempt for {x}")
        return x * 100

    @rs.Asset.from_graph
    def retried_instances():
        return _drain(_items().map(shaky).collect())

    repo = make_repo([retried_instances])
    result = repo.materialize()
    assert result.success
    assert attempts == Counter({1: 2, 2: 2, 3: 2})
    for key in ("0", "1", "2"):
        types = _step_types(repo, result.run_id, f"retried_instances/shaky[{key}]")
        assert types.count("StepRetry") == 1
        assert types[-1] == "StepSuccess"
    assert repo.load_node("retried_instances") == [100, 200, 300]


def test_instance_exhausting_its_retries_fails_alone(make_repo):
    attempts = Counter()

    @rs.Task(retry=rs.RetryPolicy(max_retries=2))
    def stubborn(x: int) -> int:
        attempts[x] += 1
        if x == 2:
            raise RuntimeError("always fails")
        return x

    @rs.Asset.from_graph
    def partly_failing():
        return _drain(_items().map(stubborn).collect())

    repo = make_repo([partly_failing])
    result = repo.materialize(raise_on_error=False)
    assert not result.success
    assert attempts == Counter({1: 1, 2: 3, 3: 1})
    assert _step_types(repo, result.run_id, "partly_failing/stubborn[1]").count("StepRetry") == 2
    assert _step_types(repo, result.run_id, "partly_failing/stubborn[0]").count("StepRetry") == 0
    failed = [name for name, _ in result.failed_assets]
    assert "partly_failing/stubborn[1]" in failed
    assert "partly_failing/stubborn[0]" not in failed
    assert "partly_failing/stubborn[2]" not in failed
    assert repo.load_node("partly_failing/stubborn[2]") == 3


# --------------------------------------------------------------------------- resume (R57)


def test_resume_reruns_only_instances_that_did_not_succeed(make_repo, tmp_path):
    flag = tmp_path / "failed-once"
    log = tmp_path / "executions.txt"

    def record(name):
        with log.open("a") as fh:
            fh.write(name + "\n")

    def executions():
        return Counter(log.read_text().split()) if log.exists() else Counter()

    @rs.Task
    def ids() -> list[int]:
        record("ids")
        return [1, 2, 3]

    @rs.Task
    def check(i: int) -> int:
        record(f"check-{i}")
        if i == 2 and not flag.exists():
            flag.touch()
            raise RuntimeError("fails on the first run only")
        return i * 10

    @rs.Task
    def add_up(values: list[int]) -> int:
        record("add_up")
        return sum(values)

    @rs.Asset.from_graph
    def resumable():
        return add_up(ids().map(check).collect())

    repo = make_repo([resumable])
    first = repo.materialize(run_id_override="fan-out-resume", raise_on_error=False)
    assert not first.success
    assert executions() == Counter({"ids": 1, "check-1": 1, "check-2": 1, "check-3": 1})
    instance_0_events = _step_types(repo, "fan-out-resume", "resumable/check[0]")

    second = repo.materialize(run_id_override=first.run_id, resume=True)
    assert second.success
    assert executions() == Counter({"ids": 1, "check-1": 1, "check-2": 2, "check-3": 1, "add_up": 1})
    assert _step_types(repo, "fan-out-resume", "resumable/check[0]") == instance_0_events
    assert _step_types(repo, "fan-out-resume", "resumable/check[1]")[-1] == "StepSuccess"
    assert repo.load_node("resumable") == 60
    assert repo.storage.get_run("fan-out-resume").status == "Success"


# --------------------------------------------------------------------------- async templates (R53)


def test_async_map_template_in_process(make_repo):
    @rs.Task
    async def slow_square(x: int) -> int:
        await asyncio.sleep(0.01)
        return x * x

    @rs.Asset.from_graph
    def squares():
        return _drain(_items().map(slow_square, max_concurrency=2).collect())

    repo = make_repo([squares])
    result = repo.materialize()
    assert result.success
    assert repo.load_node("squares") == [1, 4, 9]
    assert repo.load_node("squares/slow_square[2]") == 9


# --------------------------------------------------------------------------- definition-time errors


def _plain_function(x):
    return x


@pytest.mark.parametrize(
    "template",
    [
        pytest.param(lambda: _plain_function, id="plain-function"),
        pytest.param(lambda: rs.BashTask("bash_template", command="echo hi"), id="bash-task"),
        pytest.param(lambda: rs.Asset(_plain_function), id="asset"),
        pytest.param(lambda: "_double", id="string"),
    ],
)
def test_map_with_a_non_task_is_a_task_definition_error(template):
    target = template()
    with pytest.raises(TaskDefinitionError):

        @rs.Asset.from_graph
        def bad_template():
            return _total(_items().map(target).collect())


@pytest.mark.parametrize("value", [0, -1, "2", 1.5])
def test_map_max_concurrency_must_be_a_positive_int(value):
    with pytest.raises(ValueError):

        @rs.Asset.from_graph
        def bad_cap():
            return _total(_items().map(_double, max_concurrency=value).collect())


def test_positive_max_concurrency_is_accepted():
    @rs.Asset.from_graph
    def good_cap():
        return _total(_items().map(_double, max_concurrency=1).collect())

    assert good_cap.is_graph


def test_mapped_output_passed_to_a_task_is_an_asset_definition_error():
    with pytest.raises(AssetDefinitionError):

        @rs.Asset.from_graph
        def uncollected_argument():
            return _total(_items().map(_double))


def test_mapped_output_returned_from_the_body_is_an_asset_definition_error():
    with pytest.raises(AssetDefinitionError):

        @rs.Asset.from_graph
        def uncollected_result():
            return _items().map(_double)


def test_collect_stream_returned_from_the_body_is_an_asset_definition_error():
    with pytest.raises(AssetDefinitionError):

        @rs.Asset.from_graph
        def stream_result():
            return _items().map(_double).collect_stream()


def test_map_outside_a_graph_body_is_an_asset_definition_error():
    captured = []

    @rs.Asset.from_graph
    def leaks_handle():
        h = _items()
        captured.append(h)
        return _total(h)

    with pytest.raises(AssetDefinitionError):
        captured[0].map(_double)


def test_mapped_output_members():
    captured = []

    @rs.Asset.from_graph
    def members():
        mapped = _items().map(_double)
        captured.append(mapped)
        return _total(mapped.collect())

    mapped = captured[0]
    assert mapped.output_name == "result"
    assert isinstance(mapped.node_name, str)


# --------------------------------------------------------------------------- parallel executor (R48-R50, R53)


def test_collect_keeps_element_order_when_completion_order_differs(defs):
    with _parallel_repo([defs.collected_naps]) as repo:
        result = repo.materialize()
        assert result.success
        assert repo.load_node("collected_naps") == [1.2, 0.6, 0.0]
        assert repo.load_node("collected_naps/nap[0]") == 1.2


def test_collect_stream_under_parallel(defs):
    with _parallel_repo([defs.streamed_naps, defs.streamed_naps_ordered]) as repo:
        result = repo.materialize()
        assert result.success
        unordered = repo.load_node("streamed_naps")
        assert sorted(unordered) == [0.0, 0.6, 1.2]
        assert len(unordered) == 3
        assert repo.load_node("streamed_naps_ordered") == [1.2, 0.6, 0.0]


def test_max_concurrency_is_never_exceeded_under_parallel(defs):
    with _parallel_repo([defs.capped_fan_out], max_workers=4) as repo:
        result = repo.materialize()
        assert result.success
        assert repo.load_node("capped_fan_out") == [0, 10, 20, 30, 40, 50]
        spans = defs.read_marks("span")
        assert sorted(s["name"] for s in spans) == [f"capped-{i}" for i in range(6)]
        assert defs.max_overlap(spans) <= 2
        assert all(s["pid"] != os.getpid() for s in spans)


def test_async_map_template_is_bounded_by_max_concurrency_under_parallel(defs):
    with _parallel_repo([defs.async_capped_fan_out], max_workers=2) as repo:
        result = repo.materialize()
        assert result.success
        assert repo.load_node("async_capped_fan_out") == [0, 100, 200, 300, 400, 500]
        spans = defs.read_marks("async-span")
        assert sorted(s["name"] for s in spans) == [f"async-capped-{i}" for i in range(6)]
        assert defs.max_overlap(spans) <= 2
