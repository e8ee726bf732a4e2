"""A real Prometheus scrapes a real `appliance sweep`; the dashboard's Sweeps row is evaluated by it."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from conftest import REPO, free_port_block, http_get, stop_process, wait_until

from monitoring.dashboard import dashboard_json

pytest.importorskip("optuna")
pytestmark = pytest.mark.timeout(300)

SPACE = '[ppo.lr]\nlog_uniform = [1e-3, 3e-2]\n'
TRIALS = 4


def sweep_exprs() -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in dashboard_json()["panels"] for t in p.get("targets", [])
            if "appliance_sweep_" in t["expr"]]


def test_the_sweeps_row_shows_a_running_sweep(tmp_path, prometheus) -> None:
    assert sweep_exprs(), "the dashboard has no Sweeps panel"
    port = free_port_block(1)
    name = f"m-{uuid.uuid4().hex[:6]}"
    (tmp_path / "space.toml").write_text(SPACE)
    argv = [sys.executable, "-m", "appliance", "sweep", "--env", "cartpole", "--space", str(tmp_path / "space.toml"),
            "--name", name, "--trials", str(TRIALS), "--steps", "8192", "--metrics-port", str(port),
            "--set", "env.num_envs=16", "--set", "train.checkpoint_every=0", "--set", "train.log_every_seconds=30"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "APPLIANCE_RUNS_DIR": str(tmp_path / "runs")}
    log = open(tmp_path / "sweep.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def serving() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"sweep exited with {proc.returncode}: {Path(log.name).read_text()[-2000:]}")
            return b"appliance_sweep_trials_total{" in http_get(f"http://127.0.0.1:{port}/metrics")

        wait_until(serving, 120, "the sweep to serve /metrics")
        prom = prometheus([f"127.0.0.1:{port}"])
        run = f"sweep-{name}"

        def query(expr: str) -> list[dict]:
            return prom.query(expr.replace("$run", run).replace("$rank", ".*"))

        # Until the sweep ends: a trial finishes and the best return shows (the coordinator refreshes every second).
        def best_shown() -> bool:
            assert proc.poll() is None, "the sweep ended before Prometheus saw a complete trial"
            return bool(query('max by (run) (appliance_sweep_best_return{run=~"$run"})'))

        wait_until(best_shown, 200, "a complete trial's best return in Prometheus")
        for title, expr in sweep_exprs():
            assert query(expr), f"{title}: no series for {expr}"
        target = query('max by (run) (appliance_sweep_trials_target{run=~"$run", rank=~"$rank"})')
        assert float(target[0]["value"][1]) == TRIALS
        # the dashboard's run variable is label_values(appliance_build_info, run): the sweep must be among them
        assert prom.query(f'appliance_build_info{{run="{run}"}}'), "the sweep is not listed among the runs"
        assert proc.wait(240) == 0, Path(log.name).read_text()[-2000:]
    finally:
        stop_process(proc)
    with pytest.raises(OSError):  # the server went with the process: nothing is left listening
        http_get(f"http://127.0.0.1:{port}/metrics", timeout=2)
