"""A gateway's runtime when the accounts are sharded: the surface of
:class:`~crossbook.cluster.gateway_runtime.ClusterRuntime` over every accounts shard's
log and every engine's log (:class:`~crossbook.cluster.sharded_view.ShardedView`).

- ``submit`` sends a command to its user's shard and returns once it is acknowledged
  (a new order with its id, the global seq: :mod:`crossbook.domain.sharding`),
  this gateway's view of that shard has reached the reply's seq, and every engine view
  has what that shard had received from the engines (so the books hold the order).
- Subscribers choose a feed: ``"market"`` gets each engine log's ``(command, events)``
  pairs (market data), with each event's ``seq`` set to its command's position in the
  engine log (the global seqs of several shards do not increase in engine order, and
  market data skips a seq that does not increase), ``"accounts"`` each shard log's
  (user streams). In a shard's
  feed a fill between two shards names only the order of its own side (the other
  order id is 0), so a tracker fed by every shard applies each side once.
- On start the view is restored from the newest usable boot snapshot the market data
  service keeps (:class:`~crossbook.cluster.boot.ShardedBootSnapshot`), and every log
  is replayed after its position there (from its beginning without one); ``catch_up``
  hooks see the engine logs' events.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import nats
import structlog
from nats.aio.client import Client as NATS

from crossbook.bus.jetstream import JetStreamLog
from crossbook.cluster.boot import ShardedBootSnapshot, load_sharded_boot_snapshot
from crossbook.cluster.client import AccountsClient
from crossbook.cluster.gateway_runtime import FollowerState
from crossbook.cluster.sharded_view import ShardedView
from crossbook.cluster.topology import accounts_log, engine_log
from crossbook.cluster.waiters import Waiters
from crossbook.domain.codec import command_decoder
from crossbook.domain.commands import PlaceOrder
from crossbook.domain.events import OrderFilled
from crossbook.domain.sharding import global_seq
from crossbook.exchange.core import ExchangeConfig
from crossbook.journal.framing import COMMAND

log = structlog.get_logger("crossbook.cluster.gateway")

Subscriber = Callable[[list[tuple[Any, list[Any]]]], None]


def in_engine_order(position: int, events: list[Any]) -> list[Any]:
    """``events`` of the engine log's command at ``position``, numbered by it."""
    return [msgspec.structs.replace(e, seq=position) for e in events]


def own_sides(shard: int, shards: int, events: list[Any]) -> list[Any]:
    """``events`` with each fill between shards reduced to ``shard``'s side."""
    out = events
    for i, e in enumerate(events):
        if type(e) is OrderFilled and e.taker_owner % shards != e.maker_owner % shards:
            if out is events:
                out = list(events)
            if e.taker_owner % shards == shard:
                out[i] = msgspec.structs.replace(e, maker_order_id=0)
            else:
                out[i] = msgspec.structs.replace(e, taker_order_id=0)
    return out


class ShardedClusterRuntime(FollowerState):
    def __init__(
        self,
        data_dir: Path,
        config: ExchangeConfig,
        nats_url: str,
        *,
        read_timeout: float = 10.0,
    ) -> None:
        self.data_dir = data_dir
        self.config = config
        self.nats_url = nats_url
        self.shards = config.accounts_shards
        self.read_timeout = read_timeout
        self.view = ShardedView(config)
        self.published_seqs = [0] * self.shards
        self.replayed = 0
        self._subscribers: dict[str, list[Subscriber]] = {"market": [], "accounts": []}
        self._waiters = Waiters()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._failed: BaseException | None = None
        self.nc: NATS | None = None

    # ------------------------------------------------------------- lifecycle

    async def open(self, catch_up: list[Callable[[list[Any]], Any]] | None = None) -> None:
        await self.connect(boot=False)
        await self.catch_up(catch_up)

    async def connect(self, *, boot: bool = True) -> ShardedBootSnapshot | None:
        """Connect and open every log; with ``boot``, restore the view from the newest
        usable boot snapshot and return it (the caller restores its market data from it
        too), else ``None``."""
        self.nc = nc = await nats.connect(
            self.nats_url.split(","),
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.1,
            connect_timeout=5,
        )
        self.clients = [AccountsClient(nc, k) for k in range(self.shards)]
        self.logs = [await JetStreamLog.open(nc, accounts_log(k)) for k in range(self.shards)]
        self.engine_logs = {
            m.symbol: await JetStreamLog.open(nc, engine_log(m.symbol)) for m in self.config.markets
        }
        if not boot:
            return None
        snap = await load_sharded_boot_snapshot(nc.jetstream(), self.shards)
        if snap is None:
            return None
        reason = self._unusable(snap)
        if reason:
            log.warning("boot snapshot not used; replaying the logs", reason=reason)
            return None
        self.view = ShardedView.restore(snap.view)
        self.published_seqs = list(snap.seqs)
        log.info("booted from snapshot", seqs=snap.seqs, positions=snap.positions)
        return snap

    def _unusable(self, snap: ShardedBootSnapshot) -> str:
        """Why ``snap`` cannot be booted from ("" if it can)."""
        markets = [m.symbol for m in self.config.markets]
        if snap.markets != markets:
            return f"its markets {snap.markets} are not {markets}"
        for k, (seq, shard_log) in enumerate(zip(snap.seqs, self.logs, strict=True)):
            if seq > shard_log.last_seq:
                return f"it is at seq {seq} of accounts-{k}, beyond its end {shard_log.last_seq}"
        for market, market_log in self.engine_logs.items():
            position = snap.positions.get(market, -1)
            if not 0 <= position <= market_log.last_seq:
                return f"its position {position} in engine-{market} is not within the log"
        try:
            view = ShardedView.restore(snap.view)
        except (ValueError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            return f"its view cannot be restored: {exc}"
        if view.config != self.config:
            return "its exchange configuration differs"
        return ""

    async def catch_up(self, hooks: list[Callable[[list[Any]], Any]] | None = None) -> None:
        """Replay every log after the view's position in it (``hooks`` get the events of
        each engine command)."""
        decode = command_decoder.decode
        view = self.view
        self.replayed = 0
        for k, shard_log in enumerate(self.logs):
            machine = view.machines[k]
            async for _kind, _seq, payload in shard_log.records(
                after_seq=machine.last_seq, kind=COMMAND
            ):
                machine.execute(decode(payload))
                self.replayed += 1
            self.published_seqs[k] = machine.last_seq
        for market, market_log in self.engine_logs.items():
            engine = view.engines[market]
            async for _kind, _seq, payload in market_log.records(
                after_seq=engine.position, kind=COMMAND
            ):
                events = in_engine_order(engine.position + 1, engine.execute(decode(payload)))
                self.replayed += 1
                for hook in hooks or []:
                    hook(events)
        log.info("caught up", shards=self.shards, published=self.published_seqs,
                 replayed=self.replayed)  # fmt: skip

    async def log_end(self) -> int:
        """The sum of the shards' logs' last seqs (``published_seq``'s unit)."""
        for shard_log in self.logs:
            await shard_log.refresh()
        return sum(shard_log.last_seq for shard_log in self.logs)

    async def start(self) -> None:
        for k in range(self.shards):
            self._tasks.append(asyncio.create_task(self._follow_shard(k)))
        for market in self.engine_logs:
            self._tasks.append(asyncio.create_task(self._follow_engine(market)))

    async def stop(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        for lg in [*self.logs, *self.engine_logs.values()]:
            with contextlib.suppress(Exception):
                await lg.close()
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.close()

    # ---------------------------------------------------------------- access

    @property
    def core(self) -> ShardedView:
        return self.view

    @property
    def published_seq(self) -> int:
        """How many inputs of all shards' logs this gateway has applied (for logs and
        health; reads wait per shard)."""
        return sum(self.published_seqs)

    def subscribe(self, subscriber: Subscriber, feed: str = "accounts") -> None:
        self._subscribers[feed].append(subscriber)

    async def submit(self, command: Any) -> tuple[Any, list[Any]]:
        self.check_accepting("a log")
        shard = self.view.shard_of_command(command)
        stamped, events, last_seq = await self.clients[shard].submit_stamped(command)
        if type(stamped) is PlaceOrder and not stamped.order_id:
            # its id is its global seq, not the shard's seq it was stamped with
            order_id = global_seq(stamped.seq, shard, self.shards)
            stamped = msgspec.structs.replace(stamped, order_id=order_id)
        await self._wait(lambda: self._reached_in(shard, last_seq))
        return stamped, events

    def _reached_in(self, shard: int, seq: int) -> bool:
        return self.published_seqs[shard] >= seq and self.view.engines_reached(shard)

    async def _wait(self, reached: Callable[[], bool]) -> None:
        if reached():
            return
        await self._waiters.wait(reached, self.read_timeout)

    # ------------------------------------------------------------------ loops

    async def _follow_shard(self, shard: int) -> None:
        machine = self.view.machines[shard]

        def apply(command: Any) -> list[Any]:
            return own_sides(shard, self.shards, machine.execute(command))

        await self._follow(self.logs[shard], lambda: machine.last_seq, apply, "accounts")
        # (returns only when cancelled)

    async def _follow_engine(self, market: str) -> None:
        engine = self.view.engines[market]

        def apply(command: Any) -> list[Any]:
            return in_engine_order(engine.position + 1, engine.execute(command))

        await self._follow(self.engine_logs[market], lambda: engine.position, apply, "market")

    async def _follow(
        self,
        source: JetStreamLog,
        position: Callable[[], int],
        apply: Callable[[Any], list[Any]],
        feed: str,
    ) -> None:
        decode = command_decoder.decode
        subscribers = self._subscribers[feed]
        try:
            async for records in source.tail(position(), kind=COMMAND):
                items = []
                for _kind, seq, payload in records:
                    if seq <= position():
                        continue
                    command = decode(payload)
                    items.append((command, apply(command)))
                if not items:
                    continue
                for subscriber in subscribers:
                    try:
                        subscriber(items)
                    except Exception as exc:  # a broken subscriber must not stop the gateway
                        log.error("subscriber failed", subscriber=repr(subscriber), error=repr(exc))
                self._published()
                self._waiters.moved()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("following a log failed", log=source.name, error=repr(exc))
            self._failed = exc
            raise

    def _published(self) -> None:
        for k, machine in enumerate(self.view.machines):
            self.published_seqs[k] = machine.last_seq
