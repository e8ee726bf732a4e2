"""End-to-end training: CartPole is solved, and snake (when built) beats a random policy."""

import json

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


@pytest.mark.skipif("snake" not in envs.names(), reason="snake env not built into this checkout yet")
def test_snake_rises_above_random(tmp_path) -> None:
    cfg = C.apply_overrides(
        C.load("snake"), ["env.num_envs=64", "ppo.num_steps=32", "train.total_steps=300000"]
    )
    random_cfg = C.apply_overrides(cfg, ["train.total_steps=1"])
    before = train(random_cfg, tmp_path / "random", live=False)
    after = train(cfg, tmp_path / "trained", live=False)
    assert after["mean_return"] > before["mean_return"] + 0.5, (before, after)
