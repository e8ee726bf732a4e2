"""Two torchrun agents on this machine as two "nodes": DDP over gloo, and a killed rank restarts the group.

Each agent is its own process (as on two hosts) with one CPU rank; they meet
through torchrun's c10d rendezvous and share one run dir, as pods share a
volume on a real cluster (deploy/k8s/pytorchjob.yaml). The faulted run is
deterministic, so after the restart it must end bit-identical to the clean one.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from learner import checkpoint

ROOT = Path(__file__).resolve().parents[2]
EVERY = 5  # checkpoint interval, updates
UPDATES = 30  # 2 ranks x 16 envs x 16 steps = 512 agent steps per update
STEPS_PER_UPDATE = 2 * 16 * 16
DEADLINE = 75.0  # seconds for one whole group run, restart included

pytestmark = pytest.mark.timeout(240)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _agent_command(port: int, rdzv_id: str, run_dir: Path, is_host: bool) -> list[str]:
    return [
        sys.executable, "-m", "torch.distributed.run",
        "--nnodes=2", "--nproc-per-node=1",
        "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", f"--rdzv-id={rdzv_id}",
        f"--rdzv-conf=is_host={int(is_host)},join_timeout=60,read_timeout=60",
        "--local-addr=127.0.0.1", "--max-restarts=2", "--monitor-interval=0.2",
        "-m", "appliance", "train", "--env", "cartpole", "--device", "cpu", "--metrics-port", "0",
        "--run-dir", str(run_dir), "--resume-if-present",
        "--total-steps", str(UPDATES * STEPS_PER_UPDATE),
        "--set", "env.num_envs=16", "--set", "ppo.num_steps=16",
        "--set", f"train.checkpoint_every={EVERY}", "--set", "train.deterministic=true",
        "--set", "train.log_every_seconds=1000",
    ]  # fmt: skip


class Group:
    """Two torchrun agents and every process they start; all of it is killed on exit."""

    def __init__(self, tmp: Path, run_dir: Path, name: str) -> None:
        port = _free_port()
        # As deploy/launch-multinode.sh does: a fresh worker store every round, or restarted
        # ranks read the dead ranks' gloo addresses from the agent's shared store.
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", TORCH_DISABLE_SHARE_RDZV_TCP_STORE="1")
        self.logs = [tmp / f"{name}-agent{k}.log" for k in range(2)]
        self.agents: list[subprocess.Popen] = []
        self.seen: dict[int, psutil.Process] = {}
        cores = sorted(os.sched_getaffinity(0))
        for k, log in enumerate(self.logs):
            # Each "node" owns its own core(s), as two hosts would: the learner sizes its
            # torch thread pool from its affinity, so the two never oversubscribe.
            own = set(cores[k % len(cores) :: 2] or cores)
            with open(log, "wb") as out:
                self.agents.append(
                    subprocess.Popen(
                        _agent_command(port, f"{name}-{port}", run_dir, is_host=k == 0),
                        cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                        preexec_fn=lambda own=own: os.sched_setaffinity(0, own),
                    )
                )

    def workers(self) -> dict[int, psutil.Process]:
        """The live training processes by global rank (torchrun starts them in their own sessions)."""
        found = {}
        for agent in self.agents:
            try:
                children = psutil.Process(agent.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                continue
            for child in children:
                self.seen[child.pid] = child
                try:
                    rank = child.environ().get("RANK")
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                if rank is not None:
                    found[int(rank)] = child
        return found

    def wait(self, deadline: float) -> list[int]:
        codes = []
        for agent in self.agents:
            try:
                codes.append(agent.wait(timeout=max(0.1, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                pytest.fail(f"torchrun agents still running after {DEADLINE} s:\n{self.output()}")
        return codes

    def output(self) -> str:
        return "\n".join(log.read_text(errors="replace") for log in self.logs)

    def kill(self) -> None:
        self.workers()
        for agent in self.agents:
            if agent.poll() is None:
                os.killpg(agent.pid, signal.SIGKILL)
                agent.wait(timeout=30)
        for proc in self.seen.values():
            try:
                proc.kill()  # psutil checks the pid still names the same process
                proc.wait(timeout=30)
            except psutil.NoSuchProcess:
                pass


@contextmanager
def _group(tmp: Path, run_dir: Path, name: str) -> Iterator[Group]:
    group = Group(tmp, run_dir, name)
    try:
        yield group
    finally:
        group.kill()


def _check_finished(run_dir: Path) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["ranks"] == 2
    assert summary["updates"] == UPDATES and summary["agent_steps"] == UPDATES * STEPS_PER_UPDATE
    digests = {(run_dir / f"rank{r}.sha256").read_text() for r in (0, 1)}
    assert digests == {summary["parameters_sha256"]}, "ranks ended with different parameters"
    _, state = checkpoint.load_latest(run_dir)
    assert state["updates"] == UPDATES and len(state["rng"]) == 2
    return summary


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("clean")
    run_dir = tmp / "run"  # one dir for both "nodes": the shared volume of a real cluster
    with _group(tmp, run_dir, "clean") as group:
        codes = group.wait(time.monotonic() + DEADLINE)
        assert codes == [0, 0], group.output()
        assert "resumed from" not in group.output()
    return _check_finished(run_dir)


def test_two_agents_train_together_and_end_with_identical_parameters(clean_run: dict) -> None:
    assert clean_run["resumed_from_update"] is None
    assert clean_run["env"] == "cartpole" and clean_run["device"] == "cpu"


@pytest.mark.parametrize("victim", [1])
def test_killed_rank_restarts_the_group_from_the_last_checkpoint(
    tmp_path: Path, clean_run: dict, victim: int
) -> None:
    run_dir = tmp_path / "run"
    with _group(tmp_path, run_dir, "fault") as group:
        deadline = time.monotonic() + DEADLINE
        while not checkpoint.list_checkpoints(run_dir):
            assert time.monotonic() < deadline, f"no checkpoint within {DEADLINE} s:\n{group.output()}"
            assert all(a.poll() is None for a in group.agents), group.output()
            time.sleep(0.02)
        workers = group.workers()
        seen = int(checkpoint.list_checkpoints(run_dir)[-1].name[5:13])
        assert set(workers) == {0, 1}, f"workers by rank: {workers}\n{group.output()}"
        workers[victim].send_signal(signal.SIGKILL)
        assert not (run_dir / "summary.json").exists(), "the run ended before the kill; make it longer"
        codes = group.wait(deadline)
        out = group.output()
        assert codes == [0, 0], out
    resumed = [(int(r), int(u)) for r, u in re.findall(r"rank (\d) resumed from \S+ \(update (\d+),", out)]
    assert sorted(r for r, _ in resumed) == [0, 1], f"each rank resumes exactly once:\n{out}"
    (start,) = {u for _, u in resumed}
    # It continued from a checkpoint no older than the one on disk before the kill, so at
    # most the updates since that checkpoint (under one interval) were trained twice.
    assert start % EVERY == 0 and seen <= start < UPDATES, (seen, start)
    assert re.search(rf"resumed from \S+ckpt_{start:08d}\.pt \(update {start}, agent steps "
                     rf"{start * STEPS_PER_UPDATE}\)", out)
    summary = _check_finished(run_dir)
    assert summary["resumed_from_update"] == start
    # Deterministic resume at a checkpoint boundary: the restarted group ends exactly
    # where the uninterrupted one did.
    assert summary["parameters_sha256"] == clean_run["parameters_sha256"]
