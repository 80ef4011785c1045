"""rs.Hook and rs.HookContext (repository-and-execution.md "Hooks", R30, R34, R45, R46).
Hooks under Executor.parallel() are covered in test_parallel.py."""

import pydantic
import pytest
from exec_helpers import RecordingHandler, make_repo

import rivers as rs
from rivers.exceptions import AssetDefinitionError, ExecutionError


class HookConfig(pydantic.BaseModel):
    level: int = 1


def _recorder():
    """A list plus success/failure hooks that append HookContext snapshots to it."""
    seen: list[dict] = []

    def snapshot(ctx: rs.HookContext) -> dict:
        return {
            "asset_name": ctx.asset_name,
            "run_id": ctx.run_id,
            "hook_type": ctx.hook_type,
            "output": ctx.output,
            "error": ctx.error,
            "metadata": ctx.metadata,
            "config": ctx.config,
        }

    @rs.Hook.success
    def on_ok(ctx: rs.HookContext) -> None:
        seen.append(snapshot(ctx))

    @rs.Hook.failure
    def on_fail(ctx: rs.HookContext) -> None:
        seen.append(snapshot(ctx))

    return seen, on_ok, on_fail


# --------------------------------------------------------------------------- decorator forms


def test_hook_decorator_forms_and_names():
    @rs.Hook.success
    def bare_success(ctx):
        pass

    @rs.Hook.success(name="record_ok")
    def named_success(ctx):
        pass

    @rs.Hook.failure
    def bare_failure(ctx):
        pass

    @rs.Hook.failure(name="page_oncall")
    def named_failure(ctx):
        pass

    for hook in (bare_success, named_success):
        assert isinstance(hook, rs.Hook.Success)
        assert isinstance(hook, rs.Hook)
        assert not isinstance(hook, rs.Hook.Failure)
    for hook in (bare_failure, named_failure):
        assert isinstance(hook, rs.Hook.Failure)
        assert isinstance(hook, rs.Hook)
        assert not isinstance(hook, rs.Hook.Success)
    assert bare_success.name == "bare_success"
    assert named_success.name == "record_ok"
    assert bare_failure.name == "bare_failure"
    assert named_failure.name == "page_oncall"


def test_non_hook_in_hooks_is_an_asset_definition_error():
    def not_a_hook(ctx):
        pass

    with pytest.raises(AssetDefinitionError):

        @rs.Asset(hooks=[not_a_hook])
        def guarded() -> int:
            return 1


# --------------------------------------------------------------------------- success hooks (R45)


def test_spec_example_success_hook_receives_output():
    seen: list[str] = []

    @rs.Hook.success(name="record_ok")
    def record_ok(ctx: rs.HookContext):
        seen.append(f"{ctx.asset_name}:{ctx.output}")

    @rs.Hook.failure
    def page_oncall(ctx: rs.HookContext):
        seen.append(f"FAILED {ctx.asset_name}: {ctx.error}")

    @rs.Asset(hooks=[record_ok, page_oncall])
    def inventory_count() -> int:
        return 17

    repo = make_repo([inventory_count])
    repo.materialize()
    assert seen == ["inventory_count:17"]


def test_success_hook_context_fields():
    seen, on_ok, on_fail = _recorder()

    @rs.Asset(hooks=[on_ok, on_fail], metadata={"owner": "data-team"})
    def shipped() -> dict:
        return {"rows": 3}

    repo = make_repo([shipped])
    result = repo.materialize()
    assert seen == [
        {
            "asset_name": "shipped",
            "run_id": result.run_id,
            "hook_type": "success",
            "output": {"rows": 3},
            "error": None,
            "metadata": {"owner": "data-team"},
            "config": None,
        }
    ]


def test_success_hook_output_is_unwrapped_from_output():
    seen, on_ok, _ = _recorder()

    @rs.Asset(hooks=[on_ok])
    def wrapped() -> rs.Output:
        return rs.Output([1, 2], metadata={"n": 2})

    make_repo([wrapped]).materialize()
    assert [s["output"] for s in seen] == [[1, 2]]


def test_success_hook_output_is_none_for_materialization_result():
    seen, on_ok, _ = _recorder()

    @rs.Asset(hooks=[on_ok])
    def pushed() -> rs.Materialization:
        return rs.Materialization(metadata={"pushed": True})

    make_repo([pushed]).materialize()
    assert [(s["hook_type"], s["output"]) for s in seen] == [("success", None)]


def test_hook_context_exposes_config_instance():
    seen, on_ok, _ = _recorder()

    @rs.Asset(hooks=[on_ok])
    def configured(context: rs.AssetExecutionContext[HookConfig]) -> int:
        return context.config.level

    make_repo([configured]).materialize(config={"configured": {"level": 4}})
    assert isinstance(seen[0]["config"], HookConfig)
    assert seen[0]["config"].level == 4


def test_success_hooks_run_after_the_output_was_persisted():
    handler = RecordingHandler()
    persisted_at_hook_time: list[object] = []

    @rs.Hook.success
    def check_persisted(ctx: rs.HookContext) -> None:
        persisted_at_hook_time.append(handler.values.get(ctx.asset_name, "<missing>"))

    @rs.Asset(io_handler=handler, hooks=[check_persisted])
    def persisted() -> str:
        return "stored value"

    make_repo([persisted]).materialize()
    assert persisted_at_hook_time == ["stored value"]


def test_hooks_run_in_list_order():
    order: list[str] = []

    @rs.Hook.success
    def first(ctx):
        order.append("first")

    @rs.Hook.success
    def second(ctx):
        order.append("second")

    @rs.Hook.success
    def third(ctx):
        order.append("third")

    @rs.Asset(hooks=[third, first, second])
    def ordered() -> int:
        return 1

    make_repo([ordered]).materialize()
    assert order == ["third", "first", "second"]


# --------------------------------------------------------------------------- failure hooks (R45, R30)


def test_failure_hook_context_fields_and_no_success_hook():
    seen, on_ok, on_fail = _recorder()

    @rs.Asset(hooks=[on_ok, on_fail], metadata={"owner": "ops"})
    def breaks() -> int:
        raise RuntimeError("disk full")

    repo = make_repo([breaks])
    result = repo.materialize(raise_on_error=False)
    assert len(seen) == 1
    ctx = seen[0]
    assert ctx["asset_name"] == "breaks"
    assert ctx["run_id"] == result.run_id
    assert ctx["hook_type"] == "failure"
    assert ctx["output"] is None
    assert "disk full" in ctx["error"]
    assert ctx["error"] == result.failed_assets[0][1]
    assert ctx["metadata"] == {"owner": "ops"}


def test_failure_hook_fires_once_after_retries_are_exhausted():
    attempts: list[int] = []
    hook_calls: list[int] = []

    @rs.Hook.failure
    def once(ctx):
        hook_calls.append(len(attempts))

    @rs.Asset(hooks=[once], retry=rs.RetryPolicy(max_retries=2))
    def always_fails() -> int:
        attempts.append(1)
        raise ValueError("still broken")

    make_repo([always_fails]).materialize(raise_on_error=False)
    assert len(attempts) == 3
    assert hook_calls == [3]  # one call, after the final attempt


def test_failure_hook_does_not_fire_when_a_retry_succeeds():
    seen, on_ok, on_fail = _recorder()
    attempts: list[int] = []

    @rs.Asset(hooks=[on_ok, on_fail], retry=rs.RetryPolicy(max_retries=1))
    def recovers() -> int:
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("first attempt fails")
        return 99

    assert make_repo([recovers]).materialize().success
    assert [(s["hook_type"], s["output"]) for s in seen] == [("success", 99)]


def test_failure_hooks_have_run_when_execution_error_is_raised():
    seen, _, on_fail = _recorder()

    @rs.Asset(hooks=[on_fail])
    def raises_now() -> int:
        raise RuntimeError("kaput")

    repo = make_repo([raises_now])
    with pytest.raises(ExecutionError, match="kaput"):
        repo.materialize()
    assert [s["hook_type"] for s in seen] == ["failure"]


def test_hooks_never_fire_for_skipped_steps():
    seen, on_ok, on_fail = _recorder()

    @rs.Asset
    def upstream_breaks() -> int:
        raise RuntimeError("no data")

    @rs.Asset(hooks=[on_ok, on_fail])
    def skipped_child(upstream_breaks: int) -> int:
        return upstream_breaks

    result = make_repo([upstream_breaks, skipped_child]).materialize(raise_on_error=False)
    assert "skipped_child" not in result.materialized_assets
    assert seen == []


# --------------------------------------------------------------------------- raising hooks (R46)


def test_raising_hook_changes_no_outcome_and_later_hooks_still_run(capfd):
    order: list[str] = []

    @rs.Hook.success
    def explodes(ctx):
        order.append("explodes")
        raise RuntimeError("hook blew up")

    @rs.Hook.success
    def still_runs(ctx):
        order.append("still_runs")

    @rs.Asset(hooks=[explodes, still_runs])
    def guarded_value() -> int:
        return 5

    @rs.Asset
    def after_guarded(guarded_value: int) -> int:
        return guarded_value + 1

    repo = make_repo([guarded_value, after_guarded])
    result = repo.materialize()
    assert result.success
    assert order == ["explodes", "still_runs"]
    assert repo.load_node("after_guarded") == 6
    assert repo.storage.get_run(result.run_id).status == "Success"
    assert "hook blew up" in capfd.readouterr().err


def test_raising_failure_hook_keeps_the_failure_outcome(capfd):
    @rs.Hook.failure
    def failing_failure_hook(ctx):
        raise RuntimeError("failure hook blew up")

    @rs.Asset(hooks=[failing_failure_hook])
    def broken_again() -> int:
        raise ValueError("original failure")

    repo = make_repo([broken_again])
    result = repo.materialize(raise_on_error=False)
    assert result.success is False
    assert "original failure" in result.failed_assets[0][1]
    assert repo.storage.get_run(result.run_id).status == "Failure"
    assert "failure hook blew up" in capfd.readouterr().err
