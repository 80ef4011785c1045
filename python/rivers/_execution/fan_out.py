"""The Python half of dynamic fan-out: turning a producer's value into keyed elements, and
gathering instance outputs for ``collect()`` / ``collect_stream()`` consumers. The engine owns
the expansion itself (instance steps, barriers, concurrency caps) and hands a live
``collect_stream()`` consumer the instances' outcomes as they end (``_core.InstanceFeed``)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
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


def gathered(gather: str, fan_in: Any, consumer: str, handler: Any) -> Any:
    """The value of a parameter wired to a fan-out: a ``collect()`` list (element order), or
    what a ``collect_stream()`` consumer iterates (completion order, element order when
    ordered), opened afresh by each attempt of the step (``StreamSource.open``)."""

    def load(key: str) -> Any:
        return handler.load_input(InputContext(instance_name(fan_in.template, key), consumer, None, None, None))

    if gather == "collect":
        return [load(key) for key in fan_in.keys]
    ordered = gather == "stream_ordered"
    feed = fan_in.outcomes
    if feed is None:  # the step also collect()s this fan-out: every instance succeeded
        order = fan_in.keys if ordered else fan_in.completed
        return _Preloaded(fan_in.template, [(key, load(key), None) for key in order])
    if fan_in.live:
        return _LiveStream(feed, fan_in.template, list(fan_in.keys), ordered, load)
    # Every instance has ended: read the values now, so that the stream can travel to a worker.
    delivered = feed.delivered()
    if ordered:
        failures = dict(delivered)
        delivered = [(key, failures.get(key, "it had not ended when the step started")) for key in fan_in.keys]
    items = [(key, None if failure is not None else load(key), failure) for key, failure in delivered]
    return _Preloaded(fan_in.template, items)


def _failed(template: str, key: str, message: str) -> ExecutionError:
    return ExecutionError(f"fan-out instance '{instance_name(template, key)}' failed: {message}")


class StreamSource(ABC):
    """What a ``collect_stream()`` parameter is bound to on a step spec: each attempt of the
    step opens a fresh iterator (a generator) over the instances' outputs."""

    @abstractmethod
    def open(self) -> Iterator[Any]: ...


class _Preloaded(StreamSource):
    """The outputs of instances that have all ended, read before the step started
    (picklable, for workers): ``(key, value, failure message or None)`` in stream order."""

    def __init__(self, template: str, items: list[tuple[str, Any, str | None]]) -> None:
        self._template = template
        self._items = items

    def open(self) -> Iterator[Any]:
        return self._iterate()

    def _iterate(self) -> Iterator[Any]:
        for key, value, failure in self._items:
            if failure is not None:
                raise _failed(self._template, key, failure)
            yield value


class _LiveStream(StreamSource):
    """The outcomes of instances still running, read from the engine's feed as they end. Only
    in the process that drives the run, where the feed is."""

    def __init__(self, feed: Any, template: str, keys: list[str], ordered: bool, load: Callable[[str], Any]) -> None:
        self._feed = feed
        self._template = template
        self._keys = keys
        self._ordered = ordered
        self._load = load

    def open(self) -> Iterator[Any]:
        return self._in_element_order() if self._ordered else self._in_completion_order()

    def _outcome(self, index: int) -> tuple[str, str | None]:
        """The ``index``-th outcome to be delivered; blocks (without the GIL) until it is."""
        outcome = self._feed.outcome(index)
        if outcome is None:
            raise ExecutionError(
                f"the run ended before every instance of '{self._template}' did ({index} of {len(self._keys)} ended)"
            )
        return outcome

    def _value(self, key: str, failure: str | None) -> Any:
        if failure is not None:
            raise _failed(self._template, key, failure)
        return self._load(key)

    def _in_completion_order(self) -> Iterator[Any]:
        for index in range(len(self._keys)):
            yield self._value(*self._outcome(index))

    def _in_element_order(self) -> Iterator[Any]:
        ended: dict[str, str | None] = {}
        read = 0
        for key in self._keys:
            while key not in ended:
                ended_key, failure = self._outcome(read)
                ended[ended_key] = failure
                read += 1
            yield self._value(key, ended.pop(key))
