"""The Grafana dashboard JSON, its provisioning files and `appliance dashboard export|push`."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources

import pytest
import yaml
from conftest import free_port_block

from appliance.cli import main
from monitoring import LOSSES, PHASES, MetricsExporter
from monitoring.dashboard import dashboard_json
from monitoring.exporter import _GPU_DOCS


def exported_names() -> set[str]:
    """Every series name the exporter can produce, GPU ones included."""
    with MetricsExporter(0, rank=0, local_rank=0, env="cartpole", run="unit") as exporter:
        exporter.observe_episodes({"episodes": 1, "episode_return": 1.0, "episode_length": 1.0})
        exporter.set_losses(dict.fromkeys(LOSSES, 0.0))
        for phase in PHASES:
            exporter.add_phase(phase, 0.0)
        from actors.remote_hosts import HostStats  # the remote actor hosts' series (Remote row)

        exporter.set_remote_hosts({"h": HostStats(steps=1, bytes_received=1, bytes_sent=1, rtt_seconds=0.1, lost=1)})
        names = {s.name for m in exporter.registry.collect() for s in m.samples}
    from monitoring.sweep import SweepMetrics  # the `appliance sweep` coordinator's series (Sweeps row)

    sweep = SweepMetrics(0, sweep="s", env="cartpole")
    sweep.update({"complete": 1}, 2, 1.0)
    names |= {s.name for m in sweep.registry.collect() for s in m.samples}
    return names | {f"appliance_gpu_{key}" for key in _GPU_DOCS} | {
        "appliance_actor_cpu_ratio", "appliance_actor_rss_bytes", "appliance_learner_cpu_ratio",
        "appliance_arena_shm_bytes"}


def test_dashboard_is_a_grafana_model_over_our_metrics():
    model = dashboard_json()
    assert model["schemaVersion"] >= 39 and model["uid"]
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert "label_values(" in variables["run"]["query"]["query"]
    assert "label_values(" in variables["rank"]["query"]["query"]
    known = exported_names()
    titles, ids = [], set()
    for panel in model["panels"]:
        assert panel["id"] not in ids
        ids.add(panel["id"])
        titles.append(panel["title"])
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}"
            assert 'run=~"$run"' in target["expr"] and 'rank=~"$rank"' in target["expr"]
            for name in re.findall(r"appliance_\w+", target["expr"]):
                assert name in known, f"panel {panel['title']!r} charts {name}, never exported"
    for wanted in ("Steps/s per rank", "GPU utilization", "GPU memory", "Episode return", "Losses",
                   "Learner time split", "Actor CPU", "Actor restarts"):
        assert wanted in titles


def test_provisioning_files_point_at_the_dashboard_folder():
    base = resources.files("monitoring").joinpath("grafana/provisioning")
    datasources = yaml.safe_load(base.joinpath("datasources/prometheus.yml").read_text())
    assert datasources["datasources"][0]["type"] == "prometheus"
    providers = yaml.safe_load(base.joinpath("dashboards/appliance.yml").read_text())
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_export_to_stdout_and_to_a_file(tmp_path, capsys):
    assert main(["dashboard", "export"]) == 0
    assert json.loads(capsys.readouterr().out) == dashboard_json()
    target = tmp_path / "appliance.json"
    assert main(["dashboard", "export", str(target)]) == 0
    assert json.loads(target.read_text()) == dashboard_json()
    assert main(["dashboard", "export", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_push_to_nothing_listening_is_one_sentence_and_exit_2(capsys):
    port = free_port_block(1)
    url = f"http://127.0.0.1:{port}"
    assert main(["dashboard", "push", "--url", url, "--token", "t", "--timeout", "3"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"cannot reach Grafana at http://127.0.0.1:{port}: Connection refused" in err


@pytest.mark.parametrize("extra", [[], ["--token", "t", "--user", "u", "--password", "p"], ["--user", "u"]])
def test_push_needs_exactly_one_kind_of_credentials(extra, capsys):
    assert main(["dashboard", "push", "--url", "http://127.0.0.1:1", *extra]) == 2
    assert "token" in capsys.readouterr().err


class _Recorder(BaseHTTPRequestHandler):
    """Answers like Grafana's POST /api/dashboards/db and keeps what it was sent."""

    seen: list[tuple[str, str, dict]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append((self.path, self.headers.get("Authorization", ""), body))
        answer = json.dumps({"status": "success", "uid": body["dashboard"]["uid"], "url": "/d/x/appliance"})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(answer.encode())

    def log_message(self, *args: object) -> None:
        pass


def test_push_posts_the_dashboard_with_overwrite_and_the_token():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert main(["dashboard", "push", "--url", url, "--token", "sekrit", "--timeout", "5"]) == 0
    finally:
        server.shutdown()
        server.server_close()
    path, auth, body = _Recorder.seen[-1]
    assert path == "/api/dashboards/db"
    assert auth == "Bearer sekrit"
    assert body["overwrite"] is True
    assert body["dashboard"]["uid"] == dashboard_json()["uid"] and body["dashboard"]["id"] is None
