"""The PPO update, read top to bottom like CleanRL's ``ppo.py``.

Given one rollout (T steps x N env rows, with advantages already computed by
:mod:`learner.gae`), run ``update_epochs`` passes of ``minibatches`` minibatches
each, minimizing

    pg_loss - ent_coef * entropy + vf_coef * v_loss

with the clipped surrogate objective, optional value clipping, per-minibatch
advantage normalization and global-norm gradient clipping. Masked rows
(padding) carry weight 0 in every mean. With an LSTM policy minibatches are
whole env rows, replayed from their stored initial state; without one they are
shuffled single steps. Pools, DDP, checkpoints and logging live elsewhere: the
model passed in may be a DDP wrapper, which only changes how gradients sum.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .schema import PPOConfig  # the [ppo] section: one docstring and one default per hyperparameter


def anneal_lr(optimizer: torch.optim.Optimizer, cfg: PPOConfig, update: int, num_updates: int) -> float:
    """Linear decay from ``lr`` to 0 over the run (update counts from 1)."""
    lr = cfg.lr * (1.0 - (update - 1.0) / num_updates) if cfg.anneal_lr else cfg.lr
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def _wmean(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return (x * w).sum() / w.sum().clamp(min=1.0)


def check_split(cfg: PPOConfig, steps: int, rows: int, recurrent: bool) -> int:
    """The units a rollout of ``steps`` x ``rows`` splits into minibatches (env rows when
    ``recurrent``: whole sequences; else single steps); raises one sentence when too few."""
    units = rows if recurrent else steps * rows
    if units < cfg.minibatches:
        what = (f"{rows} env rows (the LSTM splits whole sequences)" if recurrent
                else f"{units} steps (ppo.num_steps x agents)")
        raise ValueError(f"ppo.minibatches ({cfg.minibatches}) exceeds the {what} of each rollout to split")
    return units


def update(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: dict[str, Any],
    cfg: PPOConfig,
    recurrent: bool,
) -> dict[str, float]:
    """One PPO update on ``batch``; returns the last epoch's mean diagnostics.

    ``batch`` holds (T, N) tensors ``obs`` (T, N, ...), ``actions`` (T, N, *act_shape),
    ``logprobs``, ``values``, ``advantages``, ``returns``, ``masks``, ``starts``
    and the LSTM ``state`` at step 0 (``None`` without an LSTM).
    """
    steps, rows = batch["masks"].shape
    device = batch["masks"].device
    units = check_split(cfg, steps, rows, recurrent)
    size = units // cfg.minibatches
    flat = {
        k: v.reshape(1, steps * rows, *v.shape[2:])
        for k, v in batch.items()
        if k != "state" and not recurrent
    }
    stats: dict[str, list[float]] = {
        k: [] for k in ("pg_loss", "v_loss", "entropy", "approx_kl", "clipfrac", "grad_norm")
    }
    for _epoch in range(cfg.update_epochs):
        order = torch.randperm(units, device=device)
        for start in range(0, size * cfg.minibatches, size):
            idx = order[start : start + size]
            if recurrent:
                mb = {k: v[:, idx] for k, v in batch.items() if k != "state"}
                state = None if batch["state"] is None else tuple(s[:, idx] for s in batch["state"])
            else:
                mb = {k: v[:, idx] for k, v in flat.items()}
                state = None
            w = mb["masks"].float()

            newlogprob, entropy, newvalue = model(mb["obs"], mb["actions"], state, mb["starts"])
            logratio = newlogprob - mb["logprobs"]
            ratio = logratio.exp()
            with torch.no_grad():
                # http://joschu.net/blog/kl-approx.html
                approx_kl = _wmean((ratio - 1) - logratio, w)
                clipfrac = _wmean(((ratio - 1.0).abs() > cfg.clip).float(), w)

            adv = mb["advantages"]
            if cfg.norm_adv:
                mean = _wmean(adv, w)
                std = _wmean((adv - mean) ** 2, w).sqrt()
                adv = (adv - mean) / (std + 1e-8)

            # Clipped surrogate objective.
            pg_loss1 = -adv * ratio
            pg_loss2 = -adv * torch.clamp(ratio, 1 - cfg.clip, 1 + cfg.clip)
            pg_loss = _wmean(torch.max(pg_loss1, pg_loss2), w)

            # Value loss, optionally clipped around the rollout's values.
            if cfg.clip_vloss:
                v_unclipped = (newvalue - mb["returns"]) ** 2
                v_clipped = mb["values"] + torch.clamp(newvalue - mb["values"], -cfg.clip, cfg.clip)
                v_loss = 0.5 * _wmean(torch.max(v_unclipped, (v_clipped - mb["returns"]) ** 2), w)
            else:
                v_loss = 0.5 * _wmean((newvalue - mb["returns"]) ** 2, w)

            entropy_loss = _wmean(entropy, w)
            loss = pg_loss - cfg.ent_coef * entropy_loss + v_loss * cfg.vf_coef

            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            optimizer.step()

            if _epoch == cfg.update_epochs - 1:
                for key, value in (
                    ("pg_loss", pg_loss),
                    ("v_loss", v_loss),
                    ("entropy", entropy_loss),
                    ("approx_kl", approx_kl),
                    ("clipfrac", clipfrac),
                    ("grad_norm", grad_norm),
                ):
                    stats[key].append(float(value.detach()))
    out = {k: sum(v) / len(v) for k, v in stats.items()}
    # Fraction of the return variance the value function explains (1 is perfect).
    valid = batch["masks"].bool()
    y_pred, y_true = batch["values"][valid], batch["returns"][valid]
    var_y = y_true.var() if y_true.numel() > 1 else torch.tensor(0.0)
    out["explained_variance"] = float("nan") if var_y == 0 else float(1 - (y_true - y_pred).var() / var_y)
    return out
