"""A rank of a multi-rank run ends without the interpreter's teardown, spawned by `appliance train
--ranks 2` or started as torchrun starts it (`python -m appliance` with RANK and WORLD_SIZE set).

Why: torch keeps the gloo group's worker threads alive after ``destroy_process_group`` once DDP
wrapped a model, and a worker that drops a finished collective's tensors needs the GIL. Asked for
while the interpreter finalizes, Python ends that thread with ``pthread_exit`` inside C++ and the
rank aborts ("terminate called without an active exception", SIGABRT) after a run that saved
everything; CI saw it in one rank of one 2-rank test. The abort depends on thread scheduling, so
these tests check the condition that rules it out: no rank runs its atexit hooks (the first step
of the teardown), while its output and the run's files are all there.
A ``sitecustomize`` on PYTHONPATH registers the hook in every interpreter the run starts.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SITECUSTOMIZE = """\
import atexit, os, sys

def _finalized():
    if "torch" in sys.modules:  # the launcher and the ranks, not the actors' fork server
        path = os.path.join(os.environ["FINALIZED_DIR"], os.environ.get("RANK", "launcher") + "-" + str(os.getpid()))
        open(path, "w").close()

atexit.register(_finalized)
"""

TRAIN = ["train", "--env", "cartpole", "--device", "cpu", "--total-steps", "2048", "--metrics-port", "0",
         "--set", "env.num_envs=16", "--set", "train.log_every_seconds=1000"]


def _environ(tmp_path: Path) -> dict[str, str]:
    hooks, finalized = tmp_path / "hooks", tmp_path / "finalized"
    hooks.mkdir()
    finalized.mkdir()
    (hooks / "sitecustomize.py").write_text(SITECUSTOMIZE)
    environ = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    environ.update(PYTHONPATH=f"{hooks}{os.pathsep}{ROOT}", FINALIZED_DIR=str(finalized), COLUMNS="80")
    return environ


def _finalized(tmp_path: Path) -> list[str]:
    return sorted(p.name.split("-")[0] for p in (tmp_path / "finalized").iterdir())


def test_spawned_ranks_skip_the_teardown_and_lose_no_output(tmp_path: Path) -> None:
    environ = _environ(tmp_path)
    done = subprocess.run([sys.executable, "-m", "appliance", *TRAIN, "--ranks", "2", "--run-dir", "run"],
                          cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["ranks"] == 2 and summary["agent_steps"] >= 2048, summary
    assert sorted(p.name for p in (tmp_path / "run").glob("rank*.sha256")) == ["rank0.sha256", "rank1.sha256"]
    assert '"outcome": "finished"' in done.stdout, done.stdout[-2000:]  # the summary, printed by the launcher
    # The launcher (no process group) finalizes as usual: proof that the hook runs at all.
    assert _finalized(tmp_path) == ["launcher"], _finalized(tmp_path)


def test_torchrun_style_ranks_skip_the_teardown_and_lose_no_output(tmp_path: Path) -> None:
    environ = _environ(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ranks = []
    for rank in (0, 1):
        env = {**environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        ranks.append(subprocess.Popen([sys.executable, "-m", "appliance", *TRAIN, "--run-dir", "run"], cwd=tmp_path,
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = []
    try:
        for proc in ranks:
            out, err = proc.communicate(timeout=240)
            outputs.append((proc.returncode, out, err))
    finally:
        for proc in ranks:
            proc.kill()
    for code, out, err in outputs:
        assert code == 0, out[-2000:] + err[-3000:]
    summary = json.loads(outputs[0][1][outputs[0][1].index("{"):])  # rank 0 prints the run's summary last
    assert summary["ranks"] == 2 and summary["agent_steps"] >= 2048, summary
    assert "{" not in outputs[1][1], outputs[1][1]  # only rank 0 prints it
    assert _finalized(tmp_path) == [], _finalized(tmp_path)
    # The same hook in a plain interpreter with RANK set does run: the empty list above means something.
    subprocess.run([sys.executable, "-c", "import torch"], env={**environ, "RANK": "0"}, check=True, timeout=120)
    assert _finalized(tmp_path) == ["0"], _finalized(tmp_path)
