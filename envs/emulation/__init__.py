"""Third-party envs (Gymnasium, PettingZoo, ALE's Atari) behind the native buffer contract.

Names resolve in this order (see :func:`resolve`):

1. ``atari/<game>``: ALE's native vector env (``atari/pong``, ``atari/breakout``, any ROM).
   ``nethack/<task>``, ``minihack/<env>`` and ``crafter``: those packages' envs by
   short name (:mod:`.nethack`, :mod:`.crafter`), stepped as Gymnasium envs.
2. ``pettingzoo.<...>``: a PettingZoo module; its ``parallel_env`` (else ``env``
   through ``aec_to_parallel``).
3. ``gym:<id>``: explicitly a Gymnasium id, for ids that a native name would shadow.
4. anything else not native: a Gymnasium id (``CartPole-v1``,
   ``MiniGrid-Empty-5x5-v0``; ``module:Id`` works as in ``gymnasium.make``).

A callable is a creator of one Gymnasium or PettingZoo env. Options every
emulated env takes besides the env's own keyword arguments: ``drop_keys``,
``drop_unsupported`` (observation keys without an array form),
``frame_stack`` and ``action_repeat`` (the wrappers of :mod:`.wrappers`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .. import creators
from . import atari, crafter, gym, nethack, pettingzoo, wrappers
from .layout import Layout, Leaf, PackedSpace, layout_of
from .vector import BufferSpec

__all__ = ["Layout", "Leaf", "PackedSpace", "buffer_spec", "layout_of", "make", "resolve"]

OPTIONS = ("drop_keys", "drop_unsupported")
WRAPPERS = ("frame_stack", "action_repeat")


def resolve(env: str | Callable[..., Any], params: Mapping[str, Any]) -> tuple[str, Any, dict[str, Any]]:
    """``(kind, target, options)``: kind is ``atari``, ``gym`` or ``pettingzoo``; target a name or creator."""
    params = dict(params)
    options = {k: params.pop(k) for k in OPTIONS if k in params}
    if callable(env):
        sample = creators.call(env, params)
        if _is_pettingzoo(sample):
            kind = "pettingzoo"
        elif _is_gymnasium(sample):
            kind = "gym"
        else:
            raise creators.CreatorError(
                f"env creator {creators.label(env)} returned {type(sample).__name__}, not one Gymnasium Env "
                "or PettingZoo env (mark a vector-env factory with envs.vector_env)"
            )
        sample.close()
        return kind, (lambda: env(**params)), options
    if not isinstance(env, str):
        raise ValueError(f"env must be a name or a creator callable, got {type(env).__name__}")
    if env.startswith(atari.PREFIX):
        if options:
            raise ValueError(f"{env}: parameter '{next(iter(options))}' does not apply to Atari")
        return "atari", env, params
    if env.startswith("pettingzoo."):
        return "pettingzoo", pettingzoo.creator_for(env, **params), options
    if env.startswith((nethack.NETHACK, nethack.MINIHACK)):
        return "gym", nethack.creator_for(env, **params), options
    if env == crafter.NAME:
        return "gym", crafter.creator_for(env, **params), options
    env_id = env[len("gym:"):] if env.startswith("gym:") else env
    return "gym", gym.creator_for(env_id, **params), options


def _is_pettingzoo(obj: Any) -> bool:
    from pettingzoo import AECEnv, ParallelEnv

    return isinstance(obj, (AECEnv, ParallelEnv))


def _is_gymnasium(obj: Any) -> bool:
    import gymnasium

    return isinstance(obj, gymnasium.Env)


def _split_wrappers(params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    rest = {k: v for k, v in params.items() if k not in WRAPPERS}
    return rest, {k: params[k] for k in WRAPPERS if k in params}


def buffer_spec(env: str | Callable[..., Any], num_envs: int, **params: Any) -> BufferSpec:
    """Shape and dtype of every buffer; may build one env instance to read its spaces."""
    if not isinstance(num_envs, (int, np.integer)) or isinstance(num_envs, bool) or num_envs < 1:
        raise ValueError(f"parameter 'num_envs' must be a whole number >= 1, got {num_envs!r}")
    params, wraps = _split_wrappers(params)
    kind, target, options = resolve(env, params)
    if kind == "atari":
        spec = atari.buffer_spec(target, num_envs, **options)
    elif kind == "pettingzoo":
        spec = pettingzoo.buffer_spec(target, num_envs, **options)
    else:
        spec = gym.buffer_spec(target, num_envs, **options)
    if wraps.get("frame_stack"):
        spec = wrappers.spec(spec, wraps["frame_stack"])
    return spec


def make(
    env: str | Callable[..., Any],
    num_envs: int = 1,
    seed: int = 0,
    buffers: Mapping[str, np.ndarray] | None = None,
    **params: Any,
) -> Any:
    """Builds the emulated vector env; ``buffers`` are caller-owned arrays as in ``buffer_spec``."""
    params, wraps = _split_wrappers(params)
    given = dict(buffers or {})
    owned = {key for name in wraps for key in _WRAPPER_CLASSES[name].OWNS}
    base_buffers = {k: v for k, v in given.items() if k not in owned}
    kind, target, options = resolve(env, params)
    label = env if isinstance(env, str) else getattr(env, "__name__", "creator")
    if kind == "atari":
        vec: Any = atari.AtariVecEnv(target, num_envs, seed, buffers=base_buffers, **options)
    elif kind == "pettingzoo":
        vec = pettingzoo.PettingZooVecEnv(target, num_envs, seed, buffers=base_buffers, name=label, **options)
    else:
        vec = gym.GymnasiumVecEnv(target, num_envs, seed, buffers=base_buffers, name=label, **options)
    # Action repeat sits inside frame stacking: the stack holds the observation after each repeat.
    for name in ("action_repeat", "frame_stack"):
        if wraps.get(name) is not None:
            cls = _WRAPPER_CLASSES[name]
            vec = cls(vec, wraps[name], buffers={k: v for k, v in given.items() if k in cls.OWNS})
    return vec


_WRAPPER_CLASSES = {"frame_stack": wrappers.FrameStack, "action_repeat": wrappers.ActionRepeat}
