"""`appliance bench emulation --env`, smoke-sized, and the SB3 time split of `bench api`."""

import json

import pytest

from appliance.bench.emulation_env import MIN_PER_ACTOR, envs_per_actor, sized_per_actor
from appliance.cli import main


@pytest.mark.timeout(180)
def test_bench_emulation_env_writes_every_entry(tmp_path, capsys) -> None:
    out = tmp_path / "emu.json"
    code = main(["bench", "emulation", "--env", "CartPole-v1", "--num-envs", "4", "--seconds", "0.05",
                 "--runs", "1", "--json", str(out)])
    assert code == 0
    records = {r["name"]: r for r in json.loads(out.read_text())}
    vector = records["one actor's vector CartPole-v1, compiled step loop, one core"]
    assert vector["num_envs"] == 2 and vector["vs_plain"] > 0
    assert records["one actor's vector CartPole-v1, Python step loop, one core"]["vs_plain"] > 0
    plain_actor = records["plain loop over one actor's envs CartPole-v1, one core"]
    assert plain_actor["num_envs"] == 2 and plain_actor["steps_per_second"] > 0
    for order in ("turn", "ready"):
        pool = records[f"pool CartPole-v1, order {order}"]
        assert pool["num_envs"] == 4 and pool["order"] == order and pool["vs_ceiling"] > 0 and pool["vs_gym"] > 0
        ceiling = pool["cores"] * plain_actor["steps_per_second"]
        assert pool["vs_actor_ceiling"] == pytest.approx(pool["steps_per_second"] / ceiling)
    pack = records["pack + unpack / env step CartPole-v1"]
    assert pack["unit"] == "ratio" and pack["num_envs"] == 2
    assert "step path, compiled loop" in capsys.readouterr().out


def test_envs_per_actor_follows_the_plain_rate() -> None:
    assert envs_per_actor(100.0) == MIN_PER_ACTOR  # a slow env (Crafter): the floor
    assert envs_per_actor(50_000.0) == 100  # 2 ms of a 20 us step
    assert envs_per_actor(12_345.0) % 2 == 0


@pytest.mark.timeout(60)
def test_sized_per_actor_picks_among_halvings() -> None:
    chosen, rates = sized_per_actor("CartPole-v1", 16, 0.05)
    assert set(rates) == {16, 8, 4} and chosen in rates and all(r > 0 for r in rates.values())
    assert rates[chosen] >= 0.9 * max(rates.values())  # within SIZING_SLACK of the fastest
    assert all(rates[n] < 0.9 * max(rates.values()) for n in rates if n > chosen)  # and the largest such
    assert sized_per_actor("CartPole-v1", MIN_PER_ACTOR, 0.05) == (MIN_PER_ACTOR, {})  # nothing to halve


@pytest.mark.timeout(120)
def test_sb3_split_accounts_for_the_wall_time() -> None:
    from stable_baselines3.common.env_util import make_vec_env

    from appliance.bench.train import sb3

    venv = make_vec_env("CartPole-v1", n_envs=8, seed=0)
    result = sb3(0, 60.0, threads=1, timesteps=512, venv=venv, stop_at_target=False)
    split = result["split"]
    assert set(split) == {"env", "learn", "rollout_other"}
    assert split["env"] > 0 and split["learn"] > 0  # both were timed, not left at zero
    assert split["env"] + split["learn"] <= 1.0
    assert split["rollout_other"] == pytest.approx(1 - split["env"] - split["learn"])
