"""``crossbook cluster``: a complete production-style deployment on one machine.

Everything lives under the data dir and is stopped on exit:

- ``nats/``: a private nats-server with JetStream (or ``--replicas 3``: three clustered
  nodes, streams created with three replicas);
- ``postgres/``: a private PostgreSQL (kept across restarts), database ``crossbook``;
  or with ``--pg-standby`` a primary and a synchronous standby
  (``synchronous_commit=remote_apply``), reached through a multi-host DSN, so that the
  standby can be promoted when the primary is lost (:mod:`crossbook.infra.postgres`);
- one ``engine`` process per market, one ``accounts`` and one ``ledger-writer``
  process per accounts shard (``--accounts-shards``, fixed when the data dir is
  created: 1 by default), the ``marketdata`` process (the gateways' boot snapshots)
  and ``--gateways`` gateway processes, the first on ``--port`` and the next on the
  ports after it. Their logs are in ``logs/``. With ``--standbys`` each
  engine and the accounts service run twice: the instance holding its log's leader
  lease leads, the other waits to take over (:mod:`crossbook.cluster.runner`).

Order matters on start (engines, accounts, market data, ledger writer, gateways: each one's input
exists before it reads) and is reversed on stop (gateways first, so nothing new comes in).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from crossbook.bus.server import NatsCluster, NatsServer
from crossbook.cluster.processes import (
    ServiceError,
    ServiceProcess,
    accounts_process,
    engine_process,
    marketdata_process,
)
from crossbook.exchange.core import ExchangeConfig
from crossbook.infra.postgres import (
    PostgresReplicaSet,
    PostgresServer,
    start_postgres,
    stop_postgres,
)
from crossbook.service import DataDirConfig, load_config

DATABASE = "crossbook"
STANDBY_LEASE_TTL = 2.0
MARKETDATA_SNAPSHOT_INTERVAL = 30.0


@dataclass
class LocalCluster:
    data_dir: Path
    port: int = 8000
    host: str = "127.0.0.1"
    replicas: int = 1
    gateways: int = 1
    demo: bool = False
    market_maker: bool = True
    rate_limits: bool = True
    orders_per_second: int = 50
    snapshot_every: int = 200_000
    pg_standby: bool = False
    standbys: bool = False
    accounts_shards: int | None = None  # None: as the data dir says (1 for a new one)
    config: ExchangeConfig = field(init=False)
    nats: NatsServer | NatsCluster | None = None
    postgres: PostgresServer | PostgresReplicaSet | None = None
    processes: list[ServiceProcess] = field(default_factory=list)
    restart_timeout: float = 60.0
    _restarts: dict[str, list[float]] = field(default_factory=dict)

    @property
    def nats_url(self) -> str:
        assert self.nats is not None
        if isinstance(self.nats, NatsCluster):
            return ",".join(self.nats.urls)
        return self.nats.url

    @property
    def database_url(self) -> str:
        assert self.postgres is not None
        return self.postgres.dsn(DATABASE)

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    def urls(self) -> list[str]:
        return [f"http://{self.host}:{self.port + i}" for i in range(self.gateways)]

    def start(self, timeout: float = 60.0) -> LocalCluster:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        shards = self.accounts_shards or 1
        self.config = load_config(
            self.data_dir,
            DataDirConfig(kind="exchange", exchange=ExchangeConfig(accounts_shards=shards)),
        ).exchange
        if self.accounts_shards not in (None, self.config.accounts_shards):
            raise ValueError(
                f"{self.data_dir} holds {self.config.accounts_shards} accounts shards, not "
                f"{self.accounts_shards}: their users cannot be moved"
            )
        try:
            self._start_servers()
            self._start_services(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_servers(self) -> None:
        if self.replicas == 1:
            self.nats = NatsServer(self.data_dir / "nats" / "js").start()
        else:
            self.nats = NatsCluster(self.data_dir / "nats", size=self.replicas).start()
        if self.pg_standby:
            replica_set = PostgresReplicaSet(self.data_dir / "postgres-replicated")
            self.postgres = replica_set
            replica_set.start()
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                replica_set.primary.create_database(DATABASE)
        else:
            server = start_postgres(base_dir=self.data_dir / "postgres", fsync=True)
            self.postgres = server
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                server.create_database(DATABASE)

    def _start_services(self, timeout: float) -> None:
        url, every = self.nats_url, self.snapshot_every
        common = {
            "replicas": self.replicas,
            "snapshot_every": every,
            "log_dir": self.log_dir,
            "metrics_port": 0,
        }
        if self.standbys:
            common["lease_ttl"] = STANDBY_LEASE_TTL
        for market in self.config.markets:
            self._launch(engine_process(market.symbol, self.data_dir, url, **common), timeout)  # type: ignore[arg-type]
        shards = range(self.config.accounts_shards)
        for k in shards:
            self._launch(accounts_process(self.data_dir, url, shard=k, **common), timeout)  # type: ignore[arg-type]
        if self.standbys:  # a second instance of each, waiting for its log's lease
            for market in self.config.markets:
                standby = engine_process(market.symbol, self.data_dir, url, tag="-b", **common)  # type: ignore[arg-type]
                self._launch(standby, timeout)
            for k in shards:
                standby = accounts_process(self.data_dir, url, shard=k, tag="-b", **common)  # type: ignore[arg-type]
                self._launch(standby, timeout)
        self._launch(
            marketdata_process(
                self.data_dir, url, replicas=self.replicas, snapshot_every=every,
                snapshot_interval=MARKETDATA_SNAPSHOT_INTERVAL, log_dir=self.log_dir,
                metrics_port=0,
            ),
            timeout,
        )  # fmt: skip
        for k in shards:
            self._launch(
                ServiceProcess(
                    f"ledger-writer-{k}",
                    ["ledger-writer", "--shard", str(k), "--data-dir", str(self.data_dir),
                     "--nats-url", url, "--database-url", self.database_url,
                     "--metrics-port", "0"],
                    log_dir=self.log_dir,
                ),
                timeout,
            )  # fmt: skip
        for i in range(self.gateways):
            args = ["gateway", "--data-dir", str(self.data_dir), "--nats-url", url,
                    "--database-url", self.database_url, "--host", self.host,
                    "--port", str(self.port + i),
                    "--orders-per-second", str(self.orders_per_second),
                    "--rate-limits" if self.rate_limits else "--no-rate-limits"]  # fmt: skip
            if self.demo and i == 0:
                args.append("--demo")
                args.append("--market-maker" if self.market_maker else "--no-market-maker")
            self._launch(ServiceProcess(f"gateway-{i}", args, log_dir=self.log_dir), timeout)

    def _launch(self, process: ServiceProcess, timeout: float) -> None:
        self.processes.append(process)
        process.start(timeout, standby_ok=self.standbys)

    def start_servers(self) -> LocalCluster:
        """Only NATS and PostgreSQL, on the data dir's stores (to inspect a stopped
        deployment: ``crossbook verify``)."""
        self.config = load_config(self.data_dir).exchange
        try:
            self._start_servers()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> list[str]:
        """Stop everything started: gateways (nothing new comes in), accounts, engines,
        and the ledger writer last (it projects the log to its end first); then the
        servers. Returns what did not end cleanly."""
        problems = []
        order = ("gateway", "accounts", "engine", "marketdata", "ledger-writer")

        def rank(p: ServiceProcess) -> int:
            p.refresh()
            if p.standby:  # not writing: first, so that no leader's stop hands over
                return -1
            return next((i for i, k in enumerate(order) if p.name.startswith(k)), len(order))

        ranked = sorted(self.processes, key=rank)
        for process in ranked:
            code = process.stop()
            if code not in (0, None):
                problems.append(f"{process.name} exited with {code} (log: {process.log_file})")
        self.processes.clear()
        if isinstance(self.postgres, PostgresReplicaSet):
            self.postgres.stop()
        elif self.postgres is not None:
            stop_postgres(self.postgres)
        self.postgres = None
        if self.nats is not None:
            self.nats.stop()
            self.nats = None
        return problems

    def dead(self) -> list[ServiceProcess]:
        return [p for p in self.processes if not p.running()]

    def restart_dead(self, *, limit: int = 5, window: float = 60.0) -> list[str]:
        """Start again every service that ended (as a process supervisor would); the
        names restarted. Raises :class:`ServiceError` for one that ended more than
        ``limit`` times within ``window`` seconds (it will not get better alone)."""
        restarted = []
        now = time.monotonic()
        for process in self.dead():
            recent = [t for t in self._restarts.get(process.name, []) if now - t < window]
            if len(recent) >= limit:
                raise ServiceError(
                    f"{process.name} ended {len(recent) + 1} times in {window:.0f}s; "
                    f"see {process.log_file}"
                )
            self._restarts[process.name] = [*recent, now]
            process.start(self.restart_timeout, standby_ok=self.standbys)
            restarted.append(process.name)
        return restarted


def describe(cluster: LocalCluster) -> str:
    lines = [f"Crossbook cluster in {cluster.data_dir}"]
    lines += [f"  gateway: {u}" for u in cluster.urls()]
    lines.append(f"  NATS: {cluster.nats_url}")
    lines.append(f"  PostgreSQL: {cluster.database_url}")
    for p in cluster.processes:
        metrics = p.ready.get("metrics_port")
        health = f", health and metrics on 127.0.0.1:{metrics}" if metrics else ""
        lines.append(f"  {p.name}: pid {p.pid}{health}, log {p.log_file}")
    return "\n".join(lines)
