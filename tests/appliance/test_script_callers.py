"""Commands that start processes with ``multiprocessing``, called from a script without a main guard
and from ``python -``: `train --ranks 2` (torch's spawn) and `bench actors` (its raw-loop processes on
multiprocessing's fork server).

Both start methods re-run the caller's ``__main__`` in each child before the child's function: a
script without a main guard started its command over inside every child (which died on
multiprocessing's bootstrapping error), and code piped to ``python -`` could not be re-run at all.
The script appends its pid to a log at the top level: one line means nothing ran it twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """\
import os
from appliance.cli import main

with open("pids.log", "a") as log:
    log.write(str(os.getpid()) + "\\n")
code = main({argv!r})
print("command exit", code)
"""

TRAIN = ["train", "--env", "cartpole", "--device", "cpu", "--ranks", "2", "--total-steps", "4096",
         "--metrics-port", "0", "--run-dir", "run", "--set", "env.num_envs=16"]
BENCH = ["bench", "actors", "--env", "cartpole", "--runs", "1", "--seconds", "0.2", "--json", "bench.json"]


def run_unguarded(tmp_path: Path, argv: list[str], how: str) -> None:
    code = SCRIPT.format(argv=argv)
    (tmp_path / "t.py").write_text(code)
    args, stdin = ([sys.executable, "t.py"], None) if how == "script" else ([sys.executable, "-"], code)
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80"}
    done = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=240, cwd=tmp_path,
                          env=environ)
    out = done.stdout[-2000:] + done.stderr[-3000:]
    assert done.returncode == 0 and done.stdout.count("command exit 0") == 1, out
    assert len((tmp_path / "pids.log").read_text().split()) == 1, "the caller's main module ran again in a child"


@pytest.mark.parametrize("how", ["script", "stdin"])
def test_two_ranks_train_once_from_a_script_without_a_main_guard(tmp_path: Path, how: str) -> None:
    run_unguarded(tmp_path, TRAIN, how)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["ranks"] == 2 and summary["agent_steps"] >= 4096, summary


def test_bench_actors_runs_once_from_a_script_without_a_main_guard(tmp_path: Path) -> None:
    run_unguarded(tmp_path, BENCH, "script")
    records = json.loads((tmp_path / "bench.json").read_text())
    every_core = [r for r in records if r["name"].startswith("raw C loop") and "cores at once" in r["name"]]
    assert every_core and all(r["steps_per_second"] > 0 for r in every_core), [r["name"] for r in records]
