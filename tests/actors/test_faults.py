"""Faults are caused, not simulated: SIGKILL, a segfault and an exception inside an actor,
a parent killed with SIGKILL or interrupted with Ctrl-C, and a crashed run's leftovers."""

from __future__ import annotations

import ctypes
import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from actors import ActorError, ActorPool, actor_seed
from actors.arena import PREFIX, runtime_base, shm_dir
from envs import NativeEnv

ROOT = Path(__file__).resolve().parents[2]
SEED = 7


class FaultyCartPole(NativeEnv):
    """CartPole that misbehaves on its ``fail_at``-th step, in the actor seeded ``fail_seed`` only."""

    def __init__(self, num_envs: int, seed: int, buffers: Any, fault: str = "", fail_seed: int = -1,
                 fail_at: int = 3) -> None:
        super().__init__("cartpole", num_envs=num_envs, seed=seed, buffers=buffers)
        self.fault = fault if seed == fail_seed else ""
        self.fail_at, self.steps = fail_at, 0

    def step(self, actions: np.ndarray | None = None) -> None:
        self.steps += 1
        if self.steps == self.fail_at:
            if self.fault == "segfault":
                ctypes.string_at(0)
            elif self.fault == "raise":
                raise RuntimeError("boom inside the env")
            elif self.fault == "hang":
                time.sleep(30)
        super().step(actions)


def run_until_error(pool: ActorPool, steps: int = 50) -> tuple[ActorError, float]:
    pool.async_reset(SEED)
    for _ in range(steps):
        try:
            obs = pool.recv()[0]
            pool.send(np.zeros(len(obs), np.int32))
        except ActorError as exc:
            return exc, time.monotonic()
    raise AssertionError("no ActorError raised")


def test_sigkilled_actor_is_reported_within_a_second() -> None:
    with ActorPool("cartpole", 8, 4, 4, seed=SEED) as pool:
        pool.async_reset(SEED)
        pool.recv()
        os.kill(pool.pids[3], signal.SIGKILL)
        killed = time.monotonic()
        with pytest.raises(ActorError) as info:
            while time.monotonic() - killed < 1.0:  # a kill in flight may let one batch through
                pool.send(np.zeros(4, np.int32))
                pool.recv()
        assert time.monotonic() - killed < 1.0
        assert info.value.actor == 3 and info.value.envs == (6, 8)
        assert "actor 3 (envs 6:8) killed by SIGKILL" in str(info.value)
        with pytest.raises(ActorError):  # the pool stays failed
            pool.recv()


def test_segfault_in_env_code_is_reported() -> None:
    params = {"fault": "segfault", "fail_seed": actor_seed(SEED, 1)}
    with ActorPool(FaultyCartPole, 4, 2, 4, seed=SEED, **params) as pool:
        error, _ = run_until_error(pool)
    assert error.actor == 1 and error.envs == (2, 4)
    assert "killed by SIGSEGV" in str(error)


def test_exception_in_actor_comes_with_its_traceback() -> None:
    params = {"fault": "raise", "fail_seed": actor_seed(SEED, 0)}
    with ActorPool(FaultyCartPole, 4, 2, 2, seed=SEED, **params) as pool:
        error, _ = run_until_error(pool)
    assert error.actor == 0 and "exited with code 1" in str(error)
    assert "RuntimeError: boom inside the env" in error.traceback
    assert "in step" in str(error)


@pytest.mark.parametrize("fault", ["sigkill", "segfault"])
def test_restart_reseeds_marks_truncated_and_goes_on(fault: str) -> None:
    params = {"fault": fault, "fail_seed": actor_seed(SEED, 1), "fail_at": 4}
    with ActorPool(FaultyCartPole, 8, 2, 4, seed=SEED, restart=True, split=True, **params) as pool:
        assert pool.parts_per_actor == 2  # each group holds a part of actor 1's envs
        pool.async_reset(SEED)
        last: dict[int, np.ndarray] = {}
        fresh: set[int] = set()  # groups seen since the restart
        for step in range(40):
            obs, _, terminals, truncations, _, env_ids = pool.recv()
            g = step % 2
            mine = env_ids >= 4  # actor 1's rows
            assert mine.sum() == 2
            if pool.restarts and g not in fresh:
                fresh.add(g)  # the first batch of this group after the restart
                assert truncations[mine].all() and not terminals[mine].any()
                assert not truncations[~mine].all()
                if fault == "segfault":
                    # It died before stepping: the rows still hold what the caller saw last.
                    np.testing.assert_array_equal(pool.final_observations[mine], last[g][mine])
            last[g] = obs.copy()
            if fault == "sigkill" and step == 5:
                os.kill(pool.pids[1], signal.SIGKILL)
            pool.send(np.zeros(4, np.int32))
        assert pool.restarts == 1 and fresh == {0, 1}
        # The restarted actor rings a new generation's doorbell; the old FIFOs are gone.
        fifos = sorted(p.name for p in pool.socket_dir.iterdir() if p.name != "control")
        assert fifos == ["done-0-0", "done-1-1", "go-0-0", "go-1-1"]


def test_restart_with_groups_of_whole_actors() -> None:
    params = {"fault": "segfault", "fail_seed": actor_seed(SEED, 1), "fail_at": 4}
    with ActorPool(FaultyCartPole, 6, 3, 2, seed=SEED, restart=True, **params) as pool:
        assert pool.parts_per_actor == 1 and pool.num_groups == 3  # group g is actor g
        pool.async_reset(SEED)
        last = None
        for step in range(30):
            obs, _, terminals, truncations, _, env_ids = pool.recv()
            if step % 3 == 1:
                np.testing.assert_array_equal(env_ids, [2, 3])
                if step == 3 * 4 + 1:  # actor 1's 4th step failed: this is its first fresh batch
                    assert pool.restarts == 1 and truncations.all() and not terminals.any()
                    np.testing.assert_array_equal(pool.final_observations, last)
                last = obs.copy()
            pool.send(np.zeros(2, np.int32))
        assert pool.restarts == 1


def test_restart_in_ready_order() -> None:
    with ActorPool("cartpole", 8, 2, 2, seed=SEED, restart=True, order="ready") as pool:
        assert pool.actors_per_group == 1 and pool.parts_per_actor == 2  # group: one part of one actor
        pool.async_reset(SEED)
        fresh: set[int] = set()  # actor 1's parts seen since the restart
        end = time.monotonic() + 3.0
        for step in itertools.count():
            if fresh == {4, 6} or time.monotonic() > end:
                break
            _, _, terminals, truncations, _, env_ids = pool.recv()
            if step == 6:
                os.kill(pool.pids[1], signal.SIGKILL)
            if pool.restarts and env_ids[0] >= 4 and env_ids[0] not in fresh:
                fresh.add(int(env_ids[0]))  # the first batch of this part after the restart
                assert truncations.all() and not terminals.any()
            pool.send(np.zeros(2, np.int32))
        assert pool.restarts == 1 and fresh == {4, 6}


def test_ready_order_reports_a_killed_actor_within_a_second() -> None:
    with ActorPool("cartpole", 8, 2, 2, seed=SEED, order="ready") as pool:
        pool.async_reset(SEED)
        pool.recv()
        os.kill(pool.pids[0], signal.SIGKILL)
        killed = time.monotonic()
        with pytest.raises(ActorError) as info:
            while time.monotonic() - killed < 1.0:  # the other actor's batches may still come
                pool.send(np.zeros(2, np.int32))
                pool.recv()
        assert time.monotonic() - killed < 1.0
        assert "actor 0 (envs 0:4) killed by SIGKILL" in str(info.value)


@pytest.mark.parametrize("order", ["turn", "ready"])
def test_a_silent_actor_is_reported_after_the_timeout(order: str) -> None:
    params = {"fault": "hang", "fail_seed": actor_seed(SEED, 1)}
    with ActorPool(FaultyCartPole, 8, 2, 2, seed=SEED, timeout=0.5, order=order, **params) as pool:
        pool.async_reset(SEED)
        start = time.monotonic()
        with pytest.raises(ActorError) as info:
            while time.monotonic() - start < 5.0:  # in order "ready", actor 0's batches keep coming
                pool.recv()
                pool.send(np.zeros(2, np.int32))
        assert time.monotonic() - start < 2.0
        assert "actor 1 (envs 4:8) sent nothing for 0.5 s (still running)" in str(info.value)


@pytest.mark.parametrize("order", ["turn", "ready"])
def test_a_caller_pausing_longer_than_the_timeout_blames_no_actor(order: str) -> None:
    with ActorPool("cartpole", 8, 2, 2, seed=SEED, timeout=0.5, order=order) as pool:
        pool.async_reset(SEED)
        time.sleep(0.8)  # a slow start: every answer has long arrived
        for step in range(12):
            pool.recv()
            if step == 5:
                time.sleep(0.8)  # a long update between two steps
            pool.send(np.zeros(2, np.int32))
        pool.recv()


PARENT = textwrap.dedent(
    """
    import json, sys, numpy as np
    from actors import ActorPool
    if __name__ == "__main__":
        pool = ActorPool("cartpole", 4, 2, 2, seed=0)
        print(json.dumps({"pids": pool.pids, "arena": str(pool.arena_path), "dir": str(pool.socket_dir)}),
              flush=True)
        pool.async_reset(0)
        while True:
            pool.recv()
            pool.send(np.zeros(2, np.int32))
    """
)


def start_parent(tmp_path: Path) -> tuple[subprocess.Popen, dict]:
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, env=env, cwd=ROOT, text=True
    )
    line = proc.stdout.readline()
    assert line, "the parent script printed nothing"
    return proc, json.loads(line)


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_gone(pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if all(gone(pid) for pid in pids):
            return True
        time.sleep(0.05)
    return False


def test_parent_sigkill_leaves_no_orphans(tmp_path: Path) -> None:
    proc, info = start_parent(tmp_path)
    try:
        time.sleep(0.2)
        proc.kill()
        proc.wait(5)
        assert wait_gone(info["pids"], 2.0), "actors outlived their parent by more than 2 s"
    finally:
        proc.kill()
        Path(info["arena"]).unlink(missing_ok=True)  # a SIGKILLed parent cannot clean: next start does
        subprocess.run(["rm", "-rf", info["dir"]], check=False)


def test_ctrl_c_in_the_parent_removes_everything(tmp_path: Path) -> None:
    proc, info = start_parent(tmp_path)
    try:
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        proc.wait(10)
        assert wait_gone(info["pids"], 2.0)
        assert not Path(info["arena"]).exists()
        assert not Path(info["dir"]).exists()
    finally:
        proc.kill()


def test_cleanup_after_an_actor_error() -> None:
    params = {"fault": "raise", "fail_seed": actor_seed(SEED, 1)}
    pool = ActorPool(FaultyCartPole, 4, 2, 4, seed=SEED, **params)
    arena, directory, pids = pool.arena_path, pool.socket_dir, pool.pids
    with pytest.raises(ActorError), pool:
        pool.async_reset(SEED)
        for _ in range(50):
            pool.recv()
            pool.send(np.zeros(4, np.int32))
    assert not arena.exists() and not directory.exists()
    assert wait_gone(pids, 2.0)


def test_stale_leftovers_of_a_dead_owner_are_removed_at_start() -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale_shm = shm_dir() / f"{PREFIX}{dead.pid}-deadbeef"
    stale_dir = runtime_base() / f"{PREFIX}{dead.pid}-xyz"
    live_shm = shm_dir() / f"{PREFIX}{os.getpid()}-alive"
    stale_shm.write_bytes(b"x" * 64)
    stale_dir.mkdir(mode=0o700)
    (stale_dir / "control").write_text("")
    live_shm.write_bytes(b"x")
    try:
        with ActorPool("cartpole", 2, 1, 2, seed=0):
            assert not stale_shm.exists() and not stale_dir.exists()
            assert live_shm.exists()  # its owner (this process) is alive
    finally:
        live_shm.unlink(missing_ok=True)
        stale_shm.unlink(missing_ok=True)
        subprocess.run(["rm", "-rf", str(stale_dir)], check=False)
