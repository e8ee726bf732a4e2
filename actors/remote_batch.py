"""One batch as a remote actor host sends it: its frames checked against the layout, then viewed.

A batch message is ``[ident, b"B" + BATCH(j, epoch, seq, cut), <one frame per BATCH_FIELDS>]``
plus, when ``cut`` rows were truncated in the step, their row indices (int32) and their
final observations. :meth:`BatchCodec.parse` refuses anything else with :class:`Malformed`
and returns zero-copy views of the frames otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import zmq

from . import remote_wire as wire


class Malformed(Exception):
    """A message from a host that breaks the protocol; the host is dropped."""


@dataclass
class Batch:
    j: int  # the host's batch (0 .. batches - 1)
    epoch: int
    seq: int
    views: list[np.ndarray]  # one per BATCH_FIELDS, (rows, *shape), read-only views of the frames
    cut_rows: np.ndarray | None  # rows whose final observations came along
    cut_finals: np.ndarray | None


class BatchCodec:
    """The sizes and dtypes of one batch of ``rows`` rows, from ``row``: field -> (shape, dtype) per row."""

    def __init__(self, row: dict[str, tuple[tuple[int, ...], np.dtype[Any]]], rows: int, batches: int) -> None:
        self.row, self.rows, self.batches = row, rows, batches
        self.sizes = [rows * int(np.prod(row[n][0], dtype=np.int64)) * row[n][1].itemsize for n in wire.BATCH_FIELDS]
        self.obs_row = self.sizes[0] // rows

    def parse(self, frames: list[zmq.Frame]) -> Batch:
        head = frames[1].bytes
        if len(head) != 1 + wire.BATCH.size:
            raise Malformed(f"batch header of {len(head)} bytes, expected {1 + wire.BATCH.size}")
        j, epoch, seq, cut = wire.BATCH.unpack_from(head, 1)
        fields = len(wire.BATCH_FIELDS)
        if len(frames) != 2 + fields + (2 if cut else 0):
            raise Malformed(f"batch of {len(frames) - 2} frames with {cut} truncated rows")
        if j >= self.batches:
            raise Malformed(f"batch slot {j}, the host has {self.batches}")
        for i, size in enumerate(self.sizes):
            got = len(frames[2 + i])
            if got != size:
                raise Malformed(f"{wire.BATCH_FIELDS[i]} of {got} bytes, expected {size}")
        extra = 2 + fields
        if cut and (cut > self.rows or len(frames[extra]) != 4 * cut
                    or len(frames[extra + 1]) != cut * self.obs_row):
            raise Malformed(f"{cut} final observations in frames of {len(frames[extra])} and "
                            f"{len(frames[extra + 1])} bytes")
        views = [np.frombuffer(frames[2 + i].buffer, self.row[n][1]).reshape(self.rows, *self.row[n][0])
                 for i, n in enumerate(wire.BATCH_FIELDS)]
        cut_rows = cut_finals = None
        if cut:
            cut_rows = np.frombuffer(frames[extra].buffer, np.int32)
            if cut_rows.min() < 0 or cut_rows.max() >= self.rows:
                raise Malformed("final observation rows out of range")
            obs_shape, obs_dtype = self.row["observations"]
            cut_finals = np.frombuffer(frames[extra + 1].buffer, obs_dtype).reshape(cut, *obs_shape)
        return Batch(j, epoch, seq, views, cut_rows, cut_finals)


class Groups:
    """Per group of a remote pool: the batch that came, whether one is asked for, and whether a host is
    behind it at all (a *void* group is served with its last observations repeated and ``masks`` false)."""

    def __init__(self, codec: BatchCodec, count: int) -> None:
        rows, row = codec.rows, codec.row
        obs_shape, obs_dtype = (rows, *row["observations"][0]), row["observations"][1]
        self.ids = [np.arange(g * rows, (g + 1) * rows) for g in range(count)]
        self.finals = [np.zeros(obs_shape, obs_dtype) for _ in range(count)]
        self.last_obs: list[np.ndarray] = [np.zeros(obs_shape, obs_dtype) for _ in range(count)]
        truncated = row["truncations"][1]
        self._void = (np.zeros(rows, row["rewards"][1]), np.zeros(rows, row["terminals"][1]),
                      np.zeros(rows, truncated), np.ones(rows, truncated), np.zeros(rows, row["masks"][1]))
        self.ready: list[tuple[np.ndarray, ...] | None] = [None] * count
        self.flight = [False] * count
        self.void = [True] * count  # no host behind the group: served as void batches
        self.lost_next = [False] * count  # its next batch tells the rollout a transition was lost
        self.fresh = [False] * count  # its next real batch starts new episodes (a host rejoined)

    def servable(self, g: int) -> bool:
        return self.void[g] or self.ready[g] is not None

    def serve(self, g: int) -> tuple[tuple[np.ndarray, ...], bool]:
        """The group's batch (obs, rewards, terminals, truncations, masks, env ids) and whether a
        transition into it was lost."""
        lost, self.lost_next[g] = self.lost_next[g], False
        if self.void[g]:
            rewards, terminals, trunc0, trunc1, masks = self._void
            return (self.last_obs[g], rewards, terminals, trunc1 if lost else trunc0, masks, self.ids[g]), lost
        ready = self.ready[g]
        assert ready is not None, "serve() a group that is servable()"
        self.last_obs[g] = ready[0]
        return (*ready, self.ids[g]), lost

    def asked(self, g: int) -> None:
        """Actions went out: the group awaits its next batch."""
        self.ready[g], self.flight[g] = None, True

    def reset(self, g: int, fresh: bool) -> None:
        """A joined host's group, reset: awaits its first batch (``fresh``: its envs start truncated)."""
        self.ready[g], self.flight[g], self.void[g], self.fresh[g] = None, True, False, fresh

    def arrived(self, g: int, batch: Batch) -> None:
        views = batch.views
        if batch.cut_rows is not None:
            self.finals[g][batch.cut_rows] = batch.cut_finals
        if self.fresh[g]:
            views[3][:] = 1  # a rejoined host's envs start new episodes: their first batch is truncated
            self.finals[g][:] = views[0]
            self.fresh[g] = False
        self.flight[g] = False
        self.ready[g] = tuple(views)

    def drop(self, g: int) -> bool:
        """The group's host is gone: the group turns void; True if a received batch is thrown away."""
        discarded = self.ready[g] is not None
        if not self.void[g]:
            self.lost_next[g] = True
        self.ready[g], self.flight[g], self.void[g], self.fresh[g] = None, False, True, False
        return discarded
