"""The run config's schema: five sections, each a dataclass with a docstring and a default per field.

This is the one place a default is written. A shipped TOML (``learner/configs/``)
holds only what its env changes, each change with the measurement that chose it;
a derived config (:mod:`learner.derived`) only what the env's spaces change;
``--set``, the ``config.toml`` of a run directory and the README's configuration
reference (``appliance config --markdown``) all read these classes. Loading,
overrides and saving are :mod:`learner.config`'s.

The defaults are CleanRL's ``ppo.py`` settings as a Gymnasium id with discrete
actions gets them: 1,024 steps per update (CleanRL's 8 envs x 128 steps, here 32
envs x 32 steps), Adam at 2.5e-4, 4 epochs of 4 minibatches, entropy bonus 0.01.

A field's range rides in its ``field`` metadata (:func:`knob`); a ``Literal``
annotation lists a string's choices. The docstring under each field is the text
of the reference (read from this file's source by :func:`docs`).
"""

from __future__ import annotations

import ast
import inspect
import math
import typing
from collections.abc import Mapping
from dataclasses import MISSING, Field, asdict, dataclass, field, fields
from typing import Any, ClassVar, Literal, TypeVar, cast


def knob(default: Any, *, low: float | None = None, high: float | None = None, above: float | None = None) -> Any:
    """A field's default with its allowed range: ``low <= value``, ``value > above``, ``value <= high``."""
    return field(default=default, metadata={"low": low, "high": high, "above": above})


S = TypeVar("S", bound="Section")


class Section:
    """What every section shares: its table's name and the check of a table against the fields."""

    NAME: ClassVar[str]
    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]  # every section is a dataclass

    @classmethod
    def from_config(cls: type[S], table: Mapping[str, Any]) -> S:
        """The section a TOML table describes: unknown keys and bad values refused, missing keys defaulted."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(table) - set(known))
        if unknown:
            raise ValueError(
                f"unknown config key '{cls.NAME}.{unknown[0]}' (known in this section: {', '.join(known)})"
            )
        hints = typing.get_type_hints(cls)
        return cls(**{k: check(f"{cls.NAME}.{k}", hints[k], known[k], v) for k, v in table.items()})


@dataclass
class EnvConfig(Section):
    """``[env]``: what the learner trains on."""

    NAME: ClassVar[str] = "env"

    name: str = "snake"
    """Env to train: a name from `appliance envs`, a Gymnasium id (`gym:` prefix optional), a
    `pettingzoo.` module or an `atari/` ROM; `appliance train` without `--env` trains this one."""
    num_envs: int = knob(32, low=1)
    """Env instances per rank (maps for snake and grid; each holds several agents)."""
    params: dict[str, Any] = field(default_factory=dict)
    """The env's own parameters, `env.params.KEY`: a native env's as its C header declares them (the
    resolved config names every one, with the header's default where unset); for other envs, keyword
    arguments of the env's constructor (`env.params.max_episode_steps`, `env.params.frame_stack`)."""


@dataclass
class PoolConfig(Section):
    """``[pool]``: how the envs are stepped."""

    NAME: ClassVar[str] = "pool"

    kind: Literal["serial", "actors"] = "actors"
    """`actors`: the multi-process `ActorPool` (pinned, async, shared memory), so the envs step on
    every core while the learner acts on the other group; `serial`: in the learner's process."""
    num_actors: int = knob(0, low=0)
    """Actor processes per rank (actors pool only); 0 = the layout `appliance bench actors
    --autotune` saved for this env, else one per core."""
    batch_size: int = knob(0, low=0)
    """Envs per batch, a group (actors pool only); 0 = autotuned, else two groups in flight."""
    order: Literal["turn", "ready"] = "turn"
    """Actors pool only. `turn`: groups round-robin, so a run repeats exactly; `ready`: whichever
    group is ready first, so actors never wait for each other (faster on uneven or busy cores; runs
    do not repeat)."""


@dataclass
class PPOConfig(Section):
    """``[ppo]``: the update (:mod:`learner.ppo`)."""

    NAME: ClassVar[str] = "ppo"

    num_steps: int = knob(32, low=1)
    """Rollout length per env row between updates."""
    lr: float = knob(2.5e-4, above=0)
    """Adam's learning rate."""
    anneal_lr: bool = True
    """Anneal the learning rate linearly to 0 over `train.total_steps`."""
    gamma: float = knob(0.99, low=0, high=1)
    """Discount of future rewards, per step."""
    gae_lambda: float = knob(0.95, low=0, high=1)
    """GAE's λ: advantages from one-step errors (0, low variance) to whole returns (1, no bias)."""
    update_epochs: int = knob(4, low=1)
    """Passes over each rollout."""
    minibatches: int = knob(4, low=1)
    """Minibatches per pass (whole env rows with an LSTM, single steps without)."""
    norm_adv: bool = True
    """Normalize advantages per minibatch."""
    clip: float = knob(0.2, above=0)
    """Clip range of the surrogate objective (and of the value loss, with `clip_vloss`)."""
    clip_vloss: bool = True
    """Clip the value loss around the rollout's values too."""
    ent_coef: float = knob(0.01, low=0)
    """Weight of the entropy bonus."""
    vf_coef: float = knob(0.5, low=0)
    """Weight of the value loss."""
    max_grad_norm: float = knob(0.5, above=0)
    """Global gradient-norm clip."""
    reward_scale: float = knob(1.0, above=0)
    """Multiplies rewards before GAE (the value targets), not the returns reported: sparse rewards in the
    tens (NetHack's score) would make the value loss's gradient dwarf the policy's under one norm clip."""


@dataclass
class PolicyConfig(Section):
    """``[policy]``: the network (:mod:`learner.policy`)."""

    NAME: ClassVar[str] = "policy"

    kind: Literal["auto", "mlp", "cnn", "cnn_small", "embed", "nature", "image_small", "nethack", "structured"] = "auto"
    """`auto` (encoder and action head follow the spaces), `mlp`, `embed` (int grids of cell codes:
    one-hot codes through two dense layers), `cnn` or `cnn_small` (int grids, 3x3 convolutions;
    `cnn_small` has a quarter of the channels), `nature` (images) or `structured` (packed entity rows
    and a grid)."""
    hidden: int = knob(64, low=1)
    """Width of the hidden layers and of the feature vector (derived configs: 512 for images)."""
    lstm: bool = False
    """An LSTM core after the encoder; its state is zeroed where an episode ends."""
    lstm_hidden: int = knob(64, low=1)
    """The LSTM's size."""


@dataclass
class TrainConfig(Section):
    """``[train]``: the run around the updates (:mod:`learner.train`)."""

    NAME: ClassVar[str] = "train"

    total_steps: int = knob(500_000, low=1)
    """Agent steps to train for, all ranks together; also the span of the learning-rate anneal."""
    target_return: float = 0.0
    """Stop once the mean return of the last 100 episodes reaches it; 0 = off."""
    seed: int = knob(1, low=0)
    """Base seed; every rank and actor derives its own stream from it."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """`auto`: this rank's GPU when there is one, else the CPU."""
    torch_threads: int = knob(1, low=0)
    """CPU learner threads per rank; 0 = the rank's share of the cores. 1: the actors own the
    cores, and OpenMP threads collapse when processes outnumber cores (cartpole: 31k against 5k
    steps/s, loaded)."""
    deterministic: bool = False
    """`torch.use_deterministic_algorithms`."""
    precision: Literal["fp32", "bf16"] = "fp32"
    """`bf16`: the policy's encoder under bfloat16 autocast (GPU learners; heads, LSTM and losses
    stay float32)."""
    compile: bool = False
    """`torch.compile` the policy's encoder; on a compiler failure it runs eagerly, with one warning."""
    deterministic_resume: bool = True
    """Restart the envs from `(seed, update)` at every checkpoint boundary, so a resumed run repeats
    an uninterrupted one exactly."""
    checkpoint_every: int = knob(50, low=0)
    """Updates between checkpoints; 0 = only at exit."""
    keep_checkpoints: int = knob(2, low=1)
    """Checkpoints kept in the run directory, newest first."""
    log_every_seconds: float = knob(2.0, above=0)
    """Interval of the dashboard and of the log lines."""


@dataclass
class RemoteConfig(Section):
    """``[remote]``: actor hosts on other machines over ZeroMQ (:mod:`actors.remote_pool`)."""

    NAME: ClassVar[str] = "remote"

    bind: str = ""
    """`tcp://*:PORT`: rank r listens on PORT + r for actor hosts (`--remote-actors`); empty = local actors."""
    hosts: int = knob(0, low=0)
    """Actor hosts each rank waits for, and serves while some are lost (`--remote-hosts`); 0 = local actors."""
    batches: int = knob(2, low=1)
    """Batches in flight per host: its share of `env.num_envs`, in this many groups."""
    keys: str = ""
    """Directory from `appliance keys new` (server key, listed client keys); required unless `insecure`."""
    insecure: bool = False
    """Plain TCP without CurveZMQ: anyone who reaches the port can feed the learner (prints a warning)."""
    timeout: float = knob(5.0, above=0)
    """Seconds a host may stay silent while the learner waits, before it is dropped."""
    join_timeout: float = knob(120.0, above=0)
    """Seconds to wait for the hosts at the start (and for any, when all are lost)."""


SECTIONS: dict[str, type[Section]] = {
    cls.NAME: cls for cls in (EnvConfig, PoolConfig, PPOConfig, PolicyConfig, TrainConfig, RemoteConfig)
}

CPU_TABLE = "on_cpu"
CPU_TABLE_DOC = (
    "Dotted keys (`\"env.num_envs\" = 16`) applied when the run trains on the CPU, unless `--set` names "
    "them: a file tuned for a GPU batch shrinks `env.num_envs` and `ppo.num_steps` there so a laptop "
    "updates every few seconds, and cuts `train.total_steps` to minutes."
)


def check(key: str, hint: Any, spec: Field[Any], value: Any) -> Any:
    """``value`` as field ``key`` holds it (an int where a float is due becomes a float), else one sentence."""
    if typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise ValueError(f"config '{key}' must be one of {', '.join(choices)}, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"config '{key}' must be true or false, got {value!r}")
        return value
    if hint is int or hint is float:
        integral = hint is int
        if isinstance(value, bool) or not isinstance(value, int if integral else (int, float)):
            raise ValueError(f"config '{key}' must be {'an integer' if integral else 'a number'}, got {value!r}")
        value = hint(value)
        low, high, above = (spec.metadata.get(k) for k in ("low", "high", "above"))
        if (
            math.isnan(value)
            or (low is not None and value < low)
            or (above is not None and value <= above)
            or (high is not None and value > high)
        ):
            raise ValueError(f"config '{key}' must be {span(spec)}, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"config '{key}' must be a string, got {value!r}")
        return value
    if not isinstance(value, dict):
        raise ValueError(f"config '{key}' must be a table, got {value!r}")
    return dict(value)


def text_type(hint: Any) -> type:
    """The type a field's command-line text parses as: bool, int, float, str (a choice too) or dict."""
    if hint in (bool, int, float, str):
        return cast(type, hint)
    return str if typing.get_origin(hint) is Literal else dict


def span(spec: Field[Any]) -> str:
    """A number field's range in words: ``>= 1``, ``> 0``, ``in [0, 1]``; ``any value`` without one."""
    low, high, above = (spec.metadata.get(k) for k in ("low", "high", "above"))
    if high is not None:
        return f"in [{low}, {high}]"
    if above is not None:
        return f"> {above}"
    if low is not None:
        return f">= {low}"
    return "any value"


def lookup(key: str) -> tuple[type[Section], Field[Any], Any]:
    """``(section class, field, type)`` of a dotted ``section.key``; a ValueError naming what is unknown."""
    section, _, name = key.partition(".")
    if section not in SECTIONS:
        raise ValueError(f"unknown config section '{section}' (known: {', '.join(SECTIONS)})")
    cls = SECTIONS[section]
    known = {f.name: f for f in fields(cls)}
    if name not in known:
        raise ValueError(f"unknown config key '{key}' (known in this section: {', '.join(known)})")
    return cls, known[name], typing.get_type_hints(cls)[name]


def defaults() -> dict[str, dict[str, Any]]:
    """Every section with its defaults, as a config's tables."""
    return {name: asdict(cls()) for name, cls in SECTIONS.items()}


def default(key: str) -> Any:
    """The default of one dotted key."""
    _, spec, _ = lookup(key)
    return field_default(spec)


def field_default(spec: Field[Any]) -> Any:
    """A field's default, made by its ``default_factory`` where it has one."""
    factory = spec.default_factory
    return factory() if spec.default is MISSING and callable(factory) else spec.default


def docs(cls: type) -> dict[str, str]:
    """Each field's docstring (the string literal under it), whitespace folded into single spaces."""
    tree = ast.parse(inspect.getsource(cls))
    body = cast(ast.ClassDef, tree.body[0]).body
    out = {}
    for node, after in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            out[node.target.id] = " ".join(after.value.value.split())
    return out


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "{}"
    return repr(value)


def _kind(hint: Any, spec: Field[Any]) -> str:
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(f"`{c}`" for c in typing.get_args(hint))
    if hint is bool:
        return "bool"
    if hint is int or hint is float:
        where = span(spec)
        return hint.__name__ + ("" if where == "any value" else f" {where.replace('>=', '≥')}")
    return "string" if hint is str else "table"


def reference() -> str:
    """The README's configuration reference: one row per key, its type, default and docstring."""
    lines = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    for name, cls in SECTIONS.items():
        hints, text = typing.get_type_hints(cls), docs(cls)
        for spec in fields(cls):
            kind = _kind(hints[spec.name], spec)
            key = f"{name}.{spec.name}" + (".*" if kind == "table" else "")
            value = field_default(spec)
            lines.append(f"| `{key}` | {kind} | `{_toml(value)}` | {text[spec.name]} |")
    lines.append(f"| `{CPU_TABLE}.*` | table | `{{}}` | {CPU_TABLE_DOC} |")
    return "\n".join(lines) + "\n"


REFERENCE_START, REFERENCE_END = "<!-- config:start -->", "<!-- config:end -->"


def with_reference(readme: str) -> str:
    """``readme`` with :func:`reference` between its config markers (each there exactly once)."""
    start, end = readme.find(REFERENCE_START), readme.find(REFERENCE_END)
    if readme.count(REFERENCE_START) != 1 or readme.count(REFERENCE_END) != 1 or start > end:
        raise ValueError(f"the README must contain '{REFERENCE_START}' and then '{REFERENCE_END}' once each")
    return f"{readme[:start]}{REFERENCE_START}\n{reference()}{readme[end:]}"
