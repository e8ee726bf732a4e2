"""Action heads for every action space the envs expose, behind one interface.

A head maps features ``(..., F)`` to a distribution and works on actions in
the exact form the env's action buffer holds them, so the rollout stores,
replays and sends one tensor per step whatever the space:

- ``Discrete``: a categorical; actions ``(...)`` int64 (``start`` included).
- ``MultiDiscrete``: one categorical per component (factored), log-probs and
  entropies summed; actions ``(..., k)`` int64.
- ``MultiBinary``: independent Bernoullis; actions ``(..., n)`` int64.
- ``Box``: a diagonal Gaussian with a state-independent learned log-std
  (CleanRL's continuous agent); actions ``(..., *shape)`` float32. Samples are
  NOT clipped here, so the stored action is the one whose log-prob PPO
  replays; the env adapter clips them to the Box bounds before the env sees
  them (``envs.emulation.layout.Packer`` with ``clip=True``).
- a packed structured space (``PackedSpace``, e.g. Dict{"move": Discrete,
  "force": Box}): one head per leaf, log-probs and entropies summed; sampled
  leaves are packed with :meth:`learner.unpack.Unpacker.pack` into the uint8
  rows of the actions buffer, and unpacked again to score stored actions.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import gymnasium
import numpy as np
import torch
from torch import nn
from torch.distributions import Bernoulli, Normal

from envs.emulation.layout import Leaf, flatten, layout_of, unflatten

from .unpack import Unpacker


def _linear(inputs: int, outputs: int, std: float) -> nn.Linear:
    layer = nn.Linear(inputs, outputs)
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, 0.0)
    return layer


class LeafHead(nn.Module):
    """The distribution of one simple space (Discrete, MultiDiscrete, MultiBinary or Box)."""

    kind: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    starts: torch.Tensor  # a registered buffer (MultiDiscrete)

    def __init__(self, space: gymnasium.spaces.Space[Any], features: int) -> None:
        super().__init__()
        self.space = space
        if isinstance(space, gymnasium.spaces.Discrete):
            self.kind, self.shape, self.dtype = "discrete", (), torch.int64
            self.start = int(space.start)
            self.sizes = [int(space.n)]
        elif isinstance(space, gymnasium.spaces.MultiDiscrete):
            if space.nvec.ndim != 1:
                raise ValueError(f"policy supports 1-d MultiDiscrete action spaces, got {space}")
            self.kind, self.shape, self.dtype = "multi_discrete", tuple(space.nvec.shape), torch.int64
            self.start = 0
            self.register_buffer("starts", torch.as_tensor(np.asarray(space.start), dtype=torch.int64))
            self.sizes = [int(n) for n in space.nvec]
        elif isinstance(space, gymnasium.spaces.MultiBinary):
            self.kind, self.shape, self.dtype = "multi_binary", tuple(np.atleast_1d(space.n)), torch.int64
            self.sizes = [int(np.prod(self.shape))]
        elif isinstance(space, gymnasium.spaces.Box):
            self.kind, self.shape, self.dtype = "box", tuple(space.shape), torch.float32
            self.sizes = [int(np.prod(self.shape, dtype=np.int64))]
            self.log_std = nn.Parameter(torch.zeros(self.sizes[0]))
        else:
            raise ValueError(f"policy has no action head for {type(space).__name__} spaces ({space})")
        self.net = _linear(features, sum(self.sizes), std=0.01)

    def _dists(self, x: torch.Tensor) -> list[Any]:
        out = self.net(x)
        if self.kind in ("discrete", "multi_discrete"):
            return [_Categorical(part) for part in out.split(self.sizes, dim=-1)]
        if self.kind == "box":
            return [Normal(out, self.log_std.exp().expand_as(out))]
        if self.kind == "multi_binary":
            return [Bernoulli(logits=out)]
        raise AssertionError(self.kind)

    def _flat(self, actions: torch.Tensor, lead: int) -> torch.Tensor:
        """Actions (..., *shape) -> (..., k) in distribution coordinates."""
        flat = actions.reshape(*actions.shape[:lead], -1) if self.shape else actions.unsqueeze(-1)
        if self.kind == "discrete":
            return flat.long() - self.start
        if self.kind == "multi_discrete":
            return flat.long() - self.starts
        return flat.float()

    def _unflat(self, flat: torch.Tensor) -> torch.Tensor:
        if self.kind == "discrete":
            return flat.squeeze(-1) + self.start
        if self.kind == "multi_discrete":
            return flat + self.starts
        out = flat.reshape(*flat.shape[:-1], *self.shape)
        return out.to(self.dtype)

    def _score(self, dists: list[Any], flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.kind in ("box", "multi_binary"):
            (d,) = dists
            return d.log_prob(flat).sum(-1), d.entropy().sum(-1)
        logp = sum(d.log_prob(flat[..., i]) for i, d in enumerate(dists))
        ent = sum(d.entropy() for d in dists)
        return logp, ent

    def sample(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dists = self._dists(x)
        if self.kind in ("box", "multi_binary"):
            flat = dists[0].sample()
        else:
            flat = torch.stack([d.sample() for d in dists], dim=-1)
        return self._unflat(flat), self._score(dists, flat)[0]

    def evaluate(self, x: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._score(self._dists(x), self._flat(actions, x.dim() - 1))

    def mode(self, x: torch.Tensor) -> torch.Tensor:
        dists = self._dists(x)
        if self.kind == "box":
            flat = dists[0].mean
        elif self.kind == "multi_binary":
            flat = (dists[0].logits > 0).long()
        else:
            flat = torch.stack([d.logp.argmax(-1) for d in dists], dim=-1)
        return self._unflat(flat)


class _Categorical:
    """A categorical over the last axis of ``logits``: what PPO needs of one, without the framework's checks.

    ``torch.distributions.Categorical`` validates its arguments and broadcasts
    on every construction; for a batch of 8 rows that costs more than the
    policy's matrix products. Sampling is Gumbel-max (one uniform draw per
    logit), which draws from exactly the softmax distribution.
    """

    __slots__ = ("logp",)

    def __init__(self, logits: torch.Tensor) -> None:
        self.logp = torch.log_softmax(logits, dim=-1)

    def sample(self) -> torch.Tensor:
        uniform = torch.rand_like(self.logp).clamp_(min=torch.finfo(self.logp.dtype).tiny)
        return (self.logp - uniform.log_().neg_().log_()).argmax(-1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return self.logp.gather(-1, value.unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        return -(self.logp.exp() * self.logp).sum(-1)


class ActionHead(nn.Module):
    """One head for the env's ``single_action_space``: a leaf head, or one per leaf of a packed space.

    ``shape``/``dtype`` describe one action row as the rollout stores it and the
    pool's actions buffer takes it.
    """

    def __init__(self, space: gymnasium.spaces.Space[Any], features: int) -> None:
        super().__init__()
        layout = getattr(space, "layout", None)
        if layout is None and isinstance(space, (gymnasium.spaces.Dict, gymnasium.spaces.Tuple)):
            layout = layout_of(space, what="action")
        self.unpacker = Unpacker(layout) if layout is not None and layout.packed else None
        if self.unpacker is not None:
            self.leaves: tuple[Leaf, ...] = self.unpacker.layout.leaves
            self.heads = nn.ModuleList(LeafHead(leaf.space, features) for leaf in self.leaves)
            self.shape: tuple[int, ...] = (self.unpacker.layout.nbytes,)
            self.dtype = torch.uint8
        else:
            self.heads = nn.ModuleList([LeafHead(space, features)])
            only = cast(LeafHead, self.heads[0])
            self.shape, self.dtype = only.shape, only.dtype

    def _leaf_heads(self) -> Iterable[LeafHead]:
        return cast("Iterable[LeafHead]", self.heads)  # a ModuleList of LeafHeads

    def _pack(self, leaves: list[torch.Tensor]) -> torch.Tensor:
        assert self.unpacker is not None
        lead = leaves[0].shape[: leaves[0].dim() - len(self.leaves[0].shape)]
        flat = [v.reshape(-1, *leaf.shape) for v, leaf in zip(leaves, self.leaves, strict=True)]
        rows = self.unpacker.pack(unflatten(self.unpacker.layout, flat))
        return rows.reshape(*lead, -1)

    def _unpack(self, actions: torch.Tensor) -> list[torch.Tensor]:
        assert self.unpacker is not None
        lead = actions.shape[:-1]
        leaves = flatten(self.unpacker.layout, self.unpacker.unpack(actions.reshape(-1, actions.shape[-1])))
        return [v.reshape(*lead, *leaf.shape) for v, leaf in zip(leaves, self.leaves, strict=True)]

    def sample(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(actions, log-probs)`` for features ``(..., F)``."""
        if self.unpacker is None:
            return cast(LeafHead, self.heads[0]).sample(x)
        parts = [head.sample(x) for head in self._leaf_heads()]
        return self._pack([a for a, _ in parts]), _total(lp for _, lp in parts)

    def evaluate(self, x: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(log-probs, entropies)`` of stored ``actions`` under features ``x``."""
        if self.unpacker is None:
            return cast(LeafHead, self.heads[0]).evaluate(x, actions)
        scores = [head.evaluate(x, a) for head, a in zip(self._leaf_heads(), self._unpack(actions), strict=True)]
        return _total(lp for lp, _ in scores), _total(e for _, e in scores)

    def mode(self, x: torch.Tensor) -> torch.Tensor:
        """The most likely action (the Gaussian's mean), for evaluation."""
        if self.unpacker is None:
            return cast(LeafHead, self.heads[0]).mode(x)
        return self._pack([head.mode(x) for head in self._leaf_heads()])


def _total(parts: Iterable[torch.Tensor]) -> torch.Tensor:
    """``sum(parts)``: a tensor, there being at least one leaf."""
    return cast(torch.Tensor, sum(parts))


def to_env(actions: torch.Tensor) -> np.ndarray:
    """Actions as the numpy array the pool's ``send`` takes (ints narrowed to int32)."""
    out = actions.detach().to("cpu").numpy()
    return out.astype(np.int32) if out.dtype == np.int64 else out
