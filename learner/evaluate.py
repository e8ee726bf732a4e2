"""Evaluating a run's latest checkpoint with the greedy policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

import envs

from . import checkpoint
from .config import complete
from .heads import to_env
from .policy import make_policy
from .pools import make_pool

EVAL_SEED_OFFSET = 10_000_019
# `--opponent`: the code team games' `opponent` parameter takes (envs/c/moba.h).
OPPONENTS = {"self": 0, "scripted": 1, "random": 2}


@torch.no_grad()
def evaluate(
    run_dir: Path, episodes: int = 100, max_steps: int = 100_000, opponent: str | None = None,
    model: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Mean return of ``episodes`` greedy episodes (at least), on envs seeded apart from training.

    ``opponent`` (``self``, ``scripted`` or ``random``) plays the env's team game against that
    opponent instead of the run's own: ``episodes`` then counts games, and ``win_rate`` is the
    share of them the policy's team won (the env's episode score). ``model`` evaluates these
    weights instead of the checkpoint's (same config). ``max_steps`` bounds the loop: a policy
    that never ends an episode is an error, not a hang.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    path, state = checkpoint.load_latest(checkpoint.check_run_dir(run_dir))
    config = complete(state["config"])  # a run written before a key existed gets the key's default
    params = dict(config["env"]["params"])
    if opponent is not None:
        if opponent not in OPPONENTS:
            raise ValueError(f"opponent must be one of {', '.join(OPPONENTS)}, got {opponent!r}")
        name = config["env"]["name"]
        if not isinstance(name, str) or name not in envs.native_names() or "opponent" not in envs.param_defaults(name):
            raise ValueError(f"env '{name}' has no opponent to choose (--opponent is for team games like moba)")
        params["opponent"] = OPPONENTS[opponent]
    config = {
        **config,
        "pool": {"kind": "serial"},
        "env": {**config["env"], "num_envs": min(episodes, int(config["env"]["num_envs"])), "params": params},
        "train": {**config["train"], "seed": int(config["train"]["seed"]) + EVAL_SEED_OFFSET},
    }
    pool = make_pool(config)
    try:
        policy = make_policy(config, pool.single_observation_space, pool.single_action_space)
        policy.load_state_dict(state["model"] if model is None else model)
        policy.eval()
        pool.async_reset(config["train"]["seed"])
        state_ = policy.initial_state(pool.num_agents)
        done_eps, return_sum, length_sum, score_sum = 0, 0.0, 0.0, 0.0
        needed, per_game = episodes, 1
        for step in range(max_steps):
            obs, _r, term, trunc, masks, _ids = pool.recv()
            if step == 0 and opponent is not None:  # every hero lives at the start: the rows the policy plays
                per_game = max(1, int(np.count_nonzero(masks)) // int(config["env"]["num_envs"]))
                needed = episodes * per_game
            starts = torch.from_numpy(np.logical_or(term, trunc))
            actions, state_ = policy.greedy(torch.from_numpy(obs), state_, starts)
            pool.send(to_env(actions))
            stats = pool.episode_stats()
            if stats["episodes"]:
                done_eps += stats["episodes"]
                return_sum += stats["episodes"] * stats["episode_return"]
                length_sum += stats["episodes"] * stats.get("episode_length", 0.0)
                score_sum += stats["episodes"] * stats.get("score", 0.0)
            if done_eps >= needed:
                break
        else:
            raise RuntimeError(f"only {done_eps} of {needed} episodes ended within {max_steps} steps")
        result = {
            "checkpoint": str(path),
            "updates": int(state["updates"]),
            "episodes": done_eps,
            "mean_return": return_sum / done_eps,
            "mean_length": length_sum / done_eps,
            "mean_score": score_sum / done_eps,
        }
        if opponent is not None:
            result.update(opponent=opponent, games=done_eps // per_game, win_rate=score_sum / done_eps)
        return result
    finally:
        pool.close()
