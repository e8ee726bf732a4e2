"""Every env the appliance can make, by name."""

from __future__ import annotations

from typing import Any

from .native import KINDS, NativeEnv

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


def names() -> list[str]:
    """Names accepted by :func:`make`."""
    return sorted(KINDS)


def make(name: str, num_envs: int = 1, seed: int = 0, preset: str | None = None, **params: Any) -> NativeEnv:
    """Builds ``num_envs`` instances of env ``name`` stepping into fresh (or given) buffers.

    ``buffers=`` hands in caller-owned arrays (e.g. shared memory); see
    :func:`envs.native.buffer_spec` for their shapes and dtypes.
    """
    if name not in KINDS:
        raise ValueError(f"unknown env '{name}' (known: {', '.join(names())})")
    if preset is not None:
        presets = PRESETS.get(name, {})
        if preset not in presets:
            known = ", ".join(sorted(presets)) or "none"
            raise ValueError(f"{name}: unknown preset '{preset}' (known: {known})")
        params = {**presets[preset], **params}
    return NativeEnv(name, num_envs=num_envs, seed=seed, **params)
