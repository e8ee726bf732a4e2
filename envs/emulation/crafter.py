"""Crafter by name (``crafter``): its 64 x 64 RGB image, 17 actions, achievements as episode stats.

Crafter speaks the old Gym API (``reset() -> obs``, ``step -> (obs, reward, done,
info)``, its own space classes); :class:`CrafterEnv` is the Gymnasium form. An
episode ends by death (terminated: ``info["discount"]`` is 0) or at ``length``
steps (truncated). At its end, ``info["episode_stats"]`` holds
``achievement_<name>``: 1.0 if the episode unlocked that achievement, else 0.0,
so the episode means the pool reports are each achievement's unlock rate.

A seed reproduces the world an episode starts in, not the whole episode: Crafter
picks creatures to despawn from a set of objects, whose order follows memory
addresses, so two runs from one seed part ways after the first despawn.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from .gym import EPISODE_STATS

NAME = "crafter"
# Crafter draws each new world from opensimplex noise, which numba compiles when it is installed
# (the [crafter] extra): 0.06 s a reset instead of 1.2 s, the larger part of a short episode's time.
SLOW_WORLDGEN = ("Crafter's world generator runs as plain Python without numba (about 1.2 s a reset, "
                 "most of a short episode's time): pip install numba")


def numba_missing() -> bool:
    return importlib.util.find_spec("numba") is None


class CrafterEnv(gymnasium.Env):
    """One Crafter world; ``kwargs`` go to ``crafter.Env`` (``area``, ``size``, ``length``, ``reward``...)."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, **kwargs: Any) -> None:
        import crafter

        self._env = crafter.Env(**kwargs)
        height, width = self._env._size
        self.observation_space = spaces.Box(0, 255, (height, width, 3), np.uint8)
        self.action_space = spaces.Discrete(self._env.action_space.n)
        self.achievements = tuple(crafter.constants.achievements)
        self._keys = tuple(f"achievement_{name}" for name in self.achievements)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            # Crafter derives each world from (seed, episode number).
            self._env._seed, self._env._episode = int(seed), 0
        return self._env.reset(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, done, info = self._env.step(int(action))
        terminated = done and info["discount"] == 0
        truncated = done and not terminated
        if done:
            unlocked = info["achievements"]
            info[EPISODE_STATS] = {key: float(unlocked[name] > 0)
                                   for key, name in zip(self._keys, self.achievements, strict=True)}
        return obs, float(reward), bool(terminated), bool(truncated), info


def creator_for(name: str, **kwargs: Any) -> Callable[[], gymnasium.Env]:
    if name != NAME:
        raise ValueError(f"unknown env '{name}' (Crafter's name is '{NAME}')")
    if numba_missing():
        warnings.warn(SLOW_WORLDGEN, RuntimeWarning, stacklevel=2)

    def create() -> gymnasium.Env:
        return CrafterEnv(**kwargs)

    return create
