"""The one creator contract: what a callable handed to ``envs.make`` or a pool must be.

- A plain callable is a creator of **one** Gymnasium env or PettingZoo env;
  ``make(creator, num_envs, seed, **kwargs)`` calls it ``num_envs`` times as
  ``creator(**kwargs)`` (options of the emulation layer, such as ``drop_keys``, are taken
  out first).
- A vector-env factory is a distinct, named form: a callable marked with
  :func:`vector_env` (every :class:`envs.NativeEnv` subclass is marked), called once as
  ``factory(num_envs=..., seed=..., buffers=..., **kwargs)`` and returning the vector
  itself. Nothing is guessed from a signature.
- ``"package.module:function"`` names a creator (or a marked factory) by import path, as
  ``appliance train --env`` takes it; when the module has no such callable, the name is a
  Gymnasium id registered by that module (``module:Id``, as ``gymnasium.make`` has it).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any, TypeGuard, TypeVar, cast

F = TypeVar("F", bound=Callable[..., Any])


class CreatorError(ValueError):
    """A creator could not be called, or returned something that is not an env."""


def vector_env(factory: F) -> F:
    """Marks ``factory`` as a vector-env factory: ``factory(num_envs=, seed=, buffers=, **kwargs)``."""
    factory.vector_env = True  # type: ignore[attr-defined]
    return factory


def is_vector_env(creator: Any) -> TypeGuard[Callable[..., Any]]:
    return getattr(creator, "vector_env", False) is True


def label(creator: Any) -> str:
    """A name a user recognizes: ``module.function``, ``partial(module.function, k=v)``."""
    if isinstance(creator, functools.partial):
        args = [repr(a) for a in creator.args] + [f"{k}={v!r}" for k, v in creator.keywords.items()]
        return f"partial({label(creator.func)}{''.join(', ' + a for a in args)})"
    name = getattr(creator, "__qualname__", None) or getattr(creator, "__name__", None)
    if name is None:
        return repr(creator)
    module = getattr(creator, "__module__", None)
    return f"{module}.{name}" if module and module != "builtins" else name


def call(creator: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """``creator(**kwargs)``, with any error turned into one sentence naming the creator."""
    try:
        return creator(**kwargs)
    except Exception as exc:
        given = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise CreatorError(
            f"env creator {label(creator)} raised {type(exc).__name__} when called with ({given}): {exc}"
        ) from exc


def from_path(name: str) -> Callable[..., Any] | None:
    """The callable ``"package.module:function"`` names, or None when ``name`` is not that form."""
    if ":" not in name or name.startswith(("gym:", "atari/", "pettingzoo.")):
        return None
    module_name, attr = name.split(":", 1)
    if not module_name or not all(part.isidentifier() for part in (*module_name.split("."), *attr.split("."))):
        return None
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CreatorError(f"env '{name}': cannot import module '{module_name}' ({exc})") from exc
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
    if obj is None or not callable(obj):
        return None  # a Gymnasium id that the module registers
    return cast("Callable[..., Any]", obj)
