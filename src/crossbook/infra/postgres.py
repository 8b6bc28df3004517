"""Private PostgreSQL servers: one server, or a primary with a synchronous standby.

Used by the tests, the benchmarks and ``crossbook cluster``. Everything runs Debian's
PostgreSQL 15 binaries (``/usr/lib/postgresql/15/bin``, override with
``CROSSBOOK_PG_BIN``); as root the server tools run as the ``postgres`` OS user
(``runuser -u postgres --``). Servers listen on 127.0.0.1 only, on a free port (never
the default 5432), with their Unix socket in their own directory. Readiness is awaited
with a bound; a server that cannot start raises :class:`PostgresStartError` carrying
the tail of its log (callers fail, they never skip). Servers are stopped with
``pg_ctl stop`` and, failing that, killed by the PIDs of their own processes (those whose
working directory is the server's data directory), never by name.

One server
----------
``start_postgres()`` runs ``initdb`` in a fresh temporary directory (removed again by
``stop_postgres()``), or, with ``base_dir=``, in a directory the caller keeps: an existing
data directory there is started as it is (data kept across restarts), and ``port=`` pins
the port so clients keep their DSN. The layout of a server directory is ``data/`` (the
cluster) and ``server.log``.

Production topology (``crossbook service`` / ``crossbook cluster``)
-------------------------------------------------------------------
The SQL side of a production deployment (ledger, projections) is a
:class:`PostgresReplicaSet`: a primary and one standby kept in *synchronous* streaming
replication.

- primary: ``wal_level=replica``, ``synchronous_commit=remote_apply``,
  ``synchronous_standby_names='FIRST 1 (standby1)'`` (in ``postgresql.conf``, so a base
  backup carries it). A commit returns only once the standby has *applied* it: every
  acknowledged transaction is readable on the standby, and while the standby is down
  commits block rather than run unprotected.
- standby: ``pg_basebackup -R -X stream -C -S standby1_slot`` (replication slot, so the
  primary keeps the WAL the standby still needs), ``application_name=standby1`` in
  ``primary_conninfo``.
- clients: ``replica_set.dsn(db)`` is one multi-host DSN over both nodes with
  ``target_session_attrs=read-write``; libpq tries the hosts in order and keeps the one
  that accepts writes. Engines made with ``pool_pre_ping`` (``crossbook.ledger.make_engine``)
  therefore reach whichever node is the primary after a failover without reconfiguration.
- failover: when the primary is lost (crash, ``kill_primary()`` in drills), whoever
  supervises the cluster calls ``promote()``: ``pg_ctl promote`` on the standby, then
  ``synchronous_standby_names`` is cleared on the promoted node (it inherited the
  primary's setting and would otherwise block every write waiting for a standby that no
  longer exists). From then on the new primary runs alone (commits are no longer
  replicated) until ``rebuild_standby()`` replaces the old primary's data directory by a
  fresh base backup of the new primary and re-enables synchronous commit. The old primary
  must never be started as a primary again (split brain): its node is only ever rebuilt.
  Promotion is only safe once the old primary is known dead; this module does not decide
  that, it only carries it out.

Both nodes of a :class:`PostgresReplicaSet` run on this machine (drills, ``crossbook
cluster``); on two machines the same settings and commands apply. The set remembers its
ports and which node is primary in ``replica-set.json`` in its directory, so ``start()``
on an existing directory brings back the same topology with the same DSN.

::

    with private_postgres() as server:                 # one throw-away server
        engine = make_engine(server.create_database("crossbook"))

    rs = PostgresReplicaSet(data_dir / "postgres")     # kept across restarts
    rs.start()
    engine = make_engine(rs.dsn("crossbook"))
    rs.kill_primary(); rs.promote()                    # failover drill
    rs.rebuild_standby()                               # back to two synchronous copies
    rs.stop()
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg

from crossbook.infra.ports import free_port

__all__ = [
    "DEFAULT_PORT",
    "PG_BIN",
    "PG_USER",
    "PostgresError",
    "PostgresReplicaSet",
    "PostgresServer",
    "PostgresStartError",
    "free_port",
    "private_postgres",
    "start_postgres",
    "stop_postgres",
]

PG_BIN = Path(os.environ.get("CROSSBOOK_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = "postgres"
DEFAULT_PORT = 5432
DEFAULT_TIMEOUT = 60.0
STANDBY_NAME = "standby1"
SLOT_NAME = "standby1_slot"
_SOCKET_PATH_MAX = 107  # sun_path, including ".s.PGSQL.NNNNN"


class PostgresError(RuntimeError):
    """A private PostgreSQL server could not be set up, started, stopped or promoted."""


class PostgresStartError(PostgresError):
    """The private server could not be started (the message carries its log)."""


def _check_port(port: int) -> None:
    if port == DEFAULT_PORT:
        raise PostgresError(f"refusing to run a private server on the default port {port}")
    if not 1024 <= port <= 65535:
        raise PostgresError(f"not a usable port: {port}")


def _binary(name: str) -> str:
    path = PG_BIN / name
    if not os.access(path, os.X_OK):
        raise PostgresStartError(
            f"PostgreSQL binary {name} not found in {PG_BIN} (set CROSSBOOK_PG_BIN)"
        )
    return str(path)


def _as_server_user(args: list[str]) -> list[str]:
    return ["runuser", "-u", PG_USER, "--", *args] if os.geteuid() == 0 else args


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            _as_server_user(args),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise PostgresError(f"{shlex.join(args)} did not finish in {timeout:.0f}s") from exc


def _prepare_dir(path: Path) -> None:
    """Create ``path`` (if needed), owned by the server user, and check that user can use it."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return
    pw = pwd.getpwnam(PG_USER)
    os.chown(path, pw.pw_uid, pw.pw_gid)
    probe = _run(["test", "-w", str(path), "-a", "-x", str(path)], timeout=10)
    if probe.returncode != 0:
        raise PostgresStartError(
            f"the {PG_USER} OS user cannot write to {path}: every parent directory must be "
            "searchable by it (e.g. chmod o+x), or use a directory outside /root"
        )


def _tail(path: Path, offset: int = 0, lines: int = 40) -> str:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return "(no server log)"
    return "\n".join(text.splitlines()[-lines:]) or "(server log empty)"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _wait_for(
    what: str, check: Callable[[], bool], deadline: float, detail: Callable[[], str]
) -> None:
    """Poll ``check`` until it is true; past ``deadline`` raise with ``detail()``."""
    delay = 0.02
    while True:
        with contextlib.suppress(psycopg.Error):
            if check():
                return
        if time.monotonic() >= deadline:
            raise PostgresError(f"timed out waiting for {what}\n{detail()}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


@dataclass
class PostgresServer:
    """One private server in ``base_dir`` (``data/`` and ``server.log``) on ``port``.

    ``options`` are ``-c`` settings given on the command line at every start (they win
    over the configuration files); ``temporary`` means ``stop_postgres`` removes
    ``base_dir``. ``dsn(db)`` is a SQLAlchemy URL, ``libpq_dsn(db)`` a libpq one."""

    base_dir: Path
    port: int
    host: str = "127.0.0.1"
    user: str = PG_USER
    options: dict[str, str] = field(default_factory=dict)
    temporary: bool = False

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "server.log"

    @property
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").is_file()

    @property
    def is_standby(self) -> bool:
        return (self.data_dir / "standby.signal").is_file()

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def libpq_dsn(self, database: str = "postgres") -> str:
        return f"host={self.host} port={self.port} user={self.user} dbname={database}"

    def connect(self, database: str = "postgres", **kwargs: Any) -> psycopg.Connection[Any]:
        """An autocommit connection (``connect_timeout`` 10 s unless given)."""
        kwargs.setdefault("autocommit", True)
        kwargs.setdefault("connect_timeout", 10)
        return psycopg.connect(self.libpq_dsn(database), **kwargs)

    def create_database(self, name: str) -> str:
        """Create database ``name`` (an identifier) and return its DSN."""
        if not name.replace("_", "").isalnum():
            raise ValueError(f"not a plain identifier: {name!r}")
        with self.connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        with self.connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    # -- processes ---------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """PID of this server's postmaster, if it runs (checked, not just read from the
        pid file: the process must be a ``postgres`` working in this data directory)."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
            if _serves(pid, self.data_dir):
                return pid
        return None

    @property
    def running(self) -> bool:
        return self.pid is not None

    def processes(self) -> list[int]:
        """PIDs of every live process of this server (postmaster and children)."""
        return _processes_of(self.data_dir)

    def init(self, timeout: float = DEFAULT_TIMEOUT, *, sync: bool = True) -> None:
        """``initdb`` (trust authentication, UTF8, C locale) unless already initialized."""
        if self.initialized:
            return
        _prepare_dir(self.base_dir)
        args = [_binary("initdb"), "-D", str(self.data_dir), "--auth=trust", "-U", PG_USER,
                "-E", "UTF8", "--locale=C", "--no-instructions"]  # fmt: skip
        if not sync:
            args.append("--no-sync")
        result = _run(args, timeout=timeout)
        if result.returncode != 0:
            raise PostgresStartError(
                f"initdb {self.data_dir} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}"
            )

    def _postgres_options(self) -> str:
        socket_dir = str(self.base_dir.resolve())
        # A Unix socket path is limited in length; clients here use TCP anyway.
        too_long = len(socket_dir) + len("/.s.PGSQL.65535") > _SOCKET_PATH_MAX
        args = ["-k", "" if too_long else socket_dir]
        # Last, so that no extra setting can move the server off its private address.
        options = {**self.options, "listen_addresses": "127.0.0.1", "port": str(self.port)}
        for key, value in options.items():
            args += ["-c", f"{key}={value}"]
        return shlex.join(args)  # pg_ctl runs the postmaster through /bin/sh

    def start(self, timeout: float = DEFAULT_TIMEOUT, *, retry_port: bool = False) -> None:
        """``pg_ctl start`` an initialized data directory and wait (at most ``timeout`` s)
        until it answers queries. With ``retry_port`` a port taken meanwhile by someone
        else is replaced by another free one (for servers nobody has the DSN of yet)."""
        if not self.initialized:
            raise PostgresStartError(f"{self.data_dir} is not an initialized data directory")
        if (pid := self.pid) is not None:
            raise PostgresStartError(f"a server already runs on {self.data_dir} (pid {pid})")
        if self.processes():
            raise PostgresStartError(f"processes of an earlier server still run on {self.data_dir}")
        self._remove_stale_locks()
        deadline = time.monotonic() + timeout
        last_error = ""
        for attempt in range(3 if retry_port else 1):
            if attempt:
                self.port = free_port()
            _check_port(self.port)
            log_offset = _size(self.log_file)
            remaining = max(5, int(deadline - time.monotonic()))
            result = _run(
                [_binary("pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file),
                 "-o", self._postgres_options(), "-w", "-t", str(remaining), "start"],
                timeout=remaining + 10,
            )  # fmt: skip
            if result.returncode == 0:
                self._wait_ready(deadline, log_offset)
                return
            last_error = f"{result.stdout}{result.stderr}\n{_tail(self.log_file, log_offset)}"
            self.stop()  # pg_ctl may have given up on a server that is still starting
            if "already in use" not in last_error:
                break
        raise PostgresStartError(
            f"pg_ctl start of {self.data_dir} on port {self.port} failed:\n{last_error}"
        )

    def _remove_stale_locks(self) -> None:
        """Remove the lock files of a server that no longer runs (checked by the caller).

        PostgreSQL removes stale ones itself unless the PID they name looks alive: a
        killed postmaster that nobody has reaped yet (a zombie), or a PID reused by an
        unrelated process after a reboot. Either would stop the server from starting."""
        stale = [self.data_dir / "postmaster.pid", *self.base_dir.glob(".s.PGSQL.*")]
        for path in stale:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _wait_ready(self, deadline: float, log_offset: int = 0) -> None:
        error: Exception | None = None
        while True:
            try:
                with self.connect(connect_timeout=5) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as exc:
                error = exc
            if time.monotonic() >= deadline:
                raise PostgresStartError(
                    f"server on port {self.port} not ready in time: {error}\n"
                    f"{_tail(self.log_file, log_offset)}"
                )
            time.sleep(0.05)

    def stop(self, timeout: float = 30.0) -> None:
        """``pg_ctl stop -m fast``; whatever still runs then is killed by PID. Idempotent."""
        if self.pid is not None:
            with contextlib.suppress(PostgresError):
                _run([_binary("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w",
                      "-t", str(int(timeout)), "stop"], timeout=timeout + 10)  # fmt: skip
        if self.processes():
            self.kill()

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL the postmaster and every process of this server, as a crash would, and
        wait until they are gone. The data directory is left as the crash leaves it."""
        postmaster = self.pid
        if postmaster is not None:  # first, so that it cannot start new children
            with contextlib.suppress(ProcessLookupError):
                os.kill(postmaster, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while pids := self.processes():
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() >= deadline:
                raise PostgresError(f"processes {pids} of {self.data_dir} survive SIGKILL")
            time.sleep(0.02)


def _serves(pid: int, data_dir: Path) -> bool:
    """Is ``pid`` a live ``postgres`` process working in ``data_dir``? (A zombie is not.)"""
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return False
    return cwd == str(data_dir.resolve()) and os.path.basename(exe).startswith("postgres")


def _processes_of(data_dir: Path) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _serves(int(entry), data_dir):
            found.append(int(entry))
    return found


def start_postgres(
    *,
    fsync: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    settings: dict[str, str] | None = None,
    base_dir: str | os.PathLike[str] | None = None,
    port: int | None = None,
) -> PostgresServer:
    """Start a private server and wait (at most ``timeout`` s) until it accepts queries.

    Without ``base_dir`` the server lives in a fresh temporary directory that
    ``stop_postgres`` removes. With ``base_dir`` the directory is kept: it is initialized
    on first use and started as it is afterwards (``port`` pins the port; without it a
    free one is chosen at each start). ``fsync=False`` (tests) trades crash safety for
    speed; benchmarks and production pass ``True``. ``settings`` are extra ``-c``
    options."""
    if port is not None:
        _check_port(port)
    temporary = base_dir is None
    base = Path(tempfile.mkdtemp(prefix="crossbook-pg-")) if base_dir is None else Path(base_dir)
    options = {
        "fsync": "on" if fsync else "off",
        "synchronous_commit": "on" if fsync else "off",
        "full_page_writes": "on" if fsync else "off",
        **(settings or {}),
    }
    server = PostgresServer(
        base_dir=base.resolve(),
        port=port if port is not None else free_port(),
        options=options,
        temporary=temporary,
    )
    if not temporary and (running_port := _running_port(server)) is not None:
        if port is not None and port != running_port:
            raise PostgresStartError(
                f"a server already runs on {server.data_dir} on port {running_port}, not {port}"
            )
        server.port = running_port  # left running by an earlier process: adopt it
        server._wait_ready(time.monotonic() + timeout)
        return server
    try:
        _prepare_dir(server.base_dir)
        server.init(timeout, sync=fsync)
        server.start(timeout, retry_port=port is None)
    except BaseException:
        stop_postgres(server)
        raise
    return server


def _running_port(server: PostgresServer) -> int | None:
    """The port of a server already running on ``server``'s data directory, if any."""
    if server.pid is None:
        return None
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int((server.data_dir / "postmaster.pid").read_text().splitlines()[3])
    return None


def stop_postgres(server: PostgresServer) -> None:
    """Stop the server; remove its directory if it was a temporary one (idempotent)."""
    try:
        server.stop()
    finally:
        if server.temporary:
            shutil.rmtree(server.base_dir, ignore_errors=True)


@contextlib.contextmanager
def private_postgres(
    *, fsync: bool = False, timeout: float = DEFAULT_TIMEOUT, settings: dict[str, str] | None = None
) -> Iterator[PostgresServer]:
    """``with private_postgres() as server:`` start, yield, always stop."""
    server = start_postgres(fsync=fsync, timeout=timeout, settings=settings)
    try:
        yield server
    finally:
        stop_postgres(server)


# -- synchronous replication ---------------------------------------------------------------

_REPLICATION_CONF = f"""
# crossbook.infra.postgres: synchronous streaming replication to one standby
wal_level = replica
synchronous_commit = remote_apply
synchronous_standby_names = 'FIRST 1 ({STANDBY_NAME})'
max_wal_senders = 10
max_replication_slots = 10
hot_standby = on
"""


class PostgresReplicaSet:
    """A primary and a synchronous standby on this machine (see the module docstring).

    The nodes live in ``base_dir/node1`` and ``base_dir/node2`` (node1 is the first
    primary); without ``base_dir`` a temporary directory is used and removed by
    ``stop()``. ``fsync=False`` is for tests only. Usable as a context manager."""

    STATE_FILE = "replica-set.json"

    def __init__(
        self,
        base_dir: str | os.PathLike[str] | None = None,
        *,
        fsync: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.temporary = base_dir is None
        self.base_dir = (
            Path(tempfile.mkdtemp(prefix="crossbook-pgrs-")) if base_dir is None else Path(base_dir)
        ).resolve()
        self.fsync = fsync
        self.timeout = timeout
        options = {
            "fsync": "on" if fsync else "off",
            "full_page_writes": "on" if fsync else "off",
            **(settings or {}),
        }
        state = self._load_state()
        ports = state.get("ports") or [free_port(), free_port()]
        while ports[1] == ports[0]:
            ports[1] = free_port()
        self.nodes = tuple(
            PostgresServer(base_dir=self.base_dir / f"node{i + 1}", port=int(p), options=options)
            for i, p in enumerate(ports)
        )
        self._primary_index = int(state.get("primary", 0))
        self._fresh_ports = "ports" not in state

    # -- state ---------------------------------------------------------------------------

    def _load_state(self) -> dict[str, Any]:
        try:
            state: dict[str, Any] = json.loads((self.base_dir / self.STATE_FILE).read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise PostgresError(f"unreadable {self.base_dir / self.STATE_FILE}: {exc}") from exc
        return state

    def _save_state(self) -> None:
        state = {"ports": [n.port for n in self.nodes], "primary": self._primary_index}
        tmp = self.base_dir / f"{self.STATE_FILE}.tmp"
        tmp.write_text(json.dumps(state))
        tmp.replace(self.base_dir / self.STATE_FILE)
        self._fresh_ports = False

    @property
    def primary(self) -> PostgresServer:
        return self.nodes[self._primary_index]

    @property
    def standby(self) -> PostgresServer:
        """The other node (after ``promote()``, the lost old primary until it is rebuilt)."""
        return self.nodes[1 - self._primary_index]

    def libpq_dsn(self, database: str = "postgres") -> str:
        """Multi-host libpq DSN: whichever node accepts writes."""
        hosts = ",".join(n.host for n in self.nodes)
        ports = ",".join(str(n.port) for n in self.nodes)
        return (
            f"host={hosts} port={ports} user={PG_USER} dbname={database} "
            "target_session_attrs=read-write"
        )

    def dsn(self, database: str = "postgres") -> str:
        """The same as a SQLAlchemy URL (``postgresql+psycopg://…?host=a:p1&host=b:p2…``)."""
        hosts = "&".join(f"host={n.host}:{n.port}" for n in self.nodes)
        return f"postgresql+psycopg://{PG_USER}@/{database}?{hosts}&target_session_attrs=read-write"

    def _logs(self) -> str:
        return "\n".join(
            f"--- {n.log_file} (port {n.port}) ---\n{_tail(n.log_file, lines=25)}"
            for n in self.nodes
        )

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the primary (initializing it on first use) and the standby (made by a
        base backup on first use), and wait until the standby is streaming in sync."""
        deadline = time.monotonic() + self.timeout
        recorded = None if self._fresh_ports else self._primary_index
        try:
            _prepare_dir(self.base_dir)
            primary, standby = self.primary, self.standby
            if not primary.initialized:
                primary.init(self.timeout, sync=self.fsync)
                with (primary.data_dir / "postgresql.conf").open("a") as conf:
                    conf.write(_REPLICATION_CONF)
            elif primary.is_standby:
                raise PostgresStartError(f"{primary.data_dir} is a standby, expected a primary")
            if not primary.running:
                primary.start(self._left(deadline), retry_port=self._fresh_ports)
            self._save_state()
            if not standby.initialized:
                self._base_backup(deadline)
            elif not standby.is_standby:
                if recorded is None:  # no record of a failover: do not guess which to keep
                    raise PostgresStartError(
                        f"{primary.data_dir} and {standby.data_dir} are both primaries and "
                        f"{self.base_dir / self.STATE_FILE} is missing: refusing to choose"
                    )
                # The old primary of a recorded failover: never run it as a primary again.
                standby.stop()
                self._rebuild(deadline)
                return
            if not standby.running:
                standby.start(self._left(deadline), retry_port=self._fresh_ports)
            self._save_state()
            self.wait_sync(deadline)
        except BaseException:
            self.stop()
            raise

    def _left(self, deadline: float) -> float:
        return max(5.0, deadline - time.monotonic())

    def _base_backup(self, deadline: float) -> None:
        primary, standby = self.primary, self.standby
        _prepare_dir(standby.base_dir)
        shutil.rmtree(standby.data_dir, ignore_errors=True)
        with primary.connect() as conn:  # a slot left by an earlier standby of this node
            conn.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE slot_name = %s AND NOT active",
                (SLOT_NAME,),
            )
        conninfo = (
            f"host={primary.host} port={primary.port} user={PG_USER} "
            f"application_name={STANDBY_NAME}"
        )
        args = [_binary("pg_basebackup"), "-d", conninfo, "-D", str(standby.data_dir),
                "-R", "-X", "stream", "-C", "-S", SLOT_NAME, "--checkpoint=fast"]  # fmt: skip
        if not self.fsync:
            args.append("--no-sync")
        result = _run(args, timeout=self._left(deadline))
        if result.returncode != 0:
            raise PostgresStartError(
                f"pg_basebackup from port {primary.port} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}\n{self._logs()}"
            )

    def wait_sync(self, deadline: float | None = None) -> None:
        """Wait until the primary sees the standby streaming as its synchronous standby."""
        if deadline is None:
            deadline = time.monotonic() + self.timeout
        primary = self.primary

        def in_sync() -> bool:
            with primary.connect(connect_timeout=5) as conn:
                row = conn.execute(
                    "SELECT state, sync_state FROM pg_stat_replication WHERE application_name = %s",
                    (STANDBY_NAME,),
                ).fetchone()
            return row is not None and tuple(row) == ("streaming", "sync")

        _wait_for(f"{STANDBY_NAME} to stream in sync with the primary", in_sync, deadline,
                  self._logs)  # fmt: skip

    def stop(self) -> None:
        """Stop both nodes (idempotent); a temporary set's directory is removed."""
        try:
            for node in self.nodes:
                node.stop()
        finally:
            if self.temporary:
                shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> PostgresReplicaSet:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop_standby(self) -> None:
        self.standby.stop()

    def start_standby(self) -> None:
        """Start the standby again (after ``stop_standby``); does not wait for sync."""
        self.standby.start(self.timeout)

    def kill_primary(self) -> None:
        """SIGKILL every process of the primary (a crash)."""
        self.primary.kill()

    # -- failover ------------------------------------------------------------------------

    def promote(self) -> PostgresServer:
        """Make the standby the primary: ``pg_ctl promote``, then clear
        ``synchronous_standby_names`` on it so writes do not wait for a standby that is
        gone. Call only once the old primary is known dead. Returns the new primary."""
        deadline = time.monotonic() + self.timeout
        node = self.standby
        if not node.running:
            raise PostgresError(f"cannot promote: the standby on port {node.port} is not running")
        result = _run([_binary("pg_ctl"), "-D", str(node.data_dir), "-w", "-t",
                       str(int(self.timeout)), "promote"], timeout=self.timeout + 10)  # fmt: skip
        if result.returncode != 0:
            raise PostgresError(
                f"pg_ctl promote failed ({result.returncode}):\n{result.stdout}{result.stderr}\n"
                f"{self._logs()}"
            )
        with node.connect() as conn:
            conn.execute("ALTER SYSTEM SET synchronous_standby_names = ''")
            conn.execute("SELECT pg_reload_conf()")

        def writable_alone() -> bool:
            with node.connect(connect_timeout=5) as conn:
                row = conn.execute(
                    "SELECT pg_is_in_recovery(), current_setting('synchronous_standby_names')"
                ).fetchone()
            return row is not None and tuple(row) == (False, "")

        _wait_for(f"port {node.port} to run as a primary without a sync standby",
                  writable_alone, deadline, self._logs)  # fmt: skip
        self._primary_index = 1 - self._primary_index
        self._save_state()
        return node

    def rebuild_standby(self) -> None:
        """Replace the other node's data directory (e.g. the old primary after a failover)
        by a fresh base backup of the primary, start it as the synchronous standby, and
        make commits synchronous again."""
        standby = self.standby
        standby.stop()
        self._rebuild(time.monotonic() + self.timeout)

    def _rebuild(self, deadline: float) -> None:
        standby = self.standby
        self._base_backup(deadline)
        # The copy carries the primary's cleared setting in postgresql.auto.conf: drop it
        # there too, so the standby's own configuration is the replicated one again.
        auto = standby.data_dir / "postgresql.auto.conf"
        kept = [
            line
            for line in auto.read_text().splitlines()
            if not line.strip().startswith("synchronous_standby_names")
        ]
        auto.write_text("\n".join(kept) + "\n")
        standby.start(self._left(deadline))
        with self.primary.connect() as conn:
            conn.execute("ALTER SYSTEM RESET synchronous_standby_names")
            conn.execute("SELECT pg_reload_conf()")
        self.wait_sync(deadline)
