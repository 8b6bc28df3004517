"""Append-only, segmented, CRC-framed journal with group commit.

On-disk layout: a directory of segment files ``journal-{first_seq:020d}.log``, each a
concatenation of records framed by ``crossbook.journal.framing``.

Invariants (checked by ``open``/``verify``/``records``):

* Every record has ``seq >= 1``; seqs never decrease, within a segment and across
  segments (several records may share a seq, e.g. a COMMAND and its EVENTS).
* A segment's name is the seq of its first record, and names strictly increase, so
  segment ``i`` only holds seqs in ``[first_i, first_{i+1}]``.
* Only the last segment may end in a torn or corrupt record (a crash mid-write);
  ``open`` truncates it there. Damage anywhere else raises ``JournalCorrupted``:
  a committed record is never silently skipped or dropped from the middle.
* What ``commit`` returned from is on disk (after one ``fsync`` of the segment, plus
  one of the directory when the batch started a new segment) unless ``fsync=False``.

Not thread-safe, and one writer per directory.
"""

from __future__ import annotations

import dataclasses
import os
import re
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from crossbook.journal.framing import (
    CRC_START,
    HEADER,
    MAX_PAYLOAD,
    MAX_SEQ,
    Stop,
    check_record,
    iter_records,
    record_crc,
)

__all__ = [
    "DEFAULT_SEGMENT_BYTES",
    "Journal",
    "JournalCorrupted",
    "JournalError",
    "Recovery",
    "segment_name",
]

DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
_SEGMENT_RE = re.compile(r"journal-(\d{20})\.log")


def segment_name(first_seq: int) -> str:
    """File name of the segment whose first record has seq ``first_seq``."""
    return f"journal-{first_seq:020d}.log"


class JournalError(Exception):
    """The journal cannot be used (closed, or failed during a write)."""


class JournalCorrupted(JournalError):
    """Committed data is damaged or inconsistent (never a recoverable torn tail)."""

    def __init__(self, path: Path, offset: int, reason: str) -> None:
        super().__init__(f"{path}: offset {offset}: {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason


@dataclasses.dataclass(frozen=True, slots=True)
class Recovery:
    """What ``Journal.open`` found and repaired.

    ``truncated_bytes`` were cut from the tail of ``truncated_segment`` because they
    were not a whole valid record (``stop`` says torn or corrupt, ``detail`` how).
    ``removed_segments`` were trailing segments left without any whole record.
    """

    segments: int = 0
    truncated_segment: Path | None = None
    truncated_bytes: int = 0
    stop: Stop = Stop.CLEAN
    detail: str = ""
    removed_segments: tuple[Path, ...] = ()

    @property
    def clean(self) -> bool:
        """True iff nothing had to be cut or removed."""
        return self.truncated_bytes == 0 and not self.removed_segments


@dataclasses.dataclass(slots=True)
class _Segment:
    first_seq: int
    path: Path


@dataclasses.dataclass(slots=True)
class _Scan:
    end: int
    stop: Stop
    detail: str
    count: int
    last_seq: int


def _stop_name(stop: Stop | None) -> str:
    return "unfinished" if stop is None else f"{stop.value} record"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read(path: Path, limit: int | None = None) -> bytes:
    """The file's content (its first ``limit`` bytes if given), in one read."""
    with path.open("rb", buffering=0) as f:
        if limit is None:
            return f.readall()
        data = f.read(limit) or b""
        while len(data) < limit:  # short reads are rare but allowed
            more = f.read(limit - len(data))
            if not more:
                break
            data += more
        return data


def _scan(segment: _Segment, data: bytes, prev_seq: int) -> _Scan:
    """Check a segment's records: seqs non-decreasing from ``prev_seq``, first == name."""
    it = iter_records(data)
    last = prev_seq
    for off, _kind, seq, _payload in it:
        if seq < last or seq < 1:
            raise JournalCorrupted(segment.path, off, f"seq {seq} after seq {last}")
        if off == 0 and seq != segment.first_seq:
            raise JournalCorrupted(
                segment.path, 0, f"first record has seq {seq}, name says {segment.first_seq}"
            )
        last = seq
    assert it.stop is not None
    return _Scan(it.end, it.stop, it.detail, it.count, last)


class RecordReader:
    """Iterator over a journal's records (see ``Journal.records``). Once exhausted,
    ``last_kind`` and ``last_seq`` describe the last record read, of any kind."""

    __slots__ = ("_gen", "last_kind", "last_seq")

    def __init__(
        self,
        segments: list[_Segment],
        last_size: int,
        after_seq: int,
        kind: int | None,
        check_all: bool = True,
    ) -> None:
        self.last_kind = 0
        self.last_seq = 0
        self._gen = self._run(segments, last_size, after_seq, kind, check_all)

    def __iter__(self) -> Iterator[tuple[int, int, bytes]]:
        return self._gen

    def __next__(self) -> tuple[int, int, bytes]:
        return next(self._gen)

    def _run(
        self,
        segments: list[_Segment],
        last_size: int,
        after_seq: int,
        want: int | None,
        check_all: bool,
    ) -> Iterator[tuple[int, int, bytes]]:
        prev = 0
        kind = 0
        unpack = HEADER.unpack_from
        crc32 = zlib.crc32
        hsize = HEADER.size
        crc_start = CRC_START
        max_payload = MAX_PAYLOAD
        for i, seg in enumerate(segments):
            data = _read(seg.path, last_size if i == len(segments) - 1 else None)
            # The hot loop of replay: framing checks inlined (no per-record generator
            # of iter_records); any anomaly is re-diagnosed by iter_records below.
            view = memoryview(data)
            size = len(data)
            off = 0
            first = True
            while off + hsize <= size:
                length, crc, kind, seq = unpack(data, off)
                end = off + hsize + length
                if (
                    length > max_payload
                    or end > size
                    or seq < prev
                    or (first and seq != seg.first_seq)
                ):
                    break
                # with a kind filter, records of other kinds are framed but not CRC-checked
                # (recovery re-derives events; ``verify`` reads everything unfiltered)
                wanted = want is None or kind == want
                if (wanted or check_all) and crc32(view[off + crc_start : end]) != crc:
                    break
                first = False
                prev = seq
                if wanted and seq > after_seq:
                    yield kind, seq, data[off + hsize : end]
                off = end
            if off != size:
                it = iter_records(data, off)
                for rec_off, _kind, seq, _payload in it:
                    raise JournalCorrupted(seg.path, rec_off, f"seq {seq} out of order")
                raise JournalCorrupted(seg.path, it.end, f"{_stop_name(it.stop)}: {it.detail}")
            self.last_kind, self.last_seq = kind, prev


class Journal:
    """A durable, append-only log of ``(kind, seq, payload)`` records.

    Use ``Journal.open``. ``append`` only buffers; ``commit`` makes the whole buffer
    durable with one write and one fsync (group commit). ``records`` reads what was
    committed. ``last_seq`` counts appended records (committed or not),
    ``committed_seq`` only committed ones; both are 0 for an empty journal.
    """

    def __init__(
        self,
        directory: Path,
        segments: list[_Segment],
        *,
        last_seq: int,
        segment_size: int,
        segment_bytes: int,
        fsync: bool,
        recovery: Recovery,
    ) -> None:
        """Internal: use ``Journal.open``."""
        self.directory = directory
        self.recovery = recovery
        self._segments = segments
        self._segment_bytes = segment_bytes
        self._fsync = fsync
        self._buf = bytearray()
        self._pending_first_seq = 0
        self._last_seq = last_seq
        self._committed_seq = last_seq  # durable
        self._written_seq = last_seq  # written to the OS, maybe not yet durable
        self._size = segment_size  # bytes written to the last segment
        self._durable_size = segment_size  # bytes of the last segment known durable
        self._writes = 0  # count of writes handed to the OS
        self._synced_writes = 0  # count of those known durable
        # ``sync`` may run in another thread: _fd_lock keeps the fd from being swapped
        # (segment roll) during an fsync; _state_lock guards the counters above.
        self._fd_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._fd: int | None = None
        self._closed = False
        self._failed: BaseException | None = None
        if segments:
            self._fd = os.open(segments[-1].path, os.O_WRONLY | os.O_APPEND)

    # -- opening and recovery ------------------------------------------------------------

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        *,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        fsync: bool = True,
        verify: bool = True,
    ) -> Journal:
        """Open (creating it if needed) and recover the journal in ``directory``.

        The last segment is scanned; a torn or corrupt tail is truncated at the end of
        its last whole record, and a trailing segment left empty is deleted (see
        ``recovery``). With ``verify`` (the default) every earlier segment is scanned
        too and any damage there raises ``JournalCorrupted``; ``verify=False`` skips
        that full read (``records`` still checks every segment it reads).
        """
        if segment_bytes < 1:
            raise ValueError("segment_bytes must be positive")
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        segments = [
            _Segment(int(m.group(1)), path / m.group(0))
            for m in (_SEGMENT_RE.fullmatch(entry.name) for entry in os.scandir(path))
            if m is not None
        ]
        segments.sort(key=lambda s: s.first_seq)
        total = len(segments)

        # Plan the repair of the trailing segments: nothing is changed on disk before
        # every check passed, so a JournalCorrupted leaves the files as they were.
        removed: list[Path] = []  # trailing segments without a whole record
        truncated: Path | None = None  # the segment whose damaged tail is cut
        cut = 0
        stop, detail = Stop.CLEAN, ""
        tail: _Scan | None = None  # scan of the last segment that keeps records
        while segments:
            last = segments[-1]
            data = _read(last.path)
            scan = _scan(last, data, 0)
            if scan.stop is not Stop.CLEAN:
                if removed:
                    # A segment followed by another one was complete when it was left.
                    raise JournalCorrupted(
                        last.path, scan.end, f"{_stop_name(scan.stop)}: {scan.detail}"
                    )
                truncated, cut = last.path, len(data) - scan.end
                stop, detail = scan.stop, scan.detail
            if scan.count:
                tail = scan
                break
            removed.append(last.path)
            segments.pop()

        if verify and segments:
            prev = 0
            for i, seg in enumerate(segments[:-1]):
                s = _scan(seg, _read(seg.path), prev)
                if s.stop is not Stop.CLEAN:
                    raise JournalCorrupted(seg.path, s.end, f"{_stop_name(s.stop)}: {s.detail}")
                if s.count == 0:
                    raise JournalCorrupted(seg.path, 0, "empty segment before the last one")
                if s.last_seq > segments[i + 1].first_seq:
                    raise JournalCorrupted(
                        seg.path, s.end, f"last seq {s.last_seq} > next segment's first"
                    )
                prev = s.last_seq

        # Apply the repair.
        if tail is not None and truncated == segments[-1].path:
            os.truncate(truncated, tail.end)
            if fsync:
                fd = os.open(truncated, os.O_WRONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        for dead in removed:
            dead.unlink()
        if removed and fsync:
            _fsync_dir(path)

        recovery = Recovery(
            segments=total,
            truncated_segment=truncated,
            truncated_bytes=cut,
            stop=stop,
            detail=detail,
            removed_segments=tuple(removed),
        )
        return cls(
            path,
            segments,
            last_seq=tail.last_seq if tail else 0,
            segment_size=tail.end if tail else 0,
            segment_bytes=segment_bytes,
            fsync=fsync,
            recovery=recovery,
        )

    # -- state -----------------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        """Seq of the last appended record (committed or pending); 0 if none."""
        return self._last_seq

    @property
    def committed_seq(self) -> int:
        """Seq of the last committed record; 0 if none."""
        return self._committed_seq

    @property
    def pending_bytes(self) -> int:
        """Bytes appended but not yet committed."""
        return len(self._buf)

    @property
    def segments(self) -> list[Path]:
        """Paths of the segment files, oldest first."""
        return [s.path for s in self._segments]

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_usable(self) -> None:
        if self._closed:
            raise JournalError("journal is closed")
        if self._failed is not None:
            raise JournalError("journal failed during a write; reopen it to recover")

    # -- writing ---------------------------------------------------------------------------

    def append(self, kind: int, seq: int, payload: bytes | bytearray | memoryview) -> None:
        """Buffer one record; durable only after ``commit``.

        Raises ``ValueError`` if ``seq < 1``, ``seq < last_seq`` or a field cannot be
        framed; nothing is buffered then.
        """
        self._check_usable()
        if seq < self._last_seq or seq < 1:
            raise ValueError(f"seq {seq} must be >= 1 and >= last seq {self._last_seq}")
        length = len(payload)
        if kind < 1 or kind > 255 or seq > MAX_SEQ or length > MAX_PAYLOAD:
            check_record(kind, seq, length)
        if not self._buf:
            self._pending_first_seq = seq
        self._buf += HEADER.pack(length, record_crc(kind, seq, payload), kind, seq)
        self._buf += payload
        self._last_seq = seq

    def commit(self) -> None:
        """Write all pending records with one write and one fsync (if enabled).

        Starts a new segment first if the current one has reached ``segment_bytes``
        (and the batch's first seq is greater than the current segment's). On an
        I/O error the journal refuses further use; reopening it recovers.
        """
        self.write()
        self.sync()

    def write(self) -> None:
        """The first half of ``commit``: hand all pending records to the OS with one
        write, without fsync. Nothing written is durable (nor visible to ``records``)
        until a later ``sync``; a pipelined service overlaps that fsync with its next
        batch and acknowledges the batch only when it is durable."""
        self._check_usable()
        if not self._buf:
            return
        try:
            if self._fd is None or (
                self._size >= self._segment_bytes
                and self._pending_first_seq > self._segments[-1].first_seq
            ):
                with self._fd_lock:
                    if self._fd is not None and self._fsync:
                        os.fsync(self._fd)  # the old segment is complete and durable
                    self._start_segment(self._pending_first_seq)
                    with self._state_lock:
                        self._committed_seq = self._written_seq
                        self._synced_writes = self._writes
                        self._durable_size = 0
            fd = self._fd
            assert fd is not None
            buf = self._buf
            written = os.write(fd, buf)
            while written < len(buf):
                written += os.write(fd, buf[written:])
        except BaseException as exc:
            self._failed = exc
            raise
        with self._state_lock:
            self._size += len(buf)
            self._written_seq = self._last_seq
            self._writes += 1
        buf.clear()

    def sync(self) -> None:
        """Make everything written so far durable (one fsync). Safe to call from
        another thread than the writer's; concurrent writes are covered by a later
        sync."""
        with self._fd_lock:
            with self._state_lock:
                size, seq, writes = self._size, self._written_seq, self._writes
            if writes == self._synced_writes:
                return
            fd = self._fd
            try:
                if self._fsync and fd is not None:
                    os.fsync(fd)
            except BaseException as exc:
                self._failed = exc
                raise
            with self._state_lock:
                self._durable_size = size
                self._committed_seq = seq
                self._synced_writes = writes

    def _start_segment(self, first_seq: int) -> None:
        path = self.directory / segment_name(first_seq)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
        if self._fd is not None:
            os.close(self._fd)
        self._fd = fd
        self._segments.append(_Segment(first_seq, path))
        self._size = 0
        if self._fsync:
            _fsync_dir(self.directory)

    def close(self) -> None:
        """Commit pending records (unless the journal failed) and close. Idempotent."""
        if self._closed:
            return
        try:
            if self._failed is None:
                self.commit()
        finally:
            self._closed = True
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- reading ---------------------------------------------------------------------------

    def records(
        self, after_seq: int = 0, kind: int | None = None, *, check_all: bool = True
    ) -> RecordReader:
        """Iterate committed ``(kind, seq, payload)`` with ``seq > after_seq``, in order
        (only records of ``kind`` if given; the others are still CRC-checked unless
        ``check_all`` is False).

        Sees what was committed when ``records`` was called. Segments that cannot hold
        such a seq are not read; each other segment is read with one read. Raises
        ``JournalCorrupted`` on any damaged record or seq out of order in what it reads.
        """
        segments = list(self._segments)
        start = 0
        while start + 1 < len(segments) and segments[start + 1].first_seq <= after_seq:
            start += 1
        return RecordReader(segments[start:], self._durable_size, after_seq, kind, check_all)

    def verify(self) -> int:
        """Check every committed record; return how many there are.

        Raises ``JournalCorrupted`` like ``open(verify=True)`` would.
        """
        return sum(1 for _ in self.records())
