"""DDP over 2 CPU ranks, exact resume, and a learner killed mid-checkpoint."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from appliance.train import launch
from learner import checkpoint
from learner import config as C
from learner.train import train

ROOT = Path(__file__).resolve().parents[2]


def _small(*extra: str) -> dict:
    return C.apply_overrides(
        C.load("cartpole"),
        [
            "env.num_envs=16",
            "ppo.num_steps=16",
            "train.total_steps=1536",
            "train.checkpoint_every=2",
            "train.deterministic=true",
            "train.log_every_seconds=1000",
            *extra,
        ],
    )


def test_ddp_two_cpu_ranks_keep_identical_parameters(tmp_path) -> None:
    # 2 ranks x 16 envs x 16 steps = 512 steps per update -> 3 updates.
    summary = launch(_small(), tmp_path, resume=False, ranks=2)
    assert summary["ranks"] == 2 and summary["updates"] == 3
    digests = {summary["parameters_sha256"]}
    for rank in (0, 1):
        digests.add((tmp_path / f"rank{rank}.sha256").read_text())
    assert len(digests) == 1
    _, state = checkpoint.load_latest(tmp_path)
    assert len(state["rng"]) == 2  # every rank's RNG state, for an exact resume


def test_resume_ends_bit_identical_to_an_uninterrupted_run(tmp_path) -> None:
    cfg = _small("train.total_steps=1536")  # 16 envs x 16 steps = 256 per update -> 6 updates
    whole = train(cfg, tmp_path / "whole", live=False)
    first = train(cfg, tmp_path / "split", live=False, stop_after=4)
    assert first["updates"] == 4
    resumed = train(cfg, tmp_path / "split", resume=True, live=False)
    assert whole["updates"] == resumed["updates"] == 6
    assert resumed["agent_steps"] == whole["agent_steps"]
    assert resumed["parameters_sha256"] == whole["parameters_sha256"]
    _, a = checkpoint.load_latest(tmp_path / "whole")
    _, b = checkpoint.load_latest(tmp_path / "split")
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key


def test_kill_during_checkpoint_write_leaves_previous_loadable(tmp_path) -> None:
    train(_small(), tmp_path, live=False, stop_after=2)  # writes ckpt_00000002
    before = checkpoint.list_checkpoints(tmp_path)
    assert [p.name for p in before] == ["ckpt_00000002.pt"]
    env = dict(os.environ, APPLIANCE_CHECKPOINT_PAUSE="60", PYTHONPATH=str(ROOT))
    code = (
        "import sys; from learner.train import train; from learner import checkpoint; "
        "_, s = checkpoint.load_latest(sys.argv[1]); train(s['config'], sys.argv[1], resume=True, live=False)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while not list(checkpoint.checkpoint_dir(tmp_path).glob("*.tmp")):
            assert proc.poll() is None, "learner exited before writing a checkpoint"
            assert time.monotonic() < deadline, "no checkpoint write started within 60 s"
            time.sleep(0.05)
        time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert checkpoint.list_checkpoints(tmp_path) == before
    path, state = checkpoint.load_latest(tmp_path)
    assert state["updates"] == 2
    # The half-written temp file is not a checkpoint, and a damaged one is one named error.
    partial = next(checkpoint.checkpoint_dir(tmp_path).glob("*.tmp"))
    damaged = checkpoint.checkpoint_dir(tmp_path) / "ckpt_00000003.pt"
    damaged.write_bytes(partial.read_bytes())
    with pytest.raises(checkpoint.CheckpointError, match="ckpt_00000003.pt"):
        checkpoint.load_latest(tmp_path)
    assert checkpoint.load(path)["updates"] == 2
