"""The ledger writer service: the ``accounts-K`` log projected into SQL (PostgreSQL).

A durable pull consumer (explicit acks) delivers the log; the EVENTS records of each
fetched set are written with :class:`~crossbook.ledger.writer.ProjectionWriter` in one
database transaction that also records how far the projection got (its progress row,
keyed by log), and only then are the messages acked. Redeliveries (a crash between
the write and the acks) fall at or below that progress and are skipped; a write is
idempotent anyway. After each write the new progress is published on
:func:`progress_subject`, so that gateways serve history reads once SQL holds what a
client has seen (read your writes).

The projection's log name is the embedded one (``exchange``): the same tables and the
same queries serve both deployments.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from nats.aio.client import Client as NATS
from sqlalchemy.exc import OperationalError

from crossbook.bus.consumer import DurableConsumer, Record
from crossbook.cluster.health import metrics_of
from crossbook.cluster.topology import REQUEST_PREFIX, accounts_log
from crossbook.cluster.waiters import Waiters
from crossbook.domain.codec import events_decoder
from crossbook.journal.framing import EVENTS
from crossbook.ledger.db import make_engine, migrate
from crossbook.ledger.queries import progress
from crossbook.ledger.writer import ProjectionWriter
from crossbook.projection import LOG_NAME

log = structlog.get_logger("crossbook.cluster.ledger")


def projected_log(shard: int) -> str:
    """The name under which shard ``shard``'s log is projected (``projection_progress``)."""
    return LOG_NAME if shard == 0 else f"{LOG_NAME}-{shard}"


def progress_subject(shard: int) -> str:
    return f"{REQUEST_PREFIX}.ledger.{shard}.progress"


@dataclass
class LedgerStats:
    writes: int = 0
    records: int = 0
    last_seq: int = 0
    recovered: Any = None


class LedgerWriterService:
    def __init__(
        self,
        nc: NATS,
        database_url: str,
        *,
        shard: int = 0,
        shards: int = 1,
        batch_max: int = 256,
        retry_seconds: float = 60.0,
    ) -> None:
        self.nc = nc
        self.url = database_url
        self.shard = shard
        self.shards = shards
        self.log_name = projected_log(shard)
        self.batch_max = batch_max
        self.retry_seconds = retry_seconds
        self.stats = LedgerStats()
        self._pending: list[tuple[int, list[Any]]] = []
        self._stop = asyncio.Event()
        self._running = False
        self.on_commit: Callable[[float], None] | None = None

    async def start(self) -> None:
        await asyncio.to_thread(migrate, self.url)
        self.writer = ProjectionWriter(self.url, shard=self.shard, shards=self.shards)
        self.done = (await asyncio.to_thread(progress, self.url)).get(self.log_name, 0)
        self.stats.last_seq = self.done
        self.consumer = await DurableConsumer.open(
            self.nc, accounts_log(self.shard), f"ledger-writer-{self.shard}", ack_wait=30.0
        )
        await self._announce()

    def position(self) -> tuple[int, int]:
        return (self.done, EVENTS)

    def apply(self, record: Record) -> None:
        if record.kind == EVENTS:
            self._pending.append((record.seq, events_decoder.decode(record.payload)))

    async def _write(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        started = time.perf_counter()
        await self._write_retrying(batch)
        if self.on_commit is not None:
            self.on_commit(time.perf_counter() - started)
        self.done = batch[-1][0]
        self.stats.writes += 1
        self.stats.records += len(batch)
        self.stats.last_seq = self.done
        await self._announce()

    async def _write_retrying(self, batch: list[tuple[int, list[Any]]]) -> None:
        """One write, retried while the database is unreachable (a primary lost and its
        standby being promoted: the multi-host DSN reaches the new primary once it
        accepts writes), for about ``retry_seconds``. A write is all or nothing and
        idempotent, so a retry after an unknown outcome writes nothing twice."""
        deadline = time.monotonic() + self.retry_seconds
        while True:
            try:
                await asyncio.to_thread(self.writer.write, self.log_name, batch)
                return
            except OperationalError as exc:
                if time.monotonic() >= deadline:
                    raise
                log.warning("ledger write failed; retrying", error=str(exc).splitlines()[0])
                self.writer.engine.dispose()  # drop connections to the lost server
                await asyncio.sleep(0.5)

    async def _announce(self) -> None:
        await self.nc.publish(progress_subject(self.shard), str(self.done).encode())

    async def run(self) -> None:
        """Project until stopped; then what the log holds so far, so that a deployment
        stopped in order (writers first) leaves SQL complete."""
        self._running = True
        try:
            await self._project()
        finally:
            self._running = False

    def metrics(self) -> dict[str, float]:
        stats = self.stats
        return metrics_of(
            stats,
            inputs=float(stats.records),
            batches=float(stats.writes),
            queue_depth=float(len(self._pending)),
            lag=float(self.consumer.last_pending),
        )

    @property
    def healthy(self) -> bool:
        return self._running

    async def _project(self) -> None:
        while not self._stop.is_set():
            await self.consumer.poll(
                self, max_messages=self.batch_max, timeout=0.5, commit=self._write
            )
        # drain: until the server holds nothing more for this consumer (an empty poll
        # alone may be a stream electing its leader), for at most ``retry_seconds``
        deadline = time.monotonic() + self.retry_seconds
        while time.monotonic() < deadline:
            stats = await self.consumer.poll(
                self, max_messages=self.batch_max, timeout=0.5, commit=self._write
            )
            if not stats.messages and await self._drained():
                return
        log.warning("stopped before the log was fully projected", last_seq=self.done)

    async def _drained(self) -> bool:
        try:
            return await self.consumer.pending() == 0
        except Exception:  # the server is away: not known to be drained
            return False

    async def stop(self) -> None:
        self._stop.set()

    async def close(self) -> None:
        await self.consumer.close()
        with contextlib.suppress(Exception):
            self.writer.engine.dispose()


class LedgerProgress:
    """How far SQL holds the log, as a gateway sees it (``wait_for``, like the embedded
    :class:`~crossbook.gateway.projector.LedgerWriterProcess`)."""

    def __init__(self, nc: NATS, database_url: str, *, shard: int = 0) -> None:
        self.nc = nc
        self.url = database_url
        self.shard = shard
        self.projected_seq = 0
        self._waiters = Waiters()
        self.engine = make_engine(database_url)  # history queries read through it

    async def start(self) -> None:
        self._sub = await self.nc.subscribe(progress_subject(self.shard), cb=self._on_progress)
        seq = (await asyncio.to_thread(progress, self.url)).get(projected_log(self.shard), 0)
        await self._advance(seq)

    async def _on_progress(self, msg: Any) -> None:
        with contextlib.suppress(ValueError):
            await self._advance(int(msg.data))

    async def _advance(self, seq: int) -> None:
        if seq > self.projected_seq:
            self.projected_seq = seq
            self._waiters.moved()

    async def wait_for(self, seq: int, timeout: float = 5.0) -> None:
        if self.projected_seq >= seq:
            return
        try:
            await self._waiters.wait(lambda: self.projected_seq >= seq, timeout)
        except TimeoutError:
            raise TimeoutError(f"projection did not reach seq {seq}") from None

    def stop(self) -> None:
        """The subscription ends with the gateway's connection."""
        self.engine.dispose()


class ShardedLedgerProgress:
    """How far SQL holds every accounts shard's log, as a gateway of a sharded
    deployment sees it: ``wait_for`` waits until each shard's projection has reached
    what the gateway has seen of that shard's log (``published_seqs``), whatever seq
    it is given (a user's fill may be written by the other side's shard)."""

    def __init__(
        self, nc: NATS, database_url: str, shards: int, published_seqs: Callable[[], list[int]]
    ) -> None:
        self.parts = [LedgerProgress(nc, database_url, shard=k) for k in range(shards)]
        self.published_seqs = published_seqs
        self.engine = self.parts[0].engine  # history queries read through it

    async def start(self) -> None:
        for part in self.parts:
            await part.start()

    async def wait_for(self, seq: int, timeout: float = 5.0) -> None:
        for part, target in zip(self.parts, self.published_seqs(), strict=True):
            await part.wait_for(target, timeout)

    def stop(self) -> None:
        for part in self.parts:
            part.stop()
