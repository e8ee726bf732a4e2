"""Gymnasium single-agent envs stepped serially into the same buffers as the native envs."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import gymnasium
import numpy as np

from . import steploop
from .layout import Layout, layout_of
from .vector import BufferSpec, PythonEnvVector, spec_from_layouts

# An env may report per-episode statistics of its own (a dict of numbers) under this
# info key on the step that ends an episode; they are averaged with return and length.
EPISODE_STATS = "episode_stats"


def layouts(
    env: gymnasium.Env, drop_keys: Iterable[str] = (), drop_unsupported: bool = False
) -> tuple[Layout, Layout]:
    """Observation and action layouts of one instance."""
    obs = layout_of(env.observation_space, drop_keys, drop_unsupported, what="observation")
    act = layout_of(env.action_space, what="action")
    return obs, act


def buffer_spec(
    creator: Callable[[], gymnasium.Env],
    num_envs: int,
    drop_keys: Iterable[str] = (),
    drop_unsupported: bool = False,
) -> BufferSpec:
    """Buffers for ``num_envs`` instances; builds one instance to read its spaces."""
    env = creator()
    try:
        obs, act = layouts(env, drop_keys, drop_unsupported)
    finally:
        env.close()
    return spec_from_layouts(obs, act, int(num_envs))


class GymnasiumVecEnv(PythonEnvVector):
    """``num_envs`` Gymnasium envs stepped one after the other in the calling process.

    Follows the native contract: ``step()`` reads ``actions`` in place, an ended
    episode resets in the same step (its flags and last reward stay, the
    observation is the next episode's first, ``final_observations`` keeps the
    last one for truncated rows). A step that is both terminated and truncated
    counts as terminated: there is nothing to bootstrap from. Instance ``i`` is
    seeded with ``seed + i``.
    """

    frames_per_step = 1

    def __init__(
        self,
        creator: Callable[[], gymnasium.Env],
        num_envs: int = 1,
        seed: int = 0,
        buffers: Mapping[str, np.ndarray] | None = None,
        drop_keys: Iterable[str] = (),
        drop_unsupported: bool = False,
        name: str = "gymnasium",
    ) -> None:
        if not isinstance(num_envs, (int, np.integer)) or isinstance(num_envs, bool) or num_envs < 1:
            raise ValueError(f"{name}: parameter 'num_envs' must be a whole number >= 1, got {num_envs!r}")
        self.name = name
        self.num_envs = int(num_envs)
        self.num_agents = self.num_envs
        self.agents_per_env = 1
        self.envs = [creator() for _ in range(self.num_envs)]
        first = self.envs[0]
        if not isinstance(first, gymnasium.Env):
            raise ValueError(f"{name}: creator must return a gymnasium.Env, got {type(first).__name__}")
        self.obs_layout, self.act_layout = layouts(first, drop_keys, drop_unsupported)
        self._bind(name, buffers, seed)

    def reset(self, seed: int = 0) -> np.ndarray:
        """Reseeds instance ``i`` with ``seed + i`` and starts new episodes."""
        for i, env in enumerate(self.envs):
            obs, _ = env.reset(seed=int(seed) + i)
            self._obs.write(i, obs)
        self.rewards[:] = 0
        self.terminals[:] = False
        self.truncations[:] = False
        self.masks[:] = True
        self._returns[:] = 0
        self._lengths[:] = 0
        return self.observations

    def _bind(self, name: str, buffers: Mapping[str, np.ndarray] | None, seed: int) -> None:
        super()._bind(name, buffers, seed)
        # Ended episodes' count, return sum and length sum since the last episode_stats().
        self._totals = np.zeros(3, dtype=np.float64)
        self._flags = self.terminals.view(np.uint8), self.truncations.view(np.uint8)
        self._loop_with(steploop.step_loop, steploop.rows)

    def _loop_with(self, loop: Callable[..., Any], rows: Callable[[Any], Any]) -> None:
        """The step loop and its observation writers (see :mod:`.steploop`; tests pick each)."""
        self._loop = loop
        self._obs_rows, self._final_rows = rows(self._obs), rows(self._final)

    def step(self, actions: np.ndarray | None = None) -> None:
        """Steps every instance with ``self.actions`` (copied from ``actions`` if given)."""
        if actions is not None:
            self.actions[...] = actions
        # Per env only the env's own step, its reward, flags and counters, and the observation's
        # copy into its row (:mod:`.steploop`); episode sums wait in _totals for episode_stats,
        # and only the infos of ended episodes come back to Python. Every row's flags are
        # stored: the actor may flag rows itself (a restart's truncation).
        infos = self._loop(self.envs, self._act.read_all(), self._obs_rows, self._final_rows, self.rewards,
                           self._returns, self._lengths, *self._flags, self._totals)
        if infos is not None:
            for info in infos:
                extra = info.get(EPISODE_STATS) if isinstance(info, dict) else None
                if extra:
                    self._log.add_sums(extra)

    def episode_stats(self) -> dict[str, float]:
        """Means over the episodes finished since the last call (``episodes``: their count)."""
        totals = self._totals
        if totals[0]:
            self._log.add_many(int(totals[0]), episode_return=totals[1], episode_length=totals[2])
            totals[:] = 0
        return self._log.take()

    def __repr__(self) -> str:
        return f"GymnasiumVecEnv({self.name!r}, num_envs={self.num_envs})"


def creator_for(env_id: str, **kwargs: Any) -> Callable[[], gymnasium.Env]:
    """A creator for a Gymnasium id; imports the plugin package that registers it when needed."""
    _import_plugin(env_id)
    if env_id not in gymnasium.registry and ":" not in env_id:
        raise ValueError(f"unknown env '{env_id}': not a native, atari/, pettingzoo. or Gymnasium id")

    def create() -> gymnasium.Env:
        return gymnasium.make(env_id, **kwargs)

    return create


# Gymnasium ids whose registering package is not imported by gymnasium itself.
PLUGINS = {"MiniGrid-": "minigrid", "BabyAI-": "minigrid", "ALE/": "ale_py"}


def _import_plugin(env_id: str) -> None:
    import importlib

    for prefix, module in PLUGINS.items():
        if env_id.startswith(prefix) and env_id not in gymnasium.registry:
            importlib.import_module(module)
