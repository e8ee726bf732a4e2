"""Bad input to `appliance`: one sentence on stderr, a non-zero exit, and nothing there before destroyed.

Each case aims at an existing run directory (a tiny real run's checkpoint and
config.toml), mostly with ``--resume`` so that only the refusal stands between
the bad input and a write into it; its files are hashed before and after.
Most cases call the command's ``main`` in this process at 80 columns (each
subprocess pays for importing torch); one runs as a real process.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from appliance.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(120)


def appliance(*argv: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80", **(env or {})}
    return subprocess.run([sys.executable, "-m", "appliance", *argv], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=90)


# The earlier run is finished: resuming it must extend it, or it stops at "finished" before any check.
EXTEND = ("--total-steps", "8192")


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished one-update CartPole run: config.toml, a checkpoint, summary.json."""
    run = tmp_path_factory.mktemp("earlier") / "run"
    done = appliance("train", "--env", "cartpole", "--total-steps", "4096", "--metrics-port", "0",
                     "--run-dir", str(run), cwd=run.parent)
    assert done.returncode == 0, done.stderr
    assert (run / "config.toml").exists() and list((run / "checkpoints").glob("*.pt"))
    return run


@pytest.fixture()
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The command's cwd; it must stay empty (no default run dir made on the way to an error)."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.delenv("APPLIANCE_RUNS_DIR", raising=False)
    yield cwd
    assert list(cwd.iterdir()) == []


@pytest.fixture()
def cli(capsys: pytest.CaptureFixture) -> Callable[..., subprocess.CompletedProcess]:
    """``appliance ARGV`` through ``appliance.cli.main`` in this process."""

    def run(*argv: str) -> subprocess.CompletedProcess:
        capsys.readouterr()
        code = main(list(argv))
        out = capsys.readouterr()
        return subprocess.CompletedProcess(argv, code, out.out, out.err)

    return run


def refused(result: subprocess.CompletedProcess, *needles: str) -> str:
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["--env", "nope"], ["unknown env 'nope'"]),
        (["--resume", "--set", "ppo.nope=1"], ["ppo.nope"]),
        (["--resume", "--set", "ppo.lr=abc"], ["ppo.lr", "abc"]),
        (["--resume", "--set", "pool.kind=threads"], ["pool.kind", "threads"]),
    ],
    ids=["unknown-env", "unknown-key", "bad-value-type", "bad-value"],
)
def test_bad_config_is_refused_and_the_run_is_untouched(earlier_run, workdir, cli, argv, needles) -> None:
    before = digest(earlier_run)
    line = refused(cli("train", "--run-dir", str(earlier_run), "--metrics-port", "0", *argv), *needles)
    assert line.startswith("appliance train: ")
    assert digest(earlier_run) == before


def test_a_real_process_prints_one_line_at_80_columns(earlier_run, workdir) -> None:
    before = digest(earlier_run)
    result = appliance("train", "--run-dir", str(earlier_run), "--env", "no-such-env-with-a-long-name",
                       "--metrics-port", "0", cwd=workdir)
    assert result.returncode == 2
    line = refused(result, "unknown env 'no-such-env-with-a-long-name'", "known: ", "cartpole")
    assert len(line) > 80  # so a wrapping console would have broken it
    assert digest(earlier_run) == before


def test_busy_metrics_port_is_refused_before_training(earlier_run, workdir, cli) -> None:
    before = digest(earlier_run)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli("train", "--resume", *EXTEND, "--run-dir", str(earlier_run), "--metrics-port", str(port),
                     "--metrics-addr", "127.0.0.1")
    refused(result, f"metrics port {port}", "in use", "--metrics-port")
    assert digest(earlier_run) == before


def test_second_rank_port_busy_is_refused_too(earlier_run, workdir, cli) -> None:
    before = digest(earlier_run)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli("train", "--resume", *EXTEND, "--run-dir", str(earlier_run), "--ranks", "2",
                     "--metrics-port", str(port - 1), "--metrics-addr", "127.0.0.1")
    refused(result, f"metrics port {port}", "in use")
    assert digest(earlier_run) == before


@pytest.fixture()
def tiny_shm(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "shm"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a 1 MB tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], timeout=30)


def test_too_little_shared_memory_is_refused(earlier_run, workdir, cli, tiny_shm, monkeypatch) -> None:
    before = digest(earlier_run)
    monkeypatch.setenv("APPLIANCE_SHM_DIR", str(tiny_shm))
    result = cli("train", "--resume", *EXTEND, "--run-dir", str(earlier_run), "--metrics-port", "0",
                 "--set", "pool.kind=actors")
    line = refused(result, str(tiny_shm), "free", "needs", "--shm-size=")
    suggested = re.search(r"--shm-size=(\d+)m", line)
    assert suggested and int(suggested.group(1)) * 2**20 > 2**20, line  # above the 1 MB there
    assert digest(earlier_run) == before
    assert list(tiny_shm.iterdir()) == []
    # The doctor reports the same directory, and fails.
    monkeypatch.setenv("COLUMNS", "300")
    doctor = cli("doctor", "--env", "cartpole", "--metrics-port", "0", "--set", "pool.kind=actors")
    assert doctor.returncode == 1
    assert str(tiny_shm) in doctor.stdout and "fail" in doctor.stdout


def test_run_dir_that_is_a_file_is_refused(tmp_path, workdir, cli) -> None:
    not_a_dir = tmp_path / "run"
    not_a_dir.write_bytes(b"not a run\n")
    for argv in (["train", "--resume", "--run-dir", str(not_a_dir)],
                 ["train", "--run-dir", str(not_a_dir), "--env", "cartpole"]):
        refused(cli(*argv, "--metrics-port", "0"), str(not_a_dir), "not a directory")
    refused(cli("eval", str(not_a_dir)), str(not_a_dir))
    assert not_a_dir.read_bytes() == b"not a run\n"


def test_unreadable_checkpoint_is_refused(earlier_run, tmp_path, workdir, cli) -> None:
    damaged = tmp_path / "damaged"
    shutil.copytree(earlier_run, damaged)
    ckpt = sorted((damaged / "checkpoints").glob("*.pt"))[-1]
    ckpt.write_bytes(ckpt.read_bytes()[:100])  # truncated: unreadable for root too
    before = digest(damaged)
    refused(cli("train", "--resume", "--run-dir", str(damaged), "--metrics-port", "0"),
            ckpt.name, "truncated or corrupt")
    refused(cli("eval", str(damaged)), ckpt.name)
    assert digest(damaged) == before


def test_doctor_passes_on_this_machine_for_a_serial_run(workdir, cli, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    done = cli("doctor", "--env", "cartpole", "--metrics-port", "0")
    assert done.returncode == 0, done.stdout
    assert "CPU cores" in done.stdout and "fail" not in done.stdout


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple]:
    """(argv path, parser) for the command and every subcommand, nested ones included."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(build_parser()))


@pytest.mark.parametrize(("path", "parser"), COMMANDS, ids=[" ".join(p) or "appliance" for p, _ in COMMANDS])
def test_help_exits_zero_and_mentions_every_option(path, parser, capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit) as exit_:
        main([*path, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for action in parser._actions:
        for option in action.option_strings:
            assert option in text, f"{' '.join(path)} --help does not mention {option}"
        if isinstance(action, argparse._SubParsersAction):
            for name in action.choices:
                assert name in text


def test_python_m_appliance_is_the_same_command(capsys, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit):
        main(["--help"])
    in_process = capsys.readouterr().out
    module = appliance("--help", cwd=tmp_path)
    assert module.returncode == 0
    assert module.stdout == in_process
    assert "doctor" in module.stdout and "train" in module.stdout


@pytest.mark.parametrize(
    ("override", "needles"),
    [
        ("env.num_envs=-5", ["env.num_envs", ">= 1", "-5"]),
        ("pool.order=random", ["pool.order", "turn, ready", "random"]),
        ("pool.order=ready", ["pool.order", "actors pool only", "--set pool.kind=actors"]),
        ("pool.num_actors=2", ["pool.num_actors", "actors pool only"]),
        ("ppo.anneal_lr=yes", ["ppo.anneal_lr", "true or false", "yes"]),
        ("ppo.gamma=1.5", ["ppo.gamma", "[0, 1]", "1.5"]),
        ("train.device=tpu", ["train.device", "auto, cpu, cuda"]),
        ("env.params.max_steps=0", ["max_steps", "[1, "]),
    ],
)
def test_a_bad_value_stops_a_fresh_run_before_anything_is_written(workdir, cli, override, needles) -> None:
    """The default run dir (runs/cartpole-...) would be made in workdir: the fixture checks it stays empty."""
    result = cli("train", "--env", "cartpole", "--metrics-port", "0", "--set", override)
    refused(result, *needles)
    assert result.stdout == ""  # not even the start-up line
    refused(cli("doctor", "--env", "cartpole", "--metrics-port", "0", "--set", override), *needles)


def test_eval_of_a_missing_run_dir_says_it_does_not_exist(workdir, cli) -> None:
    refused(cli("eval", "runs/nosuch"), "run directory runs/nosuch does not exist")


def test_shm_fix_suggests_a_size_above_the_need() -> None:
    from appliance.doctor import shm_size

    for need in (3 * 2**20, 900 * 2**20, 40 * 2**30, 8 * 2**30 + 1):
        size = shm_size(need)
        number, unit = int(size[:-1]), size[-1]
        assert number * {"m": 2**20, "g": 2**30}[unit] > need, (need, size)
    assert shm_size(40 * 2**30) == "44g"


def test_dashboard_push_names_the_flags(workdir, cli) -> None:
    refused(cli("dashboard", "push", "--url", "http://127.0.0.1:1"), "--token", "--user", "--password")


@pytest.mark.parametrize(
    ("overrides", "needles"),
    [
        (["ppo.minibatches=100000"], ["ppo.minibatches (100000)", "4096 steps"]),
        (["pool.kind=actors", "pool.num_actors=3", "env.num_envs=4"],
         ["env.num_envs = 4", "pool.num_actors = 3", "divisible"]),
    ],
    ids=["minibatches", "layout"],
)
def test_a_refusal_after_start_up_leaves_no_run_dir(workdir, cli, overrides, needles) -> None:
    """Checked once the env is made: the start-up line shows, but no directory stays behind."""
    sets = [arg for override in overrides for arg in ("--set", override)]
    refused(cli("train", "--env", "cartpole", "--metrics-port", "0", *sets), *needles)


def test_more_cpu_ranks_than_cores_are_refused(workdir, cli) -> None:
    cores = len(os.sched_getaffinity(0))
    refused(cli("train", "--env", "cartpole", "--device", "cpu", "--metrics-port", "0", "--ranks", str(cores + 1)),
            f"--ranks {cores + 1}", f"{cores} cores", f"--ranks {cores} at most")


@pytest.mark.parametrize(("var", "argv", "option"), [
    ("APPLIANCE_METRICS_PORT", ["health"], "--port"),
    ("APPLIANCE_METRICS_PORT", ["train", "--env", "cartpole"], "--metrics-port"),
    ("APPLIANCE_TOTAL_STEPS", ["train", "--env", "cartpole"], "--total-steps"),
])
def test_a_bad_value_from_the_environment_names_its_variable(workdir, monkeypatch, capsys, var, argv,
                                                             option) -> None:
    monkeypatch.setenv(var, "xyz")
    assert main(["envs"]) == 0  # other commands do not mind
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}:" in err and "'xyz'" in err and f"(from ${var})" in err


def test_two_ranks_refuse_in_one_line_and_leave_no_run_dir(workdir) -> None:
    """A rank's refusal reaches the launcher's stderr as the same one sentence, exit 2."""
    result = appliance("train", "--env", "cartpole", "--device", "cpu", "--ranks", "2", "--metrics-port", "0",
                       "--set", "ppo.minibatches=100000", "--run-dir", "run", cwd=workdir)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    refused(result, "appliance train: ppo.minibatches (100000)")


def test_ctrl_c_while_two_ranks_start_is_interrupted_not_a_traceback(workdir) -> None:
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80"}
    proc = subprocess.Popen([sys.executable, "-m", "appliance", "train", "--env", "cartpole", "--device", "cpu",
                             "--ranks", "2", "--metrics-port", "0", "--run-dir", "run"],
                            cwd=workdir, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not list(workdir.glob("run")) and time.monotonic() < deadline:  # the ranks are being spawned
            time.sleep(0.05)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Exception" not in err, err
    shutil.rmtree(workdir / "run", ignore_errors=True)  # a rank that got as far as an update checkpointed


@pytest.mark.parametrize(("out", "needles"), [
    ("afile", ["--out", "afile is a file"]),
    ("afile/x.gif", ["afile is a file, not a directory"]),
    ("game.png", ["one image cannot hold the game", ".gif"]),
])
def test_render_refuses_an_out_it_cannot_write_before_playing(workdir, cli, out, needles) -> None:
    (workdir / "afile").write_bytes(b"mine\n")
    refused(cli("render", "moba", "--out", out), *needles)
    assert (workdir / "afile").read_bytes() == b"mine\n"
    (workdir / "afile").unlink()  # the fixture wants the cwd as it found it


def test_render_of_a_missing_run_dir_says_it_does_not_exist(workdir, cli) -> None:
    refused(cli("render", "moba", "runs/nosuch", "--out", "g.gif"), "run directory runs/nosuch does not exist")
