"""CodeRepository: construction, validate(), resolve(), jobs lookup, load_node(),
io_handler_for_output(), shutdown() and the context manager
(repository-and-execution.md R1-R9, R19, R20)."""

import gc

import pytest
from exec_helpers import RecordingHandler, make_repo

import rivers as rs
from rivers.exceptions import (
    ConfigurationError,
    GraphValidationError,
    NodeNotFoundError,
)

# Lifecycle calls of TrackedResource instances, keyed by their label.
SETUPS: list[str] = []
TEARDOWNS: list[str] = []


class TrackedResource(rs.Resource):
    tracked_label: str = "tracked"

    def setup(self) -> None:
        SETUPS.append(self.tracked_label)

    def teardown(self) -> None:
        TEARDOWNS.append(self.tracked_label)


class ExplodingTeardown(rs.Resource):
    exploding_label: str = "exploding"

    def teardown(self) -> None:
        TEARDOWNS.append(self.exploding_label)
        raise RuntimeError("teardown exploded")


class FailingSetup(rs.Resource):
    failing_label: str = "failing"

    def setup(self) -> None:
        raise OSError("cannot reach the warehouse")


@pytest.fixture(autouse=True)
def _reset_lifecycle():
    SETUPS.clear()
    TEARDOWNS.clear()
    yield
    SETUPS.clear()
    TEARDOWNS.clear()


def _answer_asset():
    @rs.Asset
    def answer() -> int:
        return 42

    return answer


# --------------------------------------------------------------------------- construction (R1, R2)


def test_constructor_rejects_dependency_cycle():
    @rs.Asset
    def ping(pong: int) -> int:
        return pong

    @rs.Asset
    def pong(ping: int) -> int:
        return ping

    with pytest.raises(GraphValidationError):
        rs.CodeRepository(assets=[ping, pong])


def test_constructor_rejects_duplicate_node_names():
    @rs.Asset(name="dup")
    def first() -> int:
        return 1

    @rs.Asset(name="dup")
    def second() -> int:
        return 2

    with pytest.raises(GraphValidationError):
        rs.CodeRepository(assets=[first, second])


def test_constructor_rejects_explicit_dep_on_unregistered_node():
    @rs.Asset(deps=[rs.AssetDef.dep("ghost")])
    def lonely() -> int:
        return 1

    with pytest.raises(GraphValidationError):
        rs.CodeRepository(assets=[lonely])


def test_constructor_rejects_job_naming_unregistered_node():
    @rs.Asset
    def registered() -> int:
        return 1

    @rs.Asset
    def stray() -> int:
        return 2

    with pytest.raises(GraphValidationError):
        rs.CodeRepository(assets=[registered], jobs=[rs.Job(name="j", assets=[stray])])


def test_constructor_rejects_job_with_missing_upstream_naming_it():
    @rs.Asset
    def raw_clicks() -> list[int]:
        return [3, 1, 4]

    @rs.Asset
    def click_total(raw_clicks: list[int]) -> int:
        return sum(raw_clicks)

    with pytest.raises(GraphValidationError, match="raw_clicks"):
        rs.CodeRepository(
            assets=[raw_clicks, click_total],
            jobs=[rs.Job(name="partial", assets=[click_total])],
        )


def test_constructor_accepts_missing_upstream_with_allow_incomplete_deps():
    @rs.Asset
    def raw_clicks() -> list[int]:
        return [3, 1, 4]

    @rs.Asset
    def click_total(raw_clicks: list[int]) -> int:
        return sum(raw_clicks)

    loose = rs.Job(name="partial", assets=[click_total], allow_incomplete_deps=True)
    repo = rs.CodeRepository(assets=[raw_clicks, click_total], jobs=[loose])
    assert repo.get_job("partial").name == "partial"
    assert repo.validate() is None


def test_constructor_rejects_two_jobs_with_the_same_name():
    @rs.Asset
    def one() -> int:
        return 1

    with pytest.raises(ValueError):
        rs.CodeRepository(
            assets=[one],
            jobs=[rs.Job(name="same", assets=[one]), rs.Job(name="same", assets=[one])],
        )


def test_construction_neither_opens_storage_nor_calls_setup():
    repo = rs.CodeRepository(
        assets=[_answer_asset()],
        resources={"tracker": TrackedResource()},
        default_executor=rs.Executor.in_process(),
    )
    assert SETUPS == []
    with pytest.raises(RuntimeError):
        repo.storage  # noqa: B018 - property access is the behaviour under test


def test_assets_property_is_keyed_by_asset_name():
    @rs.Asset
    def alpha() -> int:
        return 1

    @rs.Asset(name="beta_key")
    def beta_fn() -> int:
        return 2

    repo = rs.CodeRepository(assets=[alpha, beta_fn])
    assert set(repo.assets) == {"alpha", "beta_key"}
    assert repo.assets["beta_key"].name == "beta_key"


# --------------------------------------------------------------------------- validate() (R5, R6)


def test_validate_returns_none_and_calls_no_setup():
    repo = rs.CodeRepository(
        assets=[_answer_asset()],
        resources={"tracker": TrackedResource()},
        default_executor=rs.Executor.in_process(),
    )
    assert repo.validate() is None
    assert repo.validate() is None
    assert SETUPS == []
    # validate() binds no storage
    with pytest.raises(RuntimeError):
        repo.storage  # noqa: B018


def _repo_with_unknown_parameter():
    @rs.Asset
    def needs_mystery(mystery_input: int) -> int:
        return mystery_input

    return rs.CodeRepository(assets=[needs_mystery], resources={"tracker": TrackedResource()})


def _repo_with_unknown_handler_reference():
    @rs.Asset(io_handler="no_such_handler")
    def stored() -> int:
        return 1

    return rs.CodeRepository(assets=[stored], resources={"tracker": TrackedResource()})


def _repo_with_unknown_retry_name():
    @rs.Asset(retry="no_such_policy")
    def flaky() -> int:
        return 1

    return rs.CodeRepository(
        assets=[flaky],
        retries={"patient": rs.RetryPolicy(max_retries=3)},
        resources={"tracker": TrackedResource()},
    )


def _repo_with_unknown_default_retry_name():
    return rs.CodeRepository(
        assets=[_answer_asset()],
        retries={"patient": rs.RetryPolicy(max_retries=3)},
        default_retry_policy="no_such_policy",
        resources={"tracker": TrackedResource()},
    )


def _repo_with_unknown_executor_override():
    @rs.Asset(metadata={"rivers/executor": "gpu_farm"})
    def special() -> int:
        return 1

    return rs.CodeRepository(assets=[special], resources={"tracker": TrackedResource()})


CONFIG_DEFECTS = {
    "unknown_parameter": _repo_with_unknown_parameter,
    "unknown_handler_reference": _repo_with_unknown_handler_reference,
    "unknown_retry_name": _repo_with_unknown_retry_name,
    "unknown_default_retry_name": _repo_with_unknown_default_retry_name,
    "unknown_executor_override": _repo_with_unknown_executor_override,
}


@pytest.mark.parametrize("defect", sorted(CONFIG_DEFECTS))
def test_validate_raises_configuration_error_every_call_without_setup(defect):
    repo = CONFIG_DEFECTS[defect]()
    with pytest.raises(ConfigurationError):
        repo.validate()
    # no idempotency guard: the checks run again
    with pytest.raises(ConfigurationError):
        repo.validate()
    assert SETUPS == []


@pytest.mark.parametrize("defect", sorted(CONFIG_DEFECTS))
def test_resolve_raises_the_same_class_as_validate(defect):
    repo = CONFIG_DEFECTS[defect]()
    with pytest.raises(ConfigurationError):
        repo.resolve(storage=rs.Storage.memory())


def test_unknown_retry_name_error_lists_registered_names():
    @rs.Asset(retry="no_such_policy")
    def flaky() -> int:
        return 1

    repo = rs.CodeRepository(
        assets=[flaky],
        retries={"patient": rs.RetryPolicy(max_retries=3), "hasty": rs.RetryPolicy(max_retries=1)},
    )
    with pytest.raises(ConfigurationError, match="patient") as excinfo:
        repo.resolve(storage=rs.Storage.memory())
    assert "hasty" in str(excinfo.value)
    with pytest.raises(ConfigurationError, match="hasty"):
        repo.validate()


def test_parameter_with_python_default_keeps_its_default():
    @rs.Asset
    def with_default(threshold: int = 5) -> int:
        return threshold * 2

    repo = make_repo([with_default])
    assert repo.validate() is None
    assert repo.materialize().success
    assert repo.load_node("with_default") == 10


def test_handler_reference_to_non_handler_resource_fails_at_resolve():
    @rs.Asset(io_handler="blob")
    def stored() -> int:
        return 1

    repo = rs.CodeRepository(assets=[stored], resources={"blob": {"not": "a handler"}})
    with pytest.raises(ConfigurationError):
        repo.resolve(storage=rs.Storage.memory())


# --------------------------------------------------------------------------- resolve() (R3, R4, R7)


def test_resolve_calls_setup_once_per_resource_across_calls():
    @rs.Asset
    def uses(first: TrackedResource, second: TrackedResource) -> str:
        return first.tracked_label + "+" + second.tracked_label

    repo = rs.CodeRepository(
        assets=[uses],
        resources={
            "first": TrackedResource(tracked_label="first"),
            "second": TrackedResource(tracked_label="second"),
        },
        default_executor=rs.Executor.in_process(),
    )
    repo.resolve(storage=rs.Storage.memory())
    repo.resolve(storage=rs.Storage.memory())
    repo.materialize()
    repo.materialize()
    assert sorted(SETUPS) == ["first", "second"]
    assert repo.load_node("uses") == "first+second"


def test_resolve_with_storage_binds_that_store():
    answer = _answer_asset()
    store = rs.Storage.memory()
    repo = rs.CodeRepository(assets=[answer], default_executor=rs.Executor.in_process())
    repo.resolve(storage=store)
    assert repo.storage.type == rs.StorageType.Memory
    store.kv_set("tests/execution/marker", b"shared")
    assert repo.storage.kv_get("tests/execution/marker") == b"shared"

    result = repo.materialize()
    assert store.get_run(result.run_id).status == "Success"


def test_resolve_registers_assets_in_storage():
    answer = _answer_asset()
    store = rs.Storage.memory()
    repo = rs.CodeRepository(assets=[answer], default_executor=rs.Executor.in_process())
    repo.resolve(storage=store)
    record = store.get_asset_record("answer")
    assert record is not None
    assert record.asset_key == "answer"
    assert record.last_event_id is None


def test_second_resolve_is_a_no_op():
    answer = _answer_asset()
    first, second = rs.Storage.memory(), rs.Storage.memory()
    repo = rs.CodeRepository(assets=[answer], default_executor=rs.Executor.in_process())
    repo.resolve(storage=first)
    repo.resolve(storage=second)
    result = repo.materialize()
    assert first.get_run(result.run_id) is not None
    assert second.get_run(result.run_id) is None


def test_resolve_without_storage_opens_embedded_store_in_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    repo = rs.CodeRepository(assets=[_answer_asset()], default_executor=rs.Executor.in_process())
    repo.resolve()
    try:
        assert repo.storage.type == rs.StorageType.Embedded
        assert (tmp_path / ".rivers" / "storage").is_dir()
        result = repo.materialize()
        assert repo.storage.get_run(result.run_id).status == "Success"
    finally:
        repo.shutdown()


def test_default_embedded_store_keeps_history_for_the_same_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    repo = rs.CodeRepository(assets=[_answer_asset()], default_executor=rs.Executor.in_process())
    repo.resolve()
    run_id = repo.materialize().run_id
    repo.shutdown()
    del repo
    gc.collect()

    again = rs.CodeRepository(assets=[_answer_asset()], default_executor=rs.Executor.in_process())
    again.resolve()
    try:
        record = again.storage.get_run(run_id)
        assert record is not None
        assert record.status == "Success"
    finally:
        again.shutdown()


def test_default_stores_of_different_working_directories_are_independent(tmp_path, monkeypatch):
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()

    monkeypatch.chdir(first_dir)
    first = rs.CodeRepository(assets=[_answer_asset()], default_executor=rs.Executor.in_process())
    first.resolve()
    try:
        run_id = first.materialize().run_id
        monkeypatch.chdir(second_dir)
        second = rs.CodeRepository(assets=[_answer_asset()], default_executor=rs.Executor.in_process())
        second.resolve()
        try:
            assert (second_dir / ".rivers" / "storage").is_dir()
            assert second.storage.get_run(run_id) is None
            assert first.storage.get_run(run_id).status == "Success"
        finally:
            second.shutdown()
    finally:
        first.shutdown()


def test_implicit_resolve_binds_memory_storage_and_creates_no_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    repo = rs.CodeRepository(
        assets=[_answer_asset()],
        resources={"tracker": TrackedResource()},
        default_executor=rs.Executor.in_process(),
    )
    result = repo.materialize()
    assert repo.storage.type == rs.StorageType.Memory
    assert repo.storage.get_run(result.run_id).status == "Success"
    assert repo.load_node("answer") == 42
    assert SETUPS == ["tracked"]
    assert not (tmp_path / ".rivers").exists()


def test_io_handler_for_output_resolves_implicitly():
    repo = rs.CodeRepository(assets=[_answer_asset()], default_executor=rs.Executor.in_process())
    assert isinstance(repo.io_handler_for_output("answer"), rs.InMemoryIOHandler)
    assert repo.storage.type == rs.StorageType.Memory


def test_failing_resource_setup_raises_configuration_error_chained():
    repo = rs.CodeRepository(assets=[_answer_asset()], resources={"warehouse": FailingSetup()})
    with pytest.raises(ConfigurationError) as excinfo:
        repo.resolve(storage=rs.Storage.memory())
    assert isinstance(excinfo.value.__cause__, OSError)
    assert "cannot reach the warehouse" in str(excinfo.value.__cause__)


# --------------------------------------------------------------------------- get_job() (R8)


def test_get_job_returns_the_bound_job_and_rejects_unknown_names():
    @rs.Asset
    def one() -> int:
        return 1

    job = rs.Job(name="nightly", assets=[one])
    repo = make_repo([one], jobs=[job])
    bound = repo.get_job("nightly")
    assert bound.name == "nightly"
    result = bound.execute()
    assert repo.storage.get_run(result.run_id).job_name == "nightly"
    with pytest.raises(ValueError):
        repo.get_job("missing")


# --------------------------------------------------------------------------- load_node() (R19)


def test_load_node_returns_the_latest_materialized_value():
    calls: list[int] = []

    @rs.Asset
    def counter() -> int:
        calls.append(1)
        return len(calls) * 10

    repo = make_repo([counter])
    repo.materialize()
    assert repo.load_node("counter") == 10
    repo.materialize()
    assert repo.load_node("counter") == 20


def test_load_node_unknown_name_raises_node_not_found():
    repo = make_repo([_answer_asset()])
    with pytest.raises(NodeNotFoundError):
        repo.load_node("does_not_exist")


def test_load_node_without_stored_value_propagates_handler_error():
    repo = make_repo([_answer_asset()])
    # the shared default InMemoryIOHandler raises KeyError for a key never written
    with pytest.raises(KeyError):
        repo.load_node("answer")


def test_load_node_uses_the_output_handler_and_forwards_type_hint():
    handler = RecordingHandler()

    @rs.Asset(io_handler=handler)
    def numbers() -> list[int]:
        return [1, 2, 3]

    repo = make_repo([numbers])
    repo.materialize()
    assert repo.io_handler_for_output("numbers") is handler
    assert repo.load_node("numbers", type_hint=list) == [1, 2, 3]
    assert handler.calls[-1] == ("load_input", "numbers", list)


# --------------------------------------------------------------------------- io_handler_for_output() (R20)


def test_io_handler_for_output_default_is_one_shared_in_memory_handler():
    @rs.Asset
    def left() -> int:
        return 1

    @rs.Asset
    def right() -> int:
        return 2

    repo = make_repo([left, right])
    handler = repo.io_handler_for_output("left")
    assert isinstance(handler, rs.InMemoryIOHandler)
    assert repo.io_handler_for_output("right") is handler


def test_io_handler_for_output_returns_configured_and_referenced_handlers():
    own = RecordingHandler()
    shared = RecordingHandler()

    @rs.Asset(io_handler=own)
    def direct() -> int:
        return 1

    @rs.Asset(io_handler="blob")
    def by_name() -> int:
        return 2

    repo = make_repo([direct, by_name], resources={"blob": shared})
    assert repo.io_handler_for_output("direct") is own
    assert repo.io_handler_for_output("by_name") is shared
    repo.materialize()
    assert own.values == {"direct": 1}
    assert shared.values == {"by_name": 2}


def test_io_handler_for_output_unknown_name_raises_node_not_found():
    repo = make_repo([_answer_asset()])
    with pytest.raises(NodeNotFoundError):
        repo.io_handler_for_output("nope")


# --------------------------------------------------------------------------- shutdown() and context manager (R9)


def test_shutdown_tears_down_every_resource_once():
    repo = make_repo(
        [_answer_asset()],
        resources={
            "first": TrackedResource(tracked_label="first"),
            "second": TrackedResource(tracked_label="second"),
        },
    )
    repo.shutdown()
    assert sorted(TEARDOWNS) == ["first", "second"]
    repo.shutdown()  # idempotent
    assert sorted(TEARDOWNS) == ["first", "second"]


def test_shutdown_continues_after_a_failing_teardown():
    repo = make_repo(
        [_answer_asset()],
        resources={
            "bad": ExplodingTeardown(exploding_label="bad"),
            "good": TrackedResource(tracked_label="good"),
        },
    )
    repo.shutdown()  # must not raise
    assert sorted(TEARDOWNS) == ["bad", "good"]


def test_context_manager_returns_repository_and_shuts_down():
    answer = _answer_asset()
    with rs.CodeRepository(
        assets=[answer],
        resources={"tracker": TrackedResource()},
        default_executor=rs.Executor.in_process(),
    ) as repo:
        assert isinstance(repo, rs.CodeRepository)
        repo.resolve(storage=rs.Storage.memory())
        assert repo.materialize().success
        assert TEARDOWNS == []
    assert TEARDOWNS == ["tracked"]


def test_context_manager_propagates_body_exception_after_shutdown():
    with pytest.raises(LookupError, match="body failed"):
        with rs.CodeRepository(
            assets=[_answer_asset()],
            resources={"tracker": TrackedResource()},
            default_executor=rs.Executor.in_process(),
        ) as repo:
            repo.resolve(storage=rs.Storage.memory())
            raise LookupError("body failed")
    assert TEARDOWNS == ["tracked"]


def test_exit_returns_false():
    repo = make_repo([_answer_asset()])
    assert repo.__enter__() is repo
    assert repo.__exit__(None, None, None) is False
