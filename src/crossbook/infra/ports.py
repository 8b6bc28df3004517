"""Free TCP ports for the private servers Crossbook starts (tests, benchmarks,
``crossbook cluster``).

A port is picked at random *below* the kernel's ephemeral range, so the source
port of some unrelated outgoing connection can never take it between the pick
and the server's bind, and it is checked by binding it. Ports handed out by this
process are never handed out again, so several ports picked for one server set
(client, route and monitor ports of a three-node cluster) are always distinct; and
a port is claimed machine-wide for ``CLAIM_SECONDS`` (a file created exclusively in
a shared directory), so that two processes picking at the same time (a test and
the ``crossbook cluster`` it started) never hand out the same one either.
Well-known default ports (NATS, PostgreSQL, Redis, the exchange's 8000) are never
chosen: a test must not collide with a server the machine already runs.
"""

from __future__ import annotations

import os
import random
import socket
import tempfile
import threading
import time
from pathlib import Path

DEFAULT_PORTS = frozenset({4222, 6222, 7422, 8000, 8222, 5432, 6379, 26379})
_LOWEST = 10_000
_FALLBACK_EPHEMERAL_START = 32_768
CLAIM_SECONDS = 600.0
_CLAIMS = Path(tempfile.gettempdir()) / "crossbook-ports"
_handed_out: set[int] = set()
_lock = threading.Lock()
_random = random.SystemRandom()


def _ephemeral_start() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return _FALLBACK_EPHEMERAL_START


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _claim(port: int) -> bool:
    """Claim ``port`` for this process unless another claimed it within ``CLAIM_SECONDS``."""
    try:
        _CLAIMS.mkdir(mode=0o1777, exist_ok=True)
    except OSError:
        return True  # no shared directory: this process's own bookkeeping must do
    path = _CLAIMS / str(port)
    for _ in range(2):
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return True
        except FileExistsError:
            try:
                if time.time() - path.stat().st_mtime < CLAIM_SECONDS:
                    return False
                path.unlink()  # a stale claim: take it over
            except FileNotFoundError:
                pass
        except OSError:
            return True
    return False


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now and that this process never handed out before."""
    ceiling = _ephemeral_start()
    low = _LOWEST if ceiling - _LOWEST >= 1_000 else 1_024
    with _lock:
        for _ in range(1_000):
            port = _random.randrange(low, ceiling)
            if port in DEFAULT_PORTS or port in _handed_out or not _bindable(port):
                continue
            if not _claim(port):
                continue
            _handed_out.add(port)
            return port
    raise OSError("no free TCP port on 127.0.0.1 below the ephemeral range")


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports (see :func:`free_port`)."""
    return [free_port() for _ in range(count)]
