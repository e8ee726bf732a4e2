"""PettingZoo envs whose agents leave mid-episode, padded rows checked against the raw env."""

from __future__ import annotations

import numpy as np
import pytest
from pettingzoo.butterfly import knights_archers_zombies_v11 as kaz

import envs
from actors import SerialPool

NAME = "pettingzoo.butterfly.knights_archers_zombies_v11"
# With these seeds and actions an agent of env 1 dies at step 133, before its episode ends.
SEED = 0


def test_kaz_masks_and_padding_match_the_raw_env() -> None:
    num_envs, steps = 2, 200
    pool = SerialPool(NAME, num_envs=num_envs, seed=SEED)
    agents = pool.env.possible_agents
    per = len(agents)
    assert pool.num_agents == num_envs * per
    raw = [kaz.parallel_env() for _ in range(num_envs)]
    expected = [env.reset(seed=SEED + e)[0] for e, env in enumerate(raw)]
    pool.async_reset(SEED)
    rng = np.random.default_rng(0)
    want = None
    saw_partial = saw_reset = False
    for step in range(steps + 1):
        obs, rewards, terminals, truncations, masks, _ = pool.recv()
        for e in range(num_envs):
            for j, agent in enumerate(agents):
                row = e * per + j
                present = agent in expected[e]
                assert masks[row] == present, (step, agent)
                if present:
                    np.testing.assert_array_equal(obs[row], expected[e][agent])
                else:
                    assert not obs[row].any()
                if want is not None:
                    r, term, trunc = want[e]
                    assert rewards[row] == np.float32(r.get(agent, 0.0))
                    assert terminals[row] == bool(term.get(agent, False))
                    assert truncations[row] == (bool(trunc.get(agent, False)) and not term.get(agent, False))
            live = masks[e * per : (e + 1) * per]
            saw_partial |= 0 < live.sum() < per
        if step == steps:
            break
        actions = rng.integers(0, 6, size=pool.num_agents).astype(np.int32)
        want = []
        for e, env in enumerate(raw):
            acts = {a: int(actions[e * per + agents.index(a)]) for a in env.agents}
            o, r, term, trunc, _ = env.step(acts)
            want.append((r, term, trunc))
            if not env.agents:
                o, _ = env.reset()
                saw_reset = True
            expected[e] = o
        pool.send(actions)
    assert saw_partial, "no agent left mid-episode: the test did not exercise padding"
    assert saw_reset
    stats = pool.episode_stats()
    assert stats["episodes"] >= 2 and stats["episode_length"] > 100
    pool.close()
    for env in raw:
        env.close()


def test_aec_creator_goes_through_aec_to_parallel() -> None:
    env = envs.make(lambda: kaz.env(max_cycles=20), num_envs=2, seed=0)
    assert env.observations.shape == (8, 27, 5) and env.masks.all()
    for _ in range(25):
        env.step()
    assert env.episode_stats()["episodes"] == 2
    env.close()


def test_buffer_spec_and_caller_owned_buffers() -> None:
    spec = envs.buffer_spec(NAME, 2)
    assert spec["observations"] == ((8, 27, 5), np.dtype(np.float64))
    assert spec["actions"] == ((8,), np.dtype(np.int32))
    owned = {key: np.zeros(shape, dtype) for key, (shape, dtype) in spec.items()}
    env = envs.make(NAME, num_envs=2, seed=0, buffers=owned)
    assert owned["masks"].all() and owned["observations"].any()
    env.step()
    assert np.shares_memory(env.observations, owned["observations"])
    env.close()
    with pytest.raises(ValueError, match="buffer 'rewards'"):
        envs.make(NAME, num_envs=2, buffers={"rewards": np.zeros(3, np.float32)})
