"""`appliance bench train`: PPO on CartPole to a mean return of 475, ours against SB3 in one run.

(a) This project's trainer (``learner/configs/cartpole.toml``), ``runs`` seeded runs:
    training agent-steps/s and seconds until the mean of the last 100 episode
    returns reaches the target; medians reported.
(b) Stable-Baselines3 PPO with the RL-Zoo CartPole-v1 hyperparameters on
    Gymnasium's CartPole-v1 (when the ``bench`` extra is installed): the same two
    numbers, from SB3's own 100-episode window, wall time capped.
(c) Metrics export ON vs OFF, interleaved per seed: ON runs the real per-rank
    exporter (as ``appliance train`` does, samplers included) while a scraper
    fetches ``/metrics`` every second, more often than a typical Prometheus.
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console

from learner import config as configs

from .common import human, progress, table, write_json

TARGET = 475.0
STEP_BUDGET = 1_500_000  # our runs stop at the target; the budget also sets the LR anneal (as in the test)

# RL-Zoo hyperparams/ppo.yml, CartPole-v1 (tuned): n_timesteps 1e5, MlpPolicy.
ZOO_CARTPOLE: dict[str, Any] = {
    "n_envs": 8,
    "n_steps": 32,
    "batch_size": 256,
    "gae_lambda": 0.8,
    "gamma": 0.98,
    "n_epochs": 20,
    "ent_coef": 0.0,
    "learning_rate": 0.001,  # linear to 0
    "clip_range": 0.2,  # linear to 0
    "n_timesteps": 100_000,
}


def ours(
    env: str, seed: int, seconds_limit: float, overrides: list[str] | None = None, metrics: bool = False
) -> dict[str, Any]:
    """One seeded run of this project's trainer until the target return (or its step budget)."""
    from learner.train import train

    from ..train import free_port, make_exporter

    cfg = configs.apply_overrides(
        configs.load(env),
        [f"train.seed={seed}", f"train.target_return={TARGET}", "train.checkpoint_every=0",
         "train.log_every_seconds=1e9",
         f"train.total_steps={STEP_BUDGET}", *(overrides or [])],
    )
    port = free_port() if metrics else 0
    with tempfile.TemporaryDirectory(prefix="appliance-bench-train-") as run_dir:
        with make_exporter(cfg, Path(run_dir), port, "127.0.0.1") as exporter, _scraping(port):
            summary = _with_deadline(lambda: train(cfg, run_dir, live=False, metrics=exporter), seconds_limit)
    return {
        "seed": seed,
        "steps_per_second": summary["steps_per_second"],
        "seconds_to_target": summary.get("seconds_to_target"),
        "agent_steps": summary["agent_steps"],
        "wall_seconds": summary["wall_seconds"],
        "mean_return": summary["mean_return"],
    }


@contextlib.contextmanager
def _scraping(port: int, interval: float = 1.0) -> Iterator[None]:
    """Fetches ``/metrics`` every ``interval`` seconds while the block runs (nothing when port is 0)."""
    if not port:
        yield
        return
    stop = threading.Event()

    def scrape() -> None:
        while not stop.wait(interval):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
                    answer.read()
            except OSError:
                pass  # not serving yet, or shutting down

    thread = threading.Thread(target=scrape, name="bench-scraper", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def _with_deadline(fn: Callable[[], dict[str, Any]], seconds: float) -> dict[str, Any]:
    """Runs ``fn``; a SIGALRM after ``seconds`` stops the trainer as Ctrl-C would (it still summarizes)."""
    import signal

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def sb3_available() -> bool:
    try:
        import stable_baselines3  # noqa: F401
    except ImportError:
        return False
    return True


def sb3(
    seed: int, seconds_limit: float, threads: int = 1, timesteps: int = ZOO_CARTPOLE["n_timesteps"],
    venv: Any = None, stop_at_target: bool = True, hp: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """SB3 PPO, RL-Zoo CartPole-v1 settings (or ``hp``); stops at the target, the timestep budget or the wall cap.

    Runs with ``threads`` torch threads, as many as our trainer's config gives it, so the
    comparison is core for core. ``venv`` (closed here) replaces SB3's own ``DummyVecEnv``
    of ``CartPole-v1``. ``split`` gives the wall time's fractions: ``env`` (the vector env's
    ``step_async`` + ``step_wait`` + ``reset``), ``learn`` (SB3's ``train``, the PPO update)
    and ``rollout_other`` (the rest: SB3's policy forward, rollout buffer and callbacks).
    """
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    hp = ZOO_CARTPOLE if hp is None else hp

    def linear(start: float) -> Callable[[float], float]:
        return lambda remaining: remaining * start  # RL-Zoo's lin_X: X times the progress remaining

    class Watch(BaseCallback):
        """Notes when SB3's last-100-episode mean return reaches the target; enforces the wall cap."""

        def __init__(self) -> None:
            super().__init__()
            self.start = time.perf_counter()
            self.reached: float | None = None
            self.reached_steps: int | None = None
            self.mean = float("nan")

        def _on_step(self) -> bool:
            buffer = self.model.ep_info_buffer
            if buffer is not None and len(buffer) >= 100:
                self.mean = float(sum(info["r"] for info in buffer) / len(buffer))
                if self.mean >= TARGET and self.reached is None:
                    self.reached = time.perf_counter() - self.start
                    self.reached_steps = self.num_timesteps
                    return not stop_at_target
            return time.perf_counter() - self.start < seconds_limit

    if venv is None:
        venv = make_vec_env("CartPole-v1", n_envs=hp["n_envs"], seed=seed)
    model = PPO(
        "MlpPolicy", venv, n_steps=hp["n_steps"], batch_size=hp["batch_size"], gae_lambda=hp["gae_lambda"],
        gamma=hp["gamma"], n_epochs=hp["n_epochs"], ent_coef=hp["ent_coef"],
        learning_rate=linear(hp["learning_rate"]), clip_range=linear(hp["clip_range"]),
        seed=seed, device="cpu", verbose=0,
    )
    spent = {"env": 0.0, "learn": 0.0}
    _time_calls(model, ("train",), spent, "learn")
    _time_calls(venv, ("step_async", "step_wait", "reset"), spent, "env")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    watch = Watch()
    try:
        model.learn(total_timesteps=timesteps, callback=watch)
    finally:
        torch.set_num_threads(before)
        venv.close()
    wall = time.perf_counter() - watch.start
    return {
        "seed": seed,
        "steps_per_second": model.num_timesteps / wall,
        "seconds_to_target": watch.reached,
        "agent_steps": model.num_timesteps,
        "wall_seconds": wall,
        "mean_return": None if watch.mean != watch.mean else watch.mean,
        "split": {"env": spent["env"] / wall, "learn": spent["learn"] / wall,
                  "rollout_other": max(0.0, 1 - (spent["env"] + spent["learn"]) / wall)},
    }


def _time_calls(obj: Any, names: tuple[str, ...], spent: dict[str, float], key: str) -> None:
    """Wraps ``obj``'s methods ``names`` (as instance attributes) to add their wall time to ``spent[key]``."""
    for name in names:
        method = getattr(obj, name)

        def timed(*args: Any, _method: Callable[..., Any] = method, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return _method(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - start

        setattr(obj, name, timed)


def _threads(env: str) -> int:
    """The torch threads our trainer runs with (``train.torch_threads``; 0 = every allowed core)."""
    import os

    return int(configs.load(env)["train"]["torch_threads"]) or len(os.sched_getaffinity(0))


def _summarize(bench_name: str, env: str, runs: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    reached = [r["seconds_to_target"] for r in runs if r["seconds_to_target"] is not None]
    return {
        "bench": "train",
        "name": bench_name,
        "env": env,
        "target_return": TARGET,
        **extra,
        "steps_per_second": statistics.median(r["steps_per_second"] for r in runs),
        "seconds_to_target": statistics.median(reached) if len(reached) == len(runs) else None,
        "reached_target": f"{len(reached)}/{len(runs)}",
        "runs": runs,
    }


def run(
    env: str,
    runs: int,
    seconds_limit: float,
    json_path: str | None,
    console: Console,
    *,
    with_sb3: bool = True,
    with_metrics: bool = True,
    overrides: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Runs (a), (b) and (c) as available, prints a table with ratios, writes JSON records."""
    if env not in configs.config_names():
        raise ValueError(f"--env: no training config for '{env}' (configs: {', '.join(configs.config_names())})")
    do_sb3 = with_sb3 and env == "cartpole" and sb3_available()
    do_metrics = with_metrics
    records: list[dict[str, Any]] = []
    with progress(console) as bar:
        task = bar.add_task(f"appliance PPO on {env}" + (", metrics off/on" if do_metrics else ""),
                            total=runs * (2 if do_metrics else 1))
        mine, with_metrics_on = [], []
        for seed in range(1, runs + 1):  # off and on interleaved per seed, so load drifts hit both
            mine.append(ours(env, seed, seconds_limit, overrides))
            bar.advance(task)
            if do_metrics:
                with_metrics_on.append(ours(env, seed, seconds_limit, overrides, metrics=True))
                bar.advance(task)
        records.append(_summarize("appliance-ppo", env, mine, pool=configs.load(env)["pool"]["kind"], metrics="off"))
        if do_metrics:
            records.append(_summarize("appliance-ppo-metrics-on", env, with_metrics_on, metrics="on"))
        if do_sb3:
            task = bar.add_task("SB3 PPO (RL-Zoo CartPole-v1)", total=1)
            records.append(
                _summarize("sb3-ppo", "CartPole-v1", [sb3(1, seconds_limit, _threads(env))],
                           hyperparameters=ZOO_CARTPOLE)
            )
            bar.advance(task)
    from . import puffer

    why_not_puffer = puffer.unavailable()
    if why_not_puffer is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
        with progress(console) as bar:
            task = bar.add_task("PufferLib PPO (its defaults, CartPole-v1)", total=1)
            records.append(_summarize("pufferlib-ppo", "CartPole-v1", [puffer.train_cartpole(
                1, TARGET, seconds_limit, device)], device=device))
            bar.advance(task)
    base = records[0]
    for r in records[1:]:
        r["speedup_steps_per_second"] = base["steps_per_second"] / r["steps_per_second"]
        if r["seconds_to_target"] and base["seconds_to_target"]:
            r["speedup_seconds_to_target"] = r["seconds_to_target"] / base["seconds_to_target"]
    rows = []
    for r in records:
        to_target = f"{r['seconds_to_target']:.1f}" if r["seconds_to_target"] is not None else "not reached"
        ratio = f"{r['speedup_steps_per_second']:.1f}x" if "speedup_steps_per_second" in r else "-"
        ratio_t = f"{r['speedup_seconds_to_target']:.1f}x" if "speedup_seconds_to_target" in r else "-"
        rows.append([r["name"], human(r["steps_per_second"]), to_target, r["reached_target"], ratio, ratio_t])
    out = table(
        f"PPO on {env} to mean return {TARGET:g} (median of {runs} seeded runs; SB3: one run, "
        f"capped at {seconds_limit:g} s)",
        ["trainer", "steps/s", "s to target", "reached", "ours/peer steps/s", "peer/ours s to target"],
        rows,
    )
    out.columns[0].no_wrap = True
    console.print(out)
    if not do_sb3:
        console.print("SB3 peer skipped: " + ("not requested" if not with_sb3 else
                      "only for cartpole" if env != "cartpole" else "stable-baselines3 is not installed "
                      "(the bench extra)"))
    if why_not_puffer is not None:
        console.print(f"PufferLib's trainer left out: {why_not_puffer}")
        records.append({"bench": "train", "name": "pufferlib-ppo", "env": "CartPole-v1", "skipped": why_not_puffer})
    if do_metrics:
        off, on = records[0], next(r for r in records if r["name"] == "appliance-ppo-metrics-on")
        overhead = 1 - on["steps_per_second"] / off["steps_per_second"]
        console.print(f"metrics export overhead on training steps/s: {overhead:+.1%} (on vs off, same seeds)")
        records.append({"bench": "train", "name": "appliance-ppo-metrics-overhead", "env": env,
                        "overhead_ratio": overhead, "runs": [off["steps_per_second"], on["steps_per_second"]]})
    write_json(json_path, records)
    return records
