"""The actor's C step loop (``envs.serve_loop``) speaks the worker's doorbell protocol exactly."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import numpy as np
import pytest

import envs
from actors.worker import NATIVE_SUMMARY, _summary


@pytest.fixture
def fifo() -> Iterator[tuple[int, int, int, int]]:
    """(go read end, non-blocking; go write end; done read end; done write end)."""
    go_r, go_w = os.pipe()
    done_r, done_w = os.pipe()
    os.set_blocking(go_r, False)
    yield go_r, go_w, done_r, done_w
    for fd in (go_r, go_w, done_r, done_w):
        try:
            os.close(fd)
        except OSError:
            pass


def test_steps_each_part_and_answers_as_the_python_path_does(fifo: tuple[int, int, int, int]) -> None:
    go_r, go_w, done_r, done_w = fifo
    parts = [envs.make("cartpole", num_envs=8, seed=s) for s in (1, 2)]
    twins = [envs.make("cartpole", num_envs=8, seed=s) for s in (1, 2)]
    loop = envs.serve_loop(parts)
    rng = np.random.default_rng(0)
    kinds = set()
    for _ in range(80):
        j = int(rng.integers(0, 2))
        actions = rng.integers(0, 2, 8).astype(np.int32)
        parts[j].actions[...] = actions
        twins[j].actions[...] = actions
        os.write(go_w, b"S" + j.to_bytes(2, "little") + b"Q")
        assert loop(go_r, done_w, 1000) == b"Q"  # the step done, the quit handed back unread
        twins[j].step()
        want, got = _summary([twins[j].episode_stats()]), os.read(done_r, 100)
        kinds.add(got[:1])
        assert got[:1] == want[:1]
        if got[:1] == b"e":
            assert len(got) == NATIVE_SUMMARY.size
            assert NATIVE_SUMMARY.unpack(got)[:2] == NATIVE_SUMMARY.unpack(want)[:2]
            np.testing.assert_allclose(NATIVE_SUMMARY.unpack(got)[2:], NATIVE_SUMMARY.unpack(want)[2:])
        else:
            assert got == b"D"
        for name in ("observations", "rewards", "terminals", "truncations", "final_observations"):
            np.testing.assert_array_equal(getattr(parts[j], name), getattr(twins[j], name))
    assert kinds == {b"D", b"e"}  # both answers were exercised


def _answers(twins: list[envs.NativeEnv], order: list[int]) -> bytes:
    """The done messages the Python path sends for ``order``, stepping the twins."""
    out = []
    for j in order:
        twins[j].step()
        out.append(_summary([twins[j].episode_stats()]))
    return b"".join(out)


@pytest.mark.parametrize("commands", [3, 5000])  # 5000: 15 KB queued, more than the loop reads at once
def test_queued_commands_are_answered_in_order(fifo: tuple[int, int, int, int], commands: int) -> None:
    go_r, go_w, done_r, done_w = fifo
    parts = [envs.make("cartpole", num_envs=4, seed=s) for s in (3, 4)]
    twins = [envs.make("cartpole", num_envs=4, seed=s) for s in (3, 4)]
    for env in parts + twins:
        env.actions[...] = [0, 1, 1, 0]
    order = [int(j) for j in np.random.default_rng(commands).integers(0, 2, commands)]
    os.write(go_w, b"".join(b"S" + j.to_bytes(2, "little") for j in order))  # fits in the pipe
    os.close(go_w)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.extend(iter(lambda: os.read(done_r, 1 << 16), b"")))
    reader.start()  # the answers outgrow the done pipe: drain it while the loop runs
    try:
        assert envs.serve_loop(parts)(go_r, done_w, 1000) == b""  # end of file once the queue is empty
    finally:
        os.close(done_w)
        reader.join(10)
    assert b"".join(got) == _answers(twins, order)
    for part, twin in zip(parts, twins, strict=True):
        np.testing.assert_array_equal(part.observations, twin.observations)


def test_hands_back_what_it_does_not_handle(fifo: tuple[int, int, int, int]) -> None:
    go_r, go_w, done_r, done_w = fifo
    part = envs.make("cartpole", num_envs=2, seed=0)
    loop = envs.serve_loop([part])
    assert loop(go_r, done_w, 20) is None  # quiet: back to Python to check on its parent
    os.write(go_w, b"S\x05\x00")
    assert loop(go_r, done_w, 20) == b"S\x05\x00"  # no part 5: Python raises about it
    reset = b"R" + (7).to_bytes(8, "little")
    os.write(go_w, reset + b"S\x00\x00")
    assert loop(go_r, done_w, 20) == reset + b"S\x00\x00"
    os.write(go_w, b"S\x00")  # half a command, then the rest
    assert loop(go_r, done_w, 20) == b"S\x00"


def test_only_plain_native_envs_run_in_c() -> None:
    class Logged(envs.NativeEnv):
        def step(self, actions: np.ndarray | None = None) -> None:
            super().step(actions)

    assert envs.serve_loop([envs.make("cartpole", num_envs=2)]) is not None
    assert envs.serve_loop([Logged("cartpole", num_envs=2)]) is None  # its Python step must run
    with pytest.raises(TypeError, match="not an open native env"):
        closed = envs.make("cartpole", num_envs=2)
        loop = envs.serve_loop([closed])
        closed.close()
        loop(0, 1, 0)
