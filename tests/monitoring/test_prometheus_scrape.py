"""A real Prometheus scrapes a real two-rank `appliance train` run; the dashboard's PromQL is evaluated by it."""

from __future__ import annotations

import re
import statistics
import subprocess
import time
import urllib.request

import psutil
import pytest
from conftest import ACTORS, NUM_ENVS, RANKS, TRAIN_COMMAND, stop_process, wait_until

import envs
from actors.arena import PREFIX, layout, shm_dir
from learner import checkpoint
from monitoring.dashboard import dashboard_json
from monitoring.gpu import GpuSampler, GpuUnavailable

pytestmark = pytest.mark.timeout(300)


def _has_gpu() -> bool:
    try:
        GpuSampler().close()
        return True
    except GpuUnavailable:
        return False


HAS_GPU = _has_gpu()


@pytest.fixture(scope="module")
def setup(scraped_run, prometheus):
    run = scraped_run(TRAIN_COMMAND)
    prom = prometheus(run.targets)
    # rate() over 10 s needs a few samples of each rank: wait until both give a positive rate.
    rate = f'rate(appliance_env_steps_total{{run="{run.run}"}}[10s]) > 0'
    wait_until(lambda: len(prom.query(rate)) == RANKS, 120, "a positive steps rate from every rank")
    return run, prom


def dashboard_exprs() -> list[tuple[str, str]]:
    """The training panels' queries; the Sweeps row's are evaluated against a sweep (test_sweep_metrics.py),
    the Remote row's need remote actor hosts (tests/remote)."""
    out = []
    for panel in dashboard_json()["panels"]:
        for target in panel.get("targets", []):
            if "appliance_sweep_" not in target["expr"] and "appliance_remote_" not in target["expr"]:
                out.append((panel["title"], target["expr"]))
    return out


def substitute(expr: str, run: str) -> str:
    """Fills Grafana's variables as Grafana would for this run and all its ranks."""
    return (expr.replace("$run", run).replace("$rank", ".*")
            .replace("$__rate_interval", "10s").replace("$__interval", "5s"))


def test_prometheus_scrapes_every_rank(setup):
    run, prom = setup
    up = prom.query('up{job="appliance"}')
    assert sorted(s["metric"]["instance"] for s in up) == sorted(run.targets)
    assert all(s["value"][1] == "1" for s in up)
    ranks = prom.query(f'count by (rank) (appliance_build_info{{run="{run.run}"}})')
    assert sorted(s["metric"]["rank"] for s in ranks) == [str(r) for r in range(RANKS)]


def test_every_series_is_labelled_rank_env_run(setup):
    run, prom = setup
    series = prom.query('{__name__=~"appliance_.+"}')
    assert len(series) > 20
    for s in series:
        labels = s["metric"]
        assert labels.get("run") == run.run, labels
        assert labels.get("env") == "cartpole", labels
        assert labels.get("rank") in {str(r) for r in range(RANKS)}, labels


@pytest.mark.parametrize(("title", "expr"), dashboard_exprs(), ids=lambda v: v if len(v) < 40 else None)
def test_dashboard_expression_returns_series(setup, title, expr):
    run, prom = setup
    result = prom.query(substitute(expr, run.run))
    if "appliance_gpu_" in expr and not HAS_GPU:
        assert result == [], f"{title}: GPU series without a GPU: {result}"
    else:
        assert result, f"{title}: no series for {substitute(expr, run.run)}"


@pytest.mark.skipif(HAS_GPU, reason="this machine has a GPU")
def test_no_gpu_series_at_all_without_gpu(setup):
    _, prom = setup
    assert prom.query('{__name__=~"appliance_gpu_.+"}') == []


def test_promtool_accepts_each_rank_exposition(setup):
    run, _ = setup
    for rank in range(RANKS):
        text = run.metrics(rank)
        check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True,
                               timeout=30)
        assert check.returncode == 0, f"rank {rank}: {check.stdout}{check.stderr}"


def test_process_series_are_plausible(setup):
    run, prom = setup
    actors = f'appliance_actor_cpu_ratio{{run="{run.run}"}}'
    wait_until(lambda: len(prom.query(actors)) == RANKS * ACTORS, 30, "CPU readings of every rank's actors")
    per_rank = prom.query(f"count by (rank) ({actors})")
    assert sorted((s["metric"]["rank"], s["value"][1]) for s in per_rank) == [
        (str(r), str(ACTORS)) for r in range(RANKS)
    ]
    for s in prom.query(f'appliance_actor_cpu_ratio{{run="{run.run}"}}'):
        assert 0.0 <= float(s["value"][1]) <= 1.0
    for s in prom.query(f'appliance_actor_rss_bytes{{run="{run.run}"}}'):
        assert float(s["value"][1]) > 1e6  # a Python process with numpy loaded
    arena = prom.query(f'appliance_arena_shm_bytes{{run="{run.run}"}}')
    _, size = layout(envs.buffer_spec("cartpole", NUM_ENVS))  # each rank's ActorPool arena file
    assert [float(s["value"][1]) for s in arena] == [size] * RANKS
    episodes = prom.query(f'appliance_episode_return{{run="{run.run}"}}')
    assert len(episodes) == RANKS
    assert all(5 < float(s["value"][1]) <= 500 for s in episodes)  # CartPole-v1 returns, learning or not


def test_measure_scrape_time(setup, record_property):
    """Not an assertion: the median time of one /metrics scrape, printed and recorded."""
    run, _ = setup
    url = f"http://127.0.0.1:{run.base_port}/metrics"
    times = []
    for _ in range(50):
        start = time.perf_counter()
        with urllib.request.urlopen(url, timeout=5) as answer:
            size = len(answer.read())
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    record_property("scrape_median_ms", median * 1e3)
    print(f"\n/metrics scrape: median {median * 1e3:.2f} ms over 50 ({size} bytes)")
    assert re.search(r"^appliance_env_steps_total\{", run.metrics(0), re.M)


def test_sigterm_to_the_launcher_stops_every_rank_with_a_checkpoint_and_no_leftovers(setup):
    """Runs last: stops the run as `docker stop` does and looks for what it left behind."""
    run, _ = setup
    family = psutil.Process(run.process.pid).children(recursive=True)
    pids = {p.pid for p in family} | {run.process.pid}
    assert len(family) >= RANKS * 3  # ranks, their fork servers and actors
    stop_process(run.process)
    assert run.process.returncode == 143, (run.run_dir.parent / "train.log").read_text()[-2000:]
    assert checkpoint.list_checkpoints(run.run_dir)
    assert (run.run_dir / "summary.json").exists()
    # Helpers that outlive the launcher (fork servers, resource trackers) get the 2 s every actor gets.
    _, alive = psutil.wait_procs(family, timeout=2.0)
    alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert alive == [], [(p.pid, p.cmdline()) for p in alive]
    left = [e.name for e in shm_dir().iterdir()
            if e.name.startswith(PREFIX) and int(e.name[len(PREFIX):].split("-")[0]) in pids]
    assert left == []
