"""Stand-in for `appliance train --ranks 2` until the learner lands: real exporters fed by real envs.

Each rank is a process serving its exporter on ``--metrics-port + rank``,
stepping ``envs.make("cartpole")`` with random actions, timing its phases,
reporting plausible PPO numbers, watching one real actor process and a real
/dev/shm arena segment. It works a fifth of the time and sleeps the rest so it
stays light on a shared machine. SIGTERM stops everything and cleans up.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import signal
import sys
import time
from multiprocessing import shared_memory

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import envs  # noqa: E402
from monitoring import MetricsExporter  # noqa: E402

ARENA_BYTES = 1 << 20


def actor(seconds: float) -> None:
    """A real process to watch: steps an env at a low duty cycle until killed or timed out."""
    env = envs.make("cartpole", num_envs=16, seed=1)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        env.step(np.random.randint(0, 2, size=env.actions.shape))
        time.sleep(0.01)


def _exit_on_sigterm(*_: object) -> None:
    raise SystemExit(0)  # unwinds through the finally below; taking a lock in a handler could deadlock


def rank_main(rank: int, port: int, run: str, seconds: float) -> None:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    arena = shared_memory.SharedMemory(create=True, size=ARENA_BYTES)
    child = mp.Process(target=actor, args=(seconds,), daemon=True)
    child.start()
    exporter = None
    try:
        exporter = MetricsExporter(port, "127.0.0.1", rank=rank, local_rank=rank, env="cartpole", run=run,
                                   sample_interval=0.5)
        exporter.attach_actors({"0": child.pid})
        exporter.set_arena(f"/dev/shm/{arena.name}")
        env = envs.make("cartpole", num_envs=64, seed=rank)
        rng = np.random.default_rng(rank)
        deadline = time.monotonic() + seconds
        parent = os.getppid()
        updates = 0
        while time.monotonic() < deadline and os.getppid() == parent:
            start = time.perf_counter()
            for _ in range(32):
                t0 = time.perf_counter()
                actions = rng.integers(0, 2, size=env.actions.shape)  # stands in for inference
                t1 = time.perf_counter()
                env.step(actions)
                t2 = time.perf_counter()
                exporter.add_phase("inference", t1 - t0)
                exporter.add_phase("env_wait", t2 - t1)
            exporter.add_steps(32 * env.num_agents)
            exporter.observe_episodes(env.episode_stats())
            t3 = time.perf_counter()
            updates += 1
            decay = 1.0 / (1.0 + 0.01 * updates)
            exporter.set_losses({
                "policy_loss": -0.01 * decay, "value_loss": 20.0 * decay, "entropy": 0.69 * decay,
                "approx_kl": 0.01 * decay, "clip_fraction": 0.1 * decay, "learning_rate": 2.5e-4 * decay,
                "explained_variance": 1.0 - decay,
            })
            exporter.set_restarts(0)
            exporter.add_phase("learn", time.perf_counter() - t3)
            busy = time.perf_counter() - start
            exporter.set_rate(32 * env.num_agents / max(busy * 5, 1e-9))
            t4 = time.perf_counter()
            time.sleep(max(busy * 4, 0.05))  # busy a fifth of the time at most
            exporter.add_phase("other", time.perf_counter() - t4)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the cleanup short
        if exporter is not None:
            exporter.close()
        child.terminate()
        child.join(5)
        arena.close()
        arena.unlink()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics-port", type=int, required=True)
    parser.add_argument("--run", required=True)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=120.0, help="stop by itself after this long")
    args = parser.parse_args()
    ranks = [mp.Process(target=rank_main, args=(r, args.metrics_port, args.run, args.seconds))
             for r in range(args.ranks)]
    signal.signal(signal.SIGTERM, lambda *_: [p.terminate() for p in ranks if p.is_alive()])
    for p in ranks:
        p.start()
    for p in ranks:
        p.join(args.seconds + 10)
    return max((p.exitcode or 0) for p in ranks)


if __name__ == "__main__":
    sys.exit(main())
