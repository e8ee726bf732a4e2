"""The pool interface, served in-process: no actors, one env vector stepped on send().

Every pool (this one and the multi-process ``ActorPool``) offers the same surface:

- ``async_reset(seed)`` starts every env; ``recv()`` then returns the next ready
  batch as ``(obs, rewards, terminals, truncations, masks, env_ids)``, views
  valid until the next ``send``; ``env_ids`` are the global agent rows.
- ``send(actions)`` hands actions for the batch last returned by ``recv``;
  ``actions``, after ``recv``, is the batch's own action buffer: a policy may
  write into it and send it, which skips a copy.
- ``final_observations``: after ``recv``, the batch's last observations of
  truncated episodes (rows where ``truncations`` is set).
- ``episode_stats()``: episode means since the last call, ``episodes`` their count.
- ``num_agents``, ``batch_rows``, ``single_observation_space``,
  ``single_action_space``; ``close()``; a context manager.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import envs


class SerialPool:
    """The whole env vector is one batch, stepped in the caller's process."""

    def __init__(self, env: str | Callable[..., Any], num_envs: int, seed: int = 0, **params: Any) -> None:
        self.env = envs.make(env, num_envs=num_envs, seed=seed, **params)
        self.num_envs = num_envs
        self.num_agents = self.env.num_agents
        self.batch_rows = self.num_agents
        self.single_observation_space = self.env.single_observation_space
        self.single_action_space = self.env.single_action_space
        self.env_ids = np.arange(self.num_agents)
        self._ready = False

    def async_reset(self, seed: int = 0) -> None:
        self.env.reset(seed)
        self._ready = True

    def recv(self) -> tuple[np.ndarray, ...]:
        if not self._ready:
            raise RuntimeError("recv() needs async_reset() first, then one send() per recv()")
        self._ready = False
        e = self.env
        return e.observations, e.rewards, e.terminals, e.truncations, e.masks, self.env_ids

    def send(self, actions: np.ndarray) -> None:
        if self._ready:
            raise RuntimeError("send() must follow recv()")
        self.env.step(None if actions is self.env.actions else actions)
        self._ready = True

    @property
    def actions(self) -> np.ndarray:
        return self.env.actions

    @property
    def final_observations(self) -> np.ndarray:
        return self.env.final_observations

    def episode_stats(self) -> dict[str, float]:
        return self.env.episode_stats()

    def close(self) -> None:
        self.env.close()

    def __enter__(self) -> SerialPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
