"""Success and failure hooks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

ConfigT = TypeVar("ConfigT")


class Hook:
    """A function run after an asset's step succeeds (``Hook.success``) or finally fails
    (``Hook.failure``). It receives one :class:`HookContext`."""

    hook_type: str = ""

    def __init__(self, func: Callable[..., Any] | None = None, *, name: str | None = None) -> None:
        self._func = func
        self._name = name

    @property
    def name(self) -> str:
        if self._name is not None:
            return self._name
        return getattr(self._func, "__name__", type(self).__name__)

    @property
    def func(self) -> Callable[..., Any] | None:
        return self._func

    def __call__(self, func: Callable[..., Any]) -> Hook:
        """Decorator form (``@Hook.success(name=...)``): attaches ``func``; calling a hook that
        already has a function runs it with a :class:`HookContext`."""
        if self._func is None:
            if not callable(func):
                raise TypeError("a hook decorates a function")
            self._func = func
            return self
        return self._func(func)

    @staticmethod
    def success(func: Callable[..., Any] | None = None, *, name: str | None = None) -> Hook:
        return _Success(func, name=name)

    @staticmethod
    def failure(func: Callable[..., Any] | None = None, *, name: str | None = None) -> Hook:
        return _Failure(func, name=name)

    # The variant classes are defined below and attached under these names.
    Success: ClassVar[type[_Success]]
    Failure: ClassVar[type[_Failure]]

    def __repr__(self) -> str:
        return f"Hook.{self.hook_type}({self.name!r})"


class _Success(Hook):
    hook_type = "success"


class _Failure(Hook):
    hook_type = "failure"


_VARIANTS: tuple[tuple[str, type[Hook]], ...] = (("Success", _Success), ("Failure", _Failure))
for _name, _cls in _VARIANTS:
    _cls.__name__ = _name
    _cls.__qualname__ = f"Hook.{_name}"
    setattr(Hook, _name, _cls)


class HookContext(Generic[ConfigT]):
    """What a hook receives."""

    def __init__(
        self,
        asset_name: str,
        run_id: str,
        hook_type: str,
        output: Any | None = None,
        error: str | None = None,
        metadata: dict[str, str] | None = None,
        config: ConfigT | None = None,
    ) -> None:
        self.asset_name = asset_name
        self.run_id = run_id
        self.hook_type = hook_type
        self.output = output
        self.error = error
        self.metadata = metadata
        self._config = config

    @property
    def config(self) -> ConfigT | None:
        return self._config

    def __repr__(self) -> str:
        return f"HookContext(asset_name={self.asset_name!r}, hook_type={self.hook_type!r})"
