"""Launching training: resolve the config and run dir, then run one learner rank per GPU (or N on CPU).

Under torchrun (``RANK`` and ``WORLD_SIZE`` already set) this process is one
rank and spawns nothing; otherwise it spawns the ranks itself with the same
environment variables torchrun would set.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

import torch
import torch.multiprocessing as mp

from learner import checkpoint
from learner import config as configs


def default_env() -> str:
    """snake, the embedded default; cartpole until snake is built into this install."""
    import envs

    return "snake" if "snake" in envs.names() else "cartpole"


def should_resume(run_dir: str | None, resume: bool, resume_if_present: bool) -> bool:
    """``--resume`` must continue a run; ``--resume-if-present`` continues one only if it has a checkpoint.

    The second is what a restartable launcher (torchrun with ``--max-restarts``,
    a Kubernetes pod) passes: the first start trains fresh, every restart picks
    up the run dir's latest checkpoint.
    """
    if resume and resume_if_present:
        raise ValueError("pass --resume or --resume-if-present, not both")
    if resume_if_present:
        if not run_dir:
            raise ValueError("--resume-if-present needs --run-dir (where a checkpoint may be)")
        return bool(checkpoint.list_checkpoints(Path(run_dir)))
    return resume


def resolve(
    env: str | None, overrides: list[str], run_dir: str | None, resume: bool, extra: dict[str, Any]
) -> tuple[dict[str, Any], Path]:
    """The resolved config and the run directory; refuses to overwrite a run unless resuming."""

    if resume:
        if not run_dir:
            raise ValueError("--resume needs --run-dir (the run to continue)")
        path = Path(run_dir)
        if not checkpoint.list_checkpoints(path):
            raise ValueError(
                f"--resume: run dir {path} holds no checkpoint (use --resume-if-present to start fresh then)"
            )
        _, state = checkpoint.load_latest(path)
        config = state["config"]
        if env is not None and env != config["env"]["name"]:
            raise ValueError(f"--env {env} differs from the run's env {config['env']['name']}")
    else:
        env = env or default_env()
        # Shipped TOML, else a generic config from the env's spaces (Gymnasium ids, PettingZoo,
        # atari/ ROMs); an env that cannot be made is a ValueError from configs.load.
        config = configs.load(env)
        label = env.replace("/", "-").replace(":", "-")
        path = Path(run_dir) if run_dir else Path("runs") / f"{label}-{time.strftime('%Y%m%d-%H%M%S')}"
        if checkpoint.list_checkpoints(path):
            raise ValueError(
                f"run dir {path} already holds checkpoints; pass --resume (or --resume-if-present) "
                "to continue it, or another --run-dir"
            )
    config = configs.apply_overrides(config, overrides)
    for key, value in extra.items():
        if value is not None:
            configs.set_value(config, key, value)
    return config, path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(
    local_rank: int, world: int, port: int, config: dict[str, Any], run_dir: Path, resume: bool
) -> None:
    from learner.train import train

    os.environ.update(
        RANK=str(local_rank),
        LOCAL_RANK=str(local_rank),
        WORLD_SIZE=str(world),
        LOCAL_WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    train(config, run_dir, resume=resume)


def launch(config: dict[str, Any], run_dir: Path, resume: bool, ranks: int | None) -> dict[str, Any] | None:
    """Runs training; returns rank 0's summary (read back from the run dir when ranks were spawned)."""
    from learner.train import resolve_device, train

    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:  # torchrun: be that rank
        return train(config, run_dir, resume=resume)
    device = resolve_device(config["train"]["device"])
    if device.type == "cuda":
        if ranks is not None and ranks != torch.cuda.device_count():
            raise ValueError(
                f"--ranks {ranks}: on CUDA there is one rank per GPU ({torch.cuda.device_count()})"
            )
        world = torch.cuda.device_count()
    else:
        world = ranks or 1
    if world == 1:
        return train(config, run_dir, resume=resume)
    run_dir.mkdir(parents=True, exist_ok=True)
    mp.start_processes(
        _rank_main, args=(world, _free_port(), config, run_dir, resume), nprocs=world, start_method="spawn"
    )
    import json

    return json.loads((run_dir / "summary.json").read_text())
