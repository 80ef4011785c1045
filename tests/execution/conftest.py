"""Shared fixtures and helpers for the repository-and-execution tests.

Helper modules in this directory (``exec_parallel_assets``, ``exec_crash_chain``)
are imported by *name*: loky worker processes re-import asset functions and IO
handlers as ``(module, qualname)`` references, so this directory must be on the
worker's ``sys.path``.  We therefore put it on ``sys.path`` here and also export it
through ``PYTHONPATH`` before any worker process is spawned.

``RIVERS_EXEC_TEST_DIR`` is a per-session scratch directory shared with worker
processes (which inherit the environment) for pickle stores and marker files.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
_pythonpath = os.environ.get("PYTHONPATH", "")
if str(HERE) not in _pythonpath.split(os.pathsep):
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE)] + ([_pythonpath] if _pythonpath else []))

# Lets helper assets refuse to do destructive things (kill their own process) when
# they are unexpectedly executed inside the pytest process instead of a worker.
os.environ.setdefault("RIVERS_EXEC_ORCHESTRATOR_PID", str(os.getpid()))

if "RIVERS_EXEC_TEST_DIR" not in os.environ:
    _scratch = tempfile.mkdtemp(prefix="rivers-exec-tests-")
    os.environ["RIVERS_EXEC_TEST_DIR"] = _scratch
    atexit.register(shutil.rmtree, _scratch, ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The project runs with filterwarnings=error; enforce it for this directory too,
    # whatever the ini file says.
    for item in items:
        if Path(str(item.fspath)).resolve().parent == HERE:
            item.add_marker(pytest.mark.filterwarnings("error"))


@pytest.fixture
def scratch() -> Path:
    """The session scratch directory shared with loky workers, emptied for each test."""
    base = Path(os.environ["RIVERS_EXEC_TEST_DIR"])
    for sub in ("store", "marks"):
        d = base / sub
        d.mkdir(parents=True, exist_ok=True)
        for child in d.iterdir():
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
    return base
