"""Submitting commands to an accounts service (what a gateway uses).

Concurrent callers' commands are coalesced into one request per event-loop turn, so
a busy gateway sends few large requests; each caller gets its command's seq and
events once the accounts service acknowledged them (durable, and settled).
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from nats.aio.client import Client as NATS
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from crossbook.cluster.topology import submit_subject
from crossbook.cluster.wire import decode_reply, encode_request


class SubmitError(Exception):
    """The accounts service did not acknowledge: the command may or may not have been
    applied (like an HTTP timeout); look it up before sending it again."""


class ServiceUnavailable(SubmitError):
    """No accounts service took the command (none served the shard, e.g. during a
    failover, for the whole timeout): it was not applied, and may be sent again."""


class AccountsClient:
    def __init__(
        self, nc: NATS, shard: int = 0, *, timeout: float = 10.0, max_batch: int = 2048
    ) -> None:
        self.nc = nc
        self.subject = submit_subject(shard)
        self.timeout = timeout
        self.max_batch = max_batch
        self._pending: list[tuple[Any, asyncio.Future[tuple[Any, list[Any], int]]]] = []
        self._scheduled = False

    async def submit(self, command: Any) -> tuple[int, list[Any]]:
        """(seq, events) of one command, once acknowledged."""
        stamped, events, _ = await self.submit_stamped(command)
        return stamped.seq, events

    async def submit_stamped(self, command: Any) -> tuple[Any, list[Any], int]:
        """(the command as stamped, its events, the reply's ``last_seq``)."""
        future: asyncio.Future[tuple[Any, list[Any], int]] = (
            asyncio.get_running_loop().create_future()
        )
        self._pending.append((command, future))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        return await future

    async def submit_many(self, commands: list[Any]) -> list[tuple[int, list[Any]]]:
        """One request for ``commands`` (in this order)."""
        return [(c.seq, events) for c, events, _ in await self._request(commands)]

    def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, []
        for i in range(0, len(pending), self.max_batch):
            asyncio.get_running_loop().create_task(self._send(pending[i : i + self.max_batch]))

    async def _send(
        self, part: list[tuple[Any, asyncio.Future[tuple[Any, list[Any], int]]]]
    ) -> None:
        try:
            results = await self._request([c for c, _ in part])
        except Exception as exc:
            for _, future in part:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(part, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def _request(self, commands: list[Any]) -> list[tuple[Any, list[Any], int]]:
        """One request; sent again while nobody serves the shard (a failover: nobody
        received it, so nothing was applied), for up to ``timeout`` in all."""
        payload = encode_request(commands)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        pause = 0.02
        while True:
            try:
                left = max(deadline - loop.time(), 0.001)
                msg = await self.nc.request(self.subject, payload, timeout=left)
                break
            except NoRespondersError as exc:
                left = deadline - loop.time()
                if left <= 0:
                    raise ServiceUnavailable(
                        f"no accounts service serves {self.subject} (nothing was applied)"
                    ) from exc
                await asyncio.sleep(min(pause, left))
                pause = min(pause * 2, 0.5)
            except (NatsTimeoutError, TimeoutError) as exc:
                raise SubmitError(f"accounts service did not answer: {exc!r}") from exc
        reply = decode_reply(msg.data)
        if reply.error:
            raise SubmitError(reply.error)
        return [
            (msgspec.structs.replace(c, seq=seq, ts=ts), events or [], reply.last_seq)
            for c, seq, ts, events in zip(
                commands, reply.seqs, reply.ts, reply.results, strict=True
            )
        ]
