"""Rebuilding a service's machine from its newest snapshot and its JetStream log."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client as NATS

from crossbook.bus.jetstream import CommitError, FencedError, JetStreamLog
from crossbook.domain.codec import command_decoder, command_encoder
from crossbook.journal.framing import COMMAND, EVENTS
from crossbook.journal.snapshots import SnapshotStore


@dataclass
class Recovered:
    snapshot_seq: int
    commands_replayed: int
    seconds: float


async def replay_log(
    log: JetStreamLog,
    snapshots: SnapshotStore,
    fresh: Callable[[], Any],
    restore: Callable[[bytes], Any],
    apply: Callable[[Any, Any], list[Any]],
    *,
    current: Any = None,
) -> tuple[Any, Recovered]:
    """The machine of the newest valid snapshot (or ``fresh()``), current with the
    log: every COMMAND record after the snapshot is applied with ``apply(machine,
    command)`` (which returns its events). ``current`` is a machine already current up
    to its ``last_seq`` (a hot standby's): only the log after it is applied. ``log``
    must be open as the writer: a command whose EVENTS record is missing (a batch cut
    between two messages) gets it appended, as the file journal's recovery does."""
    started = time.perf_counter()
    if current is not None:
        machine = current
    else:
        latest = snapshots.latest()
        machine = fresh() if latest is None else restore(latest[1])
    snapshot_seq = machine.last_seq
    decode = command_decoder.decode
    replayed, last_seq, last_kind, last_events = 0, 0, EVENTS, []
    collecting = gc.isenabled()
    gc.disable()
    try:
        async for kind, seq, payload in log.records(after_seq=snapshot_seq):
            last_kind = kind
            if kind == COMMAND:
                last_events = apply(machine, decode(payload))
                last_seq = seq
                replayed += 1
    finally:
        if collecting:
            gc.enable()
    if replayed and last_kind == COMMAND:
        log.append(EVENTS, last_seq, command_encoder.encode(last_events))
        await commit_until_durable(log)
    return machine, Recovered(snapshot_seq, replayed, time.perf_counter() - started)


async def commit_until_durable(log: JetStreamLog, *, attempts: int = 600) -> None:
    """Commit, retrying (deduplicated) while the server is away, about a minute in
    all. A fenced writer (another instance took over) raises at once."""
    for attempt in range(attempts):
        try:
            await log.commit()
            return
        except FencedError:
            raise
        except CommitError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.1)


async def completed_commands(
    nc: NATS, name: str, after_seq: int, *, replicas: int = 1
) -> AsyncIterator[Any]:
    """A hot standby's input: the commands of log ``name`` after ``after_seq``, decoded, as
    the leader writes them (until cancelled). A command is given once its EVENTS record
    is there too: one left without them (its leader died between two messages of a
    batch) is for the takeover's recovery, which completes it."""
    log = await JetStreamLog.open(nc, name, replicas=replicas)
    decode = command_decoder.decode
    held: tuple[int, bytes] | None = None
    last = after_seq
    try:
        async for records in log.tail(after_seq):
            for kind, seq, payload in records:
                if kind == COMMAND:
                    held = (seq, payload)
                elif held is not None and held[0] == seq and seq > last:
                    command, last, held = decode(held[1]), seq, None
                    yield command
    finally:
        await log.close()
