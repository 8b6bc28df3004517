"""The journaled service on a JetStream log (real nats-server): a hot standby takes
over from a killed leader with the same state, a deposed leader is fenced off, and a
restart resumes from its snapshot plus the log's tail."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crossbook.bus.jetstream import FencedError
from crossbook.bus.server import NatsServer
from crossbook.engine.matching import MatchingEngine
from crossbook.exchange.core import ExchangeCore
from crossbook.ha.journal import JetStreamJournal
from crossbook.ha.leader import Leadership, Standby, lease_name, open_leader
from crossbook.journal.framing import COMMAND, EVENTS
from crossbook.service import JournaledService, recover
from tests.service.crash_child import workload_commands
from tests.service.jetstream_child import BATCH, config_for

ROOT = Path(__file__).resolve().parents[2]
TTL = 1.0


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "js")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _log_records(url: str, log: str) -> list[tuple[int, int, bytes]]:
    with JetStreamJournal.open(url, log) as reader:
        return list(reader.records())


def _seqs(records: list[tuple[int, int, bytes]], kind: int) -> list[int]:
    return [seq for k, seq, _ in records if k == kind]


def _uninterrupted(kind: str, commands: list[Any]) -> str:
    machine: Any = (
        MatchingEngine(config_for(kind).exchange.markets) if kind == "engine" else (ExchangeCore())
    )
    for c in commands:
        machine.execute(c)
    return str(machine.state_hash())


def _submit_all(service: JournaledService[Any], commands: list[Any]) -> None:
    todo = [c for c in commands if c.seq > service.machine.last_seq]
    for i in range(0, len(todo), BATCH):
        service.submit_stamped(todo[i : i + BATCH])


def test_leader_killed_standby_takes_over_with_same_state_hash(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    url, log, bucket = nats_server.url, "engine1", "leases_kill"
    commands = workload_commands("engine")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.service.jetstream_child", url, log,
         str(tmp_path / "leader"), bucket, str(TTL), "engine"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.stdout is not None
    standby: Standby | None = None
    try:
        first = proc.stdout.readline()
        assert first.startswith("START 0 "), first
        # the child leads; the standby follows the same log from another data dir
        standby = Standby(
            tmp_path / "standby", url, log, holder="standby", config=config_for("engine"),
            ttl=TTL, bucket=bucket, snapshot_every=5_000,
        )  # fmt: skip
        result: dict[str, Any] = {}

        def run_standby() -> None:
            assert standby is not None
            try:
                result["service"] = standby.run(poll_interval=0.02, timeout=60)
                result["at"] = time.monotonic()
            except BaseException as exc:  # pragma: no cover - reported below
                result["error"] = exc

        thread = threading.Thread(target=run_standby, daemon=True)
        thread.start()
        rng = random.Random(7)
        kill_after = rng.randint(150, 300)
        acked: list[int] = []
        for raw in proc.stdout:
            if raw.startswith("ACK "):
                acked.append(int(raw.split()[1]))
                if len(acked) == kill_after:
                    time.sleep(rng.uniform(0, 0.005))
                    proc.send_signal(signal.SIGKILL)
                    killed_at = time.monotonic()
                    # whatever it acknowledged before dying counts too
                    acked += [int(x.split()[1]) for x in proc.stdout if x.startswith("ACK ")]
                    break
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL, "the leader finished before the kill"
        followed = standby.machine.last_seq
        assert followed > 0, "the standby did not follow the log while the leader ran"
        thread.join(60)
        assert "error" not in result, result.get("error")
        service: JournaledService[JetStreamJournal] = result["service"]
        assert service is not None, "the standby never took over"
        assert result["at"] - killed_at < 10 * TTL

        # nothing acknowledged is lost, and the state is exactly that of the log
        taken_over = service.machine.last_seq
        assert taken_over >= acked[-1]
        assert service.machine.state_hash() == _uninterrupted(
            "engine", [c for c in commands if c.seq <= taken_over]
        )
        print(
            f"killed after {len(acked)} acks (last {acked[-1]}); standby had followed to "
            f"{followed}, took over at {taken_over} replaying "
            f"{service.recovery.commands_replayed} after the fence, "
            f"{result['at'] - killed_at:.2f}s after the kill"
        )
        # the new leader goes on with the rest of the workload
        _submit_all(service, commands)
        final_hash = service.machine.state_hash()
        standby.close()
        standby = None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if standby is not None:
            standby.close()
    assert final_hash == _uninterrupted("engine", commands)
    # every command exactly once, in order, each followed by its events record
    records = _log_records(url, log)
    assert _seqs(records, COMMAND) == [c.seq for c in commands]
    assert _seqs(records, EVENTS) == [c.seq for c in commands]


def test_deposed_leader_cannot_append(tmp_path: Path, nats_server: NatsServer) -> None:
    url, log, bucket = nats_server.url, "engine2", "leases_depose"
    commands = workload_commands("engine")[:2_000]
    config = config_for("engine")
    old_lease = Leadership(url, lease_name(log), "old", ttl=TTL, bucket=bucket)
    old_lease.acquire(timeout=10)
    old = open_leader(tmp_path / "old", url, log, old_lease, config=config)
    _submit_all(old, commands[:500])
    standby = Standby(
        tmp_path / "new", url, log, holder="new", config=config, ttl=TTL, bucket=bucket
    )
    try:
        assert standby.run(timeout=0.3) is None  # the old leader still holds the lease
        # the old leader stalls (stops renewing) but its process lives on
        old_lease.close(release=False)
        new = standby.run(poll_interval=0.02, timeout=20)
        assert new is not None
        assert new.machine.last_seq == 500
        new.submit_stamped(commands[500:525])
        before = _log_records(url, log)
        stream_seq = new.journal.log.log.stream_seq

        # the deposed leader's next batch is refused whole: not a record is written
        with pytest.raises(FencedError):
            old.submit_stamped(commands[500:510])
        with pytest.raises(FencedError):
            old.submit_stamped(commands[510:520])
        assert _log_records(url, log) == before

        # and the new leader is not disturbed by it
        new.submit_stamped(commands[525:550])
        assert new.journal.log.log.stream_seq == stream_seq + 1
        assert new.machine.state_hash() == _uninterrupted("engine", commands[:550])
        records = _log_records(url, log)
        assert _seqs(records, COMMAND) == [c.seq for c in commands[:550]]
    finally:
        standby.close()
        old.close()  # a fenced writer closes without writing


def test_leadership_lost_to_another_holder_calls_on_lost(nats_server: NatsServer) -> None:
    url, bucket = nats_server.url, "leases_lost"
    b = Leadership(url, "log-x", "b", ttl=TTL, bucket=bucket)
    # renewals keep the lease past its TTL
    with Leadership(url, "log-x", "a", ttl=TTL, bucket=bucket) as a:
        assert a.try_acquire()
        time.sleep(2 * TTL)
        assert a.held and not b.try_acquire()
    # released on close: free at once
    lost = threading.Event()
    reasons: list[str] = []

    def on_lost(reason: str) -> None:
        reasons.append(reason)
        lost.set()

    # a holder that stalls past its TTL (renews too late) loses the lease to another
    slow = Leadership(
        url, "log-x", "slow", ttl=TTL, bucket=bucket, on_lost=on_lost, renew_every=3 * TTL
    )
    try:
        assert slow.try_acquire()
        epoch = slow.epoch
        b.acquire(timeout=10)
        assert b.epoch > epoch
        assert lost.wait(10)
        assert not slow.held and "lost" in reasons[0]
        assert b.current_holder() == "b"
    finally:
        slow.close()
        b.close()


def test_service_restarts_from_jetstream_log_and_snapshot(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    url, log, bucket = nats_server.url, "exchange1", "leases_restart"
    commands = workload_commands("exchange")[:4_000]
    config = config_for("exchange")
    data = tmp_path / "data"
    lease = Leadership(url, lease_name(log), "node", ttl=TTL, bucket=bucket)
    lease.acquire(timeout=10)
    first = open_leader(data, url, log, lease, config=config, snapshot_every=700)
    # the pipelined path: acknowledged once the stream stored the batch
    half = [c for c in commands if c.seq <= commands[len(commands) // 2].seq]
    pending = []
    for i in range(0, len(half), BATCH):
        pending.append(first.submit_pipelined(half[i : i + BATCH]))
    for f in pending:
        f.result(timeout=30)
    stopped_at, stopped_hash = first.machine.last_seq, first.machine.state_hash()
    first.close()
    lease.close()

    lease = Leadership(url, lease_name(log), "node", ttl=TTL, bucket=bucket)
    lease.acquire(timeout=10)
    second = open_leader(data, url, log, lease, config=config, snapshot_every=700)
    try:
        stats = second.recovery
        assert 0 < stats.snapshot_seq <= stopped_at
        assert stats.commands_replayed == stopped_at - stats.snapshot_seq
        assert second.machine.last_seq == stopped_at
        assert second.machine.state_hash() == stopped_hash
        print(f"restart: snapshot {stats.snapshot_seq}, replayed {stats.commands_replayed}")
        _submit_all(second, commands)
        final_hash = second.machine.state_hash()
    finally:
        second.close()
        lease.close()
    assert final_hash == _uninterrupted("exchange", commands)

    # the log alone (no snapshot) rebuilds the same state, events checked byte for byte
    with JetStreamJournal.open(url, log) as reader:
        machine, _, stats = recover(
            tmp_path / "fresh", default=config, journal=reader, verify_events=True,
            complete=False,
        )  # fmt: skip
    assert stats.snapshot_seq == 0 and stats.events_checked == len(commands)
    assert machine.state_hash() == final_hash
    records = _log_records(url, log)
    assert _seqs(records, COMMAND) == [c.seq for c in commands]
    assert _seqs(records, EVENTS) == [c.seq for c in commands]
