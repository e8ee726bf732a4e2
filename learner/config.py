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
            from .defaults import generic_config

            try:
                return generic_config(env_or_path)
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
        low = text.strip().lower()
        if low in ("true", "1", "yes", "on"):
            return True
        if low in ("false", "0", "no", "off"):
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
