"""Actor hosts as network namespaces on this machine, for `appliance bench remote` and tests/remote.

Each :class:`Namespace` is joined to this one by a veth pair (``10.R.N.1`` here,
``10.R.N.2`` there, R from this process's pid so concurrent runs never collide); its
processes reach the learner only across that link. Added latency comes from
:mod:`appliance.bench.relay` (a user-space forwarder on this side of the link), because
``tc netem`` needs the kernel's ``sch_netem``, which this VM lacks: :func:`netem_available`
says whether it is there. Needs root and iproute2 (:func:`unavailable` says why not).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

_REPO = Path(__file__).resolve().parents[2]


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20, check=check)


def unavailable() -> str | None:
    """Why namespaces cannot be made here (not root, no iproute2, no netns support), else None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "network namespaces need iproute2's ip command"
    probe = f"applprobe{os.getpid()}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode:
        return f"`ip netns add` failed: {made.stderr.strip() or made.returncode}"
    _ip("netns", "del", probe, check=False)
    return None


def netem_available() -> bool:
    """Whether ``tc qdisc ... netem`` works on this kernel (tried on a throwaway veth pair)."""
    if shutil.which("tc") is None or os.geteuid() != 0:
        return False
    a, b = f"aptq{os.getpid() % 100000}", f"aptr{os.getpid() % 100000}"
    if _ip("link", "add", a, "type", "veth", "peer", "name", b, check=False).returncode:
        return False
    try:
        done = subprocess.run(["tc", "qdisc", "add", "dev", a, "root", "netem", "delay", "1ms"],
                              capture_output=True, timeout=20)
        return done.returncode == 0
    finally:
        _ip("link", "del", a, check=False)


class Namespace:
    """A network namespace with one veth link to this one; :meth:`close` removes both."""

    def __init__(self, index: int) -> None:
        tag = os.getpid() % 100000
        self.name = f"appl{tag}-{index}"
        self.outer, self.inner = f"ap{tag}o{index}", f"ap{tag}i{index}"
        self.net = f"10.{100 + os.getpid() % 100}.{index}"
        self.here, self.there = f"{self.net}.1", f"{self.net}.2"
        self.procs: list[subprocess.Popen] = []
        _ip("netns", "add", self.name)
        try:
            _ip("netns", "exec", self.name, "ip", "link", "set", "lo", "up")
            self.link()
        except BaseException:
            self.close()
            raise

    def link(self) -> None:
        """Makes the veth link (again, after :meth:`cut`)."""
        _ip("link", "add", self.outer, "type", "veth", "peer", "name", self.inner)
        _ip("link", "set", self.inner, "netns", self.name)
        _ip("addr", "add", f"{self.here}/30", "dev", self.outer)
        _ip("link", "set", self.outer, "up")
        for args in (("addr", "add", f"{self.there}/30", "dev", self.inner), ("link", "set", self.inner, "up")):
            _ip("netns", "exec", self.name, "ip", *args)

    def spawn(self, args: list[str], log: Path | None = None, **kw: Any) -> subprocess.Popen:
        """Starts ``args`` inside the namespace (stdout and stderr to ``log``)."""
        out = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115 - the child owns it
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(_REPO), os.environ.get("PYTHONPATH", "")])}
        proc = subprocess.Popen(["ip", "netns", "exec", self.name, *args], stdout=out, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True, **kw)
        self.procs.append(proc)
        return proc

    def serve(self, connect: str, name: str, keys: str | None, client: str | None, cores: list[int],
              log: Path | None = None, extra: tuple[str, ...] = ()) -> subprocess.Popen:
        """`appliance actors serve` inside the namespace."""
        args = [sys.executable, "-m", "appliance", "actors", "serve", "--connect", connect, "--name", name,
                "--cores", ",".join(map(str, cores)), *extra]
        args += ["--keys", keys] + (["--client", client] if client else []) if keys else ["--insecure"]
        return self.spawn(args, log)

    def cut(self) -> None:
        """Removes the link: the namespace's processes lose the network, with no reset sent either way."""
        _ip("link", "del", self.outer, check=False)

    def close(self) -> None:
        """Stops what runs inside (SIGTERM, then SIGKILL after 15 s), removes the link and the namespace."""
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15.0  # a host stopping its actors on a loaded box took over 5 s once
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5.0)
        pids = _ip("netns", "pids", self.name, check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        self.cut()
        _ip("netns", "del", self.name, check=False)

    def __enter__(self) -> Namespace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Relay:
    """:mod:`appliance.bench.relay` as a process: ``listen`` -> ``target``, ``delay_ms`` each way."""

    def __init__(self, listen: str, target: str, delay_ms: float) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "appliance.bench.relay", f"{listen}:0", target,
                                      str(delay_ms)], stdout=subprocess.PIPE, text=True,
                                     env={**os.environ, "PYTHONPATH": str(_REPO)})
        line = readline(self.proc, 20.0)
        if not line.startswith("ready "):
            self.close()
            raise RuntimeError(f"the delay relay did not start (said {line!r})")
        self.address = f"{listen}:{int(line.split()[1])}"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5.0)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def readline(proc: subprocess.Popen, timeout: float) -> str:
    """One line of ``proc``'s stdout (a pipe), or "" if none came within ``timeout`` s."""
    import select

    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline().strip() if ready else ""
