"""`appliance bench emulation --env E`: one emulated env through the pool and its peers, same run.

Entries, each a median of ``runs`` timed runs, all stepping the same env with the same
cycle of random actions:

- ``plain``: one env stepped (and reset at episode ends) in a plain Python loop, this
  process, one core. No vectorizer can beat ``cores x plain`` on a Python-bound env: that
  is the ceiling the pool is judged against.
- ``pool`` / ``pool_ready``: :class:`actors.ActorPool`, one actor per core, in both orders.
- ``gym``: Gymnasium ``AsyncVectorEnv(shared_memory=True)``, one process per env.
- ``puffer``: PufferLib's ``pufferlib.vector.Multiprocessing`` (one worker per core) over
  its ``GymnasiumPufferEnv``, when PufferLib is installed (the entry says why if not).
- ``pack``: packing the observation in the actor plus unpacking it on the learner side,
  as a fraction of the env's own step (same envs, one process).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from rich.console import Console

from .common import human, progress, record, table, timed_rates, write_json

CYCLE = 64  # pre-drawn action sets, stepped through in turn


def _creator(env: str, params: dict[str, Any]) -> tuple[Callable[[], Any], dict[str, Any]]:
    from envs.emulation import resolve

    kind, creator, options = resolve(env, params)
    if kind != "gym":
        raise ValueError(f"bench emulation --env takes a single-agent Gymnasium env; '{env}' is {kind}")
    return creator, options


def _actions(space: Any, shape: tuple[int, ...]) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, int(space.n), size=shape) for _ in range(CYCLE)]


def _plain(creator: Callable[[], Any], seconds: float, runs: int, tick: Callable) -> list[float]:
    env = creator()
    env.reset(seed=0)
    step, reset = env.step, env.reset
    acts = [int(a) for a in _actions(env.action_space, (CYCLE,))[0]]

    def one() -> int:
        for a in acts:
            _, _, term, trunc, _ = step(a)
            if term or trunc:
                reset()
        return CYCLE

    try:
        return timed_rates(one, seconds, runs, tick)
    finally:
        env.close()


def _pool(env: str, n: int, cores: int, seconds: float, runs: int, tick: Callable, **params: Any) -> list[float]:
    from actors import ActorPool

    batch = n // 2 if cores % 2 == 0 else n
    # Generous deadline: a Crafter reset builds a world, seconds per env on a loaded core.
    with ActorPool(env, num_envs=n, num_actors=cores, batch_size=batch, seed=0, timeout=120.0, **params) as pool:
        space = pool.single_action_space
        acts = [a.astype(pool.buffers["actions"].dtype) for a in _actions(space, (pool.batch_rows,))]
        pool.async_reset(0)
        i = 0

        def one() -> int:
            nonlocal i
            pool.recv()
            pool.send(acts[i % CYCLE])
            i += 1
            return pool.batch_rows

        return timed_rates(one, seconds, runs, tick)


def _gym(creator: Callable[[], Any], n: int, seconds: float, runs: int, tick: Callable) -> list[float]:
    import warnings

    import gymnasium

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vec = gymnasium.vector.AsyncVectorEnv([creator] * n, shared_memory=True)
    acts = _actions(vec.single_action_space, (n,))
    vec.reset(seed=0)
    i = 0

    def one() -> int:
        nonlocal i
        vec.step(acts[i % CYCLE])
        i += 1
        return n

    try:
        return timed_rates(one, seconds, runs, tick)
    finally:
        vec.close()


def puffer_missing() -> str | None:
    """Why PufferLib's entry is skipped, or None when it runs."""
    try:
        import pufferlib.emulation  # noqa: F401
        import pufferlib.vector  # noqa: F401
    except Exception as exc:  # ImportError, or a build that fails to load
        return f"PufferLib not importable ({type(exc).__name__}: {exc})"
    return None


def _puffer(creator: Callable[[], Any], n: int, cores: int, seconds: float, runs: int,
            tick: Callable) -> list[float]:
    import pufferlib.emulation
    import pufferlib.vector

    def make(buf: Any = None, seed: int = 0) -> Any:
        return pufferlib.emulation.GymnasiumPufferEnv(env_creator=creator, buf=buf, seed=seed)

    vec = pufferlib.vector.make(make, backend=pufferlib.vector.Multiprocessing, num_envs=n, num_workers=cores,
                                batch_size=n)
    space = vec.single_action_space
    acts = _actions(space, vec.action_space.shape)
    vec.async_reset(0)
    i = 0

    def one() -> int:
        nonlocal i
        vec.recv()
        vec.send(acts[i % CYCLE].astype(vec.action_space.dtype))
        i += 1
        return n

    try:
        return timed_rates(one, seconds, runs, tick)
    finally:
        vec.close()


def _pack(creator: Callable[[], Any], options: dict[str, Any], n: int, seconds: float, runs: int,
          tick: Callable) -> list[float]:
    """(pack + unpack seconds) / env-step seconds, per run, over the same steps."""
    import torch

    from envs.emulation.layout import Packer, layout_of
    from learner.unpack import Unpacker

    raw = [creator() for _ in range(n)]
    for i, env in enumerate(raw):
        env.reset(seed=i)
    layout = layout_of(raw[0].observation_space, options.get("drop_keys", ()), options.get("drop_unsupported", False))
    rows = np.zeros((n, *layout.shape), layout.dtype)
    packer, unpacker = Packer(layout, rows), Unpacker(layout)
    tensor = torch.from_numpy(rows)
    acts = _actions(raw[0].action_space, (n,))
    ratios = []
    k = 0
    for _ in range(runs):
        step_s = pack_s = 0.0
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            a = acts[k % CYCLE].tolist()
            k += 1
            t0 = time.perf_counter()
            out = []
            for env, action in zip(raw, a, strict=True):
                obs, _, term, trunc, _ = env.step(action)
                out.append(env.reset()[0] if term or trunc else obs)
            t1 = time.perf_counter()
            for i, obs in enumerate(out):
                packer.write(i, obs)
            if layout.packed:
                unpacker.unpack(tensor)
            t2 = time.perf_counter()
            step_s += t1 - t0
            pack_s += t2 - t1
        ratios.append(pack_s / step_s)
        tick()
    for env in raw:
        env.close()
    return ratios


def run(env: str, seconds: float, runs: int, json_path: str | None, console: Console, num_envs: int = 0,
        **params: Any) -> list[dict]:
    cores = len(os.sched_getaffinity(0))
    n = num_envs or 4 * cores
    n -= n % cores  # PufferLib splits the envs evenly over its workers
    creator, options = _creator(env, dict(params))
    skipped = puffer_missing()
    jobs: list[tuple[str, str, dict[str, Any], Callable[[Callable], list[float]]]] = [
        ("plain", f"plain loop {env}, one env, one core", {"num_envs": 1, "num_actors": 1},
         lambda t: _plain(creator, seconds, runs, t)),
        ("pool", f"pool {env}, order turn", {"num_envs": n, "num_actors": cores, "order": "turn"},
         lambda t: _pool(env, n, cores, seconds, runs, t, **params)),
        ("pool_ready", f"pool {env}, order ready", {"num_envs": n, "num_actors": cores, "order": "ready"},
         lambda t: _pool(env, n, cores, seconds, runs, t, order="ready", **params)),
        ("gym", f"gymnasium AsyncVectorEnv {env}", {"num_envs": n, "num_actors": n},
         lambda t: _gym(creator, n, seconds, runs, t)),
        ("pack", f"pack + unpack / env step {env}", {"num_envs": n, "num_actors": 1},
         lambda t: _pack(creator, options, n, seconds, runs, t)),
    ]
    if skipped is None:
        jobs.insert(4, ("puffer", f"pufferlib Multiprocessing {env}", {"num_envs": n, "num_actors": cores},
                        lambda t: _puffer(creator, n, cores, seconds, runs, t)))
    records: dict[str, dict] = {}
    with progress(console) as bar:
        for key, name, layout, measure in jobs:
            task = bar.add_task(name, total=runs)
            values = measure(lambda t=task: bar.advance(t))
            records[key] = record("emulation", name, values, cores=cores, env=env,
                                  unit="ratio" if key == "pack" else "steps/s", **layout)
    rows = []
    for key, r in records.items():
        fmt = (lambda v: f"{v:.1%}") if key == "pack" else human
        rows.append([r["name"], str(r["num_envs"]), fmt(r["steps_per_second"]), fmt(min(r["runs"])),
                     fmt(max(r["runs"]))])
    console.print(table(f"emulation {env} ({cores} cores), steps/s (pack: ratio), median of {runs} runs",
                        ["entry", "envs", "median", "min", "max"], rows))
    med = {k: r["steps_per_second"] for k, r in records.items()}
    ceiling = cores * med["plain"]
    for key, label in (("pool", "pool"), ("pool_ready", "pool, order ready")):
        line = (f"{label}: / ({cores} cores x plain loop) = {med[key] / ceiling:.2f} (target >= 0.85); "
                f"/ AsyncVectorEnv = {med[key] / med['gym']:.1f}x (target >= 5x)")
        if "puffer" in med:
            line += f"; / PufferLib Multiprocessing = {med[key] / med['puffer']:.1f}x (target >= 3x)"
        console.print(line, soft_wrap=True)
    if skipped is not None:
        console.print(f"PufferLib skipped: {skipped}")
    console.print(f"pack + unpack / env step: {med['pack']:.1%} (target <= 5%)")
    out = list(records.values())
    if skipped is not None:
        out.append({"bench": "emulation", "name": "pufferlib Multiprocessing", "env": env, "skipped": skipped})
    write_json(json_path, out)
    return out
