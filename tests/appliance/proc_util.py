"""Finding the bench's spinner processes among this test process's children."""

from __future__ import annotations

import psutil


def spinners(recursive: bool = False) -> list[psutil.Process]:
    """Live children running busy_cores' spinner; zombies (whatever left them) and exited ones are not."""
    found = []
    for proc in psutil.Process().children(recursive=recursive):
        try:
            if "os.getppid()" in " ".join(proc.cmdline()):
                found.append(proc)
        except psutil.Error:  # a zombie has no command line to read, and a child may exit meanwhile
            continue
    return found
