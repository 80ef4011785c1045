"""Module-level tasks for the ``Executor.parallel()`` tests in test_tasks.py and test_bash_task.py.

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

STORE_DIR = Path(tempfile.gettempdir()) / f"rivers-graph-tests-{os.getuid()}" / "store"
STORE_DIR.mkdir(parents=True, exist_ok=True)

pickle_handler = rs.PickleIOHandler(store=obstore.store.LocalStore(str(STORE_DIR)))


def clear_store() -> None:
    """Remove every value written by an earlier test run."""
    shutil.rmtree(STORE_DIR, ignore_errors=True)
    STORE_DIR.mkdir(parents=True, exist_ok=True)


@rs.Task(io_handler=pickle_handler)
def par_task_pid() -> int:
    return os.getpid()


@rs.Asset(io_handler=pickle_handler)
def par_task_consumer(par_task_pid: int) -> list:
    return [par_task_pid, os.getpid()]


par_greeting = rs.BashTask("par_greeting", command="echo parallel hello", io_handler=pickle_handler)


@rs.Asset(io_handler=pickle_handler)
def par_greeting_upper(par_greeting: str) -> str:
    return par_greeting.upper()
