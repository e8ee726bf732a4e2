"""Checks a batch of actions before it reaches C: shape, dtype and range, vectorized.

Cast policy: Discrete and MultiDiscrete accept any integer dtype (signed or unsigned,
any width) whose values lie in range, and are then cast to the arena's dtype; floats
and bools are rejected, since a silently truncated 0.7 is a policy bug. Box accepts
any floating or integer dtype with finite values.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np


def check_actions(actions: Any, space: gymnasium.Space, shape: tuple[int, ...]) -> np.ndarray:
    """Returns ``actions`` as an ndarray of ``shape`` or raises one clear ValueError."""
    if not isinstance(actions, np.ndarray):
        actions = np.asarray(actions)
    if actions.shape != shape:
        raise ValueError(f"actions must have shape {shape}, got {actions.shape}")
    kind = actions.dtype.kind
    if isinstance(space, (gymnasium.spaces.Discrete, gymnasium.spaces.MultiDiscrete)):
        if kind not in "iu":
            raise ValueError(f"actions must have an integer dtype for {space}, got {actions.dtype}")
        low = np.asarray(space.start)
        high = low + np.asarray(space.n if isinstance(space, gymnasium.spaces.Discrete) else space.nvec)
        bad = (actions < low) | (actions >= high)
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise ValueError(
                f"actions out of range for {space}: row {row} holds {actions[row].tolist()}"
            )
    elif isinstance(space, gymnasium.spaces.Box):
        if kind not in "fiu":
            raise ValueError(f"actions must have a numeric dtype for {space}, got {actions.dtype}")
        if kind == "f" and not np.isfinite(actions).all():
            raise ValueError("actions must be finite (found NaN or inf)")
    elif isinstance(space, gymnasium.spaces.MultiBinary):
        if kind not in "iub" or ((actions != 0) & (actions != 1)).any():
            raise ValueError(f"actions must be 0/1 integers for {space}")
    return actions
