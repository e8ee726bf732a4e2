"""examples/cleanrl_ppo.py: CleanRL's PPO loop trains through the Gymnasium adapter over the pool."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(900)
def test_cleanrl_ppo_returns_rise(tmp_path: Path) -> None:
    out = tmp_path / "returns.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "cleanrl_ppo.py"), "--total-timesteps", "40960",
         "--learning-rate", "0.001", "--returns-file", str(out)],
        capture_output=True, text=True, timeout=840, env=env, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    returns = json.loads(out.read_text())
    assert len(returns) > 100
    first, last = np.mean(returns[:50]), np.mean(returns[-20:])
    assert last > 2 * first and last > 80, (first, last)
