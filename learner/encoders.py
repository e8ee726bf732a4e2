"""Feature extractors built from an observation layout, so structured envs need no per-env code.

Each leaf gets the encoder its kind calls for: a small CNN for images
(uint8 ``HxWxC`` or ``CxHxW``), embedded codes and a small CNN for int8
``(H, W)`` grids of cell codes, an embedding for Discrete/MultiDiscrete,
an MLP for everything else. Their outputs are concatenated into one feature
vector of ``features_dim``.
"""

from __future__ import annotations

from typing import Any, cast

import gymnasium
import numpy as np
import torch
from torch import nn

from envs.emulation.layout import Layout, Leaf, flatten
from envs.emulation.layout import layout_of as _layout_of

from .unpack import Unpacker


def image_channels_first(shape: tuple[int, ...]) -> bool | None:
    """For a 3-d shape, whether channels come first; None if it is not image-like."""
    if len(shape) != 3:
        return None
    if shape[-1] <= 4 < shape[0]:
        return False
    if shape[0] <= 4:
        return True
    return None


class ImageEncoder(nn.Module):
    """Nature-DQN CNN for Atari-sized frames, two 3x3 convolutions for small grids like MiniGrid's."""

    def __init__(self, shape: tuple[int, ...], channels_first: bool, out: int, scale: float) -> None:
        super().__init__()
        self.channels_first = channels_first
        self.scale = scale
        c, h, w = shape if channels_first else (shape[2], shape[0], shape[1])
        if min(h, w) >= 36:
            convs = [nn.Conv2d(c, 32, 8, 4), nn.ReLU(), nn.Conv2d(32, 64, 4, 2), nn.ReLU(),
                     nn.Conv2d(64, 64, 3, 1), nn.ReLU()]
        else:
            convs = [nn.Conv2d(c, 16, 3, 1, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 1, 1), nn.ReLU()]
        self.conv = nn.Sequential(*convs, nn.Flatten())
        with torch.no_grad():
            flat = self.conv(torch.zeros(1, c, h, w)).shape[1]
        self.head = nn.Sequential(nn.Linear(flat, out), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float() * self.scale
        if not self.channels_first:
            x = x.permute(0, 3, 1, 2)
        return self.head(self.conv(x))


class SmallImageEncoder(nn.Module):
    """Three strided 3x3-ish convolutions for small uint8 frames (Crafter's 64x64 RGB), then one layer.

    The Nature CNN's 8x8/4 first layer was sized for 84x84 Atari frames, where an
    object spans several pixels; on Crafter's 64x64 view a cell is 7 pixels wide and
    a stride of 4 blurs neighbouring cells together. Here each layer halves the
    frame (64 -> 32 -> 16 -> 8), keeping an 8x8 map of what is around the player.
    """

    def __init__(self, shape: tuple[int, ...], channels_first: bool, out: int,
                 widths: tuple[int, int, int] = (16, 32, 32)) -> None:
        super().__init__()
        self.channels_first = channels_first
        c, h, w = shape if channels_first else (shape[2], shape[0], shape[1])
        c1, c2, c3 = widths
        self.conv = nn.Sequential(
            nn.Conv2d(c, c1, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c2, c3, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.conv(torch.zeros(1, c, h, w)).shape[1]
        self.head = nn.Sequential(nn.Linear(flat, out), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float() * (1 / 255)
        if not self.channels_first:
            x = x.permute(0, 3, 1, 2)
        return self.head(self.conv(x))


class EmbeddingEncoder(nn.Module):
    """One embedding table for every index of a Discrete/MultiDiscrete leaf, outputs concatenated."""

    offsets: torch.Tensor  # a registered buffer

    def __init__(self, sizes: np.ndarray, starts: np.ndarray, dim: int) -> None:
        super().__init__()
        sizes = np.asarray(sizes, dtype=np.int64).reshape(-1)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self.register_buffer("offsets", torch.as_tensor(offsets - np.asarray(starts).reshape(-1)))
        self.embed = nn.Embedding(int(sizes.sum()), dim)
        self.out_dim = dim * len(sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idx = x.reshape(x.shape[0], -1).long() + self.offsets
        return self.embed(idx).flatten(1)


class CodeGridEncoder(nn.Module):
    """An int8 (H, W) grid of cell codes (a native env's egocentric window): embed, two 3x3 convolutions.

    Codes are categories, not intensities, so each is embedded before the convolutions.
    """

    def __init__(self, space: Any, out: int, embed: int = 4) -> None:
        super().__init__()
        self.low = int(np.min(space.low))
        self.embed = nn.Embedding(int(np.max(space.high)) - self.low + 1, embed)
        self.conv = nn.Sequential(
            nn.Conv2d(embed, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.conv(torch.zeros(1, embed, *space.shape)).shape[1]
        self.head = nn.Sequential(nn.Linear(flat, out), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        codes = (x.long() - self.low).clamp_(0, self.embed.num_embeddings - 1)
        return self.head(self.conv(self.embed(codes).permute(0, 3, 1, 2)))


class VectorEncoder(nn.Module):
    """Flatten, float, one hidden layer."""

    def __init__(self, size: int, out: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(size, out), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.reshape(x.shape[0], -1).float())


def leaf_encoder(leaf: Leaf, hidden: int, embed_dim: int) -> tuple[nn.Module, int]:
    """The encoder for one leaf and its output width."""
    if leaf.kind == "discrete":
        discrete = cast(gymnasium.spaces.Discrete, leaf.space)
        enc = EmbeddingEncoder(np.array([discrete.n]), np.array([discrete.start]), embed_dim)
        return enc, enc.out_dim
    if leaf.kind == "multi_discrete":
        multi = cast(gymnasium.spaces.MultiDiscrete, leaf.space)
        enc = EmbeddingEncoder(multi.nvec, np.asarray(getattr(multi, "start", 0))
                               * np.ones_like(multi.nvec), embed_dim)
        return enc, enc.out_dim
    channels_first = image_channels_first(leaf.shape) if leaf.kind == "box" else None
    if channels_first is not None and leaf.dtype == np.uint8:
        return ImageEncoder(leaf.shape, channels_first, hidden, 1 / 255), hidden
    if leaf.kind == "box" and leaf.dtype == np.int8 and len(leaf.shape) == 2:
        return CodeGridEncoder(leaf.space, hidden), hidden
    return VectorEncoder(max(leaf.count, 1), hidden), hidden


class StructuredEncoder(nn.Module):
    """Observation rows (packed or natural) -> ``(B, features_dim)`` float features.

    ``forward`` takes the buffer rows as the env wrote them; packed rows are
    unpacked into typed views first (see :mod:`learner.unpack`).
    """

    def __init__(self, layout: Layout | Any, hidden: int = 64, embed_dim: int = 16) -> None:
        super().__init__()
        self.layout = layout_from(layout)
        self.unpacker = Unpacker(self.layout)
        encoders = []
        widths = []
        for leaf in self.layout.leaves:
            enc, width = leaf_encoder(leaf, hidden, embed_dim)
            encoders.append(enc)
            widths.append(width)
        self.encoders = nn.ModuleList(encoders)
        self.features_dim = sum(widths)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        structure = self.unpacker.unpack(rows)
        leaves = flatten(self.layout, structure) if self.layout.packed else [structure]
        return torch.cat([enc(x) for enc, x in zip(self.encoders, leaves, strict=True)], dim=1)


def layout_from(space_or_layout: Any) -> Layout:
    """A Layout from a Layout, an env's ``single_observation_space`` (packed or not), or a gymnasium space."""
    if isinstance(space_or_layout, Layout):
        return space_or_layout
    layout = getattr(space_or_layout, "layout", None)
    if isinstance(layout, Layout):
        return layout
    return _layout_of(space_or_layout)
