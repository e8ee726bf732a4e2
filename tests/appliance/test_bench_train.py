"""`appliance bench train`, smoke-sized: our trainer only (SB3 is too slow for a unit test)."""

import json

import pytest

from appliance.cli import main


@pytest.mark.timeout(120)
def test_bench_train_writes_records_with_medians(tmp_path, capsys) -> None:
    out = tmp_path / "train.json"
    code = main([
        "bench", "train", "--env", "cartpole", "--runs", "2", "--no-sb3", "--split-seconds", "0", "--json", str(out),
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


@pytest.mark.timeout(120)
def test_bench_train_split_and_candidates(tmp_path, capsys) -> None:
    """Pool alone, rollout, training and the split, then two candidates against a random policy."""
    out = tmp_path / "split.json"
    code = main([
        "bench", "train", "--env", "cartpole", "--runs", "0", "--split-seconds", "1.5", "--json", str(out),
        "--candidate", "as-is:", "--candidate", "tiny-lr:ppo.lr=0.00001", "--candidate-seconds", "3",
    ])
    assert code == 0
    records = {r["name"]: r for r in json.loads(out.read_text())}
    pool, roll, train = records["pool-only"], records["rollout-no-update"], records["training"]
    assert pool["steps_per_second"] > roll["steps_per_second"] > train["steps_per_second"] > 0
    assert roll["ratio_to_pool"] == pytest.approx(roll["steps_per_second"] / pool["steps_per_second"])
    assert train["ratio_to_pool"] == pytest.approx(train["steps_per_second"] / pool["steps_per_second"])
    fractions = train["phase_fraction"]
    assert set(fractions) == {"env", "inference", "copy", "learn", "other"}
    assert all(v >= 0 for v in fractions.values()) and sum(fractions.values()) == pytest.approx(1.0, abs=0.02)
    assert fractions["learn"] > 0 and fractions["inference"] > 0
    assert train["agent_steps"] > 0 and train["pool"] == "serial"
    as_is, tiny = records["candidate-as-is"], records["candidate-tiny-lr"]
    assert as_is["overrides"] == [] and tiny["overrides"] == ["ppo.lr=0.00001"]
    assert as_is["random_return"] == tiny["random_return"] > 0  # one baseline, measured once
    for r in (as_is, tiny):
        assert r["gain_over_random"] == pytest.approx(r["mean_return"] - r["random_return"])
        assert 0 < r["random_reward_per_step"] <= 1 and 0 < r["reward_per_step"] <= 1  # cartpole pays 1 a step
    # Three seconds of cartpole's tuned config leave a learning rate 1000x smaller behind.
    assert as_is["mean_return"] > tiny["mean_return"]
    text = capsys.readouterr().out
    assert "where training's time goes" in text and "learning per wall-second" in text
    assert "race to mean return" not in text  # --runs 0: no race


def test_bench_train_rejects_a_malformed_candidate(capsys) -> None:
    assert main(["bench", "train", "--env", "cartpole", "--candidate", "ppo.lr=1"]) == 2
    assert "--candidate" in capsys.readouterr().err


@pytest.mark.timeout(120)
def test_bench_train_under_load_says_so_and_leaves_no_spinner(tmp_path) -> None:
    import os

    from proc_util import spinners

    out = tmp_path / "loaded.json"
    assert main(["bench", "train", "--env", "cartpole", "--runs", "0", "--split-seconds", "0.5",
                 "--busy-cores", "1", "--json", str(out)]) == 0
    records = json.loads(out.read_text())
    assert {r["name"] for r in records} == {"pool-only", "rollout-no-update", "training"}
    assert all(r["load"] == "1 core busy" for r in records)
    assert not spinners(recursive=True)
    cores = len(os.sched_getaffinity(0))
    assert main(["bench", "train", "--env", "cartpole", "--busy-cores", str(cores), "--split-seconds", "0.5"]) == 2
