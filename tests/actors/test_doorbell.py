"""The doorbell (actors/doorbell.py): one FIFO pair per actor and generation, the pool's ends.

The actor's ends are opened here as actors/worker.py opens them, in this process.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors import wire
from actors.doorbell import Doorbell


@pytest.fixture
def bell(tmp_path: Path) -> Iterator[Doorbell]:
    bell = Doorbell(tmp_path, 3, 0)
    yield bell
    bell.close()


def actor_ends(bell: Doorbell) -> tuple[int, int]:
    """(go read end, done write end), as the worker opens them."""
    return (os.open(bell.go_path, os.O_RDONLY | os.O_NONBLOCK),
            os.open(bell.done_path, os.O_WRONLY | os.O_NONBLOCK))


def test_commands_reach_the_actor_in_order(bell: Doorbell) -> None:
    go, done = actor_ends(bell)
    try:
        bell.ring(wire.step_command(1))
        bell.ring(wire.reset_command(7))
        assert os.read(go, 100) == b"S\x01\x00" + b"R" + (7).to_bytes(8, "little")
    finally:
        os.close(go)
        os.close(done)


def test_answers_are_counted_whole_and_a_partial_one_waits_for_its_rest(bell: Doorbell) -> None:
    go, done = actor_ends(bell)
    tally = wire.Tally()
    try:
        assert bell.answers(tally) == 0  # nothing yet: no blocking
        episodes = wire.answer([{"episodes": 2, "episode_return": 3.0, "episode_length": 10.0, "score": 1.0}])
        os.write(done, wire.DONE + wire.DONE + episodes[:7])
        assert bell.answers(tally) == 2
        assert tally.take() == {"episodes": 0}
        os.write(done, episodes[7:])
        assert bell.answers(tally) == 1
        assert tally.take() == {"episodes": 2, "episode_return": 3.0, "episode_length": 10.0, "score": 1.0}
        os.write(done, b"?")
        with pytest.raises(ValueError, match="unknown done message"):
            bell.answers(tally)
    finally:
        os.close(go)
        os.close(done)


def test_a_full_go_fifo_raises_instead_of_blocking(bell: Doorbell) -> None:
    """An actor that stopped reading: the pool must find out, not hang."""
    with pytest.raises(BlockingIOError):
        for _ in range(1 << 20):
            bell.ring(wire.step_command(0))


def test_a_new_generation_replaces_only_that_actors_fifos(tmp_path: Path) -> None:
    first, other = Doorbell(tmp_path, 3, 0), Doorbell(tmp_path, 4, 0)
    second = Doorbell(tmp_path, 3, 1)
    try:
        assert not first.go_path.exists() and not first.done_path.exists()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["done-3-1", "done-4-0", "go-3-1", "go-4-0"]
        for path in (second.go_path, second.done_path):
            mode = path.stat().st_mode
            assert stat.S_ISFIFO(mode) and stat.S_IMODE(mode) == 0o600
    finally:
        for bell in (first, other, second):
            bell.close()


def test_close_removes_the_fifos_and_is_safe_twice(tmp_path: Path) -> None:
    bell = Doorbell(tmp_path, 0, 5)
    fds = (bell.go_fd, bell.done_fd)
    bell.close()
    bell.close()
    assert list(tmp_path.iterdir()) == []
    for fd in fds:
        with pytest.raises(OSError):
            os.fstat(fd)
