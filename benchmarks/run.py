"""Benchmark rivers against Dagster on the same workloads, side by side.

Every (framework, workload) pair runs in its own subprocess of that framework's
interpreter (see ``worker.py``); this script only orchestrates, collects the
JSON result lines, prints a comparison table and writes
``benchmarks/results/latest.json``. It needs nothing beyond the standard
library, so any Python 3.10+ can run it.

Usage: python benchmarks/run.py [--quick] [--only WORKLOAD[,WORKLOAD...]]
                                [--skip-dagster] [--skip-rivers]

Interpreters:
  rivers   $RIVERS_PYTHON, default <repo>/.venv/bin/python
  dagster  $DAGSTER_PYTHON, default $DAGSTER_VENV/bin/python, default
           ~/.cache/rivers-bench/dagster-venv/bin/python
           (created by benchmarks/setup_dagster.sh)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
LOG_DIR = RESULTS_DIR / "logs"
RESULT_MARKER = "BENCH_RESULT "  # keep in sync with workloads/common.py

#: Generous per-subprocess limit: the slowest Dagster workloads take a few
#: minutes on a 2-core machine; anything beyond this is a hang.
WORKER_TIMEOUT_S = 1800
IMPLS = ("rivers", "dagster")


@dataclass(frozen=True)
class Row:
    """One line of the comparison table: a metric of a workload.

    ``target`` is an upper bound for the rivers figure (``None``: no target).
    For every metric lower is better, so ``dagster / rivers`` > 1 means rivers
    is ahead by that factor.
    """

    workload: str
    metric: str
    label: str
    unit: str
    target: float | None
    digits: int


ROWS = (
    Row("layered_memory", "ms_per_step", "200-asset DAG, memory storage", "ms/step", 0.15, 3),
    Row("layered_embedded", "ms_per_step", "200-asset DAG, embedded storage", "ms/step", 0.3, 3),
    Row("layered_remote", "ms_per_step", "200-asset DAG, SurrealDB server", "ms/step", 1.0, 3),
    Row("layered_history", "ratio", "per-step cost after 10,000 earlier runs / before (embedded)", "x", 1.10, 2),
    Row("validate_5k", "validate_ms", "validate(), 5,000 assets", "ms", 20.0, 1),
    Row("validate_5k", "construct_resolve_ms", "construct + resolve, 5,000 assets", "ms", 300.0, 1),
    Row("parallel_sleep", "ratio_to_ideal", "40 x 50 ms sleeps, 2 workers", "x ideal", 1.10, 2),
    Row("parallel_sleep", "first_run_ratio", "  first run incl. pool start-up", "x ideal", None, 2),
    Row("selection_5k", "ratio", "1-asset run: 5,000-asset repo / 11-asset repo", "x", 1.2, 2),
    Row("import", "wall_ms", "cold `python -c 'import X'`", "ms", 150.0, 1),
    Row("peak_memory", "peak_rss_mb", "peak RSS, 200-asset run", "MiB", None, 1),
    Row("fan_out", "ms_per_instance", "fan-out map+collect, per instance", "ms", 0.15, 3),
    Row("fan_out", "peak_rss_mb", "  peak RSS of the fan-out run", "MiB", None, 1),
    Row("multi_subset", "ms_per_output", "50-output multi-asset, 5 selected", "ms/output", 0.15, 3),
    Row("validate_graphs", "validate_ms", "validate(), 1,000 graph assets x 5 tasks", "ms", 10.0, 1),
    Row("partition_keys", "enumerate_s", "get_partition_keys(), minutely since 2024 (~1.5M)", "s", 0.15, 3),
    Row("backfill_multi_run", "ms_per_run", "multi-run backfill, time/run (1 ms = 1,000 runs/s)", "ms/run", 1.0, 2),
    Row("backfill_single_run", "backfill_s", "1-run backfill, 5,000 hourly partitions", "s", 0.5, 3),
    Row("sensor_latency", "latency_ms", "sensor RunRequest -> first StepStart, embedded", "ms", 10.0, 2),
    Row("sensors_1000", "ticks_flushed_s", "1,000 sensors due at once -> ticks flushed", "s", 1.0, 3),
    Row(
        "schedule_lateness",
        "p99_ms",
        "`* * * * * *` schedule (Dagster: `* * * * *`) with 100 sensors, p99 lateness",
        "ms",
        100.0,
        1,
    ),
    Row("schedule_lateness", "median_ms", "  median lateness", "ms", None, 1),
    Row("pool_claim", "claim_release_ms", "pool slot claim + release, embedded", "ms", 1.0, 3),
    Row("million_partitions", "backfill_s", "1-run backfill, 1M (quick 100k) partitions, embedded", "s", None, 1),
    Row("million_partitions", "peak_rss_mb", "  peak RSS of the backfill", "MiB", 1024.0, 0),
    Row("million_partitions", "ranges_ms", "  get_partition_ranges(), 1 range", "ms", 10.0, 2),
    Row("million_partitions", "latest_ms", "  get_latest_materialization(partition=...)", "ms", 1.0, 2),
    Row("million_partitions", "materialized_s", "  len(get_materialized_partitions())", "s", 1.0, 3),
    Row("million_partitions", "storage_mb", "  storage directory on disk", "MiB", None, 1),
)
WORKLOADS = tuple(dict.fromkeys(row.workload for row in ROWS))
# Workloads with no Dagster counterpart in this suite (Dagster has no SurrealDB backend; the
# selection and history workloads compare rivers with itself; a million partitions are not run
# on Dagster).
RIVERS_ONLY = {"layered_remote", "layered_history", "selection_5k", "million_partitions"}
IMPORT_MODULE = {"rivers": "rivers", "dagster": "dagster"}


def default_interpreters() -> dict[str, Path]:
    """Interpreter of each framework, from the environment or the defaults."""
    rivers = os.environ.get("RIVERS_PYTHON") or REPO_ROOT / ".venv" / "bin" / "python"
    dagster = os.environ.get("DAGSTER_PYTHON")
    if not dagster:
        venv = os.environ.get("DAGSTER_VENV") or Path.home() / ".cache/rivers-bench/dagster-venv"
        dagster = Path(venv) / "bin" / "python"
    return {"rivers": Path(rivers), "dagster": Path(dagster)}


def probe(python: Path, module: str) -> tuple[bool, str]:
    """Whether ``python`` can import ``module``; returns (ok, version or error)."""
    if not python.exists():
        return False, f"interpreter not found: {python}"
    code = f"import {module}; print(getattr({module}, '__version__', 'unknown'))"
    try:
        proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return False, f"`import {module}` timed out"
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        return False, lines[-1] if lines else f"exit code {proc.returncode}"
    return True, proc.stdout.strip()


def python_version(python: Path) -> str:
    """``X.Y.Z`` of an interpreter, for the results file."""
    proc = subprocess.run(
        [str(python), "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
    )
    return proc.stdout.strip()


def git_revision() -> str:
    """Short commit of the checkout being measured, ``+dirty`` if it has local changes."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO_ROOT, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, cwd=REPO_ROOT
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + ("+dirty" if dirty else "")


def worker_env(scratch: Path) -> dict[str, str]:
    """Environment of every worker.

    ``benchmarks/`` goes on PYTHONPATH so that process-pool workers spawned by
    either framework can re-import the workload modules by name.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BENCH_DIR), env.get("PYTHONPATH")]))
    env["RIVERS_BENCH_TMP"] = str(scratch)
    return env


def run_worker(impl: str, python: Path, workload: str, quick: bool, scratch: Path) -> dict[str, Any]:
    """Run one workload in a fresh subprocess and return its parsed result.

    The worker's stderr (framework logs, tracebacks) goes to
    ``results/logs/<impl>-<workload>.log``; the cwd is a scratch directory so
    that nothing a framework writes by default lands in the repository.
    """
    cmd = [str(python), str(BENCH_DIR / "worker.py"), impl, workload]
    if quick:
        cmd.append("--quick")
    log_path = LOG_DIR / f"{impl}-{workload}.log"
    start = time.perf_counter()
    try:
        with open(log_path, "w") as log:
            proc = subprocess.run(
                cmd,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                cwd=scratch,
                env=worker_env(scratch),
                timeout=WORKER_TIMEOUT_S,
            )
        stdout, returncode = proc.stdout, proc.returncode
    except subprocess.TimeoutExpired as exc:
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        returncode = f"timeout after {WORKER_TIMEOUT_S} s"
    elapsed = time.perf_counter() - start
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER) :])
    return {
        "impl": impl,
        "workload": workload,
        "ok": False,
        "error": f"no result line (exit {returncode}); see {log_path.relative_to(REPO_ROOT)}",
        "elapsed_s": elapsed,
    }


def measure_import(python: Path, module: str, reps: int, scratch: Path) -> dict[str, Any]:
    """Cold-start cost of ``python -c "import <module>"``, median of ``reps``.

    "Cold" means a fresh interpreter each time; the OS page cache and the
    ``__pycache__`` files are warm, which one untimed run guarantees, so the
    figure does not depend on what ran before. Also reported: bare interpreter
    start-up (``python -c pass``) and the import alone, timed inside the
    process, so the two can be told apart.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def wall(code: str) -> float:
        start = time.perf_counter()
        subprocess.run([str(python), "-c", code], check=True, cwd=scratch, env=env)
        return time.perf_counter() - start

    probe_code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    try:
        wall(f"import {module}")  # populate caches
        walls = [wall(f"import {module}") for _ in range(reps)]
        bare = [wall("pass") for _ in range(reps)]
        inside = [
            float(
                subprocess.run(
                    [str(python), "-c", probe_code],
                    check=True,
                    capture_output=True,
                    text=True,
                    cwd=scratch,
                    env=env,
                ).stdout
            )
            for _ in range(reps)
        ]
    except (subprocess.CalledProcessError, ValueError) as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {
        "ok": True,
        "metrics": {"wall_ms": statistics.median(walls) * 1000},
        "details": {
            "interpreter_startup_ms": statistics.median(bare) * 1000,
            "import_only_ms": statistics.median(inside) * 1000,
            "samples_ms": [round(w * 1000, 1) for w in walls],
        },
    }


def metric(result: dict[str, Any] | None, name: str) -> float | None:
    """A metric of a result, or ``None`` when the workload did not run or failed."""
    if not result or not result.get("ok"):
        return None
    return result.get("metrics", {}).get(name)


def fmt(value: float | None, digits: int, missing: str) -> str:
    return missing if value is None else f"{value:.{digits}f}"


def build_rows(results: dict[str, dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Turn raw worker results into table rows with ratio and pass/fail."""
    rows = []
    for row in ROWS:
        r_res = results["rivers"].get(row.workload)
        d_res = results["dagster"].get(row.workload)
        r_val, d_val = metric(r_res, row.metric), metric(d_res, row.metric)
        ratio = d_val / r_val if r_val and d_val is not None else None
        if r_res is None:
            status = "skipped"
        elif r_val is None:
            status = "ERROR"
        elif row.target is None:
            status = "-"
        else:
            status = "PASS" if r_val <= row.target else "FAIL"
        rows.append(
            {
                "workload": row.workload,
                "metric": row.metric,
                "label": row.label,
                "unit": row.unit,
                "target": row.target,
                "rivers": r_val,
                "dagster": d_val,
                "ratio_dagster_over_rivers": ratio,
                "status": status,
            }
        )
    return rows


def print_table(rows: list[dict[str, Any]], results: dict[str, Any]) -> None:
    """Plain-text table; ``-`` = no value (skipped, errored or not applicable)."""
    header = ["workload", "unit", "rivers", "dagster", "dagster/rivers", "target", "status"]
    lines = []
    for spec, row in zip(ROWS, rows, strict=True):
        missing = {"rivers": "-", "dagster": "-"}
        for impl in IMPLS:
            res = results[impl].get(spec.workload)
            if res is not None and not res.get("ok"):
                missing[impl] = "error"
        lines.append(
            [
                spec.label,
                spec.unit,
                fmt(row["rivers"], spec.digits, missing["rivers"]),
                fmt(row["dagster"], spec.digits, missing["dagster"]),
                fmt(row["ratio_dagster_over_rivers"], 1, "-") + ("x" if row["ratio_dagster_over_rivers"] else ""),
                "-" if spec.target is None else f"<= {spec.target:g}",
                row["status"],
            ]
        )
    widths = [max(len(str(c)) for c in col) for col in zip(header, *lines, strict=True)]
    align = ["<", "<", ">", ">", ">", ">", "<"]
    print()
    for i, cells in enumerate([header, *lines]):
        print("  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, align, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument(
        "--only",
        type=lambda s: [w.strip() for w in s.split(",") if w.strip()],
        default=list(WORKLOADS),
        help=f"comma-separated subset of: {', '.join(WORKLOADS)}",
    )
    parser.add_argument("--skip-dagster", action="store_true", help="run rivers only")
    parser.add_argument("--skip-rivers", action="store_true", help="run Dagster only")
    args = parser.parse_args()
    unknown = sorted(set(args.only) - set(WORKLOADS))
    if unknown:
        parser.error(f"unknown workload(s): {', '.join(unknown)}")

    interpreters = default_interpreters()
    env_info: dict[str, dict[str, Any]] = {}
    active = []
    for impl in IMPLS:
        skipped = args.skip_dagster if impl == "dagster" else args.skip_rivers
        ok, info = (False, "skipped on the command line") if skipped else probe(interpreters[impl], IMPORT_MODULE[impl])
        env_info[impl] = {"available": ok, "version" if ok else "reason": info}
        if ok:
            env_info[impl]["python"] = python_version(interpreters[impl])
            active.append(impl)
        elif not skipped:
            print(f"!! {impl} is not available: {info}", file=sys.stderr)
            if impl == "dagster":
                print(
                    "!! create the Dagster environment with: bash benchmarks/setup_dagster.sh"
                    " (or point DAGSTER_PYTHON at an interpreter that has dagster)",
                    file=sys.stderr,
                )
            else:
                print(
                    "!! build rivers into the project virtualenv (maturin develop) or point"
                    " RIVERS_PYTHON at an interpreter where `import rivers` works",
                    file=sys.stderr,
                )
    if not active:
        print("nothing to run", file=sys.stderr)
        return 2

    load_before = os.getloadavg()
    if load_before[0] > 1.0:
        print(
            f"note: 1-minute load average is {load_before[0]:.1f} on {os.cpu_count()} CPUs; figures will be noisy",
            file=sys.stderr,
        )

    LOG_DIR.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, dict[str, Any]]] = {impl: {} for impl in IMPLS}
    scratch = Path(tempfile.mkdtemp(prefix="rivers-bench-"))
    started = time.perf_counter()
    try:
        for workload in args.only:
            for impl in active:
                if impl != "rivers" and workload in RIVERS_ONLY:
                    continue
                print(f"[{impl:>7}] {workload} ...", end=" ", flush=True)
                load_1m = os.getloadavg()[0]
                if workload == "import":
                    res = measure_import(interpreters[impl], IMPORT_MODULE[impl], 5 if args.quick else 10, scratch)
                    res.update(impl=impl, workload=workload)
                else:
                    res = run_worker(impl, interpreters[impl], workload, args.quick, scratch)
                res["load_avg_1m_before"] = round(load_1m, 2)
                results[impl][workload] = res
                print("ok" if res.get("ok") else f"FAILED: {res.get('error')}", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    rows = build_rows(results)
    print_table(rows, results)
    print("\n(dagster/rivers > 1: rivers is faster or smaller; targets apply to rivers)")
    errors = [res for impl in IMPLS for res in results[impl].values() if not res.get("ok")]
    for res in errors:
        print(f"error: {res['impl']} {res['workload']}: {res.get('error')}", file=sys.stderr)

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / "latest.json"
    payload = {
        "generated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick,
        "git_revision": git_revision(),
        "duration_s": round(time.perf_counter() - started, 1),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_avg_before": [round(x, 2) for x in load_before],
            "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        },
        "environments": env_info,
        "rows": rows,
        "raw": results,
    }
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"results written to {out.relative_to(REPO_ROOT)}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
