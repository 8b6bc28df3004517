from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from crossbook.journal.snapshots import SNAP_HEADER, SnapshotStore, snapshot_name


def test_latest_returns_newest_snapshot(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    assert store.latest() is None
    store.write(10, b"ten")
    store.write(30, b"thirty")
    store.write(20, b"twenty")
    store.write(0, b"")
    assert store.latest() == (30, b"thirty")
    assert store.skipped == []
    assert store.seqs() == [0, 10, 20, 30]
    assert SnapshotStore(tmp_path).latest() == (30, b"thirty")


def test_crash_before_rename_leaves_temp_file_that_is_ignored_and_cleaned(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    store.write(5, b"five")
    # A writer killed before os.replace leaves only its temp file behind.
    tmp = tmp_path / ".snapshot-abc123.tmp"
    tmp.write_bytes(b"half a snapsh")
    assert store.latest() == (5, b"five")
    assert store.skipped == []
    assert SnapshotStore(tmp_path).latest() == (5, b"five")
    assert not tmp.exists()


def test_failed_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SnapshotStore(tmp_path)
    store.write(1, b"one")

    def fail(*args: object) -> None:
        raise OSError(5, "I/O error")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        store.write(2, b"two")
    assert sorted(p.name for p in tmp_path.iterdir()) == [snapshot_name(1)]


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda raw: raw[:-1], "length"),
        (lambda raw: raw[:5], "short header"),
        (lambda raw: raw + b"x", "length"),
        (lambda raw: raw[:-1] + bytes([raw[-1] ^ 1]), "CRC"),
        (lambda raw: b"XXXXXXXX" + raw[8:], "magic"),
        (lambda raw: b"", "short header"),
    ],
)
def test_corrupt_newest_snapshot_is_skipped_for_previous_valid_one(
    tmp_path: Path, damage: Callable[[bytes], bytes], reason: str
) -> None:
    store = SnapshotStore(tmp_path)
    store.write(1, b"old state")
    newest = store.write(2, b"new state")
    newest.write_bytes(damage(newest.read_bytes()))
    assert store.latest() == (1, b"old state")
    assert [(s.path, s.seq) for s in store.skipped] == [(newest, 2)]
    assert reason in store.skipped[0].reason


def test_snapshot_renamed_to_another_seq_is_skipped(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    store.write(1, b"one")
    store.write(2, b"two").rename(tmp_path / snapshot_name(3))
    assert store.latest() == (1, b"one")
    assert "seq" in store.skipped[0].reason


def test_header_crc_covers_seq_and_length(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    path = store.write(7, b"data")
    raw = bytearray(path.read_bytes())
    magic, seq, length, crc = SNAP_HEADER.unpack_from(raw)
    assert (magic, seq, length) == (b"CBSNAP01", 7, 4)
    assert crc == zlib.crc32(struct.pack("<QQ", 7, 4) + b"data")
    assert raw[SNAP_HEADER.size :] == b"data"


def test_write_replaces_snapshot_at_same_seq(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    store.write(4, b"first")
    store.write(4, b"second")
    assert store.latest() == (4, b"second")
    assert store.seqs() == [4]


def test_prune_keeps_newest_valid_snapshots(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    for seq in range(1, 6):
        store.write(seq, b"s%d" % seq)
    (tmp_path / snapshot_name(5)).write_bytes(b"garbage")
    (tmp_path / ".snapshot-left.tmp").write_bytes(b"x")
    deleted = store.prune(keep=2)
    assert sorted(p.name for p in deleted) == [snapshot_name(s) for s in (1, 2, 5)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [snapshot_name(3), snapshot_name(4)]
    assert store.latest() == (4, b"s4")
    with pytest.raises(ValueError):
        store.prune(keep=0)


def test_write_fsyncs_file_and_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    count = 0
    real = os.fsync

    def counting(fd: int) -> None:
        nonlocal count
        count += 1
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    SnapshotStore(tmp_path).write(1, b"x")
    assert count == 2
    SnapshotStore(tmp_path, fsync=False).write(2, b"x")
    assert count == 2


def test_invalid_seq_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        SnapshotStore(tmp_path).write(-1, b"x")


def test_a_temp_file_being_staged_by_a_live_process_is_left_alone(tmp_path: Path) -> None:
    import subprocess
    import sys

    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        staging = tmp_path / f".snapshot-{live.pid}-abc.tmp"
        staging.write_bytes(b"being written")
        dead = tmp_path / ".snapshot-999999999-abc.tmp"
        dead.write_bytes(b"left by a dead writer")
        SnapshotStore(tmp_path).prune(keep=1)
        assert staging.exists()
        assert not dead.exists()
    finally:
        live.kill()
        live.wait()
    SnapshotStore(tmp_path)
    assert not staging.exists()


def test_a_snapshot_blob_round_trips_and_damage_is_detected() -> None:
    import pytest

    from crossbook.journal.snapshots import decode_snapshot, encode_snapshot

    blob = encode_snapshot(42, b"state")
    assert decode_snapshot(blob) == (42, b"state")
    for damaged in (blob[:10], blob[:-1], blob[:-1] + b"X", b"XXXXXXXX" + blob[8:]):
        with pytest.raises(ValueError):
            decode_snapshot(damaged)
