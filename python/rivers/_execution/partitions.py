"""What one step knows of partitions: its own ``PartitionContext``, the individual partitions it
covers, what each input reads, and the partitions its body marked failed.

A step covering a million partitions holds the engine's scope: keys become Python objects only
when user code (or a write that must leave marked partitions out) asks for them."""

from __future__ import annotations

from typing import Any

from rivers._core import PartitionContext

# An input read whole (an unpartitioned upstream, no mapping), as opposed to `None`: nothing is
# read and the parameter receives `None` (`for_keys` / `subset` without a match).
WHOLE = object()


class StepPartitions:
    """The partitions of one step, built from the engine's ``StepPartition``."""

    __slots__ = ("context", "inputs", "error", "failed", "_scope", "_covered", "_covered_keys")

    def __init__(
        self,
        context: PartitionContext | None,
        scope: Any,
        inputs: dict[str, PartitionContext | None],
        error: str | None,
    ) -> None:
        self.context = context
        self.inputs = inputs
        self.error = error
        # Display form -> message, filled by `context.mark_partition_failed`.
        self.failed: dict[str, str] = {}
        # The engine's scope, or the covered keys themselves (after pickling).
        self._scope = scope
        self._covered: list[Any] | None = None if context is not None else []
        self._covered_keys: frozenset[str] | None = None

    @property
    def covered(self) -> list[Any]:
        """The individual partitions the step covers (``PartitionKey``), in enumeration order."""
        if self._covered is None:
            self._covered = list(self._scope.covered) if self._scope is not None else []
        return self._covered

    @property
    def covered_count(self) -> int:
        """How many individual partitions the step covers."""
        if self._covered is None and self._scope is not None:
            return int(self._scope.covered_count)
        return len(self.covered)

    def covers(self, display: str) -> bool:
        """Whether the step covers the partition of this display form (a set, built once)."""
        if self._covered_keys is None:
            self._covered_keys = frozenset(str(key) for key in self.covered)
        return display in self._covered_keys

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


def _rebuild(context: Any, covered: list[Any], inputs: Any, error: Any) -> StepPartitions:
    partitions = StepPartitions(context, None, inputs, error)
    partitions._covered = covered
    return partitions


def step_partitions(scope: Any, definition_of: Any, node_name: str) -> StepPartitions:
    """Builds a step's partitions from the engine's scope; ``definition_of(name)`` gives the
    ``PartitionsDefinition`` of a node or an upstream."""
    context = scope.context(definition_of(node_name))
    # An input mapped to no upstream partition at all (or to nothing) reads nothing: the
    # parameter receives `None`.
    inputs = {
        upstream: scope.input_context(upstream, definition_of(upstream)) if reads else None
        for upstream, reads in scope.partitioned_inputs.items()
    }
    return StepPartitions(context, scope if context is not None else None, inputs, scope.error)
