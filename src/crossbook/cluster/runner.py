"""Running one service as a process: ``crossbook service accounts|engine``.

The process connects to NATS (reconnecting forever), starts the service, prints one
``ready`` line to stdout with what it recovered (and its ``metrics_port``: health and
Prometheus metrics, :mod:`crossbook.cluster.health`), and serves until SIGTERM or SIGINT;
then it finishes the batch in hand, writes a snapshot and exits 0. A service that
cannot go on (fenced off by another instance, or JetStream away for a minute) exits 1.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

import nats

from crossbook.cluster.accounts import AccountsService
from crossbook.cluster.engine import EngineService
from crossbook.cluster.health import Health
from crossbook.runtime import tune_gc
from crossbook.service import load_config


async def _connect(url: str) -> Any:
    return await nats.connect(
        url.split(","), max_reconnect_attempts=-1, reconnect_time_wait=0.1, connect_timeout=5
    )


async def _serve(service: Any, name: str, metrics_port: int | None = None) -> int:
    loop = asyncio.get_running_loop()
    await service.start()
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
        await service.nc.close()
    return 0


def run_accounts(
    data_dir: Path,
    nats_url: str,
    *,
    shard: int,
    replicas: int,
    snapshot_every: int = 200_000,
    metrics_port: int | None = None,
) -> int:
    config = load_config(data_dir).exchange

    async def main() -> int:
        nc = await _connect(nats_url)
        service = AccountsService(
            nc, data_dir, config, shard=shard, replicas=replicas, snapshot_every=snapshot_every
        )
        return await _serve(service, f"accounts-{shard}", metrics_port)

    return _run(main())


def run_engine(
    data_dir: Path,
    nats_url: str,
    *,
    market: str,
    replicas: int,
    snapshot_every: int = 200_000,
    metrics_port: int | None = None,
) -> int:
    config = load_config(data_dir).exchange
    markets = {m.symbol: m for m in config.markets}
    if market not in markets:
        print(f"unknown market {market!r}; configured: {', '.join(sorted(markets))}",
              file=sys.stderr)  # fmt: skip
        return 2

    async def main() -> int:
        nc = await _connect(nats_url)
        service = EngineService(
            nc, data_dir, markets[market], replicas=replicas, snapshot_every=snapshot_every
        )
        return await _serve(service, f"engine-{market}", metrics_port)

    return _run(main())


def run_ledger_writer(
    nats_url: str, database_url: str, *, shard: int, metrics_port: int | None = None
) -> int:
    from crossbook.cluster.ledger import LedgerWriterService

    async def main() -> int:
        nc = await _connect(nats_url)
        service = LedgerWriterService(nc, database_url, shard=shard)
        return await _serve(service, f"ledger-writer-{shard}", metrics_port)

    return _run(main())


def _run(main: Any) -> int:
    try:
        import uvloop

        return int(uvloop.run(main))
    except ImportError:
        return int(asyncio.run(main))
