"""Emulated envs through the multi-process ActorPool, step by step against the same envs in-process.

Actor ``k`` seeds its slice with ``actor_seed(seed, k)``, so an in-process env
built with that seed is the exact reference for the rows that actor steps: the
pool must deliver the same observations, rewards, flags, masks and final
observations, group by group.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from gymnasium import spaces

import envs
from actors import ActorPool
from actors.pool import actor_seed
from envs.emulation.layout import PackedSpace

SEED = 7
# With this seed and the test's actions some agent leaves before its episode ends (asserted below).
KAZ_SEED = 3
KAZ = "pettingzoo.butterfly.knights_archers_zombies_v11"


def random_actions(space: spaces.Space, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    if isinstance(space, spaces.Discrete):
        return rng.integers(space.start, space.start + space.n, size=shape).astype(np.int32)
    return rng.uniform(space.low, space.high, size=shape).astype(np.float32)


def check_pool(name: str, steps: int, num_envs: int = 4, seed: int = SEED, **params: Any) -> dict[str, int]:
    """2 actors in 2 groups against 2 in-process references; returns what the run exercised."""
    seen = {"truncated": 0, "ended": 0, "padded": 0}
    per_actor = num_envs // 2
    refs = [envs.make(name, num_envs=per_actor, seed=actor_seed(seed, k), **params) for k in range(2)]
    with ActorPool(name, num_envs=num_envs, num_actors=2, batch_size=per_actor, seed=seed,
                   timeout=30.0, **params) as pool:
        assert pool.num_groups == 2
        assert pool.single_observation_space == refs[0].single_observation_space
        assert pool.num_agents == num_envs * refs[0].num_agents // per_actor
        for k, ref in enumerate(refs):
            ref.reset(actor_seed(seed, k))
        pool.async_reset(seed)
        rng = np.random.default_rng(3)
        for _ in range(steps):
            for k, ref in enumerate(refs):
                obs, rewards, terminals, truncations, masks, env_ids = pool.recv()
                rows = ref.num_agents
                np.testing.assert_array_equal(env_ids, np.arange(k * rows, (k + 1) * rows))
                np.testing.assert_array_equal(obs, ref.observations)
                np.testing.assert_array_equal(rewards, ref.rewards)
                np.testing.assert_array_equal(terminals, ref.terminals)
                np.testing.assert_array_equal(truncations, ref.truncations)
                np.testing.assert_array_equal(masks, ref.masks)
                cut = np.flatnonzero(truncations)
                np.testing.assert_array_equal(pool.final_observations[cut], ref.final_observations[cut])
                seen["truncated"] += len(cut)
                seen["ended"] += int(np.sum(terminals | truncations))
                seen["padded"] += int(np.sum(~masks.astype(bool)))
                actions = random_actions(pool.single_action_space, rng, ref.actions.shape)
                pool.send(actions)
                ref.step(actions)
        stats = pool.episode_stats()
        ref_episodes = sum(ref.episode_stats()["episodes"] for ref in refs)
        assert stats["episodes"] == ref_episodes
    for ref in refs:
        ref.close()
    return seen


def test_cartpole_through_the_pool() -> None:
    assert check_pool("CartPole-v1", steps=60)["ended"] > 0


def test_acrobot_through_the_pool() -> None:
    check_pool("Acrobot-v1", steps=30)


def test_pendulum_continuous_actions_through_the_pool() -> None:
    # Every Pendulum episode truncates at step 200: final observations cross the arena.
    assert check_pool("Pendulum-v1", steps=201, num_envs=2)["truncated"] == 2


def test_minigrid_packed_dict_observations_through_the_pool() -> None:
    with pytest.raises(ValueError, match="'mission'"):
        ActorPool("MiniGrid-Empty-5x5-v0", num_envs=2, num_actors=2, batch_size=1)
    seen = check_pool("MiniGrid-Empty-5x5-v0", steps=110, drop_keys=("mission",))
    assert seen["truncated"] > 0  # 100-step time limit: packed final observations cross too


def test_kaz_agents_leaving_mid_episode_through_the_pool() -> None:
    seen = check_pool(KAZ, steps=200, num_envs=2, seed=KAZ_SEED)
    assert seen["padded"] > 0, "no agent left mid-episode: padding was not exercised"


def test_pong_through_the_pool() -> None:
    check_pool("atari/pong", steps=40, num_envs=2)


def test_packed_space_survives_the_pool() -> None:
    with ActorPool("MiniGrid-Empty-5x5-v0", num_envs=2, num_actors=2, batch_size=1,
                   drop_keys=("mission",)) as pool:
        space = pool.single_observation_space
        assert isinstance(space, PackedSpace)
        assert [leaf.name for leaf in space.layout.leaves] == ["direction", "image"]
        assert pool.buffers["observations"].shape == (2, space.layout.nbytes)
