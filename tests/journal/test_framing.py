from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crossbook.journal.framing import (
    COMMAND,
    EVENTS,
    HEADER,
    HEADER_SIZE,
    MAX_PAYLOAD,
    MAX_SEQ,
    Stop,
    encode_record,
    iter_records,
)

RECORDS = [(COMMAND, 1, b"place"), (EVENTS, 1, b"[accepted]"), (COMMAND, 2, b""), (EVENTS, 2, b"x")]


def _frame(records: list[tuple[int, int, bytes]]) -> tuple[bytes, list[int]]:
    """The framed buffer and the offset where each record ends."""
    buf = b""
    ends = []
    for kind, seq, payload in records:
        buf += encode_record(kind, seq, payload)
        ends.append(len(buf))
    return buf, ends


def test_header_layout_is_length_crc_kind_seq() -> None:
    rec = encode_record(EVENTS, 7, b"abc")
    assert HEADER_SIZE == 17
    length, crc, kind, seq = HEADER.unpack_from(rec)
    assert (length, kind, seq) == (3, EVENTS, 7)
    assert crc == zlib.crc32(struct.pack("<BQ", EVENTS, 7) + b"abc")
    assert rec[HEADER_SIZE:] == b"abc"


def test_round_trip_with_offsets_and_clean_stop() -> None:
    buf, ends = _frame(RECORDS)
    it = iter_records(buf)
    got = list(it)
    assert [(k, s, p) for _, k, s, p in got] == RECORDS
    assert [off for off, *_ in got] == [0, *ends[:-1]]
    assert (it.stop, it.end, it.count, it.clean) == (Stop.CLEAN, len(buf), 4, True)


def test_iterates_from_start_offset_and_other_buffer_types() -> None:
    buf, ends = _frame(RECORDS)
    for view in (buf, bytearray(buf), memoryview(buf)):
        it = iter_records(view, ends[1])
        got = list(it)
        assert got == [
            (ends[1], *RECORDS[2]),
            (ends[2], *RECORDS[3]),
        ]
        assert all(type(p) is bytes for *_, p in got)
        assert (it.stop, it.end) == (Stop.CLEAN, len(buf))


def test_empty_buffer_is_clean() -> None:
    it = iter_records(b"")
    assert list(it) == []
    assert (it.stop, it.end, it.count) == (Stop.CLEAN, 0, 0)


def test_cut_at_every_offset_stops_torn_after_whole_records() -> None:
    buf, ends = _frame(RECORDS)
    for cut in range(len(buf) + 1):
        it = iter_records(buf[:cut])
        got = [(k, s, p) for _, k, s, p in it]
        whole = sum(1 for e in ends if e <= cut)
        assert got == RECORDS[:whole]
        assert it.end == (ends[whole - 1] if whole else 0)
        assert it.stop is (Stop.CLEAN if cut == it.end else Stop.TORN)


def test_flipped_byte_anywhere_stops_before_the_damaged_record() -> None:
    buf, ends = _frame(RECORDS)
    starts = [0, *ends[:-1]]
    for pos in range(len(buf)):
        damaged = bytearray(buf)
        damaged[pos] ^= 0x40
        it = iter_records(bytes(damaged))
        got = [(k, s, p) for _, k, s, p in it]
        hit = next(i for i, e in enumerate(ends) if pos < e)
        assert got == RECORDS[:hit]
        assert it.end == starts[hit]
        # A damaged length may claim more bytes than there are: torn, not clean.
        assert it.stop in (Stop.CORRUPT, Stop.TORN)


def test_absurd_length_is_corrupt_not_torn() -> None:
    rec = bytearray(encode_record(COMMAND, 1, b"abc"))
    struct.pack_into("<I", rec, 0, MAX_PAYLOAD + 1)
    it = iter_records(bytes(rec))
    assert list(it) == []
    assert (it.stop, it.end) == (Stop.CORRUPT, 0)


def test_zero_filled_tail_is_not_a_record() -> None:
    buf, _ = _frame(RECORDS[:1])
    it = iter_records(buf + bytes(64))
    assert len(list(it)) == 1
    assert (it.stop, it.end) == (Stop.CORRUPT, len(buf))


def test_abandoned_iterator_reports_no_stop() -> None:
    buf, _ = _frame(RECORDS)
    it = iter_records(buf)
    next(it)
    assert it.stop is None


@pytest.mark.parametrize(
    ("kind", "seq", "size"),
    [(0, 1, 0), (256, 1, 0), (COMMAND, -1, 0), (COMMAND, MAX_SEQ + 1, 0)],
)
def test_encode_rejects_unframable_fields(kind: int, seq: int, size: int) -> None:
    with pytest.raises(ValueError):
        encode_record(kind, seq, bytes(size))


def test_start_outside_buffer_is_rejected() -> None:
    with pytest.raises(ValueError):
        iter_records(b"abc", 4)


records_st = st.lists(
    st.tuples(st.integers(1, 255), st.integers(0, MAX_SEQ), st.binary(max_size=64)), max_size=20
)


@given(records_st)
def test_any_records_round_trip(records: list[tuple[int, int, bytes]]) -> None:
    buf, _ = _frame(records)
    it = iter_records(buf)
    assert [(k, s, p) for _, k, s, p in it] == records
    assert (it.stop, it.end) == (Stop.CLEAN, len(buf))
