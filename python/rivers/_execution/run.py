"""One run's Python side: the object the engine calls once per step attempt.

The engine (in the core) decides what runs when, retries and records events; this object turns
a step request into a call of the step body: in this process, in a loky worker, or as a
coroutine on the process's event loop.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rivers import _core
from rivers._definitions.retry import FailureReason, class_filter
from rivers._execution.capture import Captured, StepCapture
from rivers._execution.step import (
    Persisted,
    StepSpec,
    run_async_step_body,
    run_failure_hooks,
    run_step_body,
)

if TYPE_CHECKING:
    import asyncio

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


def _refuse_kubernetes(request: _core.StepRequest) -> None:
    if request.executor == "kubernetes":
        raise RuntimeError(
            f"step '{request.step_key}' requests the Kubernetes executor, which needs a cluster; run it "
            "with Executor.in_process() or Executor.parallel() locally"
        )


def in_worker(request: _core.StepRequest) -> bool:
    """Whether a sync step runs in a loky worker: steps of the parallel executor do, except
    a ``collect_stream()`` consumer reading its instances live, whose feed is in this process."""
    return request.executor == "parallel" and not request.reads_live


def core_materializations(persisted: list[Persisted]) -> list[_core.StepMaterialization]:
    return [_core.StepMaterialization(p.asset_key, p.metadata, p.data_version, p.code_version) for p in persisted]


def succeeded(
    persisted: list[Persisted], captured: Captured | None, failed_partitions: list[tuple[str, str]]
) -> _core.StepSucceeded:
    return _core.StepSucceeded(
        core_materializations(persisted), core_captured(captured), failed_partitions=failed_partitions
    )


def core_captured(captured: Captured | None) -> _core.CapturedOutput | None:
    if captured is None:
        return None
    return _core.CapturedOutput(stdout=captured.stdout, stderr=captured.stderr, logs=captured.logs)


# What a worker returns for a step: what it persisted, the exception it raised (if any), its
# captured output, and the partitions its body marked failed.
WorkerResult = tuple[list[Persisted], BaseException | None, "Captured | None", list[tuple[str, str]]]


class RunSession:
    """Executes the steps of one run for the engine. Step specs are built from the request the
    engine sends (node name, step key), when the step first runs."""

    def __init__(self, build_spec: Callable[[_core.StepRequest], StepSpec], max_workers: int) -> None:
        self._build_spec = build_spec
        self._specs: dict[str, StepSpec] = {}
        self._max_workers = max_workers
        self.errors: dict[str, BaseException] = {}
        # Tasks of the async steps running now; touched only on the event loop's thread.
        self._async_tasks: set[asyncio.Task[Any]] = set()
        self._cancelled = False

    def _spec(self, request: _core.StepRequest) -> StepSpec:
        spec = self._specs.get(request.step_key)
        if spec is None:
            spec = self._specs[request.step_key] = self._build_spec(request)
        return spec

    def _failed(
        self,
        request: _core.StepRequest,
        exc: Exception,
        captured: Captured | None,
        persisted: list[Persisted] | None = None,
    ) -> _core.StepFailed:
        self.errors[request.step_key] = exc
        matched = isinstance(exc, class_filter(request.retry_class_filter))
        if persisted is None:
            spec = self._specs.get(request.step_key)
            persisted = spec.persisted if spec is not None else []
        return _core.StepFailed(
            describe(exc), classify(exc).value, matched, core_captured(captured), core_materializations(persisted)
        )

    def run_step(self, request: _core.StepRequest) -> _core.StepSucceeded | _core.StepFailed:
        captured = None
        try:
            spec = self._spec(request)
            _refuse_kubernetes(request)
            if spec.fan_out is not None:
                return _core.StepSucceeded([], None, spec.fan_out)
            if in_worker(request):
                persisted, error, captured, failed_partitions = self._in_worker(spec)
                if error is not None:
                    return self._failed(request, error, captured, persisted)  # type: ignore[arg-type]
                return succeeded(persisted, captured, failed_partitions)
            capture = StepCapture()
            try:
                with capture:
                    persisted = run_step_body(spec)
            finally:
                captured = capture.result()
            return succeeded(persisted, captured, spec.failed_partitions)
        except Exception as exc:
            return self._failed(request, exc, captured)

    async def run_async_step(self, request: _core.StepRequest) -> _core.StepSucceeded | _core.StepFailed:
        """The coroutine of an ``async def`` step, awaited by the engine on the process's one
        event loop (``rivers._execution.coroutines``). Cancelling the run cancels it."""
        import asyncio  # loaded with the first async step (see coroutines)

        capture = StepCapture()
        task = asyncio.current_task()
        if task is not None:
            self._async_tasks.add(task)
        try:
            _refuse_kubernetes(request)
            if self._cancelled:
                raise asyncio.CancelledError
            spec = self._spec(request)
            if spec.fan_out is not None:
                return _core.StepSucceeded([], None, spec.fan_out)
            with capture:
                persisted = await run_async_step_body(spec)
            return succeeded(persisted, capture.result(), spec.failed_partitions)
        except asyncio.CancelledError as exc:
            if not self._cancelled:
                # Cancelled by something else than the run (a library, the step itself): an
                # ordinary failure, which its retry policy may retry.
                return self._failed(request, RuntimeError(f"the step was cancelled: {describe(exc)}"), capture.result())
            message = f"step '{request.step_key}' was interrupted: its run was cancelled"
            return _core.StepFailed(message, FailureReason.CANCELED.value, False, core_captured(capture.result()))
        except Exception as exc:
            return self._failed(request, exc, capture.result())
        finally:
            self._async_tasks.discard(task)  # type: ignore[arg-type]

    def cancel_async_steps(self) -> None:
        """Called by the engine once when the run is cancelled: interrupts the async steps
        that are running (sync steps finish, cancellation being cooperative)."""
        self._cancelled = True
        from rivers._execution import coroutines

        loop = coroutines.running_loop()
        if loop is None:  # no async step ever ran in this process
            return

        def cancel_all() -> None:
            for task in list(self._async_tasks):
                task.cancel()

        loop.call_soon_threadsafe(cancel_all)

    def _in_worker(self, spec: StepSpec) -> WorkerResult:
        from rivers._execution.worker import build_payload, execute

        result: WorkerResult = worker_pool(self._max_workers).submit(execute, build_payload(spec)).result()
        return result

    def on_final_failure(self, request: _core.StepRequest, message: str) -> None:
        """Runs failure hooks where the step body ran (R46): a worker for sync steps of the
        parallel executor, this process otherwise."""
        try:
            spec = self._spec(request)
        except Exception as exc:  # what failed the step; its hooks cannot be bound
            print(
                f"rivers: the failure hooks of step '{request.step_key}' did not run: {describe(exc)}",
                file=sys.stderr,
            )
            return
        if in_worker(request) and not request.is_async:
            from rivers._execution.worker import build_payload, run_failure_hooks_in_worker

            worker_pool(self._max_workers).submit(run_failure_hooks_in_worker, build_payload(spec), message).result()
            return
        run_failure_hooks(spec, message)
