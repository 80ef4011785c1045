"""Module-level multi-asset definitions for the ``Executor.parallel()`` test in test_multi_asset.py.

loky workers re-import step functions and IO handlers by ``(module, qualname)``, so everything here lives at
module scope. Values cross the process boundary through a ``PickleIOHandler`` on a ``LocalStore`` whose directory
is derived from the temp directory and the user id, so the orchestrator and its workers agree on it without any
shared environment variable.
"""

import os
import shutil
import tempfile
from pathlib import Path

import obstore.store

import rivers as rs

STORE_DIR = Path(tempfile.gettempdir()) / f"rivers-multi-asset-tests-{os.getuid()}" / "store"
STORE_DIR.mkdir(parents=True, exist_ok=True)

pickle_handler = rs.PickleIOHandler(store=obstore.store.LocalStore(str(STORE_DIR)))


def clear_store() -> None:
    """Remove every value written by an earlier test run."""
    shutil.rmtree(STORE_DIR, ignore_errors=True)
    STORE_DIR.mkdir(parents=True, exist_ok=True)


@rs.Asset.from_multi(
    output_defs=[
        rs.AssetDef("par_left", io_handler=pickle_handler),
        rs.AssetDef("par_right", io_handler=pickle_handler),
    ]
)
def par_split():
    pid = os.getpid()
    yield rs.Output(pid, output_name="par_left")
    yield rs.Output(-pid, output_name="par_right")


@rs.Asset(io_handler=pickle_handler)
def par_combined(par_left: int, par_right: int) -> list:
    return [par_left, par_right]
