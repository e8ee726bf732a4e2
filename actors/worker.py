"""The actor process: steps its slice of envs in the arena when the pool says so.

Control protocol (ZeroMQ DEALER → the pool's ROUTER, identity ``b"<actor>:<generation>"``):

- pool → actor: ``S`` step with the actions already in the arena, ``R<seed:8>`` reset,
  ``Q`` quit.
- actor → pool, one frame each: ``H`` hello (envs built, observations ready), ``D`` done
  (optionally followed by JSON ``[episodes, {stat: mean}]``), ``E`` + traceback before dying.

No data crosses the socket. The actor never spins: it blocks in ``recv`` with a short
timeout and uses each timeout to check that its owner is still alive.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zmq

import envs

from .arena import Arena, Spec

POLL_MS = 200
_PR_SET_PDEATHSIG = 1


@dataclass
class ActorConfig:
    index: int
    generation: int
    endpoint: str
    arena_path: Path
    spec: Spec
    rows: dict[str, tuple[int, int]]  # buffer -> [lo, hi) rows owned by this actor
    env: str | Callable[..., Any]
    num_envs: int
    seed: int
    core: int | None
    owner_pid: int
    restarted: bool = False
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def identity(self) -> bytes:
        return b"%d:%d" % (self.index, self.generation)


def make_env(env: str | Callable[..., Any], num_envs: int, seed: int, buffers: Any, params: dict) -> Any:
    """Builds an env by registry name or by calling a creator with the same keywords."""
    if isinstance(env, str):
        return envs.make(env, num_envs=num_envs, seed=seed, buffers=buffers, **params)
    return env(num_envs=num_envs, seed=seed, buffers=buffers, **params)


def _die_with_parent() -> None:
    """Asks the kernel to SIGKILL us when our parent dies (Linux); the poll loop checks too."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def main(cfg: ActorConfig) -> None:
    """Process entry point (runs in the forkserver-started child)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the pool's to handle
    _die_with_parent()
    parent = os.getppid()
    if cfg.core is not None:
        os.sched_setaffinity(0, {cfg.core})
    context = zmq.Context(1)
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.IDENTITY, cfg.identity)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(cfg.endpoint)
    try:
        _serve(cfg, sock, parent)
    except BaseException:
        # Tell the pool why before dying: term() waits (up to the linger) until the message left.
        sock.send(b"E" + traceback.format_exc().encode())
        sock.close(linger=1000)
        context.term()
        os._exit(1)
    sock.close(linger=0)
    context.term()


def _orphaned(parent: int, owner: int) -> bool:
    if os.getppid() != parent:
        return True
    try:
        os.kill(owner, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    return False


def _serve(cfg: ActorConfig, sock: zmq.Socket, parent: int) -> None:
    arena = Arena.attach(cfg.arena_path, cfg.spec)
    views = {name: arena.buffers[name][lo:hi] for name, (lo, hi) in cfg.rows.items()}
    if cfg.restarted:
        # The learner's last view of these rows ends a (truncated) episode.
        np.copyto(views["final_observations"], views["observations"])
    env = make_env(cfg.env, cfg.num_envs, cfg.seed, views, cfg.params)
    if cfg.restarted:
        views["truncations"][...] = True
        views["terminals"][...] = False
        views["rewards"][...] = 0
    sock.send(b"H")
    # A blocking recv with a timeout: one call per message, no poll-then-recv pair; each
    # timeout checks that the owner is still alive.
    sock.setsockopt(zmq.RCVTIMEO, POLL_MS)
    recv, send, step, stats = sock.recv, sock.send, env.step, env.episode_stats
    while True:
        try:
            msg = recv()
        except zmq.Again:
            if _orphaned(parent, cfg.owner_pid):
                os._exit(0)
            continue
        if msg == b"S":
            step()
        elif msg[:1] == b"R":
            env.reset(int.from_bytes(msg[1:9], "little"))
        elif msg == b"Q":
            env.close()
            return
        else:
            raise RuntimeError(f"actor {cfg.index}: unknown control message {msg[:16]!r}")
        summary = stats()
        count = summary.pop("episodes", 0)
        if count:
            send(b"D" + json.dumps([count, summary]).encode())
        else:
            send(b"D")
