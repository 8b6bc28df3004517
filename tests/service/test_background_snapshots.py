"""Periodic snapshots of the journaled service are taken in a forked child: the service
goes on at once, the snapshot appears once the journal is durable through it, and a
restart recovers from it to the same state."""

from __future__ import annotations

import time
from pathlib import Path

from crossbook.exchange.core import ExchangeConfig
from crossbook.journal.snapshots import SnapshotStore
from crossbook.service import DataDirConfig, JournaledService, recover
from tests.service.crash_child import workload_commands


def _wait_for_snapshot(service: JournaledService, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while service.background.running or service.background.taken == 0:
        assert time.monotonic() < deadline, "no background snapshot was published"
        time.sleep(0.01)


def test_periodic_snapshots_do_not_stop_the_service_and_recover_the_same_state(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    commands = workload_commands("exchange")[:3_000]
    config = DataDirConfig(kind="exchange", exchange=ExchangeConfig())
    service = JournaledService(data, config=config, fsync=True, snapshot_every=1_000)
    pending = []
    for i in range(0, len(commands), 50):
        pending.append(service.submit_pipelined(commands[i : i + 50]))
    for acked in pending:
        acked.result()
    _wait_for_snapshot(service)
    seq, _ = SnapshotStore(data / "snapshots").latest() or (0, b"")
    assert 1_000 <= seq <= commands[-1].seq
    expected = service.machine.state_hash()
    last = service.machine.last_seq
    service.background.abort()
    service.journal.close()  # a stop without the final snapshot: recovery replays the tail

    machine, journal, recovery = recover(data)
    journal.close()
    assert recovery.snapshot_seq == seq
    assert recovery.commands_replayed == last - seq
    assert machine.state_hash() == expected


def test_a_snapshot_is_not_published_before_the_journal_is_durable(tmp_path: Path) -> None:
    data = tmp_path / "data"
    commands = workload_commands("exchange")[:200]
    config = DataDirConfig(kind="exchange", exchange=ExchangeConfig())
    service = JournaledService(data, config=config, fsync=True, snapshot_every=100)
    # executed and written, but its fsync not yet done: the snapshot must wait for it
    service._flusher.submit(time.sleep, 0.5)
    acked = service.submit_pipelined(commands)
    time.sleep(0.3)
    assert SnapshotStore(data / "snapshots").latest() is None
    acked.result()
    _wait_for_snapshot(service)
    assert SnapshotStore(data / "snapshots").seqs() == [commands[-1].seq]
    service.close()
