"""Runs on an embedded store until the file system refuses a write, for test_storage_errors.py
(run as a script in a subprocess).

    python full_disk_run.py STORE_PATH MAX_FILE_BYTES

The process may not grow any file past MAX_FILE_BYTES (``RLIMIT_FSIZE``; with ``SIGXFSZ``
ignored the kernel answers such a write with EFBIG, "File too large", as a full disk answers with
ENOSPC). It prints one JSON line: the run ids that succeeded, the error that ended them, and the
error of one more run attempted after it.
"""

import json
import resource
import signal
import sys

import rivers as rs

STORE_PATH, MAX_FILE_BYTES = sys.argv[1], int(sys.argv[2])
ASSETS = 300
MAX_RUNS = 200


def make_asset(index: int) -> rs.Asset:
    def produce() -> str:
        return "x" * 2000

    produce.__name__ = f"a{index}"
    return rs.Asset(produce)


storage = rs.Storage.embedded(STORE_PATH)
repo = rs.CodeRepository(assets=[make_asset(i) for i in range(ASSETS)], default_executor=rs.Executor.in_process())
repo.resolve(storage=storage)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_BYTES, resource.RLIM_INFINITY))
succeeded: list[str] = []
outcome: dict = {"succeeded": succeeded, "error": None, "error_type": None}
try:
    for _ in range(MAX_RUNS):
        result = repo.materialize()
        assert result.success, result.failed_assets
        succeeded.append(result.run_id)
except Exception as error:  # the test inspects whatever was raised
    outcome["error"], outcome["error_type"] = str(error), type(error).__name__
# The store refuses writes from then on; the next run must fail at once, with the cause.
try:
    repo.materialize()
except Exception as error:
    outcome["next_error"] = str(error)
print(json.dumps(outcome), flush=True)
