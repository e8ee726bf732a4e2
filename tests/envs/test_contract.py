"""The native env contract (envs/c/env.h, docs/architecture.md), checked for every env in ``envs.native_names()``.

Env-specific rules (dynamics, rewards, maps) live in each env's own test file;
everything here must hold for any env registered in the engine.
"""

from __future__ import annotations

import hashlib
import math
import sys
import threading
import time
from multiprocessing import shared_memory
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import envs
from envs.native import KINDS, action_high

NAMES = envs.native_names()
INT32 = np.iinfo(np.int32)
STEPS = 2000
NUM_ENVS = 4
# Envs whose agents leave and return (moba's dead heroes): masks may be 0 for them.
MASKING = {"moba"}


def random_actions(env: envs.NativeEnv, rng: np.random.Generator, out_of_range: float = 0.0) -> np.ndarray:
    """In-range actions, with a fraction replaced by arbitrary int32 values."""
    actions = rng.integers(0, action_high(env.single_action_space), size=env.actions.shape, dtype=np.int32)
    if out_of_range:
        wild = rng.random(env.actions.shape) < out_of_range
        count = int(wild.sum())
        actions[wild] = rng.integers(INT32.min, INT32.max, size=count, endpoint=True, dtype=np.int32)
    return actions


def trajectory(env: envs.NativeEnv, steps: int, action_seed: int) -> list[bytes]:
    """One digest per step of everything the env wrote: a compact, exact fingerprint of a run."""
    rng = np.random.default_rng(action_seed)
    digests = []
    for _ in range(steps):
        env.step(random_actions(env, rng))
        h = hashlib.blake2b(digest_size=16)
        for key in ("observations", "rewards", "terminals", "truncations", "masks"):
            h.update(env.buffers[key].tobytes())
        digests.append(h.digest())
    return digests


def first_difference(a: list[bytes], b: list[bytes]) -> int | None:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y), None)


def check_buffers(env: envs.NativeEnv) -> None:
    """Every buffer holds values the contract allows, whatever the env did."""
    space = env.single_observation_space
    obs = env.observations
    assert obs.dtype == space.dtype and obs.shape == (env.num_agents, *space.shape)
    assert np.all(obs >= space.low) and np.all(obs <= space.high), "observation outside the space's bounds"
    if np.issubdtype(obs.dtype, np.floating):
        assert not np.isnan(obs).any(), "NaN in observations"
    assert np.isfinite(env.rewards).all(), "non-finite reward"
    for key in ("terminals", "truncations", "masks"):
        raw = env.buffers[key].view(np.uint8)
        assert raw.max(initial=0) <= 1, f"{key} holds a value other than 0/1"
    assert env.masks.all() or env.name in MASKING, "a fixed-size native env masked an agent"


def small_params(name: str) -> dict[str, Any]:
    """Defaults, with a time limit short enough that truncations happen in a short test."""
    params = envs.param_defaults(name)
    spec = {p[0]: p for p in KINDS[name]["params"]}
    if "max_steps" in spec:
        params["max_steps"] = max(int(spec["max_steps"][2]), 40)
    return params


# ---------------------------------------------------------------- determinism


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_trajectory(name: str) -> None:
    with envs.make(name, num_envs=NUM_ENVS, seed=7) as a, envs.make(name, num_envs=NUM_ENVS, seed=7) as b:
        assert np.array_equal(a.observations, b.observations)
        ta, tb = trajectory(a, STEPS, 1), trajectory(b, STEPS, 1)
    assert first_difference(ta, tb) is None, f"diverged at step {first_difference(ta, tb)}"


@pytest.mark.parametrize("name", NAMES)
def test_different_seeds_differ(name: str) -> None:
    with envs.make(name, num_envs=NUM_ENVS, seed=1) as a, envs.make(name, num_envs=NUM_ENVS, seed=2) as b:
        # Same actions: any difference comes from the env's own seeded randomness.
        ta, tb = trajectory(a, 200, 1), trajectory(b, 200, 1)
    assert first_difference(ta, tb) is not None


@pytest.mark.parametrize("name", NAMES)
def test_reset_with_seed_reproduces(name: str) -> None:
    with envs.make(name, num_envs=NUM_ENVS, seed=3) as env:
        first_obs = env.observations.copy()
        first = trajectory(env, STEPS // 2, 5)
        env.reset(3)
        assert np.array_equal(env.observations, first_obs)
        again = trajectory(env, STEPS // 2, 5)
        env.reset(3)
        env.reset(3)  # resetting twice is the same as once
        twice = trajectory(env, STEPS // 2, 5)
    assert first_difference(first, again) is None
    assert first_difference(first, twice) is None


# ---------------------------------------------------------------- buffers and auto-reset


@pytest.mark.parametrize("name", NAMES)
def test_buffers_match_spec(name: str) -> None:
    spec = envs.buffer_spec(name, NUM_ENVS)
    with envs.make(name, num_envs=NUM_ENVS) as env:
        assert set(env.buffers) == set(spec)
        for key, (shape, dtype) in spec.items():
            array = getattr(env, key)
            assert array is env.buffers[key]
            assert array.shape == shape and array.dtype == dtype, key
            assert array.flags.c_contiguous and array.flags.writeable, key
        assert env.num_agents == spec["rewards"][0][0] == env.num_envs * env.agents_per_env
        assert env.single_observation_space.shape == spec["observations"][0][1:]
        assert np.all(action_high(env.single_action_space) >= 1)
        assert env.actions.shape == (env.num_agents, *env.single_action_space.shape)


@pytest.mark.parametrize("name", NAMES)
def test_auto_reset_and_episode_stats(name: str) -> None:
    """Flags are consistent with the time limit, and every ended episode is logged exactly once."""
    params = small_params(name)
    max_steps = params.get("max_steps")
    with envs.make(name, num_envs=NUM_ENVS, seed=4, **params) as env:
        check_buffers(env)
        rng = np.random.default_rng(0)
        length = np.zeros(env.num_agents, dtype=np.int64)
        ret = np.zeros(env.num_agents, dtype=np.float64)
        ended_lengths: list[int] = []
        ended_returns: list[float] = []
        truncations = 0
        for _ in range(STEPS):
            env.step(random_actions(env, rng))
            check_buffers(env)
            length += 1
            ret += env.rewards
            done = env.terminals | env.truncations
            truncations += int(env.truncations.sum())
            if max_steps is not None:
                assert np.all(length[done] <= max_steps), "an episode outlived max_steps"
                assert np.all(done[length >= max_steps]), "an episode reached max_steps without ending"
            ended_lengths += length[done].tolist()
            ended_returns += ret[done].tolist()
            length[done] = 0
            ret[done] = 0.0
        stats = env.episode_stats()
        assert env.episode_stats() == {"episodes": 0}, "episode_stats() must clear what it returned"
    assert stats["episodes"] == len(ended_lengths), "episodes must be counted once per end"
    assert ended_lengths, "no episode ended: the test exercised no auto-reset"
    if max_steps is not None:
        assert truncations > 0, "the time limit never fired"
    assert stats["episode_length"] == pytest.approx(np.mean(ended_lengths), rel=1e-9)
    assert stats["episode_return"] == pytest.approx(np.mean(ended_returns), rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_final_observations_written_on_truncation(name: str) -> None:
    params = small_params(name)
    if "max_steps" not in params:
        pytest.skip(f"{name} has no max_steps parameter")
    with envs.make(name, num_envs=NUM_ENVS, seed=5, **params) as env:
        rng = np.random.default_rng(1)
        space = env.single_observation_space
        seen = 0
        for _ in range(STEPS):
            floating = np.issubdtype(env.final_observations.dtype, np.floating)
            if floating:  # a marker the env must overwrite on every truncated row
                env.final_observations[...] = np.nan
            env.step(random_actions(env, rng))
            rows = env.truncations
            seen += int(rows.sum())
            final = env.final_observations[rows]
            if floating:
                assert not np.isnan(final).any(), "final_observations not written for a truncated agent"
            assert np.all(final >= space.low) and np.all(final <= space.high)
    assert seen > 0


@pytest.mark.parametrize("name", NAMES)
def test_out_of_range_actions_are_safe(name: str) -> None:
    """env.h: any int32 in `actions` must be safe to step (ASan checks the memory side)."""
    with envs.make(name, num_envs=NUM_ENVS, seed=6) as env:
        n = action_high(env.single_action_space)
        for value in (INT32.min, -1, n, n + 1, INT32.max):
            env.actions[...] = value
            for _ in range(50):
                env.step()
                check_buffers(env)
        rng = np.random.default_rng(2)
        for _ in range(500):
            env.step(random_actions(env, rng, out_of_range=0.5))
            check_buffers(env)


# ---------------------------------------------------------------- caller-owned buffers


def _carve(spec: dict[str, tuple[tuple[int, ...], np.dtype]], memory: Any) -> dict[str, np.ndarray]:
    """Views into one block, each 64-byte aligned, as an arena would lay them out."""
    out, offset = {}, 0
    for key, (shape, dtype) in spec.items():
        offset = -(-offset // 64) * 64
        out[key] = np.ndarray(shape, dtype=dtype, buffer=memory, offset=offset)
        offset += out[key].nbytes
    return out


def _arena_size(spec: dict[str, tuple[tuple[int, ...], np.dtype]]) -> int:
    return sum(-(-math.prod(shape) * dtype.itemsize // 64) * 64 for shape, dtype in spec.values()) + 64


@pytest.mark.parametrize("memory", ["numpy", "shared_memory"])
@pytest.mark.parametrize("name", NAMES)
def test_caller_owned_buffers(name: str, memory: str) -> None:
    spec = envs.buffer_spec(name, NUM_ENVS)
    size = _arena_size(spec)
    shm = shared_memory.SharedMemory(create=True, size=size) if memory == "shared_memory" else None
    try:
        block = shm.buf if shm is not None else np.zeros(size, dtype=np.uint8)
        arena = np.frombuffer(block, dtype=np.uint8)
        given = _carve(spec, block)
        arena[...] = 0xAB  # garbage the env must overwrite, not trust
        owned = envs.make(name, num_envs=NUM_ENVS, seed=9, buffers=given)
        own = envs.make(name, num_envs=NUM_ENVS, seed=9)
        for key, array in given.items():
            assert owned.buffers[key] is array and getattr(owned, key) is array
        rng = np.random.default_rng(3)
        for step in range(500):
            actions = random_actions(own, rng)
            given["actions"][...] = actions  # the caller writes actions in place
            owned.step()
            own.step(actions)
            for key in ("observations", "rewards", "terminals", "truncations", "masks", "final_observations"):
                if key == "final_observations":
                    rows = own.truncations
                    assert np.array_equal(given[key][rows], own.final_observations[rows]), (step, key)
                else:
                    assert np.array_equal(given[key], own.buffers[key]), (step, key)
        # The arena bytes themselves changed: the env wrote through the views, not into copies.
        obs_bytes = given["observations"].view(np.uint8).reshape(-1)
        assert np.shares_memory(obs_bytes, arena) and not (obs_bytes == 0xAB).all()
        owned.close()
        own.close()
        del owned, given, arena, obs_bytes, block
    finally:
        if shm is not None:
            try:
                shm.close()
            except BufferError:  # views still alive because an assertion failed above
                pass
            shm.unlink()


# ---------------------------------------------------------------- bad input


def _raises_naming(word: str, fn: Any, *args: Any, **kwargs: Any) -> None:
    with pytest.raises(ValueError) as info:
        fn(*args, **kwargs)
    assert word in str(info.value), f"message {str(info.value)!r} does not name {word!r}"


def test_unknown_env_name() -> None:
    _raises_naming("no_such_env", envs.make, "no_such_env")
    _raises_naming("no_such_env", envs.buffer_spec, "no_such_env", 1)


@pytest.mark.parametrize("name", NAMES)
def test_bad_params(name: str) -> None:
    _raises_naming("bogus_knob", envs.make, name, bogus_knob=1)
    for n in (0, -1, -(2**40)):
        _raises_naming("num_envs", envs.make, name, num_envs=n)
        _raises_naming("num_envs", envs.buffer_spec, name, n)
    _raises_naming("num_envs", envs.make, name, num_envs=1.5)
    _raises_naming("num_envs", envs.make, name, num_envs="4")
    for pname, _default, lo, hi, integer, _doc in KINDS[name]["params"]:
        for bad in ("x", None, True, [1], float("nan")):
            _raises_naming(pname, envs.make, name, **{pname: bad})
        if math.isfinite(lo):
            _raises_naming(pname, envs.make, name, **{pname: lo - max(1.0, abs(lo))})
        if math.isfinite(hi):
            _raises_naming(pname, envs.make, name, **{pname: hi + max(1.0, abs(hi))})
        _raises_naming(pname, envs.make, name, **{pname: float("inf")})
        _raises_naming(pname, envs.make, name, **{pname: -float("inf")})
        if integer and lo + 0.5 <= hi:
            _raises_naming(pname, envs.make, name, **{pname: lo + 0.5})


@pytest.mark.parametrize("name", NAMES)
def test_bad_buffers(name: str) -> None:
    spec = envs.buffer_spec(name, 2)
    for key, (shape, dtype) in spec.items():
        wrong_dtype = np.float64 if dtype != np.float64 else np.float32
        _raises_naming(key, envs.make, name, num_envs=2, buffers={key: np.zeros(shape, wrong_dtype)})
        longer = np.zeros((shape[0] + 1, *shape[1:]), dtype)
        _raises_naming(key, envs.make, name, num_envs=2, buffers={key: longer})
        _raises_naming(key, envs.make, name, num_envs=2, buffers={key: np.zeros((1, *shape), dtype)})
        if np.prod(shape) > 0:  # an empty buffer (moba's tables without extras=1) has no stride to get wrong
            strided = np.zeros((shape[0] * 2, *shape[1:]), dtype)[::2]
            _raises_naming(key, envs.make, name, num_envs=2, buffers={key: strided})
        if len(shape) > 1 and shape[-1] > 1:
            fortran = np.asfortranarray(np.zeros(shape, dtype))
            _raises_naming(key, envs.make, name, num_envs=2, buffers={key: fortran})
        readonly = np.zeros(shape, dtype)
        readonly.flags.writeable = False
        _raises_naming(key, envs.make, name, num_envs=2, buffers={key: readonly})
        _raises_naming(key, envs.make, name, num_envs=2, buffers={key: np.zeros(shape, dtype).tolist()})
    _raises_naming("no_such_buffer", envs.make, name, num_envs=2, buffers={"no_such_buffer": np.zeros(2)})


def test_engine_rejects_bad_sizes_directly() -> None:
    """The C engine re-checks byte sizes itself: NativeEnv is not the only caller."""
    from envs import _native

    name = NAMES[0]
    spec = envs.buffer_spec(name, 2)
    core = [np.zeros(*spec[k]) for k in envs.native.CORE_BUFFERS]
    extras = [np.zeros(*spec[x[0]]) for x in KINDS[name]["extras"]]
    params = [float(v) for v in envs.param_defaults(name).values()]
    bad = list(core)
    bad[0] = np.zeros(spec["observations"][0][0] + 1, dtype=np.float64)
    _raises_naming("observations", _native.Env, name, 2, params, *bad, extras)
    _raises_naming("num_envs", _native.Env, name, 0, params, *core, extras)
    _raises_naming(name, _native.Env, name, 2, params[:-1] if params else [1.0], *core, extras)
    env = _native.Env(name, 2, params, *core, extras)
    env.close()
    with pytest.raises(RuntimeError):
        env.step()


# ---------------------------------------------------------------- property tests


@st.composite
def env_configs(draw: st.DrawFn, name: str) -> tuple[dict[str, Any], int]:
    params: dict[str, Any] = {}
    for pname, default, lo, hi, integer, _doc in KINDS[name]["params"]:
        # Keep sizes small: no more than twice the default (or min + 8) so a step stays cheap.
        cap = min(hi, max(lo + 8, 2 * abs(default)))
        if integer:
            params[pname] = draw(st.integers(int(lo), int(cap)))
        else:
            params[pname] = draw(st.floats(lo, cap, allow_nan=False, allow_infinity=False))
    return params, draw(st.integers(1, 4))


@pytest.mark.parametrize("name", NAMES)
def test_random_params_and_actions(name: str) -> None:
    @settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(config=env_configs(name), seed=st.integers(0, 2**64 - 1), wild=st.sampled_from([0.0, 0.1, 1.0]))
    def run(config: tuple[dict[str, Any], int], seed: int, wild: float) -> None:
        params, num_envs = config
        try:
            env = envs.make(name, num_envs=num_envs, seed=seed, **params)
        except ValueError as error:  # a cross-parameter rule; it must say which parameter
            assert any(p in str(error) for p in params), str(error)
            return
        with env:
            check_buffers(env)
            rng = np.random.default_rng(seed % 2**32)
            for i in range(300):
                env.step(random_actions(env, rng, out_of_range=wild))
                check_buffers(env)
                if i == 150:
                    env.reset(seed + 1)
                    check_buffers(env)
            stats = env.episode_stats()
            assert stats["episodes"] >= 0
            if stats["episodes"]:
                assert math.isfinite(stats["episode_return"]) and stats["episode_length"] >= 1

    run()


# ---------------------------------------------------------------- GIL


@pytest.mark.parametrize("name", NAMES)
def test_step_releases_the_gil(name: str) -> None:
    """Two threads stepping two envs both progress while Python never preempts a thread.

    With a huge switch interval the interpreter only hands the GIL over when a
    thread releases it, so the main thread can step its env while the other
    thread is still in its loop only if step() releases the GIL.
    """
    first = envs.make(name, num_envs=NUM_ENVS, seed=1)
    second = envs.make(name, num_envs=NUM_ENVS, seed=2)
    started, stop = threading.Event(), threading.Event()
    result: dict[str, Any] = {"steps": 0, "stopped": False}

    def worker() -> None:
        deadline = time.monotonic() + 20.0
        started.set()
        while time.monotonic() < deadline:
            if stop.is_set():
                result["stopped"] = True
                return
            first.step()
            result["steps"] += 1

    old = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)
    try:
        thread = threading.Thread(target=worker, daemon=True)
        thread.start()
        assert started.wait(timeout=20.0)
        main_steps = 0
        for _ in range(100):
            second.step()
            main_steps += 1
        stop.set()
        thread.join(timeout=30.0)
    finally:
        sys.setswitchinterval(old)
    assert not thread.is_alive()
    assert main_steps == 100
    assert result["stopped"], "the worker ran out its deadline: the main thread never got the GIL back"
    assert result["steps"] > 0
    first.close()
    second.close()
