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


def check_actions(actions: Any, space: gymnasium.Space[Any], shape: tuple[int, ...]) -> np.ndarray:
    """Returns ``actions`` as an ndarray of ``shape`` or raises one clear ValueError."""
    return ActionCheck(space, shape)(actions)


class ActionCheck:
    """:func:`check_actions` for one space and shape, with the bounds computed once.

    The pool checks every batch it sends, so the check is one reduction (the max of the
    actions viewed unsigned) for ranges starting at 0, two (min, max) otherwise, and no
    temporary arrays on the happy path; a MultiDiscrete's is one comparison against its
    bounds tiled to the batch (two with a nonzero start) into a preallocated mask.
    """

    def __init__(self, space: gymnasium.Space[Any], shape: tuple[int, ...]) -> None:
        self.space, self.shape = space, tuple(shape)
        self.low: np.ndarray | None = None
        self.high: np.ndarray | None = None
        if isinstance(space, (gymnasium.spaces.Discrete, gymnasium.spaces.MultiDiscrete)):
            self.low = np.asarray(space.start)
            n = space.n if isinstance(space, gymnasium.spaces.Discrete) else space.nvec
            self.high = self.low + np.asarray(n)
        self._scalar = self.low is not None and self.low.ndim == 0
        if self._scalar and self.low is not None and self.high is not None:  # high is set with low
            self._lo, self._hi = int(self.low), int(self.high)
        # MultiDiscrete: whether every range starts at 0, and per dtype the bounds tiled to the batch.
        self._zero_low = self.low is not None and not self.low.any()
        self._tiles: dict[np.dtype, tuple[np.dtype | None, np.ndarray, np.ndarray]] = {}
        self._mask = np.empty(self.shape, dtype=bool)  # scratch for the MultiDiscrete check
        self._unsigned: dict[np.dtype, np.dtype] = {}  # per integer dtype, for _out_of_range

    def _out_of_range(self, actions: np.ndarray) -> bool:
        """One reduction when the range starts at 0: viewed unsigned, negatives are huge."""
        if self._lo == 0:
            unsigned = self._unsigned.get(actions.dtype)
            if unsigned is None:
                unsigned = self._unsigned[actions.dtype] = np.dtype(f"u{actions.dtype.itemsize}")
            return bool(np.maximum.reduce(actions.view(unsigned), axis=None) >= self._hi)
        return bool(
            np.minimum.reduce(actions, axis=None) < self._lo or np.maximum.reduce(actions, axis=None) >= self._hi
        )

    def _columns_out_of_range(self, actions: np.ndarray) -> bool:
        """A MultiDiscrete's check: one comparison against the bounds tiled to the batch's shape.

        Viewed unsigned when every range starts at 0 (negatives are huge), into a preallocated
        mask: a reduction per column over the rows would cost numpy a slow strided loop.
        """
        tiles = self._tiles.get(actions.dtype)
        if tiles is None:
            tiles = self._tiles[actions.dtype] = self._tile(actions.dtype)
        unsigned, high, low = tiles
        if unsigned is not None:
            np.greater_equal(actions.view(unsigned), high, out=self._mask)
            return bool(self._mask.any())
        np.greater_equal(actions, high, out=self._mask)
        if self._mask.any():
            return True
        np.less(actions, low, out=self._mask)
        return bool(self._mask.any())

    def _tile(self, dtype: np.dtype) -> tuple[np.dtype | None, np.ndarray, np.ndarray]:
        """(the unsigned view's dtype or None, high and low tiled to the batch's shape)."""
        assert self.low is not None and self.high is not None
        unsigned = np.dtype(f"u{dtype.itemsize}")
        if self._zero_low and int(self.high.max()) <= np.iinfo(unsigned).max:
            return unsigned, np.ascontiguousarray(np.broadcast_to(self.high.astype(unsigned), self.shape)), self.low
        # Bounds the dtype cannot hold compare as int64 (a slower, rare case: an int8 batch for n > 127).
        return (None, np.ascontiguousarray(np.broadcast_to(self.high, self.shape)),
                np.ascontiguousarray(np.broadcast_to(self.low, self.shape)))

    def __call__(self, actions: Any) -> np.ndarray:
        if not isinstance(actions, np.ndarray):
            actions = np.asarray(actions)
        if actions.shape != self.shape:
            raise ValueError(f"actions must have shape {self.shape}, got {actions.shape}")
        kind, space = actions.dtype.kind, self.space
        if self.low is not None:
            if kind not in "iu":
                raise ValueError(f"actions must have an integer dtype for {space}, got {actions.dtype}")
            if actions.size and (
                self._out_of_range(actions) if self._scalar else self._columns_out_of_range(actions)
            ):
                bad = (actions < self.low) | (actions >= self.high)
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
