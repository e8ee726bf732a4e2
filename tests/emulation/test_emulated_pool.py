"""Emulated envs through the multi-process ActorPool, step by step against the same envs in-process.

Actor ``k`` seeds part ``j`` of its envs with ``part_seed(actor_seed(seed, k), j)``,
so an in-process env built with that seed is the exact reference for the rows that
part steps: the pool must deliver the same observations, rewards, flags, masks and
final observations, group by group.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from gymnasium import spaces

import envs
from actors import ActorPool
from actors.pool import actor_seed
from actors.worker import part_seed
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
    """2 actors in 2 groups against in-process references, one per actor part; returns what the run exercised.

    With 2 envs per actor each group is one env of each actor; with 1, each group is one actor.
    """
    seen = {"truncated": 0, "ended": 0, "padded": 0}
    per_actor = num_envs // 2
    with ActorPool(name, num_envs=num_envs, num_actors=2, batch_size=num_envs // 2, seed=seed,
                   timeout=30.0, **params) as pool:
        parts = pool.parts_per_actor
        size = per_actor // parts

        def part(k: int, j: int) -> Any:
            return envs.make(name, num_envs=size, seed=part_seed(actor_seed(seed, k), j), **params)

        # groups[g]: (env index of the part's first env, its reference) in the group's row order.
        if parts == 2:
            groups = [[(k * per_actor + g * size, part(k, g)) for k in range(2)] for g in range(2)]
        else:
            groups = [[(g * per_actor, part(g, 0))] for g in range(2)]
        refs = [ref for members in groups for _, ref in members]
        ape = refs[0].num_agents // size  # agents per env
        assert pool.num_groups == 2
        assert pool.single_observation_space == refs[0].single_observation_space
        assert pool.num_agents == num_envs * ape
        pool.async_reset(seed)
        rng = np.random.default_rng(3)
        ref_episodes = 0
        for step in range(steps):
            for members in groups:
                obs, rewards, terminals, truncations, masks, env_ids = pool.recv()
                want_ids = np.concatenate([np.arange(lo * ape, (lo + size) * ape) for lo, _ in members])
                np.testing.assert_array_equal(env_ids, want_ids)
                mine = [ref for _, ref in members]
                for field, got in (("observations", obs), ("rewards", rewards), ("terminals", terminals),
                                   ("truncations", truncations), ("masks", masks)):
                    np.testing.assert_array_equal(got, np.concatenate([getattr(r, field) for r in mine]))
                cut = np.flatnonzero(truncations)
                want_final = np.concatenate([r.final_observations for r in mine])
                np.testing.assert_array_equal(pool.final_observations[cut], want_final[cut])
                seen["truncated"] += len(cut)
                seen["ended"] += int(np.sum(terminals | truncations))
                seen["padded"] += int(np.sum(~masks.astype(bool)))
                actions = random_actions(pool.single_action_space, rng, (len(env_ids), *refs[0].actions.shape[1:]))
                pool.send(actions)
                rows = 0
                for ref in mine:
                    if step == steps - 1:
                        # The pool counts episodes as their batches come back: the last ones do not.
                        ref_episodes += ref.episode_stats()["episodes"]
                    ref.step(actions[rows:rows + ref.num_agents])
                    rows += ref.num_agents
        stats = pool.episode_stats()
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
