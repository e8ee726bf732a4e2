"""`appliance bench actors`: the actor pool against the raw C loop and its peers, same cores.

Entries: the raw C loop on one core and on every core at once (one pinned process per
core, the pool's envs per actor each: the pool's true ceiling on these cores, since
cores share caches and memory bandwidth); the pool with a no-op policy (constant
actions, recv/send loop) for 1..cores actors and for 4x more actors than cores, both
with the same total envs and with the same envs per actor; the pool in order "ready"
(recv takes whichever group is ready first, so actors never wait for each other) with
batches of half an actor's envs: as many actors as cores (a group is one part of one
actor) and 4x more (a group is whole actors); and, when installed,
EnvPool's and Gymnasium AsyncVectorEnv's CartPole-v1 (the peers of the design
targets). ``--autotune`` measures candidate layouts and saves the fastest.

Envs per actor: ``--envs-per-actor``, else enough that stepping one part of an actor's
envs (half of them: the pool keeps two batches in flight) takes about
:data:`PART_SECONDS` on this core, so the per-batch doorbell is a small share.

The raw loops and the pool entries stay open together and their runs are interleaved
(run 1 of every entry, then run 2, ...), so load from other processes on a shared
machine falls on all of them alike. Besides agent-steps/s, each entry reports the CPU
time it burned per agent-step (every process and thread it owns): on a busy machine
that is the steadier measure of the pool's overhead.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import psutil
from rich.console import Console

import envs
from actors import autotune, forkserver

from .common import async_vector_rates, human, pinned, progress, record, table, timed_rate, timed_rates, write_json

PEER_ENV = "CartPole-v1"
ENVPOOL_ENVS = 8192  # EnvPool's rate is flat well before this; more only costs memory
PART_SECONDS = 5e-4  # the step time one part of an actor's envs should take


def envs_per_actor(env: str) -> int:
    """A power of two: two parts of it take about 2 x PART_SECONDS on this core (at least 1024)."""
    step_s = autotune.step_seconds(env)
    return max(1024, 1 << round(np.log2(max(1.0, 2 * PART_SECONDS / step_s))))


class _RawLoop:
    """The raw C loop on one core: ``step()`` in place, constant actions, nothing else."""

    def __init__(self, env: str, num_envs: int) -> None:
        self.env = envs.make(env, num_envs=num_envs, seed=0)
        space = self.env.single_action_space
        self.env.actions[...] = np.stack([space.sample() for _ in range(self.env.num_agents)])

    def run(self, seconds: float) -> tuple[float, float]:
        """(agent-steps/s, CPU ns per agent-step) over ``seconds``."""
        e = self.env
        with pinned({min(os.sched_getaffinity(0))}):
            e.step()
            cpu, wall = time.thread_time(), time.perf_counter()
            rate = timed_rate(lambda: (e.step(), e.num_agents)[1], seconds)
            cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
        return rate, cpu / (rate * wall) * 1e9

    def close(self) -> None:
        self.env.close()


def _raw_core(conn: Any, env: str, num_envs: int, core: int) -> None:
    """One core of :class:`_RawCores`: answers ``seconds`` with ``(agent-steps, CPU s, wall s)``."""
    os.sched_setaffinity(0, {core})
    e = _RawLoop(env, num_envs).env
    e.step()
    conn.send("ready")
    while True:
        seconds = conn.recv()
        if seconds is None:
            break
        cpu, wall, steps = time.thread_time(), time.perf_counter(), 0
        while time.perf_counter() - wall < seconds:
            e.step()
            steps += e.num_agents
        conn.send((steps, time.thread_time() - cpu, time.perf_counter() - wall))
    e.close()


class _RawCores:
    """The raw C loop on every core at once: one pinned process per core, started together."""

    def __init__(self, env: str, num_envs: int, cores: list[int]) -> None:
        ctx = multiprocessing.get_context("forkserver")
        self.conns, self.procs = [], []
        try:
            for core in cores:
                mine, theirs = ctx.Pipe()
                proc = ctx.Process(target=_raw_core, args=(theirs, env, num_envs, core), daemon=True)
                with forkserver.main_module_hidden():  # a bench from a script without a main guard
                    proc.start()
                self.conns.append(mine)
                self.procs.append(proc)
            for conn in self.conns:
                self._answer(conn, 60.0)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _answer(conn: Any, timeout: float) -> Any:
        if not conn.poll(timeout):
            raise RuntimeError(f"a raw-loop process sent nothing for {timeout:g} s")
        return conn.recv()

    def run(self, seconds: float) -> tuple[float, float]:
        """(agent-steps/s summed over cores, CPU ns per agent-step) over ``seconds``."""
        for conn in self.conns:
            conn.send(seconds)
        answers = [self._answer(conn, seconds + 30.0) for conn in self.conns]
        steps = sum(a[0] for a in answers)
        rate = sum(a[0] / a[2] for a in answers)
        return rate, sum(a[1] for a in answers) / steps * 1e9

    def close(self) -> None:
        for conn in self.conns:
            try:
                conn.send(None)
            except OSError:
                pass
        for proc in self.procs:
            proc.join(5.0)
            if proc.exitcode is None:
                proc.kill()
                proc.join(1.0)


def _pool_loop(env: str, layout: dict[str, Any]) -> Callable[[], _PoolLoop]:
    """Opens the pool loop of one layout when called."""
    return lambda: _PoolLoop(env, {k: layout[k] for k in autotune.LAYOUT_KEYS}, order=layout["order"])


class _PoolLoop:
    """The pool with a no-op policy; its CPU counts the caller and every actor process."""

    def __init__(self, env: str, layout: dict[str, int], **params: Any) -> None:
        self.loop = autotune.PoolLoop(env, layout, **params)
        self.procs = [psutil.Process(os.getpid())] + [psutil.Process(p) for p in self.loop.pool.pids]

    def _cpu(self) -> float:
        return sum(sum(p.cpu_times()[:2]) for p in self.procs)

    def run(self, seconds: float) -> tuple[float, float]:
        """(agent-steps/s, CPU ns per agent-step) over ``seconds``."""
        cpu, wall = self._cpu(), time.perf_counter()
        rate = self.loop.run(seconds)
        cpu, wall = self._cpu() - cpu, time.perf_counter() - wall
        return rate, cpu / (rate * wall) * 1e9

    def close(self) -> None:
        self.loop.close()


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

    rates = timed_rates(one, seconds, runs, on_run)
    e.close()
    return rates


def _gym_async_rates(num_envs: int, seconds: float, runs: int, on_run: Callable) -> list[float]:
    import gymnasium

    return async_vector_rates(lambda: gymnasium.make(PEER_ENV), num_envs, seconds, runs, on_run)


def _importable(name: str) -> bool:
    try:
        __import__(name)
    except Exception:  # noqa: BLE001 - a broken optional peer is simply skipped
        return False
    return True


def _pool_layout(num_envs: int, actors: int) -> dict[str, Any]:
    # Two groups (each actor's envs in two parts) when they split evenly, else synchronous.
    batch = num_envs // 2 if (num_envs // actors) % 2 == 0 else num_envs
    return {"num_envs": num_envs, "num_actors": actors, "batch_size": batch, "order": "turn"}


def _ready_layout(num_envs: int, actors: int, batch: int) -> dict[str, Any]:
    # Order "ready": a group is one part of one actor (two parts each) or whole actors.
    return {"num_envs": num_envs, "num_actors": actors, "batch_size": batch, "order": "ready"}


def run(env: str, seconds: float, runs: int, json_path: str | None, console: Console,
        per_actor: int | None = None) -> list[dict]:
    allowed = sorted(os.sched_getaffinity(0))
    cores = len(allowed)
    per_core = per_actor or envs_per_actor(env)
    num_envs = per_core * cores
    crowded = 4 * cores
    few = max(1, num_envs // crowded)  # envs per actor when 4x the actors share the same envs
    # (name, layout, opener): all opened together, then measured interleaved.
    entries: list[tuple[str, dict[str, Any], Callable[[], Any]]] = [
        ("raw C loop, 1 core", {"num_envs": per_core, "num_actors": 0, "batch_size": per_core},
         lambda: _RawLoop(env, per_core)),
        (f"raw C loop, {cores} cores at once", {"num_envs": num_envs, "num_actors": 0, "batch_size": per_core},
         lambda: _RawCores(env, per_core, allowed)),
        (f"raw C loop, 1 core, {few} envs", {"num_envs": few, "num_actors": 0, "batch_size": few},
         lambda: _RawLoop(env, few)),
    ]
    layouts = [(f"pool, {actors} actors", _pool_layout(num_envs, actors)) for actors in range(1, cores + 1)]
    layouts.append((f"pool, {crowded} actors", _pool_layout(num_envs, crowded)))
    layouts.append((f"pool, {crowded} actors, {per_core} envs each", _pool_layout(per_core * crowded, crowded)))
    ready_batch = max(1, per_core // 2)
    layouts.append((f"pool, {cores} actors, order ready", _ready_layout(num_envs, cores, ready_batch)))
    layouts.append((f"pool, {crowded} actors, order ready", _ready_layout(num_envs, crowded, ready_batch)))
    entries += [
        (name, lay, _pool_loop(env, lay)) for name, lay in layouts
    ]
    records = []
    with progress(console) as bar:
        tasks = [bar.add_task(name, total=runs) for name, _, _ in entries]
        loops: list[Any] = []
        results: list[list[tuple[float, float]]] = [[] for _ in entries]
        try:
            for _, _, opener in entries:
                loops.append(opener())
            for _ in range(runs):
                for i, loop in enumerate(loops):
                    results[i].append(loop.run(seconds))
                    bar.advance(tasks[i])
        finally:
            for loop in loops:
                loop.close()
        for (name, layout, _), res in zip(entries, results, strict=True):
            records.append(record("actors", name, [rate for rate, _ in res], env=env, cores=cores,
                                  cpu_ns_per_step=statistics.median(cpu for _, cpu in res), **layout))
        peers: list[tuple[str, dict[str, Any], Callable[[Callable], list[float]]]] = []
        if env == "cartpole" and _importable("envpool"):
            peer_envs = min(num_envs, ENVPOOL_ENVS)
            peer_layout = {"num_envs": peer_envs, "num_actors": cores, "batch_size": peer_envs // 2}
            peers.append((f"envpool {PEER_ENV}", peer_layout,
                          lambda tick: _envpool_rates(peer_envs, cores, seconds, runs, tick)))
        if env == "cartpole":
            gym_envs = 2 * cores
            peers.append((f"gymnasium AsyncVectorEnv {PEER_ENV}",
                          {"num_envs": gym_envs, "num_actors": gym_envs, "batch_size": gym_envs},
                          lambda tick: _gym_async_rates(gym_envs, seconds, runs, tick)))
        for name, layout, measure in peers:
            task = bar.add_task(name, total=runs)
            rates = measure(lambda t=task: bar.advance(t))
            records.append(record("actors", name, rates, env=env, cores=cores, **layout))
    rows = [[r["name"], str(r["num_envs"]), str(r["num_actors"]), str(r["batch_size"]),
             human(r["steps_per_second"]), human(min(r["runs"])), human(max(r["runs"])),
             f"{r['cpu_ns_per_step']:.1f}" if "cpu_ns_per_step" in r else ""] for r in records]
    console.print(table(f"actor pool throughput ({env}, {cores} cores), agent-steps/s, median of {runs} "
                        "interleaved runs",
                        ["entry", "envs", "actors", "batch", "median", "min", "max", "CPU ns/step"], rows))
    _print_ratios(records, cores, per_core, console)
    write_json(json_path, records)
    return records


def _print_ratios(records: list[dict], cores: int, per_core: int, console: Console) -> None:
    by_name = {r["name"]: r for r in records}
    rate = {name: r["steps_per_second"] for name, r in by_name.items()}
    raw, pool = by_name["raw C loop, 1 core"], by_name[f"pool, {cores} actors"]
    ready = by_name[f"pool, {cores} actors, order ready"]
    together = by_name[f"raw C loop, {cores} cores at once"]
    crowded = 4 * cores
    lines = []
    for label, entry in (("", pool), (", order ready", ready)):
        lines += [
            f"pool ({cores} actors{label}) / raw C loop on the same {cores} cores at once: "
            f"{entry['steps_per_second'] / together['steps_per_second']:.2f} (target >= 0.90)",
            f"CPU per agent-step, raw C loop on {cores} cores / pool ({cores} actors{label}): "
            f"{together['cpu_ns_per_step'] / entry['cpu_ns_per_step']:.2f}",
            f"pool ({cores} actors{label}) / (raw C loop, 1 core) x {cores}: "
            f"{entry['steps_per_second'] / (raw['steps_per_second'] * cores):.2f}",
        ]
    lines += [
        f"pool ({crowded} actors) / pool ({cores} actors), same envs: "
        f"{rate[f'pool, {crowded} actors'] / pool['steps_per_second']:.2f} (target >= 0.70)",
        f"pool ({crowded} actors) / pool ({cores} actors), same envs per actor: "
        f"{rate[f'pool, {crowded} actors, {per_core} envs each'] / pool['steps_per_second']:.2f}",
        f"pool ({crowded} actors, order ready) / pool ({cores} actors, order ready), same envs: "
        f"{rate[f'pool, {crowded} actors, order ready'] / ready['steps_per_second']:.2f} (target >= 0.70)",
    ]
    for name, value in rate.items():
        if name.startswith(("envpool", "gymnasium")):
            lines.append(f"pool ({cores} actors) / {name}: {pool['steps_per_second'] / value:.1f}x")
    for line in lines:
        console.print(line, soft_wrap=True)  # one line each, whatever the terminal's width


def tune(env: str, seconds: float, runs: int, json_path: str | None, console: Console,
         order: str = "turn") -> dict[str, Any]:
    """Measures candidate layouts for ``env`` in ``order``; saves and returns the fastest."""
    cores = len(os.sched_getaffinity(0))
    step_s = autotune.step_seconds(env)
    console.print(f"{env}: {step_s * 1e9:.1f} ns per env step on one core ({human(1 / step_s)} steps/s)")
    records = []
    with progress(console) as bar:
        for layout in autotune.candidates(cores, step_s, order):
            name = f"{layout['num_actors']} actors x {layout['num_envs'] // layout['num_actors']} envs, " \
                   f"batch {layout['batch_size']}"
            task = bar.add_task(name, total=runs)
            rates = autotune.pool_rates(env, layout, seconds, runs, functools.partial(bar.advance, task), order=order)
            records.append(record("actors-autotune", name, rates, env=env, cores=cores, order=order, **layout))
    best = max(records, key=lambda r: r["steps_per_second"])
    rows = [[r["name"], human(r["steps_per_second"]), "best" if r is best else ""] for r in records]
    console.print(table(f"autotune {env} ({cores} cores, order {order}), agent-steps/s, median of {runs} runs",
                        ["layout", "median", ""], rows))
    chosen = {k: best[k] for k in autotune.LAYOUT_KEYS} | {"steps_per_second": best["steps_per_second"]}
    path = autotune.save(env, chosen, cores, order)
    console.print(f"saved {env} layout {chosen} for order {order} to {path}")
    write_json(json_path, records)
    return chosen
