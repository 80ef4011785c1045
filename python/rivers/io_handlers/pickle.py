"""``PickleIOHandler``: values pickled into an obstore object store."""

from __future__ import annotations

import pickle
import time
from typing import Any

from pydantic_settings import SettingsConfigDict

from rivers._execution.io_context import InputContext, OutputContext
from rivers.io_handlers.base import BuiltinIOHandler, partition_suffix


class PickleIOHandler(BuiltinIOHandler):
    """Pickles values to ``[prefix/]name.pkl`` (``[prefix/]name/<partition>/data.pkl`` when
    partitioned) in any obstore store."""

    model_config = SettingsConfigDict(arbitrary_types_allowed=True)

    store: Any
    prefix: str = ""

    def _key(self, context: OutputContext | InputContext) -> str:
        suffix = partition_suffix(context.partition)
        key = f"{context.asset_name}.pkl" if suffix is None else f"{context.asset_name}/{suffix}/data.pkl"
        return f"{self.prefix}/{key}" if self.prefix else key

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        import obstore

        key = self._key(context)
        started = time.perf_counter()
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        obstore.put(self.store, key, data)
        context.add_output_metadata(
            {
                "path": key,
                "serializer": "pickle",
                "size_bytes": len(data),
                "write_duration_s": round(time.perf_counter() - started, 6),
            }
        )

    def load_input(self, context: InputContext) -> Any:
        import obstore

        data = obstore.get(self.store, self._key(context)).bytes()
        return pickle.loads(bytes(data))
