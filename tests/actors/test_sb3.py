"""SB3's own PPO trains CartPole-v1 through the pool (the SB3 VecEnv adapter)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

from stable_baselines3.common.vec_env import VecEnv  # noqa: E402

from actors import ActorPool  # noqa: E402
from actors.sb3 import SB3VecEnv, make_vec_env  # noqa: E402
from appliance.bench.train import ZOO_CARTPOLE, sb3  # noqa: E402


def test_sb3_ppo_solves_cartpole_through_the_pool() -> None:
    venv = make_vec_env("cartpole", ZOO_CARTPOLE["n_envs"], num_actors=2, seed=0)
    assert isinstance(venv, VecEnv)
    result = sb3(0, seconds_limit=240.0, threads=1, venv=venv)
    assert result["seconds_to_target"] is not None, result
    assert result["mean_return"] >= 475


def test_sb3_infos_carry_terminal_observations_and_episodes() -> None:
    venv = SB3VecEnv(ActorPool("CartPole-v1", 4, 2, 4, seed=1))
    try:
        obs = venv.reset()
        assert obs.shape == (4, 4)
        ended, truncated = 0, 0
        for _ in range(600):
            obs, rewards, dones, infos = venv.step(np.zeros(4, np.int64))
            assert rewards.dtype == np.float32 and dones.dtype == np.bool_
            for i in np.flatnonzero(dones):
                info = infos[i]
                assert info["terminal_observation"].shape == (4,)
                assert info["episode"]["r"] == info["episode"]["l"] >= 1
                ended += 1
                truncated += info["TimeLimit.truncated"]
            assert all(not infos[i] for i in np.flatnonzero(~dones))
        assert ended > 4 and truncated == 0  # always pushing left falls over: terminated, never truncated
    finally:
        venv.close()


def test_sb3_refuses_an_asynchronous_pool() -> None:
    with ActorPool("cartpole", 4, 2, 2, seed=0) as pool:
        with pytest.raises(ValueError, match="synchronous"):
            SB3VecEnv(pool)


def test_truncated_episodes_carry_their_last_observation() -> None:
    import gymnasium

    venv = make_vec_env(lambda: gymnasium.make("CartPole-v1", max_episode_steps=3), 2, num_actors=0, seed=2)
    try:
        prev = venv.reset()
        for step in range(1, 10):
            obs, _, dones, infos = venv.step(np.array([step % 2, step % 2]))
            if step % 3:
                assert not dones.any()
            else:
                assert dones.all() and all(info["TimeLimit.truncated"] for info in infos)
                for i in range(2):  # the last observation of the episode, not the next one's first
                    assert not np.array_equal(infos[i]["terminal_observation"], obs[i])
                    assert np.abs(infos[i]["terminal_observation"] - prev[i]).max() < 0.5
            prev = obs
    finally:
        venv.close()


def test_sb3_attribute_queries_take_any_iterable_of_indices() -> None:
    """SB3's VecEnvIndices is None, an int or any iterable of ints: a generator too (mypy found len() of one)."""
    import gymnasium

    venv = make_vec_env("cartpole", 3, num_actors=0, seed=0)
    try:
        assert venv.get_attr("render_mode") == [None] * 3
        assert venv.get_attr("render_mode", 1) == [None]
        assert venv.get_attr("render_mode", (i for i in (0, 2))) == [None, None]
        assert venv.env_is_wrapped(gymnasium.Wrapper, iter([0, 1])) == [False, False]
    finally:
        venv.close()
