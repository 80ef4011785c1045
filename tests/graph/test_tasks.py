"""``rs.Task``, ``rs.TaskExecutionContext`` and standalone tasks on a repository
(graph-and-tasks.md "rs.Task", "rs.TaskExecutionContext", "Standalone tasks on a repository", R1-R7).

Everything rivers-specific is built inside the tests so that a missing feature fails its own tests only.
"""

import asyncio
import os

import pydantic
import pytest

import rivers as rs
from rivers.exceptions import (
    ConfigurationError,
    ExecutionError,
    GraphValidationError,
    TaskDefinitionError,
)


def _numbers_asset(calls=None):
    calls = [] if calls is None else calls

    @rs.Asset
    def numbers() -> list:
        calls.append("numbers")
        return [1, 2, 3]

    return numbers


def _step_event_types(repo, run_id, node):
    return [e.event_type for e in repo.storage.get_events_for_run(run_id) if e.asset_key == node]


# --------------------------------------------------------------------------- the three forms


def test_bare_decorator_returns_task_named_after_function():
    @rs.Task
    def parse(raw: str) -> dict:
        return {"raw": raw}

    assert isinstance(parse, rs.Task)
    assert parse.name == "parse"
    assert parse.tags is None


def test_decorator_factory_applies_name_and_tags():
    @rs.Task(name="parse_v2", tags=["cpu"])
    def parse_again(raw: str) -> dict:
        return {"raw": raw}

    assert isinstance(parse_again, rs.Task)
    assert parse_again.name == "parse_v2"
    assert parse_again.tags == ["cpu"]


def test_decorator_factory_without_name_uses_function_name():
    @rs.Task(tags=["io"])
    def fetch() -> int:
        return 1

    assert fetch.name == "fetch"
    assert fetch.tags == ["io"]


def test_constructor_form_is_equivalent_to_decorator():
    def some_function(raw: str) -> str:
        return raw.upper()

    parse3 = rs.Task(some_function, name="parse3")
    assert isinstance(parse3, rs.Task)
    assert parse3.name == "parse3"
    assert parse3("abc") == "ABC"


def test_constructor_form_with_wraps_keyword_defaults_name_to_function():
    def cleanse() -> int:
        return 0

    task = rs.Task(wraps=cleanse)
    assert task.name == "cleanse"


def test_unapplied_factory_without_name_has_no_name_until_applied():
    factory = rs.Task(tags=["late"])
    assert factory.name is None

    def applied_later() -> int:
        return 5

    task = factory(applied_later)
    assert isinstance(task, rs.Task)
    assert task.name == "applied_later"
    assert task.tags == ["late"]
    assert task() == 5


def test_is_async_reflects_the_wrapped_function():
    @rs.Task
    def sync_task() -> int:
        return 1

    @rs.Task
    async def async_task() -> int:
        return 2

    assert sync_task.is_async is False
    assert async_task.is_async is True


def test_async_generator_task_reports_async():
    @rs.Task
    async def streaming():
        yield 1

    assert streaming.is_async is True


# --------------------------------------------------------------------------- direct call


def test_direct_call_returns_the_function_result():
    @rs.Task
    def add(a: int, b: int = 10) -> int:
        return a + b

    assert add(1, 2) == 3
    assert add(5) == 15
    assert add(a=2, b=3) == 5


def test_direct_call_returns_the_result_unchanged():
    marker = object()

    @rs.Task
    def identity(x):
        return x

    assert identity(marker) is marker


def test_direct_call_of_async_task_returns_a_coroutine():
    @rs.Task
    async def later(x: int) -> int:
        await asyncio.sleep(0)
        return x * 2

    coro = later(21)
    assert asyncio.iscoroutine(coro)
    assert asyncio.run(coro) == 42


def test_direct_call_injects_no_context_and_touches_no_handler(recording_handler):
    seen = []

    @rs.Task(io_handler=recording_handler)
    def takes_anything(context):
        seen.append(context)
        return "ran"

    assert takes_anything("plain value") == "ran"
    assert seen == ["plain value"]
    assert recording_handler.writes == []


# --------------------------------------------------------------------------- definition errors


@pytest.mark.parametrize("wraps", [42, "not callable", 3.5], ids=["int", "str", "float"])
def test_non_callable_wraps_is_a_task_definition_error(wraps):
    with pytest.raises(TaskDefinitionError):
        rs.Task(wraps)


def test_non_callable_wraps_keyword_is_a_task_definition_error():
    with pytest.raises(TaskDefinitionError):
        rs.Task(wraps=[1, 2, 3])


@pytest.mark.parametrize("name", ["", "a/b", "a[0]", "x]", "[x", "graph/task[1]"])
def test_reserved_or_empty_name_is_a_task_definition_error(name):
    def fn() -> int:
        return 1

    with pytest.raises(TaskDefinitionError):
        rs.Task(fn, name=name)


@pytest.mark.parametrize("name", ["a/b", "a[0]", "b]"])
def test_reserved_name_in_decorator_factory_is_a_task_definition_error(name):
    with pytest.raises(TaskDefinitionError):

        @rs.Task(name=name)
        def fn() -> int:
            return 1


def test_io_handler_of_wrong_type_is_a_task_definition_error():
    def fn() -> int:
        return 1

    with pytest.raises(TaskDefinitionError):
        rs.Task(fn, io_handler=object())


def test_tasks_do_not_accept_hooks():
    @rs.Hook.success
    def on_ok(ctx):
        pass

    def fn() -> int:
        return 1

    with pytest.raises(TypeError):
        rs.Task(fn, hooks=[on_ok])


# --------------------------------------------------------------------------- TaskExecutionContext


def test_task_execution_context_can_be_constructed_directly():
    ctx = rs.TaskExecutionContext("t")
    assert ctx.task_name == "t"
    assert ctx.tags is None
    assert ctx.partition is None
    assert ctx.has_partition_key is False
    assert ctx.partition_time_window is None
    assert ctx.config is None


def test_task_execution_context_partition_key_raises_when_unpartitioned():
    ctx = rs.TaskExecutionContext("t")
    with pytest.raises(ValueError):
        _ = ctx.partition_key


def test_task_execution_context_logger_name():
    assert rs.TaskExecutionContext("t").log.name == "rivers.tasks.t"
    assert rs.TaskExecutionContext("etl/parse").log.name == "rivers.tasks.etl/parse"


def test_task_execution_context_keeps_tags():
    ctx = rs.TaskExecutionContext("t", tags=["cpu", "nightly"])
    assert ctx.tags == ["cpu", "nightly"]


def test_task_execution_context_has_no_asset_only_members():
    ctx = rs.TaskExecutionContext("t")
    for attr in ("kinds", "group", "code_version", "asset_metadata", "add_output_metadata", "output_metadata"):
        assert not hasattr(ctx, attr), attr


def test_direct_call_with_a_hand_built_context():
    @rs.Task
    def named(context: rs.TaskExecutionContext) -> str:
        return context.task_name

    assert named(rs.TaskExecutionContext("by_hand")) == "by_hand"


# --------------------------------------------------------------------------- standalone tasks: selection and loading


def test_standalone_task_runs_when_named_and_is_loadable(make_repo):
    @rs.Task
    def answer() -> int:
        return 42

    repo = make_repo([_numbers_asset()], tasks=[answer])
    result = repo.materialize(selection=["answer"])
    assert result.success
    assert result.materialized_assets == ["answer"]
    assert repo.load_node("answer") == 42


def test_standalone_task_does_not_run_without_selection(make_repo):
    calls = []

    @rs.Task
    def side_job() -> int:
        calls.append("side_job")
        return 1

    asset_calls = []
    repo = make_repo([_numbers_asset(asset_calls)], tasks=[side_job])
    result = repo.materialize()
    assert result.success
    assert asset_calls == ["numbers"]
    assert calls == []
    assert "side_job" not in result.materialized_assets


def test_standalone_task_step_events_use_its_bare_name(make_repo):
    @rs.Task
    def answer() -> int:
        return 42

    repo = make_repo([_numbers_asset()], tasks=[answer])
    result = repo.materialize(selection=["answer"])
    kinds = _step_event_types(repo, result.run_id, "answer")
    assert kinds[0] == "StepStart"
    assert kinds[-1] == "StepSuccess"


def test_task_name_overrides_function_name_for_the_node(make_repo):
    @rs.Task(name="renamed")
    def original() -> str:
        return "value"

    repo = make_repo([_numbers_asset()], tasks=[original])
    repo.materialize(selection=["renamed"])
    assert repo.load_node("renamed") == "value"


def test_async_standalone_task_is_awaited(make_repo):
    @rs.Task
    async def slow_answer() -> int:
        await asyncio.sleep(0)
        return 7

    repo = make_repo([_numbers_asset()], tasks=[slow_answer])
    assert repo.materialize(selection=["slow_answer"]).success
    assert repo.load_node("slow_answer") == 7


def test_standalone_task_output_goes_through_its_io_handler(make_repo, recording_handler):
    @rs.Task(io_handler=recording_handler)
    def persisted() -> dict:
        return {"rows": 3}

    repo = make_repo([_numbers_asset()], tasks=[persisted])
    repo.materialize(selection=["persisted"])
    assert [(w["asset_name"], w["value"]) for w in recording_handler.writes] == [("persisted", {"rows": 3})]
    assert repo.io_handler_for_output("persisted") is recording_handler
    assert repo.load_node("persisted") == {"rows": 3}
    assert [r["asset_name"] for r in recording_handler.reads] == ["persisted"]


def test_standalone_task_io_handler_string_resolves_from_resources(make_repo, recording_handler):
    @rs.Task(io_handler="vault")
    def persisted() -> int:
        return 3

    repo = make_repo([_numbers_asset()], tasks=[persisted], resources={"vault": recording_handler})
    assert repo.io_handler_for_output("persisted") is recording_handler
    repo.materialize(selection=["persisted"])
    assert [w["asset_name"] for w in recording_handler.writes] == ["persisted"]


def test_standalone_task_unknown_io_handler_resource_is_a_configuration_error():
    @rs.Task(io_handler="missing_key")
    def persisted() -> int:
        return 3

    with pytest.raises(ConfigurationError):
        rs.CodeRepository(assets=[], tasks=[persisted], default_executor=rs.Executor.in_process()).validate()


def test_standalone_task_without_handler_uses_the_shared_default(make_repo):
    @rs.Task
    def plain() -> int:
        return 1

    repo = make_repo([_numbers_asset()], tasks=[plain])
    default = repo.io_handler_for_output("numbers")
    assert isinstance(default, rs.InMemoryIOHandler)
    assert repo.io_handler_for_output("plain") is default


def test_task_returning_output_persists_the_unwrapped_value(make_repo, recording_handler):
    @rs.Task(io_handler=recording_handler)
    def wrapped():
        return rs.Output([1, 2], metadata={"rows": 2})

    repo = make_repo([_numbers_asset()], tasks=[wrapped])
    repo.materialize(selection=["wrapped"])
    assert [w["value"] for w in recording_handler.writes] == [[1, 2]]
    assert repo.load_node("wrapped") == [1, 2]


def test_job_listing_a_standalone_task_executes_it(make_repo):
    @rs.Task
    def answer() -> int:
        return 42

    job = rs.Job(name="answer_job", assets=[answer], executor=rs.Executor.in_process())
    repo = make_repo([_numbers_asset()], tasks=[answer], jobs=[job])
    result = repo.get_job("answer_job").execute()
    assert result.success
    assert result.materialized_assets == ["answer"]
    assert repo.storage.get_run(result.run_id).job_name == "answer_job"
    assert repo.load_node("answer") == 42


def test_job_with_a_task_and_its_downstream_asset(make_repo):
    @rs.Task
    def seed() -> int:
        return 4

    @rs.Asset
    def squared(seed: int) -> int:
        return seed * seed

    job = rs.Job(name="square", assets=[seed, squared], executor=rs.Executor.in_process())
    repo = make_repo([squared], tasks=[seed], jobs=[job])
    result = job.execute()
    assert result.success
    assert result.materialized_assets == ["seed", "squared"]
    assert repo.load_node("squared") == 16


def test_job_naming_an_unregistered_task_is_rejected():
    @rs.Task
    def orphan() -> int:
        return 1

    job = rs.Job(name="orphaned", assets=[orphan])
    with pytest.raises(GraphValidationError):
        rs.CodeRepository(assets=[], jobs=[job], default_executor=rs.Executor.in_process())


def test_job_missing_an_upstream_task_is_rejected():
    @rs.Task
    def seed() -> int:
        return 4

    @rs.Asset
    def squared(seed: int) -> int:
        return seed * seed

    job = rs.Job(name="partial", assets=[squared])
    with pytest.raises(GraphValidationError):
        rs.CodeRepository(assets=[squared], tasks=[seed], jobs=[job], default_executor=rs.Executor.in_process())


# --------------------------------------------------------------------------- standalone tasks: parameter resolution


def test_task_parameters_resolve_from_assets_by_name(make_repo):
    @rs.Task
    def total(numbers: list) -> int:
        return sum(numbers)

    repo = make_repo([_numbers_asset()], tasks=[total])
    result = repo.materialize(selection=["numbers", "total"])
    assert result.success
    assert repo.load_node("total") == 6


def test_task_runs_after_the_asset_it_reads(make_repo):
    order = []

    @rs.Task
    def total(numbers: list) -> int:
        order.append("total")
        return sum(numbers)

    repo = make_repo([_numbers_asset(order)], tasks=[total])
    repo.materialize(selection=["total", "numbers"])
    assert order == ["numbers", "total"]


def test_task_loads_an_unselected_upstream_through_its_handler(make_repo):
    calls = []

    @rs.Task
    def total(numbers: list) -> int:
        return sum(numbers)

    repo = make_repo([_numbers_asset(calls)], tasks=[total])
    repo.materialize()
    result = repo.materialize(selection=["total"])
    assert result.materialized_assets == ["total"]
    assert calls == ["numbers"]
    assert repo.load_node("total") == 6


def test_task_parameters_resolve_from_another_standalone_task(make_repo):
    @rs.Task
    def base() -> int:
        return 5

    @rs.Task
    def plus_one(base: int) -> int:
        return base + 1

    repo = make_repo([_numbers_asset()], tasks=[plus_one, base])
    assert repo.materialize(selection=["base", "plus_one"]).success
    assert repo.load_node("plus_one") == 6


def test_task_parameters_resolve_from_resources(make_repo):
    @rs.Task
    def greet(greeting: str) -> str:
        return f"{greeting}, world"

    repo = make_repo([_numbers_asset()], tasks=[greet], resources={"greeting": "hello"})
    repo.materialize(selection=["greet"])
    assert repo.load_node("greet") == "hello, world"


def test_task_parameter_matching_nothing_is_a_configuration_error():
    @rs.Task
    def lost(nowhere: int) -> int:
        return nowhere

    with pytest.raises(ConfigurationError):
        rs.CodeRepository(assets=[], tasks=[lost], default_executor=rs.Executor.in_process()).validate()


def test_task_parameter_with_default_keeps_it_when_matching_nothing(make_repo):
    @rs.Task
    def scaled(factor: int = 3) -> int:
        return factor * 2

    repo = make_repo([_numbers_asset()], tasks=[scaled])
    repo.materialize(selection=["scaled"])
    assert repo.load_node("scaled") == 6


def test_asset_can_depend_on_a_standalone_task(make_repo):
    @rs.Task
    def seed() -> int:
        return 4

    @rs.Asset
    def squared(seed: int) -> int:
        return seed * seed

    repo = make_repo([squared], tasks=[seed])
    result = repo.materialize(selection=["seed", "squared"])
    assert result.success
    assert repo.load_node("squared") == 16


def test_asset_depending_on_a_task_loads_its_stored_value(make_repo):
    calls = []

    @rs.Task
    def seed() -> int:
        calls.append("seed")
        return 4

    @rs.Asset
    def squared(seed: int) -> int:
        return seed * seed

    repo = make_repo([squared], tasks=[seed])
    repo.materialize(selection=["seed"])
    result = repo.materialize(selection=["squared"])
    assert result.materialized_assets == ["squared"]
    assert calls == ["seed"]
    assert repo.load_node("squared") == 16


# --------------------------------------------------------------------------- standalone tasks: context injection


def test_annotated_task_context_is_injected(make_repo):
    seen = {}

    @rs.Task(tags=["cpu"])
    def introspect(context: rs.TaskExecutionContext) -> str:
        seen.update(
            type=type(context),
            task_name=context.task_name,
            tags=context.tags,
            has_key=context.has_partition_key,
            config=context.config,
        )
        return "ok"

    repo = make_repo([_numbers_asset()], tasks=[introspect])
    assert repo.materialize(selection=["introspect"]).success
    assert issubclass(seen.pop("type"), rs.TaskExecutionContext)
    assert seen == {"task_name": "introspect", "tags": ["cpu"], "has_key": False, "config": None}


def test_context_does_not_count_as_a_data_parameter(make_repo):
    @rs.Task
    def total(context: rs.TaskExecutionContext, numbers: list) -> str:
        return f"{context.task_name}:{sum(numbers)}"

    repo = make_repo([_numbers_asset()], tasks=[total])
    repo.materialize(selection=["numbers", "total"])
    assert repo.load_node("total") == "total:6"


def test_asset_execution_context_annotation_on_a_task_is_injected(make_repo):
    seen = []

    @rs.Task
    def asset_style(context: rs.AssetExecutionContext) -> int:
        seen.append(isinstance(context, rs.AssetExecutionContext))
        return 1

    repo = make_repo([_numbers_asset()], tasks=[asset_style])
    assert repo.materialize(selection=["asset_style"]).success
    assert seen == [True]


def test_unannotated_context_parameter_gets_an_asset_execution_context(make_repo):
    seen = {}

    @rs.Task
    def by_name(context) -> int:
        seen.update(is_asset_ctx=isinstance(context, rs.AssetExecutionContext), name=context.asset_name)
        return 1

    repo = make_repo([_numbers_asset()], tasks=[by_name])
    assert repo.materialize(selection=["by_name"]).success
    assert seen == {"is_asset_ctx": True, "name": "by_name"}


def test_misplaced_context_fails_the_step(make_repo):
    @rs.Task
    def misplaced(numbers: list, context: rs.TaskExecutionContext) -> int:
        return len(numbers)

    repo = make_repo([_numbers_asset()], tasks=[misplaced])
    with pytest.raises(ExecutionError, match=r"Context must be the first parameter of 'misplaced'"):
        repo.materialize(selection=["numbers", "misplaced"])


def test_misplaced_context_is_reported_in_failed_assets(make_repo):
    @rs.Task
    def misplaced(numbers: list, context: rs.TaskExecutionContext) -> int:
        return len(numbers)

    repo = make_repo([_numbers_asset()], tasks=[misplaced])
    result = repo.materialize(selection=["numbers", "misplaced"], raise_on_error=False)
    assert not result.success
    assert [name for name, _ in result.failed_assets] == ["misplaced"]
    assert "Context must be the first parameter" in result.failed_assets[0][1]


class TaskCfg(pydantic.BaseModel):
    factor: int = 2
    label: str = "default"


def test_task_context_config_uses_defaults(make_repo):
    @rs.Task
    def configured(context: rs.TaskExecutionContext[TaskCfg]) -> tuple:
        assert isinstance(context.config, TaskCfg)
        return (context.config.factor, context.config.label)

    repo = make_repo([_numbers_asset()], tasks=[configured])
    repo.materialize(selection=["configured"])
    assert repo.load_node("configured") == (2, "default")


def test_task_context_config_takes_run_overrides(make_repo):
    @rs.Task
    def configured(context: rs.TaskExecutionContext[TaskCfg]) -> tuple:
        return (context.config.factor, context.config.label)

    repo = make_repo([_numbers_asset()], tasks=[configured])
    repo.materialize(selection=["configured"], config={"configured": {"factor": 9}})
    assert repo.load_node("configured") == (9, "default")


def test_task_config_failing_validation_fails_the_step(make_repo):
    @rs.Task
    def configured(context: rs.TaskExecutionContext[TaskCfg]) -> int:
        return context.config.factor

    repo = make_repo([_numbers_asset()], tasks=[configured])
    with pytest.raises(ExecutionError):
        repo.materialize(selection=["configured"], config={"configured": {"factor": "not a number"}})


def test_task_context_log_records_are_captured_into_step_logs(make_repo):
    @rs.Task
    def chatty(context: rs.TaskExecutionContext) -> int:
        context.log.info("processed %d parcels", 12)
        return 12

    repo = make_repo([_numbers_asset()], tasks=[chatty])
    result = repo.materialize(selection=["chatty"])
    rows = {row.step_key: row for row in repo.storage.get_run_logs(result.run_id)}
    assert "processed 12 parcels" in rows["chatty"].logs
    assert "rivers.tasks.chatty" in rows["chatty"].logs
    events_text = " ".join(str(e.metadata) for e in repo.storage.get_events_for_run(result.run_id))
    assert "processed 12 parcels" not in events_text


# --------------------------------------------------------------------------- name conflicts


def test_task_named_like_an_asset_is_a_graph_validation_error():
    @rs.Task(name="numbers")
    def clashing() -> int:
        return 0

    with pytest.raises(GraphValidationError):
        rs.CodeRepository(
            assets=[_numbers_asset()], tasks=[clashing], default_executor=rs.Executor.in_process()
        ).validate()


def test_two_tasks_with_the_same_name_are_a_graph_validation_error():
    @rs.Task(name="dup")
    def first() -> int:
        return 1

    @rs.Task(name="dup")
    def second() -> int:
        return 2

    with pytest.raises(GraphValidationError):
        rs.CodeRepository(assets=[], tasks=[first, second], default_executor=rs.Executor.in_process()).validate()


def test_task_named_like_a_multi_asset_output_is_a_graph_validation_error():
    @rs.Asset.from_multi(output_defs=[rs.AssetDef("left"), rs.AssetDef("right")])
    def halves():
        return {"left": 1, "right": 2}

    @rs.Task(name="right")
    def clashing() -> int:
        return 0

    with pytest.raises(GraphValidationError):
        rs.CodeRepository(assets=[halves], tasks=[clashing], default_executor=rs.Executor.in_process()).validate()


# --------------------------------------------------------------------------- failures and retries


def test_failing_task_raises_execution_error(make_repo):
    @rs.Task
    def broken() -> int:
        raise RuntimeError("task blew up")

    repo = make_repo([_numbers_asset()], tasks=[broken])
    with pytest.raises(ExecutionError, match="task blew up"):
        repo.materialize(selection=["broken"])


def test_failing_task_skips_its_downstream(make_repo):
    calls = []

    @rs.Task
    def broken() -> int:
        raise RuntimeError("task blew up")

    @rs.Asset
    def after(broken: int) -> int:
        calls.append("after")
        return broken

    repo = make_repo([after], tasks=[broken])
    result = repo.materialize(selection=["broken", "after"], raise_on_error=False)
    assert not result.success
    assert [name for name, _ in result.failed_assets] == ["broken"]
    assert "task blew up" in result.failed_assets[0][1]
    assert calls == []
    assert _step_event_types(repo, result.run_id, "after") == ["StepSkipped"]
    failure = [e for e in repo.storage.get_events_for_run(result.run_id) if e.event_type == "StepFailure"]
    assert dict(failure[0].metadata)["rivers/failure_reason"] == "error"


def _flaky_task(failures, **task_kwargs):
    attempts = []

    def flaky() -> int:
        attempts.append(len(attempts) + 1)
        if len(attempts) <= failures:
            raise ConnectionError(f"attempt {len(attempts)} failed")
        return len(attempts)

    return attempts, rs.Task(flaky, **task_kwargs)


def test_task_retry_policy_applies_to_its_step(make_repo):
    attempts, flaky = _flaky_task(2, retry=rs.RetryPolicy(max_retries=2))
    repo = make_repo([_numbers_asset()], tasks=[flaky])
    result = repo.materialize(selection=["flaky"])
    assert result.success
    assert attempts == [1, 2, 3]
    assert repo.load_node("flaky") == 3
    assert _step_event_types(repo, result.run_id, "flaky").count("StepRetry") == 2


def test_task_retry_budget_is_exhausted(make_repo):
    attempts, flaky = _flaky_task(5, retry=rs.RetryPolicy(max_retries=1))
    repo = make_repo([_numbers_asset()], tasks=[flaky])
    result = repo.materialize(selection=["flaky"], raise_on_error=False)
    assert not result.success
    assert attempts == [1, 2]
    kinds = _step_event_types(repo, result.run_id, "flaky")
    assert kinds.count("StepRetry") == 1
    assert kinds[-1] == "StepFailure"


def test_task_retry_by_registered_name(make_repo):
    attempts, flaky = _flaky_task(1, retry="patient")
    repo = make_repo([_numbers_asset()], tasks=[flaky], retries={"patient": rs.RetryPolicy(max_retries=1)})
    assert repo.materialize(selection=["flaky"]).success
    assert attempts == [1, 2]


def test_task_unknown_retry_name_is_a_configuration_error():
    _, flaky = _flaky_task(0, retry="no_such_policy")
    with pytest.raises(ConfigurationError):
        rs.CodeRepository(assets=[], tasks=[flaky], default_executor=rs.Executor.in_process()).validate()


def test_task_retry_policy_beats_repository_default(make_repo):
    attempts, flaky = _flaky_task(1, retry=rs.RetryPolicy(max_retries=0))
    repo = make_repo([_numbers_asset()], tasks=[flaky], default_retry_policy=rs.RetryPolicy(max_retries=3))
    result = repo.materialize(selection=["flaky"], raise_on_error=False)
    assert not result.success
    assert attempts == [1]


def test_task_without_policy_uses_repository_default(make_repo):
    attempts, flaky = _flaky_task(1)
    repo = make_repo([_numbers_asset()], tasks=[flaky], default_retry_policy=rs.RetryPolicy(max_retries=1))
    assert repo.materialize(selection=["flaky"]).success
    assert attempts == [1, 2]


def test_task_without_policy_uses_job_retry(make_repo):
    attempts, flaky = _flaky_task(1)
    job = rs.Job(name="retrying", assets=[flaky], executor=rs.Executor.in_process(), retry=rs.RetryPolicy(1))
    make_repo([_numbers_asset()], tasks=[flaky], jobs=[job])
    assert job.execute().success
    assert attempts == [1, 2]


# --------------------------------------------------------------------------- standalone and graph use of one task


def test_same_task_standalone_and_in_a_graph_are_distinct_steps(make_repo):
    calls = []

    @rs.Task
    def base() -> int:
        calls.append("base")
        return len(calls)

    @rs.Asset.from_graph()
    def pipeline():
        return base()

    repo = make_repo([pipeline], tasks=[base])
    repo.materialize(selection=["pipeline"])
    assert calls == ["base"]
    assert repo.load_node("pipeline/base") == 1
    with pytest.raises(KeyError):
        repo.load_node("base")
    repo.materialize(selection=["base"])
    assert calls == ["base", "base"]
    assert repo.load_node("base") == 2
    assert repo.load_node("pipeline/base") == 1


# --------------------------------------------------------------------------- parallel executor


def test_sync_task_step_runs_in_a_worker_process():
    from . import graph_parallel_defs as defs

    defs.clear_store()
    repo = rs.CodeRepository(
        assets=[defs.par_task_consumer],
        tasks=[defs.par_task_pid],
        default_executor=rs.Executor.parallel(max_workers=2),
    )
    repo.resolve(storage=rs.Storage.memory())
    try:
        result = repo.materialize(selection=["par_task_pid", "par_task_consumer"])
        assert result.success
        worker_pid = repo.load_node("par_task_pid")
        assert worker_pid != os.getpid()
        consumed, consumer_pid = repo.load_node("par_task_consumer")
        assert consumed == worker_pid
        assert consumer_pid != os.getpid()
    finally:
        repo.shutdown()
