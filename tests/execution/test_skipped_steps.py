"""Steps skipped because an upstream failed, on both local executors (repository-and-execution.md
R18, R31, R49; graph-and-tasks.md R4, R52; storage-and-io.md: graph-internal tasks write step
events only), and the retry budget of a resumed step (docs/decisions.md)."""

from collections import Counter

import pytest
from exec_helpers import step_event_types
from obstore.store import LocalStore

import rivers as rs
from rivers.exceptions import ExecutionError

EXECUTORS = {
    "in_process": rs.Executor.in_process,
    "parallel": lambda: rs.Executor.parallel(max_workers=2),
}


@pytest.fixture(params=sorted(EXECUTORS))
def executor(request):
    return EXECUTORS[request.param]()


@pytest.fixture
def handler(tmp_path):
    # Values cross into loky workers under the parallel executor.
    (tmp_path / "values").mkdir()
    return rs.PickleIOHandler(store=LocalStore(str(tmp_path / "values")))


def _repo(assets, executor, **kwargs):
    repo = rs.CodeRepository(assets=assets, default_executor=executor, **kwargs)
    repo.resolve(storage=rs.Storage.memory())
    return repo


def _chain(handler):
    @rs.Asset(io_handler=handler)
    def raw() -> int:
        return 1

    @rs.Asset(io_handler=handler)
    def broken(raw: int) -> int:
        raise RuntimeError("broken on purpose")

    @rs.Asset(io_handler=handler)
    def downstream(broken: int) -> int:
        return broken + 1

    @rs.Asset(io_handler=handler)
    def further(downstream: int) -> int:
        return downstream + 1

    @rs.Asset(io_handler=handler)
    def independent(raw: int) -> int:
        return raw + 10

    return [raw, broken, downstream, further, independent]


def test_steps_downstream_of_a_failure_are_skipped_without_starting(executor, handler):
    with _repo(_chain(handler), executor) as repo:
        result = repo.materialize(raise_on_error=False)
        assert result.success is False
        for skipped in ("downstream", "further"):
            assert step_event_types(repo.storage, result.run_id, skipped) == ["StepSkipped"]
            assert skipped not in result.materialized_assets
            assert skipped not in dict(result.failed_assets)
        assert "broken on purpose" in dict(result.failed_assets)["broken"]
        assert step_event_types(repo.storage, result.run_id, "broken")[0] == "StepStart"
        assert step_event_types(repo.storage, result.run_id, "broken")[-1] == "StepFailure"
        # Independent steps still run.
        assert {"raw", "independent"} <= set(result.materialized_assets)
        assert repo.load_node("independent") == 11
        assert repo.storage.get_run(result.run_id).status == "Failure"


def test_raise_on_error_records_the_skipped_steps_too(executor, handler):
    with _repo(_chain(handler), executor) as repo:
        with pytest.raises(ExecutionError, match="broken on purpose"):
            repo.materialize(run_id_override="raising")
        assert step_event_types(repo.storage, "raising", "downstream") == ["StepSkipped"]


def _graph(handler):
    @rs.Task
    def first() -> int:
        return 1

    @rs.Task
    def explode(value: int) -> int:
        raise RuntimeError("exploded")

    @rs.Task
    def after(value: int) -> int:
        return value

    @rs.Asset.from_graph(io_handler=handler)
    def pipeline():
        return after(explode(first()))

    @rs.Asset(io_handler=handler)
    def report(pipeline: int) -> int:
        return pipeline

    return [pipeline, report]


def test_a_failed_internal_task_skips_what_follows_and_fails_the_graph(executor, handler):
    with _repo(_graph(handler), executor) as repo:
        result = repo.materialize(raise_on_error=False)
        assert result.success is False
        failed = dict(result.failed_assets)
        assert "exploded" in failed["pipeline/explode"]
        assert "pipeline" in failed
        for skipped in ("pipeline/after", "report"):
            assert step_event_types(repo.storage, result.run_id, skipped) == ["StepSkipped"]
            assert skipped not in result.materialized_assets
            assert skipped not in failed
        assert "pipeline/first" in result.materialized_assets


def test_graph_internal_tasks_write_step_events_only(executor, handler):
    @rs.Task
    def make() -> int:
        return 2

    @rs.Task
    def grow(value: int) -> int:
        return value * 3

    @rs.Asset.from_graph(io_handler=handler, node_io_handler=handler)
    def grown():
        return grow(make())

    with _repo([grown], executor) as repo:
        result = repo.materialize()
        assert result.success
        events = repo.storage.get_events_for_run(result.run_id)
        internal = {e.event_type for e in events if e.asset_key in ("grown/make", "grown/grow")}
        assert internal == {"StepStart", "StepSuccess"}
        materialized = [e.asset_key for e in events if e.event_type == "Materialization"]
        assert materialized == ["grown"]
        assert repo.load_node("grown") == 6


def _fan_out(handler):
    @rs.Task
    def ids() -> list[int]:
        return [1, 2, 3]

    @rs.Task
    def check(x: int) -> int:
        if x == 2:
            raise RuntimeError(f"bad id {x}")
        return x

    @rs.Task
    def add_up(values: list[int]) -> int:
        return sum(values)

    @rs.Asset.from_graph(io_handler=handler, node_io_handler=handler)
    def checked():
        return add_up(ids().map(check).collect())

    return checked


def test_a_failed_fan_out_instance_is_listed_and_its_collect_consumer_skipped(executor, handler):
    with _repo([_fan_out(handler)], executor) as repo:
        result = repo.materialize(raise_on_error=False)
        assert result.success is False
        failed = dict(result.failed_assets)
        assert "bad id 2" in failed["checked/check[1]"]
        assert "checked" in failed
        assert step_event_types(repo.storage, result.run_id, "checked/add_up") == ["StepSkipped"]
        assert "checked/add_up" not in result.materialized_assets
        assert "checked/add_up" not in failed
        # The other instances still ran.
        assert {"checked/check[0]", "checked/check[2]"} <= set(result.materialized_assets)
        assert repo.load_node("checked/check[2]") == 3


def test_a_resumed_step_gets_a_fresh_retry_budget(handler):
    attempts: Counter = Counter()

    @rs.Asset(io_handler=handler, retry=rs.RetryPolicy(max_retries=1))
    def flaky() -> int:
        attempts["flaky"] += 1
        if attempts["flaky"] <= 3:
            raise RuntimeError(f"attempt {attempts['flaky']} failed")
        return attempts["flaky"]

    with _repo([flaky], rs.Executor.in_process()) as repo:
        first = repo.materialize(run_id_override="budget", raise_on_error=False)
        assert first.success is False
        assert attempts["flaky"] == 2  # the first attempt and its one retry
        # On resume the step has its whole budget again: attempt 3 fails, its retry succeeds.
        second = repo.materialize(run_id_override="budget", resume=True)
        assert second.success
        assert attempts["flaky"] == 4
        assert repo.load_node("flaky") == 4
        types = step_event_types(repo.storage, "budget", "flaky")
        assert types.count("StepStart") == 2
        assert types.count("StepRetry") == 2
        assert types[-1] == "StepSuccess"
