"""Helpers the sweep tests share: a tiny cartpole sweep command, reading a sweep's storage, waiting with deadlines."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

# Small enough for CI on 2 shared cores: 16 envs, a few thousand agent steps per trial.
SPACE = """\
"ppo.ent_coef" = { uniform = [0.0, 0.01] }

[ppo.lr]
log_uniform = [1e-3, 3e-2]

[ppo.update_epochs]
int = [1, 3]
"""
FIXED = ["--set", "env.num_envs=16", "--set", "train.checkpoint_every=0", "--set", "train.log_every_seconds=30"]


def write_space(directory: Path, text: str = SPACE, name: str = "space.toml") -> Path:
    path = directory / name
    path.write_text(text)
    return path


def environ(runs: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "APPLIANCE_RUNS_DIR": str(runs), "COLUMNS": "120", **extra}


def sweep_argv(space: Path, name: str, trials: int, steps: int = 6144, workers: int = 1, *extra: str) -> list[str]:
    return [sys.executable, "-m", "appliance", "sweep", "--env", "cartpole", "--space", str(space),
            "--name", name, "--trials", str(trials), "--steps", str(steps), "--workers", str(workers),
            *FIXED, *extra]


def start(argv: list[str], runs: Path, log: Path) -> subprocess.Popen:
    """The command in its own session (so the whole sweep, workers included, can be killed as a group)."""
    out = open(log, "ab")  # noqa: SIM115 - closed when the test's process ends
    return subprocess.Popen(argv, cwd=ROOT, env=environ(runs), stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float, log: Path) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise AssertionError(f"sweep still running after {timeout:.0f} s: {log.read_text()[-3000:]}") from None


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(30)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def study(name: str, storage: str) -> Any:
    import optuna

    from appliance.sweep import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Opened as every sweep process opens it, under its schema lock: a test polling a sweep that is
    # still creating Optuna's tables would otherwise create them too ("table studies already exists").
    return optuna.load_study(study_name=name, storage=open_storage(storage))


def sqlite_url(runs: Path, name: str) -> str:
    return f"sqlite:///{runs / f'sweep-{name}' / 'sweep.db'}"


def states(trials: list[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in trials:
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def check_nothing_lost_or_repeated(trials: list[Any], expected_finished: int) -> None:
    """Exactly ``expected_finished`` trials finished; every failed one was re-queued and its retry finished.

    Also: numbers are distinct, each finished trial has its own run dir with a
    summary.json, a config.toml and a checkpoint, and a retry ran the failed trial's parameters.
    """
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)), f"a trial number repeats: {numbers}"
    by_number = {t.number: t for t in trials}
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == expected_finished, states(trials)
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")], states(trials)
    dirs = [t.user_attrs["run_dir"] for t in finished]
    assert len(set(dirs)) == len(dirs), f"two trials share a run dir: {dirs}"
    for t in finished:
        run_dir = Path(t.user_attrs["run_dir"])
        assert run_dir.name == f"trial-{t.number:04d}"
        for needed in ("summary.json", "config.toml"):
            assert (run_dir / needed).is_file(), f"trial {t.number} lacks {needed}"
        assert list((run_dir / "checkpoints").glob("*.pt")), f"trial {t.number} has no checkpoint"
    retries = {t.system_attrs["failed_trial"]: t for t in trials if "failed_trial" in t.system_attrs}
    for t in trials:
        if t.state.name != "FAIL":
            continue
        # the retry's retry_history names every attempt; the last attempt of the chain must have finished
        chain = [r for r in trials if t.number in r.system_attrs.get("retry_history", [])]
        assert chain, f"failed trial {t.number} was never re-queued ({t.user_attrs.get('failure')})"
        assert any(r.state.name in ("COMPLETE", "PRUNED") for r in chain), f"trial {t.number}'s retries never finished"
        assert all(r.params == t.params for r in chain), "a retry ran other parameters"
    assert all(n in by_number for n in retries)
