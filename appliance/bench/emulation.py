"""`appliance bench emulation`: emulated envs through the pool against their own vector envs.

Entries, each a median of ``runs`` timed runs, measured side by side:

- (a) a Dict-observation env (MiniGrid-Empty-5x5-v0, mission dropped) through
  ``ActorPool`` (packing in the actors; in both orders) vs Gymnasium's ``FlattenObservation``
  + ``AsyncVectorEnv(shared_memory=True)``, same env and number of envs;
- (b) packing in the actor plus unpacking on the learner side, per step, vs
  the env's own ``step`` (same envs, one process);
- (c) ``atari/pong`` frames/s through ``ActorPool`` (in both orders, see
  :class:`actors.ActorPool`) vs ALE's vector env alone with as many threads as
  the pool has actors. The three stay open together and their runs are
  interleaved, since ALE's own rate swings by half from second to second on a
  shared machine.

Fairness, and the ceilings the targets are judged against:

- (a) both sides get every allowed core: the pool runs one actor per core
  (each stepping its envs serially, one process), Gymnasium one process per
  env. ``raw`` is one MiniGrid env stepped in a plain Python loop in this
  process (one core): MiniGrid's own Python ``step`` is the cost, so no
  vectorizer can exceed ``cores x raw``. The ceiling ratio printed,
  ``pool / (cores x raw)``, says how close the pool is to that; when
  ``cores x raw / gymnasium`` is below 3 the 3x target is out of reach with
  this env on this machine, whatever the pool does.
- (c) the same cores and the same ALE worker threads on both sides: ALE alone
  runs all games in one process with one C++ thread per core; the pool runs
  one actor per core, each an ALE vector env with one C++ thread for its share
  of the games. ``pong_ale1`` is that share stepped by ALE alone in this
  process (one thread): ``cores x pong_ale1`` is what the pool's actors could
  do with no signalling between steps.

Where the pool loses to its ceilings (measured on 2 cores): not in packing or
the adapters (together a few % of an env step). With few envs per actor a group
is a whole actor; in order "turn" each actor then waits for the other's batch to
go round, which order "ready" avoids.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from rich.console import Console

from .common import async_vector_rates, human, progress, record, table, timed_rate, timed_rates, write_json

DICT_ENV = "MiniGrid-Empty-5x5-v0"
DICT_PARAMS: dict[str, Any] = {"drop_keys": ("mission",)}


def _pool_rates(env: str, num_envs: int, actors: int, seconds: float, runs: int, tick: Callable,
                **params: Any) -> list[float]:
    with _open_pool(env, num_envs, actors, **params) as pool:
        return timed_rates(_pool_step(pool), seconds, runs, tick)


def _open_pool(env: str, num_envs: int, actors: int, **params: Any) -> Any:
    from actors import ActorPool

    batch = num_envs // 2 if actors % 2 == 0 else num_envs
    pool = ActorPool(env, num_envs=num_envs, num_actors=actors, batch_size=batch, seed=0, **params)
    pool.async_reset(0)
    return pool


def _pool_step(pool: Any) -> Callable[[], int]:
    """One recv/send with constant actions; returns the rows stepped."""
    actions = np.zeros(pool.buffers["actions"][:pool.batch_rows].shape, pool.buffers["actions"].dtype)

    def one() -> int:
        pool.recv()
        pool.send(actions)
        return pool.batch_rows

    return one


def _pong_rates(num_envs: int, cores: int, seconds: float, runs: int, tick: Callable) -> dict[str, list[float]]:
    """(c): frames/s of the pool in each order and of ALE alone, runs interleaved."""
    from ale_py.vector_env import AtariVectorEnv

    with _open_pool("atari/pong", num_envs, cores) as turn, \
            _open_pool("atari/pong", num_envs, cores, order="ready") as ready:
        vec = AtariVectorEnv("pong", num_envs, num_threads=cores, autoreset_mode="SameStep")
        try:
            actions = np.zeros(num_envs, np.int32)
            vec.reset(seed=0)

            def ale() -> int:
                vec.step(actions)
                return num_envs

            steps = {"pong_pool": _pool_step(turn), "pong_pool_ready": _pool_step(ready), "pong_ale": ale}
            for one in steps.values():
                timed_rate(one, min(seconds, 0.5))  # warm up: the first steps load ROMs and reset games
            rates: dict[str, list[float]] = {key: [] for key in steps}
            for _ in range(runs):
                for key, one in steps.items():
                    rates[key].append(4 * timed_rate(one, seconds))  # frames: ALE skips 4 per step
                tick()
            return rates
        finally:
            vec.close()


def _dict_gym_rates(num_envs: int, seconds: float, runs: int, tick: Callable) -> list[float]:
    import gymnasium
    import minigrid  # noqa: F401  (registers the id in the workers too)
    from gymnasium.wrappers import FilterObservation, FlattenObservation

    def make() -> gymnasium.Env:
        return FlattenObservation(FilterObservation(gymnasium.make(DICT_ENV), ["direction", "image"]))

    return async_vector_rates(make, num_envs, seconds, runs, tick)


def pack_overhead(creator: Callable[[], Any], num_envs: int, seconds: float, runs: int, tick: Callable,
                  actions: Sequence[Sequence[Any]], drop_keys: Iterable[str] = (), drop_unsupported: bool = False,
                  batch: int = 0) -> list[float]:
    """(pack + unpack seconds) / env-step seconds, per run, over the same steps.

    ``num_envs`` envs step in this process with ``actions`` in turn (a list per step); pack
    is the actor's observation writer (:func:`envs.emulation.steploop.rows`, the compiled
    one where built, after :func:`envs.emulation.vector.observe_in_place` as in the actor),
    unpack the learner's, once per ``batch`` rows (default all), of the fresh tensor a
    rollout makes of them; making that tensor is not counted (any observation needs it).
    """
    import torch

    from envs.emulation import steploop
    from envs.emulation.layout import Packer, layout_of
    from envs.emulation.vector import observe_in_place
    from learner.unpack import Unpacker

    raw = [creator() for _ in range(num_envs)]
    layout = layout_of(raw[0].observation_space, drop_keys, drop_unsupported)
    rows = np.zeros((num_envs, *layout.shape), layout.dtype)
    packer = Packer(layout, rows)
    observe_in_place(raw, packer)  # before the first reset, as the actor's vector: NLE then writes into the rows
    for i, env in enumerate(raw):
        env.reset(seed=i)
    writer, unpacker = steploop.rows(packer), Unpacker(layout)
    batch = batch or num_envs
    groups = [torch.from_numpy(rows[lo:lo + batch]) for lo in range(0, num_envs, batch)]
    ratios = []
    k = 0
    for _ in range(runs):
        step_s = pack_s = 0.0
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            a = actions[k % len(actions)]
            k += 1
            t0 = time.perf_counter()
            out = []
            for env, action in zip(raw, a, strict=True):
                obs, _, term, trunc, _ = env.step(action)
                out.append(env.reset()[0] if term or trunc else obs)
            t1 = time.perf_counter()
            for i, obs in enumerate(out):
                writer.write(i, obs)
            t2 = time.perf_counter()
            # A fresh tensor per batch, as the learner's rollout makes (its copy, not the layout's:
            # a Box observation needs one too), then unpacked.
            fresh = [torch.from_numpy(group.numpy()) for group in groups] if layout.packed else []
            t3 = time.perf_counter()
            for group in fresh:
                unpacker.unpack(group)
            t4 = time.perf_counter()
            step_s += t1 - t0
            pack_s += (t2 - t1) + (t4 - t3)
        ratios.append(pack_s / step_s)
        tick()
    for env in raw:
        env.close()
    return ratios


def _pack_overhead(num_envs: int, seconds: float, runs: int, tick: Callable) -> list[float]:
    import gymnasium
    import minigrid  # noqa: F401

    return pack_overhead(lambda: gymnasium.make(DICT_ENV), num_envs, seconds, runs, tick, [[0] * num_envs],
                         drop_keys=DICT_PARAMS["drop_keys"])


def _raw_rates(seconds: float, runs: int, tick: Callable) -> list[float]:
    """One Dict-observation env stepped (and reset on episode end) in a plain loop, this process."""
    import gymnasium
    import minigrid  # noqa: F401

    env = gymnasium.make(DICT_ENV)
    env.reset(seed=0)
    step, reset = env.step, env.reset

    def one() -> int:
        for _ in range(100):
            _, _, term, trunc, _ = step(0)
            if term or trunc:
                reset()
        return 100

    rates = timed_rates(one, seconds, runs, tick)
    env.close()
    return rates


def _ale_rates(num_envs: int, threads: int, seconds: float, runs: int, tick: Callable) -> list[float]:
    from ale_py.vector_env import AtariVectorEnv

    vec = AtariVectorEnv("pong", num_envs, num_threads=threads, autoreset_mode="SameStep")
    actions = np.zeros(num_envs, np.int32)
    vec.reset(seed=0)

    def one() -> int:
        vec.step(actions)
        return num_envs * 4  # frames: ALE skips 4 per step

    rates = timed_rates(one, seconds, runs, tick)
    vec.close()
    return rates


def run(seconds: float, runs: int, json_path: str | None, console: Console, num_envs: int = 0) -> list[dict]:
    cores = len(os.sched_getaffinity(0))
    n = num_envs or 4 * cores
    atari_envs = 2 * cores
    jobs: list[tuple[str, str, dict[str, Any], Callable[[Callable], list[float]]]] = [
        ("pool", f"pool {DICT_ENV} (packed Dict obs)", {"num_envs": n, "num_actors": cores},
         lambda t: _pool_rates(DICT_ENV, n, cores, seconds, runs, t, **DICT_PARAMS)),
        ("pool_ready", f"pool {DICT_ENV} (packed Dict obs), order ready",
         {"num_envs": n, "num_actors": cores, "order": "ready"},
         lambda t: _pool_rates(DICT_ENV, n, cores, seconds, runs, t, order="ready", **DICT_PARAMS)),
        ("gym", f"gymnasium AsyncVectorEnv + FlattenObservation {DICT_ENV}", {"num_envs": n, "num_actors": n},
         lambda t: _dict_gym_rates(n, seconds, runs, t)),
        ("raw", f"raw {DICT_ENV}, one env, plain loop, one core", {"num_envs": 1, "num_actors": 1},
         lambda t: _raw_rates(seconds, runs, t)),
        ("pack", f"pack + unpack / env step {DICT_ENV}", {"num_envs": n, "num_actors": 1},
         lambda t: _pack_overhead(n, seconds, runs, t)),
        ("pong_ale1", "ALE AtariVectorEnv pong, one actor's share, 1 thread (frames/s)",
         {"num_envs": atari_envs // cores, "num_actors": 1},
         lambda t: _ale_rates(atari_envs // cores, 1, seconds, runs, t)),
    ]
    pong = {"num_envs": atari_envs, "num_actors": cores}
    pong_names: dict[str, tuple[str, dict[str, Any]]] = {
        "pong_pool": ("pool atari/pong (frames/s)", {**pong, "order": "turn"}),
        "pong_pool_ready": ("pool atari/pong, order ready (frames/s)", {**pong, "order": "ready"}),
        "pong_ale": ("ALE AtariVectorEnv pong (frames/s)", pong),
    }
    records: dict[str, dict] = {}
    with progress(console) as bar:
        for key, name, layout, measure in jobs:
            task = bar.add_task(name, total=runs)
            values = measure(lambda t=task: bar.advance(t))
            unit = "ratio" if key == "pack" else "frames/s" if key.startswith("pong") else "steps/s"
            records[key] = record("emulation", name, values, cores=cores, unit=unit, **layout)
        task = bar.add_task("atari/pong: pool (both orders) and ALE, interleaved", total=runs)
        for key, values in _pong_rates(atari_envs, cores, seconds, runs, lambda: bar.advance(task)).items():
            name, layout = pong_names[key]
            records[key] = record("emulation", name, values, cores=cores, unit="frames/s", **layout)
    rows = []
    for key, r in records.items():
        if key == "pack":  # a ratio, not a rate
            rows.append([r["name"], str(r["num_envs"]), f"{r['steps_per_second']:.1%}",
                         f"{min(r['runs']):.1%}", f"{max(r['runs']):.1%}"])
        else:
            rows.append([r["name"], str(r["num_envs"]), human(r["steps_per_second"]),
                         human(min(r["runs"])), human(max(r["runs"]))])
    console.print(table(f"emulation ({cores} cores), steps/s (pack: ratio), median of {runs} runs",
                        ["entry", "envs", "median", "min", "max"], rows))
    med = {k: r["steps_per_second"] for k, r in records.items()}
    ceiling = cores * med["raw"]
    for key, label in (("pool", ""), ("pool_ready", ", order ready")):
        console.print(f"(a) pool{label} / gymnasium AsyncVectorEnv, {DICT_ENV}: {med[key] / med['gym']:.1f}x "
                      f"(target >= 3x); env ceiling {cores} cores x raw loop = {human(ceiling)}/s, "
                      f"pool{label} / ceiling = {med[key] / ceiling:.2f}, best possible vs gymnasium = "
                      f"{ceiling / med['gym']:.1f}x", soft_wrap=True)
    console.print(f"(b) pack + unpack / env step: {med['pack']:.1%} (target <= 5%)")
    for key, label in (("pong_pool", ""), ("pong_pool_ready", ", order ready")):
        console.print(f"(c) pool{label} / ALE vector env, atari/pong frames/s: {med[key] / med['pong_ale']:.2f} "
                      f"(target >= 0.95); pool{label} / ({cores} x one actor's share in ALE alone) = "
                      f"{med[key] / (cores * med['pong_ale1']):.2f}", soft_wrap=True)
    write_json(json_path, list(records.values()))
    return list(records.values())
