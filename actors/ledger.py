"""What the pool sent each actor, what came back, and what each group is still owed.

Each actor answers every message it is sent in order (its start counts as one, answered
by its hello), so counts suffice: group ``g`` is ready once every actor ``k`` in it has
answered ``need[g][k]`` messages.
"""

from __future__ import annotations

from .layout import PoolLayout


class GroupLedger:
    """The pool's accounts, per actor and per group (no I/O: the pool reports what happened)."""

    def __init__(self, layout: PoolLayout) -> None:
        self.layout = layout
        actors, groups = layout.num_actors, layout.num_groups
        self.sent = [0] * actors  # messages sent to each actor, its start included
        self.got = [0] * actors  # answers read back
        self.need = [[0] * actors for _ in range(groups)]  # answers group g waits for, per actor
        self.order = list(range(actors))  # which actor to wait on first (see owing)
        self.flight: list[int] = []  # order "ready": groups in flight, in the order they were sent
        self.sent_at = [0.0] * groups  # order "ready": when each group was last sent

    def started(self, k: int) -> None:
        """Actor ``k`` (re)started: it owes its hello, and every group waits for it."""
        self.sent[k], self.got[k] = 1, 0
        for need in self.need:
            need[k] = 1

    def signalled(self, k: int) -> None:
        """One message more sent to actor ``k``."""
        self.sent[k] += 1

    def answered(self, k: int, count: int = 1) -> None:
        self.got[k] += count

    def reset_sent(self, now: float) -> None:
        """Every actor was sent a reset: every group is in flight and waits for all of it."""
        for need in self.need:
            need[:] = self.sent
        self.flight = list(range(self.layout.num_groups))
        self.sent_at = [now] * self.layout.num_groups

    def group_sent(self, g: int, now: float, ready: bool) -> None:
        """Group ``g``'s step commands went out: it waits for them (and, with ``ready``, is in flight)."""
        need, sent = self.need[g], self.sent
        for m in self.layout.groups[g]:
            need[m.actor] = sent[m.actor]
        if ready:
            self.flight.append(g)
            self.sent_at[g] = now

    def owing(self, g: int | None) -> int | None:
        """An actor that has not yet answered what group ``g`` (or, for None, anything) needs.

        The one that answered last the previous time comes first: waiting on the slowest
        actor first means sleeping (and being woken) once per batch, not once per actor.
        """
        got = self.got
        need = self.sent if g is None else self.need[g]
        for k in self.order if g is None or self.layout.spans_all else self.layout.group_actors(g):
            if got[k] < need[k]:
                return k
        return None

    def slowest(self, k: int) -> None:
        """Actor ``k`` answered last: wait on it first next time."""
        if self.order[0] != k:
            self.order.remove(k)
            self.order.insert(0, k)

    def take_ready(self) -> int | None:
        """Order "ready": the group in flight longest of those answered, out of the flight; None if none is."""
        for i, g in enumerate(self.flight):
            if self.owing(g) is None:
                del self.flight[i]
                return g
        return None

    def overdue(self, now: float, timeout: float) -> int | None:
        """Order "ready": the actor owing the oldest owed group, if that was sent over ``timeout`` ago."""
        for g in self.flight:
            k = self.owing(g)
            if k is not None:
                return k if now - self.sent_at[g] > timeout else None
        return None

    def restart_clock(self, k: int, now: float) -> None:
        """Actor ``k`` restarted: the groups in flight it is in wait from now."""
        for g in self.flight:
            if k in self.layout.group_actors(g):
                self.sent_at[g] = now
