"""Kill a journaled service with SIGKILL at random points, restart it, and check that
every acknowledged command is there exactly once and the state equals an
uninterrupted run (the engine alone, and the whole exchange with ``verify``)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crossbook.engine.matching import MatchingEngine
from crossbook.exchange.core import ExchangeCore
from crossbook.journal.framing import COMMAND, EVENTS
from crossbook.service import recover
from crossbook.verify import verify
from tests.service.crash_child import workload_commands

ROOT = Path(__file__).resolve().parents[2]


def _run_child(
    data_dir: Path, kind: str, kill: tuple[int, float] | None
) -> tuple[int, list[int], bool]:
    """Run the child; with ``kill=(n, delay)`` SIGKILL it ``delay`` s after its n-th ACK
    (so the kill lands inside a later batch). Returns (start seq, acked seqs, done)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.service.crash_child", str(data_dir), kind],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    start, acked, done = 0, [], False
    for raw in proc.stdout:
        line = raw.strip()
        if line.startswith("START "):
            start = int(line.split()[1])
        elif line.startswith("ACK "):
            acked.append(int(line.split()[1]))
            if kill is not None and len(acked) == kill[0]:
                time.sleep(kill[1])
                proc.send_signal(signal.SIGKILL)
                # whatever it acknowledged before dying counts too
                acked += [int(x.split()[1]) for x in proc.stdout if x.startswith("ACK ")]
                break
        elif line == "DONE":
            done = True
    proc.stdout.close()
    proc.wait(timeout=120)
    return start, acked, done


def _journal_seqs(data_dir: Path) -> tuple[list[int], list[int]]:
    _, journal, _ = recover(data_dir)
    commands, events = [], []
    for kind, seq, _payload in journal.records():
        assert kind in (COMMAND, EVENTS)
        (commands if kind == COMMAND else events).append(seq)
    journal.close()
    return commands, events


@pytest.mark.parametrize("kind", ["engine", "exchange"])
def test_service_killed_mid_batch_loses_nothing_acknowledged(tmp_path: Path, kind: str) -> None:
    rng = random.Random(5)
    data_dir = tmp_path / "data"
    kills = 0
    for _ in range(5):
        start, acked, done = _run_child(
            data_dir, kind, kill=(rng.randint(5, 60), rng.uniform(0, 0.01))
        )
        if done:
            break
        kills += 1
        # whatever was acknowledged before the kill survived it
        machine, journal, _ = recover(data_dir, verify_events=True)
        journal.close()
        assert machine.last_seq >= start
        if acked:
            assert machine.last_seq >= acked[-1]
    _, acked, done = _run_child(data_dir, kind, kill=None)
    assert done
    assert kills >= 1, "the child finished before it could be killed; lengthen the workload"

    commands = workload_commands(kind)
    recovered, journal, _ = recover(data_dir, verify_events=True)
    journal.close()
    # every command exactly once, in order, each followed by its events record
    cmd_seqs, event_seqs = _journal_seqs(data_dir)
    assert cmd_seqs == [c.seq for c in commands]
    assert event_seqs == cmd_seqs
    assert recovered.last_seq == commands[-1].seq

    uninterrupted = MatchingEngine(recovered.markets) if kind == "engine" else ExchangeCore()
    for c in commands:
        uninterrupted.execute(c)
    assert recovered.state_hash() == uninterrupted.state_hash()
    if kind == "exchange":
        report = verify(data_dir)
        assert report.ok, report.checks
