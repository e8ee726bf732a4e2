"""A Stable-Baselines3 ``VecEnv`` over a synchronous pool, so SB3's algorithms train on it.

SB3's contract: ``step_wait`` returns ``(obs, rewards, dones, infos)`` with one info dict
per env; an env that finished carries ``terminal_observation`` and
``TimeLimit.truncated``, and ``episode`` (``r``, ``l``, ``t``, as SB3's ``Monitor``
writes it, which feeds ``ep_info_buffer`` and the ``rollout/ep_rew_mean`` log).
The pool's envs reset themselves in the same step, as SB3 expects. The terminal
observation is exact for truncated episodes (the one SB3 bootstraps from); for
terminated ones SB3 never reads its value, and it gets the row's observation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from .actions import ActionCheck


class SB3VecEnv(VecEnv):
    """Wraps ``source``: an ActorPool/SerialPool with one batch (``batch_size == num_envs``)."""

    def __init__(self, source: Any) -> None:
        if getattr(source, "batch_rows", None) != source.num_agents:
            raise ValueError("source must be synchronous: a pool with batch_size == num_envs")
        self.source = source
        self.render_mode = None
        super().__init__(source.num_agents, source.single_observation_space, source.single_action_space)
        self._action_shape = (self.num_envs, *cast("tuple[int, ...]", self.action_space.shape))
        self._check = ActionCheck(self.action_space, self._action_shape)  # bounds computed once, not per step
        self._returns = np.zeros(self.num_envs, np.float64)
        self._lengths = np.zeros(self.num_envs, np.int64)
        self._start = time.perf_counter()
        self._actions: np.ndarray | None = None
        self._next_seed = 0

    def reset(self) -> np.ndarray:
        seed = self._seeds[0] if self._seeds[0] is not None else self._next_seed
        self._reset_seeds()
        self._next_seed = seed + 1
        self.source.async_reset(int(seed))
        self._returns[:] = 0
        self._lengths[:] = 0
        return self.source.recv()[0].copy()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = self._check(np.asarray(actions).reshape(self._action_shape))

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        self.source.send(self._actions)
        obs, rewards, terminals, truncations, _, _ = self.source.recv()
        self._returns += rewards
        self._lengths += 1
        dones = terminals | truncations
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if dones.any():
            elapsed = round(time.perf_counter() - self._start, 6)
            finals = self.source.final_observations
            for i in np.flatnonzero(dones):
                infos[i] = {
                    "terminal_observation": (finals[i] if truncations[i] else obs[i]).copy(),
                    "TimeLimit.truncated": bool(truncations[i]),
                    "episode": {"r": float(self._returns[i]), "l": int(self._lengths[i]), "t": elapsed},
                }
            self._returns[dones] = 0
            self._lengths[dones] = 0
        return obs.copy(), rewards.astype(np.float32), dones.copy(), infos

    def close(self) -> None:
        self.source.close()

    # SB3 asks these of every VecEnv; the pool's envs live in other processes.
    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        if attr_name == "render_mode":
            return [None] * len(list(self._get_indices(indices)))  # any iterable of indices, as SB3 allows
        raise AttributeError(f"SB3VecEnv: the pool's envs have no attribute '{attr_name}' readable from here")

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        raise AttributeError(f"SB3VecEnv: cannot set '{attr_name}' on the pool's envs")

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list[Any]:
        raise AttributeError(f"SB3VecEnv: cannot call '{method_name}' on the pool's envs")

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * len(list(self._get_indices(indices)))  # any iterable of indices, as SB3 allows

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None] * self.num_envs


def make_vec_env(env: str | Callable[..., Any], num_envs: int, num_actors: int = 0, seed: int = 0,
                 **params: Any) -> SB3VecEnv:
    """``SB3VecEnv`` over ``num_envs`` envs: in this process (``num_actors=0``) or in actors."""
    from .pool import ActorPool
    from .serial import SerialPool

    if num_actors:
        return SB3VecEnv(ActorPool(env, num_envs, num_actors, num_envs, seed=seed, **params))
    return SB3VecEnv(SerialPool(env, num_envs, seed=seed, **params))
