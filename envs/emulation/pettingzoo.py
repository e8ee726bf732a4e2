"""PettingZoo parallel (and AEC) envs, padded to ``possible_agents`` rows per env."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
from pettingzoo import AECEnv, ParallelEnv
from pettingzoo.utils.conversions import aec_to_parallel

from .layout import Layout, layout_of
from .vector import BufferSpec, PythonEnvVector, spec_from_layouts


def as_parallel(env: Any, name: str = "pettingzoo") -> ParallelEnv:
    """The env as a ParallelEnv; AEC envs go through PettingZoo's own ``aec_to_parallel``."""
    if isinstance(env, ParallelEnv):
        return env
    if isinstance(env, AECEnv):
        return aec_to_parallel(env)
    got = type(env).__name__
    raise ValueError(f"{name}: creator must return a PettingZoo ParallelEnv or AECEnv, got {got}")


def creator_for(module_path: str, **kwargs: Any) -> Callable[[], ParallelEnv]:
    """A creator for a PettingZoo module such as ``pettingzoo.butterfly.knights_archers_zombies_v11``."""
    try:
        module = importlib.import_module(module_path)
    except ImportError as exc:
        raise ValueError(f"unknown env '{module_path}': cannot import it ({exc})") from exc
    if hasattr(module, "parallel_env"):
        return lambda: module.parallel_env(**kwargs)
    if hasattr(module, "env"):
        return lambda: aec_to_parallel(module.env(**kwargs))
    raise ValueError(f"unknown env '{module_path}': the module has neither parallel_env nor env")


def layouts(
    env: ParallelEnv, drop_keys: Iterable[str] = (), drop_unsupported: bool = False, name: str = "pettingzoo"
) -> tuple[Layout, Layout]:
    """Layouts shared by every possible agent; rows need one space for all of them."""
    agents = list(env.possible_agents)
    if not agents:
        raise ValueError(f"{name}: env has no possible_agents")
    first = agents[0]
    for agent in agents[1:]:
        if env.observation_space(agent) != env.observation_space(first):
            raise ValueError(f"{name}: agent '{agent}' has a different observation space than '{first}'")
        if env.action_space(agent) != env.action_space(first):
            raise ValueError(f"{name}: agent '{agent}' has a different action space than '{first}'")
    obs = layout_of(env.observation_space(first), drop_keys, drop_unsupported, what="observation")
    act = layout_of(env.action_space(first), what="action")
    return obs, act


def buffer_spec(
    creator: Callable[[], Any], num_envs: int, drop_keys: Iterable[str] = (), drop_unsupported: bool = False
) -> BufferSpec:
    """Buffers for ``num_envs`` envs of ``len(possible_agents)`` rows each; builds one env."""
    env = as_parallel(creator())
    try:
        obs, act = layouts(env, drop_keys, drop_unsupported)
        rows = int(num_envs) * len(env.possible_agents)
    finally:
        env.close()
    return spec_from_layouts(obs, act, rows)


class PettingZooVecEnv(PythonEnvVector):
    """``num_envs`` PettingZoo parallel envs, row ``e * P + j`` for agent ``possible_agents[j]``.

    Absent agents (dead, not yet arrived) have ``masks`` false, zero observation,
    reward 0 and no flags; an agent's ending step is reported on its row with its
    flag set. An env resets (same step) once it has no agents left; then its rows
    hold the next episode's first observations, and ``final_observations`` the
    last ones of rows that were truncated. Env ``e`` is seeded with ``seed + e``.
    Episode statistics are per env episode: the summed reward of all its agents
    and its length in env steps.
    """

    frames_per_step = 1

    def __init__(
        self,
        creator: Callable[[], Any],
        num_envs: int = 1,
        seed: int = 0,
        buffers: Mapping[str, np.ndarray] | None = None,
        drop_keys: Iterable[str] = (),
        drop_unsupported: bool = False,
        name: str = "pettingzoo",
    ) -> None:
        if not isinstance(num_envs, (int, np.integer)) or isinstance(num_envs, bool) or num_envs < 1:
            raise ValueError(f"{name}: parameter 'num_envs' must be a whole number >= 1, got {num_envs!r}")
        self.name = name
        self.num_envs = int(num_envs)
        self.envs = [as_parallel(creator(), name) for _ in range(self.num_envs)]
        self.possible_agents = list(self.envs[0].possible_agents)
        self.agents_per_env = len(self.possible_agents)
        self.num_agents = self.num_envs * self.agents_per_env
        self._index = {agent: j for j, agent in enumerate(self.possible_agents)}
        self.obs_layout, self.act_layout = layouts(self.envs[0], drop_keys, drop_unsupported, name)
        self._bind(name, buffers, seed)

    def _rows(self, e: int) -> slice:
        return slice(e * self.agents_per_env, (e + 1) * self.agents_per_env)

    def _write_reset(self, e: int, observations: Mapping[str, Any]) -> None:
        rows = self._rows(e)
        self.observations[rows] = 0
        self.masks[rows] = False
        base = rows.start
        for agent, obs in observations.items():
            row = base + self._index[agent]
            self._obs.write(row, obs)
            self.masks[row] = True

    def reset(self, seed: int = 0) -> np.ndarray:
        """Reseeds env ``e`` with ``seed + e`` and starts new episodes."""
        for e, env in enumerate(self.envs):
            observations, _ = env.reset(seed=int(seed) + e)
            self._write_reset(e, observations)
        self.rewards[:] = 0
        self.terminals[:] = False
        self.truncations[:] = False
        self._returns[:] = 0
        self._lengths[:] = 0
        return self.observations

    def step(self, actions: np.ndarray | None = None) -> None:
        """Steps every env with its live agents' rows of ``self.actions``."""
        if actions is not None:
            self.actions[...] = actions
        self.rewards[:] = 0
        self.terminals[:] = False
        self.truncations[:] = False
        for e, env in enumerate(self.envs):
            base = e * self.agents_per_env
            acts = {agent: self._act.read(base + self._index[agent]) for agent in env.agents}
            observations, rewards, terminations, truncations, _ = env.step(acts)
            rows = self._rows(e)
            self.observations[rows] = 0
            self.masks[rows] = False
            for agent, obs in observations.items():
                row = base + self._index[agent]
                self._obs.write(row, obs)
                self.masks[row] = True
            for agent, reward in rewards.items():
                self.rewards[base + self._index[agent]] = reward
                self._returns[e] += reward
            for agent, done in terminations.items():
                self.terminals[base + self._index[agent]] = bool(done)
            for agent, done in truncations.items():
                row = base + self._index[agent]
                self.truncations[row] = bool(done) and not self.terminals[row]
                if self.truncations[row] and agent in observations:
                    self._final.write(row, observations[agent])
            self._lengths[e] += 1
            if not env.agents:
                self._log.add(episode_return=self._returns[e], episode_length=self._lengths[e])
                self._returns[e] = 0
                self._lengths[e] = 0
                observations, _ = env.reset()
                self._write_reset(e, observations)

    def __repr__(self) -> str:
        return f"PettingZooVecEnv({self.name!r}, num_envs={self.num_envs}, num_agents={self.num_agents})"
