"""Declarations whose behaviour is not available yet are refused by name at ``validate()`` /
``resolve()``, never accepted and silently ignored."""

import pytest

import rivers as rs


@rs.Asset
def plain() -> int:
    return 1


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("schedules", [object()]),
        ("sensors", [object()]),
        ("run_queue", object()),
        ("pool_limits", {"db": 2}),
        ("run_backend", object()),
    ],
)
def test_repository_parameters_without_behaviour_are_refused(parameter, value):
    repo = rs.CodeRepository(assets=[plain], **{parameter: value})
    with pytest.raises(NotImplementedError, match=rf"CodeRepository\({parameter}=\.\.\.\).*remove {parameter}="):
        repo.validate()
    with pytest.raises(NotImplementedError, match=parameter):
        repo.resolve(storage=rs.Storage.memory())


def test_empty_collections_are_accepted():
    repo = rs.CodeRepository(assets=[plain], schedules=[], sensors=[], pool_limits={}, tasks=[])
    repo.validate()
    assert repo.materialize().success


@pytest.mark.parametrize(
    ("option", "value"),
    [("automation_condition", object())],
)
def test_asset_declarations_without_behaviour_are_refused(option, value):
    ran = []

    @rs.Asset(**{option: value})
    def declared() -> int:
        ran.append(True)
        return 1

    repo = rs.CodeRepository(assets=[declared])
    with pytest.raises(NotImplementedError, match=rf"asset 'declared' declares {option}"):
        repo.materialize()
    assert ran == []


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
