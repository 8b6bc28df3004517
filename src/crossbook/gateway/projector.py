"""The embedded ledger writer: durable batches from the runtime go to SQL on a thread.

On start it catches up from the journal (the projection may be behind after a crash
or a restart); afterwards it is fed each durable batch from memory. Writes are
idempotent (keyed by the input ``seq``), so overlap between the two is harmless.
History queries call :meth:`wait_for` with the seq they must see (read your writes).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Engine

from crossbook.journal.log import Journal
from crossbook.ledger.db import make_engine, migrate
from crossbook.ledger.writer import ProjectionWriter
from crossbook.projection import LOG_NAME, project

log = structlog.get_logger("crossbook.projector")

_STOP = object()


class Projector:
    def __init__(self, data_dir: Path, url: str) -> None:
        self.data_dir = data_dir
        self.url = url
        migrate(url)
        self.engine: Engine = make_engine(url)
        self.projected_seq = 0
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._cond = threading.Condition()
        self._error: BaseException | None = None

    def catch_up(self, journal: Journal) -> None:
        """Project what the journal has beyond the projection (synchronous)."""
        written = project(self.data_dir, self.url, journal=journal)
        self.projected_seq = journal.committed_seq
        log.info("projection caught up", items=written, seq=self.projected_seq)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self._thread.start()

    def feed(self, items: list[tuple[Any, list[Any]]]) -> None:
        """A runtime subscriber: queue one durable batch of (command, events)."""
        self._queue.put([(command.seq, events) for command, events in items])

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
        self.engine.dispose()

    def _run(self) -> None:
        with ProjectionWriter(self.url) as writer:
            while True:
                batch = self._queue.get()
                if batch is _STOP:
                    return
                # coalesce whatever else is waiting into one SQL transaction
                stop = False
                while not self._queue.empty():
                    more = self._queue.get()
                    if more is _STOP:
                        stop = True
                        break
                    batch.extend(more)
                try:
                    if batch:
                        writer.write(LOG_NAME, batch)
                except BaseException as exc:  # keep serving; history reads will report it
                    log.error("projection failed", error=repr(exc))
                    with self._cond:
                        self._error = exc
                        self._cond.notify_all()
                    return
                with self._cond:
                    if batch:
                        self.projected_seq = batch[-1][0]
                    self._cond.notify_all()
                if stop:
                    return

    async def wait_for(self, seq: int, timeout: float = 5.0) -> None:
        """Return once everything up to ``seq`` is in SQL."""
        if self.projected_seq >= seq:
            return

        def wait() -> None:
            with self._cond:
                ok = self._cond.wait_for(
                    lambda: self.projected_seq >= seq or self._error is not None, timeout
                )
            if self._error is not None:
                raise RuntimeError("the ledger projection failed") from self._error
            if not ok:
                raise TimeoutError(f"projection did not reach seq {seq}")

        await asyncio.get_running_loop().run_in_executor(None, wait)
