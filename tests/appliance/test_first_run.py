"""What a new user does in the first ten minutes loses nothing and says what happened.

Resuming a finished run, extending one, stopping one with SIGINT or SIGTERM,
missing a --target-return, a bad --set, and envs whose optional extra is not
installed: each is done for real (tiny CartPole runs) and its files, exit code
and messages checked.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from appliance.cli import EXIT_TARGET_MISSED, main
from learner import checkpoint

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(180)
TINY = ["--env", "cartpole", "--device", "cpu", "--metrics-port", "0", "--set", "env.num_envs=8",
        "--set", "ppo.num_steps=8", "--set", "train.log_every_seconds=1000"]  # 64 agent steps per update


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture()
def finished_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    assert main(["train", *TINY, "--total-steps", "128", "--run-dir", str(run)]) == 0
    return run


def test_resume_of_a_finished_run_says_so_and_changes_nothing(finished_run, capsys) -> None:
    before = digest(finished_run)
    capsys.readouterr()
    for flag in ("--resume", "--resume-if-present"):
        assert main(["train", "--run-dir", str(finished_run), flag, "--metrics-port", "0"]) == 0
        out = one_line(capsys.readouterr().out)
        assert "is finished" in out and "nothing was changed" in out and "--total-steps" in out, out
        assert "at least 192 (one more update)" in out  # 128 + one update of 64
        assert digest(finished_run) == before


def test_extending_a_run_keeps_every_segment(finished_run, capsys) -> None:
    first = json.loads((finished_run / "summary.json").read_text())
    assert first["outcome"] == "finished" and first["agent_steps"] == 128
    assert main(["train", "--run-dir", str(finished_run), "--resume", "--total-steps", "256",
                 "--metrics-port", "0"]) == 0
    summary = json.loads((finished_run / "summary.json").read_text())
    assert summary["agent_steps"] == 256 and summary["resumed_from_update"] == 2
    history = [json.loads(line) for line in (finished_run / "history.jsonl").read_text().splitlines()]
    assert [h["agent_steps"] for h in history] == [128, 256]
    assert {k: v for k, v in history[0].items() if k != "ended_at"} == first  # the first segment, intact
    assert not [p for p in finished_run.iterdir() if p.name.endswith(".tmp")]
    printed = capsys.readouterr().out
    assert json.loads(printed[printed.rindex("\n{") + 1:]) == summary  # the summary printed as JSON


def test_a_missed_target_exits_3_with_a_sentence(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    code = main(["train", *TINY, "--total-steps", "64", "--target-return", "475", "--run-dir", str(run)])
    assert code == EXIT_TARGET_MISSED == 3
    err = one_line(capsys.readouterr().err)
    assert "did not reach --target-return 475" in err and "--total-steps" in err and "exit 3" in err, err
    assert json.loads((run / "summary.json").read_text())["outcome"] == "target_missed"


@pytest.mark.parametrize(
    ("sig", "code", "ranks"), [(signal.SIGINT, 130, 1), (signal.SIGTERM, 143, 1), (signal.SIGINT, 130, 2)],
    ids=["SIGINT", "SIGTERM", "SIGINT-2-ranks"],
)
def test_a_signal_stops_visibly_with_a_checkpoint(tmp_path, sig, code, ranks) -> None:
    """With 2 ranks the launcher forwards the signal; rank 0 speaks, and the launcher's signal sets the code."""
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "300"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "appliance", "train", *TINY, "--total-steps", "100000000", "--run-dir", str(run),
         "--ranks", str(ranks)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    err: list[str] = []
    outs: list[str] = []
    readers = [threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True),
               threading.Thread(target=lambda: outs.extend(proc.stdout), daemon=True)]
    for reader in readers:
        reader.start()
    try:
        deadline = time.monotonic() + 90
        while not any("first update done" in line for line in err):
            assert proc.poll() is None and time.monotonic() < deadline, "".join(err)
            time.sleep(0.05)
        proc.send_signal(sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    for reader in readers:
        reader.join(timeout=10)
    out = "".join(outs)
    assert proc.returncode == code, "".join(err)
    stops = [line for line in err if line.startswith("stopping after this update")]
    assert stops == [f"stopping after this update: checkpoint to {run / 'checkpoints'}/\n"], err
    written = [line for line in err if line.startswith("checkpoint written: ")]
    assert len(written) == 1 and err.index(stops[0]) < err.index(written[0])
    newest = checkpoint.list_checkpoints(run)[-1]
    assert str(newest) in written[0]
    summary = json.loads(out[out.rindex("\n{") + 1:])
    assert summary["outcome"] == "stopped" and summary["stop_signal"] == sig.name
    assert summary["checkpoint"] == str(newest) == json.loads((run / "summary.json").read_text())["checkpoint"]
    # The stopped run continues, and no earlier result is lost on the way.
    assert main(["train", "--run-dir", str(run), "--resume", "--ranks", str(ranks), "--total-steps",
                 str(summary["agent_steps"] + 64 * ranks), "--metrics-port", "0"]) == 0
    assert len((run / "history.jsonl").read_text().splitlines()) == 2


BLOCK_ALE = "import sys; sys.modules['ale_py'] = None; from appliance.cli import main; sys.exit(main(sys.argv[1:]))"


def without_ale(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    """`appliance ARGV` in a process where ale_py cannot be imported, as on a plain `pip install -e .`."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "300"}
    return subprocess.run([sys.executable, "-c", BLOCK_ALE, *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_envs_without_the_atari_extra(tmp_path, finished_run) -> None:
    import envs

    listed = without_ale("envs", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    for name in envs.names():
        row = next(line for line in listed.stdout.splitlines() if f" {name} " in line)
        if name.startswith("atari/"):
            assert 'not installed: pip install -e ".[atari]"' in row, row
        else:
            assert "not installed" not in row and "Discrete" in row, row
    # An atari run dir (a real checkpoint whose config names atari/pong) for eval.
    _, state = checkpoint.load_latest(finished_run)
    state["config"]["env"]["name"] = "atari/pong"
    pong = tmp_path / "pong"
    checkpoint.save(pong, state)
    for argv in (["train", "--env", "atari/pong", "--metrics-port", "0"],
                 ["doctor", "--env", "atari/pong", "--metrics-port", "0"], ["eval", str(pong)]):
        done = without_ale(*argv, cwd=tmp_path)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1, done.stderr
        assert f"appliance {argv[0]}: env 'atari/pong' needs the [atari] extra" in lines[0]
        assert lines[0].endswith('pip install -e ".[atari]"'), lines[0]
    assert not (tmp_path / "runs").exists()


def test_resume_of_a_run_that_reached_its_target_says_so(tmp_path, capsys) -> None:
    """A run stopped by --target-return is finished too, until the target changes."""
    run = tmp_path / "run"
    # The target counts once 100 episodes are in the window: 64 envs finish them within the first
    # few updates, before the policy learns to keep the pole up for hundreds of steps.
    wide = [*TINY, "--set", "env.num_envs=64", "--set", "ppo.num_steps=4"]  # 256 agent steps per update
    assert main(["train", *wide, "--total-steps", "25600", "--target-return", "5", "--run-dir", str(run)]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["outcome"] == "target_reached" and summary["agent_steps"] < 25600, summary
    before = digest(run)
    capsys.readouterr()
    assert main(["train", "--run-dir", str(run), "--resume", "--metrics-port", "0"]) == 0
    out = one_line(capsys.readouterr().out)
    assert "reached --target-return 5" in out and "--target-return 0" in out and "--total-steps" in out, out
    assert digest(run) == before
    assert main(["train", "--run-dir", str(run), "--resume", "--target-return", "0", "--metrics-port", "0"]) == 0
    assert json.loads((run / "summary.json").read_text())["agent_steps"] == 25600
