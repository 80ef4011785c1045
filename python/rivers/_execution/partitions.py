"""What one step knows of partitions: its own ``PartitionContext``, the individual partitions it
covers, what each input reads, and the partitions its body marked failed."""

from __future__ import annotations

from typing import Any

from rivers._core import PartitionContext

# An input read whole (an unpartitioned upstream, no mapping), as opposed to `None`: nothing is
# read and the parameter receives `None` (`for_keys` / `subset` without a match).
WHOLE = object()


class StepPartitions:
    """The partitions of one step, built from the engine's ``StepPartition``."""

    __slots__ = ("context", "covered", "inputs", "error", "failed")

    def __init__(
        self,
        context: PartitionContext | None,
        covered: list[Any],
        inputs: dict[str, PartitionContext | None],
        error: str | None,
    ) -> None:
        self.context = context
        self.covered = covered
        self.inputs = inputs
        self.error = error
        # Display form -> message, filled by `context.mark_partition_failed`.
        self.failed: dict[str, str] = {}

    def input(self, upstream: str) -> Any:
        """The ``PartitionContext`` an input is loaded with, ``None`` for nothing to load, or
        ``WHOLE``."""
        return self.inputs.get(upstream, WHOLE)

    def written(self) -> PartitionContext | None | bool:
        """The ``OutputContext.partition`` of a write: the step's context, or its covered
        partitions without the failed ones; ``False`` when every partition failed (nothing is
        written)."""
        if not self.failed or self.context is None:
            return self.context
        remaining = [key for key in self.covered if str(key) not in self.failed]
        if not remaining:
            return False
        return PartitionContext(remaining, self.context.definition)

    def __reduce__(self) -> Any:
        return (_rebuild, (self.context, self.covered, self.inputs, self.error))


def _rebuild(context: Any, covered: Any, inputs: Any, error: Any) -> StepPartitions:
    return StepPartitions(context, covered, inputs, error)


def step_partitions(scope: Any, definition_of: Any, node_name: str) -> StepPartitions:
    """Builds a step's partitions from the engine's scope; ``definition_of(name)`` gives the
    ``PartitionsDefinition`` of a node or an upstream."""
    keys = scope.keys
    context = PartitionContext(keys, definition_of(node_name)) if keys else None
    inputs = {
        upstream: None if upstream_keys is None else PartitionContext(upstream_keys, definition_of(upstream))
        for upstream, upstream_keys in scope.inputs.items()
        if upstream_keys is None or upstream_keys
    }
    # An input mapped to no upstream partition at all reads an empty context-less load: the
    # mapping selected nothing, so nothing is loaded.
    for upstream, upstream_keys in scope.inputs.items():
        if upstream_keys is not None and not upstream_keys:
            inputs[upstream] = None
    return StepPartitions(context, scope.covered if context is not None else [], inputs, scope.error)
