"""Types of the C extension ``envs._native`` (envs/_native.c)."""

from collections.abc import Sequence
from typing import Any

import numpy as np

class Env:
    """A vector of native env instances stepping into caller-owned buffers."""

    def __init__(
        self,
        name: str,
        num_envs: int,
        params: Sequence[float],
        /,
        *buffers: np.ndarray | Sequence[np.ndarray],
    ) -> None:
        """``buffers``: observations, actions, rewards, terminals, truncations, masks and
        final_observations, then the sequence of the env's extra buffers (also by keyword)."""
    def reset(self, seed: int, /) -> None: ...
    def step(self) -> None: ...
    def step_n(self, n: int, /) -> None: ...
    def take_log(self) -> dict[str, float]:
        """``episodes``, ``episode_return``, ``episode_length``, ``score``: sums since the last call."""
    def close(self) -> None: ...

def kinds() -> dict[str, dict[str, Any]]:
    """Per env: ``params``, a list of ``(name, default, min, max, integer, doc)``, and
    ``extras``, a list of ``(name, typecode)``."""

def layout(name: str, params: Sequence[float], /) -> dict[str, Any]:
    """``agents_per_env``, ``obs_shape``, ``obs_dtype``, ``obs_low``, ``obs_high``,
    ``num_actions``, ``action_nvec``, ``obs_parts``, ``extra_elems``."""

def serve(envs: Sequence[Env], go_fd: int, done_fd: int, timeout_ms: int, /) -> bytes | None: ...
def wire() -> dict[str, Any]:
    """The actor wire protocol's constants (c/wire.h)."""
