"""Follow a journal that another process is writing, without ever modifying it.

A reader cannot tell durable bytes from bytes still in the writer's page cache, so it
is told how far it may go: ``read(upto)`` returns the records with ``seq <= upto``
(the writer's durable seq) and keeps its position. A record cut short at the end of
the file is simply not there yet; a complete record that fails its CRC is damage.
"""

from __future__ import annotations

import zlib
from pathlib import Path

from crossbook.journal.framing import CRC_START, HEADER, MAX_PAYLOAD
from crossbook.journal.log import JournalCorrupted

_SEGMENT_GLOB = "journal-*.log"


class JournalTail:
    def __init__(self, directory: Path, after_seq: int = 0) -> None:
        self.directory = directory
        self.after_seq = after_seq
        self._path: Path | None = None
        self._offset = 0
        self._buffer = b""
        self._pending: list[tuple[int, int, bytes]] = []  # read, but beyond ``upto``

    def _segments(self) -> list[Path]:
        return sorted(self.directory.glob(_SEGMENT_GLOB))

    def _first_segment(self) -> Path | None:
        segments = self._segments()
        if not segments:
            return None
        chosen = segments[0]
        for path in segments:
            if int(path.stem.split("-")[1]) <= self.after_seq:
                chosen = path
        return chosen

    def read(self, upto: int) -> list[tuple[int, int, bytes]]:
        """Records ``(kind, seq, payload)`` with ``after_seq < seq <= upto``, in order."""
        out = [r for r in self._pending if r[1] <= upto]
        self._pending = [r for r in self._pending if r[1] > upto]
        if self._pending:
            return out
        if self._path is None:
            self._path = self._first_segment()
            if self._path is None:
                return out
        while True:
            with self._path.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
            self._offset += len(data)
            buf = self._buffer + data
            off = 0
            hsize = HEADER.size
            while off + hsize <= len(buf):
                length, crc, kind, seq = HEADER.unpack_from(buf, off)
                end = off + hsize + length
                if length > MAX_PAYLOAD:
                    raise JournalCorrupted(self._path, off, "absurd record length")
                if end > len(buf):
                    break  # not all there yet
                if zlib.crc32(memoryview(buf)[off + CRC_START : end]) != crc:
                    if seq <= upto:
                        raise JournalCorrupted(self._path, off, "CRC mismatch")
                    break  # may still be being written
                if seq > self.after_seq:
                    record = (kind, seq, buf[off + hsize : end])
                    if seq <= upto and not self._pending:
                        out.append(record)
                    else:
                        self._pending.append(record)
                off = end
            self._buffer = buf[off:]
            if self._pending:
                return out
            # the writer moves to a newer segment only after finishing this one
            newer = [p for p in self._segments() if p.name > self._path.name]
            if not newer or self._buffer:
                return out
            self._path, self._offset, self._buffer = newer[0], 0, b""
