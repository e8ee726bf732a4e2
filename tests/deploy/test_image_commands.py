"""The Dockerfile's commands, run outside a container against a real training process.

ENTRYPOINT + CMD (plus a short CartPole run's options) with the image's ENV
trains and serves /metrics; the HEALTHCHECK command, with the same ENV, then
exits 0, and exits non-zero once training has stopped. ``appliance`` is run as
``python -m appliance`` from this checkout (the same command, see
tests/appliance), and /runs, the image's WORKDIR and APPLIANCE_RUNS_DIR, is a
temp dir.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from test_deploy_files import dockerfile

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(240)


def _exec_form(args: str) -> list[str]:
    return json.loads(args) if args.startswith("[") else shlex.split(args)


def image() -> dict:
    """ENTRYPOINT, CMD, HEALTHCHECK command and ENV of the final stage."""
    steps = dockerfile()
    final = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    out: dict = {"env": {}}
    for word, args in steps[final:]:
        if word == "ENTRYPOINT":
            out["entrypoint"] = _exec_form(args)
        elif word == "CMD":
            out["cmd"] = _exec_form(args)
        elif word == "HEALTHCHECK":
            out["health"] = _exec_form(args.split(" CMD ", 1)[1].strip())
        elif word == "ENV":
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                out["env"][key] = value
    return out


def _local(argv: list[str]) -> list[str]:
    """``appliance ...`` as this checkout's ``python -m appliance ...``."""
    return [sys.executable, "-m", "appliance", *argv[1:]] if argv[0] == "appliance" else argv


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_entrypoint_trains_and_the_healthcheck_follows_it(tmp_path: Path) -> None:
    spec = image()
    assert spec["entrypoint"] == ["appliance"] and spec["cmd"][0] == "train"
    runs = tmp_path / "runs"
    runs.mkdir()
    port = _free_port()
    env = dict(os.environ, **spec["env"])
    assert env["APPLIANCE_METRICS_ADDR"] == "0.0.0.0"
    if "APPLIANCE_RUNS_DIR" in spec["env"]:
        env["APPLIANCE_RUNS_DIR"] = str(runs)
    env.update(APPLIANCE_METRICS_PORT=str(port), PYTHONPATH=str(ROOT))
    train = _local(spec["entrypoint"]) + spec["cmd"] + [
        "--env", "cartpole", "--set", "env.num_envs=16", "--set", "train.total_steps=1000000000",
    ]
    health = _local(spec["health"])
    log = tmp_path / "train.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(train, cwd=runs, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log.read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
                    if b"appliance_env_steps_total{" in answer.read():
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "training never served /metrics"
            time.sleep(0.3)
        ok = subprocess.run(health, cwd=runs, env=env, capture_output=True, text=True, timeout=60)
        assert ok.returncode == 0, ok.stderr
        assert f":{port}/metrics" in ok.stdout
        proc.send_signal(signal.SIGTERM)  # docker stop
        assert proc.wait(60) == 143, log.read_text()[-2000:]  # stopped by SIGTERM, checkpoint written
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    made = [p for p in runs.iterdir() if p.is_dir()]
    if "APPLIANCE_RUNS_DIR" in spec["env"]:  # the image's default run dirs land under it
        assert [p.name.split("-")[0] for p in made] == ["cartpole"]
        assert (made[0] / "config.toml").exists() and (made[0] / "checkpoints").is_dir()
    down = subprocess.run(health, cwd=runs, env=env, capture_output=True, text=True, timeout=60)
    assert down.returncode != 0
    assert len(down.stderr.strip().splitlines()) == 1, down.stderr
