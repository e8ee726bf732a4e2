"""Gymnasium envs through the pool interface, transition by transition against the raw envs."""

from __future__ import annotations

import gymnasium
import minigrid  # noqa: F401  (registers MiniGrid ids for the raw reference envs)
import numpy as np
import pytest
import torch
from gymnasium import spaces

import envs
from actors import SerialPool
from envs.emulation.layout import PackedSpace
from learner.encoders import StructuredEncoder
from learner.unpack import Unpacker

SEED = 11


def random_actions(space: spaces.Space, rng: np.random.Generator, n: int) -> np.ndarray:
    if isinstance(space, spaces.Discrete):
        return rng.integers(0, space.n, size=n).astype(np.int32)
    return rng.uniform(space.low, space.high, size=(n, *space.shape)).astype(np.float32)


def check_against_reference(name: str, num_envs: int, steps: int, **params: object) -> SerialPool:
    """Steps the pool and ``num_envs`` raw envs with the same random actions; checks every transition."""
    pool = SerialPool(name, num_envs=num_envs, seed=SEED, **params)
    raw = [gymnasium.make(name) for _ in range(num_envs)]
    expected = [env.reset(seed=SEED + i)[0] for i, env in enumerate(raw)]
    pool.async_reset(SEED)
    rng = np.random.default_rng(0)
    returns = np.zeros(num_envs)
    finished: list[float] = []
    truncated_seen = 0
    want = None
    for step in range(steps + 1):
        obs, rewards, terminals, truncations, masks, ids = pool.recv()
        assert masks.all()
        np.testing.assert_array_equal(ids, np.arange(num_envs))
        for i in range(num_envs):
            np.testing.assert_array_equal(obs[i], expected[i])
        if want is not None:
            np.testing.assert_allclose(rewards, np.array(want[0], dtype=np.float32))
            np.testing.assert_array_equal(terminals, want[1])
            np.testing.assert_array_equal(truncations, want[2])
            for i in np.flatnonzero(truncations):
                np.testing.assert_array_equal(pool.final_observations[i], want[3][i])
                truncated_seen += 1
        if step == steps:
            break
        actions = random_actions(pool.single_action_space, rng, num_envs)
        want = ([], [], [], [])
        for i, env in enumerate(raw):
            o, r, term, trunc, _ = env.step(actions[i] if actions.ndim > 1 else int(actions[i]))
            for slot, value in zip(want, (r, term, trunc and not term, o), strict=True):
                slot.append(value)
            returns[i] += r
            if term or trunc:
                finished.append(returns[i])
                returns[i] = 0
                o, _ = env.reset()
            expected[i] = o
        pool.send(actions)
    stats = pool.episode_stats()
    assert stats["episodes"] == len(finished)
    if finished:
        assert stats["episode_return"] == pytest.approx(np.mean(finished), rel=1e-4)
    for env in raw:
        env.close()
    pool.truncated_seen = truncated_seen
    return pool


def test_cartpole_matches_gymnasium() -> None:
    with check_against_reference("CartPole-v1", num_envs=3, steps=150) as pool:
        assert pool.single_observation_space.shape == (4,)
        assert pool.env.actions.dtype == np.int32 and pool.env.actions.shape == (3,)


def test_acrobot_matches_gymnasium() -> None:
    with check_against_reference("Acrobot-v1", num_envs=2, steps=100) as pool:
        assert pool.single_action_space == spaces.Discrete(3)


def test_pendulum_continuous_actions_and_truncation() -> None:
    # Pendulum truncates every episode at step 200: flags, final observations and stats all show.
    with check_against_reference("Pendulum-v1", num_envs=2, steps=201) as pool:
        assert pool.env.actions.dtype == np.float32 and pool.env.actions.shape == (2, 1)
        assert pool.truncated_seen == 2


def test_minigrid_dict_observation_needs_mission_dropped() -> None:
    with pytest.raises(ValueError, match="'mission'"):
        SerialPool("MiniGrid-Empty-5x5-v0", num_envs=2)
    pool = SerialPool("MiniGrid-Empty-5x5-v0", num_envs=2, seed=3, drop_keys=("mission",))
    space = pool.single_observation_space
    assert isinstance(space, PackedSpace)
    assert [leaf.name for leaf in space.layout.leaves] == ["direction", "image"]
    raw = [gymnasium.make("MiniGrid-Empty-5x5-v0") for _ in range(2)]
    expected = [env.reset(seed=3 + i)[0] for i, env in enumerate(raw)]
    unpacker = Unpacker(space.layout)
    pool.async_reset(3)
    rng = np.random.default_rng(1)
    for _ in range(60):
        obs, rewards, terminals, truncations, masks, _ = pool.recv()
        assert obs.dtype == np.uint8 and obs.shape == (2, space.layout.nbytes)
        structure = unpacker.unpack(torch.from_numpy(obs))
        for i in range(2):
            np.testing.assert_array_equal(structure["image"][i].numpy(), expected[i]["image"])
            assert int(structure["direction"][i]) == expected[i]["direction"]
        actions = rng.integers(0, 3, size=2).astype(np.int32)
        for i, env in enumerate(raw):
            o, _, term, trunc, _ = env.step(int(actions[i]))
            expected[i] = env.reset()[0] if term or trunc else o
        pool.send(actions)
    pool.close()


def test_structured_encoder_trains_on_minigrid() -> None:
    env = envs.make("MiniGrid-Empty-5x5-v0", num_envs=4, seed=0, drop_keys=("mission",))
    encoder = StructuredEncoder(env.single_observation_space, hidden=32)
    head = torch.nn.Linear(encoder.features_dim, env.single_action_space.n)
    features = encoder(torch.from_numpy(env.observations))
    assert features.shape == (4, encoder.features_dim) and features.dtype == torch.float32
    loss = head(features).logsumexp(1).mean()
    loss.backward()
    grads = [p.grad for p in encoder.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    env.close()


class EchoEnv(gymnasium.Env):
    """Observes the (mixed discrete/continuous) action it was last given: a real env for round trips."""

    action_space = spaces.Dict({
        "move": spaces.Discrete(5, start=-2),
        "force": spaces.Box(-1, 1, (2,), dtype=np.float64),
        "buttons": spaces.MultiBinary(3),
    })
    observation_space = spaces.Tuple((action_space, spaces.Box(0, 10, (), dtype=np.int16)))

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple:
        super().reset(seed=seed)
        self.t = 0
        return self._obs(self.action_space.sample()), {}

    def _obs(self, action: dict) -> tuple:
        return (action, np.int16(self.t))

    def step(self, action: dict) -> tuple:
        assert self.action_space.contains(action), action
        self.t += 1
        return self._obs(action), 0.0, False, self.t >= 10, {}


def test_mixed_structured_actions_round_trip() -> None:
    env = envs.make(EchoEnv, num_envs=3, seed=0)
    assert env.actions.dtype == np.uint8
    act = Unpacker(env.act_layout)
    obs = Unpacker(env.obs_layout)
    sent = {
        "buttons": torch.tensor([[1, 0, 1], [0, 0, 0], [1, 1, 1]]),
        "force": torch.tensor([[0.5, -0.25], [1.0, 0.0], [-1.0, 0.125]]),
        "move": torch.tensor([-2, 0, 2]),
    }
    env.actions[...] = act.pack(sent).numpy()
    env.step()
    seen, t = obs.unpack(torch.from_numpy(env.observations))
    assert torch.equal(t, torch.ones(3, dtype=torch.int16))
    assert torch.equal(seen["move"], sent["move"].int())
    assert torch.equal(seen["force"], sent["force"].double())
    assert torch.equal(seen["buttons"], sent["buttons"].to(torch.int8))
    env.close()
