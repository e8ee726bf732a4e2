"""NetHack (NLE) and MiniHack by name: ``nethack/<task>``, ``minihack/<env>``.

Both are Gymnasium envs whose observation is a Dict of integer arrays (``glyphs``,
``chars``, ``colors``, ``specials``, ``blstats``, ``message``, ``tty_*``, ``inv_*``;
MiniHack adds ``*_crop`` windows around the hero); the emulation layer packs them
as they are, one aligned leaf each. ``drop_keys`` leaves keys out of the row.

``nethack/<task>`` asks NLE for every key except ``screen_descriptions``
(21 x 79 x 80 bytes of text per step, which NLE only fills when asked);
``observation_keys=`` picks another set. A seed given to ``reset`` seeds
NetHack's own generators (core and display) for that game and the ones after
(:class:`SeededNLE`), so a seed reproduces a run.
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium
import numpy as np

NETHACK = "nethack/"
MINIHACK = "minihack/"

# NLE's tasks by their short names.
TASKS = {
    "score": "NetHackScore-v0",
    "staircase": "NetHackStaircase-v0",
    "oracle": "NetHackOracle-v0",
    "gold": "NetHackGold-v0",
    "eat": "NetHackEat-v0",
    "scout": "NetHackScout-v0",
    "challenge": "NetHackChallenge-v0",
}

OBSERVATION_KEYS = (
    "glyphs", "chars", "colors", "specials", "blstats", "message",
    "inv_glyphs", "inv_strs", "inv_letters", "inv_oclasses",
    "tty_chars", "tty_colors", "tty_cursor",
)


class SeededNLE(gymnasium.Wrapper):
    """Seeds NetHack's core and display generators for every episode (Gymnasium's seed alone does not).

    NLE applies its seeds to the next game only and draws fresh ones from the system
    for the games after; here ``reset(seed=s)`` starts a generator from which each
    later ``reset()`` draws the next game's seeds, so one seed reproduces the run.
    """

    def __init__(self, env: gymnasium.Env) -> None:
        super().__init__(env)
        self._seeds = np.random.default_rng()
        self._fixed = False  # the task refuses seeds (NetHackChallenge)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        if seed is not None:
            self._seeds = np.random.default_rng(int(seed))
        core, disp = (int(s) for s in self._seeds.integers(0, 2**63, size=2))
        if not self._fixed:
            try:
                nle_env: Any = self.env.unwrapped  # nle's NLE (untyped): seed(core, disp, reseed)
                nle_env.seed(core=core, disp=disp, reseed=False)
            except RuntimeError:  # NetHackChallenge refuses seeds by design: its games stay unseeded
                self._fixed = True
        return self.env.reset(seed=seed, options=options)

    def observe_into(self, arrays: Mapping[str, np.ndarray]) -> list[str]:
        """Has NetHack write these keys of its observation straight into ``arrays``; returns the keys taken.

        NLE fills numpy buffers of its own in C on every step and reset and returns
        them as the observation; pointed at the arena's row instead, those keys need
        no copy into it. Only before the env's first reset (NLE's rule; afterwards
        nothing is taken). A key is taken only where the array has NLE's shape and
        dtype, is C-contiguous and writable; any other key, or an env that returns
        something else under the key (MiniHack's crops), is copied as before.
        """
        nethack: Any = getattr(self.env.unwrapped, "nethack", None)
        buffers: dict[str, np.ndarray] | None = getattr(nethack, "_obs_buffers", None)
        if buffers is None or not hasattr(nethack, "_pynethack"):
            return []
        taken = {}
        for key, array in arrays.items():
            own = buffers.get(key)
            if (own is not None and array.shape == own.shape and array.dtype == own.dtype
                    and array.flags.c_contiguous and array.flags.writeable):
                array[...] = own
                taken[key] = array
        if not taken:
            return []
        merged = {**buffers, **taken}
        keys = {id(array): key for key, array in buffers.items()}
        # set_buffers takes every buffer at once (one left out would no longer be filled);
        # NLE keeps the arrays it returns in _obs (read by its step) and last_observation.
        try:
            nethack._pynethack.set_buffers(**merged)
        except RuntimeError:  # NLE takes buffers only before its first reset: copied as before
            return []
        nethack._obs_buffers = merged
        nethack._obs = tuple(merged[keys[id(array)]] for array in nethack._obs)
        base: Any = self.env.unwrapped
        last = getattr(base, "last_observation", None)
        if isinstance(last, tuple) and len(last) == len(nethack._obs):
            base.last_observation = nethack._obs
        return sorted(taken)


def known(prefix: str) -> list[str]:
    """The names ``prefix`` takes: NLE's task names, or every registered MiniHack env."""
    if prefix == NETHACK:
        return sorted(TASKS)
    _import_minihack()
    return sorted(k for k in _minihack_ids() if not k.startswith("MiniHack-"))


def env_id(name: str) -> str:
    """``nethack/score`` -> ``NetHackScore-v0``; ``minihack/room-5x5`` -> ``MiniHack-Room-5x5-v0``."""
    if name.startswith(NETHACK):
        task = name[len(NETHACK):]
        if task not in TASKS:
            raise ValueError(f"unknown NetHack task '{task}' (known: {', '.join(sorted(TASKS))})")
        import nle  # noqa: F401  (registers the NetHack ids)

        return TASKS[task]
    rest = name[len(MINIHACK):]
    _import_minihack()
    ids = _minihack_ids()
    if rest in ids:
        return ids[rest]
    shorts = sorted(k for k in ids if not k.startswith("MiniHack-"))
    raise ValueError(f"unknown MiniHack env '{rest}' (known: {', '.join(shorts)})")


def creator_for(name: str, **kwargs: Any) -> Callable[[], gymnasium.Env]:
    """A creator of one seeded NLE/MiniHack env; ``kwargs`` go to it (``observation_keys``, ``max_episode_steps``)."""
    gym_id = env_id(name)
    if name.startswith(NETHACK):
        kwargs.setdefault("observation_keys", OBSERVATION_KEYS)

    # Gymnasium's checker warns that NLE reuses its observation arrays across steps;
    # harmless here, where each step's arrays are copied into the buffers at once.
    kwargs.setdefault("disable_env_checker", True)

    def create() -> gymnasium.Env:
        return SeededNLE(gymnasium.make(gym_id, **kwargs))

    return create


def _minihack_ids() -> dict[str, str]:
    """Short name (lower case, no ``MiniHack-`` prefix, no ``-vN``) -> Gymnasium id; full ids map to themselves."""
    out: dict[str, str] = {}
    for gym_id in gymnasium.registry:
        if gym_id.startswith("MiniHack-"):
            short = gym_id[len("MiniHack-"):].rsplit("-v", 1)[0].lower()
            out[short] = gym_id
            out[gym_id] = gym_id
    return out


def _import_minihack() -> None:
    """Imports minihack, which looks up its data files with ``pkg_resources``.

    setuptools 81 and later no longer ship ``pkg_resources``; minihack 1.0.2 only
    calls its ``resource_filename``, which a package's own directory answers.
    """
    if "minihack" in sys.modules:
        return
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        shim = types.ModuleType("pkg_resources")
        shim.resource_filename = _resource_filename  # type: ignore[attr-defined]
        sys.modules["pkg_resources"] = shim
    importlib.import_module("minihack")


def _resource_filename(package: str, path: str) -> str:
    module = importlib.import_module(package)
    return os.path.join(os.path.dirname(module.__file__ or ""), path)
