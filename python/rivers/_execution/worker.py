"""The parallel executor's worker side, and the by-reference transport of step specs.

Step functions and IO handlers travel to loky workers as ``(module, attribute)`` references and
are re-imported there; objects that cannot be referenced (closures, ``__main__`` objects) fall
back to pickling by value. Resources travel as pydantic JSON and are set up around the step.
"""

from __future__ import annotations

import importlib
import pickle
import sys
from collections.abc import Iterable
from typing import Any, get_args

from rivers._execution.capture import Captured, StepCapture
from rivers._execution.step import InputSpec, Persisted, StepSpec, run_failure_hooks, run_step_body


def object_ref(obj: Any, module_name: str | None) -> tuple[Any, ...]:
    """A reference to ``obj`` as a global of ``module_name`` when it is one, else the object."""
    module = sys.modules.get(module_name or "")
    if module is not None and module_name != "__main__":
        for attr, value in vars(module).items():
            if value is obj:
                return ("ref", module_name, attr)
    return ("obj", obj)


def resolve_ref(ref: tuple[Any, ...]) -> Any:
    if ref[0] == "ref":
        return getattr(importlib.import_module(ref[1]), ref[2])
    return ref[1]


def detach_enclosing_namespaces(classes: Iterable[Any]) -> None:
    """Lets locally defined pydantic classes (handlers, resources, config models) travel to
    workers without what surrounded their definition.

    pydantic keeps the local variables of the function that defined a model class
    (``__pydantic_parent_namespace__``) to resolve forward references later; a class that
    travels by value is pickled with that namespace, which may hold anything (the storage a
    test or script opened before defining the class, a connection, ...). A complete model no
    longer needs it, so it is dropped, for each class, its bases and the model classes of its
    fields."""
    from pydantic import BaseModel

    pending = [cls for cls in classes if isinstance(cls, type)]
    seen: set[type] = set()
    while pending:
        cls = pending.pop()
        if cls in seen or not issubclass(cls, BaseModel):
            continue
        seen.add(cls)
        pending.extend(cls.__mro__[1:])
        if cls.__dict__.get("__pydantic_parent_namespace__") is not None and cls.__pydantic_complete__:
            cls.__pydantic_parent_namespace__ = None
        for field in getattr(cls, "__pydantic_fields__", {}).values():
            annotation = field.annotation
            pending.extend(arg for arg in (annotation, *get_args(annotation)) if isinstance(arg, type))


def resource_ref(resource: Any) -> tuple[Any, ...]:
    from rivers._definitions.resources import Resource

    if isinstance(resource, Resource):
        return ("resource", type(resource), resource.model_dump_json())
    return ("obj", resource)


def _rebuild_resource(ref: tuple[Any, ...]) -> Any:
    if ref[0] == "resource":
        resource = ref[1].model_validate_json(ref[2])
        resource.setup()
        return resource
    return ref[1]


def _module_of(node: Any) -> str | None:
    fn = getattr(node, "fn", None)
    return getattr(fn, "__module__", None) if fn is not None else getattr(node, "_module", None)


def build_payload(spec: StepSpec) -> dict[str, Any]:
    """The picklable form of a step spec."""
    module = _module_of(spec.node)
    return {
        "node": spec.node,
        "outputs": {
            name: target._replace(handler=object_ref(target.handler, module)) for name, target in spec.outputs.items()
        },
        "inputs": {
            name: (source.upstream, object_ref(source.handler, module), source.asset_metadata)
            for name, source in spec.inputs.items()
        },
        "resources": {key: resource_ref(value) for key, value in spec.resources.items()},
        "config": spec.config_overrides,
        "run_id": spec.run_id,
        "output_selection": spec.output_selection,
        "constants": spec.constants,
        "step_key": spec.step_key,
        "partitions": spec.partitions,
    }


def _spec(payload: dict[str, Any], resources: dict[str, Any]) -> StepSpec:
    return StepSpec(
        node=payload["node"],
        outputs={
            name: target._replace(handler=resolve_ref(target.handler)) for name, target in payload["outputs"].items()
        },
        inputs={
            name: InputSpec(upstream, resolve_ref(handler), metadata)
            for name, (upstream, handler, metadata) in payload["inputs"].items()
        },
        resources=resources,
        config_overrides=payload["config"],
        run_id=payload["run_id"],
        output_selection=payload["output_selection"],
        constants=payload["constants"],
        step_key=payload["step_key"],
        partitions=payload["partitions"],
    )


def run_failure_hooks_in_worker(payload: dict[str, Any], message: str) -> None:
    """Worker entry: runs a step's failure hooks after its final failed attempt, in a worker
    like the step body, with the run's config for the node."""
    run_failure_hooks(_spec(payload, {}), message)


def execute(
    payload: dict[str, Any],
) -> tuple[list[Persisted], BaseException | None, Captured | None, list[tuple[str, str]]]:
    """Worker entry: runs one step; returns what it persisted, the exception it raised (if
    any), its captured output and the partitions its body marked failed."""
    capture = StepCapture()
    resources: dict[str, Any] = {}
    spec: StepSpec | None = None
    try:
        with capture:
            resources = {key: _rebuild_resource(ref) for key, ref in payload["resources"].items()}
            spec = _spec(payload, resources)
            persisted = run_step_body(spec)
        return persisted, None, capture.result(), spec.failed_partitions
    except Exception as exc:
        try:
            pickle.dumps(exc)
            transported: BaseException = exc
        except Exception:
            transported = RuntimeError(f"{type(exc).__name__}: {exc}")
        return (spec.persisted if spec is not None else []), transported, capture.result(), []
    finally:
        from rivers._definitions.resources import Resource

        for resource in resources.values():
            if isinstance(resource, Resource):
                try:
                    resource.teardown()
                except Exception:  # noqa: S110 - worker-side teardown errors are swallowed by contract
                    pass
