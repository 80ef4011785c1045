"""One process materializing pooled assets on a SurrealDB server, for test_pool_processes.py
(run as a script in a subprocess).

    python pool_process.py ENDPOINT ROOT LIMIT COUNT HOLD EXECUTOR

Resolves a repository of COUNT assets in pool ``db`` (``pool_limits={"db": LIMIT}``), each
holding its slot for HOLD seconds while recording when its body runs under ROOT
(``pool_defs``), materializes them with EXECUTOR (``parallel`` or ``in_process``), and prints the run id and whether it succeeded as one JSON
line.
"""

import json
import os
import sys

import rivers as rs
from tests.pools.pool_defs import pooled_assets

ENDPOINT, ROOT, LIMIT, COUNT, HOLD, EXECUTOR = sys.argv[1:7]
executor = rs.Executor.parallel(max_workers=int(COUNT)) if EXECUTOR == "parallel" else rs.Executor.in_process()

assets = pooled_assets(ROOT, int(COUNT), hold=float(HOLD), prefix=f"p{os.getpid()}")
with rs.CodeRepository(assets=assets, pool_limits={"db": int(LIMIT)}, default_executor=executor) as repo:
    repo.resolve(storage=rs.Storage.connect(ENDPOINT))
    result = repo.materialize(raise_on_error=False)
    print(json.dumps({"run_id": result.run_id, "success": result.success}))
