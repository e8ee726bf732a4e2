"""`appliance bench api`: the pool used from your own code, against what you would use instead.

(a) SB3's PPO (1 torch thread) for a fixed number of timesteps, its envs behind our pool
    (the C CartPole, and Gymnasium's CartPole-v1 emulated, each in 2 actors; the C CartPole
    in this process, ``SerialPool``) and behind SB3's own ``SubprocVecEnv`` (a process per
    env) and ``DummyVecEnv`` (every env in this process, SB3's default), runs interleaved;
    steps/s is timesteps over wall time, training included. Two settings: RL-Zoo's for
    CartPole-v1 (8 envs, 20 epochs over each 256-step rollout: SB3's update is most of the
    time) and a wide one (64 envs, 4 epochs over 4,096-step rollouts, minibatches of 1,024:
    how one trains when env throughput matters). Each entry also splits its wall time into
    the vector env's calls, SB3's update and the rest of SB3's rollout: SB3's own share
    bounds what any vector env can gain (with the peer's env share e, at most 1 / (1 - e)).
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

from actors import ActorPool, forkserver
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


def _settings() -> dict[str, dict[str, Any]]:
    from .train import ZOO_CARTPOLE

    wide = {**ZOO_CARTPOLE, "n_envs": 64, "n_steps": 64, "batch_size": 1024, "n_epochs": 4}
    return {"zoo": ZOO_CARTPOLE, "wide": wide}


def sb3_run(venv_kind: str, seed: int, setting: str = "zoo") -> dict[str, Any]:
    """One SB3 PPO run; ``venv_kind``: ``subproc``, ``dummy`` (SB3's), ``serial:<env>`` (our SerialPool) or
    an env for our ActorPool (2 actors)."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    from actors.sb3 import SB3VecEnv
    from actors.serial import SerialPool

    from .train import sb3

    hp = _settings()[setting]
    n = hp["n_envs"]
    if venv_kind in ("subproc", "dummy"):
        cls = SubprocVecEnv if venv_kind == "subproc" else DummyVecEnv
        with forkserver.main_module_hidden():  # SubprocVecEnv's processes, from a script without a main guard
            venv = make_vec_env("CartPole-v1", n_envs=n, seed=seed, vec_env_cls=cls)
    elif venv_kind.startswith("serial:"):
        venv = SB3VecEnv(SerialPool(venv_kind[len("serial:"):], n, seed=seed))
    else:
        venv = SB3VecEnv(ActorPool(venv_kind, n, 2, n, seed=seed))
    timesteps = max(TIMESTEPS, 4 * n * hp["n_steps"])
    return sb3(seed, 600.0, threads=1, timesteps=timesteps, venv=venv, stop_at_target=False, hp=hp)


# (name, venv kind, env, layout); the peers last: the ratios are to them
_KINDS = (
    ("our pool, C cartpole", "cartpole", "cartpole", "{n} envs, 2 actors"),
    ("our pool, CartPole-v1 emulated", "CartPole-v1", "CartPole-v1", "{n} envs, 2 actors"),
    ("our SerialPool, C cartpole", "serial:cartpole", "cartpole", "{n} envs, in process"),
    ("SB3 DummyVecEnv", "dummy", "CartPole-v1", "{n} envs, in process"),
    ("SB3 SubprocVecEnv", "subproc", "CartPole-v1", "{n} envs, {n} processes"),
)
PEERS = ("dummy", "subproc")
SB3_ENTRIES = tuple(
    (f"sb3-ppo {setting}, {name}", kind, env, layout.format(n=n), setting)
    for setting, n in (("zoo", 8), ("wide", 64))
    for name, kind, env, layout in _KINDS
)


def run(runs: int, json_path: str | None, console: Console) -> list[dict[str, Any]]:
    rates: dict[str, list[float]] = {name: [] for name, *_ in SB3_ENTRIES}
    splits: dict[str, list[dict[str, float]]] = {name: [] for name, *_ in SB3_ENTRIES}
    steps: dict[str, int] = {}
    starts: dict[str, list[list[float]]] = {"ours": [], "reference": []}
    with progress(console) as bar:
        task = bar.add_task("SB3 PPO through our pool vs SB3's vector envs; pool startup", total=runs)
        for i in range(runs):
            for name, kind, _, _, setting in SB3_ENTRIES:
                result = sb3_run(kind, seed=i, setting=setting)
                rates[name].append(result["steps_per_second"])
                splits[name].append(result["split"])
                steps[name] = result["agent_steps"]
            for kind in ("reference", "ours"):
                starts[kind].append(startup_seconds(kind))
            bar.advance(task)
    records: list[dict[str, Any]] = []
    peer = {(setting, kind): statistics.median(rates[name])
            for name, kind, _, _, setting in SB3_ENTRIES if kind in PEERS}
    for name, kind, env, layout, setting in SB3_ENTRIES:
        split = {part: statistics.median(sp[part] for sp in splits[name]) for part in splits[name][0]}
        rec: dict[str, Any] = {"bench": "api", "name": name, "env": env, "layout": layout, "setting": setting,
               "sb3": {k: v for k, v in _settings()[setting].items() if k != "n_timesteps"},
               "timesteps": steps[name], "steps_per_second": statistics.median(rates[name]), "runs": rates[name],
               "split": split}
        if kind not in PEERS:
            rec["vs_subproc"] = rec["steps_per_second"] / peer[(setting, "subproc")]
            rec["vs_dummy"] = rec["steps_per_second"] / peer[(setting, "dummy")]
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
    def ratio(r: dict[str, Any], key: str) -> str:
        return f"{r[key]:.2f}x" if key in r else ""

    rows = [[r["name"], f"{r['steps_per_second']:,.3f} {r.get('unit', 'steps/s')}", ratio(r, "vs_subproc"),
             ratio(r, "vs_dummy") or ratio(r, "vs_before")] for r in records]
    console.print(table(f"the pool from your own code (median of {runs} runs)",
                        ["entry", "median", "vs SubprocVecEnv", "vs DummyVecEnv / before"], rows))
    for rec in records[:len(SB3_ENTRIES)]:
        sp = rec["split"]
        console.print(f"{rec['name']}: wall time env {sp['env']:.0%}, SB3 update {sp['learn']:.0%}, "
                      f"SB3 rollout rest (policy forward, buffer) {sp['rollout_other']:.0%}", soft_wrap=True)
    for rec in records[:len(SB3_ENTRIES)]:
        if rec["name"].endswith("SubprocVecEnv"):
            share = rec["split"]["env"]
            console.print(f"{rec['setting']}: with SubprocVecEnv the env is {share:.0%} of SB3's wall time, so a "
                          f"vector env that cost nothing would make SB3 {1 / max(1e-9, 1 - share):.2f}x faster, "
                          "no more", soft_wrap=True)
    write_json(json_path, records)
    return records
