"""Moba end to end: a short CPU run beats the random team where the untrained policy does not,
``appliance eval --opponent`` reports it, and ``appliance render`` draws a game of it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

import envs
from appliance import render
from learner import config as C
from learner.evaluate import evaluate
from learner.policy import make_policy
from learner.train import train

ROOT = Path(__file__).resolve().parents[2]
# A small map and a short game, so a CPU budget of ~320k agent-steps (about a minute) can win it.
PARAMS = {"opponent": 2, "map_size": 24, "max_steps": 400, "wave_interval": 20, "reward_damage": 0.003}
OVERRIDES = ["train.total_steps=320000", "train.checkpoint_every=0", "train.torch_threads=1", "env.num_envs=8",
             "ppo.num_steps=64", "ppo.lr=0.01", "ppo.update_epochs=2", "ppo.ent_coef=0.003", "policy.hidden=64"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    cfg = C.apply_overrides(C.for_device(C.load("moba"), "cpu"), OVERRIDES)
    cfg["env"]["params"] = dict(PARAMS)
    out = tmp_path_factory.mktemp("moba")
    train(cfg, out, live=False)
    return out, cfg


@pytest.mark.timeout(400)
@pytest.mark.xfail(
    reason="the short CPU run's outcome is bimodal in the random stream (issue 15 is open): the same config "
    "wins 100% or 0% of its games vs random depending on the sampler's draws; fused Adam or the lean "
    "categorical head alone flips it to 0% (seeds 1 and 2, and seed 1 at twice the budget)",
    strict=False,
)
def test_a_short_cpu_run_beats_the_random_team_where_the_untrained_policy_does_not(run: tuple[Path, dict]) -> None:
    out, cfg = run
    probe = envs.make("moba", num_envs=1, **PARAMS)
    torch.manual_seed(0)
    untrained = make_policy(cfg, probe.single_observation_space, probe.single_action_space).state_dict()
    probe.close()
    before = evaluate(out, episodes=24, opponent="random", model=untrained)
    after = evaluate(out, episodes=24, opponent="random")
    assert before["games"] >= 24 and after["games"] >= 24
    assert after["win_rate"] >= before["win_rate"] + 0.5, (before, after)
    assert after["win_rate"] >= 0.6, after


@pytest.mark.timeout(300)
def test_eval_cli_reports_win_rates_and_render_draws_the_game(run: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = run
    cli = subprocess.run([sys.executable, "-m", "appliance", "eval", str(out), "--opponent", "scripted",
                          "--episodes", "4"], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.startswith("win rate ") and "vs scripted over" in cli.stdout, cli.stdout
    frames = render.render(out, tmp_path / "frames", opponent="random", steps=60, every=10, scale=4)
    pngs = sorted((tmp_path / "frames").glob("frame_*.png"))
    assert len(pngs) == len(frames) >= 2
    assert Image.open(pngs[-1]).size == (24 * 4, 24 * 4)
    gif = render.render(None, tmp_path / "bot.gif", steps=30, every=3)
    with Image.open(tmp_path / "bot.gif") as image:
        assert image.n_frames == len(gif)
    text = gif[-1].text.splitlines()
    assert len(text) == 40 and all(len(line) == 40 for line in text)
    assert sum(ch in "12345" for line in text for ch in line) >= 1  # team 0's heroes are drawn


def test_eval_opponent_needs_a_team_game(tmp_path: Path) -> None:
    cfg = C.apply_overrides(C.load("cartpole"), ["train.total_steps=2000", "train.checkpoint_every=0"])
    train(cfg, tmp_path, live=False)
    with pytest.raises(ValueError, match="no opponent"):
        evaluate(tmp_path, episodes=2, opponent="random")
