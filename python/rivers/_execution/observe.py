"""Observing external assets: run the observation function, merge its metadata."""

from __future__ import annotations

import inspect
from typing import Any

from rivers._definitions.metadata import MetadataValue
from rivers._definitions.results import Materialization, Observation, Output
from rivers._execution.context import AssetExecutionContext
from rivers._execution.coroutines import run_coroutine
from rivers._execution.step import build_config
from rivers.exceptions import ExecutionError, ResultDefinitionError


def observe_asset(asset: Any, resources: dict[str, Any]) -> tuple[dict[str, MetadataValue], str | None]:
    """Calls ``asset.observe_fn`` and returns the merged metadata and the observed data version.

    Context metadata is overlaid by the returned ``Observation``'s; its data version wins over
    one registered on the context.
    """
    config = build_config(asset, None)
    context: AssetExecutionContext[Any] = AssetExecutionContext(
        asset.name, asset.tags, asset.kinds, asset.group, None, asset.metadata, None, False, [asset.name], config
    )
    kwargs: dict[str, Any] = {}
    for param in asset._params:
        if param.role in ("context", "context_by_name"):
            kwargs[param.name] = context
        elif param.name in resources:
            kwargs[param.name] = resources[param.name]
        elif not param.has_default:
            raise ExecutionError(
                f"parameter '{param.name}' of the observation function of '{asset.name}' matches no resource"
            )
    try:
        result = asset.observe_fn(**kwargs)
        if inspect.iscoroutine(result):
            result = run_coroutine(result)
    except Exception as err:
        raise ExecutionError(f"observing '{asset.name}' failed: {type(err).__name__}: {err}") from err
    if result is not None and not isinstance(result, Observation):
        kind = "an Output or Materialization" if isinstance(result, (Output, Materialization)) else repr(result)
        raise ResultDefinitionError(
            f"the observation function of '{asset.name}' returned {kind}; it must return an Observation or None"
        )
    metadata = dict(context._output_metadata)
    version = context.drain_data_version()
    if result is not None:
        metadata.update(result.metadata or {})
        version = result.data_version or version
    return metadata, version
