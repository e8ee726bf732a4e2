"""A sweep's progress for Prometheus, served by the `appliance sweep` coordinator.

Series (labels ``sweep``, ``env``, and ``run`` = ``sweep-NAME``, the sweep's
directory, with ``rank`` 0, so the dashboard's run and rank variables select a
sweep like a run; ``appliance_build_info`` too, which lists it among the runs):

- ``appliance_sweep_trials_total{state="complete|pruned|failed"}``: finished
  trials in the sweep's storage, all machines together (a counter: finished
  trials never un-finish);
- ``appliance_sweep_trials_in_flight{state="running|waiting"}``: trials in flight or
  queued (re-queued retries), which go up and down;
- ``appliance_sweep_trials_target``: the ``--trials`` this coordinator runs to;
- ``appliance_sweep_best_return``: the best complete trial's mean return,
  absent until one completes.

The coordinator reads the storage once a second and calls :meth:`update`; a
scrape only reads that snapshot, so it never touches the database.
"""

from __future__ import annotations

import platform
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Info, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .exporter import _check_port_number, _port_error, _version

FINISHED = {"complete": "complete", "pruned": "pruned", "fail": "failed"}  # Optuna's state name -> label
IN_FLIGHT = ("running", "waiting")


LABELS = ["sweep", "env", "run", "rank"]


class _Snapshot(Collector):
    def __init__(self, sweep: str, env: str) -> None:
        self.labels = [sweep, env, f"sweep-{sweep}", "0"]
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.target: int | None = None
        self.best: float | None = None

    def collect(self) -> Iterator[Any]:
        with self.lock:
            counts, target, best = dict(self.counts), self.target, self.best
        names = LABELS
        total = CounterMetricFamily("appliance_sweep_trials", "Finished trials of the sweep, by how they ended.",
                                    labels=[*names, "state"])
        for state, label in FINISHED.items():
            total.add_metric([*self.labels, label], float(counts.get(state, 0)))
        yield total
        flight = GaugeMetricFamily("appliance_sweep_trials_in_flight", "Trials of the sweep running or queued now.",
                                   labels=[*names, "state"])
        for state in IN_FLIGHT:
            flight.add_metric([*self.labels, state], float(counts.get(state, 0)))
        yield flight
        if target is not None:
            yield _gauge("appliance_sweep_trials_target", "Trials the sweep runs to (--trials).",
                         names, self.labels, float(target))
        if best is not None:
            yield _gauge("appliance_sweep_best_return", "Mean return of the sweep's best complete trial.",
                         names, self.labels, best)


def _gauge(name: str, doc: str, names: list[str], values: list[str], value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=names)
    family.add_metric(values, value)
    return family


class SweepMetrics:
    """Serves the sweep's series at ``http://addr:port/metrics``; ``port=0`` keeps them unserved."""

    def __init__(self, port: int, addr: str = "127.0.0.1", *, sweep: str, env: str) -> None:
        self.registry = CollectorRegistry()
        self._snapshot = _Snapshot(sweep, env)
        self.registry.register(self._snapshot)
        Info("appliance_build", "Versions this sweep coordinator runs.", ("rank", "env", "run"),
             registry=self.registry).labels(rank="0", env=env, run=f"sweep-{sweep}").info(
            {"version": _version("appliance"), "optuna": _version("optuna"), "python": platform.python_version()})
        self.port = port
        self._server = None
        if port:
            _check_port_number(port)
            try:
                self._server, _ = start_http_server(port, addr, registry=self.registry)
            except OSError as exc:
                raise _port_error(addr, port, exc) from exc

    def update(self, counts: Mapping[str, int], target: int, best: float | None) -> None:
        """Trials per Optuna state name (``complete``, ``pruned``, ``fail``, ``running``, ``waiting``)."""
        with self._snapshot.lock:
            self._snapshot.counts = dict(counts)
            self._snapshot.target = target
            self._snapshot.best = best

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> SweepMetrics:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
