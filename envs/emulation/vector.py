"""What every emulated vector env shares: its buffers (from layouts) and episode statistics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..native import CoreBuffers, _take_buffers
from .layout import Layout, Packer

BufferSpec = dict[str, tuple[tuple[int, ...], np.dtype]]


def spec_from_layouts(obs: Layout, act: Layout, num_agents: int) -> BufferSpec:
    """The core buffers of ``num_agents`` rows whose observations and actions follow these layouts."""
    spec: BufferSpec = {
        "observations": ((num_agents, *obs.shape), obs.dtype),
        "actions": ((num_agents, *act.shape), act.dtype),
        "rewards": ((num_agents,), np.dtype(np.float32)),
        "terminals": ((num_agents,), np.dtype(np.bool_)),
        "truncations": ((num_agents,), np.dtype(np.bool_)),
        "masks": ((num_agents,), np.dtype(np.bool_)),
    }
    spec["final_observations"] = spec["observations"]
    return spec


def take_buffers(
    name: str, spec: BufferSpec, given: Mapping[str, np.ndarray] | None
) -> dict[str, np.ndarray]:
    """Checks caller-owned buffers against ``spec`` and allocates the missing ones."""
    return _take_buffers(name, spec, given or {})


class EpisodeLog:
    """Sums of finished episodes' statistics until the next ``take()``, like the C envs' Log."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.episodes = 0

    def add(self, **values: float) -> None:
        self.episodes += 1
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value)

    def add_many(self, count: int, **sums: float) -> None:
        """Adds ``count`` episodes at once, given the sums of their statistics."""
        if count:
            self.episodes += int(count)
            for key, value in sums.items():
                self.sums[key] = self.sums.get(key, 0.0) + float(value)

    def add_sums(self, sums: Mapping[str, float]) -> None:
        """Adds statistics of episodes counted by ``add``/``add_many`` (an env's own per-episode stats)."""
        for key, value in sums.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value)

    def take(self) -> dict[str, float]:
        out: dict[str, float] = {"episodes": self.episodes}
        if self.episodes:
            out.update({key: value / self.episodes for key, value in self.sums.items()})
        self.sums, self.episodes = {}, 0
        return out


def observe_in_place(envs: list[Any], rows: Packer) -> list[str]:
    """Points envs that can write their observation in place (``observe_into``) at their rows.

    An env with ``observe_into(arrays)`` (NetHack's :class:`~envs.emulation.nethack.SeededNLE`)
    is handed env ``i``'s leaf views of ``rows`` by key and writes those keys there itself
    on every step and reset; the writer then finds the value already in place and copies
    nothing. Only a packed Dict of top-level keys qualifies. Returns the keys every env took.
    """
    layout = rows.layout
    if not layout.packed or any(len(leaf.path) != 1 for leaf in layout.leaves):
        return []
    taken: set[str] | None = None
    for i, env in enumerate(envs):
        observe_into = getattr(env, "observe_into", None)
        if not callable(observe_into):
            return []
        views = {str(leaf.path[0]): view for leaf, view in zip(layout.leaves, rows.row_views(i), strict=True)}
        keys = set(observe_into(views))
        taken = keys if taken is None else taken & keys
    return sorted(taken or ())


class PythonEnvVector(CoreBuffers):
    """What the Python-env adapters share: ``self.envs`` stepped in turn, an ``EpisodeLog``."""

    envs: list[Any]
    _log: EpisodeLog
    # Set by the subclass before ``_bind``:
    obs_layout: Layout
    act_layout: Layout
    num_envs: int
    num_agents: int
    in_place: list[str]  # observation keys the envs write into their rows themselves

    def reset(self, seed: int = 0) -> np.ndarray:
        raise NotImplementedError

    def _bind(self, name: str, buffers: Mapping[str, np.ndarray] | None, seed: int) -> None:
        """Buffers (given or fresh), packers over them, episode counters; then the first reset.

        Needs ``obs_layout``, ``act_layout``, ``num_agents`` and ``num_envs`` set.
        """
        self.single_observation_space = self.obs_layout.row_space()
        self.single_action_space = self.act_layout.row_space()
        spec = spec_from_layouts(self.obs_layout, self.act_layout, self.num_agents)
        self.buffers = take_buffers(name, spec, buffers)
        for key, array in self.buffers.items():
            setattr(self, key, array)
        self._obs = Packer(self.obs_layout, self.observations)
        self._final = Packer(self.obs_layout, self.final_observations)
        self._act = Packer(self.act_layout, self.actions, clip=True)
        self.in_place = observe_in_place(self.envs, self._obs)
        self._returns = np.zeros(self.num_envs, dtype=np.float64)
        self._lengths = np.zeros(self.num_envs, dtype=np.int64)
        self._log = EpisodeLog()
        self.reset(seed)

    def episode_stats(self) -> dict[str, float]:
        """Means over the episodes finished since the last call (``episodes``: their count)."""
        return self._log.take()

    def close(self) -> None:
        for env in self.envs:
            env.close()

    def __enter__(self) -> PythonEnvVector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
