"""``Resource``: shared objects injected by parameter name, with setup/teardown hooks."""

from __future__ import annotations

from pydantic_settings import BaseSettings


class Resource(BaseSettings):
    """A pydantic-settings model registered with ``CodeRepository(resources={key: obj})``.

    ``setup()`` runs once at ``resolve()``; ``teardown()`` at ``shutdown()``. Under the parallel
    executor a resource is rebuilt in the worker from its JSON fields, set up before the step and
    torn down after it, so state created in ``setup()`` must be re-creatable from the fields.
    """

    def setup(self) -> None:
        """Acquire what the resource needs (connections, sessions)."""

    def teardown(self) -> None:
        """Release what ``setup()`` acquired."""
