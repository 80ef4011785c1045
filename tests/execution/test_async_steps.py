"""Async steps: coroutines awaited on the process's one event loop, without a thread each."""

from __future__ import annotations

import asyncio
import threading

import pytest

import rivers as rs

STEPS = 24


def _fan_of_async_steps(seen: list[tuple[int, int]], everyone_started: asyncio.Event, threads: list[int]) -> list:
    started = 0

    def make(index: int):
        @rs.Asset(name=f"wait_{index}")
        async def wait() -> int:
            nonlocal started
            seen.append((threading.get_ident(), id(asyncio.get_running_loop())))
            started += 1
            if started == STEPS:
                threads.append(threading.active_count())
                everyone_started.set()
            # Every step waits until all of them are running: the run finishes only if the
            # engine keeps them all in flight at once.
            await asyncio.wait_for(everyone_started.wait(), timeout=30)
            return index

        return wait

    return [make(i) for i in range(STEPS)]


def test_concurrent_async_steps_share_one_loop_and_thread():
    seen: list[tuple[int, int]] = []
    threads: list[int] = []
    everyone_started = asyncio.Event()
    assets = _fan_of_async_steps(seen, everyone_started, threads)
    repo = rs.CodeRepository(assets=assets, default_executor=rs.Executor.parallel(max_workers=2))
    repo.resolve(storage=rs.Storage.memory())
    before = threading.active_count()
    result = repo.materialize()
    assert result.success
    assert len(seen) == STEPS
    # One thread and one loop ran every body...
    assert len(set(seen)) == 1
    # ... and waiting steps hold no thread: far fewer threads exist than steps in flight.
    assert threads[0] - before < STEPS // 2, (before, threads)
    assert sorted(repo.load_node(f"wait_{i}") for i in range(STEPS)) == list(range(STEPS))


def test_an_async_step_failure_is_reported_with_its_output():
    @rs.Asset
    async def broken() -> int:
        print("about to fail")
        await asyncio.sleep(0)
        raise ValueError("async body broke")

    repo = rs.CodeRepository(assets=[broken], default_executor=rs.Executor.parallel())
    repo.resolve(storage=rs.Storage.memory())
    result = repo.materialize(raise_on_error=False)
    assert not result.success
    assert result.failed_assets == [("broken", "ValueError: async body broke")]
    logs = repo.storage.get_run_logs(result.run_id)
    assert any(log.step_key == "broken" and "about to fail" in (log.stdout or "") for log in logs)


def test_async_steps_honour_max_async_concurrent():
    running = 0
    peak = 0

    def make(index: int):
        @rs.Asset(name=f"capped_{index}")
        async def capped() -> int:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.02)
            running -= 1
            return index

        return capped

    executor = rs.Executor.parallel(max_workers=2, max_async_concurrent=3)
    repo = rs.CodeRepository(assets=[make(i) for i in range(9)], default_executor=executor)
    repo.resolve(storage=rs.Storage.memory())
    assert repo.materialize().success
    assert peak == 3


def test_step_outcomes_cross_into_the_core_as_typed_values():
    from rivers import _core

    with pytest.raises(ValueError, match="not a failure reason"):
        _core.StepFailed("boom", "exploded")
    failed = _core.StepFailed("boom", "timeout", True, _core.CapturedOutput(stdout="out"))
    assert isinstance(failed, _core.StepFailed)


def test_cancelling_a_run_interrupts_its_running_async_steps():
    started = threading.Event()

    @rs.Asset
    async def slow() -> int:
        started.set()
        await asyncio.sleep(60)
        return 1

    @rs.Asset
    def after(slow: int) -> int:
        return slow

    repo = rs.CodeRepository(assets=[slow, after], default_executor=rs.Executor.parallel(max_workers=2))
    repo.resolve(storage=rs.Storage.memory())
    handle = repo._submit_run()
    assert started.wait(30)
    handle.cancel()
    # Far sooner than the step's own 60 s: the step was interrupted, not waited for.
    result = handle.wait(timeout=30)
    assert not result.success
    assert handle.status == "Canceled"
    failures = [e for e in repo.storage.get_events_for_run(handle.run_id) if e.event_type == "StepFailure"]
    assert [e.asset_key for e in failures] == ["slow"]
    assert ("rivers/failure_reason", "canceled") in failures[0].metadata
    assert "after" not in result.materialized_assets


def test_an_async_step_cancelled_by_its_own_code_is_an_ordinary_failure():
    @rs.Asset
    async def gives_up() -> int:
        raise asyncio.CancelledError("inner work was cancelled")

    repo = rs.CodeRepository(assets=[gives_up], default_executor=rs.Executor.parallel())
    repo.resolve(storage=rs.Storage.memory())
    result = repo.materialize(raise_on_error=False)
    [(step, message)] = result.failed_assets
    assert step == "gives_up" and "the step was cancelled" in message
    failure = [e for e in repo.storage.get_events_for_run(result.run_id) if e.event_type == "StepFailure"][0]
    assert ("rivers/failure_reason", "error") in failure.metadata
    assert repo.storage.get_run(result.run_id).status == "Failure"


def test_async_steps_are_refused_by_the_kubernetes_executor_like_sync_ones():
    @rs.Asset
    async def remote() -> int:
        return 1

    repo = rs.CodeRepository(assets=[remote], default_executor=rs.Executor.kubernetes())
    repo.resolve(storage=rs.Storage.memory())
    result = repo.materialize(raise_on_error=False)
    [(step, message)] = result.failed_assets
    assert step == "remote" and "needs a cluster" in message
