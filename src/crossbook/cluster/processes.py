"""Service processes of a local deployment: start, wait until ready, stop, kill.

Used by ``crossbook cluster``, the cluster tests and the benchmarks. Each service
runs as ``python -m crossbook service ...`` with its output in a log file; it is
ready when it printed its ``ready`` line (see :mod:`crossbook.cluster.runner`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


class ServiceError(RuntimeError):
    """A service process did not start, or ended badly."""


class ServiceProcess:
    def __init__(
        self,
        name: str,
        args: list[str],
        *,
        log_dir: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.args = args
        self.log_dir = log_dir
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready: dict[str, Any] = {}
        self.standby = False  # waiting for its log's lease (``--lease-ttl``)

    @property
    def log_file(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    @property
    def ready_file(self) -> Path:
        return self.log_dir / f"{self.name}.out"

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 30.0, *, standby_ok: bool = False) -> ServiceProcess:
        """Start the process; wait until it is ready (or a standby, with
        ``standby_ok``) unless ``timeout`` is 0."""
        self.ready, self.standby = {}, False
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env}
        with open(self.ready_file, "wb") as out, open(self.log_file, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "crossbook", "service", *self.args],
                stdout=out,
                stderr=err,
                env=env,
                start_new_session=True,
            )
        return self.wait_ready(timeout, standby_ok=standby_ok) if timeout else self

    def wait_ready(self, timeout: float = 30.0, *, standby_ok: bool = False) -> ServiceProcess:
        """Until the process said it is ready (or, with ``standby_ok``, that it waits
        as a standby for its log's lease)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.refresh():
                return self
            if self.standby and standby_ok:
                return self
            if not self.running():
                raise ServiceError(f"{self.name} exited before it was ready:\n{self._tail()}")
            time.sleep(0.02)
        raise ServiceError(f"{self.name} not ready within {timeout}s:\n{self._tail()}")

    def refresh(self) -> bool:
        """Read what the process said: ready (then True), or waiting as a standby."""
        if not self.ready_file.exists():
            return False
        for line in self.ready_file.read_text().splitlines():
            if line.startswith("{"):
                said = json.loads(line)
                if said.get("ready"):
                    self.ready, self.standby = said, False
                    return True
                self.standby = bool(said.get("standby"))
        return False

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (a clean stop: snapshot, exit 0); SIGKILL if it does not end in time."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        """SIGKILL: a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def _tail(self, limit: int = 4000) -> str:
        try:
            return self.log_file.read_text()[-limit:]
        except OSError:
            return "(no log)"


def engine_process(
    market: str, data_dir: Path, nats_url: str, *, replicas: int = 1,
    snapshot_every: int = 200_000, log_dir: Path | None = None,
    metrics_port: int | None = None, lease_ttl: float | None = None, tag: str = "",
) -> ServiceProcess:  # fmt: skip
    return ServiceProcess(
        f"engine-{market}{tag}",
        ["engine", "--market", market, "--data-dir", str(data_dir), "--nats-url", nats_url,
         "--replicas", str(replicas), "--snapshot-every", str(snapshot_every),
         *_metrics(metrics_port), *_lease(lease_ttl)],
        log_dir=log_dir or data_dir / "logs",
    )  # fmt: skip


def accounts_process(
    data_dir: Path, nats_url: str, *, shard: int = 0, replicas: int = 1,
    snapshot_every: int = 200_000, log_dir: Path | None = None,
    metrics_port: int | None = None, lease_ttl: float | None = None, tag: str = "",
) -> ServiceProcess:  # fmt: skip
    return ServiceProcess(
        f"accounts-{shard}{tag}",
        ["accounts", "--shard", str(shard), "--data-dir", str(data_dir), "--nats-url", nats_url,
         "--replicas", str(replicas), "--snapshot-every", str(snapshot_every),
         *_metrics(metrics_port), *_lease(lease_ttl)],
        log_dir=log_dir or data_dir / "logs",
    )  # fmt: skip


def marketdata_process(
    data_dir: Path, nats_url: str, *, shard: int = 0, replicas: int = 1,
    snapshot_every: int = 100_000, snapshot_interval: float = 60.0,
    log_dir: Path | None = None, metrics_port: int | None = None,
) -> ServiceProcess:  # fmt: skip
    return ServiceProcess(
        f"marketdata-{shard}",
        ["marketdata", "--shard", str(shard), "--data-dir", str(data_dir), "--nats-url", nats_url,
         "--replicas", str(replicas), "--snapshot-every", str(snapshot_every),
         "--snapshot-interval", str(snapshot_interval), *_metrics(metrics_port)],
        log_dir=log_dir or data_dir / "logs",
    )  # fmt: skip


def _metrics(port: int | None) -> list[str]:
    return [] if port is None else ["--metrics-port", str(port)]


def _lease(ttl: float | None) -> list[str]:
    return [] if ttl is None else ["--lease-ttl", str(ttl)]
