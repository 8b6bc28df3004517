"""Durable consumer (effects once under redelivery) and leader leases on KV."""

from __future__ import annotations

import asyncio

import nats
import pytest

from crossbook.bus.consumer import DurableConsumer, Record
from crossbook.bus.jetstream import JetStreamLog
from crossbook.bus.lease import LeaseHeld, LeaseLost, LeaseStore
from crossbook.bus.server import NatsServer
from crossbook.journal.framing import COMMAND, EVENTS


class Crash(Exception):
    """The consumer process dies (here: after applying, before acking)."""


class Ledger:
    """A projection whose effects and applied position are committed together."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, int]] = []
        self.applied = (0, 0)
        self.crash_after: tuple[int, int] | None = None

    def position(self) -> tuple[int, int]:
        return self.applied

    def apply(self, record: Record) -> None:
        self.rows.append(record.position)  # effect and position in one "transaction"
        self.applied = record.position
        if record.position == self.crash_after:
            raise Crash


def test_consumer_killed_between_apply_and_ack_ignores_redelivery(
    nats_server: NatsServer,
) -> None:
    async def main() -> None:
        log = await JetStreamLog.open(nats_server.url, "engine")
        for batch in range(4):
            for seq in range(batch * 10 + 1, batch * 10 + 11):
                log.append(COMMAND, seq, b"c")
                log.append(EVENTS, seq, b"e")
            await log.commit()
        ledger = Ledger()
        ledger.crash_after = (15, EVENTS)  # mid second message
        nc1 = await nats.connect(nats_server.url)
        consumer = await DurableConsumer.open(nc1, "engine", "ledger", ack_wait=1.0)
        with pytest.raises(Crash):
            while True:
                await consumer.poll(ledger, max_messages=1)
        await nc1.close()  # killed: message 2 applied in part, never acked
        ledger.crash_after = None
        nc2 = await nats.connect(nats_server.url)
        consumer = await DurableConsumer.open(nc2, "engine", "ledger", ack_wait=1.0)
        redelivered = skipped = 0
        deadline = asyncio.get_running_loop().time() + 15
        while await consumer.pending() and asyncio.get_running_loop().time() < deadline:
            stats = await consumer.poll(ledger, max_messages=8, timeout=0.5)
            redelivered += stats.redelivered
            skipped += stats.skipped
        assert redelivered >= 1 and skipped == 10  # (11..15) x 2 kinds already applied
        expected = [(s, k) for s in range(1, 41) for k in (COMMAND, EVENTS)]
        assert ledger.rows == expected  # every effect exactly once, in order
        await consumer.close()
        await nc2.close()
        await log.close()

    asyncio.run(main())


def test_second_acquirer_fails_while_lease_is_held(nats_server: NatsServer) -> None:
    async def main() -> None:
        nc = await nats.connect(nats_server.url)
        leases = await LeaseStore.open(nc, ttl=5.0)
        lease = await leases.acquire("engine-BTC", "node-a")
        with pytest.raises(LeaseHeld, match="node-a"):
            await leases.acquire("engine-BTC", "node-b")
        lease = await leases.renew(lease)
        assert await leases.holder("engine-BTC") == "node-a"
        await leases.release(lease)
        assert await leases.holder("engine-BTC") is None
        taken = await leases.acquire("engine-BTC", "node-b")
        assert taken.epoch > lease.epoch
        await nc.close()

    asyncio.run(main())


def test_lease_expiry_lets_second_take_over_and_deposed_renew_fails(
    nats_server: NatsServer,
) -> None:
    async def main() -> None:
        nc = await nats.connect(nats_server.url)
        leases = await LeaseStore.open(nc, bucket="short", ttl=1.0)
        old = await leases.acquire("accounts", "node-a")
        deadline = asyncio.get_running_loop().time() + 10
        while True:  # node-a stops renewing: the entry expires after the TTL
            try:
                new = await leases.acquire("accounts", "node-b")
                break
            except LeaseHeld:
                assert asyncio.get_running_loop().time() < deadline, "lease never expired"
                await asyncio.sleep(0.1)
        assert new.epoch != old.epoch
        with pytest.raises(LeaseLost, match="node-b"):
            await leases.renew(old)  # compare-and-set on a stale revision
        with pytest.raises(LeaseLost):
            await leases.release(old)
        assert await leases.holder("accounts") == "node-b"
        await leases.renew(new)
        await nc.close()

    asyncio.run(main())
