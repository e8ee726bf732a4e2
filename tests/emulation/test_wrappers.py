"""Frame stacking and action repeat over whole batches, against the unwrapped env."""

from __future__ import annotations

import numpy as np
import pytest

import envs


def test_frame_stack_follows_the_wrapped_env() -> None:
    stacked = envs.make("CartPole-v1", num_envs=4, seed=3, frame_stack=3)
    plain = envs.make("CartPole-v1", num_envs=4, seed=3)
    assert stacked.observations.shape == (4, 3, 4)
    assert stacked.single_observation_space.shape == (3, 4)
    history = [plain.observations.copy()] * 3
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(120):
        actions = rng.integers(0, 2, size=4).astype(np.int32)
        stacked.step(actions)
        plain.step(actions)
        done = plain.terminals | plain.truncations
        ended += done.sum()
        history = history[1:] + [plain.observations.copy()]
        want = np.stack(history, axis=1)
        want[done] = plain.observations[done][:, None]  # a new episode starts with its first frame repeated
        for i in np.flatnonzero(done):
            history = [h.copy() for h in history]
            for h in history:
                h[i] = plain.observations[i]
        np.testing.assert_array_equal(stacked.observations, want)
        np.testing.assert_array_equal(stacked.terminals, plain.terminals)
    assert ended > 0
    assert stacked.episode_stats() == plain.episode_stats()


def test_frame_stack_final_observations_on_truncation() -> None:
    env = envs.make("Pendulum-v1", num_envs=2, seed=0, frame_stack=2)
    for _ in range(199):
        last = env.observations.copy()
        env.step()
    last = env.observations.copy()
    env.step()  # step 200 truncates
    assert env.truncations.all()
    np.testing.assert_array_equal(env.final_observations[:, 0], last[:, 1])
    np.testing.assert_array_equal(env.final_observations[:, 1], env.env.final_observations)
    np.testing.assert_array_equal(env.observations[:, 0], env.observations[:, 1])


def test_action_repeat_sums_rewards_up_to_the_episode_end() -> None:
    repeated = envs.make("Pendulum-v1", num_envs=3, seed=1, action_repeat=4)
    plain = envs.make("Pendulum-v1", num_envs=3, seed=1)
    assert repeated.frames_per_step == 4
    rng = np.random.default_rng(0)
    for step in range(60):  # 240 inner steps: one truncation at inner step 200 (outer step 50)
        actions = rng.uniform(-2, 2, size=(3, 1)).astype(np.float32)
        repeated.step(actions)
        total = np.zeros(3, np.float32)
        trunc = np.zeros(3, bool)
        for _ in range(4):
            plain.step(actions)
            total += np.where(trunc, 0, plain.rewards)
            trunc |= plain.truncations
        np.testing.assert_allclose(repeated.rewards, total, rtol=1e-6)
        np.testing.assert_array_equal(repeated.truncations, trunc)
        assert trunc.all() == (step == 49)
        np.testing.assert_array_equal(repeated.observations, plain.observations)


def test_wrapped_buffer_spec_matches_and_bad_depth() -> None:
    spec = envs.buffer_spec("CartPole-v1", 2, frame_stack=4, action_repeat=2)
    owned = {key: np.zeros(shape, dtype) for key, (shape, dtype) in spec.items()}
    env = envs.make("CartPole-v1", num_envs=2, seed=0, frame_stack=4, action_repeat=2, buffers=owned)
    for key, array in owned.items():
        assert getattr(env, key) is array, key
    env.step(np.ones(2, np.int32))
    assert owned["observations"].shape == (2, 4, 4) and owned["rewards"].sum() > 0
    with pytest.raises(ValueError, match="frame_stack"):
        envs.make("CartPole-v1", frame_stack=0)
    with pytest.raises(ValueError, match="frame_stack needs a Box"):
        envs.make("MiniGrid-Empty-5x5-v0", drop_keys=("mission",), frame_stack=2)
