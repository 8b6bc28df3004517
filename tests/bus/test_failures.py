"""Server failures under load: nothing acknowledged is lost or doubled."""

from __future__ import annotations

import asyncio
import time

import nats.errors

from crossbook.bus.jetstream import CommitError, JetStreamLog
from crossbook.bus.server import NatsCluster, NatsServer
from crossbook.journal.framing import COMMAND


async def _writer(log: JetStreamLog, stop: asyncio.Event, acked: list[int]) -> None:
    """Commit batches of 20 records until ``stop``; retry a failed commit (same ids)."""
    seq = 0
    while not stop.is_set():
        if not log.pending:
            for _ in range(20):
                seq += 1
                log.append(COMMAND, seq, b"%d" % seq)
        try:
            await log.commit()
        except CommitError:
            await asyncio.sleep(0.05)
            continue
        acked.append(log.committed_seq)
    while log.pending:  # finish the batch in flight
        try:
            await log.commit()
            acked.append(log.committed_seq)
        except CommitError:
            await asyncio.sleep(0.05)


async def _check_log(log: JetStreamLog, acked: list[int]) -> None:
    seqs = [s async for _k, s, _p in log.records()]
    assert seqs == list(range(1, len(seqs) + 1)), "a record was lost or doubled"
    assert acked and seqs[-1] >= acked[-1], "an acknowledged record was lost"


def test_server_restart_under_load_loses_and_doubles_nothing(nats_server: NatsServer) -> None:
    async def main() -> None:
        log = await JetStreamLog.open(nats_server.url, "restart", ack_timeout=1.0)
        stop, acked = asyncio.Event(), []
        task = asyncio.create_task(_writer(log, stop, acked))
        await asyncio.sleep(0.5)
        for kill in (False, True):  # a clean stop, then a crash (SIGKILL)
            before = len(acked)
            await asyncio.to_thread(nats_server.kill if kill else nats_server.stop)
            await asyncio.sleep(0.3)
            await asyncio.to_thread(nats_server.start)
            deadline = time.monotonic() + 20
            while len(acked) < before + 5:
                assert time.monotonic() < deadline, "writes did not resume after restart"
                await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 30)
        await _check_log(log, acked)
        await log.close()

    asyncio.run(main())


def test_cluster_stream_leader_killed_under_load_keeps_accepting_writes(
    nats_cluster: NatsCluster,
) -> None:
    async def main() -> None:
        log = await JetStreamLog.open(nats_cluster.urls, "ha", replicas=3, ack_timeout=1.0)
        stop, acked = asyncio.Event(), []
        task = asyncio.create_task(_writer(log, stop, acked))
        await asyncio.sleep(0.5)
        info = await log.connection.jetstream().stream_info(log.stream)
        assert info.cluster is not None and info.cluster.leader
        leader = nats_cluster.node_index(info.cluster.leader)
        before = len(acked)
        killed_at = time.monotonic()
        await asyncio.to_thread(nats_cluster.kill_node, leader)
        deadline = killed_at + 20
        while len(acked) < before + 20:
            assert time.monotonic() < deadline, "the cluster stopped accepting writes"
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 30)
        info = await log.connection.jetstream().stream_info(log.stream)
        assert info.cluster is not None and info.cluster.leader != f"n{leader}"
        # right after the election the new leader may answer consumer requests slowly:
        # reading back is retried, the content must be exact
        for attempt in range(6):
            try:
                await _check_log(log, acked)
                break
            except nats.errors.TimeoutError:
                if attempt == 5:
                    raise
                await asyncio.sleep(2.0)
        await log.close()

    asyncio.run(main())
