"""RemotePool: the pool interface served by actor hosts over ZeroMQ (protocol in :mod:`actors.remote_wire`).

A learner rank binds one ROUTER socket; ``hosts`` actor hosts (`appliance actors serve`)
connect, each is given a *slot* and ``batches`` batches of ``num_envs / (hosts x batches)``
envs, so ``hosts x batches`` groups are in flight at once and the network's round trip
hides behind the learner's inference on the other groups. ``recv`` serves the groups in
turn (as ``ActorPool``'s order "turn": no transition is dropped at a rollout's end), as
zero-copy views of the received frames (``copy=False``); ``send`` sends the actions from
the caller's array, also without a copy.

A host that goes silent for ``timeout`` seconds, disconnects, or sends a message that is
malformed, truncated or oversized is dropped with one log line. Its groups then come
back at once, in their turn, as *void* batches: observations repeated, ``masks`` false
(the learner trains on none of their rows), the first one with ``truncations`` set and
:attr:`lost` true (the transition into it never came, so the step before must not train
either). The run goes on with the other hosts; a host (that one, restarted, or a new
one with a listed key) may take the free slot, its envs starting fresh (truncated).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import zmq

from . import remote_wire as wire
from .actions import ActionCheck
from .pool import actor_seed
from .remote_wire import RemoteError, log
from .worker import make_env

PING_S = 0.5  # while waiting for a batch, each host is pinged this often (the round-trip time metric)
BUILD_S = 60.0  # a welcomed host has this long to build its envs and answer "J"
_MASK64 = (1 << 64) - 1


def _property(frame: zmq.Frame, name: str) -> str:
    """A frame's metadata (``User-Id`` is set by the ZAP handler only: absent with --insecure)."""
    try:
        return cast(str, frame.get(name)) or ""  # the string properties
    except zmq.ZMQError:
        return ""


def _gone(exc: zmq.ZMQError) -> str:
    """Why a send to a host failed: with ROUTER_MANDATORY, EHOSTUNREACH means its connection is gone."""
    if exc.errno == zmq.EHOSTUNREACH:
        return "lost its connection (ZMTP heartbeats stopped, or it closed)"
    return f"cannot be sent to ({exc})"


class _Malformed(Exception):
    """A message from a host that breaks the protocol; the host is dropped."""


@dataclass
class _Host:
    ident: bytes
    name: str
    key: str
    address: str
    slot: int
    joined: bool = False
    welcomed_at: float = 0.0
    last_seen: float = 0.0
    seq: list[int] = field(default_factory=list)


@dataclass
class HostStats:
    """Totals per host label, for the metrics (steps and bytes are running counts)."""

    steps: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0
    rtt_seconds: float | None = None
    connected: bool = False
    lost: int = 0


class RemotePool:
    """``hosts`` remote actor hosts, ``batches`` groups in flight each, behind the pool interface."""

    def __init__(
        self,
        env: str,
        num_envs: int,
        hosts: int,
        bind: str,
        seed: int = 0,
        *,
        batches: int = 2,
        keys: str | None = None,
        insecure: bool = False,
        timeout: float = 5.0,
        join_timeout: float = 120.0,
        **params: Any,
    ) -> None:
        for name, value in (("num_envs", num_envs), ("hosts", hosts), ("batches", batches)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"remote {name} must be a whole number >= 1, got {value!r}")
        if num_envs % (hosts * batches):
            raise ValueError(f"num_envs ({num_envs}) must divide into {hosts} hosts x {batches} batches in flight")
        if not timeout > 0 or not join_timeout > 0:
            raise ValueError(f"remote timeouts must be > 0 seconds, got {timeout!r} and {join_timeout!r}")
        if not bind.startswith("tcp://"):
            raise ValueError(f"remote actors bind a tcp:// address (tcp://*:PORT), got {bind!r}")
        if keys is None and not insecure:
            raise ValueError("remote actors need keys (remote.keys, from `appliance keys new DIR`) or --insecure")
        self.env, self.params, self.num_envs, self.hosts, self.batches = env, params, num_envs, hosts, batches
        self.timeout, self.join_timeout, self._seed = float(timeout), float(join_timeout), seed
        probe = make_env(env, 1, seed, None, params)
        try:
            self._row = {name: (a.shape[1:], a.dtype) for name, a in probe.buffers.items()}
            self.single_observation_space = probe.single_observation_space
            self.single_action_space = probe.single_action_space
            self.agents_per_env = probe.num_agents
        finally:
            probe.close()
        self.num_groups = hosts * batches
        self.envs_per_batch = num_envs // self.num_groups
        self.batch_rows = self.envs_per_batch * self.agents_per_env
        self.num_agents = num_envs * self.agents_per_env
        rows = self.batch_rows
        self._sizes = [rows * int(np.prod(self._row[n][0], dtype=np.int64)) * self._row[n][1].itemsize
                       for n in wire.BATCH_FIELDS]
        self._obs_row = self._sizes[0] // rows
        self._check = ActionCheck(self.single_action_space, (rows, *self._row["actions"][0]))
        self._action_dtype = self._row["actions"][1]
        self._ids = [np.arange(g * rows, (g + 1) * rows) for g in range(self.num_groups)]
        obs_shape, obs_dtype = (rows, *self._row["observations"][0]), self._row["observations"][1]
        self._finals = [np.zeros(obs_shape, obs_dtype) for _ in range(self.num_groups)]
        self._last_obs: list[np.ndarray] = [np.zeros(obs_shape, obs_dtype) for _ in range(self.num_groups)]
        flag = self._row["terminals"][1]
        self._void = (np.zeros(rows, self._row["rewards"][1]), np.zeros(rows, flag),
                      np.zeros(rows, self._row["truncations"][1]), np.ones(rows, self._row["truncations"][1]),
                      np.zeros(rows, self._row["masks"][1]))
        self._ready: list[tuple[np.ndarray, ...] | None] = [None] * self.num_groups
        self._flight = [False] * self.num_groups
        self._void_g = [True] * self.num_groups  # no host behind the group: served as void batches
        self._lost_next = [False] * self.num_groups  # its next batch tells the rollout a transition was lost
        self._fresh = [False] * self.num_groups  # its next real batch starts new episodes (a host rejoined)
        self._slots: list[_Host | None] = [None] * hosts
        self._by_ident: dict[bytes, _Host] = {}
        self._told: set[bytes] = set()  # unknown peers already told to say hello
        self._stats: dict[str, HostStats] = {}
        self._episodes = 0
        self._sums: dict[str, float] = {}
        self.lost = False
        self.discarded = 0  # batches received but never served (an earlier epoch's, or a dropped host's)
        self.hosts_lost = 0
        self._epoch, self._generation = 0, 0
        self._held: int | None = None  # the group recv() handed out, until its send()
        self._next, self._last, self._reset_done = 0, 0, False
        self._held_void = False
        self._ping_at = 0.0
        self._closed = False
        self._context = zmq.Context(1)
        self._router = self._context.socket(zmq.ROUTER)
        self._auth = None
        try:
            wire.tune(self._router)
            self._router.setsockopt(zmq.ROUTER_MANDATORY, 1)
            # Larger frames are refused by ZeroMQ itself (the connection is closed) before they cost memory.
            self._router.setsockopt(zmq.MAXMSGSIZE, 2 * max(self._sizes) + (1 << 16))
            self._auth = wire.secure_server(self._context, self._router, None if insecure else keys)
            self._router.bind(bind)
        except zmq.ZMQError as exc:
            self.close()
            raise ValueError(f"cannot listen for remote actors on {bind}: {exc}") from None
        except BaseException:
            self.close()
            raise
        self.endpoint = self._router.getsockopt_string(zmq.LAST_ENDPOINT)

    # ---- the pool interface ------------------------------------------------

    def async_reset(self, seed: int | None = None) -> None:
        """Resets every host's envs; the first time, waits (up to ``join_timeout``) until every slot
        has a host. Later resets (a resumed run's checkpoint boundaries) go on with the hosts there are."""
        self._check_open()
        seed = self._seed if seed is None else seed
        self._seed = seed
        deadline = time.monotonic() + self.join_timeout
        while not self._reset_done and self.connected < self.hosts:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                joined = sum(h is not None and h.joined for h in self._slots)
                raise RemoteError(f"only {joined} of {self.hosts} remote hosts joined {self.endpoint} within "
                                  f"{self.join_timeout:g} s (start them with `appliance actors serve --connect ...`)")
            self._service(min(remaining, 0.25))
        self._epoch += 1
        for host in self._slots:
            if host is not None and host.joined:
                self._reset_host(host, fresh=False)
        self._next, self._held, self._reset_done = 0, None, True
        self._episodes, self._sums = 0, {}

    def recv(self) -> tuple[np.ndarray, ...]:
        """The next group in turn: views into its received frames (valid until ``send``), or a void
        batch if its host is lost."""
        self._check_open()
        if not self._reset_done or self._held is not None:
            raise RuntimeError("recv() needs async_reset() first, then one send() per recv()")
        g = self._next
        self._service(0)
        alone_since: float | None = None
        while True:
            if not self.connected:  # void batches alone would train on nothing: wait for a host
                now = time.monotonic()
                alone_since = alone_since or now
                if now - alone_since > self.join_timeout:
                    raise RemoteError(f"every remote host is lost and none joined {self.endpoint} again "
                                      f"within {self.join_timeout:g} s")
            elif self._void_g[g] or self._ready[g] is not None:
                break
            self._service(0.1)
        self._held = self._last = g
        self._held_void = self._void_g[g]
        if self._void_g[g]:
            self.lost, self._lost_next[g] = self._lost_next[g], False
            rewards, terminals, trunc0, trunc1, masks = self._void
            return self._last_obs[g], rewards, terminals, trunc1 if self.lost else trunc0, masks, self._ids[g]
        self.lost = self._lost_next[g]
        self._lost_next[g] = False
        ready = self._ready[g]
        assert ready is not None  # the loop above ends on a void batch (returned) or a ready one
        obs, rewards, terminals, truncations, masks = ready
        self._last_obs[g] = obs
        return obs, rewards, terminals, truncations, masks, self._ids[g]

    def send(self, actions: np.ndarray) -> None:
        """Sends the actions of the group last received to its host (dropped for a void group)."""
        self._check_open()
        if self._held is None:
            raise RuntimeError("send() must follow recv()")
        g = self._held
        self._held = None
        self._next = (g + 1) % self.num_groups
        checked = self._check(actions)
        if self._held_void or self._void_g[g]:  # void, or its host was dropped since recv
            return
        self._ready[g] = None
        host = self._slots[g // self.batches]
        assert host is not None  # a group that is not void has its host
        j = g % self.batches
        out = np.ascontiguousarray(checked, dtype=self._action_dtype)
        try:
            self._router.send_multipart(
                [host.ident, b"A" + wire.ACTIONS.pack(j, host.seq[j]), out],  # type: ignore[list-item]  # ndarray is a buffer
                copy=False,
            )
        except zmq.ZMQError as exc:
            self._drop(host, _gone(exc))
            return
        self._flight[g] = True
        self._stat(host).bytes_sent += out.nbytes

    @property
    def actions(self) -> np.ndarray:
        """A fresh action buffer for the group last received (the frames it came in are read-only to us)."""
        if self._held is None:
            raise RuntimeError("actions belong to a received batch: call recv() first")
        return np.zeros(self._check.shape, self._action_dtype)

    @property
    def final_observations(self) -> np.ndarray:
        """The last received group's final observations (meaningful where ``truncations`` is set)."""
        g = self._last
        return self._last_obs[g] if self._void_g[g] else self._finals[g]

    def episode_stats(self) -> dict[str, float]:
        """Means over the episodes the hosts reported since the last call."""
        out: dict[str, float] = {"episodes": self._episodes}
        if self._episodes:
            out.update({key: total / self._episodes for key, total in self._sums.items()})
        self._episodes, self._sums = 0, {}
        return out

    def host_stats(self) -> dict[str, HostStats]:
        """Per host label: steps, bytes each way, the last round-trip time, connected or not."""
        return self._stats

    def groups(self, host: str) -> list[int]:
        """The groups (``env_ids // batch_rows``) of the host holding a slot under that label, if any."""
        slot = next((h.slot for h in self._slots if h is not None and h.name == host), None)
        return [] if slot is None else list(range(slot * self.batches, (slot + 1) * self.batches))

    @property
    def connected(self) -> int:
        """Hosts currently holding a slot and serving batches."""
        return sum(h is not None and h.joined for h in self._slots)

    def close(self) -> None:
        """Tells every host to stop (it then reconnects with backoff), closes the socket and ZAP."""
        if self._closed:
            return
        self._closed = True
        for host in list(self._by_ident.values()):
            try:
                self._router.send_multipart([host.ident, b"Qthe learner closed"], zmq.NOBLOCK)
            except zmq.ZMQError:
                pass
        self._router.close(linger=0)
        if self._auth is not None:
            self._auth.stop()
        self._context.term()

    def __enter__(self) -> RemotePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"RemotePool({self.env!r}, num_envs={self.num_envs}, hosts={self.hosts}, "
                f"batches={self.batches}, endpoint={getattr(self, 'endpoint', None)!r})")

    # ---- machinery -----------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the pool is closed")

    def _stat(self, host: _Host) -> HostStats:
        stats = self._stats.get(host.name)
        if stats is None:
            stats = self._stats[host.name] = HostStats()
        return stats

    def _service(self, wait: float) -> None:
        """Handles what arrived (waiting up to ``wait`` s for the first), pings, drops silent hosts."""
        router = self._router
        if wait > 0 and not cast(int, router.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
            router.poll(int(wait * 1000))  # as Poller.poll takes it: whole milliseconds
        while cast(int, router.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
            frames = router.recv_multipart(copy=False)
            self._handle(frames)
        now = time.monotonic()
        for host in list(self._by_ident.values()):
            limit = self.timeout if host.joined else BUILD_S
            if now - host.last_seen > limit:
                self._drop(host, f"sent nothing for {limit:g} s")
        if now >= self._ping_at:
            self._ping_at = now + PING_S
            for host in list(self._by_ident.values()):
                try:
                    router.send_multipart([host.ident, b"P" + wire.PING.pack(now)], zmq.NOBLOCK)
                except zmq.ZMQError as exc:
                    self._drop(host, _gone(exc))

    def _handle(self, frames: list[zmq.Frame]) -> None:
        ident = frames[0].bytes
        host = self._by_ident.get(ident)
        head = frames[1].bytes if len(frames) > 1 and len(frames[1]) <= 4096 else b"?"
        op = head[:1]
        if host is None:
            if op == b"H" and len(frames) == 2:
                self._hello(ident, frames[1], head)
            elif ident not in self._told and len(self._told) < 4096:
                self._told.add(ident)
                self._reply(ident, b"Qunknown session: say hello first")
            return
        host.last_seen = time.monotonic()
        try:
            if op == b"B":
                self._batch(host, frames)
            elif op == b"S" and len(frames) == 2:
                report = json.loads(head[1:])
                count = int(report["episodes"])
                sums = {str(k): float(v) for k, v in dict(report["sums"]).items()}
                if count < 0:
                    raise ValueError("negative episode count")
                self._episodes += count
                for key, total in sums.items():
                    self._sums[key] = self._sums.get(key, 0.0) + total
            elif op == b"p" and len(frames) == 2 and len(head) == 1 + wire.PING.size:
                self._stat(host).rtt_seconds = time.monotonic() - wire.PING.unpack_from(head, 1)[0]
            elif op == b"J" and len(frames) == 2 and not host.joined:
                host.joined = True
                self._stat(host).connected = True
                log.info("remote host %s (%s) joined slot %d", host.name, host.address, host.slot)
                if self._reset_done:
                    self._reset_host(host, fresh=True)
            elif op == b"E" and len(frames) == 2:
                self._drop(host, f"reported: {head[1:].decode(errors='replace')[:300]}")
            else:
                raise _Malformed(f"unexpected message {head[:12]!r} in {len(frames) - 1} frame(s)")
        except (_Malformed, ValueError, KeyError, TypeError, AttributeError) as exc:
            self._drop(host, f"malformed message: {exc}")

    def _hello(self, ident: bytes, frame: zmq.Frame, head: bytes) -> None:
        key, address = _property(frame, "User-Id"), _property(frame, "Peer-Address") or "?"
        try:
            hello = json.loads(head[1:])
            name = str(hello["name"])[:64] or address
            wanted = hello.get("env")
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("remote peer %s sent a malformed hello (%s): refused", address, exc)
            self._reply(ident, b"Qmalformed hello")
            return
        if wanted is not None and wanted != self.env:
            log.warning("remote host %s (%s) serves %s, this learner trains %s: refused", name, address, wanted,
                        self.env)
            self._reply(ident, f"Qthis learner trains {self.env}".encode())
            return
        free = next((s for s, h in enumerate(self._slots) if h is None), None)
        if free is None:
            self._reply(ident, f"Qall {self.hosts} slots are taken".encode())
            return
        labels = {h.name for h in self._by_ident.values()}
        label = name if name not in labels else f"{name}#{free}"
        now = time.monotonic()
        host = _Host(ident, label, key, address, free, welcomed_at=now, last_seen=now, seq=[0] * self.batches)
        self._slots[free] = host
        self._by_ident[ident] = host
        self._told.discard(ident)
        self._generation += 1
        share = {"slot": free, "env": self.env, "params": self.params, "envs": self.envs_per_batch,
                 "batches": self.batches, "seed": actor_seed(self._seed, free)}
        self._reply(ident, b"W" + json.dumps(share).encode())
        self._stat(host)

    def _reply(self, ident: bytes, message: bytes) -> None:
        """One frame to a peer; a peer already gone is no error (ROUTER_MANDATORY says EHOSTUNREACH)."""
        try:
            self._router.send_multipart([ident, message], zmq.NOBLOCK)
        except zmq.ZMQError:
            pass

    def _reset_host(self, host: _Host, fresh: bool) -> None:
        """Resets a joined host's envs for this epoch; its groups then await their first batch.

        ``fresh``: the host joins a run under way (its envs get a new seed and start truncated).
        """
        seed = actor_seed(self._seed, host.slot, self._generation if fresh else 0) & _MASK64
        self._router.send_multipart([host.ident, b"R" + wire.RESET.pack(self._epoch, seed)], zmq.NOBLOCK)
        host.seq = [0] * self.batches
        for j in range(self.batches):
            g = host.slot * self.batches + j
            self._ready[g], self._flight[g], self._void_g[g] = None, True, False
            self._fresh[g] = fresh

    def _batch(self, host: _Host, frames: list[zmq.Frame]) -> None:
        if not host.joined:
            raise _Malformed("a batch before the host joined")
        head = frames[1].bytes
        if len(head) != 1 + wire.BATCH.size:
            raise _Malformed(f"batch header of {len(head)} bytes, expected {1 + wire.BATCH.size}")
        j, epoch, seq, cut = wire.BATCH.unpack_from(head, 1)
        fields = len(wire.BATCH_FIELDS)
        if len(frames) != 2 + fields + (2 if cut else 0):
            raise _Malformed(f"batch of {len(frames) - 2} frames with {cut} truncated rows")
        if j >= self.batches:
            raise _Malformed(f"batch slot {j}, the host has {self.batches}")
        for i, size in enumerate(self._sizes):
            got = len(frames[2 + i])
            if got != size:
                raise _Malformed(f"{wire.BATCH_FIELDS[i]} of {got} bytes, expected {size}")
        if cut and (cut > self.batch_rows or len(frames[7]) != 4 * cut or len(frames[8]) != cut * self._obs_row):
            raise _Malformed(f"{cut} final observations in frames of {len(frames[7])} and {len(frames[8])} bytes")
        if epoch != self._epoch:
            self.discarded += 1  # sent before the last reset reached the host
            return
        g = host.slot * self.batches + j
        if not self._flight[g] or seq != host.seq[j]:
            raise _Malformed(f"batch {j} seq {seq} not asked for (expected seq {host.seq[j]})")
        views = [np.frombuffer(frames[2 + i].buffer, self._row[n][1]).reshape(self.batch_rows, *self._row[n][0])
                 for i, n in enumerate(wire.BATCH_FIELDS)]
        if cut:
            rows = np.frombuffer(frames[7].buffer, np.int32)
            if rows.min() < 0 or rows.max() >= self.batch_rows:
                raise _Malformed("final observation rows out of range")
            finals = np.frombuffer(frames[8].buffer, self._finals[g].dtype).reshape(cut, *self._finals[g].shape[1:])
            self._finals[g][rows] = finals
        if self._fresh[g]:
            views[3][:] = 1  # a rejoined host's envs start new episodes: their first batch is truncated
            self._finals[g][:] = views[0]
            self._fresh[g] = False
        host.seq[j] += 1
        self._flight[g] = False
        self._ready[g] = tuple(views)
        stats = self._stat(host)
        stats.steps += self.batch_rows
        stats.bytes_received += sum(len(f) for f in frames[1:])

    def _drop(self, host: _Host, why: str) -> None:
        """Drops a host with one log line: its groups become void (reported truncated), its slot free."""
        if self._by_ident.get(host.ident) is not host:
            return
        del self._by_ident[host.ident]
        self._slots[host.slot] = None
        stats = self._stat(host)
        stats.connected = False
        stats.lost += 1
        self.hosts_lost += 1
        for j in range(self.batches):
            g = host.slot * self.batches + j
            if self._ready[g] is not None:
                self.discarded += 1
            if not self._void_g[g]:
                self._lost_next[g] = True
            self._ready[g], self._flight[g], self._void_g[g], self._fresh[g] = None, False, True, False
        left = self.connected
        log.warning("remote host %s (%s, slot %d) dropped: %s; its %d envs are reported truncated and the run "
                    "goes on with %d host%s", host.name, host.address, host.slot, why,
                    self.batches * self.envs_per_batch, left, "" if left == 1 else "s")
        self._reply(host.ident, f"Q{why}".encode()[:512])
