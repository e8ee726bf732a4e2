"""A real Prometheus server scraping a real two-rank `appliance train` run, for the monitoring tests.

``TRAIN_COMMAND`` is what gets scraped: {port} is the base metrics port, {dir}
a fresh parent directory and {run} a unique run name (the run dir's name, hence
the ``run`` label). The run trains CartPole on 2 CPU ranks with the actor pool
(2 actors each, so actor CPU/RSS and arena series exist) and far more steps than
a test lasts; it is stopped the way `docker stop` stops it, SIGTERM to the
launcher only, after which every rank checkpoints and exits.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RANKS = 2
NUM_ENVS = 32
ACTORS = 2  # per rank
TRAIN_COMMAND = [
    sys.executable, "-m", "appliance", "train", "--env", "cartpole", "--ranks", str(RANKS),
    "--metrics-port", "{port}", "--metrics-addr", "127.0.0.1", "--run-dir", "{dir}/{run}",
    "--set", "pool.kind=actors", "--set", f"pool.num_actors={ACTORS}", "--set", f"env.num_envs={NUM_ENVS}",
    "--set", "train.total_steps=1000000000", "--set", "train.log_every_seconds=30",
]
PROMETHEUS = shutil.which("prometheus")


def free_port_block(n: int, attempts: int = 50) -> int:
    """A base port with ``n`` consecutive free ports on 127.0.0.1."""
    for _ in range(attempts):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + n > 65535:
            continue
        try:
            socks = []
            for i in range(n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", base + i))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no block of {n} free ports found")


def http_get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        return answer.read()


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def stop_process(proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """SIGTERM to the process itself (as `docker stop` does); its whole session is SIGKILLed after ``timeout``."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # leftovers of a run that did not stop cleanly
    except ProcessLookupError:
        pass
    if proc.poll() is None:
        proc.wait(10)


@dataclass
class ScrapedRun:
    process: subprocess.Popen
    base_port: int
    run: str
    run_dir: Path

    @property
    def targets(self) -> list[str]:
        return [f"127.0.0.1:{self.base_port + r}" for r in range(RANKS)]

    def metrics(self, rank: int) -> str:
        return http_get(f"http://127.0.0.1:{self.base_port + rank}/metrics").decode()


@dataclass
class Prometheus:
    process: subprocess.Popen
    url: str

    def query(self, expr: str) -> list[dict]:
        """Instant query through the HTTP API; the result vector (or matrix/scalar as a list)."""
        body = json.loads(http_get(f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})))
        assert body["status"] == "success", body
        result = body["data"]["result"]
        if body["data"]["resultType"] == "scalar":
            return [{"metric": {}, "value": result}]
        return result


@pytest.fixture(scope="module")
def scraped_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[list[str]], ScrapedRun]]:
    """Starts ``command`` (with {port}, {dir} and {run} filled in) and waits until every rank serves metrics."""
    started: list[subprocess.Popen] = []

    def start(command: list[str]) -> ScrapedRun:
        base = free_port_block(RANKS)
        run = f"test-{uuid.uuid4().hex[:8]}"
        parent = tmp_path_factory.mktemp("runs")
        argv = [part.format(port=base, run=run, dir=parent) for part in command]
        log = open(parent / "train.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(argv, cwd=REPO, start_new_session=True, stdout=log, stderr=subprocess.STDOUT)
        started.append(proc)
        handle = ScrapedRun(proc, base, run, parent / run)

        def serving() -> bool:
            if proc.poll() is not None:
                output = (parent / "train.log").read_text()[-2000:]
                raise RuntimeError(f"{argv[:5]} exited with {proc.returncode} before serving metrics: {output}")
            return all("appliance_env_steps_total{" in handle.metrics(r) for r in range(RANKS))

        wait_until(serving, 120, f"{RANKS} ranks to serve /metrics")
        return handle

    yield start
    for proc in started:
        stop_process(proc)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[list[str]], Prometheus]]:
    """Starts a real Prometheus scraping ``targets`` every second; stops it at teardown."""
    if PROMETHEUS is None:
        pytest.skip("the prometheus server is not installed (Debian: apt-get install prometheus)")
    started: list[subprocess.Popen] = []

    def start(targets: list[str]) -> Prometheus:
        home = tmp_path_factory.mktemp("prometheus")
        config = home / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: appliance\n    scrape_timeout: 1s\n"
            f"    static_configs:\n      - targets: {json.dumps(targets)}\n"
        )
        port = free_port_block(1)
        log = open(home / "prometheus.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={home / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h",
             "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        started.append(proc)
        server = Prometheus(proc, f"http://127.0.0.1:{port}")

        def ready() -> bool:
            if proc.poll() is not None:
                log_text = (home / "prometheus.log").read_text()
                raise RuntimeError(f"prometheus exited with {proc.returncode}: {log_text}")
            return http_get(f"{server.url}/-/ready", timeout=1).startswith(b"Prometheus")

        wait_until(ready, 60, "prometheus /-/ready")
        return server

    yield start
    for proc in started:
        stop_process(proc)
