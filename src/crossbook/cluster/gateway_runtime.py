"""A gateway's runtime in the production layout: the same surface as the embedded
:class:`~crossbook.gateway.runtime.ExchangeRuntime`, over NATS.

- ``submit`` sends the command to the accounts service (coalesced with other
  requests, :class:`~crossbook.cluster.client.AccountsClient`) and returns once it
  is acknowledged *and* this gateway's view has reached the reply's ``last_seq``, so a
  client that reads right after writing sees its write (balances, open orders, the
  streams' reports).
- ``core`` is an :class:`~crossbook.cluster.view.ExchangeView` that follows the
  accounts log (an ordered push consumer): balances, holds and books as of the log.
- Subscribers (market data, user streams, ...) get each durable batch of the log as
  ``(command, events)`` pairs, in order, exactly as from the embedded runtime.

On start the view is restored from the newest usable boot snapshot that the market
data service keeps in the object store (:mod:`crossbook.cluster.boot`), and the log
after it is replayed (the whole log if there is no snapshot); ``catch_up`` hooks see
those events (market data rolls forward on them) but subscribers only get what follows.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nats
import structlog
from nats.aio.client import Client as NATS

from crossbook.bus.jetstream import JetStreamLog
from crossbook.cluster.boot import BootSnapshot, load_boot_snapshot
from crossbook.cluster.client import AccountsClient
from crossbook.cluster.topology import accounts_log
from crossbook.cluster.view import ExchangeView
from crossbook.cluster.waiters import Waiters
from crossbook.domain.codec import command_decoder
from crossbook.exchange.core import ExchangeConfig
from crossbook.journal.framing import COMMAND

log = structlog.get_logger("crossbook.cluster.gateway")

Subscriber = Callable[[list[tuple[Any, list[Any]]]], None]


class FollowerState:
    """Whether a gateway's runtime still follows its logs and takes commands."""

    _closing: bool = False
    _failed: BaseException | None = None

    @property
    def failure(self) -> BaseException | None:
        """Why following a log stopped, if it did."""
        return self._failed

    @property
    def accepting(self) -> bool:
        return not self._closing and self._failed is None

    def check_accepting(self, lost: str) -> None:
        """Raise unless commands are taken (``lost``: what a failure lost)."""
        if self._failed is not None:
            raise RuntimeError(f"the gateway lost {lost}") from self._failed
        if self._closing:
            raise RuntimeError("the gateway is shutting down")


class ClusterRuntime(FollowerState):
    def __init__(
        self,
        data_dir: Path,
        config: ExchangeConfig,
        nats_url: str,
        *,
        shard: int = 0,
        read_timeout: float = 10.0,
    ) -> None:
        self.data_dir = data_dir
        self.config = config
        self.nats_url = nats_url
        self.shard = shard
        self.read_timeout = read_timeout
        self.view = ExchangeView(config)
        self.published_seq = 0
        self.replayed = 0
        self._subscribers: list[Subscriber] = []
        self._waiters = Waiters()
        self._follow: asyncio.Task[None] | None = None
        self._closing = False
        self._failed: BaseException | None = None
        self.nc: NATS | None = None

    # ------------------------------------------------------------- lifecycle

    async def open(self, catch_up: list[Callable[[list[Any]], Any]] | None = None) -> None:
        """Connect and replay the whole accounts log into the view (``catch_up`` hooks
        get each input's events)."""
        await self.connect(boot=False)
        await self.catch_up(catch_up)

    async def connect(self, *, boot: bool = True) -> BootSnapshot | None:
        """Connect; with ``boot``, restore the view from the newest usable boot snapshot
        and return it (the caller restores its market data from it too), else ``None``."""
        self.nc = await nats.connect(
            self.nats_url.split(","),
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.1,
            connect_timeout=5,
        )
        self.client = AccountsClient(self.nc, self.shard)
        self.log = await JetStreamLog.open(self.nc, accounts_log(self.shard))
        if not boot:
            return None
        snap = await load_boot_snapshot(self.nc.jetstream(), self.shard)
        if snap is None:
            return None
        markets = [m.symbol for m in self.config.markets]
        reason = ""
        if snap.seq > self.log.last_seq:
            reason = f"it is at seq {snap.seq}, beyond the log's end {self.log.last_seq}"
        elif snap.markets != markets:
            reason = f"its markets {snap.markets} are not {markets}"
        else:
            view = ExchangeView.restore(snap.view)
            if view.config != self.config or view.last_seq != snap.seq:
                reason = "its exchange configuration differs"
        if reason:
            log.warning("boot snapshot not used; replaying the log", reason=reason)
            return None
        self.view = view
        log.info("booted from snapshot", log=accounts_log(self.shard), seq=snap.seq)
        return snap

    async def catch_up(self, hooks: list[Callable[[list[Any]], Any]] | None = None) -> None:
        """Replay the accounts log after the view's seq into it (``hooks`` get each
        input's events)."""
        decode = command_decoder.decode
        apply = self.view.apply
        hooks = hooks or []
        self.replayed = 0
        async for _kind, _seq, payload in self.log.records(
            after_seq=self.view.last_seq, kind=COMMAND
        ):
            events = apply(decode(payload))
            self.replayed += 1
            for hook in hooks:
                hook(events)
        self.published_seq = self.view.last_seq
        log.info("caught up", log=accounts_log(self.shard), last_seq=self.published_seq,
                 replayed=self.replayed)  # fmt: skip

    async def log_end(self) -> int:
        """The accounts log's last seq, read now."""
        await self.log.refresh()
        return self.log.last_seq

    async def start(self) -> None:
        self._follow = asyncio.create_task(self._follow_log(), name="crossbook-follow")

    async def stop(self) -> None:
        self._closing = True
        if self._follow is not None:
            self._follow.cancel()
            with contextlib.suppress(BaseException):
                await self._follow
        with contextlib.suppress(Exception):
            await self.log.close()
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.close()

    # ---------------------------------------------------------------- access

    @property
    def core(self) -> ExchangeView:
        return self.view

    def subscribe(self, subscriber: Subscriber, feed: str = "accounts") -> None:
        """``subscriber`` gets each durable batch of the log; ``feed`` (``"market"`` or
        ``"accounts"``) matters only to a sharded gateway: one log holds both here."""
        self._subscribers.append(subscriber)

    async def submit(self, command: Any) -> tuple[Any, list[Any]]:
        self.check_accepting("the accounts log")
        stamped, events, last_seq = await self.client.submit_stamped(command)
        await self.wait_for(last_seq)
        return stamped, events

    async def wait_for(self, seq: int) -> None:
        """Until the view (and the subscribers) have everything up to ``seq``."""
        if self.published_seq >= seq:
            return
        await self._waiters.wait(lambda: self.published_seq >= seq, self.read_timeout)

    # ------------------------------------------------------------------ loop

    async def _follow_log(self) -> None:
        decode = command_decoder.decode
        apply = self.view.apply
        try:
            async for records in self.log.tail(self.view.last_seq, kind=COMMAND):
                items = []
                for _kind, seq, payload in records:
                    if seq <= self.view.last_seq:
                        continue
                    command = decode(payload)
                    items.append((command, apply(command)))
                if not items:
                    continue
                for subscriber in self._subscribers:
                    try:
                        subscriber(items)
                    except Exception as exc:  # a broken subscriber must not stop the gateway
                        log.error("subscriber failed", subscriber=repr(subscriber), error=repr(exc))
                self.published_seq = self.view.last_seq
                self._waiters.moved()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("following the accounts log failed", error=repr(exc))
            self._failed = exc
            raise
