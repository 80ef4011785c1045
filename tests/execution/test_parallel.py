"""Executor.parallel() with real loky worker processes, the per-asset executor
override and async steps (repository-and-execution.md "Executor.parallel()",
"Per-asset executor override", R25, R27-R29, R46; storage-and-io.md R50).

Steps live in exec_parallel_assets (module scope, importable by name) and persist
through a PickleIOHandler on a LocalStore.  Concurrency is asserted from recorded
start/end markers, never from wall-clock durations.
"""

import os

import exec_parallel_assets as pa
import pytest
from exec_helpers import final_step_event, metadata, retry_events, step_event_types

import rivers as rs
from rivers.exceptions import ExecutionError

pytestmark = pytest.mark.usefixtures("scratch")


def _parallel(max_workers: int = 2, **kwargs) -> rs.Executor:
    return rs.Executor.parallel(max_workers=max_workers, **kwargs)


def _repo(assets, executor=None, **kwargs) -> rs.CodeRepository:
    if executor is not None:
        kwargs["default_executor"] = executor
    repo = rs.CodeRepository(assets=assets, **kwargs)
    repo.resolve(storage=rs.Storage.memory())
    return repo


# --------------------------------------------------------------------------- sync steps in workers


def test_sync_steps_run_in_worker_processes_and_values_are_loadable():
    repo = _repo([pa.par_pid, pa.par_double], _parallel())
    result = repo.materialize()
    assert result.success
    assert result.materialized_assets == ["par_pid", "par_double"]

    worker_pid = repo.load_node("par_pid")
    assert worker_pid != os.getpid()
    child = repo.load_node("par_double")
    # the downstream loaded its input inside a worker through the pickle handler
    assert child["upstream"] == worker_pid
    assert child["double"] == worker_pid * 2
    assert child["pid"] != os.getpid()
    assert (pa.STORE_DIR / "par_pid.pkl").is_file()
    assert (pa.STORE_DIR / "par_double.pkl").is_file()


def test_repository_without_default_executor_uses_parallel():
    repo = _repo([pa.par_pid])
    assert repo.materialize().success
    assert repo.load_node("par_pid") != os.getpid()


def test_default_configuration_with_in_memory_handler_works_end_to_end():
    repo = rs.CodeRepository(assets=[pa.par_memory, pa.par_memory_child])
    result = repo.materialize()
    assert result.success
    assert repo.load_node("par_memory") == os.getpid()
    assert repo.load_node("par_memory_child") == [os.getpid(), os.getpid()]


def test_in_process_override_runs_in_caller_under_parallel_materialize():
    repo = _repo([pa.par_local, pa.par_pid], _parallel())
    result = repo.materialize()
    assert result.success
    assert repo.load_node("par_local") == os.getpid()
    assert repo.load_node("par_pid") != os.getpid()


def test_in_process_override_runs_in_caller_under_parallel_job():
    job = rs.Job(name="mixed", assets=[pa.par_local, pa.par_pid], executor=_parallel())
    repo = _repo([pa.par_local, pa.par_pid], rs.Executor.in_process(), jobs=[job])
    result = job.execute()
    assert result.success
    assert repo.load_node("par_local") == os.getpid()
    assert repo.load_node("par_pid") != os.getpid()


def test_parallel_override_runs_in_a_worker_under_in_process_default():
    repo = _repo([pa.par_forced_parallel, pa.par_pid], rs.Executor.in_process())
    result = repo.materialize()
    assert result.success
    assert repo.load_node("par_forced_parallel") != os.getpid()
    assert repo.load_node("par_pid") == os.getpid()


def test_job_without_executor_uses_repository_default():
    inherit = rs.Job(name="inherit", assets=[pa.par_pid])
    repo = _repo([pa.par_pid], rs.Executor.in_process(), jobs=[inherit])
    inherit.execute()
    assert repo.load_node("par_pid") == os.getpid()


def test_job_executor_wins_over_repository_default():
    own = rs.Job(name="own", assets=[pa.par_pid], executor=_parallel())
    repo = _repo([pa.par_pid], rs.Executor.in_process(), jobs=[own])
    own.execute()
    assert repo.load_node("par_pid") != os.getpid()


def test_independent_sync_steps_overlap_in_distinct_workers():
    repo = _repo([pa.overlap_1, pa.overlap_2, pa.overlap_3, pa.overlap_4], _parallel(max_workers=4))
    result = repo.materialize()
    assert result.success
    spans = {m["name"]: m for m in pa.read_marks("span")}
    assert sorted(spans) == pa.OVERLAP
    for span in spans.values():
        # every step saw all four steps started before it finished
        assert span["saw"] == pa.OVERLAP, span
    pids = {span["pid"] for span in spans.values()}
    assert len(pids) == 4
    assert os.getpid() not in pids
    # all four execution intervals share a common instant
    assert max(s["start"] for s in spans.values()) < min(s["end"] for s in spans.values())
    assert {repo.load_node(name) for name in pa.OVERLAP} == pids


def test_independent_sync_steps_never_overlap_in_process():
    repo = _repo([pa.serial_1, pa.serial_2, pa.serial_3, pa.serial_4], rs.Executor.in_process())
    assert repo.materialize().success
    spans = sorted(pa.read_marks("span"), key=lambda s: s["start"])
    assert [s["name"] for s in spans] == pa.SERIAL
    assert {s["pid"] for s in spans} == {os.getpid()}
    for current, following in zip(spans, spans[1:], strict=False):
        assert current["end"] <= following["start"]


# --------------------------------------------------------------------------- async steps


def test_async_steps_run_concurrently_in_the_orchestrating_process():
    pa.reset_async_state(target=4)
    repo = _repo(pa.ASYNC_ASSETS, _parallel())
    result = repo.materialize()
    assert result.success
    assert pa.ASYNC_STATE["max"] == 4
    assert pa.ASYNC_STATE["pids"] == {os.getpid()}
    assert sorted(pa.ASYNC_STATE["done"]) == ["async_1", "async_2", "async_3", "async_4"]
    assert repo.load_node("async_3") == "async_3"


def test_async_concurrency_is_bounded_by_max_async_concurrent():
    pa.reset_async_state(target=2)
    repo = _repo(pa.ASYNC_ASSETS, _parallel(max_async_concurrent=2))
    result = repo.materialize()
    assert result.success
    assert pa.ASYNC_STATE["max"] == 2
    assert len(pa.ASYNC_STATE["done"]) == 4


def test_async_steps_are_awaited_one_at_a_time_in_process():
    pa.reset_async_state(target=1)
    repo = _repo(pa.ASYNC_ASSETS, rs.Executor.in_process())
    assert repo.materialize().success
    assert pa.ASYNC_STATE["max"] == 1
    assert pa.ASYNC_STATE["done"] == ["async_1", "async_2", "async_3", "async_4"]


# --------------------------------------------------------------------------- hooks, retries, failures in workers


def test_hooks_run_in_the_worker_that_executed_the_step():
    repo = _repo([pa.par_hooked], _parallel())
    result = repo.materialize()
    step_pid = repo.load_node("par_hooked")
    assert step_pid != os.getpid()
    hooks = pa.read_marks("hook", "par_hooked")
    assert len(hooks) == 1
    assert hooks[0]["pid"] == step_pid
    assert hooks[0]["hook_type"] == "success"
    assert hooks[0]["output"] == step_pid
    assert hooks[0]["run_id"] == result.run_id


def test_failure_hooks_run_in_a_worker_with_the_run_config():
    repo = _repo([pa.par_hooked_failure], _parallel())
    result = repo.materialize(raise_on_error=False, config={"par_hooked_failure": {"threshold": 7}})
    assert not result.success
    attempt = pa.read_marks("attempt", "par_hooked_failure")
    hooks = pa.read_marks("hook", "par_hooked_failure")
    assert len(attempt) == 1 and len(hooks) == 1
    assert hooks[0]["pid"] != os.getpid()
    assert (hooks[0]["hook_type"], hooks[0]["threshold"]) == ("failure", 7)
    assert "over threshold 7" in hooks[0]["error"]


def test_worker_exception_keeps_its_type_for_retry_filters():
    repo = _repo([pa.par_connection_flaky], _parallel())
    result = repo.materialize()
    assert result.success
    assert len(pa.read_marks("attempt", "par_connection_flaky")) == 2
    retries = retry_events(repo.storage, result.run_id, "par_connection_flaky")
    assert [r["rivers/attempt"] for r in retries] == ["1"]
    assert retries[0]["rivers/failure_reason"] == "error"
    assert repo.load_node("par_connection_flaky") != os.getpid()


def test_transient_policy_does_not_retry_value_error_from_worker():
    repo = _repo([pa.par_value_error], _parallel())
    with pytest.raises(ExecutionError, match="bad row in worker"):
        repo.materialize(run_id_override="worker-value-error")
    assert len(pa.read_marks("attempt", "par_value_error")) == 1
    assert retry_events(repo.storage, "worker-value-error", "par_value_error") == []
    failure = final_step_event(repo.storage, "worker-value-error", "par_value_error")
    assert failure.event_type == "StepFailure"
    assert metadata(failure)["rivers/failure_reason"] == "error"


def test_dead_worker_is_classified_as_infrastructure():
    repo = _repo([pa.par_dies], _parallel())
    result = repo.materialize(raise_on_error=False)
    assert result.success is False
    assert [name for name, _ in result.failed_assets] == ["par_dies"]
    assert len(pa.read_marks("attempt", "par_dies")) == 1
    failure = final_step_event(repo.storage, result.run_id, "par_dies")
    assert failure.event_type == "StepFailure"
    assert metadata(failure)["rivers/failure_reason"] == "infrastructure"
    assert repo.storage.get_run(result.run_id).status == "Failure"


def test_runs_after_a_dead_worker_still_use_workers():
    repo = _repo([pa.par_dies, pa.par_pid], _parallel())
    repo.materialize(selection=["par_dies"], raise_on_error=False)
    result = repo.materialize(selection=["par_pid"])
    assert result.success
    assert step_event_types(repo.storage, result.run_id, "par_pid")[-1] == "StepSuccess"
    assert repo.load_node("par_pid") != os.getpid()


# --------------------------------------------------------------------------- resources, context and config in workers


def test_resources_are_rebuilt_and_set_up_in_the_worker():
    repo = _repo(
        [pa.par_resource],
        _parallel(),
        resources={"greeter": pa.WorkerResource(greeting="bonjour")},
    )
    assert repo.materialize().success
    value = repo.load_node("par_resource")
    assert value["greeting"] == "bonjour"
    assert value["pid"] != os.getpid()
    assert value["setup_pid"] == value["pid"]


def test_context_and_config_reach_the_worker():
    repo = _repo([pa.par_context], _parallel())
    assert repo.materialize(config={"par_context": {"multiplier": 4}}).success
    value = repo.load_node("par_context")
    assert value["asset_name"] == "par_context"
    assert value["multiplier"] == 4
    assert value["pid"] != os.getpid()


def test_worker_that_cannot_import_the_asset_reports_a_clear_error():
    from rivers._definitions.asset import _import_asset
    from rivers.exceptions import AssetDefinitionError

    with pytest.raises(AssetDefinitionError, match="could not import asset 'ghost'.*module scope"):
        _import_asset("rivers_no_such_module_here", "ghost", "ghost")


def test_closure_assets_travel_by_value_to_workers(tmp_path):
    import os

    from obstore.store import LocalStore

    handler = rs.PickleIOHandler(store=LocalStore(str(tmp_path)))
    offset = 40

    @rs.Asset(io_handler=handler)
    def closure_pid() -> tuple[int, int]:
        return os.getpid(), offset + 2

    repo = rs.CodeRepository(assets=[closure_pid], default_executor=rs.Executor.parallel(max_workers=1))
    repo.resolve(storage=rs.Storage.memory())
    assert repo.materialize().success
    worker_pid, value = repo.load_node("closure_pid")
    assert value == 42
    assert worker_pid != os.getpid()
