"""The C CartPole against Gymnasium's CartPole-v1, transition by transition."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import envs

TOL = 1e-5
LIMIT = 500


def keep_alive(state: np.ndarray) -> np.ndarray:
    """A controller that balances the pole for the whole 500 steps from any initial state."""
    return (state[..., 2] + 0.5 * state[..., 3] > 0).astype(np.int32)


@pytest.fixture
def gym_env() -> gym.Env:
    env = gym.make("CartPole-v1")
    env.reset(seed=0)  # OrderEnforcing wants a reset before the first step
    yield env
    env.close()


def gym_step_from(gym_env: gym.Env, state: np.ndarray, elapsed: int, action: int) -> tuple:
    """Steps Gymnasium's CartPole-v1 from an exact float64 state and time-limit counter."""
    gym_env.unwrapped.state = np.array(state, dtype=np.float64)
    gym_env.unwrapped.steps_beyond_terminated = None
    gym_env._elapsed_steps = int(elapsed)  # the outermost wrapper is TimeLimit
    obs, reward, terminated, truncated, _ = gym_env.step(int(action))
    return obs, reward, terminated, truncated


def sample_states(rng: np.random.Generator, n: int) -> np.ndarray:
    """States spread over (and a little past) the alive region, so both terminations fire often."""
    high = np.array([2.6, 3.0, 0.24, 3.5])
    return rng.uniform(-high, high, size=(n, 4))


def test_gymnasium_wraps_cartpole_in_time_limit(gym_env: gym.Env) -> None:
    assert isinstance(gym_env, gym.wrappers.TimeLimit)
    assert gym_env._max_episode_steps == LIMIT
    assert envs.param_defaults("cartpole")["max_steps"] == LIMIT


def test_transitions_match_gymnasium(gym_env: gym.Env) -> None:
    """12,000 single transitions from identical states, actions and step counters."""
    n, rounds = 1000, 12
    env = envs.make("cartpole", num_envs=n, seed=0)
    rng = np.random.default_rng(0)
    counts = {"terminated": 0, "truncated": 0, "both": 0, "alive": 0}
    for _ in range(rounds):
        states = sample_states(rng, n)
        # A quarter of the rows sit right at the time limit, the rest anywhere before it.
        elapsed = np.where(rng.random(n) < 0.25, LIMIT - 1, rng.integers(0, LIMIT - 1, n)).astype(np.int32)
        actions = rng.integers(0, 2, n, dtype=np.int32)
        env.state[...] = states
        env.steps[:, 0] = elapsed
        env.step(actions)
        for i in range(n):
            obs, reward, terminated, truncated = gym_step_from(gym_env, states[i], elapsed[i], actions[i])
            where = f"state={states[i].tolist()} elapsed={elapsed[i]} action={actions[i]}"
            assert bool(env.terminals[i]) == terminated, where
            assert bool(env.truncations[i]) == truncated, where
            assert env.rewards[i] == pytest.approx(reward, abs=TOL), where
            if truncated:
                np.testing.assert_allclose(env.final_observations[i], obs, atol=TOL, err_msg=where)
            if terminated or truncated:
                # Auto-reset: the row now holds the first observation of a new episode.
                assert np.all(np.abs(env.observations[i]) <= 0.05), where
                assert env.steps[i, 0] == 0, where
                np.testing.assert_array_equal(env.observations[i], env.state[i].astype(np.float32))
            else:
                np.testing.assert_allclose(env.observations[i], obs, atol=TOL, err_msg=where)
                np.testing.assert_allclose(env.state[i], gym_env.unwrapped.state, atol=TOL, err_msg=where)
                assert env.steps[i, 0] == elapsed[i] + 1
            key = "both" if terminated and truncated else "terminated" if terminated else (
                "truncated" if truncated else "alive")
            counts[key] += 1
    env.close()
    # The sample really covered every outcome, including a fall on the last allowed step.
    assert all(count > 50 for count in counts.values()), counts


def test_trajectories_match_gymnasium(gym_env: gym.Env) -> None:
    """Whole episodes from the same initial states, ending by falling and by the time limit."""
    rng = np.random.default_rng(1)
    env = envs.make("cartpole", num_envs=1, seed=0)
    outcomes = set()
    for episode in range(12):
        gym_obs, _ = gym_env.reset(seed=episode)
        env.state[0] = gym_env.unwrapped.state
        env.steps[0, 0] = 0
        balance = episode % 2 == 0  # even episodes survive to the limit, odd ones fall
        for t in range(1, LIMIT + 1):
            action = int(keep_alive(env.state[0])) if balance else int(rng.integers(0, 2))
            gym_obs, reward, terminated, truncated, _ = gym_env.step(action)
            env.step(np.array([action], dtype=np.int32))
            assert (bool(env.terminals[0]), bool(env.truncations[0])) == (terminated, truncated), t
            assert env.rewards[0] == reward == 1.0
            if terminated or truncated:
                if truncated:
                    np.testing.assert_allclose(env.final_observations[0], gym_obs, atol=TOL)
                    assert t == LIMIT
                assert np.all(np.abs(env.observations[0]) <= 0.05)
                outcomes.add("truncated" if truncated else "terminated")
                break
            np.testing.assert_allclose(env.observations[0], gym_obs, atol=TOL, err_msg=f"step {t}")
        else:
            pytest.fail("an episode ran past the time limit")
        stats = env.episode_stats()
        assert stats["episodes"] == 1 and stats["episode_length"] == t and stats["episode_return"] == t
    env.close()
    assert outcomes == {"terminated", "truncated"}


def test_time_limit_from_a_fresh_env(gym_env: gym.Env) -> None:
    """The C step counter alone (no writes to `steps`) truncates exactly at step 500."""
    env = envs.make("cartpole", num_envs=8, seed=3)
    first = env.observations.copy()
    for t in range(1, LIMIT + 1):
        state_before = env.state.copy()
        actions = keep_alive(env.state)
        env.step(actions)
        assert not env.terminals.any(), t
        assert env.truncations.all() == (t == LIMIT) and env.truncations.any() == (t == LIMIT), t
    # final_observations is the 500th observation, exactly as Gymnasium returns it at truncation.
    for i in range(env.num_agents):
        obs, _, terminated, truncated = gym_step_from(gym_env, state_before[i], LIMIT - 1, actions[i])
        assert truncated and not terminated
        np.testing.assert_allclose(env.final_observations[i], obs, atol=TOL)
    assert np.all(np.abs(env.observations) <= 0.05) and not np.array_equal(env.observations, first)
    stats = env.episode_stats()
    assert stats == {"episodes": 8, "episode_return": 500.0, "episode_length": 500.0, "score": 500.0}
    env.close()


def test_truncation_is_not_termination() -> None:
    """A pole still up at the limit is truncated only; one that falls on that step is both (TimeLimit)."""
    env = envs.make("cartpole", num_envs=2, seed=0)
    env.state[0] = [0.0, 0.0, 0.0, 0.0]
    env.state[1] = [0.0, 0.0, 0.2094, 1.0]  # falls on this step
    env.steps[:, 0] = LIMIT - 1
    env.step(np.array([1, 1], dtype=np.int32))
    assert env.truncations.tolist() == [True, True]
    assert env.terminals.tolist() == [False, True]
    env.close()


def test_initial_state_distribution() -> None:
    env = envs.make("cartpole", num_envs=20000, seed=5)
    obs = env.observations
    assert np.all(np.abs(obs) <= 0.05)
    # Uniform on [-0.05, 0.05] per component, as Gymnasium's reset draws it.
    assert np.all(obs.min(axis=0) < -0.049) and np.all(obs.max(axis=0) > 0.049)
    assert np.all(np.abs(obs.mean(axis=0)) < 0.002)
    assert np.all(np.abs(obs.std(axis=0) - 0.1 / np.sqrt(12)) < 0.002)
    np.testing.assert_array_equal(obs, env.state.astype(np.float32))
    assert np.all(env.steps == 0)
    env.close()


def test_auto_reset_observation_starts_a_new_episode() -> None:
    env = envs.make("cartpole", num_envs=256, seed=2)
    rng = np.random.default_rng(0)
    ends = 0
    for _ in range(300):
        env.step(rng.integers(0, 2, env.num_agents, dtype=np.int32))
        done = env.terminals | env.truncations
        ends += int(done.sum())
        assert np.all(np.abs(env.observations[done]) <= 0.05)
        assert np.all(env.steps[done] == 0)
    assert ends > 1000
    env.close()
