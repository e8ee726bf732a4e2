"""`appliance doctor`: preflight checks, also run before `appliance train`.

Each check returns a :class:`Check`; a ``fail`` blocks training with the exact fix.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Any

FAIL, WARN, OK = "fail", "warn", "ok"
DOCKER_DEFAULT_SHM = 64 * 2**20


@dataclass
class Check:
    name: str
    status: str
    detail: str


def gpus() -> list[Check]:
    """NVIDIA GPUs seen by NVML, and whether torch was built for CUDA and can use them."""
    out = []
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            count = pynvml.nvmlDeviceGetCount()
            names = [pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i)) for i in range(count)]
            driver = pynvml.nvmlSystemGetDriverVersion()
        finally:
            pynvml.nvmlShutdown()
        out.append(Check("GPUs (NVML)", OK, f"{count} GPU(s), driver {driver}: {', '.join(map(str, names))}"))
        nvml_count = count
    except Exception as exc:  # pynvml raises its own NVMLError subclasses or ImportError
        out.append(Check("GPUs (NVML)", OK, f"none: training runs on the CPU ({type(exc).__name__}: {exc})"))
        nvml_count = 0
    try:
        import torch

        cuda = torch.version.cuda
        usable = torch.cuda.device_count() if cuda else 0
        if nvml_count and not cuda:
            out.append(Check("torch CUDA build", FAIL,
                             f"torch {torch.__version__} is a CPU build but {nvml_count} GPU(s) are present; "
                             "install a CUDA build of torch"))
        elif nvml_count and usable == 0:
            out.append(Check("torch CUDA build", FAIL,
                             f"torch {torch.__version__} (CUDA {cuda}) sees no GPU; check the driver and "
                             "CUDA_VISIBLE_DEVICES"))
        else:
            detail = f"torch {torch.__version__}, CUDA {cuda or 'none'}, {usable} usable GPU(s)"
            out.append(Check("torch CUDA build", OK, detail))
    except ImportError as exc:
        out.append(Check("torch CUDA build", FAIL, f"torch is not importable: {exc}"))
    return out


def cores(needed: int = 1) -> Check:
    allowed = sorted(os.sched_getaffinity(0))
    detail = f"{len(allowed)} usable of {os.cpu_count()} (affinity {_ranges(allowed)})"
    if len(allowed) < needed:
        return Check("CPU cores", WARN, detail + f"; the run asks for {needed}, actors will share cores")
    return Check("CPU cores", OK, detail)


def shm(required_bytes: int, path: str | None = None) -> Check:
    """Free space where the actor pool puts its arena (``actors.arena.shm_dir()``), against the run's need."""
    from actors.arena import shm_dir

    path = str(path or shm_dir())
    try:
        st = os.statvfs(path)
    except OSError as exc:
        return Check("/dev/shm", FAIL, f"cannot read {path}: {exc.strerror}")
    free = st.f_bavail * st.f_frsize
    total = st.f_blocks * st.f_frsize
    detail = f"{path} has {_bytes(free)} free of {_bytes(total)}; this run needs {_bytes(required_bytes)}"
    if free < required_bytes:
        fix = (f"restart the container with --shm-size={shm_size(required_bytes)} (or larger) or with --ipc=host, "
               "or point APPLIANCE_SHM_DIR at a larger RAM-backed directory")
        if total <= DOCKER_DEFAULT_SHM:
            fix = f"this looks like Docker's 64 MB default: {fix}"
        return Check("/dev/shm", FAIL, f"{detail}; {fix}")
    return Check("/dev/shm", OK, detail)


def shm_size(required_bytes: int) -> str:
    """A Docker ``--shm-size`` value above ``required_bytes``: whole GiB, or MiB under one GiB."""
    mib = -(-int(required_bytes * 1.1) // 2**20)  # 10% above the need, rounded up
    return f"{mib}m" if mib < 1024 else f"{-(-mib // 1024)}g"


def port(addr: str, number: int) -> Check:
    """The exporter's own bind test (``monitoring.exporter.check_port_free``), as a check."""
    from monitoring.exporter import check_port_free

    name = f"metrics port {addr}:{number}"
    try:
        check_port_free(addr, number)
    except (OSError, ValueError) as exc:
        return Check(name, FAIL, str(exc))
    return Check(name, OK, "free")


def socket_dir(path: str | None = None) -> Check:
    """The actor pool's private ZeroMQ socket directory (under ``actors.arena.runtime_base()``) must be creatable."""
    from actors.arena import runtime_base

    base = str(path or runtime_base())
    try:
        probe = tempfile.mkdtemp(prefix="appliance-doctor-", dir=base)
        os.rmdir(probe)
    except OSError as exc:
        return Check("socket directory", FAIL, f"cannot create a private directory in {base}: {exc.strerror}")
    return Check("socket directory", OK, f"{base} is writable")


def arena_bytes(env: str, num_envs: int, params: dict[str, Any] | None = None) -> int:
    """Shared-memory bytes of one rank's arena for this env layout."""
    import numpy as np

    import envs

    spec = envs.buffer_spec(env, num_envs, **(params or {}))
    return sum(int(np.prod(shape)) * dtype.itemsize for shape, dtype in spec.values())


def run(
    *,
    env: str,
    num_envs: int,
    params: dict[str, Any] | None = None,
    ranks: int = 1,
    actors_per_rank: int = 1,
    metrics_addr: str = "127.0.0.1",
    metrics_port: int = 9100,
    shm_path: str | None = None,
    sockets: str | None = None,
    arena: bool = True,
) -> list[Check]:
    """Every preflight check for a run of ``ranks`` local ranks of ``env``.

    ``arena=False`` for an in-process pool, which has no arena and no sockets.
    ``shm_path``/``sockets`` default to where the actor pool really puts them.
    """
    checks = gpus()
    checks.append(cores(ranks * (actors_per_rank + 1)))
    if arena:
        # 25% headroom: the pool's control structures and the allocator's rounding.
        need = int(arena_bytes(env, num_envs, params) * ranks * 1.25) + 2**20
        checks.append(shm(need, shm_path))
    if metrics_port:
        checks.extend(port(metrics_addr, metrics_port + r) for r in range(ranks))
    if arena:
        checks.append(socket_dir(sockets))
    return checks



def blocking(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.status == FAIL]


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _ranges(cpus: list[int]) -> str:
    spans: list[str] = []
    start: int | None = None
    prev: int | None = None
    for c in cpus:
        if start is None or prev is None:  # set together
            start = prev = c
        elif c == prev + 1:
            prev = c
        else:
            spans.append(f"{start}-{prev}" if start != prev else str(start))
            start = prev = c
    if start is not None:
        spans.append(f"{start}-{prev}" if start != prev else str(start))
    return ",".join(spans)
