"""`appliance bench envs`: raw native step throughput on one pinned core."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from rich.console import Console

import envs
from envs.native import action_high

from .common import human, pinned, progress, record, table, timed_rates, write_json

# Batch layouts large enough that one Python call per batch is noise.
LAYOUTS: dict[str, dict[str, Any]] = {
    "cartpole": {"num_envs": 4096},
    "grid": {"num_envs": 1024},  # 4 agents per map: 4096 agents
    # 1024 small maps x 4 snakes = 4096 agents.
    "snake": {"num_envs": 1024, "preset": "small"},
    "moba": {"num_envs": 256},  # 10 heroes per map: 2560 agents
    # Each ALE game emulates 4 frames per step in C++; a few already make the Python call noise.
    "atari/pong": {"num_envs": 8},
    "atari/breakout": {"num_envs": 8},
}
ACTION_BATCHES = 64


def bench_env(name: str, seconds: float, runs: int, on_run: Any = None) -> dict[str, Any]:
    layout = LAYOUTS.get(name, {"num_envs": 1024})
    env = envs.make(name, seed=0, **layout)
    rng = np.random.default_rng(0)
    high = action_high(env.single_action_space)
    actions = rng.integers(0, high, size=(ACTION_BATCHES, *env.actions.shape), dtype=np.int32)
    counter = [0]

    def one_batch() -> int:
        env.actions[...] = actions[counter[0] % ACTION_BATCHES]
        counter[0] += 1
        env.step()
        return env.num_agents

    rates = timed_rates(one_batch, seconds, runs, on_run)
    env.close()
    return record("envs", name, rates, agents=env.num_agents, **layout)


def run(env: str | None, seconds: float, runs: int, json_path: str | None, console: Console) -> list[dict]:
    names = [env] if env else envs.native_names()
    core = min(os.sched_getaffinity(0))
    records = []
    with pinned({core}), progress(console) as bar:
        for name in names:
            task = bar.add_task(name, total=runs)
            records.append(bench_env(name, seconds, runs, on_run=lambda t=task: bar.advance(t)))
    rows = [[r["name"], str(r["agents"]), human(r["steps_per_second"]),
             human(min(r["runs"])), human(max(r["runs"]))] for r in records]
    console.print(table(f"native env step throughput, one core (core {core}), median of {runs} runs",
                        ["env", "agents", "agent-steps/s", "min", "max"], rows))
    write_json(json_path, records)
    return records
