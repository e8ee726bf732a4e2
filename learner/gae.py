"""Generalized advantage estimation over a rollout of T steps for N env rows.

Each row (column ``n``) is its own sequence: the recursion runs down the time
axis of one row and never mixes rows, so nothing bootstraps across envs.

Step ``t`` of a row holds the observation the action was taken on, the value
``V(o_t)`` and what the env reported for that transition: ``rewards[t]``,
``terminals[t]``, ``truncations[t]``. Episode ends are handled as follows:

- termination: the episode is over, the return after it is 0, so no bootstrap;
- truncation (time limit): the episode *would* have gone on, so the step gets
  ``rewards[t] + gamma * V(final observation)`` and the recursion is cut there
  (the next step belongs to a new episode); ``final_values[t]`` holds that value;
- both flags set: termination wins;
- the rollout's last step bootstraps from ``next_values`` (V of the observation
  after it) unless it ended an episode as above;
- a masked step (padding, ``masks`` false) gets advantage 0, and the step before
  it bootstraps from its value instead of reading through it.
"""

from __future__ import annotations

import torch


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    terminals: torch.Tensor,
    truncations: torch.Tensor,
    final_values: torch.Tensor,
    next_values: torch.Tensor,
    gamma: float,
    gae_lambda: float,
    masks: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns ``(advantages, returns)``, both shaped like ``rewards`` (T, N)."""
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be shaped (T, N), got {tuple(rewards.shape)}")
    for name, x in (
        ("values", values),
        ("terminals", terminals),
        ("truncations", truncations),
        ("final_values", final_values),
    ):
        if x.shape != rewards.shape:
            raise ValueError(f"{name} must be shaped {tuple(rewards.shape)}, got {tuple(x.shape)}")
    if next_values.shape != rewards.shape[1:]:
        raise ValueError(
            f"next_values must be shaped {tuple(rewards.shape[1:])}, got {tuple(next_values.shape)}"
        )
    steps = rewards.shape[0]
    term = terminals.to(rewards.dtype)
    trunc = truncations.to(rewards.dtype) * (1.0 - term)
    cont = (1.0 - term) * (1.0 - trunc)  # 1 where the episode goes on into step t+1
    valid = torch.ones_like(rewards) if masks is None else masks.to(rewards.dtype)
    # What a step bootstraps from when it does not end an episode: V of the next step.
    following = torch.cat([values[1:], next_values.unsqueeze(0)], dim=0)
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(next_values)
    for t in range(steps - 1, -1, -1):
        delta = rewards[t] + gamma * (cont[t] * following[t] + trunc[t] * final_values[t]) - values[t]
        last = (delta + gamma * gae_lambda * cont[t] * last) * valid[t]
        advantages[t] = last
    return advantages, advantages + values
