"""Where a pool's envs live: which actor steps them, in which part, group and arena rows.

Envs are split into ``num_envs // batch_size`` groups, each one contiguous run of arena
rows (the arena is laid out group by group), so ``recv`` can return a group as one view.
An actor's envs come in ``parts_per_actor`` parts (one env vector each); a group is made
of *members*, one part of one actor each, and (:func:`plan_layout`) either

- every actor owns one part of every group (``split``: an actor then never waits for the
  caller, the next part's command being in its FIFO by the time it stepped one part),
- one part of one actor is a whole group (``local``: actors never wait for each other), or
- a group is a set of whole actors (one part each).

Actor ``k`` owns the global env ids ``[k * envs_per_actor, (k + 1) * envs_per_actor)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .wire import MAX_PARTS

MAX_GROUPS = MAX_PARTS  # a step command names its part in two bytes


def plan_layout(
    num_envs: int, num_actors: int, batch_size: int, split: bool = True, local: bool = False
) -> tuple[int, int, int]:
    """Checks the layout; returns ``(envs_per_actor, parts_per_actor, actors_per_group)``.

    With ``local``, when the batch divides an actor's envs into two or more parts, each
    group is one part of one actor (so actors never wait for each other). With ``split``,
    every actor takes a part of every group when its envs divide evenly into the groups.
    Otherwise (or without either, when whole actors fit) a group is whole actors, so the
    batch must be a multiple of the envs per actor.
    """
    for name, value in (("num_envs", num_envs), ("num_actors", num_actors), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    if num_envs % num_actors:
        raise ValueError(f"num_envs ({num_envs}) must be divisible by num_actors ({num_actors})")
    per_actor = num_envs // num_actors
    if num_envs % batch_size:
        raise ValueError(f"batch_size ({batch_size}) must divide num_envs ({num_envs})")
    groups = num_envs // batch_size
    if groups > MAX_GROUPS:
        raise ValueError(f"batch_size ({batch_size}) is too small: at most {MAX_GROUPS} groups of envs in flight")
    if local and per_actor % batch_size == 0 and per_actor > batch_size:
        return per_actor, per_actor // batch_size, 1
    whole = batch_size % per_actor == 0
    if per_actor % groups == 0 and (split or not whole):
        return per_actor, groups, num_actors
    if whole:
        return per_actor, 1, batch_size // per_actor
    raise ValueError(
        f"batch_size ({batch_size}) must either be a multiple of the envs per actor ({per_actor}) "
        f"or split them evenly (num_envs / batch_size = {groups} groups must divide {per_actor})"
    )


@dataclass(frozen=True)
class Member:
    """One part of one actor, in one group: its global env ids and its arena env rows, ``[lo, hi)``."""

    actor: int
    part: int
    envs: tuple[int, int]
    rows: tuple[int, int]


@dataclass(frozen=True)
class PoolLayout:
    """A checked layout (see :func:`plan_layout`) and every group's members, in arena order."""

    num_envs: int
    num_actors: int
    batch_size: int
    envs_per_actor: int
    parts_per_actor: int
    actors_per_group: int
    groups: tuple[tuple[Member, ...], ...] = field(init=False, repr=False)

    @classmethod
    def plan(
        cls, num_envs: int, num_actors: int, batch_size: int, split: bool = True, local: bool = False
    ) -> PoolLayout:
        return cls(num_envs, num_actors, batch_size, *plan_layout(num_envs, num_actors, batch_size, split, local))

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", tuple(self._members(g) for g in range(self.num_groups)))

    @property
    def num_groups(self) -> int:
        return self.num_envs // self.batch_size

    @property
    def spans_all(self) -> bool:
        """Every actor has a part of every group."""
        return self.parts_per_actor > 1 and self.actors_per_group > 1

    def group_actors(self, g: int) -> range:
        """The actors with a part in group ``g``, in arena order."""
        per_group = self.actors_per_group
        if self.parts_per_actor == 1:
            return range(g * per_group, (g + 1) * per_group)  # whole actors
        if per_group == 1:
            return range(g % self.num_actors, g % self.num_actors + 1)  # one part of one actor
        return range(self.num_actors)  # every actor has a part of every group

    def _members(self, g: int) -> tuple[Member, ...]:
        size = self.envs_per_actor // self.parts_per_actor
        if self.parts_per_actor == 1:
            part = 0
        elif self.actors_per_group == 1:
            part = g // self.num_actors  # groups take turns over the actors, then the parts
        else:
            part = g
        out, row = [], g * self.batch_size
        for k in self.group_actors(g):
            env_lo = k * self.envs_per_actor + part * size
            out.append(Member(k, part, (env_lo, env_lo + size), (row, row + size)))
            row += size
        return tuple(out)

    def parts(self, actor: int) -> list[tuple[int, int]]:
        """Actor ``actor``'s parts as arena env rows ``[lo, hi)``, part by part."""
        rows = {m.part: m.rows for members in self.groups for m in members if m.actor == actor}
        return [rows[j] for j in range(self.parts_per_actor)]

    def env_slice(self, actor: int) -> tuple[int, int]:
        """Global env ids ``[lo, hi)`` that actor ``actor`` steps."""
        return actor * self.envs_per_actor, (actor + 1) * self.envs_per_actor

    def rows_per_env(self, buffers: dict[str, np.ndarray]) -> dict[str, int]:
        """Each buffer's rows per env (agents, or 1 for per-env extras) in an arena of ``num_envs``."""
        return {name: a.shape[0] // self.num_envs for name, a in buffers.items()}

    def views(self, g: int, buffers: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Group ``g``'s rows of every buffer: one contiguous view each."""
        lo, hi = g * self.batch_size, (g + 1) * self.batch_size
        rows = self.rows_per_env(buffers)
        return {name: a[lo * rows[name]:hi * rows[name]] for name, a in buffers.items()}

    def env_ids(self, g: int, agents_per_env: int) -> np.ndarray:
        """Group ``g``'s agents' global ids, in arena order."""
        return np.concatenate([
            np.arange(m.envs[0] * agents_per_env, m.envs[1] * agents_per_env) for m in self.groups[g]
        ])
