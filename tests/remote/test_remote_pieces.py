"""The remote pool's pieces on their own: a batch's frames checked and viewed, the groups' states, the
host table. (The whole pool, across real namespaces, is in test_remote_training and test_remote_faults.)"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from actors import remote_wire as wire
from actors.host import LOST, Session, _Ended
from actors.remote_batch import BatchCodec, Groups, Malformed
from actors.remote_hosts import HostTable

ROWS = 4
ROW = {
    "observations": ((3,), np.dtype(np.uint8)),
    "rewards": ((), np.dtype(np.float32)),
    "terminals": ((), np.dtype(np.bool_)),
    "truncations": ((), np.dtype(np.bool_)),
    "masks": ((), np.dtype(np.bool_)),
    "actions": ((), np.dtype(np.int32)),
}


def frames(j: int = 0, epoch: int = 1, seq: int = 0, cut_rows: list[int] | None = None,
           sizes_off: int = 0) -> list[zmq.Frame]:
    obs = np.arange(ROWS * 3, dtype=np.uint8).reshape(ROWS, 3)
    parts = [obs.tobytes(), np.ones(ROWS, np.float32).tobytes(), np.zeros(ROWS, np.bool_).tobytes(),
             np.zeros(ROWS, np.bool_).tobytes(), np.ones(ROWS, np.bool_).tobytes() + b"x" * sizes_off]
    cut = len(cut_rows or [])
    if cut_rows:
        parts += [np.array(cut_rows, np.int32).tobytes(), np.full((cut, 3), 9, np.uint8).tobytes()]
    head = b"B" + wire.BATCH.pack(j, epoch, seq, cut)
    return [zmq.Frame(b"ident"), zmq.Frame(head), *(zmq.Frame(p) for p in parts)]


def test_a_batch_is_viewed_as_sent() -> None:
    codec = BatchCodec(ROW, ROWS, batches=2)
    batch = codec.parse(frames(j=1, epoch=3, seq=7, cut_rows=[2]))
    assert (batch.j, batch.epoch, batch.seq) == (1, 3, 7)
    assert batch.views[0].shape == (ROWS, 3) and batch.views[0][1].tolist() == [3, 4, 5]
    assert batch.views[1].dtype == np.float32 and batch.views[4].all()
    assert batch.cut_rows is not None and batch.cut_rows.tolist() == [2]
    assert batch.cut_finals is not None and batch.cut_finals.tolist() == [[9, 9, 9]]


@pytest.mark.parametrize("bad, says", [
    (lambda: frames(j=2), "batch slot 2"),
    (lambda: frames(sizes_off=1), "masks of 5 bytes"),
    (lambda: frames()[:-1], "frames"),
    (lambda: frames(cut_rows=[4]), "out of range"),
    (lambda: [*frames()[:1], zmq.Frame(b"B12"), *frames()[2:]], "header"),
])
def test_a_malformed_batch_is_refused_with_what_is_wrong(bad, says) -> None:
    with pytest.raises(Malformed, match=says):
        BatchCodec(ROW, ROWS, batches=2).parse(bad())


def test_groups_serve_void_until_a_batch_and_report_a_lost_transition_once() -> None:
    codec = BatchCodec(ROW, ROWS, batches=1)
    groups = Groups(codec, 2)
    assert groups.servable(0) and groups.void[0]  # no host yet: void, masks false
    (_, _, _, trunc, masks, ids), lost = groups.serve(0)
    assert not lost and not masks.any() and not trunc.any() and ids.tolist() == [0, 1, 2, 3]
    groups.reset(1, fresh=False)
    assert not groups.servable(1)  # a host is behind it: its first batch is awaited
    groups.arrived(1, codec.parse(frames()))
    (obs, rewards, _, _, masks, ids), lost = groups.serve(1)
    assert not lost and masks.all() and rewards.tolist() == [1.0] * ROWS and ids.tolist() == [4, 5, 6, 7]
    groups.asked(1)
    assert not groups.drop(1)  # nothing received was thrown away
    (obs_void, _, _, trunc, masks, _), lost = groups.serve(1)
    assert lost and trunc.all() and not masks.any() and (obs_void == obs).all()  # last obs repeated
    assert not groups.serve(1)[1]  # the loss is told once


def test_a_fresh_group_starts_truncated() -> None:
    codec = BatchCodec(ROW, ROWS, batches=1)
    groups = Groups(codec, 1)
    groups.reset(0, fresh=True)
    groups.arrived(0, codec.parse(frames()))
    (obs, _, _, trunc, _, _), _ = groups.serve(0)
    assert trunc.all() and (groups.finals[0] == obs).all()


def test_the_host_table_labels_slots_and_keeps_totals_across_a_rejoin() -> None:
    table = HostTable(2, batches=3)
    a = table.admit(b"a", "h", "key-a", "10.0.0.1", 0, now=1.0)
    b = table.admit(b"b", "h", "key-b", "10.0.0.2", 1, now=1.0)
    assert (a.name, b.name) == ("h", "h#1") and table.free_slot() is None
    assert list(table.groups(1)) == [3, 4, 5] and a.seq == [0, 0, 0]
    table.stat(a).steps += 10
    assert table.release(a) and not table.release(a)
    assert table.free_slot() == 0 and table.stats["h"].lost == 1
    again = table.admit(b"c", "h", "key-a", "10.0.0.1", 0, now=2.0)
    assert again.name == "h" and table.stats["h"].steps == 10  # its label is free again: its totals go on


def test_a_host_session_whose_learner_is_gone_ends_instead_of_waiting_forever_on_a_send() -> None:
    """The learner goes away between the host's poll and its next send (its monitor not read yet): the
    DEALER then has no peer, and a blocking send would wait there forever (CI saw a host keep its actors
    30 s and more after the learner was killed). The send ends the session with the reason instead."""
    context = zmq.Context(1)
    learner = context.socket(zmq.ROUTER)
    learner.setsockopt(zmq.LINGER, 0)
    port = learner.bind_to_random_port("tcp://127.0.0.1")
    session = Session(f"tcp://127.0.0.1:{port}", None, None, "h", None, [0], 1, threading.Event())
    session.socket.connect(f"tcp://127.0.0.1:{port}")
    session._send([b"H{}"])
    assert learner.poll(5000) and learner.recv_multipart()[1] == b"H{}"
    learner.close()  # the learner's end of the connection closes, as when it is killed
    deadline = time.monotonic() + 10.0
    while not (session.monitor.poll(100) and recv_monitor_message(session.monitor)["event"]
               == zmq.EVENT_DISCONNECTED):
        assert time.monotonic() < deadline, "the host never saw the connection go"
    ended: list[BaseException] = []

    def heartbeat() -> None:
        # What the host's loop sends every half second. Right after the event ZeroMQ may still queue a
        # message or two while it tears the connection's pipe down, so it goes on sending, as the host would.
        try:
            for _ in range(300):
                session._stats()
                time.sleep(0.01)
        except BaseException as exc:  # noqa: BLE001 (the assertion below says what came)
            ended.append(exc)

    sender = threading.Thread(target=heartbeat, daemon=True)
    sender.start()
    sender.join(10.0)
    # (Left open if it fails: closing a socket another thread is blocked in would hang the test instead.)
    assert not sender.is_alive(), "the host's send is still waiting for a learner that is gone"
    session.close()
    context.term()
    assert len(ended) == 1 and isinstance(ended[0], _Ended) and str(ended[0]) == LOST, ended
