"""storage-and-io.md data classes: ``StoredEvent``, ``AssetRecord``, ``RunRecord``,
``LaunchedBy`` and the ``rivers._core.storage`` module."""

import pytest

import rivers as rs

# --- LaunchedBy ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("factory", "args", "kind", "name", "backfill_id"),
    [
        ("manual", (), "manual", None, None),
        ("schedule", ("nightly",), "schedule", "nightly", None),
        ("sensor", ("file_sensor",), "sensor", "file_sensor", None),
        ("backfill", ("bf-2024-q1",), "backfill", None, "bf-2024-q1"),
        ("condition", (), "condition", None, None),
    ],
)
def test_launched_by_factories(factory, args, kind, name, backfill_id):
    launched = getattr(rs.LaunchedBy, factory)(*args)

    assert isinstance(launched, rs.LaunchedBy)
    assert launched.kind == kind
    assert launched.name == name
    assert launched.backfill_id == backfill_id
    assert launched.user is None


def test_launched_by_equality_and_hash():
    assert rs.LaunchedBy.schedule("x") == rs.LaunchedBy.schedule("x")
    assert hash(rs.LaunchedBy.schedule("x")) == hash(rs.LaunchedBy.schedule("x"))
    assert rs.LaunchedBy.manual() == rs.LaunchedBy.manual()
    assert rs.LaunchedBy.condition() == rs.LaunchedBy.condition()
    assert rs.LaunchedBy.backfill("b") == rs.LaunchedBy.backfill("b")


def test_launched_by_inequality_across_kind_and_payload():
    assert rs.LaunchedBy.schedule("x") != rs.LaunchedBy.schedule("y")
    assert rs.LaunchedBy.schedule("x") != rs.LaunchedBy.sensor("x")
    assert rs.LaunchedBy.manual() != rs.LaunchedBy.condition()
    assert rs.LaunchedBy.backfill("b") != rs.LaunchedBy.backfill("c")


def test_launched_by_is_usable_in_sets():
    distinct = {
        rs.LaunchedBy.manual(),
        rs.LaunchedBy.manual(),
        rs.LaunchedBy.schedule("x"),
        rs.LaunchedBy.schedule("x"),
        rs.LaunchedBy.sensor("x"),
    }

    assert len(distinct) == 3


def test_launched_by_repr_shows_kind_and_payload():
    text = repr(rs.LaunchedBy.schedule("nightly"))

    assert "schedule" in text
    assert "nightly" in text


# --- record classes --------------------------------------------------------------------------


def test_stored_event_field_types(finance):
    event = finance.store.get_latest_materialization("invoice_total")

    assert isinstance(event, rs.StoredEvent)
    assert isinstance(event.id, str)
    assert isinstance(event.event_type, str)
    assert isinstance(event.run_id, str)
    assert isinstance(event.timestamp, int)
    assert isinstance(event.metadata, list)
    assert all(isinstance(entry, tuple) and len(entry) == 2 for entry in event.metadata)
    assert isinstance(event.input_data_versions, list)
    assert all(isinstance(entry, tuple) and len(entry) == 2 for entry in event.input_data_versions)


def test_stored_events_are_read_only(finance):
    event = finance.store.get_latest_materialization("invoices")

    with pytest.raises((AttributeError, TypeError)):
        event.data_version = "tampered"
    assert finance.store.get_latest_materialization("invoices").data_version == event.data_version


def test_run_record_launched_by_is_a_launched_by(finance):
    run = finance.store.get_run(finance.run_id)

    assert isinstance(run.launched_by, rs.LaunchedBy)
    assert run.launched_by.kind == "manual"
    assert run.launched_by.user is None


def test_record_classes_have_no_public_constructor():
    for cls in (rs.StoredEvent, rs.AssetRecord, rs.RunRecord, rs.StaleCause):
        with pytest.raises(TypeError):
            cls()


def test_core_storage_module_exposes_the_non_top_level_data_classes():
    from rivers._core import storage as core_storage

    # (the pool data classes belong to a later milestone)
    expected = ["Storage", "StoredLog"]
    missing = [name for name in expected if not isinstance(getattr(core_storage, name, None), type)]
    assert missing == []


def test_core_storage_module_is_importable_by_dotted_path():
    import importlib

    module = importlib.import_module("rivers._core.storage")

    assert module.Storage is rs.Storage


def test_stored_log_rows_are_stored_log_instances(make_repo, store):
    from rivers._core.storage import StoredLog

    @rs.Asset
    def printer():
        print("captured line")
        return 1

    repo = make_repo([printer], storage=store)
    result = repo.materialize()
    rows = store.get_run_logs(result.run_id)

    assert len(rows) >= 1
    assert all(isinstance(row, StoredLog) for row in rows)
    assert [row.step_key for row in rows] == ["printer"]
