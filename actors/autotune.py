"""Pick the fastest pool layout for an env on this machine, and remember it.

``appliance bench actors --autotune --env NAME [--order ready]`` measures candidate
layouts with :func:`pool_rates` and saves the winner with :func:`save`; ``appliance
train`` asks :func:`load` for it. The cache is one JSON file keyed by env name, then
core count (``"2"``; ``"2:ready"`` for order "ready"), since the best layout depends on
the cores and on the order the pool serves its groups in.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import envs

from .pool import ORDERS, ActorPool

LAYOUT_KEYS = ("num_envs", "num_actors", "batch_size")


def cache_path() -> Path:
    """$XDG_CACHE_HOME/appliance/autotune.json (default ~/.cache/appliance/autotune.json)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "appliance" / "autotune.json"


def _key(cores: int | None, order: str) -> str:
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
    key = str(cores if cores is not None else len(os.sched_getaffinity(0)))
    return key if order == "turn" else f"{key}:{order}"


def _read() -> dict[str, Any]:
    try:
        data = json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def load(env_name: str, cores: int | None = None, order: str = "turn") -> dict[str, int] | None:
    """The saved layout (``num_envs``, ``num_actors``, ``batch_size``) for this env, core count and order."""
    entry = _read().get(env_name, {}).get(_key(cores, order))
    if not isinstance(entry, dict) or not all(isinstance(entry.get(k), int) for k in LAYOUT_KEYS):
        return None
    return {k: entry[k] for k in LAYOUT_KEYS}


def save(env_name: str, layout: dict[str, Any], cores: int | None = None, order: str = "turn") -> Path:
    """Stores ``layout`` (plus any measurement fields) atomically; returns the file."""
    missing = [k for k in LAYOUT_KEYS if k not in layout]
    if missing:
        raise ValueError(f"layout is missing '{missing[0]}'")
    key = _key(cores, order)
    data = _read()
    data.setdefault(env_name, {})[key] = dict(layout)
    path = cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def step_seconds(env: str, num_envs: int = 1024, seconds: float = 0.2, **params: Any) -> float:
    """Seconds one env instance takes per step on this core (the raw C loop)."""
    e = envs.make(env, num_envs=num_envs, seed=0, **params)
    try:
        e.step()
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            e.step_n(16)
            steps += 16
        return (time.perf_counter() - start) / (steps * num_envs)
    finally:
        e.close()


def candidates(num_cores: int, env_step_s: float, order: str = "turn") -> list[dict[str, int]]:
    """Layouts worth measuring: 1x and 2x actors per core, per-actor work of ~0.3-3 ms, sync and async.

    Async splits every actor's envs in two parts, so an actor steps one part while the
    caller handles the other; small parts make the per-batch doorbell costly. In order
    "turn" that is two groups, each a part of every actor; in order "ready" a batch of
    half an actor's envs (each group one part of one actor), or a whole actor.
    """
    out = []
    for per_core in (1, 2):
        actors = num_cores * per_core
        for target_s in (3e-4, 1e-3, 3e-3):
            per_actor = 1 << max(4, min(17, round(np.log2(max(1.0, target_s / env_step_s)))))
            num_envs = per_actor * actors
            for parts in (1, 2):
                batch = num_envs // parts if order == "turn" else per_actor // parts
                layout = {"num_envs": num_envs, "num_actors": actors, "batch_size": batch}
                if layout not in out:
                    out.append(layout)
    return out


class PoolLoop:
    """An open pool driven by a no-op policy: ``run(seconds)`` times recv/send.

    The policy writes nothing: the arena's action rows hold sampled actions from the
    start, and ``send(pool.actions)`` checks them in place, as the raw C loop steps with
    the actions already in its buffer. (A real policy pays one copy of its actions into
    the arena on top; the learner's does.)

    Benchmarks keep several open at once and interleave their runs, so load from other
    processes on a shared machine falls on every entry alike.
    """

    def __init__(self, env: str | Callable[..., Any], layout: dict[str, int], **params: Any) -> None:
        sizes = (layout["num_envs"], layout["num_actors"], layout["batch_size"])
        self.pool = ActorPool(env, *sizes, seed=0, **params)
        try:
            space = self.pool.single_action_space
            # Written once into every group's rows (whichever order they come in), then checked in place.
            arena = self.pool.buffers["actions"]
            sampled = np.stack([space.sample() for _ in range(self.pool.batch_rows)])
            arena[...] = np.resize(sampled, arena.shape)
            self.pool.async_reset(0)
            self.run(0.0)
        except BaseException:
            self.pool.close()
            raise

    def run(self, seconds: float) -> float:
        """Agent-steps/s over at least ``seconds`` (and at least every group once around)."""
        pool, rows = self.pool, self.pool.batch_rows
        for _ in range(pool.num_groups):  # warm up: about every group once
            pool.recv()
            pool.send(pool.actions)
        done, start = 0, time.perf_counter()
        while True:
            pool.recv()
            pool.send(pool.actions)
            done += rows
            now = time.perf_counter()
            if now - start >= seconds:
                return done / (now - start)

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> PoolLoop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def pool_rates(
    env: str | Callable[..., Any],
    layout: dict[str, int],
    seconds: float,
    runs: int,
    on_run: Callable[[], None] | None = None,
    **params: Any,
) -> list[float]:
    """Agent-steps/s of ``runs`` timed recv/send loops with constant actions (a no-op policy)."""
    with PoolLoop(env, layout, **params) as loop:
        rates = []
        for _ in range(runs):
            rates.append(loop.run(seconds))
            if on_run:
                on_run()
        return rates
