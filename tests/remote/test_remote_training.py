"""CartPole trained from two remote actor hosts, one behind 1 ms and one behind 10 ms of added
latency each way, reaches the return that local actors reach (the bar of tests/learner)."""

from __future__ import annotations

import pytest
from remote_util import needs_netns

from appliance.bench.netns import Relay
from appliance.train import free_port
from learner import config as C
from learner.pools import with_remote
from learner.train import train
from monitoring import MetricsExporter

pytestmark = needs_netns

TARGET = 475


def _samples(exporter: MetricsExporter, name: str) -> dict[str, float]:
    return {s.labels["host"]: s.value for m in exporter.registry.collect() for s in m.samples if s.name == name}


@pytest.mark.timeout(400)
def test_cartpole_from_two_remote_hosts_reaches_the_local_return(keys, namespaces, tmp_path):
    overrides = [f"train.target_return={TARGET}", "train.total_steps=1500000", "train.checkpoint_every=0"]
    local = train(C.apply_overrides(C.load("cartpole"), overrides), tmp_path / "local", live=False)
    assert local["mean_return"] >= TARGET, local

    port = free_port()
    one, two = namespaces(1), namespaces(2)
    relays = [Relay(one.here, f"127.0.0.1:{port}", 1.0), Relay(two.here, f"127.0.0.1:{port}", 10.0)]
    try:
        for ns, relay, name, client, core in ((one, relays[0], "near", "client-1", 0),
                                             (two, relays[1], "far", "client-2", 1)):
            ns.serve(f"tcp://{relay.address}", name, keys, client, [core], tmp_path / f"{name}.log")
        cfg = C.apply_overrides(with_remote(C.load("cartpole")), [
            *overrides, f"remote.bind=tcp://127.0.0.1:{port}", "remote.hosts=2", f"remote.keys={keys}",
            "remote.batches=2", "remote.join_timeout=90",
        ])
        with MetricsExporter(0, rank=0, local_rank=0, env="cartpole", run="remote") as metrics:
            remote = train(cfg, tmp_path / "remote", live=False, metrics=metrics)
            steps = _samples(metrics, "appliance_remote_env_steps_total")
            rtt = _samples(metrics, "appliance_remote_rtt_seconds")
            up = _samples(metrics, "appliance_remote_host_up")
    finally:
        for relay in relays:
            relay.close()
    print(f"local: {local['mean_return']:.0f} in {local['agent_steps']:,} steps; remote: "
          f"{remote['mean_return']:.0f} in {remote['agent_steps']:,} steps, {remote['wall_seconds']:.1f} s; rtt {rtt}")
    assert remote["outcome"] == "target_reached" and remote["mean_return"] >= TARGET, remote
    assert remote["dropped_transitions"] == 0
    # Both hosts fed the learner about equally, and the metrics say so per host.
    assert set(steps) == {"near", "far"} and min(steps.values()) >= 0.4 * sum(steps.values()), steps
    assert up == {"near": 1.0, "far": 1.0}
    # The relay holds each direction 10 ms: the far host's round trip is at least 20 ms, the near one's 2 ms.
    assert rtt["far"] >= 0.020 and rtt["near"] >= 0.002, rtt
