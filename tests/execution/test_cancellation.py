"""Cooperative cancellation through Storage.request_cancellation()
(repository-and-execution.md R35, R39, R47; storage-and-io.md R38)."""

from exec_helpers import events, make_repo, step_event_types

import rivers as rs


def _cancelling_chain(storage: rs.Storage, run_id: str):
    calls: list[str] = []

    @rs.Asset
    def before_cancel() -> int:
        calls.append("before_cancel")
        return 1

    @rs.Asset
    def requests_cancel(before_cancel: int) -> int:
        calls.append("requests_cancel")
        storage.request_cancellation(run_id)
        return before_cancel + 1

    @rs.Asset
    def after_cancel(requests_cancel: int) -> int:
        calls.append("after_cancel")
        return requests_cancel + 1

    @rs.Asset
    def unrelated_late(before_cancel: int) -> int:
        # same level as requests_cancel but registered after it: not downstream of it
        calls.append("unrelated_late")
        return before_cancel

    return calls, [before_cancel, requests_cancel, after_cancel, unrelated_late]


def test_cancellation_requested_inside_a_step_stops_later_steps():
    storage = rs.Storage.memory()
    run_id = "cancel-me"
    calls, assets = _cancelling_chain(storage, run_id)
    repo = rs.CodeRepository(
        assets=[assets[0], assets[1], assets[2]],
        default_executor=rs.Executor.in_process(),
    )
    repo.resolve(storage=storage)

    result = repo.materialize(run_id_override=run_id, raise_on_error=False)

    assert calls == ["before_cancel", "requests_cancel"]
    assert storage.is_cancelled(run_id) is True
    record = storage.get_run(run_id)
    assert record.status == "Canceled"
    assert record.end_time is not None
    kinds = events(storage, run_id)
    assert kinds[0] == ("RunStart", None)
    assert kinds[-1] == ("RunCanceled", None)
    assert "StepStart" not in step_event_types(storage, run_id, "after_cancel")
    assert result.success is False
    assert "after_cancel" not in result.materialized_assets


def test_cancellation_prevents_independent_steps_from_starting():
    storage = rs.Storage.memory()
    run_id = "cancel-siblings"
    calls, assets = _cancelling_chain(storage, run_id)
    # in-process order: level by level, ties by registration order:
    # before_cancel | requests_cancel, unrelated_late | after_cancel
    repo = rs.CodeRepository(assets=assets, default_executor=rs.Executor.in_process())
    repo.resolve(storage=storage)
    repo.materialize(run_id_override=run_id, raise_on_error=False)
    assert calls == ["before_cancel", "requests_cancel"]
    assert step_event_types(storage, run_id, "unrelated_late").count("StepStart") == 0
    assert storage.get_run(run_id).status == "Canceled"


def test_cancellation_is_never_retried_and_interrupts_backoff():
    storage = rs.Storage.memory()
    run_id = "cancel-during-retry"
    attempts: list[int] = []

    @rs.Asset(retry=rs.RetryPolicy(max_retries=3, backoff=rs.Backoff.constant(30.0)))
    def cancels_then_fails() -> int:
        attempts.append(1)
        storage.request_cancellation(run_id)
        raise RuntimeError("failing after cancellation was requested")

    @rs.Asset
    def never_runs(cancels_then_fails: int) -> int:
        return cancels_then_fails

    repo = make_repo([cancels_then_fails, never_runs], resolve=False)
    repo.resolve(storage=storage)
    result = repo.materialize(run_id_override=run_id, raise_on_error=False)
    assert attempts == [1]
    assert result.success is False
    assert storage.get_run(run_id).status == "Canceled"
    assert events(storage, run_id)[-1] == ("RunCanceled", None)
    assert step_event_types(storage, run_id, "never_runs").count("StepStart") == 0


def test_uncancelled_run_is_not_flagged():
    @rs.Asset
    def calm() -> int:
        return 1

    repo = make_repo([calm])
    result = repo.materialize()
    assert repo.storage.is_cancelled(result.run_id) is False
    assert repo.storage.get_run(result.run_id).status == "Success"


def test_resume_runs_a_cancelled_run_to_its_end():
    storage = rs.Storage.memory()
    run_id = "cancel-then-resume"
    cancel = {"now": True}
    calls: list[str] = []

    @rs.Asset
    def first() -> int:
        calls.append("first")
        if cancel["now"]:
            storage.request_cancellation(run_id)
        return 1

    @rs.Asset
    def second(first: int) -> int:
        calls.append("second")
        return first + 1

    repo = make_repo([first, second], resolve=False)
    repo.resolve(storage=storage)
    cancelled = repo.materialize(run_id_override=run_id, raise_on_error=False)
    assert cancelled.success is False
    assert storage.get_run(run_id).status == "Canceled"
    assert calls == ["first"]

    cancel["now"] = False
    resumed = repo.materialize(run_id_override=run_id, resume=True)
    assert resumed.success
    assert calls == ["first", "second"]
    assert storage.get_run(run_id).status == "Success"
    assert storage.is_cancelled(run_id) is False
    assert repo.load_node("second") == 2


def test_resume_keeps_a_request_on_a_run_that_did_not_end_canceled():
    storage = rs.Storage.memory()
    run_id = "pending-cancel"

    @rs.Asset
    def only() -> int:
        return 1

    repo = make_repo([only], resolve=False)
    repo.resolve(storage=storage)
    assert repo.materialize(run_id_override=run_id).success
    # Only a run that ended Canceled has its request withdrawn by a resume; any other request
    # is kept, and the resumed run cancels itself at once.
    storage.request_cancellation(run_id)
    resumed = repo.materialize(run_id_override=run_id, resume=True, raise_on_error=False)
    assert storage.is_cancelled(run_id) is True
    assert storage.get_run(run_id).status == "Canceled"
    assert resumed.success is False
