"""A backfill coordinated by this process on a SurrealDB server, for
test_backfill_processes.py (run as a script in a subprocess).

    python backfill_process.py ENDPOINT BASE_DIR {multi_run|single_run} SECONDS_PER_RUN

Submits a backfill of ``daily`` over 2024-01-01..2024-01-20 (one run at a time), writes its id
to ``BASE_DIR/backfill_id``, each run appends its partitions to ``BASE_DIR/started`` when it
starts and then sleeps SECONDS_PER_RUN; prints the backfill's end as JSON.
"""

import json
import sys
import time
from datetime import datetime
from pathlib import Path

import rivers as rs

ENDPOINT, BASE, STRATEGY, SECONDS = sys.argv[1], Path(sys.argv[2]), sys.argv[3], float(sys.argv[4])
DAYS = rs.PartitionsDefinition.daily(start=datetime(2024, 1, 1), end=datetime(2024, 3, 1))


@rs.Asset(partitions_def=DAYS)
def daily(context: rs.AssetExecutionContext) -> int:
    with open(BASE / "started", "a") as log:
        log.write(" ".join(str(k) for k in context.partition.keys) + "\n")
    time.sleep(SECONDS)
    return 1


strategy = rs.BackfillStrategy.single_run() if STRATEGY == "single_run" else rs.BackfillStrategy.multi_run()
with rs.CodeRepository(assets=[daily], default_executor=rs.Executor.in_process()) as repo:
    repo.resolve(storage=rs.Storage.connect(ENDPOINT))
    submitted = repo.backfill(
        partition_range=rs.PartitionKeyRange.single("2024-01-01", "2024-01-20"),
        strategy=strategy,
        max_concurrency=1,
        block=False,
    )
    (BASE / "backfill_id").write_text(submitted.backfill_id)
    deadline = time.monotonic() + 120
    while (status := repo.get_backfill(submitted.backfill_id)).status == "in_progress":
        assert time.monotonic() < deadline, "the backfill never ended"
        time.sleep(0.02)
    print(
        json.dumps(
            {
                "status": status.status,
                "completed": status.completed_partitions,
                "failed": status.failed_partitions,
                "canceled": status.canceled_partitions,
                "runs": len(status.run_ids),
            }
        )
    )
