"""The learner's table of remote actor hosts: who holds which slot, and their running totals.

:class:`actors.remote_pool.RemotePool` keeps one; a host is admitted into a free slot on
its hello, known by its ZeroMQ routing id until it is released (dropped). The totals per
host label (:class:`HostStats`) outlive the host, so the metrics of a host that left and
rejoined continue.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Host:
    """One connected host: its routing id, label, CURVE key, address and slot."""

    ident: bytes
    name: str
    key: str
    address: str
    slot: int
    joined: bool = False
    welcomed_at: float = 0.0
    last_seen: float = 0.0
    seq: list[int] = field(default_factory=list)  # per batch: the sequence number of the batch asked for


@dataclass
class HostStats:
    """Totals per host label, for the metrics (steps and bytes are running counts)."""

    steps: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0
    rtt_seconds: float | None = None
    connected: bool = False
    lost: int = 0


class HostTable:
    """``slots`` slots, each empty or held by one :class:`Host`."""

    def __init__(self, slots: int, batches: int) -> None:
        self.slots: list[Host | None] = [None] * slots
        self.batches = batches
        self.by_ident: dict[bytes, Host] = {}
        self.told: set[bytes] = set()  # unknown peers already told to say hello
        self.stats: dict[str, HostStats] = {}

    def stat(self, host: Host) -> HostStats:
        stats = self.stats.get(host.name)
        if stats is None:
            stats = self.stats[host.name] = HostStats()
        return stats

    def free_slot(self) -> int | None:
        return next((s for s, h in enumerate(self.slots) if h is None), None)

    def admit(self, ident: bytes, name: str, key: str, address: str, slot: int, now: float) -> Host:
        """A host in ``slot`` (free), labelled ``name`` or, if another holds that label, ``name#slot``."""
        assert self.slots[slot] is None
        label = name if name not in {h.name for h in self.by_ident.values()} else f"{name}#{slot}"
        host = Host(ident, label, key, address, slot, welcomed_at=now, last_seen=now, seq=[0] * self.batches)
        self.slots[slot] = host
        self.by_ident[ident] = host
        self.told.discard(ident)
        self.stat(host)
        return host

    def release(self, host: Host) -> bool:
        """Frees the host's slot; False if it was released already."""
        if self.by_ident.get(host.ident) is not host:
            return False
        del self.by_ident[host.ident]
        self.slots[host.slot] = None
        stats = self.stat(host)
        stats.connected = False
        stats.lost += 1
        return True

    def groups(self, slot: int) -> range:
        """The groups a slot's batches are: ``slot * batches`` onwards."""
        return range(slot * self.batches, (slot + 1) * self.batches)

    @property
    def connected(self) -> int:
        """Hosts holding a slot that have built their envs and joined."""
        return sum(h is not None and h.joined for h in self.slots)
