"""`appliance actors serve`: an actor host feeding a learner rank over ZeroMQ (protocol in :mod:`actors.remote_wire`).

The host asks the learner for a slot (hello), is told its share (env, envs per batch,
batches in flight), and runs one :class:`actors.ActorPool` per batch in flight, each a
synchronous pool of whole actors on the host's cores. So a batch's arena rows stay
untouched from the moment they are sent (zero-copy, ``copy=False``) until its actions come
back, and those are received straight into the same arena (``recv_into``), using only the
pool's public surface: several batches in flight need no second ledger inside the pool.

When the learner goes away (killed: its kernel resets the connection; cut off: ZMTP
heartbeats stop, the connection closes after :data:`actors.remote_wire.HEARTBEAT_TIMEOUT_MS`)
or drops this host, the host closes its pools (actors stopped, arenas removed) at once
and tries again with a new hello after a backoff that doubles up to :data:`BACKOFF_MAX_S`.
Every send is non-blocking: a connection can go between a poll and the next send, before the
monitor tells, and a DEALER with no peer left would wait in a blocking send forever.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import threading
import time
from typing import Any, cast

import numpy as np
import zmq
from zmq.utils.monitor import recv_monitor_message

from . import remote_wire as wire
from .pool import ActorPool, actor_seed
from .remote_wire import log

WELCOME_S = 5.0  # a learner that has not welcomed a hello by then is tried again later
BACKOFF_S, BACKOFF_MAX_S = 0.5, 10.0
POLL_MS = 100
LOST = "lost the learner (connection closed or heartbeats stopped)"
_EVENTS = (zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
           | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_MONITOR_STOPPED)


class _Ended(Exception):
    """The session is over; the message says why (one log line), ``welcomed`` whether it had begun."""

    def __init__(self, why: str, welcomed: bool) -> None:
        super().__init__(why)
        self.welcomed = welcomed


def split_actors(num_envs: int, actors: int) -> int:
    """Actors for one batch of ``num_envs`` envs: at most ``actors``, and a divisor of ``num_envs``."""
    actors = max(1, min(actors, num_envs))
    while num_envs % actors:
        actors -= 1
    return actors


class Session:
    """One connection to the learner: hello, welcome, then batches until it ends."""

    def __init__(self, connect: str, keys: str | None, client: str | None, name: str, env: str | None,
                 cores: list[int], actors: int | None, stop: threading.Event) -> None:
        self.connect, self.name, self.env, self.cores, self.stop = connect, name, env, cores, stop
        self.actors = actors or len(cores)
        self.context = zmq.Context(1)
        self.socket = self.context.socket(zmq.DEALER)
        wire.tune(self.socket)
        self.socket.setsockopt(zmq.RECONNECT_IVL, -1)  # a lost connection ends the session, never resumes it
        wire.secure_client(self.socket, keys, client)
        self.monitor = self.socket.get_monitor_socket(_EVENTS)
        self.pools: list[ActorPool] = []
        self.seq: list[int] = []
        self.epoch = 0
        self.welcomed = False
        self.steps = 0

    def _send(self, frames: list[Any]) -> None:
        """Sends without blocking. Its queue has no limit (``SNDHWM`` 0), so the only "would block" is a
        connection already gone, before the monitor says so: a blocking send would wait there forever."""
        try:
            self.socket.send_multipart(frames, zmq.NOBLOCK, copy=False)
        except zmq.Again:
            raise _Ended(LOST, self.welcomed) from None

    def _tell(self, message: bytes) -> None:
        """A last word to the learner (why this session ends); lost with the connection if that is gone."""
        try:
            self.socket.send(message, zmq.NOBLOCK)
        except zmq.ZMQError:
            pass

    def close(self) -> None:
        """Stops every actor (the pools remove their arenas) and closes the sockets."""
        for pool in self.pools:
            pool.close()
        self.pools = []
        try:
            self.socket.disable_monitor()
        except zmq.ZMQError:
            pass
        self.monitor.close(linger=0)
        self.socket.close(linger=0)
        self.context.term()

    def run(self) -> None:
        """Runs until the session ends; raises :class:`_Ended` with the reason."""
        self.socket.connect(self.connect)
        hello = {"name": self.name, "cores": len(self.cores), "env": self.env, "pid": os.getpid(),
                 "version": wire.VERSION}
        self._send([b"H" + json.dumps(hello).encode()])
        self._welcome(time.monotonic() + WELCOME_S)
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        poller.register(self.monitor, zmq.POLLIN)
        stats_at = 0.0
        while not self.stop.is_set():
            ready = dict(poller.poll(POLL_MS))
            if self.monitor in ready:
                self._event()
            try:
                stepping = self._drain() if self.socket in ready else []
                for j in stepping:
                    self._ship(j)
            except (RuntimeError, ValueError) as exc:  # an actor died, or the learner broke the protocol
                sentence = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                self._tell(b"E" + sentence.encode())
                raise _Ended(sentence, True) from None
            now = time.monotonic()
            if now >= stats_at:
                self._stats()
                stats_at = now + wire.STATS_S
        raise _Ended("stopped", self.welcomed)

    def _event(self) -> None:
        while self.monitor.poll(0):
            event = recv_monitor_message(self.monitor)["event"]
            if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                raise _Ended("the learner refused this host's key (it is not listed there)", self.welcomed)
            if event in (zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL):
                raise _Ended("the handshake with the learner failed (keys, or --insecure on one side only?)",
                             self.welcomed)
            if event in (zmq.EVENT_DISCONNECTED, zmq.EVENT_MONITOR_STOPPED):
                raise _Ended(LOST, self.welcomed)

    def _welcome(self, deadline: float) -> None:
        while not self.stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Ended(f"no welcome from {self.connect} within {WELCOME_S:g} s", False)
            if self.monitor.poll(0):
                self._event()
            if not self.socket.poll(int(min(remaining, 0.1) * 1000)):  # as Poller.poll takes it: whole ms
                continue
            msg = self.socket.recv()
            if msg[:1] == b"Q":
                raise _Ended(f"the learner refused: {msg[1:].decode(errors='replace')}", False)
            if msg[:1] == b"W":
                self._build(json.loads(msg[1:]))
                return
        raise _Ended("stopped", False)

    def _build(self, share: dict[str, Any]) -> None:
        """Builds one synchronous pool per batch in flight, then tells the learner (``J``)."""
        env, batches, per_batch = share["env"], int(share["batches"]), int(share["envs"])
        if self.env is not None and self.env != env:
            self._tell(b"E" + f"this host serves {self.env}, not {env}".encode())
            raise _Ended(f"the learner trains {env}, this host was started for {self.env}", False)
        self.welcomed = True
        actors = split_actors(per_batch, max(1, self.actors // batches))
        log.info("host %s: slot %d, %d x %d %s envs, %d actor(s) per batch", self.name, share["slot"], batches,
                 per_batch, env, actors)
        try:
            for j in range(batches):
                cores = self.cores[(j * actors) % len(self.cores):] + self.cores[:(j * actors) % len(self.cores)]
                self.pools.append(ActorPool(env, per_batch, actors, per_batch, seed=int(share["seed"]),
                                            cores=cores, **dict(share.get("params", {}))))
        except Exception as exc:
            sentence = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            self._tell(b"E" + f"cannot run {env}: {sentence}".encode())
            raise _Ended(f"cannot run {env}: {sentence}", True) from None
        self.seq = [0] * batches
        self._send([b"J"])

    def _drain(self) -> list[int]:
        """Handles every message queued; returns the batches now stepping (to be shipped)."""
        stepping: list[int] = []
        sock = self.socket
        while cast(int, sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
            head = sock.recv(zmq.NOBLOCK)
            op = head[:1]
            if op == b"A":
                slot, seq = wire.ACTIONS.unpack_from(head, 1)
                pool = self.pools[slot]
                if seq != self.seq[slot] or not sock.getsockopt(zmq.RCVMORE):
                    raise _Ended(f"the learner sent actions out of order for batch {slot}", True)
                target = pool.actions
                got = sock.recv_into(target)  # straight into the arena
                if got != target.nbytes or sock.getsockopt(zmq.RCVMORE):
                    raise _Ended(f"the learner sent {got} bytes of actions, not {target.nbytes}", True)
                pool.send(target)
                stepping.append(slot)
            elif op == b"R":
                self.epoch, seed = wire.RESET.unpack_from(head, 1)
                self.seq = [0] * len(self.pools)
                for j, pool in enumerate(self.pools):
                    pool.async_reset(actor_seed(seed, j))
                stepping = list(range(len(self.pools)))
            elif op == b"P":
                self._send([b"p" + head[1:]])
            elif op == b"Q":
                raise _Ended(f"dropped by the learner: {head[1:].decode(errors='replace')}", True)
            while sock.getsockopt(zmq.RCVMORE):
                sock.recv()  # the rest of a message this host does not know
        return stepping

    def _ship(self, j: int) -> None:
        """Receives batch ``j`` from its pool and sends it, zero-copy, from the arena."""
        pool = self.pools[j]
        obs, rewards, terminals, truncations, masks, _ = pool.recv()
        cut = np.flatnonzero(truncations & ~terminals.astype(bool)).astype(np.int32)
        head = b"B" + wire.BATCH.pack(j, self.epoch, self.seq[j], len(cut))
        frames: list[Any] = [head, obs, rewards, terminals, truncations, masks]
        if len(cut):
            frames += [cut, np.ascontiguousarray(pool.final_observations[cut])]
        self._send(frames)
        self.seq[j] += 1
        self.steps += len(rewards)

    def _stats(self) -> None:
        episodes = 0
        sums: dict[str, float] = {}
        for pool in self.pools:
            stats = pool.episode_stats()
            count = int(stats.pop("episodes", 0))
            episodes += count
            for key, mean in stats.items():
                sums[key] = sums.get(key, 0.0) + mean * count
        self._send([b"S" + json.dumps({"episodes": episodes, "sums": sums}).encode()])


def serve(connect: str, *, env: str | None = None, cores: list[int] | None = None, actors: int | None = None,
          keys: str | None = None, client: str | None = None, insecure: bool = False, name: str | None = None,
          sessions: int | None = None, stop: threading.Event | None = None) -> int:
    """Serves the learner at ``connect`` until stopped (SIGTERM/SIGINT), reconnecting with backoff.

    ``sessions``: end after that many sessions (tests); returns how many were welcomed.
    """
    if not connect.startswith("tcp://"):
        raise ValueError(f"--connect must be a tcp:// address of a learner, got {connect!r}")
    if keys is None and not insecure:
        raise ValueError("remote actors need --keys DIR (from `appliance keys new DIR`), or --insecure")
    allowed = sorted(os.sched_getaffinity(0))
    cores = allowed if cores is None else list(cores)
    if not cores or any(c not in allowed for c in cores):
        raise ValueError(f"--cores must be a non-empty subset of the allowed cores {allowed}, got {cores}")
    name = name or socket.gethostname()
    if insecure:
        log.warning("host %s: connecting to the learner over plain TCP (--insecure): no CurveZMQ", name)
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    backoff, welcomed, count = BACKOFF_S, 0, 0
    while not stop.is_set() and (sessions is None or count < sessions):
        count += 1
        session = Session(connect, None if insecure else keys, client, name, env, cores, actors, stop)
        try:
            session.run()
        except _Ended as ended:
            if str(ended) != "stopped":
                log.warning("host %s: %s; actors stopped", name, ended)
            if ended.welcomed:
                welcomed += 1
                backoff = BACKOFF_S
        finally:
            session.close()
        if stop.is_set() or (sessions is not None and count >= sessions):
            break
        wait = backoff * random.uniform(0.8, 1.2)
        log.info("host %s: connecting again in %.1f s", name, wait)
        stop.wait(wait)
        backoff = min(BACKOFF_MAX_S, backoff * 2)
    return welcomed
