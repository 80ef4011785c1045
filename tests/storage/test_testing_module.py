"""storage-and-io.md ``rivers.testing``: test-only storage factories that release their
resources synchronously when dropped."""

import gc

import pytest

import rivers as rs
import rivers.testing
from rivers.exceptions import StorageError
from rivers.testing import embedded_storage, memory_storage


def test_testing_all_lists_exactly_the_two_factories():
    assert rivers.testing.__all__ == ["embedded_storage", "memory_storage"]


def test_memory_storage_has_memory_type_and_the_storage_api():
    store = memory_storage()

    assert isinstance(store, rs.Storage)
    assert store.type == rs.StorageType.Memory
    store.kv_set("app/k", b"v")
    assert store.kv_get("app/k") == b"v"


def test_memory_storages_are_isolated():
    first = memory_storage()
    second = memory_storage()
    first.kv_set("app/k", b"v")

    assert second.kv_get("app/k") is None


def test_embedded_storage_has_embedded_type(tmp_path):
    store = embedded_storage(str(tmp_path / "state"))

    assert isinstance(store, rs.Storage)
    assert store.type == rs.StorageType.Embedded


def test_embedded_storage_reopens_immediately_after_drop(tmp_path):
    path = str(tmp_path / "state")
    store = embedded_storage(path)
    store.kv_set("app/round", b"1")
    store.add_dynamic_partitions("tenants", ["acme"])
    del store
    gc.collect()

    reopened = embedded_storage(path)
    assert reopened.kv_get("app/round") == b"1"
    assert reopened.get_dynamic_partitions("tenants") == ["acme"]

    reopened.kv_set("app/round", b"2")
    del reopened
    gc.collect()

    third = embedded_storage(path)
    assert third.kv_get("app/round") == b"2"


def test_production_factory_opens_path_released_by_testing_handle(tmp_path):
    path = str(tmp_path / "state")
    store = embedded_storage(path)
    store.kv_set("app/from-testing", b"yes")
    del store
    gc.collect()

    production = rs.Storage.embedded(path)
    assert production.kv_get("app/from-testing") == b"yes"


def test_embedded_storage_second_live_open_raises_storage_error(tmp_path):
    path = str(tmp_path / "state")
    live = embedded_storage(path)
    live.kv_set("app/k", b"v")

    with pytest.raises(StorageError):
        embedded_storage(path)
    assert live.kv_get("app/k") == b"v"


def test_repository_resolves_on_testing_storage_and_releases_it(tmp_path):
    path = str(tmp_path / "state")

    @rs.Asset
    def tested_asset():
        return 5

    store = embedded_storage(path)
    repo = rs.CodeRepository(assets=[tested_asset], default_executor=rs.Executor.in_process())
    repo.resolve(storage=store)
    run_id = repo.materialize().run_id
    repo.shutdown()
    del repo, store
    gc.collect()

    reopened = embedded_storage(path)
    assert reopened.get_run(run_id).status == "Success"
    assert reopened.get_asset_record("tested_asset").last_run_id == run_id


def test_many_memory_storages_can_be_created_and_dropped():
    for index in range(50):
        store = memory_storage()
        store.kv_set("app/index", str(index).encode())
        assert store.kv_get("app/index") == str(index).encode()
        del store
    gc.collect()

    assert memory_storage().kv_get("app/index") is None
