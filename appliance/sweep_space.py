"""A sweep's search space: config keys (the same as ``--set``) with a distribution each, from a TOML file.

Either nested tables or quoted dotted keys name a key; each holds exactly one
distribution::

    "ppo.ent_coef" = { uniform = [0.0, 0.02] }  # before any [table]: TOML puts later keys in it
    [ppo.lr]
    log_uniform = [1e-4, 3e-2]
    [ppo.update_epochs]
    int = [1, 6]
    [env.num_envs]
    categorical = [32, 64, 128]

Every key is checked against the env's resolved config before a trial runs:
it must exist, its values must have the key's type, and both ends of a range
(every choice of a categorical) must pass the config's own validation.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib

DISTRIBUTIONS = ("uniform", "log_uniform", "int", "categorical")
# Set by the sweep itself (--steps) or meaningless to vary inside one env's sweep.
RESERVED = {"train.total_steps": "--steps sets it", "env.name": "a sweep is for one env (--env)",
            "train.device": "every trial runs on the sweep's device"}


@dataclass(frozen=True)
class Param:
    """One swept key: ``kind`` is one of :data:`DISTRIBUTIONS`; ``low``/``high`` or ``choices``."""

    key: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        """The value Optuna's sampler picks for this key in ``trial``."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high))  # type: ignore[arg-type]
        return trial.suggest_float(self.key, float(self.low), float(self.high),  # type: ignore[arg-type]
                                   log=self.kind == "log_uniform")

    def extremes(self) -> list[Any]:
        """The values that bound what a trial can get: both ends, or every choice."""
        return list(self.choices) if self.kind == "categorical" else [self.low, self.high]

    def describe(self) -> dict[str, Any]:
        """A JSON-able form, stored with the sweep so a restart can tell whether the space changed."""
        if self.kind == "categorical":
            return {"key": self.key, "kind": self.kind, "choices": list(self.choices)}
        return {"key": self.key, "kind": self.kind, "low": self.low, "high": self.high}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _param(key: str, table: dict[str, Any]) -> Param:
    kinds = [k for k in table if k in DISTRIBUTIONS]
    other = [k for k in table if k not in DISTRIBUTIONS]
    if len(kinds) != 1 or other:
        raise ValueError(f"space key '{key}' must hold exactly one of {', '.join(DISTRIBUTIONS)}, "
                         f"got {', '.join(table) or 'nothing'}")
    kind = kinds[0]
    value = table[kind]
    if kind == "categorical":
        if not isinstance(value, list) or not value or len({repr(v) for v in value}) != len(value):
            raise ValueError(f"space key '{key}': categorical needs a list of distinct choices, got {value!r}")
        if any(isinstance(v, (dict, list)) for v in value):
            raise ValueError(f"space key '{key}': categorical choices must be plain values, got {value!r}")
        return Param(key, kind, choices=tuple(value))
    if not (isinstance(value, list) and len(value) == 2 and all(_number(v) for v in value)):
        raise ValueError(f"space key '{key}': {kind} needs [low, high] (two numbers), got {value!r}")
    low, high = value
    if not low < high:
        raise ValueError(f"space key '{key}': {kind} needs low < high, got [{low}, {high}]")
    if kind == "int" and not all(isinstance(v, int) for v in value):
        raise ValueError(f"space key '{key}': int needs integer bounds, got {value!r}")
    if kind == "log_uniform" and low <= 0:
        raise ValueError(f"space key '{key}': log_uniform needs low > 0, got {low}")
    return Param(key, kind, low, high)


def _walk(node: dict[str, Any], prefix: str, out: list[Param]) -> None:
    for name, value in node.items():
        key = f"{prefix}.{name}" if prefix else name
        if not isinstance(value, dict):
            raise ValueError(f"space key '{key}' must be a table with one of {', '.join(DISTRIBUTIONS)}, "
                             f"got {value!r}")
        if any(k in DISTRIBUTIONS for k in value):
            out.append(_param(key, value))
        else:
            _walk(value, key, out)


def load(path: str | Path) -> list[Param]:
    """The space file's parameters, in file order; ValueError with one sentence on a malformed file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"space file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"space file {path} is not valid TOML: {exc}") from None
    params: list[Param] = []
    _walk(data, "", params)
    if not params:
        raise ValueError(f"space file {path} names no key to sweep")
    keys = [p.key for p in params]
    if len(set(keys)) != len(keys):
        raise ValueError(f"space file {path} names a key twice: {sorted(k for k in keys if keys.count(k) > 1)[0]}")
    return params


def check(params: list[Param], config: dict[str, Any], pinned: set[str]) -> None:
    """Refuses a space the env's config cannot take, naming the key: unknown, wrong type, out of range.

    ``pinned``: the keys fixed with ``--set``; sweeping one of them too is ambiguous.
    """
    from learner import config as configs

    for p in params:
        if p.key in RESERVED:
            raise ValueError(f"space key '{p.key}' cannot be swept: {RESERVED[p.key]}")
        if p.key in pinned:
            raise ValueError(f"space key '{p.key}' is also fixed with --set; drop one of the two")
        for value in p.extremes():
            trial = copy.deepcopy(config)
            try:
                configs.set_value(trial, p.key, value)
                if p.kind in ("uniform", "log_uniform") and not isinstance(_get(trial, p.key), float):
                    raise ValueError(f"config '{p.key}' is an integer: use int = [low, high]")
                configs.validate(trial, pinned | {p.key})
            except ValueError as exc:
                raise ValueError(f"space key '{p.key}' ({p.kind} {p.extremes()}): {exc}") from None


def _get(config: dict[str, Any], key: str) -> Any:
    node: Any = config
    for part in key.split("."):
        node = node[part]
    return node
