"""assets.md section 16: ``Resource`` lifecycle, injection by parameter name, shadowing by asset
names, and string IO-handler references."""

import pytest
from pydantic import PrivateAttr

import rivers as rs
from rivers.exceptions import ConfigurationError


class LifecycleResource(rs.Resource):
    """Records every lifecycle call it receives."""

    _calls: list = PrivateAttr(default_factory=list)

    def setup(self) -> None:
        self._calls.append("setup")

    def teardown(self) -> None:
        self._calls.append("teardown")

    @property
    def calls(self) -> list[str]:
        return self._calls


class BrokenResource(rs.Resource):
    def setup(self) -> None:
        raise RuntimeError("cannot reach the service")


class ApiClient(rs.Resource):
    rivers_test_base_url: str


@rs.Asset
def uses_nothing():
    return 1


def _repo(assets, **kwargs):
    kwargs.setdefault("default_executor", rs.Executor.in_process())
    return rs.CodeRepository(assets=assets, **kwargs)


# --- lifecycle -------------------------------------------------------------------------------


def test_resource_default_setup_and_teardown_are_no_ops():
    class Plain(rs.Resource):
        pass

    plain = Plain()
    assert plain.setup() is None
    assert plain.teardown() is None


def test_resource_is_a_pydantic_settings_model():
    from pydantic_settings import BaseSettings

    assert issubclass(rs.Resource, BaseSettings)


def test_construction_and_validate_do_not_call_setup():
    resource = LifecycleResource()
    repo = _repo([uses_nothing], resources={"tracker": resource})

    repo.validate()
    repo.validate()

    assert resource.calls == []
    repo.shutdown()


def test_setup_runs_once_at_resolve_even_with_repeated_resolve_and_runs():
    resource = LifecycleResource()
    repo = _repo([uses_nothing], resources={"tracker": resource})

    repo.resolve(storage=rs.Storage.memory())
    assert resource.calls == ["setup"]

    repo.resolve(storage=rs.Storage.memory())
    repo.materialize()
    repo.materialize()
    assert resource.calls == ["setup"]

    repo.shutdown()
    assert resource.calls == ["setup", "teardown"]


def test_implicit_resolve_by_materialize_calls_setup_once():
    resource = LifecycleResource()
    repo = _repo([uses_nothing], resources={"tracker": resource})

    repo.materialize()
    repo.materialize()

    assert resource.calls == ["setup"]
    repo.shutdown()


def test_leaving_with_block_tears_resources_down():
    resource = LifecycleResource()

    with _repo([uses_nothing], resources={"tracker": resource}) as repo:
        repo.resolve(storage=rs.Storage.memory())
        assert resource.calls == ["setup"]

    assert resource.calls == ["setup", "teardown"]


def test_with_block_exit_on_exception_tears_down_and_propagates():
    resource = LifecycleResource()

    with pytest.raises(KeyError, match="boom"):
        with _repo([uses_nothing], resources={"tracker": resource}) as repo:
            repo.resolve(storage=rs.Storage.memory())
            raise KeyError("boom")

    assert resource.calls == ["setup", "teardown"]


def test_failing_setup_makes_resolve_raise_configuration_error_chained():
    repo = _repo([uses_nothing], resources={"svc": BrokenResource()})

    with pytest.raises(ConfigurationError) as excinfo:
        repo.resolve(storage=rs.Storage.memory())

    cause = excinfo.value.__cause__
    assert isinstance(cause, RuntimeError)
    assert "cannot reach the service" in str(cause)


# --- fields ----------------------------------------------------------------------------------


def test_resource_fields_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("RIVERS_TEST_BASE_URL", "https://wx.example")

    assert ApiClient().rivers_test_base_url == "https://wx.example"


def test_explicit_resource_field_beats_the_environment(monkeypatch):
    monkeypatch.setenv("RIVERS_TEST_BASE_URL", "https://wx.example")

    assert ApiClient(rivers_test_base_url="https://other.example").rivers_test_base_url == "https://other.example"


# --- injection -------------------------------------------------------------------------------


def test_resource_is_injected_by_parameter_name_and_shared_across_runs(make_repo):
    client = ApiClient(rivers_test_base_url="https://wx.example")
    received = []

    @rs.Asset
    def forecast(http):
        received.append(http)
        return http.rivers_test_base_url + "/forecast"

    repo = make_repo([forecast], resources={"http": client})
    repo.materialize()
    repo.materialize()

    assert repo.load_node("forecast") == "https://wx.example/forecast"
    assert len(received) == 2
    assert received[0] is client
    assert received[1] is client


def test_resource_injection_ignores_annotations(make_repo):
    @rs.Asset
    def annotated_wrongly(limit: str):
        return limit * 2

    repo = make_repo([annotated_wrongly], resources={"limit": 21})
    repo.materialize()

    assert repo.load_node("annotated_wrongly") == 42


def test_plain_objects_are_injected_as_is(make_repo):
    registry = {"currency": "EUR"}

    @rs.Asset
    def priced(settings_registry):
        return settings_registry

    repo = make_repo([priced], resources={"settings_registry": registry})
    repo.materialize()

    assert repo.load_node("priced") is registry


def test_resource_combines_with_context_and_upstream(make_repo):
    @rs.Asset
    def amounts():
        return [10, 20]

    @rs.Asset
    def converted(context: rs.AssetExecutionContext, amounts, rate):
        return [a * rate for a in amounts] + [context.asset_name]

    repo = make_repo([amounts, converted], resources={"rate": 2})
    repo.materialize()

    assert repo.load_node("converted") == [20, 40, "converted"]


def test_asset_name_shadows_resource_key_with_a_user_warning(make_repo):
    @rs.Asset
    def prices():
        return [1, 2]

    @rs.Asset
    def total(prices):
        return sum(prices)

    with pytest.warns(UserWarning, match="prices"):
        repo = make_repo([prices, total], resources={"prices": [100, 200]})
        result = repo.materialize()

    assert result.success
    assert repo.load_node("total") == 3


def test_shadowing_warning_is_emitted_by_validate():
    @rs.Asset
    def prices():
        return [1, 2]

    @rs.Asset
    def total(prices):
        return sum(prices)

    with pytest.warns(UserWarning, match="prices"):
        repo = _repo([prices, total], resources={"prices": [100, 200]})
        repo.validate()


def test_resource_key_equal_to_asset_name_warns_even_without_a_consumer():
    # assets.md section 1.2: "When a resource key equals an asset name, validation emits a warning."
    @rs.Asset
    def prices():
        return [1, 2]

    with pytest.warns(UserWarning, match="prices"):
        repo = _repo([prices], resources={"prices": [100, 200]})
        repo.validate()


# --- string IO-handler references ------------------------------------------------------------


def test_string_io_handler_resolves_to_the_exact_resource_instance(make_repo, recording_handler):
    @rs.Asset(io_handler="warehouse")
    def catalog():
        return {"items": 3}

    repo = make_repo([catalog], resources={"warehouse": recording_handler})

    assert repo.io_handler_for_output("catalog") is recording_handler
    repo.materialize()
    assert [w["asset_name"] for w in recording_handler.writes] == ["catalog"]
    assert repo.load_node("catalog") == {"items": 3}


def test_string_reference_in_asset_def_input_resolves_from_resources(make_repo, handler_cls):
    loader = handler_cls()
    loader._values["catalog"] = ["from-loader"]

    @rs.Asset
    def catalog():
        return ["from-default"]

    @rs.Asset(deps=[rs.AssetDef.input("catalog", io_handler="loader")])
    def consumer(catalog):
        return catalog

    repo = make_repo([catalog, consumer], resources={"loader": loader})
    repo.materialize()

    assert repo.load_node("consumer") == ["from-loader"]
    assert [r["downstream_asset"] for r in loader.reads] == ["consumer"]


def test_unknown_io_handler_key_is_a_configuration_error_at_validate():
    @rs.Asset(io_handler="lakehouse")
    def catalog():
        return 1

    repo = _repo([catalog], resources={"warehouse": rs.InMemoryIOHandler()})
    with pytest.raises(ConfigurationError, match="lakehouse") as excinfo:
        repo.validate()
    assert "warehouse" in str(excinfo.value)


def test_unknown_io_handler_key_is_a_configuration_error_at_resolve():
    @rs.Asset(io_handler="lakehouse")
    def catalog():
        return 1

    repo = _repo([catalog], resources={"warehouse": rs.InMemoryIOHandler()})
    with pytest.raises(ConfigurationError, match="lakehouse"):
        repo.resolve(storage=rs.Storage.memory())


def test_io_handler_key_naming_a_non_handler_is_a_configuration_error():
    @rs.Asset(io_handler="not_a_handler")
    def catalog():
        return 1

    repo = _repo([catalog], resources={"not_a_handler": {"kind": "dict"}})
    with pytest.raises(ConfigurationError, match="not_a_handler"):
        repo.resolve(storage=rs.Storage.memory())
