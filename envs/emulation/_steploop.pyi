"""Types of the Cython extension ``envs.emulation._steploop`` (_steploop.pyx)."""

from typing import Any

import numpy as np

from .layout import Packer

class Rows:
    """Writes observations into the rows of one (C-contiguous) buffer; ``packer`` writes the rest."""

    def __init__(self, packer: Packer) -> None: ...
    def write(self, row: int, value: object) -> None: ...

def step_loop(
    envs: list[Any],
    actions: list[Any],
    obs: Rows,
    final: Rows,
    rewards: np.ndarray,
    returns: np.ndarray,
    lengths: np.ndarray,
    terminals: np.ndarray,
    truncations: np.ndarray,
    totals: np.ndarray,
) -> list[Any] | None: ...
