"""Frame stacking and action repeat over whole batches of any env that follows the contract.

Each wrapper owns some of the buffers (those it changes) and shares the rest
with the env it wraps, so a caller-owned arena works unchanged: ``envs.make``
hands each buffer to whichever layer owns it (``OWNS``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces

from ..native import CoreBuffers
from .vector import BufferSpec, take_buffers


class _Wrapper(CoreBuffers):
    OWNS: tuple[str, ...] = ()

    def __init__(self, env: Any) -> None:
        self.env = env
        self.name = getattr(env, "name", type(env).__name__)
        self.num_envs = env.num_envs
        self.num_agents = env.num_agents
        self.agents_per_env = getattr(env, "agents_per_env", 1)
        self.single_observation_space = env.single_observation_space
        self.single_action_space = env.single_action_space
        self.frames_per_step = getattr(env, "frames_per_step", 1)
        self.buffers = {}
        for key in ("observations", "actions", "rewards", "terminals", "truncations", "masks",
                    "final_observations"):
            if key not in self.OWNS:
                self.buffers[key] = getattr(env, key)
                setattr(self, key, self.buffers[key])

    def _own(self, spec: BufferSpec, given: Mapping[str, np.ndarray] | None) -> None:
        mine = take_buffers(self.name, {k: spec[k] for k in self.OWNS}, given)
        self.buffers.update(mine)
        for key, array in mine.items():
            setattr(self, key, array)

    def episode_stats(self) -> dict[str, float]:
        stats: dict[str, float] = self.env.episode_stats()
        return stats

    def close(self) -> None:
        self.env.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FrameStack(_Wrapper):
    """Observations become the last ``k`` observations, ``(A, k, *obs_shape)``, oldest first.

    A new episode starts with its first observation repeated ``k`` times; a
    truncated row's ``final_observations`` is the stack that episode ended on.
    """

    OWNS = ("observations", "final_observations")

    def __init__(self, env: Any, k: int, buffers: Mapping[str, np.ndarray] | None = None) -> None:
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise ValueError(f"frame_stack must be a whole number >= 1, got {k!r}")
        space = env.single_observation_space
        if not isinstance(space, spaces.Box) or hasattr(space, "layout"):
            raise ValueError(f"frame_stack needs a Box observation space, got {space!r}")
        super().__init__(env)
        self.k = int(k)
        self.single_observation_space = stacked_space(space, self.k)
        self._own(spec(env.buffers, self.k), buffers)
        self._restart(np.ones(self.num_agents, dtype=bool))

    def _restart(self, rows: np.ndarray) -> None:
        self.observations[rows] = self.env.observations[rows][:, None]

    def reset(self, seed: int = 0) -> np.ndarray:
        self.env.reset(seed)
        self._restart(np.ones(self.num_agents, dtype=bool))
        return self.observations

    def step(self, actions: np.ndarray | None = None) -> None:
        self.env.step(actions)
        inner = self.env
        trunc = inner.truncations
        if trunc.any():
            self.final_observations[trunc, :-1] = self.observations[trunc, 1:]
            self.final_observations[trunc, -1] = inner.final_observations[trunc]
        self.observations[:, :-1] = self.observations[:, 1:]  # numpy buffers overlapping copies
        self.observations[:, -1] = inner.observations
        done = inner.terminals | trunc
        if done.any():
            self._restart(done)


class ActionRepeat(_Wrapper):
    """Each ``step()`` applies the actions ``n`` times; rewards are summed up to an episode's end.

    Rows of a vector cannot pause, so a row whose episode ends on repeat ``j``
    keeps stepping its next episode with the same action for the remaining
    repeats: its flags and reward describe the ended episode, its observation is
    a few steps into the next one, and those steps' rewards are not reported
    (they stay in the wrapped env's ``episode_stats``).
    """

    OWNS = ("rewards", "terminals", "truncations", "masks")

    def __init__(self, env: Any, n: int, buffers: Mapping[str, np.ndarray] | None = None) -> None:
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            raise ValueError(f"action_repeat must be a whole number >= 1, got {n!r}")
        super().__init__(env)
        self.n = int(n)
        self.frames_per_step = self.frames_per_step * self.n
        self._own(dict(env_spec(env.buffers)), buffers)
        self._ended = np.zeros(self.num_agents, dtype=bool)
        np.copyto(self.masks, env.masks)

    def reset(self, seed: int = 0) -> np.ndarray:
        self.env.reset(seed)
        self.rewards[:] = 0
        self.terminals[:] = False
        self.truncations[:] = False
        np.copyto(self.masks, self.env.masks)
        return self.observations

    def step(self, actions: np.ndarray | None = None) -> None:
        inner = self.env
        if actions is not None:
            self.actions[...] = actions
        ended = self._ended
        ended[:] = False
        self.rewards[:] = 0
        self.terminals[:] = False
        self.truncations[:] = False
        for _ in range(self.n):
            inner.step()
            live = ~ended
            self.rewards[live] += inner.rewards[live]
            self.terminals |= inner.terminals & live
            self.truncations |= inner.truncations & live
            ended |= inner.terminals | inner.truncations
        # A row that ended inside the repeats is reported even if its agent is gone now.
        np.logical_or(inner.masks, self.terminals | self.truncations, out=self.masks)


def env_spec(buffers: Mapping[str, np.ndarray]) -> BufferSpec:
    return {key: (array.shape, array.dtype) for key, array in buffers.items()}


def spec(buffers_or_spec: Mapping[str, Any], k: int) -> BufferSpec:
    """The spec of a FrameStack of depth ``k`` over an env with these buffers (or this spec)."""
    out = {}
    for key, value in buffers_or_spec.items():
        shape, dtype = (value.shape, value.dtype) if isinstance(value, np.ndarray) else value
        if key in FrameStack.OWNS:
            shape = (shape[0], k, *shape[1:])
        out[key] = (tuple(shape), np.dtype(dtype))
    return out


def stacked_space(space: spaces.Box, k: int) -> spaces.Box:
    low = np.repeat(space.low[None], k, axis=0)
    high = np.repeat(space.high[None], k, axis=0)
    return spaces.Box(low=low, high=high, dtype=space.dtype)
