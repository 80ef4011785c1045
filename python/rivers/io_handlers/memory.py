"""``InMemoryIOHandler``: values kept by reference in the handler instance, for one process."""

from __future__ import annotations

import sys
from typing import Any

from pydantic import PrivateAttr

from rivers._execution.io_context import InputContext, OutputContext
from rivers.io_handlers.base import BuiltinIOHandler, storage_key


class InMemoryIOHandler(BuiltinIOHandler):
    """Stores values in a private dict. Values live as long as the instance and never cross a
    process boundary."""

    _values: dict[str, Any] = PrivateAttr(default_factory=dict)

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        self._values[storage_key(context)] = obj
        context.add_output_metadata({"storage": "memory", "size_bytes": sys.getsizeof(obj)})

    def load_input(self, context: InputContext) -> Any:
        key = storage_key(context)
        try:
            return self._values[key]
        except KeyError:
            raise KeyError(
                f"InMemoryIOHandler has no value for '{key}': it was never materialized in this process "
                "(in-memory values do not survive the process or cross into worker processes)"
            ) from None
