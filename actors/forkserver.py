"""The actors' fork server: a clean interpreter that forks actor processes on request.

Why not ``multiprocessing``'s: every child it starts (``spawn`` and ``forkserver``
alike) first re-imports the caller's ``__main__``, so a script without a main guard runs
itself again inside each actor, and ``python -``, ``python -c`` or a notebook cannot be
re-imported at all. This server never looks at the caller's main module. It is a fresh
``python`` started once per caller process, with the caller's ``sys.path``, which imports
``numpy``, ``zmq``, ``envs`` and :mod:`actors.worker` once and then forks a child per
request, so an actor (re)starts in milliseconds. It stays single-threaded (BLAS pools
limited to one thread), so forking it is safe, and it exits when the caller does (end of
file on its socket); its children die with it (PDEATHSIG, set by the worker).

Protocol, over one Unix socket pair: the caller sends ``<length:4>`` + a pickle of
``(sys.path, module, function, argument)``, with plain pickle, so the server unpickles nothing of
the user's (the child does, inside the function). The server forks; the child takes the caller's
current ``sys.path``, calls ``module.function(argument)`` and exits 0 (1 if it raised).
The server answers ``P<pid:4>`` with the child's pidfd attached (opened before any reaping, so it can never name a
recycled pid), and ``X<pid:4><exitcode:4>`` once the child exits (exit codes as
``multiprocessing`` gives them: negative for a signal).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

_HEADER = struct.Struct("<I")
_STARTED = struct.Struct("<ci")  # b"P", pid (the pidfd rides along)
_EXITED = struct.Struct("<cii")  # b"X", pid, exit code
PRELOAD = ("numpy", "zmq", "cloudpickle", "envs", "actors.worker")
_SINGLE_THREAD = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_BOOT = (
    "import sys, json; sys.path[:] = json.loads(sys.argv[1]); "
    "from actors.forkserver import serve; serve(int(sys.argv[2]))"
)


class ForkServerError(RuntimeError):
    """The fork server could not be started or stopped answering."""


class Child:
    """An actor process started by the fork server: ``pid``, ``pidfd`` (the caller owns it),
    ``exitcode`` (None while running), ``join``, ``kill``."""

    def __init__(self, server: ForkServer, pid: int, pidfd: int) -> None:
        self._server, self.pid, self.pidfd = server, pid, pidfd

    @property
    def exitcode(self) -> int | None:
        self._server.poll(0.0)
        return self._server.exitcodes.get(self.pid)

    def join(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (3600.0 if timeout is None else timeout)
        while self.pid not in self._server.exitcodes:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._server.poll(remaining):
                return

    def kill(self) -> None:
        if self.exitcode is None:
            try:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            except OSError:
                pass  # already gone (or the pidfd was closed)


class ForkServer:
    """The caller's handle on its fork server process (one per caller process)."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = dict(os.environ)
        for key in _SINGLE_THREAD:
            env.setdefault(key, "1")
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _BOOT, json.dumps(sys.path), str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=env,
            )
        finally:
            theirs.close()
        self._sock = ours
        self._lock = threading.Lock()
        self._started: dict[int, int] = {}  # pid -> pidfd, answered but not yet taken
        self._order: list[int] = []  # pids in the order they were started
        self._children: set[int] = set()
        self.exitcodes: dict[int, int] = {}
        self._buffer = b""
        self._fds: list[int] = []

    def start(self, module: str, function: str, argument: Any, timeout: float = 30.0) -> Child:
        """Forks a child that calls ``module.function(argument)``; returns once it runs."""
        # The caller's sys.path now (a notebook may have added to it since the server started).
        payload = pickle.dumps((list(sys.path), module, function, argument), protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            try:
                self._sock.sendall(_HEADER.pack(len(payload)) + payload)
            except OSError as exc:
                raise ForkServerError(f"the actors' fork server is gone ({exc})") from None
            deadline = time.monotonic() + timeout
            while not self._order:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ForkServerError(f"the actors' fork server did not start a process within {timeout:g} s")
                self._poll_locked(min(remaining, 0.5))
                if not self._order and self.process.poll() is not None:
                    raise ForkServerError(f"the actors' fork server exited with code {self.process.returncode}")
            pid = self._order.pop(0)
            return Child(self, pid, self._started.pop(pid))

    def poll(self, timeout: float) -> bool:
        """Reads what the server sent within ``timeout``; False if nothing came."""
        with self._lock:
            return self._poll_locked(timeout)

    def _poll_locked(self, timeout: float) -> bool:
        ready, _, _ = select.select([self._sock], [], [], max(0.0, timeout))
        if not ready:
            return False
        try:
            data, fds, _, _ = socket.recv_fds(self._sock, 65536, 16)
        except BlockingIOError:
            return False
        if not data:  # the server died: its children died with it
            for pid in self._children:
                self.exitcodes.setdefault(pid, -signal.SIGKILL)
            for fd in fds:
                os.close(fd)
            return False
        self._fds.extend(fds)
        self._buffer += data
        buf = self._buffer
        while buf:
            if buf[:1] == b"P" and len(buf) >= _STARTED.size:
                _, pid = _STARTED.unpack_from(buf)
                buf = buf[_STARTED.size:]
                self._started[pid] = self._fds.pop(0)
                self._order.append(pid)
                self._children.add(pid)
            elif buf[:1] == b"X" and len(buf) >= _EXITED.size:
                _, pid, code = _EXITED.unpack_from(buf)
                buf = buf[_EXITED.size:]
                self.exitcodes[pid] = code
            elif buf[:1] in (b"P", b"X"):
                break  # the rest is still on its way
            else:
                raise ForkServerError(f"the actors' fork server sent {buf[:8]!r}")
        self._buffer = buf
        return True

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        self._sock.close()
        try:
            self.process.wait(5.0)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def main_module_hidden() -> Iterator[None]:
    """For code that must start processes with ``multiprocessing`` (torch's rank spawn, a peer's
    vector): while they start, the caller's ``__main__`` shows neither ``__file__`` nor ``__spec__``,
    as under ``python -c``, so ``spawn`` and ``forkserver`` children do not run it again (a script
    without a main guard would start its own work over in each; ``python - < script`` cannot be
    re-run at all). Their targets and arguments must then come from importable modules."""
    main = sys.modules.get("__main__")
    hidden: dict[str, Any] = {}
    if main is not None:
        hidden = {key: main.__dict__[key] for key in ("__file__", "__spec__") if key in main.__dict__}
        main.__dict__.pop("__file__", None)
        main.__spec__ = None
    try:
        yield
    finally:
        if main is not None:
            if "__spec__" not in hidden:
                del main.__spec__
            main.__dict__.update(hidden)


_SERVER: ForkServer | None = None
_SERVER_PID = 0
_SERVER_LOCK = threading.Lock()


def server() -> ForkServer:
    """This process's fork server, started on first use (and again after a fork or its death)."""
    global _SERVER, _SERVER_PID
    with _SERVER_LOCK:
        if _SERVER is None or _SERVER_PID != os.getpid() or not _SERVER.alive():
            _SERVER, _SERVER_PID = ForkServer(), os.getpid()
        return _SERVER


def start(module: str, function: str, argument: Any, timeout: float = 30.0) -> Child:
    """Starts ``module.function(argument)`` in a process forked from the fork server."""
    return server().start(module, function, argument, timeout)


# ---- the server side -------------------------------------------------------------


def serve(fd: int) -> None:
    """The fork server's main loop (runs in its own interpreter)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the caller's to handle
    for name in PRELOAD:
        importlib.import_module(name)
    sock = socket.socket(fileno=fd)
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    buf = b""
    watched: list[socket.socket | int] = [sock, wake_r]
    while True:
        try:
            ready, _, _ = select.select(watched, [], [])
        except InterruptedError:
            continue
        if wake_r in ready:
            while True:
                try:
                    if not os.read(wake_r, 4096):
                        break
                except BlockingIOError:
                    break
            _reap(sock)
        if sock in ready:
            data = sock.recv(1 << 20)
            if not data:
                os._exit(0)  # the caller is gone
            buf += data
            while len(buf) >= _HEADER.size and len(buf) >= _HEADER.size + _HEADER.unpack_from(buf)[0]:
                end = _HEADER.size + _HEADER.unpack_from(buf)[0]
                _fork(sock, buf[_HEADER.size:end], (fd, wake_r, wake_w))
                buf = buf[end:]


def _fork(sock: socket.socket, payload: bytes, close: tuple[int, ...]) -> None:
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for fd in close:
                os.close(fd)
            sys.path[:], module, function, argument = pickle.loads(payload)
            getattr(importlib.import_module(module), function)(argument)
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    pidfd = os.pidfd_open(pid)
    try:
        socket.send_fds(sock, [_STARTED.pack(b"P", pid)], [pidfd])
    finally:
        os.close(pidfd)


def _reap(sock: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        sock.sendall(_EXITED.pack(b"X", pid, os.waitstatus_to_exitcode(status)))
