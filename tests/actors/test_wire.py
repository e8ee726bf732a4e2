"""The wire protocol: envs/c/wire.h, the compiled extension and actors/wire.py agree, byte for byte."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

import envs
from actors import wire
from envs import _native

HEADER = Path(__file__).resolve().parents[2] / "envs" / "c" / "wire.h"


def header_defines() -> dict[str, object]:
    """The header's ``#define WIRE_*`` values: characters as bytes, sizes as ints, the stat names."""
    out: dict[str, object] = {}
    for name, value in re.findall(r"^#define WIRE_(\w+) +(.+?)(?: +/\*.*)?$", HEADER.read_text(), re.M):
        if re.fullmatch(r"'.'", value):
            out[name] = value[1].encode()
        elif name == "STATS":
            out[name] = tuple(re.findall(r'"(\w+)"', value))
        else:
            out[name] = value
    for name, value in list(out.items()):
        if isinstance(value, str):  # an integer expression of the other defines
            out[name] = eval(re.sub(r"WIRE_(\w+)", lambda m: str(out[m.group(1)]), value))  # noqa: S307
    return out


def test_the_header_the_extension_and_python_agree() -> None:
    h = header_defines()
    assert _native.wire() == {
        "step": h["STEP"], "step_size": h["STEP_SIZE"], "reset": h["RESET"], "reset_size": h["RESET_SIZE"],
        "quit": h["QUIT"], "quit_size": h["QUIT_SIZE"], "done": h["DONE"], "episodes": h["EPISODES"],
        "count_bytes": h["COUNT_BYTES"], "stats": h["STATS"], "episodes_size": h["EPISODES_SIZE"],
        "json": h["JSON"], "hello": h["HELLO"], "error": h["ERROR"],
    }, "the extension was built from another wire.h: rebuild it"
    assert wire.COMMAND_SIZE == {b"S": 3, b"R": 9, b"Q": 1}
    assert len(wire.step_command(65535)) == h["STEP_SIZE"] and len(wire.reset_command(-1)) == h["RESET_SIZE"]
    assert wire.NATIVE_SUMMARY.size == h["EPISODES_SIZE"] == 29
    assert wire.NATIVE_STATS == h["STATS"] == ("episode_return", "episode_length", "score")
    assert len({h[k] for k in ("STEP", "RESET", "QUIT")}) == 3
    assert len({h[k] for k in ("DONE", "EPISODES", "JSON")}) == 3


def test_answers_split_and_tally_as_they_were_written() -> None:
    native = {"episode_return": 2.5, "episode_length": 8.0, "score": 1.0}
    other = {"episode_return": 1.0, "level": 3.0}
    stream = (wire.answer([{}]) + wire.answer([{"episodes": 2, **native}])
              + wire.answer([{"episodes": 1, **other}, {"episodes": 3, **other}]) + wire.answer([{"episodes": 0}]))
    assert stream[:1] == wire.DONE and stream[1:2] == wire.EPISODES and stream[30:31] == wire.JSON
    tally = wire.Tally()
    for cut in range(len(stream) + 1):  # wherever the pipe splits it, the same answers come out
        first, rest = wire.read_answers(stream[:cut], tally)
        second, left = wire.read_answers(rest + stream[cut:], tally)
        assert (first + second, left) == (4, b""), cut
        stats = tally.take()
        assert stats["episodes"] == 6, (cut, stats)
        assert stats["episode_return"] == (2 * 2.5 + 4 * 1.0) / 6
        assert stats["level"] == 3.0 * 4 / 6 and stats["score"] == 1.0 * 2 / 6
    assert tally.take() == {"episodes": 0}


def test_the_c_step_loop_speaks_what_python_reads() -> None:
    parts = [envs.make("cartpole", num_envs=16, seed=s) for s in (1, 2)]
    twins = [envs.make("cartpole", num_envs=16, seed=s) for s in (1, 2)]
    go_r, go_w = os.pipe()
    done_r, done_w = os.pipe()
    os.set_blocking(go_r, False)
    ours, theirs = wire.Tally(), wire.Tally()
    try:
        loop = envs.serve_loop(parts)
        order = [int(j) for j in np.random.default_rng(0).integers(0, 2, 400)]
        os.write(go_w, b"".join(wire.step_command(j) for j in order) + wire.reset_command(5))
        assert loop(go_r, done_w, 1000) == wire.reset_command(5)  # the reset goes back to Python
        count, rest = wire.read_answers(os.read(done_r, 1 << 16), ours)
        python = []
        for j in order:
            twins[j].step()
            python.append(wire.answer([twins[j].episode_stats()]))
        assert (count, rest) == (len(order), b"")
        assert wire.read_answers(b"".join(python), theirs) == (len(order), b"")
        c_stats, py_stats = ours.take(), theirs.take()
        assert c_stats["episodes"] == py_stats["episodes"] > 0
        for key in wire.NATIVE_STATS:
            np.testing.assert_allclose(c_stats[key], py_stats[key])
    finally:
        for fd in (go_r, go_w, done_r, done_w):
            os.close(fd)
