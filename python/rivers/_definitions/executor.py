"""Executors: how the steps of a plan are dispatched."""

from __future__ import annotations

import os
from typing import ClassVar


class Executor:
    """Execution strategy. Build one with ``Executor.in_process()``, ``Executor.parallel()`` or
    ``Executor.kubernetes()``; the nested classes allow ``isinstance`` checks."""

    kind: str = ""

    def __init__(self) -> None:
        raise TypeError("build executors with Executor.in_process(), Executor.parallel() or Executor.kubernetes()")

    # The variant classes are defined below and attached under these names.
    InProcess: ClassVar[type[_InProcess]]
    Parallel: ClassVar[type[_Parallel]]
    Kubernetes: ClassVar[type[_Kubernetes]]

    @staticmethod
    def in_process() -> _InProcess:
        """Every step serially in the calling process."""
        return object.__new__(_InProcess)

    @staticmethod
    def parallel(max_workers: int | None = None, max_async_concurrent: int | None = None) -> _Parallel:
        """Sync steps in a loky subprocess pool, async steps as concurrent event-loop tasks."""
        for field, value in (("max_workers", max_workers), ("max_async_concurrent", max_async_concurrent)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"Executor.parallel({field}={value!r}): must be an integer >= 1 or None")
        executor = object.__new__(_Parallel)
        executor.max_workers = max_workers if max_workers is not None else (os.cpu_count() or 1)
        executor.max_async_concurrent = max_async_concurrent
        return executor

    @staticmethod
    def kubernetes(
        worker_image: str | None = None,
        *,
        max_concurrent_steps: int | None = None,
        namespace: str | None = None,
        service_account: str = "rivers-executor",
        worker_cpu: str = "500m",
        worker_memory: str = "512Mi",
    ) -> _Kubernetes:
        """One Kubernetes pod per step."""
        if max_concurrent_steps is not None and (not isinstance(max_concurrent_steps, int) or max_concurrent_steps < 1):
            raise ValueError(
                f"Executor.kubernetes(max_concurrent_steps={max_concurrent_steps!r}): must be >= 1 or None"
            )
        executor = object.__new__(_Kubernetes)
        executor.worker_image = worker_image
        executor.max_concurrent_steps = max_concurrent_steps
        executor.namespace = namespace
        executor.service_account = service_account
        executor.worker_cpu = worker_cpu
        executor.worker_memory = worker_memory
        return executor


class _InProcess(Executor):
    kind = "in_process"

    def __repr__(self) -> str:
        return "Executor.in_process()"


class _Parallel(Executor):
    kind = "parallel"
    max_workers: int
    max_async_concurrent: int | None

    def __repr__(self) -> str:
        return f"Executor.parallel(max_workers={self.max_workers}, max_async_concurrent={self.max_async_concurrent})"


class _Kubernetes(Executor):
    kind = "kubernetes"
    worker_image: str | None
    max_concurrent_steps: int | None
    namespace: str | None
    service_account: str
    worker_cpu: str
    worker_memory: str

    def __repr__(self) -> str:
        return f"Executor.kubernetes(worker_image={self.worker_image!r})"


_VARIANTS: tuple[tuple[str, type[Executor]], ...] = (
    ("InProcess", _InProcess),
    ("Parallel", _Parallel),
    ("Kubernetes", _Kubernetes),
)
for _name, _cls in _VARIANTS:
    _cls.__name__ = _name
    _cls.__qualname__ = f"Executor.{_name}"
    setattr(Executor, _name, _cls)
