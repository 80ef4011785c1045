"""CodeRepository.materialize(): selection, include_upstream, tags and priority,
raise_on_error, config, run_id_override and RunResult
(repository-and-execution.md R10-R18, R30-R32)."""

import uuid

import pydantic
import pydantic_settings
import pytest
from exec_helpers import events, make_repo, step_event_types

import rivers as rs
from rivers.exceptions import AssetNotFoundError, ConfigurationError, ExecutionError


class ScaleConfig(pydantic.BaseModel):
    factor: int = 1
    label: str = "default"


class ThresholdSettings(pydantic_settings.BaseSettings):
    rivers_exec_threshold: int = 1


def _chain():
    """a -> b -> c, each call recorded in ``calls``."""
    calls: list[str] = []

    @rs.Asset
    def a() -> int:
        calls.append("a")
        return 1

    @rs.Asset
    def b(a: int) -> int:
        calls.append("b")
        return a + 10

    @rs.Asset
    def c(b: int) -> int:
        calls.append("c")
        return b * 2

    return calls, [a, b, c]


# --------------------------------------------------------------------------- selection (R10, R12, R13)


def test_materialize_without_selection_runs_every_asset_in_plan_order():
    calls, assets = _chain()
    repo = make_repo(assets)
    result = repo.materialize()
    assert isinstance(result, rs.RunResult)
    assert result.success is True
    assert result.failed_assets == []
    assert calls == ["a", "b", "c"]
    assert result.materialized_assets == ["a", "b", "c"]
    assert [repo.load_node(n) for n in ("a", "b", "c")] == [1, 11, 22]


def test_spec_example_revenue_report():
    @rs.Asset
    def orders() -> list[dict]:
        return [{"id": 7, "amount": 30}, {"id": 8, "amount": 12}]

    @rs.Asset
    def revenue(orders: list[dict]) -> int:
        return sum(o["amount"] for o in orders)

    @rs.Asset
    def revenue_report(revenue: int) -> str:
        return f"total={revenue}"

    with rs.CodeRepository(
        assets=[orders, revenue, revenue_report],
        default_executor=rs.Executor.in_process(),
    ) as repo:
        repo.resolve(storage=rs.Storage.memory())
        first = repo.materialize()
        assert first.success and repo.load_node("revenue") == 42
        again = repo.materialize(selection=["revenue_report"], tags=[("team", "finance")])
        assert again.materialized_assets == ["revenue_report"]
        assert repo.storage.get_run(again.run_id).job_name is None
        assert repo.load_node("revenue_report") == "total=42"


def test_selection_runs_only_selected_and_loads_upstream_through_handler():
    calls, assets = _chain()
    repo = make_repo(assets)
    repo.materialize()
    calls.clear()

    result = repo.materialize(selection=["b"])
    assert calls == ["b"]
    assert result.materialized_assets == ["b"]
    assert repo.load_node("b") == 11
    assert [t for t, _ in events(repo.storage, result.run_id) if t == "StepStart"] == ["StepStart"]
    assert step_event_types(repo.storage, result.run_id, "a") == []


def test_selection_with_missing_upstream_value_fails_at_run_time():
    calls, assets = _chain()
    repo = make_repo(assets)
    result = repo.materialize(selection=["b"], raise_on_error=False)
    assert result.success is False
    assert [name for name, _ in result.failed_assets] == ["b"]
    assert calls == []


def test_include_upstream_runs_transitive_upstreams_first():
    calls, assets = _chain()
    repo = make_repo(assets)
    result = repo.materialize(selection=["c"], include_upstream=True)
    assert calls == ["a", "b", "c"]
    assert result.materialized_assets == ["a", "b", "c"]
    starts = [key for t, key in events(repo.storage, result.run_id) if t == "StepStart"]
    assert starts == ["a", "b", "c"]


def test_include_upstream_does_not_add_downstream_or_unrelated_nodes():
    calls, assets = _chain()

    @rs.Asset
    def unrelated() -> int:
        calls.append("unrelated")
        return 0

    repo = make_repo([*assets, unrelated])
    result = repo.materialize(selection=["b"], include_upstream=True)
    assert calls == ["a", "b"]
    assert result.materialized_assets == ["a", "b"]
    assert sorted(repo.storage.get_run(result.run_id).node_names) == ["a", "b"]


def test_unknown_selection_raises_asset_not_found_before_running():
    calls, assets = _chain()
    repo = make_repo(assets)
    with pytest.raises(AssetNotFoundError):
        repo.materialize(selection=["a", "no_such_asset"])
    assert calls == []


def test_duplicate_selection_names_are_deduplicated():
    calls, assets = _chain()
    repo = make_repo(assets)
    result = repo.materialize(selection=["a", "a"])
    assert calls == ["a"]
    assert result.materialized_assets == ["a"]


# --------------------------------------------------------------------------- run record, tags, priority (R11, R15)


def test_run_record_of_materialize():
    _, assets = _chain()
    repo = make_repo(assets)
    result = repo.materialize(selection=["a", "b"])
    record = repo.storage.get_run(result.run_id)
    assert record.run_id == result.run_id
    assert record.job_name is None
    assert record.launched_by.kind == "manual"
    assert record.status == "Success"
    assert sorted(record.node_names) == ["a", "b"]
    assert record.tags == []
    assert record.priority == 0
    assert record.partition_key is None
    assert isinstance(record.start_time, int)
    assert isinstance(record.end_time, int)
    assert record.end_time >= record.start_time


def test_generated_run_id_is_a_fresh_uuid():
    _, assets = _chain()
    repo = make_repo(assets)
    first = repo.materialize()
    second = repo.materialize()
    uuid.UUID(first.run_id)
    uuid.UUID(second.run_id)
    assert first.run_id != second.run_id


def test_tags_are_stored_verbatim_and_priority_tag_sets_priority():
    _, assets = _chain()
    repo = make_repo(assets)
    tags = [("team", "finance"), ("rivers/priority", "7"), ("team", "ops")]
    result = repo.materialize(tags=tags)
    record = repo.storage.get_run(result.run_id)
    assert record.tags == tags
    assert record.priority == 7


def test_negative_priority_tag():
    _, assets = _chain()
    repo = make_repo(assets)
    result = repo.materialize(tags=[("rivers/priority", "-3")])
    assert repo.storage.get_run(result.run_id).priority == -3


# --------------------------------------------------------------------------- raise_on_error (R18, R30-R32)


def _failing_graph():
    """flaky_source (fails) -> derived; unrelated is independent and registered last."""
    calls: list[str] = []

    @rs.Asset
    def flaky_source() -> int:
        calls.append("flaky_source")
        raise RuntimeError("upstream API down")

    @rs.Asset
    def derived(flaky_source: int) -> int:
        calls.append("derived")
        return flaky_source * 2

    @rs.Asset
    def unrelated() -> str:
        calls.append("unrelated")
        return "ok"

    return calls, [flaky_source, derived, unrelated]


def test_raise_on_error_raises_execution_error_with_node_and_message():
    calls, assets = _failing_graph()
    repo = make_repo(assets)
    with pytest.raises(ExecutionError, match="upstream API down") as excinfo:
        repo.materialize(run_id_override="raising-run")
    assert "flaky_source" in str(excinfo.value)
    # in-process plan order is registration order: nothing is started after the failure
    assert calls == ["flaky_source"]
    assert repo.storage.get_run("raising-run").status == "Failure"


def test_execution_error_chains_original_exception_in_process():
    _, assets = _failing_graph()
    repo = make_repo(assets)
    with pytest.raises(ExecutionError) as excinfo:
        repo.materialize()
    assert isinstance(excinfo.value.__cause__, RuntimeError)
    assert str(excinfo.value.__cause__) == "upstream API down"


def test_raise_on_error_false_reports_failures_and_skips_downstream():
    calls, assets = _failing_graph()
    repo = make_repo(assets)
    result = repo.materialize(raise_on_error=False)
    assert result.success is False
    assert [name for name, _ in result.failed_assets] == ["flaky_source"]
    assert "upstream API down" in result.failed_assets[0][1]
    assert "flaky_source" in result.materialized_assets
    assert "derived" not in result.materialized_assets
    assert "unrelated" in result.materialized_assets
    assert sorted(calls) == ["flaky_source", "unrelated"]
    assert repo.load_node("unrelated") == "ok"
    assert repo.storage.get_run(result.run_id).status == "Failure"


# --------------------------------------------------------------------------- config (R16)


def test_config_overrides_apply_to_the_named_node_only():
    seen: dict[str, ScaleConfig] = {}

    @rs.Asset
    def scaled(context: rs.AssetExecutionContext[ScaleConfig]) -> int:
        seen["scaled"] = context.config
        return 10 * context.config.factor

    @rs.Asset
    def plain(context: rs.AssetExecutionContext[ScaleConfig]) -> int:
        seen["plain"] = context.config
        return 10 * context.config.factor

    repo = make_repo([scaled, plain])
    result = repo.materialize(config={"scaled": {"factor": 3}})
    assert result.success
    assert isinstance(seen["scaled"], ScaleConfig)
    assert (seen["scaled"].factor, seen["scaled"].label) == (3, "default")
    assert (seen["plain"].factor, seen["plain"].label) == (1, "default")
    assert repo.load_node("scaled") == 30
    assert repo.load_node("plain") == 10


def test_settings_config_reads_environment_and_overrides_win(monkeypatch):
    monkeypatch.setenv("RIVERS_EXEC_THRESHOLD", "5")

    @rs.Asset
    def from_env(context: rs.AssetExecutionContext[ThresholdSettings]) -> int:
        return context.config.rivers_exec_threshold

    @rs.Asset
    def overridden(context: rs.AssetExecutionContext[ThresholdSettings]) -> int:
        return context.config.rivers_exec_threshold

    repo = make_repo([from_env, overridden])
    repo.materialize(config={"overridden": {"rivers_exec_threshold": 9}})
    assert repo.load_node("from_env") == 5
    assert repo.load_node("overridden") == 9


def test_config_key_naming_no_node_raises_configuration_error_before_run():
    calls, assets = _chain()
    repo = make_repo(assets)
    with pytest.raises(ConfigurationError):
        repo.materialize(config={"no_such_node": {"factor": 2}})
    assert calls == []


def test_config_key_for_registered_node_outside_plan_is_ignored():
    @rs.Asset
    def chosen(context: rs.AssetExecutionContext[ScaleConfig]) -> int:
        return context.config.factor

    @rs.Asset
    def other(context: rs.AssetExecutionContext[ScaleConfig]) -> int:
        return context.config.factor

    repo = make_repo([chosen, other])
    result = repo.materialize(selection=["chosen"], config={"other": {"factor": 4}})
    assert result.success
    assert result.materialized_assets == ["chosen"]


def test_invalid_config_fails_that_step():
    @rs.Asset
    def strict(context: rs.AssetExecutionContext[ScaleConfig]) -> int:
        return context.config.factor

    @rs.Asset
    def fine() -> int:
        return 1

    repo = make_repo([strict, fine])
    result = repo.materialize(config={"strict": {"factor": "not a number"}}, raise_on_error=False)
    assert result.success is False
    assert [name for name, _ in result.failed_assets] == ["strict"]
    assert "factor" in result.failed_assets[0][1]
    assert "fine" in result.materialized_assets

    with pytest.raises(ExecutionError, match="strict"):
        repo.materialize(config={"strict": {"factor": "not a number"}})


# --------------------------------------------------------------------------- run_id_override (R17)


def test_run_id_override_names_the_run():
    _, assets = _chain()
    repo = make_repo(assets)
    result = repo.materialize(run_id_override="abc")
    assert result.run_id == "abc"
    record = repo.storage.get_run("abc")
    assert record is not None
    assert record.run_id == "abc"
    assert record.status == "Success"


def test_run_id_override_attaches_to_an_existing_record():
    broken = {"flag": True}

    @rs.Asset
    def sometimes() -> int:
        if broken["flag"]:
            raise RuntimeError("not yet")
        return 5

    repo = make_repo([sometimes])
    first = repo.materialize(run_id_override="attach-me", raise_on_error=False)
    assert first.success is False
    assert repo.storage.get_run("attach-me").status == "Failure"

    broken["flag"] = False
    second = repo.materialize(run_id_override="attach-me")
    assert second.run_id == "attach-me"
    assert second.success is True
    assert repo.storage.get_run("attach-me").status == "Success"
    assert [r.run_id for r in repo.storage.get_runs(limit=100)].count("attach-me") == 1
    # events of both executions are appended to the same run
    kinds = step_event_types(repo.storage, "attach-me", "sometimes")
    assert kinds.count("StepStart") == 2
    assert kinds.count("StepFailure") == 1
    assert kinds.count("StepSuccess") == 1


# --------------------------------------------------------------------------- misc


def test_async_asset_under_in_process_executor():
    @rs.Asset
    async def fetched() -> int:
        return 7

    @rs.Asset
    def doubled(fetched: int) -> int:
        return fetched * 2

    repo = make_repo([fetched, doubled])
    assert repo.materialize().success
    assert repo.load_node("doubled") == 14
