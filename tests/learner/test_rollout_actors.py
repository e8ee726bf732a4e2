"""Training on the real multi-process ActorPool (2 actors, 2 groups), checked against a replay.

Group g of that pool is part g of each actor's envs, and part j of actor k of a pool reset
with seed s steps exactly like ``SerialPool(env, n, part_seed(actor_seed(s, k), j))`` reset
with that seed, so replaying the recorded actions of group g through such pools must
reproduce the rollout's observations, rewards, flags and bootstrap values, row by row.
"""

import numpy as np
import pytest
import torch

from actors import ActorPool, SerialPool, actor_seed
from actors.worker import part_seed
from learner import config as C
from learner import ppo
from learner.gae import compute_gae
from learner.policy import Policy
from learner.pools import actor_layout, make_pool, rank_seed
from learner.rollout import Rollout

T, PER_GROUP, UPDATES, SEED = 8, 4, 3, 11
PARAMS = {"max_steps": 12}  # short episodes: terminals and truncations inside every rollout


def _ppo_config() -> ppo.PPOConfig:
    cfg = C.load("cartpole")
    cfg["ppo"].update(num_steps=T, update_epochs=1, minibatches=2)
    return ppo.PPOConfig.from_config(cfg["ppo"])


@pytest.mark.timeout(60)
def test_actor_pool_rollouts_match_a_serial_replay_per_group() -> None:
    torch.manual_seed(0)
    cfg = _ppo_config()
    device = torch.device("cpu")
    pool = ActorPool("cartpole", num_envs=2 * PER_GROUP, num_actors=2, batch_size=PER_GROUP, seed=SEED, **PARAMS)
    assert pool.parts_per_actor == 2
    part = PER_GROUP // 2  # envs per actor part
    # Group g: actor 0's part g, then actor 1's (actor k owns env ids [k * PER_GROUP, (k + 1) * PER_GROUP)).
    group_ids = [np.concatenate([np.arange(k * PER_GROUP + g * part, k * PER_GROUP + (g + 1) * part)
                                 for k in range(2)]) for g in range(2)]
    order: list[int] = []
    recv = pool.recv

    def recording_recv() -> tuple:
        batch = recv()
        order.append(next(g for g in range(2) if np.array_equal(batch[5], group_ids[g])))
        return batch

    pool.recv = recording_recv  # type: ignore[method-assign]
    try:
        policy = Policy(pool.single_observation_space, pool.single_action_space, hidden=16)
        optimizer = torch.optim.Adam(policy.parameters(), lr=1e-3, eps=1e-5)
        rollout = Rollout(policy, pool, T, device)
        assert not rollout.single_group
        rollout.restart(SEED)
        snapshots = []
        for _ in range(UPDATES):
            rollout.collect()
            keys = ("obs", "actions", "rewards", "terminals", "truncations", "starts", "masks")
            snap = {k: getattr(rollout, k).clone() for k in keys}
            snap["final_values"] = rollout.final_values.clone()
            snap["next_values"] = rollout.next_values.clone()
            snap["policy"] = {k: v.clone() for k, v in policy.state_dict().items()}
            snapshots.append(snap)
            advantages, returns = compute_gae(
                rollout.rewards, rollout.values, rollout.terminals, rollout.truncations,
                rollout.final_values, rollout.next_values, cfg.gamma, cfg.gae_lambda, rollout.masks,
            )
            batch = rollout.batch()
            batch.update(advantages=advantages, returns=returns)
            ppo.update(policy, optimizer, batch, cfg, recurrent=False)
        assert rollout.dropped == 0
    finally:
        pool.close()

    # Groups alternate: the policy never waits on the group it just sent while the other is ready;
    # one recv per group and step (T+1 in the first rollout, then T: step 0 is carried over).
    assert len(order) == 2 * (T + 1) + 2 * T * (UPDATES - 1)
    assert order == [g % 2 for g in range(len(order))]

    replay_policy = Policy(pool.single_observation_space, pool.single_action_space, hidden=16)
    saw_trunc = saw_term = False
    for g in range(2):
        rows = torch.from_numpy(group_ids[g])
        serials = [SerialPool("cartpole", part, seed=part_seed(actor_seed(SEED, k), g), **PARAMS) for k in range(2)]
        try:
            for k, serial in enumerate(serials):
                serial.async_reset(part_seed(actor_seed(SEED, k), g))
            obs = np.concatenate([serial.recv()[0] for serial in serials])
            ended = np.zeros(PER_GROUP, dtype=bool)  # a reset reports no episode end
            for snap in snapshots:
                replay_policy.load_state_dict(snap["policy"])
                for t in range(T):
                    np.testing.assert_array_equal(snap["obs"][t, rows].numpy(), obs, err_msg=f"group {g} t {t}")
                    np.testing.assert_array_equal(snap["starts"][t, rows].numpy(), ended)
                    actions = snap["actions"][t, rows].numpy().astype(np.int32)
                    for k, serial in enumerate(serials):
                        serial.send(actions[k * part:(k + 1) * part])
                    got = [serial.recv() for serial in serials]
                    obs, rew, term, trunc, masks = (np.concatenate([b[i] for b in got]) for i in range(5))
                    final_obs = np.concatenate([serial.final_observations for serial in serials])
                    ended = np.logical_or(term, trunc)
                    np.testing.assert_array_equal(snap["rewards"][t, rows].numpy(), rew)
                    np.testing.assert_array_equal(snap["terminals"][t, rows].numpy(), term.astype(bool))
                    np.testing.assert_array_equal(snap["truncations"][t, rows].numpy(), trunc.astype(bool))
                    assert snap["masks"][t, rows].all()
                    cut = np.flatnonzero(trunc.astype(bool) & ~term.astype(bool))
                    expected = np.zeros(PER_GROUP, dtype=np.float32)
                    if len(cut):
                        with torch.no_grad():
                            final = torch.from_numpy(final_obs[cut].copy())
                            expected[cut] = replay_policy.value(final, None, torch.zeros(len(cut), dtype=torch.bool))
                    torch.testing.assert_close(snap["final_values"][t, rows], torch.from_numpy(expected))
                    saw_trunc |= bool(len(cut))
                    saw_term |= bool(term.any())
                with torch.no_grad():  # bootstrap: V(observation after step T-1), by the pre-update policy
                    value = replay_policy.value(torch.from_numpy(obs.copy()), None, torch.from_numpy(ended))
                torch.testing.assert_close(snap["next_values"][rows], value)
        finally:
            for serial in serials:
                serial.close()
    assert saw_trunc and saw_term


def test_ranks_and_actors_get_distinct_seeds() -> None:
    seeds = {actor_seed(rank_seed(1, r), k) for r in range(8) for k in range(64)}
    assert len(seeds) == 8 * 64


def test_actor_layout_precedence(tmp_path, monkeypatch) -> None:
    from actors import autotune

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cfg = C.load("snake")
    cfg["env"]["num_envs"] = 64
    assert actor_layout(cfg, cores=2) == (2, 32)  # nothing saved: one actor per core, two groups
    autotune.save("snake", {"num_envs": 4096, "num_actors": 4, "batch_size": 4096}, cores=2)
    assert actor_layout(cfg, cores=2) == (4, 64)  # the saved layout: 4 actors, one group
    cfg["pool"]["num_actors"] = 2
    assert actor_layout(cfg, cores=2) == (2, 64)  # a pinned value wins; the rest still comes from the cache
    cfg["pool"]["batch_size"] = 16
    assert actor_layout(cfg, cores=2) == (2, 16)
    cfg["pool"]["batch_size"] = -1
    with pytest.raises(ValueError, match="pool.batch_size"):
        actor_layout(cfg, cores=2)


@pytest.mark.timeout(60)
def test_make_pool_gives_each_rank_its_own_actor_seeds() -> None:
    cfg = C.apply_overrides(C.load("cartpole"), ["pool.kind=actors", "env.num_envs=8", "pool.num_actors=2"])
    cfg["env"]["params"] = PARAMS
    first = []
    for rank in range(2):
        with make_pool(cfg, rank) as pool:
            assert isinstance(pool, ActorPool) and pool.num_groups == 2
            pool.async_reset(rank_seed(1, rank))
            first.append(pool.recv()[0].copy())
            pool.send(np.zeros(PER_GROUP, dtype=np.int32))
    assert not np.array_equal(first[0], first[1])


@pytest.mark.timeout(60)
def test_rollouts_on_a_pool_in_order_ready() -> None:
    torch.manual_seed(0)
    cfg = C.apply_overrides(C.load("cartpole"), ["pool.kind=actors", "env.num_envs=8", "pool.num_actors=2",
                                                 "pool.order=ready"])
    assert actor_layout(cfg, cores=2) == (2, 2)  # two parts per actor, one group each
    with make_pool(cfg, 0) as pool:
        assert pool.order == "ready" and pool.actors_per_group == 1 and pool.num_groups == 4
        policy = Policy(pool.single_observation_space, pool.single_action_space, hidden=16)
        rollout = Rollout(policy, pool, T, torch.device("cpu"))
        rollout.restart(SEED)
        for _ in range(3):
            rollout.collect()
            assert (rollout.step == T).all()
            # Whatever order the groups came in, every row holds T transitions in the slots of their actions.
            assert torch.equal(rollout.rewards, torch.ones(T, 8))
            ended = rollout.terminals | rollout.truncations
            assert torch.equal(rollout.starts[1:], ended[:-1])


def test_unknown_pool_order_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="config 'pool.order' must be one of turn, ready, got 'fastest'"):
        C.apply_overrides(C.load("cartpole"), ["pool.kind=actors", "pool.order=fastest"])
    cfg = C.apply_overrides(C.load("cartpole"), ["pool.kind=actors"])
    cfg["pool"]["order"] = "fastest"  # a config dict built by hand is checked where the pool is made
    with pytest.raises(ValueError, match="config 'pool.order' must be one of turn, ready, got 'fastest'"):
        make_pool(cfg, 0)
