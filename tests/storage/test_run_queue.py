"""storage-and-io.md run-queue storage methods: cancellation flags, run outcomes and progress,
``cancel_queued_run`` on runs that are not queued."""

import pytest

import rivers as rs


@pytest.fixture
def two_runs(make_repo, store):
    @rs.Asset
    def queued_asset():
        return 1

    repo = make_repo([queued_asset], storage=store)
    return repo.materialize().run_id, repo.materialize().run_id


def test_request_cancellation_sets_the_flag_only_for_that_run(store, two_runs):
    flagged, untouched = two_runs
    assert store.is_cancelled(flagged) is False

    store.request_cancellation(flagged)

    assert store.is_cancelled(flagged) is True
    assert store.is_cancelled(untouched) is False
    # the flag alone does not change the status
    assert store.get_run(flagged).status == "Success"


def test_is_cancelled_of_unknown_run_is_false(store):
    assert store.is_cancelled("never-created") is False


def test_set_run_outcome_round_trips_progress_and_status(store, two_runs):
    run_id, _ = two_runs

    store.set_run_outcome(run_id, "Failure", 3, 4, message="step exploded")

    assert store.get_run_progress(run_id) == (3, 4)
    run = store.get_run(run_id)
    assert run.status == "Failure"
    assert run.end_time is not None and run.end_time >= run.start_time


@pytest.mark.parametrize("given", ["Cancelled", "Canceled"])
def test_set_run_outcome_stores_canceled_with_one_l(store, two_runs, given):
    run_id, _ = two_runs

    store.set_run_outcome(run_id, given, 1, 2)

    assert store.get_run(run_id).status == "Canceled"
    assert store.get_run_progress(run_id) == (1, 2)


def test_set_run_outcome_success(store, two_runs):
    _, run_id = two_runs

    store.set_run_outcome(run_id, "Success", 4, 4)

    assert store.get_run(run_id).status == "Success"
    assert store.get_run_progress(run_id) == (4, 4)


@pytest.mark.parametrize("bad_status", ["Running", "Done", "success", ""])
def test_set_run_outcome_rejects_unknown_status(store, two_runs, bad_status):
    run_id, _ = two_runs

    with pytest.raises(ValueError):
        store.set_run_outcome(run_id, bad_status, 1, 1)
    assert store.get_run(run_id).status == "Success"


def test_cancel_queued_run_on_a_finished_run_returns_false_and_changes_nothing(store, two_runs):
    run_id, _ = two_runs

    assert store.cancel_queued_run(run_id) is False
    assert store.get_run(run_id).status == "Success"


def test_cancel_queued_run_on_unknown_run_returns_false(store):
    assert store.cancel_queued_run("never-created") is False


def test_queued_runs_are_empty_for_direct_runs(store, two_runs):
    assert store.get_queued_runs() == []
