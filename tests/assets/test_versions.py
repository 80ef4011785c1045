"""assets.md section 18: data versions, code versions and input data versions as recorded on
events and asset records."""

import uuid

import rivers as rs


def test_auto_data_version_is_a_fresh_uuid_per_materialization(make_repo, run_materializations):
    @rs.Asset
    def auto_versioned():
        return 1

    repo = make_repo([auto_versioned])
    first = run_materializations(repo.storage, repo.materialize().run_id)["auto_versioned"].data_version
    second = run_materializations(repo.storage, repo.materialize().run_id)["auto_versioned"].data_version

    assert first != second
    # both parse as UUIDs (uuid.UUID raises ValueError otherwise)
    assert uuid.UUID(first).hex == first.replace("-", "").lower()
    assert uuid.UUID(second).hex == second.replace("-", "").lower()


def test_context_registered_version_replaces_the_uuid(make_repo, run_materializations):
    @rs.Asset
    def hashed(context: rs.AssetExecutionContext):
        context.register_data_version("sha-abc")
        return [1]

    repo = make_repo([hashed])
    result = repo.materialize()

    assert run_materializations(repo.storage, result.run_id)["hashed"].data_version == "sha-abc"
    assert repo.storage.get_asset_record("hashed").last_data_version == "sha-abc"


def test_handler_registered_version_is_used_when_nothing_else_is_registered(
    make_repo, handler_cls, run_materializations
):
    handler = handler_cls(register_version="v7")

    @rs.Asset(io_handler=handler)
    def content_addressed():
        return [1, 2]

    repo = make_repo([content_addressed])
    result = repo.materialize()

    assert run_materializations(repo.storage, result.run_id)["content_addressed"].data_version == "v7"


def test_context_registration_beats_handler_registration(make_repo, handler_cls, run_materializations):
    handler = handler_cls(register_version="from-handler")

    @rs.Asset(io_handler=handler)
    def layered(context: rs.AssetExecutionContext):
        context.register_data_version("from-body")
        return 1

    repo = make_repo([layered])
    result = repo.materialize()

    assert run_materializations(repo.storage, result.run_id)["layered"].data_version == "from-body"


def test_output_data_version_beats_context_and_handler(make_repo, handler_cls, run_materializations):
    handler = handler_cls(register_version="from-handler")

    @rs.Asset(io_handler=handler)
    def layered(context: rs.AssetExecutionContext):
        context.register_data_version("from-body")
        return rs.Output(1, data_version="from-output")

    repo = make_repo([layered])
    result = repo.materialize()

    assert run_materializations(repo.storage, result.run_id)["layered"].data_version == "from-output"


def test_code_version_is_recorded_on_event_and_asset_record(make_repo, run_materializations):
    @rs.Asset(code_version="3")
    def invoices():
        return [7, 8]

    repo = make_repo([invoices])
    record_before = repo.storage.get_asset_record("invoices")
    assert record_before.code_version == "3"
    assert record_before.last_materialization_code_version is None

    result = repo.materialize()
    event = run_materializations(repo.storage, result.run_id)["invoices"]
    record = repo.storage.get_asset_record("invoices")

    assert event.code_version == "3"
    assert record.code_version == "3"
    assert record.last_materialization_code_version == "3"


def test_asset_without_code_version_records_none(make_repo, run_materializations):
    @rs.Asset
    def unversioned():
        return 1

    repo = make_repo([unversioned])
    result = repo.materialize()

    assert run_materializations(repo.storage, result.run_id)["unversioned"].code_version is None
    assert repo.storage.get_asset_record("unversioned").last_materialization_code_version is None


def test_input_data_versions_list_upstream_versions(make_repo, run_materializations):
    @rs.Asset
    def left():
        return rs.Output(1, data_version="left-v1")

    @rs.Asset
    def right():
        return 2

    @rs.Asset
    def combined(left, right):
        return left + right

    repo = make_repo([left, right, combined])
    result = repo.materialize()
    events = run_materializations(repo.storage, result.run_id)

    expected = {("left", "left-v1"), ("right", events["right"].data_version)}
    assert set(events["combined"].input_data_versions) == expected
    assert events["left"].input_data_versions == []
    record = repo.storage.get_asset_record("combined")
    assert set(record.last_input_data_versions) == expected


def test_input_data_versions_use_latest_upstream_version_when_upstream_not_in_run(make_repo, run_materializations):
    @rs.Asset
    def source():
        return rs.Output(10, data_version="src-1")

    @rs.Asset
    def consumer(source):
        return source + 1

    repo = make_repo([source, consumer])
    repo.materialize()
    rerun = repo.materialize(selection=["consumer"])

    event = run_materializations(repo.storage, rerun.run_id)["consumer"]
    assert event.input_data_versions == [("source", "src-1")]


def test_asset_record_last_fields_track_the_latest_materialization(make_repo, run_materializations):
    @rs.Asset(code_version="1")
    def tracked():
        return 1

    repo = make_repo([tracked])
    repo.materialize()
    second = repo.materialize()

    event = run_materializations(repo.storage, second.run_id)["tracked"]
    record = repo.storage.get_asset_record("tracked")
    assert record.last_event_id == event.id
    assert record.last_run_id == second.run_id
    assert record.last_timestamp == event.timestamp
    assert record.last_data_version == event.data_version


def test_unchanged_explicit_upstream_version_keeps_downstream_up_to_date(make_repo):
    @rs.Asset
    def reference_data():
        return rs.Output({"eur": 1.08}, data_version="rates-2024-06")

    @rs.Asset
    def converted(reference_data):
        return reference_data["eur"] * 100

    repo = make_repo([reference_data, converted])
    repo.materialize()
    repo.materialize(selection=["reference_data"])

    status, causes = repo.storage.compute_staleness()["converted"]
    assert (status, causes) == ("UpToDate", [])


def test_new_auto_upstream_version_makes_downstream_stale_with_data_cause(make_repo):
    @rs.Asset
    def live_data():
        return 1

    @rs.Asset
    def derived(live_data):
        return live_data + 1

    repo = make_repo([live_data, derived])
    repo.materialize()
    repo.materialize(selection=["live_data"])

    status, causes = repo.storage.compute_staleness()["derived"]
    assert status == "Stale"
    assert [(c.asset_key, c.category, c.dependency) for c in causes] == [("derived", "Data", "live_data")]
