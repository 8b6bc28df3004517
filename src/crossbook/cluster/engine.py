"""The engine service of one market: reads ``orders-SYMBOL[-K]``, writes ``engine-SYMBOL``.

Per accounts shard, a durable pull consumer (explicit acks) delivers the commands that
shard forwarded, in its order; the consumers are polled in turn. Each command the
engine has not run yet (above the last one run from its shard,
:class:`~crossbook.engine.sources.MultiSourceEngine`) is executed, and its COMMAND
(the forwarded command as it came) and EVENTS records are appended to the engine's
own log at the engine's next position; the batch is committed as one JetStream
message, and only then are the consumed messages acked. A crash between the commit
and the acks redelivers them, and they are skipped; a crash before the commit loses
nothing that was acknowledged anywhere.

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
from crossbook.engine.sources import MultiSourceEngine
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
        shards: int = 1,
        replicas: int = 1,
        batch_max: int = 512,
        snapshot_every: int = 200_000,
        ack_wait: float = 2.0,
    ) -> None:
        self.nc = nc
        self.ack_wait = ack_wait
        self.market = market
        self.shards = shards
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

    def fresh(self) -> MultiSourceEngine:
        return MultiSourceEngine([self.market], self.shards)

    def fresh_or_snapshot(self) -> MultiSourceEngine:
        """The engine of the newest valid snapshot, or a fresh one."""
        latest = self.snapshots.latest()
        return self.fresh() if latest is None else self.restore(latest[1])

    def restore(self, data: bytes) -> MultiSourceEngine:
        engine = MultiSourceEngine.restore(data)
        if engine.shards != self.shards:
            raise ValueError(
                f"the snapshot is of an engine fed by {engine.shards} accounts shards, "
                f"this deployment has {self.shards}"
            )
        return engine

    async def follow(self, current: dict[str, MultiSourceEngine]) -> None:
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
        # the input logs exist before their writers (accounts) start, so consumers can bind
        self._orders = [
            await JetStreamLog.open(self.nc, orders_log(symbol, k), replicas=self.replicas)
            for k in range(self.shards)
        ]

        def apply(engine: MultiSourceEngine, command: object) -> list[object]:
            return list(engine.execute(command))  # type: ignore[arg-type]

        self.sharer = SnapshotSharer(
            self.nc.jetstream(), self.snapshots, engine_log(symbol), replicas=self.replicas
        )
        if current is None:  # on a new machine: the newest snapshot another instance shared
            await fetch_quietly(self.sharer, log_end=self.log.last_seq)
        self.engine, self.stats.recovered = await replay_log(
            self.log,
            self.snapshots,
            self.fresh,
            self.restore,
            apply,
            current=current,
        )
        self._since_snapshot = self.stats.recovered.commands_replayed
        self.stats.last_seq = self.engine.last_seq
        # a short ack wait: after a crash, what the dead instance held unacked comes
        # back (and is skipped) within it, instead of stalling the market longer
        self.consumers = [
            await DurableConsumer.open(
                self.nc,
                orders_log(symbol, k),
                f"engine-{symbol}" if k == 0 else f"engine-{symbol}-{k}",
                ack_wait=self.ack_wait,
            )
            for k in range(self.shards)
        ]
        self._sources = [_Source(self, k) for k in range(self.shards)]

    def apply(self, record: Record) -> None:
        """Run one forwarded command (a COMMAND record of an orders log) and append it
        and its events to the engine log at the engine's new position."""
        if record.kind != COMMAND:
            return
        events = self.engine.run(command_decoder.decode(record.payload))
        if events is None:
            return  # ran already (the consumer skips those; this is a second guard)
        position = self.engine.position
        self.log.append(COMMAND, position, record.payload)
        self.log.append(EVENTS, position, command_encoder.encode(events))
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
        """Apply what the consumer brings until stopped."""
        if self.shards > 1:
            return await self._consume_sources()
        consumer, source = self.consumers[0], self._sources[0]
        while not self._stop.is_set():
            before = self.stats.commands
            stats = await consumer.poll(
                source, max_messages=self.batch_max, timeout=0.5, commit=self._commit
            )
            self.stats.redelivered_skipped += stats.skipped
            self._since_snapshot += self.stats.commands - before
            self._snapshot_if_due()

    async def _consume_sources(self) -> None:
        """With several sources, each has a fetch in flight all the time, and what one
        brings is applied as it comes, in this one loop (so a commit covers exactly what
        was applied before it)."""
        consumers, sources = self.consumers, self._sources
        fetches = [self._fetch(c) for c in consumers]
        try:
            while not self._stop.is_set():
                await asyncio.wait(fetches, return_when=asyncio.FIRST_COMPLETED)
                before = self.stats.commands
                for k, fetch in enumerate(fetches):
                    if not fetch.done():
                        continue
                    msgs = fetch.result()
                    fetches[k] = self._fetch(consumers[k])
                    stats = await consumers[k].apply(sources[k], msgs, commit=self._commit)
                    self.stats.redelivered_skipped += stats.skipped
                self._since_snapshot += self.stats.commands - before
                self._snapshot_if_due()
        finally:
            for fetch in fetches:
                fetch.cancel()  # what a cancelled fetch got is redelivered after ack_wait

    def _fetch(self, consumer: DurableConsumer) -> asyncio.Future[list[Any]]:
        return asyncio.ensure_future(consumer.fetch(self.batch_max, 0.5))

    def _snapshot_if_due(self) -> None:
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
            lag=float(sum(c.last_pending for c in self.consumers)),
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
        for consumer in self.consumers:
            await consumer.close()
        for lg in (self.log, *self._orders):
            with contextlib.suppress(Exception):
                await lg.close()


class _Source:
    """The consumer's :class:`~crossbook.bus.consumer.Applier` for one shard's orders
    log: its position is the last command of that shard the engine ran."""

    def __init__(self, service: EngineService, shard: int) -> None:
        self.service = service
        self.shard = shard

    def position(self) -> tuple[int, int]:
        return (self.service.engine.applied[self.shard], COMMAND)

    def apply(self, record: Record) -> None:
        self.service.apply(record)
