"""The Python half of dynamic fan-out: turning a producer's value into keyed elements, and
gathering instance outputs for ``collect()`` / ``collect_stream()`` consumers. The engine owns
the expansion itself (instance steps, barriers, concurrency caps)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from rivers._definitions.composition import DynamicOutput
from rivers._execution.io_context import InputContext
from rivers.exceptions import ExecutionError


def instance_name(template: str, key: str) -> str:
    return f"{template}[{key}]"


def keyed_elements(template: str, producer: str, value: Any) -> dict[str, Any]:
    """The elements of a producer's value by instance key: positions (``"0"``, ``"1"``, ...)
    for plain values, ``DynamicOutput.key`` for dynamic outputs (whose ``value`` is the
    element). ``ExecutionError`` for a value that cannot be fanned out."""
    if isinstance(value, (str, bytes, dict)) or not isinstance(value, Iterable):
        raise ExecutionError(
            f"'{producer}' returned a {type(value).__name__}, which '{template}' cannot be mapped over; a fan-out "
            "producer returns a list, a tuple or another non-string iterable"
        )
    items = list(value)
    dynamic = [isinstance(item, DynamicOutput) for item in items]
    if any(dynamic) and not all(dynamic):
        raise ExecutionError(
            f"'{producer}' returned a mix of DynamicOutput and plain values for '{template}'; return either only "
            "DynamicOutput objects or only plain values"
        )
    if not any(dynamic):
        return {str(position): item for position, item in enumerate(items)}
    elements: dict[str, Any] = {}
    for item in items:
        if item.key in elements:
            raise ExecutionError(
                f"'{producer}' returned two DynamicOutputs with key '{item.key}' for '{template}'; keys must be "
                "unique within one fan-out"
            )
        elements[item.key] = item.value
    return elements


def gathered(gather: str, template: str, keys: list[str], completed: list[str], consumer: str, handler: Any) -> Any:
    """A ``collect()`` list (element order) or a ``collect_stream()`` iterator (completion
    order, or element order when ordered) over the instances' stored outputs."""
    order = completed if gather == "stream" else keys
    values = [
        handler.load_input(InputContext(instance_name(template, key), consumer, None, None, None)) for key in order
    ]
    if gather == "collect":
        return values
    return _Stream(values)


class _Stream(Iterator[Any]):
    """The iterator a ``collect_stream()`` consumer receives (picklable, for workers)."""

    def __init__(self, values: list[Any]) -> None:
        self._values = values
        self._next = 0

    def __next__(self) -> Any:
        if self._next >= len(self._values):
            raise StopIteration
        value = self._values[self._next]
        self._next += 1
        return value
