"""Helpers of the remote-actor tests (each host runs in its own network namespace).

Skipped, with the reason, where namespaces cannot be made (not root, no iproute2).
Added latency comes from the user-space delay relay (appliance/bench/relay.py): this
kernel has no ``sch_netem`` for ``tc netem``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from appliance.bench.netns import unavailable

WHY = unavailable()
needs_netns = pytest.mark.skipif(WHY is not None, reason=f"remote-actor tests need network namespaces: {WHY}")


def step_until(pool, done: Callable[[], bool], timeout: float, what: str, on_batch=None) -> int:
    """Drives ``pool`` (random actions) until ``done()``; fails after ``timeout`` s. Returns batches served."""
    rng = np.random.default_rng(0)
    n = 0
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        batch = pool.recv()
        if on_batch is not None:
            on_batch(batch)
        pool.send(rng.integers(0, pool.single_action_space.n, size=len(batch[5]), dtype=np.int32))
        n += 1
    return n


def shm_of(pid: int) -> list[Path]:
    """Arenas a process owns (their names carry the owner's pid)."""
    from actors.arena import PREFIX, shm_dir

    return sorted(shm_dir().glob(f"{PREFIX}{pid}-*"))


def wait_for(check: Callable[[], bool], timeout: float, what: str, step: float = 0.05) -> float:
    """Polls ``check`` until true; returns the seconds it took, fails after ``timeout``."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(step)
    return time.monotonic() - start
