"""The image and deployment files point at paths and ports the code really uses."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PORT = 9100


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) pairs with line continuations joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_every_path_the_dockerfile_copies_from_the_context_exists() -> None:
    copies = [args for word, args in dockerfile() if word == "COPY" and "--from=" not in args]
    assert copies
    for args in copies:
        *sources, _dest = shlex.split(args)
        for source in sources:
            assert (ROOT / source).exists(), f"Dockerfile copies {source}, which is not in the repo"


def test_dockerignore_keeps_what_the_build_copies() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip()}
    copied = {
        source.rstrip("/")
        for word, args in dockerfile() if word == "COPY" and "--from=" not in args
        for source in shlex.split(args)[:-1]
    }
    assert not copied & ignored


def test_image_runs_as_non_root_with_appliance_entrypoint_and_metrics_on_all_interfaces() -> None:
    steps = dockerfile()
    users = [args for word, args in steps if word == "USER"]
    assert users and users[-1] not in ("root", "0")
    entry = [json.loads(args) for word, args in steps if word == "ENTRYPOINT"]
    assert entry == [["appliance"]]
    env = " ".join(args for word, args in steps if word == "ENV")
    assert "APPLIANCE_METRICS_ADDR=0.0.0.0" in env
    health = [args for word, args in steps if word == "HEALTHCHECK"]
    assert health and json.loads(health[0].split("CMD", 1)[1])[0] == "appliance"
    assert any(word == "EXPOSE" and str(DEFAULT_PORT) in args for word, args in steps)


def test_compose_provisions_prometheus_and_grafana_without_a_default_password() -> None:
    compose = yaml.safe_load((ROOT / "deploy/docker-compose.yml").read_text())
    services = compose["services"]
    assert {"appliance", "prometheus", "grafana"} <= set(services)
    app = services["appliance"]
    assert app["shm_size"]
    assert any(str(DEFAULT_PORT) in str(p) for p in app["ports"])
    password = services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}", password), password
    base = ROOT / "deploy"
    for service in ("prometheus", "grafana"):
        for volume in services[service]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (base / source).exists(), f"{service} mounts {source}, which does not exist"


def test_prometheus_scrapes_every_local_rank_port() -> None:
    config = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())
    targets = [t for job in config["scrape_configs"] if job["job_name"] == "appliance"
               for sc in job["static_configs"] for t in sc["targets"]]
    ports = sorted(int(t.rsplit(":", 1)[1]) for t in targets)
    assert ports == list(range(DEFAULT_PORT, DEFAULT_PORT + 8))


def test_grafana_provisioning_points_at_the_mounted_dashboards() -> None:
    provider = yaml.safe_load((ROOT / "monitoring/grafana/provisioning/dashboards/appliance.yml").read_text())
    paths = [p["options"]["path"] for p in provider["providers"]]
    compose = yaml.safe_load((ROOT / "deploy/docker-compose.yml").read_text())
    mounts = [v.split(":")[1] for v in compose["services"]["grafana"]["volumes"] if v.startswith(".")]
    assert all(any(path.startswith(m) for m in mounts) for path in paths)
    assert list((ROOT / "monitoring/dashboards").glob("*.json"))


def test_pytorchjob_requests_gpus_memory_backed_shm_and_is_scraped() -> None:
    job = yaml.safe_load((ROOT / "deploy/k8s/pytorchjob.yaml").read_text())
    assert job["kind"] == "PyTorchJob"
    assert job["spec"]["elasticPolicy"]["rdzvBackend"] == "c10d"
    for replica in job["spec"]["pytorchReplicaSpecs"].values():
        template = replica["template"]
        notes = template["metadata"]["annotations"]
        assert notes["prometheus.io/scrape"] == "true" and int(notes["prometheus.io/port"]) == DEFAULT_PORT
        spec = template["spec"]
        container = spec["containers"][0]
        assert container["resources"]["limits"]["nvidia.com/gpu"] >= 1
        assert container["command"] == ["torchrun"] and "appliance" in container["args"]
        shm_mounts = [m["name"] for m in container["volumeMounts"] if m["mountPath"] == "/dev/shm"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert shm_mounts and volumes[shm_mounts[0]]["emptyDir"]["medium"] == "Memory"


@pytest.mark.parametrize("script", ["deploy/launch-multinode.sh", "deploy/smoke-image.sh"])
def test_scripts_are_executable_bash(script: str) -> None:
    path = ROOT / script
    assert path.stat().st_mode & 0o111
    assert path.read_text().startswith("#!/usr/bin/env bash")


def _appliance_args(argv: list[str]) -> list[str]:
    """What follows ``-m appliance`` in a torchrun command line."""
    start = next(i for i in range(len(argv) - 1) if argv[i : i + 2] == ["-m", "appliance"])
    return argv[start + 2 :]


def test_restartable_launchers_resume_only_when_a_checkpoint_exists() -> None:
    """torchrun restarts (and pod restarts) rerun the same command: it must train fresh the first
    time and continue afterwards, which is --resume-if-present, never --resume."""
    from appliance.cli import build_parser

    job = yaml.safe_load((ROOT / "deploy/k8s/pytorchjob.yaml").read_text())
    container = job["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]
    script = (ROOT / "deploy/launch-multinode.sh").read_text().replace("\\\n", " ")
    line = next(x for x in script.splitlines() if x.strip().startswith("exec torchrun"))
    for argv in (container["args"], shlex.split(line.replace('"$@"', ""))):
        args = build_parser().parse_args(_appliance_args(argv))
        assert args.command == "train" and args.run_dir and args.resume_if_present and not args.resume
    assert "--max-restarts" in line and job["spec"]["elasticPolicy"]["maxRestarts"] >= 1
    # Without it a restarted round reuses the old worker store and its stale peer addresses.
    assert "export TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1" in script
    assert {"name": "TORCH_DISABLE_SHARE_RDZV_TCP_STORE", "value": "1"} in container["env"]


def _parsed(argv: list[str]):
    from appliance.cli import build_parser

    return build_parser().parse_args(argv)


def test_compose_remote_profile_runs_a_learner_and_two_actor_hosts_with_keys() -> None:
    compose = yaml.safe_load((ROOT / "deploy/docker-compose.yml").read_text())
    services = compose["services"]
    remote = {name for name, s in services.items() if "remote" in s.get("profiles", [])}
    assert remote == {"learner", "actors-1", "actors-2"}
    learner = _parsed(services["learner"]["command"])
    assert learner.command == "train" and learner.remote_hosts == 2 and learner.remote_keys == "/keys"
    port = int(learner.remote_actors.rsplit(":", 1)[1])
    clients = set()
    for name in ("actors-1", "actors-2"):
        host = _parsed(services[name]["command"])
        assert host.command == "actors" and host.action == "serve" and not host.insecure
        assert host.connect == f"tcp://learner:{port}" and host.keys == "/keys"
        assert any(v.endswith(":/keys:ro") for v in services[name]["volumes"])
        clients.add(host.client)
    assert len(clients) == 2  # one key pair each, as `appliance keys new` makes them
    config = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())
    remote_targets = [t for job in config["scrape_configs"] if job["job_name"] == "appliance-remote"
                      for sc in job["static_configs"] for t in sc["targets"]]
    assert remote_targets == [f"learner:{DEFAULT_PORT}"]


def test_k8s_actor_deployment_feeds_the_learner_job_with_keys_from_one_secret() -> None:
    docs = {d["kind"]: d for d in yaml.safe_load_all((ROOT / "deploy/k8s/remote-actors.yaml").read_text())}
    assert set(docs) == {"PyTorchJob", "Service", "Deployment"}
    job = docs["PyTorchJob"]["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]
    train = _parsed(_appliance_args(job["containers"][0]["args"]))
    assert train.remote_actors == "tcp://*:5555" and train.remote_keys == "/keys"
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in pod["containers"][0]["resources"]["limits"]  # CPU-only pods
    serve = _parsed(pod["containers"][0]["args"])
    service = docs["Service"]
    assert serve.connect == f"tcp://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}"
    assert docs["Deployment"]["spec"]["replicas"] == train.remote_hosts
    learner_keys = {i["path"] for i in job["volumes"][0]["secret"]["items"]}
    host_keys = {i["path"] for i in pod["volumes"][0]["secret"]["items"]}
    assert job["volumes"][0]["secret"]["secretName"] == pod["volumes"][0]["secret"]["secretName"]
    # The learner holds its secret key and the listed public client keys; a host the reverse.
    assert learner_keys == {"server.key_secret", f"clients/{serve.client}.key"}
    assert host_keys == {"server.key", f"clients/{serve.client}.key_secret"}
    assert not any(p.endswith("key_secret") and p.startswith("clients/") for p in learner_keys)
