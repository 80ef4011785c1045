"""Behaviours of the automation-and-concurrency.md acceptance checklist that the other suites
leave unchecked: the full list of public names, the defaults of the direct schedule and sensor
forms, the second form of the resource-parameter check, daemon ticks of schedules (skip,
failure, backfill) and of a sensor result carrying requests, skip reason and cursor together,
resources and config injected by the daemon, unbounded tick retention, the run queue's
unlimited cap, each tag-limit mode, admission order and tag-blocked runs, the launch paths that
bypass the queue, the priority tag on inline runs, pool limits listed after ``resolve()``,
expired leases collected by the daemon, and ``on_missing()`` leaving failed partitions alone.

The daemon tests wait for stored state (ticks, run statuses), never for time. Run bodies that
must stay in flight block on an event the test sets once it has looked at the queue."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from pydantic import BaseModel

import rivers as rs
from rivers._core import AutomationDaemon
from rivers.exceptions import ConfigurationError
from tests.daemon.conftest import daemon_repo, wait_for

__all__ = ["daemon_repo"]

TERMINAL = ("Success", "Failure", "Canceled")

CHECKLIST_NAMES = [
    "Schedule",
    "ScheduleStatus",
    "ScheduleEvaluationContext",
    "ScheduleTickResult",
    "Sensor",
    "SensorStatus",
    "SensorEvaluationContext",
    "SensorResult",
    "SensorTickResult",
    "RunRequest",
    "BackfillRequest",
    "SkipReason",
    "EvalMode",
    "AutomationCondition",
    "RunQueueConfig",
    "TagConcurrencyLimit",
    "RunBackendConfig",
    "RunHandle",
    "LaunchedBy",
    "StoredTick",
    "StaleCause",
]


def finished(store: rs.Storage, run_id: str) -> rs.RunRecord:
    return wait_for(
        lambda: (run := store.get_run(run_id)) is not None and run.status in TERMINAL and run,
        f"run {run_id} to finish",
    )


def events_of(store: rs.Storage, run_id: str) -> list[str]:
    return [event.event_type for event in store.get_events_for_run(run_id)]


# ----------------------------------------------------------------------------- public names


def test_every_checklist_name_is_importable_from_rivers_and_the_daemon_only_from_core():
    for name in CHECKLIST_NAMES:
        assert name in rs.__all__, name
        assert isinstance(getattr(rs, name), type), name
    assert isinstance(AutomationDaemon, type)
    assert "AutomationDaemon" not in rs.__all__ and not hasattr(rs, "AutomationDaemon")


# ------------------------------------------------------------------------- direct forms


def _evaluate(context):
    return None


@pytest.mark.parametrize(
    "schedule",
    [
        rs.Schedule(_evaluate, cron_schedule="0 3 * * *", job_name="orders_job"),
        rs.Schedule(cron_schedule="0 3 * * *", job_name="orders_job", evaluation_fn=_evaluate),
        rs.Schedule(cron_schedule="0 3 * * *", job_name="orders_job"),
    ],
    ids=["positional", "keyword", "function-less"],
)
def test_direct_schedule_forms_have_the_table_defaults(schedule):
    assert schedule.default_status is rs.ScheduleStatus.Stopped
    assert (schedule.timezone, schedule.tags, schedule.description) == (None, None, None)
    assert (schedule.eval_mode, schedule.eval_timeout) == (rs.EvalMode.Auto, None)


@pytest.mark.parametrize(
    "sensor",
    [rs.Sensor(_evaluate), rs.Sensor(evaluation_fn=_evaluate), rs.Sensor(name="_evaluate")],
    ids=["positional", "keyword", "function-less"],
)
def test_direct_sensor_forms_have_the_table_defaults(sensor):
    assert sensor.name == "_evaluate"
    assert (sensor.job_name, sensor.minimum_interval, sensor.description) == (None, None, None)
    assert (sensor.tags, sensor.asset_selection) == (None, None)
    assert sensor.default_status is rs.SensorStatus.Stopped
    assert (sensor.eval_mode, sensor.eval_timeout) == (rs.EvalMode.Auto, None)


# ------------------------------------------------------------------- resource parameter check


def test_a_schedule_parameter_matching_no_resource_fails_resolve(make_repo):
    @rs.Schedule(cron_schedule="0 3 * * *", job_name="orders_job")
    def needs_db(context, warehouse_db):
        return None

    with pytest.raises(ConfigurationError, match="parameter 'warehouse_db' of the evaluation function of schedule"):
        make_repo(schedules=[needs_db]).resolve(storage=rs.Storage.memory())


def test_a_sensor_parameter_matching_no_resource_fails_validate(make_repo):
    @rs.Sensor()
    def needs_inbox(context, inbox):
        return None

    with pytest.raises(
        ConfigurationError, match="parameter 'inbox' of the evaluation function of sensor 'needs_inbox'"
    ):
        make_repo(sensors=[needs_inbox]).validate()
    make_repo(sensors=[needs_inbox], resources={"inbox": "dsn"}).validate()


# ------------------------------------------------------------------------------ daemon ticks


class Batch(BaseModel):
    size: int = 7


def test_the_daemon_injects_resources_and_typed_config_into_a_sensor(daemon_repo):
    @rs.Sensor(minimum_interval="1h", default_status=rs.SensorStatus.Running)
    def configured(context: rs.SensorEvaluationContext[Batch], inbox: str):
        return rs.SkipReason(f"{inbox} batch={context.config.size}")

    _, store, daemon = daemon_repo(sensors=[configured], resources={"inbox": "s3://landing"})
    daemon.start()
    tick = wait_for(lambda: store.get_ticks("configured"), "the tick")[0]
    daemon.stop()
    assert (tick.status, tick.skip_reason, tick.error) == ("Skipped", "s3://landing batch=7", None)


def test_a_sensor_result_with_requests_a_skip_reason_and_a_cursor_applies_all_three(daemon_repo):
    @rs.Sensor(job_name="orders_job", minimum_interval="1h", default_status=rs.SensorStatus.Running)
    def partial(context):
        return rs.SensorResult(run_requests=[rs.RunRequest(run_key="k")], skip_reason="2 files too new", cursor="c1")

    _, store, daemon = daemon_repo(sensors=[partial])
    daemon.start()
    tick = wait_for(lambda: store.get_ticks("partial"), "the tick")[0]
    run = finished(store, tick.run_ids[0])
    daemon.stop()
    assert (tick.automation_type, tick.status, tick.error) == ("sensor", "Success", None)
    assert (tick.skip_reason, tick.cursor, len(tick.run_ids)) == ("2 files too new", "c1", 1)
    assert run.status == "Success" and run.launched_by == rs.LaunchedBy.sensor("partial")


def test_schedule_ticks_record_a_skip_reason_and_a_failure(daemon_repo):
    @rs.Schedule(cron_schedule="* * * * * *", job_name="orders_job", default_status=rs.ScheduleStatus.Running)
    def holiday(context):
        return rs.SkipReason("public holiday")

    @rs.Schedule(cron_schedule="* * * * * *", job_name="orders_job", default_status=rs.ScheduleStatus.Running)
    def broken(context):
        raise ValueError("calendar unreachable")

    _, store, daemon = daemon_repo(schedules=[holiday, broken])
    daemon.start()
    skipped = wait_for(lambda: store.get_ticks("holiday"), "the holiday tick", timeout=10)[0]
    failed = wait_for(lambda: store.get_ticks("broken"), "the failing tick", timeout=10)[0]
    daemon.stop()
    assert (skipped.automation_name, skipped.automation_type, skipped.status) == ("holiday", "schedule", "Skipped")
    assert (skipped.skip_reason, skipped.error, skipped.cursor) == ("public holiday", None, None)
    assert (skipped.run_ids, skipped.backfill_ids) == ([], [])
    assert (failed.automation_type, failed.status, failed.run_ids) == ("schedule", "Failure", [])
    assert "ValueError: calendar unreachable" in failed.error
    assert store.get_runs() == []


def test_max_ticks_retained_none_keeps_every_tick(daemon_repo):
    @rs.Sensor(minimum_interval="1ms", default_status=rs.SensorStatus.Running)
    def chatty(context):
        return None

    _, store, daemon = daemon_repo(sensors=[chatty], daemon_args={"max_ticks_retained": None})
    daemon.start()
    # More than the default of 100 that a bounded daemon would keep.
    wait_for(lambda: len(store.get_ticks("chatty", limit=1000)) > 120, "more than a hundred ticks", timeout=60)
    daemon.stop()
    ticks = store.get_ticks("chatty", limit=1000)
    assert len(ticks) > 120
    # Returning None is a silent skip.
    assert {(tick.status, tick.skip_reason, tick.error) for tick in ticks} == {("Skipped", None, None)}


def test_a_backfill_request_from_a_schedule_is_listed_on_its_tick_and_runs_at_backfill_priority(daemon_repo):
    requested = []

    @rs.Schedule(cron_schedule="* * * * * *", job_name="unused", default_status=rs.ScheduleStatus.Running)
    def weekly_repair(context):
        if requested:
            return rs.SkipReason("requested already")
        requested.append(context.scheduled_execution_time)
        return rs.BackfillRequest(selection=["lettered"], partition_keys=LETTERS.get_partition_keys())

    repo, store, daemon = daemon_repo(assets=[lettered], jobs=[], schedules=[weekly_repair])
    daemon.start()
    tick = wait_for(lambda: [t for t in store.get_ticks("weekly_repair") if t.backfill_ids], "the tick", timeout=10)[0]
    (backfill_id,) = tick.backfill_ids
    status = wait_for(
        lambda: (b := repo.get_backfill(backfill_id)) is not None and b.status == "completed" and b,
        "the backfill to complete",
    )
    daemon.stop()
    assert (tick.automation_type, tick.status, tick.run_ids) == ("schedule", "Success", [])
    assert status.launched_by == rs.LaunchedBy.schedule("weekly_repair")
    runs = [store.get_run(run_id) for run_id in status.run_ids]
    assert len(runs) == 2
    for run in runs:
        assert run.launched_by == rs.LaunchedBy.backfill(backfill_id)
        assert run.launched_by.kind == "backfill"
        assert (run.status, run.priority) == ("Success", -10)


# --------------------------------------------------------------------------------- run queue


class Gate:
    """An asset whose runs stay in flight until the test opens the gate."""

    def __init__(self) -> None:
        self.opened = threading.Event()

        @rs.Asset
        def gated() -> int:
            self.opened.wait(60)
            return 1

        self.asset = gated


@pytest.fixture
def gate() -> Iterator[Gate]:
    made = Gate()
    yield made
    made.opened.set()


def requesting(*tag_sets: dict[str, str]) -> rs.Sensor:
    """A sensor that requests one ``gated_job`` run per tag set, on its second tick: the first
    requests nothing, so the coordinator's first pass is over before the runs are queued."""

    @rs.Sensor(job_name="gated_job", minimum_interval="200ms", default_status=rs.SensorStatus.Running)
    def requester(context):
        if context.cursor is None:
            return rs.SensorResult(skip_reason="warming up", cursor="warm")
        if context.cursor == "warm":
            requests = [rs.RunRequest(run_key=str(n), tags=tags) for n, tags in enumerate(tag_sets)]
            return rs.SensorResult(run_requests=requests, cursor="done")
        return None

    return requester


def queued_repo(daemon_repo, gate: Gate, queue: rs.RunQueueConfig, *tag_sets: dict[str, str]):
    return daemon_repo(
        assets=[gate.asset], jobs=[rs.Job("gated_job", [gate.asset])], sensors=[requesting(*tag_sets)], run_queue=queue
    )


def requested_runs(store: rs.Storage, count: int) -> list[rs.RunRecord]:
    tick = wait_for(lambda: [t for t in store.get_ticks("requester") if t.run_ids], "the tick with runs")[0]
    assert len(tick.run_ids) == count
    return [store.get_run(run_id) for run_id in tick.run_ids]


def settle(store: rs.Storage, run_ids: list[str], admitted: int) -> tuple[list[rs.RunRecord], list[rs.RunRecord]]:
    """Waits until ``admitted`` of the runs have left the queue and every other one carries a
    block reason (the coordinator looked at it and held it back); returns (admitted, queued)."""

    def split():
        runs = [store.get_run(run_id) for run_id in run_ids]
        out = [run for run in runs if run.status != "Queued"]
        held = [run for run in runs if run.status == "Queued"]
        return len(out) == admitted and all(run.block_reason for run in held) and (out, held)

    return wait_for(split, f"{admitted} admitted runs and block reasons on the others")


def tag_values(runs: list[rs.RunRecord], key: str) -> list[str]:
    """The runs' values of tag ``key``, sorted, ``-`` for a run without it."""
    return sorted((dict(run.tags).get(key) or "-") for run in runs)


def test_max_concurrent_runs_minus_one_admits_every_queued_run(daemon_repo, gate):
    queue = rs.RunQueueConfig(max_concurrent_runs=-1, dequeue_interval="50ms")
    # More runs than the default cap of 10.
    _, store, daemon = queued_repo(daemon_repo, gate, queue, *({} for _ in range(12)))
    daemon.start()
    runs = requested_runs(store, 12)
    # All of them are in flight together: each blocks until the gate opens.
    wait_for(lambda: all(store.get_run(run.run_id).status == "Running" for run in runs), "every run to be running")
    gate.opened.set()
    ended = [finished(store, run.run_id) for run in runs]
    daemon.stop()
    assert [run.status for run in ended] == ["Success"] * 12
    for run in ended:
        kinds = events_of(store, run.run_id)
        assert (
            kinds.index("RunQueued") < kinds.index("RunDequeued") < kinds.index("RunStart") < kinds.index("RunSuccess")
        )


@pytest.mark.parametrize(
    ("limit", "tag_sets", "running", "held"),
    [
        pytest.param(
            rs.TagConcurrencyLimit(key="tier", value="gold", limit=1),
            [{"tier": "gold"}, {"tier": "gold"}, {"tier": "silver"}, {}],
            ["-", "gold", "silver"],
            ["gold"],
            id="fixed-value",
        ),
        pytest.param(
            rs.TagConcurrencyLimit(key="tenant", limit=1),
            [{"tenant": "acme"}, {"tenant": "globex"}, {}],
            ["-", "acme"],
            ["globex"],
            id="any-value",
        ),
        pytest.param(
            rs.TagConcurrencyLimit(key="tenant", limit=1, per_unique_value=True),
            [{"tenant": "acme"}, {"tenant": "acme"}, {"tenant": "globex"}, {}],
            ["-", "acme", "globex"],
            ["acme"],
            id="per-unique-value",
        ),
    ],
)
def test_each_tag_limit_mode_gates_only_the_runs_it_matches(daemon_repo, gate, limit, tag_sets, running, held):
    queue = rs.RunQueueConfig(max_concurrent_runs=-1, tag_concurrency_limits=[limit], dequeue_interval="50ms")
    _, store, daemon = queued_repo(daemon_repo, gate, queue, *tag_sets)
    daemon.start()
    runs = requested_runs(store, len(tag_sets))
    admitted, queued = settle(store, [run.run_id for run in runs], len(running))
    assert tag_values(admitted, limit.key) == running
    assert tag_values(queued, limit.key) == held
    assert all(limit.key in run.block_reason for run in queued)
    gate.opened.set()
    ended = [finished(store, run.run_id) for run in runs]
    daemon.stop()
    assert [run.status for run in ended] == ["Success"] * len(tag_sets)
    assert all(store.get_run(run.run_id).block_reason is None for run in queued), "cleared on dequeue"


def test_equal_priorities_are_admitted_in_queue_order_after_higher_ones(daemon_repo, gate):
    gate.opened.set()
    priorities = ["0", "0", "5", "0", "5"]
    queue = rs.RunQueueConfig(max_concurrent_runs=1, dequeue_interval="10s")
    _, store, daemon = queued_repo(daemon_repo, gate, queue, *({"rivers/priority": p} for p in priorities))
    daemon.start()
    runs = requested_runs(store, len(priorities))
    ended = [finished(store, run.run_id) for run in runs]
    daemon.stop()
    assert [run.status for run in ended] == ["Success"] * len(priorities)
    queued_at = [run.start_time for run in runs]
    assert queued_at == sorted(queued_at), "the tick queued its requests in order"

    def dequeued_at(run: rs.RunRecord) -> int:
        return next(e.timestamp for e in store.get_events_for_run(run.run_id) if e.event_type == "RunDequeued")

    admitted = sorted(range(len(runs)), key=lambda index: dequeued_at(ended[index]))
    assert admitted == [2, 4, 0, 1, 3]


def test_a_tag_blocked_run_does_not_hold_back_a_lower_priority_run(daemon_repo, gate):
    gate.opened.set()
    queue = rs.RunQueueConfig(
        max_concurrent_runs=1,
        tag_concurrency_limits=[rs.TagConcurrencyLimit(key="tenant", value="acme", limit=0)],
        dequeue_interval="50ms",
    )
    tag_sets = [{"tenant": "acme", "rivers/priority": "9"}, {"rivers/priority": "1"}]
    _, store, daemon = queued_repo(daemon_repo, gate, queue, *tag_sets)
    daemon.start()
    blocked, free = requested_runs(store, 2)
    assert finished(store, free.run_id).status == "Success"
    held = wait_for(lambda: (run := store.get_run(blocked.run_id)).block_reason and run, "the block reason")
    daemon.stop()
    assert (held.status, held.priority) == ("Queued", 9)
    assert "tenant" in held.block_reason
    assert "RunDequeued" not in events_of(store, blocked.run_id)


# ------------------------------------------------------------------------ queue-less launches

LETTERS = rs.PartitionsDefinition.static_(["a", "b"])


@rs.Asset
def plain() -> int:
    return 1


@rs.Asset(partitions_def=LETTERS)
def lettered(context) -> str:
    return str(context.partition.key)


def test_materialize_job_execute_and_backfill_bypass_a_run_queue_that_admits_nothing(make_repo):
    repo = make_repo(
        assets=[plain, lettered],
        jobs=[rs.Job("plain_job", [plain])],
        run_queue=rs.RunQueueConfig(
            max_concurrent_runs=0, tag_concurrency_limits=[rs.TagConcurrencyLimit(key="team", limit=0)]
        ),
    )
    repo.resolve(storage=rs.Storage.memory())
    store = repo.storage
    materialized = repo.materialize(["plain"], tags=[("team", "core")])
    executed = repo.get_job("plain_job").execute(tags=[("team", "core")])
    backfilled = repo.backfill(["lettered"], partition_keys=LETTERS.get_partition_keys(), tags=[("team", "core")])
    backfill_runs = repo.get_backfill(backfilled.backfill_id).run_ids
    run_ids = [materialized.run_id, executed.run_id, *backfill_runs]
    assert materialized.success and executed.success and len(backfill_runs) == 2
    for run_id in run_ids:
        run = store.get_run(run_id)
        assert run.status == "Success" and dict(run.tags)["team"] == "core"
        assert not {"RunQueued", "RunDequeued"} & set(events_of(store, run_id)), run_id
    assert store.get_queued_runs() == []
    assert [store.get_run(run_id).launched_by.kind for run_id in run_ids] == [
        "manual",
        "manual",
        "backfill",
        "backfill",
    ]


def test_the_priority_tag_sets_the_priority_of_inline_runs_and_backfill_runs(make_repo):
    repo = make_repo(assets=[plain, lettered], jobs=[])
    repo.resolve(storage=rs.Storage.memory())
    store = repo.storage
    assert store.get_run(repo.materialize(["plain"]).run_id).priority == 0
    assert store.get_run(repo.materialize(["plain"], tags=[("rivers/priority", "7")]).run_id).priority == 7

    def backfill_priorities(tags):
        result = repo.backfill(["lettered"], partition_keys=LETTERS.get_partition_keys(), tags=tags)
        return [store.get_run(run_id).priority for run_id in repo.get_backfill(result.backfill_id).run_ids]

    assert backfill_priorities(None) == [-10, -10]
    assert backfill_priorities([("rivers/priority", "2")]) == [2, 2]
    # A value that is not an integer is ignored: the default priority stands.
    assert store.get_run(repo.materialize(["plain"], tags=[("rivers/priority", "high")]).run_id).priority == 0
    assert backfill_priorities([("rivers/priority", "soon")]) == [-10, -10]


def test_a_sensor_run_whose_priority_tag_is_not_an_integer_runs_at_the_default_priority(daemon_repo):
    @rs.Sensor(job_name="orders_job", minimum_interval="1h", default_status=rs.SensorStatus.Running)
    def vague(context):
        return rs.RunRequest(tags={"rivers/priority": "high"})

    _, store, daemon = daemon_repo(sensors=[vague])
    daemon.start()
    tick = wait_for(lambda: store.get_ticks("vague"), "the tick")[0]
    run = wait_for(
        lambda: (found := store.get_run(tick.run_ids[0])).status in ("Success", "Failure") and found,
        "the run to end",
    )
    daemon.stop()
    assert (run.status, run.priority) == ("Success", 0)
    assert dict(run.tags)["rivers/priority"] == "high"


# ------------------------------------------------------------------------------------- pools


def test_declared_pool_limits_are_listed_after_resolve_with_the_default_lease(make_repo):
    @rs.Asset(pool=["analytics_db", "geo_api"])
    def enriched_sites() -> int:
        return 1

    repo = make_repo(assets=[enriched_sites], jobs=[], pool_limits={"geo_api": 10, "analytics_db": 4})
    repo.resolve(storage=rs.Storage.memory())
    limits = repo.storage.get_pool_limits()
    assert [(p.pool_key, p.slot_limit, p.lease_duration_secs) for p in limits] == [
        ("analytics_db", 4, 300),
        ("geo_api", 10, 300),
    ]
    infos = repo.storage.get_all_pool_infos()
    assert [(p.pool_key, p.slot_limit, p.lease_duration_secs, p.claimed_count) for p in infos] == [
        ("analytics_db", 4, 300, 0),
        ("geo_api", 10, 300, 0),
    ]


def test_the_daemon_collects_expired_leases_before_it_admits_runs(daemon_repo):
    repo, store, daemon = daemon_repo(run_queue=rs.RunQueueConfig(dequeue_interval="50ms"), pool_limits={"db": 1})
    # A crashed worker's claim: nobody releases it, its lease runs out after a second.
    assert store._claim_concurrency_slots([("db", 1)], "crashed-run", "step", lease_duration="1s").is_claimed
    wait_for(lambda: store.get_pool_info("db").claimed_count == 0, "the lease to expire")
    handle = repo._submit_run(["orders"])
    daemon.start()
    # The coordinator frees expired leases at the start of the pass that admits this run.
    assert handle.wait(timeout=30).success
    daemon.stop()
    assert store._free_expired_leases() == 0, "the daemon already deleted the expired row"


# ------------------------------------------------------------------------------- conditions


def test_on_missing_leaves_failed_partitions_alone(daemon_repo):
    letters = rs.PartitionsDefinition.static_(["marked", "kept", "raised", "absent"])

    @rs.Asset(partitions_def=letters, automation_condition=rs.AutomationCondition.on_missing())
    def ledger(context) -> int:
        keys = [str(key) for key in context.partition.keys]
        if "marked" in keys:
            context.mark_partition_failed("marked", "ledger closed")
        if keys == ["raised"]:
            raise RuntimeError("ledger unreadable")
        return len(keys)

    repo, store, daemon = daemon_repo(assets=[ledger], jobs=[], daemon_args={"condition_eval_interval": "100ms"})
    marked = rs.PartitionKey.single("marked")
    kept = rs.PartitionKey.single("kept")
    backfill = repo.backfill(["ledger"], partition_keys=[marked, kept], strategy=rs.BackfillStrategy.single_run())
    assert repo.get_backfill(backfill.backfill_id).failed_partitions == 1
    assert not repo.materialize(["ledger"], partition_key="raised", raise_on_error=False).success
    daemon.start()
    run = wait_for(
        lambda: [r for r in store.get_runs(limit=100) if r.launched_by.kind == "condition"], "the condition run"
    )[0]
    assert finished(store, run.run_id).status == "Success"
    seen = len(store.get_ticks("ledger", limit=1000))
    wait_for(lambda: len(store.get_ticks("ledger", limit=1000)) >= seen + 3, "three more passes")
    daemon.stop()
    condition_runs = [r for r in store.get_runs(limit=100) if r.launched_by.kind == "condition"]
    assert [str(r.partition_key) for r in condition_runs] == ["absent"]
