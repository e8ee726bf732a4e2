"""`appliance bench train`, smoke-sized: our trainer only (SB3 is too slow for a unit test)."""

import json

import pytest

from appliance.cli import main


@pytest.mark.timeout(120)
def test_bench_train_writes_records_with_medians(tmp_path, capsys) -> None:
    out = tmp_path / "train.json"
    code = main([
        "bench", "train", "--env", "cartpole", "--runs", "2", "--no-sb3", "--json", str(out),
        "--set", "train.total_steps=8192", "--set", "env.num_envs=64", "--seconds-limit", "60",
    ])
    assert code == 0
    records = json.loads(out.read_text())
    ours = records[0]
    assert ours["bench"] == "train" and ours["name"] == "appliance-ppo" and ours["env"] == "cartpole"
    assert [r["seed"] for r in ours["runs"]] == [1, 2]
    assert all(r["agent_steps"] == 8192 and r["steps_per_second"] > 0 for r in ours["runs"])
    rates = sorted(r["steps_per_second"] for r in ours["runs"])
    assert ours["steps_per_second"] == pytest.approx(sum(rates) / 2)  # median of two
    assert ours["seconds_to_target"] is None and ours["reached_target"] == "0/2"  # 8k steps: far from 475
    assert not any(r["name"] == "sb3-ppo" for r in records)
    on = next(r for r in records if r["name"] == "appliance-ppo-metrics-on")
    assert ours["metrics"] == "off" and on["metrics"] == "on"
    assert [r["seed"] for r in on["runs"]] == [1, 2] and all(r["agent_steps"] == 8192 for r in on["runs"])
    overhead = next(r for r in records if r["name"] == "appliance-ppo-metrics-overhead")
    assert overhead["overhead_ratio"] == pytest.approx(1 - on["steps_per_second"] / ours["steps_per_second"])
    assert "PPO on cartpole to mean return 475" in capsys.readouterr().out


def test_bench_train_rejects_unknown_env(capsys) -> None:
    assert main(["bench", "train", "--env", "nope", "--no-sb3"]) == 2
    assert "--env" in capsys.readouterr().err
