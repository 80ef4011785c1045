"""``AutomationDaemon``: construction errors, non-blocking ``start``, draining ``stop``, and
``CodeRepository.shutdown()`` stopping it (automation-and-concurrency.md, R65)."""

import time

import pytest

import rivers as rs
from rivers._core import AutomationDaemon

from .conftest import orders, wait_for


def test_start_returns_at_once_and_stop_ends_every_loop(daemon_repo):
    calls = []

    @rs.Sensor(minimum_interval="50ms", default_status=rs.SensorStatus.Running)
    def ticking(context):
        calls.append(context.cursor)
        return rs.SkipReason("idle")

    repo, store, daemon = daemon_repo(sensors=[ticking])
    daemon.start()
    assert daemon.running
    wait_for(lambda: len(calls) >= 2, "two evaluations")
    daemon.stop()
    assert not daemon.running
    stored = len(store.get_ticks("ticking"))
    assert stored >= 2, "stop() writes the pending ticks"
    evaluated = len(calls)
    time.sleep(0.3)
    assert len(calls) == evaluated and len(store.get_ticks("ticking")) == stored, "nothing ticks after stop()"


def test_stop_before_start_and_twice_is_a_no_op(daemon_repo):
    _, _, daemon = daemon_repo()
    daemon.stop()
    daemon.start()
    daemon.stop()
    daemon.stop()


def test_start_on_an_unresolved_repository_is_a_runtime_error():
    repo = rs.CodeRepository(assets=[orders])
    daemon = AutomationDaemon(repo, rs.Storage.memory())
    with pytest.raises(RuntimeError, match="resolve"):
        daemon.start()


def test_an_unparsable_condition_eval_interval_is_a_value_error(daemon_repo):
    repo, store, _ = daemon_repo()
    with pytest.raises(ValueError, match="condition_eval_interval"):
        AutomationDaemon(repo, store, condition_eval_interval="soon")


def test_repository_shutdown_stops_its_daemon(daemon_repo):
    calls = []

    @rs.Sensor(minimum_interval="50ms", default_status=rs.SensorStatus.Running)
    def watched(context):
        calls.append(1)

    repo, _, daemon = daemon_repo(sensors=[watched])
    daemon.start()
    wait_for(lambda: calls, "an evaluation")
    repo.shutdown()
    assert not daemon.running


def test_a_kubernetes_run_backend_is_refused_at_start(daemon_repo):
    _, _, daemon = daemon_repo(run_backend=rs.RunBackendConfig.kubernetes("image:1"))
    with pytest.raises(RuntimeError, match="RunBackendConfig.local"):
        daemon.start()


def test_run_queue_and_backend_parameters_are_type_checked():
    with pytest.raises(TypeError, match="RunQueueConfig"):
        rs.CodeRepository(assets=[orders], run_queue={"max_concurrent_runs": 1})
    with pytest.raises(TypeError, match="RunBackendConfig"):
        rs.CodeRepository(assets=[orders], run_backend="local")
