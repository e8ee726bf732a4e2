"""`appliance bench api`: the pool used from your own code, against what you would use instead.

(a) SB3's PPO (RL-Zoo CartPole-v1 settings, 8 envs, 1 torch thread) for a fixed number
    of timesteps, its envs behind our pool (the C CartPole, and Gymnasium's CartPole-v1
    emulated, each in 2 actors; the C CartPole in this process, ``SerialPool``) and behind
    SB3's ``SubprocVecEnv`` (8 processes), runs interleaved; steps/s is timesteps over wall
    time, training included. Each entry also splits its wall time into the vector env's
    calls, SB3's update and the rest of SB3's rollout: SB3's own share bounds what any
    vector env can gain (with SubprocVecEnv's env share e, at most 1 / (1 - e)).
(b) Pool startup to first batch (2 actors, C CartPole): constructor, ``async_reset``,
    first ``recv``, each run in a fresh interpreter, so the fork server's own start is in
    the cold figure; warm is a second pool in the same process. The reference is the pool
    as it was, on ``multiprocessing``'s fork server (which re-runs the caller's main module
    in every actor), same run, interleaved.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import subprocess
import sys
from typing import Any

from rich.console import Console

from actors import ActorPool
from actors.worker import ActorConfig

from .common import progress, table, write_json

TIMESTEPS = 16_384
STARTUP_CODE = """
import json, time
from actors import ActorPool
from appliance.bench.api import ForkServerReferencePool
cls = {"ours": ActorPool, "reference": ForkServerReferencePool}[{kind!r}]
out = []
for _ in range(2):
    start = time.perf_counter()
    with cls("cartpole", num_envs=64, num_actors=2, batch_size=64, seed=0) as pool:
        pool.async_reset(0)
        pool.recv()
        out.append(time.perf_counter() - start)
print(json.dumps(out))
"""


class _MultiprocessingChild:
    def __init__(self, proc: Any) -> None:
        self._proc, self.pid = proc, proc.pid
        self.pidfd = os.pidfd_open(proc.pid)

    @property
    def exitcode(self) -> int | None:
        return self._proc.exitcode

    def join(self, timeout: float | None = None) -> None:
        self._proc.join(timeout)

    def kill(self) -> None:
        self._proc.kill()


_CONTEXT: Any = None


class ForkServerReferencePool(ActorPool):
    """The pool on ``multiprocessing``'s fork server, as it started actors before its own."""

    def _launch(self, cfg: ActorConfig) -> Any:
        global _CONTEXT
        if _CONTEXT is None:
            _CONTEXT = multiprocessing.get_context("forkserver")
            _CONTEXT.set_forkserver_preload(["numpy", "zmq", "envs", "actors.worker"])
        from actors.worker import main

        proc = _CONTEXT.Process(target=main, args=(cfg,), daemon=True)
        proc.start()
        return _MultiprocessingChild(proc)


def startup_seconds(kind: str) -> list[float]:
    """[cold, warm] seconds to first batch, in a fresh interpreter."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", STARTUP_CODE.replace("{kind!r}", repr(kind))],
                          capture_output=True, text=True, timeout=120, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def sb3_run(venv_kind: str, seed: int) -> dict[str, Any]:
    """One SB3 PPO run; ``venv_kind``: ``subproc``, ``serial:<env>`` (our SerialPool) or an env for our ActorPool."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    from actors.sb3 import SB3VecEnv
    from actors.serial import SerialPool

    from .train import ZOO_CARTPOLE, sb3

    n = ZOO_CARTPOLE["n_envs"]
    if venv_kind == "subproc":
        venv = make_vec_env("CartPole-v1", n_envs=n, seed=seed, vec_env_cls=SubprocVecEnv)
    elif venv_kind.startswith("serial:"):
        venv = SB3VecEnv(SerialPool(venv_kind[len("serial:"):], n, seed=seed))
    else:
        venv = SB3VecEnv(ActorPool(venv_kind, n, 2, n, seed=seed))
    return sb3(seed, 600.0, threads=1, timesteps=TIMESTEPS, venv=venv, stop_at_target=False)


SB3_ENTRIES = (
    ("sb3-ppo, our pool, C cartpole", "cartpole", "cartpole", "num_envs=8, num_actors=2"),
    ("sb3-ppo, our pool, CartPole-v1 emulated", "CartPole-v1", "CartPole-v1", "num_envs=8, num_actors=2"),
    ("sb3-ppo, our SerialPool, C cartpole", "serial:cartpole", "cartpole", "num_envs=8, in process"),
    ("sb3-ppo, SB3 SubprocVecEnv", "subproc", "CartPole-v1", "num_envs=8, num_actors=8"),
)


def run(runs: int, json_path: str | None, console: Console) -> list[dict[str, Any]]:
    rates: dict[str, list[float]] = {name: [] for name, *_ in SB3_ENTRIES}
    splits: dict[str, list[dict[str, float]]] = {name: [] for name, *_ in SB3_ENTRIES}
    starts: dict[str, list[list[float]]] = {"ours": [], "reference": []}
    with progress(console) as bar:
        task = bar.add_task("SB3 PPO through our pool vs SubprocVecEnv; pool startup", total=runs)
        for i in range(runs):
            for name, kind, _, _ in SB3_ENTRIES:
                result = sb3_run(kind, seed=i)
                rates[name].append(result["steps_per_second"])
                splits[name].append(result["split"])
            for kind in ("reference", "ours"):
                starts[kind].append(startup_seconds(kind))
            bar.advance(task)
    records: list[dict[str, Any]] = []
    subproc = statistics.median(rates[SB3_ENTRIES[-1][0]])
    for name, _, env, layout in SB3_ENTRIES:
        split = {part: statistics.median(sp[part] for sp in splits[name]) for part in splits[name][0]}
        rec: dict[str, Any] = {"bench": "api", "name": name, "env": env, "layout": layout, "timesteps": TIMESTEPS,
               "steps_per_second": statistics.median(rates[name]), "runs": rates[name], "split": split}
        if name != SB3_ENTRIES[-1][0]:
            rec["vs_subproc"] = rec["steps_per_second"] / subproc
        records.append(rec)
    reference = {which: statistics.median(r[which] for r in starts["reference"]) for which in (0, 1)}
    for kind in ("ours", "reference"):
        for which, label in ((0, "cold"), (1, "warm")):
            values = [r[which] for r in starts[kind]]
            median = statistics.median(values)
            records.append({
                "bench": "api", "name": f"startup to first batch, {label}, "
                + ("our fork server" if kind == "ours" else "multiprocessing fork server (before)"),
                "env": "cartpole", "layout": "num_envs=64, num_actors=2", "steps_per_second": median,
                "unit": "s", "runs": values, "vs_before": median / reference[which],
            })
    rows = [[r["name"], f"{r['steps_per_second']:,.3f} {r.get('unit', 'steps/s')}",
             f"{r['vs_subproc']:.2f}x" if "vs_subproc" in r else (f"{r['vs_before']:.2f}x" if "vs_before" in r
                                                                  else "")]
            for r in records]
    console.print(table(f"the pool from your own code (median of {runs} runs)", ["entry", "median", "ratio"], rows))
    for rec in records[:len(SB3_ENTRIES)]:
        sp = rec["split"]
        console.print(f"{rec['name']}: wall time env {sp['env']:.0%}, SB3 update {sp['learn']:.0%}, "
                      f"SB3 rollout rest (policy forward, buffer) {sp['rollout_other']:.0%}", soft_wrap=True)
    env_share = records[len(SB3_ENTRIES) - 1]["split"]["env"]
    console.print(f"with SubprocVecEnv, the env is {env_share:.0%} of SB3's wall time: a vector env that cost "
                  f"nothing would make SB3 {1 / max(1e-9, 1 - env_share):.2f}x faster, no more", soft_wrap=True)
    write_json(json_path, records)
    return records
