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
sleep, it looks for dead or silent actors every ``actors.waiter.AUDIT_S`` instead.

How a group is made is :mod:`actors.layout`'s (:func:`plan_layout`): for the C envs
(``split``, see :func:`default_split`) every actor owns one *part* of every group when its
envs divide evenly into the groups, so an actor never waits for the caller; otherwise a
group is a set of whole actors. Each group is one contiguous view of the arena;
``env_ids`` name its envs, actor ``k`` owning ``env_slice(k)``.

Signalling: each step is a doorbell (:mod:`actors.doorbell`), one command down a named
FIFO per actor ("go") and one answer back ("done"), because a ZeroMQ round trip costs more
than stepping thousands of envs; the bytes are the wire protocol of ``envs/c/wire.h``
(:mod:`actors.wire`). ZeroMQ carries the rest: hellos and tracebacks (episode summaries
ride the done FIFO, since with thousands of envs they come on nearly every step). One
``epoll`` waits on the done FIFOs, ZeroMQ's notification fd and every actor's pidfd, so
a death is noticed as soon as a finished step is (:mod:`actors.crew`). What each actor
was sent and answered, and what each group is owed, is :mod:`actors.ledger`'s.

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

import os
import shutil
import time
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

import envs

from . import forkserver, wire
from .actions import ActionCheck
from .arena import Arena, private_dir, sweep_stale
from .crew import ActorError, Crew, exit_status
from .layout import Member, PoolLayout, plan_layout
from .ledger import GroupLedger
from .waiter import Waiter
from .worker import ActorConfig, Part, make_env, ship_env

__all__ = [
    "ORDERS", "ActorError", "ActorPool", "Member", "PoolLayout", "actor_seed", "default_split", "exit_status",
    "plan_layout", "validate_layout",
]

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
ORDERS = ("turn", "ready")  # recv: groups round-robin, or whichever is ready first


def actor_seed(seed: int, actor: int, generation: int = 0) -> int:
    """Seed of actor ``actor``'s envs: ``seed`` itself for actor 0, generation 0."""
    mixed = (seed + actor * _GOLDEN) & _MASK64
    if generation:
        mixed = (mixed ^ ((generation * 0xBF58476D1CE4E5B9) & _MASK64)) & _MASK64
    return mixed


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
        split = default_split(env) if split is None else split
        self.order = order
        self.layout = PoolLayout.plan(num_envs, num_actors, batch_size, split, local=order == "ready")
        self.envs_per_actor, self.parts_per_actor = self.layout.envs_per_actor, self.layout.parts_per_actor
        self.actors_per_group, self.num_groups = self.layout.actors_per_group, self.layout.num_groups
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        allowed = sorted(os.sched_getaffinity(0))
        cores = allowed if cores is None else list(cores)
        if not cores or any(c not in allowed for c in cores):
            raise ValueError(f"cores must be a non-empty subset of the allowed cores {allowed}, got {cores}")
        self.num_envs, self.num_actors, self.batch_size = num_envs, num_actors, batch_size
        self.cores = [cores[k % len(cores)] for k in range(num_actors)]
        self.restart, self.timeout, self.restarts = restart, float(timeout), 0
        self._env, self._params, self._seed = env, params, seed
        self._closed = True  # until every resource exists

        # Bad input fails here, in the caller, before any process or arena exists.
        self._shipped = ship_env(env, params)
        per_env, self.single_observation_space, self.single_action_space, self.agents_per_env = _probe(
            env, seed, params
        )
        self.num_agents = num_envs * self.agents_per_env
        self.batch_rows = batch_size * self.agents_per_env
        spec = {name: ((shape[0] * num_envs, *shape[1:]), dtype) for name, (shape, dtype) in per_env.items()}

        sweep_stale()
        self._dir = private_dir()
        self._arena: Arena | None = None
        self._ledger = GroupLedger(self.layout)
        self._tally = wire.Tally()
        self._crew = Crew(self._dir, num_actors, self._ledger, self._tally)
        self._waiter = Waiter(self._crew, self._ledger, self.timeout)
        self._closed = False
        arenas: list[Arena] = []
        # Runs on close(), on garbage collection and at interpreter exit (Ctrl-C included).
        self._finalizer = weakref.finalize(self, _cleanup, self._crew, self._dir, arenas)
        try:
            self._crew.bind()
            self._arena = Arena.create(spec)
            arenas.append(self._arena)
            self.buffers = self._arena.buffers
            self._rows = self.layout.rows_per_env(self.buffers)
            for k in range(num_actors):
                self._start(k, actor_seed(seed, k), restarted=False)
            self._waiter.until(None, time.monotonic() + max(self.timeout, 30.0), self._check_alive)
        except BaseException:
            self.close()
            raise
        # Per group: its views of every buffer (the arena is laid out group by group) and its env ids.
        self._groups = [
            (self.layout.views(g, self.buffers), self.layout.env_ids(g, self.agents_per_env))
            for g in range(self.num_groups)
        ]
        # The step command per actor of each group.
        self._commands = [[(m.actor, wire.step_command(m.part)) for m in members] for members in self.layout.groups]
        self._check = ActionCheck(self.single_action_space, self._groups[0][0]["actions"].shape)
        self._next = 0  # order "turn": the group recv returns next
        self._held: int | None = None
        self._last = 0  # the group last received
        self._reset_done = False

    # ---- the pool interface ------------------------------------------------

    def async_reset(self, seed: int | None = None) -> None:
        """Reseeds every actor's envs (actor k from ``actor_seed(seed, k)``); all groups step."""
        self._check_open()
        self._waiter.until(None, time.monotonic() + self.timeout, self._check_alive)
        seed = self._seed if seed is None else seed
        self._seed = seed
        for k in range(self.num_actors):
            self._signal(k, wire.reset_command(actor_seed(seed, k)))
        self._ledger.reset_sent(time.monotonic())
        self._next, self._held, self._reset_done = 0, None, True
        self._tally.clear()

    def recv(self) -> tuple[np.ndarray, ...]:
        """Waits for the next group (in turn, or with order "ready" whichever is ready first);
        returns views into the arena valid until ``send``."""
        self._check_open()
        if not self._reset_done or self._held is not None:
            raise RuntimeError("recv() needs async_reset() first, then one send() per recv()")
        deadline = time.monotonic() + self.timeout
        if self.order == "ready":
            g = self._waiter.first_ready(deadline, self._check_alive)
        else:
            g = self._next
            self._waiter.until(g, deadline, self._check_alive)
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
        for k, command in self._commands[g]:
            self._signal(k, command)
        self._ledger.group_sent(g, time.monotonic(), self.order == "ready")
        self._held = None
        self._next = (g + 1) % self.num_groups

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
        return self._tally.take()

    def close(self) -> None:
        """Stops the actors and removes the arena and the socket directory; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._crew.quit()
        self._finalizer()

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
        return [p.pid if p is not None else None for p in self._crew.procs]

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
        return self.layout.env_slice(actor)

    # ---- machinery -----------------------------------------------------------

    def _check_open(self) -> None:
        if self._crew.failure is not None:
            raise self._crew.failure
        if self._closed:
            raise RuntimeError("the pool is closed")

    def _start(self, k: int, seed: int, restarted: bool) -> None:
        crew, arena = self._crew, self._arena
        assert arena is not None, "actors start once the arena exists"
        bell = crew.doorbell(k)
        cfg = ActorConfig(
            index=k, generation=crew.generation[k], endpoint=crew.endpoint, go_path=bell.go_path,
            done_path=bell.done_path, arena_path=arena.path, spec=arena.spec,
            parts=[
                Part({name: (lo * r, hi * r) for name, r in self._rows.items()}, hi - lo)
                for lo, hi in self.layout.parts(k)
            ],
            env=self._shipped, seed=seed, core=self.cores[k], owner_pid=os.getpid(), restarted=restarted,
        )
        crew.adopt(k, self._launch(cfg), cfg.identity)
        # The new actor owes its hello; every part is fresh (reported truncated) once it comes.
        self._ledger.started(k)

    def _launch(self, cfg: ActorConfig) -> forkserver.Child:
        """Starts the actor process (the bench's reference pool overrides this)."""
        return forkserver.start("actors.worker", "main", cfg, timeout=max(self.timeout, 30.0))

    def _signal(self, k: int, msg: bytes) -> None:
        """Writes one command to actor ``k``; it owes one answer more."""
        generation = self._crew.generation[k]
        try:
            self._crew.ring(k, msg)
        except OSError as exc:
            self._check_alive()  # full (an actor not reading): it died; report or restart
            if self._crew.generation[k] == generation:
                raise self._crew.fail(k, f"stopped reading its commands ({exc})") from None
            return  # restarted: the new actor starts fresh and owes only its hello
        self._ledger.signalled(k)

    def _check_alive(self, fired: list[int] | None = None) -> None:
        """Raises for an actor that exited, or, with ``restart``, starts its next generation."""
        crew = self._crew
        for k, exitcode in crew.exited(fired):
            if not self.restart:
                raise crew.fail(k, exit_status(exitcode), crew.tracebacks.get(k))
            crew.procs[k].join(0)
            self.restarts += 1
            crew.generation[k] += 1
            self._start(k, actor_seed(self._seed, k, crew.generation[k]), restarted=True)
            self._ledger.restart_clock(k, time.monotonic())


def _probe(env: str | Callable[..., Any], seed: int, params: dict[str, Any]) -> tuple[dict[str, Any], Any, Any, int]:
    """One env in this process: its buffers' per-env shapes and dtypes, its spaces and agents per env."""
    probe = make_env(env, 1, seed, None, params)
    try:
        per_env = {name: (a.shape, a.dtype) for name, a in probe.buffers.items()}
        return per_env, probe.single_observation_space, probe.single_action_space, probe.num_agents
    finally:
        probe.close()


def _cleanup(crew: Crew, directory: Any, arenas: list[Arena]) -> None:
    """Every exit path ends here: actors stopped, sockets closed, arena and socket dir removed."""
    crew.close()
    for arena in arenas:
        arena.close()
    shutil.rmtree(directory, ignore_errors=True)
