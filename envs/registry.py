"""Every env the appliance can make: native C envs by name, everything else through emulation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import creators, emulation
from .native import KINDS, NativeEnv
from .native import buffer_spec as native_buffer_spec

# Named parameter sets: make("snake", preset="large").
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "grid": {
        "rooms": {"width": 16, "height": 16, "agents": 4, "goals": 1, "maze": 0, "room_size": 4},
        "maze": {"width": 15, "height": 15, "agents": 4, "goals": 1, "maze": 1, "max_steps": 512},
        "large": {"width": 64, "height": 64, "agents": 32, "goals": 4, "maze": 0, "room_size": 7,
                  "max_steps": 1024},
    },
    "snake": {
        # Many small maps with a few snakes each: use num_envs in the hundreds or thousands.
        "small": {"width": 16, "height": 16, "snakes": 4, "food": 8, "max_length": 64},
        # Mid-size maps, crowded: num_envs in the tens.
        "medium": {"width": 64, "height": 64, "snakes": 64, "food": 128, "max_length": 256},
        # One big shared map with 4096 snakes: meant for num_envs=1.
        "large": {"width": 512, "height": 512, "snakes": 4096, "food": 4096, "max_length": 256},
    },
}

# Emulated envs listed by names(); any other Gymnasium id, PettingZoo module or ROM works too.
EMULATED = (
    tuple(f"atari/{game}" for game in emulation.atari.GAMES)
    + tuple(f"nethack/{task}" for task in sorted(emulation.nethack.TASKS))
    + ("minihack/room-5x5", "minihack/room-15x15", emulation.crafter.NAME)
)

# Env names whose package is optional: name prefix -> (module it needs, the pyproject extra that installs it).
EXTRAS: dict[str, tuple[str, str]] = {
    "atari/": ("ale_py", "atari"),
    "ALE/": ("ale_py", "atari"),
    "MiniGrid-": ("minigrid", "minigrid"),
    "BabyAI-": ("minigrid", "minigrid"),
    "pettingzoo.butterfly.": ("pygame", "butterfly"),
    "nethack/": ("nle", "nethack"),
    "minihack/": ("minihack", "nethack"),
    "crafter": ("crafter", "crafter"),
}


class MissingExtra(ValueError):
    """An env whose optional package is not installed: the message names the ``pip install`` that adds it."""


def missing_extra(name: Any) -> str | None:
    """The sentence to show when ``name`` needs an extra that is not installed, else None."""
    import importlib.util

    if not isinstance(name, str):
        return None
    bare = name[len("gym:"):] if name.startswith("gym:") else name
    for prefix, (module, extra) in EXTRAS.items():
        if bare.startswith(prefix) and importlib.util.find_spec(module) is None:
            return f"env '{name}' needs the [{extra}] extra ({module} is not installed): pip install -e \".[{extra}]\""
    return None


def check_extra(name: Any) -> None:
    """Raises :class:`MissingExtra` when ``name`` needs an optional package that is absent."""
    sentence = missing_extra(name)
    if sentence is not None:
        raise MissingExtra(sentence)


def native_names() -> list[str]:
    """The C envs (one header each in envs/c/)."""
    return sorted(KINDS)


def names() -> list[str]:
    """Names listed by ``appliance envs``; :func:`make` also takes Gymnasium ids and PettingZoo modules."""
    return sorted(KINDS) + list(EMULATED)


def _with_preset(name: str | Callable[..., Any], preset: str | None, params: dict[str, Any]) -> dict[str, Any]:
    if preset is None:
        return params
    presets = PRESETS.get(name, {}) if isinstance(name, str) else {}
    if preset not in presets:
        known = ", ".join(sorted(presets)) or "none"
        raise ValueError(f"{name}: unknown preset '{preset}' (known: {known})")
    return {**presets[preset], **params}


def make(
    name: str | Callable[..., Any], num_envs: int = 1, seed: int = 0, preset: str | None = None, **params: Any
) -> Any:
    """Builds ``num_envs`` instances of env ``name`` stepping into fresh (or given) buffers.

    ``name`` is a native env, ``atari/<game>``, a Gymnasium id (``gym:`` prefix
    optional), a ``pettingzoo.`` module path, a creator of one Gymnasium or
    PettingZoo env (a callable, or ``"package.module:function"``), or a factory marked
    with :func:`envs.vector_env` (see :mod:`envs.creators`). ``buffers=`` hands in
    caller-owned arrays (e.g. shared memory); :func:`buffer_spec` gives their shapes
    and dtypes.
    """
    params = _with_preset(name, preset, params)
    check_extra(name)
    name = _creator_of(name)
    if creators.is_vector_env(name):
        return creators.call(name, {"num_envs": num_envs, "seed": seed, **params})
    if isinstance(name, str) and name in KINDS:
        return NativeEnv(name, num_envs=num_envs, seed=seed, **params)
    if isinstance(name, str) and not _looks_emulated(name):
        raise ValueError(f"unknown env '{name}' (known: {', '.join(names())}, or a Gymnasium id / "
                         "pettingzoo. module)")
    return emulation.make(name, num_envs=num_envs, seed=seed, **params)


def buffer_spec(
    name: str | Callable[..., Any], num_envs: int, preset: str | None = None, **params: Any
) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of every buffer ``make(name, num_envs, **params)`` steps into."""
    params = _with_preset(name, preset, params)
    check_extra(name)
    name = _creator_of(name)
    if creators.is_vector_env(name):
        env = make(name, num_envs, **params)
        try:
            return {key: (a.shape, a.dtype) for key, a in env.buffers.items()}
        finally:
            env.close()
    if isinstance(name, str) and name in KINDS:
        return native_buffer_spec(name, num_envs, **params)
    if isinstance(name, str) and not _looks_emulated(name):
        raise ValueError(f"unknown env '{name}' (known: {', '.join(names())}, or a Gymnasium id / "
                         "pettingzoo. module)")
    return emulation.buffer_spec(name, num_envs, **params)


def _creator_of(name: Any) -> Any:
    """``"package.module:function"`` as the callable it names; anything else unchanged."""
    if isinstance(name, str):
        return creators.from_path(name) or name
    if not callable(name):
        raise ValueError(f"env must be a name or a creator callable, got {type(name).__name__}")
    return name


def _looks_emulated(name: str) -> bool:
    """Cheap check before importing anything: is ``name`` worth handing to emulation?"""
    import gymnasium

    from .emulation.gym import PLUGINS

    return (
        name.startswith(("atari/", "pettingzoo.", "gym:", "nethack/", "minihack/"))
        or name == "crafter"
        or ":" in name
        or name in gymnasium.registry
        or name.startswith(tuple(PLUGINS))
    )
