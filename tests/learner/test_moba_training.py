"""Moba end to end: a short run of the default CPU config beats the random team where the untrained
policy does not, ``appliance eval --opponent`` reports it, and ``appliance render`` draws a game of it."""

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
# The shipped config as `appliance train --env moba` runs it on a CPU (16 maps of 40 cells, 1500 ticks,
# the random team as the opponent, 300k agent-steps: about a minute on 2 cores). Seeds 1-3 of
# this budget won 98%, 100% and 100% of 64 games vs random (untrained: 0%).
OVERRIDES = ["train.total_steps=300000", "train.checkpoint_every=0"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    cfg = C.apply_overrides(C.for_device(C.load("moba"), "cpu"), OVERRIDES)
    out = tmp_path_factory.mktemp("moba")
    train(cfg, out, live=False)
    return out, cfg


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_short_cpu_run_beats_the_random_team_where_the_untrained_policy_does_not(run: tuple[Path, dict]) -> None:
    out, cfg = run
    probe = envs.make("moba", num_envs=1, **cfg["env"]["params"])
    torch.manual_seed(0)
    untrained = make_policy(cfg, probe.single_observation_space, probe.single_action_space).state_dict()
    probe.close()
    before = evaluate(out, episodes=32, opponent="random", model=untrained)
    after = evaluate(out, episodes=32, opponent="random")
    assert before["games"] >= 32 and after["games"] >= 32
    assert after["win_rate"] >= before["win_rate"] + 0.5, (before, after)
    assert after["win_rate"] >= 0.8, after


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
    assert Image.open(pngs[-1]).size == (40 * 4, 40 * 4)
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
