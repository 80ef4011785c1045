"""Executor factories and attributes, in-process ordering, Compute
(repository-and-execution.md "rs.Executor", "rs.Compute", R26-R28, R51).
Real subprocess execution with Executor.parallel() is in test_parallel.py."""

import logging
import os
import time
import warnings

import pytest
from exec_helpers import events, make_repo

import rivers as rs

# --------------------------------------------------------------------------- factories (R26, R27)


def test_factories_return_nested_variant_instances():
    in_process = rs.Executor.in_process()
    parallel = rs.Executor.parallel()
    kubernetes = rs.Executor.kubernetes()
    assert isinstance(in_process, rs.Executor.InProcess)
    assert isinstance(parallel, rs.Executor.Parallel)
    assert isinstance(kubernetes, rs.Executor.Kubernetes)
    for executor in (in_process, parallel, kubernetes):
        assert isinstance(executor, rs.Executor)
    assert not isinstance(in_process, rs.Executor.Parallel)
    assert not isinstance(parallel, rs.Executor.InProcess)
    assert not isinstance(kubernetes, rs.Executor.Parallel)


def test_parallel_defaults():
    parallel = rs.Executor.parallel()
    assert parallel.max_workers == os.cpu_count()
    assert parallel.max_workers >= 1
    assert parallel.max_async_concurrent is None


def test_parallel_explicit_values():
    parallel = rs.Executor.parallel(max_workers=3, max_async_concurrent=5)
    assert parallel.max_workers == 3
    assert parallel.max_async_concurrent == 5
    assert rs.Executor.parallel(max_workers=2, max_async_concurrent=5).max_workers == 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_workers": 0},
        {"max_workers": -2},
        {"max_async_concurrent": 0},
        {"max_async_concurrent": -1},
    ],
    ids=["workers-0", "workers-neg", "async-0", "async-neg"],
)
def test_parallel_rejects_values_below_one(kwargs):
    with pytest.raises(ValueError):
        rs.Executor.parallel(**kwargs)


def test_kubernetes_defaults():
    k8s = rs.Executor.kubernetes()
    assert k8s.worker_image is None
    assert k8s.max_concurrent_steps is None
    assert k8s.namespace is None
    assert k8s.service_account == "rivers-executor"
    assert k8s.worker_cpu == "500m"
    assert k8s.worker_memory == "512Mi"


def test_kubernetes_explicit_values():
    k8s = rs.Executor.kubernetes(
        "registry.local/etl:0.4",
        max_concurrent_steps=8,
        namespace="data",
        service_account="etl-runner",
        worker_cpu="2",
        worker_memory="1Gi",
    )
    assert k8s.worker_image == "registry.local/etl:0.4"
    assert k8s.max_concurrent_steps == 8
    assert k8s.namespace == "data"
    assert k8s.service_account == "etl-runner"
    assert k8s.worker_cpu == "2"
    assert k8s.worker_memory == "1Gi"


def test_kubernetes_parameters_after_worker_image_are_keyword_only():
    with pytest.raises(TypeError):
        rs.Executor.kubernetes("registry.local/etl:0.4", 8)


# --------------------------------------------------------------------------- in-process behaviour (R28)


def test_in_process_runs_steps_serially_in_registration_order():
    spans: dict[str, tuple[int, int, int]] = {}

    def make(name):
        def body() -> str:
            start = time.perf_counter_ns()
            total = sum(range(20_000))  # a little work
            spans[name] = (os.getpid(), start, time.perf_counter_ns())
            return f"{name}:{total}"

        body.__name__ = name
        body.__qualname__ = name
        return rs.Asset(body)

    names = ["delta", "charlie", "bravo", "alpha"]
    repo = make_repo([make(n) for n in names])
    result = repo.materialize()
    assert result.success
    starts = [key for kind, key in events(repo.storage, result.run_id) if kind == "StepStart"]
    assert starts == names
    assert {pid for pid, _, _ in spans.values()} == {os.getpid()}
    ordered = sorted(spans.values(), key=lambda span: span[1])
    for (_, _, end), (_, next_start, _) in zip(ordered, ordered[1:], strict=False):
        assert end <= next_start, "in-process steps overlapped"


def test_in_process_step_never_starts_before_its_upstream_finished():
    order: list[str] = []

    @rs.Asset
    def late_registered_child(early_parent: int) -> int:
        order.append("child")
        return early_parent + 1

    @rs.Asset
    def early_parent() -> int:
        order.append("parent")
        return 1

    repo = make_repo([late_registered_child, early_parent])
    result = repo.materialize()
    assert order == ["parent", "child"]
    kinds = events(repo.storage, result.run_id)
    assert kinds.index(("StepSuccess", "early_parent")) < kinds.index(("StepStart", "late_registered_child"))


# --------------------------------------------------------------------------- Compute (R51)


def test_compute_attributes():
    compute = rs.Compute(cpu="250m", memory="6Gi", gpu="1")
    assert (compute.cpu, compute.memory, compute.gpu) == ("250m", "6Gi", "1")
    empty = rs.Compute()
    assert (empty.cpu, empty.memory, empty.gpu) == (None, None, None)


def test_compute_attributes_are_read_only():
    compute = rs.Compute(cpu="1")
    with pytest.raises(AttributeError):
        compute.cpu = "2"


def test_compute_arguments_are_keyword_only():
    with pytest.raises(TypeError):
        rs.Compute("1")


@pytest.mark.parametrize(
    "executor",
    [rs.Executor.in_process, rs.Executor.parallel],
    ids=["in_process", "parallel"],
)
def test_compute_on_local_executor_logs_a_warning_and_changes_nothing(executor, caplog, capfd):
    @rs.Asset(compute=rs.Compute(cpu="1", memory="3Gi"))
    def heavy() -> int:
        return 3

    @rs.Asset
    def light(heavy: int) -> int:
        return heavy + 1

    repo = rs.CodeRepository(assets=[heavy, light], default_executor=executor())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with caplog.at_level(logging.WARNING):
            repo.resolve(storage=rs.Storage.memory())
            result = repo.materialize()
    assert result.success
    assert repo.load_node("heavy") == 3
    assert repo.load_node("light") == 4
    reported = (
        [str(w.message) for w in caught]
        + [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        + [capfd.readouterr().err]
    )
    assert any("compute" in text.lower() for text in reported), reported
