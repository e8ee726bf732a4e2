"""`appliance bench remote`: the remote pool (actor hosts over ZeroMQ) against the local pool, same run.

Two actor hosts run `appliance actors serve` in their own network namespaces (veth links,
:mod:`appliance.bench.netns`), one core each, behind :mod:`appliance.bench.relay`, which
holds every chunk ``delay`` ms each way (a round trip gains 2 x delay). ``tc netem`` would
be the usual tool; this machine's kernel has no ``sch_netem``, which the bench checks and
says. The local peer is ``actors.ActorPool`` on the same two cores with the same envs,
batch and number of groups in flight.

Two drivers, each on every pool:

- ``policy``: the learner's rollout (:class:`learner.rollout.Rollout`, the env's CPU
  policy, one torch thread) collecting steps, no updates. This is what a training run
  sees: while the policy acts on one group, the others are on the network.
- ``no-op``: constant actions, recv/send only. The transport's ceiling: with nothing to
  hide it behind, the round trip itself bounds each group.

Every pool stays open and the runs are interleaved (run 1 of every entry, then run 2...),
so load on a shared machine falls on all of them alike; ratios are of medians measured
in the same run.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from .common import human, progress, record, table, timed_rate, write_json
from .netns import Namespace, Relay, netem_available, unavailable

HOSTS = 2
NETEM_NOTE = ("tc netem is unavailable on this kernel (no sch_netem module), so the latency is added in user "
              "space by a delay relay (appliance/bench/relay.py) between the namespaces and the learner")


class _Driver:
    """One pool under both drivers."""

    def __init__(self, pool: Any, config: dict[str, Any], steps: int) -> None:
        import torch

        from learner.policy import make_policy
        from learner.rollout import Rollout

        self.pool = pool
        policy = make_policy(config, pool.single_observation_space, pool.single_action_space)
        self.rollout = Rollout(policy, pool, steps, torch.device("cpu"))
        self.rollout.restart(1)
        self.actions = np.zeros(pool.batch_rows, np.int32)

    def policy(self, seconds: float) -> float:
        rollout = self.rollout
        return timed_rate(lambda: (rollout.collect(), rollout.T * rollout.N)[1], seconds)

    def noop(self, seconds: float) -> float:
        pool, actions = self.pool, self.actions

        def one() -> int:
            ids = pool.recv()[5]
            pool.send(actions)
            return len(ids)

        # The rollout may hold a batch it received (one group per pool) or none; restart cleanly.
        self.rollout.restart(2)
        rate = timed_rate(one, seconds)
        self.rollout.restart(3)
        return rate


def run(env: str, seconds: float, runs: int, delays: list[float], json_path: str | None, console: Console,
        num_envs: int = 1024, batches: int = 4, steps: int = 16) -> list[dict[str, Any]]:
    """Measures, prints and writes the records; ValueError (one sentence) where namespaces cannot be made."""
    why = unavailable()
    if why:
        raise ValueError(f"bench remote runs its actor hosts in network namespaces: {why}")
    import torch

    from actors import ActorPool
    from actors.remote_pool import RemotePool
    from actors.remote_wire import keys_new
    from learner import config as C

    from ..train import free_port

    torch.set_num_threads(1)
    netem = netem_available()
    note = "tc netem works here, but the relay is used for the same latency everywhere" if netem else NETEM_NOTE
    console.print(f"[bold]{note}[/bold]", highlight=False, soft_wrap=True)
    config = C.for_device(C.load(env), "cpu")
    groups = HOSTS * batches
    cores = sorted(os.sched_getaffinity(0))[:HOSTS]
    keydir = Path(tempfile.mkdtemp(prefix="appliance-bench-keys-"))
    keys_new(keydir / "k", clients=HOSTS)
    keys = str(keydir / "k")
    spaces: list[Namespace] = []
    relays: list[Relay] = []
    opened: list[Any] = []
    entries: list[tuple[str, float | None, _Driver]] = []
    try:
        spaces = [Namespace(i + 1) for i in range(HOSTS)]
        pools = []
        for delay in delays:
            port = free_port()
            pool = RemotePool(env, num_envs, HOSTS, f"tcp://127.0.0.1:{port}", seed=1, batches=batches,
                              keys=keys, join_timeout=120.0)
            opened.append(pool)
            for i, ns in enumerate(spaces):
                relay = Relay(ns.here, f"127.0.0.1:{port}", delay)
                relays.append(relay)
                ns.serve(f"tcp://{relay.address}", f"host{i + 1}-{delay:g}ms", keys, f"client-{i + 1}",
                         [cores[i % len(cores)]], extra=("--env", env))
            pools.append((delay, pool))
        local = ActorPool(env, num_envs, len(cores), num_envs // groups, seed=1, cores=cores)
        opened.append(local)
        entries.append(("local pool", None, _Driver(local, config, steps)))
        for delay, pool in pools:
            entries.append((f"remote pool, +{delay:g} ms each way", delay, _Driver(pool, config, steps)))
        rates: dict[tuple[str, str], list[float]] = {(name, d): [] for name, _, _ in entries
                                                     for d in ("policy", "no-op")}
        with progress(console) as bar:
            task = bar.add_task("remote vs local", total=runs * len(rates))
            for _ in range(runs):
                for name, _, driver in entries:
                    rates[(name, "policy")].append(driver.policy(seconds))
                    bar.advance(task)
                    rates[(name, "no-op")].append(driver.noop(seconds))
                    bar.advance(task)
        rtts = {name: stats.rtt_seconds for _, pool in pools for name, stats in pool.host_stats().items()}
    finally:
        for pool in opened:
            pool.close()
        for relay in relays:
            relay.close()
        for ns in spaces:
            ns.close()
        for path in sorted(keydir.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        keydir.rmdir()
    records, rows = [], []
    layout = {"env": env, "num_envs": num_envs, "groups": groups, "hosts": HOSTS, "batches_per_host": batches,
              "cores": len(cores), "latency": "relay" if not netem else "relay (netem available)"}
    for name, entry_delay, _ in entries:
        for mode in ("policy", "no-op"):
            runs_ = rates[(name, mode)]
            base = statistics.median(rates[("local pool", mode)])
            ratio = statistics.median(runs_) / base
            extra: dict[str, Any] = {"driver": mode, "delay_ms_each_way": entry_delay, **layout}
            if entry_delay is not None:
                extra["ratio_to_local"] = ratio
                extra["rtt_seconds"] = {h: r for h, r in rtts.items() if h.endswith(f"-{entry_delay:g}ms")}
            records.append(record("remote", f"{name}, {mode}", runs_, **extra))
            rows.append([f"{name}, {mode}", human(statistics.median(runs_)),
                         "" if entry_delay is None else f"{ratio:.2f}"])
    console.print(table(f"{env}: remote pool ({HOSTS} hosts x {batches} batches in flight) vs local pool, "
                        f"{num_envs} envs, {groups} groups, {time.strftime('%Y-%m-%d')}",
                        ["entry", "agent-steps/s", "remote / local"], rows))
    write_json(json_path, records)
    return records
