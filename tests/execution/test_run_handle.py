"""RunHandle: submitted runs can be waited on, time out, and be cancelled."""

from __future__ import annotations

import threading

import pytest

import rivers as rs


def test_submitted_run_completes_and_wait_returns_its_result():
    @rs.Asset
    def one() -> int:
        return 1

    repo = rs.CodeRepository(assets=[one], default_executor=rs.Executor.in_process())
    repo.resolve(storage=rs.Storage.memory())
    handle = repo._submit_run()
    result = handle.wait(timeout=60)
    assert isinstance(handle, rs.RunHandle)
    assert result.success and result.run_id == handle.run_id
    assert handle.status == "Success"
    assert repo.load_node("one") == 1


def test_wait_times_out_and_cancel_stops_the_run():
    release = threading.Event()

    @rs.Asset
    def blocker() -> int:
        release.wait(30)
        return 1

    @rs.Asset
    def after(blocker: int) -> int:
        return blocker + 1

    repo = rs.CodeRepository(assets=[blocker, after], default_executor=rs.Executor.in_process())
    repo.resolve(storage=rs.Storage.memory())
    handle = repo._submit_run()
    with pytest.raises(TimeoutError):
        handle.wait(timeout=0.01)
    handle.cancel()
    release.set()
    result = handle.wait(timeout=60)
    assert not result.success
    assert handle.status == "Canceled"
    assert "after" not in result.materialized_assets
