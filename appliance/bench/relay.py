"""A TCP forwarder that holds every chunk ``delay`` ms before passing it on, in both directions.

It stands in for ``tc qdisc ... netem delay`` where the kernel has no ``sch_netem``
(this development VM has none, nor modules to load): the remote-actor tests and
`appliance bench remote` put it between the actor hosts' network namespaces and the
learner. Like netem on each end of a link, it delays each direction by ``delay``, so a
round trip gains ``2 x delay``; it queues without limit, so throughput is not capped,
only late. Run as ``python -m appliance.bench.relay LISTEN_ADDR:PORT TARGET_ADDR:PORT DELAY_MS``;
it prints ``ready PORT`` once listening (PORT 0 picks a free one).
"""

from __future__ import annotations

import collections
import socket
import sys
import threading
import time


def _pump(src: socket.socket, dst: socket.socket, delay: float) -> None:
    """src -> dst, each chunk sent ``delay`` s after it was read; the reader never waits on the writer."""
    queue: collections.deque[tuple[float, bytes]] = collections.deque()
    ready = threading.Condition()

    def read() -> None:
        try:
            while True:
                data = src.recv(1 << 20)
                with ready:
                    queue.append((time.monotonic() + delay, data))
                    ready.notify()
                if not data:
                    return
        except OSError:
            with ready:
                queue.append((0.0, b""))
                ready.notify()

    threading.Thread(target=read, daemon=True).start()
    try:
        while True:
            with ready:
                while not queue:
                    ready.wait()
                due, data = queue.popleft()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    for sock in (src, dst):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _connection(client: socket.socket, target: tuple[str, int], delay: float) -> None:
    try:
        upstream = socket.create_connection(target, timeout=5.0)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    for sock in (client, upstream):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    there = threading.Thread(target=_pump, args=(client, upstream, delay), daemon=True)
    there.start()
    _pump(upstream, client, delay)
    there.join(5.0)
    client.close()
    upstream.close()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        sys.stderr.write("usage: python -m appliance.bench.relay LISTEN_ADDR:PORT TARGET_ADDR:PORT DELAY_MS\n")
        return 2
    listen, target, delay = _address(argv[0]), _address(argv[1]), float(argv[2]) / 1000.0
    server = socket.create_server(listen, reuse_port=False)
    print(f"ready {server.getsockname()[1]}", flush=True)
    while True:
        client, _ = server.accept()
        threading.Thread(target=_connection, args=(client, target, delay), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
