"""The pool's actor processes and their channels, generation by generation.

Per actor: its process (from :mod:`actors.forkserver`), its pidfd, its :class:`Doorbell`
and its ZeroMQ identity, all replaced when it restarts. One ROUTER socket hears every
actor's hello and traceback. One ``epoll`` per waiting pattern holds the done FIFOs it
waits on, the router's notification fd and every pidfd, so a death is noticed as soon as
a finished step is. What is read goes to the pool's :class:`GroupLedger` (answers) and
:class:`wire.Tally` (episode statistics).
"""

from __future__ import annotations

import os
import select
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import zmq

from . import wire
from .doorbell import Doorbell
from .ledger import GroupLedger

# Plain ints: pyzmq's flag enums cost an object per ``|``/``&`` on the per-message path.
_NOBLOCK, _POLLIN, _EVENTS = int(zmq.NOBLOCK), int(zmq.POLLIN), int(zmq.EVENTS)
ALL = -1  # poll(): every actor's done FIFO


class ActorError(RuntimeError):
    """An actor died or stopped answering; names it, its env slice and why."""

    def __init__(self, actor: int, envs: tuple[int, int], status: str, traceback: str | None = None) -> None:
        self.actor, self.envs, self.status, self.traceback = actor, envs, status, traceback
        text = f"actor {actor} (envs {envs[0]}:{envs[1]}) {status}"
        if traceback:
            text += "\n--- actor traceback ---\n" + traceback.rstrip()
        super().__init__(text)


def exit_status(exitcode: int | None) -> str:
    """'killed by SIGSEGV', 'exited with code 1', ... for a process's exit code."""
    if exitcode is None:
        return "is running"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


class Crew:
    """Actors ``0..num_actors-1``: their processes, doorbells, identities and the epolls over them."""

    def __init__(self, directory: Path, num_actors: int, ledger: GroupLedger, tally: wire.Tally) -> None:
        self.dir, self.ledger, self.tally = directory, ledger, tally
        self._zmq = zmq.Context(1)
        self.router = self._zmq.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.endpoint = f"ipc://{directory}/control"
        self.procs: list[Any] = [None] * num_actors
        self.generation = [0] * num_actors
        self.doorbells: list[Doorbell | None] = [None] * num_actors
        self.tracebacks: dict[int, str] = {}
        self._pidfds: list[int | None] = [None] * num_actors  # ours to close
        self._idents = [b""] * num_actors  # current identity per actor
        self._actor_of: dict[bytes, int] = {}  # identity -> actor, current generations only
        self._actor_of_done: dict[int, int] = {}  # done fd -> actor
        self._polls: dict[int, Any] = {}  # actor (or ALL) -> select.epoll; rebuilt on a restart
        self._router_fd = -1
        self._closed = False
        self.failure: ActorError | None = None  # once set, the pool raises it on every call

    def fail(self, k: int, status: str, traceback: str | None = None) -> ActorError:
        """Records actor ``k``'s failure and returns it to raise."""
        self.failure = ActorError(k, self.ledger.layout.env_slice(k), status, traceback)
        return self.failure

    def bind(self) -> None:
        self.router.bind(self.endpoint)
        self._router_fd = int(self.router.getsockopt(zmq.FD))

    def doorbell(self, k: int) -> Doorbell:
        """A fresh doorbell for actor ``k``'s current generation (the previous one closed)."""
        old = self.doorbells[k]
        if old is not None:
            self._actor_of_done.pop(old.done_fd, None)
            old.close()
            self.doorbells[k] = None
        bell = self.doorbells[k] = Doorbell(self.dir, k, self.generation[k])
        self._actor_of_done[bell.done_fd] = k
        return bell

    def adopt(self, k: int, proc: Any, identity: bytes) -> None:
        """Actor ``k``'s new process, started on its current doorbell, speaking as ``identity``."""
        old = self._pidfds[k]
        self.procs[k], self._pidfds[k] = proc, proc.pidfd
        if old is not None:
            _close_fd(old)  # the replaced actor's pidfd
        self._actor_of.pop(self._idents[k], None)
        self._idents[k] = identity
        self._actor_of[identity] = k
        self._drop_polls()
        self.tracebacks.pop(k, None)

    def ring(self, k: int, command: bytes) -> None:
        """Writes ``command`` to actor ``k`` (OSError: it stopped reading)."""
        self.doorbells[k].ring(command)  # type: ignore[union-attr]

    def poll(self, k: int, timeout: float) -> list[tuple[int, int]]:
        """Waits up to ``timeout`` s on actor ``k``'s done FIFO (every actor's for ``ALL``), the
        router and every pidfd."""
        epoll = self._polls.get(k)
        if epoll is None:
            epoll = self._polls[k] = select.epoll()
            epoll.register(self._router_fd, select.EPOLLIN)
            bells = self.doorbells if k == ALL else [self.doorbells[k]]
            for fd in (*self._pidfds, *(b.done_fd for b in bells if b is not None)):
                if fd is not None:
                    epoll.register(fd, select.EPOLLIN)
        return epoll.poll(timeout)

    def dispatch(self, events: list[tuple[int, int]]) -> tuple[bool, list[int]]:
        """Handles what :meth:`poll` reported: done FIFOs read, ZeroMQ drained. Returns whether
        a done FIFO was read, and the pidfds that fired (those actors exited)."""
        read, exited = False, []
        for fd, _ in events:
            k = self._actor_of_done.get(fd)
            if k is not None:
                bell = self.doorbells[k]
                try:
                    got = bell.answers(self.tally)  # type: ignore[union-attr]
                except ValueError as exc:
                    raise RuntimeError(f"actor {k}: {exc}") from None
                self.ledger.answered(k, got)
                read = True
            elif fd == self._router_fd:
                self.drain()  # hellos and tracebacks; ZMQ_FD fires once per batch of them
            else:
                exited.append(fd)
        return read, exited

    def drain(self) -> None:
        """Handles every message already queued, without blocking (each is identity + one frame)."""
        router = self.router
        while int(router.getsockopt(_EVENTS)) & _POLLIN:
            ident = router.recv(_NOBLOCK)
            payload = router.recv(_NOBLOCK)
            k = self._actor_of.get(ident)
            if k is None:
                continue  # a message from a replaced actor
            op = payload[:1]
            if op == wire.HELLO:
                self.ledger.answered(k)
            elif op == wire.ERROR:
                self.tracebacks[k] = payload[1:].decode(errors="replace")

    def exited(self, fired: list[int] | None = None) -> Iterator[tuple[int, int]]:
        """Each actor that has exited, as ``(actor, exit code)``, its traceback in by then if it sent one."""
        for fd in fired or ():
            # The kernel says it exited; the fork server reports the status a moment later.
            self.procs[self._pidfds.index(fd)].join(1.0)
        for k, proc in enumerate(self.procs):
            if proc.exitcode is None:
                continue
            if proc.exitcode > 0 and k not in self.tracebacks:
                # The traceback was sent before the exit: give it a moment to arrive.
                end = time.monotonic() + 0.3
                while k not in self.tracebacks and time.monotonic() < end:
                    if self.router.poll(50):
                        self.drain()
            yield k, proc.exitcode

    def quit(self) -> None:
        """Asks every running actor to quit (an actor not reading is killed by :meth:`close`)."""
        for proc, bell in zip(self.procs, self.doorbells, strict=True):
            if proc is not None and proc.exitcode is None and bell is not None:
                try:
                    bell.ring(wire.QUIT)
                except OSError:
                    pass  # full or gone

    def _drop_polls(self) -> None:
        for epoll in self._polls.values():
            epoll.close()
        self._polls.clear()

    def close(self) -> None:
        """Actors stopped (a second to quit, then killed), every fd and socket closed; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + 1.0
        for proc in self.procs:
            if proc is not None:
                proc.join(max(0.0, deadline - time.monotonic()))
        for proc in self.procs:
            if proc is not None and proc.exitcode is None:
                proc.kill()
                proc.join(1.0)
        self._drop_polls()
        for fd in self._pidfds:
            if fd is not None:
                _close_fd(fd)
        for bell in self.doorbells:
            if bell is not None:
                bell.close()
        self.router.close(linger=0)
        self._zmq.term()


def _close_fd(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
