"""Run configuration: the schema's defaults, a TOML file's changes, ``section.key=value`` overrides, the copy on disk.

A config is a dict of TOML tables (``env``, ``pool``, ``ppo``, ``policy``, ``train``
and an optional ``on_cpu``); :func:`load` and :func:`complete` return it with
every key of :mod:`learner.schema` present, so readers index it without
fallbacks. Values are typed and ranged by the schema: a typo, a wrong type or an
out-of-range value fails before any training starts, with one sentence.
"""

from __future__ import annotations

import copy
from dataclasses import asdict
from pathlib import Path
from typing import Any

import tomli_w
import tomllib

from . import schema
from .schema import CPU_TABLE

CONFIG_DIR = Path(__file__).parent / "configs"

Config = dict[str, Any]

# Keys that only the multi-process pool reads: setting one for the serial pool is a mistake to name.
ACTORS_ONLY = ("pool.num_actors", "pool.batch_size", "pool.order")


def config_names() -> list[str]:
    """Envs that ship a tuned config."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))


def load(env_or_path: str) -> Config:
    """``learner/configs/NAME.toml`` for an env name, or a TOML file by path, completed from the schema.

    An env without a shipped TOML (a Gymnasium id such as ``CartPole-v1`` or
    ``gym:CartPole-v1``, a PettingZoo module, an ``atari/`` ROM) gets what
    :mod:`learner.derived` derives from its spaces instead of a file's changes.
    """
    path = Path(env_or_path)
    if path.suffix != ".toml":
        path = CONFIG_DIR / f"{env_or_path}.toml"
        if not path.exists():
            from envs import MissingExtra

            from .derived import derived_config

            try:
                return complete(derived_config(env_or_path))
            except MissingExtra:
                raise  # its sentence already says what to install
            except ValueError as exc:
                raise ValueError(
                    f"no config for env '{env_or_path}' (configs: {', '.join(config_names())}), "
                    f"and no env of that name to derive one from: {exc}"
                ) from None
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from exc
    try:
        config = complete(data)
        for_device(config, "cpu")  # an [on_cpu] key that does not exist fails here, on any machine
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return config


def complete(config: Config) -> Config:
    """A copy of ``config`` with every schema key present (defaults where unset), every value checked.

    A native env's parameters are filled in with its C header's defaults, so the
    resolved config (and a run directory's ``config.toml``) names every value the
    run used. Old configs, written before a key existed, load with its default.
    """
    unknown = sorted(set(config) - set(schema.SECTIONS) - {CPU_TABLE})
    if unknown:
        raise ValueError(f"unknown config section '{unknown[0]}' (known: {', '.join(schema.SECTIONS)}, {CPU_TABLE})")
    out: Config = {}
    for name, cls in schema.SECTIONS.items():
        table = config.get(name, {})
        if not isinstance(table, dict):
            raise ValueError(f"config '{name}' must be a table, got {table!r}")
        out[name] = asdict(cls.from_config(table))
    env = out["env"]
    native = _native_params(env["name"])
    if native is not None:
        for key in env["params"]:
            _param_like(env["name"], native, key)
        env["params"] = {**native, **env["params"]}
    if CPU_TABLE in config:
        out[CPU_TABLE] = dict(config[CPU_TABLE])
    return out


def _native_params(name: str) -> dict[str, Any] | None:
    """A native env's parameters with their header defaults; None for any other env."""
    import envs

    if name not in envs.native_names():
        return None
    from envs.native import param_defaults

    return param_defaults(name)


def _param_like(env: str, native: dict[str, Any], key: str) -> Any:
    if key not in native:
        raise ValueError(f"unknown config key 'env.params.{key}' ({env}'s parameters: {', '.join(native) or 'none'})")
    return native[key]


def _parse(text: str, like: type, key: str) -> Any:
    """Command-line text as a value of type ``like`` (:func:`learner.schema.text_type`)."""
    if like is bool:
        # Only TOML's own spellings: "yes", "1" or "on" would read as true to one person and a typo to another.
        low = text.strip().lower()
        if low == "true":
            return True
        if low == "false":
            return False
        raise ValueError(f"config '{key}' must be true or false, got {text!r}")
    if like is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"config '{key}' must be an integer, got {text!r}") from None
    if like is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"config '{key}' must be a number, got {text!r}") from None
    if like is str:
        return text
    raise ValueError(f"config '{key}' is a table and cannot be overridden from the command line")


def _literal(text: str) -> Any:
    """A free parameter's text as TOML reads a value (``3``, ``0.5``, ``true``, ``"x"``); else the text itself."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def set_value(config: Config, dotted: str, value: Any) -> None:
    """Sets one key, checking the value against the schema.

    ``value`` may be text (from the command line, parsed by the key's type) or an
    already typed Python value (ints are accepted where a float is expected).
    ``env.params.KEY``: a native env's parameter, typed by its header's default;
    for any other env a new keyword argument, its text read as a TOML value.
    """
    parts = dotted.split(".")
    if len(parts) < 2 or not all(parts):
        raise ValueError(f"config override '{dotted}' must look like section.key=value")
    if parts[:2] == ["env", "params"] and len(parts) == 3:
        _set_param(config, dotted, parts[2], value)
        return
    if len(parts) > 2:
        raise ValueError(f"unknown config key '{dotted}' (a section.key names one value)")
    _, spec, hint = schema.lookup(dotted)
    like = schema.text_type(hint)
    if isinstance(value, str) and like is not str:
        value = _parse(value, like, dotted)
    config.setdefault(parts[0], {})[parts[1]] = schema.check(dotted, hint, spec, value)


def _set_param(config: Config, dotted: str, key: str, value: Any) -> None:
    env = config.setdefault("env", {})
    params = env.setdefault("params", {})
    native = _native_params(env.get("name", schema.default("env.name")))
    if native is not None:
        like = _param_like(env["name"], native, key)
        kind = int if isinstance(like, int) else float
        if isinstance(value, str):
            value = _parse(value, kind, dotted)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and isinstance(value, float)):
            raise ValueError(f"config '{dotted}' must be {'an integer' if kind is int else 'a number'}, got {value!r}")
        params[key] = kind(value)
    else:
        params[key] = _literal(value) if isinstance(value, str) else value


def validate(config: Config, pinned: set[str] | frozenset[str] = frozenset()) -> None:
    """Refuses a resolved config that cannot run, with one sentence, before anything is written.

    Checks every key against the schema (names, types, ranges, choices), the native
    env's parameters (through its buffer layout), and that no key the user set
    (``pinned``) is one the chosen pool ignores.
    """
    config = complete(config)
    if config["pool"]["kind"] == "serial":
        for key in ACTORS_ONLY:
            if key in pinned:
                raise ValueError(
                    f"config '{key}' applies to the actors pool only, and this run's pool.kind is serial: "
                    f"drop --set {key}, or add --set pool.kind=actors"
                )
    env = config["env"]
    import envs

    if env["name"] in envs.native_names():
        envs.buffer_spec(env["name"], env["num_envs"], **env["params"])


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
                try:
                    set_value(out, key, value)
                except ValueError as exc:
                    raise ValueError(f"[{CPU_TABLE}] {exc}") from None
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
