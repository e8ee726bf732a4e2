"""Config overrides: typed by the file, unknown keys and wrong types named."""

import pytest
import tomllib

from appliance.cli import main
from learner import config as C


def test_override_types_follow_the_file() -> None:
    base = C.load("cartpole")
    cfg = C.apply_overrides(
        base,
        [
            "ppo.lr=0.1",
            "env.num_envs=8",
            "ppo.anneal_lr=false",
            "pool.kind=serial",
            "ppo.clip=1",
            "env.params.max_steps=200",
        ],
    )
    assert cfg["ppo"]["lr"] == 0.1 and cfg["env"]["num_envs"] == 8 and cfg["ppo"]["anneal_lr"] is False
    assert isinstance(cfg["ppo"]["clip"], float)
    assert base["env"]["num_envs"] != 8  # the loaded config is not modified


@pytest.mark.parametrize(
    "item, match",
    [
        ("ppo.nope=1", "ppo.nope"),
        ("nosection.lr=1", "nosection"),
        ("env.num_envs=many", "env.num_envs"),
        ("ppo.lr=fast", "ppo.lr"),
        ("ppo.anneal_lr=maybe", "ppo.anneal_lr"),
        ("lr", "section.key=value"),
    ],
)
def test_bad_overrides_raise_value_error(item: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        C.apply_overrides(C.load("cartpole"), [item])


def test_resolved_config_round_trips(tmp_path) -> None:
    cfg = C.apply_overrides(C.load("cartpole"), ["ppo.lr=0.02"])
    C.save(cfg, tmp_path / "config.toml")
    assert tomllib.loads((tmp_path / "config.toml").read_text()) == cfg


def test_every_shipped_config_loads() -> None:
    for name in C.config_names():
        cfg = C.load(name)
        assert cfg["env"]["name"] == name
        assert {"env", "pool", "ppo", "policy", "train"} <= set(cfg)


def test_cli_reports_bad_override_and_exits_nonzero(tmp_path, capsys) -> None:
    code = main(["train", "--env", "cartpole", "--run-dir", str(tmp_path / "run"), "--set", "ppo.nope=1"])
    assert code == 2
    assert "ppo.nope" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_on_cpu_table_applies_on_the_cpu_only_and_yields_to_user_keys() -> None:
    from learner import config as C

    base = C.load("snake")
    assert base["on_cpu"]["env.num_envs"] < base["env"]["num_envs"]
    cpu = C.for_device(base, "cpu")
    assert cpu["env"]["num_envs"] == base["on_cpu"]["env.num_envs"] and "on_cpu" not in cpu
    gpu = C.for_device(base, "cuda")
    assert gpu["env"]["num_envs"] == base["env"]["num_envs"] and "on_cpu" not in gpu
    pinned = C.for_device(C.apply_overrides(base, ["env.num_envs=8"]), "cpu", {"env.num_envs"})
    assert pinned["env"]["num_envs"] == 8


def test_validation_knows_every_policy_kind() -> None:
    from learner.policy import KINDS

    assert set(C.RULES["policy.kind"]) == set(KINDS)


def test_every_shipped_config_has_the_same_keys() -> None:
    """A key one env accepts is a key every env accepts (on_cpu tables aside: they are per env)."""
    import tomllib

    def keys(name: str) -> set[str]:
        data = tomllib.loads((C.CONFIG_DIR / f"{name}.toml").read_text())
        return flat(data)

    def flat(data: dict) -> set[str]:
        return {
            f"{s}.{k}" for s, table in data.items() if s != C.CPU_TABLE for k in table if (s, k) != ("env", "params")
        }

    names = C.config_names()
    assert len(names) >= 4
    first = keys(names[0])
    for name in names[1:]:
        assert keys(name) == first, (name, sorted(keys(name) ^ first))
    derived = flat(C.load("Acrobot-v1"))  # a config derived from an env's spaces takes the same keys
    assert derived == first, sorted(derived ^ first)
