"""The emulated envs' step loop: the compiled one and the Python fallback write exactly the same."""

from __future__ import annotations

import importlib.util

import gymnasium
import minigrid  # noqa: F401  (registers MiniGrid ids)
import numpy as np
import pytest
from gymnasium import spaces

import envs
from envs.emulation import steploop
from envs.emulation.gym import EPISODE_STATS

BUFFERS = ("observations", "final_observations", "rewards", "terminals", "truncations", "masks")


class Mixed(gymnasium.Env):
    """Every kind of leaf the compiled writer copies itself or hands to the packer.

    ``grid`` comes as a C-contiguous array of the storage dtype (one memcpy), ``mode`` as a
    Python int and ``level`` as a numpy integer (Discrete: stored directly); on some steps
    ``pos`` is float64 for its float32 Box (a cast) and ``window`` a strided view, which the
    packer writes, as it does ``inner/count`` (nested). Episodes end by termination or at
    ``length``.
    """

    observation_space = spaces.Dict({
        "grid": spaces.Box(0, 9, (3, 5), np.int16),
        "pos": spaces.Box(-1, 1, (2,), np.float32),
        "mode": spaces.Discrete(3),
        "level": spaces.Discrete(7),
        "window": spaces.Box(0, 255, (2, 2), np.uint8),
    })
    action_space = spaces.Discrete(4)

    def __init__(self, length: int = 9, nested: bool = False) -> None:
        self.length, self.nested = length, nested
        if nested:
            self.observation_space = spaces.Dict({**self.observation_space.spaces,
                                                  "inner": spaces.Dict({"count": spaces.Discrete(50)})})

    def _obs(self) -> dict:
        big = self.np_random.integers(0, 255, (4, 4)).astype(np.uint8)
        obs = {
            "grid": self.np_random.integers(0, 9, (3, 5)).astype(np.int16),
            "pos": self.np_random.uniform(-1, 1, 2).astype(np.float64 if self.t % 3 == 0 else np.float32),
            "mode": int(self.np_random.integers(3)),
            "level": np.int64(self.np_random.integers(7)),
            "window": big[::2, ::2] if self.t % 2 else np.ascontiguousarray(big[::2, ::2]),
        }
        if self.nested:
            obs["inner"] = {"count": self.t}
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple:
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action: int) -> tuple:
        self.t += 1
        terminated = bool(self.np_random.random() < 0.08) and action != 3
        info = {EPISODE_STATS: {"final_t": float(self.t)}} if terminated else {}
        return self._obs(), float(action) - 1.5, terminated, self.t >= self.length, info


def make_pair(env: str | object, num_envs: int, **params: object) -> tuple[object, object]:
    """The same env twice: one vector on the compiled loop, one on the Python loop."""
    vecs = []
    for name in ("compiled", "python"):
        vec = envs.make(env, num_envs=num_envs, seed=5, **params)
        vec.inner = getattr(vec, "env", vec)
        vec.inner._loop_with(*steploop.IMPLEMENTATIONS[name])
        vecs.append(vec)
    return vecs[0], vecs[1]


def lockstep(env: str | object, num_envs: int, steps: int, **params: object) -> dict[str, float]:
    fast, slow = make_pair(env, num_envs, **params)
    rng = np.random.default_rng(3)
    ended = truncated = 0
    try:
        for step in range(steps):
            actions = rng.integers(0, fast.single_action_space.n, num_envs)
            fast.step(actions)
            slow.step(actions)
            for key in BUFFERS:
                np.testing.assert_array_equal(fast.buffers[key], slow.buffers[key], err_msg=f"{key} at step {step}")
            ended += int((slow.terminals | slow.truncations).sum())
            truncated += int(slow.truncations.sum())
        stats = fast.episode_stats()
        assert stats == pytest.approx(slow.episode_stats())
    finally:
        fast.close()
        slow.close()
    assert ended and truncated, "the run must end episodes both ways"
    return stats


needs_compiled = pytest.mark.skipif(not steploop.COMPILED, reason="compiled step loop not built")


def test_compiled_loop_is_built_where_cython_is_installed() -> None:
    # pyproject's build requirements include Cython: a build that has it and still lacks the
    # module has lost the compiled loop without saying so.
    if importlib.util.find_spec("Cython") is None:
        pytest.skip("Cython is not installed")
    assert steploop.COMPILED, "envs/emulation/_steploop.pyx is not built: run `python setup.py build_ext --inplace`"


@needs_compiled
def test_every_leaf_kind_lands_alike_both_ways() -> None:
    stats = lockstep(lambda: Mixed(), num_envs=4, steps=60)
    assert stats["episodes"] > 0 and stats["final_t"] > 0


@needs_compiled
def test_nested_structure_goes_through_the_packer_alike() -> None:
    lockstep(lambda: Mixed(nested=True), num_envs=3, steps=40)


@needs_compiled
@pytest.mark.parametrize(("env", "params"), [("CartPole-v1", {"max_episode_steps": 12}),
                                             ("MiniGrid-Empty-5x5-v0", {"drop_keys": ("mission",), "max_steps": 12})])
def test_gymnasium_envs_alike_both_ways(env: str, params: dict) -> None:
    lockstep(env, num_envs=3, steps=80, **params)


@needs_compiled
def test_compiled_loop_under_a_wrapper() -> None:
    lockstep("CartPole-v1", num_envs=2, steps=40, max_episode_steps=10, frame_stack=3)


@pytest.mark.parametrize("name", sorted(steploop.IMPLEMENTATIONS))
def test_each_loop_matches_gymnasium_step_by_step(name: str) -> None:
    """Both loops against raw Gymnasium envs: observations, rewards, flags, final observations."""
    n = 3
    vec = envs.make("CartPole-v1", num_envs=n, seed=7, max_episode_steps=15)
    vec._loop_with(*steploop.IMPLEMENTATIONS[name])
    raw = [gymnasium.make("CartPole-v1", max_episode_steps=15) for _ in range(n)]
    first = [env.reset(seed=7 + i)[0] for i, env in enumerate(raw)]
    np.testing.assert_array_equal(vec.observations, np.stack(first))
    rng = np.random.default_rng(1)
    returns, finished = np.zeros(n), []
    for _ in range(60):
        actions = rng.integers(0, 2, n)
        vec.step(actions)
        for i, env in enumerate(raw):
            obs, reward, term, trunc, _ = env.step(int(actions[i]))
            returns[i] += reward
            assert vec.rewards[i] == np.float32(reward)
            assert (vec.terminals[i], vec.truncations[i]) == (term, trunc and not term)
            if trunc and not term:
                np.testing.assert_array_equal(vec.final_observations[i], obs)
            if term or trunc:
                finished.append(returns[i])
                returns[i] = 0
                obs, _ = env.reset()
            np.testing.assert_array_equal(vec.observations[i], obs)
    stats = vec.episode_stats()
    assert stats["episodes"] == len(finished) > 0
    assert stats["episode_return"] == pytest.approx(np.mean(finished))
    vec.close()


@needs_compiled
def test_compiled_loop_refuses_mismatched_lengths() -> None:
    vec = envs.make("CartPole-v1", num_envs=2, seed=0)
    with pytest.raises(ValueError, match="one entry per env"):
        vec._loop(vec.envs, [0], vec._obs_rows, vec._final_rows, vec.rewards, vec._returns, vec._lengths,
                  *vec._flags, vec._totals)
    vec.close()


def test_without_the_compiled_module_the_python_loop_runs() -> None:
    """An install built without Cython: steploop falls back, and the envs step the same."""
    import subprocess
    import sys

    code = """
import sys
sys.modules["envs.emulation._steploop"] = None  # as if never built
import numpy as np
import envs
from envs.emulation import steploop
assert not steploop.COMPILED and sorted(steploop.IMPLEMENTATIONS) == ["python"]
vec = envs.make("CartPole-v1", num_envs=2, seed=0, max_episode_steps=5)
assert vec._loop is steploop.step_python
for _ in range(6):
    vec.step(np.zeros(2, np.int32))
print(vec.episode_stats()["episodes"])
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split()[-1]) >= 2
