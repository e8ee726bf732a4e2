"""The Gymnasium VectorEnv adapter, over a NativeEnv and over an ActorPool."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import envs
from actors import ActorPool
from actors.gym_vector import GymVectorEnv


def rollout(vec: GymVectorEnv, steps: int, seed: int) -> list[tuple]:
    vec.action_space.seed(seed)
    obs, info = vec.reset(seed=seed)
    assert vec.observation_space.contains(obs) and info == {}
    out = [(obs,)]
    for _ in range(steps):
        result = vec.step(vec.action_space.sample())
        out.append(result)
    return out


def test_native_env_behaves_like_a_vector_env() -> None:
    vec = GymVectorEnv(envs.make("cartpole", num_envs=4))
    assert vec.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert vec.num_envs == 4 and vec.action_space == gymnasium.spaces.MultiDiscrete([2] * 4)
    episodes = 0
    for obs, rewards, terminations, truncations, infos in rollout(vec, 300, seed=3)[1:]:
        assert vec.observation_space.contains(obs)
        assert rewards.dtype == np.float64 and terminations.dtype == np.bool_
        if "episode" in infos:
            done = infos["_episode"]
            np.testing.assert_array_equal(done, terminations | truncations)
            # CartPole pays 1 per step: the return equals the length.
            np.testing.assert_array_equal(infos["episode"]["r"][done], infos["episode"]["l"][done])
            assert (infos["episode"]["l"][done] >= 1).all()
            episodes += int(done.sum())
    assert episodes > 4
    vec.close()


def test_reset_with_a_seed_is_reproducible() -> None:
    vec = GymVectorEnv(envs.make("cartpole", num_envs=3))
    a, b = rollout(vec, 20, seed=9), rollout(vec, 20, seed=9)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x[0], y[0])
    vec.close()


def test_pool_adapter_equals_native_adapter() -> None:
    native = GymVectorEnv(envs.make("cartpole", num_envs=6))
    pooled = GymVectorEnv(ActorPool("cartpole", 6, 1, 6, seed=0))
    try:
        for x, y in zip(rollout(native, 80, seed=4), rollout(pooled, 80, seed=4), strict=True):
            for u, v in zip(x[:4], y[:4], strict=True):
                np.testing.assert_array_equal(u, v)
    finally:
        native.close()
        pooled.close()


def test_async_pool_and_bad_actions_are_refused() -> None:
    with ActorPool("cartpole", 4, 2, 2, seed=0) as pool:
        with pytest.raises(ValueError, match="synchronous"):
            GymVectorEnv(pool)
    vec = GymVectorEnv(envs.make("cartpole", num_envs=2))
    vec.reset(seed=0)
    with pytest.raises(ValueError, match="integer dtype"):
        vec.step(np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="out of range"):
        vec.step(np.array([0, 2]))
    vec.close()


def _gymnasium_version() -> tuple[int, int]:
    major, minor = gymnasium.__version__.split(".")[:2]
    return int(major), int(minor)


def test_standard_vector_wrappers_run_on_the_adapter() -> None:
    """Gymnasium's vector wrappers that accept same-step autoreset (Gymnasium has no vector-env checker)."""
    from gymnasium.utils.passive_env_checker import check_obs
    from gymnasium.wrappers import vector as wrappers

    # RecordEpisodeStatistics counts the same episodes as the adapter's own infos. Gymnasium
    # before 1.3 (the version nle pins) counts as if autoreset were NEXT_STEP whatever the
    # env's metadata says, so the episode check needs 1.3 or newer.
    same_step_stats = _gymnasium_version() >= (1, 3)
    ours = GymVectorEnv(ActorPool("cartpole", 4, 2, 4, seed=0))
    theirs = wrappers.RecordEpisodeStatistics(GymVectorEnv(ActorPool("cartpole", 4, 2, 4, seed=0),
                                                           episode_info=False))
    ours.reset(seed=5)
    obs, _ = theirs.reset(seed=5)
    check_obs(obs, theirs.observation_space, "reset")
    mine, gym_stats = [], []
    for _ in range(200):
        actions = np.zeros(4, np.int64)
        infos = ours.step(actions)[4]
        obs, _, _, _, infos_w = theirs.step(actions)
        check_obs(obs, theirs.observation_space, "step")
        if "episode" in infos:
            mine.extend(infos["episode"]["r"][infos["_episode"]])
        if "episode" in infos_w:
            gym_stats.extend(infos_w["episode"]["r"][infos_w["_episode"]])
    assert len(mine) > 10
    if same_step_stats:
        assert mine == gym_stats
    ours.close()
    theirs.close()

    # Continuous actions: ClipAction clips what reaches the env; NormalizeReward scales rewards.
    vec = wrappers.NormalizeReward(wrappers.ClipAction(GymVectorEnv(ActorPool("Pendulum-v1", 2, 1, 2, seed=0))))
    vec.reset(seed=0)
    raw = []
    for _ in range(250):
        _, rewards, _, _, _ = vec.step(np.full((2, 1), 50.0, np.float32))  # far outside [-2, 2]
        raw.append(rewards)
    assert np.isfinite(raw).all() and np.abs(raw[-1]).max() < 5  # normalized: Pendulum pays down to -16
    vec.close()


def test_observation_wrappers_refuse_same_step_autoreset_so_wrap_inside_the_creator() -> None:
    """Gymnasium's observation vector wrappers (NormalizeObservation, TransformObservation, ...)
    accept only NEXT_STEP or DISABLED autoreset, and refuse Gymnasium's own SyncVectorEnv in
    SAME_STEP mode just as they refuse the adapter. A same-step pool cannot pose as NEXT_STEP (the
    env has already moved on to the next episode), so their single-env versions go in the creator."""
    from gymnasium.vector import SyncVectorEnv
    from gymnasium.wrappers import vector as wrappers

    refusal = (AssertionError, ValueError)  # Gymnasium 1.2 asserts, 1.3+ raises ValueError
    for wrapper in (wrappers.NormalizeObservation, lambda v: wrappers.TransformObservation(v, lambda o: o * 2)):
        vec = GymVectorEnv(ActorPool("cartpole", 2, 1, 2, seed=0))
        with pytest.raises(refusal):
            wrapper(vec)
        vec.close()
        theirs = SyncVectorEnv([lambda: gymnasium.make("CartPole-v1")] * 2, autoreset_mode=AutoresetMode.SAME_STEP)
        with pytest.raises(refusal):
            wrapper(theirs)
        theirs.close()

    def doubled() -> gymnasium.Env:
        env = gymnasium.make("CartPole-v1")
        return gymnasium.wrappers.TransformObservation(env, lambda o: o * 2, env.observation_space)

    plain = GymVectorEnv(ActorPool("CartPole-v1", 2, 1, 2, seed=3))
    twice = GymVectorEnv(ActorPool(doubled, 2, 1, 2, seed=3))
    np.testing.assert_allclose(twice.reset(seed=3)[0], 2 * plain.reset(seed=3)[0])
    for _ in range(30):
        np.testing.assert_allclose(twice.step(np.ones(2, np.int64))[0], 2 * plain.step(np.ones(2, np.int64))[0])
    plain.close()
    twice.close()

    def normalized() -> gymnasium.Env:
        return gymnasium.wrappers.NormalizeObservation(gymnasium.make("CartPole-v1"))

    vec = GymVectorEnv(ActorPool(normalized, 2, 1, 2, seed=3))
    vec.reset(seed=3)
    seen = np.stack([vec.step(np.ones(2, np.int64))[0] for _ in range(300)])
    spread = seen[100:].std(axis=(0, 1))  # per coordinate, after the running statistics settle
    assert ((0.5 < spread) & (spread < 2.0)).all(), spread  # raw CartPole's angle spreads about 0.1
    vec.close()
