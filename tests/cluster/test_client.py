"""The gateways' accounts client during a failover: a command nobody received is sent
again until a leader takes it, for up to the client's timeout; after that it is
refused as not applied (``ServiceUnavailable``), not as of unknown outcome."""

from __future__ import annotations

import asyncio
import time

import nats
import pytest

from crossbook.bus.server import NatsServer
from crossbook.cluster.client import AccountsClient, ServiceUnavailable
from crossbook.cluster.topology import submit_subject
from crossbook.cluster.wire import decode_request, encode_reply
from tests.cluster.test_split_services import deposit, run


def test_a_command_sent_while_no_leader_serves_the_shard_waits_for_one(
    nats_server: NatsServer,
) -> None:
    async def main() -> None:
        nc = await nats.connect(nats_server.url)
        try:
            client = AccountsClient(nc, 1, timeout=5)
            pending = asyncio.ensure_future(client.submit(deposit(1, "BTC", 5, "d")))
            await asyncio.sleep(0.5)  # no leader yet: the client keeps sending
            assert not pending.done()

            async def lead(msg: nats.aio.msg.Msg) -> None:
                commands = decode_request(msg.data)
                await msg.respond(encode_reply([7] * len(commands), [1] * len(commands),
                                               [b"[]"] * len(commands), 7))  # fmt: skip

            await nc.subscribe(submit_subject(1), cb=lead)
            assert await asyncio.wait_for(pending, 5) == (7, [])
        finally:
            await nc.close()

    run(main())


def test_a_command_nobody_takes_within_the_timeout_is_refused_as_not_applied(
    nats_server: NatsServer,
) -> None:
    async def main() -> None:
        nc = await nats.connect(nats_server.url)
        try:
            client = AccountsClient(nc, 0, timeout=1)
            started = time.monotonic()
            with pytest.raises(ServiceUnavailable, match="nothing was applied"):
                await client.submit(deposit(1, "BTC", 5, "d"))
            assert 0.8 < time.monotonic() - started < 3
        finally:
            await nc.close()

    run(main())
