"""The per-step signal between the pool and one actor: a pair of named FIFOs.

One byte-sized command down the go FIFO, one answer back up the done FIFO (the bytes are
:mod:`actors.wire`'s), because a ZeroMQ round trip costs more than stepping thousands of
envs. Each actor generation gets its own pair (``go-K-G``, ``done-K-G`` in the pool's
private directory), so a restarted actor never reads its predecessor's bytes.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import wire

_FLAGS = os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC


class Doorbell:
    """Actor ``actor``'s FIFO pair for generation ``generation``, the pool's ends.

    Making it unlinks the actor's older pairs. The pool opens both FIFOs read-write: the
    opens never block, the actor's opens find a peer, and neither end ever sees a hang-up
    (deaths show on the actors' pidfds instead). An answer read in part waits here for
    its rest.
    """

    def __init__(self, directory: Path, actor: int, generation: int) -> None:
        for stale in (*directory.glob(f"go-{actor}-*"), *directory.glob(f"done-{actor}-*")):
            stale.unlink(missing_ok=True)
        self.go_path = directory / f"go-{actor}-{generation}"
        self.done_path = directory / f"done-{actor}-{generation}"
        self.go_fd = self.done_fd = -1
        os.mkfifo(self.go_path, 0o600)
        os.mkfifo(self.done_path, 0o600)
        try:
            self.go_fd = os.open(self.go_path, _FLAGS)
            self.done_fd = os.open(self.done_path, _FLAGS)
        except BaseException:
            self.close()
            raise
        self._partial = b""

    def ring(self, command: bytes) -> None:
        """Writes one command; raises OSError when the actor stopped reading (the FIFO is full)."""
        os.write(self.go_fd, command)

    def answers(self, tally: wire.Tally) -> int:
        """Reads what arrived: returns how many whole answers, their episode statistics to ``tally``."""
        try:
            data = self._partial + os.read(self.done_fd, 65536)
        except BlockingIOError:
            return 0
        got, self._partial = wire.read_answers(data, tally)
        return got

    def close(self) -> None:
        """Closes the pool's ends and removes the FIFOs; safe to call twice."""
        for fd in (self.go_fd, self.done_fd):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.go_fd = self.done_fd = -1
        self.go_path.unlink(missing_ok=True)
        self.done_path.unlink(missing_ok=True)
