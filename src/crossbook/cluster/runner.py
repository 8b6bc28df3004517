"""Running one service as a process: ``crossbook service accounts|engine|marketdata|...``.

The process connects to NATS (reconnecting forever), starts the service, prints one
``ready`` line to stdout with what it recovered (and its ``metrics_port``: health and
Prometheus metrics, :mod:`crossbook.cluster.health`), and serves until SIGTERM or SIGINT;
then it finishes the batch in hand, writes a snapshot and exits 0. A service that
cannot go on (fenced off by another instance, or JetStream away for a minute) exits 1.

With ``--lease-ttl`` a service first takes the leader lease of the log it writes
(JetStream KV, renewed every third of the TTL). While another instance holds it, this
one is a standby: it prints ``{"standby": true}`` and waits; when the leader dies its
lease lapses within the TTL and the standby takes over and leads. Standbys are hot:
an engine or accounts standby applies its log as the leader writes it, so at takeover
only the last few records are left to apply. A
leader whose lease is taken stops at once and exits 1; fencing already refuses its
commits (the new leader's first act is a fenced marker).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats

from crossbook.bus.lease import Lease, LeaseHeld, LeaseLost, LeaseStore
from crossbook.cluster.accounts import AccountsService
from crossbook.cluster.engine import EngineService
from crossbook.cluster.health import Health
from crossbook.cluster.topology import accounts_log, engine_log
from crossbook.exchange.core import ExchangeConfig
from crossbook.ha.leader import lease_name
from crossbook.runtime import tune_gc
from crossbook.service import load_config


async def _connect(url: str) -> Any:
    return await nats.connect(
        url.split(","), max_reconnect_attempts=-1, reconnect_time_wait=0.1, connect_timeout=5
    )


@dataclass(frozen=True)
class LeaseSettings:
    """Take the lease of ``log`` before writing it; wait as a standby while another
    instance holds it (:class:`crossbook.ha.leader.Leadership`)."""

    servers: str
    log: str
    ttl: float
    replicas: int = 1


class Leader:
    """A leader lease held on the service's own connection: taken with
    :meth:`try_acquire`, renewed every third of its TTL by :meth:`keep`, which calls
    ``on_lost`` once if it cannot be (another instance took it, or it lapsed while the
    server was away)."""

    def __init__(self, store: LeaseStore, name: str, holder: str) -> None:
        self.store = store
        self.name = name
        self.holder = holder
        self.lease: Lease | None = None

    async def try_acquire(self) -> bool:
        try:
            self.lease = await asyncio.wait_for(self.store.acquire(self.name, self.holder), 10)
        except LeaseHeld:
            return False
        return True

    async def keep(self, on_lost: Callable[[str], None]) -> None:
        every = self.store.ttl / 3
        while self.lease is not None:
            await asyncio.sleep(every)
            lease = self.lease
            if lease is None:
                return
            try:
                self.lease = await asyncio.wait_for(self.store.renew(lease), every)
            except LeaseLost as exc:
                self.lease = None
                on_lost(str(exc))
                return
            except Exception as exc:  # the server away: retry until the lease lapses
                if lease.remaining() <= every:
                    self.lease = None
                    on_lost(f"lease {self.name!r} could not be renewed in time: {exc!r}")
                    return

    async def release(self) -> None:
        lease, self.lease = self.lease, None
        if lease is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.store.release(lease), 5)


async def _lead(
    service: Any,
    name: str,
    lease: LeaseSettings,
    stopping: asyncio.Event,
    on_standby: Callable[[], None] = lambda: None,
) -> Leader | None:
    """The lease, once it is ours (None if stopped first). While another instance
    holds it this process is a standby: it says so once (``on_standby``) and polls."""
    store = await asyncio.wait_for(
        LeaseStore.open(service.nc, ttl=lease.ttl, replicas=lease.replicas), 30
    )
    leader = Leader(store, lease_name(lease.log), f"{socket.gethostname()}-{os.getpid()}")
    said = False
    while not await leader.try_acquire():
        if not said:
            print(json.dumps({"service": name, "standby": True}), flush=True)
            said = True
            on_standby()
        try:
            await asyncio.wait_for(stopping.wait(), 0.2)
            return None
        except TimeoutError:
            pass
    return leader


async def _serve(
    service: Any, name: str, metrics_port: int | None = None, lease: LeaseSettings | None = None
) -> int:
    loop = asyncio.get_running_loop()
    if lease is None:
        return await _run_service(service, name, metrics_port, loop)
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    # a hot standby: it follows its log while it waits for the lease
    current: dict[str, Any] = {}
    follower: asyncio.Task[None] | None = None

    def follow() -> None:
        nonlocal follower
        if hasattr(service, "follow"):
            follower = asyncio.create_task(service.follow(current))

    try:
        leader = await _lead(service, name, lease, stopping, on_standby=follow)
    finally:
        if follower is not None:
            follower.cancel()
            with contextlib.suppress(BaseException):
                await follower
    if leader is None:
        await service.nc.close()
        return 0  # stopped while a standby
    service.takeover_from = current or None
    lost: list[str] = []
    stopping_tasks: list[asyncio.Task[None]] = []

    def on_lost(reason: str) -> None:  # another instance took over: stop at once
        lost.append(reason)
        stopping_tasks.append(loop.create_task(service.stop()))

    keeper = asyncio.create_task(leader.keep(on_lost))
    try:
        code = await _run_service(service, name, metrics_port, loop, before_close=leader)
    finally:
        keeper.cancel()
    if lost:
        print(f"{name}: leadership lost ({lost[0]}); stopped", file=sys.stderr, flush=True)
        return 1
    return code


async def _run_service(
    service: Any,
    name: str,
    metrics_port: int | None,
    loop: asyncio.AbstractEventLoop,
    before_close: Leader | None = None,
) -> int:
    current = getattr(service, "takeover_from", None)
    await (service.start() if current is None else service.start(current))
    health = None
    if metrics_port is not None:
        health = Health(name, service)
        service.on_commit = health.observe_commit
        metrics_port = await health.serve("127.0.0.1", metrics_port)
    tune_gc()  # recovered state out of the collector's way: fewer, shorter pauses
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: loop.create_task(service.stop()))
    recovered = service.stats.recovered
    ready = {
        "service": name,
        "ready": True,
        "last_seq": service.stats.last_seq,
        "snapshot_seq": recovered.snapshot_seq if recovered else 0,
        "replayed": recovered.commands_replayed if recovered else 0,
        "metrics_port": metrics_port,
    }
    print(json.dumps(ready), flush=True)
    try:
        await service.run()
    finally:
        if health is not None:
            await health.close()
        await service.close()
        if before_close is not None:
            await before_close.release()  # hand over at once: a standby need not wait
        await service.nc.close()
    return 0


def shard_error(shard: int, config: ExchangeConfig) -> str | None:
    """Why ``shard`` is not an accounts shard of the deployment, or ``None``."""
    shards = config.accounts_shards
    if 0 <= shard < shards:
        return None
    return f"shard {shard} does not exist: the deployment has {shards} (0..{shards - 1})"


def config_of_shard(data_dir: Path, shard: int) -> ExchangeConfig | None:
    """The deployment's configuration, or ``None`` (said on stderr) if ``shard`` is not
    one of its accounts shards."""
    config = load_config(data_dir).exchange
    if error := shard_error(shard, config):
        print(error, file=sys.stderr)
        return None
    return config


def run_accounts(
    data_dir: Path,
    nats_url: str,
    *,
    shard: int,
    replicas: int,
    snapshot_every: int = 200_000,
    metrics_port: int | None = None,
    lease_ttl: float | None = None,
) -> int:
    config = config_of_shard(data_dir, shard)
    if config is None:
        return 2
    lease = None
    if lease_ttl is not None:
        lease = LeaseSettings(nats_url, accounts_log(shard), lease_ttl, replicas)

    async def main() -> int:
        nc = await _connect(nats_url)
        service = AccountsService(
            nc, data_dir, config, shard=shard, replicas=replicas, snapshot_every=snapshot_every
        )
        return await _serve(service, f"accounts-{shard}", metrics_port, lease)

    return _run(main())


def run_engine(
    data_dir: Path,
    nats_url: str,
    *,
    market: str,
    replicas: int,
    snapshot_every: int = 200_000,
    metrics_port: int | None = None,
    lease_ttl: float | None = None,
) -> int:
    config = load_config(data_dir).exchange
    markets = {m.symbol: m for m in config.markets}
    lease = None
    if lease_ttl is not None:
        lease = LeaseSettings(nats_url, engine_log(market), lease_ttl, replicas)
    if market not in markets:
        print(f"unknown market {market!r}; configured: {', '.join(sorted(markets))}",
              file=sys.stderr)  # fmt: skip
        return 2

    async def main() -> int:
        nc = await _connect(nats_url)
        service = EngineService(
            nc, data_dir, markets[market], shards=config.accounts_shards, replicas=replicas,
            snapshot_every=snapshot_every,
        )  # fmt: skip
        return await _serve(service, f"engine-{market}", metrics_port, lease)

    return _run(main())


def run_ledger_writer(
    data_dir: Path,
    nats_url: str,
    database_url: str,
    *,
    shard: int,
    metrics_port: int | None = None,
) -> int:
    from crossbook.cluster.ledger import LedgerWriterService

    config = config_of_shard(data_dir, shard)
    if config is None:
        return 2

    async def main() -> int:
        nc = await _connect(nats_url)
        service = LedgerWriterService(nc, database_url, shard=shard, shards=config.accounts_shards)
        return await _serve(service, f"ledger-writer-{shard}", metrics_port)

    return _run(main())


def run_marketdata(
    data_dir: Path,
    nats_url: str,
    *,
    shard: int,
    replicas: int,
    snapshot_every: int = 100_000,
    snapshot_interval: float = 60.0,
    metrics_port: int | None = None,
) -> int:
    from crossbook.cluster.marketdata import MarketDataService

    config = config_of_shard(data_dir, shard)
    if config is None:
        return 2

    async def main() -> int:
        service = MarketDataService(
            nats_url, data_dir, config, shard=shard, replicas=replicas,
            snapshot_every=snapshot_every, snapshot_interval=snapshot_interval,
        )  # fmt: skip
        return await _serve(service, f"marketdata-{shard}", metrics_port)

    return _run(main())


def _run(main: Any) -> int:
    try:
        import uvloop

        return int(uvloop.run(main))
    except ImportError:
        return int(asyncio.run(main))
