"""NetHack's observation the way NLE's baseline agent reads it, scaled down for a CPU learner.

NLE's ``NetHackNet`` embeds every glyph, runs five 3x3 convolutions over the whole
21 x 79 map and over a 9 x 9 window around the hero, and adds a two-layer MLP over
``blstats``. Here the window stays (the hero's surroundings are what an early policy
acts on), the full-map convolutions go (1659 cells x five layers is most of that
net's cost, and the CPU learner cannot pay it), and the message gets its own small
encoder, as later NLE agents add one:

- glyph window: ``glyphs_crop`` when the env gives one (MiniHack), else a
  ``crop x crop`` window of ``glyphs`` centred on the hero (``blstats[0]``,
  ``blstats[1]`` are its x and y), cells off the map marked by one extra code;
  each glyph is embedded, the window flattened and read by one dense layer
  (location-specific weights: on the CPU that learns more per second than
  convolutions, as the native envs' ``embed`` policy showed);
- ``blstats``: signed ``log1p`` (hit points and gold, turn counters in the tens
  of thousands, all in one range), then two layers;
- ``message`` (optional): byte embeddings, one dense layer over each group of 4
  bytes (a 1-d convolution of stride 4), max over the groups.

The three are concatenated and mixed by one layer into ``hidden`` features. The
rows stay packed up to here (:mod:`learner.unpack`): only these three leaves are
read, whatever else the env was asked for.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from envs.emulation.layout import Layout

from .unpack import Unpacker

GLYPH_EMBED = 16
STATS_WIDTH = 64
MESSAGE_EMBED = 16
MESSAGE_WIDTH = 32


def _leaf(layout: Layout, name: str) -> Any:
    return next((leaf for leaf in layout.leaves if leaf.path == (name,)), None)


def hero_window(glyphs: torch.Tensor, stats: torch.Tensor, crop: int, fill: int) -> torch.Tensor:
    """(B, H, W) glyphs -> (B, crop, crop) int64 codes centred on each row's hero, ``fill`` off the map.

    The hero stands at column ``stats[:, 0]``, row ``stats[:, 1]`` (NLE's ``blstats``
    x and y); one gather per batch, no per-row Python.
    """
    batch, height, width = glyphs.shape
    span = torch.arange(crop, device=glyphs.device) - crop // 2
    rows = stats[:, 1].long().view(-1, 1, 1) + span.view(1, -1, 1)  # (B, crop, 1)
    cols = stats[:, 0].long().view(-1, 1, 1) + span.view(1, 1, -1)  # (B, 1, crop)
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    index = (rows.clamp(0, height - 1) * width + cols.clamp(0, width - 1)).reshape(batch, -1)
    picked = glyphs.reshape(batch, -1).long().gather(1, index).view(batch, crop, crop)
    return torch.where(inside, picked, fill)


class NetHackEncoder(nn.Module):
    """Packed NLE/MiniHack rows -> ``(B, hidden)``: glyph window + ``blstats`` MLP + message encoder."""

    def __init__(self, space: Any, hidden: int, crop: int = 9) -> None:
        super().__init__()
        found = getattr(space, "layout", None)
        layout = found if isinstance(found, Layout) else None
        keys = sorted(leaf.name for leaf in layout.leaves) if layout is not None else []
        window = _leaf(layout, "glyphs_crop") if layout is not None else None
        glyphs = window or (_leaf(layout, "glyphs") if layout is not None else None)
        stats = _leaf(layout, "blstats") if layout is not None else None
        if layout is None or glyphs is None or stats is None or len(glyphs.shape) != 2:
            raise ValueError(
                "policy.kind 'nethack' wants NetHack's observation dict with 'glyphs' (or 'glyphs_crop') and "
                f"'blstats'; this env's observation has {', '.join(keys) or space}"
            )
        self.unpacker = Unpacker(layout)
        self.names = [leaf.path for leaf in layout.leaves]
        self.window = window is not None
        self.crop = glyphs.shape[0] if self.window else crop
        if not self.window and crop % 2 == 0:
            raise ValueError(f"the glyph window must have odd sides (the hero at its centre), got {crop}")
        self.off_map = int(np.max(glyphs.space.high)) + 1  # the code of a cell outside the map
        self.glyph_embed = nn.Embedding(self.off_map + 1, GLYPH_EMBED)
        cells = self.crop * (glyphs.shape[1] if self.window else self.crop)
        self.glyph_out = nn.Sequential(nn.Linear(cells * GLYPH_EMBED, hidden), nn.ReLU())
        self.stats = nn.Sequential(
            nn.Linear(stats.count, STATS_WIDTH), nn.ReLU(), nn.Linear(STATS_WIDTH, STATS_WIDTH), nn.ReLU()
        )
        message = _leaf(layout, "message")
        self.message: nn.Module | None = None
        width = hidden + STATS_WIDTH
        if message is not None:
            self.message_embed = nn.Embedding(256, MESSAGE_EMBED, padding_idx=0)
            # A 1-d convolution of width and stride 4 over the bytes' embeddings, written as one dense
            # layer over groups of 4 bytes: the same function, without the CPU's slow conv backward.
            self.message_group = 4 if message.count % 4 == 0 else 1
            self.message = nn.Sequential(nn.Linear(self.message_group * MESSAGE_EMBED, MESSAGE_WIDTH), nn.ReLU())
            width += MESSAGE_WIDTH
        self.out = nn.Sequential(nn.Linear(width, hidden), nn.ReLU())
        self.features_dim = hidden

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        obs = self.unpacker.unpack(rows)
        stats = obs["blstats"]
        if self.window:
            codes = obs["glyphs_crop"].reshape(rows.shape[0], -1).long().clamp_(0, self.off_map)
        else:
            codes = hero_window(obs["glyphs"], stats, self.crop, self.off_map)
        parts = [
            self.glyph_out(self.glyph_embed(codes.reshape(rows.shape[0], -1)).flatten(1)),
            self.stats(torch.sign(stats.float()) * torch.log1p(stats.float().abs())),
        ]
        if self.message is not None:
            text = self.message_embed(obs["message"].long())  # (B, 256, E)
            groups = text.reshape(rows.shape[0], -1, self.message_group * MESSAGE_EMBED)
            parts.append(self.message(groups).amax(dim=1))
        return self.out(torch.cat(parts, dim=1))
