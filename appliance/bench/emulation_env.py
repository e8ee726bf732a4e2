"""`appliance bench emulation --env E`: one emulated env through the pool and its peers, same run.

Entries, each a median of ``runs`` timed runs, all stepping the same env with the same
cycle of random actions:

- ``plain``: one env stepped (and reset at episode ends) in a plain Python loop, this
  process, one core. No vectorizer can beat ``cores x plain`` on a Python-bound env: that
  is the ceiling the pool is judged against.
- ``plain_actor``: the same plain loop over one actor's share of the envs, one process (a
  round over them per step): where an env slows with the instances a process holds (NLE),
  ``cores x plain_actor`` is what any layout with that many envs per core can reach.
- ``vector`` / ``vector_python``: one actor's share of the envs as the actor steps them
  (``envs.make``, this process), on the compiled step loop and on its Python fallback
  (:mod:`envs.emulation.steploop`); runs interleaved with ``plain``, so ``vector / plain``
  is what the step path costs over a plain loop of ``env.step`` (the copy into the rows
  included).
- ``pool`` / ``pool_ready``: :class:`actors.ActorPool`, one actor per core, in both orders.
- ``gym``: Gymnasium ``AsyncVectorEnv(shared_memory=True)``, one process per env.
- ``puffer``: PufferLib's ``pufferlib.vector.Multiprocessing`` (one worker per core) over
  its ``GymnasiumPufferEnv``, when PufferLib is installed (the entry says why if not).
- ``pack``: packing the observation in the actor plus unpacking it on the learner side
  (once per batch of one actor's envs), as a fraction of the env's own step (same envs,
  one process).

Envs per actor (unless ``--num-envs``): enough that one actor's batch takes about
``BATCH_SECONDS`` of env time at the plain loop's rate (at least ``MIN_PER_ACTOR``), so a
doorbell round trip and the caller's turn are small next to the batch, as a user sizes a
pool for an env this fast; then half or a quarter of that where one process steps that
many clearly faster (:func:`sized_per_actor`: NetHack's instances crowd a core's
caches). The pool and PufferLib get ``cores x`` that; AsyncVectorEnv, one process per
env, keeps ``4 x cores`` (hundreds of processes would only measure the fork).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
from rich.console import Console

from .common import human, progress, record, table, timed_rate, timed_rates, write_json

CYCLE = 64  # pre-drawn action sets, stepped through in turn
BATCH_SECONDS = 0.002  # env time of one actor's batch the pool is sized for
MIN_PER_ACTOR = 4
SIZING_SLACK = 0.1  # sized_per_actor: fewer envs per actor only where they step this much faster


def _creator(env: str, params: dict[str, Any]) -> tuple[Callable[[], Any], dict[str, Any]]:
    from envs.emulation import resolve

    kind, creator, options = resolve(env, params)
    if kind != "gym":
        raise ValueError(f"bench emulation --env takes a single-agent Gymnasium env; '{env}' is {kind}")
    return creator, options


def _actions(space: Any, shape: tuple[int, ...]) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, int(space.n), size=shape) for _ in range(CYCLE)]


def _plain_envs(creator: Callable[[], Any], n: int = 1) -> tuple[Callable[[], int], Callable[[], None]]:
    """``n`` envs in one process, stepped (and reset at episode ends) in a plain loop, a round
    over them per action set, CYCLE rounds per call; returns (step, close)."""
    made = [creator() for _ in range(n)]
    for i, env in enumerate(made):
        env.reset(seed=i)
    pairs = [(env.step, env.reset) for env in made]
    acts = [[int(a) for a in row] for row in _actions(made[0].action_space, (n,))]

    def one() -> int:
        for row in acts:
            for (step, reset), a in zip(pairs, row, strict=True):
                _, _, term, trunc, _ = step(a)
                if term or trunc:
                    reset()
        return CYCLE * n

    def close() -> None:
        for env in made:
            env.close()

    return one, close


def envs_per_actor(plain_rate: float) -> int:
    """Envs per actor whose batch takes about BATCH_SECONDS at ``plain_rate`` (even, >= MIN_PER_ACTOR)."""
    want = int(round(BATCH_SECONDS * plain_rate / 2)) * 2
    return max(MIN_PER_ACTOR, want)


def sized_per_actor(env: str, per_actor: int, seconds: float, **params: Any) -> tuple[int, dict[int, float]]:
    """``per_actor`` or fewer: the largest of ``per_actor``, /2, /4 (even, >= MIN_PER_ACTOR) whose
    one-actor vector steps within SIZING_SLACK of the fastest of them; with each one's rate.

    Some envs step slower the more instances one process holds: each NLE step works in its
    own instance's state, and stepping the next instance finds little of it still in the core's
    caches (nethack/score, one core: 27.6k steps/s with 1 per process, 23.3k with 4, 19.3k with
    14). Each count is timed twice, interleaved, for ``seconds`` each; the best of the two counts.
    """
    import envs

    counts = sorted({per_actor} | {max(MIN_PER_ACTOR, per_actor // d // 2 * 2) for d in (2, 4)}, reverse=True)
    if len(counts) == 1:
        return per_actor, {}
    vecs = {n: envs.make(env, num_envs=n, seed=0, **params) for n in counts}
    try:
        steps = {n: _vector_step(vec) for n, vec in vecs.items()}
        rates = {n: 0.0 for n in counts}
        for _ in range(2):
            for n, one in steps.items():
                rates[n] = max(rates[n], timed_rate(one, seconds))
    finally:
        for vec in vecs.values():
            vec.close()
    best = max(rates.values())
    return next(n for n in counts if rates[n] >= (1 - SIZING_SLACK) * best), rates


def _loops(env: str, creator: Callable[[], Any], per_actor: int, seconds: float, runs: int, tick: Callable,
           **params: Any) -> dict[str, list[float]]:
    """plain, plain_actor (a plain loop over one actor's envs), vector (compiled loop) and
    vector_python, runs interleaved."""
    import envs
    from envs.emulation import steploop

    plain, close = _plain_envs(creator)
    closers = [close]
    vecs = {}
    steps: dict[str, Callable[[], int]] = {"plain": plain}
    if per_actor > 1:
        steps["plain_actor"], close = _plain_envs(creator, per_actor)
        closers.append(close)
    for key, name in (("vector", "compiled"), ("vector_python", "python")):
        if name not in steploop.IMPLEMENTATIONS:
            continue  # not built: the Python loop is what the actors run
        vec = vecs[key] = envs.make(env, num_envs=per_actor, seed=0, **params)
        getattr(vec, "env", vec)._loop_with(*steploop.IMPLEMENTATIONS[name])
        steps[key] = _vector_step(vec)
    try:
        for one in steps.values():
            timed_rate(one, min(seconds, 0.3))  # warm up
        rates: dict[str, list[float]] = {key: [] for key in steps}
        for _ in range(runs):
            for key, one in steps.items():
                rates[key].append(timed_rate(one, seconds))
            tick()
        return rates
    finally:
        for close in closers:
            close()
        for vec in vecs.values():
            vec.close()


def _vector_step(vec: Any) -> Callable[[], int]:
    acts = [a.astype(vec.actions.dtype) for a in _actions(vec.single_action_space, vec.actions.shape)]
    i = 0

    def one() -> int:
        nonlocal i
        vec.step(acts[i % CYCLE])
        vec.episode_stats()  # as the actor does after every step
        i += 1
        return vec.num_agents

    return one


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
        vec.close()  # terminates its workers without waiting for them: reap them, so none is left a zombie
        for proc in getattr(vec, "processes", []):
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join(5)


def run(env: str, seconds: float, runs: int, json_path: str | None, console: Console, num_envs: int = 0,
        **params: Any) -> list[dict]:
    from .emulation import pack_overhead

    cores = len(os.sched_getaffinity(0))
    creator, options = _creator(env, dict(params))
    skipped = puffer_missing()
    console.print(f"sizing: a plain loop of {env} for {seconds:g} s ...")
    one, close = _plain_envs(creator)
    try:
        timed_rate(one, min(seconds, 0.3))
        plain_rate = timed_rate(one, seconds)
    finally:
        close()
    per_actor = num_envs // cores if num_envs else envs_per_actor(plain_rate)
    if per_actor < 1:
        raise ValueError(f"--num-envs must be at least the number of cores ({cores}), got {num_envs}")
    sizing: dict[int, float] = {}
    if not num_envs:
        console.print(f"sizing: one actor's vector at {per_actor} envs and fewer ...")
        per_actor, sizing = sized_per_actor(env, per_actor, min(seconds, 1.0), **params)
        if sizing:
            console.print("sizing: " + ", ".join(f"{k} envs {human(v)} steps/s" for k, v in sizing.items())
                          + f" -> {per_actor} per actor", soft_wrap=True)
    n = per_actor * cores
    n_gym = num_envs or 4 * cores
    probe = creator()
    actions = [a.tolist() for a in _actions(probe.action_space, (per_actor,))]
    probe.close()
    loops: dict[str, list[float]] = {}

    def measure_loops(t: Callable) -> list[float]:
        loops.update(_loops(env, creator, per_actor, seconds, runs, t, **params))
        return loops["plain"]

    jobs: list[tuple[str, str, dict[str, Any], Callable[[Callable], list[float]]]] = [
        ("plain", f"plain loop {env}, one env, one core; one actor's vector, both loops, interleaved",
         {"num_envs": 1, "num_actors": 1}, measure_loops),
        ("pool", f"pool {env}, order turn", {"num_envs": n, "num_actors": cores, "order": "turn"},
         lambda t: _pool(env, n, cores, seconds, runs, t, order="turn", **params)),
        ("pool_ready", f"pool {env}, order ready", {"num_envs": n, "num_actors": cores, "order": "ready"},
         lambda t: _pool(env, n, cores, seconds, runs, t, order="ready", **params)),
        ("gym", f"gymnasium AsyncVectorEnv {env}", {"num_envs": n_gym, "num_actors": n_gym},
         lambda t: _gym(creator, n_gym, seconds, runs, t)),
        ("pack", f"pack + unpack / env step {env}", {"num_envs": per_actor, "num_actors": 1},
         lambda t: pack_overhead(creator, per_actor, seconds, runs, t, actions,
                                 options.get("drop_keys", ()), options.get("drop_unsupported", False))),
    ]
    if skipped is None:
        jobs.insert(4, ("puffer", f"pufferlib Multiprocessing {env}", {"num_envs": n, "num_actors": cores},
                        lambda t: _puffer(creator, n, cores, seconds, runs, t)))
    records: dict[str, dict] = {}
    with progress(console) as bar:
        for key, name, layout, measure in jobs:
            task = bar.add_task(name, total=runs)
            values = measure(lambda t=task: bar.advance(t))
            records[key] = record("emulation", name.split(";")[0], values, cores=cores, env=env,
                                  unit="ratio" if key == "pack" else "steps/s", **layout)
            if key == "plain":
                if "plain_actor" in loops:
                    records["plain_actor"] = record("emulation", f"plain loop over one actor's envs {env}, one core",
                                                    loops["plain_actor"], cores=cores, env=env, unit="steps/s",
                                                    num_envs=per_actor, num_actors=1)
                for loop, label in (("vector", "compiled step loop"), ("vector_python", "Python step loop")):
                    if loop in loops:
                        records[loop] = record("emulation", f"one actor's vector {env}, {label}, one core",
                                               loops[loop], cores=cores, env=env, unit="steps/s",
                                               num_envs=per_actor, num_actors=1)
    rows = []
    for key, r in records.items():
        fmt = (lambda v: f"{v:.1%}") if key == "pack" else human
        rows.append([r["name"], str(r["num_envs"]), fmt(r["steps_per_second"]), fmt(min(r["runs"])),
                     fmt(max(r["runs"]))])
    console.print(table(f"emulation {env} ({cores} cores), steps/s (pack: ratio), median of {runs} runs",
                        ["entry", "envs", "median", "min", "max"], rows))
    med = {k: r["steps_per_second"] for k, r in records.items()}
    for loop, label in (("vector", "compiled"), ("vector_python", "Python")):
        if loop in med:
            # Interleaved with plain run by run: the per-run ratio is immune to load drifting between runs.
            ratio = _median([v / p for v, p in zip(loops[loop], loops["plain"], strict=True)])
            records[loop]["vs_plain"] = ratio
            console.print(f"step path, {label} loop: one actor's vector / plain loop = {ratio:.2f} "
                          "(1 = no cost beyond env.step; the copy into the rows included)", soft_wrap=True)
    ceiling = cores * med["plain"]
    for key, label in (("pool", "pool"), ("pool_ready", "pool, order ready")):
        records[key]["vs_ceiling"] = med[key] / ceiling
        records[key]["vs_gym"] = med[key] / med["gym"]
        line = (f"{label}: / ({cores} cores x plain loop) = {med[key] / ceiling:.2f} (target >= 0.85); "
                f"/ AsyncVectorEnv = {med[key] / med['gym']:.1f}x (target >= 5x)")
        if "plain_actor" in med:
            # Where instances crowd a process (NLE), this is what the same envs per core allow.
            records[key]["vs_actor_ceiling"] = med[key] / (cores * med["plain_actor"])
            line += (f"; / ({cores} cores x plain loop over one actor's {per_actor} envs) = "
                     f"{records[key]['vs_actor_ceiling']:.2f}")
        if "puffer" in med:
            records[key]["vs_puffer"] = med[key] / med["puffer"]
            line += f"; / PufferLib Multiprocessing = {med[key] / med['puffer']:.1f}x (target >= 3x)"
        console.print(line, soft_wrap=True)
    if skipped is not None:
        console.print(f"PufferLib skipped: {skipped}")
    console.print(f"pack + unpack / env step: {med['pack']:.1%} (target <= 5%)")
    out = list(records.values())
    if sizing:
        for key in ("pool", "pool_ready", "plain_actor", "vector", "vector_python", "pack", "puffer"):
            if key in records:
                records[key]["sizing"] = {str(k): v for k, v in sizing.items()}
    if skipped is not None:
        out.append({"bench": "emulation", "name": "pufferlib Multiprocessing", "env": env, "skipped": skipped})
    write_json(json_path, out)
    return out


def _median(values: list[float]) -> float:
    import statistics

    return statistics.median(values)
