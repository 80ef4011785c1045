"""storage-and-io.md "Async twins": the 18 ``async_`` methods resolve to the same values as the
sync methods, surface the same errors, and require a running event loop."""

import asyncio
import inspect

import pytest

from rivers.exceptions import StorageError

ASYNC_TWINS = [
    "get_events_for_asset",
    "get_events_for_run",
    "get_run_logs",
    "get_latest_materialization",
    "get_asset_record",
    "get_asset_records",
    "get_assets_by_tag",
    "get_assets_by_kind",
    "get_assets_by_group",
    "get_run",
    "get_runs",
    "get_ticks",
    "kv_get",
    "kv_set",
    "add_dynamic_partitions",
    "delete_dynamic_partition",
    "get_dynamic_partitions",
    "has_dynamic_partition",
]


def _event(e):
    return (
        e.id,
        e.event_type,
        e.asset_key,
        e.run_id,
        e.partition_key,
        e.timestamp,
        list(e.metadata),
        e.data_version,
        e.code_version,
        list(e.input_data_versions),
    )


def _record(r):
    return (
        r.asset_key,
        list(r.tags),
        list(r.kinds),
        r.group,
        r.code_version,
        r.last_event_id,
        r.last_run_id,
        r.last_timestamp,
        r.last_data_version,
        r.last_materialization_code_version,
        list(r.last_input_data_versions),
        list(r.pool),
    )


def _run(r):
    return (
        r.run_id,
        r.job_name,
        r.status,
        r.start_time,
        r.end_time,
        list(r.tags),
        list(r.node_names),
        r.priority,
        r.partition_key,
        r.block_reason,
        r.launched_by,
    )


def _log(row):
    return (row.id, row.run_id, row.step_key, row.timestamp, row.stdout, row.stderr, row.logs)


def _tick(t):
    return (t.id, t.automation_name, t.automation_type, t.status, t.timestamp, t.run_ids, t.backfill_ids)


def _many(convert):
    return lambda values: [convert(v) for v in values]


def _optional(convert):
    return lambda value: None if value is None else convert(value)


def _same(value):
    return value


RUN = object()  # placeholder for the scenario's run id

READ_CASES = [
    ("get_events_for_asset", ("invoices",), {}, _many(_event)),
    ("get_events_for_asset", ("invoices",), {"limit": 2}, _many(_event)),
    ("get_events_for_asset", ("unknown",), {}, _many(_event)),
    ("get_events_for_run", (RUN,), {}, _many(_event)),
    ("get_events_for_run", ("no-such-run",), {}, _many(_event)),
    ("get_run_logs", (RUN,), {}, _many(_log)),
    ("get_latest_materialization", ("invoice_total",), {}, _optional(_event)),
    ("get_latest_materialization", ("invoice_total",), {"partition": None}, _optional(_event)),
    ("get_latest_materialization", ("unknown",), {}, _optional(_event)),
    ("get_asset_record", ("invoices",), {}, _optional(_record)),
    ("get_asset_record", ("unknown",), {}, _optional(_record)),
    ("get_asset_records", (), {}, _many(_record)),
    ("get_assets_by_tag", ("finance",), {}, _many(_record)),
    ("get_assets_by_kind", ("table",), {}, _many(_record)),
    ("get_assets_by_group", ("billing",), {}, _many(_record)),
    ("get_run", (RUN,), {}, _optional(_run)),
    ("get_run", ("no-such-run",), {}, _optional(_run)),
    ("get_runs", (), {}, _many(_run)),
    ("get_runs", (), {"limit": 1, "status": "Success"}, _many(_run)),
    ("get_ticks", ("no-such-schedule",), {}, _many(_tick)),
    ("get_ticks", ("no-such-schedule",), {"limit": 5}, _many(_tick)),
    ("kv_get", ("app/key",), {}, _same),
    ("kv_get", ("app/missing",), {}, _same),
    ("get_dynamic_partitions", ("tenants",), {}, _same),
    ("has_dynamic_partition", ("tenants", "contoso"), {}, _same),
    ("has_dynamic_partition", ("tenants", "globex"), {}, _same),
]


def _case_id(case):
    name, args, kwargs, _ = case
    shown = ",".join([("RUN" if a is RUN else str(a)) for a in args] + [f"{k}={v}" for k, v in kwargs.items()])
    return f"{name}({shown})"


@pytest.fixture
def populated(finance):
    finance.store.kv_set("app/key", b"value")
    finance.store.add_dynamic_partitions("tenants", ["northwind", "contoso"])
    return finance


def test_all_eighteen_async_twins_exist(store):
    assert len(ASYNC_TWINS) == 18
    missing = [name for name in ASYNC_TWINS if not callable(getattr(store, "async_" + name, None))]
    assert missing == []


@pytest.mark.parametrize(("name", "args", "kwargs", "convert"), READ_CASES, ids=[_case_id(c) for c in READ_CASES])
def test_async_read_twin_matches_sync_result(populated, name, args, kwargs, convert):
    store = populated.store
    args = tuple(populated.run_id if a is RUN else a for a in args)
    expected = convert(getattr(store, name)(*args, **kwargs))

    async def read():
        awaitable = getattr(store, "async_" + name)(*args, **kwargs)
        assert inspect.isawaitable(awaitable)
        return await awaitable

    assert convert(asyncio.run(read())) == expected


def test_async_kv_set_is_visible_to_sync_reads(store):
    async def write():
        result = await store.async_kv_set("etl/watermark", b"2024-06-30")
        return result, await store.async_kv_get("etl/watermark")

    written, read_back = asyncio.run(write())

    assert written is None
    assert read_back == b"2024-06-30"
    assert store.kv_get("etl/watermark") == b"2024-06-30"


def test_async_dynamic_partition_writes_match_sync_state(store):
    async def bookkeeping():
        added = await store.async_add_dynamic_partitions("tenants", ["northwind", "contoso"])
        has = await store.async_has_dynamic_partition("tenants", "contoso")
        deleted = await store.async_delete_dynamic_partition("tenants", "northwind")
        keys = await store.async_get_dynamic_partitions("tenants")
        return added, has, deleted, keys

    added, has, deleted, keys = asyncio.run(bookkeeping())

    assert (added, has, deleted) == (None, True, None)
    assert keys == ["contoso"]
    assert store.get_dynamic_partitions("tenants") == ["contoso"]
    assert store.has_dynamic_partition("tenants", "northwind") is False


def test_async_errors_surface_on_await_with_the_sync_exception_class(store):
    async def add_invalid():
        await store.async_add_dynamic_partitions("tenants", ["a|b"])

    with pytest.raises(StorageError):
        asyncio.run(add_invalid())
    assert store.get_dynamic_partitions("tenants") == []


def test_concurrent_async_calls_each_resolve_to_their_own_value(store):
    for index in range(10):
        store.kv_set(f"app/item-{index}", str(index).encode())

    async def read_all():
        return await asyncio.gather(*(store.async_kv_get(f"app/item-{i}") for i in range(10)))

    assert asyncio.run(read_all()) == [str(i).encode() for i in range(10)]


def test_async_twin_outside_a_running_loop_raises_runtime_error(store):
    with pytest.raises(RuntimeError):
        awaitable = store.async_kv_get("app/key")
        # reached only if the call did not raise: do not leak an un-awaited awaitable
        close = getattr(awaitable, "close", None)
        if close is not None:
            close()


def test_async_calls_let_other_tasks_progress(finance):
    store = finance.store
    progressed = []

    async def ticker():
        progressed.append("tick")

    async def main():
        task = asyncio.ensure_future(ticker())
        records = await store.async_get_asset_records()
        await task
        return records

    records = asyncio.run(main())

    assert progressed == ["tick"]
    assert [r.asset_key for r in records] == [r.asset_key for r in store.get_asset_records()]
