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

from typing import Any

import gymnasium
import numpy as np


def continuous(space: gymnasium.spaces.Space) -> bool:
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
    return config
