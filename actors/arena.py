"""One shared-memory arena per pool, and the private runtime directory for its sockets.

The arena is a /dev/shm file mapped by the pool and by every actor. Buffers are laid
out one after another (64-byte aligned); the pool orders each buffer's rows group by
group, so every batch is one contiguous zero-copy view.

Names carry a recognizable prefix and the owner's pid
(``appliance-actors-<pid>-<random>``): a run that died without cleaning up is found
by the next start (:func:`sweep_stale`) and its leftovers removed once that pid is dead.
"""

from __future__ import annotations

import mmap
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

PREFIX = "appliance-actors-"
_OWNED = re.compile(re.escape(PREFIX) + r"(\d+)-")
_ALIGN = 64

Spec = Mapping[str, tuple[tuple[int, ...], np.dtype]]


SHM_DIR_ENV = "APPLIANCE_SHM_DIR"


def shm_dir() -> Path:
    """Where arenas live: $APPLIANCE_SHM_DIR if set, else /dev/shm (RAM-backed), else the temp dir.

    The variable lets a deployment put arenas on another RAM-backed mount (and
    `appliance doctor` checks the same directory).
    """
    chosen = os.environ.get(SHM_DIR_ENV)
    if chosen:
        return Path(chosen)
    shm = Path("/dev/shm")
    return shm if shm.is_dir() else Path(tempfile.gettempdir())


def runtime_base() -> Path:
    """Parent of the private socket directories: $XDG_RUNTIME_DIR when usable, else the temp dir."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg) and os.access(xdg, os.W_OK):
        return Path(xdg)
    return Path(tempfile.gettempdir())


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purpose: it will never clean up.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def sweep_stale() -> list[Path]:
    """Removes arenas and socket directories whose owner pid is dead; returns what it removed."""
    removed = []
    for base in {shm_dir(), runtime_base()}:
        try:
            entries = list(base.iterdir())
        except OSError:
            continue
        for entry in entries:
            match = _OWNED.match(entry.name)
            if not match or pid_alive(int(match.group(1))):
                continue
            try:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
                removed.append(entry)
            except OSError:
                pass  # another user's, or already gone
    return removed


def private_dir() -> Path:
    """A fresh directory only this user can enter (mkdtemp makes it 0700), for the ipc sockets."""
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=runtime_base()))


def layout(spec: Spec) -> tuple[dict[str, int], int]:
    """Byte offset of every buffer and the arena's total size."""
    offsets, size = {}, 0
    for name, (shape, dtype) in spec.items():
        size = -(-size // _ALIGN) * _ALIGN
        offsets[name] = size
        size += int(np.prod(shape)) * np.dtype(dtype).itemsize
    return offsets, max(size, 1)


class Arena:
    """Named numpy views over one shared mapping; the creator unlinks it on close."""

    def __init__(self, path: Path, spec: Spec, create: bool) -> None:
        self.path = path
        self.spec = {name: (tuple(shape), np.dtype(dtype)) for name, (shape, dtype) in spec.items()}
        self.offsets, self.size = layout(self.spec)
        self._owner = create
        if create:
            free = _free_bytes(path.parent)
            if free is not None and free < self.size:
                raise OSError(
                    f"not enough shared memory in {path.parent}: the arena needs {self.size} bytes, "
                    f"{free} are free (enlarge it, e.g. docker run --shm-size)"
                )
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        else:
            fd = os.open(path, os.O_RDWR)
        try:
            if create:
                os.ftruncate(fd, self.size)
            self._map = mmap.mmap(fd, self.size)
        except BaseException:
            if create:
                path.unlink(missing_ok=True)
            raise
        finally:
            os.close(fd)
        self.buffers = {
            name: np.ndarray(shape, dtype, buffer=self._map, offset=self.offsets[name])
            for name, (shape, dtype) in self.spec.items()
        }

    @classmethod
    def create(cls, spec: Spec) -> Arena:
        path = shm_dir() / f"{PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        return cls(path, spec, create=True)

    @classmethod
    def attach(cls, path: Path, spec: Spec) -> Arena:
        return cls(path, spec, create=False)

    def close(self) -> None:
        """Unlinks the file (creator only); the mapping goes when the last view does."""
        if self._owner:
            self.path.unlink(missing_ok=True)
            self._owner = False
        self.buffers = {}
        try:
            self._map.close()
        except BufferError:
            pass  # numpy views still exported: the pages are freed with them


def _free_bytes(directory: Path) -> int | None:
    try:
        st = os.statvfs(directory)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize
