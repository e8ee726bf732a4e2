"""The config schema: one default per key, every key for every env, overrides typed and ranged, old runs load."""

import dataclasses
import json
import shutil
import typing
from pathlib import Path

import pytest
import tomllib

from appliance.cli import main
from learner import config as C
from learner import schema

# A run directory written by the code before the schema (commit b39faff):
#   appliance train --env cartpole --set env.num_envs=8 --set ppo.num_steps=16 --set policy.hidden=8
#     --set policy.lstm_hidden=8 --set ppo.minibatches=2 --total-steps 256 --seed 3 --run-dir RUN
OLD_RUN = Path(__file__).parent / "data" / "run-2026-12-02"


def flat_keys(config: dict) -> set[str]:
    """``section.key`` of every value, ``env.params`` and ``on_cpu`` as one key each."""
    return {f"{s}.{k}" for s, table in config.items() if s != schema.CPU_TABLE for k in table}


SCHEMA_KEYS = {f"{name}.{f.name}" for name, cls in schema.SECTIONS.items() for f in dataclasses.fields(cls)}


def test_override_types_follow_the_schema() -> None:
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
    assert cfg["env"]["params"]["max_steps"] == 200 and isinstance(cfg["env"]["params"]["max_steps"], int)
    assert base["env"]["num_envs"] != 8  # the loaded config is not modified


@pytest.mark.parametrize(
    "item, match",
    [
        ("ppo.nope=1", "unknown config key 'ppo.nope'"),
        ("nosection.lr=1", "unknown config section 'nosection'"),
        ("env.num_envs=many", "env.num_envs"),
        ("ppo.lr=fast", "ppo.lr"),
        ("ppo.anneal_lr=maybe", "ppo.anneal_lr"),
        ("lr", "section.key=value"),
        ("ppo.lr=0", r"config 'ppo.lr' must be > 0, got 0.0"),
        ("ppo.gamma=1.5", r"config 'ppo.gamma' must be in \[0, 1\], got 1.5"),
        ("env.num_envs=0", r"config 'env.num_envs' must be >= 1, got 0"),
        ("pool.order=fastest", "config 'pool.order' must be one of turn, ready, got 'fastest'"),
        ("train.device=tpu", "config 'train.device' must be one of auto, cpu, cuda"),
        ("env.params=3", "env.params"),
        ("env.params.nope=1", r"unknown config key 'env.params.nope' \(cartpole's parameters: max_steps\)"),
        ("env.params.max_steps=1.5", "config 'env.params.max_steps' must be an integer"),
        ("ppo.lr.x=1", "ppo.lr.x"),
    ],
)
def test_bad_overrides_raise_value_error(item: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        C.apply_overrides(C.load("cartpole"), [item])


def test_resolved_config_round_trips(tmp_path) -> None:
    cfg = C.apply_overrides(C.load("cartpole"), ["ppo.lr=0.02"])
    C.save(cfg, tmp_path / "config.toml")
    assert tomllib.loads((tmp_path / "config.toml").read_text()) == cfg
    assert C.load(str(tmp_path / "config.toml")) == cfg  # a run directory's config.toml loads as a config


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
    base = C.load("snake")
    assert base["on_cpu"]["env.num_envs"] < base["env"]["num_envs"]
    cpu = C.for_device(base, "cpu")
    assert cpu["env"]["num_envs"] == base["on_cpu"]["env.num_envs"] and "on_cpu" not in cpu
    gpu = C.for_device(base, "cuda")
    assert gpu["env"]["num_envs"] == base["env"]["num_envs"] and "on_cpu" not in gpu
    pinned = C.for_device(C.apply_overrides(base, ["env.num_envs=8"]), "cpu", {"env.num_envs"})
    assert pinned["env"]["num_envs"] == 8


def test_the_schemas_choices_are_the_codes() -> None:
    """A string key's choices (a Literal) are the ones its reader knows."""
    from actors.pool import ORDERS
    from learner.policy import KINDS, PRECISIONS

    def choices(key: str) -> set[str]:
        _, _, hint = schema.lookup(key)
        return set(typing.get_args(hint))

    assert choices("policy.kind") == set(KINDS)
    assert choices("train.precision") == set(PRECISIONS)
    assert choices("pool.order") == set(ORDERS)


def test_every_field_has_a_docstring() -> None:
    for cls in schema.SECTIONS.values():
        docs = schema.docs(cls)
        names = [f.name for f in dataclasses.fields(cls)]
        assert sorted(docs) == sorted(names), cls.__name__
        assert all(len(docs[n]) > 10 for n in names), cls.__name__


@pytest.mark.parametrize("env", ["cartpole", "grid", "moba", "snake", "Acrobot-v1", "Pendulum-v1"])
def test_every_config_has_every_schema_key(env: str) -> None:
    """A key one env accepts is a key every env accepts: shipped and derived configs alike."""
    assert flat_keys(C.load(env)) == SCHEMA_KEYS


def test_shipped_files_hold_only_what_differs_from_the_defaults() -> None:
    """The schema is the one place a default is written: a file restating one would be a second."""
    from envs.native import param_defaults

    for name in C.config_names():
        data = tomllib.loads((C.CONFIG_DIR / f"{name}.toml").read_text())
        for section, table in data.items():
            if section == schema.CPU_TABLE:
                continue
            for key, value in table.items():
                dotted = f"{section}.{key}"
                assert dotted in SCHEMA_KEYS, (name, dotted)
                if dotted == "env.name":  # names the file's env
                    continue
                if dotted == "env.params":
                    header = param_defaults(name)
                    same = sorted(k for k, v in value.items() if header[k] == v)
                    assert not same, (name, f"env.params {same} restate the C header's defaults")
                    continue
                assert value != schema.default(dotted), (name, f"{dotted} = {value!r} is the schema's default")


def test_a_file_with_an_unknown_key_or_section_is_refused(tmp_path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('[env]\nname = "cartpole"\n\n[ppo]\nlearning_rate = 0.1\n')
    with pytest.raises(ValueError, match="mine.toml: unknown config key 'ppo.learning_rate'"):
        C.load(str(path))
    path.write_text('[env]\nname = "cartpole"\n\n[on_cpu]\n"ppo.nope" = 1\n')
    with pytest.raises(ValueError, match=r"mine.toml: \[on_cpu\] unknown config key 'ppo.nope'"):
        C.load(str(path))
    path.write_text('[env]\nname = "cartpole"\n\n[trainer]\nseed = 1\n')
    with pytest.raises(ValueError, match="unknown config section 'trainer'"):
        C.load(str(path))


def test_derived_configs_take_the_keys_shipped_ones_take() -> None:
    """`--set train.torch_threads` and `--set env.params.*` work for a derived config as for snake's."""
    import envs
    from appliance import train

    config, _ = train.resolve("Acrobot-v1", ["train.torch_threads=2", "env.params.max_episode_steps=50"],
                              None, False, {"train.device": "cpu"})
    assert config["train"]["torch_threads"] == 2 and config["env"]["params"] == {"max_episode_steps": 50}
    env = envs.make(config["env"]["name"], num_envs=1, **config["env"]["params"])
    try:  # the parameter reaches the env: a random policy's episode is cut at step 50
        env.reset(0)
        steps = next(t for t in range(1, 200) if (env.step(), env.truncations.any())[1])
    finally:
        env.close()
    assert steps == 50
    snake, _ = train.resolve("snake", ["train.torch_threads=2", "env.params.width=12"], None, False,
                             {"train.device": "cpu"})
    assert snake["train"]["torch_threads"] == 2 and snake["env"]["params"]["width"] == 12


def test_a_free_parameter_reads_as_a_toml_value() -> None:
    cfg = C.apply_overrides(C.load("Acrobot-v1"), ["env.params.a=3", "env.params.b=0.5", "env.params.c=true",
                                                   "env.params.d=rgb_array", 'env.params.e="7"'])
    assert cfg["env"]["params"] == {"a": 3, "b": 0.5, "c": True, "d": "rgb_array", "e": "7"}


def test_a_config_written_before_a_key_existed_gets_its_default() -> None:
    text = (OLD_RUN / "config.toml").read_text()
    old = tomllib.loads(text.replace("precision = \"fp32\"\n", "").replace("compile = false\n", ""))
    assert "precision" not in old["train"]
    done = C.complete(old)
    assert done["train"]["precision"] == "fp32" and done["train"]["compile"] is False
    assert done["env"]["params"] == {"max_steps": 500}


def test_a_run_directory_written_before_the_schema_still_loads(tmp_path, capsys) -> None:
    from learner import checkpoint
    from learner.evaluate import evaluate

    run = tmp_path / "run"
    shutil.copytree(OLD_RUN, run)
    _, state = checkpoint.load_latest(run)
    assert C.load(str(run / "config.toml")) == C.complete(state["config"])
    result = evaluate(run, 4)
    assert result["updates"] == 2 and result["episodes"] >= 4
    assert main(["train", "--run-dir", str(run), "--resume", "--total-steps", "512", "--metrics-port", "0"]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out[out.index("{"):])
    assert summary["resumed_from_update"] == 2 and summary["updates"] == 4 and summary["agent_steps"] == 512
    saved = tomllib.loads((run / "config.toml").read_text())
    assert saved["policy"]["hidden"] == 8 and saved["train"]["seed"] == 3  # the run's own config, completed


def test_appliance_config_shows_either_device_s_config_on_any_machine(capsys) -> None:
    """A CPU machine previews a GPU run's config (its [on_cpu] table not applied), and the reverse."""
    shown = {}
    for device in ("cpu", "cuda"):
        assert main(["config", "--env", "snake", "--device", device]) == 0
        shown[device] = tomllib.loads(capsys.readouterr().out)
    shipped = tomllib.loads((Path(C.__file__).parent / "configs" / "snake.toml").read_text())
    assert shown["cuda"]["env"]["num_envs"] == shipped["env"]["num_envs"]
    assert shown["cpu"]["env"]["num_envs"] == shipped["on_cpu"]["env.num_envs"] != shipped["env"]["num_envs"]
    assert shown["cuda"]["train"]["device"] == "cuda"


def test_appliance_config_prints_the_resolved_config_and_the_reference(capsys) -> None:
    assert main(["config", "--env", "cartpole", "--device", "cpu", "--set", "ppo.lr=0.5"]) == 0
    printed = tomllib.loads(capsys.readouterr().out)
    assert printed["ppo"]["lr"] == 0.5 and flat_keys(printed) == SCHEMA_KEYS
    assert main(["config", "--markdown"]) == 0
    table = capsys.readouterr().out
    assert table == schema.reference()
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert len(rows) == len(SCHEMA_KEYS) + 1  # and on_cpu.*
    assert "| `ppo.lr` | float > 0 | `0.00025` |" in table
    assert main(["config", "--markdown", "--env", "snake"]) == 2
