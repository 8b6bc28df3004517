"""Durable pull consumers with explicit acks: at-least-once delivery, effects once.

A downstream service (the ledger writer reading an engine's log, ...) reads a
:class:`~crossbook.bus.jetstream.JetStreamLog` through a durable JetStream consumer.
JetStream redelivers anything not acknowledged within ``ack_wait`` (a consumer that
died between applying and acking sees those messages again), so the consumer side
remembers what it applied: an :class:`Applier` stores, atomically with each effect,
the position ``(seq, kind)`` of the record it applied (in its state, its snapshot, or
the same SQL transaction), and :meth:`DurableConsumer.poll` skips every record at or
below that position before acking. Records of a log written by the service have
strictly increasing ``(seq, kind)`` (a COMMAND, then the EVENTS of the same seq).

::

    consumer = await DurableConsumer.open(nc, "engine-BTC-USDT", "ledger-writer")
    while running:
        await consumer.poll(applier)          # apply new records, ack, skip redeliveries
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
from collections.abc import Awaitable, Callable
from typing import Protocol

import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext, api
from nats.js.errors import ServiceUnavailableError

from crossbook.bus.jetstream import decode_batch, stream_name, subject_name

__all__ = ["Applier", "DurableConsumer", "PollStats", "Record"]

_UNAVAILABLE = (ServiceUnavailableError, NoRespondersError)
"""What a fetch raises while the server restarts or a stream elects a new leader."""


@dataclasses.dataclass(frozen=True, slots=True)
class Record:
    """One log record as delivered: ``stream_seq`` is the message's stream sequence
    and ``delivered`` how many times that message was delivered (1 the first time)."""

    kind: int
    seq: int
    payload: bytes
    stream_seq: int
    delivered: int

    @property
    def position(self) -> tuple[int, int]:
        return (self.seq, self.kind)


class Applier(Protocol):
    """What a consumer applies records to."""

    def position(self) -> tuple[int, int]:
        """``(seq, kind)`` of the last record whose effect is durably applied
        (``(0, 0)`` for none)."""
        ...

    def apply(self, record: Record) -> Awaitable[None] | None:
        """Apply one record's effect and durably record its position with it."""
        ...


@dataclasses.dataclass(slots=True)
class PollStats:
    messages: int = 0
    applied: int = 0
    skipped: int = 0
    redelivered: int = 0
    deferred: int = 0
    unacked: int = 0


class DurableConsumer:
    """A durable pull consumer (explicit acks) on one log's stream."""

    def __init__(
        self,
        js: JetStreamContext,
        sub: JetStreamContext.PullSubscription,
        durable: str,
        next_stream_seq: int,
        ack_wait: float,
    ) -> None:
        """Internal: use ``DurableConsumer.open``."""
        self._js = js
        self._sub = sub
        self.durable = durable
        self.ack_wait = ack_wait
        self._next = next_stream_seq  # the message to apply next, in stream order
        self.last_pending = 0
        """Messages the server still held for this consumer at the last fetch."""

    @classmethod
    async def open(
        cls,
        nc: NATS,
        log: str,
        durable: str,
        *,
        ack_wait: float = 30.0,
        max_ack_pending: int = 10_000,
    ) -> DurableConsumer:
        """Bind to (creating if needed) the durable consumer ``durable`` of ``log``.
        A new consumer starts at the beginning of the log; an existing one resumes
        after its last acknowledged message."""
        js = nc.jetstream()
        config = api.ConsumerConfig(
            durable_name=durable,
            ack_policy=api.AckPolicy.EXPLICIT,
            deliver_policy=api.DeliverPolicy.ALL,
            ack_wait=ack_wait,
            max_ack_pending=max_ack_pending,
        )
        sub = await js.pull_subscribe(
            subject_name(log), durable=durable, stream=stream_name(log), config=config
        )
        info = await sub.consumer_info()
        stream = await js.stream_info(stream_name(log))
        floor = info.ack_floor.stream_seq if info.ack_floor else 0
        return cls(js, sub, durable, max(floor + 1, stream.state.first_seq), ack_wait)

    async def poll(
        self,
        applier: Applier,
        *,
        max_messages: int = 64,
        timeout: float = 1.0,
        commit: Callable[[], Awaitable[object]] | None = None,
    ) -> PollStats:
        """Fetch up to ``max_messages`` messages (waiting at most ``timeout`` s for
        the first), apply their records that are past ``applier.position()`` in
        order, and ack each message once all its records are applied. An exception
        from ``apply`` propagates and leaves the message unacked (redelivered later).

        Messages are applied strictly in stream order: one delivered ahead of an
        earlier unacked message (left by a consumer that died) is nak'ed with a short
        delay and applied after it, so skipping by position never drops a record.

        ``commit``, if given, is awaited once the fetched messages are applied and
        before any of them is acked: an applier that buffers its effects (a service
        appending to its own log) makes them durable there, so a crash between
        applying and acking leaves them unacked and redelivered, never lost.
        """
        return await self.apply(applier, await self.fetch(max_messages, timeout), commit=commit)

    async def apply(
        self,
        applier: Applier,
        msgs: list[Msg],
        *,
        commit: Callable[[], Awaitable[object]] | None = None,
    ) -> PollStats:
        """The second half of :meth:`poll`: apply and ack messages :meth:`fetch` got (a
        service merging several consumers fetches from all at once, and applies what
        each brings in turn)."""
        stats = PollStats()
        applied: list[Msg] = []
        if not msgs:
            return stats
        for msg in msgs:
            meta = msg.metadata
            delivered = meta.num_delivered or 1
            stream_seq = meta.sequence.stream
            stats.messages += 1
            stats.redelivered += delivered > 1
            if stream_seq > self._next:
                # an earlier message is still unacked (a previous instance died holding
                # it): apply nothing out of order; this one comes back after it
                stats.deferred += 1
                await msg.nak(delay=min(self.ack_wait, 0.5))
                continue
            for kind, seq, payload in decode_batch(msg.data):
                record = Record(kind, seq, payload, meta.sequence.stream, delivered)
                if record.position <= applier.position():
                    stats.skipped += 1
                    continue
                result = applier.apply(record)
                if inspect.isawaitable(result):
                    await result
                stats.applied += 1
            self._next = max(self._next, stream_seq + 1)
            if commit is None:
                await msg.ack_sync()
            else:
                applied.append(msg)
        if applied and commit is not None:
            await commit()
            for msg in applied:
                try:
                    await msg.ack()
                except nats.errors.Error:  # lost: redelivered later, and skipped then
                    stats.unacked += 1
        return stats

    async def fetch(self, max_messages: int, timeout: float) -> list[Msg]:
        """Up to ``max_messages`` messages, as soon as there is one. A JetStream pull
        request for n messages lingers until n arrived or it expires, so one message
        is waited for (up to ``timeout``) and then as many more as the server says
        are pending (stored already, so they come at once)."""
        try:
            msgs = await self._sub.fetch(1, timeout=timeout)
        except (NatsTimeoutError, TimeoutError):  # nats-py raises either when nothing came
            return []
        except _UNAVAILABLE:
            # the server restarts, or the stream elects a new leader: nothing now
            await asyncio.sleep(min(timeout, 0.2))
            return []
        pending = int(msgs[-1].metadata.num_pending or 0)
        more = min(max_messages - 1, pending)
        self.last_pending = pending - more
        if more > 0:  # already stored: a no-wait request gets them at once
            with contextlib.suppress(NatsTimeoutError, TimeoutError, *_UNAVAILABLE):
                msgs += await self._sub.fetch(more, timeout=0.002)
        return msgs

    async def pending(self) -> int:
        """Messages not yet delivered plus delivered but unacknowledged."""
        info = await self._sub.consumer_info()
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)

    async def close(self) -> None:
        """Stop fetching; the durable consumer stays on the server."""
        with contextlib.suppress(Exception):
            await self._sub.unsubscribe()
