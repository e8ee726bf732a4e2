"""End-to-end training: CartPole is solved, and snake (when built) beats a random policy."""

import json

import numpy as np
import pytest

import envs
from learner import config as C
from learner.evaluate import evaluate
from learner.train import train


def test_cartpole_learns_to_475(tmp_path) -> None:
    cfg = C.apply_overrides(C.load("cartpole"), ["train.target_return=475", "train.total_steps=1500000"])
    summary = train(cfg, tmp_path, live=False)
    assert summary["mean_return"] >= 475, summary
    assert "seconds_to_target" in summary
    assert json.loads((tmp_path / "summary.json").read_text())["agent_steps"] == summary["agent_steps"]
    result = evaluate(tmp_path, episodes=8)
    assert result["mean_return"] >= 400, result


def _random_policy_mean_return(params: dict, num_envs: int, steps: int, seed: int) -> float:
    """Mean episode return of uniform random actions on the same env params, seeded."""
    env = envs.make("snake", num_envs=num_envs, seed=seed, **params)
    rng = np.random.default_rng(seed)
    env.reset(seed)
    returns, episodes = 0.0, 0
    for _ in range(steps):
        env.step(rng.integers(0, 4, size=env.actions.shape, dtype=np.int32))
        stats = env.episode_stats()
        returns += stats.get("episode_return", 0.0) * stats["episodes"]
        episodes += int(stats["episodes"])
    env.close()
    assert episodes >= 100
    return returns / episodes


@pytest.mark.timeout(150)
def test_snake_rises_above_random(tmp_path) -> None:
    """The shipped snake config as the CPU runs it (actors pool included), on a CI budget: 1M steps."""
    cfg = C.apply_overrides(
        C.for_device(C.load("snake"), "cpu"),
        ["train.total_steps=1000000", "ppo.anneal_lr=false", "train.checkpoint_every=0"],
    )
    params, num_envs = cfg["env"]["params"], cfg["env"]["num_envs"]
    random_mean = _random_policy_mean_return(params, num_envs, 500, seed=3)
    after = train(cfg, tmp_path, live=False)
    assert after["dropped_transitions"] == 0
    assert after["mean_return"] > random_mean + 2.0, (random_mean, after)
