"""Evaluating a run's latest checkpoint with the greedy policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import checkpoint
from .heads import to_env
from .policy import make_policy
from .pools import make_pool

EVAL_SEED_OFFSET = 10_000_019


@torch.no_grad()
def evaluate(run_dir: Path, episodes: int = 100, max_steps: int = 100_000) -> dict[str, Any]:
    """Mean return of ``episodes`` greedy episodes (at least), on envs seeded apart from training.

    ``max_steps`` bounds the loop: a policy that never ends an episode is an error, not a hang.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if not Path(run_dir).exists():
        raise ValueError(f"run directory {run_dir} does not exist (appliance train writes runs/ENV-TIMESTAMP)")
    if not Path(run_dir).is_dir():
        raise ValueError(f"{run_dir} is not a run directory (it is a file)")
    path, state = checkpoint.load_latest(Path(run_dir))
    config = state["config"]
    config = {
        **config,
        "pool": {"kind": "serial"},
        "env": {**config["env"], "num_envs": min(episodes, int(config["env"]["num_envs"]))},
        "train": {**config["train"], "seed": int(config["train"]["seed"]) + EVAL_SEED_OFFSET},
    }
    pool = make_pool(config)
    try:
        policy = make_policy(config, pool.single_observation_space, pool.single_action_space)
        policy.load_state_dict(state["model"])
        policy.eval()
        pool.async_reset(config["train"]["seed"])
        state_ = policy.initial_state(pool.num_agents)
        done_eps, return_sum, length_sum = 0, 0.0, 0.0
        for _ in range(max_steps):
            obs, _r, term, trunc, _m, _ids = pool.recv()
            starts = torch.from_numpy(np.logical_or(term, trunc))
            actions, state_ = policy.greedy(torch.from_numpy(obs), state_, starts)
            pool.send(to_env(actions))
            stats = pool.episode_stats()
            if stats["episodes"]:
                done_eps += stats["episodes"]
                return_sum += stats["episodes"] * stats["episode_return"]
                length_sum += stats["episodes"] * stats.get("episode_length", 0.0)
            if done_eps >= episodes:
                break
        else:
            raise RuntimeError(f"only {done_eps} of {episodes} episodes ended within {max_steps} steps")
        return {
            "checkpoint": str(path),
            "updates": int(state["updates"]),
            "episodes": done_eps,
            "mean_return": return_sum / done_eps,
            "mean_length": length_sum / done_eps,
        }
    finally:
        pool.close()
