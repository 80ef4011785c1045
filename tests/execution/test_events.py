"""Run lifecycle, statuses and the run events written by the executor
(repository-and-execution.md "Run lifecycle and statuses", "Run events", R18, R31, R48-R50)."""

import pytest
from exec_helpers import RecordingHandler, events, final_step_event, make_repo, metadata, step_events

import rivers as rs
from rivers.exceptions import ExecutionError


def _chain():
    @rs.Asset
    def first() -> int:
        return 1

    @rs.Asset
    def second(first: int) -> int:
        return first + 1

    return [first, second]


def test_successful_run_event_sequence():
    repo = make_repo(_chain())
    result = repo.materialize()
    assert events(repo.storage, result.run_id) == [
        ("RunStart", None),
        ("StepStart", "first"),
        ("Materialization", "first"),
        ("StepSuccess", "first"),
        ("StepStart", "second"),
        ("Materialization", "second"),
        ("StepSuccess", "second"),
        ("RunSuccess", None),
    ]


def test_events_carry_run_id_and_ordered_timestamps():
    repo = make_repo(_chain())
    result = repo.materialize()
    stored = repo.storage.get_events_for_run(result.run_id)
    assert {e.run_id for e in stored} == {result.run_id}
    assert len({e.id for e in stored}) == len(stored)
    stamps = [e.timestamp for e in stored]
    assert all(isinstance(t, int) for t in stamps)
    assert stamps == sorted(stamps)
    assert all(e.partition_key is None for e in stored)


def test_materialization_events_record_versions():
    repo = make_repo(_chain())
    result = repo.materialize()
    by_key = {
        e.asset_key: e for e in repo.storage.get_events_for_run(result.run_id) if e.event_type == "Materialization"
    }
    assert by_key["first"].data_version is not None
    assert ("first", by_key["first"].data_version) in by_key["second"].input_data_versions


def test_run_record_status_and_times_after_success():
    repo = make_repo(_chain())
    result = repo.materialize()
    record = repo.storage.get_run(result.run_id)
    assert record.status == "Success"
    assert record.end_time is not None
    assert record.end_time >= record.start_time
    assert [r.run_id for r in repo.storage.get_runs(status="Success")] == [result.run_id]


def test_failed_run_event_sequence():
    @rs.Asset
    def source() -> int:
        raise RuntimeError("source unavailable")

    @rs.Asset
    def consumer(source: int) -> int:
        return source

    repo = make_repo([source, consumer])
    result = repo.materialize(raise_on_error=False)
    assert events(repo.storage, result.run_id) == [
        ("RunStart", None),
        ("StepStart", "source"),
        ("StepFailure", "source"),
        ("StepSkipped", "consumer"),
        ("RunFailure", None),
    ]
    failure = final_step_event(repo.storage, result.run_id, "source")
    assert metadata(failure)["rivers/failure_reason"] == "error"
    assert "source unavailable" in metadata(failure)["rivers/error"]
    record = repo.storage.get_run(result.run_id)
    assert record.status == "Failure"
    assert record.end_time is not None


def test_skipped_steps_include_transitive_downstream_and_independent_steps_run():
    @rs.Asset
    def root() -> int:
        raise RuntimeError("root failed")

    @rs.Asset
    def child(root: int) -> int:
        return root

    @rs.Asset
    def grandchild(child: int) -> int:
        return child

    @rs.Asset
    def bystander() -> str:
        return "fine"

    repo = make_repo([root, child, grandchild, bystander])
    result = repo.materialize(raise_on_error=False)
    for skipped in ("child", "grandchild"):
        kinds = [e.event_type for e in step_events(repo.storage, result.run_id, skipped)]
        assert kinds == ["StepSkipped"], (skipped, kinds)
        assert skipped not in result.materialized_assets
    assert [e.event_type for e in step_events(repo.storage, result.run_id, "bystander")] == [
        "StepStart",
        "Materialization",
        "StepSuccess",
    ]
    assert sorted(result.materialized_assets) == ["bystander", "root"]
    assert events(repo.storage, result.run_id)[-1] == ("RunFailure", None)


def test_raising_run_still_ends_with_run_failure():
    @rs.Asset
    def explodes() -> int:
        raise RuntimeError("explodes")

    repo = make_repo([explodes])
    with pytest.raises(ExecutionError):
        repo.materialize(run_id_override="raising")
    assert repo.storage.get_run("raising").status == "Failure"
    kinds = [kind for kind, _ in events(repo.storage, "raising")]
    assert kinds[0] == "RunStart"
    assert kinds[-1] == "RunFailure"
    assert "StepFailure" in kinds


def test_materialization_result_writes_event_without_handler_call():
    handler = RecordingHandler()

    @rs.Asset(io_handler=handler)
    def pushed_elsewhere() -> rs.Materialization:
        return rs.Materialization(metadata={"rows": 3}, data_version="v-42")

    repo = make_repo([pushed_elsewhere])
    result = repo.materialize()
    assert result.success
    assert handler.calls == []
    materializations = [
        e for e in step_events(repo.storage, result.run_id, "pushed_elsewhere") if e.event_type == "Materialization"
    ]
    assert len(materializations) == 1
    assert metadata(materializations[0])["rows"] == "3"
    assert materializations[0].data_version == "v-42"


def test_output_metadata_and_data_version_reach_the_event():
    @rs.Asset
    def described(context: rs.AssetExecutionContext) -> rs.Output:
        context.add_output_metadata({"source": "body", "n": 1})
        return rs.Output(5, metadata={"n": 2}, data_version="dv-1")

    repo = make_repo([described])
    result = repo.materialize()
    event = [e for e in step_events(repo.storage, result.run_id, "described") if e.event_type == "Materialization"][0]
    md = metadata(event)
    assert md["source"] == "body"
    assert md["n"] == "2"
    assert event.data_version == "dv-1"
    assert repo.load_node("described") == 5


def test_step_events_of_in_process_runs_never_interleave():
    @rs.Asset
    def one() -> int:
        return 1

    @rs.Asset
    def two() -> int:
        return 2

    @rs.Asset
    def three() -> int:
        return 3

    repo = make_repo([one, two, three])
    result = repo.materialize()
    step_keys = [key for kind, key in events(repo.storage, result.run_id) if key is not None]
    assert step_keys == ["one"] * 3 + ["two"] * 3 + ["three"] * 3
