"""Atari through ALE's vector env: shapes, seeded determinism, same-step truncation."""

from __future__ import annotations

import numpy as np
import pytest

import envs


def rollout(seed: int, steps: int, **params: object) -> tuple[np.ndarray, np.ndarray]:
    env = envs.make("atari/pong", num_envs=2, seed=seed, **params)
    rng = np.random.default_rng(0)
    frames, rewards = [env.observations.copy()], []
    for _ in range(steps):
        env.actions[:] = rng.integers(0, env.single_action_space.n, size=2)
        env.step()
        frames.append(env.observations.copy())
        rewards.append(env.rewards.copy())
    env.close()
    return np.stack(frames), np.stack(rewards)


def test_pong_observations_and_determinism() -> None:
    assert "atari/pong" in envs.names() and "atari/breakout" in envs.names()
    env = envs.make("atari/pong", num_envs=2, seed=1)
    assert env.observations.shape == (2, 4, 84, 84) and env.observations.dtype == np.uint8
    assert env.single_observation_space.shape == (4, 84, 84)
    assert env.frames_per_step == 4 and env.masks.all()
    env.close()
    a_frames, a_rewards = rollout(5, 150)
    b_frames, b_rewards = rollout(5, 150)
    np.testing.assert_array_equal(a_frames, b_frames)
    np.testing.assert_array_equal(a_rewards, b_rewards)
    assert a_frames[-1].any()
    c_frames, _ = rollout(6, 150)
    assert not np.array_equal(a_frames, c_frames)


def test_truncation_resets_in_the_same_step() -> None:
    # 400 frames = 100 agent steps of 4 frames.
    env = envs.make("atari/pong", num_envs=2, seed=0, max_num_frames_per_episode=400)
    for step in range(100):
        before = env.observations.copy()
        env.step()
        if step < 99:
            assert not env.truncations.any()
    assert env.truncations.all() and not env.terminals.any()
    # The reset observation starts a new stack; the final one continues the old.
    np.testing.assert_array_equal(env.final_observations[:, :3], before[:, 1:])
    assert not np.array_equal(env.observations, env.final_observations)
    stats = env.episode_stats()
    assert stats["episodes"] == 2 and stats["episode_length"] == 100
    assert {"episode_return", "score"} <= set(stats)
    env.step()
    assert not env.truncations.any()
    env.close()


def test_atari_buffer_spec_and_bad_names() -> None:
    spec = envs.buffer_spec("atari/breakout", 3)
    assert spec["observations"] == ((3, 4, 84, 84), np.dtype(np.uint8))
    assert spec["final_observations"] == spec["observations"]
    with pytest.raises(ValueError, match="no ROM 'not_a_game'"):
        envs.make("atari/not_a_game")
    with pytest.raises(ValueError, match="'autoreset_mode'"):
        envs.make("atari/pong", autoreset_mode="NextStep")
