"""Waiting for the actors' answers: blocking (never spinning), with a deadline and a liveness check.

Order "turn" waits for one group (:meth:`Waiter.until`); order "ready" takes whichever group
in flight is answered first (:meth:`Waiter.first_ready`). Either way what woke the wait is
read by the :class:`Crew`, and the pool's liveness check (``check_alive``: raise or
restart) runs whenever an actor exited or nothing came for a while.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .crew import ALL, ActorError, Crew
from .ledger import GroupLedger

AUDIT_S = 0.1  # order "ready": how often first_ready looks for dead or silent actors without sleeping
_NAP_S = 0.25  # the longest sleep between liveness checks
CheckAlive = Callable[[list[int]], None]  # called with the pidfds that fired (none: check every actor)


class Waiter:
    """Sleeps on the crew's epolls until the ledger says what is owed has come."""

    def __init__(self, crew: Crew, ledger: GroupLedger, timeout: float) -> None:
        self.crew, self.ledger, self.timeout = crew, ledger, timeout
        self._audit_at = 0.0  # order "ready": when first_ready next looks for dead or silent actors

    def until(self, g: int | None, deadline: float, check_alive: CheckAlive) -> None:
        """Blocks until group ``g`` (None: every actor) is answered; wakes on done bytes,
        messages and deaths.

        It sleeps on one actor at a time, in an ``epoll`` holding that actor's done FIFO, the
        router's notification fd (ZMQ_FD: readable once messages arrived after the last
        drain, which then reads them all) and every actor's pidfd. Other actors' answers
        meanwhile wake nobody (a wake-up costs the waker tens of µs on a VM); they are read
        when their turn comes. An actor has answered once its done message is read.
        """
        owing, poll = self.ledger.owing, self.crew.poll
        last = None
        while True:
            k = owing(g)
            if k is None:
                # Complete. An actor that died after answering shows in the next wait.
                if last is not None:
                    self.ledger.slowest(last)
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self.silent(k)
            if self._dispatch(poll(k, min(remaining, _NAP_S)), check_alive):
                last = k  # its epoll holds no other done FIFO

    def first_ready(self, deadline: float, check_alive: CheckAlive) -> int:
        """Order "ready": the group in flight longest of those answered, waiting for one if none is."""
        ledger, poll = self.ledger, self.crew.poll
        while True:
            now = time.monotonic()
            if now >= self._audit_at:
                # Deaths and hangs must show even while other groups keep coming: every AUDIT_S,
                # read what arrived (answers first, so a caller back from a long pause sees what
                # came meanwhile) and notice exits; the oldest group owed must be within the timeout.
                self._audit_at = now + AUDIT_S
                self._dispatch(poll(ALL, 0), check_alive)
                late = ledger.overdue(now, self.timeout)
                if late is not None:
                    raise self.silent(late)
            g = ledger.take_ready()
            if g is not None:
                return g
            remaining = deadline - now
            if remaining <= 0:
                raise self.silent(ledger.owing(ledger.flight[0]))
            self._dispatch(poll(ALL, min(remaining, _NAP_S)), check_alive)

    def silent(self, k: int | None) -> ActorError:
        assert k is not None, "a group is owed, so some actor owes it"
        return self.crew.fail(k, f"sent nothing for {self.timeout:g} s (still running)")

    def _dispatch(self, events: list[tuple[int, int]], check_alive: CheckAlive) -> bool:
        """Reads what an epoll reported; checks exits (every actor's, when nothing came at all).
        True if a done FIFO was read."""
        read, exited = self.crew.dispatch(events)
        if exited or not events:
            check_alive(exited)  # an actor exited, or nothing came for a while
        return read
