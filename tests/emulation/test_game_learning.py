"""The game families learn with their default configs, on a CPU budget: returns rise above a random policy's.

Each test measures a uniformly random policy on the same env and params (at least
100 ended episodes) and then trains the config ``appliance train --env NAME`` uses,
stopping as soon as the mean of the last 100 episode returns clears the random
policy's by the margin (``train.target_return``), or failing at the step cap.
"""

from __future__ import annotations

import importlib.util

import pytest

from appliance.bench.train_split import random_return
from learner import config as C
from learner.train import train

slow = pytest.mark.slow


def _above_random(name: str, margin: float, cap: int, tmp_path, extra: list[str] = (), **random_kw) -> tuple:
    cfg = C.apply_overrides(C.load(name), [
        f"train.total_steps={cap}", "ppo.anneal_lr=false", "train.checkpoint_every=0", "train.device=cpu",
        *extra,
    ])
    random_mean, _ = random_return(cfg, **random_kw)
    cfg = C.apply_overrides(cfg, [f"train.target_return={random_mean + margin}"])
    summary = train(cfg, tmp_path, live=False)
    print(f"{name}: random {random_mean:.3f}, trained {summary['mean_return']}, {summary['agent_steps']} steps, "
          f"{summary['wall_seconds']:.0f} s, {summary['outcome']}")
    return random_mean, summary


def _skip_without(module: str, extra: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"needs the [{extra}] extra: pip install -e \".[{extra}]\"")


# (env, module, extra, margin, step cap, overrides). MiniHack-Room-5x5: +1 for the stairs, so a random
# walk's mean return shows how often it finds them. Crafter: +1 for each achievement an episode
# unlocks first, -0.1/+0.1 per health point lost/regained (random about 1.2-1.5). NetHackScore: the
# in-game score gained, over episodes cut at 256 steps so both policies are scored over the same
# horizon (uncut, a random walk wanders ~1,700 steps, 25 points, and a policy that scores faster
# but dies sooner reads as worse): random about 6.1, the default config about 9 after 140k steps
# (110 s here; its return first dips below random's while it stops wandering).
GAMES = [
    ("minihack/room-5x5", "minihack", "nethack", 0.3, 150_000, []),
    ("crafter", "crafter", "crafter", 0.3, 40_000, []),
    ("nethack/score", "nle", "nethack", 2.5, 250_000, ["env.params.max_episode_steps=256"]),
]


@slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize(("name", "module", "extra", "margin", "cap", "overrides"), GAMES, ids=[g[0] for g in GAMES])
def test_a_game_rises_above_random(name: str, module: str, extra: str, margin: float, cap: int,
                                   overrides: list[str], tmp_path) -> None:
    _skip_without(module, extra)
    random_mean, summary = _above_random(name, margin, cap, tmp_path, overrides)
    assert summary["outcome"] == "target_reached", (random_mean, summary)
    assert summary["mean_return"] >= random_mean + margin
