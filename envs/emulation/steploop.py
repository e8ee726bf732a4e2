"""The per-step loop over an actor's Gymnasium envs: step, store the reward, pack, auto-reset.

Two implementations with the same arguments and effects: the compiled one
(``_steploop.pyx``, built by ``setup.py`` when Cython is there) and
:func:`step_python`, the fallback. :data:`COMPILED` says which one
:func:`step_loop` is; :func:`rows` gives the observation writer it takes.
The compiled loop pays where the env's own step is short or its observation has
many leaves: it calls ``env.step`` through the C API and copies each leaf with one
``memcpy`` instead of a numpy assignment (``appliance bench emulation`` measures
both against a plain loop of ``env.step``).
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from .layout import Packer

Ended = list[tuple[int, bool, Any]]


def step_python(envs: list[Any], actions: list[Any], obs: Packer, final: Packer, rewards: np.ndarray,
                returns: np.ndarray, lengths: np.ndarray, terminals: np.ndarray, truncations: np.ndarray,
                totals: np.ndarray) -> list[Any] | None:
    """Steps ``envs[i]`` with ``actions[i]``; returns the infos of the episodes that ended, or None.

    Per env: ``rewards[i]`` (float32) is the step's reward, ``returns[i]`` (float64) and
    ``lengths[i]`` count the running episode, ``terminals[i]``/``truncations[i]`` (uint8)
    flag its end. An ended episode adds one to ``totals[0]``, its return to ``totals[1]``
    and its length to ``totals[2]``, and resets at once: a truncated row's last observation
    goes to ``final``, the next episode's first to ``obs``. A step both terminated and
    truncated counts as terminated (there is nothing to bootstrap from).
    """
    write = obs.write
    got = [0.0] * len(envs)
    ended: list[tuple[int, bool]] | None = None
    infos: list[Any] | None = None
    for i, (env, action) in enumerate(zip(envs, actions, strict=True)):
        o, reward, terminated, truncated, info = env.step(action)
        got[i] = reward
        if terminated or truncated:
            terminated = bool(terminated)
            if not terminated:
                final.write(i, o)
            if ended is None:
                ended, infos = [], []
            ended.append((i, terminated))
            infos.append(info)  # type: ignore[union-attr]
            o = env.reset()[0]
        write(i, o)
    raw = np.array(got, dtype=np.float64)
    rewards[:] = raw
    returns += raw  # raw rewards, as the env gave them
    lengths += 1
    terminals.fill(0)
    truncations.fill(0)
    if ended is not None:
        rows = [i for i, _ in ended]
        terminals[rows] = [t for _, t in ended]
        truncations[rows] = [not t for _, t in ended]
        totals += (len(rows), returns[rows].sum(), lengths[rows].sum())
        returns[rows] = 0
        lengths[rows] = 0
    return infos


def _python_rows(packer: Packer) -> Packer:
    return packer


_steploop: ModuleType | None
try:
    from . import _steploop
except ImportError:  # not built (no Cython at install time): the Python loop does the same
    _steploop = None

COMPILED = _steploop is not None
IMPLEMENTATIONS: dict[str, tuple[Callable[..., Ended | None], Callable[[Packer], Any]]] = {
    "python": (step_python, _python_rows)
}
if _steploop is not None:
    IMPLEMENTATIONS["compiled"] = (_steploop.step_loop, _steploop.Rows)

step_loop, rows = IMPLEMENTATIONS["compiled" if COMPILED else "python"]
