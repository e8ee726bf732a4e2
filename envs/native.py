"""Python face of the native C envs: buffers, spaces and episode statistics."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import gymnasium
import numpy as np

from . import _native

KINDS: dict[str, dict[str, Any]] = _native.kinds()

_DTYPES: dict[str, type[np.floating[Any] | np.integer[Any]]] = {
    "d": np.float64, "f": np.float32, "i": np.int32, "b": np.int8, "B": np.uint8,
}
CORE_BUFFERS = (
    "observations", "actions", "rewards", "terminals", "truncations", "masks", "final_observations",
)


def param_defaults(name: str) -> dict[str, float | int]:
    """The env's parameters with their defaults, as the C header declares them."""
    return {p[0]: (int(p[1]) if p[4] else p[1]) for p in KINDS[name]["params"]}


def resolve_params(name: str, params: Mapping[str, Any]) -> list[float]:
    """Checks names and types; the C engine checks ranges and cross-parameter rules."""
    defaults = param_defaults(name)
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ValueError(
            f"{name}: unknown parameter '{unknown[0]}' (known: {', '.join(defaults) or 'none'})"
        )
    values = []
    for key, default in defaults.items():
        value = params.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ValueError(f"{name}: parameter '{key}' must be a number, got {value!r}")
        values.append(float(value))
    return values


def buffer_spec(name: str, num_envs: int, **params: Any) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of every buffer the env steps into, for callers that own the memory."""
    if name not in KINDS:
        raise ValueError(f"unknown native env '{name}' (known: {', '.join(sorted(KINDS))})")
    layout = _native.layout(name, resolve_params(name, params))
    if not isinstance(num_envs, (int, np.integer)) or isinstance(num_envs, bool) or num_envs < 1:
        raise ValueError(f"{name}: parameter 'num_envs' must be a whole number >= 1, got {num_envs!r}")
    agents = int(num_envs) * layout["agents_per_env"]
    spec = {
        "observations": ((agents, *layout["obs_shape"]), np.dtype(_DTYPES[layout["obs_dtype"]])),
        "actions": ((agents, *cast("tuple[int, ...]", action_space(layout).shape)), np.dtype(np.int32)),
        "rewards": ((agents,), np.dtype(np.float32)),
        "terminals": ((agents,), np.dtype(np.bool_)),
        "truncations": ((agents,), np.dtype(np.bool_)),
        "masks": ((agents,), np.dtype(np.bool_)),
    }
    spec["final_observations"] = spec["observations"]
    for (extra, code), elems in zip(KINDS[name]["extras"], layout["extra_elems"], strict=False):
        spec[extra] = ((int(num_envs), elems), np.dtype(_DTYPES[code]))
    return spec


class CoreBuffers:
    """The core buffers a vector env exposes as attributes, each a view of ``self.buffers[name]``.

    Only annotations: every env of the contract sets them from its buffers at construction.
    """

    buffers: dict[str, np.ndarray]
    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminals: np.ndarray
    truncations: np.ndarray
    masks: np.ndarray
    final_observations: np.ndarray


class NativeEnv(CoreBuffers):
    """N instances of one C env stepping in place into caller-owned numpy buffers.

    ``step()`` reads ``actions`` as they are and writes ``observations``,
    ``rewards``, ``terminals``, ``truncations`` and ``masks`` in one native
    call that releases the GIL. Finished episodes reset in the same step:
    ``observations`` then holds the next episode's first observation, and for
    truncated agents ``final_observations`` holds the ended episode's last.
    """

    vector_env = True  # a subclass is a vector-env factory (see envs.creators)

    def __init__(
        self,
        name: str,
        num_envs: int = 1,
        seed: int = 0,
        buffers: Mapping[str, np.ndarray] | None = None,
        **params: Any,
    ) -> None:
        spec = buffer_spec(name, num_envs, **params)
        self.name = name
        self.num_envs = int(num_envs)
        self.params = dict(zip(param_defaults(name), resolve_params(name, params), strict=True))
        layout = _native.layout(name, list(self.params.values()))
        self.agents_per_env = layout["agents_per_env"]
        self.num_agents = self.num_envs * self.agents_per_env
        self.single_observation_space = observation_space(name, layout)
        self.single_action_space = action_space(layout)
        self.buffers = _take_buffers(name, spec, buffers or {})
        for key, array in self.buffers.items():
            setattr(self, key, array)
        extras = [self.buffers[x[0]] for x in KINDS[name]["extras"]]
        core = [self.buffers[k] for k in CORE_BUFFERS]
        self._env = _native.Env(name, self.num_envs, list(self.params.values()), *core, extras)
        self.reset(seed)

    def reset(self, seed: int = 0) -> np.ndarray:
        """Reseeds every instance from ``seed`` and starts new episodes."""
        self._env.reset(int(seed))
        return self.observations

    def step(self, actions: np.ndarray | None = None) -> None:
        """Steps every agent with ``self.actions`` (copied from ``actions`` if given)."""
        if actions is not None:
            self.actions[...] = actions
        self._env.step()

    def step_n(self, n: int) -> None:
        """Steps ``n`` times with the current actions, in one native call."""
        self._env.step_n(int(n))

    def episode_stats(self) -> dict[str, float]:
        """Means over the episodes finished since the last call (``episodes``: their count)."""
        sums = self._env.take_log()
        count = sums.pop("episodes")
        out: dict[str, float] = {"episodes": int(count)}
        if count:
            out.update({key: value / count for key, value in sums.items()})
        return out

    def close(self) -> None:
        self._env.close()

    def __enter__(self) -> NativeEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"NativeEnv({self.name!r}, num_envs={self.num_envs}, num_agents={self.num_agents})"


def serve_loop(envs: Sequence[Any]) -> Callable[[int, int, int], bytes | None] | None:
    """An actor's step loop over these envs, run in C with the GIL released.

    ``loop(go_fd, done_fd, timeout_ms)`` answers ``S<part>`` commands from the
    non-blocking ``go_fd`` on ``done_fd`` until it meets another command (returned
    unread, with what follows), end of file (``b""``) or ``timeout_ms`` without one
    (``None``). The wire format is ``envs/c/wire.h``'s (:func:`wire_protocol`). None when some env is not a
    :class:`NativeEnv` stepping as it does (a subclass overriding ``step`` or
    ``episode_stats`` runs its Python).
    """
    plain = all(
        isinstance(env, NativeEnv)
        and type(env).step is NativeEnv.step
        and type(env).episode_stats is NativeEnv.episode_stats
        for env in envs
    )
    if not plain:
        return None
    engines = [env._env for env in envs]
    return lambda go, done, timeout_ms: _native.serve(engines, go, done, timeout_ms)


def action_space(layout: Mapping[str, Any]) -> gymnasium.spaces.Space[Any]:
    """Discrete(num_actions), or MultiDiscrete(action_nvec) when the env declares dimensions."""
    if layout["action_nvec"]:
        return gymnasium.spaces.MultiDiscrete(np.array(layout["action_nvec"], dtype=np.int64))
    return gymnasium.spaces.Discrete(layout["num_actions"])


def action_high(space: gymnasium.spaces.Space[Any]) -> Any:
    """Exclusive upper bound of each action component: ``n`` or ``nvec`` (broadcasts over rows)."""
    return space.nvec if isinstance(space, gymnasium.spaces.MultiDiscrete) else cast(gymnasium.spaces.Discrete, space).n


def observation_space(name: str, layout: Mapping[str, Any]) -> gymnasium.spaces.Space[Any]:
    """One Box, or, for envs that pack parts into uint8 rows, the PackedSpace of those parts.

    env.h packs parts in declared order at offsets aligned to their dtype, as
    :func:`envs.emulation.layout.layout_of` does; this checks the two agree.
    """
    dtype = _DTYPES[layout["obs_dtype"]]
    if not layout["obs_parts"]:
        return gymnasium.spaces.Box(
            low=_bound(layout["obs_low"], dtype),
            high=_bound(layout["obs_high"], dtype),
            shape=tuple(layout["obs_shape"]),
            dtype=dtype,
        )
    from .emulation.layout import layout_of  # emulation imports this module: import on use

    parts = [
        (part, gymnasium.spaces.Box(low=_bound(lo, _DTYPES[code]), high=_bound(hi, _DTYPES[code]),
                                    shape=tuple(shape), dtype=_DTYPES[code]))
        for part, code, shape, lo, hi in layout["obs_parts"]
    ]
    packed = layout_of(gymnasium.spaces.Dict(parts))
    names = [leaf.name for leaf in packed.leaves]
    if names != [p for p, _ in parts] or (packed.nbytes,) != tuple(layout["obs_shape"]) or dtype != np.uint8:
        raise RuntimeError(f"{name}: the C header packs its observation parts differently from layout_of")
    return packed.row_space()


def _bound(value: float, dtype: type) -> Any:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return dtype(min(max(value, info.min), info.max))
    return dtype(value)


def _take_buffers(
    name: str, spec: dict[str, tuple[tuple[int, ...], np.dtype]], given: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    unknown = sorted(set(given) - set(spec))
    if unknown:
        raise ValueError(f"{name}: unknown buffer '{unknown[0]}' (expected: {', '.join(spec)})")
    out = {}
    for key, (shape, dtype) in spec.items():
        array = given.get(key)
        if array is None:
            array = np.zeros(shape, dtype=dtype)
        elif not isinstance(array, np.ndarray):
            raise ValueError(f"{name}: buffer '{key}' must be a numpy array, got {type(array).__name__}")
        elif array.dtype != dtype:
            raise ValueError(f"{name}: buffer '{key}' must have dtype {dtype}, got {array.dtype}")
        elif array.shape != shape:
            raise ValueError(f"{name}: buffer '{key}' must have shape {shape}, got {array.shape}")
        elif not array.flags.c_contiguous or not array.flags.writeable:
            raise ValueError(f"{name}: buffer '{key}' must be writable and C-contiguous")
        out[key] = array
    return out


def wire_protocol() -> dict[str, Any]:
    """The actor wire protocol's constants as the engine was compiled with them (``envs/c/wire.h``)."""
    return dict(_native.wire())
