"""The service's journal port over a JetStream log (:class:`SyncJetStreamLog`).

:class:`JetStreamJournal` gives a JetStream log the exact surface
``crossbook.service`` uses of the file journal (:class:`~crossbook.service.JournalPort`):

* ``append`` buffers, ``commit`` publishes the buffer as one fenced, deduplicated
  message and returns once the stream acknowledged it: the durability point.
* ``write`` / ``sync`` (the pipelined path): ``write`` commits synchronously on the
  caller's thread and ``sync`` has nothing left to do, so a pipelined batch is
  acknowledged only once the stream stored it. (The facade is not thread-safe, so
  the publish is not moved to the flusher thread.)
* ``records(after_seq, kind, check_all=...)`` returns a reader whose ``last_kind`` is
  the kind of the last record read, whatever the filter (records are always
  CRC-checked: every message is decoded whole).

A writer must be opened with ``fence=True`` and ``writer_id`` = its lease epoch; a
reader (a hot standby following the log) opens without and never commits.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType

from crossbook.bus.jetstream import DEFAULT_ACK_TIMEOUT, SyncJetStreamLog

__all__ = ["JetStreamJournal", "LogReader"]


class LogReader:
    """Iterator over committed records (see :meth:`JetStreamJournal.records`). Once
    exhausted, ``last_kind`` and ``last_seq`` describe the last record read, of any
    kind (0, 0 if none was read)."""

    __slots__ = ("_gen", "last_kind", "last_seq")

    def __init__(self, log: SyncJetStreamLog, after_seq: int, kind: int | None) -> None:
        self.last_kind = 0
        self.last_seq = 0
        self._gen = self._run(log, after_seq, kind)

    def __iter__(self) -> Iterator[tuple[int, int, bytes]]:
        return self._gen

    def __next__(self) -> tuple[int, int, bytes]:
        return next(self._gen)

    def _run(
        self, log: SyncJetStreamLog, after_seq: int, want: int | None
    ) -> Iterator[tuple[int, int, bytes]]:
        # read unfiltered: a message holds a batch's commands and events together, and
        # the caller needs the kind of the very last record
        for kind, seq, payload in log.records(after_seq):
            self.last_kind, self.last_seq = kind, seq
            if want is None or kind == want:
                yield kind, seq, payload


class JetStreamJournal:
    """A :class:`~crossbook.service.JournalPort` on the JetStream log ``name``."""

    def __init__(self, log: SyncJetStreamLog) -> None:
        self.log = log

    @classmethod
    def open(
        cls,
        servers: str | list[str],
        name: str,
        *,
        writer_id: str | None = None,
        fence: bool = False,
        replicas: int = 1,
        ack_timeout: float = DEFAULT_ACK_TIMEOUT,
    ) -> JetStreamJournal:
        """Open (creating if needed) the log; with ``fence`` as its new writer."""
        log = SyncJetStreamLog.open(
            servers,
            name,
            replicas=replicas,
            writer_id=writer_id,
            ack_timeout=ack_timeout,
            fence=fence,
        )
        return cls(log)

    @property
    def name(self) -> str:
        return self.log.log.name

    @property
    def last_seq(self) -> int:
        return self.log.last_seq

    @property
    def committed_seq(self) -> int:
        return self.log.committed_seq

    @property
    def fenced(self) -> bool:
        return self.log.log.fenced

    def append(self, kind: int, seq: int, payload: bytes | bytearray | memoryview) -> None:
        self.log.append(kind, seq, payload)

    def commit(self) -> None:
        """Publish the pending records; return once the stream stored them. Raises
        ``FencedError`` if another writer appended meanwhile (nothing is written)."""
        self.log.commit()

    def write(self) -> None:
        """The pipelined path's first half: here already the commit (see module doc)."""
        self.log.commit()

    def sync(self) -> None:
        """Everything written is already durable (``write`` commits)."""

    def fence(self) -> int:
        return self.log.fence()

    def refresh(self) -> None:
        self.log.refresh()

    def records(
        self, after_seq: int = 0, kind: int | None = None, *, check_all: bool = True
    ) -> LogReader:
        """Committed ``(kind, seq, payload)`` with ``seq > after_seq`` (of ``kind`` if
        given), as the stream holds them when called. ``check_all`` is accepted for
        the port's sake: every record read is CRC-checked."""
        return LogReader(self.log, after_seq, kind)

    def close(self) -> None:
        """Commit pending records (unless fenced off), then close. Idempotent."""
        try:
            if self.log.pending and not self.fenced:
                self.log.commit()
        finally:
            self.log.close()

    def __enter__(self) -> JetStreamJournal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
