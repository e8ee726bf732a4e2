"""The actor wire protocol, as ``envs/c/wire.h`` defines it; that header's comment describes it.

The header is the one definition: the C step loop compiles it, and this module takes its
constants from the compiled extension (:func:`envs.native.wire_protocol`), so the two cannot drift
apart. Here they are as bytes, with the commands the pool writes, the answer an actor
writes and the reader that splits the answers the pool reads.
"""

from __future__ import annotations

import json
import struct

from envs.native import wire_protocol

_WIRE = wire_protocol()
_MASK64 = (1 << 64) - 1

STEP: bytes = _WIRE["step"]
RESET: bytes = _WIRE["reset"]
QUIT: bytes = _WIRE["quit"]
COMMAND_SIZE: dict[bytes, int] = {STEP: _WIRE["step_size"], RESET: _WIRE["reset_size"], QUIT: _WIRE["quit_size"]}
DONE: bytes = _WIRE["done"]
EPISODES: bytes = _WIRE["episodes"]
JSON: bytes = _WIRE["json"]
HELLO: bytes = _WIRE["hello"]  # over ZeroMQ
ERROR: bytes = _WIRE["error"]  # over ZeroMQ, + traceback
NATIVE_STATS: tuple[str, ...] = _WIRE["stats"]  # the sums in an EPISODES answer, in order
_COUNT = _WIRE["count_bytes"]
NATIVE_SUMMARY = struct.Struct(f"<c{ {4: 'I', 8: 'Q'}[_COUNT] }{len(NATIVE_STATS)}d")  # EPISODES, count, sums
if NATIVE_SUMMARY.size != _WIRE["episodes_size"] or len(NATIVE_STATS) != 3:  # read_answers takes three sums
    raise ImportError(f"envs/c/wire.h's episode answer ({_WIRE['episodes_size']} bytes, sums of {NATIVE_STATS}) "
                      "is not the one actors/wire.py reads: update both")
_PART_BYTES = COMMAND_SIZE[STEP] - 1
MAX_PARTS = (1 << (8 * _PART_BYTES)) - 1  # a step command names its part in _PART_BYTES bytes
_SEED_BYTES = COMMAND_SIZE[RESET] - 1


def step_command(part: int) -> bytes:
    """Step part ``part`` with the actions already in the arena."""
    return STEP + part.to_bytes(_PART_BYTES, "little")


def reset_command(seed: int) -> bytes:
    """Reset every part (part ``j`` from ``part_seed(seed, j)``)."""
    return RESET + (seed & _MASK64).to_bytes(_SEED_BYTES, "little")


def answer(stats: list[dict[str, float]]) -> bytes:
    """The done answer for the parts just stepped or reset, from their ``episode_stats()``."""
    count: float = 0
    sums: dict[str, float] = {}
    for summary in stats:
        n = summary.pop("episodes", 0)
        if n:
            count += n
            for key, mean in summary.items():
                sums[key] = sums.get(key, 0.0) + mean * n
    if not count:
        return DONE
    if len(sums) == len(NATIVE_STATS) and all(key in sums for key in NATIVE_STATS):
        return NATIVE_SUMMARY.pack(EPISODES, count, *(sums[key] for key in NATIVE_STATS))
    payload = json.dumps([count, {key: total / count for key, total in sums.items()}]).encode()
    return JSON + len(payload).to_bytes(_COUNT, "little") + payload


class Tally:
    """Episode statistics summed from answers until :meth:`take`."""

    __slots__ = ("episodes", "native", "sums")

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.native: list[float] = [0, 0.0, 0.0, 0.0]  # from EPISODES answers: episodes, then the NATIVE_STATS sums
        self.sums: dict[str, float] = {}  # from JSON answers: stat -> sum over episodes
        self.episodes: float = 0  # from JSON answers

    def take(self) -> dict[str, float]:
        """Means over the episodes tallied since the last call (``episodes``: how many); clears."""
        episodes, sums, native = self.episodes, dict(self.sums), self.native
        if native[0]:
            episodes += native[0]
            for key, total in zip(NATIVE_STATS, native[1:], strict=True):
                sums[key] = sums.get(key, 0.0) + total
        self.clear()
        out: dict[str, float] = {"episodes": episodes}
        if episodes:
            out.update({key: total / episodes for key, total in sums.items()})
        return out


def read_answers(data: bytes, tally: Tally) -> tuple[int, bytes]:
    """Splits the whole answers off ``data``: returns how many, and the rest (an answer not
    yet read whole); their episode statistics go to ``tally``."""
    if data == DONE:  # the common case: one step, no episode ended
        return 1, b""
    got, size, native = 0, NATIVE_SUMMARY.size, tally.native
    head = 1 + _COUNT
    while data:
        op = data[:1]
        if op == DONE:
            data = data[1:]
        elif op == EPISODES:
            if len(data) < size:
                break  # the rest is still in the pipe
            _, count, ret, length, score = NATIVE_SUMMARY.unpack_from(data)
            data = data[size:]
            native[0] += count
            native[1] += ret
            native[2] += length
            native[3] += score
        elif op == JSON:
            if len(data) < head or len(data) < head + int.from_bytes(data[1:head], "little"):
                break
            end = head + int.from_bytes(data[1:head], "little")
            count, means = json.loads(data[head:end].decode())
            data = data[end:]
            tally.episodes += count
            for key, mean in means.items():
                tally.sums[key] = tally.sums.get(key, 0.0) + mean * count
        else:
            raise ValueError(f"unknown done message {data[:16]!r}")
        got += 1
    return got, data
