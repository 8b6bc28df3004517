"""CRC-framed journal records.

A record is a 17-byte header ``HEADER = struct.Struct("<IIBQ")`` =
``(length, crc, kind, seq)`` followed by ``length`` payload bytes, where
``crc = zlib.crc32(kind_byte + seq_bytes + payload)``, i.e. the CRC of every byte
of the record from offset 8 (the kind) to its end. Records are concatenated with
no padding, so a buffer is valid up to the end of its last whole record.

Invariants:

* ``1 <= kind <= 255`` (0 is never written, so zero-filled space never parses),
  ``0 <= seq < 2**64``, ``length <= MAX_PAYLOAD``.
* Parsing stops at the first record that is torn (the buffer ends inside it) or
  corrupt (CRC mismatch, absurd length) and never yields anything after it.
"""

from __future__ import annotations

import enum
import struct
import zlib
from collections.abc import Generator, Iterator

__all__ = [
    "COMMAND",
    "CRC_START",
    "EVENTS",
    "HEADER",
    "HEADER_SIZE",
    "MAX_PAYLOAD",
    "MAX_SEQ",
    "Record",
    "RecordIterator",
    "Stop",
    "check_record",
    "encode_record",
    "iter_records",
    "record_crc",
]

COMMAND = 1
"""Record kind: the payload is one encoded command."""
EVENTS = 2
"""Record kind: the payload is the encoded list of events of the command with the same seq."""

HEADER = struct.Struct("<IIBQ")
"""(payload length, CRC32 of kind+seq+payload, kind, seq), little endian."""
HEADER_SIZE = HEADER.size  # 17
CRC_START = 8  # offset of ``kind`` in the header: the CRC covers [8, end of payload)

MAX_PAYLOAD = 256 * 1024 * 1024
"""Largest payload accepted; a header claiming more is corrupt."""
MAX_SEQ = 2**64 - 1

Record = tuple[int, int, int, bytes]
"""(offset of the record in the buffer, kind, seq, payload)."""


class Stop(enum.Enum):
    """Why parsing stopped."""

    CLEAN = "clean"
    """The last record ended exactly at the end of the buffer (or the buffer was empty)."""
    TORN = "torn"
    """The buffer ends inside a record: a short header, or fewer payload bytes than announced."""
    CORRUPT = "corrupt"
    """A whole header whose length is absurd or whose CRC does not match."""


def check_record(kind: int, seq: int, length: int) -> None:
    """Raise ``ValueError`` unless (kind, seq, payload length) can be framed."""
    if not 1 <= kind <= 255:
        raise ValueError(f"record kind must be in 1..255, got {kind}")
    if not 0 <= seq <= MAX_SEQ:
        raise ValueError(f"record seq must be in 0..2**64-1, got {seq}")
    if length > MAX_PAYLOAD:
        raise ValueError(f"record payload of {length} bytes exceeds MAX_PAYLOAD")


_KIND_SEQ = struct.Struct("<BQ")


def record_crc(kind: int, seq: int, payload: bytes | bytearray | memoryview) -> int:
    """The CRC stored in the header of the record (kind, seq, payload)."""
    return zlib.crc32(payload, zlib.crc32(_KIND_SEQ.pack(kind, seq)))


def encode_record(kind: int, seq: int, payload: bytes | bytearray | memoryview) -> bytes:
    """Frame one record: header + payload. Raises ``ValueError`` on an invalid field."""
    length = len(payload)
    check_record(kind, seq, length)
    return HEADER.pack(length, record_crc(kind, seq, payload), kind, seq) + bytes(payload)


class RecordIterator:
    """Single-use iterator over the whole records of a buffer, from ``start``.

    Yields ``(offset, kind, seq, payload)`` with ``payload`` a ``bytes`` copy. Once
    exhausted, ``stop`` says why it stopped and ``end`` is the offset where the last
    whole record ends (``start`` if there was none): the buffer is valid on
    ``[start, end)``. ``count`` is the number of records yielded. Until exhausted
    (or if abandoned early), ``stop`` is ``None`` and ``end``/``count`` are not set.
    """

    __slots__ = ("_gen", "count", "detail", "end", "stop")

    def __init__(self, buf: bytes | bytearray | memoryview, start: int = 0) -> None:
        if start < 0 or start > len(buf):
            raise ValueError(f"start {start} outside the buffer of {len(buf)} bytes")
        self.end = start
        self.stop: Stop | None = None
        self.detail = ""
        self.count = 0
        self._gen = self._run(buf, start)

    def __iter__(self) -> Iterator[Record]:
        return self._gen

    def __next__(self) -> Record:
        return next(self._gen)

    @property
    def clean(self) -> bool:
        """True iff iteration ended exactly at the end of the buffer."""
        return self.stop is Stop.CLEAN

    def _run(self, buf: bytes | bytearray | memoryview, start: int) -> Generator[Record]:
        # Work on bytes so that payload slices are immutable copies that outlive ``buf``.
        if isinstance(buf, bytes):
            data, base = buf, 0
        else:
            data, base = bytes(memoryview(buf)[start:]), start
        view = memoryview(data)
        size = len(data)
        unpack = HEADER.unpack_from
        crc32 = zlib.crc32
        hsize = HEADER_SIZE
        max_payload = MAX_PAYLOAD
        off = start - base
        count = 0
        stop = Stop.CLEAN
        detail = ""
        while True:
            if off + hsize > size:
                if off != size:
                    stop = Stop.TORN
                    detail = f"short header: {size - off} of {hsize} bytes"
                break
            length, crc, kind, seq = unpack(data, off)
            end = off + hsize + length
            if length > max_payload:
                stop = Stop.CORRUPT
                detail = f"absurd payload length {length}"
                break
            if end > size:
                stop = Stop.TORN
                detail = f"short payload: {size - off - hsize} of {length} bytes"
                break
            if crc32(view[off + CRC_START : end]) != crc:
                stop = Stop.CORRUPT
                detail = "CRC mismatch"
                break
            count += 1
            yield off + base, kind, seq, data[off + hsize : end]
            off = end
        # Only reached when exhausted; an abandoned iterator keeps ``stop is None``.
        self.end = off + base
        self.count = count
        self.stop = stop
        self.detail = detail


def iter_records(buf: bytes | bytearray | memoryview, start: int = 0) -> RecordIterator:
    """Iterate the whole records of ``buf`` from ``start``; see ``RecordIterator``.

    ``it = iter_records(buf); for off, kind, seq, payload in it: ...`` and then
    ``it.end`` / ``it.stop`` tell where the valid prefix ends and why.
    """
    return RecordIterator(buf, start)
