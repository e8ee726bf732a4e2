"""Emulated envs in training: structured observations and actions need no per-env code."""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from gymnasium import spaces

import envs
from learner import config as C
from learner import ppo
from learner.heads import ActionHead
from learner.policy import Policy, encoder_kind, make_policy
from learner.train import train

TARGET = "target_env:Target-v0"


def test_generic_config_for_a_gymnasium_id() -> None:
    cfg = C.load("gym:CartPole-v1")
    assert cfg["env"]["name"] == "gym:CartPole-v1" and cfg["policy"]["kind"] == "auto"
    assert C.load("Pendulum-v1")["ppo"]["ent_coef"] == 0.0  # continuous: CleanRL's continuous settings
    assert C.load("cartpole")["env"]["name"] == "cartpole"  # a shipped TOML still wins
    # Vector observations step on every core (actors), 32 envs: a batch per group worth acting on.
    acrobot = C.load("Acrobot-v1")
    assert acrobot["pool"]["kind"] == "actors" and acrobot["env"]["num_envs"] == 32
    assert acrobot["env"]["num_envs"] * acrobot["ppo"]["num_steps"] == 1024  # CleanRL's 8 x 128 per update
    assert acrobot["train"]["torch_threads"] == 1
    C.validate(acrobot)


def test_encoders_follow_the_observation_space() -> None:
    assert encoder_kind(spaces.Box(0, 255, (4, 84, 84), np.uint8)) == "nature"
    assert encoder_kind(spaces.Box(0, 9, (7, 7), np.int8)) == "cnn"
    assert encoder_kind(spaces.Box(-1, 1, (3,), np.float32)) == "mlp"
    env = envs.make("MiniGrid-Empty-5x5-v0", num_envs=2, drop_keys=("mission",))
    assert encoder_kind(env.single_observation_space) == "structured"
    policy = Policy(env.single_observation_space, env.single_action_space, hidden=16)
    obs = torch.from_numpy(env.observations)
    actions, logprobs, values, _ = policy.act(obs, None, torch.zeros(2, dtype=torch.bool))
    assert actions.shape == (2,) and values.shape == (2,) and logprobs.shape == (2,)
    env.close()
    atari = Policy(spaces.Box(0, 255, (4, 84, 84), np.uint8), spaces.Discrete(6), hidden=32)
    frames = torch.randint(0, 255, (3, 4, 84, 84), dtype=torch.uint8)
    assert atari.act(frames, None, torch.zeros(3, dtype=torch.bool))[0].shape == (3,)


def test_mixed_action_head_round_trips_and_scores_its_samples() -> None:
    env = envs.make(TARGET, num_envs=5, seed=0)
    space = env.single_action_space
    head = ActionHead(space, 8)
    assert head.shape == (space.layout.nbytes,) and head.dtype == torch.uint8
    x = torch.randn(5, 8)
    actions, logprobs = head.sample(x)
    assert actions.shape == (5, space.layout.nbytes) and actions.dtype == torch.uint8
    again, entropy = head.evaluate(x, actions)
    torch.testing.assert_close(again, logprobs)
    assert entropy.shape == (5,) and torch.isfinite(entropy).all()
    # The packed rows reach the env as the structure it asked for (asserted in TargetEnv.step).
    env.step(actions.numpy())
    assert np.isfinite(env.rewards).all()
    env.close()


def test_every_leaf_head_scores_its_own_samples() -> None:
    for space in (spaces.Discrete(5, start=-2), spaces.MultiDiscrete([3, 4]), spaces.MultiBinary(3),
                  spaces.Box(-2, 2, (2, 3), np.float32)):
        head = ActionHead(space, 6)
        x = torch.randn(4, 7, 6)  # (T, B, F), as PPO replays
        actions, logprobs = head.sample(x)
        assert actions.shape == (4, 7, *head.shape) and actions.dtype == head.dtype
        torch.testing.assert_close(head.evaluate(x, actions)[0], logprobs)
        if isinstance(space, spaces.Discrete):
            assert actions.min() >= -2 and actions.max() <= 2


def test_masked_rows_do_not_move_the_policy() -> None:
    torch.manual_seed(0)
    obs_space, act_space = spaces.Box(-1, 1, (3,), np.float32), spaces.Box(-1, 1, (2,), np.float32)
    policy = Policy(obs_space, act_space, hidden=8)
    T, N = 4, 6
    masks = torch.ones(T, N, dtype=torch.bool)
    masks[:, 4:] = False
    batch = dict(obs=torch.randn(T, N, 3), actions=torch.randn(T, N, 2), logprobs=torch.zeros(T, N),
                 values=torch.zeros(T, N), advantages=torch.randn(T, N), returns=torch.randn(T, N),
                 masks=masks, starts=torch.zeros(T, N, dtype=torch.bool), state=None)
    garbage = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
    for key in ("obs", "actions", "advantages", "returns", "logprobs"):
        garbage[key][:, 4:] = 1e3
    cfg = ppo.PPOConfig(update_epochs=1, minibatches=1, norm_adv=True)
    results = []
    for b in (batch, garbage):
        model = copy.deepcopy(policy)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        torch.manual_seed(1)
        ppo.update(model, optimizer, b, cfg, recurrent=False)
        results.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    torch.testing.assert_close(results[0], results[1])
    assert not torch.equal(results[0], torch.cat([p.detach().flatten() for p in policy.parameters()]))


def test_dict_obs_mixed_actions_env_learns(tmp_path) -> None:
    cfg = C.apply_overrides(C.load(TARGET), [
        "env.num_envs=16", "ppo.num_steps=16", "ppo.lr=0.005", "ppo.minibatches=2", "ppo.update_epochs=4",
        "train.total_steps=8192", "train.checkpoint_every=0", "train.device=cpu",
    ])
    policy = make_policy(cfg, *_spaces(TARGET))
    assert policy.kind == "structured" and policy.head.unpacker is not None
    before = train(C.apply_overrides(cfg, ["train.total_steps=1"]), tmp_path / "random", live=False)
    after = train(cfg, tmp_path / "trained", live=False)
    assert after["updates"] == 32
    # Random: about 0.55 per step of 8; the trained policy must be clearly better.
    assert after["mean_return"] > before["mean_return"] + 1.5, (before, after)


def test_pendulum_gaussian_head_trains_end_to_end(tmp_path) -> None:
    cfg = C.apply_overrides(C.load("Pendulum-v1"), [
        "env.num_envs=4", "ppo.num_steps=64", "ppo.minibatches=4", "train.total_steps=768",
        "train.checkpoint_every=0", "train.device=cpu",
    ])
    summary = train(cfg, tmp_path, live=False)
    assert summary["updates"] == 3 and summary["agent_steps"] == 768
    assert summary["mean_return"] is None or math.isfinite(summary["mean_return"])


def test_box_actions_are_clipped_by_the_adapter() -> None:
    a = envs.make("Pendulum-v1", num_envs=1, seed=4)
    b = envs.make("Pendulum-v1", num_envs=1, seed=4)
    a.step(np.array([[50.0]], dtype=np.float32))
    b.step(np.array([[2.0]], dtype=np.float32))  # Pendulum's bound
    np.testing.assert_array_equal(a.observations, b.observations)
    np.testing.assert_array_equal(a.rewards, b.rewards)


def _spaces(name: str) -> tuple[spaces.Space, spaces.Space]:
    env = envs.make(name, num_envs=1)
    try:
        return env.single_observation_space, env.single_action_space
    finally:
        env.close()
