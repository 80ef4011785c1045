"""RetryPolicy, Backoff, RetryOn, FailureReason and retry precedence
(repository-and-execution.md "Retries", R33-R37, R49)."""

from collections.abc import Callable

import pytest
from exec_helpers import final_step_event, make_repo, metadata, retry_events, step_event_types

import rivers as rs
from rivers.exceptions import ConfigurationError, ExecutionError


def flaky(name: str, failures: int | None, exc: Callable[[], BaseException], **asset_kwargs):
    """An asset that raises ``exc()`` on its first ``failures`` attempts (always if None).

    Returns ``(attempts, asset)``; ``attempts`` grows by one per executed attempt.
    """
    attempts: list[int] = []

    def body() -> int:
        attempts.append(len(attempts) + 1)
        if failures is None or len(attempts) <= failures:
            raise exc()
        return len(attempts)

    body.__name__ = name
    body.__qualname__ = name
    return attempts, rs.Asset(**asset_kwargs)(body)


def boom() -> BaseException:
    return ValueError("boom")


# --------------------------------------------------------------------------- construction and validation


def test_retry_policy_defaults_and_values():
    assert rs.RetryPolicy().max_retries == 1
    assert rs.RetryPolicy(3).max_retries == 3
    assert rs.RetryPolicy(max_retries=0).max_retries == 0
    rs.RetryPolicy(
        max_retries=4,
        backoff=rs.Backoff.exponential(0.5, factor=3.0, max_delay=20.0, jitter=0.1),
        retry_on=[TimeoutError, rs.FailureReason.INFRASTRUCTURE],
    )
    rs.RetryPolicy(retry_on=rs.RetryOn.TRANSIENT)
    rs.RetryPolicy(retry_on=rs.RetryOn.ALL)


def test_retry_policy_rejects_negative_max_retries():
    with pytest.raises(ValueError):
        rs.RetryPolicy(max_retries=-1)


@pytest.mark.parametrize("entry", ["ValueError", int, 3, None], ids=["str", "non-exception-class", "int", "none"])
def test_retry_policy_rejects_bad_retry_on_entries(entry):
    with pytest.raises(TypeError):
        rs.RetryPolicy(retry_on=[ValueError, entry])


def test_backoff_factories_accept_valid_arguments():
    rs.Backoff.constant(0.2)
    rs.Backoff.constant(0.0, jitter=1.0, max_delay=5.0)
    rs.Backoff.linear(1.0, initial=0.5, jitter=0.0, max_delay=10.0)
    rs.Backoff.exponential(0.5, factor=2.0, jitter=0.25, max_delay=30.0)
    rs.Backoff.fixed([1, 5, 30], jitter=0.1)


@pytest.mark.parametrize(
    "build",
    [
        lambda: rs.Backoff.constant(-1.0),
        lambda: rs.Backoff.constant(1.0, jitter=1.5),
        lambda: rs.Backoff.constant(1.0, jitter=-0.1),
        lambda: rs.Backoff.constant(1.0, max_delay=-2.0),
        lambda: rs.Backoff.linear(-1.0),
        lambda: rs.Backoff.linear(1.0, initial=-0.5),
        lambda: rs.Backoff.exponential(-0.5),
        lambda: rs.Backoff.exponential(0.5, factor=0.0),
        lambda: rs.Backoff.exponential(0.5, factor=-2.0),
        lambda: rs.Backoff.exponential(0.5, jitter=2.0),
        lambda: rs.Backoff.fixed([]),
        lambda: rs.Backoff.fixed([1.0, -1.0]),
        lambda: rs.Backoff.fixed([1.0], jitter=1.01),
    ],
    ids=[
        "constant-negative",
        "constant-jitter-high",
        "constant-jitter-negative",
        "constant-max-delay-negative",
        "linear-negative-step",
        "linear-negative-initial",
        "exponential-negative-initial",
        "exponential-factor-zero",
        "exponential-factor-negative",
        "exponential-jitter-high",
        "fixed-empty",
        "fixed-negative-entry",
        "fixed-jitter-high",
    ],
)
def test_backoff_rejects_invalid_arguments(build):
    with pytest.raises(ValueError):
        build()


def test_retry_on_and_failure_reason_members_exist():
    assert rs.RetryOn.ALL is not rs.RetryOn.TRANSIENT
    members = {
        rs.FailureReason.ERROR,
        rs.FailureReason.OUT_OF_MEMORY,
        rs.FailureReason.TIMEOUT,
        rs.FailureReason.INFRASTRUCTURE,
        rs.FailureReason.CANCELED,
    }
    assert len(members) == 5


# --------------------------------------------------------------------------- attempts and events (R33, R34, R36, R49)


def test_fails_twice_then_succeeds_with_two_retries():
    attempts, asset = flaky("wobbly", 2, boom, retry=rs.RetryPolicy(max_retries=2))
    downstream_calls: list[int] = []

    @rs.Asset
    def after_wobbly(wobbly: int) -> int:
        downstream_calls.append(wobbly)
        return wobbly * 10

    repo = make_repo([asset, after_wobbly])
    result = repo.materialize()
    assert result.success
    assert attempts == [1, 2, 3]
    assert step_event_types(repo.storage, result.run_id, "wobbly") == [
        "StepStart",
        "StepRetry",
        "StepRetry",
        "Materialization",
        "StepSuccess",
    ]
    retries = retry_events(repo.storage, result.run_id, "wobbly")
    assert [r["rivers/attempt"] for r in retries] == ["1", "2"]
    assert {r["rivers/failure_reason"] for r in retries} == {"error"}
    assert downstream_calls == [3]
    assert repo.load_node("after_wobbly") == 30


def test_exhausted_retries_fail_after_max_retries_plus_one_attempts():
    attempts, asset = flaky("stubborn", None, boom, retry=rs.RetryPolicy(max_retries=1))
    repo = make_repo([asset])
    result = repo.materialize(raise_on_error=False)
    assert result.success is False
    assert attempts == [1, 2]
    assert step_event_types(repo.storage, result.run_id, "stubborn") == ["StepStart", "StepRetry", "StepFailure"]
    failure = final_step_event(repo.storage, result.run_id, "stubborn")
    assert metadata(failure)["rivers/failure_reason"] == "error"
    assert "boom" in metadata(failure)["rivers/error"]
    assert result.failed_assets[0][0] == "stubborn"
    assert "boom" in result.failed_assets[0][1]


def test_exhausted_retries_raise_execution_error():
    attempts, asset = flaky("stubborn", None, boom, retry=rs.RetryPolicy(max_retries=2))
    repo = make_repo([asset])
    with pytest.raises(ExecutionError, match="boom"):
        repo.materialize()
    assert attempts == [1, 2, 3]


def test_retry_without_backoff_reports_zero_delay():
    _, asset = flaky("instant", 1, boom, retry=rs.RetryPolicy(max_retries=1))
    repo = make_repo([asset])
    result = repo.materialize()
    retries = retry_events(repo.storage, result.run_id, "instant")
    assert len(retries) == 1
    assert int(retries[0]["rivers/next_delay_ms"]) == 0
    assert "rivers/next_compute" not in retries[0]


def test_no_policy_means_no_retry():
    attempts, asset = flaky("once_only", None, boom)
    repo = make_repo([asset])
    result = repo.materialize(raise_on_error=False)
    assert attempts == [1]
    assert step_event_types(repo.storage, result.run_id, "once_only") == ["StepStart", "StepFailure"]


# --------------------------------------------------------------------------- backoff delays (StepRetry rivers/next_delay_ms)


@pytest.mark.parametrize(
    ("backoff", "max_retries", "expected_ms"),
    [
        (rs.Backoff.constant(0.02), 2, [20, 20]),
        (rs.Backoff.linear(0.01), 2, [10, 20]),
        (rs.Backoff.linear(0.01, initial=0.02), 2, [30, 40]),
        (rs.Backoff.exponential(0.01, factor=3.0), 3, [10, 30, 90]),
        (rs.Backoff.exponential(0.01, factor=10.0, max_delay=0.05), 3, [10, 50, 50]),
        (rs.Backoff.constant(0.08, max_delay=0.03), 1, [30]),
        (rs.Backoff.fixed([0.01, 0.05]), 3, [10, 50, 50]),
    ],
    ids=["constant", "linear", "linear-initial", "exponential", "exponential-capped", "constant-capped", "fixed"],
)
def test_backoff_delays_are_reported_on_step_retry(backoff, max_retries, expected_ms):
    attempts, asset = flaky("backing_off", None, boom, retry=rs.RetryPolicy(max_retries=max_retries, backoff=backoff))
    repo = make_repo([asset])
    result = repo.materialize(raise_on_error=False)
    assert len(attempts) == max_retries + 1
    retries = retry_events(repo.storage, result.run_id, "backing_off")
    assert [r["rivers/attempt"] for r in retries] == [str(n) for n in range(1, max_retries + 1)]
    delays = [int(r["rivers/next_delay_ms"]) for r in retries]
    # +-1 ms: float seconds -> integer milliseconds rounding
    assert len(delays) == len(expected_ms)
    for got, want in zip(delays, expected_ms, strict=True):
        assert abs(got - want) <= 1, (delays, expected_ms)


def test_backoff_jitter_stays_within_bounds():
    _, asset = flaky(
        "jittery",
        None,
        boom,
        retry=rs.RetryPolicy(max_retries=3, backoff=rs.Backoff.constant(0.04, jitter=0.5)),
    )
    repo = make_repo([asset])
    result = repo.materialize(raise_on_error=False)
    delays = [int(r["rivers/next_delay_ms"]) for r in retry_events(repo.storage, result.run_id, "jittery")]
    assert len(delays) == 3
    assert all(19 <= d <= 61 for d in delays), delays


# --------------------------------------------------------------------------- retry_on and classification (R35)


def test_transient_does_not_retry_value_error():
    attempts, asset = flaky("plain_bug", None, boom, retry=rs.RetryPolicy(max_retries=3, retry_on=rs.RetryOn.TRANSIENT))
    repo = make_repo([asset])
    result = repo.materialize(raise_on_error=False)
    assert attempts == [1]
    assert retry_events(repo.storage, result.run_id, "plain_bug") == []
    failure = final_step_event(repo.storage, result.run_id, "plain_bug")
    assert failure.event_type == "StepFailure"
    assert metadata(failure)["rivers/failure_reason"] == "error"


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (lambda: TimeoutError("deadline exceeded"), "timeout"),
        (lambda: MemoryError("simulated oom"), "out_of_memory"),
    ],
    ids=["timeout", "out_of_memory"],
)
def test_transient_retries_timeout_and_memory_errors(exc, reason):
    attempts, asset = flaky(
        "resource_bound", 1, exc, retry=rs.RetryPolicy(max_retries=2, retry_on=rs.RetryOn.TRANSIENT)
    )
    repo = make_repo([asset])
    result = repo.materialize()
    assert result.success
    assert attempts == [1, 2]
    retries = retry_events(repo.storage, result.run_id, "resource_bound")
    assert [(r["rivers/attempt"], r["rivers/failure_reason"]) for r in retries] == [("1", reason)]


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (lambda: TimeoutError("deadline exceeded"), "timeout"),
        (lambda: MemoryError("simulated oom"), "out_of_memory"),
        (lambda: KeyError("missing"), "error"),
    ],
    ids=["timeout", "out_of_memory", "error"],
)
def test_failure_reason_classification_on_step_failure(exc, reason):
    _, asset = flaky("classified", None, exc)
    repo = make_repo([asset])
    result = repo.materialize(raise_on_error=False)
    failure = final_step_event(repo.storage, result.run_id, "classified")
    assert failure.event_type == "StepFailure"
    assert metadata(failure)["rivers/failure_reason"] == reason


def test_connection_error_allow_list_retries_connection_reset():
    attempts, asset = flaky(
        "socket_user",
        1,
        lambda: ConnectionResetError("peer reset"),
        retry=rs.RetryPolicy(max_retries=2, retry_on=[ConnectionError]),
    )
    repo = make_repo([asset])
    result = repo.materialize()
    assert result.success
    assert attempts == [1, 2]
    assert len(retry_events(repo.storage, result.run_id, "socket_user")) == 1


def test_allow_lists_are_kept_by_their_policies_not_by_a_registry():
    import gc
    import pickle

    from rivers._definitions.retry import class_filter

    dropped = rs.RetryPolicy(max_retries=2, retry_on=[ConnectionError])
    filter_id = dropped._filter_id
    assert class_filter(filter_id) == (ConnectionError,)
    del dropped
    gc.collect()
    assert class_filter(filter_id) == (), "a dropped policy's allow-list is not kept"

    # A copy of a policy whose original is gone still retries what its list allows.
    copy = pickle.loads(pickle.dumps(rs.RetryPolicy(max_retries=2, retry_on=[ConnectionError])))
    gc.collect()
    attempts, asset = flaky("copied", 1, lambda: ConnectionResetError("peer reset"), retry=copy)
    result = make_repo([asset]).materialize()
    assert result.success and attempts == [1, 2]


def test_allow_list_does_not_retry_unlisted_exception():
    attempts, asset = flaky("picky", None, boom, retry=rs.RetryPolicy(max_retries=2, retry_on=[ConnectionError]))
    repo = make_repo([asset])
    result = repo.materialize(raise_on_error=False)
    assert attempts == [1]
    assert retry_events(repo.storage, result.run_id, "picky") == []


def test_allow_list_with_failure_reason_entry():
    attempts, asset = flaky(
        "slow_api",
        1,
        lambda: TimeoutError("too slow"),
        retry=rs.RetryPolicy(max_retries=1, retry_on=[rs.FailureReason.TIMEOUT]),
    )
    other_attempts, other = flaky(
        "slow_api_bug", None, boom, retry=rs.RetryPolicy(max_retries=1, retry_on=[rs.FailureReason.TIMEOUT])
    )
    repo = make_repo([asset, other])
    result = repo.materialize(raise_on_error=False)
    assert attempts == [1, 2]
    assert other_attempts == [1]
    assert [name for name, _ in result.failed_assets] == ["slow_api_bug"]


def test_retry_on_all_retries_ordinary_errors():
    attempts, asset = flaky("any_error", 1, boom, retry=rs.RetryPolicy(max_retries=1, retry_on=rs.RetryOn.ALL))
    repo = make_repo([asset])
    assert repo.materialize().success
    assert attempts == [1, 2]


# --------------------------------------------------------------------------- precedence (R37)


def test_default_retry_policy_applies_without_other_policies():
    attempts, asset = flaky("defaulted", None, boom)
    repo = make_repo([asset], default_retry_policy=rs.RetryPolicy(max_retries=2))
    repo.materialize(raise_on_error=False)
    assert attempts == [1, 2, 3]


def test_materialize_retry_beats_default_retry_policy():
    attempts, asset = flaky("run_level", None, boom)
    repo = make_repo([asset], default_retry_policy=rs.RetryPolicy(max_retries=3))
    repo.materialize(raise_on_error=False, retry=rs.RetryPolicy(max_retries=1))
    assert attempts == [1, 2]


def test_node_policy_beats_materialize_retry():
    attempts, asset = flaky("node_level", None, boom, retry=rs.RetryPolicy(max_retries=0))
    repo = make_repo([asset], default_retry_policy=rs.RetryPolicy(max_retries=3))
    repo.materialize(raise_on_error=False, retry=rs.RetryPolicy(max_retries=2))
    assert attempts == [1]


def test_nearest_policy_replaces_the_whole_policy():
    # node policy: many retries but only for transient failures; the run-level
    # policy would retry ValueError, but fields are never merged
    attempts, asset = flaky(
        "whole_policy", None, boom, retry=rs.RetryPolicy(max_retries=3, retry_on=rs.RetryOn.TRANSIENT)
    )
    repo = make_repo([asset])
    repo.materialize(raise_on_error=False, retry=rs.RetryPolicy(max_retries=3, retry_on=rs.RetryOn.ALL))
    assert attempts == [1]


def test_job_retry_beats_default_and_node_beats_job():
    job_attempts, plain = flaky("job_plain", None, boom)
    node_attempts, own = flaky("job_own", None, boom, retry=rs.RetryPolicy(max_retries=0))
    job = rs.Job(name="retrying", assets=[plain, own], retry=rs.RetryPolicy(max_retries=1))
    make_repo([plain, own], jobs=[job], default_retry_policy=rs.RetryPolicy(max_retries=3))
    result = job.execute(raise_on_error=False)
    assert job_attempts == [1, 2]
    assert node_attempts == [1]
    assert sorted(name for name, _ in result.failed_assets) == ["job_own", "job_plain"]


def test_named_policies_at_every_site():
    retries = {"once": rs.RetryPolicy(max_retries=1), "twice": rs.RetryPolicy(max_retries=2)}
    node_attempts, by_node = flaky("named_node", None, boom, retry="twice")
    run_attempts, by_run = flaky("named_run", None, boom)
    repo = make_repo([by_node, by_run], retries=retries, default_retry_policy="twice")
    repo.materialize(raise_on_error=False, retry="once")
    assert node_attempts == [1, 2, 3]
    assert run_attempts == [1, 2]


def test_named_default_retry_policy():
    attempts, asset = flaky("named_default", None, boom)
    repo = make_repo([asset], retries={"twice": rs.RetryPolicy(max_retries=2)}, default_retry_policy="twice")
    repo.materialize(raise_on_error=False)
    assert attempts == [1, 2, 3]


def test_named_job_retry():
    attempts, asset = flaky("named_job", None, boom)
    job = rs.Job(name="named", assets=[asset], retry="once")
    make_repo([asset], jobs=[job], retries={"once": rs.RetryPolicy(max_retries=1)})
    job.execute(raise_on_error=False)
    assert attempts == [1, 2]


def test_unknown_materialize_retry_name_raises_before_running():
    attempts, asset = flaky("never_run", None, boom)
    repo = make_repo([asset], retries={"once": rs.RetryPolicy(max_retries=1)})
    with pytest.raises(ConfigurationError):
        repo.materialize(retry="nope")
    assert attempts == []


def test_unknown_job_retry_name_is_a_configuration_error():
    _, asset = flaky("job_asset", None, boom)
    repo = rs.CodeRepository(
        assets=[asset],
        jobs=[rs.Job(name="bad_retry", assets=[asset], retry="nope")],
        retries={"once": rs.RetryPolicy(max_retries=1)},
    )
    with pytest.raises(ConfigurationError, match="once"):
        repo.validate()
    with pytest.raises(ConfigurationError, match="once"):
        repo.resolve(storage=rs.Storage.memory())


def test_unknown_node_retry_name_fails_at_resolve_listing_names():
    _, asset = flaky("node_asset", None, boom, retry="nope")
    repo = rs.CodeRepository(
        assets=[asset],
        retries={"once": rs.RetryPolicy(max_retries=1), "twice": rs.RetryPolicy(max_retries=2)},
    )
    with pytest.raises(ConfigurationError) as excinfo:
        repo.resolve(storage=rs.Storage.memory())
    assert "once" in str(excinfo.value)
    assert "twice" in str(excinfo.value)
