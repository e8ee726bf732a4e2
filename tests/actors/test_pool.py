"""ActorPool data path: parity with in-process envs, async groups, zero copy, layout and action checks."""

from __future__ import annotations

import os
import stat
import time

import numpy as np
import pytest

import envs
from actors import ActorPool, SerialPool, actor_seed
from actors.worker import part_seed


def policy(obs: np.ndarray) -> np.ndarray:
    """A deterministic policy that depends on the observation (so divergence would show)."""
    return (obs[:, 2] + 0.1 * obs[:, 3] > 0).astype(np.int32)


def references(seed: int, num_actors: int, per_actor: int) -> list[envs.NativeEnv]:
    return [envs.make("cartpole", num_envs=per_actor, seed=actor_seed(seed, k)) for k in range(num_actors)]


def test_one_actor_equals_serial_pool() -> None:
    with ActorPool("cartpole", 16, 1, 16, seed=5) as pool, SerialPool("cartpole", 16, seed=5) as ref:
        pool.async_reset(5)
        ref.async_reset(5)
        for _ in range(150):
            got, want = pool.recv(), ref.recv()
            for a, b in zip(got, want, strict=True):
                np.testing.assert_array_equal(a, b)
            # A step's episode summaries have arrived by the time recv returns its batch.
            assert pool.episode_stats() == ref.episode_stats()
            truncated = got[3]
            np.testing.assert_array_equal(
                pool.final_observations[truncated], ref.final_observations[truncated]
            )
            actions = policy(got[0])
            pool.send(actions)
            ref.send(actions)
        assert pool.episode_stats() == ref.episode_stats()


def test_sync_pool_matches_per_actor_references() -> None:
    seed, num_actors, per_actor = 11, 4, 3
    refs = references(seed, num_actors, per_actor)
    with ActorPool("cartpole", 12, num_actors, 12, seed=seed, cores=[min(os.sched_getaffinity(0))]) as pool:
        pool.async_reset(seed)
        assert pool.num_groups == 1 and pool.batch_rows == 12
        for _ in range(120):
            obs, rewards, terminals, truncations, masks, env_ids = pool.recv()
            np.testing.assert_array_equal(env_ids, np.arange(12))
            for k, ref in enumerate(refs):
                rows = slice(k * per_actor, (k + 1) * per_actor)
                np.testing.assert_array_equal(obs[rows], ref.observations)
                np.testing.assert_array_equal(rewards[rows], ref.rewards)
                np.testing.assert_array_equal(terminals[rows], ref.terminals)
                np.testing.assert_array_equal(truncations[rows], ref.truncations)
                np.testing.assert_array_equal(masks[rows], ref.masks)
            actions = policy(obs)
            pool.send(actions)
            for k, ref in enumerate(refs):
                ref.step(actions[k * per_actor:(k + 1) * per_actor])


def test_async_groups_come_in_turn_with_their_env_ids() -> None:
    """Every actor steps a part of every group: group g = part g of each actor."""
    seed, num_actors, per_actor = 2, 4, 2
    # parts[k][j]: actor k's part j (one env), seeded as the actor seeds it.
    parts = [
        [envs.make("cartpole", num_envs=1, seed=part_seed(actor_seed(seed, k), j)) for j in range(2)]
        for k in range(num_actors)
    ]
    with ActorPool("cartpole", 8, num_actors, 4, seed=seed) as pool:
        pool.async_reset(seed)
        assert pool.num_groups == 2 and pool.batch_rows == 4 and pool.parts_per_actor == 2
        for step in range(60):
            obs, rewards, _, truncations, _, env_ids = pool.recv()
            g = step % 2
            np.testing.assert_array_equal(env_ids, [k * per_actor + g for k in range(num_actors)])
            mine = [parts[k][g] for k in range(num_actors)]
            np.testing.assert_array_equal(obs, np.concatenate([r.observations for r in mine]))
            np.testing.assert_array_equal(rewards, np.concatenate([r.rewards for r in mine]))
            np.testing.assert_array_equal(truncations, np.concatenate([r.truncations for r in mine]))
            actions = policy(obs)
            pool.send(actions)
            for k, ref in enumerate(mine):
                ref.step(actions[k:k + 1])


def test_groups_of_whole_actors_when_parts_do_not_divide() -> None:
    seed, num_actors, per_actor = 3, 4, 3
    refs = references(seed, num_actors, per_actor)
    with ActorPool("cartpole", 12, num_actors, 6, seed=seed) as pool:
        pool.async_reset(seed)
        assert pool.num_groups == 2 and pool.parts_per_actor == 1  # 3 envs do not split in 2
        for step in range(60):
            obs, rewards, _, truncations, _, env_ids = pool.recv()
            g = step % 2
            np.testing.assert_array_equal(env_ids, np.arange(6 * g, 6 * g + 6))
            mine = refs[2 * g:2 * g + 2]
            np.testing.assert_array_equal(obs, np.concatenate([r.observations for r in mine]))
            np.testing.assert_array_equal(rewards, np.concatenate([r.rewards for r in mine]))
            np.testing.assert_array_equal(truncations, np.concatenate([r.truncations for r in mine]))
            actions = policy(obs)
            pool.send(actions)
            mine[0].step(actions[:3])
            mine[1].step(actions[3:])


@envs.vector_env
def make_cartpole(**kwargs: object) -> envs.NativeEnv:
    """A vector-env factory (a creator that is not a registry name), marked as one."""
    return envs.make("cartpole", **kwargs)


def test_split_is_for_c_envs_and_can_be_chosen() -> None:
    with ActorPool("cartpole", 8, 2, 4, seed=0, split=False) as pool:
        assert pool.parts_per_actor == 1 and pool.actors_per_group == 1
    with ActorPool(make_cartpole, 8, 2, 4, seed=0) as pool:
        assert pool.parts_per_actor == 1  # a creator (an emulated env, say) keeps whole vectors
    with ActorPool(make_cartpole, 8, 2, 2, seed=0) as pool:
        assert pool.parts_per_actor == 4  # 2 whole actors cannot make 4 groups: parts it is


def test_reset_reproduces_the_run() -> None:
    with ActorPool("cartpole", 8, 2, 4, seed=0) as pool:
        runs = []
        for _ in range(2):
            pool.async_reset(42)
            seen = []
            for _ in range(40):
                obs = pool.recv()[0]
                seen.append(obs.copy())
                pool.send(policy(obs))
            runs.append(np.stack(seen))
        np.testing.assert_array_equal(runs[0], runs[1])


def test_views_are_zero_copy_into_the_arena() -> None:
    with ActorPool("cartpole", 8, 2, 4, seed=0) as pool:
        pool.async_reset(0)
        obs, rewards, terminals, truncations, masks, _ = pool.recv()
        for view, name in [(obs, "observations"), (rewards, "rewards"), (terminals, "terminals"),
                           (truncations, "truncations"), (masks, "masks")]:
            assert np.shares_memory(view, pool.buffers[name])
            assert not view.flags.owndata
        assert np.shares_memory(pool.final_observations, pool.buffers["final_observations"])
        actions = np.array([1, 0, 1, 1], dtype=np.int64)
        pool.send(actions)
        np.testing.assert_array_equal(pool.buffers["actions"][:4], actions)
        assert str(pool.arena_path).startswith("/dev/shm/appliance-actors-")


def test_actors_are_pinned_round_robin() -> None:
    cores = sorted(os.sched_getaffinity(0))
    with ActorPool("cartpole", 6, 3, 6, seed=0) as pool:
        for k, pid in enumerate(pool.pids):
            assert os.sched_getaffinity(pid) == {cores[k % len(cores)]}
            # The default policy: SCHED_BATCH made doorbells wait out a busy neighbour's time slice.
            assert os.sched_getscheduler(pid) == os.SCHED_OTHER


def test_socket_dir_is_private_and_everything_is_removed_on_close() -> None:
    pool = ActorPool("cartpole", 4, 2, 4, seed=0)
    directory, arena = pool.socket_dir, pool.arena_path
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert arena.exists() and any(directory.iterdir())
    pids = pool.pids
    pool.close()
    pool.close()  # twice is fine
    assert not directory.exists() and not arena.exists()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with pytest.raises(RuntimeError, match="closed"):
        pool.recv()


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"num_envs": 10, "num_actors": 3, "batch_size": 10}, "num_actors"),
        ({"num_envs": 8, "num_actors": 4, "batch_size": 3}, "batch_size"),
        ({"num_envs": 8, "num_actors": 2, "batch_size": 1}, "batch_size"),
        ({"num_envs": 12, "num_actors": 2, "batch_size": 3}, "batch_size"),
        ({"num_envs": 0, "num_actors": 1, "batch_size": 1}, "num_envs"),
        ({"num_envs": 4, "num_actors": 2, "batch_size": 4, "timeout": 0}, "timeout"),
        ({"num_envs": 4, "num_actors": 2, "batch_size": 4, "cores": [10_000]}, "cores"),
    ],
)
def test_bad_layouts_are_rejected(kwargs: dict, param: str) -> None:
    with pytest.raises(ValueError, match=param):
        ActorPool("cartpole", **kwargs)


def test_bad_actions_never_reach_c() -> None:
    with ActorPool("cartpole", 4, 2, 4, seed=0) as pool:
        pool.async_reset(0)
        pool.recv()
        before = pool.buffers["actions"].copy()
        with pytest.raises(ValueError, match="shape"):
            pool.send(np.zeros(3, np.int32))
        with pytest.raises(ValueError, match="integer dtype"):
            pool.send(np.zeros(4, np.float32))
        with pytest.raises(ValueError, match="out of range.*row 2"):
            pool.send(np.array([0, 1, 2, 0]))
        with pytest.raises(ValueError, match="out of range.*row 0"):
            pool.send(np.array([-1, 1, 1, 0], dtype=np.int8))
        np.testing.assert_array_equal(pool.buffers["actions"], before)
        pool.send(np.array([1, 0, 1, 0], dtype=np.uint8))  # any in-range integer dtype is fine
        np.testing.assert_array_equal(pool.buffers["actions"], [1, 0, 1, 0])
        pool.recv()


def test_calls_out_of_order_are_refused() -> None:
    with ActorPool("cartpole", 4, 2, 4, seed=0) as pool:
        with pytest.raises(RuntimeError, match="async_reset"):
            pool.recv()
        pool.async_reset(0)
        pool.recv()
        with pytest.raises(RuntimeError, match="send"):
            pool.recv()
        pool.send(np.zeros(4, np.int32))
        with pytest.raises(RuntimeError, match="recv"):
            pool.send(np.zeros(4, np.int32))


def test_actions_written_in_place_are_checked_not_copied() -> None:
    with ActorPool("cartpole", 8, 2, 4, seed=3) as pool, ActorPool("cartpole", 8, 2, 4, seed=3) as ref:
        with pytest.raises(RuntimeError, match="recv"):
            pool.actions  # noqa: B018 - no batch held yet
        pool.async_reset(3)
        ref.async_reset(3)
        for _ in range(30):
            got, want = pool.recv(), ref.recv()
            np.testing.assert_array_equal(got[0], want[0])
            assert np.shares_memory(pool.actions, pool.buffers["actions"])
            pool.actions[...] = policy(got[0])
            pool.send(pool.actions)
            ref.send(policy(want[0]).astype(np.int64))  # copied (and cast) into the arena
        pool.recv()
        pool.actions[...] = [0, 1, 2, 0]
        with pytest.raises(ValueError, match="out of range.*row 2"):
            pool.send(pool.actions)


def test_serial_pool_takes_its_own_action_buffer_too() -> None:
    with SerialPool("cartpole", 4, seed=1) as pool, SerialPool("cartpole", 4, seed=1) as ref:
        pool.async_reset(1)
        ref.async_reset(1)
        for _ in range(20):
            obs, want = pool.recv()[0], ref.recv()[0]
            np.testing.assert_array_equal(obs, want)
            pool.actions[...] = policy(obs)
            pool.send(pool.actions)
            ref.send(policy(want))


class SlowCartPole(envs.NativeEnv):
    """CartPole whose envs seeded ``slow_seed`` take ``delay`` seconds per step."""

    def __init__(self, num_envs: int, seed: int, buffers: object, slow_seed: int = -1, delay: float = 0.0) -> None:
        super().__init__("cartpole", num_envs=num_envs, seed=seed, buffers=buffers)
        self.delay = delay if seed == slow_seed else 0.0

    def step(self, actions: np.ndarray | None = None) -> None:
        time.sleep(self.delay)
        super().step(actions)


def test_ready_order_groups_are_actor_parts_stepping_like_their_references() -> None:
    seed, num_actors, per_actor, batch = 4, 2, 6, 2
    with ActorPool("cartpole", num_actors * per_actor, num_actors, batch, seed=seed, order="ready") as pool:
        assert (pool.parts_per_actor, pool.actors_per_group, pool.num_groups) == (3, 1, 6)
        # Group g is part g // 2 of actor g % 2: two contiguous env ids of one actor.
        refs = {}
        for g in range(pool.num_groups):
            k, j = g % num_actors, g // num_actors
            ids = tuple(range(k * per_actor + j * batch, k * per_actor + (j + 1) * batch))
            refs[ids] = envs.make("cartpole", num_envs=batch, seed=part_seed(actor_seed(seed, k), j))
        pool.async_reset(seed)
        seen: dict[tuple, int] = {}
        for _ in range(120):
            obs, rewards, terminals, truncations, _, env_ids = pool.recv()
            ref = refs[tuple(env_ids)]
            seen[tuple(env_ids)] = seen.get(tuple(env_ids), 0) + 1
            np.testing.assert_array_equal(obs, ref.observations)
            np.testing.assert_array_equal(rewards, ref.rewards)
            np.testing.assert_array_equal(terminals, ref.terminals)
            np.testing.assert_array_equal(truncations, ref.truncations)
            np.testing.assert_array_equal(pool.final_observations[truncations], ref.final_observations[truncations])
            actions = policy(obs)
            pool.send(actions)
            ref.step(actions)
        assert set(seen) == set(refs)  # no group starves


def test_ready_order_lets_fast_actors_go_on_without_the_slow_one() -> None:
    seed = 6
    slow = {"slow_seed": actor_seed(seed, 1), "delay": 0.02}  # actor 1's first part: 20 ms a step
    with ActorPool(SlowCartPole, 8, 2, 2, seed=seed, order="ready", **slow) as pool:
        pool.async_reset(seed)
        fast = 0
        for _ in range(40):
            env_ids = pool.recv()[5]
            fast += int(env_ids[0] < 4)  # actor 0's part
            pool.send(np.zeros(2, np.int32))
    # In turn order every batch would wait for actor 1; here actor 0's parts keep coming.
    assert fast >= 30


def test_unknown_order_is_rejected() -> None:
    with pytest.raises(ValueError, match="order must be one of turn, ready, got 'fifo'"):
        ActorPool("cartpole", 4, 2, 2, order="fifo")
