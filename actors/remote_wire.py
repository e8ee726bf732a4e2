"""What crosses the network between an actor host and a learner rank, and how sockets are secured.

One connection per host: the host's DEALER to the learner's ROUTER, over ``tcp://``.
Every message is a list of ZeroMQ frames; the first frame starts with a one-byte op.

host -> learner:

- ``H`` + JSON ``{name, cores, env, pid, version}``: hello (asks for a slot).
- ``J``: the host built the envs it was given (answer to ``W``).
- ``B`` + :data:`BATCH` ``(slot, epoch, seq, truncated)``, then the frames of
  :data:`BATCH_FIELDS` (raw rows, zero-copy from the host's arena), then, when
  ``truncated`` > 0, the truncated rows' indices (int32) and their final observations.
- ``S`` + JSON ``{episodes, sums}``: episode statistics since the last one; sent
  every :data:`STATS_S` at the latest, so it is also the host's heartbeat.
- ``p`` + the 8 bytes of a ``P``: the ping's echo (the learner measures the round trip).

learner -> host:

- ``W`` + JSON ``{slot, env, params, envs, batches, seed}``: welcome (the host's share).
- ``R`` + :data:`RESET` ``(epoch, seed)``: reset every batch of envs; batches of
  earlier epochs still on their way are discarded by the learner.
- ``A`` + :data:`ACTIONS` ``(slot, seq)``, then the actions (raw rows, received by the
  host straight into its arena).
- ``P`` + 8 bytes: ping.  ``Q`` + a sentence: you are dropped (or refused); the host
  stops its actors and starts again with a new hello.

Security: CurveZMQ on every socket (the learner is the Curve server; a ZAP handler
accepts only the client keys listed in the key directory), unless both sides are
started with ``insecure``. Liveness of the connection itself is ZeroMQ's own ZMTP
heartbeat, answered by its I/O thread even while the learner runs a long update.
"""

from __future__ import annotations

import logging
import os
import struct
from pathlib import Path
from typing import Any

import zmq
import zmq.auth

log = logging.getLogger("appliance.remote")

VERSION = 1
BATCH = struct.Struct("<HIQI")  # slot, epoch, seq, truncated rows
ACTIONS = struct.Struct("<HQ")  # slot, seq
RESET = struct.Struct("<IQ")  # epoch, seed
PING = struct.Struct("<d")  # the learner's monotonic clock when it sent the ping
BATCH_FIELDS = ("observations", "rewards", "terminals", "truncations", "masks")
STATS_S = 0.5  # a host sends statistics (its heartbeat) at least this often
HEARTBEAT_IVL_MS = 250  # ZMTP ping interval on every remote socket
HEARTBEAT_TIMEOUT_MS = 1000  # no ZMTP traffic for this long: the connection is closed
ZAP_DOMAIN = "appliance"
SERVER_KEY = "server"
CLIENTS = "clients"


class RemoteError(RuntimeError):
    """The remote pool cannot go on (no host joined, every host lost); says which and why."""


def keys_new(directory: str | os.PathLike[str], clients: int = 2) -> dict[str, Any]:
    """Writes a server key pair and ``clients`` client key pairs (every file mode 0600).

    Layout: ``DIR/server.key`` (public) and ``DIR/server.key_secret`` for the learner;
    ``DIR/clients/client-N.key`` (public, the list the learner accepts) and
    ``DIR/clients/client-N.key_secret`` for the hosts. Refuses to overwrite keys.
    """
    if clients < 1:
        raise ValueError(f"clients must be >= 1, got {clients}")
    root = Path(directory)
    if (root / f"{SERVER_KEY}.key_secret").exists():
        raise ValueError(f"{root} already holds keys (server.key_secret); choose an empty directory")
    (root / CLIENTS).mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(root, 0o700)
    os.chmod(root / CLIENTS, 0o700)
    old = os.umask(0o077)
    try:
        made = [*zmq.auth.create_certificates(root, SERVER_KEY)]
        for n in range(1, clients + 1):
            made += zmq.auth.create_certificates(root / CLIENTS, f"client-{n}")
    finally:
        os.umask(old)
    for path in made:
        os.chmod(path, 0o600)
    return {"server": str(root / f"{SERVER_KEY}.key"), "clients": [str(p) for p in made[2::2]]}


def _load(path: Path, secret: bool) -> tuple[bytes, bytes | None]:
    if not path.is_file():
        raise ValueError(f"key file {path} does not exist (make keys with `appliance keys new DIR`)")
    try:
        public, private = zmq.auth.load_certificate(path)
    except (ValueError, OSError) as exc:
        raise ValueError(f"key file {path} is not a ZeroMQ certificate: {exc}") from None
    if secret and private is None:
        raise ValueError(f"key file {path} holds no secret key")
    return public, private


def listed_clients(directory: str | os.PathLike[str]) -> set[bytes]:
    """The client public keys (Z85) the learner accepts: ``DIR/clients/*.key``."""
    folder = Path(directory) / CLIENTS
    keys = {_load(p, False)[0] for p in sorted(folder.glob("*.key"))}
    if not keys:
        raise ValueError(f"no client keys listed in {folder} (make them with `appliance keys new DIR`)")
    return keys


class _Listed:
    """ZAP credentials provider: a client key is accepted only if it is listed; refusals are logged."""

    def __init__(self, keys: set[bytes]) -> None:
        self.keys = keys

    def callback(self, domain: str, key: bytes) -> bool:
        if key in self.keys:
            return True
        log.warning("refused a remote host: its key %s is not listed", key.decode(errors="replace"))
        return False


def secure_server(context: zmq.Context[Any], socket: zmq.Socket[Any], keys: str | None) -> Any:
    """Makes ``socket`` a Curve server that accepts only listed client keys; returns the ZAP
    authenticator (stop it on close). ``keys=None``: plain TCP, with a warning."""
    if keys is None:
        log.warning("remote actors over plain TCP (--insecure): anyone who reaches the port can feed this learner")
        return None
    from zmq.auth.thread import ThreadAuthenticator

    public, secret = _load(Path(keys) / f"{SERVER_KEY}.key_secret", True)
    auth = ThreadAuthenticator(context, log=logging.getLogger("appliance.remote.zap"))
    auth.start()
    auth.configure_curve_callback(ZAP_DOMAIN, credentials_provider=_Listed(listed_clients(keys)))
    socket.curve_secretkey, socket.curve_publickey, socket.curve_server = secret, public, True
    socket.zap_domain = ZAP_DOMAIN.encode()
    return auth


def secure_client(socket: zmq.Socket[Any], keys: str | None, client: str | None) -> None:
    """Makes ``socket`` a Curve client with ``DIR/server.key`` and this host's secret key.

    ``client``: the name of its key pair in ``DIR/clients`` (``client-1``), or a path to a
    ``.key_secret`` file; without it, the only secret key in ``DIR/clients``.
    """
    if keys is None:
        return  # plain TCP (--insecure): serve() warns once
    root = Path(keys)
    server, _ = _load(root / f"{SERVER_KEY}.key", False)
    if client is None:
        found = sorted((root / CLIENTS).glob("*.key_secret")) + sorted(root.glob("client*.key_secret"))
        if len(found) != 1:
            raise ValueError(f"{root} holds {len(found)} client secret keys: name one with --client")
        path = found[0]
    elif Path(client).is_file():
        path = Path(client)
    else:
        path = next((p for p in (root / CLIENTS / f"{client}.key_secret", root / f"{client}.key_secret")
                     if p.is_file()), root / CLIENTS / f"{client}.key_secret")
    public, secret = _load(path, True)
    socket.curve_secretkey, socket.curve_publickey, socket.curve_serverkey = secret, public, server


def tune(socket: zmq.Socket[Any]) -> None:
    """Options every remote socket shares: no linger, ZMTP heartbeats, large kernel buffers."""
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_IVL_MS)
    socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
    socket.setsockopt(zmq.HEARTBEAT_TTL, HEARTBEAT_TIMEOUT_MS)
    socket.setsockopt(zmq.SNDBUF, 4 << 20)
    socket.setsockopt(zmq.RCVBUF, 4 << 20)
    socket.setsockopt(zmq.SNDHWM, 0)  # bounded by the protocol: a few batches in flight, a ping now and then
