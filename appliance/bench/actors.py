"""`appliance bench actors`: the actor pool against the raw C loop and its peers, same cores.

Entries: the raw single-core C loop; the pool with a no-op policy (constant actions,
recv/send loop) for 1..cores actors and for 4x more actors than cores; and, when
installed, EnvPool's and Gymnasium AsyncVectorEnv's CartPole-v1 (the peers of the
design targets). ``--autotune`` measures candidate layouts and saves the fastest.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from rich.console import Console

import envs
from actors import autotune

from .common import human, pinned, progress, record, table, timed_rate, write_json
from .envs import LAYOUTS

PEER_ENV = "CartPole-v1"


def _raw_rates(env: str, num_envs: int, seconds: float, runs: int, on_run: Callable) -> list[float]:
    e = envs.make(env, num_envs=num_envs, seed=0)
    e.actions[...] = np.stack([e.single_action_space.sample() for _ in range(e.num_agents)])
    rates = []
    with pinned({min(os.sched_getaffinity(0))}):
        for _ in range(runs):
            rates.append(timed_rate(lambda: (e.step(), e.num_agents)[1], seconds))
            on_run()
    e.close()
    return rates


def _envpool_rates(num_envs: int, cores: int, seconds: float, runs: int, on_run: Callable) -> list[float]:
    import envpool

    batch = num_envs // 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        e = envpool.make_gymnasium(PEER_ENV, num_envs=num_envs, batch_size=batch, num_threads=cores, seed=0)
    actions = np.zeros(batch, np.int32)
    e.async_reset()

    def one() -> int:
        info = e.recv()[4]
        e.send(actions, info["env_id"])
        return batch

    rates = []
    for _ in range(runs):
        rates.append(timed_rate(one, seconds))
        on_run()
    e.close()
    return rates


def _gym_async_rates(num_envs: int, seconds: float, runs: int, on_run: Callable) -> list[float]:
    import gymnasium

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vec = gymnasium.vector.AsyncVectorEnv(
            [lambda: gymnasium.make(PEER_ENV)] * num_envs, shared_memory=True
        )
    actions = np.zeros(num_envs, np.int64)
    vec.reset(seed=0)

    def one() -> int:
        vec.step(actions)
        return num_envs

    rates = []
    for _ in range(runs):
        rates.append(timed_rate(one, seconds))
        on_run()
    vec.close()
    return rates


def _importable(name: str) -> bool:
    try:
        __import__(name)
    except Exception:  # noqa: BLE001 - a broken optional peer is simply skipped
        return False
    return True


def _pool_layout(num_envs: int, actors: int) -> dict[str, int]:
    batch = num_envs // 2 if actors % 2 == 0 else num_envs  # double-buffered when it can be
    return {"num_envs": num_envs, "num_actors": actors, "batch_size": batch}


def run(env: str, seconds: float, runs: int, json_path: str | None, console: Console) -> list[dict]:
    cores = len(os.sched_getaffinity(0))
    per_core = LAYOUTS.get(env, {"num_envs": 1024})["num_envs"]
    num_envs = per_core * cores
    jobs: list[tuple[str, dict[str, Any], Callable[[Callable], list[float]]]] = [
        ("raw C loop, 1 core", {"num_envs": per_core, "num_actors": 0, "batch_size": per_core},
         lambda tick: _raw_rates(env, per_core, seconds, runs, tick)),
    ]
    for actors in sorted({*range(1, cores + 1), 4 * cores}):
        layout = _pool_layout(num_envs, actors)
        jobs.append((f"pool, {actors} actors", layout,
                     lambda tick, lay=layout: autotune.pool_rates(env, lay, seconds, runs, tick)))
    if env == "cartpole" and _importable("envpool"):
        peer_layout = {"num_envs": num_envs, "num_actors": cores, "batch_size": num_envs // 2}
        jobs.append((f"envpool {PEER_ENV}", peer_layout,
                     lambda tick: _envpool_rates(num_envs, cores, seconds, runs, tick)))
    if env == "cartpole":
        gym_envs = 2 * cores
        jobs.append((f"gymnasium AsyncVectorEnv {PEER_ENV}",
                     {"num_envs": gym_envs, "num_actors": gym_envs, "batch_size": gym_envs},
                     lambda tick: _gym_async_rates(gym_envs, seconds, runs, tick)))
    records = []
    with progress(console) as bar:
        for name, layout, measure in jobs:
            task = bar.add_task(name, total=runs)
            rates = measure(lambda t=task: bar.advance(t))
            records.append(record("actors", name, rates, env=env, cores=cores, **layout))
    rows = [[r["name"], str(r["num_envs"]), str(r["num_actors"]), str(r["batch_size"]),
             human(r["steps_per_second"]), human(min(r["runs"])), human(max(r["runs"]))] for r in records]
    console.print(table(f"actor pool throughput ({env}, {cores} cores), agent-steps/s, median of {runs} runs",
                        ["entry", "envs", "actors", "batch", "median", "min", "max"], rows))
    _print_ratios(records, cores, console)
    write_json(json_path, records)
    return records


def _print_ratios(records: list[dict], cores: int, console: Console) -> None:
    by_name = {r["name"]: r["steps_per_second"] for r in records}
    raw = by_name["raw C loop, 1 core"]
    pool = by_name[f"pool, {cores} actors"]
    lines = [f"pool ({cores} actors) / raw C loop x {cores} cores: {pool / (raw * cores):.2f}"]
    crowded = by_name[f"pool, {4 * cores} actors"]
    lines.append(f"pool ({4 * cores} actors) / pool ({cores} actors): {crowded / pool:.2f}")
    for name, rate in by_name.items():
        if name.startswith(("envpool", "gymnasium")):
            lines.append(f"pool ({cores} actors) / {name}: {pool / rate:.1f}x")
    for line in lines:
        console.print(line)


def tune(env: str, seconds: float, runs: int, json_path: str | None, console: Console) -> dict[str, Any]:
    """Measures candidate layouts for ``env``; saves and returns the fastest."""
    cores = len(os.sched_getaffinity(0))
    step_s = autotune.step_seconds(env)
    console.print(f"{env}: {step_s * 1e9:.1f} ns per env step on one core ({human(1 / step_s)} steps/s)")
    records = []
    with progress(console) as bar:
        for layout in autotune.candidates(cores, step_s):
            name = f"{layout['num_actors']} actors x {layout['num_envs'] // layout['num_actors']} envs, " \
                   f"batch {layout['batch_size']}"
            task = bar.add_task(name, total=runs)
            rates = autotune.pool_rates(env, layout, seconds, runs, lambda t=task: bar.advance(t))
            records.append(record("actors-autotune", name, rates, env=env, cores=cores, **layout))
    best = max(records, key=lambda r: r["steps_per_second"])
    rows = [[r["name"], human(r["steps_per_second"]), "best" if r is best else ""] for r in records]
    console.print(table(f"autotune {env} ({cores} cores), agent-steps/s, median of {runs} runs",
                        ["layout", "median", ""], rows))
    chosen = {k: best[k] for k in autotune.LAYOUT_KEYS} | {"steps_per_second": best["steps_per_second"]}
    path = autotune.save(env, chosen, cores)
    console.print(f"saved {env} layout {chosen} to {path}")
    write_json(json_path, records)
    return chosen
