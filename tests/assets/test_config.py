"""assets.md section 15: typed config from pydantic ``BaseModel`` / ``BaseSettings`` classes."""

import sys
import types

import pytest
from pydantic import BaseModel
from pydantic_settings import BaseSettings

import rivers as rs
from rivers.exceptions import ConfigurationError, ExecutionError


class SampleCfg(BaseModel):
    fraction: float = 0.1
    label: str = "default"


class StrictCfg(BaseModel):
    count: int


class TokenSettings(BaseSettings):
    rivers_test_weather_token: str = "dev-token"
    rivers_test_retries: int = 1


def _sampled_asset(seen):
    @rs.Asset
    def sampled(context: rs.AssetExecutionContext[SampleCfg]):
        seen.append(context.config)
        return context.config.fraction

    return sampled


def test_base_model_config_is_built_from_defaults(make_repo):
    seen = []
    repo = make_repo([_sampled_asset(seen)])
    repo.materialize()

    assert len(seen) == 1
    assert isinstance(seen[0], SampleCfg)
    assert (seen[0].fraction, seen[0].label) == (0.1, "default")


def test_materialize_config_overrides_win_field_by_field(make_repo):
    seen = []
    repo = make_repo([_sampled_asset(seen)])
    repo.materialize(config={"sampled": {"fraction": 0.5}})

    assert isinstance(seen[0], SampleCfg)
    assert (seen[0].fraction, seen[0].label) == (0.5, "default")
    assert repo.load_node("sampled") == 0.5


def test_overrides_apply_only_to_the_named_asset(make_repo):
    seen = {}

    @rs.Asset
    def first(context: rs.AssetExecutionContext[SampleCfg]):
        seen["first"] = context.config.label
        return 1

    @rs.Asset
    def second(context: rs.AssetExecutionContext[SampleCfg]):
        seen["second"] = context.config.label
        return 2

    repo = make_repo([first, second])
    repo.materialize(config={"second": {"label": "tuned"}})

    assert seen == {"first": "default", "second": "tuned"}


def test_base_settings_config_reads_environment(make_repo, monkeypatch):
    monkeypatch.setenv("RIVERS_TEST_WEATHER_TOKEN", "from-env")
    seen = []

    @rs.Asset
    def forecast(context: rs.AssetExecutionContext[TokenSettings]):
        seen.append(context.config)
        return context.config.rivers_test_weather_token

    repo = make_repo([forecast])
    repo.materialize()

    assert isinstance(seen[0], TokenSettings)
    assert seen[0].rivers_test_weather_token == "from-env"
    assert seen[0].rivers_test_retries == 1


def test_base_settings_override_beats_environment(make_repo, monkeypatch):
    monkeypatch.setenv("RIVERS_TEST_WEATHER_TOKEN", "from-env")
    monkeypatch.setenv("RIVERS_TEST_RETRIES", "4")

    @rs.Asset
    def forecast(context: rs.AssetExecutionContext[TokenSettings]):
        return (context.config.rivers_test_weather_token, context.config.rivers_test_retries)

    repo = make_repo([forecast])
    repo.materialize(config={"forecast": {"rivers_test_weather_token": "explicit"}})

    # the overridden field comes from the override, the other one still from the environment
    assert repo.load_node("forecast") == ("explicit", 4)


def test_base_settings_without_environment_uses_defaults(make_repo, monkeypatch):
    monkeypatch.delenv("RIVERS_TEST_WEATHER_TOKEN", raising=False)
    monkeypatch.delenv("RIVERS_TEST_RETRIES", raising=False)

    @rs.Asset
    def forecast(context: rs.AssetExecutionContext[TokenSettings]):
        return context.config.rivers_test_weather_token

    repo = make_repo([forecast])
    repo.materialize()

    assert repo.load_node("forecast") == "dev-token"


def test_invalid_config_fails_only_that_step(make_repo):
    @rs.Asset
    def needs_count(context: rs.AssetExecutionContext[StrictCfg]):
        return context.config.count

    @rs.Asset
    def independent():
        return "still runs"

    repo = make_repo([needs_count, independent])
    result = repo.materialize(config={"needs_count": {"count": "not-a-number"}}, raise_on_error=False)

    assert result.success is False
    assert [name for name, _ in result.failed_assets] == ["needs_count"]
    message = result.failed_assets[0][1]
    assert "count" in message
    assert "valid integer" in message
    assert "independent" in result.materialized_assets
    assert repo.load_node("independent") == "still runs"
    assert repo.storage.get_run(result.run_id).status == "Failure"


def test_invalid_config_raises_execution_error_when_raising(make_repo):
    @rs.Asset
    def needs_count(context: rs.AssetExecutionContext[StrictCfg]):
        return context.config.count

    repo = make_repo([needs_count])
    with pytest.raises(ExecutionError, match="needs_count"):
        repo.materialize(config={"needs_count": {"count": "not-a-number"}})


def test_missing_required_config_field_fails_the_step(make_repo):
    @rs.Asset
    def needs_count(context: rs.AssetExecutionContext[StrictCfg]):
        return context.config.count

    repo = make_repo([needs_count])
    result = repo.materialize(raise_on_error=False)

    assert [name for name, _ in result.failed_assets] == ["needs_count"]
    assert "count" in result.failed_assets[0][1]


def test_required_config_field_supplied_by_override(make_repo):
    @rs.Asset
    def needs_count(context: rs.AssetExecutionContext[StrictCfg]):
        return context.config.count * 2

    repo = make_repo([needs_count])
    assert repo.materialize(config={"needs_count": {"count": 21}}).success
    assert repo.load_node("needs_count") == 42


def test_config_for_asset_without_config_type_is_ignored(make_repo):
    @rs.Asset
    def plain(context: rs.AssetExecutionContext):
        return context.config

    repo = make_repo([plain])
    result = repo.materialize(config={"plain": {"fraction": 0.9}})

    assert result.success
    assert repo.load_node("plain") is None


def test_config_key_naming_no_node_is_rejected_before_the_run(make_repo):
    @rs.Asset
    def plain():
        return 1

    repo = make_repo([plain])
    with pytest.raises(ConfigurationError, match="no_such_asset"):
        repo.materialize(config={"no_such_asset": {"x": 1}})

    assert repo.storage.get_runs() == []


def test_config_class_is_read_from_string_annotations(make_repo, monkeypatch):
    source = """
from __future__ import annotations

from pydantic import BaseModel

import rivers as rs


class FutureCfg(BaseModel):
    factor: int = 3


@rs.Asset
def future_scaled(context: rs.AssetExecutionContext[FutureCfg]) -> int:
    return 14 * context.config.factor
"""
    module = types.ModuleType("rivers_test_future_annotations")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(source, "<future-annotations>", "exec"), module.__dict__)
    asset = module.future_scaled

    repo = make_repo([asset])
    repo.materialize()
    assert repo.load_node("future_scaled") == 42

    repo.materialize(config={"future_scaled": {"factor": 1}})
    assert repo.load_node("future_scaled") == 14
