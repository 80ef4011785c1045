"""Timing and result-reporting helpers shared by every workload.

Standard library only: this module is imported by both the rivers and the
Dagster interpreters.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

#: Prefix of the single stdout line a worker prints. Libraries may print to
#: stdout too, so ``run.py`` looks for this marker instead of parsing the
#: whole stream.
RESULT_MARKER = "BENCH_RESULT "


def time_runs(fn: Callable[[], object], reps: int, warmup: int = 1) -> list[float]:
    """Call ``fn`` ``warmup`` times untimed, then ``reps`` times timed.

    Returns the wall-clock durations in seconds. The warm-up absorbs one-off
    costs (lazy imports, caches, pool start-up) that are not what the workload
    is meant to measure; they are reported separately where they matter.
    The garbage collector is run between samples (outside the timed region) so
    that one sample does not pay for the garbage of the previous one.
    """
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(reps):
        gc.collect()
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def summarize(samples_s: list[float]) -> dict[str, Any]:
    """Median plus spread of a list of samples, in seconds."""
    return {
        "median_s": statistics.median(samples_s),
        "min_s": min(samples_s),
        "max_s": max(samples_s),
        "samples_s": [round(s, 6) for s in samples_s],
    }


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if sys.platform == "darwin":  # macOS reports bytes
        return kib / (1024 * 1024)
    return kib / 1024


@contextmanager
def scratch_dir(label: str) -> Iterator[str]:
    """A fresh temporary directory that is removed afterwards.

    ``RIVERS_BENCH_TMP`` (set by ``run.py``) groups all scratch directories of
    one suite run under one parent so that nothing leaks between workloads.
    """
    parent = os.environ.get("RIVERS_BENCH_TMP") or None
    path = tempfile.mkdtemp(prefix=f"{label}-", dir=parent)
    try:
        yield path
    finally:
        gc.collect()  # drop lingering store handles before deleting their files
        shutil.rmtree(path, ignore_errors=True)


def emit(result: dict[str, Any]) -> None:
    """Print the one machine-readable result line ``run.py`` collects."""
    sys.stdout.flush()
    print(RESULT_MARKER + json.dumps(result), flush=True)


@contextmanager
def surreal_server() -> Iterator[str]:
    """A SurrealDB server (in memory) on a free loopback port; yields its ``ws://`` endpoint.

    The binary is the dev-only server built by ``scripts/dev-server.sh``, found through
    ``RIVERS_SURREAL_SERVER``.
    """
    import socket
    import subprocess

    binary = os.environ.get("RIVERS_SURREAL_SERVER")
    if not binary or not os.path.exists(binary):
        raise RuntimeError("RIVERS_SURREAL_SERVER is not set: run `source scripts/dev-server.sh` first")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = [binary, "start", "--no-banner", "--log", "warn", "--unauthenticated", "--bind", f"127.0.0.1:{port}"]
    process = subprocess.Popen([*args, "memory"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Ready once a WebSocket upgrade of the RPC endpoint succeeds (it answers 503 while
        # the server is still starting, even after the port opens).
        upgrade = (
            b"GET /rpc HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: cml2ZXJzLXJlYWRpbmVzcw==\r\n\r\n"
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
                    probe.sendall(upgrade)
                    if probe.recv(12).endswith(b"101"):
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the SurrealDB dev server did not become ready")
            time.sleep(0.02)
        yield f"ws://127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait()
