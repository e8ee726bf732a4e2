"""MetricsExporter: ports, the hot-path API and what it exposes."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

import pytest
from conftest import free_port_block, http_get

from monitoring import LOSSES, PHASES, MetricsExporter, MetricsPortError, check_port_free

LABELS = {"rank": "0", "env": "cartpole", "run": "unit"}


def make(port: int, local_rank: int = 0, **kw) -> MetricsExporter:
    return MetricsExporter(
        port, "127.0.0.1", rank=local_rank, local_rank=local_rank, env="cartpole", run="unit", gpus=(), **kw
    )


def value(exporter: MetricsExporter, name: str, **labels: str) -> float | None:
    return exporter.registry.get_sample_value(name, {**LABELS, **labels})


def test_port_zero_disables_serving_but_keeps_the_api():
    with make(0) as exporter:
        assert exporter.url is None and exporter.enabled is False
        exporter.add_steps(128)
        exporter.add_phase("learn", 0.5)
        exporter.set_losses({"policy_loss": -0.02})
        assert value(exporter, "appliance_env_steps_total") == 128
        assert value(exporter, "appliance_learner_phase_seconds_total", phase="learn") == 0.5
        assert value(exporter, "appliance_policy_loss") == -0.02


def test_serves_on_base_port_plus_local_rank():
    base = free_port_block(2)
    with make(base, local_rank=1) as exporter:
        assert exporter.port == base + 1
        exporter.add_steps(7)
        text = http_get(f"http://127.0.0.1:{base + 1}/metrics").decode()
        assert 'appliance_env_steps_total{env="cartpole",rank="1",run="unit"} 7.0' in text
    with pytest.raises(urllib.error.URLError):  # closed: nothing listens any more
        http_get(f"http://127.0.0.1:{base + 1}/metrics", timeout=2)


def test_busy_port_is_one_clear_error_before_anything_runs():
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        expected = f"metrics port {port} on 127.0.0.1 is in use; pass --metrics-port"
        with pytest.raises(MetricsPortError, match=expected) as info:
            check_port_free("127.0.0.1", port)
        assert isinstance(info.value, OSError)
        with pytest.raises(MetricsPortError, match=expected):
            make(port)
    check_port_free("127.0.0.1", port)  # free again once the squatter left


@pytest.mark.parametrize("port", [-1, 65536, True, "9100"])
def test_bad_port_is_a_value_error(port):
    with pytest.raises(ValueError, match="metrics port"):
        make(port)


def test_served_port_past_65535_is_a_value_error():
    with pytest.raises(ValueError, match="metrics port"):
        make(65535, local_rank=1)


def test_hot_path_updates():
    with make(0) as exporter:
        exporter.add_steps(100)
        exporter.add_steps(28)
        exporter.set_rate(1.5e6)
        exporter.observe_episodes({"episodes": 0})
        assert value(exporter, "appliance_episode_return") is None  # nothing finished: no made-up value
        exporter.observe_episodes({"episodes": 4, "episode_return": 21.5, "episode_length": 21.5, "score": 9})
        exporter.observe_episodes({"episodes": 2, "episode_return": 30.0, "episode_length": 31.0,
                                   "achievement_collect_wood": 0.5, "achievement_wake_up": 1.0})
        for phase in PHASES:
            exporter.add_phase(phase, 0.25)
        exporter.set_losses(dict.fromkeys(LOSSES, 0.125))
        exporter.set_restarts(2)
        exporter.set_restarts(5)
        assert value(exporter, "appliance_env_steps_total") == 128
        assert value(exporter, "appliance_steps_per_second") == 1.5e6
        assert value(exporter, "appliance_episodes_total") == 6
        assert value(exporter, "appliance_episode_return") == 30.0
        assert value(exporter, "appliance_episode_length_steps") == 31.0
        assert value(exporter, "appliance_episode_achievement_unlock_ratio", achievement="collect_wood") == 0.5
        assert value(exporter, "appliance_episode_achievement_unlock_ratio", achievement="wake_up") == 1.0
        assert all(value(exporter, "appliance_learner_phase_seconds_total", phase=p) == 0.25 for p in PHASES)
        assert all(value(exporter, f"appliance_{key}") == 0.125 for key in LOSSES)
        assert value(exporter, "appliance_actor_restarts_total") == 5


def test_bad_hot_path_input_names_the_parameter():
    with make(0) as exporter:
        with pytest.raises(ValueError, match="phase must be one of env_wait"):
            exporter.add_phase("backward", 1.0)
        with pytest.raises(ValueError, match="unknown key 'loss'"):
            exporter.set_losses({"loss": 1.0})
        exporter.set_restarts(3)
        with pytest.raises(ValueError, match="restarts total went down from 3 to 1"):
            exporter.set_restarts(1)
    with pytest.raises(ValueError, match="local_rank must be an int >= 0"):
        MetricsExporter(0, rank=0, local_rank=-1, env="cartpole", run="unit")


def test_build_info_names_versions():
    with make(0) as exporter:
        samples = [s for m in exporter.registry.collect() if m.name == "appliance_build" for s in m.samples]
        assert len(samples) == 1
        labels = samples[0].labels
        assert {"rank", "env", "run", "version", "torch", "numpy", "python"} <= set(labels)
        assert samples[0].value == 1.0


def test_no_gpu_assigned_means_no_gpu_series():
    base = free_port_block(1)
    with make(base) as exporter:
        assert exporter.gpu_unavailable
        text = urllib.request.urlopen(exporter.url, timeout=5).read().decode()
        assert "appliance_gpu_" not in text
