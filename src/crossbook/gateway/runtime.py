"""The embedded exchange's asyncio runtime: one sequencer in front of the journaled core.

Requests from any number of connections call :meth:`ExchangeRuntime.submit`. A single
batcher task takes whatever is queued, stamps it (``seq``, ``ts``), executes it on the
core and writes it to the journal, and starts its fsync on the flusher thread
(:meth:`JournaledService.submit_pipelined`); while that fsync runs the next batch
executes. When a batch is durable its callers get their events and the batch is
published, in sequence order, to the subscribers (market data, user streams). Nothing
that is not durable is ever acknowledged or published.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from crossbook.exchange.core import ExchangeConfig, ExchangeCore
from crossbook.service import DataDirConfig, JournaledService

log = structlog.get_logger("crossbook.runtime")

Subscriber = Callable[[list[tuple[Any, list[Any]]]], None]
"""Called with a durable batch: a list of (stamped command, its events), in order."""


@dataclass
class Pending:
    command: Any
    result: asyncio.Future[tuple[Any, list[Any]]]


class ExchangeRuntime:
    """Owns the journaled exchange core of a data dir while the process runs."""

    def __init__(
        self,
        data_dir: Path,
        config: ExchangeConfig | None = None,
        *,
        fsync: bool = True,
        max_batch: int = 2_000,
        snapshot_every: int = 250_000,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.data_dir = data_dir
        self._config = DataDirConfig(kind="exchange", exchange=config or ExchangeConfig())
        self._fsync = fsync
        self._max_batch = max_batch
        self._snapshot_every = snapshot_every
        self._clock = clock
        self._queue: list[Pending] = []
        self._wake = asyncio.Event()
        self._subscribers: list[Subscriber] = []
        self._batcher: asyncio.Task[None] | None = None
        self._publishing: asyncio.Task[None] | None = None
        self._closing = False
        self._failed: BaseException | None = None
        self.service: JournaledService | None = None
        self.published_seq = 0

    # ------------------------------------------------------------- lifecycle

    def open(self) -> None:
        """Recover the data dir (snapshot + journal replay). Synchronous."""
        self.service = JournaledService(
            self.data_dir,
            config=self._config,
            fsync=self._fsync,
            snapshot_every=self._snapshot_every,
            clock=self._clock,
        )
        self.published_seq = self.service.machine.last_seq
        recovery = self.service.recovery
        log.info(
            "recovered",
            data_dir=str(self.data_dir),
            last_seq=self.published_seq,
            snapshot_seq=recovery.snapshot_seq,
            replayed=recovery.commands_replayed,
            seconds=round(recovery.seconds, 3),
        )

    async def start(self) -> None:
        if self.service is None:
            self.open()
        self._batcher = asyncio.create_task(self._run_batches(), name="crossbook-batcher")

    async def stop(self) -> None:
        """Finish queued work, wait until it is durable and published, close the journal."""
        self._closing = True
        self._wake.set()
        if self._batcher is not None:
            await self._batcher
        if self._publishing is not None:
            await self._publishing
        if self.service is not None:
            if self._failed is None and self.service.machine.last_seq:
                self.service.take_snapshot()  # the next start replays nothing
            self.service.close()
            log.info("closed", last_seq=self.service.machine.last_seq)

    # ---------------------------------------------------------------- access

    @property
    def core(self) -> ExchangeCore:
        assert self.service is not None, "runtime not open"
        machine = self.service.machine
        assert isinstance(machine, ExchangeCore)
        return machine

    @property
    def accepting(self) -> bool:
        """Whether submissions are taken (not shutting down, no journal failure)."""
        return not self._closing and self._failed is None

    def subscribe(self, subscriber: Subscriber, feed: str = "accounts") -> None:
        """``subscriber`` gets each durable batch of the log; ``feed`` (``"market"`` or
        ``"accounts"``) matters only to a sharded gateway: one log holds both here."""
        self._subscribers.append(subscriber)

    async def submit(self, command: Any) -> tuple[Any, list[Any]]:
        """Sequence ``command`` (its ``seq``/``ts`` are assigned here) and return the
        stamped command with its events once they are durable."""
        if self._failed is not None:
            raise RuntimeError("the exchange stopped after a journal failure") from self._failed
        if self._closing:
            raise RuntimeError("the exchange is shutting down")
        result: asyncio.Future[tuple[Any, list[Any]]] = asyncio.get_running_loop().create_future()
        self._queue.append(Pending(command, result))
        self._wake.set()
        return await result

    # ------------------------------------------------------------------ loop

    async def _run_batches(self) -> None:
        assert self.service is not None
        service = self.service
        stamp = service.sequencer.stamp
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                stamped = [stamp(p.command) for p in batch]
                try:
                    durable = service.submit_pipelined(stamped)
                except Exception as exc:  # journal failure: nothing of this batch is acked
                    # the journal refuses further use after a failed write: stop taking
                    # orders, fail what waits, and leave recovery to a restart
                    log.error("batch failed; the exchange stops accepting", error=repr(exc))
                    self._failed = exc
                    for p in [*batch, *self._queue]:
                        if not p.result.done():
                            p.result.set_exception(exc)
                    self._queue.clear()
                    return
                previous = self._publishing
                self._publishing = asyncio.create_task(
                    self._publish(previous, batch, stamped, durable)
                )
                await asyncio.sleep(0)  # let requests in between batches
            if self._closing and not self._queue:
                return

    async def _publish(
        self,
        previous: Awaitable[None] | None,
        batch: list[Pending],
        stamped: list[Any],
        durable: Future[list[list[Any]]],
    ) -> None:
        if previous is not None:
            with contextlib.suppress(Exception):
                await previous
        try:
            results = await asyncio.wrap_future(durable)
        except Exception as exc:
            for p in batch:
                if not p.result.done():
                    p.result.set_exception(exc)
            return
        items = list(zip(stamped, results, strict=True))
        for subscriber in self._subscribers:
            try:
                subscriber(items)
            except Exception as exc:  # a broken subscriber must not block the exchange
                log.error("subscriber failed", subscriber=repr(subscriber), error=repr(exc))
        if items:
            self.published_seq = items[-1][0].seq
        for p, item in zip(batch, items, strict=True):
            if not p.result.done():
                p.result.set_result(item)
