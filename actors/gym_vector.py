"""A ``gymnasium.vector.VectorEnv`` over a synchronous pool or a plain NativeEnv.

For CleanRL/SB3-style loops: ``reset()``/``step()`` return numpy batches, autoreset
is SAME_STEP (as the C envs do it), and ``infos`` carry RecordEpisodeStatistics-style
``episode`` entries (``r``, ``l``, ``t`` with mask ``_episode``) tracked here with
vectorized numpy. ``final_obs`` (mask ``_final_obs``) is given for truncated rows,
the only ones whose final observation matters (bootstrapping); terminated rows end
with value zero and carry none. Each row (agent) counts as one env of the vector.
"""

from __future__ import annotations

import time
from typing import Any, cast

import gymnasium
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from .actions import check_actions


class GymVectorEnv(gymnasium.vector.VectorEnv):
    """Wraps ``source``: an ActorPool/SerialPool with one batch, or a NativeEnv."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, source: Any, copy: bool = True, episode_info: bool = True) -> None:
        """``episode_info=False`` leaves ``infos["episode"]`` to Gymnasium's ``RecordEpisodeStatistics``."""
        self.source = source
        self.episode_info = episode_info
        self._is_pool = hasattr(source, "recv")
        if self._is_pool and getattr(source, "batch_rows", None) != source.num_agents:
            raise ValueError("source must be synchronous: a pool with batch_size == num_envs")
        self.num_envs = source.num_agents
        self.single_observation_space = source.single_observation_space
        self.single_action_space = source.single_action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.copy = copy
        self._returns = np.zeros(self.num_envs, np.float64)
        self._lengths = np.zeros(self.num_envs, np.int64)
        self._start = time.perf_counter()
        self._action_shape: tuple[int, ...] = (self.num_envs, *cast("tuple[int, ...]", self.single_action_space.shape))

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        seed = int(self.np_random.integers(2**31)) if seed is None else seed
        if self._is_pool:
            self.source.async_reset(seed)
            obs = self.source.recv()[0]
        else:
            obs = self.source.reset(seed)
        self._returns[:] = 0
        self._lengths[:] = 0
        self._start = time.perf_counter()
        return (obs.copy() if self.copy else obs), {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        actions = check_actions(actions, self.single_action_space, self._action_shape)
        if self._is_pool:
            self.source.send(actions)
            obs, rewards, terminals, truncations, _, _ = self.source.recv()
        else:
            s = self.source
            np.copyto(s.actions, actions, casting="unsafe")
            s.step()
            obs, rewards, terminals, truncations = s.observations, s.rewards, s.terminals, s.truncations
        self._returns += rewards
        self._lengths += 1
        infos: dict[str, Any] = {}
        done = terminals | truncations
        if self.episode_info and done.any():
            elapsed = round(time.perf_counter() - self._start, 6)
            infos["episode"] = {
                "r": np.where(done, self._returns, 0.0),
                "l": np.where(done, self._lengths, 0),
                "t": np.where(done, elapsed, 0.0),
            }
            infos["_episode"] = done.copy()
            self._returns[done] = 0
            self._lengths[done] = 0
        if truncations.any():
            final = np.empty(self.num_envs, dtype=object)
            finals = self.source.final_observations
            for i in np.flatnonzero(truncations):
                final[i] = finals[i].copy()
            infos["final_obs"] = final
            infos["_final_obs"] = truncations.copy()
        obs = obs.copy() if self.copy else obs
        return obs, rewards.astype(np.float64), terminals.copy(), truncations.copy(), infos

    def close_extras(self, **kwargs: Any) -> None:
        self.source.close()
