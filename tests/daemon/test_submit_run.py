"""``CodeRepository._submit_run``: the queue path of manual launches, and ``RunHandle`` for a
queued run (automation-and-concurrency.md, ``RunHandle``, R42–R43)."""

import pytest

import rivers as rs

from .conftest import wait_for


def test_with_a_run_queue_a_submitted_run_waits_queued_until_canceled(daemon_repo):
    repo, store, _ = daemon_repo(run_queue=rs.RunQueueConfig())
    handle = repo._submit_run(["orders"])
    assert handle.status == "Queued"
    record = store.get_run(handle.run_id)
    assert record.launched_by == rs.LaunchedBy.manual() and record.launched_by.user is None
    events = store.get_events_for_run(handle.run_id)
    assert [(e.event_type, dict(e.metadata)) for e in events] == [("RunQueued", {"priority": "0"})]
    with pytest.raises(TimeoutError):
        handle.wait(timeout=0.1)
    handle.cancel()
    assert handle.status == "Canceled"
    result = handle.wait(timeout=5)
    assert result.success is False and result.run_id == handle.run_id
    handle.cancel()  # a terminal run: nothing happens
    assert handle.status == "Canceled"


def test_a_queued_run_is_admitted_and_executed_by_the_daemon(daemon_repo):
    repo, store, daemon = daemon_repo(run_queue=rs.RunQueueConfig(dequeue_interval="50ms"))
    handle = repo._submit_run(["orders", "refunds"])
    daemon.start()
    result = handle.wait(timeout=30)
    daemon.stop()
    assert result.success is True
    assert sorted(result.materialized_assets) == ["orders", "refunds"]
    kinds = [e.event_type for e in store.get_events_for_run(handle.run_id)]
    assert kinds[:2] == ["RunQueued", "RunDequeued"] and "RunSuccess" in kinds
    assert store.get_run(handle.run_id).launched_by.kind == "manual"


def test_without_a_run_queue_a_submitted_run_executes_at_once(daemon_repo):
    repo, store, _ = daemon_repo()
    handle = repo._submit_run(["orders"])
    result = handle.wait(timeout=30)
    assert result.success is True
    assert "RunQueued" not in [e.event_type for e in store.get_events_for_run(handle.run_id)]
    wait_for(lambda: store.get_run(handle.run_id).status == "Success", "the run record to show success")
