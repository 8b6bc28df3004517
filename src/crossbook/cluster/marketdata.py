"""The market data service: ``crossbook service marketdata``.

It follows the accounts log exactly as a gateway does (:class:`ClusterRuntime`: the
exchange view, balances and books re-derived from the log) and keeps the market data
(L2 books with their update ids, trades, tickers, klines) up to date from the same
events. Every ``snapshot_every`` inputs, or every ``snapshot_interval`` seconds when
anything changed, it writes a boot snapshot (view + market data at one seq) to the
JetStream object store, and one more when it stops. Gateways start from the newest
boot snapshot and replay only the log after it, so their start does not grow with
the log (:mod:`crossbook.cluster.boot`). Several instances may run: each writes a
snapshot of the same log, and any of them is a valid starting point.

Klines and tickers survive restarts of the whole deployment through these snapshots
too: they are rebuilt from the trades in the log otherwise.

With several accounts shards it follows every shard's log and every engine's log as a
gateway of such a deployment does (:class:`ShardedClusterRuntime`; market data from
the engine logs), and writes boot snapshots of the kind
:class:`~crossbook.cluster.boot.ShardedBootSnapshot`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from crossbook.cluster.boot import (
    BootSnapshot,
    ShardedBootSnapshot,
    save_boot_snapshot,
    save_sharded_boot_snapshot,
)
from crossbook.cluster.gateway_runtime import ClusterRuntime
from crossbook.cluster.health import metrics_of
from crossbook.cluster.recovery import Recovered
from crossbook.cluster.sharded_runtime import ShardedClusterRuntime
from crossbook.exchange.core import ExchangeConfig
from crossbook.marketdata import MarketData

log = structlog.get_logger("crossbook.cluster.marketdata")

LAG_INTERVAL = 5.0
"""Seconds between reads of the log's end (for the lag metric)."""


@dataclass
class MarketDataStats:
    inputs: int = 0
    batches: int = 0
    last_seq: int = 0
    snapshots: int = 0
    snapshot_seq: int = 0
    snapshot_seconds: float = 0.0
    recovered: Recovered | None = None


class MarketDataService:
    def __init__(
        self,
        nats_url: str,
        data_dir: Path,
        config: ExchangeConfig,
        *,
        shard: int = 0,
        replicas: int = 1,
        snapshot_every: int = 100_000,
        snapshot_interval: float = 60.0,
    ) -> None:
        self.runtime: ClusterRuntime | ShardedClusterRuntime
        if config.accounts_shards > 1:
            self.runtime = ShardedClusterRuntime(data_dir, config, nats_url)
        else:
            self.runtime = ClusterRuntime(data_dir, config, nats_url, shard=shard)
        self.shard = shard
        self.replicas = replicas
        self.snapshot_every = snapshot_every
        self.snapshot_interval = snapshot_interval
        self.stats = MarketDataStats()
        self.marketdata = MarketData(config.markets)
        self.on_commit: Callable[[float], None] | None = None
        self._since_snapshot = 0
        self._log_end = 0
        self._stop = asyncio.Event()
        self._running = False

    @property
    def nc(self) -> Any:
        return self.runtime.nc

    async def start(self) -> None:
        """Boot from the newest snapshot (if any), replay the log after it, then follow."""
        started = time.perf_counter()
        boot = await self.runtime.connect()
        if boot is not None:
            self.marketdata = MarketData.restore(boot.marketdata)
        await self.runtime.catch_up([self.marketdata.apply])
        self.stats.recovered = Recovered(
            snapshot_seq=_seq_of(boot) if boot else 0,
            commands_replayed=self.runtime.replayed,
            seconds=time.perf_counter() - started,
        )
        self.stats.last_seq = self.runtime.published_seq
        self._since_snapshot = self.runtime.replayed
        self.runtime.subscribe(self._on_batch, feed="market")
        await self.runtime.start()

    def _on_batch(self, items: list[tuple[Any, list[Any]]]) -> None:
        apply = self.marketdata.apply
        for _command, events in items:
            apply(events)
        self.stats.inputs += len(items)
        self.stats.batches += 1
        self.stats.last_seq = self.runtime.published_seq
        self._since_snapshot += len(items)

    async def run(self) -> None:
        """Follow the log until :meth:`stop`; write boot snapshots as it goes and at the end."""
        self._running = True
        last = measured = time.monotonic()
        try:
            while not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 0.5)
                if self.runtime.failure is not None:
                    raise RuntimeError("lost the accounts log") from self.runtime.failure
                if time.monotonic() - measured >= LAG_INTERVAL:
                    measured = time.monotonic()
                    with contextlib.suppress(Exception):  # for the lag metric only
                        self._log_end = await self.runtime.log_end()
                    self.stats.last_seq = self.runtime.published_seq
                due = time.monotonic() - last >= self.snapshot_interval
                if self._since_snapshot >= self.snapshot_every or (due and self._since_snapshot):
                    await self.snapshot()
                    last = time.monotonic()
        finally:
            self._running = False
        if self._since_snapshot:
            await self.snapshot()

    async def snapshot(self) -> BootSnapshot | ShardedBootSnapshot:
        """Write the boot snapshot of the state as of now (the seqs the view has reached)."""
        started = time.perf_counter()
        runtime = self.runtime
        assert runtime.nc is not None
        js = runtime.nc.jetstream()
        markets = [m.symbol for m in runtime.config.markets]
        snap: BootSnapshot | ShardedBootSnapshot
        if isinstance(runtime, ShardedClusterRuntime):
            view = runtime.view
            snap = ShardedBootSnapshot(
                version=1,
                seqs=[m.last_seq for m in view.machines],
                positions={s: e.position for s, e in view.engines.items()},
                markets=markets,
                view=view.snapshot(),
                marketdata=self.marketdata.snapshot(),
            )
            await save_sharded_boot_snapshot(js, snap, replicas=self.replicas)
        else:
            snap = BootSnapshot(
                version=1,
                shard=self.shard,
                seq=runtime.view.last_seq,
                markets=markets,
                view=runtime.view.snapshot(),
                marketdata=self.marketdata.snapshot(),
            )
            await save_boot_snapshot(js, snap, replicas=self.replicas)
        self._since_snapshot = 0
        elapsed = time.perf_counter() - started
        self.stats.snapshots += 1
        self.stats.snapshot_seq = _seq_of(snap)
        self.stats.snapshot_seconds = elapsed
        if self.on_commit is not None:
            self.on_commit(elapsed)
        size = len(snap.view) + len(snap.marketdata)
        log.info("boot snapshot written", seq=_seq_of(snap), bytes=size, seconds=round(elapsed, 3))
        return snap

    def metrics(self) -> dict[str, float]:
        stats = self.stats
        return metrics_of(
            stats,
            snapshots=float(stats.snapshots),
            snapshot_seq=float(stats.snapshot_seq),
            lag=float(max(0, self._log_end - stats.last_seq)),
            queue_depth=0.0,
        )

    @property
    def healthy(self) -> bool:
        return self._running and self.runtime.failure is None

    async def stop(self) -> None:
        self._stop.set()

    async def close(self) -> None:
        await self.runtime.stop()


def _seq_of(snap: BootSnapshot | ShardedBootSnapshot) -> int:
    """Where a boot snapshot is, in ``published_seq``'s unit (summed over shards)."""
    return snap.seq if isinstance(snap, BootSnapshot) else sum(snap.seqs)
