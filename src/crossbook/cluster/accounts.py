"""The accounts service: sequencer and writer of an ``accounts-K`` log (I/O edge).

One asyncio loop takes what arrived since the last batch -- gateway requests (NATS
request/reply on :func:`~crossbook.cluster.topology.submit_subject`) and the engines'
events (tails of each ``engine-SYMBOL`` log) -- stamps every input with the next seq,
applies it to the :class:`~crossbook.exchange.split.AccountsMachine`, appends its COMMAND
and EVENTS records and commits the batch as one JetStream message. Then the order
commands it forwards are committed to their ``orders-SYMBOL`` logs, and only then does
a request get its reply: at once for what the accounts decided alone (a deposit, a
refused order), or once its order's engine events are back and settled.

With several accounts shards (``config.accounts_shards``), shard ``K`` serves its own
users: its forwards (global seqs, :mod:`crossbook.domain.sharding`) go to
``orders-SYMBOL-K``, and it receives every engine record of every market (the machine
keeps what is about its users). An engine record names its forwarded command by that
command's seq, which is how a reply finds its request.

Restart: newest snapshot + the log's tail; the forwards of the tail that an
``orders-SYMBOL`` log does not hold yet are appended again (an engine skips what it
already ran); each engine log is tailed from the last command the accounts settled.
Snapshots are taken only after the forwards they cover are durable.

Hot standby (:meth:`AccountsService.follow`): while it waits for the lease, a standby
applies the log as the leader writes it and keeps the forwards of the last
``FOLLOWED_FORWARDS`` inputs; at takeover only the log after its machine is replayed,
and the forwards an ``orders-SYMBOL`` log lacks are re-sent from what it kept (or,
should it have dropped one of them, it recovers from its snapshot as a cold one does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from crossbook.accounts.core import EngineCommand
from crossbook.bus.jetstream import JetStreamLog
from crossbook.cluster.health import metrics_of
from crossbook.cluster.recovery import (
    Recovered,
    commit_until_durable,
    completed_commands,
    replay_log,
)
from crossbook.cluster.shared_snapshots import SnapshotSharer, fetch_quietly
from crossbook.cluster.topology import (
    accounts_log,
    engine_log,
    orders_log,
    service_dir,
    submit_subject,
)
from crossbook.cluster.wire import decode_request, encode_error, encode_reply, join_events
from crossbook.domain.codec import command_encoder, events_decoder
from crossbook.domain.routing import EngineEventsReceived
from crossbook.exchange.core import ExchangeConfig
from crossbook.exchange.split import AccountsMachine
from crossbook.journal.background import BackgroundSnapshots
from crossbook.journal.framing import COMMAND, EVENTS
from crossbook.journal.snapshots import SnapshotStore
from crossbook.service import Sequencer

log = logging.getLogger(__name__)


class _CommandHead(msgspec.Struct, array_like=True):
    """The first fields of an encoded command (the rest is not decoded)."""

    kind: str
    seq: int


_head_decoder = msgspec.json.Decoder(_CommandHead)

FOLLOWED_FORWARDS = 100_000
"""Forwards a hot standby keeps (those of the newest inputs), to re-send at takeover."""


@dataclass
class _Request:
    reply: str
    seqs: list[int]
    ts: list[int]
    results: list[bytes | None]  # each command's events, encoded
    remaining: int


@dataclass
class _Batch:
    """One computed batch, waiting to be made durable."""

    records: list[tuple[int, int, bytes]] = field(default_factory=list)
    forwards: list[EngineCommand] = field(default_factory=list)
    complete: list[_Request] = field(default_factory=list)  # replies due once durable
    inputs: int = 0
    settled: int = 0
    last_seq: int = 0


@dataclass
class AccountsStats:
    batches: int = 0
    inputs: int = 0
    requests: int = 0
    forwarded: int = 0
    settled: int = 0
    waiting: int = 0
    last_seq: int = 0
    recovered: Recovered | None = None
    lag: dict[str, int] = field(default_factory=dict)


class AccountsService:
    """See the module doc. ``await start()``, then ``await run()`` until stopped."""

    def __init__(
        self,
        nc: NATS,
        data_dir: Path,
        config: ExchangeConfig,
        *,
        shard: int = 0,
        replicas: int = 1,
        batch_max: int = 4096,
        snapshot_every: int = 200_000,
    ) -> None:
        self.nc = nc
        self.config = config
        self.shard = shard
        self.replicas = replicas
        self.batch_max = batch_max
        self.snapshot_every = snapshot_every
        self.markets = [m.symbol for m in config.markets]
        self.snapshots = SnapshotStore(service_dir(data_dir, accounts_log(shard)) / "snapshots")
        self.background = BackgroundSnapshots(self.snapshots)
        self.stats = AccountsStats()
        self._inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._waiting: dict[int, tuple[_Request, int, bytes]] = {}
        self._batches: asyncio.Queue[_Batch | None] = asyncio.Queue(maxsize=64)
        self._tasks: list[asyncio.Task[None]] = []
        self._since_snapshot = 0
        self._stopping = False
        self._running = False
        self.on_commit: Callable[[float], None] | None = None

    def fresh_or_snapshot(self) -> AccountsMachine:
        """The machine of the newest valid snapshot, or a fresh one."""
        latest = self.snapshots.latest()
        return self.fresh() if latest is None else self.restore(latest[1])

    def fresh(self) -> AccountsMachine:
        return AccountsMachine(self.config, self.shard)

    def restore(self, data: bytes) -> AccountsMachine:
        machine = AccountsMachine.restore(data)
        if machine.shard != self.shard or machine.config != self.config:
            raise ValueError(
                f"the snapshot is of shard {machine.shard} or another configuration, "
                f"not of shard {self.shard} of this deployment"
            )
        return machine

    async def follow(self, current: dict[str, Any]) -> None:
        """A hot standby's work until it leads (runs until cancelled): keep
        ``current["machine"]`` equal to the leader's by applying its log as it grows, and
        ``current["forwards"]`` the forwards of the newest inputs. ``current["dropped"]``
        is, per market, the seq of the newest forward no longer kept (0: none dropped; a
        snapshot's own forwards are all in their orders logs before it is published).
        Commands come as :func:`completed_commands` gives them."""
        machine = self.fresh_or_snapshot()
        forwards: deque[EngineCommand] = deque()
        dropped: dict[str, int] = {}
        current.update(machine=machine, forwards=forwards, dropped=dropped)
        async for command in completed_commands(
            self.nc, accounts_log(self.shard), machine.last_seq, replicas=self.replicas
        ):
            _events, forward = machine.route(command)
            if forward is None:
                continue
            forwards.append(forward)
            if len(forwards) > FOLLOWED_FORWARDS:
                old = forwards.popleft()
                dropped[old.market] = old.seq

    async def start(self, takeover: dict[str, Any] | None = None) -> None:
        """Open the logs as their writer and recover: from the newest snapshot, or from
        a hot standby's ``takeover`` state (:meth:`follow`), plus the log's tail."""
        nc = self.nc
        self.log = await JetStreamLog.open(
            nc, accounts_log(self.shard), replicas=self.replicas, fence=True
        )
        self.orders = {
            m: await JetStreamLog.open(
                nc, orders_log(m, self.shard), replicas=self.replicas, fence=True
            )
            for m in self.markets
        }
        # engine logs exist before their engines start, so the tails can follow them
        self.engines = {
            m: await JetStreamLog.open(nc, engine_log(m), replicas=self.replicas)
            for m in self.markets
        }
        tail_forwards: list[EngineCommand] = []

        def apply(machine: AccountsMachine, command: Any) -> list[Any]:
            events, forward = machine.route(command)
            if forward is not None:
                tail_forwards.append(forward)
            return events

        self.sharer = SnapshotSharer(
            nc.jetstream(), self.snapshots, accounts_log(self.shard), replicas=self.replicas
        )
        current, kept = None, []
        if takeover and all(
            seq <= self.orders[m].last_seq for m, seq in takeover["dropped"].items()
        ):  # every forward the orders logs may lack is among those kept
            current, kept = takeover["machine"], list(takeover["forwards"])
        if current is None:  # on a new machine: the newest snapshot another instance shared
            await fetch_quietly(self.sharer, log_end=self.log.last_seq)
        self.machine, self.stats.recovered = await replay_log(
            self.log,
            self.snapshots,
            self.fresh,
            self.restore,
            apply,
            current=current,
        )
        self._since_snapshot = self.stats.recovered.commands_replayed
        await self._forward(
            [f for f in (*kept, *tail_forwards) if f.seq > self.orders[f.market].last_seq]
        )
        self.sequencer = Sequencer(self.machine.last_seq)
        self.stats.last_seq = self.machine.last_seq
        for market in self.markets:
            self._tasks.append(asyncio.create_task(self._follow_engine(market)))
        self._sub = await nc.subscribe(submit_subject(self.shard), cb=self._on_request)

    def metrics(self) -> dict[str, float]:
        return metrics_of(
            self.stats,
            queue_depth=self._inbox.qsize() + self._batches.qsize(),
            lag=len(self._waiting),
        )

    @property
    def healthy(self) -> bool:
        return self._running

    async def _on_request(self, msg: Msg) -> None:
        self._inbox.put_nowait(("submit", msg))

    async def _follow_engine(self, market: str) -> None:
        """Each engine record (at a position of the engine log) as ``(position, seq of
        the forwarded command, events payload, events)``.

        With several shards, a record of another shard's command whose events are none
        about this shard's users is left out (the machine would keep nothing of it); if
        a batch of records ends with such, one record without events at the last
        position stands for them, so the machine's position in the engine log (where a
        restart resumes, and what ``crossbook verify`` compares) keeps up."""
        after = self.machine.engine_seqs[market]
        decode_head = _head_decoder.decode
        decode_events = events_decoder.decode
        shards, shard = self.config.accounts_shards, self.shard
        concerns = self.machine.accounts.concerns
        command: tuple[int, int] | None = None  # (position, forwarded seq) awaiting events
        async for records in self.engines[market].tail(after):
            items = []
            left_out = 0
            for kind, position, payload in records:
                if kind == COMMAND:
                    command = (position, decode_head(payload).seq)
                elif command is not None and command[0] == position:
                    forwarded, command = command[1], None
                    events = decode_events(payload)
                    theirs = shards > 1 and forwarded % shards != shard
                    if theirs and not any(concerns(e) for e in events):
                        left_out = position
                        continue
                    items.append((position, forwarded, payload, events))
                    left_out = 0
            if left_out:
                items.append((left_out, 0, b"[]", []))
            if items:
                self._inbox.put_nowait(("events", (market, items)))

    async def run(self) -> None:
        """Serve until :meth:`stop`; a commit that cannot be made (fenced off, or the
        server away for a minute) ends it with the error.

        Two tasks: this loop computes batches (stamp, apply, encode) while the
        committer makes earlier ones durable, group-committing whatever has queued
        up, then forwards their orders and sends their replies."""
        committer = asyncio.create_task(self._commit_batches())
        inbox = self._inbox
        self._running = True
        try:
            while not self._stopping:
                getter = asyncio.ensure_future(inbox.get())
                await asyncio.wait({getter, committer}, return_when=asyncio.FIRST_COMPLETED)
                if committer.done():
                    getter.cancel()
                    break
                item = getter.result()
                if item[0] == "stop":
                    break
                items = [item]
                while len(items) < self.batch_max and not inbox.empty():
                    items.append(inbox.get_nowait())
                batch = self._compute(items)
                if batch is not None:
                    await self._batches.put(batch)
            if not committer.done():
                await self._batches.put(None)  # drain, then end
            await committer  # raises the committer's error, if any
        finally:
            self._running = False
            committer.cancel()
        await asyncio.to_thread(self.background.finish)
        await self._snapshot()
        await self.sharer.close()

    def _compute(self, items: list[tuple[str, Any]]) -> _Batch | None:
        stamp = self.sequencer.stamp
        encode = command_encoder.encode
        # (command, its encoding if known, request and index; for engine events None and
        # the seq of the forwarded command they answer)
        inputs: list[tuple[Any, bytes | None, _Request | None, int]] = []
        for kind, value in items:
            if kind == "submit":
                self._accept(value, inputs)
            elif kind == "events":
                market, records = value
                quoted = encode(market)
                for position, forwarded, payload, events in records:
                    received = stamp(
                        EngineEventsReceived(
                            seq=0, ts=0, market=market, source_seq=position, events=events
                        )
                    )
                    # its encoding, with the engine's events as the engine wrote them
                    raw = b'["engine_events",%d,%d,%s,%d,%s]' % (
                        received.seq, received.ts, quoted, position, payload,
                    )  # fmt: skip
                    inputs.append((received, raw, None, forwarded))
            elif kind == "stop":
                self._stopping = True
        if not inputs:
            return None
        route = self.machine.route
        waiting = self._waiting
        batch = _Batch()
        records = batch.records
        complete = batch.complete
        for command, known, request, index in inputs:
            seq = command.seq
            records.append((COMMAND, seq, known or encode(command)))
            events, forward = route(command)
            encoded = encode(events)
            records.append((EVENTS, seq, encoded))
            if request is None:  # engine events came back (``index``: the forward's seq)
                batch.settled += 1
                entry = waiting.pop(index, None)
                if entry is None:
                    continue
                request, index, before = entry
                encoded = join_events(before, encoded)
            elif forward is not None:
                batch.forwards.append(forward)
                waiting[forward.seq] = (request, index, encoded)
                continue
            request.results[index] = encoded
            request.remaining -= 1
            if request.remaining == 0:
                complete.append(request)
        batch.inputs = len(inputs)
        batch.last_seq = self.machine.last_seq
        self._since_snapshot += len(inputs)
        if self._since_snapshot >= self.snapshot_every and self.background.start(
            batch.last_seq, self.machine.snapshot
        ):
            # the state as of this batch, published once the batch and its forwards are durable
            self._since_snapshot = 0
        return batch

    async def _commit_batches(self) -> None:
        queue = self._batches
        append = self.log.append
        publish = self.nc.publish
        while True:
            first = await queue.get()
            if first is None:
                return
            batches = [first]
            ending = False
            while not queue.empty():
                more = queue.get_nowait()
                if more is None:
                    ending = True
                    break
                batches.append(more)
            for batch in batches:
                for record in batch.records:
                    append(*record)
            started = time.perf_counter()
            await commit_until_durable(self.log)
            if self.on_commit is not None:
                self.on_commit(time.perf_counter() - started)
            # a complete request's forwards went out with earlier batches: answer it now
            for batch in batches:
                for request in batch.complete:
                    reply = encode_reply(
                        request.seqs,
                        request.ts,
                        request.results,  # type: ignore[arg-type]  # all set once complete
                        batch.last_seq,
                    )
                    await publish(request.reply, reply)
            await self._forward([f for batch in batches for f in batch.forwards])
            for batch in batches:
                stats = self.stats
                stats.batches += 1
                stats.inputs += batch.inputs
                stats.settled += batch.settled
                stats.last_seq = batch.last_seq
            self.background.durable(batches[-1].last_seq)
            self.background.poll()
            self.sharer.offer_if_new(self.background.taken)
            self.stats.waiting = len(self._waiting)
            if ending:
                return

    def _accept(
        self, msg: Msg, inputs: list[tuple[Any, bytes | None, _Request | None, int]]
    ) -> None:
        try:
            commands = decode_request(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            if msg.reply:
                reply = encode_error(f"bad request: {exc}")
                asyncio.get_running_loop().create_task(self.nc.publish(msg.reply, reply))
            return
        self.stats.requests += 1
        stamp = self.sequencer.stamp
        request = _Request(msg.reply, [], [], [None] * len(commands), len(commands))
        for index, command in enumerate(commands):
            stamped = stamp(command)
            request.seqs.append(stamped.seq)
            request.ts.append(stamped.ts)
            inputs.append((stamped, None, request, index))
        if not commands and msg.reply:
            request.remaining = -1
            asyncio.get_running_loop().create_task(
                self.nc.publish(msg.reply, encode_reply([], [], [], self.machine.last_seq))
            )

    async def _forward(self, forwards: list[EngineCommand]) -> None:
        """Append forwarded commands to their markets' logs and make them durable."""
        if not forwards:
            return
        by_market: dict[str, list[EngineCommand]] = defaultdict(list)
        for command in forwards:
            by_market[command.market].append(command)
        encode = command_encoder.encode
        for market, commands in by_market.items():
            orders = self.orders[market]
            for command in commands:
                orders.append(COMMAND, command.seq, encode(command))
        await asyncio.gather(*(commit_until_durable(self.orders[m]) for m in by_market))
        self.stats.forwarded += len(forwards)

    async def _snapshot(self) -> None:
        """The current state, once everything computed is durable (at the end)."""
        if self._since_snapshot == 0:
            return
        data = self.machine.snapshot()
        seq = self.machine.last_seq
        await asyncio.to_thread(self.snapshots.write, seq, data)
        await asyncio.to_thread(self.snapshots.prune, 2)
        self._since_snapshot = 0

    async def stop(self) -> None:
        """Finish the batch in hand, take a snapshot and close the logs."""
        with contextlib.suppress(Exception):
            await self._sub.unsubscribe()
        self._inbox.put_nowait(("stop", None))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        for lg in [self.log, *self.orders.values(), *self.engines.values()]:
            with contextlib.suppress(Exception):
                await lg.close()
