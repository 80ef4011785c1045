"""Module-level tasks and graph assets for the ``Executor.parallel()`` tests in test_collect_stream.py
(graph-and-tasks.md R50-R52, R57).

loky workers re-import step functions and IO handlers by ``(module, qualname)``, so everything here lives at
module scope. Values cross the process boundary through a ``PickleIOHandler`` on a ``LocalStore``. Steps talk to
each other (and to the test) through small marker files written atomically: a consumer marks what it received,
an instance waits for such a marker before it returns. Waits are bounded by ``PATIENCE``; a marker that never
appears fails the waiting step (and so the test), it never hangs it.

The scratch directory is ``$RIVERS_STREAM_TEST_DIR`` when set, else a fixed directory under the temp directory
derived from the user id, so the orchestrator and its workers agree on it.
"""

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import obstore.store

import rivers as rs
from rivers.exceptions import ExecutionError

BASE = Path(os.environ.get("RIVERS_STREAM_TEST_DIR") or Path(tempfile.gettempdir()) / f"rivers-stream-{os.getuid()}")
STORE_DIR = BASE / "store"
MARKS = BASE / "marks"
STORE_DIR.mkdir(parents=True, exist_ok=True)
MARKS.mkdir(parents=True, exist_ok=True)

# Longest wait for a marker: far above anything the steps need, low enough to fail a broken run quickly.
PATIENCE = 30.0
# Polling interval of a wait for a marker file.
POLL = 0.01

pickle_handler = rs.PickleIOHandler(store=obstore.store.LocalStore(str(STORE_DIR)))


def reset() -> None:
    """Remove every stored value and marker left by an earlier test."""
    for directory in (STORE_DIR, MARKS):
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True, exist_ok=True)


def mark(name: str, text: str = "") -> None:
    """Create the marker ``name`` holding ``text``, atomically."""
    tmp = MARKS / f".{name}.{os.getpid()}.tmp"
    tmp.write_text(text)
    tmp.rename(MARKS / name)


def marked(name: str) -> bool:
    return (MARKS / name).exists()


def read_mark(name: str) -> str:
    return (MARKS / name).read_text()


def marks_starting(prefix: str) -> list[str]:
    return sorted(p.name for p in MARKS.glob(f"{prefix}*"))


def wait_for_mark(name: str) -> None:
    """Return once the marker ``name`` exists; ``TimeoutError`` after ``PATIENCE`` seconds."""
    deadline = time.monotonic() + PATIENCE
    while not marked(name):
        if time.monotonic() > deadline:
            raise TimeoutError(f"marker {name!r} did not appear within {PATIENCE} s")
        time.sleep(POLL)


def receive(stream: Any) -> list[Any]:
    """Drain a stream, marking ``received-N`` (holding the value) as the N-th item arrives."""
    received = []
    for value in stream:
        received.append(value)
        mark(f"received-{len(received)}", repr(value))
    return received


# --------------------------------------------------------------------------- completion order, by causality


@rs.Task
def letters() -> list[str]:
    return ["x", "y", "z"]


@rs.Task
def relay(item: str) -> str:
    # `z` ends at once, `x` once the consumer received one item, `y` once it received two: the
    # completion order is z, x, y, and only a consumer running beside the instances can see it.
    mark(f"relay-pid-{item}", str(os.getpid()))
    if item == "x":
        wait_for_mark("received-1")
    elif item == "y":
        wait_for_mark("received-2")
    return item.upper()


@rs.Task
def relay_consumer(stream: Any) -> list[str]:
    mark("consumer-pid", str(os.getpid()))
    return receive(stream)


@rs.Asset.from_graph(io_handler=pickle_handler)
def relayed():
    return relay_consumer(letters().map(relay).collect_stream())


# --------------------------------------------------------------------------- element order with ordered=True


@rs.Task
def nap_plan() -> list[float]:
    # The first element sleeps longest, so instances tend to complete in reverse element order.
    return [0.8, 0.4, 0.0]


@rs.Task
def nap(seconds: float) -> float:
    time.sleep(seconds)
    mark(f"napped-{seconds}", str(time.time_ns()))
    return seconds


@rs.Task
def ordered_consumer(stream: Any) -> list[float]:
    return receive(stream)


@rs.Asset.from_graph(io_handler=pickle_handler)
def ordered_naps():
    return ordered_consumer(nap_plan().map(nap).collect_stream(ordered=True))


# --------------------------------------------------------------------------- the consumer starts early


@rs.Task
def three_numbers() -> list[int]:
    return [0, 1, 2]


@rs.Task
def waits_for_consumer(i: int) -> int:
    if i == 2:
        # The slowest instance cannot end before the consumer has received an item.
        wait_for_mark("first-received")
    return i * 10


@rs.Task
def first_marking_consumer(stream: Any) -> list[int]:
    received = []
    for value in stream:
        if not received:
            mark("first-received", repr(value))
        received.append(value)
    return received


@rs.Asset.from_graph(io_handler=pickle_handler)
def early_consumer():
    return first_marking_consumer(three_numbers().map(waits_for_consumer).collect_stream())


# --------------------------------------------------------------------------- a failing instance


@rs.Task
def fragile(i: int) -> int:
    if i == 1:
        wait_for_mark("received-1")  # fails after the consumer received instance 0
        raise RuntimeError("element 1 is broken")
    if i == 2:
        wait_for_mark("consumer-error")  # ends after the consumer's stream raised
    return i * 10


@rs.Task
def receive_until_error(stream: Any) -> list[int]:
    try:
        return receive(stream)
    except Exception as err:
        mark("consumer-error", f"{isinstance(err, ExecutionError)}|{err}")
        raise


@rs.Asset.from_graph(io_handler=pickle_handler)
def fragile_stream():
    return receive_until_error(three_numbers().map(fragile).collect_stream())


# --------------------------------------------------------------------------- an empty fan-out


@rs.Task
def no_numbers() -> list[int]:
    return []


@rs.Task
def times_ten(i: int) -> int:
    return i * 10


@rs.Task
def drain(stream: Any) -> list[int]:
    return list(stream)


@rs.Task
def count(values: list[int]) -> int:
    return len(values)


@rs.Asset.from_graph(io_handler=pickle_handler)
def empty_stream_counted():
    return count(drain(no_numbers().map(times_ten).collect_stream()))


# --------------------------------------------------------------------------- resume


@rs.Task
def fails_once(i: int) -> int:
    mark(f"ran-{i}-{time.time_ns()}")
    if i == 1 and not marked("failed-once"):
        mark("failed-once")
        raise RuntimeError("fails in the first attempt of the run only")
    return i * 10


@rs.Task
def stream_sum(stream: Any) -> int:
    return sum(stream)


@rs.Asset.from_graph(io_handler=pickle_handler)
def resumable_stream():
    return stream_sum(three_numbers().map(fails_once).collect_stream())
