"""`appliance bench train`'s throughput and learning sections, for any env with a config.

(d) Where the time goes, for the config ``appliance train`` would run here (the
    ``[on_cpu]`` table applied on the CPU): the pool alone with a no-op policy,
    collection with the policy acting but no update, and full training, each
    for ``seconds``, in one run; the split of training's wall time (env wait,
    inference, host<->device copy, learn, other) and the ratios train/pool and
    rollout/pool.
(e) Learning per wall-second: named candidates (sets of config overrides, e.g.
    another policy or update schedule) each train for the same wall time, and
    the mean return each reached is compared with a uniformly random policy's,
    measured on the same env in the same run.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from learner import config as configs

from .common import human, progress, table


def resolved(env: str, overrides: list[str]) -> dict[str, Any]:
    """The config ``appliance train --env ENV --set ...`` trains with on this machine, minus checkpoints."""
    from learner.train import resolve_device

    config = configs.apply_overrides(configs.load(env), overrides)
    pinned = {o.split("=", 1)[0].strip() for o in overrides}
    config = configs.for_device(config, resolve_device(config["train"]["device"]).type, pinned)
    config["train"].update(checkpoint_every=0, log_every_seconds=1e9)
    return config


def _threads(config: dict[str, Any]) -> None:
    """The CPU thread count the trainer would set (``train.torch_threads``; 0 = every allowed core)."""
    threads = config["train"]["torch_threads"]
    torch.set_num_threads(threads or len(os.sched_getaffinity(0)))


def pool_rate(config: dict[str, Any], seconds: float) -> float:
    """Agent-steps/s of the config's pool alone: every batch answered with the actions already in its rows."""
    from learner.pools import make_pool

    pool = make_pool(config)
    try:
        pool.async_reset(int(config["train"]["seed"]))
        done, start = 0, time.perf_counter()
        while (now := time.perf_counter()) - start < seconds:
            batch = pool.recv()
            pool.send(pool.actions)
            done += len(batch[5])
        return done / (now - start)
    finally:
        pool.close()


def rollout_rate(config: dict[str, Any], seconds: float) -> dict[str, float]:
    """Agent-steps/s of collection with the (untrained) policy acting, no update; and its time split."""
    from learner.policy import make_policy
    from learner.pools import make_pool
    from learner.rollout import Rollout
    from learner.train import resolve_device

    device = resolve_device(config["train"]["device"])
    _threads(config)
    pool = make_pool(config)
    try:
        policy = make_policy(config, pool.single_observation_space, pool.single_action_space).to(device)
        rollout = Rollout(policy, pool, int(config["ppo"]["num_steps"]), device)
        rollout.restart(int(config["train"]["seed"]))
        done, start = 0, time.perf_counter()
        while (now := time.perf_counter()) - start < seconds:
            rollout.collect()
            done += rollout.T * rollout.N
        return {"steps_per_second": done / (now - start), **{f"{k}_s": v for k, v in rollout.times.items()}}
    finally:
        pool.close()


def train_for(config: dict[str, Any], seconds: float) -> dict[str, Any]:
    """Trains ``config`` until ``seconds`` of wall time have passed at the end of an update (at least
    one update), or until its own ``train.total_steps`` if that comes first (its learning-rate schedule
    is part of the config); returns the summary. The clock is read between updates, never by a signal,
    so a short deadline cannot land in the pool's start-up or the final checkpoint."""
    from learner.train import train

    with tempfile.TemporaryDirectory(prefix="appliance-bench-train-") as run_dir:
        return train(config, Path(run_dir), live=False, on_update=lambda info: info["elapsed"] >= seconds)


def random_return(
    config: dict[str, Any], steps: int = 1024, episodes: int = 100, max_steps: int = 100_000
) -> tuple[float, float]:
    """Mean return and reward per agent-step of uniformly random actions on the config's env (its params,
    its own seed).

    Runs at least ``steps`` steps of every env, not just until ``episodes`` ended: the
    first episodes to end are the short ones (a grid agent that found the goal early,
    before any time limit), and stopping there would overrate the random policy.
    """
    from actors import SerialPool

    env = config["env"]
    pool = SerialPool(env["name"], num_envs=int(env["num_envs"]), seed=int(config["train"]["seed"]) + 17,
                      **env["params"])
    space = pool.single_action_space
    space.seed(int(config["train"]["seed"]))
    try:
        pool.async_reset(int(config["train"]["seed"]) + 17)
        ended, total, reward = 0, 0.0, 0.0
        for step in range(max_steps):
            batch = pool.recv()
            reward += float(batch[1][batch[4]].sum())  # rewards of unmasked rows
            actions = pool.actions
            actions[...] = np.stack([space.sample() for _ in range(len(actions))]).reshape(actions.shape)
            pool.send(actions)
            stats = pool.episode_stats()
            if stats["episodes"]:
                ended += int(stats["episodes"])
                total += stats["episodes"] * stats["episode_return"]
            if ended >= episodes and step + 1 >= steps:
                return total / ended, reward / ((step + 1) * pool.num_agents)
        raise RuntimeError(f"a random policy ended only {ended} episodes in {max_steps} steps")
    finally:
        pool.close()


def split(env: str, overrides: list[str], seconds: float, console: Console) -> list[dict[str, Any]]:
    """(d): pool alone, rollout without updates, full training; the split and the ratios."""
    config = resolved(env, overrides)
    layout = {
        "num_envs": config["env"]["num_envs"], "pool": config["pool"]["kind"],
        "policy": config["policy"]["kind"], "device": config["train"]["device"],
    }
    with progress(console) as bar:
        task = bar.add_task(f"{env}: pool, rollout, training ({seconds:g} s each)", total=3)
        pool = pool_rate(config, seconds)
        bar.advance(task)
        roll = rollout_rate(config, seconds)
        bar.advance(task)
        summary = train_for(config, seconds)
        bar.advance(task)
    phases = summary["phase_seconds"]
    wall = summary["wall_seconds"]
    train_rate = summary["steps_per_second"]
    records = [
        {"bench": "train", "name": "pool-only", "env": env, **layout, "steps_per_second": pool, "runs": [pool]},
        {"bench": "train", "name": "rollout-no-update", "env": env, **layout,
         "steps_per_second": roll["steps_per_second"], "ratio_to_pool": roll["steps_per_second"] / pool,
         "runs": [roll["steps_per_second"]]},
        {"bench": "train", "name": "training", "env": env, **layout, "steps_per_second": train_rate,
         "ratio_to_pool": train_rate / pool, "phase_fraction": {k: v / wall for k, v in phases.items()},
         "mean_return": summary["mean_return"], "agent_steps": summary["agent_steps"], "runs": [train_rate]},
    ]
    rows = [[r["name"], human(r["steps_per_second"]),
             f"{r['ratio_to_pool']:.4f}" if "ratio_to_pool" in r else "1"] for r in records]
    out = table(f"{env}: where training's time goes ({layout['pool']} pool, {layout['policy']} policy, "
                f"{layout['num_envs']} envs, {seconds:g} s each)", ["what", "agent-steps/s", "/ pool"], rows)
    console.print(out)
    console.print("training's wall time: " + ", ".join(f"{k} {v / wall:.0%}" for k, v in phases.items()))
    return records


def candidates(
    env: str, named: list[tuple[str, list[str]]], overrides: list[str], seconds: float, console: Console
) -> list[dict[str, Any]]:
    """(e): each candidate trains ``seconds``; return reached minus the random policy's, side by side."""
    with progress(console) as bar:
        task = bar.add_task(f"{env}: {len(named)} candidates x {seconds:g} s", total=len(named) + 1)
        baseline, baseline_rate = random_return(resolved(env, overrides))
        bar.advance(task)
        records = []
        for name, extra in named:
            summary = train_for(resolved(env, [*overrides, *extra]), seconds)
            gain = None if summary["mean_return"] is None else summary["mean_return"] - baseline
            records.append({
                "bench": "train", "name": f"candidate-{name}", "env": env, "overrides": extra,
                "wall_seconds": summary["wall_seconds"], "steps_per_second": summary["steps_per_second"],
                "agent_steps": summary["agent_steps"], "mean_return": summary["mean_return"],
                "random_return": baseline, "gain_over_random": gain,
                "reward_per_step": summary["reward_per_step"], "random_reward_per_step": baseline_rate,
                "runs": [summary["steps_per_second"]],
            })
            bar.advance(task)
    best = max((r["gain_over_random"] for r in records if r["gain_over_random"] is not None), default=None)
    rows = []
    for r in records:
        gain = r["gain_over_random"]
        rows.append([
            r["name"], " ".join(r["overrides"]) or "(as configured)", human(r["steps_per_second"]),
            "n/a" if r["mean_return"] is None else f"{r['mean_return']:.3f}",
            "n/a" if gain is None else f"{gain:+.3f}",
            "n/a" if gain is None or not best else f"{gain / best:.2f}",
            "n/a" if r["reward_per_step"] is None else f"{r['reward_per_step']:.4g}",
        ])
    out = table(f"{env}: learning per wall-second ({seconds:g} s each; random policy: return {baseline:.3f}, "
                f"reward/step {baseline_rate:.4g})",
                ["candidate", "overrides", "steps/s", "mean return", "- random", "/ best", "reward/step"], rows)
    out.columns[1].overflow = "fold"
    console.print(out)
    return records


def parse_candidate(text: str) -> tuple[str, list[str]]:
    """``NAME:key=value,key=value`` (``NAME:`` alone: the config as it is)."""
    name, sep, rest = text.partition(":")
    if not sep or not name.strip():
        raise ValueError(f"--candidate {text!r} must look like NAME:section.key=value,section.key=value")
    items = [item.strip() for item in rest.split(",") if item.strip()]
    for item in items:
        if "=" not in item:
            raise ValueError(f"--candidate {text!r}: '{item}' must look like section.key=value")
    return name.strip(), items
