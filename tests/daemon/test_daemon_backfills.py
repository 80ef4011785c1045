"""Backfills a schedule or sensor requests (partitions-and-backfills.md "Daemon-executed
backfills", automation-and-concurrency.md R39, checklist "BackfillRequest from a sensor"): the
backfill is stored requested, the daemon claims it and submits its runs at once, the runs go
through the run queue at priority -10 (or ``rivers/priority``), at most ``max_concurrency`` at
a time, and the backfill's counters and status follow its runs; a cancel from the repository
stops it."""

from __future__ import annotations

import threading
import time

import rivers as rs

from .conftest import wait_for

LETTERS = rs.PartitionsDefinition.static_(["a", "b", "c", "d"])


def ended(repo, backfill_id):
    return wait_for(
        lambda: (b := repo.get_backfill(backfill_id)) is not None and b.status != "in_progress" and b,
        f"backfill {backfill_id} to end",
    )


def requesting(request: rs.BackfillRequest) -> rs.Sensor:
    """A sensor that requests ``request`` once."""

    @rs.Sensor(minimum_interval="1h", default_status=rs.SensorStatus.Running)
    def repair(context):
        return request

    return repair


def test_backfill_runs_go_through_the_run_queue_one_at_a_time_with_the_priority_tag(daemon_repo):
    running, most = [0], [0]
    lock = threading.Lock()

    @rs.Asset(partitions_def=LETTERS)
    def letters(context) -> str:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return context.partition.key.key[0]

    request = rs.BackfillRequest(
        selection=["letters"],
        partition_keys=[rs.PartitionKey.single(k) for k in "abcd"],
        max_concurrency=1,
        tags={"rivers/priority": "3", "team": "core"},
    )
    queue = rs.RunQueueConfig(max_concurrent_runs=4, dequeue_interval="20ms")
    repo, store, daemon = daemon_repo(assets=[letters], jobs=[], sensors=[requesting(request)], run_queue=queue)
    daemon.start()
    tick = wait_for(lambda: store.get_ticks("repair"), "the tick")[0]
    (backfill_id,) = tick.backfill_ids
    status = ended(repo, backfill_id)
    daemon.stop()
    assert (status.status, status.completed_partitions, status.total_partitions) == ("completed", 4, 4)
    assert status.launched_by == rs.LaunchedBy.sensor("repair")
    assert most[0] == 1, "max_concurrency=1 admits one run of the backfill at a time"
    runs = [store.get_run(run_id) for run_id in status.run_ids]
    assert [run.partition_key for run in runs] == [rs.PartitionKey.single(k) for k in "abcd"]
    for run in runs:
        assert run.status == "Success"
        assert run.launched_by == rs.LaunchedBy.backfill(backfill_id)
        assert run.priority == 3
        assert dict(run.tags) == {"rivers/priority": "3", "team": "core"}
        assert run.job_name is None
        kinds = [event.event_type for event in store.get_events_for_run(run.run_id)]
        assert kinds.index("RunDequeued") < kinds.index("RunStart"), "admitted by the run queue"


def test_without_a_run_queue_the_backfill_runs_at_priority_minus_ten(daemon_repo):
    @rs.Asset(partitions_def=LETTERS)
    def letters(context) -> str:
        return context.partition.key.key[0]

    request = rs.BackfillRequest(selection=["letters"], partition_keys=[rs.PartitionKey.single(k) for k in "ab"])
    repo, store, daemon = daemon_repo(assets=[letters], jobs=[], sensors=[requesting(request)])
    daemon.start()
    tick = wait_for(lambda: store.get_ticks("repair"), "the tick")[0]
    status = ended(repo, tick.backfill_ids[0])
    daemon.stop()
    assert (status.status, status.completed_partitions) == ("completed", 2)
    assert [store.get_run(run_id).priority for run_id in status.run_ids] == [-10, -10]


def test_a_single_run_backfill_request_runs_every_partition_in_one_run(daemon_repo):
    seen: list[list[str]] = []

    @rs.Asset(partitions_def=LETTERS, backfill_strategy=rs.BackfillStrategy.single_run())
    def letters(context) -> int:
        seen.append([key.key[0] for key in context.partition.keys])
        return len(context.partition.keys)

    request = rs.BackfillRequest(
        selection=["letters"], partition_range=rs.PartitionKeyRange.single("b", "d"), max_concurrency=2
    )
    repo, store, daemon = daemon_repo(assets=[letters], jobs=[], sensors=[requesting(request)])
    daemon.start()
    tick = wait_for(lambda: store.get_ticks("repair"), "the tick")[0]
    status = ended(repo, tick.backfill_ids[0])
    daemon.stop()
    assert (status.status, status.completed_partitions, len(status.run_ids)) == ("completed", 3, 1)
    assert seen == [["b", "c", "d"]]


def test_partitions_a_step_marks_failed_fail_the_daemon_backfill(daemon_repo):
    @rs.Asset(partitions_def=LETTERS, backfill_strategy=rs.BackfillStrategy.single_run())
    def letters(context) -> int:
        context.mark_partition_failed("b", "ledger closed")
        return 1

    request = rs.BackfillRequest(selection=["letters"], partition_keys=[rs.PartitionKey.single(k) for k in "abc"])
    repo, store, daemon = daemon_repo(assets=[letters], jobs=[], sensors=[requesting(request)])
    daemon.start()
    tick = wait_for(lambda: store.get_ticks("repair"), "the tick")[0]
    status = ended(repo, tick.backfill_ids[0])
    daemon.stop()
    assert (status.status, status.completed_partitions, status.failed_partitions) == ("failed", 2, 1)
    assert store.get_run(status.run_ids[0]).status == "Success"


def test_cancel_backfill_stops_a_daemon_backfill_and_its_queued_runs_never_start(daemon_repo):
    release = threading.Event()

    @rs.Asset(partitions_def=LETTERS)
    def letters(context) -> str:
        release.wait(30)
        return context.partition.key.key[0]

    request = rs.BackfillRequest(
        selection=["letters"], partition_keys=[rs.PartitionKey.single(k) for k in "abcd"], max_concurrency=1
    )
    queue = rs.RunQueueConfig(max_concurrent_runs=4, dequeue_interval="20ms")
    repo, store, daemon = daemon_repo(assets=[letters], jobs=[], sensors=[requesting(request)], run_queue=queue)
    daemon.start()
    tick = wait_for(lambda: store.get_ticks("repair"), "the tick")[0]
    (backfill_id,) = tick.backfill_ids
    first = wait_for(lambda: (b := repo.get_backfill(backfill_id)) and b.run_ids and b.run_ids[0], "the runs")
    wait_for(lambda: store.get_run(first).status == "Running", "the first run to start")
    assert repo.cancel_backfill(backfill_id) is False, "the daemon runs it: a marker is left"
    queued = repo.get_backfill(backfill_id).run_ids[1:]
    wait_for(lambda: all(store.get_run(run).status == "Canceled" for run in queued), "the queued runs to be canceled")
    release.set()
    status = ended(repo, backfill_id)
    daemon.stop()
    # The running run ends canceled if it sees the request before its step returns, else its
    # partition completes; the queued ones count as canceled either way.
    assert status.status == "canceled"
    assert (status.completed_partitions, status.canceled_partitions) in ((0, 4), (1, 3))
    runs = [store.get_run(run_id) for run_id in status.run_ids]
    for run in runs[1:]:
        assert "RunStart" not in [event.event_type for event in store.get_events_for_run(run.run_id)]
