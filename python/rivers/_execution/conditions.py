"""``CodeRepository.explain_automation`` and ``simulate_automation``: why an asset's automation
condition is or is not true now, and what the automation would request over a span of time. The
evaluation happens in Rust, exactly as the daemon runs it; this module checks the arguments and
converts them."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from rivers import _core
from rivers.exceptions import AssetNotFoundError

if TYPE_CHECKING:
    from rivers._execution.repository import CodeRepository


def _partition_key(key: Any) -> Any:
    """A ``PartitionKey``, or its display form (``"2025-01-01"``, ``"date=2025-01-01|region=eu"``)."""
    if key is None or isinstance(key, _core.PartitionKey):
        return key
    if not isinstance(key, str):
        raise TypeError(f"partition_key must be a PartitionKey or its display form as a str, not {key!r}")
    if "=" in key:
        return _core.PartitionKey.multi(dict(part.split("=", 1) for part in key.split("|")))
    return _core.PartitionKey.single(key)


def explain_automation(repo: CodeRepository, asset: str, partition_key: Any = None) -> _core.ConditionExplanation:
    """See ``CodeRepository.explain_automation``."""
    node = repo.assets.get(asset)
    if node is None:
        raise AssetNotFoundError(
            f"explain_automation() names '{asset}', which is not a registered asset; registered assets: "
            f"[{', '.join(repo.assets)}]"
        )
    if getattr(node, "automation_condition", None) is None:
        raise ValueError(
            f"asset '{asset}' has no automation_condition: explain_automation() explains the condition an asset "
            "is declared with (automation_condition=...)"
        )
    repo._ensure_resolved()
    return _core.explain_automation(repo._definitions_snapshot(), repo.storage, asset, _partition_key(partition_key))


def _utc(value: datetime, name: str) -> datetime:
    """An aware datetime; a naive one is read as UTC."""
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, not {value!r}")
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def simulate_automation(
    repo: CodeRepository, start: datetime, end: datetime, step: str
) -> list[_core.SimulatedRequest]:
    """See ``CodeRepository.simulate_automation``."""
    start, end = _utc(start, "start"), _utc(end, "end")
    repo._ensure_resolved()
    return _core.simulate_automation(repo, repo.storage, start, end, step)
