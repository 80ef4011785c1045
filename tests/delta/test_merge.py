"""Delta MERGE through ``DeltaIOHandler``: the four merge types, custom clauses in their fixed
order, predicate override and aliases, schema evolution and type-mismatch handling (R62)."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from deltalake.exceptions import TableNotFoundError

from rivers.io_handlers.delta import (
    DeltaIOHandler,
    MergeConfig,
    MergeOperationsConfig,
    WhenMatchedDelete,
    WhenMatchedUpdate,
    WhenMatchedUpdateAll,
    WhenNotMatchedBySourceDelete,
    WhenNotMatchedBySourceUpdate,
    WhenNotMatchedInsert,
    WhenNotMatchedInsertAll,
)

from .conftest import table_rows, write

TARGET = pa.table({"k": [1, 2, 3], "v": ["a", "b", "c"]})
SOURCE = pa.table({"k": [2, 3, 4], "v": ["B", "C", "D"]})


@pytest.fixture
def seeded(lake) -> str:
    """The ``users`` table holding TARGET; returns its URI."""
    write(DeltaIOHandler(table_uri=lake), "users", TARGET)
    return f"{lake}/users"


def merging(lake: str, merge_type: str, predicate: str = "s.k = t.k", **kwargs) -> DeltaIOHandler:
    return DeltaIOHandler(
        table_uri=lake,
        mode="merge",
        merge_config=MergeConfig(merge_type=merge_type, predicate=predicate, **kwargs),
    )


def pairs(uri: str) -> list[tuple]:
    return [tuple(row.values()) for row in table_rows(uri)]


def test_upsert_updates_matches_and_inserts_the_rest(lake, seeded):
    metadata = write(merging(lake, "upsert"), "users", SOURCE)

    assert pairs(seeded) == [(1, "a"), (2, "B"), (3, "C"), (4, "D")]
    stats = json.loads(metadata["delta/merge_stats"])
    assert (stats["num_target_rows_updated"], stats["num_target_rows_inserted"]) == (2, 1)
    assert metadata["delta/num_output_rows"] == stats["num_output_rows"]
    assert (metadata["delta/mode"], metadata["delta/num_rows"], metadata["delta/version"]) == ("merge", 4, 1)


def test_deduplicate_insert_only_inserts_new_keys(lake, seeded):
    write(merging(lake, "deduplicate_insert"), "users", SOURCE)

    assert pairs(seeded) == [(1, "a"), (2, "b"), (3, "c"), (4, "D")]


def test_update_only_never_inserts(lake, seeded):
    write(merging(lake, "update_only"), "users", SOURCE)

    assert pairs(seeded) == [(1, "a"), (2, "B"), (3, "C")]


def test_replace_delete_unmatched_deletes_rows_missing_from_the_source(lake, seeded):
    write(merging(lake, "replace_delete_unmatched"), "users", SOURCE)

    # Matched rows are updated, target-only rows deleted; new source rows are not inserted.
    assert pairs(seeded) == [(2, "B"), (3, "C")]


def test_merge_into_a_missing_table_raises_table_not_found(lake):
    with pytest.raises(TableNotFoundError):
        write(merging(lake, "upsert"), "users", SOURCE)


def test_merge_predicate_metadata_replaces_the_config_predicate(lake, seeded):
    # The config's predicate matches nothing; the node's override joins on k.
    handler = merging(lake, "update_only", predicate="s.k = t.k + 100")

    write(handler, "users", SOURCE, {"delta/merge_predicate": "s.k = t.k"})

    assert pairs(seeded) == [(1, "a"), (2, "B"), (3, "C")]


def test_custom_aliases_are_used_in_the_predicate(lake, seeded):
    handler = merging(lake, "upsert", predicate="src.k = tgt.k", source_alias="src", target_alias="tgt")

    write(handler, "users", SOURCE)

    assert pairs(seeded) == [(1, "a"), (2, "B"), (3, "C"), (4, "D")]


def test_custom_merge_without_operations_fails_before_touching_the_table(lake, seeded):
    with pytest.raises(ValueError, match="operations"):
        write(merging(lake, "custom"), "users", SOURCE)
    assert pairs(seeded) == [(1, "a"), (2, "b"), (3, "c")]


def custom(lake: str, **operations) -> DeltaIOHandler:
    return merging(lake, "custom", operations=MergeOperationsConfig(**operations))


def test_custom_insert_with_expressions(lake, seeded):
    handler = custom(lake, when_not_matched_insert=[WhenNotMatchedInsert(updates={"k": "s.k", "v": "'new-' || s.v"})])

    write(handler, "users", SOURCE)

    assert pairs(seeded) == [(1, "a"), (2, "b"), (3, "c"), (4, "new-D")]


def test_custom_insert_all_with_predicate_and_except_cols(lake, seeded):
    source = pa.table({"k": [4, 5], "v": ["D", "E"]})
    handler = custom(
        lake, when_not_matched_insert_all=[WhenNotMatchedInsertAll(predicate="s.k > 4", except_cols=["v"])]
    )

    write(handler, "users", source)

    assert pairs(seeded) == [(1, "a"), (2, "b"), (3, "c"), (5, None)]


def test_custom_update_all_except_cols(lake, seeded):
    source = pa.table({"k": [2], "v": ["B"], "extra": [9]})
    handler = custom(lake, when_matched_update_all=[WhenMatchedUpdateAll(except_cols=["v"])])

    write(handler, "users", source, {"delta/schema_mode": "merge"})

    assert table_rows(seeded) == [
        {"k": 1, "v": "a", "extra": None},
        {"k": 2, "v": "b", "extra": 9},
        {"k": 3, "v": "c", "extra": None},
    ]


def test_custom_matched_delete_and_by_source_update(lake, seeded):
    handler = custom(
        lake,
        when_matched_delete=[WhenMatchedDelete(predicate="s.v = 'C'")],
        when_not_matched_by_source_update=[WhenNotMatchedBySourceUpdate(updates={"v": "'stale'"})],
    )

    write(handler, "users", SOURCE)

    assert pairs(seeded) == [(1, "stale"), (2, "b")]


def test_custom_by_source_delete_with_predicate(lake, seeded):
    handler = custom(lake, when_not_matched_by_source_delete=[WhenNotMatchedBySourceDelete(predicate="t.k = 1")])

    write(handler, "users", pa.table({"k": [3], "v": ["C"]}))

    assert pairs(seeded) == [(2, "b"), (3, "c")]


def test_custom_clauses_apply_in_the_fixed_order(lake, seeded):
    # For matched rows the first satisfied clause wins. The fixed order puts every
    # when_matched_update before when_matched_delete, so row 2 is updated, not deleted, although
    # the delete clause is given first and matches too.
    handler = custom(
        lake,
        when_matched_delete=[WhenMatchedDelete()],
        when_matched_update=[
            WhenMatchedUpdate(predicate="s.k = 2", updates={"v": "'first'"}),
            WhenMatchedUpdate(predicate="s.k = 2", updates={"v": "'second'"}),
        ],
    )

    write(handler, "users", SOURCE)

    assert pairs(seeded) == [(1, "a"), (2, "first")]


def test_matched_update_all_precedes_matched_delete(lake, seeded):
    handler = custom(
        lake,
        when_matched_delete=[WhenMatchedDelete(predicate="s.k >= 2")],
        when_matched_update_all=[WhenMatchedUpdateAll(predicate="s.k = 3")],
    )

    write(handler, "users", SOURCE)

    assert pairs(seeded) == [(1, "a"), (3, "C")]


def test_merge_with_schema_mode_merge_adds_source_columns(lake, seeded):
    handler = DeltaIOHandler(
        table_uri=lake,
        mode="merge",
        schema_mode="merge",
        merge_config=MergeConfig(merge_type="upsert", predicate="s.k = t.k"),
    )

    metadata = write(handler, "users", pa.table({"k": [4], "v": ["D"], "score": [0.5]}))

    assert metadata["rivers/schema"].names == ["k", "v", "score"]
    assert table_rows(seeded)[-1] == {"k": 4, "v": "D", "score": 0.5}


def test_merge_with_schema_mode_overwrite_is_a_value_error(lake, seeded):
    handler = DeltaIOHandler(
        table_uri=lake,
        mode="merge",
        schema_mode="overwrite",
        merge_config=MergeConfig(merge_type="upsert", predicate="s.k = t.k"),
    )

    with pytest.raises(ValueError, match="schema_mode='overwrite' cannot be combined with mode='merge'"):
        write(handler, "users", SOURCE)


def test_type_mismatch_raises_unless_disabled(lake, seeded):
    target = pa.table({"k": [1, 2], "n": [10, 20]})
    write(DeltaIOHandler(table_uri=lake), "scores", target)
    bad = pa.table({"k": [2], "n": ["not a number"]})

    with pytest.raises(Exception, match="(?i)cast"):
        write(merging(lake, "update_only"), "scores", bad)
    write(merging(lake, "update_only", error_on_type_mismatch=False), "scores", bad)

    assert pairs(f"{lake}/scores") == [(1, 10), (2, None)]


def test_merge_applies_table_config_to_the_target(lake, seeded):
    from deltalake import DeltaTable

    handler = DeltaIOHandler(
        table_uri=lake,
        mode="merge",
        table_config={"delta.enableChangeDataFeed": "true"},
        merge_config=MergeConfig(merge_type="upsert", predicate="s.k = t.k"),
    )

    write(handler, "users", SOURCE)

    assert DeltaTable(seeded).metadata().configuration == {"delta.enableChangeDataFeed": "true"}
