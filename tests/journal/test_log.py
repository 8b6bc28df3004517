from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossbook.journal import log as journal_log
from crossbook.journal.framing import COMMAND, EVENTS, Stop, iter_records
from crossbook.journal.log import Journal, JournalCorrupted, JournalError, segment_name

Rec = tuple[int, int, bytes]

# Commands and their events share a seq, as the service journals them.
RECORDS: list[Rec] = [
    (COMMAND, 1, b'["place",1]'),
    (EVENTS, 1, b'[["accepted",1]]'),
    (COMMAND, 2, b'["cancel",2]'),
    (EVENTS, 2, b"[]"),
    (COMMAND, 3, b""),
]


def _open(path: Path, *, segment_bytes: int = 1 << 20, verify: bool = True) -> Journal:
    return Journal.open(path, segment_bytes=segment_bytes, fsync=False, verify=verify)


def _write(
    path: Path, records: list[Rec], *, batch: int = 2, segment_bytes: int = 1 << 20
) -> Journal:
    j = _open(path, segment_bytes=segment_bytes)
    for i, (kind, seq, payload) in enumerate(records, 1):
        j.append(kind, seq, payload)
        if i % batch == 0:
            j.commit()
    j.close()
    return j


def _crash(j: Journal) -> None:
    """Simulate a process death: drop pending data, release the file without commit."""
    if j._fd is not None:
        os.close(j._fd)
        j._fd = None
    j._closed = True


def _whole_record_ends(data: bytes) -> list[int]:
    ends = []
    it = iter_records(data)
    for off, _kind, _seq, payload in it:
        ends.append(off + 17 + len(payload))
    assert it.stop is Stop.CLEAN
    return ends


def test_records_round_trip_and_survive_reopen(tmp_path: Path) -> None:
    j = _write(tmp_path, RECORDS)
    assert list(j.records()) == RECORDS
    with _open(tmp_path) as j2:
        assert j2.recovery.clean
        assert (j2.last_seq, j2.committed_seq) == (3, 3)
        assert list(j2.records()) == RECORDS
        assert [p.name for p in j2.segments] == [segment_name(1)]


def test_empty_journal_has_last_seq_zero_and_no_files(tmp_path: Path) -> None:
    with _open(tmp_path / "new") as j:
        assert j.last_seq == 0
        assert list(j.records()) == []
        j.commit()  # nothing pending: no segment is created
    assert list((tmp_path / "new").iterdir()) == []


def test_torn_tail_is_truncated_not_applied_at_every_byte_offset(tmp_path: Path) -> None:
    _write(tmp_path / "src", RECORDS)
    data = (tmp_path / "src" / segment_name(1)).read_bytes()
    ends = _whole_record_ends(data)
    for cut in range(len(data) + 1):
        d = tmp_path / f"cut{cut}"
        d.mkdir()
        (d / segment_name(1)).write_bytes(data[:cut])
        whole = sum(1 for e in ends if e <= cut)
        end = ends[whole - 1] if whole else 0
        with _open(d) as j:
            assert list(j.records()) == RECORDS[:whole]
            assert j.recovery.truncated_bytes == cut - end
            assert j.last_seq == (RECORDS[whole - 1][1] if whole else 0)
            j.append(COMMAND, j.last_seq + 1, b"after")
        with _open(d) as j:
            assert j.recovery.clean
            assert list(j.records()) == [*RECORDS[:whole], (COMMAND, j.last_seq, b"after")]


batches_st = st.lists(
    st.lists(
        st.tuples(st.sampled_from([COMMAND, EVENTS]), st.integers(0, 2), st.binary(max_size=40)),
        min_size=1,
        max_size=5,
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=batches_st, segment_bytes=st.integers(1, 300), cut_frac=st.floats(0, 1))
def test_torn_tail_recovers_whole_records_for_any_records_and_cut(
    batches: list[list[tuple[int, int, bytes]]], segment_bytes: int, cut_frac: float
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        j = _open(d, segment_bytes=segment_bytes)
        seq = 1
        written: list[Rec] = []
        for batch in batches:
            for kind, step, payload in batch:
                seq += step
                j.append(kind, seq, payload)
                written.append((kind, seq, payload))
            j.commit()
        j.close()
        segs = j.segments
        last = segs[-1]
        data = last.read_bytes()
        before = len(written) - len(_whole_record_ends(data))
        cut = round(cut_frac * len(data))
        last.write_bytes(data[:cut])
        kept = before + sum(1 for e in _whole_record_ends(data) if e <= cut)

        with _open(d, segment_bytes=segment_bytes) as j2:
            assert list(j2.records()) == written[:kept]
            assert j2.last_seq == (written[kept - 1][1] if kept else 0)
            new_seq = j2.last_seq + 1
            j2.append(EVENTS, new_seq, b"new")
        with _open(d, segment_bytes=segment_bytes) as j3:
            assert j3.recovery.clean
            assert list(j3.records()) == [*written[:kept], (EVENTS, new_seq, b"new")]
            assert j3.verify() == kept + 1


def test_flipped_byte_in_last_record_is_truncated_away(tmp_path: Path) -> None:
    _write(tmp_path, RECORDS)
    seg = tmp_path / segment_name(1)
    data = bytearray(seg.read_bytes())
    data[-1] ^= 0xFF  # last byte of the last record's header (its payload is empty)
    seg.write_bytes(data)
    with _open(tmp_path) as j:
        assert list(j.records()) == RECORDS[:-1]
        assert j.recovery.stop is Stop.CORRUPT
        assert j.recovery.truncated_bytes == 17
        assert j.recovery.truncated_segment == seg
        assert j.last_seq == 2
    assert seg.stat().st_size == len(data) - 17


def test_corrupt_record_in_earlier_segment_raises_journal_corrupted(tmp_path: Path) -> None:
    j = _write(tmp_path, RECORDS, batch=1, segment_bytes=1)
    assert len(j.segments) == 3  # seqs 1, 2, 3: a shared seq stays in its segment
    first = j.segments[0]
    data = bytearray(first.read_bytes())
    data[20] ^= 0x01
    first.write_bytes(data)
    with pytest.raises(JournalCorrupted) as exc:
        _open(tmp_path)
    assert exc.value.path == first
    assert first.read_bytes() == data  # never repaired by truncation
    # Without the up-front check, reading the damaged segment still refuses.
    with _open(tmp_path, verify=False) as j2:
        assert list(j2.records(after_seq=2)) == RECORDS[4:]
        with pytest.raises(JournalCorrupted):
            list(j2.records())


def test_torn_earlier_segment_raises_journal_corrupted(tmp_path: Path) -> None:
    j = _write(tmp_path, RECORDS, batch=1, segment_bytes=1)
    first = j.segments[0]
    first.write_bytes(first.read_bytes()[:-3])
    with pytest.raises(JournalCorrupted):
        _open(tmp_path)


def test_journal_corrupted_leaves_every_file_untouched(tmp_path: Path) -> None:
    j = _write(tmp_path, RECORDS, batch=1, segment_bytes=1)
    first, last = j.segments[0], j.segments[-1]
    first.write_bytes(first.read_bytes()[:-1])
    last.write_bytes(last.read_bytes()[:-1])  # torn tail: would be cut if all else were fine
    before = {p: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(JournalCorrupted):
        _open(tmp_path)
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_damaged_segment_before_an_empty_last_one_raises_even_unverified(tmp_path: Path) -> None:
    j = _write(tmp_path, RECORDS, batch=1, segment_bytes=1)
    last = j.segments[-1]
    last.write_bytes(last.read_bytes()[:-1])
    (tmp_path / segment_name(9)).touch()
    with pytest.raises(JournalCorrupted) as exc:
        _open(tmp_path, verify=False)
    assert exc.value.path == last


def test_segment_named_after_another_seq_raises_journal_corrupted(tmp_path: Path) -> None:
    _write(tmp_path, RECORDS)
    (tmp_path / segment_name(1)).rename(tmp_path / segment_name(7))
    with pytest.raises(JournalCorrupted):
        _open(tmp_path)


def test_segments_roll_over_and_records_after_seq_cross_segments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = [(kind, seq, b"p" * seq) for seq in range(1, 41) for kind in (COMMAND, EVENTS)]
    j = _open(tmp_path, segment_bytes=200)
    for i in range(0, len(records), 6):
        for rec in records[i : i + 6]:
            j.append(*rec)
        j.commit()
    j.close()
    segs = j.segments
    assert len(segs) > 3
    assert segs == sorted(tmp_path.iterdir())
    firsts = [int(p.name[8:28]) for p in segs]
    for p, first in zip(segs, firsts, strict=True):
        assert next(iter(iter_records(p.read_bytes())))[2] == first

    reads: list[Path] = []
    real_read = journal_log._read

    def counting_read(path: Path, limit: int | None = None) -> bytes:
        reads.append(path)
        return real_read(path, limit)

    monkeypatch.setattr(journal_log, "_read", counting_read)
    with _open(tmp_path, segment_bytes=200, verify=False) as j2:
        for after in range(42):
            reads.clear()
            assert list(j2.records(after_seq=after)) == [r for r in records if r[1] > after]
            needed = [p for p, f in zip(segs, [*firsts[1:], 10**9], strict=True) if f > after]
            assert reads == needed  # whole segments before ``after`` are never read


def test_shared_seq_split_across_segments_is_returned_once(tmp_path: Path) -> None:
    j = _open(tmp_path, segment_bytes=1)
    j.append(COMMAND, 1, b"c1")
    j.append(COMMAND, 2, b"c2")
    j.commit()
    j.append(EVENTS, 2, b"e2")  # same seq, next segment: journal-2 while segment 1 ends at 2
    j.commit()
    j.append(EVENTS, 2, b"e2bis")  # first seq not above the segment's: no new segment
    j.commit()
    j.close()
    assert [p.name for p in j.segments] == [segment_name(1), segment_name(2)]
    with _open(tmp_path, segment_bytes=1) as j2:
        assert [r[2] for r in j2.records(after_seq=1)] == [b"c2", b"e2", b"e2bis"]
        assert list(j2.records(after_seq=2)) == []


def test_reopened_full_segment_rolls_on_next_commit(tmp_path: Path) -> None:
    _write(tmp_path, RECORDS, segment_bytes=10_000)
    with _open(tmp_path, segment_bytes=10) as j:
        j.append(COMMAND, 4, b"x")
    assert [p.name for p in j.segments] == [segment_name(1), segment_name(4)]


def test_group_commit_does_one_fsync_and_one_write_per_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"fsync": 0, "write": 0}

    def counted(name: str, real: Callable[..., int | None]) -> Callable[..., int | None]:
        def wrapper(*args: object) -> int | None:
            calls[name] += 1
            return real(*args)

        return wrapper

    monkeypatch.setattr(os, "fsync", counted("fsync", os.fsync))
    monkeypatch.setattr(os, "write", counted("write", os.write))
    j = Journal.open(tmp_path, fsync=True)
    j.append(COMMAND, 1, b"first")
    j.commit()
    assert calls["fsync"] == 2  # the new segment's directory entry, then the data
    calls.update(fsync=0, write=0)
    for batch in range(5):
        for i in range(10):
            j.append(COMMAND, 2 + batch, b"%d" % i)
        assert calls["fsync"] == batch  # append never syncs
        j.commit()
    j.commit()  # nothing pending: no I/O
    assert calls == {"fsync": 5, "write": 5}
    j.close()

    calls.update(fsync=0, write=0)
    j = Journal.open(tmp_path, fsync=False)
    j.append(COMMAND, 9, b"x")
    j.close()
    assert calls == {"fsync": 0, "write": 1}


def test_seq_going_backwards_is_rejected_and_nothing_buffered(tmp_path: Path) -> None:
    with _open(tmp_path) as j:
        j.append(COMMAND, 5, b"a")
        j.append(EVENTS, 5, b"b")  # equal seq is fine
        for kind, seq in [(COMMAND, 4), (COMMAND, 0), (0, 6), (256, 6)]:
            with pytest.raises(ValueError):
                j.append(kind, seq, b"bad")
        assert j.last_seq == 5
    with _open(tmp_path) as j:
        assert list(j.records()) == [(COMMAND, 5, b"a"), (EVENTS, 5, b"b")]
        with pytest.raises(ValueError):
            j.append(COMMAND, 4, b"older than the recovered last seq")


def test_uncommitted_records_are_lost_on_crash_and_not_visible(tmp_path: Path) -> None:
    j = _open(tmp_path)
    j.append(COMMAND, 1, b"a")
    j.commit()
    j.append(COMMAND, 2, b"b")
    assert (j.last_seq, j.committed_seq, j.pending_bytes) == (2, 1, 18)
    assert list(j.records()) == [(COMMAND, 1, b"a")]
    _crash(j)
    with _open(tmp_path) as j2:
        assert j2.recovery.clean
        assert list(j2.records()) == [(COMMAND, 1, b"a")]


def test_close_commits_pending_and_is_idempotent(tmp_path: Path) -> None:
    j = _open(tmp_path)
    j.append(COMMAND, 1, b"a")
    j.close()
    j.close()
    assert j.closed
    with pytest.raises(JournalError):
        j.append(COMMAND, 2, b"b")
    assert list(_open(tmp_path).records()) == [(COMMAND, 1, b"a")]


def test_empty_segment_left_by_crash_is_removed(tmp_path: Path) -> None:
    _write(tmp_path, RECORDS)
    empty = tmp_path / segment_name(4)
    empty.touch()
    with _open(tmp_path) as j:
        assert j.recovery.removed_segments == (empty,)
        assert j.last_seq == 3
        j.append(COMMAND, 3, b"same seq as before")
    assert not empty.exists()


def test_torn_first_record_of_new_segment_falls_back_to_previous(tmp_path: Path) -> None:
    j = _write(tmp_path, RECORDS, batch=1, segment_bytes=1)
    last = j.segments[-1]
    last.write_bytes(last.read_bytes()[:5])
    with _open(tmp_path, segment_bytes=1) as j2:
        assert j2.recovery.removed_segments == (last,)
        assert j2.recovery.truncated_bytes == 5
        assert list(j2.records()) == RECORDS[:4]
        assert j2.last_seq == 2
        j2.append(COMMAND, 3, b"again")
    assert list(_open(tmp_path).records()) == [*RECORDS[:4], (COMMAND, 3, b"again")]


def test_failed_write_refuses_further_use_and_reopen_truncates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    j = _open(tmp_path)
    j.append(COMMAND, 1, b"durable")
    j.commit()
    real_write = os.write

    def half_then_fail(fd: int, data: bytes) -> int:
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_fail)
    j.append(COMMAND, 2, b"lost" * 10)
    with pytest.raises(OSError):
        j.commit()
    monkeypatch.setattr(os, "write", real_write)
    with pytest.raises(JournalError):
        j.append(COMMAND, 3, b"x")
    with pytest.raises(JournalError):
        j.commit()
    j.close()  # does not retry the failed batch
    with _open(tmp_path) as j2:
        assert j2.recovery.stop is Stop.TORN
        assert list(j2.records()) == [(COMMAND, 1, b"durable")]


def test_unrelated_files_are_ignored(tmp_path: Path) -> None:
    _write(tmp_path, RECORDS)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "journal-1.log").write_bytes(b"junk")
    with _open(tmp_path) as j:
        assert list(j.records()) == RECORDS
