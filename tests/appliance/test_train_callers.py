"""`appliance train --ranks 2` from a script without a main guard and from ``python -``.

multiprocessing's spawn re-runs the caller's ``__main__`` in each child before the child's
function: a script without a main guard started its training again inside every rank (which
died on multiprocessing's bootstrapping error), and code piped to ``python -`` could not be
re-run at all. The script appends its pid to a log at the top level: one line means nothing
ran it twice.
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
code = main(["train", "--env", "cartpole", "--device", "cpu", "--ranks", "2", "--total-steps", "4096",
             "--metrics-port", "0", "--run-dir", "run", "--set", "env.num_envs=16"])
print("train exit", code)
"""


@pytest.mark.parametrize("how", ["script", "stdin"])
def test_two_ranks_train_once_from_a_script_without_a_main_guard(tmp_path: Path, how: str) -> None:
    (tmp_path / "t.py").write_text(SCRIPT)
    args, stdin = ([sys.executable, "t.py"], None) if how == "script" else ([sys.executable, "-"], SCRIPT)
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80"}
    done = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=240, cwd=tmp_path,
                          env=environ)
    out = done.stdout[-2000:] + done.stderr[-3000:]
    assert done.returncode == 0 and done.stdout.count("train exit 0") == 1, out
    assert len((tmp_path / "pids.log").read_text().split()) == 1, "the caller's main module ran again in a rank"
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["ranks"] == 2 and summary["agent_steps"] >= 4096, summary
