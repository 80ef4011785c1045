"""Declarations of the wrong type are refused by name, never accepted and silently ignored."""

import pytest

import rivers as rs


@rs.Asset
def plain() -> int:
    return 1


@pytest.mark.parametrize(
    ("parameter", "value", "named"),
    [
        ("schedules", [object()], "Schedule"),
        ("sensors", [object()], "Sensor"),
        ("run_queue", object(), "RunQueueConfig"),
        ("run_backend", object(), "RunBackendConfig"),
    ],
)
def test_repository_parameters_of_the_wrong_type_are_refused_at_construction(parameter, value, named):
    with pytest.raises(TypeError, match=named):
        rs.CodeRepository(assets=[plain], **{parameter: value})


def test_empty_collections_are_accepted():
    repo = rs.CodeRepository(assets=[plain], schedules=[], sensors=[], pool_limits={}, tasks=[])
    repo.validate()
    assert repo.materialize().success


def test_an_automation_condition_that_is_not_one_is_refused_naming_the_asset():
    @rs.Asset(automation_condition=object())
    def declared() -> int:
        return 1

    with pytest.raises(TypeError, match="declared"):
        rs.CodeRepository(assets=[declared])


def test_partition_arguments_of_the_wrong_type_are_named():
    @rs.Asset(deps=[rs.AssetDef.input("plain", partition_mapping=object())])
    def mapped(plain: int) -> int:
        return plain

    @rs.Asset(partitions_def=object())
    def defined() -> int:
        return 1

    with pytest.raises(TypeError, match="PartitionMapping"):
        rs.CodeRepository(assets=[plain, mapped])
    with pytest.raises(TypeError, match="partitions_def must be a PartitionsDefinition"):
        rs.CodeRepository(assets=[defined])
    with pytest.raises(TypeError, match=r"partition_defs\['daily'\]"):
        rs.CodeRepository(assets=[plain], partition_defs={"daily": object()})

    @rs.Asset(backfill_strategy=object())
    def strategic() -> int:
        return 1

    with pytest.raises(TypeError, match="asset 'strategic' declares backfill_strategy"):
        rs.CodeRepository(assets=[strategic]).validate()
