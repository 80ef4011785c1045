"""Runs the automation daemon of ``definitions.py`` for a while, printing ticks and runs as
they happen, then stops it and prints a summary.

    python run_daemon.py [--seconds 10] [--storage PATH]

Storage is embedded (SurrealDB on RocksDB) at ``PATH``, by default ``.rivers/storage/`` in this
directory: run it again and the sensor carries on from its stored cursor.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

from definitions import HERE, repo

import rivers as rs
from rivers._core import AutomationDaemon

POLL_SECONDS = 0.2
# How long to let runs that were already executing finish after the daemon stops.
DRAIN_SECONDS = 30.0
IN_PROGRESS = ("NotStarted", "Running")


def automation_names(repo: rs.CodeRepository) -> list[str]:
    """Every name ticks are stored under: schedules, sensors and assets with a condition."""
    names = [schedule.name for schedule in repo.schedules] + [sensor.name for sensor in repo.sensors]
    names += [name for name, asset in repo.assets.items() if getattr(asset, "automation_condition", None) is not None]
    return names


class Reporter:
    """Prints each new tick and each run status change once."""

    def __init__(self, storage: rs.Storage, names: list[str]) -> None:
        self.storage = storage
        self.names = names
        self.seen_ticks: set[str] = set()
        self.run_statuses: dict[str, str] = {}

    def poll(self) -> None:
        for name in self.names:
            for tick in reversed(self.storage.get_ticks(name, limit=20)):
                if tick.id in self.seen_ticks:
                    continue
                self.seen_ticks.add(tick.id)
                detail = tick.skip_reason or tick.error or ""
                runs = f" runs={len(tick.run_ids)}" if tick.run_ids else ""
                cursor = f" cursor={tick.cursor}" if tick.cursor is not None else ""
                print(f"tick  {tick.automation_type:<9} {name:<18} {tick.status:<8}{runs}{cursor} {detail}".rstrip())
        for run in reversed(self.storage.get_runs(limit=100)):
            if self.run_statuses.get(run.run_id) == run.status:
                continue
            self.run_statuses[run.run_id] = run.status
            origin = run.launched_by.name or run.launched_by.kind
            # Run ids are UUIDv7: their head is a timestamp, their tail tells runs apart.
            print(f"run   {run.run_id[-8:]} {run.job_name or 'ad hoc':<22} {run.status:<10} by {origin}")


def summary(storage: rs.Storage, names: list[str]) -> None:
    ticks = {name: storage.get_ticks(name, limit=1000) for name in names}
    runs = storage.get_runs(limit=1000)
    by_status = Counter(run.status for run in runs)
    total_ticks = sum(len(found) for found in ticks.values())
    statuses = ", ".join(f"{count} {status}" for status, count in sorted(by_status.items()))
    print(f"summary: {total_ticks} ticks, {len(runs)} runs ({statuses or 'none'})")
    for name, found in ticks.items():
        if found:
            counts = ", ".join(f"{n} {s}" for s, n in sorted(Counter(t.status for t in found).items()))
            print(f"  {name}: {len(found)} ticks ({counts})")
    for pool in storage.get_all_pool_infos():
        print(f"  pool {pool.pool_key}: limit {pool.slot_limit}, {pool.claimed_count} slots held")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="how long the daemon runs (default 10)")
    parser.add_argument("--storage", type=Path, default=HERE / ".rivers" / "storage", help="embedded storage path")
    args = parser.parse_args()

    storage = rs.Storage.embedded(str(args.storage))
    with repo:
        repo.resolve(storage=storage)
        names = automation_names(repo)
        reporter = Reporter(storage, names)
        daemon = AutomationDaemon(repo, storage, max_ticks_retained=100, condition_eval_interval="1s")
        daemon.start()
        print(f"daemon started on {args.storage} for {args.seconds:g} s")
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
            reporter.poll()
        daemon.stop()
        print("daemon stopped; queued runs wait for the next start")
        # Runs the daemon launched keep executing after it stops: let them end.
        drain_until = time.monotonic() + DRAIN_SECONDS
        while any(storage.get_runs(limit=100, status=s) for s in IN_PROGRESS) and time.monotonic() < drain_until:
            time.sleep(POLL_SECONDS)
        reporter.poll()
        summary(storage, names)


if __name__ == "__main__":
    main()
