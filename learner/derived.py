"""The config of an env that ships no TOML (any Gymnasium id, PettingZoo module or ROM), from its spaces.

The schema's defaults (:mod:`learner.schema`) are CleanRL's ``ppo.py`` settings
for discrete actions and vector observations, run as 32 envs x 32 steps (1,024
steps per update, as CleanRL's 8 x 128) on the actors pool, one actor per core:
the Python envs step on every core while the learner acts on the other group,
and 32 envs make a batch of 16 rows, where 8 made 8 rows whose inference cost
more than the envs' steps (`appliance bench train --env Acrobot-v1`, docs/bench/).
Only what the spaces change is written here:

- Continuous (Box) or mixed actions: CleanRL's ``ppo_continuous_action``
  (2048 steps x 1 env there; here the same 2048 as 32 envs x 64 steps, lr 3e-4,
  10 epochs, 32 minibatches, no entropy bonus, 1M steps).
- Image observations: Atari's settings (8 envs x 128 steps, 10M steps, clip
  0.1) on the ``serial`` pool (ALE's own vector env already steps in C), unless
  the actions are continuous; ``policy.hidden`` 512 (Nature CNN) either way.

Every value can be overridden from the command line as for a shipped config.
"""

from __future__ import annotations

import copy
from typing import Any

import gymnasium
import numpy as np


def continuous(space: gymnasium.spaces.Space[Any]) -> bool:
    """Whether any leaf of the action space is a Box."""
    layout = getattr(space, "layout", None)
    if layout is not None:
        return any(leaf.kind == "box" for leaf in layout.leaves)
    return isinstance(space, gymnasium.spaces.Box)


def derived_config(env: str) -> dict[str, Any]:
    """What ``env``'s spaces change in the schema's defaults; a ValueError if ``env`` cannot be made."""
    import envs

    probe = envs.make(env, num_envs=1)
    try:
        obs, act = probe.single_observation_space, probe.single_action_space
    finally:
        probe.close()
    image = isinstance(obs, gymnasium.spaces.Box) and obs.dtype == np.uint8 and len(obs.shape) == 3
    config: dict[str, Any] = {"env": {"name": env}, "ppo": {}, "policy": {}, "train": {}}
    if continuous(act):
        config["ppo"].update(num_steps=64, lr=3e-4, update_epochs=10, minibatches=32, ent_coef=0.0)
        config["train"]["total_steps"] = 1_000_000
    elif image:
        config["ppo"].update(num_steps=128, clip=0.1)
        config["train"]["total_steps"] = 10_000_000
        config["env"]["num_envs"] = 8
        config["pool"] = {"kind": "serial"}
    if image:
        config["policy"]["hidden"] = 512
    return with_game_defaults(config)


# --- Game families with a policy of their own (NetHack, MiniHack, Crafter) ------------------------
# Applied over the derived config by env name prefix. Compared with
# `appliance bench train --env ENV --split-seconds 0 --runs 0 --candidate-seconds 60 --candidate nethack:
# --candidate structured:policy.kind=structured,policy.hidden=64` (2 cores, loaded): MiniHack-Room-5x5
# nethack 1.00 mean return (random 0.37) vs structured -1.00; NetHackScore nethack 0.0168 reward/step
# (random 0.0150) vs structured -0.01. Crafter, `appliance bench train --env crafter --split-seconds 0
# --runs 0 --candidate-seconds 120 --candidate image_small: --candidate nature:policy.kind=nature`
# (2 cores, numba installed; docs/bench/train-crafter.json): image_small 2.57 mean return at 221
# steps/s vs the Nature CNN 2.48 at 249 (random 1.46), so the small CNN stays. NetHack's
# reward_scale 0.1 (value gradients of score rewards in the tens swamp the policy's under one norm
# clip): `appliance bench train --env nethack/score --split-seconds 0 --runs 0 --candidate-seconds
# 110 --candidate scale0.1: --candidate scale1:ppo.reward_scale=1.0 --set
# env.params.max_episode_steps=256 --no-sb3 --no-metrics` (2 cores; docs/bench/train-nethack.json):
# 0.1 mean return 6.32 (last 100 episodes), 0.0203 reward/step (last 10 rollouts); 1.0 5.28 and
# 0.0371; random 6.12 and 0.0240. The two measures disagree (scores are heavy-tailed): undecided at
# this budget, 0.1 kept.
# All three keep pool.order "turn" (runs repeat exactly). Order "ready" pays in the pool alone
# (`appliance bench emulation --env ENV`: 1.05x nethack/score, 1.29x minihack/room-5x5, 1.40x crafter)
# but not in training, where the learner sets the pace: `appliance bench train --env ENV
# --split-seconds 0 --runs 0 --no-sb3 --no-metrics --candidate turn: --candidate
# ready:pool.order=ready --candidate-seconds 60` (2 cores; docs/bench/train-emulated-order.json),
# turn / ready steps/s: minihack 1,053 / 992, nethack 1,940 / 1,903, crafter 344 / 352.
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
                config.setdefault(section, {})[key] = copy.deepcopy(value)
    return config
