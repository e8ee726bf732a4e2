"""Atari through ALE's native vector env, whose C++ threads do the preprocessing.

ALE's ``AtariVectorEnv`` grayscales, resizes to 84x84, max-pools, skips 4
frames and stacks 4 in C++. We run it in ALE's ``SameStep`` autoreset mode,
which is our contract: the ending step carries the flags and last reward, the
observation is the next episode's first, and ALE hands the ended episode's
last observation back as ``info["final_obs"]`` (copied to
``final_observations`` for truncated rows). The default ``NextStep`` mode would
instead spend one extra step returning the reset observation with a dummy
reward, which the learner would have to mask out.

Rewards are clipped to [-1, 1] here rather than in ALE, so that
``episode_stats()`` can report the raw game score next to the clipped return.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..native import CoreBuffers
from .vector import BufferSpec, EpisodeLog, take_buffers

PREFIX = "atari/"
GAMES = ("pong", "breakout")
# Our defaults for ALE's constructor; everything else keeps ALE's.
SEED_LIMIT = 1 << 31  # ALE seeds are 31-bit
DEFAULTS: dict[str, Any] = {"num_threads": 1, "reward_clipping": True}


def game_of(name: str) -> str:
    """``atari/pong`` -> ``pong``, checking that ALE ships the ROM."""
    from ale_py import roms

    game = name[len(PREFIX):]
    with warnings.catch_warnings():  # ALE warns "Rom X not supported." too: the sentence below says it
        warnings.simplefilter("ignore", UserWarning)
        path = roms.get_rom_path(game) if game else None
    if path is None:
        raise ValueError(f"unknown env '{name}': ALE has no ROM '{game}' (snake_case, e.g. atari/ms_pacman)")
    return game


def buffer_spec(name: str, num_envs: int, **params: Any) -> BufferSpec:
    """Buffers for ``num_envs`` games; shapes follow the preprocessing parameters."""
    game_of(name)
    stack = int(params.get("stack_num", 4))
    shape: tuple[int, ...] = (stack, int(params.get("img_height", 84)), int(params.get("img_width", 84)))
    if not params.get("grayscale", True):
        shape += (3,)
    spec: BufferSpec = {
        "observations": ((int(num_envs), *shape), np.dtype(np.uint8)),
        "actions": ((int(num_envs),), np.dtype(np.int32)),
        "rewards": ((int(num_envs),), np.dtype(np.float32)),
        "terminals": ((int(num_envs),), np.dtype(np.bool_)),
        "truncations": ((int(num_envs),), np.dtype(np.bool_)),
        "masks": ((int(num_envs),), np.dtype(np.bool_)),
    }
    spec["final_observations"] = spec["observations"]
    return spec


class AtariVecEnv(CoreBuffers):
    """``num_envs`` Atari games of ALE's vector env stepping into our buffers.

    One row per game; ``step()`` is one agent step of ``frames_per_step``
    emulator frames. ``params`` go to ``ale_py.vector_env.AtariVectorEnv``
    (``num_threads`` defaults to 1: the actor pool already gives each actor a
    core). Game ``i`` is seeded with ``seed + i``.
    """

    def __init__(
        self,
        name: str,
        num_envs: int = 1,
        seed: int = 0,
        buffers: Mapping[str, np.ndarray] | None = None,
        **params: Any,
    ) -> None:
        from ale_py.vector_env import AtariVectorEnv

        if not isinstance(num_envs, (int, np.integer)) or isinstance(num_envs, bool) or num_envs < 1:
            raise ValueError(f"{name}: parameter 'num_envs' must be a whole number >= 1, got {num_envs!r}")
        for bad in ("autoreset_mode", "batch_size"):
            if bad in params:
                raise ValueError(f"{name}: parameter '{bad}' is fixed by the emulation layer")
        params = {**DEFAULTS, **params}
        self.clip = bool(params.pop("reward_clipping"))
        self.name = name
        self.num_envs = self.num_agents = int(num_envs)
        self.agents_per_env = 1
        self.frames_per_step = int(params.get("frameskip", 4))
        spec = buffer_spec(name, num_envs, **params)
        try:
            self.vec = AtariVectorEnv(game_of(name), self.num_envs, autoreset_mode="SameStep",
                                      reward_clipping=False, **params)
        except TypeError as exc:
            raise ValueError(f"{name}: {exc}") from exc
        self.single_observation_space = self.vec.single_observation_space
        self.single_action_space = self.vec.single_action_space
        self.buffers = take_buffers(name, spec, buffers)
        for key, array in self.buffers.items():
            setattr(self, key, array)
        self._returns = np.zeros(self.num_envs, dtype=np.float64)
        self._scores = np.zeros(self.num_envs, dtype=np.float64)
        self._lengths = np.zeros(self.num_envs, dtype=np.int64)
        self._log = EpisodeLog()
        self.reset(seed)

    def reset(self, seed: int = 0) -> np.ndarray:
        """Reseeds game ``i`` with ``seed + i`` and starts new episodes.

        ALE takes 31-bit seeds; wider ones (the actor pool derives 64-bit seeds
        per actor) are reduced modulo ``2**31 - num_envs``, so small seeds are unchanged.
        """
        obs, _ = self.vec.reset(seed=int(seed) % (SEED_LIMIT - self.num_envs))
        self.observations[...] = obs
        self.rewards[:] = 0
        self.terminals[:] = False
        self.truncations[:] = False
        self.masks[:] = True
        self._returns[:] = 0
        self._scores[:] = 0
        self._lengths[:] = 0
        return self.observations

    def step(self, actions: np.ndarray | None = None) -> None:
        """Steps every game with ``self.actions`` (copied from ``actions`` if given)."""
        if actions is not None:
            self.actions[...] = actions
        obs, score, terminated, truncated, info = self.vec.step(self.actions)
        self.observations[...] = obs
        score = np.asarray(score, dtype=np.float32)
        if self.clip:
            np.clip(score, -1.0, 1.0, out=self.rewards)
        else:
            np.copyto(self.rewards, score)
        np.copyto(self.terminals, terminated)
        np.logical_and(truncated, ~self.terminals, out=self.truncations)
        self._returns += self.rewards
        self._scores += score
        self._lengths += 1
        done = self.terminals | self.truncations
        if done.any():
            if self.truncations.any():
                self.final_observations[self.truncations] = info["final_obs"][self.truncations]
            self._log.add_many(int(done.sum()), episode_return=self._returns[done].sum(),
                               episode_length=self._lengths[done].sum(), score=self._scores[done].sum())
            self._returns[done] = 0
            self._scores[done] = 0
            self._lengths[done] = 0

    def episode_stats(self) -> dict[str, float]:
        """Means since the last call: clipped ``episode_return``, raw ``score``, ``episode_length``."""
        return self._log.take()

    def close(self) -> None:
        self.vec.close()

    def __enter__(self) -> AtariVecEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AtariVecEnv({self.name!r}, num_envs={self.num_envs})"
