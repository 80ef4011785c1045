"""storage-and-io.md ``compute_staleness()`` and ``StaleCause``: Missing, UpToDate, and Stale
after a ``code_version`` change."""

import rivers as rs


def _chain(code_version: str):
    @rs.Asset(code_version=code_version)
    def base_table():
        return [1, 2, 3]

    @rs.Asset
    def report(base_table):
        return sum(base_table)

    return base_table, report


def _status(store, key):
    status, causes = store.compute_staleness()[key]
    return status, causes


def test_staleness_covers_every_asset_record_and_starts_missing(make_repo, store):
    make_repo(list(_chain("1")), storage=store)
    staleness = store.compute_staleness()

    assert set(staleness) == {r.asset_key for r in store.get_asset_records()} == {"base_table", "report"}
    assert _status(store, "base_table") == ("Missing", [])
    assert _status(store, "report") == ("Missing", [])


def test_materialized_assets_are_up_to_date(make_repo, store):
    repo = make_repo(list(_chain("1")), storage=store)
    repo.materialize()

    assert _status(store, "base_table") == ("UpToDate", [])
    assert _status(store, "report") == ("UpToDate", [])


def test_missing_upstream_makes_materialized_downstream_stale(make_repo, store):
    @rs.Asset
    def never_built():
        return 1

    @rs.Asset(deps=[rs.AssetDef.dep("never_built")])
    def built_alone():
        return 2

    repo = make_repo([never_built, built_alone], storage=store)
    repo.materialize(selection=["built_alone"])

    assert _status(store, "never_built") == ("Missing", [])
    status, causes = _status(store, "built_alone")
    assert status == "Stale"
    assert ("Dependencies", "never_built") in [(c.category, c.dependency) for c in causes]


def test_code_version_change_makes_asset_stale_until_rematerialized(make_repo, store):
    first_repo = make_repo(list(_chain("1")), storage=store)
    first_repo.materialize()

    second_repo = make_repo(list(_chain("2")), storage=store)
    assert store.get_asset_record("base_table").code_version == "2"
    assert store.get_asset_record("base_table").last_materialization_code_version == "1"

    status, causes = _status(store, "base_table")
    assert status == "Stale"
    assert len(causes) >= 1
    code_causes = [c for c in causes if c.category == "Code"]
    assert len(code_causes) == 1
    cause = code_causes[0]
    assert isinstance(cause, rs.StaleCause)
    assert cause.asset_key == "base_table"
    assert cause.dependency is None
    assert isinstance(cause.reason, str) and cause.reason.strip() != ""

    status, causes = _status(store, "report")
    assert status == "Stale"
    assert ("report", "Dependencies", "base_table") in [(c.asset_key, c.category, c.dependency) for c in causes]

    second_repo.materialize(selection=["base_table"])
    assert _status(store, "base_table") == ("UpToDate", [])
    status, causes = _status(store, "report")
    assert status == "Stale"
    assert [(c.category, c.dependency) for c in causes] == [("Data", "base_table")]

    second_repo.materialize(selection=["report"])
    assert _status(store, "report") == ("UpToDate", [])


def test_staleness_is_not_stored_on_asset_records(make_repo, store):
    repo = make_repo(list(_chain("1")), storage=store)
    repo.materialize()

    assert not hasattr(store.get_asset_record("report"), "staleness")
    assert not hasattr(store.get_asset_record("report"), "stale_status")
