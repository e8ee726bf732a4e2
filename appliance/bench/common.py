"""What every benchmark shares: core pinning, repeated timed runs, medians, JSON, a table."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table


@contextlib.contextmanager
def pinned(cores: set[int]) -> Iterator[None]:
    """Runs the block with this process pinned to ``cores``; restores the old mask after."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cores)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def timed_rate(step: Callable[[], int], seconds: float) -> float:
    """Calls ``step`` (which returns units of work done) for ``seconds``; returns units/s."""
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        done += step()
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - start)


def timed_rates(step: Callable[[], int], seconds: float, runs: int,
                tick: Callable[[], Any] | None = None) -> list[float]:
    """``runs`` times :func:`timed_rate`, calling ``tick`` (a progress bar's advance) after each."""
    rates = []
    for _ in range(runs):
        rates.append(timed_rate(step, seconds))
        if tick:
            tick()
    return rates


def async_vector_rates(make_env: Callable[[], Any], num_envs: int, seconds: float, runs: int,
                       tick: Callable[[], Any]) -> list[float]:
    """Gymnasium ``AsyncVectorEnv(shared_memory=True)`` stepping discrete action 0: the peer's rate per run."""
    import warnings

    import gymnasium
    import numpy as np

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vec = gymnasium.vector.AsyncVectorEnv([make_env] * num_envs, shared_memory=True)
    actions = np.zeros(num_envs, np.int64)
    vec.reset(seed=0)

    def one() -> int:
        vec.step(actions)
        return num_envs

    try:
        return timed_rates(one, seconds, runs, tick)
    finally:
        vec.close()


def progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} runs"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


def record(bench: str, name: str, runs: list[float], **extra: Any) -> dict[str, Any]:
    return {
        "bench": bench,
        "name": name,
        **extra,
        "steps_per_second": statistics.median(runs),
        "runs": runs,
    }


# One spinning process: it stops when its parent goes (checked every ~1 ms) or after an hour.
_SPIN = """
import os, time
parent, end = os.getppid(), time.monotonic() + 3600
while os.getppid() == parent and time.monotonic() < end:
    for _ in range(20000):
        pass
"""


_load: str | None = None  # while busy_cores() runs: the label write_json stamps as "load"


@contextlib.contextmanager
def busy_cores(busy: int, console: Console | None = None) -> Iterator[None]:
    """Runs the block with ``busy`` other processes spinning, unpinned: another job on a shared box.

    Records written meanwhile (:func:`write_json`) say ``load: "N core(s) busy"``. A
    ValueError unless at least one allowed core is left free of them.
    """
    global _load
    cores = len(os.sched_getaffinity(0))
    if busy and busy >= cores:
        raise ValueError(f"--busy-cores {busy} leaves none of this machine's {cores} allowed cores to the bench")
    procs = [subprocess.Popen([sys.executable, "-c", _SPIN]) for _ in range(busy)]
    _load = f"{busy} core{'s' if busy != 1 else ''} busy" if busy else None
    if busy and console is not None:
        console.print(f"{_load}: {busy} spinning process(es) run beside every measurement")
    try:
        yield
    finally:
        _load = None
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait(10)


@functools.lru_cache(maxsize=1)
def host_cpu() -> str:
    """The CPU the figures come from: its model name and, on x86, family and model numbers.

    Machines of one kind are not one machine: two hosts sold as the same 2 cores have
    differed by 1.7x on the same build (moba, one core), so every record says which it ran on.
    """
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor's block says it
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or platform.machine() or "unknown"
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return name


def write_json(path: str | None, records: list[dict[str, Any]]) -> None:
    """Writes the records atomically (temp file + rename), each stamped with :func:`host_cpu`
    and, inside :func:`busy_cores`, with the load."""
    if not path:
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    stamp = {"cpu": host_cpu(), **({"load": _load} if _load else {})}
    stamped = [{**r, **{k: v for k, v in stamp.items() if k not in r}} for r in records]
    tmp.write_text(json.dumps(stamped, indent=2) + "\n")
    os.replace(tmp, target)


def table(title: str, columns: list[str], rows: list[list[str]]) -> Table:
    out = Table(title=title)
    for i, column in enumerate(columns):
        out.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        out.add_row(*row)
    return out


def human(rate: float) -> str:
    if rate >= 1e6:
        return f"{rate / 1e6:.2f}M"
    if rate >= 1e3:
        return f"{rate / 1e3:.1f}k"
    return f"{rate:.0f}"
