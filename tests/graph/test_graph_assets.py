"""Graph assets: ``Asset.from_graph``, composition recording, naming, wiring, IO handlers and executors of internal
tasks, events, selection and jobs, hooks, retries, run records, bash and async tasks inside graphs
(graph-and-tasks.md "Asset.from_graph", "rs.InvokedNodeOutput", R13-R41, R60, R62-R64, examples 1, 2, 3, 5).

Everything rivers-specific is built inside the tests so that a missing feature fails its own tests only.
Parallel-executor definitions live in ``fanout_parallel_defs`` (importable by loky workers).
"""

import asyncio
import functools
import os
import sys
from collections import Counter

import pytest
from pydantic import PrivateAttr

import rivers as rs
from rivers.exceptions import (
    AssetDefinitionError,
    ConfigurationError,
    ExecutionError,
    GraphValidationError,
    NodeNotFoundError,
    TaskDefinitionError,
)

from .parallel_repo import parallel_repo

# Attempts per task name, for the retry tests (R63). Cleared by the tests that use it.
ATTEMPTS: Counter = Counter()


def _events(repo, run_id):
    return [(e.event_type, e.asset_key) for e in repo.storage.get_events_for_run(run_id)]


def _step_types(repo, run_id, node):
    return [e.event_type for e in repo.storage.get_events_for_run(run_id) if e.asset_key == node]


def _started(repo, run_id):
    return [key for kind, key in _events(repo, run_id) if kind == "StepStart"]


def _retry_count(repo, run_id, node):
    return _step_types(repo, run_id, node).count("StepRetry")


def _two_step_graph(calls, **graph_kwargs):
    """``g``: ``g/a`` (returns 1) -> ``g/b`` (adds 1)."""

    @rs.Task
    def a() -> int:
        calls.append("a")
        return 1

    @rs.Task
    def b(x: int) -> int:
        calls.append("b")
        return x + 1

    @rs.Asset.from_graph(name="g", **graph_kwargs)
    def g():
        return b(a())

    return g


_parallel_repo = functools.partial(parallel_repo, max_workers=2)


@pytest.fixture
def defs():
    from . import fanout_parallel_defs as module

    module.reset()
    return module


# --------------------------------------------------------------------------- forms and properties


@rs.Task
def _one() -> int:
    return 1


def test_decorator_factory_form_without_arguments():
    @rs.Asset.from_graph()
    def factory_graph():
        return _one()

    assert isinstance(factory_graph, rs.GraphAsset)
    assert factory_graph.name == "factory_graph"


def test_decorator_factory_form_with_name():
    @rs.Asset.from_graph(name="renamed")
    def original():
        return _one()

    assert isinstance(original, rs.GraphAsset)
    assert original.name == "renamed"


def test_bare_decorator_form():
    @rs.Asset.from_graph
    def bare_graph():
        return _one()

    assert isinstance(bare_graph, rs.GraphAsset)
    assert bare_graph.name == "bare_graph"


def test_direct_call_form_with_and_without_name():
    def composition():
        return _one()

    plain = rs.Asset.from_graph(composition)
    named = rs.Asset.from_graph(composition, name="direct")
    assert isinstance(plain, rs.GraphAsset)
    assert isinstance(named, rs.GraphAsset)
    assert plain.name == "composition"
    assert named.name == "direct"


def test_graph_asset_flags_and_properties():
    @rs.Asset.from_graph(tags=["t"], kinds="python", group="grp", code_version="v1", metadata={"owner": "me"})
    def flagged():
        return _one()

    assert isinstance(flagged, rs.Asset)
    assert flagged.is_graph is True
    assert flagged.is_single is False
    assert flagged.is_multi is False
    assert flagged.is_external is False
    assert flagged.is_async is False
    assert flagged.tags == ["t"]
    assert flagged.kinds == ["python"]
    assert flagged.group == "grp"
    assert flagged.code_version == "v1"
    assert flagged.metadata["owner"] == "me"
    assert flagged.pool == []
    assert flagged.observe_fn is None


@pytest.mark.parametrize("extra", [{"pool": "db"}, {"pool_slots": 2}])
def test_from_graph_rejects_asset_only_keywords(extra):
    def composition():
        return _one()

    with pytest.raises(TypeError):
        rs.Asset.from_graph(composition, **extra)


# --------------------------------------------------------------------------- recording (R13, R14, R18)


def test_body_runs_once_at_definition_and_never_during_materialize(make_repo):
    body_runs = []
    task_runs = []

    @rs.Task
    def produce() -> int:
        task_runs.append("produce")
        return 7

    @rs.Asset.from_graph
    def recorded():
        body_runs.append("body")
        return produce()

    assert body_runs == ["body"]
    assert task_runs == []  # recording does not call task functions
    repo = make_repo([recorded])
    repo.materialize()
    repo.materialize()
    assert body_runs == ["body"]
    assert task_runs == ["produce", "produce"]
    assert repo.load_node("recorded") == 7


def test_exception_from_the_body_propagates_unchanged():
    class BodyError(Exception):
        pass

    with pytest.raises(BodyError, match="broken composition"):

        @rs.Asset.from_graph
        def broken():
            raise BodyError("broken composition")


def test_tasks_not_feeding_the_final_node_are_still_steps(make_repo):
    calls = []

    @rs.Task
    def side_effect() -> str:
        calls.append("side_effect")
        return "side"

    @rs.Task
    def main() -> str:
        calls.append("main")
        return "main"

    @rs.Asset.from_graph
    def with_side():
        side_effect()
        return main()

    repo = make_repo([with_side])
    result = repo.materialize()
    assert result.success
    assert sorted(calls) == ["main", "side_effect"]
    assert repo.load_node("with_side/side_effect") == "side"
    assert repo.load_node("with_side") == "main"
    # the graph's own step completes only after every internal step (R18)
    events = _events(repo, result.run_id)
    graph_materialization = events.index(("Materialization", "with_side"))
    assert events.index(("StepSuccess", "with_side/side_effect")) < graph_materialization
    assert events.index(("StepSuccess", "with_side/main")) < graph_materialization


# --------------------------------------------------------------------------- naming (R20-R24)


def test_internal_nodes_are_namespaced_by_the_graph(make_repo):
    calls = []
    g = _two_step_graph(calls)
    repo = make_repo([g])
    result = repo.materialize()
    assert result.success
    assert {"g/a", "g/b"} <= set(_started(repo, result.run_id))
    assert repo.load_node("g/a") == 1
    assert repo.load_node("g/b") == 2
    with pytest.raises(NodeNotFoundError):
        repo.load_node("a")


def test_task_name_is_honoured_for_the_internal_node(make_repo):
    @rs.Task(name="enrich")
    def add_fields(x: int) -> dict:
        return {"x": x, "enriched": True}

    handles = []

    @rs.Asset.from_graph
    def enriched():
        h = add_fields(3)
        handles.append(h)
        return h

    assert handles[0].node_name == "enrich"
    repo = make_repo([enriched])
    result = repo.materialize()
    assert "enriched/enrich" in _started(repo, result.run_id)
    assert repo.load_node("enriched/enrich") == {"x": 3, "enriched": True}
    with pytest.raises(NodeNotFoundError):
        repo.load_node("enriched/add_fields")


def test_repeated_calls_get_numbered_suffixes(make_repo):
    @rs.Task
    def inc(x: int) -> int:
        return x + 1

    handles = []

    @rs.Asset.from_graph
    def counted():
        first = inc(1)
        second = inc(first)
        third = inc(second)
        handles.extend([first, second, third])
        return third

    assert [h.node_name for h in handles] == ["inc", "inc_2", "inc_3"]
    repo = make_repo([counted])
    result = repo.materialize()
    assert {"counted/inc", "counted/inc_2", "counted/inc_3"} <= set(_started(repo, result.run_id))
    assert repo.load_node("counted/inc") == 2
    assert repo.load_node("counted/inc_2") == 3
    assert repo.load_node("counted/inc_3") == 4
    assert repo.load_node("counted") == 4


def test_same_task_in_two_graphs_gives_independent_nodes(make_repo, handler_cls):
    calls = []
    left_handler, right_handler = handler_cls(), handler_cls()

    @rs.Task
    def scale(x: int, by: int) -> int:
        calls.append((x, by))
        return x * by

    @rs.Asset.from_graph(io_handler=left_handler)
    def doubled():
        return scale(3, 2)

    @rs.Asset.from_graph(io_handler=right_handler)
    def tripled():
        return scale(3, by=3)

    repo = make_repo([doubled, tripled])
    result = repo.materialize()
    assert result.success
    assert sorted(calls) == [(3, 2), (3, 3)]
    assert {"doubled/scale", "tripled/scale"} <= set(_started(repo, result.run_id))
    assert repo.load_node("doubled/scale") == 6
    assert repo.load_node("tripled/scale") == 9
    assert repo.io_handler_for_output("doubled/scale") is left_handler
    assert repo.io_handler_for_output("tripled/scale") is right_handler
    assert {w["asset_name"] for w in left_handler.writes} == {"doubled", "doubled/scale"}
    assert {w["asset_name"] for w in right_handler.writes} == {"tripled", "tripled/scale"}


def test_asset_calls_keep_bare_names_and_create_no_internal_node(make_repo):
    @rs.Asset
    def source() -> int:
        return 5

    @rs.Task
    def plus_one(x: int) -> int:
        return x + 1

    handles = {}

    @rs.Asset.from_graph
    def uses_source():
        h = source()
        handles["asset"] = h
        return plus_one(h)

    assert isinstance(handles["asset"], rs.InvokedNodeOutput)
    assert handles["asset"].node_name == "source"
    assert handles["asset"].output_name == "result"
    repo = make_repo([source, uses_source])
    result = repo.materialize()
    started = _started(repo, result.run_id)
    assert "source" in started
    assert "uses_source/source" not in started
    assert started.index("source") < started.index("uses_source/plus_one")
    assert repo.load_node("uses_source") == 6
    with pytest.raises(NodeNotFoundError):
        repo.load_node("uses_source/source")


def test_graph_parameter_refers_to_the_outer_node(make_repo):
    @rs.Asset
    def numbers() -> list[int]:
        return [1, 2, 3]

    @rs.Task
    def total(values: list[int]) -> int:
        return sum(values)

    handles = {}

    @rs.Asset.from_graph
    def summed(numbers):
        handles["param"] = numbers
        return total(numbers)

    assert isinstance(handles["param"], rs.InvokedNodeOutput)
    assert handles["param"].node_name == "numbers"
    assert handles["param"].output_name == "result"
    repo = make_repo([numbers, summed])
    result = repo.materialize()
    assert "summed/numbers" not in _started(repo, result.run_id)
    assert repo.load_node("summed") == 6


def test_task_handle_members():
    handles = []

    @rs.Asset.from_graph
    def members():
        h = _one()
        handles.append(h)
        return h

    handle = handles[0]
    assert isinstance(handle, rs.InvokedNodeOutput)
    assert handle.node_name == "_one"
    assert handle.output_name == "result"


@pytest.mark.parametrize(
    "operation",
    [
        pytest.param(bool, id="bool"),
        pytest.param(iter, id="iter"),
        pytest.param(lambda h: [x for x in h], id="for-loop"),
        pytest.param(lambda h: h[0], id="index"),
        pytest.param(lambda h: h["key"], id="key"),
        pytest.param(lambda h: h + 1, id="add"),
        pytest.param(lambda h: 1 + h, id="radd"),
        pytest.param(lambda h: h * 2, id="mul"),
        pytest.param(lambda h: h - 1, id="sub"),
    ],
)
def test_handles_are_opaque(operation):
    @rs.Asset.from_graph
    def opaque():
        h = _one()
        with pytest.raises(TypeError):
            operation(h)
        return h

    assert opaque.is_graph


# --------------------------------------------------------------------------- wiring (R25-R29)


def test_positional_wiring_skips_the_context_parameter(make_repo):
    @rs.Task
    def combine(context: rs.TaskExecutionContext, a: int, b: str) -> str:
        return f"{context.task_name}:{a}:{b}"

    @rs.Asset.from_graph
    def positional():
        return combine(1, "x")

    repo = make_repo([positional])
    repo.materialize()
    assert repo.load_node("positional") == "positional/combine:1:x"


def test_keyword_wiring(make_repo):
    @rs.Task
    def combine(a: int, b: str) -> str:
        return f"{a}:{b}"

    @rs.Asset.from_graph
    def by_keyword():
        return combine(b="y", a=2)

    repo = make_repo([by_keyword])
    repo.materialize()
    assert repo.load_node("by_keyword") == "2:y"


def test_handle_arguments_are_data_edges(make_repo):
    order = []

    @rs.Task
    def base() -> list[int]:
        order.append("base")
        return [1, 2]

    @rs.Task
    def extend(values: list[int], extra: int) -> list[int]:
        order.append("extend")
        return values + [extra]

    @rs.Asset.from_graph
    def edged():
        return extend(extra=3, values=base())

    repo = make_repo([edged])
    repo.materialize()
    assert order == ["base", "extend"]
    assert repo.load_node("edged") == [1, 2, 3]


def test_constants_are_passed_unchanged_on_every_run(make_repo):
    received = []

    @rs.Task
    def keep(config: dict, label: str) -> str:
        received.append(config)
        return f"{label}:{sorted(config)}"

    @rs.Asset.from_graph
    def constant():
        return keep({"k": [1, 2], "z": None}, label="fixed")

    repo = make_repo([constant])
    repo.materialize()
    repo.materialize()
    assert received == [{"k": [1, 2], "z": None}, {"k": [1, 2], "z": None}]
    assert not any(isinstance(r, rs.InvokedNodeOutput) for r in received)
    assert repo.load_node("constant") == "fixed:['k', 'z']"


def test_unwired_parameter_resolves_from_an_asset_of_the_same_name(make_repo):
    calls = []

    @rs.Asset
    def numbers() -> list[int]:
        calls.append("numbers")
        return [1, 2, 3]

    @rs.Task
    def shifted(numbers: list[int], offset: int) -> list[int]:
        calls.append("shifted")
        return [n + offset for n in numbers]

    @rs.Asset.from_graph
    def implicit():
        return shifted(offset=10)

    repo = make_repo([numbers, implicit])
    result = repo.materialize()
    assert result.success
    assert calls == ["numbers", "shifted"]
    assert repo.load_node("implicit") == [11, 12, 13]


def test_unwired_parameter_resolves_from_a_resource(make_repo):
    @rs.Task
    def greet(name: str, greeting: str) -> str:
        return f"{greeting} {name}"

    @rs.Asset.from_graph
    def greeted():
        return greet("ann")

    repo = make_repo([greeted], resources={"greeting": "hello"})
    repo.materialize()
    assert repo.load_node("greeted") == "hello ann"


def test_unwired_parameter_keeps_its_python_default(make_repo):
    @rs.Task
    def scaled(x: int, factor: int = 3) -> int:
        return x * factor

    @rs.Asset.from_graph
    def defaulted():
        return scaled(4)

    repo = make_repo([defaulted])
    repo.materialize()
    assert repo.load_node("defaulted") == 12


def _unresolvable_graph():
    @rs.Task
    def needs_mystery(mystery: int) -> int:
        return mystery

    @rs.Asset.from_graph
    def unresolvable():
        return needs_mystery()

    return unresolvable


def test_unresolvable_parameter_fails_validate(make_repo):
    repo = make_repo([_unresolvable_graph()], resolve=False)
    with pytest.raises(ConfigurationError):
        repo.validate()


def test_unresolvable_parameter_fails_resolve(make_repo):
    repo = make_repo([_unresolvable_graph()], resolve=False)
    with pytest.raises(ConfigurationError):
        repo.resolve(storage=rs.Storage.memory())


def test_sibling_internal_nodes_are_not_resolved_implicitly(make_repo):
    @rs.Task
    def first() -> int:
        return 1

    @rs.Task
    def second(first: int) -> int:
        return first + 1

    @rs.Asset.from_graph
    def siblings():
        first()
        return second()

    repo = make_repo([siblings], resolve=False)
    with pytest.raises(ConfigurationError):
        repo.validate()


@rs.Task
def _inc(x: int) -> int:
    return x + 1


@rs.Task
def _ctx_pair(context: rs.TaskExecutionContext, a: int, b: int) -> int:
    return a + b


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: _inc(1, 2), id="too-many-positionals"),
        pytest.param(lambda: _ctx_pair(1, 2, 3), id="too-many-positionals-after-context"),
        pytest.param(lambda: _inc(y=1), id="unknown-keyword"),
        pytest.param(lambda: _inc(1, x=2), id="double-binding"),
        pytest.param(lambda: _ctx_pair(1, 2, a=3), id="double-binding-after-context"),
    ],
)
def test_bad_wiring_is_a_task_definition_error(call):
    with pytest.raises(TaskDefinitionError):

        @rs.Asset.from_graph
        def badly_wired():
            return call()


# --------------------------------------------------------------------------- malformed bodies


def test_async_body_is_an_asset_definition_error():
    with pytest.raises(AssetDefinitionError):

        @rs.Asset.from_graph
        async def async_body():
            return _one()


def test_context_named_parameter_in_the_body_is_an_asset_definition_error():
    with pytest.raises(AssetDefinitionError):

        @rs.Asset.from_graph
        def with_context(context):
            return _one()


@pytest.mark.parametrize("annotation", [rs.AssetExecutionContext, rs.TaskExecutionContext])
def test_context_annotated_parameter_in_the_body_is_an_asset_definition_error(annotation):
    def body(ctx: annotation):
        return _one()

    with pytest.raises(AssetDefinitionError):
        rs.Asset.from_graph(body, name="annotated_context")


def test_returning_none_is_an_asset_definition_error():
    with pytest.raises(AssetDefinitionError):

        @rs.Asset.from_graph
        def returns_none():
            _one()


def test_returning_a_literal_is_an_asset_definition_error():
    with pytest.raises(AssetDefinitionError):

        @rs.Asset.from_graph
        def returns_literal():
            _one()
            return 42


def test_returning_a_graph_parameter_is_an_asset_definition_error():
    with pytest.raises(AssetDefinitionError):

        @rs.Asset.from_graph
        def returns_parameter(numbers):
            _inc(numbers)
            return numbers


def test_returning_an_asset_handle_is_an_asset_definition_error():
    @rs.Asset
    def upstream_value() -> int:
        return 1

    with pytest.raises(AssetDefinitionError):

        @rs.Asset.from_graph
        def returns_asset():
            _inc(upstream_value())
            return upstream_value()


def test_handle_from_another_graph_is_an_asset_definition_error():
    captured = []

    @rs.Asset.from_graph
    def owner():
        h = _one()
        captured.append(h)
        return h

    with pytest.raises(AssetDefinitionError):

        @rs.Asset.from_graph
        def borrower():
            return _inc(captured[0])


def test_arguments_to_an_asset_call_are_an_asset_definition_error():
    @rs.Asset
    def called_asset() -> int:
        return 1

    with pytest.raises(AssetDefinitionError):

        @rs.Asset.from_graph
        def passes_arguments():
            return _inc(called_asset(1))


# --------------------------------------------------------------------------- IO handlers (R31-R36)


def test_dual_write_with_node_and_graph_handlers(make_repo, handler_cls):
    node_handler, graph_handler = handler_cls(), handler_cls()
    g = _two_step_graph([], node_io_handler=node_handler, io_handler=graph_handler)
    repo = make_repo([g])
    result = repo.materialize()
    assert result.success
    assert [w["asset_name"] for w in node_handler.writes] == ["g/a", "g/b"]
    assert [w["asset_name"] for w in graph_handler.writes] == ["g"]
    assert graph_handler.writes[0]["value"] == 2
    assert repo.load_node("g") == repo.load_node("g/b") == 2
    assert repo.load_node("g/a") == 1
    assert repo.io_handler_for_output("g/a") is node_handler
    assert repo.io_handler_for_output("g/b") is node_handler
    assert repo.io_handler_for_output("g") is graph_handler


def test_graph_handler_is_the_fallback_for_internal_tasks(make_repo, handler_cls):
    graph_handler = handler_cls()
    g = _two_step_graph([], io_handler=graph_handler)
    repo = make_repo([g])
    repo.materialize()
    assert sorted(w["asset_name"] for w in graph_handler.writes) == ["g", "g/a", "g/b"]
    assert repo.io_handler_for_output("g/a") is graph_handler
    assert repo.io_handler_for_output("g") is graph_handler


def test_without_handlers_the_shared_default_is_used(make_repo):
    @rs.Asset
    def plain_asset() -> int:
        return 0

    g = _two_step_graph([])
    repo = make_repo([plain_asset, g])
    repo.materialize()
    default = repo.io_handler_for_output("plain_asset")
    assert isinstance(default, rs.InMemoryIOHandler)
    assert repo.io_handler_for_output("g") is default
    assert repo.io_handler_for_output("g/a") is default
    assert repo.io_handler_for_output("g/b") is default
    assert repo.load_node("g") == repo.load_node("g/b") == 2


def test_task_handler_wins_over_node_handler(make_repo, handler_cls):
    own, node_handler, graph_handler = handler_cls(), handler_cls(), handler_cls()

    @rs.Task(io_handler=own)
    def a() -> int:
        return 1

    @rs.Task
    def b(x: int) -> int:
        return x + 1

    @rs.Asset.from_graph(name="g", node_io_handler=node_handler, io_handler=graph_handler)
    def g():
        return b(a())

    repo = make_repo([g])
    repo.materialize()
    assert [w["asset_name"] for w in own.writes] == ["g/a"]
    assert [w["asset_name"] for w in node_handler.writes] == ["g/b"]
    assert [w["asset_name"] for w in graph_handler.writes] == ["g"]
    assert repo.io_handler_for_output("g/a") is own
    assert repo.io_handler_for_output("g/b") is node_handler


def test_string_handlers_resolve_from_resources(make_repo, handler_cls):
    node_handler, graph_handler = handler_cls(), handler_cls()
    g = _two_step_graph([], node_io_handler="nodes", io_handler="graphs")
    repo = make_repo([g], resources={"nodes": node_handler, "graphs": graph_handler})
    repo.materialize()
    assert repo.io_handler_for_output("g/a") is node_handler
    assert repo.io_handler_for_output("g") is graph_handler
    assert [w["asset_name"] for w in node_handler.writes] == ["g/a", "g/b"]
    assert [w["asset_name"] for w in graph_handler.writes] == ["g"]
    assert repo.load_node("g") == 2


@pytest.mark.parametrize("keyword", ["io_handler", "node_io_handler"])
def test_missing_handler_resource_is_a_configuration_error_at_resolve(make_repo, keyword):
    g = _two_step_graph([], **{keyword: "no_such_resource"})
    repo = make_repo([g], resolve=False)
    with pytest.raises(ConfigurationError):
        repo.resolve(storage=rs.Storage.memory())


def test_missing_task_handler_resource_inside_a_graph_is_a_configuration_error(make_repo):
    @rs.Task(io_handler="no_such_resource")
    def stored() -> int:
        return 1

    @rs.Asset.from_graph
    def wraps_stored():
        return stored()

    repo = make_repo([wraps_stored], resolve=False)
    with pytest.raises(ConfigurationError):
        repo.resolve(storage=rs.Storage.memory())


def test_downstream_assets_read_the_graph_through_its_handler(make_repo, handler_cls):
    node_handler, graph_handler = handler_cls(), handler_cls()
    g = _two_step_graph([], node_io_handler=node_handler, io_handler=graph_handler)

    @rs.Asset
    def report(g: int) -> str:
        return f"value={g}"

    repo = make_repo([g, report])
    repo.materialize()
    assert repo.load_node("report") == "value=2"
    assert any(r["asset_name"] == "g" and r["downstream_asset"] == "report" for r in graph_handler.reads)
    assert not any(r["downstream_asset"] == "report" for r in node_handler.reads)


@pytest.mark.parametrize("name", ["g/missing", "missing", "g/a/b"])
def test_unknown_node_names_raise_node_not_found(make_repo, name):
    g = _two_step_graph([])
    repo = make_repo([g])
    repo.materialize()
    with pytest.raises(NodeNotFoundError):
        repo.load_node(name)
    with pytest.raises(NodeNotFoundError):
        repo.io_handler_for_output(name)


# --------------------------------------------------------------------------- executors (R38-R41)


def test_invalid_node_executor_is_a_configuration_error_at_validate(make_repo):
    g = _two_step_graph([], metadata={"rivers/node/executor": "threads"})
    repo = make_repo([g], resolve=False)
    with pytest.raises(ConfigurationError):
        repo.validate()


def test_invalid_graph_executor_is_a_configuration_error_at_validate(make_repo):
    g = _two_step_graph([], metadata={"rivers/executor": "sideways"})
    repo = make_repo([g], resolve=False)
    with pytest.raises(ConfigurationError):
        repo.validate()


def test_node_executor_in_process_keeps_internal_steps_in_the_calling_process(defs):
    with _parallel_repo([defs.node_in_process]) as repo:
        result = repo.materialize()
        assert result.success
        assert repo.load_node("node_in_process/pid_first") == os.getpid()
        assert repo.load_node("node_in_process") == [os.getpid(), os.getpid()]
        assert _step_types(repo, result.run_id, "node_in_process/pid_first") == ["StepStart", "StepSuccess"]


def test_graph_executor_is_the_fallback_for_internal_steps(defs):
    with _parallel_repo([defs.graph_executor_fallback]) as repo:
        assert repo.materialize().success
        assert repo.load_node("graph_executor_fallback") == [os.getpid(), os.getpid()]


def test_internal_steps_inherit_the_parallel_run_executor(defs):
    with _parallel_repo([defs.inherits_run_executor]) as repo:
        assert repo.materialize().success
        first, second = repo.load_node("inherits_run_executor")
        assert first != os.getpid()
        assert second != os.getpid()


def test_node_executor_parallel_sends_internal_steps_to_workers(defs, make_repo):
    repo = make_repo([defs.node_parallel])
    assert repo.materialize().success
    first, second = repo.load_node("node_parallel")
    assert first != os.getpid()
    assert second != os.getpid()


def test_example_3_split_io_handlers_and_executors(defs):
    with _parallel_repo([defs.daily_report], resources={"report_store": defs.report_store}) as repo:
        result = repo.materialize()
        assert result.success
        assert repo.load_node("daily_report") == "3 rows, total 6"
        assert repo.load_node("daily_report/render") == "3 rows, total 6"
        assert repo.load_node("daily_report/summarise") == {"count": 3, "total": 6}
        assert repo.io_handler_for_output("daily_report") is defs.report_store
        assert isinstance(repo.io_handler_for_output("daily_report/render"), rs.InMemoryIOHandler)
        assert (defs.STORE_DIR / "reports" / "daily_report.pkl").exists()
        pids = {m["name"]: m["pid"] for m in defs.read_marks("pid")}
        assert pids == {"fetch_rows": os.getpid(), "summarise": os.getpid(), "render": os.getpid()}
        for node in ("daily_report/fetch_rows", "daily_report/summarise", "daily_report/render"):
            assert _step_types(repo, result.run_id, node) == ["StepStart", "StepSuccess"]


# --------------------------------------------------------------------------- events


def test_internal_tasks_write_step_events_only_and_the_graph_one_materialization(make_repo):
    @rs.Asset
    def src() -> int:
        return 2

    @rs.Task
    def a(src: int) -> int:
        return src * 10

    @rs.Task
    def b(x: int) -> int:
        return x + 1

    @rs.Asset.from_graph(name="g")
    def g():
        return b(a())

    repo = make_repo([src, g])
    result = repo.materialize()
    assert result.success
    assert _step_types(repo, result.run_id, "g/a") == ["StepStart", "StepSuccess"]
    assert _step_types(repo, result.run_id, "g/b") == ["StepStart", "StepSuccess"]
    assert _step_types(repo, result.run_id, "g") == ["StepStart", "Materialization", "StepSuccess"]
    materialized = [key for kind, key in _events(repo, result.run_id) if kind == "Materialization"]
    assert sorted(materialized) == ["g", "src"]
    events = _events(repo, result.run_id)
    assert events[0] == ("RunStart", None)
    assert events[-1] == ("RunSuccess", None)
    assert repo.load_node("g") == 21


# --------------------------------------------------------------------------- selection and jobs (R60)


def test_selecting_the_graph_runs_every_internal_step(make_repo):
    calls = []

    @rs.Asset
    def bystander() -> int:
        calls.append("bystander")
        return 0

    g = _two_step_graph(calls)
    repo = make_repo([bystander, g])
    result = repo.materialize(selection=["g"])
    assert result.success
    assert calls == ["a", "b"]
    assert repo.load_node("g") == 2


def test_selecting_an_internal_task_runs_that_step_only(make_repo):
    calls = []
    g = _two_step_graph(calls)
    repo = make_repo([g])
    repo.materialize()
    calls.clear()
    result = repo.materialize(selection=["g/b"])
    assert result.success
    assert calls == ["b"]
    assert _started(repo, result.run_id) == ["g/b"]
    assert repo.load_node("g/b") == 2


def test_job_listing_only_the_graph_runs_all_internal_steps(make_repo):
    calls = []
    g = _two_step_graph(calls)
    job = rs.Job(name="graph_only", assets=[g])
    repo = make_repo([g], jobs=[job])
    result = repo.get_job("graph_only").execute()
    assert result.success
    assert calls == ["a", "b"]
    assert {"g/a", "g/b", "g"} <= set(_started(repo, result.run_id))
    assert repo.storage.get_run(result.run_id).job_name == "graph_only"
    assert repo.load_node("g") == 2


def _graph_with_external_upstream(kind):
    @rs.Asset
    def src() -> int:
        return 4

    @rs.Task
    def double(x: int) -> int:
        return x * 2

    @rs.Task
    def double_src(src: int) -> int:
        return src * 2

    if kind == "parameter":

        def body(src):
            return double(src)

    elif kind == "asset-call":

        def body():
            return double(src())

    else:

        def body():
            return double_src()

    return src, rs.Asset.from_graph(body, name="needs_src")


@pytest.mark.parametrize("kind", ["parameter", "asset-call", "implicit"])
def test_job_missing_an_external_upstream_of_the_graph_is_rejected(kind):
    src, graph = _graph_with_external_upstream(kind)
    job = rs.Job(name="partial", assets=[graph])
    with pytest.raises(GraphValidationError):
        repo = rs.CodeRepository(assets=[src, graph], jobs=[job], default_executor=rs.Executor.in_process())
        repo.validate()


@pytest.mark.parametrize("kind", ["parameter", "asset-call", "implicit"])
def test_job_with_allow_incomplete_deps_loads_the_external_upstream(make_repo, kind):
    src, graph = _graph_with_external_upstream(kind)
    job = rs.Job(name="partial", assets=[graph], allow_incomplete_deps=True)
    repo = make_repo([src, graph], jobs=[job])
    repo.materialize(selection=["src"])
    result = repo.get_job("partial").execute()
    assert result.success
    assert "src" not in _started(repo, result.run_id)
    assert repo.load_node("needs_src") == 8


# --------------------------------------------------------------------------- hooks (R62)


def test_success_hooks_fire_once_for_the_graph_step(make_repo):
    seen = []

    @rs.Hook.success
    def on_ok(ctx: rs.HookContext) -> None:
        seen.append((ctx.asset_name, ctx.hook_type, ctx.output))

    g = _two_step_graph([], hooks=[on_ok])
    repo = make_repo([g])
    repo.materialize()
    assert seen == [("g", "success", 2)]


def test_failure_hooks_fire_once_for_the_graph_when_an_internal_task_fails(make_repo):
    seen = []

    @rs.Hook.failure
    def on_fail(ctx: rs.HookContext) -> None:
        seen.append((ctx.asset_name, ctx.hook_type))

    @rs.Task
    def broken() -> int:
        raise RuntimeError("internal task broke")

    @rs.Asset.from_graph(hooks=[on_fail])
    def hooked():
        return _inc(broken())

    repo = make_repo([hooked])
    result = repo.materialize(raise_on_error=False)
    assert not result.success
    assert seen == [("hooked", "failure")]


# --------------------------------------------------------------------------- retries (R63)


class _FlakyGraphHandler(rs.BaseIOHandler):
    """Fails the first write of ``fail_for`` and stores everything else."""

    fail_for: str

    _values: dict = PrivateAttr(default_factory=dict)
    _failures: list = PrivateAttr(default_factory=list)

    def handle_output(self, context: rs.OutputContext, obj) -> None:
        if context.asset_name == self.fail_for and not self._failures:
            self._failures.append(context.asset_name)
            raise ConnectionError("graph store hiccup")
        self._values[context.asset_name] = obj

    def load_input(self, context: rs.InputContext):
        return self._values[context.asset_name]


def _flaky_task(key, **task_kwargs):
    @rs.Task(name="flaky", **task_kwargs)
    def flaky() -> int:
        ATTEMPTS[key] += 1
        if ATTEMPTS[key] == 1:
            raise RuntimeError(f"first attempt of {key} fails")
        return ATTEMPTS[key]

    return flaky


def test_graph_retry_does_not_apply_to_internal_steps(make_repo):
    ATTEMPTS.clear()
    flaky = _flaky_task("graph-retry-only")

    @rs.Asset.from_graph(retry=rs.RetryPolicy(max_retries=3))
    def retried_graph():
        return _inc(flaky())

    repo = make_repo([retried_graph])
    result = repo.materialize(raise_on_error=False)
    assert not result.success
    assert ATTEMPTS["graph-retry-only"] == 1
    assert _retry_count(repo, result.run_id, "retried_graph/flaky") == 0
    assert "retried_graph/flaky" in [name for name, _ in result.failed_assets]


def test_task_retry_applies_to_the_internal_step(make_repo):
    ATTEMPTS.clear()
    flaky = _flaky_task("task-retry", retry=rs.RetryPolicy(max_retries=1))

    @rs.Asset.from_graph
    def task_retried():
        return _inc(flaky())

    repo = make_repo([task_retried])
    result = repo.materialize()
    assert result.success
    assert ATTEMPTS["task-retry"] == 2
    assert _retry_count(repo, result.run_id, "task_retried/flaky") == 1
    assert _retry_count(repo, result.run_id, "task_retried") == 0
    assert _step_types(repo, result.run_id, "task_retried/flaky")[-1] == "StepSuccess"
    assert repo.load_node("task_retried") == 3


def test_graph_retry_applies_to_the_graph_step(make_repo, handler_cls):
    graph_handler = _FlakyGraphHandler(fail_for="graph_step_retried")

    @rs.Asset.from_graph(
        name="graph_step_retried",
        io_handler=graph_handler,
        node_io_handler=handler_cls(),
        retry=rs.RetryPolicy(max_retries=1),
    )
    def graph_step_retried():
        return _inc(_one())

    repo = make_repo([graph_step_retried])
    result = repo.materialize()
    assert result.success
    assert _retry_count(repo, result.run_id, "graph_step_retried") == 1
    assert _retry_count(repo, result.run_id, "graph_step_retried/_one") == 0
    assert _retry_count(repo, result.run_id, "graph_step_retried/_inc") == 0
    assert repo.load_node("graph_step_retried") == 2


def test_repository_default_policy_applies_to_internal_steps(make_repo):
    ATTEMPTS.clear()
    flaky = _flaky_task("repo-default")

    @rs.Asset.from_graph
    def default_retried():
        return _inc(flaky())

    repo = make_repo([default_retried], default_retry_policy=rs.RetryPolicy(max_retries=1))
    result = repo.materialize()
    assert result.success
    assert _retry_count(repo, result.run_id, "default_retried/flaky") == 1


def test_job_policy_applies_to_internal_steps(make_repo):
    ATTEMPTS.clear()
    flaky = _flaky_task("job-policy")

    @rs.Asset.from_graph
    def job_retried():
        return _inc(flaky())

    job = rs.Job(name="retrying", assets=[job_retried], retry=rs.RetryPolicy(max_retries=1))
    repo = make_repo([job_retried], jobs=[job])
    result = repo.get_job("retrying").execute()
    assert result.success
    assert _retry_count(repo, result.run_id, "job_retried/flaky") == 1


# --------------------------------------------------------------------------- run records (R64)


def test_run_record_lists_graph_and_internal_nodes(make_repo):
    @rs.Asset
    def src() -> int:
        return 1

    @rs.Task
    def a(src: int) -> int:
        return src

    @rs.Task
    def b(x: int) -> int:
        return x + 1

    @rs.Asset.from_graph(name="g")
    def g():
        return b(a())

    repo = make_repo([src, g])
    result = repo.materialize()
    record = repo.storage.get_run(result.run_id)
    assert sorted(record.node_names) == ["g", "g/a", "g/b", "src"]
    assert "g" in result.materialized_assets
    assert "src" in result.materialized_assets


def test_failed_graph_run_reports_the_internal_task(make_repo):
    @rs.Task
    def broken() -> int:
        raise RuntimeError("no data today")

    @rs.Asset.from_graph
    def fragile():
        return _inc(broken())

    repo = make_repo([fragile])
    result = repo.materialize(raise_on_error=False)
    assert not result.success
    failed = dict(result.failed_assets)
    assert "no data today" in failed["fragile/broken"]
    assert "StepStart" not in _step_types(repo, result.run_id, "fragile")
    assert "Materialization" not in _step_types(repo, result.run_id, "fragile")
    assert repo.storage.get_run(result.run_id).status == "Failure"
    with pytest.raises(ExecutionError, match="no data today"):
        repo.materialize()


# --------------------------------------------------------------------------- BashTask inside a graph


def test_bash_task_value_inside_a_graph_is_its_stdout(make_repo):
    shout = rs.BashTask("shout", command="printf 'hello graph\\n'")

    @rs.Task
    def upper(text: str) -> str:
        return text.upper()

    @rs.Asset.from_graph
    def shouted():
        return upper(shout())

    repo = make_repo([shouted])
    repo.materialize()
    assert repo.load_node("shouted/shout") == "hello graph"
    assert repo.load_node("shouted") == "HELLO GRAPH"


def test_bash_task_handle_arguments_are_ordering_only_edges(make_repo, tmp_path):
    marker = tmp_path / "marker.txt"

    @rs.Task
    def seed() -> int:
        return 1

    @rs.Task
    def write_marker(x: int) -> str:
        marker.write_text("written-first")
        return "not passed to the command"

    reader = rs.BashTask("reader", command=f"cat '{marker}'")

    @rs.Asset.from_graph
    def ordered():
        # without the edge, ``reader`` would be a root step and run before ``write_marker``
        return reader(write_marker(seed()))

    repo = make_repo([ordered])
    result = repo.materialize()
    assert result.success
    assert repo.load_node("ordered") == "written-first"
    started = _started(repo, result.run_id)
    assert started.index("ordered/write_marker") < started.index("ordered/reader")


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda bash: bash("literal"), id="positional-constant"),
        pytest.param(lambda bash: bash(value=3), id="keyword-constant"),
    ],
)
def test_bash_task_non_handle_arguments_are_task_definition_errors(call):
    bash = rs.BashTask("echoer", command="echo hi")

    with pytest.raises(TaskDefinitionError):

        @rs.Asset.from_graph
        def bad_bash():
            return _inc(call(bash))


# --------------------------------------------------------------------------- async tasks as graph nodes


def test_async_tasks_are_graph_nodes(make_repo):
    @rs.Task
    async def fetch(n: int) -> int:
        await asyncio.sleep(0)
        return n * 2

    @rs.Task
    def plus(x: int) -> int:
        return x + 1

    @rs.Task
    async def finish(x: int) -> str:
        await asyncio.sleep(0)
        return f"done:{x}"

    @rs.Asset.from_graph
    def mixed():
        return finish(plus(fetch(4)))

    repo = make_repo([mixed])
    result = repo.materialize()
    assert result.success
    assert repo.load_node("mixed/fetch") == 8
    assert repo.load_node("mixed/plus") == 9
    assert repo.load_node("mixed") == "done:9"


# --------------------------------------------------------------------------- spec examples


def test_example_1_graph_with_an_external_input():
    @rs.Asset
    def raw_lines() -> list[str]:
        return ["a b", "", "c d e"]

    @rs.Task
    def drop_blank(lines: list[str]) -> list[str]:
        return [ln for ln in lines if ln.strip()]

    @rs.Task(name="tokens")
    def split_tokens(lines: list[str]) -> list[str]:
        return [tok for ln in lines for tok in ln.split()]

    @rs.Asset.from_graph()
    def vocabulary(raw_lines: list[str]):
        kept = drop_blank(raw_lines)
        return split_tokens(kept)

    repo = rs.CodeRepository(assets=[raw_lines, vocabulary], default_executor=rs.Executor.in_process())
    try:
        repo.resolve(rs.Storage.memory())
        repo.materialize()
        assert repo.load_node("vocabulary") == ["a", "b", "c", "d", "e"]
        assert repo.load_node("vocabulary/tokens") == ["a", "b", "c", "d", "e"]
        assert repo.load_node("vocabulary/drop_blank") == ["a b", "c d e"]
    finally:
        repo.shutdown()


def test_example_2_wiring(make_repo):
    @rs.Asset
    def exchange_rates() -> dict:
        return {"EUR": 1.1}

    @rs.Task
    def amounts(currency: str) -> list[float]:
        return [10.0, 20.0] if currency == "EUR" else []

    @rs.Task
    def convert(context: rs.TaskExecutionContext, values: list[float], exchange_rates: dict, factor: float = 1.0):
        context.log.info("converting %d values", len(values))
        return [v * exchange_rates["EUR"] * factor for v in values]

    @rs.Asset.from_graph(name="in_dollars")
    def in_dollars():
        eur = amounts("EUR")
        return convert(values=eur)

    repo = make_repo([exchange_rates, in_dollars])
    result = repo.materialize()
    assert result.success
    assert repo.load_node("in_dollars/amounts") == [10.0, 20.0]
    assert repo.load_node("in_dollars") == pytest.approx([11.0, 22.0])
    started = _started(repo, result.run_id)
    assert started.index("exchange_rates") < started.index("in_dollars/convert")


def test_example_5_bash_task_standalone_and_inside_a_graph(make_repo):
    today = rs.BashTask("today", command="date -u +%F")

    @rs.BashTask(command=[sys.executable, "-c", "print(6 * 7)"], env={"PYTHONUNBUFFERED": "1"})
    def answer(): ...

    @rs.Task
    def as_int(text: str) -> int:
        return int(text)

    @rs.Asset.from_graph()
    def computed_answer():
        return as_int(answer())

    assert answer() == "42"
    repo = make_repo([computed_answer], tasks=[today])
    result = repo.materialize(selection=["computed_answer", "today"])
    assert result.success
    assert repo.load_node("computed_answer") == 42
    assert repo.load_node("computed_answer/answer") == "42"
    assert len(repo.load_node("today")) == 10

    failing = rs.BashTask("failing", command="echo oops >&2; exit 3")
    with pytest.raises(OSError, match="oops"):
        failing()
