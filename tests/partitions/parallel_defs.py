"""Partitioned assets run by parallel-executor workers (importable, so workers find them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import rivers as rs

DAYS = rs.PartitionsDefinition.daily(start=datetime(2024, 1, 1), end=datetime(2024, 2, 1))


def assets(root: str) -> list[Any]:
    handler = rs.PickleIOHandler(store=__import__("obstore").store.LocalStore(root))

    @rs.Asset(partitions_def=DAYS, io_handler=handler)
    def keys(context: rs.AssetExecutionContext) -> list[str]:
        return [str(k) for k in context.partition.keys[0].key]

    @rs.Asset(partitions_def=DAYS, io_handler=handler)
    def doubled(keys: list[str]) -> list[str]:
        return keys * 2

    @rs.Asset(partitions_def=DAYS, io_handler=handler)
    def marked(context: rs.AssetExecutionContext) -> int:
        context.mark_partition_failed("2024-01-03", "weekend")
        return 1

    return [keys, doubled, marked]
