"""The Delta configuration models: ``PartitionExpr`` (R65), ``MergeConfig`` (R66) and the
clause order a merge type stands for."""

from __future__ import annotations

import pydantic
import pytest

from rivers.io_handlers.delta import (
    MergeConfig,
    MergeOperationsConfig,
    PartitionExpr,
    WhenMatchedDelete,
    WhenMatchedUpdate,
    WhenMatchedUpdateAll,
    WhenNotMatchedBySourceDelete,
    WhenNotMatchedBySourceUpdate,
    WhenNotMatchedInsert,
    WhenNotMatchedInsertAll,
)
from rivers.io_handlers.delta.config import merge_clauses


def test_partition_expr_single_column():
    assert PartitionExpr(expr="d").partition_columns == ["d"]


def test_partition_expr_mapping_lists_columns_in_order():
    assert PartitionExpr(expr={"date": "d", "region": "r"}).partition_columns == ["d", "r"]
    assert PartitionExpr(expr={"region": "r", "date": "d"}).partition_columns == ["r", "d"]


def test_partition_expr_rejects_non_string_columns():
    with pytest.raises(pydantic.ValidationError):
        PartitionExpr(expr={"date": 3})


def test_merge_config_defaults():
    config = MergeConfig(merge_type="upsert", predicate="s.k = t.k")

    assert config.source_alias == "s"
    assert config.target_alias == "t"
    assert config.error_on_type_mismatch is True
    assert config.operations is None


def test_merge_config_rejects_unknown_merge_type():
    with pytest.raises(pydantic.ValidationError, match="merge_type"):
        MergeConfig(merge_type="upsert_all", predicate="s.k = t.k")


def test_merge_config_requires_a_predicate():
    with pytest.raises(pydantic.ValidationError, match="predicate"):
        MergeConfig(merge_type="upsert")


def test_merge_models_reject_unknown_fields():
    with pytest.raises(pydantic.ValidationError, match="except_columns"):
        WhenMatchedUpdateAll(except_columns=["a"])
    with pytest.raises(pydantic.ValidationError, match="when_matched_upsert"):
        MergeOperationsConfig(when_matched_upsert=[])


def test_clause_models_fields_and_defaults():
    assert WhenNotMatchedInsert(updates={"k": "s.k"}).predicate is None
    assert WhenNotMatchedInsertAll().except_cols is None
    assert WhenMatchedUpdate(updates={"v": "s.v"}, predicate="s.v > 0").predicate == "s.v > 0"
    assert WhenMatchedUpdateAll(except_cols=["v"]).except_cols == ["v"]
    assert WhenMatchedDelete().predicate is None
    assert WhenNotMatchedBySourceDelete(predicate="t.v < 0").predicate == "t.v < 0"
    assert WhenNotMatchedBySourceUpdate(updates={"v": "0"}).updates == {"v": "0"}
    for model in (WhenNotMatchedInsert, WhenMatchedUpdate, WhenNotMatchedBySourceUpdate):
        with pytest.raises(pydantic.ValidationError, match="updates"):
            model()


@pytest.mark.parametrize(
    ("merge_type", "expected"),
    [
        ("upsert", [WhenMatchedUpdateAll(), WhenNotMatchedInsertAll()]),
        ("deduplicate_insert", [WhenNotMatchedInsertAll()]),
        ("update_only", [WhenMatchedUpdateAll()]),
        ("replace_delete_unmatched", [WhenMatchedUpdateAll(), WhenNotMatchedBySourceDelete()]),
    ],
)
def test_merge_types_stand_for_fixed_clauses(merge_type, expected):
    assert merge_clauses(MergeConfig(merge_type=merge_type, predicate="s.k = t.k")) == expected


def test_custom_clauses_follow_the_fixed_order_whatever_the_field_order():
    insert = WhenNotMatchedInsert(updates={"k": "s.k"})
    insert_all = WhenNotMatchedInsertAll(predicate="s.k > 10")
    update_a = WhenMatchedUpdate(predicate="s.v > 100", updates={"v": "0"})
    update_b = WhenMatchedUpdate(updates={"v": "s.v"})
    update_all = WhenMatchedUpdateAll(predicate="s.v = 0")
    delete = WhenMatchedDelete(predicate="s.v < 0")
    by_source_delete = WhenNotMatchedBySourceDelete(predicate="t.v < 0")
    by_source_update = WhenNotMatchedBySourceUpdate(updates={"v": "-1"})
    operations = MergeOperationsConfig(
        when_not_matched_by_source_update=[by_source_update],
        when_not_matched_by_source_delete=[by_source_delete],
        when_not_matched_insert_all=[insert_all],
        when_not_matched_insert=[insert],
        when_matched_delete=[delete],
        when_matched_update_all=[update_all],
        when_matched_update=[update_a, update_b],
    )

    clauses = merge_clauses(MergeConfig(merge_type="custom", predicate="s.k = t.k", operations=operations))

    assert clauses == [
        update_a,
        update_b,
        update_all,
        delete,
        insert,
        insert_all,
        by_source_delete,
        by_source_update,
    ]


def test_custom_merge_without_operations_is_a_value_error():
    config = MergeConfig(merge_type="custom", predicate="s.k = t.k")

    with pytest.raises(ValueError, match="operations"):
        merge_clauses(config)


def test_custom_merge_with_empty_operations_is_a_value_error():
    config = MergeConfig(merge_type="custom", predicate="s.k = t.k", operations=MergeOperationsConfig())

    with pytest.raises(ValueError, match="no merge clause"):
        merge_clauses(config)
