"""storage-and-io.md: event, asset-record, run and run-log queries after real runs."""

import time

import pytest

import rivers as rs

# --- events ----------------------------------------------------------------------------------


def test_latest_materialization_matches_the_run(finance):
    store, run_id = finance.store, finance.run_id
    latest = store.get_latest_materialization("invoice_total")

    assert isinstance(latest, rs.StoredEvent)
    assert latest.event_type == "Materialization"
    assert latest.asset_key == "invoice_total"
    assert latest.run_id == run_id
    assert latest.partition_key is None
    assert isinstance(latest.data_version, str) and latest.data_version != ""
    assert latest.code_version is None
    upstream_version = store.get_asset_record("invoices").last_data_version
    assert latest.input_data_versions == [("invoices", upstream_version)]


def test_materialization_event_carries_code_version_and_metadata(finance):
    invoices = finance.store.get_latest_materialization("invoices")
    audit = finance.store.get_latest_materialization("audit_log")

    assert invoices.code_version == "3"
    assert invoices.input_data_versions == []
    assert ("entries", "2") in audit.metadata
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in audit.metadata)


def test_latest_materialization_of_unknown_asset_is_none(store):
    assert store.get_latest_materialization("never_seen") is None


def test_latest_materialization_with_partition_none_means_any(finance):
    latest = finance.store.get_latest_materialization("invoices", partition=None)

    assert latest.asset_key == "invoices"
    assert latest.run_id == finance.run_id


def test_events_for_run_are_oldest_first_in_documented_order(make_repo, store):
    @rs.Asset
    def first_step():
        return 1

    @rs.Asset
    def second_step(first_step):
        return first_step + 1

    repo = make_repo([first_step, second_step], storage=store)
    result = repo.materialize()
    events = store.get_events_for_run(result.run_id)

    assert [(e.event_type, e.asset_key) for e in events] == [
        ("RunStart", None),
        ("StepStart", "first_step"),
        ("Materialization", "first_step"),
        ("StepSuccess", "first_step"),
        ("StepStart", "second_step"),
        ("Materialization", "second_step"),
        ("StepSuccess", "second_step"),
        ("RunSuccess", None),
    ]
    assert all(e.run_id == result.run_id for e in events)
    timestamps = [e.timestamp for e in events]
    assert timestamps == sorted(timestamps)
    assert len({e.id for e in events}) == len(events)


def test_events_for_unknown_run_is_empty(store):
    assert store.get_events_for_run("no-such-run") == []


def test_events_for_asset_are_newest_first_and_honour_limit(make_repo, store):
    @rs.Asset
    def repeated():
        return 1

    repo = make_repo([repeated], storage=store)
    first = repo.materialize()
    second = repo.materialize()

    events = store.get_events_for_asset("repeated")
    assert all(e.asset_key == "repeated" for e in events)
    timestamps = [e.timestamp for e in events]
    assert timestamps == sorted(timestamps, reverse=True)
    materialization_runs = [e.run_id for e in events if e.event_type == "Materialization"]
    assert materialization_runs == [second.run_id, first.run_id]

    limited = store.get_events_for_asset("repeated", limit=2)
    assert len(limited) == 2
    assert [e.id for e in limited] == [e.id for e in events[:2]]


def test_events_for_asset_default_limit_is_100(make_repo, store):
    @rs.Asset
    def chatty_asset():
        return 1

    repo = make_repo([chatty_asset], storage=store)
    for _ in range(35):  # three step-scoped events per run: 105 events
        repo.materialize()

    assert len(store.get_events_for_asset("chatty_asset")) == 100
    assert len(store.get_events_for_asset("chatty_asset", limit=200)) == 105


def test_events_for_unknown_asset_is_empty(store):
    assert store.get_events_for_asset("nobody") == []


def test_failed_step_writes_step_failure_with_error_metadata(make_repo, store):
    @rs.Asset
    def exploding():
        raise RuntimeError("upstream API down")

    @rs.Asset
    def downstream(exploding):
        return exploding

    repo = make_repo([exploding, downstream], storage=store)
    result = repo.materialize(raise_on_error=False)
    events = store.get_events_for_run(result.run_id)
    kinds = [(e.event_type, e.asset_key) for e in events]

    assert kinds[0] == ("RunStart", None)
    assert ("StepFailure", "exploding") in kinds
    assert ("StepSkipped", "downstream") in kinds
    assert ("StepStart", "downstream") not in kinds
    assert not any(e.event_type == "Materialization" for e in events)
    assert kinds[-1] == ("RunFailure", None)
    failure = next(e for e in events if e.event_type == "StepFailure")
    metadata = dict(failure.metadata)
    assert metadata["rivers/failure_reason"] == "error"
    assert "upstream API down" in metadata["rivers/error"]


def test_timestamps_are_nanoseconds_since_epoch(make_repo, store):
    @rs.Asset
    def stamped():
        return 1

    repo = make_repo([stamped], storage=store)
    before = time.time_ns()
    result = repo.materialize()
    after = time.time_ns()
    slack = 5 * 10**9

    events = store.get_events_for_run(result.run_id)
    for event in events:
        assert before - slack <= event.timestamp <= after + slack
    run = store.get_run(result.run_id)
    assert before - slack <= run.start_time <= run.end_time <= after + slack
    record = store.get_asset_record("stamped")
    assert before - slack <= record.last_timestamp <= after + slack


# --- asset records ---------------------------------------------------------------------------


def test_asset_record_last_fields_match_the_latest_event(finance):
    store = finance.store
    event = store.get_latest_materialization("invoices")
    record = store.get_asset_record("invoices")

    assert isinstance(record, rs.AssetRecord)
    assert record.asset_key == "invoices"
    assert record.last_event_id == event.id
    assert record.last_run_id == finance.run_id
    assert record.last_timestamp == event.timestamp
    assert record.last_data_version == event.data_version
    assert record.last_materialization_code_version == "3"
    assert record.last_input_data_versions == []


def test_asset_record_keeps_declared_attributes(finance):
    record = finance.store.get_asset_record("invoices")

    assert record.tags == ["finance", "raw"]
    assert record.kinds == ["table"]
    assert record.group == "billing"
    assert record.code_version == "3"
    assert record.pool == []


def test_asset_record_of_string_kind_and_no_tags(finance):
    record = finance.store.get_asset_record("invoice_total")

    assert record.kinds == ["scalar"]
    assert record.tags == []
    assert record.code_version is None


def test_registered_asset_has_record_before_first_materialization(make_repo, store):
    @rs.Asset(tags=["fresh"], pool="db", pool_slots=2)
    def not_yet_run():
        return 1

    make_repo([not_yet_run], storage=store)
    record = store.get_asset_record("not_yet_run")

    assert record.asset_key == "not_yet_run"
    assert record.tags == ["fresh"]
    assert record.pool == [("db", 2)]
    assert (record.last_event_id, record.last_run_id, record.last_timestamp) == (None, None, None)
    assert (record.last_data_version, record.last_materialization_code_version) == (None, None)
    assert record.last_input_data_versions == []


def test_asset_record_of_unknown_key_is_none(store):
    assert store.get_asset_record("never_registered") is None


def test_asset_records_cover_every_asset_in_key_order(finance):
    keys = [r.asset_key for r in finance.store.get_asset_records()]

    assert keys == ["audit_log", "invoice_total", "invoices"]


def test_assets_by_tag(finance):
    store = finance.store

    assert [r.asset_key for r in store.get_assets_by_tag("finance")] == ["invoices"]
    assert [r.asset_key for r in store.get_assets_by_tag("ops")] == ["audit_log"]
    assert store.get_assets_by_tag("missing-tag") == []


def test_assets_by_kind(finance):
    store = finance.store

    assert sorted(r.asset_key for r in store.get_assets_by_kind("table")) == ["audit_log", "invoices"]
    assert [r.asset_key for r in store.get_assets_by_kind("scalar")] == ["invoice_total"]
    assert store.get_assets_by_kind("delta") == []


def test_assets_by_group(finance):
    store = finance.store

    assert sorted(r.asset_key for r in store.get_assets_by_group("billing")) == ["invoice_total", "invoices"]
    assert [r.asset_key for r in store.get_assets_by_group("ops")] == ["audit_log"]
    assert store.get_assets_by_group("marketing") == []


def test_materialized_partitions_of_unpartitioned_asset_are_empty(finance):
    assert finance.store.get_materialized_partitions("invoices") == []
    assert finance.store.count_materialized_partitions("invoices") == 0
    assert finance.store.get_materialized_partitions("unknown_asset") == []


# --- runs ------------------------------------------------------------------------------------


def test_run_record_of_a_successful_ad_hoc_run(finance):
    run = finance.store.get_run(finance.run_id)

    assert isinstance(run, rs.RunRecord)
    assert run.run_id == finance.run_id
    assert run.status == "Success"
    assert run.job_name is None
    assert run.launched_by.kind == "manual"
    assert run.launched_by == rs.LaunchedBy.manual()
    assert run.tags == [("team", "finance"), ("ticket", "FIN-1")]
    assert sorted(run.node_names) == ["audit_log", "invoice_total", "invoices"]
    assert run.priority == 0
    assert run.partition_key is None
    assert run.block_reason is None
    assert run.end_time >= run.start_time


def test_priority_tag_sets_run_priority(make_repo, store):
    @rs.Asset
    def prioritised():
        return 1

    repo = make_repo([prioritised], storage=store)
    result = repo.materialize(tags=[("rivers/priority", "7")])

    assert store.get_run(result.run_id).priority == 7


def test_run_record_of_a_failed_run(make_repo, store):
    @rs.Asset
    def broken():
        raise ValueError("bad input")

    repo = make_repo([broken], storage=store)
    result = repo.materialize(raise_on_error=False)
    run = store.get_run(result.run_id)

    assert run.status == "Failure"
    assert run.end_time is not None and run.end_time >= run.start_time


def test_get_run_of_unknown_id_is_none(store):
    assert store.get_run("does-not-exist") is None


def test_get_runs_filters_by_status_and_limits(make_repo, store):
    @rs.Asset
    def ok_asset():
        return 1

    @rs.Asset
    def bad_asset():
        raise RuntimeError("nope")

    repo = make_repo([ok_asset, bad_asset], storage=store)
    good_one = repo.materialize(selection=["ok_asset"])
    bad = repo.materialize(selection=["bad_asset"], raise_on_error=False)
    good_two = repo.materialize(selection=["ok_asset"])

    all_runs = store.get_runs()
    assert [r.run_id for r in all_runs] == [good_two.run_id, bad.run_id, good_one.run_id]

    successes = store.get_runs(status="Success")
    assert {r.run_id for r in successes} == {good_one.run_id, good_two.run_id}
    assert all(r.status == "Success" for r in successes)
    assert [r.run_id for r in store.get_runs(status="Failure")] == [bad.run_id]
    assert store.get_runs(status="Canceled") == []

    limited = store.get_runs(limit=2)
    assert [r.run_id for r in limited] == [good_two.run_id, bad.run_id]


def test_no_runs_are_queued_after_direct_runs(finance):
    assert finance.store.get_queued_runs() == []


# --- run logs and ticks ----------------------------------------------------------------------


def test_run_logs_capture_stdout_and_log_records(make_repo, store):
    @rs.Asset
    def chatty(context: rs.AssetExecutionContext):
        print("hello from chatty")
        context.log.warning("log line from chatty")
        return 1

    repo = make_repo([chatty], storage=store)
    result = repo.materialize()
    logs = store.get_run_logs(result.run_id)

    rows = [row for row in logs if row.step_key == "chatty"]
    assert len(rows) == 1
    row = rows[0]
    assert row.run_id == result.run_id
    assert "hello from chatty" in row.stdout
    assert "log line from chatty" in row.logs
    assert row.timestamp > 10**18
    # captured output is not an event
    event_types = {e.event_type for e in store.get_events_for_run(result.run_id)}
    assert event_types == {"RunStart", "StepStart", "Materialization", "StepSuccess", "RunSuccess"}


def test_run_logs_of_unknown_run_are_empty(store):
    assert store.get_run_logs("no-such-run") == []


def test_ticks_of_unknown_automation_are_empty(store):
    assert store.get_ticks("no-such-schedule") == []


# --- kv --------------------------------------------------------------------------------------


def test_kv_round_trip_and_overwrite(store):
    store.kv_set("myapp/watermark", b"2024-06-30")
    assert store.kv_get("myapp/watermark") == b"2024-06-30"

    store.kv_set("myapp/watermark", b"2024-07-01")
    assert store.kv_get("myapp/watermark") == b"2024-07-01"


@pytest.mark.parametrize("value", [b"", b"\x00\xff\x10binary", bytes(range(256)) * 64])
def test_kv_values_round_trip_byte_for_byte(store, value):
    store.kv_set("myapp/blob", value)

    assert store.kv_get("myapp/blob") == value
    assert isinstance(store.kv_get("myapp/blob"), bytes)


def test_kv_get_of_unknown_key_is_none(store):
    assert store.kv_get("myapp/never-written") is None


@pytest.mark.parametrize("bad_value", ["text", 3, None])
def test_kv_set_rejects_non_bytes(store, bad_value):
    with pytest.raises(TypeError):
        store.kv_set("myapp/bad", bad_value)


# --- dynamic partitions ----------------------------------------------------------------------


def test_dynamic_partitions_add_has_get_in_insertion_order(store):
    store.add_dynamic_partitions("tenants", ["northwind", "contoso"])
    store.add_dynamic_partitions("tenants", ["acme"])

    assert store.get_dynamic_partitions("tenants") == ["northwind", "contoso", "acme"]
    assert store.has_dynamic_partition("tenants", "contoso") is True
    assert store.has_dynamic_partition("tenants", "globex") is False


def test_adding_existing_dynamic_partition_keys_does_not_duplicate(store):
    store.add_dynamic_partitions("tenants", ["a", "b"])
    store.add_dynamic_partitions("tenants", ["b", "a", "c"])

    assert store.get_dynamic_partitions("tenants") == ["a", "b", "c"]


def test_delete_dynamic_partition_removes_only_that_key(store):
    store.add_dynamic_partitions("tenants", ["northwind", "contoso"])
    store.delete_dynamic_partition("tenants", "northwind")

    assert store.has_dynamic_partition("tenants", "northwind") is False
    assert store.get_dynamic_partitions("tenants") == ["contoso"]


def test_delete_absent_dynamic_partition_is_a_no_op(store):
    store.add_dynamic_partitions("tenants", ["contoso"])
    store.delete_dynamic_partition("tenants", "never-added")
    store.delete_dynamic_partition("unknown-definition", "x")

    assert store.get_dynamic_partitions("tenants") == ["contoso"]


def test_dynamic_partition_names_are_independent(store):
    store.add_dynamic_partitions("tenants", ["acme"])
    store.add_dynamic_partitions("regions", ["eu"])

    assert store.get_dynamic_partitions("tenants") == ["acme"]
    assert store.get_dynamic_partitions("regions") == ["eu"]
    assert store.has_dynamic_partition("regions", "acme") is False


def test_unknown_dynamic_partition_name_is_empty(store):
    assert store.get_dynamic_partitions("nothing-here") == []


@pytest.mark.parametrize("bad_key", ["", "a|b", "a,b"])
def test_invalid_dynamic_partition_keys_raise_storage_error_and_add_nothing(store, bad_key):
    with pytest.raises(rs.exceptions.StorageError):
        store.add_dynamic_partitions("tenants", ["valid", bad_key])

    assert store.get_dynamic_partitions("tenants") == []
    assert store.has_dynamic_partition("tenants", "valid") is False


def test_latest_materialization_is_the_newest_one(make_repo, store):
    @rs.Asset
    def refreshed():
        return 1

    repo = make_repo([refreshed], storage=store)
    repo.materialize()
    second = repo.materialize()

    latest = store.get_latest_materialization("refreshed")
    assert latest.run_id == second.run_id
    assert latest.id == store.get_asset_record("refreshed").last_event_id
