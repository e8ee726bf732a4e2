"""Process readings through psutil: actor and learner CPU share, actor memory, arena size.

CPU is reported as a ratio 0–1: CPU seconds used over wall seconds, divided by
the number of cores the process may run on (its affinity). An actor pinned to
one core at full speed reads 1.0; so does a learner using all of its cores.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class ProcessReading:
    cpu_ratio: float | None  # None on the first reading (no interval yet)
    rss_bytes: int


class _CpuMeter:
    """CPU ratio of one process between successive readings."""

    def __init__(self, process: psutil.Process) -> None:
        self.process = process
        self._last: tuple[float, float] | None = None

    def read(self) -> ProcessReading:
        with self.process.oneshot():
            times = self.process.cpu_times()
            rss = self.process.memory_info().rss
            try:
                cores = len(self.process.cpu_affinity()) or 1
            except (AttributeError, psutil.Error):  # no affinity on this platform
                cores = psutil.cpu_count() or 1
        now, used = time.monotonic(), times.user + times.system
        ratio = None
        if self._last is not None and now > self._last[0]:
            ratio = min(1.0, max(0.0, (used - self._last[1]) / (now - self._last[0]) / cores))
        self._last = (now, used)
        return ProcessReading(cpu_ratio=ratio, rss_bytes=int(rss))


class CpuSampler:
    """Samples the learner (this process), a set of actor processes and the arena files.

    Actors that exit drop out of :meth:`sample_actors`, so their series vanish
    instead of freezing at a last value.
    """

    def __init__(self, learner_pid: int | None = None) -> None:
        self._learner = _CpuMeter(psutil.Process(learner_pid or os.getpid()))
        self._actors: dict[str, _CpuMeter] = {}
        self._arena: list[str] = []
        self._arena_fixed: int | None = None

    def attach_actors(self, pids: Mapping[str, int] | Iterable[int]) -> None:
        """Replaces the watched actors; ``pids`` maps actor names to pids (or lists pids, named 0..n-1)."""
        named = dict(pids) if isinstance(pids, Mapping) else {str(i): pid for i, pid in enumerate(pids)}
        meters = {}
        for name, pid in named.items():
            if not isinstance(pid, int) or pid <= 0:
                raise ValueError(f"pids: actor {name!r} has pid {pid!r}, expected a positive int")
            old = self._actors.get(str(name))
            if old is not None and old.process.pid == pid:
                meters[str(name)] = old
                continue
            try:
                meters[str(name)] = _CpuMeter(psutil.Process(pid))
            except psutil.NoSuchProcess:
                continue  # already gone: nothing to report
        self._actors = meters

    def set_arena(self, arena: str | os.PathLike[str] | int | Iterable[str | os.PathLike[str]]) -> None:
        """The arena's size in bytes, or its /dev/shm file(s), whose sizes are read at each sample."""
        if isinstance(arena, bool):
            raise ValueError(f"arena: expected a byte count or path(s), got {arena!r}")
        if isinstance(arena, int):
            if arena < 0:
                raise ValueError(f"arena: byte count must be >= 0, got {arena}")
            self._arena, self._arena_fixed = [], arena
        elif isinstance(arena, (str, os.PathLike)):
            self._arena, self._arena_fixed = [os.fspath(arena)], None
        else:
            self._arena, self._arena_fixed = [os.fspath(p) for p in arena], None

    def sample_learner(self) -> ProcessReading:
        return self._learner.read()

    def sample_actors(self) -> dict[str, ProcessReading]:
        out = {}
        for name, meter in list(self._actors.items()):
            try:
                if meter.process.status() == psutil.STATUS_ZOMBIE:  # exited, not yet reaped
                    raise psutil.NoSuchProcess(meter.process.pid)
                out[name] = meter.read()
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                del self._actors[name]
        return out

    def sample_arena(self) -> int | None:
        """Bytes of the arena files that exist (None: no arena set, or none of its files exist)."""
        if self._arena_fixed is not None:
            return self._arena_fixed
        sizes = []
        for path in self._arena:
            try:
                sizes.append(os.stat(path).st_size)
            except FileNotFoundError:
                continue
        return sum(sizes) if sizes else None
