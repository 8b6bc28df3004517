"""Snapshots taken in a forked child: the state as of the fork, published only once durable."""

from __future__ import annotations

import os
import time
from pathlib import Path

from crossbook.journal.background import BackgroundSnapshots
from crossbook.journal.snapshots import SnapshotStore


def _wait(bg: BackgroundSnapshots, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while bg.running:
        assert time.monotonic() < deadline, "the snapshot child did not end"
        time.sleep(0.005)


def _temp_files(directory: Path) -> list[str]:
    return [n for n in os.listdir(directory) if n.endswith(".tmp")]


def test_the_snapshot_holds_the_state_as_of_the_fork_not_later_changes(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    bg = BackgroundSnapshots(store)
    state = bytearray(b"before")
    assert bg.start(7, lambda: bytes(state))
    state[:] = b"after!"  # the parent goes on changing its state
    bg.durable(7)
    _wait(bg)
    assert bg.last is not None and bg.last.published and bg.last.seq == 7
    assert store.latest() == (7, b"before")


def test_a_snapshot_is_not_published_before_its_log_is_durable(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    bg = BackgroundSnapshots(store)
    assert bg.start(10, lambda: b"state-10")
    time.sleep(0.3)  # the child has long staged it
    assert store.latest() is None
    assert bg.running
    bg.durable(9)  # durable, but not yet through the snapshot's seq
    time.sleep(0.1)
    assert store.latest() is None
    bg.durable(12)
    _wait(bg)
    assert store.latest() == (10, b"state-10")
    assert _temp_files(tmp_path) == []


def test_an_abandoned_snapshot_leaves_nothing_behind(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    bg = BackgroundSnapshots(store)
    assert bg.start(5, lambda: b"x" * 100_000)
    time.sleep(0.2)
    outcome = bg.abort()
    assert outcome is not None and not outcome.published
    assert store.latest() is None
    assert _temp_files(tmp_path) == []


def test_a_writer_that_dies_before_its_log_is_durable_publishes_nothing(tmp_path: Path) -> None:
    """The child sees end-of-file on the pipe (as when the parent is killed) and leaves."""
    store = SnapshotStore(tmp_path)
    bg = BackgroundSnapshots(store)
    assert bg.start(5, lambda: b"state")
    bg._close_go()  # what the kernel does to the pipe when the parent dies
    _wait(bg)
    assert bg.last is not None and not bg.last.published
    assert store.latest() is None
    assert _temp_files(tmp_path) == []


def test_one_snapshot_at_a_time(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    bg = BackgroundSnapshots(store)
    assert bg.start(1, lambda: b"one")
    assert not bg.start(2, lambda: b"two")  # refused while the first one waits
    bg.durable(1)
    _wait(bg)
    assert bg.start(2, lambda: b"two")
    bg.durable(2)
    _wait(bg)
    assert store.latest() == (2, b"two")
    assert bg.taken == 2


def test_a_failing_snapshot_is_reported_and_publishes_nothing(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    bg = BackgroundSnapshots(store)

    def broken() -> bytes:
        raise RuntimeError("cannot encode")

    assert bg.start(3, broken)
    bg.durable(3)
    _wait(bg)
    assert bg.last is not None and not bg.last.published
    assert store.latest() is None


def test_old_snapshots_are_pruned_by_the_child(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    bg = BackgroundSnapshots(store, keep=2)
    for seq in (1, 2, 3):
        assert bg.start(seq, lambda seq=seq: f"s{seq}".encode())  # type: ignore[misc]
        bg.durable(seq)
        _wait(bg)
    assert store.seqs() == [2, 3]


def test_finish_waits_for_a_durable_snapshot(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    bg = BackgroundSnapshots(store)
    assert bg.start(4, lambda: b"four")
    bg.durable(4)
    outcome = bg.finish(timeout=10)
    assert outcome is not None and outcome.published
    assert store.latest() == (4, b"four")


def test_finish_gives_up_on_a_snapshot_that_never_became_durable(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    bg = BackgroundSnapshots(store)
    assert bg.start(4, lambda: b"four")
    outcome = bg.finish(timeout=0.3)
    assert outcome is not None and not outcome.published
    assert not bg.running
    assert store.latest() is None
    assert _temp_files(tmp_path) == []


def test_the_child_does_not_hold_the_parents_connections_open(tmp_path: Path) -> None:
    """A killed writer's connections must close at once, even while its child encodes."""
    import socket

    store = SnapshotStore(tmp_path)
    bg = BackgroundSnapshots(store)
    ours, peer = socket.socketpair()

    def slow() -> bytes:
        time.sleep(3)
        return b"late"

    try:
        assert bg.start(1, slow)
        ours.close()  # the parent's side goes away; the child must not keep it open
        peer.settimeout(1.0)
        assert peer.recv(1) == b""  # end-of-file now, not once the child is done
        assert bg.running
    finally:
        bg.abort()
        peer.close()
