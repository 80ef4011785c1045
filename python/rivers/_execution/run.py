"""One run's Python side: the object the engine calls once per step attempt.

The engine (in the core) decides what runs when, retries and records events; this object turns
a step index into a call of the step body, in this process or in a loky worker.
"""

from __future__ import annotations

import threading
from typing import Any

from rivers._definitions.retry import FailureReason, class_filter
from rivers._execution.capture import StepCapture
from rivers._execution.step import StepSpec, failure_hook_config, run_hooks, run_step_body

# Idle loky workers are kept this long (seconds) so that consecutive runs reuse warm workers.
_WORKER_IDLE_TIMEOUT = 300
_pool_lock = threading.Lock()
_pool: tuple[int, Any] | None = None


def worker_pool(max_workers: int) -> Any:
    """The process pool of the parallel executor (loky's process-wide reusable executor).

    The executor object is cached rather than fetched with ``get_reusable_executor`` per step:
    called from the engine's step threads while jobs are in flight, that call hands back a fresh
    pool (new worker processes) instead of the warm one, which made every step pay a worker
    start-up. It is fetched again only to resize the pool or to replace a broken one.
    """
    global _pool
    with _pool_lock:
        if _pool is not None:
            size, pool = _pool
            if size == max_workers and not (pool._flags.broken or pool._flags.shutdown):
                return pool
        from loky import get_reusable_executor

        pool = get_reusable_executor(max_workers=max_workers, timeout=_WORKER_IDLE_TIMEOUT)
        _pool = (max_workers, pool)
        return pool


def classify(exc: BaseException) -> FailureReason:
    """In-process and parallel failure classification by exception type."""
    if isinstance(exc, MemoryError):
        return FailureReason.OUT_OF_MEMORY
    if isinstance(exc, TimeoutError):
        return FailureReason.TIMEOUT
    if type(exc).__name__ in ("TerminatedWorkerError", "BrokenProcessPool", "ShutdownExecutorError"):
        return FailureReason.INFRASTRUCTURE
    return FailureReason.ERROR


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class RunSession:
    """Executes the steps of one run for the engine."""

    def __init__(self, specs: list[StepSpec], max_workers: int) -> None:
        self._specs = specs
        self._max_workers = max_workers
        self.errors: dict[str, BaseException] = {}

    def run_step(
        self, index: int, step_key: str, attempt: int, executor: str, filter_id: int | None
    ) -> tuple[Any, ...]:
        spec = self._specs[index]
        captured = None
        try:
            if executor == "kubernetes":
                raise RuntimeError(
                    f"step '{step_key}' requests the Kubernetes executor, which needs a cluster; run it with "
                    "Executor.in_process() or Executor.parallel() locally"
                )
            if executor == "parallel" and not spec.asset.is_async:
                status, value, captured = self._in_worker(spec)
                if status == "err":
                    raise value
                rows = value
            else:
                capture = StepCapture()
                try:
                    with capture:
                        rows = run_step_body(spec)
                finally:
                    captured = capture.result()
            return ("ok", rows, captured)
        except Exception as exc:
            self.errors[step_key] = exc
            matched = isinstance(exc, class_filter(filter_id))
            return ("err", describe(exc), classify(exc).value, matched, captured)

    def _in_worker(self, spec: StepSpec) -> tuple[Any, ...]:
        from rivers._execution.worker import build_payload, execute

        return worker_pool(self._max_workers).submit(execute, build_payload(spec)).result()

    def on_final_failure(self, index: int, step_key: str, executor: str, message: str) -> None:
        """Runs failure hooks where the step body ran (R46): a worker for sync steps of the
        parallel executor, this process otherwise."""
        spec = self._specs[index]
        if executor == "parallel" and not spec.asset.is_async:
            from rivers._execution.worker import build_payload, run_failure_hooks

            worker_pool(self._max_workers).submit(run_failure_hooks, build_payload(spec), message).result()
            return
        run_hooks(spec, "failure", error=message, config=failure_hook_config(spec))
