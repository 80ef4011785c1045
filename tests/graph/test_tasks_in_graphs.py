"""Graph-internal tasks that are also registered in ``CodeRepository(tasks=[...])``
(graph-and-tasks.md R7, R60, "Standalone tasks on a repository"; docs/decisions.md).

An entry of ``tasks=`` that a registered graph also calls is a standalone node only when all of
its parameters resolve by the standalone rules; otherwise it is the graph's internal node only.
"""

import pytest

import rivers as rs
from rivers.exceptions import AssetNotFoundError, ConfigurationError, GraphValidationError, NodeNotFoundError


def _pipeline():
    @rs.Asset
    def source() -> int:
        return 5

    @rs.Task
    def ingest(source: int) -> int:
        return source + 1

    @rs.Task
    def transform(value: int) -> int:
        return value * 10

    @rs.Asset.from_graph()
    def pipeline():
        return transform(ingest())

    return source, ingest, transform, pipeline


def _repo(assets, tasks, **kwargs):
    repo = rs.CodeRepository(assets=assets, tasks=tasks, default_executor=rs.Executor.in_process(), **kwargs)
    repo.resolve(storage=rs.Storage.memory())
    return repo


def test_graph_tasks_registered_in_tasks_keep_the_graph_and_add_only_resolvable_standalone_nodes():
    source, ingest, transform, pipeline = _pipeline()
    with _repo([source, pipeline], [ingest, transform]) as repo:
        result = repo.materialize()
        assert result.success
        # The graph's result is what it is without tasks=: (5 + 1) * 10.
        assert repo.load_node("pipeline") == 60
        assert repo.load_node("pipeline/ingest") == 6
        assert repo.load_node("pipeline/transform") == 60
        # selection=None never runs the standalone task.
        assert "ingest" not in result.materialized_assets

        # `ingest(source)` resolves standalone: a node of its own, run when named.
        named = repo.materialize(selection=["ingest"])
        assert named.success
        assert repo.load_node("ingest") == 6
        assert repo.load_node("pipeline") == 60

        # `transform(value)` does not: no bare-name node, and no error at construction. The
        # errors say where the task runs.
        with pytest.raises(AssetNotFoundError, match=r"'transform'.*only inside the graph asset\(s\) \['pipeline'\]"):
            repo.materialize(selection=["transform"])
        with pytest.raises(NodeNotFoundError, match=r"'transform'.*only inside the graph asset\(s\) \['pipeline'\]"):
            repo.load_node("transform")


def test_selecting_the_graph_never_runs_the_standalone_copy():
    source, ingest, transform, pipeline = _pipeline()
    with _repo([source, pipeline], [ingest, transform]) as repo:
        result = repo.materialize(selection=["pipeline"], include_upstream=True)
        assert result.success
        run = repo.storage.get_run(result.run_id)
        assert "ingest" not in run.node_names
        assert "pipeline/ingest" in run.node_names


def test_the_standalone_copy_and_the_internal_node_are_separate_steps_with_separate_outputs():
    source, ingest, transform, pipeline = _pipeline()
    with _repo([source, pipeline], [ingest, transform]) as repo:
        result = repo.materialize(selection=["source", "ingest", "pipeline"])
        assert result.success
        steps = {e.asset_key for e in repo.storage.get_events_for_run(result.run_id) if e.event_type == "StepSuccess"}
        assert {"ingest", "pipeline/ingest"} <= steps
        assert repo.load_node("ingest") == repo.load_node("pipeline/ingest") == 6


def test_a_job_naming_a_graph_only_task_is_a_graph_validation_error():
    source, ingest, transform, pipeline = _pipeline()
    with pytest.raises(GraphValidationError, match=r"job 'bad' includes 'transform'.*\['pipeline'\]"):
        rs.CodeRepository(
            assets=[source, pipeline],
            tasks=[ingest, transform],
            jobs=[rs.Job(name="bad", assets=[transform])],
        )


def test_a_job_may_name_the_standalone_copy():
    source, ingest, transform, pipeline = _pipeline()
    job = rs.Job(name="ingest_only", assets=[source, ingest])
    with _repo([source, pipeline], [ingest, transform], jobs=[job]) as repo:
        assert job.execute().success
        assert repo.load_node("ingest") == 6


def test_a_standalone_copy_whose_name_clashes_is_a_graph_validation_error():
    source, ingest, transform, pipeline = _pipeline()

    @rs.Asset(name="ingest")
    def other() -> int:
        return 0

    with pytest.raises(GraphValidationError, match="ingest"):
        rs.CodeRepository(assets=[source, pipeline, other], tasks=[ingest, transform])


def test_an_unresolvable_task_that_no_graph_calls_is_still_a_configuration_error():
    source, ingest, transform, pipeline = _pipeline()

    @rs.Task
    def lonely(value: int) -> int:
        return value

    repo = rs.CodeRepository(assets=[source, pipeline], tasks=[ingest, transform, lonely])
    with pytest.raises(ConfigurationError, match="'value' of 'lonely'"):
        repo.validate()


def test_a_different_task_object_with_the_same_name_is_not_the_graph_s_task():
    source, ingest, transform, pipeline = _pipeline()

    @rs.Task(name="transform")
    def another_transform(value: int) -> int:
        return value

    repo = rs.CodeRepository(assets=[source, pipeline], tasks=[another_transform])
    with pytest.raises(ConfigurationError, match="'value' of 'transform'"):
        repo.validate()


def test_a_task_reading_a_graph_only_task_is_graph_only_too():
    source, ingest, transform, pipeline = _pipeline()

    @rs.Task
    def report(transform: int) -> str:
        return f"{transform}"

    @rs.Asset.from_graph()
    def reporting():
        return report(transform(1))

    with _repo([source, pipeline, reporting], [ingest, transform, report]) as repo:
        assert repo.materialize().success
        assert repo.load_node("reporting") == "10"
        with pytest.raises(AssetNotFoundError, match="report"):
            repo.materialize(selection=["report"])


def test_parameters_resolving_from_resources_and_defaults_make_a_standalone_node():
    @rs.Task
    def configured(limit: int, scale: int = 2) -> int:
        return limit * scale

    @rs.Asset.from_graph()
    def graph():
        return configured()

    with _repo([graph], [configured], resources={"limit": 4}) as repo:
        assert repo.materialize().success
        assert repo.load_node("graph") == 8
        assert repo.materialize(selection=["configured"]).success
        assert repo.load_node("configured") == 8


def test_fan_out_and_bash_tasks_of_a_graph_may_be_registered_in_tasks():
    @rs.Task
    def numbers() -> list[int]:
        return [1, 2, 3]

    @rs.Task
    def double(x: int) -> int:
        return x * 2

    @rs.Task
    def total(values: list[int]) -> int:
        return sum(values)

    @rs.Task
    def consume(items: object) -> list[int]:
        return sorted(items)

    shout = rs.BashTask(name="shout", command="echo hi")

    @rs.Asset.from_graph()
    def doubled():
        shout()
        mapped = numbers().map(double)
        consume(mapped.collect_stream())
        return total(mapped.collect())

    with _repo([doubled], [numbers, double, total, consume, shout]) as repo:
        result = repo.materialize()
        assert result.success
        assert repo.load_node("doubled") == 12
        assert repo.load_node("doubled/consume") == [2, 4, 6]
        # Parameterless tasks resolve standalone; the others exist only in the graph.
        assert repo.materialize(selection=["numbers", "shout"]).success
        assert repo.load_node("numbers") == [1, 2, 3]
        assert repo.load_node("shout") == "hi"
        for name in ("double", "total", "consume"):
            with pytest.raises(AssetNotFoundError, match=name):
                repo.materialize(selection=[name])
