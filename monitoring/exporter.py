"""The Prometheus exporter one learner rank serves on ``port + local_rank``.

Names follow docs/architecture.md ("Metrics"): prefix ``appliance_``, base units, counters
end in ``_total``, ratios are 0–1; every series carries ``rank``, ``env`` and
``run``, GPU series also ``gpu`` and ``UUID`` as dcgm-exporter writes them.

The training loop calls a few cheap methods (each a dict lookup and a locked
float update, about a microsecond) once per rollout batch or update; process
and GPU readings are taken by a daemon thread every ``sample_interval``
seconds, off the hot path.
"""

from __future__ import annotations

import errno
import logging
import os
import platform
import socket
import threading
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Info,
    disable_created_metrics,
    start_http_server,
)

from .cpu import CpuSampler
from .gpu import GpuSampler, GpuUnavailable, rank_device

log = logging.getLogger(__name__)

PHASES = ("env_wait", "inference", "learn", "other")
"""Where a learner's wall time goes: waiting for actors, policy forward, PPO update, the rest."""

LOSSES = {
    "policy_loss": "PPO clipped surrogate loss of the last update.",
    "value_loss": "Value-function loss of the last update.",
    "entropy": "Mean policy entropy of the last update, in nats.",
    "approx_kl": "Approximate KL divergence between the old and new policy.",
    "clip_fraction": "Fraction of samples whose ratio was clipped (0-1).",
    "learning_rate": "Optimizer learning rate.",
    "explained_variance": "Explained variance of the value function on the last rollout.",
}
"""Keys accepted by :meth:`MetricsExporter.set_losses`; each is exported as ``appliance_<key>``."""

_BASE = ("rank", "env", "run")
_GPU = (*_BASE, "gpu", "UUID")
_GPU_DOCS = {  # GpuReading field -> help; exported as appliance_gpu_<field>
    "utilization_ratio": "GPU busy time (0-1), as NVML reports it.",
    "memory_used_bytes": "GPU memory used.",
    "memory_total_bytes": "GPU memory in total.",
    "power_watts": "GPU board power draw.",
    "temperature_celsius": "GPU core temperature.",
}


ACHIEVEMENT = "achievement_"  # episode stats with this prefix are unlock rates, one series per achievement


class MetricsPortError(OSError):
    """The metrics port cannot be bound (busy, privileged or a bad address)."""


def served_port(port: int, local_rank: int) -> int:
    """The port a rank serves on: the base port plus its local rank."""
    return port + local_rank


def check_port_free(addr: str, port: int) -> None:
    """Raises :class:`MetricsPortError` if ``addr:port`` cannot be bound right now.

    Binds the way the exporter's HTTP server does (SO_REUSEADDR), so sockets in
    TIME_WAIT from a previous run do not count as busy.
    """
    _check_port_number(port)
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((addr, port))
        except OSError as exc:
            raise _port_error(addr, port, exc) from exc


def _check_port_number(port: int) -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"metrics port must be an int in 1..65535 (or 0 to disable), got {port!r}")


def _port_error(addr: str, port: int, exc: OSError) -> MetricsPortError:
    if exc.errno == errno.EADDRINUSE:
        reason = "is in use"
    elif exc.errno == errno.EACCES:
        reason = "needs privileges to bind"
    else:
        reason = f"cannot be bound ({exc.strerror or exc})"
    advice = "pass --metrics-port with another base port, or 0 to disable"
    if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) or isinstance(exc, socket.gaierror):
        # The address is what is wrong (not this host's, or not an address at all), not the port.
        reason = f"cannot be bound: {addr} is not an address of this machine ({exc.strerror or exc})"
        advice = "pass --metrics-addr with one of its addresses (0.0.0.0: all of them), or --metrics-port 0"
    error = MetricsPortError(f"metrics port {port} on {addr} {reason}; {advice}")
    error.errno = exc.errno  # kept for callers; the message stays one sentence
    return error


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "none"


class MetricsExporter:
    """Metrics of one learner rank, served at ``http://addr:(port + local_rank)/metrics``.

    ``port=0`` disables serving and sampling: the methods still work (on a
    private registry nobody scrapes), so the training loop never branches.
    ``gpus`` are the NVML indices or UUIDs this rank reports; None means the
    rank's own device (``cuda:local_rank`` through CUDA_VISIBLE_DEVICES); pass
    ``()`` for a CPU-only learner. Without NVML the GPU series are absent.
    """

    def __init__(
        self,
        port: int,
        addr: str = "0.0.0.0",
        *,
        rank: int,
        local_rank: int,
        env: str,
        run: str,
        registry: CollectorRegistry | None = None,
        gpus: Sequence[str | int] | None = None,
        sample_interval: float = 2.0,
    ) -> None:
        for name, value in (("rank", rank), ("local_rank", local_rank)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, got {value!r}")
        if not sample_interval > 0:
            raise ValueError(f"sample_interval must be > 0 seconds, got {sample_interval!r}")
        if port != 0:
            _check_port_number(port)
            _check_port_number(served_port(port, local_rank))
        self.enabled = port != 0
        self.addr = addr
        self.port = served_port(port, local_rank) if self.enabled else 0
        self.registry = registry if registry is not None else CollectorRegistry()
        self.sample_interval = float(sample_interval)
        labels = {"rank": str(rank), "env": str(env), "run": str(run)}
        self._labels = labels
        self._children: dict[Gauge, Gauge] = {}
        reg = self.registry
        disable_created_metrics()  # process-wide: drop the *_created series nobody charts (halves the scrape)

        def gauge(name: str, doc: str, extra: tuple[str, ...] = ()) -> Gauge:
            return Gauge(name, doc, (*_BASE, *extra), registry=reg)

        self._steps = Counter("appliance_env_steps", "Agent steps taken by this rank.", _BASE, registry=reg)
        self._steps_child = self._steps.labels(**labels)
        self._rate = gauge("appliance_steps_per_second", "Agent steps per second, recent window.")
        self._rate_child = self._rate.labels(**labels)
        self._return = gauge("appliance_episode_return", "Mean return of the episodes finished lately.")
        self._length = gauge("appliance_episode_length_steps", "Mean length of the episodes finished lately.")
        # Envs that report achievements per episode (Crafter's achievement_<name>: 1 if unlocked).
        self._achievements = gauge("appliance_episode_achievement_unlock_ratio",
                                   "Share of the episodes finished lately that unlocked the achievement.",
                                   ("achievement",))
        self._episodes = Counter("appliance_episodes", "Episodes finished.", _BASE, registry=reg)
        self._episodes_child = self._episodes.labels(**labels)
        phase = Counter(
            "appliance_learner_phase_seconds", "Learner wall time by phase.", (*_BASE, "phase"), registry=reg
        )
        self._phases = {p: phase.labels(**labels, phase=p) for p in PHASES}
        # Children of loss and reading gauges are made on first use: no made-up 0 before the first update.
        self._losses = {key: gauge(f"appliance_{key}", doc) for key, doc in LOSSES.items()}
        self._restarts = Counter("appliance_actor_restarts", "Actors restarted.", _BASE, registry=reg)
        self._restarts_child = self._restarts.labels(**labels)
        self._restarts_seen = 0
        # Remote actor hosts (actors.RemotePool), one series per `host` label; counters follow the pool's totals.
        host = (*_BASE, "host")
        self._remote = {
            "steps": Counter("appliance_remote_env_steps", "Agent steps received from a remote actor host.",
                             host, registry=reg),
            "bytes_received": Counter("appliance_remote_received_bytes", "Bytes received from a remote actor host.",
                                      host, registry=reg),
            "bytes_sent": Counter("appliance_remote_sent_bytes", "Bytes sent to a remote actor host.",
                                  host, registry=reg),
            "lost": Counter("appliance_remote_hosts_lost", "Times a remote actor host was dropped.", host,
                            registry=reg),
        }
        self._remote_rtt = gauge("appliance_remote_rtt_seconds", "Round trip of a ping to a remote actor host.",
                                 ("host",))
        self._remote_up = gauge("appliance_remote_host_up", "1 while a remote actor host serves batches, else 0.",
                                ("host",))
        self._remote_seen: dict[tuple[str, str], float] = {}
        self._actor_cpu = gauge("appliance_actor_cpu_ratio", "Actor CPU over its cores (0-1).", ("actor",))
        self._actor_rss = gauge("appliance_actor_rss_bytes", "Actor resident memory.", ("actor",))
        self._actors_exported: set[str] = set()
        self._learner_cpu = gauge("appliance_learner_cpu_ratio", "Learner CPU over its cores (0-1).")
        self._arena = gauge("appliance_arena_shm_bytes", "Bytes of shared memory in this rank's arena.")
        self._arena_exported = False
        Info("appliance_build", "Versions this rank runs.", _BASE, registry=reg).labels(**labels).info(
            {
                "version": _version("appliance"),
                "torch": _version("torch"),
                "numpy": _version("numpy"),
                "python": platform.python_version(),
            }
        )

        self._lock = threading.Lock()  # guards the samplers against the sampling thread
        self._cpu = CpuSampler()
        self._gpu: GpuSampler | None = None
        self.gpu_unavailable: str | None = None
        self._server = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        if not self.enabled:
            return
        devices = [rank_device(local_rank)] if gpus is None else list(gpus)
        if devices:
            try:
                self._gpu = GpuSampler(devices)
            except GpuUnavailable as exc:
                self.gpu_unavailable = str(exc)
                log.info("no GPU metrics: %s", exc)
        else:
            self.gpu_unavailable = "no GPU assigned to this rank"
        if self._gpu is not None:
            self._gpu_gauges = {
                key: Gauge(f"appliance_gpu_{key}", doc, _GPU, registry=reg) for key, doc in _GPU_DOCS.items()
            }
        try:
            self._server, _ = start_http_server(self.port, addr, registry=reg)
        except OSError as exc:
            self._close_gpu()
            raise _port_error(addr, self.port, exc) from exc
        self.sample_now()
        self._thread = threading.Thread(target=self._sample_loop, name=f"metrics-sampler-{rank}", daemon=True)
        self._thread.start()

    # ---- hot path: called by the training loop -------------------------------------------------

    def add_steps(self, n: int) -> None:
        """Counts ``n`` agent steps (call once per rollout batch)."""
        self._steps_child.inc(n)

    def set_rate(self, steps_per_second: float) -> None:
        """This rank's recent agent steps per second (the number the terminal dashboard shows)."""
        self._rate_child.set(steps_per_second)

    def observe_episodes(self, stats: Mapping[str, float]) -> None:
        """Takes ``envs``' ``episode_stats()`` form: ``episodes`` (count) and, if > 0, the means."""
        count = int(stats.get("episodes", 0))
        if count <= 0:
            return
        self._episodes_child.inc(count)
        if "episode_return" in stats:
            self._child(self._return).set(stats["episode_return"])
        if "episode_length" in stats:
            self._child(self._length).set(stats["episode_length"])
        for key, rate in stats.items():
            if key.startswith(ACHIEVEMENT):
                self._achievements.labels(**self._labels, achievement=key[len(ACHIEVEMENT):]).set(rate)

    def add_phase(self, phase: str, seconds: float) -> None:
        """Adds wall ``seconds`` spent in ``phase`` (one of :data:`PHASES`)."""
        child = self._phases.get(phase)
        if child is None:
            raise ValueError(f"phase must be one of {', '.join(PHASES)}; got {phase!r}")
        child.inc(seconds)

    def set_losses(self, values: Mapping[str, float]) -> None:
        """Losses and diagnostics of the last update, keys from :data:`LOSSES` (plain floats, not tensors)."""
        for key, value in values.items():
            child = self._losses.get(key)
            if child is None:
                raise ValueError(f"set_losses: unknown key {key!r} (known: {', '.join(LOSSES)})")
            self._child(child).set(value)

    def set_restarts(self, total: int) -> None:
        """The actor pool's running count of restarts (the counter follows it)."""
        if total < self._restarts_seen:
            raise ValueError(f"restarts total went down from {self._restarts_seen} to {total}")
        self._restarts_child.inc(total - self._restarts_seen)
        self._restarts_seen = total

    def set_remote_hosts(self, hosts: Mapping[str, Any]) -> None:
        """Per remote actor host (label → an ``actors.remote_hosts.HostStats``): running totals of steps,
        bytes each way and drops (the counters follow them), the last round trip, up or not."""
        for name, stats in hosts.items():
            labels = {**self._labels, "host": name}
            for key, counter in self._remote.items():
                total = float(getattr(stats, key))
                seen = self._remote_seen.get((name, key), 0.0)
                counter.labels(**labels).inc(max(0.0, total - seen))
                self._remote_seen[(name, key)] = max(seen, total)
            if stats.rtt_seconds is not None:
                self._remote_rtt.labels(**labels).set(stats.rtt_seconds)
            self._remote_up.labels(**labels).set(1.0 if stats.connected else 0.0)

    def _child(self, gauge: Gauge) -> Gauge:
        """This rank's series of ``gauge``, made on first use (so nothing shows before a real value)."""
        child = self._children.get(gauge)
        if child is None:
            child = self._children[gauge] = gauge.labels(**self._labels)
        return child

    # ---- setup-time calls ----------------------------------------------------------------------

    def attach_actors(self, pids: Mapping[str, int] | Iterable[int]) -> None:
        """The actor processes to watch (name → pid, or pids named 0..n-1); call again after restarts."""
        with self._lock:
            self._cpu.attach_actors(pids)

    def set_arena(self, arena: str | os.PathLike[str] | int | Iterable[str | os.PathLike[str]]) -> None:
        """The arena's /dev/shm file(s), read at each sample, or its size in bytes."""
        with self._lock:
            self._cpu.set_arena(arena)

    # ---- sampling ------------------------------------------------------------------------------

    def sample_now(self) -> None:
        """Takes one round of process, arena and GPU readings (the thread does this periodically)."""
        labels = self._labels
        with self._lock:
            learner = self._cpu.sample_learner()
            actors = self._cpu.sample_actors()
            arena = self._cpu.sample_arena()
            gpus = self._gpu.sample() if self._gpu is not None else []
        if learner.cpu_ratio is not None:
            self._learner_cpu.labels(**labels).set(learner.cpu_ratio)
        for name, reading in actors.items():
            if reading.cpu_ratio is not None:
                self._actor_cpu.labels(**labels, actor=name).set(reading.cpu_ratio)
            self._actor_rss.labels(**labels, actor=name).set(reading.rss_bytes)
        for gone in self._actors_exported - set(actors):
            for gauge in (self._actor_cpu, self._actor_rss):
                try:
                    gauge.remove(*labels.values(), gone)
                except KeyError:
                    pass
        self._actors_exported = set(actors)
        if arena is not None:
            self._arena.labels(**labels).set(arena)
            self._arena_exported = True
        elif self._arena_exported:
            self._arena.remove(*labels.values())
            self._arena_exported = False
        for gpu in gpus:
            gpu_labels = {**labels, "gpu": gpu.gpu, "UUID": gpu.uuid}
            for key, gauge in self._gpu_gauges.items():
                value = getattr(gpu, key)
                if value is not None:
                    gauge.labels(**gpu_labels).set(value)

    def _sample_loop(self) -> None:
        warned = False
        while not self._stop.wait(self.sample_interval):
            try:
                self.sample_now()
            except Exception as exc:  # a failed reading must never stop training
                if not warned:
                    log.warning("metrics sampling failed (will keep trying): %s", exc)
                    warned = True

    # ---- lifecycle -----------------------------------------------------------------------------

    @property
    def url(self) -> str | None:
        """Where the metrics are served, or None when disabled."""
        if not self.enabled:
            return None
        host = "127.0.0.1" if self.addr in ("0.0.0.0", "") else self.addr
        return f"http://{host}:{self.port}/metrics"

    def close(self, timeout: float = 5.0) -> None:
        """Stops sampling and serving; waits at most ``timeout`` seconds for the sampler."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._close_gpu()

    def _close_gpu(self) -> None:
        if self._gpu is not None:
            self._gpu.close()
            self._gpu = None

    def __enter__(self) -> MetricsExporter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
