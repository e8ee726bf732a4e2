"""Run configuration: one TOML file per env, ``section.key=value`` overrides, the resolved copy on disk.

Overrides are typed by the file: a value must parse as the type the file already
holds for that key, so a typo or a wrong type fails before any training starts.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import tomli_w
import tomllib

CONFIG_DIR = Path(__file__).parent / "configs"

Config = dict[str, Any]


def config_names() -> list[str]:
    """Envs that ship a tuned config."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))


def load(env_or_path: str) -> Config:
    """Loads ``learner/configs/NAME.toml`` for an env name, or a TOML file by path.

    An env without a shipped TOML (a Gymnasium id such as ``CartPole-v1`` or
    ``gym:CartPole-v1``, a PettingZoo module, an ``atari/`` ROM) gets the
    generic config of :mod:`learner.defaults`, derived from its spaces.
    """
    path = Path(env_or_path)
    if path.suffix != ".toml":
        path = CONFIG_DIR / f"{env_or_path}.toml"
        if not path.exists():
            from envs import MissingExtra

            from .defaults import generic_config

            try:
                return generic_config(env_or_path)
            except MissingExtra:
                raise  # its sentence already says what to install
            except ValueError as exc:
                raise ValueError(
                    f"no config for env '{env_or_path}' (configs: {', '.join(config_names())}), "
                    f"and no env of that name to derive one from: {exc}"
                ) from None
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from exc


def _parse(text: str, like: Any, key: str) -> Any:
    if isinstance(like, bool):
        # Only TOML's own spellings: "yes", "1" or "on" would read as true to one person and a typo to another.
        low = text.strip().lower()
        if low == "true":
            return True
        if low == "false":
            return False
        raise ValueError(f"config '{key}' must be true or false, got {text!r}")
    if isinstance(like, int):
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"config '{key}' must be an integer, got {text!r}") from None
    if isinstance(like, float):
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"config '{key}' must be a number, got {text!r}") from None
    if isinstance(like, str):
        return text
    raise ValueError(
        f"config '{key}' is a {type(like).__name__} and cannot be overridden from the command line"
    )


def set_value(config: Config, dotted: str, value: Any) -> None:
    """Sets an existing key, checking the value's type against the one the config holds.

    ``value`` may be text (from the command line, parsed by the existing type) or
    an already typed Python value (ints are accepted where a float is expected).
    """
    parts = dotted.split(".")
    if len(parts) < 2 or not all(parts):
        raise ValueError(f"config override '{dotted}' must look like section.key=value")
    node = config
    for i, part in enumerate(parts[:-1]):
        if not isinstance(node.get(part), dict):
            raise ValueError(f"unknown config section '{'.'.join(parts[: i + 1])}'")
        node = node[part]
    key = parts[-1]
    if key not in node or isinstance(node[key], dict):
        known = ", ".join(k for k, v in node.items() if not isinstance(v, dict)) or "none"
        raise ValueError(f"unknown config key '{dotted}' (known in this section: {known})")
    like = node[key]
    if isinstance(value, str) and not isinstance(like, str):
        value = _parse(value, like, dotted)
    elif isinstance(like, bool) != isinstance(value, bool):
        raise ValueError(f"config '{dotted}' must be a {type(like).__name__}, got {value!r}")
    elif isinstance(like, float) and isinstance(value, int):
        value = float(value)
    elif type(value) is not type(like):
        raise ValueError(f"config '{dotted}' must be a {type(like).__name__}, got {value!r}")
    node[key] = value


# What every known key may hold: (type, lowest, highest, exclusive lowest) for numbers, a tuple of
# choices for strings, bool for booleans. Keys a config lacks are not checked; keys it has beyond
# these are refused by --set only if absent from the file (set_value), so a custom TOML may add its own.
_NUMBER = tuple[type, float | None, float | None, bool]
RULES: dict[str, _NUMBER | tuple[str, ...] | type] = {
    "env.num_envs": (int, 1, None, False),
    "pool.kind": ("serial", "actors"),
    "pool.num_actors": (int, 0, None, False),
    "pool.batch_size": (int, 0, None, False),
    "pool.order": ("turn", "ready"),
    "ppo.num_steps": (int, 1, None, False),
    "ppo.lr": (float, 0, None, True),
    "ppo.anneal_lr": bool,
    "ppo.gamma": (float, 0, 1, False),
    "ppo.gae_lambda": (float, 0, 1, False),
    "ppo.update_epochs": (int, 1, None, False),
    "ppo.minibatches": (int, 1, None, False),
    "ppo.norm_adv": bool,
    "ppo.clip": (float, 0, None, True),
    "ppo.clip_vloss": bool,
    "ppo.ent_coef": (float, 0, None, False),
    "ppo.vf_coef": (float, 0, None, False),
    "ppo.max_grad_norm": (float, 0, None, True),
    "policy.kind": ("auto", "mlp", "cnn", "cnn_small", "embed", "nature", "structured"),  # learner.policy.KINDS
    "policy.hidden": (int, 1, None, False),
    "policy.lstm": bool,
    "policy.lstm_hidden": (int, 1, None, False),
    "train.total_steps": (int, 1, None, False),
    "train.target_return": (float, None, None, False),
    "train.seed": (int, 0, None, False),
    "train.device": ("auto", "cpu", "cuda"),
    "train.torch_threads": (int, 0, None, False),
    "train.deterministic": bool,
    "train.precision": ("fp32", "bf16"),  # learner.policy.PRECISIONS
    "train.compile": bool,
    "train.deterministic_resume": bool,
    "train.checkpoint_every": (int, 0, None, False),
    "train.keep_checkpoints": (int, 1, None, False),
    "train.log_every_seconds": (float, 0, None, True),
    # [remote]: actor hosts over ZeroMQ (defaults and meanings in learner/pools.py, REMOTE)
    "remote.hosts": (int, 0, None, False),
    "remote.batches": (int, 1, None, False),
    "remote.insecure": bool,
    "remote.timeout": (float, 0, None, True),
    "remote.join_timeout": (float, 0, None, True),
}
# Keys that only the multi-process pool reads: setting one for the serial pool is a mistake to name.
ACTORS_ONLY = ("pool.num_actors", "pool.batch_size", "pool.order")


def _get(config: Config, dotted: str) -> tuple[bool, Any]:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _check(key: str, value: Any, rule: Any) -> None:
    if rule is bool:
        if not isinstance(value, bool):
            raise ValueError(f"config '{key}' must be true or false, got {value!r}")
    elif isinstance(rule, tuple) and rule and isinstance(rule[0], str):
        if value not in rule:
            raise ValueError(f"config '{key}' must be one of {', '.join(rule)}, got {value!r}")
    else:
        kind, low, high, open_low = rule
        wrong = isinstance(value, bool) or not isinstance(value, int if kind is int else (int, float))
        if wrong:
            raise ValueError(f"config '{key}' must be {'an integer' if kind is int else 'a number'}, got {value!r}")
        if value != value or (low is not None and (value <= low if open_low else value < low)) or (
            high is not None and value > high
        ):
            if high is not None:
                span = f"in [{low}, {high}]"
            else:
                span = f"{'>' if open_low else '>='} {low}"
            raise ValueError(f"config '{key}' must be {span}, got {value!r}")


def validate(config: Config, pinned: set[str] | frozenset[str] = frozenset()) -> None:
    """Refuses a resolved config that cannot run, with one sentence, before anything is written.

    Checks every key of :data:`RULES` the config holds (ranges, choices, booleans),
    the native env's parameters (through its buffer layout), and that no key the
    user set (``pinned``) is one the chosen pool ignores.
    """
    for key, rule in RULES.items():
        present, value = _get(config, key)
        if present:
            _check(key, value, rule)
    kind = config.get("pool", {}).get("kind", "serial")
    if kind == "serial":
        for key in ACTORS_ONLY:
            if key in pinned:
                raise ValueError(
                    f"config '{key}' applies to the actors pool only, and this run's pool.kind is serial: "
                    f"drop --set {key}, or add --set pool.kind=actors"
                )
    env = config.get("env", {})
    import envs

    if env.get("name") in envs.native_names():
        envs.buffer_spec(env["name"], int(env["num_envs"]), **dict(env.get("params", {})))


CPU_TABLE = "on_cpu"


def for_device(config: Config, device_type: str, pinned: set[str] | frozenset[str] = frozenset()) -> Config:
    """Applies the config's ``[on_cpu]`` table when the run trains on the CPU; drops the table.

    A config tuned for a GPU (a big batch per update) takes minutes per update on a
    laptop's CPU; ``[on_cpu]`` holds dotted keys (``"env.num_envs" = 16``) that make
    the same env update every few seconds there. Keys the user set (``pinned``, e.g.
    from ``--set``) win over the table.
    """
    out = copy.deepcopy(config)
    table = out.pop(CPU_TABLE, None) or {}
    if device_type == "cpu":
        for key, value in table.items():
            if key not in pinned:
                set_value(out, key, value)
    return out


def apply_overrides(config: Config, overrides: list[str]) -> Config:
    """Returns a copy of ``config`` with every ``section.key=value`` applied."""
    out = copy.deepcopy(config)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"config override '{item}' must look like section.key=value")
        dotted, text = item.split("=", 1)
        set_value(out, dotted.strip(), text.strip())
    return out


def save(config: Config, path: Path) -> None:
    """Writes the resolved config as TOML (atomically, so a crash never leaves half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(tomli_w.dumps(config).encode())
    tmp.replace(path)
