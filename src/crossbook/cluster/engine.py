"""The engine service of one market: reads ``orders-SYMBOL``, writes ``engine-SYMBOL``.

A durable pull consumer (explicit acks) delivers the forwarded commands in order; each
command the engine has not run yet (its seq is above ``last_seq``) is executed and its
COMMAND and EVENTS records appended to the engine's own log; the batch is committed
as one JetStream message, and only then are the consumed messages acked. A crash
between the commit and the acks redelivers them, and they are skipped; a crash before
the commit loses nothing that was acknowledged anywhere.

Restart: newest snapshot + the engine log's tail.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nats.aio.client import Client as NATS

from crossbook.bus.consumer import DurableConsumer, Record
from crossbook.bus.jetstream import JetStreamLog
from crossbook.cluster.health import metrics_of
from crossbook.cluster.recovery import (
    Recovered,
    commit_until_durable,
    completed_commands,
    replay_log,
)
from crossbook.cluster.shared_snapshots import SnapshotSharer, fetch_quietly
from crossbook.cluster.topology import engine_log, orders_log, service_dir
from crossbook.domain.codec import command_decoder, command_encoder
from crossbook.domain.markets import Market
from crossbook.engine.matching import MatchingEngine
from crossbook.journal.background import BackgroundSnapshots
from crossbook.journal.framing import COMMAND, EVENTS
from crossbook.journal.snapshots import SnapshotStore


@dataclass
class EngineStats:
    batches: int = 0
    commands: int = 0
    redelivered_skipped: int = 0
    last_seq: int = 0
    recovered: Recovered | None = None


class EngineService:
    """See the module doc. ``await start()``, then ``await run()`` until stopped."""

    def __init__(
        self,
        nc: NATS,
        data_dir: Path,
        market: Market,
        *,
        replicas: int = 1,
        batch_max: int = 512,
        snapshot_every: int = 200_000,
        ack_wait: float = 2.0,
    ) -> None:
        self.nc = nc
        self.ack_wait = ack_wait
        self.market = market
        self.replicas = replicas
        self.batch_max = batch_max
        self.snapshot_every = snapshot_every
        self.snapshots = SnapshotStore(
            service_dir(data_dir, engine_log(market.symbol)) / "snapshots"
        )
        self.background = BackgroundSnapshots(self.snapshots)
        self.stats = EngineStats()
        self._since_snapshot = 0
        self._stop = asyncio.Event()
        self._running = False
        self.on_commit: Callable[[float], None] | None = None

    def fresh_or_snapshot(self) -> MatchingEngine:
        """The engine of the newest valid snapshot, or a fresh one."""
        latest = self.snapshots.latest()
        if latest is None:
            return MatchingEngine([self.market])
        return MatchingEngine.restore(latest[1])

    async def follow(self, current: dict[str, MatchingEngine]) -> None:
        """A hot standby's work until it leads: keep ``current["engine"]`` equal to the
        leader's by applying its log as it grows (runs until cancelled; see
        :func:`completed_commands`)."""
        engine = current["engine"] = self.fresh_or_snapshot()
        log = engine_log(self.market.symbol)
        async for command in completed_commands(
            self.nc, log, engine.last_seq, replicas=self.replicas
        ):
            engine.execute(command)

    async def start(self, takeover: dict[str, Any] | None = None) -> None:
        """Open the logs as their writer and recover: from the newest snapshot, or from
        a hot standby's engine (``takeover["engine"]``, :meth:`follow`), plus the log's tail."""
        current = takeover.get("engine") if takeover else None
        symbol = self.market.symbol
        self.log = await JetStreamLog.open(
            self.nc, engine_log(symbol), replicas=self.replicas, fence=True
        )
        # the input log exists before its writer (accounts) starts, so the consumer can bind
        self._orders = await JetStreamLog.open(self.nc, orders_log(symbol), replicas=self.replicas)

        def apply(engine: MatchingEngine, command: object) -> list[object]:
            return list(engine.execute(command))  # type: ignore[arg-type]

        self.sharer = SnapshotSharer(
            self.nc.jetstream(), self.snapshots, engine_log(symbol), replicas=self.replicas
        )
        if current is None:  # on a new machine: the newest snapshot another instance shared
            await fetch_quietly(self.sharer, log_end=self.log.last_seq)
        self.engine, self.stats.recovered = await replay_log(
            self.log,
            self.snapshots,
            lambda: MatchingEngine([self.market]),
            MatchingEngine.restore,
            apply,
            current=current,
        )
        self._since_snapshot = self.stats.recovered.commands_replayed
        self.stats.last_seq = self.engine.last_seq
        # a short ack wait: after a crash, what the dead instance held unacked comes
        # back (and is skipped) within it, instead of stalling the market longer
        self.consumer = await DurableConsumer.open(
            self.nc, orders_log(symbol), f"engine-{symbol}", ack_wait=self.ack_wait
        )

    # -- the consumer's Applier -----------------------------------------------------------

    def position(self) -> tuple[int, int]:
        return (self.engine.last_seq, COMMAND)

    def apply(self, record: Record) -> None:
        if record.kind != COMMAND:
            return
        events = self.engine.execute(command_decoder.decode(record.payload))
        self.log.append(COMMAND, record.seq, record.payload)
        self.log.append(EVENTS, record.seq, command_encoder.encode(events))
        self.stats.commands += 1

    async def _commit(self) -> None:
        started = time.perf_counter()
        await commit_until_durable(self.log)
        if self.on_commit is not None:
            self.on_commit(time.perf_counter() - started)
        self.stats.batches += 1
        self.stats.last_seq = self.engine.last_seq

    # -------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Consume until :meth:`stop`; then take a snapshot."""
        self._running = True
        try:
            await self._consume()
        finally:
            self._running = False
        await asyncio.to_thread(self.background.finish)
        await self._snapshot()
        await self.sharer.close()

    async def _consume(self) -> None:
        while not self._stop.is_set():
            before = self.stats.commands
            stats = await self.consumer.poll(
                self, max_messages=self.batch_max, timeout=0.5, commit=self._commit
            )
            self.stats.redelivered_skipped += stats.skipped
            self._since_snapshot += self.stats.commands - before
            self.background.poll()
            self.sharer.offer_if_new(self.background.taken)
            # everything applied is committed here: the child may publish at once
            seq = self.engine.last_seq
            if self._since_snapshot >= self.snapshot_every and self.background.start(
                seq, self.engine.snapshot
            ):
                self.background.durable(seq)
                self._since_snapshot = 0

    def metrics(self) -> dict[str, float]:
        return metrics_of(
            self.stats,
            inputs=float(self.stats.commands),
            queue_depth=0.0,
            lag=float(self.consumer.last_pending),
        )

    @property
    def healthy(self) -> bool:
        return self._running

    async def _snapshot(self) -> None:
        if self._since_snapshot == 0:
            return
        data = self.engine.snapshot()
        await asyncio.to_thread(self.snapshots.write, self.engine.last_seq, data)
        await asyncio.to_thread(self.snapshots.prune, 2)
        self._since_snapshot = 0

    async def stop(self) -> None:
        self._stop.set()

    async def close(self) -> None:
        await self.consumer.close()
        for lg in (self.log, self._orders):
            with contextlib.suppress(Exception):
                await lg.close()
