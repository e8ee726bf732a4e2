"""The actor process: steps its slice of envs in the arena when the pool says so.

The hot path is a doorbell: two named FIFOs per actor and generation in the pool's private
socket directory (by path, so forkserver children need no inherited fds). A ZeroMQ round
trip crosses both sides' I/O threads (100-200 µs wall); a pipe byte costs a few µs.
Commands come down the go FIFO (step a part, reset, quit) and one answer per command goes
back up the done FIFO, with the episode statistics of the envs it stepped; ZeroMQ carries
the hello and the traceback of a dying actor. The bytes are the wire protocol of
``envs/c/wire.h`` (:mod:`actors.wire`).

No data crosses either channel. The actor never spins: it blocks in ``poll`` on the go
FIFO with a short timeout and uses each timeout to check that its owner is still alive.
With several parts, the next part's command is usually waiting when a step ends, so the
actor reads it without sleeping. For native envs the step loop (read, step, answer) runs
in C with the GIL released (:func:`envs.native.serve_loop`); Python handles the other
commands.

An actor's envs come in ``parts`` (one vector each, in the arena rows the pool gave it);
part ``j`` is seeded :func:`part_seed` ``(seed, j)``.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import select
import signal
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zmq

import envs
from envs.creators import CreatorError, label

from . import wire
from .arena import Arena, Spec
from .wire import NATIVE_STATS, NATIVE_SUMMARY

__all__ = ["NATIVE_STATS", "NATIVE_SUMMARY", "ActorConfig", "Part", "main", "make_env", "part_seed", "ship_env"]

POLL_MS = 200
_PR_SET_PDEATHSIG = 1
_MASK64 = (1 << 64) - 1


def part_seed(seed: int, part: int) -> int:
    """Seed of part ``part`` of an actor seeded ``seed``: ``seed`` itself for part 0."""
    if not part:
        return seed
    return (seed ^ ((part * 0x94D049BB133111EB) & _MASK64)) & _MASK64


@dataclass
class Part:
    rows: dict[str, tuple[int, int]]  # buffer -> [lo, hi) arena rows
    num_envs: int


@dataclass
class ActorConfig:
    index: int
    generation: int
    endpoint: str
    go_path: Path  # FIFO pool -> actor
    done_path: Path  # FIFO actor -> pool
    arena_path: Path
    spec: Spec
    parts: list[Part]  # this actor's envs, one vector per part
    env: bytes  # (env name or creator, its keyword arguments), cloudpickled: see ship_env
    seed: int
    core: int | None
    owner_pid: int
    restarted: bool = False

    @property
    def identity(self) -> bytes:
        return b"%d:%d" % (self.index, self.generation)


def make_env(env: str | Callable[..., Any], num_envs: int, seed: int, buffers: Any, params: dict) -> Any:
    """Builds an env as ``envs.make`` does (one contract for names, creators and factories)."""
    return envs.make(env, num_envs=num_envs, seed=seed, buffers=buffers, **params)


def ship_env(env: str | Callable[..., Any], params: dict[str, Any]) -> bytes:
    """``(env, params)`` as bytes an actor can load: by value for code in ``__main__`` or a notebook.

    Raises one sentence naming the creator when it cannot be shipped.
    """
    import cloudpickle

    try:
        return cloudpickle.dumps((env, params))
    except Exception as exc:
        what = f"env {env!r}" if isinstance(env, str) else f"env creator {label(env)}"
        raise CreatorError(
            f"{what} (with {sorted(params)}) cannot be sent to the actor processes ({type(exc).__name__}: "
            f"{exc}); create unpicklable things (locks, sockets, open files, live envs) inside the creator "
            "instead of capturing them, or use SerialPool to keep the env in this process"
        ) from None


def _die_with_parent() -> None:
    """Asks the kernel to SIGKILL us when our parent dies (Linux); the poll loop checks too."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def main(cfg: ActorConfig) -> None:
    """Process entry point (runs in a child of :mod:`actors.forkserver`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the pool's to handle
    _die_with_parent()
    parent = os.getppid()
    if cfg.core is not None:
        os.sched_setaffinity(0, {cfg.core})
    # Actors keep the default scheduling policy. SCHED_BATCH (no wake-up preemption) cost
    # nothing on idle cores but, on a core another process keeps busy, made every doorbell wait
    # out that process's time slice: Acrobot-v1 training 4.5k -> 13.2k steps/s and snake's pool
    # 0.28M -> 7.8M without it (2 cores, one busy; `appliance bench train --env E`).
    context = zmq.Context(1)
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.IDENTITY, cfg.identity)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(cfg.endpoint)
    try:
        _serve(cfg, sock, parent)
    except BaseException:
        # Tell the pool why before dying: term() waits (up to the linger) until the message left.
        sock.send(wire.ERROR + traceback.format_exc().encode())
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
    env, params = pickle.loads(cfg.env)
    arena = Arena.attach(cfg.arena_path, cfg.spec)
    envs_ = []
    for j, part in enumerate(cfg.parts):
        views = {name: arena.buffers[name][lo:hi] for name, (lo, hi) in part.rows.items()}
        if cfg.restarted:
            # The learner's last view of these rows ends a (truncated) episode.
            np.copyto(views["final_observations"], views["observations"])
        envs_.append(make_env(env, part.num_envs, part_seed(cfg.seed, j), views, params))
        if cfg.restarted:
            views["truncations"][...] = True
            views["terminals"][...] = False
            views["rewards"][...] = 0
    # The pool holds both FIFOs open read-write before starting us, so neither open blocks.
    go = os.open(cfg.go_path, os.O_RDONLY | os.O_NONBLOCK)
    done = os.open(cfg.done_path, os.O_WRONLY | os.O_NONBLOCK)
    os.set_blocking(done, True)  # go stays non-blocking: read only after poll, or by the C loop
    try:
        _loop(cfg, sock, parent, envs_, go, done)
    finally:
        for env in envs_:
            env.close()
        os.close(go)
        os.close(done)


_summary = wire.answer  # the done answer for the parts just stepped or reset


def _loop(cfg: ActorConfig, sock: zmq.Socket, parent: int, parts: list[Any], go: int, done: int) -> None:
    sock.send(wire.HELLO)
    poller = select.poll()
    poller.register(go, select.POLLIN)
    wait, read, write = poller.poll, os.read, os.write
    steps = [env.step for env in parts]
    stats = [env.episode_stats for env in parts]
    single = len(parts) == 1
    # Native envs step in C: step commands never come back to Python, only the rest.
    native = envs.serve_loop(parts)
    pending = b""
    while True:
        if native is not None and not pending:
            got = native(go, done, POLL_MS)
            if got is None:  # quiet (or a signal): is the owner still there?
                if _orphaned(parent, cfg.owner_pid):
                    os._exit(0)
                continue
            if not got:  # end of file: the pool closed the doorbell (or died)
                return
            pending = got
        if not pending:
            if not wait(POLL_MS):
                if _orphaned(parent, cfg.owner_pid):
                    os._exit(0)
                continue
            pending = read(go, 4096)
            if not pending:  # end of file: the pool closed the doorbell (or died)
                return
        op = pending[:1]
        size = wire.COMMAND_SIZE.get(op)
        if size is None:
            raise RuntimeError(f"actor {cfg.index}: unknown control byte {op!r}")
        while len(pending) < size:  # writes under PIPE_BUF are atomic: this never waits long
            more = read(go, 4096) if wait(POLL_MS) else b""
            if not more:
                raise RuntimeError(f"actor {cfg.index}: truncated command {pending!r}")
            pending += more
        if op == wire.STEP:
            j = 0 if single else int.from_bytes(pending[1:size], "little")
            pending = pending[size:]
            steps[j]()
            write(done, _summary([stats[j]()]))
        elif op == wire.RESET:
            seed = int.from_bytes(pending[1:size], "little")
            pending = pending[size:]
            for j, env in enumerate(parts):
                env.reset(part_seed(seed, j))
            write(done, _summary([s() for s in stats]))
        else:  # wire.QUIT
            return
