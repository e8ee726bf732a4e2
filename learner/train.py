"""One learner rank: collect, GAE, PPO update, DDP, checkpoints, stop rules, summary.

Runs alone (no ``RANK``/``WORLD_SIZE`` in the environment) or as one rank of a
torch.distributed job (set by ``appliance.train`` or by torchrun). Each rank
owns its own pool with its own seeds; DDP averages gradients, so parameters
stay identical on every rank.

Exact resume: the native envs cannot be snapshotted, so with
``train.deterministic_resume`` every checkpoint boundary (updates divisible by
``train.checkpoint_every``) restarts the pool from a seed derived from
``(seed, rank, updates)``, and so does a resumed run. An uninterrupted run and
one stopped and resumed at a boundary then see the same envs, RNG states,
parameters and optimizer state, and end bit-identical in deterministic CPU
mode. Episodes in flight at a boundary are abandoned (their last step still
bootstraps from V). A stop between boundaries (Ctrl-C) also checkpoints, but a
resume from it restarts the envs there, so it continues closely, not exactly.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

import torch
import torch.distributed as dist

from . import checkpoint, ppo
from .config import Config, complete
from .config import save as save_config
from .dashboard import Reporter
from .gae import compute_gae
from .policy import make_policy
from .pools import make_pool, rank_seed
from .rollout import Rollout
from .schema import PPOConfig, TrainConfig

DIST_TIMEOUT = timedelta(seconds=120)
_made_group = False  # train() made this process's process group (see exit_process)

_LOSS_KEYS = {  # ppo.update's stats -> the metrics sink's loss names
    "pg_loss": "policy_loss",
    "v_loss": "value_loss",
    "entropy": "entropy",
    "approx_kl": "approx_kl",
    "clipfrac": "clip_fraction",
    "explained_variance": "explained_variance",
}


def made_process_group() -> bool:
    """True once :func:`train` made a torch.distributed process group in this process (a rank of a
    multi-rank run): such a process should end with :func:`exit_process`."""
    return _made_group


def exit_process(code: int) -> NoReturn:
    """Ends this process with ``code`` now, after flushing logging and stdio, without the interpreter's teardown.

    For a rank whose run is over (:func:`train` has returned or raised: checkpoint, summary, pool
    and process group are closed). torch keeps the gloo group's worker threads running after
    ``destroy_process_group`` once a model was wrapped in DDP (the group stays referenced from
    C++, even after the wrapper and the model are collected), and a worker that drops a finished
    collective's tensors needs the GIL. If it asks for it while the
    interpreter finalizes, Python ends that thread with ``pthread_exit`` inside C++, and the
    process aborts ("terminate called without an active exception", SIGABRT) after a run that
    had saved everything. ``os._exit`` never finalizes, so that cannot happen.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):  # closed or replaced: nothing left to write
            pass
    ctypes.CDLL(None).fflush(None)  # C stdio too (a native env's printf)
    os._exit(code)


class StopRequest:
    """SIGTERM (and SIGINT) ask the loop to stop at the end of the current update.

    Ranks agree on the stop through the per-update all-reduce, so every rank
    reaches the checkpoint's collectives at the same update: a signal that hit
    the ranks mid-collective (the launcher forwards the signal, a terminal sends
    SIGINT to all) can no longer leave them waiting on each other. A second
    SIGINT in a single-process run raises KeyboardInterrupt as usual.

    ``announce``: the line written to stderr at once on the first signal (rank 0
    passes one, so a user who pressed Ctrl-C knows the update in progress is
    being finished); written with ``os.write``, as a handler may interrupt a print.
    """

    def __init__(self, announce: str | None = None) -> None:
        self.requested = False
        self.signal: str | None = None  # "SIGINT" or "SIGTERM", the first one received
        self._announce = announce
        self._previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT and int(os.environ.get("WORLD_SIZE", 1)) == 1:
            raise KeyboardInterrupt
        if not self.requested:
            self.signal = signal.Signals(signum).name
            if self._announce:
                os.write(2, (self._announce + "\n").encode())
        self.requested = True

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` picks this rank's GPU when there is one, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' asked for, but torch sees no CUDA device")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if name == "cpu":
        return torch.device("cpu")
    raise ValueError(f"config 'train.device' (--device) must be one of auto, cpu, cuda, got {name!r}")


def _restart_seed(seed: int, rank: int, updates: int) -> int:
    return rank_seed(seed, rank) * 7919 + updates


class ReturnWindow:
    """Mean return over the most recent stats batches that cover at least ``size`` episodes.

    Pools report episode means in batches, not single returns; the window drops
    whole batches from its old end while the rest still holds ``size`` episodes.
    """

    def __init__(self, size: int = 100, items: list[list[float]] | None = None) -> None:
        self.size = size
        self.items: deque[list[float]] = deque(items or [])  # [episodes, mean return, mean length]

    def add(self, stats: dict[str, float]) -> None:
        count = int(stats.get("episodes", 0))
        if count:
            self.items.append(
                [count, float(stats["episode_return"]), float(stats.get("episode_length", 0.0))]
            )
            while len(self.items) > 1 and sum(i[0] for i in self.items) - self.items[0][0] >= self.size:
                self.items.popleft()

    def sums(self) -> tuple[float, float, float]:
        """(episodes, return sum, length sum)."""
        return (
            sum(i[0] for i in self.items),
            sum(i[0] * i[1] for i in self.items),
            sum(i[0] * i[2] for i in self.items),
        )


def train(
    config: Config,
    run_dir: str | Path,
    resume: bool = False,
    stop_after: int | None = None,
    live: bool | None = None,
    metrics: Any | None = None,
    on_update: Callable[[dict[str, float]], bool] | None = None,
) -> dict[str, Any]:
    """Trains as configured, in ``run_dir``; returns the summary (rank 0 also writes ``summary.json``).

    ``stop_after`` ends this process after that many updates (with a
    checkpoint), as an interruption would; the run can then be resumed.
    ``metrics`` is this rank's metrics sink (``monitoring.MetricsExporter``'s
    methods; the caller owns it): the learner only feeds it, so it needs no
    import of ``monitoring`` and PPO stays free of it.
    ``on_update`` is called after every update with ``update``, ``agent_steps``,
    ``mean_return`` (the all-reduced window mean) and ``elapsed`` (seconds since
    the loop, hence the first env reset, began); True stops the run with outcome
    ``pruned`` and a checkpoint (a sweep's pruner; single-rank runs).
    """
    global _made_group
    rank = int(os.environ.get("RANK", 0))
    world = int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    config = complete(config)  # every key present, defaults from learner.schema where the caller left one out
    tcfg = TrainConfig.from_config(config["train"])
    device = resolve_device(tcfg.device, local_rank)
    distributed = world > 1
    if distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=DIST_TIMEOUT)
        _made_group = True
    if device.type == "cuda":
        torch.cuda.set_device(device)
    else:
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        threads = tcfg.torch_threads  # 0 = this rank's share of the cores
        torch.set_num_threads(threads or max(1, len(os.sched_getaffinity(0)) // max(1, local_world)))
    if tcfg.deterministic:
        torch.use_deterministic_algorithms(True)
    run_dir = Path(run_dir)
    made = checkpoint.missing_top(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    announce = f"stopping after this update: checkpoint to {checkpoint.checkpoint_dir(run_dir)}/"
    stop = StopRequest(announce if rank == 0 else None)
    try:
        return _train(config, run_dir, resume, stop_after, live, rank, world, device, metrics, stop, on_update)
    except BaseException:
        checkpoint.remove_if_empty(run_dir, made)  # a run refused before it wrote anything leaves no directory
        raise
    finally:
        stop.restore()
        if distributed and dist.is_initialized():
            dist.destroy_process_group()


def _train(
    config: Config,
    run_dir: Path,
    resume: bool,
    stop_after: int | None,
    live: bool | None,
    rank: int,
    world: int,
    device: torch.device,
    metrics: Any | None,
    stop: StopRequest,
    on_update: Callable[[dict[str, float]], bool] | None = None,
) -> dict[str, Any]:
    tcfg = TrainConfig.from_config(config["train"])
    cfg = PPOConfig.from_config(config["ppo"])
    seed = tcfg.seed
    torch.manual_seed(rank_seed(seed, rank))
    pool = make_pool(config, rank)
    try:
        _attach_pool(metrics, pool)
        policy = make_policy(config, pool.single_observation_space, pool.single_action_space).to(device)
        optimizer = _adam(policy, cfg.lr)
        rollout = Rollout(policy, pool, cfg.num_steps, device)
        ppo.check_split(cfg, cfg.num_steps, pool.num_agents, policy.lstm is not None)  # before anything is saved
        batch_steps = cfg.num_steps * pool.num_agents * world
        num_updates = max(1, tcfg.total_steps // batch_steps)
        every = tcfg.checkpoint_every
        updates, agent_steps, window = 0, 0, ReturnWindow()
        saved_path: Path | None = None  # the newest checkpoint of this run (rank 0 writes them)
        if resume:
            path, state = checkpoint.load_latest(run_dir, map_location=device)
            saved_path = path
            policy.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            updates, agent_steps = int(state["updates"]), int(state["agent_steps"])
            rngs = state["rng"]
            if len(rngs) != world:
                raise ValueError(f"{path} was written by {len(rngs)} ranks; this run has {world}")
            checkpoint.set_rng_state(rngs[rank])
            window = ReturnWindow(items=state.get("returns", [])[rank] if state.get("returns") else None)
            _agree_on_resume(path, updates, world)
            print(f"rank {rank} resumed from {path} (update {updates}, agent steps {agent_steps})",
                  file=sys.stderr, flush=True)
            # The steps left, in batches of this run's size: a resumed run may change the batch
            # (env.num_envs, ppo.num_steps), so its budget counts agent steps, not updates.
            num_updates = updates + max(0, (tcfg.total_steps - agent_steps) // batch_steps)
            if num_updates == updates and rank == 0:
                print(f"the {max(0, tcfg.total_steps - agent_steps):,} agent steps left of --total-steps "
                      f"{tcfg.total_steps:,} are less than one update ({batch_steps:,}): nothing to train",
                      file=sys.stderr, flush=True)
        planned_steps = agent_steps + (num_updates - updates) * batch_steps
        model: torch.nn.Module = policy
        if world > 1:
            model = torch.nn.parallel.DistributedDataParallel(
                policy, device_ids=[device.index] if device.type == "cuda" else None
            )
        if rank == 0:
            save_config(config, run_dir / "config.toml")
        reporter = (
            Reporter(planned_steps, tcfg.log_every_seconds, live=live)
            if rank == 0
            else None
        )
        target = tcfg.target_return
        deterministic_resume = tcfg.deterministic_resume
        start_updates, start_steps = updates, agent_steps
        start = time.perf_counter()
        learn_s, reached_at, last_saved = 0.0, None, updates
        outcome = "target_missed" if target else "finished"  # unless the loop ends early, below
        stats: dict[str, float] = {}
        global_mean = float("nan")
        rank_batch = cfg.num_steps * pool.num_agents
        restarts_seen = getattr(pool, "restarts", 0)
        phase_seen = {"env": 0.0, "inference": 0.0, "learn": 0.0, "wall": 0.0}
        rewards: deque[float] = deque(maxlen=10)  # reward per agent-step of the last rollouts
        try:
            while updates < num_updates:
                if updates == start_updates or (deterministic_resume and every and updates % every == 0):
                    rollout.restart(_restart_seed(seed, rank, updates))
                ppo.anneal_lr(optimizer, cfg, updates + 1, num_updates)
                rollout.collect()
                rewards.append(rollout.reward_per_step())
                t0 = time.perf_counter()
                with torch.no_grad():
                    advantages, returns = compute_gae(
                        rollout.rewards * cfg.reward_scale if cfg.reward_scale != 1.0 else rollout.rewards,
                        rollout.values,
                        rollout.terminals,
                        rollout.truncations,
                        rollout.final_values,
                        rollout.next_values,
                        cfg.gamma,
                        cfg.gae_lambda,
                        rollout.masks,
                    )
                batch = rollout.batch()
                batch.update(advantages=advantages, returns=returns)
                stats = ppo.update(model, optimizer, batch, cfg, recurrent=policy.lstm is not None)
                learn_s += time.perf_counter() - t0
                updates += 1
                agent_steps += batch_steps
                episode_stats = pool.episode_stats()
                window.add(episode_stats)
                episodes, ret_sum, len_sum = window.sums()
                flags = torch.tensor([episodes, ret_sum, len_sum, float(stop.requested)], dtype=torch.float64)
                if world > 1:
                    dist.all_reduce(flags)  # every rank gets the same totals, so all agree to stop
                global_mean = float(flags[1] / flags[0]) if flags[0] > 0 else float("nan")
                mean_len = float(flags[2] / flags[0]) if flags[0] > 0 else float("nan")
                elapsed = time.perf_counter() - start
                if metrics is not None:
                    restarts_seen = _feed_metrics(
                        metrics, pool, rollout.times, learn_s, elapsed, phase_seen, rank_batch,
                        episode_stats, stats, optimizer.param_groups[0]["lr"], restarts_seen,
                    )
                if target and flags[0] >= 100 and global_mean >= target and reached_at is None:
                    reached_at = elapsed
                if every and updates % every == 0:
                    saved_path = _save(
                        run_dir, policy, optimizer, updates, agent_steps, config, window, rank, world, tcfg,
                        outcome="target_reached" if reached_at is not None else None,  # a boundary ends it
                    ) or saved_path
                    last_saved = updates
                if reporter is not None and live is not False and start_updates + 1 == updates < num_updates:
                    rate = (agent_steps - start_steps) / elapsed
                    left = (num_updates - updates) * batch_steps
                    print(f"first update done: {rate:,.0f} agent steps/s, so the remaining {left:,} steps "
                          f"take about {duration(left / rate)}", file=sys.stderr, flush=True)
                if reporter is not None:
                    env_s, inf_s = rollout.times["env"], rollout.times["inference"]
                    reporter.update(
                        {
                            "update": updates,
                            "agent_steps": agent_steps,
                            "steps_per_second": (agent_steps - start_steps) / elapsed,
                            "mean_return": global_mean,
                            "mean_length": mean_len,
                            **stats,
                            "lr": optimizer.param_groups[0]["lr"],
                            "env_s": env_s,
                            "inference_s": inf_s,
                            "learn_s": learn_s,
                            "other_s": max(0.0, elapsed - env_s - inf_s - learn_s),
                        }
                    )
                if reached_at is not None:
                    outcome = "target_reached"
                    break
                if on_update is not None and on_update(
                    {"update": updates, "agent_steps": agent_steps, "mean_return": global_mean, "elapsed": elapsed}
                ):
                    outcome = "pruned"
                    break
                if flags[3] > 0 or (stop_after is not None and updates - start_updates >= stop_after):
                    outcome = "stopped"
                    break
        except KeyboardInterrupt:
            outcome = "stopped"  # a second Ctrl-C: checkpoint below all the same, then the summary
        except BaseException:
            # Other ranks may not reach the checkpoint's collective: skip it rather than hang.
            last_saved = updates
            raise
        finally:
            if updates != last_saved:
                saved_path = _save(
                    run_dir, policy, optimizer, updates, agent_steps, config, window, rank, world, tcfg,
                    outcome=outcome,
                ) or saved_path
            if reporter is not None:
                reporter.close()
        if stop.requested and rank == 0:
            if saved_path is None:
                print("no update had finished, so no checkpoint was written", file=sys.stderr, flush=True)
            else:
                fresh = "written" if updates != last_saved else "kept (the newest, nothing newer to write)"
                print(f"checkpoint {fresh}: {saved_path} (update {updates}, {agent_steps:,} agent steps)",
                      file=sys.stderr, flush=True)
        wall = time.perf_counter() - start
        summary = {
            "env": config["env"]["name"],
            "updates": updates,
            "agent_steps": agent_steps,
            "steps_per_second": (agent_steps - start_steps) / wall if wall > 0 else 0.0,
            "wall_seconds": wall,
            "mean_return": None if math.isnan(global_mean) else global_mean,
            # This rank's reward per agent-step over its last 10 rollouts: unlike the mean return of
            # ended episodes, it does not favour short episodes (a grid agent that found the goal early).
            "reward_per_step": sum(rewards) / len(rewards) if rewards else None,
            "ranks": world,
            "resumed_from_update": start_updates if resume else None,
            "device": str(device),
            "parameters_sha256": parameters_digest(policy),
            "dropped_transitions": rollout.dropped,  # grouped pools only; 0 with ActorPool's round-robin
            "phase_seconds": _phases(rollout.times, learn_s, wall),
            "total_steps": planned_steps,
            "target_return": target or None,
            "outcome": outcome,  # finished, target_reached, target_missed, stopped or pruned
            "stop_signal": stop.signal,
            "checkpoint": str(saved_path) if saved_path is not None else None,
        }
        if reached_at is not None:
            summary["seconds_to_target"] = reached_at
        if world > 1:  # lets a launcher (and the DDP test) compare every rank's parameters
            (run_dir / f"rank{rank}.sha256").write_text(summary["parameters_sha256"])
        if rank == 0 and updates > start_updates:  # a segment that trained nothing replaces nothing
            write_summary(run_dir, summary)
        return summary
    finally:
        pool.close()


def _adam(policy: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    """Adam with the fused kernel where this torch has one for the device (one op per step, not one per
    parameter: ~12% of a small policy's update on the CPU); the plain one elsewhere, same maths."""
    try:
        return torch.optim.Adam(policy.parameters(), lr=lr, eps=1e-5, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(policy.parameters(), lr=lr, eps=1e-5)


def _phases(times: dict[str, float], learn_s: float, wall: float) -> dict[str, float]:
    """Where this segment's wall time went: env wait, inference (host<->device copies apart), learn, other."""
    env_s, inf_s, copy_s = times["env"], times["inference"], times["copy"]
    return {
        "env": env_s,
        "inference": inf_s - copy_s,
        "copy": copy_s,
        "learn": learn_s,
        "other": max(0.0, wall - env_s - inf_s - learn_s),
    }


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    """Appends the segment to ``history.jsonl`` and atomically replaces ``summary.json`` with it.

    ``summary.json`` is the newest complete segment's summary (temp file, fsync,
    rename: a reader sees the old one or the new one, never half); every segment
    that trained, resumed ones included, stays in ``history.jsonl``, one line each.
    """
    line = json.dumps({**summary, "ended_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}) + "\n"
    fd = os.open(run_dir / "history.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp = run_dir / f".summary.json.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(summary, indent=2) + "\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(run_dir / "summary.json")


def duration(seconds: float) -> str:
    """``4 s``, ``12 min``, ``3.5 h``: an estimate's precision, for people."""
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _agree_on_resume(path: Path, updates: int, world: int) -> None:
    """Every rank must resume from the same update (a stale shared-storage view would split them)."""
    if world == 1:
        return
    seen: list[Any] = [None] * world
    dist.all_gather_object(seen, updates)
    found = sorted(set(seen))
    if len(found) > 1:
        raise ValueError(f"ranks resumed from different updates {found} (this rank read {path})")


def _attach_pool(metrics: Any | None, pool: Any) -> None:
    """Points the metrics sink at the pool's actor processes and arena (an in-process pool has neither)."""
    if metrics is None:
        return
    pids = getattr(pool, "pids", None)
    if pids is not None:
        metrics.attach_actors({str(k): pid for k, pid in enumerate(pids) if pid is not None})
    arena = getattr(pool, "arena_path", None)
    if arena is not None:
        metrics.set_arena(arena)


def _feed_metrics(
    metrics: Any,
    pool: Any,
    times: dict[str, float],
    learn_s: float,
    elapsed: float,
    seen: dict[str, float],
    rank_batch: int,
    episode_stats: dict[str, float],
    stats: dict[str, float],
    lr: float,
    restarts_seen: int,
) -> int:
    """One update's worth of metrics: this rank's steps and rate, phase deltas, episodes, losses.

    A dozen dict lookups and float adds per update, next to a PPO update of
    milliseconds. Returns the pool's restart count (re-attaching actors when it moved).
    """
    env_s, inf_s = times["env"], times["inference"]
    d_env, d_inf = env_s - seen["env"], inf_s - seen["inference"]
    d_learn, d_wall = learn_s - seen["learn"], elapsed - seen["wall"]
    seen.update(env=env_s, inference=inf_s, learn=learn_s, wall=elapsed)
    metrics.add_steps(rank_batch)
    metrics.set_rate(rank_batch / d_wall if d_wall > 0 else 0.0)
    metrics.add_phase("env_wait", d_env)
    metrics.add_phase("inference", d_inf)
    metrics.add_phase("learn", d_learn)
    metrics.add_phase("other", max(0.0, d_wall - d_env - d_inf - d_learn))
    metrics.observe_episodes(episode_stats)
    losses = {name: stats[key] for key, name in _LOSS_KEYS.items() if key in stats and not math.isnan(stats[key])}
    losses["learning_rate"] = lr
    metrics.set_losses(losses)
    host_stats = getattr(pool, "host_stats", None)  # actors.RemotePool: per actor host
    if host_stats is not None:
        metrics.set_remote_hosts(host_stats())
    restarts = getattr(pool, "restarts", None)
    if restarts is not None:
        metrics.set_restarts(restarts)
        if restarts != restarts_seen:
            _attach_pool(metrics, pool)
        return restarts
    return restarts_seen


def parameters_digest(model: torch.nn.Module) -> str:
    """SHA-256 of every parameter's bytes: equal digests mean bit-identical parameters."""
    digest = hashlib.sha256()
    for name, param in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(param.detach().to("cpu").contiguous().numpy().tobytes())
    return digest.hexdigest()


def _save(
    run_dir: Path,
    policy: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    updates: int,
    agent_steps: int,
    config: Config,
    window: ReturnWindow,
    rank: int,
    world: int,
    tcfg: TrainConfig,
    outcome: str | None = None,
) -> Path | None:
    """Gathers every rank's RNG state and return window; rank 0 writes the checkpoint and returns its path.

    ``outcome``: how the run ended, for the checkpoint written at its end (a resume reads it).
    """
    rng, returns = checkpoint.rng_state(), [list(i) for i in window.items]
    if world > 1:
        all_rng: list[Any] = [None] * world
        all_returns: list[Any] = [None] * world
        dist.all_gather_object(all_rng, rng)
        dist.all_gather_object(all_returns, returns)
    else:
        all_rng, all_returns = [rng], [returns]
    path = None
    if rank == 0:
        path = checkpoint.save(
            run_dir,
            {
                "model": policy.state_dict(),
                "optimizer": optimizer.state_dict(),
                "updates": updates,
                "agent_steps": agent_steps,
                "rng": all_rng,
                "returns": all_returns,
                "config": config,
                "outcome": outcome,
            },
            keep=tcfg.keep_checkpoints,
        )
    if world > 1:
        dist.barrier()
    return path
