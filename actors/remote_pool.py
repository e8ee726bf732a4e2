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
from typing import Any, cast

import numpy as np
import zmq

from . import remote_wire as wire
from .actions import ActionCheck
from .pool import actor_seed
from .remote_batch import BatchCodec, Groups, Malformed
from .remote_hosts import Host, HostStats, HostTable
from .remote_listener import Listener
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
        self.timeout, self.join_timeout = float(timeout), float(join_timeout)
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
        self._codec = BatchCodec(self._row, rows, batches)
        self._check = ActionCheck(self.single_action_space, (rows, *self._row["actions"][0]))
        self._action_dtype = self._row["actions"][1]
        self._groups = Groups(self._codec, self.num_groups)
        self._hosts = HostTable(hosts, batches)
        self.lost = False
        self._held: int | None = None  # the group recv() handed out, until its send()
        self._next, self._last = 0, 0
        self._held_void = False
        self._closed = False
        # Larger frames are refused by ZeroMQ itself (the connection is closed) before they cost memory.
        self._listener = Listener(bind, None if insecure else keys, 2 * max(self._codec.sizes) + (1 << 16))
        self.endpoint = self._listener.endpoint
        self._net = Switchboard(self, self._listener, self._hosts, self._groups, self._codec, seed)

    # ---- the pool interface ------------------------------------------------

    def async_reset(self, seed: int | None = None) -> None:
        """Resets every host's envs; the first time, waits (up to ``join_timeout``) until every slot
        has a host. Later resets (a resumed run's checkpoint boundaries) go on with the hosts there are."""
        self._check_open()
        seed = self._net.seed if seed is None else seed
        self._net.seed = seed
        deadline = time.monotonic() + self.join_timeout
        while not self._net.started and self.connected < self.hosts:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RemoteError(f"only {self.connected} of {self.hosts} remote hosts joined {self.endpoint} within "
                                  f"{self.join_timeout:g} s (start them with `appliance actors serve --connect ...`)")
            self._net.service(min(remaining, 0.25))
        self._net.reset_all()
        self._next, self._held = 0, None

    def recv(self) -> tuple[np.ndarray, ...]:
        """The next group in turn: views into its received frames (valid until ``send``), or a void
        batch if its host is lost."""
        self._check_open()
        if not self._net.started or self._held is not None:
            raise RuntimeError("recv() needs async_reset() first, then one send() per recv()")
        g = self._next
        self._net.service(0)
        alone_since: float | None = None
        while True:
            if not self.connected:  # void batches alone would train on nothing: wait for a host
                now = time.monotonic()
                alone_since = alone_since or now
                if now - alone_since > self.join_timeout:
                    raise RemoteError(f"every remote host is lost and none joined {self.endpoint} again "
                                      f"within {self.join_timeout:g} s")
            elif self._groups.servable(g):
                break
            self._net.service(0.1)
        self._held = self._last = g
        self._held_void = self._groups.void[g]
        batch, self.lost = self._groups.serve(g)
        return batch

    def send(self, actions: np.ndarray) -> None:
        """Sends the actions of the group last received to its host (dropped for a void group)."""
        self._check_open()
        if self._held is None:
            raise RuntimeError("send() must follow recv()")
        g = self._held
        self._held = None
        self._next = (g + 1) % self.num_groups
        checked = self._check(actions)
        if self._held_void or self._groups.void[g]:  # void, or its host was dropped since recv
            return
        host = self._hosts.slots[g // self.batches]
        assert host is not None  # a group that is not void has its host
        j = g % self.batches
        out = np.ascontiguousarray(checked, dtype=self._action_dtype)
        try:
            self._listener.send([host.ident, b"A" + wire.ACTIONS.pack(j, host.seq[j]), out])
        except zmq.ZMQError as exc:
            self._net.drop(host, _gone(exc))
            return
        self._groups.asked(g)
        self._hosts.stat(host).bytes_sent += out.nbytes

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
        groups = self._groups
        return groups.last_obs[g] if groups.void[g] else groups.finals[g]

    def episode_stats(self) -> dict[str, float]:
        """Means over the episodes the hosts reported since the last call."""
        out: dict[str, float] = {"episodes": self._net.episodes}
        if self._net.episodes:
            out.update({key: total / self._net.episodes for key, total in self._net.sums.items()})
        self._net.episodes, self._net.sums = 0, {}
        return out

    def host_stats(self) -> dict[str, HostStats]:
        """Per host label: steps, bytes each way, the last round-trip time, connected or not."""
        return self._hosts.stats

    def groups(self, host: str) -> list[int]:
        """The groups (``env_ids // batch_rows``) of the host holding a slot under that label, if any."""
        slot = next((h.slot for h in self._hosts.slots if h is not None and h.name == host), None)
        return [] if slot is None else list(self._hosts.groups(slot))

    @property
    def discarded(self) -> int:
        """Batches received but never served (an earlier epoch's, or a dropped host's)."""
        return self._net.discarded

    @property
    def hosts_lost(self) -> int:
        """Hosts dropped so far."""
        return self._net.hosts_lost

    @property
    def connected(self) -> int:
        """Hosts currently holding a slot and serving batches."""
        return self._hosts.connected

    def close(self) -> None:
        """Tells every host to stop (it then reconnects with backoff), closes the socket and ZAP."""
        if self._closed:
            return
        self._closed = True
        self._listener.close(list(self._hosts.by_ident))

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


class Switchboard:
    """The network side of a :class:`RemotePool`: what the hosts send is handled here (hellos, batches,
    episode reports, pings), and hosts that go silent or break the protocol are dropped."""

    def __init__(self, pool: RemotePool, listener: Listener, hosts: HostTable, groups: Groups,
                 codec: BatchCodec, seed: int) -> None:
        self.env, self.params, self.hosts, self.batches = pool.env, pool.params, pool.hosts, pool.batches
        self.envs_per_batch, self.batch_rows, self.timeout = pool.envs_per_batch, pool.batch_rows, pool.timeout
        self._listener, self._hosts, self._groups, self._codec = listener, hosts, groups, codec
        self.seed, self.epoch, self.generation = seed, 0, 0
        self.started = False  # the first reset is done: a host that joins now is reset at once
        self.episodes = 0  # reported by the hosts since the pool's last episode_stats()
        self.sums: dict[str, float] = {}
        self.discarded = 0  # batches received but never served (an earlier epoch's, or a dropped host's)
        self.hosts_lost = 0
        self._ping_at = 0.0

    def reset_all(self) -> None:
        """A new epoch: every joined host's envs reset with ``self.seed``; the episode tally starts over."""
        self.epoch += 1
        for host in self._hosts.slots:
            if host is not None and host.joined:
                self.reset_host(host, fresh=False)
        self.started = True
        self.episodes, self.sums = 0, {}

    def service(self, wait: float) -> None:
        """Handles what arrived (waiting up to ``wait`` s for the first), pings, drops silent hosts."""
        for frames in self._listener.incoming(wait):
            self.handle(frames)
        now = time.monotonic()
        for host in list(self._hosts.by_ident.values()):
            limit = self.timeout if host.joined else BUILD_S
            if now - host.last_seen > limit:
                self.drop(host, f"sent nothing for {limit:g} s")
        if now >= self._ping_at:
            self._ping_at = now + PING_S
            for host in list(self._hosts.by_ident.values()):
                try:
                    self._listener.send([host.ident, b"P" + wire.PING.pack(now)], wait=False)
                except zmq.ZMQError as exc:
                    self.drop(host, _gone(exc))

    def handle(self, frames: list[zmq.Frame]) -> None:
        ident = frames[0].bytes
        host = self._hosts.by_ident.get(ident)
        head = frames[1].bytes if len(frames) > 1 and len(frames[1]) <= 4096 else b"?"
        op = head[:1]
        if host is None:
            if op == b"H" and len(frames) == 2:
                self.hello(ident, frames[1], head)
            elif ident not in self._hosts.told and len(self._hosts.told) < 4096:
                self._hosts.told.add(ident)
                self._listener.reply(ident, b"Qunknown session: say hello first")
            return
        host.last_seen = time.monotonic()
        try:
            if op == b"B":
                self.batch(host, frames)
            elif op == b"S" and len(frames) == 2:
                report = json.loads(head[1:])
                count = int(report["episodes"])
                sums = {str(k): float(v) for k, v in dict(report["sums"]).items()}
                if count < 0:
                    raise ValueError("negative episode count")
                self.episodes += count
                for key, total in sums.items():
                    self.sums[key] = self.sums.get(key, 0.0) + total
            elif op == b"p" and len(frames) == 2 and len(head) == 1 + wire.PING.size:
                self._hosts.stat(host).rtt_seconds = time.monotonic() - wire.PING.unpack_from(head, 1)[0]
            elif op == b"J" and len(frames) == 2 and not host.joined:
                host.joined = True
                self._hosts.stat(host).connected = True
                log.info("remote host %s (%s) joined slot %d", host.name, host.address, host.slot)
                if self.started:
                    self.reset_host(host, fresh=True)
            elif op == b"E" and len(frames) == 2:
                self.drop(host, f"reported: {head[1:].decode(errors='replace')[:300]}")
            else:
                raise Malformed(f"unexpected message {head[:12]!r} in {len(frames) - 1} frame(s)")
        except (Malformed, ValueError, KeyError, TypeError, AttributeError) as exc:
            self.drop(host, f"malformed message: {exc}")

    def hello(self, ident: bytes, frame: zmq.Frame, head: bytes) -> None:
        key, address = _property(frame, "User-Id"), _property(frame, "Peer-Address") or "?"
        try:
            hello = json.loads(head[1:])
            name = str(hello["name"])[:64] or address
            wanted = hello.get("env")
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("remote peer %s sent a malformed hello (%s): refused", address, exc)
            self._listener.reply(ident, b"Qmalformed hello")
            return
        if wanted is not None and wanted != self.env:
            log.warning("remote host %s (%s) serves %s, this learner trains %s: refused", name, address, wanted,
                        self.env)
            self._listener.reply(ident, f"Qthis learner trains {self.env}".encode())
            return
        free = self._hosts.free_slot()
        if free is None:
            self._listener.reply(ident, f"Qall {self.hosts} slots are taken".encode())
            return
        self._hosts.admit(ident, name, key, address, free, time.monotonic())
        self.generation += 1
        share = {"slot": free, "env": self.env, "params": self.params, "envs": self.envs_per_batch,
                 "batches": self.batches, "seed": actor_seed(self.seed, free)}
        self._listener.reply(ident, b"W" + json.dumps(share).encode())

    def reset_host(self, host: Host, fresh: bool) -> None:
        """Resets a joined host's envs for this epoch; its groups then await their first batch.

        ``fresh``: the host joins a run under way (its envs get a new seed and start truncated).
        """
        seed = actor_seed(self.seed, host.slot, self.generation if fresh else 0) & _MASK64
        self._listener.send([host.ident, b"R" + wire.RESET.pack(self.epoch, seed)], wait=False)
        host.seq = [0] * self.batches
        for g in self._hosts.groups(host.slot):
            self._groups.reset(g, fresh)

    def batch(self, host: Host, frames: list[zmq.Frame]) -> None:
        if not host.joined:
            raise Malformed("a batch before the host joined")
        batch = self._codec.parse(frames)
        if batch.epoch != self.epoch:
            self.discarded += 1  # sent before the last reset reached the host
            return
        j = batch.j
        g = host.slot * self.batches + j
        if not self._groups.flight[g] or batch.seq != host.seq[j]:
            raise Malformed(f"batch {j} seq {batch.seq} not asked for (expected seq {host.seq[j]})")
        host.seq[j] += 1
        self._groups.arrived(g, batch)
        stats = self._hosts.stat(host)
        stats.steps += self.batch_rows
        stats.bytes_received += sum(len(f) for f in frames[1:])

    def drop(self, host: Host, why: str) -> None:
        """Drops a host with one log line: its groups become void (reported truncated), its slot free."""
        if not self._hosts.release(host):
            return
        self.hosts_lost += 1
        for g in self._hosts.groups(host.slot):
            self.discarded += self._groups.drop(g)
        left = self._hosts.connected
        log.warning("remote host %s (%s, slot %d) dropped: %s; its %d envs are reported truncated and the run "
                    "goes on with %d host%s", host.name, host.address, host.slot, why,
                    self.batches * self.envs_per_batch, left, "" if left == 1 else "s")
        self._listener.reply(host.ident, f"Q{why}".encode()[:512])
