"""Private ``redis-server`` processes: shared rate-limit counters for several gateways
(:mod:`crossbook.gateway.ratelimit`) in tests, benchmarks and local multi-gateway runs.

The binary is Debian's ``/usr/bin/redis-server`` (override with
``CROSSBOOK_REDIS_SERVER``, else the one on ``PATH``), run as ``redis-server --bind
127.0.0.1 --port PORT --save "" --appendonly no --dir DIR``: loopback only, on a free
port chosen here (never the default 6379), nothing persisted, working directory and log
(``DIR/redis.log``) in a directory the caller gives. The port is kept across
``stop``/``start``, so clients reconnect to the same URL after a restart. ``start``
waits for readiness with a bound (``PING`` answered ``+PONG`` over a plain socket: no
client library needed); a server that cannot start raises :class:`RedisServerError`
with the tail of its log (callers fail, they do not skip). The process is stopped by
its own PID.

::

    with RedisServer(tmp / "redis") as server:   # started, stopped at exit
        limits = RateLimits(storage_uri=server.limits_uri)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from crossbook.infra.ports import free_port

__all__ = ["RedisServer", "RedisServerError", "free_port", "redis_server_binary"]

DEFAULT_START_TIMEOUT = 10.0
DEFAULT_STOP_TIMEOUT = 10.0
DEFAULT_BINARY = "/usr/bin/redis-server"
_FORBIDDEN_PORTS = frozenset({6379, 16379, 26379})  # redis, its cluster bus, sentinel
_PING = b"*1\r\n$4\r\nPING\r\n"


class RedisServerError(RuntimeError):
    """A private redis-server could not be found, started or stopped."""


def redis_server_binary() -> str:
    """Path of the ``redis-server`` executable to run; raises if there is none."""
    override = os.environ.get("CROSSBOOK_REDIS_SERVER")
    if override:
        if not os.access(override, os.X_OK):
            raise RedisServerError(f"CROSSBOOK_REDIS_SERVER={override} is not executable")
        return override
    if os.access(DEFAULT_BINARY, os.X_OK):
        return DEFAULT_BINARY
    found = shutil.which("redis-server")
    if found is None:
        raise RedisServerError(
            "no redis-server binary: install Debian's redis-server package "
            "or set CROSSBOOK_REDIS_SERVER"
        )
    return found


def _log_tail(path: Path, limit: int = 4000) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return "(no log)"
    return data[-limit:].decode("utf-8", "replace")


class RedisServer:
    """One private redis-server without persistence. Usable as a context manager
    (start on enter if not running, stop on exit)."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        port: int | None = None,
        binary: str | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.port = port if port is not None else free_port()
        if self.port in _FORBIDDEN_PORTS:
            raise RedisServerError("refusing to run a private server on a default Redis port")
        self.log_file = self.directory / "redis.log"
        self.binary = binary
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT`` (for Redis clients)."""
        return f"redis://127.0.0.1:{self.port}"

    @property
    def limits_uri(self) -> str:
        """The storage URI of the ``limits`` library's asyncio Redis storage."""
        return f"async+redis://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        binary = self.binary or redis_server_binary()
        return [
            binary,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--daemonize", "no",
        ]  # fmt: skip

    def start(self, timeout: float = DEFAULT_START_TIMEOUT) -> RedisServer:
        """Start the process and wait (at most ``timeout`` s) until it answers PING."""
        if self.running:
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        cmd = self.command()
        with self.log_file.open("ab") as log:
            try:
                self._proc = subprocess.Popen(
                    cmd,
                    cwd=self.directory,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            except OSError as exc:
                raise RedisServerError(f"cannot run {cmd[0]}: {exc}") from exc
        self.wait_ready(timeout)
        return self

    def ping(self, timeout: float = 1.0) -> bool:
        """True iff the server answers ``PING`` with ``+PONG``."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
                s.sendall(_PING)
                reply = b""
                while not reply.endswith(b"\r\n"):
                    chunk = s.recv(64)
                    if not chunk:
                        break
                    reply += chunk
        except OSError:
            return False
        return reply == b"+PONG\r\n"

    def wait_ready(self, timeout: float = DEFAULT_START_TIMEOUT) -> None:
        """Wait (at most ``timeout`` s) until the server answers PING; raise otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            proc = self._proc
            if proc is None:
                raise RedisServerError("redis-server was not started")
            code = proc.poll()
            if code is not None:
                self._proc = None
                raise RedisServerError(
                    f"redis-server exited with code {code} during start-up "
                    f"({' '.join(self.command())}); log {self.log_file}:\n"
                    f"{_log_tail(self.log_file)}"
                )
            if self.ping():
                return
            if time.monotonic() >= deadline:
                self.stop()
                raise RedisServerError(
                    f"redis-server on port {self.port} not ready after {timeout:.1f}s; "
                    f"log {self.log_file}:\n{_log_tail(self.log_file)}"
                )
            time.sleep(0.02)

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        """Stop gracefully (SIGTERM to its PID; SIGKILL after ``timeout``). Idempotent."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(timeout)
        self._proc = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
