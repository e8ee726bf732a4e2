"""The actor process: steps its slice of envs in the arena when the pool says so.

The hot path is a doorbell: two named FIFOs per actor and generation in the pool's private
socket directory (by path, so forkserver children need no inherited fds). A ZeroMQ round
trip crosses both sides' I/O threads (100-200 µs wall); a pipe byte costs a few µs.

- go FIFO, pool → actor: ``S`` step with the actions already in the arena,
  ``R<seed:8>`` reset, ``Q`` quit (end of file, once the pool closed it, also quits).
- done FIFO, actor → pool, one message per finished step or reset: ``D``, or, on steps
  where episodes finished, ``d<length:4>`` + JSON ``[episodes, {stat: mean}]``. The
  summary rides the doorbell rather than ZeroMQ because with thousands of envs episodes
  end on nearly every step, and one ZeroMQ message per step cost a quarter of the rate.
- ZeroMQ (DEALER → the pool's ROUTER, identity ``b"<actor>:<generation>"``), actor → pool,
  one frame each: ``H`` hello (envs built, observations ready), ``E`` + traceback before dying.

No data crosses either channel. The actor never spins: it blocks in ``poll`` on the go
FIFO with a short timeout and uses each timeout to check that its owner is still alive.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
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
    go_path: Path  # FIFO pool -> actor
    done_path: Path  # FIFO actor -> pool
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
    # The pool holds both FIFOs open read-write before starting us, so neither open blocks.
    go = os.open(cfg.go_path, os.O_RDONLY | os.O_NONBLOCK)
    done = os.open(cfg.done_path, os.O_WRONLY | os.O_NONBLOCK)
    os.set_blocking(go, True)
    os.set_blocking(done, True)
    try:
        _loop(cfg, sock, parent, env, go, done)
    finally:
        os.close(go)
        os.close(done)


def _loop(cfg: ActorConfig, sock: zmq.Socket, parent: int, env: Any, go: int, done: int) -> None:
    sock.send(b"H")
    poller = select.poll()
    poller.register(go, select.POLLIN)
    wait, read, write = poller.poll, os.read, os.write
    step, stats = env.step, env.episode_stats
    pending = b""
    while True:
        if not pending:
            if not wait(POLL_MS):
                if _orphaned(parent, cfg.owner_pid):
                    os._exit(0)
                continue
            pending = read(go, 4096)
            if not pending:  # end of file: the pool closed the doorbell (or died)
                env.close()
                return
        op = pending[:1]
        if op == b"S":
            pending = pending[1:]
            step()
        elif op == b"R":
            while len(pending) < 9:  # writes under PIPE_BUF are atomic: this never waits long
                more = read(go, 4096) if wait(POLL_MS) else b""
                if not more:
                    raise RuntimeError(f"actor {cfg.index}: truncated reset message {pending!r}")
                pending += more
            env.reset(int.from_bytes(pending[1:9], "little"))
            pending = pending[9:]
        elif op == b"Q":
            env.close()
            return
        else:
            raise RuntimeError(f"actor {cfg.index}: unknown control byte {op!r}")
        summary = stats()
        count = summary.pop("episodes", 0)
        if count:
            payload = json.dumps([count, summary]).encode()
            write(done, b"d" + len(payload).to_bytes(4, "little") + payload)
        else:
            write(done, b"D")
