"""``MappedOutput.collect_stream()`` consumers that really stream (graph-and-tasks.md R50-R52, R57).

Under ``Executor.parallel()`` the consumer starts as soon as the template reported its keys and receives each
instance's output as the instance ends; under ``Executor.in_process()`` it waits for every instance to end. A
failed instance makes the iterator raise ``ExecutionError`` where the consumer reaches it.

Orders are proven by causality (instances wait for what the consumer marked), never by timing. Parallel
definitions live in ``stream_parallel_defs`` (importable by loky workers).
"""

import functools
import os

import pytest

import rivers as rs
from rivers.exceptions import ExecutionError

from .parallel_repo import parallel_repo

_parallel_repo = functools.partial(parallel_repo, max_workers=3)


@pytest.fixture
def defs():
    from . import stream_parallel_defs as module

    module.reset()
    return module


def _events(repo, run_id):
    return [(e.event_type, e.asset_key) for e in repo.storage.get_events_for_run(run_id)]


def _step_types(repo, run_id, node):
    return [e.event_type for e in repo.storage.get_events_for_run(run_id) if e.asset_key == node]


# --------------------------------------------------------------------------- order (R50)


def test_unordered_stream_yields_in_completion_order_to_a_consumer_in_this_process(defs):
    with _parallel_repo([defs.relayed]) as repo:
        result = repo.materialize()
        assert result.success, result.failed_assets
        # x and y could only end after the consumer had received one and two items.
        assert repo.load_node("relayed") == ["Z", "X", "Y"]
        assert repo.load_node("relayed/relay[0]") == "X"
        assert defs.read_mark("consumer-pid") == str(os.getpid()), "the consumer runs where the run is driven"
        instance_pids = {defs.read_mark(f"relay-pid-{item}") for item in "xyz"}
        assert str(os.getpid()) not in instance_pids, "the instances run in loky workers"


def test_ordered_stream_yields_in_element_order(defs):
    with _parallel_repo([defs.ordered_naps]) as repo:
        result = repo.materialize()
        assert result.success, result.failed_assets
        assert repo.load_node("ordered_naps") == [0.8, 0.4, 0.0]
        assert [defs.read_mark(f"received-{n}") for n in (1, 2, 3)] == ["0.8", "0.4", "0.0"]


# --------------------------------------------------------------------------- the consumer starts early (R50)


def test_the_consumer_starts_before_the_last_instance_finishes(defs):
    with _parallel_repo([defs.early_consumer]) as repo:
        result = repo.materialize()
        # Instance 2 waits (bounded) for the consumer's first item: had the consumer waited for every
        # instance, instance 2 would have timed out and failed the run.
        assert result.success, result.failed_assets
        received = repo.load_node("early_consumer")
        assert sorted(received) == [0, 10, 20]
        assert received[0] != 20
        assert defs.read_mark("first-received") in ("0", "10")
        events = _events(repo, result.run_id)
        consumer_started = events.index(("StepStart", "early_consumer/first_marking_consumer"))
        assert consumer_started < events.index(("StepSuccess", "early_consumer/waits_for_consumer[2]"))


# --------------------------------------------------------------------------- a failing instance (R50, R52)


def test_a_failed_instance_raises_execution_error_in_the_consumer(defs):
    with _parallel_repo([defs.fragile_stream]) as repo:
        result = repo.materialize(raise_on_error=False)
        assert not result.success
        assert defs.read_mark("received-1") == "0", "the consumer received instance 0 first"
        is_execution_error, message = defs.read_mark("consumer-error").split("|", 1)
        assert is_execution_error == "True"
        assert "'fragile_stream/fragile[1]'" in message
        assert "element 1 is broken" in message
        failed = dict(result.failed_assets)
        assert "element 1 is broken" in failed["fragile_stream/fragile[1]"]
        assert failed["fragile_stream/receive_until_error"].startswith("ExecutionError: ")
        assert "fragile_stream/fragile[1]" in failed["fragile_stream/receive_until_error"]
        # The sibling instances still completed: instance 2 even ended after the consumer failed.
        assert repo.load_node("fragile_stream/fragile[0]") == 0
        assert repo.load_node("fragile_stream/fragile[2]") == 20
        materialized = [key for kind, key in _events(repo, result.run_id) if kind == "Materialization"]
        assert "fragile_stream" not in materialized
        assert repo.storage.get_run(result.run_id).status == "Failure"


def test_a_failed_instance_raises_from_materialize(defs):
    with _parallel_repo([defs.fragile_stream]) as repo:
        with pytest.raises(ExecutionError, match="element 1 is broken"):
            repo.materialize()


# --------------------------------------------------------------------------- an empty fan-out (R51)


def test_empty_fan_out_gives_an_exhausted_stream_and_downstream_runs(defs):
    with _parallel_repo([defs.empty_stream_counted]) as repo:
        result = repo.materialize()
        assert result.success, result.failed_assets
        assert repo.load_node("empty_stream_counted/drain") == []
        assert repo.load_node("empty_stream_counted") == 0
        started = [key for kind, key in _events(repo, result.run_id) if kind == "StepStart"]
        assert not any(key.startswith("empty_stream_counted/times_ten[") for key in started)


# --------------------------------------------------------------------------- resume (R57)


def test_resume_streams_earlier_instances_and_reruns_only_the_failed_one(defs):
    with _parallel_repo([defs.resumable_stream]) as repo:
        first = repo.materialize(run_id_override="stream-resume", raise_on_error=False)
        assert not first.success
        failed = dict(first.failed_assets)
        assert "resumable_stream/fails_once[1]" in failed
        assert "ExecutionError" in failed["resumable_stream/stream_sum"]

        second = repo.materialize(run_id_override=first.run_id, resume=True)
        assert second.success, second.failed_assets
        assert repo.load_node("resumable_stream") == 30
        runs = [name.split("-")[1] for name in defs.marks_starting("ran-")]
        assert sorted(runs) == ["0", "1", "1", "2"], "only the failed instance ran again"
        assert _step_types(repo, "stream-resume", "resumable_stream/stream_sum")[-1] == "StepSuccess"


# --------------------------------------------------------------------------- the in-process executor


@rs.Task
def _ids() -> list[int]:
    return [1, 2, 3]


def _checked_stream(seen):
    @rs.Task
    def check(i: int) -> int:
        if i == 2:
            raise RuntimeError("bad id")
        return i

    @rs.Task
    def consume(stream) -> list:
        try:
            for value in stream:
                seen.append(value)
        except ExecutionError as err:
            seen.append(f"error: {err}")
            raise
        return seen

    @rs.Asset.from_graph
    def checked_stream():
        return consume(_ids().map(check).collect_stream())

    return checked_stream


def test_in_process_consumer_waits_for_every_instance_then_raises_at_the_failed_one(make_repo):
    seen = []
    repo = make_repo([_checked_stream(seen)])
    result = repo.materialize(raise_on_error=False)
    assert not result.success
    # One step at a time: the consumer starts after every instance ended, and meets the failure in order.
    assert seen == [1, "error: fan-out instance 'checked_stream/check[1]' failed: RuntimeError: bad id"]
    events = _events(repo, result.run_id)
    consumer_start = events.index(("StepStart", "checked_stream/consume"))
    for key in ("checked_stream/check[0]", "checked_stream/check[1]", "checked_stream/check[2]"):
        ended = max(
            i for i, (kind, name) in enumerate(events) if name == key and kind in ("StepSuccess", "StepFailure")
        )
        assert ended < consumer_start, key
    assert repo.load_node("checked_stream/check[2]") == 3
    assert "checked_stream/consume" in dict(result.failed_assets)


def test_in_process_stream_succeeds_in_element_order(make_repo):
    @rs.Task
    def tenfold(i: int) -> int:
        return i * 10

    @rs.Task
    def listed(stream) -> list:
        return list(stream)

    @rs.Asset.from_graph
    def in_process_stream():
        return listed(_ids().map(tenfold).collect_stream())

    repo = make_repo([in_process_stream])
    assert repo.materialize().success
    assert repo.load_node("in_process_stream") == [10, 20, 30]
