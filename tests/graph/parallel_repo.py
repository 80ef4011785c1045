"""The repository the ``Executor.parallel()`` tests of this folder run in: real loky workers,
a fresh memory store, shut down when the ``with`` block ends."""

import contextlib
from collections.abc import Iterator
from typing import Any

import rivers as rs


@contextlib.contextmanager
def parallel_repo(assets: list[Any], max_workers: int, **kwargs: Any) -> Iterator[rs.CodeRepository]:
    kwargs.setdefault("default_executor", rs.Executor.parallel(max_workers=max_workers))
    repo = rs.CodeRepository(assets=assets, **kwargs)
    repo.resolve(storage=rs.Storage.memory())
    try:
        yield repo
    finally:
        repo.shutdown()
