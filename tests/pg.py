"""A private PostgreSQL server for tests and benchmarks (never the machine's default one).

``start_postgres()`` runs Debian's binaries (``/usr/lib/postgresql/15/bin``, override
with ``CROSSBOOK_PG_BIN``): ``initdb`` into a fresh temporary directory, ``pg_ctl start``
on a free port of 127.0.0.1 (never 5432) with its Unix socket in that directory, waits
for readiness with a bound, and returns a :class:`PostgresServer`. As root the server
tools run as the ``postgres`` OS user (``runuser -u postgres --``). ``stop_postgres()``
stops it (``pg_ctl stop``, then SIGKILL of the postmaster's own PID if needed) and
removes the directory. Failures raise :class:`PostgresStartError` with the server log:
callers fail, they do not skip.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

PG_BIN = Path(os.environ.get("CROSSBOOK_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = "postgres"
DEFAULT_PORT = 5432


class PostgresStartError(RuntimeError):
    """The private server could not be started."""


@dataclass
class PostgresServer:
    """A running private server; ``dsn(db)`` gives a SQLAlchemy URL for a database."""

    base_dir: Path
    port: int
    host: str = "127.0.0.1"
    user: str = PG_USER

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "server.log"

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def libpq_dsn(self, database: str = "postgres") -> str:
        return f"host={self.host} port={self.port} user={self.user} dbname={database}"

    def create_database(self, name: str) -> str:
        """Create database ``name`` (an identifier) and return its DSN."""
        if not name.replace("_", "").isalnum():
            raise ValueError(f"not a plain identifier: {name!r}")
        with psycopg.connect(self.libpq_dsn(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.libpq_dsn(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _as_server_user(args: list[str]) -> list[str]:
    return ["runuser", "-u", PG_USER, "--", *args] if os.geteuid() == 0 else args


def _free_port() -> int:
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port != DEFAULT_PORT:
            return port
    raise PostgresStartError("no free port on 127.0.0.1")


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _as_server_user(args), capture_output=True, text=True, timeout=timeout, check=False
    )


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no server log)"


def start_postgres(
    *, fsync: bool = False, timeout: float = 60.0, settings: dict[str, str] | None = None
) -> PostgresServer:
    """Start a private server and wait (at most ``timeout`` s) until it accepts queries.

    ``fsync=False`` (tests) trades crash safety for speed; benchmarks pass ``True``."""
    initdb, pg_ctl = PG_BIN / "initdb", PG_BIN / "pg_ctl"
    if not initdb.exists() or not pg_ctl.exists():
        raise PostgresStartError(f"PostgreSQL server binaries not found in {PG_BIN}")
    base = Path(tempfile.mkdtemp(prefix="crossbook-pg-"))
    if os.geteuid() == 0:
        pw = pwd.getpwnam(PG_USER)
        os.chown(base, pw.pw_uid, pw.pw_gid)
    deadline = time.monotonic() + timeout
    try:
        init = _run(
            [str(initdb), "-D", str(base / "data"), "--auth=trust", "-U", PG_USER,
             "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"],
            timeout=timeout,
        )  # fmt: skip
        if init.returncode != 0:
            raise PostgresStartError(f"initdb failed ({init.returncode}):\n{init.stderr}")
        last_error = ""
        for _attempt in range(3):  # the free port may be taken between probe and bind
            server = PostgresServer(base_dir=base, port=_free_port())
            options = {
                "listen_addresses": "127.0.0.1",
                "fsync": "on" if fsync else "off",
                "synchronous_commit": "on" if fsync else "off",
                "full_page_writes": "on" if fsync else "off",
                **(settings or {}),
            }
            opts = f"-p {server.port} -k {base} " + " ".join(
                f"-c {k}={v}" for k, v in options.items()
            )
            remaining = max(5, int(deadline - time.monotonic()))
            started = _run(
                [str(pg_ctl), "-D", str(server.data_dir), "-l", str(server.log_file),
                 "-o", opts, "-w", "-t", str(remaining), "start"],
                timeout=remaining + 10,
            )  # fmt: skip
            if started.returncode == 0:
                _wait_ready(server, deadline)
                return server
            last_error = f"{started.stdout}{started.stderr}\n{_tail(server.log_file)}"
            if "already in use" not in last_error:
                break
        raise PostgresStartError(f"pg_ctl start failed:\n{last_error}")
    except BaseException:
        _stop_dir(base)
        raise


def _wait_ready(server: PostgresServer, deadline: float) -> None:
    error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(server.libpq_dsn(), connect_timeout=5) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.OperationalError as exc:
            error = exc
            time.sleep(0.1)
    raise PostgresStartError(
        f"server on port {server.port} not ready in time: {error}\n{_tail(server.log_file)}"
    )


def _postmaster_pid(data_dir: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int((data_dir / "postmaster.pid").read_text().splitlines()[0])
    return None


def _stop_dir(base: Path) -> None:
    data = base / "data"
    pid = _postmaster_pid(data)
    if pid is not None:
        stopped = False
        with contextlib.suppress(subprocess.TimeoutExpired):
            result = _run([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w",
                           "-t", "30", "stop"], timeout=40)  # fmt: skip
            stopped = result.returncode == 0
        if not stopped:  # kill the postmaster we started, by its PID
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    shutil.rmtree(base, ignore_errors=True)


def stop_postgres(server: PostgresServer) -> None:
    """Stop the server and delete its directory (idempotent)."""
    _stop_dir(server.base_dir)


@contextlib.contextmanager
def private_postgres(
    *, fsync: bool = False, timeout: float = 60.0, settings: dict[str, str] | None = None
) -> Iterator[PostgresServer]:
    """``with private_postgres() as server:`` start, yield, always stop."""
    server = start_postgres(fsync=fsync, timeout=timeout, settings=settings)
    try:
        yield server
    finally:
        stop_postgres(server)
