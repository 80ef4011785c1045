"""rs.Job and Job.execute() (repository-and-execution.md "rs.Job", R11, R22, R24, R25)."""

import pydantic
import pytest
from exec_helpers import make_repo, step_event_types

import rivers as rs
from rivers.exceptions import ExecutionError, GraphValidationError


def _clicks():
    calls: list[str] = []

    @rs.Asset
    def raw_clicks() -> list[int]:
        calls.append("raw_clicks")
        return [3, 1, 4]

    @rs.Asset
    def click_total(raw_clicks: list[int]) -> int:
        calls.append("click_total")
        return sum(raw_clicks)

    return calls, raw_clicks, click_total


def test_job_exposes_its_constructor_arguments():
    _, raw_clicks, click_total = _clicks()
    job = rs.Job(name="clicks_nightly", assets=[raw_clicks, click_total])
    assert job.name == "clicks_nightly"


def test_execute_on_unregistered_job_raises_value_error():
    calls, raw_clicks, _ = _clicks()
    job = rs.Job(name="orphan", assets=[raw_clicks], executor=rs.Executor.in_process())
    with pytest.raises(ValueError):
        job.execute()
    assert calls == []


def test_execute_runs_the_job_and_records_job_name():
    calls, raw_clicks, click_total = _clicks()
    nightly = rs.Job(
        name="clicks_nightly",
        assets=[raw_clicks, click_total],
        executor=rs.Executor.in_process(),
        retry=rs.RetryPolicy(max_retries=2),
    )
    repo = make_repo([raw_clicks, click_total], jobs=[nightly])
    result = repo.get_job("clicks_nightly").execute(tags=[("rivers/priority", "3"), ("team", "web")])
    assert isinstance(result, rs.RunResult)
    assert result.success
    assert result.materialized_assets == ["raw_clicks", "click_total"]
    assert calls == ["raw_clicks", "click_total"]
    record = repo.storage.get_run(result.run_id)
    assert record.job_name == "clicks_nightly"
    assert record.priority == 3
    assert record.tags == [("rivers/priority", "3"), ("team", "web")]
    assert record.launched_by.kind == "manual"
    assert record.status == "Success"
    assert repo.load_node("click_total") == 8


def test_registered_job_object_itself_becomes_executable():
    _, raw_clicks, click_total = _clicks()
    job = rs.Job(name="direct", assets=[raw_clicks, click_total])
    repo = make_repo([raw_clicks, click_total], jobs=[job])
    result = job.execute()
    assert repo.storage.get_run(result.run_id).job_name == "direct"


def test_materialize_run_has_no_job_name_even_with_jobs_registered():
    _, raw_clicks, click_total = _clicks()
    job = rs.Job(name="direct", assets=[raw_clicks, click_total])
    repo = make_repo([raw_clicks, click_total], jobs=[job])
    result = repo.materialize()
    assert repo.storage.get_run(result.run_id).job_name is None


def test_job_execute_resolves_implicitly_with_memory_storage():
    _, raw_clicks, click_total = _clicks()
    job = rs.Job(name="implicit", assets=[raw_clicks, click_total])
    repo = make_repo([raw_clicks, click_total], jobs=[job], resolve=False)
    result = job.execute()
    assert repo.storage.type == rs.StorageType.Memory
    assert repo.storage.get_run(result.run_id).job_name == "implicit"


def test_job_only_runs_its_own_nodes():
    calls, raw_clicks, click_total = _clicks()

    @rs.Asset
    def elsewhere() -> int:
        calls.append("elsewhere")
        return 0

    job = rs.Job(name="clicks", assets=[raw_clicks, click_total])
    repo = make_repo([raw_clicks, click_total, elsewhere], jobs=[job])
    result = job.execute()
    assert sorted(calls) == ["click_total", "raw_clicks"]
    assert sorted(repo.storage.get_run(result.run_id).node_names) == ["click_total", "raw_clicks"]


def test_unrelated_nodes_may_share_a_job():
    @rs.Asset
    def island_a() -> int:
        return 1

    @rs.Asset
    def island_b() -> int:
        return 2

    job = rs.Job(name="islands", assets=[island_a, island_b])
    repo = make_repo([island_a, island_b], jobs=[job])
    result = job.execute()
    assert sorted(result.materialized_assets) == ["island_a", "island_b"]
    assert repo.storage.get_run(result.run_id).status == "Success"


# --------------------------------------------------------------------------- validation (R24)


def test_missing_upstream_is_rejected_naming_it():
    _, raw_clicks, click_total = _clicks()
    with pytest.raises(GraphValidationError, match="raw_clicks"):
        make_repo([raw_clicks, click_total], jobs=[rs.Job(name="partial", assets=[click_total])])


def test_missing_lineage_only_upstream_is_rejected():
    @rs.Asset
    def before() -> int:
        return 1

    @rs.Asset(deps=[rs.AssetDef.dep("before")])
    def after() -> int:
        return 2

    with pytest.raises(GraphValidationError, match="before"):
        make_repo([before, after], jobs=[rs.Job(name="partial", assets=[after])])


def test_allow_incomplete_deps_loads_missing_upstream_through_handler():
    calls, raw_clicks, click_total = _clicks()
    loose = rs.Job(name="partial", assets=[click_total], allow_incomplete_deps=True)
    repo = make_repo([raw_clicks, click_total], jobs=[loose])
    assert repo.validate() is None
    repo.materialize(selection=["raw_clicks"])
    calls.clear()

    result = loose.execute()
    assert result.success
    assert calls == ["click_total"]
    assert result.materialized_assets == ["click_total"]
    assert step_event_types(repo.storage, result.run_id, "raw_clicks") == []
    assert repo.load_node("click_total") == 8


def test_allow_incomplete_deps_without_stored_upstream_fails_at_run_time():
    _, raw_clicks, click_total = _clicks()
    loose = rs.Job(name="partial", assets=[click_total], allow_incomplete_deps=True)
    repo = make_repo([raw_clicks, click_total], jobs=[loose])
    result = loose.execute(raise_on_error=False)
    assert result.success is False
    assert [name for name, _ in result.failed_assets] == ["click_total"]
    assert repo.storage.get_run(result.run_id).status == "Failure"


# --------------------------------------------------------------------------- execute() parameters


class Bonus(pydantic.BaseModel):
    bonus: int = 0


def test_execute_config_overrides():
    @rs.Asset
    def base() -> int:
        return 10

    @rs.Asset
    def boosted(context: rs.AssetExecutionContext[Bonus], base: int) -> int:
        return base + context.config.bonus

    job = rs.Job(name="boost", assets=[base, boosted])
    repo = make_repo([base, boosted], jobs=[job])
    assert job.execute(config={"boosted": {"bonus": 5}}).success
    assert repo.load_node("boosted") == 15


def test_execute_raise_on_error_default_and_false():
    @rs.Asset
    def broken() -> int:
        raise ValueError("job step exploded")

    @rs.Asset
    def after_broken(broken: int) -> int:
        return broken

    job = rs.Job(name="fragile", assets=[broken, after_broken])
    repo = make_repo([broken, after_broken], jobs=[job])
    with pytest.raises(ExecutionError, match="job step exploded"):
        job.execute()
    result = job.execute(raise_on_error=False)
    assert result.success is False
    assert result.failed_assets[0][0] == "broken"
    assert "job step exploded" in result.failed_assets[0][1]
    assert "after_broken" not in result.materialized_assets
    record = repo.storage.get_run(result.run_id)
    assert record.status == "Failure"
    assert record.job_name == "fragile"
