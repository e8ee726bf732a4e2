"""Checkpoints: everything needed to continue a run exactly, written so a crash never loses the last good one.

A checkpoint is written to a temp file in the same directory, flushed and
fsynced, then renamed over its final name (``ckpt_00000042.pt``, the update
count), and the directory is fsynced. A process killed mid-write leaves only a
``.tmp`` file, which readers ignore and the next writer removes; the previous
checkpoints stay as they were. The newest ``keep`` checkpoints are kept.

``APPLIANCE_CHECKPOINT_PAUSE=SECONDS`` makes the writer sleep halfway through
the file (a test hook to kill the learner mid-write).
"""

from __future__ import annotations

import io
import os
import random
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

_NAME = re.compile(r"^ckpt_(\d{8,})\.pt$")
_REQUIRED = ("model", "optimizer", "updates", "agent_steps", "rng", "config")


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated or not one of ours (bad input, hence a ValueError)."""


def rng_state() -> dict[str, Any]:
    """Torch, numpy and python RNG states in a form ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), pos, has_gauss, gauss],
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Finished checkpoints, oldest first."""
    folder = checkpoint_dir(run_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def save(run_dir: Path, payload: dict[str, Any], keep: int = 2) -> Path:
    """Writes ``payload`` atomically as the checkpoint of ``payload['updates']``; prunes old ones."""
    missing = [k for k in _REQUIRED if k not in payload]
    if missing:
        raise ValueError(f"checkpoint payload lacks '{missing[0]}'")
    folder = checkpoint_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.tmp"):
        stale.unlink(missing_ok=True)
    target = folder / f"ckpt_{int(payload['updates']):08d}.pt"
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getbuffer()
    tmp = folder / f".{target.name}.{os.getpid()}.tmp"
    pause = float(os.environ.get("APPLIANCE_CHECKPOINT_PAUSE", "0") or 0)
    with open(tmp, "wb") as f:
        half = len(data) // 2
        f.write(data[:half])
        if pause > 0:
            f.flush()
            time.sleep(pause)
        f.write(data[half:])
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    for old in list_checkpoints(run_dir)[: -max(1, keep)]:
        old.unlink(missing_ok=True)
    return target


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Reads one checkpoint; any damage becomes a :class:`CheckpointError` naming the file."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(payload, dict) or any(k not in payload for k in _REQUIRED):
        raise CheckpointError(f"checkpoint {path} is not an appliance checkpoint (missing fields)")
    return payload


def load_latest(run_dir: Path, map_location: str | torch.device = "cpu") -> tuple[Path, dict[str, Any]]:
    """The newest checkpoint of a run; a damaged newest one is an error, never silently skipped."""
    found = list_checkpoints(run_dir)
    if not found:
        raise CheckpointError(f"no checkpoint in {checkpoint_dir(run_dir)}")
    return found[-1], load(found[-1], map_location)


# What a run writes at the top of its run dir besides checkpoints/ (learner.train writes them);
# a fresh `appliance train` refuses a dir holding one unless told to start over there.
RUN_FILES = ("config.toml", "summary.json", "history.jsonl")


def check_run_dir(run_dir: str | Path) -> Path:
    """``run_dir`` as a Path, or one sentence when it is missing or a file (eval, render)."""
    path = Path(run_dir)
    if not path.exists():
        raise ValueError(f"run directory {run_dir} does not exist (appliance train writes runs/ENV-TIMESTAMP)")
    if not path.is_dir():
        raise ValueError(f"{run_dir} is not a run directory (it is a file)")
    return path


def missing_top(folder: Path) -> Path | None:
    """The outermost of ``folder`` and its parents that does not exist yet (None: ``folder`` exists)."""
    top = None
    for path in (folder, *folder.parents):
        if path.exists():
            break
        top = path
    return top


def remove_if_empty(folder: Path, top: Path | None) -> None:
    """Removes ``folder`` and its parents up to ``top`` while they are empty: what a run made
    (``top`` from :func:`missing_top` before it did) and then was refused before it wrote a file."""
    if top is None:
        return
    for path in (folder, *folder.parents):
        try:
            path.rmdir()
        except OSError:
            return  # not empty, or gone: left as it is
        if path == top:
            return
