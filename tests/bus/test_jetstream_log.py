"""JetStreamLog against a real nats-server: commit, read back, dedup, fencing."""

from __future__ import annotations

import asyncio

import nats
import pytest

from crossbook.bus.jetstream import (
    FencedError,
    JetStreamLog,
    LogError,
    SyncJetStreamLog,
    stream_name,
)
from crossbook.bus.server import NatsServer
from crossbook.journal.framing import COMMAND, EVENTS


def _fill(log: JetStreamLog | SyncJetStreamLog, first: int, last: int) -> None:
    for seq in range(first, last + 1):
        log.append(COMMAND, seq, b"cmd%d" % seq)
        log.append(EVENTS, seq, b"ev%d" % seq)


async def _all(log: JetStreamLog, after: int = 0, kind: int | None = None) -> list:
    return [r async for r in log.records(after, kind)]


async def _stream_messages(url: str, log: str) -> int:
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().stream_info(stream_name(log))
        return int(info.state.messages)
    finally:
        await nc.close()


def test_append_commit_read_back(nats_server: NatsServer) -> None:
    async def main() -> None:
        log = await JetStreamLog.open(nats_server.url, "m1")
        assert (log.last_seq, log.committed_seq) == (0, 0)
        _fill(log, 1, 300)
        assert log.last_seq == 300 and log.committed_seq == 0 and log.pending == 600
        res = await log.commit()
        assert (res.records, res.messages, res.duplicates) == (600, 1, 0)
        assert log.committed_seq == 300 and log.pending == 0
        _fill(log, 301, 310)
        await log.commit()
        assert (await log.commit()).records == 0  # nothing pending
        with pytest.raises(ValueError):
            log.append(COMMAND, 5, b"back in time")
        records = await _all(log)
        assert len(records) == 620
        assert records[0] == (COMMAND, 1, b"cmd1") and records[1] == (EVENTS, 1, b"ev1")
        assert records[-1] == (EVENTS, 310, b"ev310")
        assert await _all(log, 305) == [
            r
            for s in range(306, 311)
            for r in ((COMMAND, s, b"cmd%d" % s), (EVENTS, s, b"ev%d" % s))
        ]
        assert [r[1] for r in await _all(log, 299, EVENTS)] == list(range(300, 311))
        assert await _all(log, 310) == []
        await log.close()
        # reopen: the tail tells last_seq
        again = await JetStreamLog.open(nats_server.url, "m1")
        assert again.last_seq == again.committed_seq == 310
        await again.close()

    asyncio.run(main())


def test_big_batch_is_split_in_messages_and_read_back(nats_server: NatsServer) -> None:
    async def main() -> None:
        log = await JetStreamLog.open(nats_server.url, "big", max_message_bytes=4096)
        for seq in range(1, 101):
            log.append(COMMAND, seq, bytes([seq % 251]) * 500)
        res = await log.commit()
        assert res.records == 100 and res.messages > 10
        records = await _all(log, 42)
        assert [s for _k, s, _p in records] == list(range(43, 101))
        assert all(p == bytes([s % 251]) * 500 for _k, s, p in records)
        await log.close()

    asyncio.run(main())


def test_sync_facade_round_trip(nats_server: NatsServer) -> None:
    with SyncJetStreamLog.open(nats_server.url, "sync") as log:
        _fill(log, 1, 50)
        assert log.commit().records == 100
        assert log.committed_seq == 50
        assert [s for _k, s, _p in log.records(after_seq=48)] == [49, 49, 50, 50]
    with SyncJetStreamLog.open(nats_server.url, "sync") as log:
        assert log.last_seq == 50


def test_republished_batch_is_deduplicated(nats_server: NatsServer) -> None:
    """A batch published again with the same message ids (its ack was lost, the same
    writer retries) is answered duplicate=True and stores nothing new."""

    async def main() -> None:
        first = await JetStreamLog.open(nats_server.url, "dup", writer_id="w1")
        retry = await JetStreamLog.open(nats_server.url, "dup", writer_id="w1")
        _fill(first, 1, 20)
        _fill(retry, 1, 20)
        res = await first.commit()
        assert res.duplicates == 0
        before = await _stream_messages(nats_server.url, "dup")
        again = await retry.commit()  # same records, same ids, same expected position
        assert again.duplicates == again.messages == 1 and again.records == 40
        assert await _stream_messages(nats_server.url, "dup") == before
        assert len(await _all(first)) == 40
        # at the client level: the server answers duplicate=True
        js = first.connection.jetstream()
        ack = await js.publish(first.subject, b"", headers={"Nats-Msg-Id": "dup:x"})
        ack2 = await js.publish(first.subject, b"", headers={"Nats-Msg-Id": "dup:x"})
        assert not ack.duplicate and ack2.duplicate and ack2.seq == ack.seq
        await first.close()
        await retry.close()

    asyncio.run(main())


def test_stale_writer_commit_is_fenced_and_writes_nothing(nats_server: NatsServer) -> None:
    async def main() -> None:
        leader = await JetStreamLog.open(nats_server.url, "fence")
        stale = await JetStreamLog.open(nats_server.url, "fence")
        _fill(leader, 1, 5)
        await leader.commit()
        _fill(stale, 1, 3)
        before = await _stream_messages(nats_server.url, "fence")
        with pytest.raises(FencedError, match="stale writer"):
            await stale.commit()
        assert await _stream_messages(nats_server.url, "fence") == before
        assert stale.fenced
        with pytest.raises(FencedError):
            stale.append(COMMAND, 9, b"x")
        # the leader goes on
        _fill(leader, 6, 6)
        await leader.commit()
        assert [s for _k, s, _p in await _all(leader)] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6]
        await leader.close()
        await stale.close()

    asyncio.run(main())


def test_takeover_fence_stops_old_leader_before_new_leader_writes(
    nats_server: NatsServer,
) -> None:
    async def main() -> None:
        old = await JetStreamLog.open(nats_server.url, "takeover")
        _fill(old, 1, 2)
        await old.commit()
        new = await JetStreamLog.open(nats_server.url, "takeover", fence=True)
        assert new.last_seq == 2
        _fill(old, 3, 3)
        with pytest.raises(FencedError):
            await old.commit()
        _fill(new, 3, 3)
        await new.commit()
        assert [s for _k, s, _p in await _all(new)] == [1, 1, 2, 2, 3, 3]
        assert [s for _k, s, _p in await _all(new, 2)] == [3, 3]
        # the marker is invisible to readers and to a reopened writer
        third = await JetStreamLog.open(nats_server.url, "takeover", fence=True)
        assert third.last_seq == 3
        assert [s for _k, s, _p in await _all(third, 1)] == [2, 2, 3, 3]
        for log in (old, new, third):
            await log.close()

    asyncio.run(main())


def test_closed_log_refuses_use(nats_server: NatsServer) -> None:
    async def main() -> None:
        log = await JetStreamLog.open(nats_server.url, "closed")
        await log.close()
        await log.close()
        with pytest.raises(LogError):
            log.append(COMMAND, 1, b"")

    asyncio.run(main())
