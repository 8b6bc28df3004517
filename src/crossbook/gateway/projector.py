"""The embedded ledger writer, seen from the exchange process.

A child process (:mod:`crossbook.gateway.ledger_writer`) projects the journal into SQL;
this side tells it how far the journal is durable and learns how far SQL has got.
On start the child catches up on its own (the projection may be behind after a crash
or a restart). Writes are idempotent (keyed by the input ``seq``). History queries call
:meth:`LedgerWriterProcess.wait_for` with the seq they must see (read your writes).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Engine

from crossbook.journal.log import Journal
from crossbook.ledger.db import make_engine, migrate

log = structlog.get_logger("crossbook.projector")

_STOP = object()


class LedgerWriterProcess:
    """The ledger writer as a child process (see :mod:`crossbook.gateway.ledger_writer`),
    fed with the seqs the exchange has made durable; history reads wait on it."""

    def __init__(self, data_dir: Path, url: str) -> None:
        import subprocess
        import sys

        self.data_dir = data_dir
        self.url = url
        migrate(url)
        self.engine: Engine = make_engine(url)
        self.projected_seq = 0
        self._cond = threading.Condition()
        self._error: BaseException | None = None
        self._last_fed = 0
        self._durable_hint = 0
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "crossbook.gateway.ledger_writer", str(data_dir), url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, name="ledger-writer-reader", daemon=True)
        assert self._proc.stdin is not None
        self._stdin_fd: int | None = self._proc.stdin.fileno()
        os.set_blocking(self._stdin_fd, False)

    def catch_up(self, journal: Journal) -> None:
        """Hand the child what is durable already; it catches up on its own."""
        self._durable_hint = journal.committed_seq
        self._send(journal.committed_seq)

    def start(self) -> None:
        self._reader.start()

    def feed(self, items: list[tuple[Any, list[Any]]]) -> None:
        if items:
            self._durable_hint = items[-1][0].seq
            self._send(self._durable_hint)

    def _send(self, seq: int) -> None:
        """Tell the child how far the journal is durable. Never blocks the exchange: the
        pipe is non-blocking and only the newest seq matters, so a full pipe just
        means this one is told with the next batch."""
        if seq <= self._last_fed or self._stdin_fd is None:
            return
        try:
            os.write(self._stdin_fd, f"D {seq}\n".encode())
        except BlockingIOError:
            return
        except (BrokenPipeError, OSError) as exc:
            with self._cond:
                self._error = exc
                self._cond.notify_all()
            return
        self._last_fed = seq

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            if line.startswith("P "):
                with self._cond:
                    self.projected_seq = int(line[2:])
                    self._cond.notify_all()
                if self._durable_hint > self._last_fed:  # a seq a full pipe held back
                    self._send(self._durable_hint)
        code = self._proc.wait()
        if code != 0:
            log.error("ledger writer exited", code=code)
            with self._cond:
                self._error = RuntimeError(f"ledger writer exited with {code}")
                self._cond.notify_all()

    def stop(self) -> None:
        if self._stdin_fd is not None:
            os.set_blocking(self._stdin_fd, True)
            # the last durable seq, whatever a full pipe may have swallowed
            with contextlib.suppress(OSError):
                os.write(self._stdin_fd, f"D {self._durable_hint}\n".encode())
            self._stdin_fd = None
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        self._proc.wait(timeout=120)
        self._reader.join(timeout=10)
        self.engine.dispose()

    async def wait_for(self, seq: int, timeout: float = 5.0) -> None:
        if self.projected_seq >= seq:
            return
        if self._durable_hint > self._last_fed:
            self._send(self._durable_hint)

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
