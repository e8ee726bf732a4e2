"""The learner's listening socket for remote actor hosts: one ZeroMQ ROUTER, CurveZMQ and ZAP.

:class:`actors.remote_pool.RemotePool` talks through it; what the messages mean is in
:mod:`actors.remote_wire`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, cast

import zmq

from . import remote_wire as wire


class Listener:
    """Binds ``bind``; refuses frames over ``max_frame`` bytes (ZeroMQ closes such a connection itself)."""

    def __init__(self, bind: str, keys: str | None, max_frame: int) -> None:
        self._context = zmq.Context(1)
        self._router = self._context.socket(zmq.ROUTER)
        self._auth: Any = None
        self._closed = False
        try:
            wire.tune(self._router)
            self._router.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a send to a peer that is gone says EHOSTUNREACH
            self._router.setsockopt(zmq.MAXMSGSIZE, max_frame)
            self._auth = wire.secure_server(self._context, self._router, keys)
            self._router.bind(bind)
        except zmq.ZMQError as exc:
            self.close(())
            raise ValueError(f"cannot listen for remote actors on {bind}: {exc}") from None
        except BaseException:
            self.close(())
            raise
        self.endpoint = self._router.getsockopt_string(zmq.LAST_ENDPOINT)

    def send(self, frames: list[Any], wait: bool = True) -> None:
        """Sends a multipart message without copying its buffers; zmq.ZMQError if it cannot go."""
        self._router.send_multipart(frames, 0 if wait else zmq.NOBLOCK, copy=False)

    def reply(self, ident: bytes, message: bytes) -> None:
        """One frame to a peer; a peer already gone is no error."""
        try:
            self._router.send_multipart([ident, message], zmq.NOBLOCK)
        except zmq.ZMQError:
            pass

    def incoming(self, wait: float) -> Iterator[list[zmq.Frame]]:
        """The messages that arrived, waiting up to ``wait`` s for the first if none is there yet."""
        router = self._router
        if wait > 0 and not cast(int, router.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
            router.poll(int(wait * 1000))  # as Poller.poll takes it: whole milliseconds
        while cast(int, router.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
            yield router.recv_multipart(copy=False)

    def close(self, idents: Iterable[bytes]) -> None:
        """Tells each of ``idents`` why (the learner closed), then closes the socket and ZAP; safe twice."""
        if self._closed:
            return
        self._closed = True
        for ident in idents:
            self.reply(ident, b"Qthe learner closed")
        self._router.close(linger=0)
        if self._auth is not None:
            self._auth.stop()
        self._context.term()
