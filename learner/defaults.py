"""A starting config for envs that ship no TOML (any Gymnasium id, PettingZoo module or ROM).

Derived from the env's spaces, with CleanRL's defaults for the algorithm:

- ``policy.kind = "auto"`` (encoder and action head follow the spaces, see
  :mod:`learner.policy`); ``hidden`` 512 for images (Nature CNN), else 64.
- Continuous (Box) or mixed actions: CleanRL's ``ppo_continuous_action``
  (2048 steps x 1 env there; here the same 2048 as 32 envs x 64 steps, lr 3e-4,
  10 epochs, 32 minibatches, no entropy bonus, gamma 0.99, 1M steps).
- Discrete actions: CleanRL's ``ppo.py`` (1024 steps per update as 8 envs x 128
  there, here 32 envs x 32 steps; lr 2.5e-4, 4 epochs, 4 minibatches, entropy
  0.01, 500k steps); images get Atari's settings (8 envs x 128 steps, 10M steps,
  clip 0.1).
- Vector observations: ``pool.kind = "actors"``, one actor per core, so the
  Python envs step on every core while the learner acts on the other group; 32
  envs make a batch of 16 rows, where 8 made 8 rows whose inference cost more
  than the envs' steps (`appliance bench train --env Acrobot-v1`, docs/bench/).
  Images keep ``"serial"`` (ALE's own vector env already steps in C).
- ``train.torch_threads = 1``, as the shipped configs: the actors own the cores.

Every value can be overridden from the command line as for a shipped config.
"""

from __future__ import annotations

import copy
from typing import Any

import gymnasium
import numpy as np

TRAIN: dict[str, Any] = {
    "target_return": 0.0,
    "seed": 1,
    "device": "auto",
    "deterministic": False,
    "deterministic_resume": True,
    "checkpoint_every": 50,
    "keep_checkpoints": 2,
    "log_every_seconds": 2.0,
    "torch_threads": 1,
    "precision": "fp32",
    "compile": False,
}


def continuous(space: gymnasium.spaces.Space) -> bool:
    """Whether any leaf of the action space is a Box."""
    layout = getattr(space, "layout", None)
    if layout is not None:
        return any(leaf.kind == "box" for leaf in layout.leaves)
    return isinstance(space, gymnasium.spaces.Box)


def generic_config(env: str) -> dict[str, Any]:
    """The config for ``env`` built from its spaces; a ValueError if ``env`` cannot be made."""
    import envs

    probe = envs.make(env, num_envs=1)
    try:
        obs, act = probe.single_observation_space, probe.single_action_space
    finally:
        probe.close()
    image = isinstance(obs, gymnasium.spaces.Box) and obs.dtype == np.uint8 and len(obs.shape) == 3
    ppo: dict[str, Any] = {
        "num_steps": 128, "lr": 2.5e-4, "anneal_lr": True, "gamma": 0.99, "gae_lambda": 0.95,
        "update_epochs": 4, "minibatches": 4, "norm_adv": True, "clip": 0.2, "clip_vloss": True,
        "ent_coef": 0.01, "vf_coef": 0.5, "max_grad_norm": 0.5, "reward_scale": 1.0,
    }
    total, num_envs, kind = 500_000, 32, "actors"
    ppo["num_steps"] = 32
    if continuous(act):
        ppo.update(num_steps=64, lr=3e-4, update_epochs=10, minibatches=32, ent_coef=0.0)
        total = 1_000_000
    elif image:
        ppo.update(num_steps=128, clip=0.1)
        total, num_envs, kind = 10_000_000, 8, "serial"
    config = {
        "env": {"name": env, "num_envs": num_envs, "params": {}},
        "pool": {"kind": kind, "num_actors": 0, "batch_size": 0, "order": "turn"},
        "ppo": ppo,
        "policy": {"kind": "auto", "hidden": 512 if image else 64, "lstm": False, "lstm_hidden": 64},
        "train": {"total_steps": total, **TRAIN},
    }
    return with_game_defaults(config)


# --- Game families with a policy of their own (NetHack, MiniHack, Crafter) ------------------------
# Applied over the derived config by env name prefix; each choice was measured with
# `appliance bench train --env ENV --split-seconds 0 --runs 0 --candidate ...` (see GAMES' comments).
GAMES: dict[str, dict[str, Any]] = {
    # NLE's baseline shape (learner/nethack_encoder.py): glyph window around the hero + blstats MLP +
    # message encoder; only the three keys it reads are asked of NLE (3,792-byte rows, not 17,232).
    "nethack/": {
        "env.params": {"observation_keys": ["glyphs", "blstats", "message"]},
        "policy.kind": "nethack", "policy.hidden": 256, "ppo.reward_scale": 0.1,
    },
    # MiniHack hands over its own 9x9 crop (glyphs_crop), which the same encoder reads as the window.
    "minihack/": {
        "env.params": {"observation_keys": ["glyphs_crop", "blstats", "message"]},
        "policy.kind": "nethack", "policy.hidden": 256,
    },
    # Crafter: 64x64 RGB, a Python env (a few hundred steps/s a core): actors on every core, not
    # Atari's serial pool; the small CNN (learner/encoders.py, SmallImageEncoder).
    "crafter": {
        "env.num_envs": 16, "pool.kind": "actors", "policy.kind": "image_small", "policy.hidden": 256,
        "ppo.num_steps": 64, "ppo.clip": 0.2, "train.total_steps": 1_000_000,
    },
}


def with_game_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with the :data:`GAMES` entry for its env's name applied (``crafter`` by its exact name)."""
    name = config["env"]["name"]
    for prefix, settings in GAMES.items():
        if name == prefix or (prefix.endswith("/") and name.startswith(prefix)):
            for dotted, value in settings.items():
                section, key = dotted.split(".", 1)
                config[section][key] = copy.deepcopy(value)
    return config
