"""ActorPool: core-pinned actor processes stepping envs into one shared-memory arena.

Same surface as :class:`actors.serial.SerialPool` (see there). Envs are split into
``num_envs // batch_size`` groups; after ``async_reset`` every group steps, ``recv``
returns the groups in turn (round-robin, so a run is reproducible for a given layout)
while the others step, and ``send`` writes the group's actions into the arena and
rings its actors. With one group the pool is synchronous.

With ``order="ready"``, ``recv`` instead returns whichever group in flight is ready
(the longest-waiting one if several are), and a group is one part of one actor when
the batch divides an actor's envs in two or more. Actors then never wait for each
other: a core that runs slower (shared with the caller, or with a neighbour on a VM)
costs only its own share. Runs no longer repeat exactly. Since ``recv`` may then never
sleep, it looks for dead or silent actors every ``_AUDIT_S`` instead.

How a group is made (:func:`plan_layout`): for the C envs (``split``, see
:func:`default_split`), when an actor's envs divide evenly into the groups, every actor
owns one *part* of every group (``num_groups`` env vectors per
actor). An actor then never waits for the caller: by the time it has stepped one part,
the actions for the next are usually in its FIFO, so it goes on without sleeping, and
no core idles while the caller handles a batch. Otherwise each group is a set of whole
actors (one part each). The arena is laid out group by group, so a group is one
contiguous view either way; ``env_ids`` name the envs, actor ``k`` owning
``env_slice(k)``.

Signalling (protocol in :mod:`actors.worker`): each step is a doorbell, one byte down a
named FIFO per actor ("go") and one byte back ("done"), because a ZeroMQ round trip costs
more than stepping thousands of envs. The FIFOs live in the private socket directory and
are per generation, so a restarted actor never reads its predecessor's bytes. ZeroMQ
carries the rest: hellos and tracebacks (episode summaries ride the done FIFO, since
with thousands of envs they come on nearly every step). One ``epoll`` waits on the done
FIFOs, ZeroMQ's notification fd and every actor's pidfd, so a death is noticed as soon
as a finished step is.

Processes come from :mod:`actors.forkserver`, a clean single-threaded interpreter with
``envs`` and ``zmq`` preloaded that forks each actor, so a restart takes milliseconds and
the caller's main module never runs again in an actor (any caller works: a script without
a main guard, ``python -c``, a notebook). The env (a name, or a creator and its keyword
arguments) travels by value with cloudpickle, so creators defined in ``__main__`` or a
notebook work. The fork server exits when the caller dies, and actors die with it
(PDEATHSIG).

A restarted actor reseeds all its parts and reports them truncated, with the last
observation its predecessor wrote to those rows as ``final_observations`` (the one the
caller saw, unless the actor died after stepping the part again).

Actor ``k`` seeds its envs with :func:`actor_seed` ``(seed, k)`` (part ``j`` of them with
:func:`actors.worker.part_seed` of that); actor 0's first part uses ``seed`` itself, so a
one-actor, one-group pool steps exactly like ``envs.make(env, num_envs, seed)``.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import time
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import zmq

import envs

from . import forkserver
from .actions import ActionCheck
from .arena import Arena, private_dir, sweep_stale
from .worker import NATIVE_STATS, NATIVE_SUMMARY, ActorConfig, Part, make_env, ship_env

_MASK64 = (1 << 64) - 1
# Plain ints: pyzmq's flag enums cost an object per ``|``/``&`` on the per-message path.
_NOBLOCK, _SNDMORE, _POLLIN, _EVENTS = int(zmq.NOBLOCK), int(zmq.SNDMORE), int(zmq.POLLIN), int(zmq.EVENTS)
_GOLDEN = 0x9E3779B97F4A7C15
_MAX_GROUPS = 0xFFFF  # a step command names its part in two bytes
ORDERS = ("turn", "ready")  # recv: groups round-robin, or whichever is ready first
_ALL = -1  # _poller key: every actor's done FIFO
_AUDIT_S = 0.1  # order "ready": how often recv looks for dead or silent actors without sleeping


class ActorError(RuntimeError):
    """An actor died or stopped answering; names it, its env slice and why."""

    def __init__(self, actor: int, envs: tuple[int, int], status: str, traceback: str | None = None) -> None:
        self.actor, self.envs, self.status, self.traceback = actor, envs, status, traceback
        text = f"actor {actor} (envs {envs[0]}:{envs[1]}) {status}"
        if traceback:
            text += "\n--- actor traceback ---\n" + traceback.rstrip()
        super().__init__(text)


def actor_seed(seed: int, actor: int, generation: int = 0) -> int:
    """Seed of actor ``actor``'s envs: ``seed`` itself for actor 0, generation 0."""
    mixed = (seed + actor * _GOLDEN) & _MASK64
    if generation:
        mixed = (mixed ^ ((generation * 0xBF58476D1CE4E5B9) & _MASK64)) & _MASK64
    return mixed


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
    if groups > _MAX_GROUPS:
        raise ValueError(f"batch_size ({batch_size}) is too small: at most {_MAX_GROUPS} groups of envs in flight")
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


def default_split(env: str | Callable[..., Any]) -> bool:
    """Split actors into parts for the C envs; keep whole vectors for the others.

    A C env steps thousands of instances in tens of µs, so a part per group hides the
    doorbell; an emulated env steps each instance in Python (or, like ALE's vector env,
    spreads one vector over threads), so it gains more from one large vector per call.
    """
    return isinstance(env, str) and env in envs.native_names()


def validate_layout(num_envs: int, num_actors: int, batch_size: int) -> int:
    """Checks the layout; returns envs per actor."""
    return plan_layout(num_envs, num_actors, batch_size)[0]


class ActorPool:
    """Actor processes pinned to cores, stepping envs in place, signalled by FIFO doorbells."""

    def __init__(
        self,
        env: str | Callable[..., Any],
        num_envs: int,
        num_actors: int,
        batch_size: int | None = None,
        seed: int = 0,
        *,
        cores: list[int] | None = None,
        restart: bool = False,
        timeout: float = 10.0,
        split: bool | None = None,
        order: str = "turn",
        **params: Any,
    ) -> None:
        batch_size = num_envs if batch_size is None else batch_size
        if order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
        if split is None:
            split = default_split(env)
        self.order = order
        self.envs_per_actor, self.parts_per_actor, self.actors_per_group = plan_layout(
            num_envs, num_actors, batch_size, split, local=order == "ready"
        )
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        allowed = sorted(os.sched_getaffinity(0))
        cores = allowed if cores is None else list(cores)
        if not cores or any(c not in allowed for c in cores):
            raise ValueError(f"cores must be a non-empty subset of the allowed cores {allowed}, got {cores}")
        self.num_envs, self.num_actors, self.batch_size = num_envs, num_actors, batch_size
        self.num_groups = num_envs // batch_size
        self.cores = [cores[k % len(cores)] for k in range(num_actors)]
        self.restart, self.timeout, self.restarts = restart, float(timeout), 0
        self._env, self._params, self._seed = env, params, seed
        self._closed = True  # until every resource exists

        # Bad input fails here, in the caller, before any process or arena exists.
        self._shipped = ship_env(env, params)
        # One env in this process tells the buffers' per-env shapes and the spaces.
        probe = make_env(env, 1, seed, None, params)
        try:
            per_env = {name: (a.shape, a.dtype) for name, a in probe.buffers.items()}
            self.single_observation_space = probe.single_observation_space
            self.single_action_space = probe.single_action_space
            self.agents_per_env = probe.num_agents
        finally:
            probe.close()
        self.num_agents = num_envs * self.agents_per_env
        self.batch_rows = batch_size * self.agents_per_env
        spec = {name: ((shape[0] * num_envs, *shape[1:]), dtype) for name, (shape, dtype) in per_env.items()}

        sweep_stale()
        self._dir = private_dir()
        self._arena: Arena | None = None
        self._zmq = zmq.Context(1)
        self._router = self._zmq.socket(zmq.ROUTER)
        self._router.setsockopt(zmq.LINGER, 0)
        self._router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self._procs: list[Any] = [None] * num_actors
        # select.epoll per actor (its done FIFO) and one for _ALL (every done FIFO); each also
        # holds the router's FD and every actor's exit fd. Rebuilt when an actor restarts.
        self._poll_cache: dict[int, Any] = {}
        self._idents: list[bytes] = [b""] * num_actors  # current identity per actor
        self._actor_of: dict[bytes, int] = {}  # identity -> actor, current generations only
        self._exit_fds: list[Any] = [None] * num_actors
        self._go_fds: list[int | None] = [None] * num_actors  # write ends (held read-write)
        self._done_fds: list[int | None] = [None] * num_actors  # read ends (held read-write)
        self._actor_of_done: dict[int, int] = {}  # done fd -> actor
        self._closed = False
        arenas: list[Arena] = []
        # Runs on close(), on garbage collection and at interpreter exit (Ctrl-C included).
        self._finalizer = weakref.finalize(
            self, _cleanup, self._router, self._zmq, self._procs, self._dir, arenas, self._exit_fds,
            self._go_fds, self._done_fds,
        )
        try:
            self._endpoint = f"ipc://{self._dir}/control"
            self._router.bind(self._endpoint)
            self._arena = Arena.create(spec)
            arenas.append(self._arena)
            self.buffers = self._arena.buffers
            self._rows = {
                name: a.shape[0] // num_envs for name, a in self.buffers.items()
            }  # rows per env
            self._generation = [0] * num_actors
            # Each actor answers every command in order: messages sent to it (its hello
            # included) and answers read back; group g is ready once every actor in it has
            # answered through _need[g][k].
            self._sent = [0] * num_actors
            self._got = [0] * num_actors
            self._need = [[0] * num_actors for _ in range(self.num_groups)]
            self._order = list(range(num_actors))  # which actor to wait on first (see _owing)
            self._flight: list[int] = []  # order "ready": groups in flight, in the order they were sent
            self._sent_at = [0.0] * self.num_groups  # order "ready": when each group was last sent
            self._audit_at = 0.0  # order "ready": when recv next looks for dead or silent actors
            self._inbox = [b""] * num_actors  # a done message not yet read whole
            self._router_fd = self._router.getsockopt(zmq.FD)
            self._tracebacks: dict[int, str] = {}
            self._stats_sum: dict[str, float] = {}  # from JSON summaries
            self._episodes = 0
            self._native_sums = [0, 0.0, 0.0, 0.0]  # from native summaries: episodes, then NATIVE_STATS sums
            for k in range(num_actors):
                self._start(k, actor_seed(seed, k), restarted=False)
            self._wait(None, time.monotonic() + max(self.timeout, 30.0))
        except BaseException:
            self.close()
            raise
        self._groups = []
        for g in range(self.num_groups):
            lo, hi = g * batch_size, (g + 1) * batch_size
            views = {name: a[lo * self._rows[name]:hi * self._rows[name]] for name, a in self.buffers.items()}
            env_ids = np.concatenate([
                np.arange(env_lo * self.agents_per_env, env_hi * self.agents_per_env)
                for _, _, (env_lo, env_hi), _ in self._members(g)
            ])
            self._groups.append((views, env_ids))
        # The step command per actor of each group: b"S" + the part's index (2 bytes).
        self._commands = [
            [(k, b"S" + part.to_bytes(2, "little")) for k, part, _, _ in self._members(g)]
            for g in range(self.num_groups)
        ]
        self._check = ActionCheck(self.single_action_space, self._groups[0][0]["actions"].shape)
        self._next = 0  # order "turn": the group recv returns next
        self._held: int | None = None
        self._last = 0  # the group last received
        self._reset_done = False
        self._failure: ActorError | None = None

    # ---- the pool interface ------------------------------------------------

    def async_reset(self, seed: int | None = None) -> None:
        """Reseeds every actor's envs (actor k from ``actor_seed(seed, k)``); all groups step."""
        self._check_open()
        self._wait(None, time.monotonic() + self.timeout)
        seed = self._seed if seed is None else seed
        self._seed = seed
        for k in range(self.num_actors):
            self._signal(k, b"R" + (actor_seed(seed, k) & _MASK64).to_bytes(8, "little"))
        for need in self._need:
            need[:] = self._sent
        self._next, self._held, self._reset_done = 0, None, True
        self._flight = list(range(self.num_groups))
        self._sent_at = [time.monotonic()] * self.num_groups
        self._reset_stats()

    def recv(self) -> tuple[np.ndarray, ...]:
        """Waits for the next group (in turn, or with order "ready" whichever is ready first);
        returns views into the arena valid until ``send``."""
        self._check_open()
        if not self._reset_done or self._held is not None:
            raise RuntimeError("recv() needs async_reset() first, then one send() per recv()")
        deadline = time.monotonic() + self.timeout
        if self.order == "ready":
            g = self._first_ready(deadline)
        else:
            g = self._next
            self._wait(g, deadline)
        self._held = self._last = g
        v, env_ids = self._groups[g]
        return v["observations"], v["rewards"], v["terminals"], v["truncations"], v["masks"], env_ids

    def send(self, actions: np.ndarray) -> None:
        """Checks ``actions`` for the group last received, writes them into the arena, wakes its actors.

        ``actions`` may be :attr:`actions` itself, written in place: it is checked, not copied.
        """
        self._check_open()
        if self._held is None:
            raise RuntimeError("send() must follow recv()")
        g = self._held
        target = self._groups[g][0]["actions"]
        if actions is target:
            self._check(target)
        else:
            np.copyto(target, self._check(actions), casting="unsafe")
        need = self._need[g]
        for k, command in self._commands[g]:
            self._signal(k, command)
            need[k] = self._sent[k]
        self._held = None
        self._next = (g + 1) % self.num_groups
        if self.order == "ready":
            self._flight.append(g)
            self._sent_at[g] = time.monotonic()

    @property
    def actions(self) -> np.ndarray:
        """The arena's action rows of the group last received: a policy may write here, then
        ``send(pool.actions)`` checks them in place instead of copying."""
        if self._held is None:
            raise RuntimeError("actions belong to a received batch: call recv() first")
        return self._groups[self._held][0]["actions"]

    @property
    def final_observations(self) -> np.ndarray:
        """The last received group's final observations (meaningful where ``truncations`` is set)."""
        return self._groups[self._last][0]["final_observations"]

    def episode_stats(self) -> dict[str, float]:
        """Means over episodes finished since the last call, across all actors."""
        episodes, sums = self._episodes, dict(self._stats_sum)
        native = self._native_sums
        if native[0]:
            episodes += native[0]
            for key, total in zip(NATIVE_STATS, native[1:], strict=True):
                sums[key] = sums.get(key, 0.0) + total
        self._reset_stats()
        out: dict[str, float] = {"episodes": episodes}
        if episodes:
            out.update({key: total / episodes for key, total in sums.items()})
        return out

    def _reset_stats(self) -> None:
        self._stats_sum, self._episodes, self._native_sums = {}, 0, [0, 0.0, 0.0, 0.0]

    def close(self) -> None:
        """Stops the actors and removes the arena and the socket directory; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for k, proc in enumerate(self._procs):
            fd = self._go_fds[k]
            if proc is not None and proc.exitcode is None and fd is not None:
                try:
                    os.write(fd, b"Q")
                except OSError:
                    pass  # full or gone; the cleanup kills what is left
        self._finalizer()
        self._drop_pollers()

    def __enter__(self) -> ActorPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"ActorPool({self._env!r}, num_envs={self.num_envs}, num_actors={self.num_actors}, "
            f"batch_size={self.batch_size}, cores={sorted(set(self.cores))})"
        )

    @property
    def pids(self) -> list[int | None]:
        """The actor processes' pids (for monitoring, and for tests that kill them)."""
        return [p.pid if p is not None else None for p in self._procs]

    @property
    def arena_path(self) -> Any:
        """The /dev/shm file holding every buffer (removed on close)."""
        return self._arena.path if self._arena is not None else None

    @property
    def socket_dir(self) -> Any:
        """The private (0700) directory of the control socket (removed on close)."""
        return self._dir

    def env_slice(self, actor: int) -> tuple[int, int]:
        """Global env indices [lo, hi) that actor ``actor`` steps."""
        return actor * self.envs_per_actor, (actor + 1) * self.envs_per_actor

    # ---- machinery -----------------------------------------------------------

    def _group_actors(self, g: int) -> range:
        per_group = self.actors_per_group
        if self.parts_per_actor == 1:
            return range(g * per_group, (g + 1) * per_group)  # whole actors
        if per_group == 1:
            return range(g % self.num_actors, g % self.num_actors + 1)  # one part of one actor
        return range(self.num_actors)  # every actor has a part of every group

    def _members(self, g: int) -> list[tuple[int, int, tuple[int, int], tuple[int, int]]]:
        """Group ``g``'s ``(actor, part, env ids [lo, hi), arena rows [lo, hi))``, in arena order."""
        size = self.envs_per_actor // self.parts_per_actor
        if self.parts_per_actor == 1:
            part = 0
        elif self.actors_per_group == 1:
            part = g // self.num_actors  # groups take turns over the actors, then the parts
        else:
            part = g
        out, row = [], g * self.batch_size
        for k in self._group_actors(g):
            env_lo = k * self.envs_per_actor + part * size
            out.append((k, part, (env_lo, env_lo + size), (row, row + size)))
            row += size
        return out

    def _parts(self, k: int) -> list[tuple[int, int]]:
        """Actor ``k``'s parts as arena env rows ``[lo, hi)``, part by part."""
        rows = {}
        for g in range(self.num_groups):
            for actor, part, _, arena_rows in self._members(g):
                if actor == k:
                    rows[part] = arena_rows
        return [rows[j] for j in range(self.parts_per_actor)]

    def _check_open(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._closed:
            raise RuntimeError("the pool is closed")

    def _start(self, k: int, seed: int, restarted: bool) -> None:
        cfg = ActorConfig(
            index=k,
            generation=self._generation[k],
            endpoint=self._endpoint,
            go_path=self._dir / f"go-{k}-{self._generation[k]}",
            done_path=self._dir / f"done-{k}-{self._generation[k]}",
            arena_path=self._arena.path,
            spec=self._arena.spec,
            parts=[
                Part({name: (lo * r, hi * r) for name, r in self._rows.items()}, hi - lo)
                for lo, hi in self._parts(k)
            ],
            env=self._shipped,
            seed=seed,
            core=self.cores[k],
            owner_pid=os.getpid(),
            restarted=restarted,
        )
        self._open_doorbell(k, cfg.go_path, cfg.done_path)
        proc = self._launch(cfg)
        old = self._exit_fds[k]
        self._procs[k] = proc
        self._exit_fds[k] = proc.pidfd  # ours to close
        if old is not None:
            _close_fd(old)  # the replaced actor's pidfd
        self._actor_of.pop(self._idents[k], None)
        self._idents[k] = cfg.identity
        self._actor_of[cfg.identity] = k
        self._drop_pollers()
        # The new actor owes its hello; every part is fresh (reported truncated) once it comes.
        self._sent[k], self._got[k] = 1, 0
        for need in self._need:
            need[k] = 1
        self._inbox[k] = b""
        self._tracebacks.pop(k, None)

    def _launch(self, cfg: ActorConfig) -> forkserver.Child:
        """Starts the actor process (the bench's reference pool overrides this)."""
        return forkserver.start("actors.worker", "main", cfg, timeout=max(self.timeout, 30.0))

    def _open_doorbell(self, k: int, go_path: Any, done_path: Any) -> None:
        """Replaces actor ``k``'s FIFOs with this generation's (previous ones closed and unlinked).

        The pool opens both ends read-write: the opens never block, the actor's opens find a
        peer, and neither end ever sees a hang-up (deaths show on the pidfds instead).
        """
        for fds in (self._go_fds, self._done_fds):
            old = fds[k]
            if old is not None:
                self._actor_of_done.pop(old, None)
                _close_fd(old)
                fds[k] = None
        for stale in (*self._dir.glob(f"go-{k}-*"), *self._dir.glob(f"done-{k}-*")):
            stale.unlink(missing_ok=True)
        os.mkfifo(go_path, 0o600)
        os.mkfifo(done_path, 0o600)
        self._go_fds[k] = os.open(go_path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        done = os.open(done_path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        self._done_fds[k] = done
        self._actor_of_done[done] = k

    def _signal(self, k: int, msg: bytes) -> None:
        """Writes one command to actor ``k``; it owes one answer more."""
        generation = self._generation[k]
        try:
            os.write(self._go_fds[k], msg)
        except OSError as exc:
            self._check_alive()  # full (an actor not reading): it died; report or restart
            if self._generation[k] == generation:
                self._failure = ActorError(k, self.env_slice(k), f"stopped reading its commands ({exc})")
                raise self._failure from None
            return  # restarted: the new actor starts fresh and owes only its hello
        self._sent[k] += 1

    def _ring(self, fd: int) -> None:
        """Reads an actor's done messages: ``D``, ``e`` + native stats, or ``d`` + JSON stats."""
        k = self._actor_of_done[fd]
        try:
            data = self._inbox[k] + os.read(fd, 65536)
        except BlockingIOError:
            return
        got, size, sums, native = 0, NATIVE_SUMMARY.size, self._stats_sum, self._native_sums
        while data:
            op = data[:1]
            if op == b"D":
                data = data[1:]
            elif op == b"e":
                if len(data) < size:
                    break  # the rest is still in the pipe
                _, count, ret, length, score = NATIVE_SUMMARY.unpack_from(data)
                data = data[size:]
                native[0] += count
                native[1] += ret
                native[2] += length
                native[3] += score
            elif op == b"d":
                if len(data) < 5 or len(data) < 5 + int.from_bytes(data[1:5], "little"):
                    break
                end = 5 + int.from_bytes(data[1:5], "little")
                count, means = json.loads(data[5:end].decode())
                data = data[end:]
                self._episodes += count
                for key, mean in means.items():
                    sums[key] = sums.get(key, 0.0) + mean * count
            else:
                raise RuntimeError(f"actor {k}: unknown done message {data[:16]!r}")
            got += 1
        self._got[k] += got
        self._inbox[k] = data

    def _handle(self, ident: bytes, payload: bytes) -> None:
        k = self._actor_of.get(ident)
        if k is None:
            return  # a message from a replaced actor
        op = payload[:1]
        if op == b"H":
            self._got[k] += 1
        elif op == b"E":
            self._tracebacks[k] = payload[1:].decode(errors="replace")

    def _drain(self) -> None:
        """Handles every message already queued, without blocking (each is identity + one frame)."""
        router, handle = self._router, self._handle
        while router.getsockopt(_EVENTS) & _POLLIN:
            ident = router.recv(_NOBLOCK)
            handle(ident, router.recv(_NOBLOCK))

    def _owing(self, g: int | None) -> int | None:
        """An actor that has not yet answered what group ``g`` (or, for None, anything) needs.

        The one that answered last the previous time comes first: waiting on the slowest
        actor first means sleeping (and being woken) once per batch, not once per actor.
        """
        got = self._got
        need = self._sent if g is None else self._need[g]
        spans_all = g is None or (self.parts_per_actor > 1 and self.actors_per_group > 1)
        for k in self._order if spans_all else self._group_actors(g):
            if got[k] < need[k]:
                return k
        return None

    def _wait(self, g: int | None, deadline: float) -> None:
        """Blocks (no spinning) until group ``g`` (None: every actor) is answered; wakes on
        done bytes, messages and deaths.

        It sleeps on one actor at a time, in an ``epoll`` holding that actor's done FIFO, the
        router's notification fd (ZMQ_FD: readable once messages arrived after the last
        ``_drain``, which then reads them all) and every actor's pidfd. Other actors' answers
        meanwhile wake nobody (a wake-up costs the waker tens of µs on a VM); they are read
        when their turn comes. An actor has answered once its done message is read.
        """
        owing = self._owing
        last = None
        while True:
            k = owing(g)
            if k is None:
                # Complete. An actor that died after answering shows in the next wait.
                if last is not None and self._order[0] != last:
                    self._order.remove(last)
                    self._order.insert(0, last)
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._silent(k)
            if self._dispatch(self._poller(k).poll(min(remaining, 0.25))):
                last = k  # its epoll holds no other done FIFO

    def _first_ready(self, deadline: float) -> int:
        """Order "ready": the group in flight longest of those answered, waiting for one if none is."""
        flight, owing = self._flight, self._owing
        while True:
            now = time.monotonic()
            if now >= self._audit_at:
                self._audit(now)
            for i, g in enumerate(flight):
                if owing(g) is None:
                    del flight[i]
                    return g
            remaining = deadline - now
            if remaining <= 0:
                raise self._silent(owing(flight[0]))
            self._dispatch(self._poller(_ALL).poll(min(remaining, 0.25)))

    def _audit(self, now: float) -> None:
        """Order "ready": deaths and hangs must show even while other groups keep coming.

        Every ``_AUDIT_S``, a zero-timeout poll reads what has arrived (answers first, so a
        caller back from a long pause sees what came meanwhile) and notices exits; then the
        oldest group still owed must have been sent (or its actor restarted) less than the
        timeout ago.
        """
        self._audit_at = now + _AUDIT_S
        self._dispatch(self._poller(_ALL).poll(0))
        for g in self._flight:
            k = self._owing(g)
            if k is not None:
                if now - self._sent_at[g] > self.timeout:
                    raise self._silent(k)
                break

    def _dispatch(self, events: list[tuple[int, int]]) -> bool:
        """Handles what an epoll reported: done FIFOs are read, ZeroMQ drained, exits checked
        (every actor is, when nothing came at all). True if a done FIFO was read."""
        read, exited = False, []
        for fd, _ in events:
            if fd in self._actor_of_done:
                self._ring(fd)
                read = True
            elif fd == self._router_fd:
                self._drain()  # hellos and tracebacks; ZMQ_FD fires once per batch of them
            else:
                exited.append(fd)
        if exited or not events:
            self._check_alive(exited)  # an actor exited, or nothing came for a while
        return read

    def _silent(self, k: int) -> ActorError:
        self._failure = ActorError(k, self.env_slice(k), f"sent nothing for {self.timeout:g} s (still running)")
        return self._failure

    def _poller(self, k: int) -> Any:
        """epoll over actor ``k``'s done FIFO (every actor's for ``_ALL``), the router's FD and
        every pidfd."""
        epoll = self._poll_cache.get(k)
        if epoll is None:
            epoll = self._poll_cache[k] = select.epoll()
            epoll.register(self._router_fd, select.EPOLLIN)
            done = self._done_fds if k == _ALL else [self._done_fds[k]]
            for fd in (*self._exit_fds, *done):
                epoll.register(fd, select.EPOLLIN)
        return epoll

    def _drop_pollers(self) -> None:
        for epoll in self._poll_cache.values():
            epoll.close()
        self._poll_cache.clear()

    def _check_alive(self, fired: list[int] | None = None) -> None:
        for fd in fired or ():
            # The kernel says it exited; the fork server reports the status a moment later.
            self._procs[self._exit_fds.index(fd)].join(1.0)
        for k, proc in enumerate(self._procs):
            if proc.exitcode is None:
                continue
            if proc.exitcode > 0 and k not in self._tracebacks:
                # The traceback was sent before the exit: give it a moment to arrive.
                end = time.monotonic() + 0.3
                while k not in self._tracebacks and time.monotonic() < end:
                    if self._router.poll(50):
                        self._drain()
            if not self.restart:
                self._failure = ActorError(
                    k, self.env_slice(k), exit_status(proc.exitcode), self._tracebacks.get(k)
                )
                raise self._failure
            proc.join(0)
            self.restarts += 1
            self._generation[k] += 1
            self._start(k, actor_seed(self._seed, k, self._generation[k]), restarted=True)
            now = time.monotonic()
            for g in self._flight:  # the new actor's time starts now
                if k in self._group_actors(g):
                    self._sent_at[g] = now


def _close_fd(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _cleanup(
    router: zmq.Socket,
    context: zmq.Context,
    procs: list,
    directory: Any,
    arenas: list,
    exit_fds: list,
    go_fds: list,
    done_fds: list,
) -> None:
    """Every exit path ends here: actors stopped, sockets closed, arena and socket dir removed."""
    deadline = time.monotonic() + 1.0
    for proc in procs:
        if proc is not None:
            proc.join(max(0.0, deadline - time.monotonic()))
    for proc in procs:
        if proc is not None and proc.exitcode is None:
            proc.kill()
            proc.join(1.0)
    for fd in exit_fds:
        if fd is not None:
            _close_fd(fd)
    for fd in (*go_fds, *done_fds):
        if fd is not None:
            _close_fd(fd)
    router.close(linger=0)
    context.term()
    for arena in arenas:
        arena.close()
    shutil.rmtree(directory, ignore_errors=True)
